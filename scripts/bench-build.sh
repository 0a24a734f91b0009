#!/usr/bin/env bash
# Benchmark (not a test) of builds through the engine, on Debian:
#  (a) a no-op rebuild of a selection with kolla-build, against a plain `docker build` loop over
#      the same rendered Dockerfiles in dependency order (what the Python kolla-build does: every
#      image goes through the builder, even when every layer is cached);
#  (b) the cold build's wall time against the sum of its per-image build times (parallel
#      efficiency), taken from the JSON summary.
# Usage: scripts/bench-build.sh [SELECTION ARGS...]   (default: -p default)
#   TYPE=source scripts/bench-build.sh -p gate
# Needs the engine (scripts/setup-engine.sh). Images go to a namespace of their own, kept for
# re-runs (`docker images 'kbbench/*'`); set COLD=1 to remove them first and time a cold build.
#
# CACHES=1 measures the package caches instead (issue 14): three builds of the selection with
# --no-cache (every layer built, every package downloaded), (1) without caches, (2) through
# empty caches, (3) through the same caches, now warm. The caches are a private pair started by
# scripts/setup-caches.sh on ports 3242/3241 with state in a temporary folder (the shared ones
# are left alone) and stopped at the end. Network bytes: for (2) and (3), what the caches fetched
# from outside (apt-cacher-ng's transfer log `I` lines; the sizes of the files devpi logs as
# "reading remote"); what the builds downloaded is the sum of the summary's network_bytes (what
# the caches sent the builds), which is also what (1) downloads from outside; for (1) the rx
# bytes of the machine's interfaces are printed too (other work on the machine counts there).
# REPEAT=1 adds (4) warm and (5) none again, in that order, for the spread between runs;
# KEEP=DIR keeps the summaries and the caches' logs there.
set -euo pipefail
cd "$(dirname "$0")/.."
TYPE=${TYPE:-binary}
NS=${NS:-kbbench}
SELECTION=("$@")
[ ${#SELECTION[@]} -gt 0 ] || SELECTION=(-p default)
# BIN=path/to/kolla-build measures a given binary instead of building this checkout.
if [ -z "${BIN:-}" ]; then cargo build --release --quiet; BIN=$PWD/target/release/kolla-build; fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
CA=()
for c in /usr/local/share/ca-certificates/*.crt; do [ -f "$c" ] && CA+=(--ca-certificate "$c"); done
ARGS=(-b debian -t "$TYPE" -n "$NS" --bootstrap-base "${CA[@]}" --format none "${SELECTION[@]}")
now_ms() { date +%s%3N; }

if [ "${CACHES:-0}" = 1 ]; then
  APT_PORT=${APT_PORT:-3242} PYPI_PORT=${PYPI_PORT:-3241}
  CDIR="$WORK/caches" CLOG="$WORK/cache-logs"
  stop_caches() {
    for f in "/var/run/kolla-build-apt-cacher-ng-$APT_PORT.pid" "/var/run/kolla-build-devpi-$PYPI_PORT.pid"; do
      [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; rm -f "$f"
    done
    rm -rf "$WORK"
  }
  trap stop_caches EXIT
  KOLLA_CACHE_DIR="$CDIR" KOLLA_CACHE_LOG_DIR="$CLOG" KOLLA_APT_CACHE_PORT=$APT_PORT \
    KOLLA_PYPI_CACHE_PORT=$PYPI_PORT KOLLA_DEVPI_VENV=${KOLLA_DEVPI_VENV:-/var/lib/kolla-build/caches/devpi-venv} \
    bash scripts/setup-caches.sh
  CACHE_ARGS=(--package-cache "apt=http://127.0.0.1:$APT_PORT" --package-cache "pypi=http://127.0.0.1:$PYPI_PORT/root/pypi/+simple/")
  rx() { awk -F'[: ]+' 'NR > 2 && $2 != "lo" {s += $3} END {printf "%.0f\n", s}' /proc/net/dev; }
  run() { # NAME ARGS...: one --no-cache build, timed, with its logs' offsets before it
    local name=$1; shift
    stat -c %s "$CLOG/apt-cacher.log" "$CLOG/devpi.log" 2>/dev/null | paste -sd' ' > "$WORK/$name.offsets" || echo "0 0" > "$WORK/$name.offsets"
    local rx0; rx0=$(rx)
    local t0; t0=$(now_ms)
    "$BIN" "${ARGS[@]}" --no-cache -q --summary-json-file "$WORK/$name.json" "$@"
    echo "$(( $(now_ms) - t0 )) $(( $(rx) - rx0 ))" > "$WORK/$name.measure"
  }
  run none
  run cold "${CACHE_ARGS[@]}"
  run warm "${CACHE_ARGS[@]}"
  if [ "${REPEAT:-0}" = 1 ]; then # the spread between runs: both again, the other way round
    run warm2 "${CACHE_ARGS[@]}"
    run none2
  fi
  if [ -n "${KEEP:-}" ]; then # the summaries and the caches' logs, for a closer look
    mkdir -p "$KEEP" && cp "$WORK"/*.json "$CLOG"/*.log "$KEEP"/
  fi
  python3 - "$WORK" "$CLOG" "$CDIR/devpi" <<'PY'
import json, os, re, sys
work, logs, serverdir = sys.argv[1:4]
def upstream(name):
    apt_at, devpi_at = (int(x) for x in open(f"{work}/{name}.offsets").read().split()[:2])
    apt = open(f"{logs}/apt-cacher.log", "rb").read()[apt_at:].decode(errors="replace")
    fetched = sum(int(l.split("|")[2]) for l in apt.splitlines() if l.count("|") >= 4 and l.split("|")[1] == "I")
    devpi = open(f"{logs}/devpi.log", "rb").read()[devpi_at:].decode(errors="replace")
    for target in re.findall(r"reading remote: .*, target (\S+)", devpi):
        path = os.path.join(serverdir, "+files", target)
        fetched += os.path.getsize(path) if os.path.exists(path) else 0
    return fetched
rows = {}
for name in ("none", "cold", "warm", "warm2", "none2"):
    if not os.path.exists(f"{work}/{name}.measure"):
        continue
    ms, rx = (int(x) for x in open(f"{work}/{name}.measure").read().split())
    s = json.load(open(f"{work}/{name}.json"))
    got = sum(e.get("network_bytes", 0) for e in s["built"])
    work_s = sum(e.get("seconds", 0) for e in s["built"])
    rows[name] = (ms / 1000, rx, got, None if name.startswith("none") else upstream(name), work_s)
downloaded = rows["cold"][2]
for name, (wall, rx, got, up, work_s) in rows.items():
    net = downloaded if up is None else up
    print(f"{name:5} caches: {wall:7.1f} s wall ({work_s:.0f} s of image builds), network {net / 1e6:8.1f} MB"
          + (f" (the builds' downloads; machine rx {rx / 1e6:.1f} MB)" if up is None
             else f" fetched by the caches, {got / 1e6:.1f} MB served to the builds"))
none, warm = rows["none"], rows["warm"]
print(f"warm caches vs none: network bytes cut by {100 * (1 - warm[3] / downloaded):.1f}%, "
      f"wall {none[0] / warm[0]:.2f}x faster")
PY
  exit 0
fi

if [ "${COLD:-0}" = 1 ]; then
  docker images --format '{{.Repository}}:{{.Tag}}' | grep "^$NS/" | xargs -r docker rmi >/dev/null || true
fi

start=$(now_ms)
"$BIN" "${ARGS[@]}" -q --summary-json-file "$WORK/cold.json"
cold=$(( $(now_ms) - start ))
python3 - "$WORK/cold.json" "$cold" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); wall = int(sys.argv[2]) / 1000
built = [e for e in s["built"] if not e.get("fresh")]
total = sum(e.get("seconds", 0) for e in built)
print(f"build: {len(s['built'])} images, {len(built)} built (not fresh) in {wall:.1f}s wall; "
      f"sum of per-image build times {total:.1f}s; parallelism {total / wall if wall else 0:.2f}x")
PY

# What the images weigh (the engine's figure: all layers, the parents' included).
for image in keystone nova-api; do
  ref="$NS/debian-$TYPE-$image"
  size=$(docker images --format '{{.Repository}} {{.Size}}' | awk -v r="$ref" '$1 == r {print $2; exit}')
  [ -n "$size" ] && echo "size: $image ($TYPE) $size"
done

# The no-op rebuild: best of 3 (the first run after a build also pays for a cold page cache).
noop=""
for _ in 1 2 3; do
  start=$(now_ms)
  "$BIN" "${ARGS[@]}" -q --summary-json-file "$WORK/noop.json"
  ms=$(( $(now_ms) - start ))
  if [ -z "$noop" ] || [ "$ms" -lt "$noop" ]; then noop=$ms; fi
done
images=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['built']))" "$WORK/noop.json")

# The peer: what kolla does, a builder round trip per image, in dependency order.
"$BIN" "${ARGS[@]}" -q --template-only --work-dir "$WORK/tree"
"$BIN" "${ARGS[@]}" -q --list-images | awk '{print $3}' > "$WORK/order"
start=$(now_ms)
while read -r image; do
  dir=$(dirname "$(find "$WORK/tree/docker" -path "*/$image/Dockerfile" | head -1)")
  # Tagged apart from ours: retagging our references with label-less images would make the next
  # kolla-build run rebuild them.
  # (The legacy builder's deprecation notice goes to stderr on every call: kept out of the way.)
  docker build -q --network host -t "$NS-loop/debian-$TYPE-$image:loop" "$dir" >/dev/null 2>"$WORK/loop.err" \
    || { cat "$WORK/loop.err" >&2; exit 1; }
done < "$WORK/order"
loop=$(( $(now_ms) - start ))
echo "no-op rebuild of $images images: kolla-build ${noop} ms (best of 3), docker build loop ${loop} ms: $(awk -v a="$loop" -v b="$noop" 'BEGIN{printf "%.1f", a/b}')x faster"
