#!/usr/bin/env bash
# The project's test command (README "Tests"; CI runs exactly this): formatting, lints, then the
# unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings
echo "==> cargo test"
cargo test --locked
