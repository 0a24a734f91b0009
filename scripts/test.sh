#!/usr/bin/env bash
# The project's test command (README "Tests"; CI runs exactly this): formatting, lints, the
# engines (dockerd and podman, installed and started if missing), then the unit, CLI and
# real-engine tests. The package-cache build test is `#[ignore]`d (see tests/caches.rs); run it
# after `scripts/setup-caches.sh` with `cargo test --test integration -- --ignored caches::`.
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
echo "==> cargo test"
cargo test --locked
