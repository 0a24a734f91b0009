//! Issue 14: builds through the shared package caches (`scripts/setup-caches.sh`, which the
//! test command runs first) and the export's layer cache, against the real engine and caches.

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::engine::{
    Namespace, debian_args, engine_lock, kolla_build, names, sha256_of, small_tree,
};
use crate::support::Test;

const APT_CACHE: &str = "apt=http://127.0.0.1:3142";
const PYPI_CACHE: &str = "pypi=http://127.0.0.1:3141/root/pypi/+simple/";
/// Where scripts/setup-caches.sh has the caches log (its defaults).
const APT_LOG: &str = "/var/log/kolla-build-caches/apt-cacher.log";
const DEVPI_LOG: &str = "/var/log/kolla-build-caches/devpi.log";

/// The images of the summary's `built` list that were (not) fresh.
fn built(summary: &Value, fresh: bool) -> BTreeSet<String> {
    names(summary, "built", |e| e["fresh"] == fresh)
}

/// The engine tests' small tree, with a `base` layer above the 1 MiB mark (compressed while
/// streaming) and small layers above it (compressed at the end).
fn big_base_tree() -> Test {
    small_tree("head -c 3000000 /dev/zero > /big && echo base > /base.txt")
}

/// The cached compressed layers: file name → inode (a layer compressed again gets a new file).
fn cached_layers(cache: &Path) -> Vec<(String, u64)> {
    let dir = cache
        .join("export/layers")
        .join(::kolla_build::publish::blob_cache::COMPRESSION);
    let mut out: Vec<(String, u64)> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".gz"))
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        e.metadata().unwrap().ino(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn an_incremental_export_recompresses_only_new_layers_and_equals_a_full_one() {
    let _lock = engine_lock();
    let ns = Namespace::new("incexport");
    let test = big_base_tree();
    let dir = test.path();
    let run = |cache: &str, out: &str| {
        let args: Vec<String> = [
            "-n",
            &ns.0,
            "--bootstrap-base",
            "--format",
            "none",
            "--cache-dir",
            cache,
            "--export",
            out,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let build = kolla_build(dir, &args);
        assert_eq!(build.code, Some(0), "{}", build.stderr);
        build.summary
    };

    run("cache", "out/first.tar.gz");
    let before = cached_layers(&dir.join("cache"));
    assert!(!before.is_empty(), "the first export fills the cache");

    // One image changes: its new layer is the only one compressed.
    test.write(
        "images/two/Dockerfile.j2",
        "FROM {{ namespace }}/{{ image_prefix }}base:{{ tag }}\nRUN echo two, changed > /two.txt\n",
    );
    let summary = run("cache", "out/incremental.tar.gz");
    assert_eq!(
        built(&summary, false),
        BTreeSet::from(["two".to_string()]),
        "{summary}"
    );
    let after = cached_layers(&dir.join("cache"));
    let kept: Vec<_> = after.iter().filter(|l| before.contains(l)).collect();
    assert_eq!(
        kept.len(),
        before.len(),
        "no cached layer was compressed again: {before:?} -> {after:?}"
    );
    assert_eq!(
        after.len(),
        before.len() + 1,
        "exactly the changed image's new layer was added: {before:?} -> {after:?}"
    );

    // The same images exported with an empty cache, and again with a full one (nothing to
    // read from the engine then): the same bytes every time.
    run("fresh-cache", "out/full.tar.gz");
    run("cache", "out/all-cached.tar.gz");
    let incremental = sha256_of(&dir.join("out/incremental.tar.gz"));
    assert_eq!(
        incremental,
        sha256_of(&dir.join("out/full.tar.gz")),
        "an incremental export is byte-identical to a full one"
    );
    assert_eq!(incremental, sha256_of(&dir.join("out/all-cached.tar.gz")));
    assert_ne!(
        incremental,
        sha256_of(&dir.join("out/first.tar.gz")),
        "the change is in the export"
    );
}

/// Byte length of `path` now (where a later read starts).
fn log_len(path: &str) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// What was appended to `path` since `offset`.
fn log_since(path: &str, offset: u64) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(bytes.get(offset as usize..).unwrap_or_default()).into_owned()
}

/// apt-cacher-ng's transfer log: bytes fetched from the mirror (`I`) and served (`O`).
fn apt_bytes(log: &str) -> (u64, u64) {
    let (mut fetched, mut served) = (0, 0);
    for line in log.lines() {
        let fields: Vec<&str> = line.split('|').collect();
        if fields.len() < 3 {
            continue;
        }
        let bytes: u64 = fields[2].parse().unwrap_or(0);
        match fields[1] {
            "I" => fetched += bytes,
            "O" => served += bytes,
            _ => {}
        }
    }
    (fetched, served)
}

/// The package files (wheels, sdists) devpi fetched from PyPI, by the lines it logs.
fn devpi_remote_files(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("reading remote") && l.contains("/+f/"))
        .map(str::to_string)
        .collect()
}

/// Fails if `needle` occurs in any file of the image (its flattened filesystem).
fn assert_not_in_files(reference: &str, needles: &[&str]) {
    let out = Command::new("docker")
        .args(["create", reference, "true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "docker create {reference}");
    let container = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut export = Command::new("docker")
        .args(["export", &container])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stream = export.stdout.take().unwrap();
    let patterns: Vec<regex::bytes::Regex> = needles
        .iter()
        .map(|n| regex::bytes::Regex::new(&regex::escape(n)).unwrap())
        .collect();
    let mut found = Vec::new();
    let mut carry: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 8 << 20];
    loop {
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        carry.extend_from_slice(&buf[..n]);
        for (needle, pattern) in needles.iter().zip(&patterns) {
            if let Some(m) = pattern.find(&carry) {
                let start = m.start().saturating_sub(200);
                found.push(format!(
                    "{needle}: ...{}...",
                    String::from_utf8_lossy(&carry[start..m.end()])
                ));
            }
        }
        // Keep a tail so that a needle split across reads is still seen.
        let keep = carry.len().saturating_sub(256);
        carry.drain(..keep);
    }
    let _ = export.wait();
    let _ = Command::new("docker").args(["rm", &container]).output();
    found.dedup();
    assert!(
        found.is_empty(),
        "{reference} holds a cache address in its files: {found:?}"
    );
}

/// The keystone chain (source: apt and pip) through both caches, twice without the layer
/// cache: no proxy setting or cache address is left in any image (config, history, files), and
/// the second build gets (almost) everything from the caches. scripts/test.sh starts the
/// caches.
#[test]
fn builds_through_the_package_caches_leave_no_trace_and_a_rebuild_fetches_nothing_new() {
    let _lock = engine_lock();
    for url in [
        "http://127.0.0.1:3142/acng-report.html",
        "http://127.0.0.1:3141/+api",
    ] {
        let ok = Command::new("curl")
            .args(["-fsS", "--max-time", "5", "-o", "/dev/null", url])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "no package cache answers at {url}: run scripts/setup-caches.sh first (scripts/test.sh does)"
        );
    }
    let ns = Namespace::new("caches");
    let work = tempfile::tempdir().unwrap();
    let mut args = debian_args("source", &ns);
    args.extend(
        [
            "--no-cache",
            "--package-cache",
            APT_CACHE,
            "--package-cache",
            PYPI_CACHE,
            "^keystone$",
        ]
        .map(String::from),
    );
    let chain =
        BTreeSet::from(["base", "openstack-base", "keystone-base", "keystone"].map(String::from));

    let first = kolla_build(work.path(), &args);
    assert_eq!(
        first.code,
        Some(0),
        "build through the caches:\n{}",
        first.stderr
    );
    assert_eq!(built(&first.summary, false), chain, "{}", first.summary);
    for entry in first.summary["built"].as_array().unwrap() {
        let name = entry["name"].as_str().unwrap();
        if name == "base" || name == "openstack-base" {
            assert!(
                entry["network_bytes"].as_u64().unwrap_or(0) > 100_000,
                "{name} downloaded its packages through the caches: {entry}"
            );
        }
    }

    // No trace: the config (Env, labels, history) of every image, and the files of the last.
    let leaks = [
        "127.0.0.1:314",
        "/root/pypi/+simple",
        "http_proxy=",
        "ftp_proxy=",
        "no_proxy=",
    ];
    for name in &chain {
        let reference = format!("{}/debian-source-{name}:2025.1", ns.0);
        let out = Command::new("docker")
            .args(["inspect", "--format", "{{json .Config}}", &reference])
            .output()
            .unwrap();
        let config = String::from_utf8_lossy(&out.stdout).to_string();
        let out = Command::new("docker")
            .args([
                "history",
                "--no-trunc",
                "--format",
                "{{.CreatedBy}}",
                &reference,
            ])
            .output()
            .unwrap();
        let history = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            history.contains("pip") || name == "base" || name == "keystone",
            "{history}"
        );
        for leak in leaks {
            assert!(
                !config.contains(leak),
                "{reference}: `{leak}` in its config: {config}"
            );
            assert!(
                !history.contains(leak),
                "{reference}: `{leak}` in its history:\n{history}"
            );
        }
        // A relay address is 127.0.0.1:<port>: none may appear either.
        assert!(
            !history.contains("127.0.0.1:") && !config.contains("127.0.0.1:"),
            "{reference}: a loopback address in its config or history"
        );
    }
    assert_not_in_files(
        &format!("{}/debian-source-keystone:2025.1", ns.0),
        &["127.0.0.1:3142", "127.0.0.1:3141", "/root/pypi/+simple"],
    );

    // The second build without the layer cache: everything comes from the caches.
    let (apt_at, devpi_at) = (log_len(APT_LOG), log_len(DEVPI_LOG));
    let second = kolla_build(work.path(), &args);
    assert_eq!(second.code, Some(0), "second build:\n{}", second.stderr);
    assert_eq!(built(&second.summary, false), chain, "{}", second.summary);
    let (fetched, served) = apt_bytes(&log_since(APT_LOG, apt_at));
    assert!(
        served > 10_000_000,
        "the apt cache served the rebuild ({served} bytes): is the transfer log at {APT_LOG}?"
    );
    assert!(
        fetched * 50 < served,
        "the rebuild fetched {fetched} bytes from the mirror for {served} bytes served (more than 2%)"
    );
    let remote = devpi_remote_files(&log_since(DEVPI_LOG, devpi_at));
    assert!(
        remote.is_empty(),
        "the rebuild fetched package files from PyPI: {remote:#?}"
    );
}

#[test]
fn an_incremental_export_of_pushed_images_reads_only_the_changed_one_from_the_registry() {
    let _lock = engine_lock();
    let ns = Namespace::new("regexport");
    let test = big_base_tree();
    let dir = test.path();
    // Every run names the images in the live registry on 127.0.0.1:4000 (scripts/setup-engine.sh).
    let run = |cache: &str, extra: &[&str]| {
        let args: Vec<String> = [
            "-n",
            &ns.0,
            "--registry",
            "127.0.0.1:4000",
            "--bootstrap-base",
            "--format",
            "none",
            "--cache-dir",
            cache,
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect();
        let build = kolla_build(dir, &args);
        assert_eq!(build.code, Some(0), "{}", build.stderr);
        build.summary
    };
    let from = |summary: &Value| {
        let export = &summary["export"];
        [
            &export["from_cache"],
            &export["from_registry"],
            &export["saved"],
        ]
        .map(|n| n.as_u64())
    };

    // Built and pushed; the first export has nothing cached and reads the engine's save.
    run("cache", &["--push"]);
    let first = run("cache", &["--export", "out/first.tar.gz"]);
    assert_eq!(from(&first), [Some(0), Some(0), Some(3)], "{first}");

    // `two` changes, is rebuilt and pushed: the export reads it from the registry (its new layer
    // only), the others from the cache, nothing from the engine's save.
    test.write(
        "images/two/Dockerfile.j2",
        "FROM {{ namespace }}/{{ image_prefix }}base:{{ tag }}\nRUN echo two, changed > /two.txt\n",
    );
    let pushed = run("cache", &["--push"]);
    assert_eq!(
        built(&pushed, false),
        BTreeSet::from(["two".to_string()]),
        "{pushed}"
    );
    let incremental = run("cache", &["--export", "out/incremental.tar.gz"]);
    assert_eq!(
        from(&incremental),
        [Some(2), Some(1), Some(0)],
        "{incremental}"
    );
    run("fresh-cache", &["--export", "out/full.tar.gz"]);
    assert_eq!(
        sha256_of(&dir.join("out/incremental.tar.gz")),
        sha256_of(&dir.join("out/full.tar.gz")),
        "read from the registry, byte-identical to a full export"
    );
}
