#!/bin/bash

# /usr/local/bin/kolla_extend_start of horizon: sourced by kolla_start as root, right before
# Apache starts (kolla-ansible's command: apache2 -DFOREGROUND; Apache's WSGI daemons run as
# horizon). What kolla-ansible's horizon container asks of the image:
# - KOLLA_BOOTSTRAP (only with horizon_backend_database): the session tables, then exit.
# - ENABLE_<PLUGIN>=yes|no: a dashboard plugin's panels turned on (its `enabled` files copied
#   into openstack_dashboard/local/enabled) or off; a plugin turned on that this image lacks is
#   named on the log and left out.
# - The static files collected and compressed (kolla-ansible's settings say COMPRESS_OFFLINE)
#   whenever the settings differ from those of the last time, or FORCE_GENERATE=yes.

manage=(python3 /var/lib/kolla/venv/bin/manage.py)

if [[ -v KOLLA_BOOTSTRAP ]]; then
    "${manage[@]}" migrate --noinput
    exit $?
fi

dashboard=$(python3 -c 'import os, openstack_dashboard; print(os.path.dirname(openstack_dashboard.__file__))') \
    || exit 1
regenerate=${FORCE_GENERATE:-no}

# ENABLE_<NAME> (kolla-ansible's names) -> the plugin's Python package and where its enabled
# files are.
declare -A plugins=(
    [BLAZAR]=blazar_dashboard/enabled
    [CLOUDKITTY]=cloudkittydashboard/enabled
    [DESIGNATE]=designatedashboard/enabled
    [FWAAS]=neutron_fwaas_dashboard/enabled
    [HEAT]=heat_dashboard/enabled
    [IRONIC]=ironic_ui/enabled
    [MAGNUM]=magnum_ui/enabled
    [MANILA]=manila_ui/local/enabled
    [MASAKARI]=masakaridashboard/local/enabled
    [MISTRAL]=mistraldashboard/enabled
    [NEUTRON_VPNAAS]=neutron_vpnaas_dashboard/enabled
    [OCTAVIA]=octavia_dashboard/enabled
    [TACKER]=tacker_horizon/enabled
    [TROVE]=trove_dashboard/enabled
    [VENUS]=venus_dashboard/enabled
    [WATCHER]=watcher_dashboard/local/enabled
    [ZUN]=zun_ui/enabled
)
site_packages=$(dirname "${dashboard}")
for name in "${!plugins[@]}"; do
    switch=ENABLE_${name}
    enabled_dir=${site_packages}/${plugins[${name}]}
    for panel in "${enabled_dir}"/_[0-9]*.py; do
        [[ -f ${panel} ]] || continue
        target=${dashboard}/local/enabled/${panel##*/}
        if [[ ${!switch:-no} == yes && ! -f ${target} ]]; then
            cp "${panel}" "${target}"
            regenerate=yes
        elif [[ ${!switch:-no} != yes && -f ${target} ]]; then
            rm -f "${target}"
            regenerate=yes
        fi
    done
    if [[ ${!switch:-no} == yes && ! -d ${enabled_dir} ]]; then
        echo "horizon: ${switch}=yes, but this image has no ${plugins[${name}]%%/*} (the panels stay off)" >&2
    fi
done

# The settings the compressed files depend on, as one digest.
settings_digest() {
    tar -c --mtime=@0 --sort=name --owner=0 --group=0 -f - \
        /etc/openstack-dashboard/local_settings.py /etc/openstack-dashboard/local_settings.d \
        "${dashboard}/local/enabled" 2>/dev/null | md5sum
}
digest_file=/var/lib/kolla/horizon-settings.md5
if [[ ${regenerate} == yes || ! -f ${digest_file} || $(settings_digest) != "$(cat "${digest_file}")" ]]; then
    "${manage[@]}" collectstatic --noinput --clear >/dev/null || exit 1
    "${manage[@]}" compress --force || exit 1
    settings_digest > "${digest_file}"
fi

# The stock local_settings.py keeps a generated secret key (and its lock) in the package's
# local/ folder, Debian's in /var/lib/openstack-dashboard/secret-key: made by the steps above, as
# root, and read by Apache's WSGI daemons as horizon.
for key_store in "${dashboard}"/local/.secret_key_store "${dashboard}"/local/*secret_key_store.lock \
    /var/lib/openstack-dashboard/secret-key; do
    if [[ -e ${key_store} ]]; then
        chown -R horizon:horizon "${key_store}"
    fi
done

mkdir -p /var/log/kolla/horizon
chown horizon:kolla /var/log/kolla/horizon
chmod 755 /var/log/kolla/horizon

# shellcheck source=/dev/null
. /usr/local/bin/kolla_httpd_setup
