#!/bin/bash
# kolla_copy_cacerts: trusts the CA certificates a deployment mounts in
# /var/lib/kolla/config_files/ca-certificates/ (PEM files), in the distro's trust store, as
# kolla-customca-<name>.crt. kolla-ansible (kolla_copy_ca_into_containers) instead lists that
# directory in config.json with the destination /var/lib/kolla/share/ca-certificates: that copy
# is used when it exists. Certificates it added before and that are gone now are removed.
# Run as root (kolla_start uses sudo); doing nothing is success.
set -o errexit
set -o nounset

SOURCE=/var/lib/kolla/config_files/ca-certificates
if [[ -d /var/lib/kolla/share/ca-certificates ]]; then
    SOURCE=/var/lib/kolla/share/ca-certificates
fi

if [[ -d /etc/pki/ca-trust/source/anchors ]]; then
    TRUST_DIR=/etc/pki/ca-trust/source/anchors
    UPDATE=update-ca-trust
else
    TRUST_DIR=/usr/local/share/ca-certificates
    UPDATE=update-ca-certificates
fi

changed=0
for old in "${TRUST_DIR}"/kolla-customca-*; do
    [[ -e ${old} ]] || continue
    rm -f "${old}"
    changed=1
done
if [[ -d ${SOURCE} ]]; then
    for cert in "${SOURCE}"/*; do
        [[ -f ${cert} ]] || continue
        name=$(basename "${cert}")
        cp "${cert}" "${TRUST_DIR}/kolla-customca-${name%.*}.crt"
        chmod 644 "${TRUST_DIR}/kolla-customca-${name%.*}.crt"
        changed=1
    done
fi
if [[ ${changed} == 1 ]] && command -v "${UPDATE}" >/dev/null; then
    "${UPDATE}" >/dev/null
fi
