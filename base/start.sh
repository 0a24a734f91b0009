#!/bin/bash
# kolla_start: the CMD of every image (run under dumb-init, as the image's USER).
#   1. kolla_set_configs (as root through sudo) lays out config.json's files and writes
#      /run_command;
#   2. kolla_copy_cacerts trusts the CA certificates the deployment mounted;
#   3. kolla_install_projects installs /dev-mode projects (kolla-ansible's dev mode), if any;
#   4. kolla_extend_start, the image's own start steps, is *sourced* unless
#      KOLLA_SKIP_EXTEND_START is set: it may export variables, or exit (KOLLA_BOOTSTRAP...);
#   5. the command is exec'd, so that it receives dumb-init's signals directly.
set -o errexit
set -o nounset
set -o pipefail

as_root() {
    if [[ $(id -u) == 0 ]]; then
        "$@"
    else
        sudo -E "$@"
    fi
}

as_root kolla_set_configs
CMD=$(cat /run_command)
ARGS=""

as_root kolla_copy_cacerts
as_root kolla_install_projects

if [[ -z ${KOLLA_SKIP_EXTEND_START+set} ]]; then
    # shellcheck source=/dev/null
    . kolla_extend_start
fi

echo "Running command: '${CMD}${ARGS:+ ${ARGS}}'"
# Word splitting of the command line is wanted here, as in kolla.
# shellcheck disable=SC2086
exec ${CMD} ${ARGS}
