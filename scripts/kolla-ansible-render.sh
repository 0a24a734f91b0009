#!/usr/bin/env bash
# Renders kolla-ansible's own configuration for an all-in-one node on the loopback interface,
# for tests/kolla_ansible.rs: kolla-ansible (KOLLA_ANSIBLE_SPEC, a pip requirement, default
# kolla-ansible==20.6.0, the 2025.1 deployer) is installed from PyPI into a virtualenv
# (KOLLA_ANSIBLE_VENV, default target/kolla-ansible) once and reused while the spec is unchanged,
# with the Docker SDK its kolla_toolbox module needs on a node (bootstrap-servers installs it);
# passwords are generated with its kolla-genpwd; then its roles' config tasks run through
# ansible-playbook (tests/kolla-ansible/render.yml) with its group_vars, role defaults and
# plugins, our tests/kolla-ansible/globals.yml and any further `-e` arguments given.
#
#   scripts/kolla-ansible-render.sh OUT_DIR [ansible-playbook arguments...]
#
# OUT_DIR receives passwords.yml, certificates/ (a throwaway CA), config/ (one directory per
# container, as /etc/kolla on a node, plus services.json: the container definitions) and
# render.log.
set -o errexit -o nounset -o pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: $0 OUT_DIR [ansible-playbook arguments...]}
shift
spec=${KOLLA_ANSIBLE_SPEC:-kolla-ansible==20.6.0}
# The Docker SDK of the 2025.1 constraints (base/constraints/2025.1.txt).
node_spec=docker==7.1.0
# images/kolla-toolbox/Dockerfile.j2's kolla_toolbox_collections_release.
collections_release=10.7.0
venv=${KOLLA_ANSIBLE_VENV:-${here}/target/kolla-ansible}
installed="${spec} ${node_spec} ${collections_release}"

# The virtualenv, (re)made when the spec changes. A lock keeps concurrent runs apart.
mkdir -p "$(dirname "${venv}")"
exec 9>"${venv}.lock"
flock 9
if [[ $(cat "${venv}/.installed" 2>/dev/null) != "${installed}" ]]; then
    rm -rf "${venv}"
    python3 -m venv "${venv}"
    "${venv}/bin/pip" install --disable-pip-version-check --quiet "${spec}" "${node_spec}"
    # The ansible.posix collection (`kolla-ansible install-deps` takes it from Galaxy, which is
    # out of reach): the json stdout callback the toolbox steps report with. From the same
    # `ansible` release as kolla-toolbox's collections, unpacked by the image's own script.
    "${venv}/bin/pip" download --disable-pip-version-check --quiet --no-deps --only-binary :all: \
        --dest "${venv}/downloads" "ansible==${collections_release}"
    "${venv}/bin/python3" "${here}/images/kolla-toolbox/install_collections.py" \
        "${venv}/downloads/ansible-${collections_release}-py3-none-any.whl" \
        "${venv}/collections" ansible.posix >/dev/null
    rm -rf "${venv}/downloads"
    printf '%s' "${installed}" > "${venv}/.installed"
fi
flock -u 9

share=${venv}/share/kolla-ansible
[[ -d ${share}/ansible/roles ]] || { echo "no roles in ${share}/ansible" >&2; exit 1; }

mkdir -p "${out}"
out=$(cd "${out}" && pwd)
# The playbook runs from a directory beside kolla-ansible's group_vars, roles and plugins, as
# kolla-ansible's own playbooks do.
play=${out}/playbook
rm -rf "${play}" "${out}/config"
mkdir -p "${play}" "${out}/config" "${out}/tmp"
for entry in group_vars roles filter_plugins action_plugins library module_utils gather-facts.yml; do
    ln -s "${share}/ansible/${entry}" "${play}/${entry}"
done
cp "${here}/tests/kolla-ansible/render.yml" "${play}/render.yml"

# kolla_copy_ca_into_containers (globals.yml) copies <kolla_certificates_dir>/ca/* into every
# service's config: a throwaway CA made here for the run, never kept in the repository.
mkdir -p "${out}/certificates/ca"
if [[ ! -s ${out}/certificates/ca/kolla-build-test-ca.crt ]]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=kolla-build test CA" \
        -keyout "${out}/certificates/ca-key.pem" \
        -out "${out}/certificates/ca/kolla-build-test-ca.crt" 2>/dev/null
fi

cp "${share}/etc_examples/kolla/passwords.yml" "${out}/passwords.yml"
"${venv}/bin/kolla-genpwd" --passwords "${out}/passwords.yml" >/dev/null

# The environment and arguments every playbook of this node runs with:
# scripts/kolla-ansible-toolbox.sh reads them back from ansible-playbook.env and
# ansible-playbook.args (NUL-separated) for its kolla_toolbox steps.
# ansible refuses to run without a UTF-8 locale; C.UTF-8 is always there.
environment=(
    LC_ALL=C.UTF-8 LANG=C.UTF-8
    "ANSIBLE_LOCAL_TEMP=${out}/tmp" "ANSIBLE_REMOTE_TEMP=${out}/tmp" "ANSIBLE_HOME=${out}/tmp"
    ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 ANSIBLE_RETRY_FILES_ENABLED=0
    "ANSIBLE_COLLECTIONS_PATH=${venv}/collections"
)
export "${environment[@]}"
printf '%s\0' "${environment[@]}" >"${out}/ansible-playbook.env"
args=(
    -i "${share}/ansible/inventory/all-in-one"
    -e "@${here}/tests/kolla-ansible/globals.yml"
    -e "@${out}/passwords.yml"
    -e "node_config_directory=${out}/config"
    -e "node_custom_config=${here}/tests/kolla-ansible/config"
    -e "kolla_certificates_dir=${out}/certificates"
    -e "ansible_python_interpreter=${venv}/bin/python3"
    -e "config_owner_user=$(id -un)" -e "config_owner_group=$(id -gn)"
    -e "ansible_become=false"
    "$@"
)
printf '%s\0' "${args[@]}" >"${out}/ansible-playbook.args"
"${venv}/bin/ansible-playbook" "${args[@]}" "${play}/render.yml" >"${out}/render.log" 2>&1 || {
    tail -n 60 "${out}/render.log" >&2
    exit 1
}
echo "${out}/config"
