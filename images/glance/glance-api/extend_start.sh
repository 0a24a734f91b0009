#!/bin/bash

# /usr/local/bin/kolla_glance_extend_start: sourced by kolla_extend_start (glance-base).
# KOLLA_BOOTSTRAP: create the schema and load the metadata definitions; KOLLA_UPGRADE: expand and
# migrate it before the new code runs (kolla-ansible's rolling upgrade picks the steps with
# GLANCE_DB_EXPAND / GLANCE_DB_MIGRATE / GLANCE_DB_CONTRACT; none set means expand and migrate);
# KOLLA_FINISH_UPGRADE: contract it once every glance-api runs the new code.

if [[ -v KOLLA_BOOTSTRAP ]]; then
    glance-manage db_sync && glance-manage db_load_metadefs
    exit $?
fi
if [[ -v KOLLA_UPGRADE ]]; then
    if [[ -v GLANCE_DB_EXPAND || -v GLANCE_DB_MIGRATE || -v GLANCE_DB_CONTRACT ]]; then
        if [[ -v GLANCE_DB_EXPAND ]]; then
            glance-manage db expand || exit $?
        fi
        if [[ -v GLANCE_DB_MIGRATE ]]; then
            glance-manage db migrate || exit $?
        fi
        if [[ -v GLANCE_DB_CONTRACT ]]; then
            glance-manage db contract || exit $?
        fi
        exit 0
    fi
    glance-manage db expand && glance-manage db migrate
    exit $?
fi
if [[ -v KOLLA_FINISH_UPGRADE ]]; then
    glance-manage db contract
    exit $?
fi
