#!/bin/bash

# /usr/local/bin/kolla_placement_extend_start: sourced by kolla_extend_start (placement-base), as
# root: the server (kolla-ansible 20: uwsgi with `uid = placement`; or Apache, whose WSGI daemons
# run as placement) starts as root and drops to user placement.
# KOLLA_BOOTSTRAP: bring the schema to the version of this image and run the online data
# migrations; KOLLA_UPGRADE: the schema only; KOLLA_OSM: the online data migrations only. Each exits.

placement_manage() {
    if [[ $(id -u) == 0 ]]; then
        sudo -H -u placement placement-manage "$@"
    else
        placement-manage "$@"
    fi
}

# The log directory belongs to placement (group kolla); the server's log file to placement.
if [[ $(id -u) == 0 ]]; then
    mkdir -p /var/log/kolla/placement
    touch /var/log/kolla/placement/placement-api.log
    chown -R placement:kolla /var/log/kolla/placement
    chown placement:placement /var/log/kolla/placement/placement-api.log
    chmod 755 /var/log/kolla/placement
fi

if [[ -v KOLLA_BOOTSTRAP ]]; then
    placement_manage db sync && placement_manage db online_data_migrations
    exit $?
fi
if [[ -v KOLLA_UPGRADE ]]; then
    placement_manage db sync
    exit $?
fi
if [[ -v KOLLA_OSM ]]; then
    placement_manage db online_data_migrations
    exit $?
fi

# Apache's run-time settings and stale pid files (base/httpd_setup.sh).
# shellcheck source=/dev/null
. /usr/local/bin/kolla_httpd_setup
