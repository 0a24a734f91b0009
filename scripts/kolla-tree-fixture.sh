#!/usr/bin/env bash
# What an air-gapped operator writes to build kolla 20.x's (2025.1) own tree on this machine,
# with either kolla-build (Python, the peer) or ours:
#
#   DIR/tarballs/   kolla's default source names under `tarballs_base`
#                   (openstack/<project>/<project>-stable-2025.1.tar.gz), made from the 2025.1
#                   sdists on PyPI (tarballs.opendev.org is not reachable here), and the
#                   requirements tarball: one top directory holding upper-constraints.txt
#                   (this project's base/constraints/2025.1.txt)
#   DIR/override.j2 a --template-override of exactly the steps that reach hosts this machine
#                   cannot reach (see below), plus the machine's CA for apt and pip
#   DIR/kolla-build.conf  tarballs_base pointing at http://127.0.0.1:PORT (serve DIR/tarballs there)
#
#   scripts/kolla-tree-fixture.sh DIR PORT [CA_FILE...]
#
# What the override replaces in kolla 20's debian base, and why:
#   - block base_ubuntu_package_key_installation: `gpg --recv-keys` from keyserver.ubuntu.com and
#     `curl` of vendor keys (docker, grafana, influxdb, mariadb, opensearch, proxysql,
#     treasuredata): none of those hosts is reachable; no image of the set uses those repos.
#   - `extrepo enable openstack_epoxy` (outside any block): extrepo reads its index online. The
#     block base_debian_after_sources_list, which comes just before that step, puts an `extrepo`
#     that does nothing first on PATH (removed in base_footer). The source images need nothing
#     from Debian's OpenStack repository.
#   - the machine's CA (a TLS-intercepting proxy stands before PyPI): installed with
#     update-ca-certificates in base_debian_after_sources_list; pip told to use the system bundle
#     in base_pip_conf. The PEM is inlined at run time from CA_FILE; nothing is committed.
# Sdists are downloaded once into DIR/sdists (pip download); a rerun reuses them.
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${1:?usage: $0 DIR PORT [CA_FILE...]}"
port="${2:?usage: $0 DIR PORT [CA_FILE...]}"
shift 2
branch=stable-2025.1
# kolla's project directory name -> the PyPI requirement of its 2025.1 release.
declare -A projects=(
    [keystone]=keystone==27.0.0
    [glance]=glance==30.0.0
    [placement]=openstack-placement==13.0.0
    [nova]=nova==31.0.0
)

mkdir -p "$dir/sdists" "$dir/tarballs/openstack"
for project in "${!projects[@]}"; do
    requirement="${projects[$project]}"
    target="$dir/tarballs/openstack/$project/$project-$branch.tar.gz"
    [[ -s "$target" ]] && continue
    name="${requirement%%==*}"
    version="${requirement##*==}"
    # sdist names: `-` as `_` since PEP 625, as published before it otherwise.
    find_sdist() {
        find "$dir/sdists" -maxdepth 1 \( -name "${name//-/_}-$version.tar.gz" \
            -o -name "$name-$version.tar.gz" \) | head -n 1
    }
    sdist=$(find_sdist)
    if [[ -z "$sdist" ]]; then
        python3 -m pip download --quiet --no-deps --no-binary :all: -d "$dir/sdists" "$requirement"
        sdist=$(find_sdist)
    fi
    [[ -n "$sdist" ]] || { echo "kolla-tree-fixture: pip downloaded no sdist for $requirement" >&2; exit 1; }
    mkdir -p "$(dirname "$target")"
    cp "$sdist" "$target.partial" && mv "$target.partial" "$target"
done

requirements="$dir/tarballs/openstack/requirements/requirements-$branch.tar.gz"
if [[ ! -s "$requirements" ]]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    mkdir -p "$work/requirements-$branch" "$(dirname "$requirements")"
    cp base/constraints/2025.1.txt "$work/requirements-$branch/upper-constraints.txt"
    tar -C "$work" --owner=0 --group=0 --mtime=@0 --sort=name -czf "$requirements.partial" \
        "requirements-$branch"
    mv "$requirements.partial" "$requirements"
fi

{
    echo '{% extends parent_template %}'
    echo
    echo '{# Air-gapped: no key server, no vendor hosts (scripts/kolla-tree-fixture.sh says why). #}'
    echo '{% block base_ubuntu_package_key_installation %}{% endblock %}'
    echo
    echo '{% block base_debian_after_sources_list %}'
    echo "RUN printf '#!/bin/sh\\necho \"extrepo (air-gapped): \$*: skipped\"\\n' >/usr/local/bin/extrepo \\"
    echo '    && chmod 755 /usr/local/bin/extrepo'
    for ca in "$@"; do
        base=$(basename "$ca" .crt)
        # One RUN per certificate, the PEM as one base64 word (no quoting to get wrong).
        echo "RUN echo $(base64 -w0 "$ca") | base64 -d >/usr/local/share/ca-certificates/$base.crt \\"
        echo '    && update-ca-certificates'
    done
    echo '{% endblock %}'
    echo
    echo '{% block base_pip_conf %}'
    echo 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt'
    echo '{% endblock %}'
    echo
    echo '{% block base_footer %}'
    echo 'RUN rm -f /usr/local/bin/extrepo'
    echo '{% endblock %}'
} >"$dir/override.j2.partial"
mv "$dir/override.j2.partial" "$dir/override.j2"

# kolla's defaults give nova-base a plugin (blazar-nova) from tarballs_base as well; a site
# without blazar disables it, as kolla's configuration allows.
cat >"$dir/kolla-build.conf.partial" <<EOF
[DEFAULT]
base = debian
tarballs_base = http://127.0.0.1:$port
template_override = $dir/override.j2

[nova-base-plugin-blazar]
enabled = false
EOF
mv "$dir/kolla-build.conf.partial" "$dir/kolla-build.conf"
echo "kolla-tree-fixture: $dir (tarballs for port $port, override.j2, kolla-build.conf)"
