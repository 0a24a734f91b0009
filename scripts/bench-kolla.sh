#!/usr/bin/env bash
# Times our kolla-build against the Python kolla-build (the peer) rendering kolla's own tree
# (--template-only), per kolla release and distro, in the same run and with only `--base` and
# `--template-only` given (ours also gets `--images-dir`, the installation's tree: it finds the
# kolla version and that release's defaults itself). Not a test: prints wall-clock milliseconds,
# CPU milliseconds (user+sys, less sensitive to a busy machine) and the ratios, and whether the
# Dockerfiles are identical. Each peer is installed into a virtualenv if missing (the same ones
# `tests/kolla_peer.rs` uses).
#
#   scripts/bench-kolla.sh [distro...]    (default: every distro each release supports)
#   KOLLA_PEER_SPECS='kolla==20.6.0,kolla==21.3.0,kolla==22.2.0,kolla==23.0.0'  RUNS=5
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
specs=${KOLLA_PEER_SPECS:-kolla==20.6.0,kolla==21.3.0,kolla==22.2.0,kolla==23.0.0}
runs=${RUNS:-5}
only=("$@")

cargo build --release --quiet
ours="$target/release/kolla-build"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/home"
now() { date +%s%N; }
# cpu_ms FILE: user+sys in ms from a `/usr/bin/time -f "%U %S"` output file
cpu_ms() { awk '{ printf "%d", ($1 + $2) * 1000 }' "$1"; }
ratio() { awk -v k="$1" -v o="$2" 'BEGIN { if (k == "-") print "-"; else printf "%.0fx", k / (o > 0 ? o : 1) }'; }
timer=()
if [ -x /usr/bin/time ]; then timer=(/usr/bin/time -f "%U %S" -o "$work/cpu"); fi

# `render ms`: ours with --list-images, which reads the tree and renders every image (and builds
# the graph) but writes nothing: the render alone, without the ~370 files of the work dir.
# `render cpu`: the best user+sys of those runs, and its ratio to kolla's CPU time (on a busy
# machine a process of a few tens of ms spends most of its wall time waiting for a core).
printf '%-8s %-8s %7s %8s %9s %6s %9s %10s %8s %9s %7s %10s %9s\n' kolla distro images "ours ms" "kolla ms" ratio \
    "ours cpu" "kolla cpu" "cpu ratio" "render ms" "ratio" "render cpu" "cpu ratio"
IFS=, read -r -a spec_list <<< "$specs"
for spec in "${spec_list[@]}"; do
    peer="$target/tmp/${spec/==/-}"
    if [ "$(cat "$peer/.installed" 2>/dev/null)" != "$spec" ]; then
        echo "installing the peer ($spec) into $peer" >&2
        rm -rf "$peer"
        python3 -m venv "$peer"
        timeout 900 "$peer/bin/pip" install --quiet --disable-pip-version-check "$spec" docker
        echo "$spec" > "$peer/.installed"
    fi
    read -r tree version distros < <("$peer/bin/python" -c 'import os, sys, kolla.common.config as c, kolla.version as v
pkg = os.path.dirname(os.path.dirname(os.path.abspath(c.__file__)))
trees = [os.path.join(pkg, "docker"), os.path.join(sys.prefix, "share", "kolla", "docker")]
print(next(t for t in trees if os.path.isdir(os.path.join(t, "base"))), v.version_info.cached_version_string(), " ".join(c.BASE_OS_DISTRO))')
    for distro in $distros; do
        if [ ${#only[@]} -gt 0 ] && [[ ! " ${only[*]} " =~ " $distro " ]]; then continue; fi
        args=(--base "$distro" --template-only)
        t0=$(now)
        if ! HOME=$work/home timeout 600 "${timer[@]}" "$peer/bin/kolla-build" "${args[@]}" \
                --work-dir "$work/kolla-$distro" >"$work/kolla-$distro.log" 2>&1; then
            printf '%-8s %-8s kolla-build failed: %s\n' "$version" "$distro" "$(tail -1 "$work/kolla-$distro.log")"
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
            HOME=$work/home "${timer[@]}" "$ours" "${args[@]}" --images-dir "$tree" \
                --work-dir "$work/ours-$distro" --quiet
            ms=$(( ($(now) - t0) / 1000000 ))
            if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
            if [ ${#timer[@]} -gt 0 ]; then
                cpu=$(cpu_ms "$work/cpu")
                if [ "$best_cpu" = - ] || [ "$cpu" -lt "$best_cpu" ]; then best_cpu=$cpu; fi
            fi
        done
        render=
        render_cpu=-
        for _ in $(seq "$runs"); do
            t0=$(now)
            HOME=$work/home "${timer[@]}" "$ours" --base "$distro" --images-dir "$tree" --list-images --quiet >/dev/null
            ms=$(( ($(now) - t0) / 1000000 ))
            if [ -z "$render" ] || [ "$ms" -lt "$render" ]; then render=$ms; fi
            if [ ${#timer[@]} -gt 0 ]; then
                cpu=$(cpu_ms "$work/cpu")
                if [ "$render_cpu" = - ] || [ "$cpu" -lt "$render_cpu" ]; then render_cpu=$cpu; fi
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
        printf '%-8s %-8s %7s %8s %9s %6s %9s %10s %8s %9s %7s %10s %9s  %s\n' "$version" "$distro" "$images" \
            "$best" "$kolla_ms" "$(ratio "$kolla_ms" "$best")" "$best_cpu" "$kolla_cpu" \
            "$(ratio "$kolla_cpu" "$best_cpu")" "$render" "$(ratio "$kolla_ms" "$render")" \
            "$render_cpu" "$(ratio "$kolla_cpu" "$render_cpu")" "$same"
        rm -rf "$work/kolla-$distro" "$work/ours-$distro"
    done
done
