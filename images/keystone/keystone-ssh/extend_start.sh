#!/bin/bash

# /usr/local/bin/kolla_keystone_extend_start of keystone-ssh: sourced by kolla_extend_start
# (keystone-base), as root, before `sshd -D`: host keys are made on the first start (none are
# baked into the image), and keystone's ~/.ssh (authorized_keys comes from config.json) is its own.

for key_type in rsa ecdsa ed25519; do
    if [[ ! -f /etc/ssh/ssh_host_${key_type}_key ]]; then
        ssh-keygen -q -t "${key_type}" -f "/etc/ssh/ssh_host_${key_type}_key" -N ""
    fi
done
mkdir -p /run/sshd /var/lib/keystone/.ssh
chmod 0755 /run/sshd
if [[ $(stat -c %U:%G /var/lib/keystone/.ssh) != "keystone:keystone" ]]; then
    chown keystone:keystone /var/lib/keystone/.ssh
fi
chmod 0700 /var/lib/keystone/.ssh
