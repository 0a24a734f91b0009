#!/bin/bash

# /usr/local/bin/kolla_heat_extend_start: sourced by kolla_extend_start (heat-base).
# KOLLA_BOOTSTRAP (and KOLLA_UPGRADE): bring the schema to the version of this image, then exit.

if [[ -v KOLLA_BOOTSTRAP || -v KOLLA_UPGRADE ]]; then
    heat-manage db_sync
    exit $?
fi
