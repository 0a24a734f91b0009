#!/bin/bash

# /usr/local/bin/kolla_extend_start of every neutron image: sourced (not executed) by kolla_start,
# as the container's user, right before the service command. It makes the log directory, then
# sources the image's own steps, /usr/local/bin/kolla_neutron_extend_start, when the image has some.

if [[ ! -d /var/log/kolla/neutron ]]; then
    mkdir -p /var/log/kolla/neutron
fi
if [[ $(stat -c %a /var/log/kolla/neutron) != "755" ]]; then
    chmod 755 /var/log/kolla/neutron
fi

if [[ -f /usr/local/bin/kolla_neutron_extend_start ]]; then
    # shellcheck source=/dev/null
    . /usr/local/bin/kolla_neutron_extend_start
fi
