#!/usr/bin/env bash
# Cold and no-op builds of kolla 20.6.0's own tree (2025.1, debian), Python kolla-build 20.6.0
# (the peer, from PyPI) against ours, on the same tree, configuration, template override, engine
# and loopback HTTP server (scripts/kolla-tree-fixture.sh; Python's http.server, whose log gives
# every request and its status). Not a test: prints wall seconds, bytes served, and whether both
# sets of images hold the same Python packages (`pip freeze` in /var/lib/kolla/venv) and Debian
# packages (`dpkg-query -W`).
#
#   scripts/bench-kolla-build.sh            # A B A B: kolla, ours, kolla, ours
#   ROUNDS=1 scripts/bench-kolla-build.sh   # A B
#   SELECTION='^keystone$' scripts/bench-kolla-build.sh
#
# Each round: a cold build (`--nocache`: no image fresh, no layer cache; ours also starts with
# an empty download cache, so both fetch every source), then a no-op run of the same command
# (ours with the download cache the cold run filled). The base image `debian:bookworm` is made
# once with our `--bootstrap-base` (kolla runs with `--nopull`); it is not part of the measure.
# A round's images are removed after it (the disk holds one pair of sets, not four).
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)
target=${CARGO_TARGET_DIR:-target}
rounds=${ROUNDS:-2}
selection=${SELECTION:-^keystone$ ^keystone-fernet$ ^keystone-ssh$ ^glance-api$ ^placement-api$ ^nova-api$}
port=${PORT:-8767}
spec=kolla==20.6.0

cargo build --release --locked --quiet
ours="$here/$target/release/kolla-build"
peer="$here/$target/tmp/${spec/==/-}"
if [ "$(cat "$peer/.installed" 2>/dev/null)" != "$spec" ]; then
    echo "installing the peer ($spec) into $peer" >&2
    rm -rf "$peer"
    python3 -m venv "$peer"
    timeout 900 "$peer/bin/pip" install --quiet --disable-pip-version-check "$spec" docker
    echo "$spec" >"$peer/.installed"
fi
tree="$peer/share/kolla/docker"

work=$(mktemp -d)
# The fixture tests/kolla_tree.rs uses (its sdists are downloaded once).
fixture=${FIXTURE:-$here/$target/tmp/kolla-tree}
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    for ns in $(docker images --format '{{.Repository}}' | grep -o '^kbbench-[a-z0-9-]*' | sort -u); do
        docker images --format '{{.Repository}}:{{.Tag}}' | grep "^$ns/" | xargs -r docker rmi -f >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
bash scripts/kolla-tree-fixture.sh "$fixture" "$port" /usr/local/share/ca-certificates/*.crt >&2
conf="$fixture/kolla-build.conf"
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$fixture/tarballs" 2>"$work/http.log" >/dev/null &
server_pid=$!
for _ in $(seq 50); do
    curl -fs -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.2
done

# bytes_since LINE: the bytes of every file answered 200 after line LINE of the server's log.
bytes_since() {
    tail -n "+$(($1 + 1))" "$work/http.log" | awk '$6 ~ /^"GET/ && $9 == 200 { print $7 }' |
        while read -r path; do stat -c %s "$fixture/tarballs${path}"; done |
        awk '{ s += $1 } END { printf "%d", s }'
}
# statuses_since LINE: how many of each status the server answered after line LINE.
statuses_since() {
    tail -n "+$(($1 + 1))" "$work/http.log" | awk '$6 ~ /^"GET/ { n[$9]++ } END { for (s in n) printf "%s:%d ", s, n[s] }'
}
read -r -a images <<<"$selection"

# run TOOL ROUND KIND: one timed build; prints its line of the table.
run() {
    local tool=$1 round=$2 kind=$3 ns="kbbench-$1-$2" start mark status secs
    local flags=()
    [ "$kind" = cold ] && flags=(--nocache)
    mark=$(wc -l <"$work/http.log")
    start=$(date +%s.%N)
    if [ "$tool" = kolla ]; then
        HOME=$work/home timeout 7200 "$peer/bin/kolla-build" --config-file "$conf" --nopull \
            --namespace "$ns" --work-dir "$work/kolla-$round-$kind" "${flags[@]}" "${images[@]}" \
            >"$work/$tool-$round-$kind.log" 2>&1 && status=ok || status="failed ($?)"
    else
        [ "$kind" = cold ] && rm -rf "$work/cache-$round"
        timeout 7200 "$ours" --config-file "$conf" --images-dir "$tree" --namespace "$ns" \
            --cache-dir "$work/cache-$round" --format none "${flags[@]}" "${images[@]}" \
            >"$work/$tool-$round-$kind.log" 2>&1 && status=ok || status="failed ($?)"
    fi
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    printf '%-6s %5s %-6s %9.1f %12s  %-22s %s\n' "$round" "$tool" "$kind" "$secs" \
        "$(bytes_since "$mark")" "$(statuses_since "$mark")" "$status"
    if [ "$status" != ok ]; then tail -n 20 "$work/$tool-$round-$kind.log" >&2; fi
}

# packages NS: the Python and Debian packages of every leaf image of the set in namespace NS.
packages() {
    for leaf in keystone keystone-fernet keystone-ssh glance-api placement-api nova-api; do
        docker image inspect "$1/$leaf:20.6.0" >/dev/null 2>&1 || continue
        docker run --rm --network none --entrypoint sh "$1/$leaf:20.6.0" -c \
            '/var/lib/kolla/venv/bin/pip freeze 2>/dev/null; dpkg-query -W' | sed "s|^|$leaf |"
    done
}

# The base both start from, made once (not measured).
if ! docker image inspect debian:bookworm >/dev/null 2>&1; then
    "$ours" --config-file "$conf" --images-dir "$tree" --namespace kbbench-base \
        --bootstrap-base --format none base >&2
fi

printf '%-6s %5s %-6s %9s %12s  %-22s %s\n' round tool run seconds "bytes 200" statuses result
for round in $(seq "$rounds"); do
    run kolla "$round" cold
    run ours "$round" cold
    run kolla "$round" noop
    run ours "$round" noop
    packages "kbbench-kolla-$round" | sort >"$work/packages-kolla"
    packages "kbbench-ours-$round" | sort >"$work/packages-ours"
    if cmp -s "$work/packages-kolla" "$work/packages-ours"; then
        echo "round $round: the same packages in both sets ($(wc -l <"$work/packages-ours") lines of pip freeze and dpkg-query over the leaf images)"
    else
        echo "round $round: the packages differ:"
        diff "$work/packages-kolla" "$work/packages-ours" | head -n 40 || true
    fi
    for tool in kolla ours; do
        docker images --format '{{.Repository}}:{{.Tag}}' | grep "^kbbench-$tool-$round/" |
            xargs -r docker rmi -f >/dev/null 2>&1 || true
    done
done
