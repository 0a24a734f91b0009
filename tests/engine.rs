//! Real-engine tests: the binary builds images in the Docker engine started by
//! `scripts/setup-engine.sh` (the README's test command runs it first). Each test uses its own
//! image namespace and untags its images afterwards; tests take a lock so that the check "no
//! container is left behind" sees only their own work.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{BIN, REPO, SMALL_TREE, Test};

static ENGINE: Mutex<()> = Mutex::new(());

/// Serialises engine tests and fails loudly when there is no engine.
pub(crate) fn engine_lock() -> EngineTurn {
    let asked = Instant::now();
    let guard = ENGINE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let ok = Command::new("docker")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "no Docker engine answers: run scripts/setup-engine.sh first (scripts/test.sh does)"
    );
    EngineTurn {
        _guard: guard,
        waited: asked.elapsed(),
        started: Instant::now(),
    }
}

/// A test's turn on the engine. When it ends it says, on the real stderr (libtest captures only
/// the print macros), which test held the engine and for how long: where the suite's time goes,
/// in every CI log.
pub(crate) struct EngineTurn {
    _guard: MutexGuard<'static, ()>,
    waited: Duration,
    started: Instant,
}

impl Drop for EngineTurn {
    fn drop(&mut self) {
        use std::io::Write;
        let line = format!(
            "engine turn: {} held the engine {:.0?} (waited {:.0?} for it)\n",
            std::thread::current().name().unwrap_or("a test"),
            self.started.elapsed(),
            self.waited,
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
}

/// Every stopped container in the engine, but those the end-to-end tests start on purpose
/// (labelled `org.kolla-build.test=e2e`): what a build leaves behind shows up here. Running
/// containers are builds of tests running beside this one (the suite runs tests in parallel).
fn containers() -> BTreeSet<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.State}} {{.Label \"org.kolla-build.test\"}}",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let (id, state, label) = (fields.next()?, fields.next()?, fields.next());
            (state != "running" && label != Some("e2e")).then(|| id.to_string())
        })
        .collect()
}

/// Fails if this test left a stopped container behind. A concurrent test's build step can stop
/// a container a moment before its builder removes it: what is new must still be there 30 s
/// later to count.
fn assert_no_container_left(before: &BTreeSet<String>) {
    let new: BTreeSet<String> = containers().difference(before).cloned().collect();
    if new.is_empty() {
        return;
    }
    let mut left = new;
    for _ in 0..10 {
        std::thread::sleep(std::time::Duration::from_secs(3));
        left = containers().intersection(&left).cloned().collect();
        if left.is_empty() {
            return;
        }
    }
    panic!("containers left behind: {left:?}");
}

/// A namespace unique to this test run; its images are untagged when dropped.
pub(crate) struct Namespace(pub(crate) String);

impl Namespace {
    pub(crate) fn new(test: &str) -> Namespace {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        Namespace(format!("kbtest-{test}-{}-{nanos}", std::process::id()))
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let out = Command::new("docker")
            .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .output();
        if let Ok(out) = out {
            let ours = |r: &&str| {
                r.starts_with(&format!("{}/", self.0)) || r.contains(&format!("/{}/", self.0))
            };
            for reference in String::from_utf8_lossy(&out.stdout).lines().filter(ours) {
                let _ = Command::new("docker")
                    .args(["rmi", "--no-prune", reference])
                    .output();
            }
        }
    }
}

/// kolla-build's arguments for building this repository's tree for Debian into `ns`, with the
/// host's CA certificates, a bootstrapped base and per-image logs in `logs/`.
pub(crate) fn debian_args(install_type: &str, ns: &Namespace) -> Vec<String> {
    debian_args_in(install_type, &ns.0)
}

/// `debian_args` for a namespace this caller does not own (its images stay).
pub(crate) fn debian_args_in(install_type: &str, namespace: &str) -> Vec<String> {
    let mut args: Vec<String> = [
        "--images-dir",
        REPO,
        "-b",
        "debian",
        "-t",
        install_type,
        "-n",
        namespace,
        "--bootstrap-base",
        "--format",
        "none",
        "--logs-dir",
        "logs",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(ca_args());
    args
}

/// The host's CA certificates (a TLS-intercepting proxy's CA on CI machines).
pub(crate) fn ca_args() -> Vec<String> {
    let mut args = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/usr/local/share/ca-certificates") {
        let mut certs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "crt"))
            .collect();
        certs.sort();
        for cert in certs {
            args.push("--ca-certificate".to_string());
            args.push(cert.display().to_string());
        }
    }
    args
}

pub(crate) struct Build {
    pub(crate) code: Option<i32>,
    pub(crate) stderr: String,
    pub(crate) summary: Value,
}

/// Runs kolla-build in `dir` with `args`, a summary file, and returns the parsed summary.
pub(crate) fn kolla_build(dir: &Path, args: &[String]) -> Build {
    let summary = dir.join(format!(
        "summary-{}.json",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let out = Command::new(BIN)
        .args(args)
        .arg("--summary-json-file")
        .arg(&summary)
        .current_dir(dir)
        .output()
        .expect("run kolla-build");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let summary = std::fs::read_to_string(&summary)
        .map(|text| serde_json::from_str(&text).expect("summary is JSON"))
        .unwrap_or(Value::Null);
    Build {
        code: out.status.code(),
        stderr,
        summary,
    }
}

pub(crate) fn names(
    summary: &Value,
    list: &str,
    pred: impl Fn(&Value) -> bool,
) -> BTreeSet<String> {
    summary[list]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| pred(e))
                .map(|e| e["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The keystone chain for one install type: a cold build, a no-op rebuild where every image is
/// fresh, and a change to one file of keystone-base that rebuilds exactly it and its child.
fn keystone_chain(install_type: &str) {
    let _lock = engine_lock();
    let ns = Namespace::new(install_type);
    let before = containers();
    let work = tempfile::tempdir().unwrap();
    let mut args = debian_args(install_type, &ns);
    args.push("^keystone$".into());

    let chain = set(&["base", "openstack-base", "keystone-base", "keystone"]);
    let cold = kolla_build(work.path(), &args);
    assert_eq!(cold.code, Some(0), "cold build failed:\n{}", cold.stderr);
    assert_eq!(
        names(&cold.summary, "built", |_| true),
        chain,
        "{}",
        cold.summary
    );
    assert!(
        work.path().join("logs/keystone.log").is_file(),
        "per-image logs are written"
    );

    let warm = kolla_build(work.path(), &args);
    assert_eq!(warm.code, Some(0), "{}", warm.stderr);
    assert_eq!(
        names(&warm.summary, "built", |e| e["fresh"] == true),
        chain,
        "a no-op rebuild is all fresh: {}",
        warm.summary
    );

    // One more file in keystone-base's context, laid over the tree with --docker-dir.
    let overlay = work.path().join("overlay/images/keystone/keystone-base");
    std::fs::create_dir_all(&overlay).unwrap();
    std::fs::write(overlay.join("changed.txt"), "a change\n").unwrap();
    let mut changed_args = args.clone();
    changed_args.splice(0..0, ["-D".to_string(), "overlay".to_string()]);
    let changed = kolla_build(work.path(), &changed_args);
    assert_eq!(changed.code, Some(0), "{}", changed.stderr);
    assert_eq!(
        names(&changed.summary, "built", |e| e["fresh"] == false),
        set(&["keystone-base", "keystone"]),
        "{}",
        changed.summary
    );
    assert_eq!(
        names(&changed.summary, "built", |e| e["fresh"] == true),
        set(&["base", "openstack-base"])
    );

    assert_no_container_left(&before);
}

#[test]
fn debian_binary_keystone_chain_builds_then_is_fresh_then_rebuilds_only_what_changed() {
    keystone_chain("binary");
}

#[test]
fn debian_source_keystone_chain_builds_then_is_fresh_then_rebuilds_only_what_changed() {
    keystone_chain("source");
}

/// A base made by `--bootstrap-base` is configured as Debian's image on Docker Hub is (what
/// kolla's operators build FROM): apt itself, run in a build on it, reads those settings, dpkg
/// is told not to sync, and policy-rc.d keeps services from starting. The base image gets a name
/// of its own, so it is bootstrapped here whatever the engine already holds.
#[test]
fn a_bootstrapped_base_is_configured_like_docker_hubs_debian_image() {
    let _lock = engine_lock();
    let ns = Namespace::new("bootstrap");
    let test = Test::small_tree();
    test.write(
        "base/Dockerfile.j2",
        "FROM {{ base_image }}:{{ base_distro_tag }}\nRUN apt-config dump > /apt-config.txt\n",
    );
    let base_image = format!("{}/debian", ns.0);
    let args: Vec<String> = [
        "-n",
        &ns.0,
        "--base-image",
        &base_image,
        "--base-tag",
        "trixie",
        "--bootstrap-base",
        "--format",
        "none",
        "^base$",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let run = kolla_build(test.path(), &args);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stderr.contains("Bootstrapped"), "{}", run.stderr);
    let reference = run.summary["built"][0]["reference"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let out = Command::new("docker")
        .args(["run", "--rm", &reference, "sh", "-c"])
        .arg(
            "cat /apt-config.txt /etc/dpkg/dpkg.cfg.d/docker-apt-speedup; \
             /usr/sbin/policy-rc.d; echo policy-rc.d=$?",
        )
        .output()
        .unwrap();
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        // apt reads Languages as a list, and dumps it as one.
        "Acquire::Languages:: \"none\";",
        "Acquire::GzipIndexes \"true\";",
        "Dir::Cache::pkgcache \"\";",
        "Apt::AutoRemove::SuggestsImportant \"false\";",
        "\nforce-unsafe-io\n",
        "policy-rc.d=101",
    ] {
        // apt's configuration keys are case-insensitive; its dump may spell them either way.
        assert!(
            seen.to_lowercase().contains(&expected.to_lowercase()),
            "{expected} is missing from:\n{seen}"
        );
    }
}

#[test]
fn a_failing_image_skips_its_descendants_while_siblings_build() {
    let _lock = engine_lock();
    let ns = Namespace::new("failure");
    let before = containers();
    let test = Test::new();
    for (rel, text) in SMALL_TREE {
        test.write(rel, text);
    }
    // A base that needs no packages, so this test does not depend on the network.
    test.write(
        "base/Dockerfile.j2",
        "FROM {{ base_image }}:{{ base_distro_tag }}\nRUN echo base > /base.txt\n",
    );
    test.write(
        "images/broken/Dockerfile.j2",
        "FROM {{ namespace }}/{{ image_prefix }}base:{{ tag }}\nRUN echo about to fail && exit 3\n",
    );
    test.write(
        "images/broken-child/Dockerfile.j2",
        "FROM {{ namespace }}/{{ image_prefix }}broken:{{ tag }}\n",
    );
    let args: Vec<String> = [
        "-n",
        &ns.0,
        "--bootstrap-base",
        "--retries",
        "0",
        "--format",
        "none",
        "--logs-dir",
        "logs",
        "^broken",
        "^cron$",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let run = kolla_build(test.path(), &args);
    assert_eq!(
        run.code,
        Some(1),
        "a failed image makes the exit code non-zero:\n{}",
        run.stderr
    );
    let s = &run.summary;
    assert_eq!(names(s, "built", |_| true), set(&["base", "cron"]), "{s}");
    assert_eq!(
        names(s, "failed", |e| e["status"] == "error"),
        set(&["broken"]),
        "{s}"
    );
    assert_eq!(
        names(s, "failed", |e| e["status"] == "parent_error"
            && e["parent"] == "broken"),
        set(&["broken-child"]),
        "{s}"
    );
    assert!(
        run.stderr.contains("about to fail"),
        "the failed build's last log lines are shown:\n{}",
        run.stderr
    );
    assert!(
        test.path().join("logs/000_FAILED_broken.log").exists(),
        "kolla's failure marker"
    );
    assert_no_container_left(&before);
}

pub(crate) fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn diff_ids(reference: &str) -> String {
    let out = Command::new("docker")
        .args(["inspect", "--format", "{{json .RootFS.Layers}}", reference])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A registry process serving `root` on `addr`; killed when dropped.
pub(crate) struct Registry(std::process::Child);

impl Registry {
    pub(crate) fn serve(root: &Path, addr: &str, dir: &Path) -> Registry {
        let config = dir.join(format!("registry-{}.yml", addr.replace([':', '.'], "-")));
        std::fs::write(&config, format!("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n", root.display())).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry is installed (scripts/setup-engine.sh)");
        let registry = Registry(child);
        for _ in 0..100 {
            if Command::new("curl")
                .args(["-fsS", "--max-time", "1", &format!("http://{addr}/v2/")])
                .output()
                .is_ok_and(|o| o.status.success())
            {
                return registry;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("the registry on {addr} did not answer within 10 s");
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A tree of three small images sharing `base`, built without network access.
fn export_tree() -> Test {
    small_tree("echo base > /base.txt")
}

/// `base` (running `base_run`) and two images on it, `one` (a COPY) and `two` (a RUN).
pub(crate) fn small_tree(base_run: &str) -> Test {
    let test = Test::new();
    test.write(
        "base/Dockerfile.j2",
        &format!("FROM {{{{ base_image }}}}:{{{{ base_distro_tag }}}}\nRUN {base_run}\n"),
    );
    test.write(
        "images/one/Dockerfile.j2",
        "FROM {{ namespace }}/{{ image_prefix }}base:{{ tag }}\nCOPY one.txt /one.txt\n",
    );
    test.write("images/one/one.txt", "one\n");
    test.write(
        "images/two/Dockerfile.j2",
        "FROM {{ namespace }}/{{ image_prefix }}base:{{ tag }}\nRUN echo two > /two.txt\n",
    );
    test
}

#[test]
fn export_round_trips_through_a_stock_registry_and_push_reaches_a_live_one() {
    let _lock = engine_lock();
    let ns = Namespace::new("export");
    let test = export_tree();
    let dir = test.path();
    let common: Vec<String> = ["-n", &ns.0, "--bootstrap-base", "--format", "none"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let with = |extra: &[&str]| -> Vec<String> {
        common
            .iter()
            .cloned()
            .chain(extra.iter().map(|s| s.to_string()))
            .collect()
    };

    let first = kolla_build(dir, &with(&["--export", "out/first.tar.gz"]));
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let exported: BTreeSet<String> = first.summary["built"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["export"]
                .as_str()
                .is_some_and(|d| d.starts_with("sha256:"))
        })
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(exported, set(&["base", "one", "two"]), "{}", first.summary);

    // Nothing to build the second time, and the same bytes.
    let second = kolla_build(dir, &with(&["--export", "out/second.tar.gz"]));
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    assert_eq!(
        names(&second.summary, "built", |e| e["fresh"] == true),
        set(&["base", "one", "two"])
    );
    assert_eq!(
        sha256_of(&dir.join("out/first.tar.gz")),
        sha256_of(&dir.join("out/second.tar.gz")),
        "exports are byte-identical"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        2,
        "no temporary files stay beside the tarball: {leftovers:?}"
    );

    // Unpack into an empty directory and serve it with a stock registry on port 4000.
    let root = dir.join("registry-root");
    std::fs::create_dir_all(&root).unwrap();
    let untar = Command::new("tar")
        .arg("xzf")
        .arg(dir.join("out/first.tar.gz"))
        .arg("-C")
        .arg(&root)
        .status()
        .unwrap();
    assert!(untar.success());
    let served = Registry::serve(&root, "127.0.0.2:4000", dir);
    for image in ["base", "one", "two"] {
        let local = format!("{}/debian-binary-{image}:2025.1", ns.0);
        let remote = format!("127.0.0.2:4000/{local}");
        skopeo_inspect(&remote);
        let built = diff_ids(&local);
        let pull = Command::new("docker")
            .args(["pull", "-q", &remote])
            .output()
            .unwrap();
        assert!(
            pull.status.success(),
            "docker pull {remote}: {}",
            String::from_utf8_lossy(&pull.stderr)
        );
        assert_eq!(
            diff_ids(&remote),
            built,
            "{image}: the pulled layers are the built ones"
        );
        let _ = Command::new("docker").args(["rmi", &remote]).output();
    }
    drop(served);

    // --push to the live registry on 127.0.0.1:4000 (scripts/setup-engine.sh).
    let push = kolla_build(dir, &with(&["--registry", "127.0.0.1:4000", "--push"]));
    assert_eq!(push.code, Some(0), "{}", push.stderr);
    assert_eq!(
        names(&push.summary, "built", |e| e["push"] == "pushed"),
        set(&["base", "one", "two"]),
        "{}",
        push.summary
    );
    // Each image is in the registry, and the digest the summary records for its push is the
    // one skopeo reads for the manifest the registry serves (what other engines pull by).
    for image in ["base", "one", "two"] {
        let remote = format!("127.0.0.1:4000/{}/debian-binary-{image}:2025.1", ns.0);
        let served = skopeo_inspect(&remote);
        let entry = push.summary["built"]
            .as_array()
            .and_then(|built| built.iter().find(|e| e["name"] == image))
            .cloned()
            .unwrap_or_default();
        assert!(
            served["Digest"]
                .as_str()
                .is_some_and(|d| d.starts_with("sha256:")),
            "{served}"
        );
        assert_eq!(
            entry["push_digest"], served["Digest"],
            "{image}: the summary's push_digest is the registry's manifest digest"
        );
    }
}

/// What skopeo (a client nobody here wrote) reads of `remote` in a plain-HTTP registry.
fn skopeo_inspect(remote: &str) -> Value {
    let inspect = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{remote}"),
        ])
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "skopeo inspect {remote}: {}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    serde_json::from_slice(&inspect.stdout).unwrap()
}

#[test]
fn a_refused_push_and_a_full_disk_are_clear_errors_and_leave_nothing_behind() {
    let _lock = engine_lock();
    let ns = Namespace::new("refused");
    let test = export_tree();
    let dir = test.path();
    let args: Vec<String> = [
        "-n",
        &ns.0,
        "--bootstrap-base",
        "--format",
        "none",
        "--registry",
        "127.0.0.1:1",
        "--push",
        "--retries",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let refused = kolla_build(dir, &args);
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    let errors = names(&refused.summary, "failed", |e| {
        e["status"] == "push_error"
            && e["error"]
                .as_str()
                .is_some_and(|m| m.contains("connection refused"))
    });
    assert_eq!(errors, set(&["base", "one", "two"]), "{}", refused.summary);

    // A 1 MiB filesystem cannot take the export.
    let full = dir.join("full");
    std::fs::create_dir_all(&full).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&full)
        .status()
        .unwrap();
    assert!(
        mounted.success(),
        "mounting a small tmpfs needs root (CI runs as root)"
    );
    let out = kolla_build(
        dir,
        &[
            "-n".to_string(),
            ns.0.clone(),
            "--format".into(),
            "none".into(),
            "--export".into(),
            full.join("x.tar.gz").display().to_string(),
        ],
    );
    let left: Vec<_> = std::fs::read_dir(&full)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let _ = Command::new("umount").arg(&full).status();
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("exporting to") && out.stderr.contains("No space left on device"),
        "{}",
        out.stderr
    );
    assert!(left.is_empty(), "no partial tarball: {left:?}");
}
