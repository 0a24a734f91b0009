#!/bin/bash

# /usr/local/bin/kolla_glance_extend_start: sourced by kolla_extend_start (glance-base).
# KOLLA_BOOTSTRAP: create the schema; KOLLA_UPGRADE: expand and migrate it before the new code
# runs; KOLLA_FINISH_UPGRADE: contract it once every glance-api runs the new code.

if [[ -v KOLLA_BOOTSTRAP ]]; then
    glance-manage db_sync
    exit $?
fi
if [[ -v KOLLA_UPGRADE ]]; then
    glance-manage db expand && glance-manage db migrate
    exit $?
fi
if [[ -v KOLLA_FINISH_UPGRADE ]]; then
    glance-manage db contract
    exit $?
fi
