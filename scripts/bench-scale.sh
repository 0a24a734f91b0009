#!/usr/bin/env bash
# Benchmark (not a test) of scale, issue 27 point 6, in two sections:
#  (a) growth: generated trees (scripts/scale-tree.py) of N images in two shapes, `deep` (chains
#      of 50 images, each hanging off base) and `wide` (every image a child of one parent), for
#      N = 500, 1000, 5000. For each: wall time and peak RSS (/usr/bin/time -v) of the release
#      binary rendering (`--template-only` into a fresh work dir), planning and listing
#      (`--list-dependencies`, `--list-images`); the median of RUNS runs. Then per image (ms, KB)
#      and the growth from one N to the next against linear (1000/500 against 2x, 5000/1000
#      against 5x).
#  (b) no-op runs leave nothing behind: a tiny tree (base FROM a busybox image imported here,
#      one image FROM base) built once, then NOOP_RUNS (100) no-op runs in a row; before and
#      after: dockerd's open files, containers, dangling images, files in the runs' TMPDIR and
#      in their --work-dir. Needs a running dockerd (`docker info`); nothing is started or
#      stopped. Images go to the namespace `kbscale` and are removed at the end.
# Usage:
#   scripts/bench-scale.sh                      # both sections
#   scripts/bench-scale.sh --no-engine          # (a) only
#   scripts/bench-scale.sh --only-engine        # (b) only
#   SIZES="500 1000 5000" SHAPES="deep wide" RUNS=3 NOOP_RUNS=100 scripts/bench-scale.sh
#   SHAPES=chain scripts/bench-scale.sh --no-engine   # also: one chain of N images
# Trees, work dirs and TMPDIR are under temporary directories removed on exit, never the
# repository. (a) generates and renders in SCRATCH (default /dev/shm, a tmpfs): on ext4, creating
# files soon after thousands were deleted (each run replaces the last run's rendered tree) sends
# the kernel's inode allocator through `recently_deleted()`, and that, not the tool, took 11 of
# the 14 s of a 5,000-image render here; SCRATCH=/tmp measures on disk anyway.
# BIN=path/to/kolla-build measures a given binary instead of building this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-500 1000 5000}
SHAPES=${SHAPES:-deep wide}
RUNS=${RUNS:-3}
NOOP_RUNS=${NOOP_RUNS:-100}
NS=kbscale
GROWTH=1 ENGINE=1
case "${1:-}" in
  --no-engine) ENGINE=0 ;;
  --only-engine) GROWTH=0 ;;
  "") ;;
  *) echo "usage: $0 [--no-engine | --only-engine]" >&2; exit 2 ;;
esac
[ -x /usr/bin/time ] || { echo "$0: /usr/bin/time is missing (apt-get install time)" >&2; exit 1; }
if [ -z "${BIN:-}" ]; then cargo build --release --quiet; BIN=$PWD/target/release/kolla-build; fi
WORK=$(mktemp -d)
SCRATCH=${SCRATCH:-/dev/shm}
[ -d "$SCRATCH" ] && [ -w "$SCRATCH" ] || SCRATCH=$WORK
MEM=$(mktemp -d -p "$SCRATCH" kbscale.XXXXXX)
cleanup() { rm -rf "$WORK" "$MEM"; }
trap cleanup EXIT
now_ns() { date +%s%N; }
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# measure TREE OUT ARGS...: one run of the binary in TREE, stdout to OUT; prints "ms kb".
measure() {
  local tree=$1 out=$2; shift 2
  local t0 t1
  t0=$(now_ns)
  (cd "$tree" && /usr/bin/time -v -o "$WORK/time.txt" "$BIN" -q --images-dir . "$@" >"$out")
  t1=$(now_ns)
  echo "$(( (t1 - t0) / 1000000 )) $(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")"
}

if [ "$GROWTH" = 1 ]; then
  echo "== (a) growth: $SHAPES x N = $SIZES, median of $RUNS runs, $(nproc) cores, $(date -u +%F), in $SCRATCH"
  : >"$WORK/results"
  for shape in $SHAPES; do
    for n in $SIZES; do
      tree="$MEM/tree-$shape-$n"
      python3 scripts/scale-tree.py "$tree" "$n" "$shape" >/dev/null
      for op in render list-dependencies list-images; do
        : >"$WORK/ms" ; : >"$WORK/kb"
        for run in $(seq "$RUNS"); do
          case $op in
            render) rm -rf "$MEM/out"; m=$(measure "$tree" /dev/null --template-only --work-dir "$MEM/out") ;;
            list-dependencies) m=$(measure "$tree" "$WORK/listing" --list-dependencies) ;;
            list-images) m=$(measure "$tree" "$WORK/listing" --list-images) ;;
          esac
          echo "${m% *}" >>"$WORK/ms"; echo "${m#* }" >>"$WORK/kb"
        done
        # One more image than N: base.
        case $op in
          render) got=$(find "$MEM/out/docker" -name Dockerfile | wc -l) ;;
          list-images) got=$(wc -l <"$WORK/listing") ;;
          list-dependencies) got=$(grep -o '"[a-z0-9-]*"' "$WORK/listing" | sort -u | wc -l) ;;
        esac
        [ "$got" -eq $((n + 1)) ] || { echo "$0: $op of $shape $n gave $got images, not $((n + 1))" >&2; exit 1; }
        echo "$shape $n $op $(median <"$WORK/ms") $(median <"$WORK/kb")" >>"$WORK/results"
      done
      rm -rf "$tree" "$MEM/out" "$WORK/listing"
    done
  done
  # The table, then the growth of each (shape, operation) from one N to the next: the ratio of
  # wall time and of peak RSS against the ratio of N (linear), and the marginal cost per added
  # image (what the fixed start-up cost does not blur).
  awk '
    BEGIN { printf "%-6s %6s %-18s %9s %9s %10s %9s\n", "shape", "N", "operation", "wall ms", "peak MB", "ms/image", "KB/image" }
    {
      printf "%-6s %6d %-18s %9d %9.1f %10.3f %9.1f\n", $1, $2, $3, $4, $5 / 1024, $4 / $2, $5 / $2
      key = $1 " " $3
      if (key in n) {
        growth[++g] = sprintf("%-6s %-18s %5d->%-5d %5.1fx %9.2fx %9.2fx %12.3f %12.1f  %s", $1, $3, n[key], $2,
          $2 / n[key], $4 / ms[key], $5 / kb[key], ($4 - ms[key]) / ($2 - n[key]), ($5 - kb[key]) / ($2 - n[key]),
          ($4 / ms[key] <= 1.25 * $2 / n[key] && $5 / kb[key] <= 1.25 * $2 / n[key]) ? "linear" : "SUPER-LINEAR")
      }
      n[key] = $2; ms[key] = $4; kb[key] = $5
    }
    END {
      printf "\n%-6s %-18s %11s %6s %10s %10s %12s %12s  %s\n", "shape", "operation", "N", "linear", "time", "RSS", "ms/added", "KB/added", "verdict"
      for (i = 1; i <= g; i++) print growth[i]
    }' "$WORK/results"
  echo "(linear: time and RSS grow by at most 1.25 x the growth of N; ms/added, KB/added: (t2 - t1) / (N2 - N1))"
fi

if [ "$ENGINE" = 1 ]; then
  echo
  echo "== (b) $NOOP_RUNS no-op runs in a row"
  if ! docker info >/dev/null 2>&1; then
    echo "skipped: no engine answers \`docker info\` (this script starts none)"
    exit 0
  fi
  pid=$(cat /var/run/docker.pid 2>/dev/null || pidof -s dockerd)
  base=$NS/busybox:1
  bb=$(command -v busybox || true)
  [ -n "$bb" ] || { echo "$0: busybox is missing (apt-get install busybox-static)" >&2; exit 1; }
  remove_images() {
    docker images --format '{{.Repository}}:{{.Tag}}' | grep "^$NS/" | xargs -r docker rmi -f >/dev/null || true
  }
  trap 'remove_images; cleanup' EXIT
  # The base: a busybox root file system imported as an image (nothing pulled).
  mkdir -p "$WORK/rootfs/bin" "$WORK/rootfs/tmp"
  cp "$bb" "$WORK/rootfs/bin/busybox"
  for applet in sh echo cat true; do ln -s busybox "$WORK/rootfs/bin/$applet"; done
  tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
  docker import -c 'ENV PATH=/bin' "$WORK/rootfs.tar" "$base" >/dev/null
  tree="$WORK/tiny"
  mkdir -p "$tree/base" "$tree/images/tiny"
  printf 'base = "debian"\n' >"$tree/build.toml"
  printf 'FROM {{ base_image }}:{{ base_distro_tag }}\nRUN echo base > /base.txt\n' >"$tree/base/Dockerfile.j2"
  printf 'FROM {{ namespace }}/{{ image_prefix }}base:{{ tag }}\nRUN echo tiny > /tiny.txt\n' \
    >"$tree/images/tiny/Dockerfile.j2"
  mkdir -p "$WORK/tmp" "$WORK/workdir"
  ARGS=(-q --images-dir . -n "$NS" --base-image "$NS/busybox" --base-tag 1 --tag "$NS" --no-pull
        --work-dir "$WORK/workdir")
  run() { (cd "$tree" && TMPDIR="$WORK/tmp" "$BIN" "${ARGS[@]}" "$@"); }
  # Our own leftovers are told apart from other jobs' on this engine: our containers descend
  # from the busybox base, our dangling images start with its layer.
  layer=$(docker image inspect -f '{{index .RootFS.Layers 0}}' "$base")
  ours_dangling() {
    docker images -q -f dangling=true | xargs -r docker image inspect -f '{{index .RootFS.Layers 0}}' 2>/dev/null \
      | grep -c "^$layer$" || true
  }
  snapshot() { # NAME: one line of counts
    printf '%-7s %12s %12s %11s %15s %13s %10s %12s\n' "$1" \
      "$(ls "/proc/$pid/fd" | wc -l)" "$(docker ps -aq | wc -l)" "$(docker ps -aq -f ancestor="$base" | wc -l)" \
      "$(docker images -q -f dangling=true | wc -l)" "$(ours_dangling)" \
      "$(find "$WORK/tmp" -mindepth 1 | wc -l)" "$(find "$WORK/workdir" -mindepth 1 | wc -l)"
  }
  printf '%-7s %12s %12s %11s %15s %13s %10s %12s\n' "" "dockerd fds" "containers" "(ours)" \
    "dangling imgs" "(ours)" "TMPDIR" "work dir"
  snapshot start
  run --format json >"$WORK/first.json"
  snapshot built
  : >"$WORK/noop-ms"
  for i in $(seq "$NOOP_RUNS"); do
    t0=$(now_ns)
    run --format json >"$WORK/noop.json"
    echo $(( ($(now_ns) - t0) / 1000000 )) >>"$WORK/noop-ms"
    # Both images fresh, none built.
    [ "$(grep -o '"status":"fresh"' "$WORK/noop.json" | wc -l)" -eq 2 ] \
      || { echo "$0: run $i was not a no-op: $(cat "$WORK/noop.json")" >&2; exit 1; }
  done
  sleep 2 # dockerd closes idle API connections shortly after a client leaves
  snapshot after
  echo "first run: $(grep -o '"status":"built"' "$WORK/first.json" | wc -l) images built (start -> built)"
  echo "no-op run: median $(median <"$WORK/noop-ms") ms, slowest $(sort -n "$WORK/noop-ms" | tail -1) ms, all $NOOP_RUNS fresh"
  remove_images
  echo "removed: $(docker images --format '{{.Repository}}' | grep -c "^$NS/" || true) images of $NS/ left"
fi
