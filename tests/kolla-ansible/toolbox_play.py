"""Writes a playbook of the tasks kolla-ansible runs through its kolla_toolbox container, taken
from the installed kolla-ansible's own role task files (never a copy kept here): for
tests/kolla_ansible.rs, which runs it with kolla-ansible's `kolla_toolbox` module against the
image under test.

    python toolbox_play.py ANSIBLE_DIR OUT_DIR STEP...

ANSIBLE_DIR is kolla-ansible's share/kolla-ansible/ansible. A STEP is `role:tasks_file` or
`role:tasks_file:name` (only the task of that name). From the file, the tasks kept are those
that call `kolla_toolbox` and the imports of the service-ks-register role (whose tasks all
do); anything else there (kolla_container's bootstrap containers, `docker exec`) the test does
itself. Each STEP becomes a play with the role's defaults as vars, minus the names
group_vars/all.yml sets (there, as in a role, group_vars win). Prints the playbook's path.
"""
import os
import sys

import yaml

TOOLBOX_ROLES = {"service-ks-register"}


def load(path):
    with open(path) as f:
        return yaml.safe_load(f) or {}


def toolbox_tasks(tasks, name):
    kept = []
    for task in tasks:
        imported = task.get("import_role") or task.get("include_role") or {}
        if "kolla_toolbox" in task or imported.get("name") in TOOLBOX_ROLES:
            if name is None or task.get("name") == name:
                kept.append(task)
    return kept


def main(ansible_dir, out_dir, steps):
    group_vars = set(load(os.path.join(ansible_dir, "group_vars", "all.yml")))
    plays = []
    for step in steps:
        role, tasks_file, *name = step.split(":", 2)
        name = name[0] if name else None
        role_dir = os.path.join(ansible_dir, "roles", role)
        tasks = toolbox_tasks(load(os.path.join(role_dir, "tasks", tasks_file)), name)
        if not tasks:
            sys.exit(f"{step}: no kolla_toolbox task in roles/{role}/tasks/{tasks_file}")
        defaults = load(os.path.join(role_dir, "defaults", "main.yml"))
        role_vars = {k: v for k, v in defaults.items() if k not in group_vars}
        vars_path = os.path.join(out_dir, f"toolbox-vars-{role}.yml")
        with open(vars_path, "w") as f:
            yaml.safe_dump(role_vars, f)
        plays.append({
            "name": step,
            "hosts": "localhost",
            "gather_facts": False,
            "vars_files": [vars_path],
            "tasks": [
                # render.yml's grouping (the mariadb role does it in its own play).
                {"name": "Group MariaDB hosts based on shards",
                 "add_host": {"name": "{{ item }}",
                              "groups": "{{ hostvars[item]['mariadb_shard_group'] }}"},
                 "loop": "{{ groups['mariadb'] }}", "changed_when": False},
            ] + tasks,
        })
    # kolla-ansible's own fact gathering first, as its playbooks do: filters like kolla_address
    # read the interfaces from the facts.
    plays.insert(0, {"import_playbook": "gather-facts.yml"})
    path = os.path.join(out_dir, "toolbox.yml")
    with open(path, "w") as f:
        yaml.safe_dump(plays, f, sort_keys=False)
    print(path)


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
