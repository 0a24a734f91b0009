#!/bin/bash

# /usr/local/bin/kolla_httpd_setup: sourced by the kolla_extend_start of an image whose service
# runs in Apache (kolla-ansible's command is `apache2 -DFOREGROUND` or `httpd -DFOREGROUND`),
# as root, right before Apache starts.
# - Debian's and Ubuntu's apache2 take their run-time settings from /etc/apache2/envvars: sourced
#   here so that they reach the exec'd command, with the folders they name made.
# - Apache will not start over the pid file a previous run of the container left behind.

if [[ -f /etc/apache2/envvars ]]; then
    # envvars reads variables that may be unset: kolla_start runs with nounset.
    set +o nounset
    # shellcheck source=/dev/null
    . /etc/apache2/envvars
    set -o nounset
    mkdir -p "${APACHE_RUN_DIR}" "${APACHE_LOCK_DIR}" "${APACHE_LOG_DIR}"
fi
rm -f /run/httpd/httpd.pid /run/apache2/apache2.pid
