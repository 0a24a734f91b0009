#!/usr/bin/env bash
# The project's test command (README "Tests"; CI runs exactly this): formatting, lints, the
# engines (dockerd and podman, installed and started if missing), then the unit, CLI and
# real-engine tests. The package-cache build test is `#[ignore]`d in CI (two --no-cache source
# builds, ~19 minutes on 2 cores); `KOLLA_LONG_TESTS=1 bash scripts/test.sh` starts the caches
# (scripts/setup-caches.sh) and runs it too.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings
echo "==> engine and registry (scripts/setup-engine.sh)"
bash scripts/setup-engine.sh
echo "==> podman service (scripts/setup-podman.sh)"
bash scripts/setup-podman.sh
if [[ "${KOLLA_LONG_TESTS:-0}" == 1 ]]; then
    echo "==> package caches (scripts/setup-caches.sh)"
    bash scripts/setup-caches.sh
    echo "==> cargo test (long tests included)"
    cargo test --locked -- --include-ignored
else
    echo "==> cargo test"
    cargo test --locked
fi
