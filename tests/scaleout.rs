//! One run over three engines (issue 13): the main dockerd (reached over ssh through an sshd on
//! loopback in the three-engine run) and two private ones (the second over TLS) started with
//! scripts/private-dockerd.sh (bridges kbscale1 and kbscale2, never the reliability tests'
//! kbrel11; do not run these beside tests/reliability.rs), with the registry on 127.0.0.1:4000 as
//! the hand-off. Images are built with `--no-cache` where their placement matters, so that builds
//! take longer than a pull and the pool spreads them.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::engine::{Namespace, debian_args, engine_lock, kolla_build, names, set};
use crate::support::{BIN, LoopbackSshd, PrivateEngine};

const REGISTRY: &str = "127.0.0.1:4000";
const MAIN: &str = "unix:///var/run/docker.sock";

/// The two extra engines, started; the second one also answers over TLS (--tlsverify) on
/// 127.0.0.1:23762, with certificates the script makes for it.
fn extra_engines() -> (PrivateEngine, PrivateEngine) {
    let one = PrivateEngine::new("kbscale1", "172.31.252.1/24");
    let two = PrivateEngine::new("kbscale2", "172.31.253.1/24").with_tls(23762);
    one.start();
    two.start();
    (one, two)
}

/// Arguments building `images` of the Debian binary tree into `ns` over `engines` (one build at
/// a time on each), pushed to the registry.
fn pool_args(ns: &Namespace, engines: &[String], images: &[&str]) -> Vec<String> {
    let mut args = debian_args("binary", ns);
    args.extend(["--registry", REGISTRY, "--push", "-T", "1"].map(String::from));
    for url in engines {
        args.extend(["--engine".to_string(), url.clone()]);
    }
    args.extend(images.iter().map(|s| s.to_string()));
    args
}

/// The image the registry serves as `reference`: its ID (the config's digest) and the digest
/// of its manifest (of the bytes served).
fn registry_image(reference: &str) -> (String, String) {
    let rest = reference.strip_prefix(&format!("{REGISTRY}/")).unwrap();
    let (repository, tag) = rest.rsplit_once(':').unwrap();
    let out = Command::new("curl")
        .args(["-fsS", "--max-time", "30", "-H"])
        .arg("Accept: application/vnd.docker.distribution.manifest.v2+json")
        .arg(format!("http://{REGISTRY}/v2/{repository}/manifests/{tag}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{reference} is not in the registry");
    let manifest: Value = serde_json::from_slice(&out.stdout).unwrap();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&out.stdout)));
    (
        manifest["config"]["digest"].as_str().unwrap().to_string(),
        digest,
    )
}

/// The registry's log (scripts/setup-engine.sh's), where a pull by digest shows as
/// `GET /v2/<repository>/manifests/sha256:...`.
fn registry_log() -> String {
    let path = std::env::var("KOLLA_REGISTRY_LOG")
        .unwrap_or_else(|_| "/var/log/kolla-build-registry.log".to_string());
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{path}: {e} (scripts/setup-engine.sh starts the registry logging there)")
    })
}

/// The ID of the image tagged `reference` in the engine at `host` (for the docker CLI), if it
/// holds one.
fn engine_id(host: &str, reference: &str) -> Option<String> {
    let out = Command::new("docker")
        .args([
            "-H", host, "image", "inspect", "--format", "{{.Id}}", reference,
        ])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The built entries of a summary: name → (reference, engine, the digest its push reported).
fn built_on(summary: &Value) -> BTreeMap<String, (String, String, String)> {
    let entries = summary["built"].as_array().cloned().unwrap_or_default();
    let map: BTreeMap<String, (String, String, String)> = entries
        .iter()
        .map(|e| {
            let name = e["name"].as_str().unwrap().to_string();
            let reference = e["reference"].as_str().unwrap().to_string();
            let engine = e["engine"].as_str().unwrap_or_default().to_string();
            let digest = e["push_digest"].as_str().unwrap_or_default().to_string();
            (name, (reference, engine, digest))
        })
        .collect();
    assert_eq!(map.len(), entries.len(), "an image twice: {summary}");
    map
}

/// Every built image is in the registry as built (same image ID on the engine that built it,
/// and the manifest digest its push reported), and an engine that built a child of a parent
/// built elsewhere holds that parent as built, pulled by that digest (the registry's log shows
/// the manifest asked for by digest). Returns how many such hand-offs there were. `sockets` maps
/// an engine's URL in the summary to the socket the checks read it through, when they differ
/// (an engine reached over TLS or ssh).
fn assert_handed_over(
    built: &BTreeMap<String, (String, String, String)>,
    parents: &[(&str, &str)],
    sockets: &BTreeMap<String, String>,
) -> usize {
    let host = |engine: &String| sockets.get(engine).unwrap_or(engine).clone();
    for (name, (reference, engine, digest)) in built {
        assert!(!engine.is_empty(), "{name} names no engine");
        let (id, registry_digest) = registry_image(reference);
        assert_eq!(
            engine_id(&host(engine), reference),
            Some(id),
            "{name}: the registry holds what {engine} built"
        );
        assert_eq!(
            *digest, registry_digest,
            "{name}: the summary's push_digest is the registry's manifest digest"
        );
    }
    let log = registry_log();
    let mut handoffs = 0;
    for (child, parent) in parents {
        let (Some((_, child_engine, _)), Some((parent_ref, parent_engine, digest))) =
            (built.get(*child), built.get(*parent))
        else {
            continue;
        };
        if child_engine != parent_engine {
            handoffs += 1;
            assert_eq!(
                engine_id(&host(child_engine), parent_ref),
                Some(registry_image(parent_ref).0),
                "{child} on {child_engine} was built on the {parent} from {parent_engine}"
            );
            let repository = parent_ref
                .strip_prefix(&format!("{REGISTRY}/"))
                .and_then(|r| r.rsplit_once(':'))
                .unwrap()
                .0;
            let asked = format!("GET /v2/{repository}/manifests/{digest} ");
            assert!(
                log.contains(&asked),
                "{child} on {child_engine}: {parent} was pulled by digest ({asked:?} is not in \
                 the registry's log)"
            );
        }
    }
    handoffs
}

#[test]
fn three_engines_build_each_image_once_hand_parents_over_and_are_all_fresh_next_time() {
    let _lock = engine_lock();
    let (one, two) = extra_engines();
    let ns = Namespace::new("scale");
    let work = tempfile::tempdir().unwrap();
    // Each engine through another transport: the main one over ssh (an sshd on loopback, as a
    // remote build machine), the first extra one on its unix socket, the second over TLS with
    // its client files named in build.toml.
    let sshd = LoopbackSshd::start(23822);
    let ssh_url = sshd.engine_url();
    let (tls_url, tls_dir) = two.tls().unwrap();
    let config = work.path().join("engines.toml");
    let table = format!(
        "[[engine]]\nurl = \"{tls_url}\"\ntls_dir = \"{}\"\n",
        tls_dir.display()
    );
    std::fs::write(&config, table).unwrap();
    let sockets = BTreeMap::from([
        (tls_url.clone(), two.url()),
        (ssh_url.clone(), MAIN.to_string()),
    ]);
    let engines = [ssh_url, one.url(), tls_url];
    let mut args = pool_args(
        &ns,
        &engines,
        &["^keystone$", "^memcached$", "^mariadb-server$"],
    );
    args.extend(["--config-file".to_string(), config.display().to_string()]);
    let images = set(&[
        "base",
        "openstack-base",
        "keystone-base",
        "keystone",
        "memcached",
        "mariadb-server",
    ]);

    let mut cold_args = args.clone();
    cold_args.push("--no-cache".into());
    let cold = kolla_build(work.path(), &cold_args);
    assert_eq!(cold.code, Some(0), "cold build failed:\n{}", cold.stderr);
    assert_eq!(
        names(&cold.summary, "built", |e| e["fresh"] == false),
        images,
        "{}",
        cold.summary
    );
    let built = built_on(&cold.summary);
    let used: BTreeSet<&String> = built.values().map(|(_, e, _)| e).collect();
    assert_eq!(
        used,
        engines.iter().collect(),
        "the work is spread over the three engines (ssh, unix socket, TLS): {built:?}"
    );
    let parents = [
        ("openstack-base", "base"),
        ("keystone-base", "openstack-base"),
        ("keystone", "keystone-base"),
        ("memcached", "base"),
        ("mariadb-server", "base"),
    ];
    let handoffs = assert_handed_over(&built, &parents, &sockets);
    assert!(
        handoffs > 0,
        "some child was built away from its parent: {built:?}"
    );
    assert!(
        cold.summary.get("lost_engines").is_none(),
        "{}",
        cold.summary
    );

    // Nothing changed: every image is fresh, read from the first engine or the registry.
    let warm = kolla_build(work.path(), &args);
    assert_eq!(warm.code, Some(0), "{}", warm.stderr);
    assert_eq!(
        names(&warm.summary, "built", |e| e["fresh"] == true),
        images,
        "a second run is all fresh: {}",
        warm.summary
    );
    assert!(
        built_on(&warm.summary)
            .values()
            .all(|(_, e, _)| e.is_empty()),
        "no engine built anything: {}",
        warm.summary
    );
}

#[test]
fn an_engine_killed_mid_build_has_its_work_moved_and_the_run_completes() {
    let _lock = engine_lock();
    let (one, two) = extra_engines();
    let ns = Namespace::new("scalekill");
    let work = tempfile::tempdir().unwrap();
    let engines = [MAIN.to_string(), one.url(), two.url()];
    let mut args = pool_args(&ns, &engines, &["^memcached$", "^mariadb-server$"]);
    args.extend(["--no-cache", "--summary-json-file", "summary.json"].map(String::from));
    let mut run = Command::new(BIN)
        .args(&args)
        .current_dir(work.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(work.path().join("stderr.log")).unwrap())
        .spawn()
        .unwrap();

    // Kill the first extra engine seen running a build step.
    let busy = |engine: &PrivateEngine| {
        Command::new("docker")
            .args(["-H", &engine.url(), "ps", "-q"])
            .output()
            .is_ok_and(|o| o.status.success() && !o.stdout.is_empty())
    };
    let began = Instant::now();
    let mut killed = None;
    while killed.is_none() && began.elapsed() < Duration::from_secs(900) {
        if run.try_wait().unwrap().is_some() {
            break;
        }
        for engine in [&one, &two] {
            if killed.is_none() && busy(engine) {
                assert!(engine.script("kill").status.success());
                killed = Some(engine.url());
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let code = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status.code();
        }
        if began.elapsed() > Duration::from_secs(1800) {
            let _ = run.kill();
            panic!("the run did not end within 30 minutes");
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let stderr = std::fs::read_to_string(work.path().join("stderr.log")).unwrap_or_default();
    let killed =
        killed.unwrap_or_else(|| panic!("no build was placed on an extra engine:\n{stderr}"));
    assert_eq!(code, Some(0), "{stderr}");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(work.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(
        names(&summary, "built", |e| e["fresh"] == false),
        set(&["base", "memcached", "mariadb-server"]),
        "{summary}"
    );
    assert_eq!(
        summary["lost_engines"],
        serde_json::json!([killed]),
        "{summary}"
    );
    let built = built_on(&summary);
    assert!(
        built.values().all(|(_, e, _)| *e != killed),
        "nothing counts as built on the lost engine: {built:?}"
    );
    assert_handed_over(
        &built,
        &[("memcached", "base"), ("mariadb-server", "base")],
        &BTreeMap::new(),
    );
    assert!(
        stderr.contains(&format!("the engine at {killed} stopped answering")),
        "{stderr}"
    );
}
