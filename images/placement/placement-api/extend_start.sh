#!/bin/bash

# /usr/local/bin/kolla_placement_extend_start: sourced by kolla_extend_start (placement-base), as
# root: Apache starts as root and runs the WSGI daemons as user placement.
# KOLLA_BOOTSTRAP (and KOLLA_UPGRADE): bring the schema to the version of this image, then exit.

if [[ -v KOLLA_BOOTSTRAP || -v KOLLA_UPGRADE ]]; then
    if [[ $(id -u) == 0 ]]; then
        sudo -H -u placement placement-manage db sync
    else
        placement-manage db sync
    fi
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
