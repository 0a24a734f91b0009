#!/usr/bin/env bash
# The project's test command (README "Tests"; CI runs exactly this): formatting, lints, the
# engines (dockerd and podman) and the package caches (installed and started if missing), then
# the unit, CLI and real-engine tests.
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
echo "==> package caches (scripts/setup-caches.sh)"
bash scripts/setup-caches.sh
echo "==> cargo test"
cargo test --locked
