#!/usr/bin/env python3
"""Unpacks named Ansible collections from the `ansible` community package's wheel.

    kolla_install_collections WHEEL DEST NAMESPACE.NAME...

Each collection lands in DEST/ansible_collections/<namespace>/<name> with its MANIFEST.json,
as `ansible-galaxy collection install -p DEST` lays it out. A name the wheel lacks is an error.
"""
import json
import os
import sys
import zipfile


def main(wheel, dest, names):
    with zipfile.ZipFile(wheel) as archive:
        members = archive.namelist()
        for name in names:
            namespace, _, collection = name.partition(".")
            prefix = f"ansible_collections/{namespace}/{collection}/"
            wanted = [m for m in members if m.startswith(prefix) and not m.endswith("/")]
            if prefix + "MANIFEST.json" not in wanted:
                sys.exit(f"{wheel}: no collection {name} in this release of ansible")
            for member in wanted:
                target = os.path.join(dest, member)
                if not os.path.realpath(target).startswith(os.path.realpath(dest) + os.sep):
                    sys.exit(f"{wheel}: {member} would land outside {dest}")
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with archive.open(member) as src, open(target, "wb") as out:
                    out.write(src.read())
            manifest = json.loads(archive.read(prefix + "MANIFEST.json"))
            print(f"{name} {manifest['collection_info']['version']}")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
