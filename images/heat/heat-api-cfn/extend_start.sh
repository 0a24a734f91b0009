#!/bin/bash

# /usr/local/bin/kolla_heat_extend_start: sourced by kolla_extend_start (heat-base), as root,
# before Apache starts (heat-api's image runs the bootstrap; this one only serves).

# shellcheck source=/dev/null
. /usr/local/bin/kolla_httpd_setup
