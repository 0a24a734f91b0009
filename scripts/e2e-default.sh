#!/bin/bash
# Builds the whole `default` profile for debian binary and source with kolla-build, then, for each
# install type, brings up mariadb, memcached, rabbitmq and keystone, then glance-api,
# placement-api and nova-api against that keystone, the way a deploy tool does (config.json and
# config files mounted at /var/lib/kolla/config_files, KOLLA_BOOTSTRAP containers for the
# schemas), and checks that every API answers its version document and token-authenticated
# requests (listing images, resource providers, flavors).
#
# Not part of every CI run: a cold build of the profile takes tens of minutes (docs/RUNTIME.md
# has the measured times). Needs the engine of scripts/setup-engine.sh.
#
#   scripts/e2e-default.sh [binary|source...]     (default: binary source)
#
# Environment: KB (the kolla-build binary; default target/debug/kolla-build), TAG (the
# OpenStack release the images are tagged with, default 2025.1), NAMESPACE
# (default kbdev-e2e), KEEP=1 to leave the containers running for inspection.
# Writes wall times and image sizes to stdout and to $OUT (default /tmp/e2e-default-report.txt).
set -o errexit
set -o nounset
set -o pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
KB=${KB:-${REPO}/target/debug/kolla-build}
NAMESPACE=${NAMESPACE:-kbdev-e2e}
TAG=${TAG:-2025.1}
OUT=${OUT:-/tmp/e2e-default-report.txt}
TYPES=("$@")
[[ ${#TYPES[@]} -gt 0 ]] || TYPES=(binary source)
LABEL=org.kolla-build.test=e2e
PW=e2e-secret
ADMIN_PW=e2e-admin-secret

CA_ARGS=()
for cert in /usr/local/share/ca-certificates/*.crt; do
    [[ -f ${cert} ]] && CA_ARGS+=(--ca-certificate "${cert}")
done

report() { echo "$*" | tee -a "${OUT}"; }
: > "${OUT}"

RUN_PREFIX=""
WORK=""
cleanup() {
    if [[ -n ${RUN_PREFIX} && ${KEEP:-0} != 1 ]]; then
        docker ps -aq --filter "label=${LABEL}" --filter "name=${RUN_PREFIX}-" | xargs -r docker rm -f -v >/dev/null
        docker volume ls -q --filter "name=${RUN_PREFIX}-" | xargs -r docker volume rm -f >/dev/null
        docker network rm "${RUN_PREFIX}" >/dev/null 2>&1 || true
    fi
    [[ -n ${WORK} ]] && rm -rf "${WORK}"
    RUN_PREFIX=""
    WORK=""
}
trap cleanup EXIT

fail() {
    echo "FAILED: $*" >&2
    exit 1
}

# wait_for SECONDS DESCRIPTION COMMAND...: polls every second.
wait_for() {
    local limit=$1 what=$2 deadline
    shift 2
    deadline=$(( $(date +%s) + limit ))
    while [[ $(date +%s) -lt ${deadline} ]]; do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 1
    done
    "$@" || true
    fail "${what}: not done after ${limit}s"
}

# start NAME IMAGE CONFIG_DIR [docker run options...]
start() {
    local name=$1 image=$2 config=$3
    shift 3
    docker run -d --name "${RUN_PREFIX}-${name}" --label "${LABEL}" --network "${RUN_PREFIX}" \
        -v "${config}:/var/lib/kolla/config_files:ro" -e KOLLA_CONFIG_STRATEGY=COPY_ALWAYS \
        "$@" "${image}" >/dev/null
}

# once NAME IMAGE CONFIG_DIR [options...]: a KOLLA_BOOTSTRAP container that must exit 0.
once() {
    job "$@" -e KOLLA_BOOTSTRAP=
}

# job NAME IMAGE CONFIG_DIR [options...]: a one-off container that must exit 0.
job() {
    local name=$1
    start "$@"
    local code
    for _ in $(seq 300); do
        if [[ $(docker inspect -f '{{.State.Status}}' "${RUN_PREFIX}-${name}") == exited ]]; then
            code=$(docker inspect -f '{{.State.ExitCode}}' "${RUN_PREFIX}-${name}")
            if [[ ${code} != 0 ]]; then
                docker logs --tail 40 "${RUN_PREFIX}-${name}" >&2
                fail "${name} exited ${code}"
            fi
            return 0
        fi
        sleep 1
    done
    fail "${name} did not finish within 300s"
}

running() {
    [[ $(docker inspect -f '{{.State.Status}}' "${RUN_PREFIX}-$1") == running ]] ||
        { docker logs --tail 40 "${RUN_PREFIX}-$1" >&2; fail "$1 stopped"; }
}

healthy() { # healthy NAME CHECK...
    local name=$1
    shift
    wait_for 120 "${name}: $*" bash -c "$(declare -f running fail); RUN_PREFIX=${RUN_PREFIX}; running ${name} && docker exec ${RUN_PREFIX}-${name} $*"
}

# config DIR JSON [file text]...: writes config.json and files into ${WORK}/DIR.
config() {
    local dir=${WORK}/$1
    mkdir -p "${dir}"
    printf '%s\n' "$2" > "${dir}/config.json"
    shift 2
    while [[ $# -gt 1 ]]; do
        printf '%s' "$2" > "${dir}/$1"
        shift 2
    done
    echo "${dir}"
}

sql() { docker exec "${RUN_PREFIX}-mariadb" mariadb -h "${RUN_PREFIX}-mariadb" -uroot "-p${PW}" -e "$1"; }

database() { # database USER DB...: the databases, and a user with password ${PW} for them
    local user=$1 stmt=""
    shift
    for db in "$@"; do
        stmt+="CREATE DATABASE ${db}; GRANT ALL PRIVILEGES ON ${db}.* TO '${user}'@'%';"
    done
    sql "CREATE USER '${user}'@'%' IDENTIFIED BY '${PW}'; ${stmt}"
}

# status URL [curl options...]: the HTTP status, from inside the keystone container.
status() {
    local url=$1
    shift
    docker exec "${RUN_PREFIX}-keystone" curl -s -o /dev/null -w '%{http_code}' --max-time 30 "$@" "${url}"
}

authtoken() {
    cat <<EOF
[keystone_authtoken]
www_authenticate_uri = http://${RUN_PREFIX}-keystone:5000
auth_url = http://${RUN_PREFIX}-keystone:5000
auth_type = password
project_domain_id = default
user_domain_id = default
project_name = admin
username = admin
password = ${ADMIN_PW}
memcached_servers = ${RUN_PREFIX}-memcached:11211
EOF
}

# wsgi_conf NAME PORT SCRIPT USER
wsgi_conf() {
    local home=""
    [[ ${TYPE} == source ]] && home=" python-home=/var/lib/kolla/venv"
    cat <<EOF
Listen $2
ServerName $1
ErrorLog /proc/self/fd/2
<VirtualHost *:$2>
    WSGIDaemonProcess $1 processes=2 threads=1 user=$4 group=$4 display-name=$1${home}
    WSGIProcessGroup $1
    WSGIScriptAlias / $3
    WSGIApplicationGroup %{GLOBAL}
    WSGIPassAuthorization On
    ErrorLog /proc/self/fd/2
    <Directory $(dirname "$3")>
        Require all granted
    </Directory>
</VirtualHost>
EOF
}

bin() { if [[ ${TYPE} == source ]]; then echo "/var/lib/kolla/venv/bin/$1"; else echo "/usr/bin/$1"; fi; }

for TYPE in "${TYPES[@]}"; do
    report "== debian ${TYPE}"
    t0=$(date +%s)
    "${KB}" --images-dir "${REPO}" -b debian -t "${TYPE}" -n "${NAMESPACE}" --bootstrap-base \
        "${CA_ARGS[@]}" --format none --logs-dir "/tmp/e2e-default-logs-${TYPE}" \
        --summary-json-file "/tmp/e2e-default-${TYPE}.json" -p default ||
        report "build: some images failed (see /tmp/e2e-default-${TYPE}.json)"
    report "build wall time: $(( $(date +%s) - t0 )) s"
    report "image sizes:"
    docker image ls --format '{{.Repository}} {{.Size}}' "${NAMESPACE}/debian-${TYPE}-*" | sort | sed 's/^/  /' | tee -a "${OUT}"
    img() { echo "${NAMESPACE}/debian-${TYPE}-$1:${TAG}"; }

    t1=$(date +%s)
    RUN_PREFIX="kbe2e-default-${TYPE}-$$"
    WORK=$(mktemp -d)
    docker network create --label "${LABEL}" "${RUN_PREFIX}" >/dev/null
    DB=${RUN_PREFIX}-mariadb MC=${RUN_PREFIX}-memcached MQ=${RUN_PREFIX}-rabbitmq KS=${RUN_PREFIX}-keystone

    # mariadb and memcached
    c=$(config mariadb '{"command": "/usr/sbin/mariadbd", "config_files": [{"source": "/var/lib/kolla/config_files/my.cnf", "dest": "/etc/mysql/my.cnf", "owner": "mysql", "perm": "0600"}]}' \
        my.cnf $'[mysqld]\ndatadir = /var/lib/mysql\nbind-address = 0.0.0.0\nsocket = /run/mysqld/mysqld.sock\nskip-name-resolve\nmax_connections = 1000\n[client]\nsocket = /run/mysqld/mysqld.sock\n')
    docker volume create --label "${LABEL}" "${RUN_PREFIX}-mysql" >/dev/null
    once mariadb-bootstrap "$(img mariadb-server)" "${c}" -v "${RUN_PREFIX}-mysql:/var/lib/mysql" -e "DB_ROOT_PASSWORD=${PW}"
    start mariadb "$(img mariadb-server)" "${c}" -v "${RUN_PREFIX}-mysql:/var/lib/mysql"
    c=$(config memcached '{"command": "memcached -l 0.0.0.0 -p 11211 -m 64", "config_files": []}')
    start memcached "$(img memcached)" "${c}"
    healthy mariadb healthcheck_listen mariadbd 3306
    healthy memcached healthcheck_listen memcached 11211

    # rabbitmq
    c=$(config rabbitmq '{"command": "/usr/sbin/rabbitmq-server", "config_files": [{"source": "/var/lib/kolla/config_files/rabbitmq.conf", "dest": "/etc/rabbitmq/rabbitmq.conf", "owner": "rabbitmq", "perm": "0600"}]}' \
        rabbitmq.conf $'listeners.tcp.default = 5672\ndefault_user = openstack\ndefault_pass = '"${PW}"$'\nloopback_users = none\n')
    start rabbitmq "$(img rabbitmq)" "${c}"
    healthy rabbitmq healthcheck_listen beam.smp 5672

    # keystone
    database keystone keystone
    c=$(config keystone '{"command": "/usr/sbin/apache2 -DFOREGROUND", "config_files": [
        {"source": "/var/lib/kolla/config_files/keystone.conf", "dest": "/etc/keystone/keystone.conf", "owner": "keystone", "perm": "0600"},
        {"source": "/var/lib/kolla/config_files/wsgi.conf", "dest": "/etc/apache2/conf-enabled/wsgi-keystone.conf", "owner": "keystone", "perm": "0600"}],
        "permissions": [{"path": "/etc/keystone/fernet-keys", "owner": "keystone:keystone", "perm": "0770", "recurse": true}]}' \
        keystone.conf "$(printf '[database]\nconnection = mysql+pymysql://keystone:%s@%s/keystone\n[cache]\nenabled = true\nbackend = oslo_cache.memcache_pool\nmemcache_servers = %s:11211\n[token]\nprovider = fernet\n' "${PW}" "${DB}" "${MC}")" \
        wsgi.conf "$(wsgi_conf keystone-public 5000 "$(bin keystone-wsgi-public)" keystone)")
    docker volume create --label "${LABEL}" "${RUN_PREFIX}-fernet" >/dev/null
    once keystone-bootstrap "$(img keystone)" "${c}" -v "${RUN_PREFIX}-fernet:/etc/keystone/fernet-keys"
    start keystone "$(img keystone)" "${c}" -v "${RUN_PREFIX}-fernet:/etc/keystone/fernet-keys"
    healthy keystone healthcheck_listen apache2 5000
    docker exec -u keystone "${KS}" keystone-manage fernet_setup --keystone-user keystone --keystone-group keystone
    docker exec -u keystone "${KS}" keystone-manage bootstrap --bootstrap-password "${ADMIN_PW}" \
        --bootstrap-public-url "http://${KS}:5000/v3" --bootstrap-internal-url "http://${KS}:5000/v3" \
        --bootstrap-admin-url "http://${KS}:5000/v3" --bootstrap-region-id RegionOne
    healthy keystone healthcheck_curl "http://${KS}:5000/v3"
    AUTH='{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"id": "default"}, "password": "'"${ADMIN_PW}"'"}}}, "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}'
    TOKEN=$(docker exec "${KS}" curl -s -D - -o /dev/null -H 'Content-Type: application/json' -d "${AUTH}" "http://${KS}:5000/v3/auth/tokens" |
        sed -n 's/^[Xx]-[Ss]ubject-[Tt]oken: *//p' | tr -d '\r')
    [[ -n ${TOKEN} ]] || fail "keystone issued no token"
    report "keystone: token issued"

    # glance-api
    database glance glance
    c=$(config glance '{"command": "glance-api", "config_files": [{"source": "/var/lib/kolla/config_files/glance-api.conf", "dest": "/etc/glance/glance-api.conf", "owner": "glance", "perm": "0600"}],
        "directories": [{"path": "/var/lib/glance/images", "owner": "glance", "perm": "0750"}]}' \
        glance-api.conf "$(printf '[DEFAULT]\nbind_host = 0.0.0.0\nbind_port = 9292\n[database]\nconnection = mysql+pymysql://glance:%s@%s/glance\n[glance_store]\nstores = file\ndefault_store = file\nfilesystem_store_datadir = /var/lib/glance/images/\n[paste_deploy]\nflavor = keystone\n%s\n' "${PW}" "${DB}" "$(authtoken)")")
    once glance-bootstrap "$(img glance-api)" "${c}"
    start glance-api "$(img glance-api)" "${c}"

    # placement-api
    database placement placement
    c=$(config placement '{"command": "/usr/sbin/apache2 -DFOREGROUND", "config_files": [
        {"source": "/var/lib/kolla/config_files/placement.conf", "dest": "/etc/placement/placement.conf", "owner": "placement", "perm": "0600"},
        {"source": "/var/lib/kolla/config_files/wsgi.conf", "dest": "/etc/apache2/conf-enabled/wsgi-placement.conf", "owner": "placement", "perm": "0600"}]}' \
        placement.conf "$(printf '[placement_database]\nconnection = mysql+pymysql://placement:%s@%s/placement\n[api]\nauth_strategy = keystone\n%s\n' "${PW}" "${DB}" "$(authtoken)")" \
        wsgi.conf "$(wsgi_conf placement-api 8780 "$(bin placement-api)" placement)")
    once placement-bootstrap "$(img placement-api)" "${c}"
    start placement-api "$(img placement-api)" "${c}"

    # nova-api (the compute API only: no cells, conductor or compute)
    database nova nova_api nova nova_cell0
    c=$(config nova '{"command": "nova-api", "config_files": [{"source": "/var/lib/kolla/config_files/nova.conf", "dest": "/etc/nova/nova.conf", "owner": "nova", "perm": "0600"}]}' \
        nova.conf "$(printf '[DEFAULT]\nenabled_apis = osapi_compute\nosapi_compute_listen = 0.0.0.0\nosapi_compute_listen_port = 8774\ntransport_url = rabbit://openstack:%s@%s:5672//\n[api]\nauth_strategy = keystone\n[api_database]\nconnection = mysql+pymysql://nova:%s@%s/nova_api\n[database]\nconnection = mysql+pymysql://nova:%s@%s/nova\n[oslo_concurrency]\nlock_path = /var/lib/nova/tmp\n%s\n' "${PW}" "${MQ}" "${PW}" "${DB}" "${PW}" "${DB}" "$(authtoken)")")
    once nova-bootstrap "$(img nova-api)" "${c}"
    # The main database (kolla-ansible syncs it from its conductor's bootstrap).
    c2=$(config nova-db-sync '{"command": "nova-manage db sync", "config_files": [{"source": "/var/lib/kolla/config_files/nova.conf", "dest": "/etc/nova/nova.conf", "owner": "nova", "perm": "0600"}]}' \
        nova.conf "$(cat "${c}/nova.conf")")
    job nova-db-sync "$(img nova-api)" "${c2}"
    start nova-api "$(img nova-api)" "${c}"

    G=http://${RUN_PREFIX}-glance-api:9292 P=http://${RUN_PREFIX}-placement-api:8780 N=http://${RUN_PREFIX}-nova-api:8774
    healthy glance-api healthcheck_curl "${G}"
    healthy placement-api healthcheck_curl "${P}"
    healthy nova-api healthcheck_curl "${N}"
    check() { # check WHAT EXPECTED URL [curl options]
        local what=$1 expected=$2 got
        shift 2
        got=$(status "$@")
        [[ " ${expected} " == *" ${got} "* ]] || fail "${what}: HTTP ${got}, expected ${expected}"
        report "ok: ${what} (HTTP ${got})"
    }
    check "glance version document" "200 300" "${G}/"
    check "glance: list images with a token" 200 "${G}/v2/images" -H "X-Auth-Token: ${TOKEN}"
    check "glance: refuses without a token" 401 "${G}/v2/images"
    check "placement version document" 200 "${P}/"
    check "placement: list resource providers with a token" 200 "${P}/resource_providers" -H "X-Auth-Token: ${TOKEN}"
    check "nova version document" "200 300" "${N}/"
    check "nova: list flavors with a token" 200 "${N}/v2.1/flavors" -H "X-Auth-Token: ${TOKEN}"
    report "services up and checked in $(( $(date +%s) - t1 )) s"
    cleanup
done
report "all checks passed"
