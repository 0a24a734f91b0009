#!/bin/bash
# kolla_keystone_bootstrap USER PASSWORD PROJECT ROLE [ADMIN_URL] INTERNAL_URL PUBLIC_URL REGION
#
# kolla-ansible runs this in the keystone container (`docker exec keystone kolla_keystone_bootstrap
# ...`) to create the admin user, project and role and keystone's own endpoints, idempotently,
# and parses stdout as JSON: {"failed": false, "changed": true|false}, or on failure
# {"failed": true, "changed": true, "msg": "..."} with exit status 1. With 8 arguments the 5th
# (an admin URL, no longer used) is ignored. An empty PASSWORD is read from OS_BOOTSTRAP_PASSWORD.
set -o nounset
set -o pipefail

json_string() {
    python3 -c 'import json, sys; print(json.dumps(sys.stdin.read()))'
}

fail() {
    printf '{"failed": true, "changed": true, "msg": %s}\n' "$(printf '%s' "$1" | json_string)"
    exit 1
}

if [[ $# -ne 7 && $# -ne 8 ]]; then
    fail "usage: kolla_keystone_bootstrap USER PASSWORD PROJECT ROLE [ADMIN_URL] INTERNAL_URL PUBLIC_URL REGION (got $# arguments)"
fi
USERNAME=$1
PASSWORD=${2:-${OS_BOOTSTRAP_PASSWORD:-}}
PROJECT=$3
ROLE=$4
shift 4
if [[ $# -eq 4 ]]; then
    shift
fi
INTERNAL_URL=$1
PUBLIC_URL=$2
REGION=$3

if ! out=$(keystone-manage bootstrap \
    --bootstrap-username "${USERNAME}" --bootstrap-password "${PASSWORD}" \
    --bootstrap-project-name "${PROJECT}" --bootstrap-role-name "${ROLE}" \
    --bootstrap-internal-url "${INTERNAL_URL}" --bootstrap-public-url "${PUBLIC_URL}" \
    --bootstrap-service-name keystone --bootstrap-region-id "${REGION}" 2>&1); then
    fail "${out}"
fi

# keystone-manage bootstrap logs one "already exists"/"skipping" line per thing it did not have
# to create: when all nine are there, nothing changed.
skipped=$(printf '%s\n' "${out}" | grep -c -E \
    -e 'Domain default already exists, skipping creation\.' \
    -e "Project ${PROJECT} already exists, skipping creation\." \
    -e "User ${USERNAME} already exists, skipping creation\." \
    -e "Role ${ROLE} exists, skipping creation\." \
    -e "User ${USERNAME} already has ${ROLE} on ${PROJECT}\." \
    -e "Region ${REGION} exists, skipping creation\." \
    -e 'Skipping internal endpoint as already created' \
    -e 'Skipping public endpoint as already created')
if [[ ${skipped} -ge 9 ]]; then
    changed=false
else
    changed=true
fi
printf '{"failed": false, "changed": %s}\n' "${changed}"
