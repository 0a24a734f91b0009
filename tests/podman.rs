//! Podman as the engine: `podman system service` (started by `scripts/setup-podman.sh`, which
//! `scripts/test.sh` runs) builds the Debian keystone chain through its Docker-compatible socket,
//! from a base bootstrapped into podman's own storage, and exports it as a registry tarball that
//! a stock registry serves. The differences from dockerd are in docs/SCALE-OUT.md ("Podman").

use std::process::Command;

use serde_json::Value;

use crate::engine::{Namespace, Registry, debian_args, kolla_build, names, set, sha256_of};

const SOCKET: &str = "/run/kolla-build-podman.sock";

/// Fails loudly when the podman service does not answer.
fn podman_up() {
    let ok = Command::new("curl")
        .args(["-fsS", "--max-time", "5", "--unix-socket", SOCKET])
        .arg("http://d/_ping")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "no podman service answers on {SOCKET}: run scripts/setup-podman.sh first (scripts/test.sh does)"
    );
}

fn podman(args: &[&str]) -> String {
    let out = Command::new("podman").args(args).output().expect("podman");
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Untags this test's images from podman's storage (which only these tests use) and removes the
/// build layers they leave untagged.
struct PodmanImages(String);

impl Drop for PodmanImages {
    fn drop(&mut self) {
        let Ok(out) = Command::new("podman")
            .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .output()
        else {
            return;
        };
        let ours = format!("/{}/", self.0);
        let listed = String::from_utf8_lossy(&out.stdout).into_owned();
        let references: Vec<&str> = listed.lines().filter(|r| r.contains(&ours)).collect();
        // One call: each `podman rmi` takes podman's storage lock, which is slow under load.
        if !references.is_empty() {
            let _ = Command::new("podman").arg("rmi").args(&references).output();
        }
        let _ = Command::new("podman")
            .args(["image", "prune", "-f"])
            .output();
    }
}

#[test]
fn podman_builds_the_keystone_chain_and_exports_it_then_is_fresh() {
    podman_up();
    let ns = Namespace::new("podman");
    let _images = PodmanImages(ns.0.clone());
    // The bootstrapped base is imported through the API every time (podman's storage is not
    // dockerd's: nothing is shared with the other engine tests).
    let _ = Command::new("podman")
        .args(["rmi", "docker.io/library/debian:trixie"])
        .output();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let mut args = debian_args("binary", &ns);
    // kolla's way of choosing podman (issue 24): `--engine podman` with its socket's URL.
    args.extend([
        "--engine".to_string(),
        "podman".to_string(),
        "--podman-base-url".to_string(),
        format!("unix://{SOCKET}"),
    ]);
    args.push("^keystone$".into());
    let with_export = |file: &str| -> Vec<String> {
        let mut a = args.clone();
        a.extend(["--export".to_string(), file.to_string()]);
        a
    };
    let chain = set(&["base", "openstack-base", "keystone-base", "keystone"]);

    let cold = kolla_build(dir, &with_export("out/first.tar.gz"));
    assert_eq!(cold.code, Some(0), "cold build failed:\n{}", cold.stderr);
    assert_eq!(
        names(&cold.summary, "built", |e| e["fresh"] == false),
        chain,
        "{}",
        cold.summary
    );
    assert_eq!(
        names(&cold.summary, "built", |e| e["export"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:"))),
        chain,
        "every image is exported: {}",
        cold.summary
    );
    // Podman stores the short names it was given under docker.io.
    let keystone = format!("docker.io/{}/debian-binary-keystone:2025.1", ns.0);
    assert!(!podman(&["image", "inspect", "--format", "{{.Id}}", &keystone]).is_empty());

    let warm = kolla_build(dir, &with_export("out/second.tar.gz"));
    assert_eq!(warm.code, Some(0), "{}", warm.stderr);
    assert_eq!(
        names(&warm.summary, "built", |e| e["fresh"] == true),
        chain,
        "a second run is all fresh: {}",
        warm.summary
    );
    assert_eq!(
        sha256_of(&dir.join("out/first.tar.gz")),
        sha256_of(&dir.join("out/second.tar.gz")),
        "exports of the same images are byte-identical"
    );

    // A stock registry serves the unpacked tarball; each image's config is podman's image.
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
    let served = Registry::serve(&root, "127.0.0.3:4000", dir);
    for image in &chain {
        let local = format!("docker.io/{}/debian-binary-{image}:2025.1", ns.0);
        let remote = format!("127.0.0.3:4000/{}/debian-binary-{image}:2025.1", ns.0);
        let raw = Command::new("skopeo")
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{remote}"),
            ])
            .output()
            .unwrap();
        assert!(
            raw.status.success(),
            "skopeo inspect {remote}: {}",
            String::from_utf8_lossy(&raw.stderr)
        );
        let manifest: Value = serde_json::from_slice(&raw.stdout).unwrap();
        let id = podman(&["image", "inspect", "--format", "{{.Id}}", &local]);
        assert_eq!(
            manifest["config"]["digest"].as_str(),
            Some(format!("sha256:{id}").as_str()),
            "{image}: the served config is the image podman built"
        );
    }
    drop(served);
}

/// kolla's `--engine podman --podman-base-url URL` builds through podman's socket: a one-image
/// tree FROM a tiny image imported into podman lands in podman's storage, not in dockerd's.
#[test]
fn kolla_s_engine_podman_builds_through_the_podman_base_url() {
    podman_up();
    let ns = Namespace::new("podman-engine-name");
    let _images = PodmanImages(ns.0.clone());
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    // The base: one file, imported (no registry needed).
    std::fs::create_dir_all(dir.join("rootfs")).unwrap();
    std::fs::write(dir.join("rootfs/hello"), "hi\n").unwrap();
    let tar = Command::new("tar")
        .arg("-C")
        .arg(dir.join("rootfs"))
        .arg("-cf")
        .arg(dir.join("tiny.tar"))
        .arg(".")
        .status()
        .unwrap();
    assert!(tar.success());
    let tiny = format!("localhost/{}/tiny", ns.0);
    podman(&[
        "import",
        dir.join("tiny.tar").to_str().unwrap(),
        &format!("{tiny}:1"),
    ]);
    for (rel, text) in [
        ("tree/build.toml", "base = \"debian\"\n"),
        (
            "tree/base/Dockerfile.j2",
            "FROM {{ base_image }}:{{ base_distro_tag }}\nCOPY start.sh /start.sh\n",
        ),
        ("tree/base/start.sh", "#!/bin/sh\n"),
        ("tree/images/README", "no image but base\n"),
    ] {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let args: Vec<String> = [
        "--engine",
        "podman",
        "--podman-base-url",
        &format!("unix://{SOCKET}"),
        "--base-image",
        &tiny,
        "--base-tag",
        "1",
        "-n",
        &ns.0,
        "--format",
        "none",
        "base",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let build = kolla_build(&dir.join("tree"), &args);
    assert_eq!(build.code, Some(0), "{}", build.stderr);
    assert_eq!(
        names(&build.summary, "built", |e| e["fresh"] == false),
        set(&["base"]),
        "{}",
        build.summary
    );
    let image = format!("docker.io/{}/debian-binary-base:2025.1", ns.0);
    let exists = Command::new("podman")
        .args(["image", "exists", &image])
        .status()
        .unwrap();
    assert!(exists.success(), "{image} is not in podman's storage");
    let in_docker = Command::new("docker")
        .args([
            "image",
            "inspect",
            &format!("{}/debian-binary-base:2025.1", ns.0),
        ])
        .output()
        .unwrap();
    assert!(
        !in_docker.status.success(),
        "the image was built by dockerd"
    );
}
