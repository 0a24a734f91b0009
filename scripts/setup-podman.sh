#!/usr/bin/env bash
# Bring up Debian's podman as a second kolla-build engine (run as root, no systemd, no stdin):
# `podman system service` serving the Docker-compatible API on a unix socket, for
# `--engine-url unix:///run/kolla-build-podman.sock` and tests/podman.rs. Idempotent: a service
# that already answers is left alone; the registries.conf drop-in is rewritten only if it
# differs. Quiet on success (one status line per step); on failure, says what failed and prints
# the tail of the relevant log. Stop it with `kill "$(cat /run/kolla-build-podman.pid)"`.
# What differs from dockerd and how kolla-build handles it: docs/SCALE-OUT.md, "Podman".
#
# Environment (all optional):
#   KOLLA_PODMAN_SOCK       the service's socket (default /run/kolla-build-podman.sock)
#   KOLLA_PODMAN_LOG        its log              (default /var/log/kolla-build-podman.log)
#   KOLLA_REGISTRY_PORT     the test registry's port on 127.0.0.1, made insecure (default 4000)
#   KOLLA_ENGINE_WAIT       seconds to wait for the socket to answer (default 60)
set -euo pipefail

SOCK="${KOLLA_PODMAN_SOCK:-/run/kolla-build-podman.sock}"
LOG="${KOLLA_PODMAN_LOG:-/var/log/kolla-build-podman.log}"
PIDFILE="${SOCK%.sock}.pid"
REGISTRY_PORT="${KOLLA_REGISTRY_PORT:-4000}"
WAIT="${KOLLA_ENGINE_WAIT:-60}"
APT_LOG=/var/log/kolla-build-apt.log
# A drop-in rather than an edit of /etc/containers/registries.conf: it never touches the
# entries others wrote there, and rewriting it is idempotent.
DROPIN=/etc/containers/registries.conf.d/50-kolla-build.conf

SCRIPT=setup-podman
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_root "apt-get and rootful podman need it"

# ---------------------------------------------------------------------------------------------
# 1. Packages. podman brings conmon, crun and the CNI plugins with its recommends; uidmap,
# slirp4netns and fuse-overlayfs cover rootless use and kernels without native overlay.
# ---------------------------------------------------------------------------------------------
: >"$APT_LOG"
install_missing "$APT_LOG" podman uidmap slirp4netns fuse-overlayfs curl

# ---------------------------------------------------------------------------------------------
# 2. The test registry speaks plain HTTP. dockerd trusts 127.0.0.0/8 by default; podman trusts
# nothing by default, so the address is listed as insecure.
# ---------------------------------------------------------------------------------------------
want="# Written by kolla-build scripts/setup-podman.sh: the test registry speaks plain HTTP.
[[registry]]
location = \"127.0.0.1:$REGISTRY_PORT\"
insecure = true"
mkdir -p "$(dirname "$DROPIN")"
if [[ -f "$DROPIN" && "$(cat "$DROPIN")" == "$want" ]]; then
    status registries "127.0.0.1:$REGISTRY_PORT already insecure ($DROPIN)"
else
    printf '%s\n' "$want" >"$DROPIN.tmp"
    mv "$DROPIN.tmp" "$DROPIN"
    status registries "127.0.0.1:$REGISTRY_PORT marked insecure ($DROPIN)"
fi

# ---------------------------------------------------------------------------------------------
# 3. The service. --time=0: never exit for idleness (the default is 5 s without a client).
# On a hybrid cgroup hierarchy (v1 controllers with a v2 "unified" mount, as on this CI machine)
# Debian's crun refuses every container ("cgroups in hybrid mode not supported"); runc (from
# docker.io) handles it, so it is the runtime there.
# ---------------------------------------------------------------------------------------------
PODMAN_ARGS=()
if [[ "$(stat -f -c %T /sys/fs/cgroup 2>/dev/null)" == tmpfs ]] \
    && [[ "$(stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null)" == cgroup2fs ]]; then
    command -v runc >/dev/null 2>&1 \
        || fail podman "hybrid cgroups here, and crun cannot run on them: apt-get install runc"
    PODMAN_ARGS+=(--runtime "$(command -v runc)")
fi
service_up() {
    curl -fsS --max-time 3 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1
}

if service_up; then
    status podman "already serving on $SOCK"
else
    if pidfile_is "$PIDFILE" podman; then
        desc="was starting (pid $(cat "$PIDFILE"))"
    else
        rm -f "$SOCK"
        mkdir -p "$(dirname "$LOG")" "$(dirname "$SOCK")"
        echo "=== $(date -u +%FT%TZ) setup-podman: podman ${PODMAN_ARGS[*]} system service --time=0 unix://$SOCK" >>"$LOG"
        # setsid + closed stdin: the service outlives this script and holds none of its fds.
        setsid podman "${PODMAN_ARGS[@]}" system service --time=0 "unix://$SOCK" </dev/null >>"$LOG" 2>&1 &
        echo $! >"$PIDFILE"
        desc="started ($(podman --version 2>/dev/null), log $LOG)"
    fi
    wait_up podman "$SOCK" "$LOG" service_up 'pidfile_is "$PIDFILE" podman'
    status podman "$desc"
fi
