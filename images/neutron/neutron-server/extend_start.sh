#!/bin/bash

# /usr/local/bin/kolla_neutron_extend_start: sourced by kolla_extend_start (neutron-base).
# KOLLA_BOOTSTRAP: create the schema; KOLLA_UPGRADE: expand it before the new code runs;
# KOLLA_FINISH_UPGRADE: contract it once every neutron-server runs the new code.

neutron_config=(--config-file /etc/neutron/neutron.conf --config-file /etc/neutron/plugins/ml2/ml2_conf.ini)

if [[ -v KOLLA_BOOTSTRAP ]]; then
    neutron-db-manage "${neutron_config[@]}" upgrade head
    exit $?
fi
if [[ -v KOLLA_UPGRADE ]]; then
    neutron-db-manage "${neutron_config[@]}" upgrade --expand
    exit $?
fi
if [[ -v KOLLA_FINISH_UPGRADE ]]; then
    neutron-db-manage "${neutron_config[@]}" upgrade --contract
    exit $?
fi
