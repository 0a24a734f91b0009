#!/usr/bin/env bash
# Benchmark (not a test) of the nightly artifact: the same images, in the same run, written as a
# registry tarball three ways:
#   ours   kolla-build --export (images already built and fresh: export only)
#   (a)    docker save <images> | gzip
#   (b)    what kolla's nightly does: docker push each image to an empty local registry, then
#          tar czf its storage directory
# and the throughput of each in MB/s of image data (the uncompressed size `docker save` reports).
#
# Usage: scripts/bench-export.sh [SELECTION ARGS...]      (default: -p gate)
#   TYPE=source NS=kbbench scripts/bench-export.sh -p default
# The images must exist already, built by kolla-build with the same -n/-t (scripts/bench-build.sh
# builds them; missing ones are built first, which the "ours" figure then excludes by running
# the export a second time). Needs the engine and docker-registry (scripts/setup-engine.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
TYPE=${TYPE:-binary}
NS=${NS:-kbbench}
PORT=${PORT:-4001}
SELECTION=("$@")
[ ${#SELECTION[@]} -gt 0 ] || SELECTION=(-p gate)
# BIN=path/to/kolla-build measures a given binary instead of building this checkout.
if [ -z "${BIN:-}" ]; then cargo build --release --quiet; BIN=$PWD/target/release/kolla-build; fi
WORK=$(mktemp -d)
REGISTRY_PID=""
PUSH_PID=""
cleanup() {
  if [ -n "$REGISTRY_PID" ]; then kill "$REGISTRY_PID" 2>/dev/null; wait "$REGISTRY_PID" 2>/dev/null || true; fi
  if [ -n "$PUSH_PID" ]; then kill "$PUSH_PID" 2>/dev/null; wait "$PUSH_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
CA=()
for c in /usr/local/share/ca-certificates/*.crt; do [ -f "$c" ] && CA+=(--ca-certificate "$c"); done
# BUILD_EXTRA="--package-cache apt=http://127.0.0.1:3142 ..." is added to the builds only (not to
# the measured exports), e.g. to build the images through scripts/setup-caches.sh's caches.
read -r -a EXTRA <<< "${BUILD_EXTRA:-}"
ARGS=(-b debian -t "$TYPE" -n "$NS" --bootstrap-base "${CA[@]}" --format none -q "${SELECTION[@]}")
now_ms() { date +%s%3N; }
# PUSH=1: the nightly flow, where images are pushed as they are built: a private docker-registry
# on 127.0.0.1:$PUSH_PORT (storage under $WORK), `--registry` for every run and `--push` for the
# builds only (never in a timed export). The incremental export then reads the rebuilt image's
# new layers from that registry instead of `docker save` of its whole chain.
if [ "${PUSH:-0}" = 1 ]; then
  PUSH_PORT=${PUSH_PORT:-4002}
  mkdir -p "$WORK/pushed"
  printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
    "$WORK/pushed" "$PUSH_PORT" > "$WORK/pushed.yml"
  docker-registry serve "$WORK/pushed.yml" >"$WORK/pushed.log" 2>&1 &
  PUSH_PID=$!
  for _ in $(seq 100); do
    curl -fsS --max-time 1 "http://127.0.0.1:$PUSH_PORT/v2/" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS --max-time 1 "http://127.0.0.1:$PUSH_PORT/v2/" >/dev/null \
    || { echo "bench-export: the registry on 127.0.0.1:$PUSH_PORT did not start" >&2; cat "$WORK/pushed.log" >&2; exit 1; }
  ARGS+=(--registry "127.0.0.1:$PUSH_PORT")
  EXTRA+=(--push)
fi

# Make sure every selected image is there (a no-op when bench-build.sh ran before).
"$BIN" "${ARGS[@]}" "${EXTRA[@]}" --summary-json-file "$WORK/build.json"
mapfile -t REFS < <(python3 -c '
import json, sys
for e in json.load(open(sys.argv[1]))["built"]:
    print(e["reference"])' "$WORK/build.json")
[ ${#REFS[@]} -gt 0 ] || { echo "bench-export: nothing selected" >&2; exit 1; }
# Image data: the uncompressed size of all distinct layers (what every method has to read).
bytes=$(docker save "${REFS[@]}" | wc -c)
mb=$(awk -v b="$bytes" 'BEGIN{printf "%.1f", b/1e6}')
echo "images: ${#REFS[@]}, $mb MB uncompressed (docker save)"

rate() { awk -v b="$bytes" -v ms="$1" 'BEGIN{printf "%.1f", (b/1e6)/(ms/1000)}'; }
size() { awk -v b="$(stat -c %s "$1")" 'BEGIN{printf "%.1f", b/1e6}'; }

# Ours.
start=$(now_ms)
"$BIN" "${ARGS[@]}" --cache-dir "$WORK/cache0" --export "$WORK/ours.tar.gz"   # an empty layer cache: a full export
ours=$(( $(now_ms) - start ))
echo "ours:  kolla-build --export        ${ours} ms  $(rate "$ours") MB/s  -> $(size "$WORK/ours.tar.gz") MB"

# PEERS=0 skips the peers (a) and (b), for the incremental figure alone.
if [ "${PEERS:-1}" = 1 ]; then
# (a) docker save | gzip.
start=$(now_ms)
docker save "${REFS[@]}" | gzip > "$WORK/save.tar.gz"
save=$(( $(now_ms) - start ))
echo "(a):   docker save | gzip          ${save} ms  $(rate "$save") MB/s  -> $(size "$WORK/save.tar.gz") MB"

# (b) push to an empty registry on 127.0.0.1:$PORT, then tar its storage.
mkdir -p "$WORK/registry"
cat > "$WORK/registry.yml" <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: 127.0.0.1:$PORT
EOF
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 100); do
  curl -fsS --max-time 1 "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS --max-time 1 "http://127.0.0.1:$PORT/v2/" >/dev/null \
  || { echo "bench-export: the registry on 127.0.0.1:$PORT did not start" >&2; cat "$WORK/registry.log" >&2; exit 1; }
PUSHED=()
for ref in "${REFS[@]}"; do
  docker tag "$ref" "127.0.0.1:$PORT/$ref"
  PUSHED+=("127.0.0.1:$PORT/$ref")
done
start=$(now_ms)
for ref in "${PUSHED[@]}"; do docker push -q "$ref" >/dev/null; done
tar czf "$WORK/registry.tar.gz" -C "$WORK/registry" .
push=$(( $(now_ms) - start ))
docker rmi "${PUSHED[@]}" >/dev/null
echo "(b):   docker push + tar czf       ${push} ms  $(rate "$push") MB/s  -> $(size "$WORK/registry.tar.gz") MB"

awk -v o="$ours" -v a="$save" -v b="$push" 'BEGIN {
  printf "ours is %.1fx faster than (a) docker save | gzip and %.1fx faster than (b) push + tar\n", a/o, b/o }'
fi

# Incremental export (issue 14): a full export with an empty layer cache, then one image
# (keystone, a leaf) changed through a template override and rebuilt, then the export of the
# same selection with the cache the full export filled; its bytes must equal a full export of
# the same images (checked with another empty cache).
cat > "$WORK/change.j2" <<'EOF'
{% extends parent_template %}
{% block keystone_footer %}RUN echo "changed for bench-export.sh" > /etc/kolla-bench-change{% endblock %}
EOF
start=$(now_ms)
"$BIN" "${ARGS[@]}" --cache-dir "$WORK/cache" --export "$WORK/full.tar.gz"
full=$(( $(now_ms) - start ))
"$BIN" "${ARGS[@]}" "${EXTRA[@]}" --template-override "$WORK/change.j2" --summary-json-file "$WORK/changed.json"
mapfile -t CHANGED < <(python3 -c '
import json, sys
for e in json.load(open(sys.argv[1]))["built"]:
    if not e["fresh"]:
        print(e["reference"])' "$WORK/changed.json")
start=$(now_ms)
"$BIN" "${ARGS[@]}" --template-override "$WORK/change.j2" --cache-dir "$WORK/cache" --export "$WORK/incremental.tar.gz" \
  --summary-json-file "$WORK/incremental.json"
inc=$(( $(now_ms) - start ))
python3 -c '
import json, sys
e = json.load(open(sys.argv[1]))["export"]
print("incremental export read %d images from the layer cache, %d from the registry, %d with docker save"
      % (e["from_cache"], e["from_registry"], e["saved"]))' "$WORK/incremental.json"
"$BIN" "${ARGS[@]}" --template-override "$WORK/change.j2" --cache-dir "$WORK/cache2" --export "$WORK/full2.tar.gz"
same=$(cmp -s "$WORK/incremental.tar.gz" "$WORK/full2.tar.gz" && echo "byte-identical to" || echo "DIFFERENT from")
echo "full export (empty layer cache): ${full} ms; after one image changed: ${inc} ms ($(awk -v i="$inc" -v f="$full" 'BEGIN{printf "%.1f", 100*i/f}')% of full), $same a full export of the same images"
# What the engine costs the incremental export: `docker save` of the rebuilt images alone (which
# streams their parents' layers too), and of every selected image at once.
start=$(now_ms)
docker save "${CHANGED[@]}" > /dev/null
changed_save=$(( $(now_ms) - start ))
start=$(now_ms)
docker save "${REFS[@]}" > /dev/null
all_save=$(( $(now_ms) - start ))
echo "docker save of the rebuilt images (${CHANGED[*]##*/}): ${changed_save} ms; of all ${#REFS[@]} images at once: ${all_save} ms"
awk -v i="$inc" -v f="$full" -v c="$changed_save" -v l="$(cut -d' ' -f1-3 /proc/loadavg)" 'BEGIN {
  printf "ratio incremental/full: %.3f (target <= 0.15); the rebuilt images'"'"' docker save alone is %.3f of the full export; load average %s\n", i/f, c/f, l }'
"$BIN" "${ARGS[@]}" "${EXTRA[@]}" --summary-json-file "$WORK/restore.json" >/dev/null   # back to the unchanged images
