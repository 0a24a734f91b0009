#!/usr/bin/env bash
# Times our kolla-build against the Python kolla-build (the peer) rendering kolla's own tree
# (--template-only), per distro, in the same run and with the same settings. Not a test: prints
# wall-clock milliseconds and CPU milliseconds (user+sys, less sensitive to a busy machine) and
# the ratios. The peer is installed into a virtualenv if missing.
#
#   scripts/bench-kolla.sh [distro...]          (default: rocky debian ubuntu)
#   KOLLA_PEER=/path/to/venv  KOLLA_PEER_SPEC='kolla==23.0.0'  RUNS=5
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
peer=${KOLLA_PEER:-$target/tmp/kolla-peer}
spec=${KOLLA_PEER_SPEC:-kolla==23.0.0}
runs=${RUNS:-5}
distros=("$@")
[ ${#distros[@]} -gt 0 ] || distros=(rocky debian ubuntu)

if [ ! -x "$peer/bin/kolla-build" ]; then
    echo "installing the peer ($spec) into $peer" >&2
    python3 -m venv "$peer"
    timeout 900 "$peer/bin/pip" install --quiet --disable-pip-version-check "$spec" docker
fi
cargo build --release --quiet
ours="$target/release/kolla-build"
read -r tree version < <("$peer/bin/python" -c 'import os, kolla.common.config as c, kolla.version as v
print(os.path.join(os.path.dirname(c.__file__), "..", "docker"), v.version_info.cached_version_string())')

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '[DEFAULT]\nmaintainer = Bench (https://example.org)\n' > "$work/kolla-build.conf"
now() { date +%s%N; }
# cpu_ms FILE: user+sys in ms from a `/usr/bin/time -f "%U %S"` output file
cpu_ms() { awk '{ printf "%d", ($1 + $2) * 1000 }' "$1"; }
timer=()
if [ -x /usr/bin/time ]; then timer=(/usr/bin/time -f "%U %S" -o "$work/cpu"); fi

printf '%-8s %7s %8s %9s %6s %9s %10s %8s\n' distro images "ours ms" "kolla ms" ratio \
    "ours cpu" "kolla cpu" "cpu ratio"
for distro in "${distros[@]}"; do
    case $distro in
        rocky) image=quay.io/rockylinux/rockylinux tag=10 ;;
        debian) image=debian tag=trixie ;;
        ubuntu) image=ubuntu tag=24.04 ;;
        centos) image=quay.io/centos/centos tag=stream10 ;;
        *) echo "unknown distro $distro" >&2; exit 2 ;;
    esac
    args=(--config-file "$work/kolla-build.conf" --base "$distro" --base-image "$image"
          --base-tag "$tag" --base-arch x86_64 --namespace kolla --tag bench
          --openstack-release 2026.2 --openstack-release-codename Hibiscus
          --image-name-prefix= --template-only)
    t0=$(now)
    if ! HOME=$work timeout 600 "${timer[@]}" "$peer/bin/kolla-build" "${args[@]}" --work-dir "$work/kolla-$distro" \
            >"$work/kolla-$distro.log" 2>&1; then
        printf '%-8s kolla-build failed: %s\n' "$distro" "$(tail -1 "$work/kolla-$distro.log")"
        continue
    fi
    kolla_ms=$(( ($(now) - t0) / 1000000 ))
    kolla_cpu=-; [ ${#timer[@]} -eq 0 ] || kolla_cpu=$(cpu_ms "$work/cpu")
    # ours: the best of $runs runs (each a fresh process writing the whole tree)
    best=
    best_cpu=-
    for _ in $(seq "$runs"); do
        rm -rf "$work/ours-$distro"
        t0=$(now)
        "${timer[@]}" "$ours" "${args[@]}" --images-dir "$tree" --kolla-version "$version" \
            --work-dir "$work/ours-$distro" --quiet
        ms=$(( ($(now) - t0) / 1000000 ))
        if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
        if [ ${#timer[@]} -gt 0 ]; then
            cpu=$(cpu_ms "$work/cpu")
            if [ "$best_cpu" = - ] || [ "$cpu" -lt "$best_cpu" ]; then best_cpu=$cpu; fi
        fi
    done
    images=$(find "$work/ours-$distro/docker" -name Dockerfile | wc -l)
    same=identical
    (cd "$work/kolla-$distro/docker" && find . -name Dockerfile | sort) > "$work/k.list"
    (cd "$work/ours-$distro/docker" && find . -name Dockerfile | sort) > "$work/o.list"
    if ! cmp -s "$work/k.list" "$work/o.list"; then same="DIFFERENT FILE SETS"; else
        while read -r f; do
            cmp -s "$work/kolla-$distro/docker/$f" "$work/ours-$distro/docker/$f" || { same="DIFFERS: $f"; break; }
        done < "$work/k.list"
    fi
    ratio() { awk -v k="$1" -v o="$2" 'BEGIN { if (k == "-") print "-"; else printf "%.0fx", k / (o > 0 ? o : 1) }'; }
    printf '%-8s %7s %8s %9s %6s %9s %10s %8s  %s\n' "$distro" "$images" "$best" "$kolla_ms" \
        "$(ratio "$kolla_ms" "$best")" "$best_cpu" "$kolla_cpu" "$(ratio "$kolla_cpu" "$best_cpu")" "$same"
done
