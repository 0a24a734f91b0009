#!/usr/bin/env bash
# The project's test command (README "Tests"; CI runs exactly this): formatting, lints, the
# engines (dockerd and podman, installed and started if missing), then the unit, CLI and
# real-engine tests, the package caches' (scripts/setup-caches.sh) included. A clean run took
# 3053 s on 2 cores (2026-12-08, fresh clone of ee5dc0f from a bare state: services stopped,
# engine images, registry storage and package caches emptied, engine packages uninstalled).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings
# Function length (clippy.toml: too-many-lines-threshold = 80) for the code a run runs: a second
# pass over the library and the binary only, so tests may be long. `too_many_lines` is a pedantic
# lint, off unless named; naming it here rather than in `[lints.clippy]` keeps it off for tests.
echo "==> cargo clippy --lib --bins -- -D clippy::too_many_lines"
cargo clippy --lib --bins --locked -- -D warnings -D clippy::too_many_lines
echo "==> engine and registry (scripts/setup-engine.sh)"
bash scripts/setup-engine.sh
# Tests remove their images but keep the parents (`rmi --no-prune`, the layer cache of later
# tests); over many runs on one machine those pile up as dangling images (53 GB here once, and
# builds then failed with "No space left on device"). Those older than a day go.
echo "==> dangling images older than 24 h (docker image prune)"
docker image prune -f --filter until=24h | tail -n 1
free_gb=$(df -P --block-size=1G "$(docker info --format '{{.DockerRootDir}}')" | awk 'NR == 2 {print $4}')
# A clean run's disk use peaked 12.5 GB above where it began (2026-12-03).
if ((free_gb < 15)); then
    echo "warning: ${free_gb} GB free for the engine's images; the engine tests need about 13 GB" \
        "(docker image ls; docker image prune -a removes every unused image)" >&2
fi
echo "==> podman service (scripts/setup-podman.sh)"
bash scripts/setup-podman.sh
echo "==> package caches (scripts/setup-caches.sh)"
bash scripts/setup-caches.sh
echo "==> headless Chromium and Selenium for the report's test (scripts/setup-browser.sh)"
bash scripts/setup-browser.sh
# One creation time for every image of the run (the commit's): images built from the same inputs
# in different tests' namespaces are then the same image, and the engine's layer cache serves
# their children (README, SOURCE_DATE_EPOCH), instead of each test rebuilding every layer.
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH
echo "==> cargo test (SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH})"
cargo test --locked
