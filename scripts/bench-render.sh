#!/usr/bin/env bash
# Benchmark (not a test): render the whole tree for all 8 base x install-type variants and print
# the wall time, next to the Python kolla-build rendering its own tree in the same run.
#   scripts/bench-render.sh            # ours, plus the peer if it can be installed
#   RUNS=10 scripts/bench-render.sh    # more repetitions (the best run is reported)
# The peer is installed from PyPI into target/bench-peer (pip install kolla docker).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
cargo build --release --quiet
BIN=target/release/kolla-build
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

now_ms() { date +%s%3N; }

# Ours: all 8 variants, each a separate process writing its full template-only tree.
best=""
for run in $(seq "$RUNS"); do
  start=$(now_ms)
  for base in centos rocky debian ubuntu; do
    for type in binary source; do
      "$BIN" -q --base "$base" -t "$type" --enable-unbuildable --template-only --work-dir "$WORK/$base-$type"
    done
  done
  ms=$(( $(now_ms) - start ))
  if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
done
images=$(find "$WORK/debian-binary/docker" -name Dockerfile | wc -l)
echo "ours: $images images x 8 variants, best of $RUNS: ${best} ms ($(( best / 8 )) ms per variant)"

# The peer: kolla-build --template-only of its own tree, one variant (debian).
if [ ! -x target/bench-peer/bin/kolla-build ]; then
  python3 -m venv target/bench-peer >/dev/null && target/bench-peer/bin/pip install -q kolla docker >/dev/null 2>&1 || true
fi
if [ -x target/bench-peer/bin/kolla-build ]; then
  start=$(now_ms)
  target/bench-peer/bin/kolla-build --template-only --base debian --work-dir "$WORK/peer" >/dev/null 2>&1
  peer=$(( $(now_ms) - start ))
  peer_images=$(find "$WORK/peer/docker" -name Dockerfile | wc -l)
  echo "kolla-build $(target/bench-peer/bin/pip show kolla 2>/dev/null | awk '/^Version/{print $2}'): $peer_images images x 1 variant: ${peer} ms"
  awk -v o="$best" -v oi="$images" -v p="$peer" -v pi="$peer_images" 'BEGIN {
    printf "per image and variant: ours %.3f ms, kolla-build %.3f ms: %.0fx faster\n", o/(oi*8), p/pi, (p/pi)/(o/(oi*8)) }'
else
  echo "peer: kolla-build could not be installed from PyPI; no ratio"
fi
