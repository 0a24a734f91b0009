#!/bin/bash

# /usr/local/bin/kolla_extend_start of rabbitmq: sourced by kolla_start as user rabbitmq.
# KOLLA_BOOTSTRAP (a one-off container over the data volume): writes the Erlang cookie the
# cluster shares, RABBITMQ_CLUSTER_COOKIE, to /var/lib/rabbitmq/.erlang.cookie (0400), then exits.
# Otherwise: makes the log directory (RABBITMQ_LOG_DIR, /var/log/kolla/rabbitmq).

if [[ -v KOLLA_BOOTSTRAP ]]; then
    if [[ -z ${RABBITMQ_CLUSTER_COOKIE:-} ]]; then
        echo "rabbitmq bootstrap: RABBITMQ_CLUSTER_COOKIE must be set" >&2
        exit 1
    fi
    # A cookie left by an earlier bootstrap is read-only: replace it rather than write into it.
    rm -f /var/lib/rabbitmq/.erlang.cookie
    printf '%s' "${RABBITMQ_CLUSTER_COOKIE}" > /var/lib/rabbitmq/.erlang.cookie
    chmod 400 /var/lib/rabbitmq/.erlang.cookie
    exit 0
fi

RABBITMQ_LOG_DIR=${RABBITMQ_LOG_DIR:-/var/log/kolla/rabbitmq}
if [[ ! -d ${RABBITMQ_LOG_DIR} ]]; then
    mkdir -p "${RABBITMQ_LOG_DIR}"
fi
if [[ $(stat -c %a "${RABBITMQ_LOG_DIR}") != "755" ]]; then
    chmod 755 "${RABBITMQ_LOG_DIR}"
fi
