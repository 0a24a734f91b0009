#!/bin/bash

# /usr/local/bin/kolla_nova_extend_start: sourced by kolla_extend_start (nova-base).
# KOLLA_BOOTSTRAP (and KOLLA_UPGRADE): bring the API database schema to the version of this
# image, then exit. Cell databases are synced by the deployment with `nova-manage db sync`.

if [[ -v KOLLA_BOOTSTRAP || -v KOLLA_UPGRADE ]]; then
    nova-manage api_db sync
    exit $?
fi
