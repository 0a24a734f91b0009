//! Real-engine tests: the binary builds images in the Docker engine started by
//! `scripts/setup-engine.sh` (the README's test command runs it first). Each test uses its own
//! image namespace and untags its images afterwards; tests take a lock so that the check "no
//! container is left behind" sees only their own work.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

use crate::support::{BIN, REPO, SMALL_TREE, Test};

static ENGINE: Mutex<()> = Mutex::new(());

/// Serialises engine tests and fails loudly when there is no engine.
fn engine_lock() -> MutexGuard<'static, ()> {
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
    guard
}

fn containers() -> BTreeSet<String> {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--no-trunc"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A namespace unique to this test run; its images are untagged when dropped.
struct Namespace(String);

impl Namespace {
    fn new(test: &str) -> Namespace {
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
            .args([
                "images",
                "--format",
                "{{.Repository}}:{{.Tag}}",
                "--filter",
                &format!("reference={}/*", self.0),
            ])
            .output();
        if let Ok(out) = out {
            for reference in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = Command::new("docker")
                    .args(["rmi", "--no-prune", reference])
                    .output();
            }
        }
    }
}

/// The host's CA certificates (a TLS-intercepting proxy's CA on CI machines).
fn ca_args() -> Vec<String> {
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

struct Build {
    code: Option<i32>,
    stderr: String,
    summary: Value,
}

/// Runs kolla-build in `dir` with `args`, a summary file, and returns the parsed summary.
fn kolla_build(dir: &Path, args: &[String]) -> Build {
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

fn names(summary: &Value, list: &str, pred: impl Fn(&Value) -> bool) -> BTreeSet<String> {
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

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The keystone chain for one install type: a cold build, a no-op rebuild where every image is
/// fresh, and a change to one file of keystone-base that rebuilds exactly it and its child.
fn keystone_chain(install_type: &str) {
    let _lock = engine_lock();
    let ns = Namespace::new(install_type);
    let before = containers();
    let work = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = [
        "--images-dir",
        REPO,
        "-b",
        "debian",
        "-t",
        install_type,
        "-n",
        &ns.0,
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

    assert_eq!(containers(), before, "no container is left behind");
}

#[test]
fn debian_binary_keystone_chain_builds_then_is_fresh_then_rebuilds_only_what_changed() {
    keystone_chain("binary");
}

#[test]
fn debian_source_keystone_chain_builds_then_is_fresh_then_rebuilds_only_what_changed() {
    keystone_chain("source");
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
    assert_eq!(containers(), before, "no container is left behind");
}
