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

use crate::support::{BIN, SMALL_TREE, Test};

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
