#!/bin/bash

# /usr/local/bin/kolla_nova_extend_start of nova-compute: sourced by kolla_extend_start
# (nova-base) as user nova. The instances directory lives in the nova_compute volume (or a
# fresh state_path), which starts empty.

if [[ ! -d /var/lib/nova/instances ]]; then
    mkdir -p /var/lib/nova/instances
fi
