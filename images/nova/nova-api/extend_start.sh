#!/bin/bash

# /usr/local/bin/kolla_nova_extend_start of nova-api: sourced by kolla_extend_start (nova-base),
# as root (uwsgi drops to `uid = nova` from kolla-ansible's nova-api-uwsgi.ini). One-off tasks,
# each exits:
#   KOLLA_BOOTSTRAP: the API and local cell schemas, then the online data migrations;
#   KOLLA_UPGRADE: the API and local cell schemas (kolla-ansible's nova_api_bootstrap container);
#   KOLLA_OSM: the online data migrations; KOLLA_UPGRADE_CHECK: `nova-status upgrade check`.

if [[ -v KOLLA_BOOTSTRAP ]]; then
    nova-manage api_db sync && nova-manage db sync --local_cell \
        && nova-manage db online_data_migrations
    exit $?
fi
if [[ -v KOLLA_UPGRADE ]]; then
    nova-manage api_db sync && nova-manage db sync --local_cell
    exit $?
fi
if [[ -v KOLLA_OSM ]]; then
    nova-manage db online_data_migrations
    exit $?
fi
if [[ -v KOLLA_UPGRADE_CHECK ]]; then
    nova-status upgrade check
    exit $?
fi
