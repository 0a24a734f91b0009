#!/usr/bin/env bash
# A private Docker engine for tests that must kill one (tests/reliability.rs, engine death). It
# never touches the main daemon: its own --data-root, --exec-root, unix socket, pidfile, config
# file and a pre-created bridge given with -b (never --bridge=none, which would delete docker0),
# with --iptables=false. Run as root.
#
#   scripts/private-dockerd.sh start DIR [BRIDGE CIDR]   # prints nothing; waits (bounded) for it
#   scripts/private-dockerd.sh kill DIR                  # SIGKILL to dockerd only (engine death)
#   scripts/private-dockerd.sh down DIR                  # every process of it killed, data kept
#   scripts/private-dockerd.sh stop DIR [BRIDGE]         # dockerd, its containerd and shims,
#                                                        # mounts, DIR and the bridge: all gone
set -euo pipefail

cmd=${1:?start, kill or stop}
dir=${2:?a directory for the engine}
bridge=${3:-kbrel11}
cidr=${4:-172.31.251.1/24}
sock="$dir/docker.sock"
WAIT=${KOLLA_PRIVATE_ENGINE_WAIT:-60}

# Processes started for this engine: every process whose command line names DIR.
ours() {
    local pid
    for pid in $(ls /proc | grep -E '^[0-9]+$'); do
        if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$dir/"; then
            echo "$pid"
        fi
    done
}

case "$cmd" in
start)
    mkdir -p "$dir/data" "$dir/exec"
    echo '{}' >"$dir/daemon.json"
    if ! ip link show "$bridge" >/dev/null 2>&1; then
        ip link add name "$bridge" type bridge
        ip addr add "$cidr" dev "$bridge"
        ip link set "$bridge" up
    fi
    driver=$(docker info --format '{{.Driver}}' 2>/dev/null || echo overlay2)
    setsid dockerd --config-file "$dir/daemon.json" --data-root "$dir/data" \
        --exec-root "$dir/exec" -H "unix://$sock" --pidfile "$dir/docker.pid" \
        --iptables=false --ip-masq=false -b "$bridge" --storage-driver "$driver" \
        </dev/null >>"$dir/dockerd.log" 2>&1 &
    for ((i = 0; i < WAIT * 5; i++)); do
        if curl -fsS --max-time 1 --unix-socket "$sock" http://localhost/_ping >/dev/null 2>&1; then
            exit 0
        fi
        sleep 0.2
    done
    echo "private-dockerd: no answer on $sock within ${WAIT}s" >&2
    tail -n 20 "$dir/dockerd.log" >&2
    exit 1
    ;;
kill)
    [[ -f "$dir/docker.pid" ]] && kill -KILL "$(cat "$dir/docker.pid")" 2>/dev/null || true
    ;;
down)
    # Everything the engine runs (containerd, shims, a killed dockerd's leftovers), data kept.
    for ((i = 0; i < 50; i++)); do
        pids=$(ours)
        [[ -z "$pids" ]] && break
        for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
        sleep 0.2
    done
    ;;
stop)
    if [[ -f "$dir/docker.pid" ]]; then
        pid=$(cat "$dir/docker.pid")
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
    fi
    for pid in $(ours); do kill -KILL "$pid" 2>/dev/null || true; done
    # Mounts below DIR (overlay layers, netns, shm), deepest first.
    awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$dir"
    ip link del "$bridge" 2>/dev/null || true
    ;;
*)
    echo "usage: $0 start|kill|down|stop DIR [BRIDGE CIDR]" >&2
    exit 2
    ;;
esac
