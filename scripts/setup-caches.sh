#!/usr/bin/env bash
# Bring up the shared package caches that `kolla-build --package-cache` points builds at, on
# loopback only (builds run RUN steps with network mode host, so 127.0.0.1 is the machine's):
#   apt   apt-cacher-ng (Debian's package) on 127.0.0.1:3142, an HTTP proxy for the Debian mirror;
#   pypi  devpi-server (from PyPI, in a virtualenv) on 127.0.0.1:3141, a caching mirror of PyPI
#         whose simple index is http://127.0.0.1:3141/root/pypi/+simple/.
# Idempotent: whatever already answers is left alone. Run as root (apt-get). Quiet on success:
# one status line per step; on failure, says what failed and prints the tail of the log.
# Then: kolla-build --package-cache apt=http://127.0.0.1:3142 \
#                   --package-cache pypi=http://127.0.0.1:3141/root/pypi/+simple/ ...
#
# Environment (all optional):
#   KOLLA_CACHE_DIR       state: apt-cacher-ng's cache, devpi's server dir and venv
#                         (default /var/lib/kolla-build/caches)
#   KOLLA_APT_CACHE_PORT  apt-cacher-ng's port (default 3142)
#   KOLLA_PYPI_CACHE_PORT devpi-server's port (default 3141)
#   KOLLA_CACHE_LOG_DIR   logs (default /var/log/kolla-build-caches): apt-cacher-ng writes
#                         apt-cacher.log (its transfer log: `time|I|bytes|...` fetched from the
#                         mirror, `time|O|bytes|...` served), devpi writes devpi.log
#   KOLLA_CA_BUNDLE       the CA bundle devpi trusts to reach PyPI (default
#                         /etc/ssl/certs/ca-certificates.crt: PyPI is reached through a
#                         TLS-intercepting proxy whose CA is in the host bundle)
#   KOLLA_DEVPI_VENV      devpi-server's virtualenv (default $KOLLA_CACHE_DIR/devpi-venv)
#   KOLLA_CACHE_WAIT      seconds to wait for each server to answer (default 60)
set -euo pipefail

CACHE_DIR="${KOLLA_CACHE_DIR:-/var/lib/kolla-build/caches}"
APT_PORT="${KOLLA_APT_CACHE_PORT:-3142}"
PYPI_PORT="${KOLLA_PYPI_CACHE_PORT:-3141}"
LOG_DIR="${KOLLA_CACHE_LOG_DIR:-/var/log/kolla-build-caches}"
CA_BUNDLE="${KOLLA_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
WAIT="${KOLLA_CACHE_WAIT:-60}"
SETUP_LOG="$LOG_DIR/setup.log"
ACNG_PIDFILE="/var/run/kolla-build-apt-cacher-ng-$APT_PORT.pid"
DEVPI_PIDFILE="/var/run/kolla-build-devpi-$PYPI_PORT.pid"
VENV="${KOLLA_DEVPI_VENV:-$CACHE_DIR/devpi-venv}"
DEVPI_VERSION="6.20.3"

SCRIPT=setup-caches
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_root "apt-get needs it"
mkdir -p "$CACHE_DIR" "$LOG_DIR"

# up URL: the server at URL answers.
up() { curl -fsS --max-time 3 -o /dev/null "$1" 2>/dev/null; }

# ---------------------------------------------------------------------------------------------
# 1. Packages: apt-cacher-ng, and the venv module for devpi's virtualenv.
# ---------------------------------------------------------------------------------------------
# The package's own service is not wanted (no systemd here; we start it on loopback below).
echo "apt-cacher-ng apt-cacher-ng/tunnelenable boolean false" | debconf-set-selections
install_missing "$SETUP_LOG" apt-cacher-ng python3-venv curl

# ---------------------------------------------------------------------------------------------
# 2. apt-cacher-ng on 127.0.0.1:APT_PORT, with its cache and logs under our own folders (the
# packaged configuration listens on every address). Options are given on the command line, which
# overrides /etc/apt-cacher-ng/acng.conf.
# ---------------------------------------------------------------------------------------------
ACNG_URL="http://127.0.0.1:$APT_PORT/acng-report.html"
if up "$ACNG_URL"; then
    status apt-cache "already running on 127.0.0.1:$APT_PORT"
else
    mkdir -p "$CACHE_DIR/apt-cacher-ng" "$CACHE_DIR/acng-conf" "$LOG_DIR"
    # Our own configuration folder: no remapping to the package's default backends (its Debian
    # backend is a mirror this machine may not reach): each file is fetched from the host the
    # build asked for (deb.debian.org) and cached under that host's name.
    cat >"$CACHE_DIR/acng-conf/acng.conf" <<CONF
# Written by kolla-build scripts/setup-caches.sh; rewritten on each start.
CacheDir: $CACHE_DIR/apt-cacher-ng
LogDir: $LOG_DIR
SupportDir: /usr/lib/apt-cacher-ng
BindAddress: 127.0.0.1
Port: $APT_PORT
PidFile: $ACNG_PIDFILE.acng
SocketPath: $CACHE_DIR/apt-cacher-ng.socket
ReportPage: acng-report.html
VerboseLog: 1
ExThreshold: 365
ForeGround: 1
CONF
    chown -R apt-cacher-ng:apt-cacher-ng "$CACHE_DIR/apt-cacher-ng" "$LOG_DIR" 2>/dev/null || true
    echo "=== $(date -u +%FT%TZ) setup-caches: apt-cacher-ng on 127.0.0.1:$APT_PORT" >>"$LOG_DIR/apt-cacher-ng.out"
    # In the foreground under setsid: the server outlives this script, holds none of its fds,
    # and its pid is the one we record. VerboseLog keeps the transfer log (apt-cacher.log).
    setsid /usr/sbin/apt-cacher-ng -c "$CACHE_DIR/acng-conf" \
        </dev/null >>"$LOG_DIR/apt-cacher-ng.out" 2>&1 &
    echo $! >"$ACNG_PIDFILE"
    wait_up apt-cache "$ACNG_URL" "$LOG_DIR/apt-cacher-ng.out" 'up "$ACNG_URL"' \
        'pidfile_is "$ACNG_PIDFILE" apt-cacher-ng'
    status apt-cache "started on 127.0.0.1:$APT_PORT (cache $CACHE_DIR/apt-cacher-ng, log $LOG_DIR/apt-cacher.log)"
fi

# ---------------------------------------------------------------------------------------------
# 3. devpi-server on 127.0.0.1:PYPI_PORT: a virtualenv with a pinned devpi-server (pip reaches
# PyPI through the host's CA bundle), a server dir initialised once, and the server itself,
# which reaches PyPI with the same bundle.
# ---------------------------------------------------------------------------------------------
DEVPI_URL="http://127.0.0.1:$PYPI_PORT/+api"
if up "$DEVPI_URL"; then
    status pypi-cache "already running on 127.0.0.1:$PYPI_PORT"
else
    export REQUESTS_CA_BUNDLE="$CA_BUNDLE" SSL_CERT_FILE="$CA_BUNDLE" PIP_CERT="$CA_BUNDLE"
    if ! "$VENV/bin/devpi-server" --version 2>/dev/null | grep -qx "$DEVPI_VERSION"; then
        /usr/bin/python3 -m venv "$VENV" >>"$SETUP_LOG" 2>&1 || fail pypi-cache "python3 -m venv $VENV failed" "$SETUP_LOG"
        "$VENV/bin/pip" install -q --disable-pip-version-check "devpi-server==$DEVPI_VERSION" \
            >>"$SETUP_LOG" 2>&1 || fail pypi-cache "pip install devpi-server==$DEVPI_VERSION failed" "$SETUP_LOG"
        status pypi-cache "installed devpi-server $DEVPI_VERSION in $VENV"
    fi
    SERVERDIR="$CACHE_DIR/devpi"
    if [[ ! -f "$SERVERDIR/.nodeinfo" ]]; then
        "$VENV/bin/devpi-init" --serverdir "$SERVERDIR" >>"$SETUP_LOG" 2>&1 \
            || fail pypi-cache "devpi-init --serverdir $SERVERDIR failed" "$SETUP_LOG"
    fi
    echo "=== $(date -u +%FT%TZ) setup-caches: devpi-server on 127.0.0.1:$PYPI_PORT" >>"$LOG_DIR/devpi.log"
    setsid "$VENV/bin/devpi-server" --serverdir "$SERVERDIR" --host 127.0.0.1 --port "$PYPI_PORT" \
        --request-timeout 60 --mirror-cache-expiry 86400 \
        </dev/null >>"$LOG_DIR/devpi.log" 2>&1 &
    echo $! >"$DEVPI_PIDFILE"
    wait_up pypi-cache "$DEVPI_URL" "$LOG_DIR/devpi.log" 'up "$DEVPI_URL"' \
        'kill -0 "$(cat "$DEVPI_PIDFILE")" 2>/dev/null'
    status pypi-cache "started on 127.0.0.1:$PYPI_PORT (server dir $SERVERDIR, log $LOG_DIR/devpi.log)"
fi
