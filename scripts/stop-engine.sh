#!/usr/bin/env bash
# Stop what scripts/setup-engine.sh started: the docker-registry on 127.0.0.1:4000 and dockerd.
# Only processes recorded in the pid files, and only if they still are those programs. Running
# containers are stopped by dockerd's own shutdown. Images, volumes and registry storage are kept.
#   KOLLA_REGISTRY_PORT  the registry port it was started on (default 4000)
#   KOLLA_STOP_WAIT  seconds to wait for each to exit after SIGTERM before SIGKILL (default 30)
set -euo pipefail

WAIT="${KOLLA_STOP_WAIT:-30}"
REGISTRY_PIDFILE="/var/run/kolla-build-registry-${KOLLA_REGISTRY_PORT:-4000}.pid"
DOCKER_PIDFILE=/var/run/docker.pid

SCRIPT=stop-engine
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# stop NAME PIDFILE PROGRAM
stop() {
    local name="$1" pidfile="$2" prog="$3" pid
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    if ! pid_is "$pid" "$prog"; then
        status "$name" "not running"
        rm -f "$pidfile"
        return
    fi
    kill -TERM "$pid"
    for ((i = 0; i < WAIT * 2; i++)); do
        pid_is "$pid" "$prog" || break
        sleep 0.5
    done
    if pid_is "$pid" "$prog"; then
        kill -KILL "$pid"
        status "$name" "killed (pid $pid did not exit within ${WAIT}s)"
    else
        status "$name" "stopped (pid $pid)"
    fi
    rm -f "$pidfile"
}

need_root "stopping dockerd needs it"
stop registry "$REGISTRY_PIDFILE" docker-registry
stop dockerd "$DOCKER_PIDFILE" dockerd
