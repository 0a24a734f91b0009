# Shared by the healthcheck_* scripts (sourced; installed as /usr/local/lib/kolla/healthcheck.sh).
# Sockets are matched to processes with `ss -p`, which only shows the processes of the calling
# user unless it is root: run a check as the service's user or as root.

# The pids of the processes whose command line matches $1, as an ss regex alternative: "12|34".
healthcheck_pids() {
    local pids
    pids=$(pgrep -d '|' -f -- "$1") || true
    if [[ -z ${pids} ]]; then
        echo "no process matches '$1'" >&2
        return 1
    fi
    echo "${pids}"
}

# healthcheck_tcp listen|established PROCESS PORT...
healthcheck_tcp() {
    local state=$1 process=${2-} pids ports
    shift 2 || true
    if [[ -z ${process} || $# -lt 1 ]]; then
        echo "usage: $(basename "$0") PROCESS PORT [PORT...]" >&2
        exit 1
    fi
    pids=$(healthcheck_pids "${process}") || exit 1
    ports=$(IFS='|'; echo "$*")
    local lines
    if [[ ${state} == listen ]]; then
        lines=$(ss -Hntlp) || exit 1
        # Local address:port column, then the owning processes.
        if grep -qE ":(${ports})[[:space:]].*pid=(${pids})," <<<"${lines}"; then
            exit 0
        fi
        echo "'${process}' (pids ${pids//|/ }) listens on none of the ports $*" >&2
    else
        lines=$(ss -Hntp state established) || exit 1
        if grep -qE ":(${ports})[[:space:]].*pid=(${pids})," <<<"${lines}"; then
            exit 0
        fi
        echo "'${process}' (pids ${pids//|/ }) has no connection on the ports $*" >&2
    fi
    exit 1
}

# healthcheck_unix PROCESS SOCKET
healthcheck_unix() {
    local process=${1-} socket=${2-} pids
    if [[ -z ${process} || -z ${socket} ]]; then
        echo "usage: $(basename "$0") PROCESS SOCKET" >&2
        exit 1
    fi
    if [[ ! -S ${socket} ]]; then
        echo "${socket} is not a socket" >&2
        exit 1
    fi
    pids=$(healthcheck_pids "${process}") || exit 1
    if ss -Hxlp | grep -F -- " ${socket} " | grep -qE "pid=(${pids}),"; then
        exit 0
    fi
    echo "'${process}' (pids ${pids//|/ }) does not listen on ${socket}" >&2
    exit 1
}
