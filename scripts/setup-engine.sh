#!/usr/bin/env bash
# Bring up what kolla-build's engine tests need on a bare Debian bookworm machine (run as root,
# no systemd, no stdin): the Docker Engine (dockerd) on /var/run/docker.sock and Debian's
# distribution registry (docker-registry) on 127.0.0.1:4000. Idempotent: whatever already answers
# is left alone. Quiet on success (one status line per step); on failure, says what failed and
# prints the tail of the relevant log. Stop both with scripts/stop-engine.sh.
# Findings behind the choices below: scripts/ENGINE-NOTES.md.
#
# Environment (all optional):
#   KOLLA_REGISTRY_DIR      registry storage           (default /var/lib/kolla-build/registry)
#   KOLLA_REGISTRY_PORT     registry port on 127.0.0.1 (default 4000)
#   KOLLA_STATE_DIR         where the registry config goes (default /var/lib/kolla-build)
#   KOLLA_DOCKERD_LOG       dockerd log   (default /var/log/kolla-build-dockerd.log)
#   KOLLA_REGISTRY_LOG      registry log  (default /var/log/kolla-build-registry.log)
#   KOLLA_STORAGE_DRIVER    force a dockerd storage driver (default: overlay2 if the kernel can
#                           mount overlayfs here, else vfs)
#   KOLLA_ENGINE_WAIT       seconds to wait for each server to answer (default 60)
set -euo pipefail

REGISTRY_DIR="${KOLLA_REGISTRY_DIR:-/var/lib/kolla-build/registry}"
REGISTRY_PORT="${KOLLA_REGISTRY_PORT:-4000}"
STATE_DIR="${KOLLA_STATE_DIR:-/var/lib/kolla-build}"
DOCKERD_LOG="${KOLLA_DOCKERD_LOG:-/var/log/kolla-build-dockerd.log}"
REGISTRY_LOG="${KOLLA_REGISTRY_LOG:-/var/log/kolla-build-registry.log}"
REGISTRY_CONFIG="$STATE_DIR/registry.yml"
REGISTRY_PIDFILE="/var/run/kolla-build-registry-$REGISTRY_PORT.pid"
DOCKER_SOCK=/var/run/docker.sock
DOCKER_PIDFILE=/var/run/docker.pid
WAIT="${KOLLA_ENGINE_WAIT:-60}"
APT_LOG=/var/log/kolla-build-apt.log

SCRIPT=setup-engine
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_root "dockerd and apt-get need it"

# ---------------------------------------------------------------------------------------------
# 1. Packages. docker.io brings dockerd, the docker CLI, containerd and runc; docker-registry is
# the CNCF distribution registry v2; debootstrap makes the bookworm base rootfs; skopeo inspects
# registries; busybox-static is the tiny base image of the reliability tests (tests/reliability.rs).
# curl is what this script pings the servers with. Installed with their recommends,
# as on the machine where this was verified.
# ---------------------------------------------------------------------------------------------
: >"$APT_LOG"
install_missing "$APT_LOG" docker.io docker-registry debootstrap skopeo curl ca-certificates \
    busybox-static

# ---------------------------------------------------------------------------------------------
# 2. dockerd.
# ---------------------------------------------------------------------------------------------
engine_up() {
    curl -fsS --max-time 3 --unix-socket "$DOCKER_SOCK" http://localhost/_ping >/dev/null 2>&1
}

# Storage driver: overlay2 works here (ext4 root, kernel with overlayfs, d_type supported). Probe
# an actual overlay mount rather than trusting /proc/filesystems, so a machine where overlayfs
# can't be mounted (e.g. nested in an overlay root) falls back to vfs (slow, copies every layer,
# but works anywhere). A driver already configured in /etc/docker/daemon.json wins: passing the
# same option as a flag too makes dockerd refuse to start.
pick_storage_driver() {
    if [[ -n "${KOLLA_STORAGE_DRIVER:-}" ]]; then
        echo "$KOLLA_STORAGE_DRIVER"
        return
    fi
    local probe ok=1
    mkdir -p /var/lib/docker
    probe="$(mktemp -d /var/lib/docker/.overlay-probe.XXXXXX)"
    mkdir -p "$probe"/{lower,upper,work,merged}
    if mount -t overlay overlay \
        -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" "$probe/merged" \
        2>/dev/null; then
        umount "$probe/merged" && ok=0
    fi
    rm -rf "$probe"
    if ((ok == 0)); then echo overlay2; else echo vfs; fi
}

# Networking: the defaults work here (iptables-nft, docker0 bridge, NAT), and they are needed:
# builds use network mode host, but the end-to-end tests put containers on user-defined networks
# that must talk to each other and to the Debian mirror / PyPI. Only if this machine's iptables
# has no usable nat table do we fall back to --iptables=false (containers on bridge networks can
# still reach each other but not the outside; host-network builds are unaffected).
iptables_ok() {
    command -v iptables >/dev/null 2>&1 && iptables -t nat -L -n >/dev/null 2>&1
}

start_dockerd() {
    local args=() json=/etc/docker/daemon.json driver=""
    if ! { [[ -f "$json" ]] && grep -q '"storage-driver"' "$json"; }; then
        driver="$(pick_storage_driver)"
        args+=(--storage-driver="$driver")
    fi
    if ! iptables_ok; then
        args+=(--iptables=false --ip-masq=false)
        echo "setup-engine: warning: iptables nat table unusable; dockerd runs with --iptables=false" >&2
    fi
    # Loopback registries are insecure-allowed by default (InsecureRegistryCIDRs has 127.0.0.0/8);
    # that is verified below rather than passed again, so a daemon.json listing its own
    # insecure-registries doesn't conflict.
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    {
        echo "=== $(date -u +%FT%TZ) setup-engine: dockerd ${args[*]}"
    } >>"$DOCKERD_LOG"
    # setsid + closed stdin: the daemon outlives this script and holds none of its fds.
    setsid dockerd "${args[@]}" </dev/null >>"$DOCKERD_LOG" 2>&1 &
    DOCKERD_PID=$!
    DOCKERD_DESC="started (${args[*]:-defaults}, log $DOCKERD_LOG)"
}

if engine_up; then
    status dockerd "already running on $DOCKER_SOCK"
else
    DOCKERD_DESC="" DOCKERD_PID=""
    if [[ -f "$DOCKER_PIDFILE" ]] && pid_is "$(cat "$DOCKER_PIDFILE")" dockerd; then
        # A dockerd is alive but not answering yet (still starting): wait for it, don't race it.
        DOCKERD_PID="$(cat "$DOCKER_PIDFILE")"
        DOCKERD_DESC="was starting (pid $DOCKERD_PID)"
    else
        start_dockerd
    fi
    wait_up dockerd "$DOCKER_SOCK" "$DOCKERD_LOG" engine_up 'pid_is "$DOCKERD_PID" dockerd'
    status dockerd "$DOCKERD_DESC"
fi

# The engine must push to 127.0.0.1:PORT over plain HTTP: check 127.0.0.0/8 is in its insecure
# registry CIDRs (dockerd's default), or that the exact address is listed.
info="$(curl -fsS --max-time 10 --unix-socket "$DOCKER_SOCK" http://localhost/info)" \
    || fail dockerd "GET /info failed" "$DOCKERD_LOG"
if ! grep -q '"127.0.0.0/8"' <<<"$info" && ! grep -q "\"127.0.0.1:$REGISTRY_PORT\"" <<<"$info"; then
    fail dockerd "the engine does not treat 127.0.0.1:$REGISTRY_PORT as an insecure (HTTP) registry; add it to insecure-registries"
fi

# ---------------------------------------------------------------------------------------------
# 3. Registry on 127.0.0.1:PORT (loopback only), Debian's docker-registry with our own config;
# no systemd unit (there's no systemd here, and the packaged config listens on :5000 with htpasswd).
# ---------------------------------------------------------------------------------------------
registry_up() {
    curl -fsS --max-time 3 "http://127.0.0.1:$REGISTRY_PORT/v2/" >/dev/null 2>&1
}

if registry_up; then
    status registry "already running on 127.0.0.1:$REGISTRY_PORT"
else
    REG_DESC=""
    if pidfile_is "$REGISTRY_PIDFILE" docker-registry; then
        REG_DESC="was starting (pid $(cat "$REGISTRY_PIDFILE"))"
    else
        mkdir -p "$REGISTRY_DIR" "$STATE_DIR" "$(dirname "$REGISTRY_LOG")"
        cat >"$REGISTRY_CONFIG" <<EOF
# Written by kolla-build scripts/setup-engine.sh; rewritten on each start.
version: 0.1
log:
  level: info
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $REGISTRY_DIR
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$REGISTRY_PORT
  headers:
    X-Content-Type-Options: [nosniff]
EOF
        echo "=== $(date -u +%FT%TZ) setup-engine: docker-registry serve $REGISTRY_CONFIG" >>"$REGISTRY_LOG"
        setsid docker-registry serve "$REGISTRY_CONFIG" </dev/null >>"$REGISTRY_LOG" 2>&1 &
        echo $! >"$REGISTRY_PIDFILE"
        REG_DESC="started on 127.0.0.1:$REGISTRY_PORT (storage $REGISTRY_DIR, log $REGISTRY_LOG)"
    fi
    wait_up registry "http://127.0.0.1:$REGISTRY_PORT/v2/" "$REGISTRY_LOG" registry_up \
        'pidfile_is "$REGISTRY_PIDFILE" docker-registry'
    status registry "$REG_DESC"
fi

# ---------------------------------------------------------------------------------------------
# 4. /run with shared mount propagation. kolla-ansible mounts /run into kolla_toolbox and the
# compute containers as `/run/:/run/:shared`, which Docker refuses unless the host mount that
# holds /run is shared. systemd makes every mount shared at boot; a machine without it (this
# one: / is private) gets /run bind-mounted on itself and made shared, nothing else changed.
# Recursively: dockerd's own mounts under /run (the host network namespace at
# /run/docker/netns/default) must stay visible, or host-network containers fail to start.
# ---------------------------------------------------------------------------------------------
if findmnt -n -o PROPAGATION --target /run | grep -q shared; then
    status /run "shared mount propagation already"
else
    mountpoint -q /run || mount --rbind /run /run || fail /run "mount --rbind /run /run failed"
    mount --make-rshared /run || fail /run "mount --make-rshared /run failed"
    status /run "bind-mounted on itself with shared propagation (kolla-ansible's /run:/run:shared)"
fi
