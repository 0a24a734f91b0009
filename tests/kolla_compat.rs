//! kolla's own tree without hand-fed settings: a fake kolla installation (its tree, its package
//! metadata and repos.yaml, in the layout of kolla 22 and earlier) is rendered with no flag but
//! the tree, and gets the defaults of the kolla release it belongs to (`src/compat/kolla.toml`),
//! the configuration files kolla would read, and `$option` interpolation.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::BIN;

const BASE: &str = "FROM {{ base_image }}:{{ base_distro_tag }}\n\
LABEL maintainer=\"{{ maintainer }}\" kolla_version=\"{{ kolla_version }}\" tag=\"{{ tag }}\" \
release=\"{{ openstack_release }}\" distro=\"{{ supported_distro_name }}\"\n\
{% if kolla_version.startswith('20.') %}{{ handle_repos(['crb', 'missing'], 'enable') }}\n{% endif %}";
const CHILD: &str = "FROM {{ namespace }}/{{ image_prefix }}base:{{ tag }}\n";

/// `<prefix>/share/kolla/docker` with the package and its metadata in the prefix's
/// site-packages, as `pip install kolla==<version>` lays out kolla 22 and earlier.
fn install(prefix: &Path, version: &str) -> PathBuf {
    let write = |rel: &str, text: &str| {
        let path = prefix.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("share/kolla/docker/base/Dockerfile.j2", BASE);
    write("share/kolla/docker/child/Dockerfile.j2", CHILD);
    let site = "lib/python3.11/site-packages";
    write(&format!("{site}/kolla/__init__.py"), "");
    write(
        &format!("{site}/kolla/template/repos.yaml"),
        "rocky:\n  crb: \"crb\"\n",
    );
    write(
        &format!("{site}/kolla-{version}.dist-info/METADATA"),
        &format!("Metadata-Version: 2.1\nName: kolla\nVersion: {version}\n\nkolla\n"),
    );
    prefix.join("share/kolla/docker")
}

fn run(home: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("HOME", home)
        .output()
        .expect("run kolla-build");
    let read = |dir: &str, image: &str| {
        std::fs::read_to_string(Path::new(dir).join("docker").join(image).join("Dockerfile"))
            .unwrap_or_default()
    };
    let work = args
        .iter()
        .position(|a| *a == "--work-dir")
        .map(|i| args[i + 1])
        .unwrap_or("");
    let text = format!("{}{}", read(work, "base"), read(work, "child"));
    (
        out.status.success(),
        text,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_kolla_20_tree_gets_kolla_20s_defaults_and_configuration_files() {
    let dir = tempfile::tempdir().unwrap();
    let tree = install(&dir.path().join("venv"), "20.6.0");
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".kolla")).unwrap();
    std::fs::write(
        home.join(".kolla/kolla-build.conf"),
        "[DEFAULT]\nnamespace = ${base}-ns\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let (ok, text, stderr) = run(
        &home,
        &[
            "--images-dir",
            tree.to_str().unwrap(),
            "--template-only",
            "--work-dir",
            out.to_str().unwrap(),
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(
        text,
        "FROM quay.io/rockylinux/rockylinux:9\n\
         LABEL maintainer=\"Kolla Project (https://launchpad.net/kolla)\" kolla_version=\"20.6.0\" \
         tag=\"20.6.0\" release=\"2025.1\" distro=\"Rocky Linux {9,10}.* ({Blue Onyx,Red Quartz})\"\n\
         RUN dnf config-manager  --enable crb || true\n\
         FROM rocky-ns/base:20.6.0"
    );
    assert!(stderr.contains("kolla 20.6.0"), "{stderr}");
    assert!(
        stderr.contains("METADATA"),
        "names where the version comes from: {stderr}"
    );
    assert!(
        stderr.contains(".kolla/kolla-build.conf"),
        "names the file read: {stderr}"
    );
}

#[test]
fn kolla_version_overrides_the_installation_and_config_dirs_are_read_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let tree = install(&dir.path().join("venv"), "22.2.0");
    let home = dir.path().join("home");
    let confs = dir.path().join("conf.d");
    std::fs::create_dir_all(&confs).unwrap();
    std::fs::write(confs.join("20-b.conf"), "[DEFAULT]\nnamespace = b\n").unwrap();
    std::fs::write(
        confs.join("10-a.conf"),
        "[DEFAULT]\nnamespace = a\ntag = $openstack_release-x\n",
    )
    .unwrap();
    std::fs::write(confs.join("ignored.txt"), "[DEFAULT]\nnamespace = c\n").unwrap();
    let out = dir.path().join("out");
    let (ok, text, stderr) = run(
        &home,
        &[
            "--images-dir",
            tree.to_str().unwrap(),
            "--kolla-version",
            "23.0.0",
            "--config-dir",
            confs.to_str().unwrap(),
            "-b",
            "debian",
            "--template-only",
            "--work-dir",
            out.to_str().unwrap(),
        ],
    );
    assert!(ok, "{stderr}");
    assert!(text.starts_with("FROM debian:trixie\n"), "{text}");
    assert!(
        text.contains("kolla_version=\"23.0.0\" tag=\"2026.2-x\""),
        "{text}"
    );
    assert!(text.ends_with("FROM b/base:2026.2-x"), "{text}");

    // kolla 23 dropped CentOS: its kolla-build refuses it, and so does ours
    let (ok, _, stderr) = run(
        &home,
        &[
            "--images-dir",
            tree.to_str().unwrap(),
            "--kolla-version",
            "23.0.0",
            "-b",
            "centos",
            "--template-only",
            "--work-dir",
            out.to_str().unwrap(),
        ],
    );
    assert!(
        !ok && stderr.contains("does not support `centos`"),
        "{stderr}"
    );
}

#[test]
fn config_files_and_flags_are_read_in_command_line_order() {
    let dir = tempfile::tempdir().unwrap();
    let tree = install(&dir.path().join("venv"), "22.2.0");
    let home = dir.path().join("home");
    let a = dir.path().join("a.conf");
    let b = dir.path().join("b.conf");
    std::fs::write(
        &a,
        "[DEFAULT]\nnamespace = a\nmaintainer = ops of $namespace\ntag = from-a\n",
    )
    .unwrap();
    std::fs::write(&b, "[DEFAULT]\nnamespace = b\n").unwrap();
    let out = dir.path().join("out");
    let args = |first: &[&str], rest: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["--images-dir", tree.to_str().unwrap(), "-b", "debian"]
            .iter()
            .chain(first)
            .chain(rest)
            .map(|s| s.to_string())
            .collect();
        v.extend(["--template-only", "--work-dir", out.to_str().unwrap()].map(str::to_string));
        v
    };
    let render = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let _ = std::fs::remove_dir_all(&out);
        let (ok, text, stderr) = run(&home, &refs);
        assert!(ok, "{stderr}");
        text
    };
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    // the file after the flag wins over it; `$namespace` reads the final value
    let text = render(args(
        &[
            "--config-file",
            a,
            "--namespace",
            "flag",
            "--config-file",
            b,
        ],
        &[],
    ));
    assert!(text.contains("maintainer=\"ops of b\""), "{text}");
    assert!(text.ends_with("FROM b/base:from-a"), "{text}");
    // the flag after every file wins
    let text = render(args(
        &[
            "--config-file",
            a,
            "--config-file",
            b,
            "--namespace",
            "flag",
        ],
        &[],
    ));
    assert!(text.ends_with("FROM flag/base:from-a"), "{text}");
    // the other order of files
    let text = render(args(&["--config-file", b, "--config-file", a], &[]));
    assert!(text.ends_with("FROM a/base:from-a"), "{text}");
}
