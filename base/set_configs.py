#!/usr/bin/python3
"""kolla_set_configs: lays the deployment's configuration into the container.

Reads /var/lib/kolla/config_files/config.json, written by the deploy tool (kolla-ansible and the
like) and mounted read-only with the configuration files beside it:

    {
      "command": "/usr/sbin/apache2 -DFOREGROUND",
      "config_files": [
        {"source": "/var/lib/kolla/config_files/keystone.conf",
         "dest": "/etc/keystone/keystone.conf", "owner": "keystone", "perm": "0600"},
        {"source": "/var/lib/kolla/config_files/ca-*.pem", "dest": "/etc/pki/",
         "owner": "root", "perm": "0644", "optional": true}
      ],
      "permissions": [
        {"path": "/var/log/kolla/keystone", "owner": "keystone:kolla", "recurse": true}
      ]
    }

- `command` is written to /run_command, which kolla_start executes.
- `directories[]` ({path, owner, perm}) are created, `files[]` ({path, owner, perm}) touched.
- `config_files[]`: `source` may be a glob; a `dest` ending in `/` receives each match under its
  own name. Without `merge` the destination is removed first; with it, directories are merged
  into the existing ones. `owner` ("user" or "user:group") and `perm` ("0640", "640" or "0o640")
  are required unless `preserve_properties` keeps the source's mode and ownership. A source that
  matches nothing is an error unless `optional`.
- `permissions[]`: `path` (glob), `owner`, optional `perm`, `recurse` and `exclude` (regexes of
  paths left alone when recursing). A directory gets the execute bit of every read bit of `perm`.

KOLLA_CONFIG_STRATEGY is COPY_ALWAYS (every start) or COPY_ONCE (the first start only: later
starts find /configured and change nothing). Exit status: 0 on success, 1 with a message on any
error (bad JSON, a missing key, a missing source, an unknown user...).

Only the Python 3 standard library is used: this runs in every image, as root (through sudo).
"""

import glob
import grp
import json
import logging
import os
import pwd
import re
import shutil
import stat
import sys

CONFIG_DIR = "/var/lib/kolla/config_files"
CONFIG_FILE = "config.json"
RUN_COMMAND = "/run_command"
CONFIGURED_MARKER = "/configured"

LOG = logging.getLogger("kolla_set_configs")

STRATEGIES = ("COPY_ALWAYS", "COPY_ONCE")


class ConfigError(Exception):
    """An error the deployment can fix: reported in one line, exit status 1."""


# ------------------------------------------------------------------ parsing


def parse_perm(value, where):
    """'0600', '600' or '0o600' (a string, as in JSON) to an int mode."""
    if isinstance(value, int) and not isinstance(value, bool):
        # A bare JSON number can only be meant as octal digits (600, not 384).
        value = str(value)
    if not isinstance(value, str):
        raise ConfigError("%s: perm must be a string like \"0640\", got %r" % (where, value))
    text = value.strip()
    if text.lower().startswith("0o"):
        text = text[2:]
    if not text or not re.fullmatch(r"[0-7]{1,4}", text):
        raise ConfigError("%s: perm %r is not an octal mode like \"0640\"" % (where, value))
    return int(text, 8)


def parse_owner(value, where):
    """'user' or 'user:group' (names or numeric ids) to (uid, gid).

    Without a group, the user's primary group is used."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("%s: owner must be \"user\" or \"user:group\", got %r" % (where, value))
    user, _, group = value.strip().partition(":")
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        uid = entry.pw_uid
        primary_gid = entry.pw_gid
    except (KeyError, ValueError):
        if user.isdigit():
            uid, primary_gid = int(user), int(user)
        else:
            raise ConfigError("%s: no user %r in this image" % (where, user))
    if not group:
        return uid, primary_gid
    if group.isdigit():
        return uid, int(group)
    try:
        return uid, grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigError("%s: no group %r in this image" % (where, group))


def _bool(entry, key, where):
    value = entry.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError("%s: %s must be true or false, got %r" % (where, key, value))
    return value


def _string(entry, key, where):
    if key not in entry:
        raise ConfigError("%s: missing required key %r" % (where, key))
    value = entry[key]
    if not isinstance(value, str) or not value:
        raise ConfigError("%s: %s must be a non-empty string, got %r" % (where, key, value))
    return value


def _list(config, key):
    value = config.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError("%s must be a list, got %s" % (key, type(value).__name__))
    for index, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise ConfigError("%s[%d] must be an object, got %r" % (key, index, entry))
    return value


def load_config(path):
    """Reads and validates config.json; returns the parsed dict."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise ConfigError("%s does not exist: the deployment mounts it with the config files" % path)
    except OSError as e:
        raise ConfigError("cannot read %s: %s" % (path, e))
    try:
        config = json.loads(text)
    except ValueError as e:
        raise ConfigError("%s is not valid JSON: %s" % (path, e))
    if not isinstance(config, dict):
        raise ConfigError("%s must hold a JSON object" % path)
    command = config.get("command")
    if not isinstance(command, str) or not command.strip():
        raise ConfigError("%s: `command` (the service's command line) is required" % path)
    known = {"command", "config_files", "permissions", "directories", "files"}
    for key in sorted(set(config) - known):
        LOG.warning("ignoring unknown key %r in %s", key, path)

    for index, entry in enumerate(_list(config, "config_files")):
        where = "config_files[%d]" % index
        _string(entry, "source", where)
        _string(entry, "dest", where)
        for key in ("optional", "merge", "preserve_properties"):
            _bool(entry, key, where)
        if not entry.get("preserve_properties", False):
            for key in ("owner", "perm"):
                if key not in entry:
                    raise ConfigError(
                        "%s: missing required key %r (needed unless preserve_properties)"
                        % (where, key))
        if "perm" in entry:
            parse_perm(entry["perm"], where)
    for index, entry in enumerate(_list(config, "permissions")):
        where = "permissions[%d]" % index
        _string(entry, "path", where)
        _string(entry, "owner", where)
        _bool(entry, "recurse", where)
        if "perm" in entry:
            parse_perm(entry["perm"], where)
        exclude = entry.get("exclude", [])
        if not isinstance(exclude, list) or not all(isinstance(x, str) for x in exclude):
            raise ConfigError("%s: exclude must be a list of regexes" % where)
        for pattern in exclude:
            try:
                re.compile(pattern)
            except re.error as e:
                raise ConfigError("%s: bad exclude regex %r: %s" % (where, pattern, e))
    for key in ("directories", "files"):
        for index, entry in enumerate(_list(config, key)):
            where = "%s[%d]" % (key, index)
            _string(entry, "path", where)
            _string(entry, "owner", where)
            if "perm" not in entry:
                raise ConfigError("%s: missing required key 'perm'" % where)
            parse_perm(entry["perm"], where)
    return config


# ------------------------------------------------------------------ actions


def set_owner_and_perm(path, uid, gid, mode, recurse=False, exclude=()):
    """chown/chmod `path` (and, with recurse, what it holds), without following symlinks."""
    patterns = [re.compile(p) for p in exclude]

    def apply(target):
        if any(p.search(target) for p in patterns):
            return
        os.lchown(target, uid, gid)
        if mode is None or os.path.islink(target):
            return
        effective = mode
        if os.path.isdir(target):
            # A readable directory must be searchable too.
            if mode & stat.S_IRUSR:
                effective |= stat.S_IXUSR
            if mode & stat.S_IRGRP:
                effective |= stat.S_IXGRP
            if mode & stat.S_IROTH:
                effective |= stat.S_IXOTH
        os.chmod(target, effective)

    apply(path)
    if recurse and os.path.isdir(path) and not os.path.islink(path):
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                apply(os.path.join(root, name))


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def _copy_one(source, dest, preserve):
    """Copies a file or a symlink (as a symlink); with preserve, keeps mode and ownership."""
    if os.path.lexists(dest) and (os.path.isdir(dest) and not os.path.islink(dest)):
        shutil.rmtree(dest)
    elif os.path.lexists(dest):
        os.remove(dest)
    if os.path.islink(source):
        os.symlink(os.readlink(source), dest)
    else:
        shutil.copyfile(source, dest)
    if preserve:
        shutil.copystat(source, dest, follow_symlinks=False)
        info = os.lstat(source)
        os.lchown(dest, info.st_uid, info.st_gid)


def _copy_tree(source, dest, preserve):
    """Merges directory `source` into `dest` (created when missing)."""
    if os.path.lexists(dest) and not os.path.isdir(dest):
        os.remove(dest)
    os.makedirs(dest, exist_ok=True)
    if preserve:
        shutil.copystat(source, dest)
        info = os.stat(source)
        os.chown(dest, info.st_uid, info.st_gid)
    for name in sorted(os.listdir(source)):
        src = os.path.join(source, name)
        dst = os.path.join(dest, name)
        if os.path.isdir(src) and not os.path.islink(src):
            _copy_tree(src, dst, preserve)
        else:
            _copy_one(src, dst, preserve)


def copy_config_file(entry, index):
    where = "config_files[%d]" % index
    source = entry["source"]
    dest = entry["dest"]
    optional = entry.get("optional", False)
    merge = entry.get("merge", False)
    preserve = entry.get("preserve_properties", False)
    sources = sorted(glob.glob(source))
    if not sources:
        if optional:
            LOG.info("%s: optional source %s is missing, skipped", where, source)
            return
        raise ConfigError("%s: the source %s does not exist (set \"optional\": true if it may be missing)"
                          % (where, source))
    if len(sources) > 1 and not dest.endswith("/"):
        LOG.info("%s: %d sources match %s; they are all copied to %s", where, len(sources), source, dest)
    owner = None if preserve else parse_owner(entry["owner"], where)
    mode = None if preserve else parse_perm(entry["perm"], where)
    for src in sources:
        target = os.path.join(dest, os.path.basename(src.rstrip("/"))) if dest.endswith("/") else dest
        LOG.info("copying %s to %s", src, target)
        parent = os.path.dirname(target.rstrip("/")) or "/"
        os.makedirs(parent, exist_ok=True)
        if not merge:
            _remove(target)
        if os.path.isdir(src) and not os.path.islink(src):
            _copy_tree(src, target, preserve)
        else:
            _copy_one(src, target, preserve)
        if not preserve:
            LOG.info("setting owner %s and mode %s on %s", entry["owner"], entry["perm"], target)
            set_owner_and_perm(target, owner[0], owner[1], mode, recurse=True)


def apply_permissions(entry, index):
    where = "permissions[%d]" % index
    uid, gid = parse_owner(entry["owner"], where)
    mode = parse_perm(entry["perm"], where) if "perm" in entry else None
    paths = sorted(glob.glob(entry["path"]))
    if not paths:
        LOG.info("%s: nothing matches %s, skipped", where, entry["path"])
    for path in paths:
        LOG.info("setting permissions of %s%s", path, " recursively" if entry.get("recurse") else "")
        set_owner_and_perm(path, uid, gid, mode, entry.get("recurse", False), entry.get("exclude", []))


def make_directory(entry, index):
    where = "directories[%d]" % index
    uid, gid = parse_owner(entry["owner"], where)
    mode = parse_perm(entry["perm"], where)
    path = entry["path"]
    if os.path.lexists(path) and not os.path.isdir(path):
        raise ConfigError("%s: %s exists and is not a directory" % (where, path))
    os.makedirs(path, exist_ok=True)
    set_owner_and_perm(path, uid, gid, mode)


def make_file(entry, index):
    where = "files[%d]" % index
    uid, gid = parse_owner(entry["owner"], where)
    mode = parse_perm(entry["perm"], where)
    path = entry["path"]
    if os.path.islink(path) or os.path.isdir(path):
        raise ConfigError("%s: %s is a symlink or a directory" % (where, path))
    if not os.path.isdir(os.path.dirname(path) or "/"):
        raise ConfigError("%s: the parent directory of %s does not exist" % (where, path))
    with open(path, "a"):
        pass
    set_owner_and_perm(path, uid, gid, mode)


def write_command(command, path):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(command)
    os.chmod(path, 0o644)


def execute(config, run_command=RUN_COMMAND):
    """Applies a validated config: directories, files, config files, permissions, command."""
    for index, entry in enumerate(_list(config, "directories")):
        make_directory(entry, index)
    for index, entry in enumerate(_list(config, "files")):
        make_file(entry, index)
    for index, entry in enumerate(_list(config, "config_files")):
        copy_config_file(entry, index)
    for index, entry in enumerate(_list(config, "permissions")):
        apply_permissions(entry, index)
    LOG.info("writing %s", run_command)
    write_command(config["command"], run_command)


def run(config_dir=CONFIG_DIR, run_command=RUN_COMMAND, marker=CONFIGURED_MARKER, environ=None):
    """The whole program; returns the exit status."""
    environ = os.environ if environ is None else environ
    try:
        strategy = environ.get("KOLLA_CONFIG_STRATEGY")
        if strategy not in STRATEGIES:
            raise ConfigError("KOLLA_CONFIG_STRATEGY must be COPY_ALWAYS or COPY_ONCE, got %r" % strategy)
        if strategy == "COPY_ONCE" and os.path.exists(marker):
            LOG.info("COPY_ONCE: %s exists, the configuration stays as it is", marker)
            return 0
        config = load_config(os.path.join(config_dir, CONFIG_FILE))
        execute(config, run_command)
        if strategy == "COPY_ONCE":
            with open(marker, "w"):
                pass
        return 0
    except ConfigError as e:
        LOG.error("%s", e)
        return 1
    except OSError as e:
        LOG.error("%s", e)
        return 1


def main():
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(levelname)s:%(name)s:%(message)s")
    if len(sys.argv) > 1:
        LOG.error("usage: kolla_set_configs (it takes no arguments; got %s)", " ".join(sys.argv[1:]))
        return 1
    return run()


if __name__ == "__main__":
    sys.exit(main())
