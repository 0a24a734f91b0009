"""Unit tests of base/set_configs.py (kolla_set_configs), run on the host with python3 by the
Rust test `set_configs::python_unit_tests` (or directly: python3 -m unittest discover tests/python).

They work in temporary directories with the current user as owner, so they need no root."""

import grp
import importlib.util
import io
import json
import logging
import os
import pwd
import stat
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "base", "set_configs.py")

spec = importlib.util.spec_from_file_location("set_configs", SCRIPT)
sc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sc)

UID = os.getuid()
GID = os.getgid()
USER = pwd.getpwuid(UID).pw_name
GROUP = grp.getgrgid(GID).gr_name


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


class SetConfigsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name
        self.config_dir = self.path("config_files")
        os.makedirs(self.config_dir)
        self.run_command = self.path("run_command")
        self.marker = self.path("configured")
        self.log = io.StringIO()
        handler = logging.StreamHandler(self.log)
        sc.LOG.addHandler(handler)
        sc.LOG.setLevel(logging.INFO)
        self.addCleanup(sc.LOG.removeHandler, handler)

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def write(self, rel, text, mode=0o644):
        path = self.path(rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(text)
        os.chmod(path, mode)
        return path

    def config(self, config):
        with open(os.path.join(self.config_dir, "config.json"), "w") as handle:
            handle.write(config if isinstance(config, str) else json.dumps(config))

    def run_it(self, strategy="COPY_ALWAYS"):
        env = {} if strategy is None else {"KOLLA_CONFIG_STRATEGY": strategy}
        return sc.run(self.config_dir, self.run_command, self.marker, env)

    # -------------------------------------------------------------- parsing

    def test_perm_forms(self):
        for text in ("0640", "640", "0o640", "0O640"):
            self.assertEqual(sc.parse_perm(text, "x"), 0o640, text)
        self.assertEqual(sc.parse_perm(600, "x"), 0o600)
        for bad in ("0900", "rw-r--r--", "", "12345", True, None):
            with self.assertRaises(sc.ConfigError, msg=repr(bad)):
                sc.parse_perm(bad, "x")

    def test_owner_forms(self):
        self.assertEqual(sc.parse_owner(USER, "x"), (UID, pwd.getpwuid(UID).pw_gid))
        self.assertEqual(sc.parse_owner("%s:%s" % (USER, GROUP), "x"), (UID, GID))
        self.assertEqual(sc.parse_owner("%d:%d" % (UID, GID), "x"), (UID, GID))
        with self.assertRaisesRegex(sc.ConfigError, "no user 'nosuchuser-kb'"):
            sc.parse_owner("nosuchuser-kb", "x")
        with self.assertRaisesRegex(sc.ConfigError, "no group 'nosuchgroup-kb'"):
            sc.parse_owner("%s:nosuchgroup-kb" % USER, "x")

    def test_config_errors_are_reported_and_exit_1(self):
        cases = [
            ("{not json", "not valid JSON"),
            ("[]", "JSON object"),
            ({"config_files": []}, "`command`"),
            ({"command": "true", "config_files": {}}, "config_files must be a list"),
            ({"command": "true", "config_files": [{"source": "/a"}]}, "'dest'"),
            ({"command": "true", "config_files": [{"source": "/a", "dest": "/b", "perm": "0600"}]},
             "'owner'"),
            ({"command": "true", "config_files": [{"source": "/a", "dest": "/b", "owner": USER}]},
             "'perm'"),
            ({"command": "true", "config_files": [
                {"source": "/a", "dest": "/b", "owner": USER, "perm": "0600", "merge": "yes"}]},
             "merge must be true or false"),
            ({"command": "true", "permissions": [{"path": "/a"}]}, "'owner'"),
            ({"command": "true", "permissions": [{"path": "/a", "owner": USER, "exclude": ["("]}]},
             "bad exclude regex"),
        ]
        for config, message in cases:
            self.log.truncate(0)
            self.log.seek(0)
            self.config(config)
            self.assertEqual(self.run_it(), 1, config)
            self.assertIn(message, self.log.getvalue(), config)
            self.assertFalse(os.path.exists(self.run_command), "nothing is written on error")

    def test_missing_config_json(self):
        self.assertEqual(self.run_it(), 1)
        self.assertIn("config.json does not exist", self.log.getvalue())

    def test_strategy_is_required(self):
        self.config({"command": "true"})
        for strategy in (None, "", "COPY_SOMETIMES"):
            self.assertEqual(self.run_it(strategy), 1)
            self.assertIn("KOLLA_CONFIG_STRATEGY", self.log.getvalue())

    # -------------------------------------------------------------- actions

    def test_command_and_a_file(self):
        src = self.write("config_files/svc.conf", "[DEFAULT]\n", 0o666)
        dest = self.path("etc/svc/svc.conf")
        self.config({"command": "/usr/bin/svc --flag", "config_files": [
            {"source": src, "dest": dest, "owner": "%s:%s" % (USER, GROUP), "perm": "0600"}]})
        self.assertEqual(self.run_it(), 0, self.log.getvalue())
        with open(self.run_command) as handle:
            self.assertEqual(handle.read(), "/usr/bin/svc --flag")
        self.assertEqual(mode_of(self.run_command), 0o644)
        with open(dest) as handle:
            self.assertEqual(handle.read(), "[DEFAULT]\n")
        self.assertEqual(mode_of(dest), 0o600)
        self.assertEqual((os.stat(dest).st_uid, os.stat(dest).st_gid), (UID, GID))

    def test_glob_into_directory_and_optional(self):
        a = self.write("config_files/ca-a.pem", "a")
        self.write("config_files/ca-b.pem", "b")
        self.write("config_files/other.txt", "x")
        certs = self.path("etc/certs") + "/"
        self.config({"command": "true", "config_files": [
            {"source": os.path.dirname(a) + "/ca-*.pem", "dest": certs, "owner": USER, "perm": "0644"},
            {"source": self.path("config_files/absent.conf"), "dest": self.path("etc/absent.conf"),
             "owner": USER, "perm": "0600", "optional": True}]})
        self.assertEqual(self.run_it(), 0, self.log.getvalue())
        self.assertEqual(sorted(os.listdir(certs)), ["ca-a.pem", "ca-b.pem"])
        self.assertFalse(os.path.exists(self.path("etc/absent.conf")))

    def test_required_source_missing(self):
        self.config({"command": "true", "config_files": [
            {"source": self.path("config_files/absent.conf"), "dest": self.path("etc/x"),
             "owner": USER, "perm": "0600"}]})
        self.assertEqual(self.run_it(), 1)
        self.assertIn("absent.conf does not exist", self.log.getvalue())

    def test_directory_replace_and_merge(self):
        self.write("config_files/conf.d/new.conf", "new")
        self.write("config_files/conf.d/sub/deep.conf", "deep")
        for merge in (False, True):
            dest = self.path("etc-%s/conf.d" % merge)
            old = os.path.join(dest, "old.conf")
            os.makedirs(dest)
            with open(old, "w") as handle:
                handle.write("old")
            self.config({"command": "true", "config_files": [
                {"source": self.path("config_files/conf.d"), "dest": dest, "owner": USER,
                 "perm": "0640", "merge": merge}]})
            self.assertEqual(self.run_it(), 0, self.log.getvalue())
            self.assertEqual(os.path.exists(old), merge, "merge keeps what was there")
            self.assertTrue(os.path.isfile(os.path.join(dest, "sub/deep.conf")))
            self.assertEqual(mode_of(os.path.join(dest, "new.conf")), 0o640)
            # Directories get the search bits of their read bits.
            self.assertEqual(mode_of(os.path.join(dest, "sub")), 0o750)
            self.assertEqual(mode_of(dest), 0o750)

    def test_preserve_properties(self):
        src = self.write("config_files/script.sh", "#!/bin/sh\n", 0o751)
        dest = self.path("usr/bin/script.sh")
        self.config({"command": "true", "config_files": [
            {"source": src, "dest": dest, "preserve_properties": True}]})
        self.assertEqual(self.run_it(), 0, self.log.getvalue())
        self.assertEqual(mode_of(dest), 0o751)

    def test_permissions_recurse_and_exclude(self):
        self.write("var/log/svc/a.log", "a", 0o600)
        self.write("var/log/svc/keep/b.log", "b", 0o600)
        self.config({"command": "true", "permissions": [
            {"path": self.path("var/log/sv*"), "owner": "%s:%s" % (USER, GROUP), "perm": "0644",
             "recurse": True, "exclude": ["/keep/"]},
            {"path": self.path("nothing-here/*"), "owner": USER}]})
        self.assertEqual(self.run_it(), 0, self.log.getvalue())
        self.assertEqual(mode_of(self.path("var/log/svc")), 0o755)
        self.assertEqual(mode_of(self.path("var/log/svc/a.log")), 0o644)
        self.assertEqual(mode_of(self.path("var/log/svc/keep/b.log")), 0o600, "excluded")

    def test_directories_and_files(self):
        self.config({"command": "true",
                     "directories": [{"path": self.path("var/lib/svc"), "owner": USER, "perm": "0700"}],
                     "files": [{"path": self.path("var/lib/svc/state"), "owner": USER, "perm": "0600"}]})
        self.assertEqual(self.run_it(), 0, self.log.getvalue())
        self.assertEqual(mode_of(self.path("var/lib/svc")), 0o700)
        self.assertEqual(mode_of(self.path("var/lib/svc/state")), 0o600)

    def test_copy_always_and_copy_once(self):
        src = self.write("config_files/svc.conf", "one")
        dest = self.path("etc/svc.conf")
        self.config({"command": "first", "config_files": [
            {"source": src, "dest": dest, "owner": USER, "perm": "0600"}]})
        self.assertEqual(self.run_it("COPY_ONCE"), 0, self.log.getvalue())
        self.assertTrue(os.path.exists(self.marker))
        self.write("config_files/svc.conf", "two")
        self.config({"command": "second", "config_files": [
            {"source": src, "dest": dest, "owner": USER, "perm": "0600"}]})
        self.assertEqual(self.run_it("COPY_ONCE"), 0)
        with open(dest) as handle:
            self.assertEqual(handle.read(), "one", "COPY_ONCE changes nothing the second time")
        with open(self.run_command) as handle:
            self.assertEqual(handle.read(), "first")
        self.assertEqual(self.run_it("COPY_ALWAYS"), 0)
        with open(dest) as handle:
            self.assertEqual(handle.read(), "two")
        with open(self.run_command) as handle:
            self.assertEqual(handle.read(), "second")


if __name__ == "__main__":
    unittest.main()
