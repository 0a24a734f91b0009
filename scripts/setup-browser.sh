#!/usr/bin/env bash
# What the HTML report's browser test (tests/timeline.rs) needs on a bare Debian machine (run as
# root): Debian's headless Chromium and its WebDriver, and Selenium's Python bindings from PyPI in
# a virtualenv under target/ (the test runs that venv's python). Idempotent and quiet on success.
#
# Environment (all optional):
#   KOLLA_BROWSER_VENV   the virtualenv (default target/browser-venv, beside the build output)
#   KOLLA_SELENIUM       the selenium requirement (default selenium>=4.20,<5)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${KOLLA_BROWSER_VENV:-target/browser-venv}"
SELENIUM="${KOLLA_SELENIUM:-selenium>=4.20,<5}"
APT_LOG=/var/log/kolla-build-apt.log
WAIT=0

SCRIPT=setup-browser
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

need_root "apt-get needs it"

# chromium-driver brings chromedriver matching Debian's chromium (Selenium's own download of a
# driver would need the network beyond the package registries). python3-venv makes the venv.
install_missing "$APT_LOG" chromium chromium-driver python3-venv

# Debian's python, not a pyenv shim: python3-venv is installed for it.
if [[ ! -x "$VENV/bin/python" ]]; then
    /usr/bin/python3 -m venv "$VENV" >>"$APT_LOG" 2>&1 || fail venv "cannot create $VENV" "$APT_LOG"
fi
if "$VENV/bin/python" -c 'import selenium' 2>/dev/null; then
    status selenium "present in $VENV"
else
    "$VENV/bin/pip" install -q "$SELENIUM" >>"$APT_LOG" 2>&1 \
        || fail selenium "pip install $SELENIUM failed" "$APT_LOG"
    status selenium "installed in $VENV"
fi
