#!/usr/bin/env bash
# The nightly artifact as operators consume it: build a profile for one base and install type,
# then write <base>-<type>-registry-<tag>.tar.gz (a registry's storage tree) and its .sha256.
#
#   scripts/nightly.sh [-b debian] [-t binary] [-p default] [--tag 2025.1] [-o DIR] [-- kolla-build args]
#
# Serve the result on port 4000 (what an operator runs):
#   mkdir -p /opt/registry && tar xzf debian-binary-registry-2025.1.tar.gz -C /opt/registry
#   docker run -d --name registry -p 4000:5000 -v /opt/registry:/var/lib/registry registry:2
# (or Debian's docker-registry with `rootdirectory: /opt/registry` and `addr: :4000`).
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=debian TYPE=binary PROFILE=default TAG=2025.1 OUT=$PWD/nightly
while [ $# -gt 0 ]; do
  case "$1" in
    -b|--base) BASE=$2; shift 2 ;;
    -t|--type) TYPE=$2; shift 2 ;;
    -p|--profile) PROFILE=$2; shift 2 ;;
    --tag) TAG=$2; shift 2 ;;
    -o|--out) OUT=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "nightly.sh: unknown option $1 (see the header of this script)" >&2; exit 2 ;;
  esac
done
cargo build --release --quiet
mkdir -p "$OUT"
NAME="$BASE-$TYPE-registry-$TAG.tar.gz"
CA=()
for c in /usr/local/share/ca-certificates/*.crt; do [ -f "$c" ] && CA+=(--ca-certificate "$c"); done
target/release/kolla-build -b "$BASE" -t "$TYPE" -p "$PROFILE" --tag "$TAG" --bootstrap-base "${CA[@]}" \
  --logs-dir "$OUT/logs" --summary-json-file "$OUT/summary.json" --export "$OUT/$NAME" "$@"
(cd "$OUT" && sha256sum "$NAME" > "$NAME.sha256")
echo "wrote $OUT/$NAME and $NAME.sha256"
