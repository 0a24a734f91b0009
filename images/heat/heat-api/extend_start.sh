#!/bin/bash

# /usr/local/bin/kolla_heat_extend_start: sourced by kolla_extend_start (heat-base), as root,
# before Apache starts.
# - KOLLA_BOOTSTRAP (kolla-ansible's bootstrap_heat one-shot, with the admin's OS_* credentials
#   and HEAT_DOMAIN_ADMIN_PASSWORD): the schema, then the stack domain heat.conf names
#   (stack_user_domain_name = heat_user_domain) with its admin user (stack_domain_admin =
#   heat_domain_admin) holding the admin role on it. Each step finds what a previous run made.
# - KOLLA_UPGRADE: the schema only.

if [[ -v KOLLA_BOOTSTRAP ]]; then
    heat-manage db_sync || exit
    openstack domain create --or-show heat_user_domain >/dev/null || exit
    openstack user create --or-show --domain heat_user_domain \
        --password "${HEAT_DOMAIN_ADMIN_PASSWORD:?kolla-ansible sets it}" heat_domain_admin >/dev/null \
        || exit
    openstack role add --domain heat_user_domain --user-domain heat_user_domain \
        --user heat_domain_admin admin
    exit $?
fi
if [[ -v KOLLA_UPGRADE ]]; then
    heat-manage db_sync
    exit $?
fi

# shellcheck source=/dev/null
. /usr/local/bin/kolla_httpd_setup
