#!/bin/bash
# kolla_install_projects: kolla-ansible's development mode mounts project checkouts under
# /dev-mode/<project>; they are installed over the image's copy (source images only, into the
# venv). Nothing to do without /dev-mode. Run as root (kolla_start uses sudo).
set -o errexit
set -o nounset

[[ -d /dev-mode ]] || exit 0
if [[ ! -x /var/lib/kolla/venv/bin/pip ]]; then
    echo "kolla_install_projects: /dev-mode is mounted but this image has no venv (binary image)" >&2
    exit 0
fi
for project in /dev-mode/*; do
    [[ -d ${project} ]] || continue
    /var/lib/kolla/venv/bin/pip --no-cache-dir install --no-deps --upgrade "${project}"
done
