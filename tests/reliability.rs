//! Issue 11, "Nothing leaks in, nothing is lost": symlinks, signals, a summary on every exit path,
//! freshness by the parent's image ID, all-or-nothing publishing, validation, engine death,
//! broken pipes, no hidden config source, credentials kept from templates. The table in
//! docs/RELIABILITY.md names each test and what it guarantees.
//!
//! Engine tests build on a tiny busybox image made here (no registry is reachable) and take the
//! engine lock of `tests/engine.rs`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{BIN, PrivateEngine, SMALL_TREE, Test};

fn json_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("the summary `{}` was written: {e}", path.display()));
    serde_json::from_str(&text).expect("the summary is JSON")
}

fn names_with(summary: &Value, list: &str, key: &str, value: &str) -> Vec<String> {
    summary[list]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e[key] == value)
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Symlinks
// ---------------------------------------------------------------------------------------------

#[test]
fn a_template_symlink_out_of_the_tree_is_an_error_naming_the_link() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("evil.j2"), "RUN echo outside\n").unwrap();
    let mut test = Test::small_tree();
    std::os::unix::fs::symlink(
        outside.path().join("evil.j2"),
        test.path().join("base/evil.j2"),
    )
    .unwrap();
    let run = test.args(["--list-images"]).run().failure();
    let err = run.stderr();
    assert!(
        err.contains("base/evil.j2") && err.contains("outside the tree"),
        "{err}"
    );

    // A link inside the tree is fine.
    std::fs::remove_file(test.path().join("base/evil.j2")).unwrap();
    std::os::unix::fs::symlink("macros.j2", test.path().join("base/alias.j2")).unwrap();
    test.run().success();
}

#[test]
fn a_context_symlink_is_written_as_a_symlink_never_its_outside_target() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, "TOPSECRET\n").unwrap();
    let mut test = Test::small_tree();
    std::os::unix::fs::symlink(&secret, test.path().join("images/cron/leak")).unwrap();
    test.args(["--template-only", "--work-dir", "out", "cron"])
        .run()
        .success();
    let written = test.path().join("out/docker/images/cron/leak");
    let meta = std::fs::symlink_metadata(&written).unwrap();
    assert!(meta.file_type().is_symlink(), "{written:?} is a symlink");
    assert_eq!(std::fs::read_link(&written).unwrap(), secret);
    for file in crate::support::files_below(&test.path().join("out")) {
        let path = test.path().join("out").join(&file);
        if !std::fs::symlink_metadata(&path).unwrap().is_symlink() {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(!text.contains("TOPSECRET"), "{file:?} holds the secret");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Validation
// ---------------------------------------------------------------------------------------------

#[test]
fn names_retries_and_timeout_are_validated_naming_the_value() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--image-name-prefix", "UP PER-"],
            &["image-name-prefix", "`UP PER-`"],
        ),
        (&["--namespace", "Team/kolla"], &["namespace", "`Team`"]),
        (&["--namespace", "a//b"], &["namespace", "empty"]),
        (&["--tag=-bad"], &["`tag`", "`-bad`"]),
        (
            &["--registry", "bad_host:4000"],
            &["registry", "`bad_host:4000`"],
        ),
        (&["--retries", "11"], &["retries", "11", "10"]),
        (&["--timeout", "0"], &["timeout", "at least 1"]),
    ];
    for (args, needles) in cases {
        let mut test = Test::small_tree();
        let run = test
            .args(args.iter())
            .args(["--list-images"])
            .run()
            .failure();
        let err = run.stderr();
        for needle in *needles {
            assert!(err.contains(needle), "{args:?}: `{needle}` in\n{err}");
        }
    }
    // Ten retries is the most allowed.
    Test::small_tree()
        .args(["--retries", "10", "--list-images"])
        .run()
        .success();
}

#[test]
fn an_image_folder_that_is_no_docker_name_is_an_error_naming_the_folder() {
    let mut test = Test::small_tree();
    test.write(
        "images/Bad_Name/Dockerfile.j2",
        "FROM {{ namespace }}/{{ image_prefix }}base:{{ tag }}\n",
    );
    let run = test.args(["--list-images"]).run().failure();
    let err = run.stderr();
    assert!(
        err.contains("images/Bad_Name") && err.contains("upper-case `B`"),
        "{err}"
    );
}

#[test]
fn a_file_name_that_is_not_utf8_is_an_error_naming_the_path() {
    use std::os::unix::ffi::OsStrExt;
    let mut test = Test::small_tree();
    let name = std::ffi::OsStr::from_bytes(b"bad-\xff-name");
    std::fs::write(test.path().join("images/cron").join(name), "x").unwrap();
    let run = test.args(["--list-images"]).run().failure();
    let err = run.stderr();
    assert!(
        err.contains("images/cron/bad-") && err.contains("not UTF-8"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// 8. Broken pipes
// ---------------------------------------------------------------------------------------------

/// Runs kolla-build with stdout or stderr a pipe whose reader is gone before it writes.
fn run_with_closed(dir: &Path, args: &[&str], close_stdout: bool) -> std::process::Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .current_dir(dir)
        .env_remove("DOCKER_HOST");
    if close_stdout {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
    } else {
        command.stdout(Stdio::null()).stderr(Stdio::piped());
    }
    let mut child = command.spawn().unwrap();
    // Close the read end at once: the process is still starting up.
    if close_stdout {
        drop(child.stdout.take());
    } else {
        drop(child.stderr.take());
    }
    let status = child.wait().unwrap();
    let stderr = child
        .stderr
        .take()
        .map(|mut e| {
            let mut s = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut s).unwrap();
            s
        })
        .unwrap_or_default();
    std::process::Output {
        status,
        stdout: Vec::new(),
        stderr,
    }
}

#[test]
fn a_closed_stdout_or_stderr_ends_quietly_with_the_work_kept() {
    let test = Test::small_tree();
    let out = run_with_closed(
        test.path(),
        &["--template-only", "--work-dir", "out", "keystone"],
        false,
    );
    assert_eq!(out.status.code(), Some(0), "no panic on a closed stderr");
    assert!(test.exists("out/docker/images/keystone/keystone/Dockerfile"));

    let out = run_with_closed(test.path(), &["--list-images"], true);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A build that fails (no engine) with stderr closed still writes its summary.
    let out = run_with_closed(
        test.path(),
        &[
            "--engine-url",
            "unix:///nonexistent/docker.sock",
            "--summary-json-file",
            "summary.json",
            "cron",
        ],
        false,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        json_file(&test.path().join("summary.json"))["status"],
        "error"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. A summary on every exit path (without an engine; pull and bootstrap below)
// ---------------------------------------------------------------------------------------------

#[test]
fn the_summary_is_written_when_the_engine_is_down_or_planning_fails() {
    let mut test = Test::small_tree();
    test.args([
        "--engine-url",
        "unix:///nonexistent/docker.sock",
        "--summary-json-file",
        "down.json",
        "cron",
    ])
    .run()
    .failure();
    let down = json_file(&test.path().join("down.json"));
    assert_eq!(down["status"], "error", "{down}");
    assert!(
        down["error"]
            .as_str()
            .unwrap()
            .contains("cannot reach the container engine"),
        "{down}"
    );
    let mut not_built = names_with(&down, "failed", "status", "not_built");
    not_built.sort();
    assert_eq!(not_built, ["base", "cron"], "{down}");
    assert!(
        !down["not_matched"].as_array().unwrap().is_empty(),
        "{down}"
    );

    // A template error: the plan fails before any engine is asked.
    let mut broken = Test::small_tree();
    broken.write("images/cron/Dockerfile.j2", "FROM {{ nowhere }}\n");
    broken
        .args(["--summary-json-file", "plan.json", "cron"])
        .run()
        .failure();
    let plan = json_file(&broken.path().join("plan.json"));
    assert_eq!(plan["status"], "error");
    assert!(
        plan["error"].as_str().unwrap().contains("nowhere"),
        "{plan}"
    );

    // Settings that do not resolve.
    let mut bad = Test::small_tree();
    bad.args(["--timeout", "0", "--summary-json-file", "bad.json"])
        .run()
        .failure();
    let bad_summary = json_file(&bad.path().join("bad.json"));
    assert_eq!(bad_summary["status"], "error");
    assert!(bad_summary["error"].as_str().unwrap().contains("timeout"));
}

// ---------------------------------------------------------------------------------------------
// 9. No hidden config source
// ---------------------------------------------------------------------------------------------

#[test]
fn a_copied_binary_finds_data_only_in_the_documented_places() {
    let prefix = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(prefix.path().join("bin")).unwrap();
    let bin = prefix.path().join("bin/kolla-build");
    std::fs::copy(BIN, &bin).unwrap();
    let empty = tempfile::tempdir().unwrap();
    let run = |cwd: &Path| {
        Command::new(&bin)
            .arg("--list-images")
            .current_dir(cwd)
            .env_remove("DOCKER_HOST")
            .output()
            .unwrap()
    };
    let out = run(empty.path());
    assert_eq!(out.status.code(), Some(1), "no tree, no data: an error");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no image tree found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // <prefix>/share/kolla-build is found.
    let share = prefix.path().join("share/kolla-build");
    for (rel, text) in SMALL_TREE {
        let path = share.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let out = run(empty.path());
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1 : base\n2 : cron\n3 : openstack-base\n4 : keystone-base\n5 : keystone\n"
    );
}

// ---------------------------------------------------------------------------------------------
// 10. Credentials
// ---------------------------------------------------------------------------------------------

#[test]
fn registry_credentials_are_not_in_the_templates_env() {
    let test = Test::small_tree();
    test.write(
        "images/cron/Dockerfile.j2",
        "FROM {{ namespace }}/{{ image_prefix }}base:{{ tag }}\n\
         RUN echo {% if env.KOLLA_REGISTRY_PASSWORD is defined %}LEAK{% endif %} {{ env.KOLLA_BUILD_TEST_VISIBLE }}\n\
         # {{ env | tojson }}\n",
    );
    let out = Command::new(BIN)
        .args(["--template-only", "--work-dir", "out", "cron"])
        .current_dir(test.path())
        .env("KOLLA_REGISTRY_USERNAME", "user-s3cret")
        .env("KOLLA_REGISTRY_PASSWORD", "pass-s3cret")
        .env("KOLLA_BUILD_TEST_VISIBLE", "visible")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dockerfile = test.read("out/docker/images/cron/Dockerfile");
    assert!(dockerfile.contains("visible"), "env works: {dockerfile}");
    assert!(
        !dockerfile.contains("LEAK") && !dockerfile.contains("s3cret"),
        "{dockerfile}"
    );
}

// ---------------------------------------------------------------------------------------------
// Engine tests: a busybox base, a running binary watched line by line, signals
// ---------------------------------------------------------------------------------------------

const BUSYBOX_REPO: &str = "kolla-build-test/busybox";
const BUSYBOX_TAG: &str = "1";
const TAG: &str = "kbtest";

/// A tiny base image (busybox-static, from scripts/setup-engine.sh), imported once.
pub(crate) fn busybox_image() {
    static MADE: Mutex<bool> = Mutex::new(false);
    let mut made = MADE.lock().unwrap_or_else(|p| p.into_inner());
    if !*made {
        import_busybox(None);
        *made = true;
    }
}

/// Imports the busybox image into the engine at `host` (the main one if `None`) unless present.
fn import_busybox(host: Option<&str>) {
    let reference = format!("{BUSYBOX_REPO}:{BUSYBOX_TAG}");
    let docker = |args: &[&str]| {
        let mut command = Command::new("docker");
        if let Some(host) = host {
            command.env("DOCKER_HOST", host);
        }
        command.args(args);
        command
    };
    let present = docker(&["image", "inspect", &reference])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return;
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox-static is installed (scripts/setup-engine.sh)");
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("bin")).unwrap();
    std::fs::create_dir_all(root.path().join("tmp")).unwrap();
    std::fs::copy(busybox, root.path().join("bin/busybox")).unwrap();
    for applet in [
        "sh", "sleep", "test", "echo", "cat", "true", "false", "dd", "ls", "mkdir", "rm",
    ] {
        std::os::unix::fs::symlink("busybox", root.path().join("bin").join(applet)).unwrap();
    }
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("rootfs.tar");
    let tar = Command::new("tar")
        .arg("-C")
        .arg(root.path())
        .arg("-cf")
        .arg(&archive)
        .arg(".")
        .status()
        .unwrap();
    assert!(tar.success());
    let imported = docker(&["import", "-c", "ENV PATH=/bin"])
        .arg(&archive)
        .arg(&reference)
        .output()
        .unwrap();
    assert!(
        imported.status.success(),
        "docker import: {}",
        String::from_utf8_lossy(&imported.stderr)
    );
}

/// A tree whose `base` is FROM the busybox image, plus `images` (name, Dockerfile body after FROM
/// base, extra files).
pub(crate) fn busybox_tree(images: &[(&str, &str)]) -> Test {
    let test = Test::new();
    test.write(
        "base/Dockerfile.j2",
        "FROM {{ base_image }}:{{ base_distro_tag }}\nRUN echo base > /base.txt\n",
    );
    std::fs::create_dir_all(test.path().join("images")).unwrap();
    for (name, body) in images {
        test.write(
            &format!("images/{name}/Dockerfile.j2"),
            &format!("FROM {{{{ namespace }}}}/{{{{ image_prefix }}}}base:{{{{ tag }}}}\n{body}\n"),
        );
    }
    test
}

pub(crate) fn engine_args(ns: &str) -> Vec<String> {
    [
        "-n",
        ns,
        "--base-image",
        BUSYBOX_REPO,
        "--base-tag",
        BUSYBOX_TAG,
        "--tag",
        TAG,
        "--no-pull",
        "--format",
        "none",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A running kolla-build whose stderr is read line by line.
pub(crate) struct Running {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    pub(crate) fn start(dir: &Path, args: &[String], env: &[(&str, &str)]) -> Running {
        let mut child = Command::new(BIN)
            .args(args)
            .current_dir(dir)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let all = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                all.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        Running {
            child,
            lines,
            stderr,
        }
    }

    /// Waits (at most `limit`) for a stderr line containing every needle.
    #[track_caller]
    pub(crate) fn wait_for(&self, needles: &[&str], limit: Duration) {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if needles.iter().all(|n| line.contains(n)) => return,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!(
            "no line with {needles:?} within {limit:?}; stderr:\n{}",
            self.stderr.lock().unwrap()
        );
    }

    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The exit code, waiting at most `limit` (then the process is killed and the test fails).
    #[track_caller]
    pub(crate) fn finish(mut self, limit: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread drain what is left.
                std::thread::sleep(Duration::from_millis(100));
                return (status.code(), self.stderr.lock().unwrap().clone());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "kolla-build did not end within {limit:?}; stderr:\n{}",
                    self.stderr.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Containers made from this namespace's images (build steps left behind show up here), waited
/// for (bounded) to go away.
#[track_caller]
fn assert_no_containers_from(ns: &str) {
    let base = format!("{ns}/debian-binary-base:{TAG}");
    let mut left = String::new();
    for _ in 0..60 {
        let out = Command::new("docker")
            .args(["ps", "-a", "-q", "--filter", &format!("ancestor={base}")])
            .output()
            .unwrap();
        left = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if left.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("build containers left behind: {left}");
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 2. Signals mid-build (first and second signal) and mid-export
// ---------------------------------------------------------------------------------------------

#[test]
fn sigterm_mid_build_removes_its_containers_keeps_the_export_and_says_interrupted() {
    let _lock = crate::engine::engine_lock();
    busybox_image();
    let ns = crate::engine::Namespace::new("sigbuild");
    let test = busybox_tree(&[("slow", "RUN sleep 60")]);
    test.write("out/images.tar.gz", "the previous export\n");
    let mut args = engine_args(&ns.0);
    args.extend(
        [
            "--export",
            "out/images.tar.gz",
            "--summary-json-file",
            "summary.json",
        ]
        .map(String::from),
    );
    let run = Running::start(test.path(), &args, &[]);
    run.wait_for(&["Building", "slow"], Duration::from_secs(120));
    // The RUN step's container exists once the build is under way.
    std::thread::sleep(Duration::from_secs(2));
    run.signal("TERM");
    let (code, stderr) = run.finish(Duration::from_secs(60));
    assert_eq!(code, Some(143), "{stderr}");
    let summary = json_file(&test.path().join("summary.json"));
    assert_eq!(summary["status"], "interrupted", "{summary}");
    assert!(summary["error"].as_str().unwrap().contains("SIGTERM"));
    assert_eq!(
        names_with(&summary, "failed", "status", "cancelled"),
        ["slow"]
    );
    assert_eq!(names_with(&summary, "built", "status", "built"), ["base"]);
    assert_eq!(test.read("out/images.tar.gz"), "the previous export\n");
    assert!(leftovers(&test.path().join("out")).is_empty());
    assert_no_containers_from(&ns.0);

    // A second signal exits at once; the previous output is still whole.
    let run = Running::start(test.path(), &args, &[]);
    run.wait_for(&["Building", "slow"], Duration::from_secs(120));
    run.signal("INT");
    std::thread::sleep(Duration::from_millis(50));
    run.signal("INT");
    let (code, stderr) = run.finish(Duration::from_secs(60));
    assert_eq!(code, Some(130), "{stderr}");
    assert_eq!(test.read("out/images.tar.gz"), "the previous export\n");
    assert!(leftovers(&test.path().join("out")).is_empty());
    assert_no_containers_from(&ns.0);
}

#[test]
fn sigint_mid_export_keeps_the_previous_tarball_and_leaves_no_scratch() {
    let _lock = crate::engine::engine_lock();
    busybox_image();
    let ns = crate::engine::Namespace::new("sigexport");
    // Enough incompressible bytes that the export takes a while.
    let test = busybox_tree(&[(
        "big",
        "RUN dd if=/dev/urandom of=/big bs=1048576 count=300 2>/dev/null",
    )]);
    test.write("out/images.tar.gz", "the previous export\n");
    let mut args = engine_args(&ns.0);
    args.extend(
        [
            "--export",
            "out/images.tar.gz",
            "--summary-json-file",
            "summary.json",
        ]
        .map(String::from),
    );
    let run = Running::start(test.path(), &args, &[]);
    run.wait_for(&["Exporting"], Duration::from_secs(120));
    run.signal("INT");
    let (code, stderr) = run.finish(Duration::from_secs(60));
    assert_eq!(code, Some(130), "{stderr}");
    let summary = json_file(&test.path().join("summary.json"));
    assert_eq!(summary["status"], "interrupted", "{summary}");
    assert_eq!(test.read("out/images.tar.gz"), "the previous export\n");
    assert!(
        leftovers(&test.path().join("out")).is_empty(),
        "{:?}",
        leftovers(&test.path().join("out"))
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Freshness by the parent's image ID; 1. a context symlink reaches the engine as one
// ---------------------------------------------------------------------------------------------

fn build_once(dir: &Path, args: &[String], extra: &[&str]) -> (Option<i32>, String, Value) {
    let summary = dir.join("summary.json");
    let _ = std::fs::remove_file(&summary);
    let out = Command::new(BIN)
        .args(args)
        .args(extra)
        .arg("--summary-json-file")
        .arg(&summary)
        .current_dir(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let summary = std::fs::read_to_string(&summary)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(Value::Null);
    (out.status.code(), stderr, summary)
}

#[test]
fn a_parent_rebuilt_alone_with_no_cache_makes_its_children_stale() {
    let _lock = crate::engine::engine_lock();
    busybox_image();
    let ns = crate::engine::Namespace::new("parentid");
    let test = busybox_tree(&[("child", "RUN echo child > /child")]);
    let args = engine_args(&ns.0);

    let (code, stderr, first) = build_once(test.path(), &args, &["child"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(names_with(&first, "built", "status", "built").len(), 2);

    let (code, stderr, again) = build_once(test.path(), &args, &["child"]);
    assert_eq!(code, Some(0), "{stderr}");
    let mut fresh = names_with(&again, "built", "status", "fresh");
    fresh.sort();
    assert_eq!(fresh, ["base", "child"], "{again}");

    // The parent alone, rebuilt without the cache: a new image ID under the same tag.
    let (code, stderr, parent) = build_once(test.path(), &args, &["--no-cache", "^base$"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(names_with(&parent, "built", "status", "built"), ["base"]);

    let (code, stderr, after) = build_once(test.path(), &args, &["child"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        names_with(&after, "built", "status", "fresh"),
        ["base"],
        "{after}"
    );
    assert_eq!(
        names_with(&after, "built", "status", "built"),
        ["child"],
        "the child is rebuilt on the new parent: {after}"
    );
}

#[test]
fn a_context_symlink_reaches_the_engine_as_a_symlink() {
    let _lock = crate::engine::engine_lock();
    busybox_image();
    let ns = crate::engine::Namespace::new("symlink");
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "TOPSECRET\n").unwrap();
    // The context holds a symlink to a file outside the tree: the image gets the link, and the
    // build fails if the secret's bytes came instead.
    let test = busybox_tree(&[(
        "linked",
        "COPY conf /conf\nRUN test -L /conf/leak && ! cat /conf/leak",
    )]);
    std::fs::create_dir_all(test.path().join("images/linked/conf")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret"),
        test.path().join("images/linked/conf/leak"),
    )
    .unwrap();
    let (code, stderr, summary) = build_once(test.path(), &engine_args(&ns.0), &["linked"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        names_with(&summary, "built", "status", "built").len(),
        2,
        "{summary}"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. All-or-nothing publishing: export and push
// ---------------------------------------------------------------------------------------------

fn registry_has(repository: &str, tag: &str) -> bool {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
            "-H",
            "Accept: application/vnd.docker.distribution.manifest.v2+json",
            &format!("http://127.0.0.1:4000/v2/{repository}/manifests/{tag}"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "200"
}

#[test]
fn a_failed_image_moves_no_tag_and_replaces_no_export_unless_asked() {
    let _lock = crate::engine::engine_lock();
    busybox_image();
    let ns = crate::engine::Namespace::new("atomic");
    let test = busybox_tree(&[("good", "RUN echo good > /good"), ("bad", "RUN false")]);
    test.write("out/images.tar.gz", "the previous export\n");
    let mut args = engine_args(&ns.0);
    args.extend(
        [
            "--registry",
            "127.0.0.1:4000",
            "--push",
            "--retries",
            "0",
            "--export",
            "out/images.tar.gz",
        ]
        .map(String::from),
    );
    let good = format!("{}/debian-binary-good", ns.0);

    let (code, stderr, failed) = build_once(test.path(), &args, &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["push"]["mode"], "atomic", "{failed}");
    assert_eq!(failed["push"]["tags_moved"], false, "{failed}");
    assert_eq!(
        names_with(&failed, "built", "push", "staged").len(),
        2,
        "{failed}"
    );
    assert!(!registry_has(&good, TAG), "no final tag moved");
    assert!(
        registry_has(&good, &format!("{TAG}.kolla-staging")),
        "the layers and manifest were pushed ahead"
    );
    assert_eq!(test.read("out/images.tar.gz"), "the previous export\n");
    assert_eq!(failed["export"]["written"], false);
    assert_eq!(failed["export"]["missing"], serde_json::json!(["bad"]));
    assert!(leftovers(&test.path().join("out")).is_empty());

    // --export-partial writes what built and names what is missing.
    let (code, stderr, partial) = build_once(test.path(), &args, &["--export-partial"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(partial["export"]["written"], true, "{partial}");
    assert_eq!(partial["export"]["missing"], serde_json::json!(["bad"]));
    assert_ne!(
        test.read_bytes("out/images.tar.gz"),
        b"the previous export\n"
    );

    // Fixed, the run succeeds and every tag moves at the end.
    test.write(
        "images/bad/Dockerfile.j2",
        "FROM {{ namespace }}/{{ image_prefix }}base:{{ tag }}\nRUN true\n",
    );
    let (code, stderr, fixed) = build_once(test.path(), &args, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(fixed["push"]["tags_moved"], true, "{fixed}");
    assert_eq!(
        names_with(&fixed, "built", "push", "pushed").len(),
        3,
        "{fixed}"
    );
    for image in ["base", "good", "bad"] {
        assert!(
            registry_has(&format!("{}/debian-binary-{image}", ns.0), TAG),
            "{image}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 2 and 4. Pull and bootstrap: failures write the summary; signals stop them cleanly
// ---------------------------------------------------------------------------------------------

/// A TCP server that accepts connections and never answers (a hung registry or mirror).
struct Silent {
    port: u16,
    _thread: std::thread::JoinHandle<()>,
}

impl Silent {
    fn start() -> Silent {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
            }
        });
        Silent {
            port,
            _thread: thread,
        }
    }
}

#[test]
fn pull_and_bootstrap_failures_write_the_summary_and_signals_stop_them_cleanly() {
    let _lock = crate::engine::engine_lock();
    let ns = crate::engine::Namespace::new("pull");
    let test = busybox_tree(&[]);
    let common = |base_image: &str| -> Vec<String> {
        [
            "-n",
            &ns.0,
            "--base-image",
            base_image,
            // A suite debootstrap knows; the image `<base_image>:bookworm` does not exist.
            "--base-tag",
            "bookworm",
            "--tag",
            TAG,
            "--format",
            "none",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };

    // A missing base image that may not be pulled.
    let (code, stderr, summary) = build_once(
        test.path(),
        &common("kolla-build-test/nowhere"),
        &["--no-pull"],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(summary["status"], "error", "{summary}");
    assert!(summary["error"].as_str().unwrap().contains("--no-pull"));
    assert_eq!(
        names_with(&summary, "failed", "status", "not_built"),
        ["base"]
    );

    // A bootstrap from a mirror that refuses connections.
    let (code, stderr, summary) = build_once(
        test.path(),
        &common("kolla-build-test/nowhere"),
        &[
            "--bootstrap-base",
            "--bootstrap-mirror",
            "http://127.0.0.1:1/debian",
        ],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(summary["status"], "error", "{summary}");
    assert!(summary["error"].as_str().unwrap().contains("debootstrap"));

    // A pull from a registry that never answers, stopped by SIGTERM.
    let silent = Silent::start();
    let mut args = common(&format!("127.0.0.1:{}/kolla-build-test/hung", silent.port));
    args.extend(["--summary-json-file", "pull.json"].map(String::from));
    let run = Running::start(test.path(), &args, &[]);
    run.wait_for(&["Pulling"], Duration::from_secs(60));
    run.signal("TERM");
    let (code, stderr) = run.finish(Duration::from_secs(60));
    assert_eq!(code, Some(143), "{stderr}");
    assert_eq!(
        json_file(&test.path().join("pull.json"))["status"],
        "interrupted"
    );

    // A bootstrap from a mirror that never answers, stopped by SIGINT: its root filesystem goes.
    let mirror = format!("http://127.0.0.1:{}/debian", silent.port);
    let mut args = common("kolla-build-test/nowhere");
    args.extend(
        [
            "--bootstrap-base",
            "--bootstrap-mirror",
            &mirror,
            "--summary-json-file",
            "bootstrap.json",
        ]
        .map(String::from),
    );
    let run = Running::start(test.path(), &args, &[]);
    run.wait_for(&["Bootstrap", &mirror], Duration::from_secs(60));
    // Our root filesystem: the target of the debootstrap process given this mirror.
    let ours = (0..100)
        .find_map(|_| {
            let found = debootstrap_target(&mirror);
            if found.is_none() {
                std::thread::sleep(Duration::from_millis(100));
            }
            found
        })
        .expect("debootstrap started in a kolla-build-rootfs-* directory");
    run.signal("INT");
    let (code, stderr) = run.finish(Duration::from_secs(60));
    assert_eq!(code, Some(130), "{stderr}");
    assert_eq!(
        json_file(&test.path().join("bootstrap.json"))["status"],
        "interrupted"
    );
    assert!(!ours.exists(), "{} was removed", ours.display());
    assert!(
        debootstrap_target(&mirror).is_none(),
        "debootstrap was stopped"
    );

    // Two signals: an immediate exit, still without the root filesystem or debootstrap.
    let run = Running::start(test.path(), &args, &[]);
    run.wait_for(&["Bootstrap", &mirror], Duration::from_secs(60));
    let ours = (0..100)
        .find_map(|_| {
            let found = debootstrap_target(&mirror);
            if found.is_none() {
                std::thread::sleep(Duration::from_millis(100));
            }
            found
        })
        .expect("debootstrap started in a kolla-build-rootfs-* directory");
    run.signal("TERM");
    run.signal("TERM");
    let (code, stderr) = run.finish(Duration::from_secs(60));
    assert_eq!(code, Some(143), "{stderr}");
    assert!(!ours.exists(), "{} was removed", ours.display());
    assert!(
        debootstrap_target(&mirror).is_none(),
        "debootstrap was stopped"
    );
}

/// The root filesystem directory (`kolla-build-rootfs-*`) of the running debootstrap given
/// `mirror`, read from /proc.
fn debootstrap_target(mirror: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().any(|a| a.contains("debootstrap")) && args.iter().any(|a| a == mirror) {
            if let Some(target) = args.iter().find(|a| a.contains("kolla-build-rootfs-")) {
                let path = Path::new(target);
                return path.parent().map(Path::to_path_buf);
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// 2. A signal mid-push
// ---------------------------------------------------------------------------------------------

#[test]
fn sigterm_mid_push_stops_it_and_moves_no_tag() {
    let _lock = crate::engine::engine_lock();
    busybox_image();
    let ns = crate::engine::Namespace::new("sigpush");
    let silent = Silent::start();
    let test = busybox_tree(&[]);
    let mut args = engine_args(&ns.0);
    let registry = format!("127.0.0.1:{}", silent.port);
    args.extend(
        [
            "--registry",
            &registry,
            "--push",
            "--summary-json-file",
            "summary.json",
        ]
        .map(String::from),
    );
    let run = Running::start(test.path(), &args, &[]);
    run.wait_for(&["Pushing"], Duration::from_secs(120));
    run.signal("TERM");
    let (code, stderr) = run.finish(Duration::from_secs(60));
    assert_eq!(code, Some(143), "{stderr}");
    let summary = json_file(&test.path().join("summary.json"));
    assert_eq!(summary["status"], "interrupted", "{summary}");
    assert_eq!(
        names_with(&summary, "built", "push", "cancelled"),
        ["base"],
        "{summary}"
    );
    assert_eq!(summary["push"]["tags_moved"], false, "{summary}");
}

// ---------------------------------------------------------------------------------------------
// 7. Engine death: a private dockerd killed mid-run, restarted, and the rerun resumes
// ---------------------------------------------------------------------------------------------

#[test]
fn engine_death_mid_run_is_a_bounded_error_naming_what_was_lost_and_the_rerun_resumes() {
    let _lock = crate::engine::engine_lock();
    let engine = PrivateEngine::new("kbrel11", "172.31.251.1/24");
    engine.start();
    import_busybox(Some(&engine.url()));
    let test = busybox_tree(&[
        ("quick", "RUN echo quick > /quick"),
        ("slow", "RUN sleep 120"),
    ]);
    test.write(
        "images/slow/slowchild/Dockerfile.j2",
        "FROM {{ namespace }}/{{ image_prefix }}slow:{{ tag }}\nRUN echo child\n",
    );
    let mut args = engine_args("kbtest-death");
    args.extend(["--engine-url", &engine.url()].map(String::from));

    let mut first = args.clone();
    first.extend(["--summary-json-file", "summary.json"].map(String::from));
    let run = Running::start(test.path(), &first, &[]);
    run.wait_for(&["Built", "quick"], Duration::from_secs(120));
    let started_slow = run.stderr.lock().unwrap().contains("Building slow");
    if !started_slow {
        run.wait_for(&["Building", "slow"], Duration::from_secs(60));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert!(engine.script("kill").status.success());
    let (code, stderr) = run.finish(Duration::from_secs(120));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("stopped answering"), "{stderr}");
    let summary = json_file(&test.path().join("summary.json"));
    assert_eq!(summary["status"], "error", "{summary}");
    assert_eq!(
        summary["lost"],
        serde_json::json!(["slow", "slowchild"]),
        "{summary}"
    );
    let mut built = names_with(&summary, "built", "status", "built");
    built.sort();
    assert_eq!(built, ["base", "quick"], "{summary}");

    // Back up; the finished images are fresh, the lost ones build (now quickly).
    assert!(engine.script("down").status.success());
    engine.start();
    test.write(
        "images/slow/Dockerfile.j2",
        "FROM {{ namespace }}/{{ image_prefix }}base:{{ tag }}\nRUN echo slow\n",
    );
    let (code, stderr, rerun) = build_once(test.path(), &args, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let mut fresh = names_with(&rerun, "built", "status", "fresh");
    fresh.sort();
    assert_eq!(fresh, ["base", "quick"], "{rerun}");
    let mut built = names_with(&rerun, "built", "status", "built");
    built.sort();
    assert_eq!(built, ["slow", "slowchild"], "{rerun}");
}
