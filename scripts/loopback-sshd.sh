#!/usr/bin/env bash
# An sshd on loopback for the ssh engine test (tests/scaleout.rs): `ssh://kolla-build-test-PORT`
# then reaches this machine's engine the way a remote build machine is reached, through the
# system's ssh and `docker system dial-stdio` on the far side. Run as root.
#
#   scripts/loopback-sshd.sh start DIR PORT
#       installs openssh-server if missing (never started as a system service), makes a host key
#       and a client key in DIR, starts sshd on 127.0.0.1:PORT (its config, pidfile and log in
#       DIR), and names it for ssh clients with a `Host kolla-build-test-PORT` entry in
#       /etc/ssh/ssh_config.d/ (host, port, user root, the client key, a known_hosts file of its
#       own in DIR holding the host key): what an operator's ~/.ssh/config holds for a build
#       machine. Root's own ~/.ssh is not touched.
#   scripts/loopback-sshd.sh stop DIR PORT
#       sshd stopped, the Host entry and DIR removed.
set -euo pipefail
SCRIPT=loopback-sshd
WAIT=${KOLLA_SSHD_WAIT:-30}
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

cmd=${1:?start or stop}
dir=${2:?a directory for the sshd}
port=${3:?a port on 127.0.0.1}
alias="kolla-build-test-$port"
entry="/etc/ssh/ssh_config.d/$alias.conf"

case "$cmd" in
start)
    need_root "sshd runs as root"
    # openssh-server's postinst starts the ssh service on every interface: forbidden for the
    # install (policy-rc.d 101), unless the machine already has a policy of its own.
    if ! dpkg-query -W -f='${Status}' openssh-server 2>/dev/null | grep -q 'install ok installed'; then
        guard=""
        if [[ ! -e /usr/sbin/policy-rc.d ]]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
            chmod +x /usr/sbin/policy-rc.d
            guard=/usr/sbin/policy-rc.d
        fi
        install_missing /var/log/kolla-build-setup.log openssh-server
        [[ -n "$guard" ]] && rm -f "$guard"
    fi
    mkdir -p "$dir" /run/sshd /etc/ssh/ssh_config.d
    chmod 700 "$dir"
    ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
    ssh-keygen -q -t ed25519 -N '' -f "$dir/client_key"
    cp "$dir/client_key.pub" "$dir/authorized_keys"
    cat >"$dir/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $port
HostKey $dir/host_key
AuthorizedKeysFile $dir/authorized_keys
PidFile $dir/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxStartups 50:30:100
MaxSessions 50
EOF
    /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
    echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$dir/host_key.pub")" >"$dir/known_hosts"
    cat >"$entry" <<EOF
Host $alias
    HostName 127.0.0.1
    Port $port
    User root
    IdentityFile $dir/client_key
    IdentitiesOnly yes
    UserKnownHostsFile $dir/known_hosts
    StrictHostKeyChecking yes
EOF
    wait_up sshd "127.0.0.1:$port" "$dir/sshd.log" \
        "ssh -o BatchMode=yes '$alias' true 2>/dev/null" "pidfile_is '$dir/sshd.pid' sshd"
    status sshd "started on 127.0.0.1:$port (ssh://$alias, $entry)"
    ;;
stop)
    pidfile_is "$dir/sshd.pid" sshd && kill "$(cat "$dir/sshd.pid")" 2>/dev/null || true
    rm -f "$entry"
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start|stop DIR PORT" >&2
    exit 2
    ;;
esac
