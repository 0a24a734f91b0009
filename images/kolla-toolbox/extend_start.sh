#!/bin/bash
# ansible.cfg's log_path lives in the kolla_logs volume: the `ansible` user writes it, the
# kolla group reads it (kolla-ansible's config.json sets the same, this covers a config without).
log=/var/log/kolla/ansible.log
[[ -f ${log} ]] || touch "${log}"
[[ $(stat -c %U:%G "${log}") == ansible:kolla ]] || chown ansible:kolla "${log}"
[[ $(stat -c %a "${log}") == 664 ]] || chmod 664 "${log}"
