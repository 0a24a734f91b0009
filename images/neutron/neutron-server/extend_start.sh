#!/bin/bash

# /usr/local/bin/kolla_neutron_extend_start: sourced by kolla_extend_start (neutron-base), as
# the container's user, before neutron-server starts. kolla-ansible's bootstrap_neutron one-shot
# sets what to do instead:
# - KOLLA_BOOTSTRAP (bootstrap_service.yml, legacy_upgrade.yml): neutron's schema and those of
#   the enabled subprojects, NEUTRON_BOOTSTRAP_SERVICES (space-separated), to their heads;
# - KOLLA_UPGRADE with NEUTRON_DB_EXPAND, then with NEUTRON_DB_CONTRACT (rolling_upgrade.yml):
#   that phase for neutron and NEUTRON_ROLLING_UPGRADE_SERVICES; with neither, to the heads.
# neutron-db-manage reads /etc/neutron/neutron.conf, which kolla_set_configs has put in place.

# Runs `neutron-db-manage upgrade <target>` for neutron and then each subproject of $2.
neutron_db_upgrade() {
    local target=$1 subproject
    neutron-db-manage --subproject neutron upgrade "${target}" || return
    for subproject in $2; do
        neutron-db-manage --subproject "${subproject}" upgrade "${target}" || return
    done
}

if [[ -v KOLLA_BOOTSTRAP ]]; then
    neutron_db_upgrade heads "${NEUTRON_BOOTSTRAP_SERVICES:-}"
    exit $?
fi
if [[ -v KOLLA_UPGRADE ]]; then
    if [[ -v NEUTRON_DB_EXPAND ]]; then
        neutron_db_upgrade --expand "${NEUTRON_ROLLING_UPGRADE_SERVICES:-}"
    elif [[ -v NEUTRON_DB_CONTRACT ]]; then
        neutron_db_upgrade --contract "${NEUTRON_ROLLING_UPGRADE_SERVICES:-}"
    else
        neutron_db_upgrade heads "${NEUTRON_ROLLING_UPGRADE_SERVICES:-}"
    fi
    exit $?
fi
