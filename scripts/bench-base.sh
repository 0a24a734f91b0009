#!/usr/bin/env bash
# Benchmark (not a test): cold builds (`--no-cache`) of a selection on two base images, in the
# order A B A B, to measure what the base image's own apt/dpkg settings cost. Used to compare a
# base bootstrapped without the settings of Docker Hub's Debian image with one that has them.
# Usage: scripts/bench-base.sh REPO_A REPO_B [SELECTION ARGS...]   (default: -p default)
#   TAG=trixie (both bases' tag), TYPE=binary|source, BIN=path/to/kolla-build, NS=kbbase.
# A base missing from the engine is bootstrapped first (the current code's settings), untimed.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 REPO_A REPO_B [SELECTION ARGS...]" >&2; exit 2; }
A=$1 B=$2; shift 2
SELECTION=("$@")
[ ${#SELECTION[@]} -gt 0 ] || SELECTION=(-p default)
TAG=${TAG:-trixie} TYPE=${TYPE:-binary} NS=${NS:-kbbase}
if [ -z "${BIN:-}" ]; then cargo build --release --quiet; BIN=$PWD/target/release/kolla-build; fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
CA=()
for c in /usr/local/share/ca-certificates/*.crt; do [ -f "$c" ] && CA+=(--ca-certificate "$c"); done
for repo in "$A" "$B"; do
  if ! docker image inspect "$repo:$TAG" >/dev/null 2>&1; then # bootstrap it, untimed
    mkdir -p "$WORK/boot/base" "$WORK/boot/images"
    printf 'FROM {{ base_image }}:{{ base_distro_tag }}\n' > "$WORK/boot/base/Dockerfile.j2"
    (cd "$WORK/boot" && "$BIN" -b debian -n "$NS-boot" --base-image "$repo" --base-tag "$TAG" \
      --bootstrap-base --format none -q '^base$')
  fi
done
run() { # REPO RUN-NAME
  local t0; t0=$(date +%s%3N)
  "$BIN" -b debian -t "$TYPE" -n "$NS" --base-image "$1" --base-tag "$TAG" "${CA[@]}" \
    --format none -q --no-cache --summary-json-file "$WORK/$2.json" "${SELECTION[@]}"
  local ms=$(( $(date +%s%3N) - t0 ))
  python3 - "$WORK/$2.json" "$1" "$2" "$ms" <<'PY'
import json, sys
summary, repo, name, ms = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
built = json.load(open(summary))["built"]
print(f"{name:3} {repo:30} {ms / 1000:7.1f} s wall, {sum(b.get('seconds', 0) for b in built):7.0f} s of image builds, {len(built)} images")
PY
}
run "$A" A1; run "$B" B1; run "$A" A2; run "$B" B2
