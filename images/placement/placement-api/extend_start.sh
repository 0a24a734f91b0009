#!/bin/bash

# /usr/local/bin/kolla_placement_extend_start: sourced by kolla_extend_start (placement-base).
# KOLLA_BOOTSTRAP (and KOLLA_UPGRADE): bring the schema to the version of this image, then exit.

if [[ -v KOLLA_BOOTSTRAP || -v KOLLA_UPGRADE ]]; then
    placement-manage db sync
    exit $?
fi

# Apache will not start over the pid file a previous run of the container left behind.
rm -f /run/httpd/httpd.pid /run/apache2/apache2.pid
