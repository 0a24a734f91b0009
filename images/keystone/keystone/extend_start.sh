#!/bin/bash

# /usr/local/bin/kolla_keystone_extend_start: sourced by kolla_extend_start (keystone-base), as
# root: Apache starts as root and runs keystone's WSGI daemons as user keystone, and the
# keystone-manage steps below run as keystone too, so that the files they make are its own.
# The deployment sets KOLLA_BOOTSTRAP in a one-off container that creates the schema, and
# KOLLA_UPGRADE / KOLLA_FINISH_UPGRADE around a rolling upgrade; each exits once done.

keystone_manage() {
    if [[ $(id -u) == 0 ]]; then
        sudo -H -u keystone keystone-manage ${EXTRA_KEYSTONE_MANAGE_ARGS:-} "$@"
    else
        keystone-manage ${EXTRA_KEYSTONE_MANAGE_ARGS:-} "$@"
    fi
}

# keystone writes its own log files into the directory kolla_extend_start made; keystone.log is
# kolla-ansible's log_file and belongs to keystone alone.
if [[ $(id -u) == 0 ]]; then
    chown -R keystone:kolla /var/log/kolla/keystone
    if [[ ! -f /var/log/kolla/keystone/keystone.log ]]; then
        touch /var/log/kolla/keystone/keystone.log
    fi
    chown keystone:keystone /var/log/kolla/keystone/keystone.log
fi

if [[ -v KOLLA_BOOTSTRAP ]]; then
    keystone_manage db_sync
    exit $?
fi
if [[ -v KOLLA_UPGRADE ]]; then
    keystone_manage db_sync --expand && keystone_manage db_sync --migrate
    exit $?
fi
if [[ -v KOLLA_FINISH_UPGRADE ]]; then
    keystone_manage db_sync --contract
    exit $?
fi

# shellcheck source=/dev/null
. /usr/local/bin/kolla_httpd_setup

# Apache stays in the foreground: kolla-ansible's command is Apache itself, or its
# keystone-startup.sh, which waits for the fernet keys and then runs `apache2 "$@"`.
ARGS="-DFOREGROUND"
