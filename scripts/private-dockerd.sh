#!/usr/bin/env bash
# A private Docker engine for tests that must kill one (tests/reliability.rs, engine death). It
# never touches the main daemon: its own --data-root, --exec-root, unix socket, pidfile, config
# file and a pre-created bridge given with -b (never --bridge=none, which would delete docker0),
# with --iptables=false. Run as root.
#
#   scripts/private-dockerd.sh start DIR [BRIDGE CIDR [TLS_PORT]]
#       prints nothing; waits (bounded) for it. With TLS_PORT it also listens on
#       tcp://127.0.0.1:TLS_PORT with --tlsverify, its certificates made for the occasion in
#       DIR/tls (a throwaway CA, a server certificate for 127.0.0.1); the client's files are in
#       DIR/tls/client laid out as DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem).
#   scripts/private-dockerd.sh kill DIR                  # SIGKILL to dockerd only (engine death)
#   scripts/private-dockerd.sh down DIR                  # every process of it killed, data kept
#   scripts/private-dockerd.sh stop DIR [BRIDGE]         # dockerd, its containerd and shims,
#                                                        # mounts, DIR and the bridge: all gone
set -euo pipefail

cmd=${1:?start, kill or stop}
dir=${2:?a directory for the engine}
bridge=${3:-kbrel11}
cidr=${4:-172.31.251.1/24}
tls_port=${5:-}
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

# A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA, valid
# for two days: what a daemon started with --tlsverify and its clients need.
make_certs() {
    local tls=$1 ca_subj="/CN=kolla-build test CA $$"
    mkdir -p "$tls/client"
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    openssl req -x509 "${ec[@]}" -days 2 -subj "$ca_subj" -keyout "$tls/ca-key.pem" \
        -out "$tls/ca.pem" 2>/dev/null
    sign() { # NAME SUBJECT EXTENSIONS
        openssl req "${ec[@]}" -subj "$2" -keyout "$tls/$1-key.pem" -out "$tls/$1.csr" 2>/dev/null
        openssl x509 -req -in "$tls/$1.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca-key.pem" \
            -CAcreateserial -days 2 -extfile <(printf '%s\n' "$3") -out "$tls/$1-cert.pem" 2>/dev/null
    }
    sign server /CN=127.0.0.1 $'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth'
    sign client /CN=kolla-build 'extendedKeyUsage=clientAuth'
    cp "$tls/ca.pem" "$tls/client/ca.pem"
    cp "$tls/client-cert.pem" "$tls/client/cert.pem"
    cp "$tls/client-key.pem" "$tls/client/key.pem"
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
    tcp=()
    if [[ -n "$tls_port" ]]; then
        make_certs "$dir/tls"
        tcp=(-H "tcp://127.0.0.1:$tls_port" --tlsverify --tlscacert "$dir/tls/ca.pem"
            --tlscert "$dir/tls/server-cert.pem" --tlskey "$dir/tls/server-key.pem")
    fi
    driver=$(docker info --format '{{.Driver}}' 2>/dev/null || echo overlay2)
    setsid dockerd --config-file "$dir/daemon.json" --data-root "$dir/data" \
        --exec-root "$dir/exec" -H "unix://$sock" "${tcp[@]}" --pidfile "$dir/docker.pid" \
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
    echo "usage: $0 start DIR [BRIDGE CIDR [TLS_PORT]] | kill|down|stop DIR [BRIDGE]" >&2
    exit 2
    ;;
esac
