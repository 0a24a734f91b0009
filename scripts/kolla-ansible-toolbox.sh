#!/usr/bin/env bash
# Runs, for tests/kolla_ansible.rs, the tasks kolla-ansible's roles run through the kolla_toolbox
# container: taken from the installed kolla-ansible's task files (tests/kolla-ansible/
# toolbox_play.py picks the kolla_toolbox tasks of each STEP, `role:tasks_file[:task name]`), run
# by ansible-playbook with kolla-ansible's own `kolla_toolbox` module, on the node that
# scripts/kolla-ansible-render.sh rendered into OUT_DIR (same inventory, globals, passwords and
# environment). The module finds the running container named kolla_toolbox through
# /var/run/docker.sock and `docker exec`s `ansible localhost -m MODULE -a ARGS` in it.
#
#   scripts/kolla-ansible-toolbox.sh OUT_DIR STEP...
#
# Prints ansible-playbook's JSON report (the json stdout callback) on stdout; exits non-zero
# when a task failed, the report still printed.
set -o errexit -o nounset -o pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: $0 OUT_DIR STEP...}
shift
(($# > 0)) || { echo "usage: $0 OUT_DIR STEP..." >&2; exit 2; }
venv=${KOLLA_ANSIBLE_VENV:-${here}/target/kolla-ansible}
[[ -s ${out}/ansible-playbook.args && -d ${out}/playbook ]] || {
    echo "${out}: not rendered; run scripts/kolla-ansible-render.sh ${out} first" >&2
    exit 1
}
mapfile -d '' environment <"${out}/ansible-playbook.env"
mapfile -d '' args <"${out}/ansible-playbook.args"
export "${environment[@]}"

playbook=$("${venv}/bin/python3" "${here}/tests/kolla-ansible/toolbox_play.py" \
    "${venv}/share/kolla-ansible/ansible" "${out}/playbook" "$@")
ANSIBLE_STDOUT_CALLBACK=json ANSIBLE_LOAD_CALLBACK_PLUGINS=1 \
    exec "${venv}/bin/ansible-playbook" "${args[@]}" "${playbook}"
