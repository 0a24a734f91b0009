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

# Apache: Debian's apache2 takes its run-time settings from /etc/apache2/envvars (sourced here,
# so that they reach the exec'd command), and will not start over the pid file a previous run of
# the container left behind.
if [[ -f /etc/apache2/envvars ]]; then
    # envvars reads variables that may be unset: kolla_start runs with nounset.
    set +o nounset
    # shellcheck source=/dev/null
    . /etc/apache2/envvars
    set -o nounset
    mkdir -p "${APACHE_RUN_DIR}" "${APACHE_LOCK_DIR}" "${APACHE_LOG_DIR}"
fi
rm -f /run/httpd/httpd.pid /run/apache2/apache2.pid

# Apache stays in the foreground: kolla-ansible's command is Apache itself, or its
# keystone-startup.sh, which waits for the fernet keys and then runs `apache2 "$@"`.
ARGS="-DFOREGROUND"
