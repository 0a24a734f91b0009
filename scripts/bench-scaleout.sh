#!/bin/sh
# Replays build durations on N = 1, 2, 4, 8, 16 simulated engines with the real pool scheduler
# (simulated clock) and prints makespan against max(critical path, total work / N).
#   scripts/bench-scaleout.sh                         # synthetic 188-image kolla-shaped graph
#   scripts/bench-scaleout.sh --summary summary.json  # durations of a real run
#   scripts/bench-scaleout.sh --pull 60               # a slower registry hand-off
set -eu
cd "$(dirname "$0")/.."
exec cargo run --quiet --release --example scaleout -- "$@"
