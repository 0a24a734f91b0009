#!/bin/bash

# /usr/local/bin/kolla_nova_extend_start of nova-conductor: sourced by kolla_extend_start
# (nova-base) as user nova. One-off tasks of kolla-ansible's nova-cell role, each exits:
#   KOLLA_BOOTSTRAP: the cell's schema, then its online data migrations;
#   KOLLA_UPGRADE: the cell's schema (the nova_cell_bootstrap container);
#   KOLLA_OSM: the online data migrations.

if [[ -v KOLLA_BOOTSTRAP ]]; then
    nova-manage db sync --local_cell && nova-manage db online_data_migrations
    exit $?
fi
if [[ -v KOLLA_UPGRADE ]]; then
    nova-manage db sync --local_cell
    exit $?
fi
if [[ -v KOLLA_OSM ]]; then
    nova-manage db online_data_migrations
    exit $?
fi
