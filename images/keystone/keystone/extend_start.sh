#!/bin/bash

# /usr/local/bin/kolla_keystone_extend_start: sourced by kolla_extend_start (keystone-base).
# The deployment sets KOLLA_BOOTSTRAP in a one-off container that creates the schema, and
# KOLLA_UPGRADE / KOLLA_FINISH_UPGRADE around a rolling upgrade; each exits once done.

if [[ -v KOLLA_BOOTSTRAP ]]; then
    keystone-manage db_sync
    exit $?
fi
if [[ -v KOLLA_UPGRADE ]]; then
    keystone-manage db_sync --expand
    exit $?
fi
if [[ -v KOLLA_FINISH_UPGRADE ]]; then
    keystone-manage db_sync --contract
    exit $?
fi

# Apache will not start over the pid file a previous run of the container left behind.
rm -f /run/httpd/httpd.pid /run/apache2/apache2.pid
