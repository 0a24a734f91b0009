# Shared by the setup scripts (sourced, not run): status lines, failing with a log's tail,
# installing the Debian packages that are missing, and a bounded wait for a server just started.
# The sourcing script sets SCRIPT (its name, the prefix of its errors) and WAIT (seconds).

status() { printf '%-10s %s\n' "$1:" "$2"; }

# fail STEP MESSAGE [LOG]: print the error (and the log's tail) to stderr and exit 1.
fail() {
    printf '%s: %s: %s\n' "$SCRIPT" "$1" "$2" >&2
    if [[ -n "${3:-}" && -f "$3" ]]; then
        printf -- '--- last lines of %s ---\n' "$3" >&2
        # dockerd's log is mostly containerd's gRPC chatter: leave it out of the tail.
        grep -v 'module=grpc' "$3" | tail -n 30 >&2
    fi
    exit 1
}

# need_root WHY: exit unless running as root.
need_root() { [[ "$(id -u)" -eq 0 ]] || fail setup "must run as root ($1)"; }

# install_missing LOG PACKAGE...: apt-get install those of the packages not installed yet
# (with their recommends), logging to LOG.
install_missing() {
    local log="$1" p
    shift
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        status packages "present"
        return
    fi
    export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
    mkdir -p "$(dirname "$log")"
    apt-get update -q >>"$log" 2>&1 || fail packages "apt-get update failed" "$log"
    apt-get install -y -q "${missing[@]}" </dev/null >>"$log" 2>&1 \
        || fail packages "apt-get install ${missing[*]} failed" "$log"
    status packages "installed ${missing[*]}"
}

# pid_is PID PROGRAM: PID is alive and runs PROGRAM (by executable basename).
pid_is() {
    local pid="$1" prog="$2" exe
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
    [[ "$(basename "${exe% (deleted)}")" == "$prog" ]]
}

# pidfile_is PIDFILE PROGRAM: the pid in PIDFILE is alive and runs PROGRAM.
pidfile_is() { pid_is "$(cat "$1" 2>/dev/null || echo x)" "$2"; }

# wait_up STEP WHERE LOG UP ALIVE: run the command UP once a second until it succeeds, at most
# WAIT seconds, giving up early once the command ALIVE fails (the server died: no point waiting
# the whole time). Fails with LOG's tail when the server never answered.
wait_up() {
    local step="$1" where="$2" log="$3" up="$4" alive="$5" i
    for ((i = 0; i < WAIT; i++)); do
        eval "$up" && return 0
        eval "$alive" || break
        sleep 1
    done
    eval "$up" && return 0
    eval "$alive" && fail "$step" "no answer on $where after ${WAIT}s" "$log"
    fail "$step" "exited without answering on $where" "$log"
}
