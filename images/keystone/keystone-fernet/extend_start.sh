#!/bin/bash

# /usr/local/bin/kolla_keystone_extend_start of keystone-fernet: sourced by kolla_extend_start
# (keystone-base), as root (cron runs the rotation as root). kolla-ansible's config.json installs
# /usr/bin/fernet-node-sync.sh, which waits until the fernet keys exist (made by its
# `keystone-manage fernet_setup` bootstrap container): run it first when it is there. The key
# repository belongs to keystone.

if [[ -x /usr/bin/fernet-node-sync.sh ]]; then
    /usr/bin/fernet-node-sync.sh
fi
if [[ -d /etc/keystone/fernet-keys && $(stat -c %U:%G /etc/keystone/fernet-keys) != "keystone:keystone" ]]; then
    chown keystone:keystone /etc/keystone/fernet-keys
fi
