#!/usr/bin/env python3
"""Writes a synthetic template tree in this project's layout, for scripts/bench-scale.sh.

    scripts/scale-tree.py DIR N SHAPE [DEPTH]

DIR must not exist or be empty. It gets build.toml, base/ (Dockerfile.j2 and macros.j2) and N
images under images/<name>/ (a Dockerfile.j2 importing the macros, with header/footer blocks, a
package list through `customizable`, and one context file), plus base. SHAPE:

  deep   chains of DEPTH images (default 50), each chain hanging off base:
         base <- c0000-00 <- c0000-01 <- ... <- c0000-49, base <- c0001-00 <- ...
  chain  one chain of N images (deep as it gets)
  wide   every image a child of one parent (`parent`, itself a child of base), so N - 1 leaves
"""

import os
import sys

BASE = """\
FROM {{ base_image }}:{{ base_distro_tag }}
{% import "macros.j2" as macros with context %}
{%- block labels %}LABEL maintainer="{{ maintainer }}" name="{{ image_name }}"{% endblock %}
{% block base_header %}{% endblock %}
ENV KOLLA_BASE_DISTRO={{ base_distro }} \\
    KOLLA_INSTALL_TYPE={{ install_type }}
{{ macros.install_packages(['ca-certificates', 'curl'] | customizable("packages")) }}
COPY start.sh /usr/local/bin/kolla_start
{% block base_footer %}{% endblock %}
"""

MACROS = """\
{#- The few macros of base/macros.j2 the generated images call. -#}
{%- macro install_packages(packages) -%}
{%- if packages is defined and packages -%}
RUN {{ debian_package_install(packages) }}
{%- endif -%}
{%- endmacro -%}
"""

IMAGE = """\
FROM {{{{ namespace }}}}/{{{{ image_prefix }}}}{parent}:{{{{ tag }}}}
{{% import "macros.j2" as macros with context %}}
{{%- block labels %}}LABEL maintainer="{{{{ maintainer }}}}" name="{{{{ image_name }}}}"{{% endblock %}}
{{% block {block}_header %}}{{% endblock %}}
{{%- set {block}_packages = ['{name}-common', '{name}-tools'] %}}
{{{{ macros.install_packages({block}_packages | customizable("packages")) }}}}
COPY extend_start.sh /usr/local/bin/kolla_extend_start

{{% block {block}_footer %}}{{% endblock %}}
"""


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def parents(n, shape, depth):
    """(name, parent) for each of the n images, parents before children."""
    if shape == "wide":
        yield "parent", "base"
        for i in range(1, n):
            yield f"leaf-{i:05d}", "parent"
    elif shape == "chain":
        parent = "base"
        for i in range(n):
            name = f"link-{i:05d}"
            yield name, parent
            parent = name
    elif shape == "deep":
        for i in range(n):
            chain, link = divmod(i, depth)
            name = f"c{chain:04d}-{link:02d}" if depth <= 100 else f"c{chain:04d}-{link:05d}"
            yield name, "base" if link == 0 else prev
            prev = name
    else:
        raise SystemExit(f"scale-tree.py: unknown shape `{shape}` (deep, chain or wide)")


def main():
    if len(sys.argv) not in (4, 5):
        raise SystemExit(__doc__)
    root, n, shape = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    depth = int(sys.argv[4]) if len(sys.argv) == 5 else 50
    if os.path.exists(root) and os.listdir(root):
        raise SystemExit(f"scale-tree.py: {root} is not empty")
    write(os.path.join(root, "build.toml"), 'base = "debian"\nprofile = []\n')
    write(os.path.join(root, "base", "Dockerfile.j2"), BASE)
    write(os.path.join(root, "base", "macros.j2"), MACROS)
    write(os.path.join(root, "base", "start.sh"), "#!/bin/sh\nexec \"$@\"\n")
    count = 0
    for name, parent in parents(n, shape, depth):
        block = name.replace("-", "_")
        folder = os.path.join(root, "images", name)
        write(os.path.join(folder, "Dockerfile.j2"), IMAGE.format(parent=parent, name=name, block=block))
        write(os.path.join(folder, "extend_start.sh"), f"echo {name}\n")
        count += 1
    print(f"{count} images ({shape}) in {root}")


if __name__ == "__main__":
    main()
