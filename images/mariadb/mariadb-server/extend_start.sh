#!/bin/bash

# /usr/local/bin/kolla_extend_start of mariadb-server: sourced by kolla_start as user mysql.
#
# KOLLA_BOOTSTRAP (a one-off container over the data volume): initialises an empty data
# directory, sets the password of root (DB_ROOT_PASSWORD, required) for localhost and for remote
# clients, then exits 0. A data directory that already holds a database is left alone. The
# server is started for this with networking and Galera replication off, whatever the
# deployment's my.cnf says; DB_MAX_TIMEOUT (seconds, 60) bounds the wait for it.
# KOLLA_UPGRADE: mariadb-upgrade against DB_HOST:DB_PORT as root, then exit.
# BOOTSTRAP_ARGS (kolla-ansible: --wsrep-new-cluster on the first node of a new Galera cluster)
# are appended to the command.

MARIADB_LOG_DIR=/var/log/kolla/mariadb
if [[ ! -d ${MARIADB_LOG_DIR} ]]; then
    mkdir -p "${MARIADB_LOG_DIR}"
fi

mariadb_datadir() {
    local dir
    dir=$(my_print_defaults mysqld mariadbd | sed -n 's/^--datadir=//p' | tail -n 1)
    echo "${dir:-/var/lib/mysql}"
}

mariadb_bootstrap() {
    local datadir socket pid install_log error_log answered
    datadir=$(mariadb_datadir)
    if [[ -d ${datadir}/mysql ]]; then
        echo "mariadb bootstrap: ${datadir} already holds a database; nothing to do"
        return 0
    fi
    if [[ -z ${DB_ROOT_PASSWORD:-} ]]; then
        echo "mariadb bootstrap: DB_ROOT_PASSWORD must be set" >&2
        return 1
    fi
    echo "mariadb bootstrap: initialising ${datadir}"
    # Its output is long and routine; it is shown when it fails (a full disk, a bad datadir).
    install_log=$(mktemp /tmp/mariadb-install-db.XXXXXX.log)
    if ! mariadb-install-db --user=mysql --datadir="${datadir}" \
        --auth-root-authentication-method=normal --skip-test-db >"${install_log}" 2>&1; then
        cat "${install_log}"
        # The reason is in the server's error log (a full disk, for one: kolla-ansible's
        # default redo log is 2 GB, allocated here).
        error_log=$(my_print_defaults mysqld mariadbd | sed -n 's/^--log[-_]error=//p' | tail -n 1)
        if [[ -n ${error_log} && -r ${error_log} ]]; then
            tail -n 20 "${error_log}"
        fi
        echo "mariadb bootstrap: mariadb-install-db failed (its output above)" >&2
        return 1
    fi

    socket=$(mktemp -u /tmp/mariadb-bootstrap.XXXXXX.sock)
    mariadbd --datadir="${datadir}" --skip-networking --wsrep-on=OFF --socket="${socket}" &
    pid=$!
    answered=no
    for _ in $(seq "${DB_MAX_TIMEOUT:-60}"); do
        if mariadb-admin --socket="${socket}" --user=root ping >/dev/null 2>&1; then
            answered=yes
            break
        fi
        sleep 1
    done
    if [[ ${answered} != yes ]]; then
        echo "mariadb bootstrap: mariadbd did not answer on ${socket} within ${DB_MAX_TIMEOUT:-60} s" >&2
        kill "${pid}" 2>/dev/null
        wait "${pid}"
        return 1
    fi
    mariadb --socket="${socket}" --user=root <<SQL || { kill "${pid}"; wait "${pid}"; return 1; }
ALTER USER 'root'@'localhost' IDENTIFIED BY '${DB_ROOT_PASSWORD}';
CREATE USER 'root'@'%' IDENTIFIED BY '${DB_ROOT_PASSWORD}';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
    mariadb-admin --socket="${socket}" --user=root --password="${DB_ROOT_PASSWORD}" shutdown || return 1
    wait "${pid}"
    echo "mariadb bootstrap: done"
}

if [[ -v KOLLA_BOOTSTRAP ]]; then
    mariadb_bootstrap 2>&1 | tee -a "${MARIADB_LOG_DIR}/mariadb-bootstrap.log"
    exit "${PIPESTATUS[0]}"
fi

if [[ -v KOLLA_UPGRADE ]]; then
    # mariadb-upgrade takes directories of the data directory for databases.
    rm -rf /var/lib/mysql/.pki
    mariadb-upgrade --host="${DB_HOST:-localhost}" --port="${DB_PORT:-3306}" --user=root \
        --password="${DB_ROOT_PASSWORD:-}" 2>&1 | tee -a "${MARIADB_LOG_DIR}/mariadb-upgrade.log"
    exit "${PIPESTATUS[0]}"
fi

if [[ -n ${BOOTSTRAP_ARGS:-} ]]; then
    ARGS=${BOOTSTRAP_ARGS}
fi
