//! kolla's own tree built through our binary (issue 24): kolla 20.6.0 (2025.1) from PyPI, with
//! only what an air-gapped operator writes (scripts/kolla-tree-fixture.sh): a kolla-build.conf
//! whose `tarballs_base` is a loopback HTTP server (Python's `http.server`, not ours) serving
//! kolla's default file names made from the 2025.1 sdists on PyPI, a template override of the
//! steps that reach hosts this machine cannot reach, and a `debian:bookworm` base made by
//! `--bootstrap-base`. On top, one plugin (`type = local`, a directory), one addition
//! (`type = url`), one `type = git` source (a local repository, a tag as `reference`) and a
//! `patches_path` whose keystone-base series adds a module to keystone.
//!
//! Then: a second run downloads nothing (the server's log shows only 304s) and builds nothing;
//! kolla-ansible 20.6.0 deploys the images and they answer (tests/kolla_ansible.rs); a source that answers 404 fails its image alone, naming image, section and location, and its
//! descendants are not built; changing the served keystone tarball rebuilds keystone-base and
//! its descendants only.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::engine::{Namespace, engine_lock, kolla_build, names, set};
use crate::kolla_peer::Peer;
use crate::support::REPO;

/// What the issue asks to be built: the keystone, glance, placement and nova-api chains.
const SELECTED: [&str; 6] = [
    "^keystone$",
    "^keystone-fernet$",
    "^keystone-ssh$",
    "^glance-api$",
    "^placement-api$",
    "^nova-api$",
];
const BUILT: [&str; 12] = [
    "base",
    "openstack-base",
    "keystone-base",
    "keystone",
    "keystone-fernet",
    "keystone-ssh",
    "glance-base",
    "glance-api",
    "placement-base",
    "placement-api",
    "nova-base",
    "nova-api",
];
const KEYSTONE: [&str; 4] = [
    "keystone-base",
    "keystone",
    "keystone-fernet",
    "keystone-ssh",
];

/// Python's `http.server` on a free loopback port, serving `dir`; its log names every request
/// and the status it answered (a conditional GET of an unchanged file gets 304).
struct TarballServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl TarballServer {
    fn start(dir: &Path, log: PathBuf) -> TarballServer {
        let mut child = Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "0",
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("python3 -m http.server");
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("http.server says its port within 30 s");
        let port = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        TarballServer { child, port, log }
    }

    /// (path, status) of every request answered since the log had `from` bytes.
    fn requests_since(&self, from: usize) -> Vec<(String, String)> {
        let log = std::fs::read_to_string(&self.log).unwrap();
        log[from..]
            .lines()
            .filter_map(|line| {
                // 127.0.0.1 - - [07/Dec/2026 09:36:27] "GET /a/b.tar.gz HTTP/1.1" 304 -
                let (_, rest) = line.split_once("\"GET ")?;
                let (path, rest) = rest.split_once(' ')?;
                let status = rest.split('"').nth(1)?.split_whitespace().next()?;
                Some((path.to_string(), status.to_string()))
            })
            .collect()
    }

    fn log_len(&self) -> usize {
        std::fs::metadata(&self.log).map_or(0, |m| m.len() as usize)
    }
}

impl Drop for TarballServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The host's CA files, for the override (a TLS-intercepting proxy stands before PyPI).
fn ca_files() -> Vec<PathBuf> {
    let mut certs: Vec<PathBuf> = std::fs::read_dir("/usr/local/share/ca-certificates")
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    certs.retain(|p| p.extension().is_some_and(|e| e == "crt"));
    certs.sort();
    certs
}

/// A tar.gz of `files` (name, text) under `top/`, as `tar` writes it.
fn tarball(dest: &Path, top: &str, files: &[(&str, &str)]) {
    let work = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = work.path().join(top).join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    run(
        Command::new("tar")
            .arg("-czf")
            .arg(dest)
            .arg("-C")
            .arg(work.path())
            .arg(top),
        "tar",
    );
}

/// A pip-installable package in a directory: the nova-base plugin (kolla pip-installs
/// `/plugins/*` into the venv).
fn plugin_package(dir: &Path) {
    let files = [
        (
            "pyproject.toml",
            "[build-system]\nrequires = [\"setuptools\"]\nbuild-backend = \"setuptools.build_meta\"\n\n\
             [project]\nname = \"kbtest-nova-plugin\"\nversion = \"1.0\"\n",
        ),
        (
            "kbtest_nova_plugin/__init__.py",
            "MARK = 'kbtest nova plugin'\n",
        ),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// placement 13.0.0's sdist as a git repository tagged `13.0.0` (a git source at a tag).
fn placement_repository(sdist: &Path, repo: &Path) {
    let _ = std::fs::remove_dir_all(repo);
    std::fs::create_dir_all(repo).unwrap();
    run(
        Command::new("tar")
            .arg("-xzf")
            .arg(sdist)
            .arg("-C")
            .arg(repo)
            .arg("--strip-components=1"),
        "unpacking placement's sdist",
    );
    let git = |args: &[&str]| {
        run(
            Command::new("git")
                .args([
                    "-c",
                    "user.name=kbtest",
                    "-c",
                    "user.email=kbtest@localhost",
                ])
                .args(args)
                .current_dir(repo),
            &format!("git {args:?}"),
        )
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "placement 13.0.0"]);
    git(&["tag", "13.0.0"]);
}

/// `docker run --rm --entrypoint sh IMAGE -c SCRIPT` succeeds.
/// A `patches_path` folder: keystone-base's series names one patch, made as `diff -u` writes
/// it and applied by kolla's `kolla_patch` from `/` with `-p0`: it adds a module to the
/// installed keystone package.
fn patches(dir: &Path) -> PathBuf {
    let keystone = dir.join("keystone-base");
    std::fs::create_dir_all(&keystone).unwrap();
    std::fs::write(
        keystone.join("series"),
        "# kolla-build's test patch\nkbtest.patch\n",
    )
    .unwrap();
    std::fs::write(
        keystone.join("kbtest.patch"),
        "--- /dev/null\n\
         +++ var/lib/kolla/venv/lib/python3.11/site-packages/keystone/kbtest_patched.py\n\
         @@ -0,0 +1 @@\n\
         +PATCHED = True\n",
    )
    .unwrap();
    dir.to_path_buf()
}

fn holds(image: &str, script: &str) -> bool {
    Command::new("timeout")
        .args([
            "120",
            "docker",
            "run",
            "--rm",
            "--entrypoint",
            "sh",
            image,
            "-c",
            script,
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn kolla_20s_own_tree_builds_with_its_sources_then_is_fresh_and_rebuilds_what_a_source_changes() {
    // The peer, the sources and the fixture need no engine: they are made while other tests
    // hold it (on a bare machine they are downloads).
    let peer = Peer::install("kolla==20.6.0");
    let fixture = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kolla-tree");
    let tarballs = fixture.join("tarballs");
    std::fs::create_dir_all(&tarballs).unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = TarballServer::start(&tarballs, work.path().join("http.log"));
    let mut fixture_cmd = Command::new("bash");
    fixture_cmd
        .arg(Path::new(REPO).join("scripts/kolla-tree-fixture.sh"))
        .arg(&fixture)
        .arg(server.port.to_string())
        .args(ca_files());
    run(&mut fixture_cmd, "scripts/kolla-tree-fixture.sh");

    // The plugin, the addition and the git source, beside what the fixture wrote.
    let extras = work.path().join("extras");
    plugin_package(&extras.join("kbtest-nova-plugin"));
    tarball(
        &tarballs.join("extra/kbtest-addition.tar.gz"),
        "kbtest-addition",
        &[("kbtest-addition.txt", "an addition\n")],
    );
    placement_repository(
        &tarballs.join("openstack/placement/placement-stable-2025.1.tar.gz"),
        &extras.join("placement.git"),
    );
    let patches = patches(&extras.join("patches"));
    let base_conf = std::fs::read_to_string(fixture.join("kolla-build.conf")).unwrap();
    let port = server.port;
    // kolla's `patches_path` goes in [DEFAULT], which the fixture's file opens with.
    let base_conf = base_conf.replacen(
        "[DEFAULT]\n",
        &format!("[DEFAULT]\npatches_path = {}\n", patches.display()),
        1,
    );
    let conf = format!(
        "{base_conf}\n\
         [nova-base-plugin-kbtest]\ntype = local\nlocation = {plugin}\n\n\
         [glance-api-additions-kbtest]\ntype = url\n\
         location = http://127.0.0.1:{port}/extra/kbtest-addition.tar.gz\n\n\
         [placement-base]\ntype = git\nlocation = {repo}\nreference = 13.0.0\n",
        plugin = extras.join("kbtest-nova-plugin").display(),
        repo = extras.join("placement.git").display(),
    );
    std::fs::write(work.path().join("kolla-build.conf"), &conf).unwrap();
    // kolla's glance-api does not ADD the additions: a site that has some adds them so.
    std::fs::write(
        work.path().join("additions.j2"),
        "{% extends parent_template %}\n{% block glance_api_footer %}\nADD additions-archive /\n{% endblock %}\n",
    )
    .unwrap();

    // Declared before the namespace, so that its images go while the lock is still held.
    let _lock;
    let ns = Namespace::new("kolla-tree");
    // kolla-ansible's configuration needs no engine either.
    let deployment = crate::kolla_ansible::kolla_trees_deployment(&ns.0, &peer.version);
    _lock = engine_lock();
    let mut args: Vec<String> = vec![
        "--config-file".into(),
        "kolla-build.conf".into(),
        "--images-dir".into(),
        peer.tree.display().to_string(),
        "--template-override".into(),
        "additions.j2".into(),
        "--namespace".into(),
        ns.0.clone(),
        "--bootstrap-base".into(),
        "--cache-dir".into(),
        "cache".into(),
        "--logs-dir".into(),
        "logs".into(),
        "--format".into(),
        "none".into(),
    ];
    args.extend(SELECTED.iter().map(|s| s.to_string()));
    let reference = |image: &str| format!("{}/{image}:{}", ns.0, peer.version);

    // 1. Cold: every image built, each source fetched once.
    let cold = kolla_build(work.path(), &args);
    assert_eq!(cold.code, Some(0), "cold build failed:\n{}", cold.stderr);
    assert_eq!(
        names(&cold.summary, "built", |_| true),
        set(&BUILT),
        "{}",
        cold.summary
    );
    let fetched = server.requests_since(0);
    let paths: BTreeSet<&str> = fetched.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths.len(),
        fetched.len(),
        "a source fetched twice: {fetched:?}"
    );
    assert!(fetched.iter().all(|(_, s)| s == "200"), "{fetched:?}");
    assert!(
        holds(
            &reference("nova-api"),
            "/var/lib/kolla/venv/bin/python -c 'import kbtest_nova_plugin'"
        ),
        "the local plugin is installed in nova-base's venv"
    );
    assert!(
        holds(
            &reference("glance-api"),
            "find /additions -name kbtest-addition.txt | grep -q ."
        ),
        "the url addition is in glance-api"
    );
    assert!(
        holds(
            &reference("placement-api"),
            "test -d /placement-base-source/placement-base-archive-13.0.0/.git \
             && /var/lib/kolla/venv/bin/pip show openstack-placement | grep -q '^Version: 13.0.0'"
        ),
        "placement is installed from the git source at its tag"
    );
    assert!(
        holds(
            &reference("keystone"),
            "/var/lib/kolla/venv/bin/pip show keystone | grep -q '^Version: 27.0.0'"
        ),
        "keystone 27.0.0 from the served tarball"
    );
    assert!(
        holds(
            &reference("keystone"),
            "/var/lib/kolla/venv/bin/python -c 'import keystone.kbtest_patched as p; assert p.PATCHED' \
             && grep -qx 'kbtest.patch' /patches/series.applied"
        ),
        "keystone-base's patch is applied by kolla_patch"
    );

    // 2. No-op: nothing downloaded (conditional GETs answered 304), nothing built.
    let mark = server.log_len();
    let warm = kolla_build(work.path(), &args);
    assert_eq!(warm.code, Some(0), "{}", warm.stderr);
    assert_eq!(
        names(&warm.summary, "built", |e| e["fresh"] == true),
        set(&BUILT),
        "{}",
        warm.summary
    );
    let again = server.requests_since(mark);
    assert!(!again.is_empty(), "the sources are revalidated");
    assert!(
        again.iter().all(|(_, status)| status == "304"),
        "a second run downloads nothing: {again:?}"
    );

    // 3. kolla-ansible 20.6.0 deploys them (with kolla-toolbox, mariadb, memcached and rabbitmq of our tree):
    // token, catalog, glance's images, placement's root, nova's flavors (tests/kolla_ansible.rs).
    deployment.deploy();

    // 4. A source that is not there: glance-base fails naming its section and location,
    // glance-api is not built, keystone (a sibling chain) is still fine.
    let broken = format!(
        "{conf}\n[glance-base]\ntype = url\nlocation = http://127.0.0.1:{port}/missing/glance.tar.gz\n"
    );
    std::fs::write(work.path().join("broken.conf"), broken).unwrap();
    let mut broken_args = args.clone();
    broken_args[1] = "broken.conf".into();
    let failed = kolla_build(work.path(), &broken_args);
    assert_eq!(failed.code, Some(1), "{}", failed.stderr);
    let glance_base = failed.summary["failed"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["name"] == "glance-base"))
        .unwrap_or_else(|| panic!("glance-base not failed: {}", failed.summary));
    let error = glance_base.to_string();
    for part in ["glance-base", "missing/glance.tar.gz", "404"] {
        assert!(error.contains(part), "the error names {part}: {error}");
    }
    assert_eq!(
        names(&failed.summary, "failed", |e| e["status"] == "parent_error"),
        set(&["glance-api"]),
        "{}",
        failed.summary
    );
    assert!(names(&failed.summary, "built", |_| true).contains("keystone"));

    // 5. A changed keystone tarball: keystone-base and its descendants only. The original
    // is put back whatever happens (the fixture keeps it for the next run).
    let keystone = tarballs.join("openstack/keystone/keystone-stable-2025.1.tar.gz");
    let original = fixture.join("keystone-original.tar.gz");
    std::fs::copy(&keystone, &original).unwrap();
    struct Restore(PathBuf, PathBuf);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = std::fs::rename(&self.0, &self.1);
        }
    }
    let _restore = Restore(original.clone(), keystone.clone());
    std::thread::sleep(Duration::from_secs(1)); // a Last-Modified of its own
    let unpacked = work.path().join("keystone-src");
    std::fs::create_dir_all(&unpacked).unwrap();
    run(
        Command::new("tar")
            .arg("-xzf")
            .arg(&original)
            .arg("-C")
            .arg(&unpacked),
        "unpacking keystone",
    );
    let top = std::fs::read_dir(&unpacked)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(top.join("KBTEST-CHANGED"), "a change\n").unwrap();
    run(
        Command::new("tar")
            .arg("-czf")
            .arg(&keystone)
            .arg("-C")
            .arg(&unpacked)
            .arg(top.file_name().unwrap()),
        "repacking keystone",
    );
    let changed = kolla_build(work.path(), &args);
    assert_eq!(changed.code, Some(0), "{}", changed.stderr);
    assert_eq!(
        names(&changed.summary, "built", |e| e["fresh"] == false),
        set(&KEYSTONE),
        "{}",
        changed.summary
    );
    let unchanged: BTreeSet<String> = set(&BUILT).difference(&set(&KEYSTONE)).cloned().collect();
    assert_eq!(
        names(&changed.summary, "built", |e| e["fresh"] == true),
        unchanged
    );
}
