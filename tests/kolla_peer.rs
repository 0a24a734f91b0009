//! kolla's own tree rendered by the Python kolla-build (the peer, installed from PyPI into a
//! virtualenv under the target dir) and by ours, with the same settings: every Dockerfile must be
//! byte-identical, for every distro the peer supports, with and without template overrides.
//! kolla 23 dropped CentOS: centos is compared with a second peer, the newest kolla that still
//! supports it, on that release's own tree.
//! Nothing of kolla is kept in this repository: the tree is the one inside the installed package.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::BIN;

/// The kolla release compared against; `KOLLA_PEER_SPEC` (a pip requirement) overrides it.
const PEER_SPEC: &str = "kolla==23.0.0";
/// The newest kolla release whose kolla-build accepts `--base centos`, for the distros the first
/// peer does not support; `KOLLA_PEER_CENTOS_SPEC` overrides it.
const CENTOS_PEER_SPEC: &str = "kolla==22.2.0";
const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);
const RENDER_TIMEOUT: Duration = Duration::from_secs(300);

/// Two override files in the shape of kolla's documentation: package `_append`/`_remove`/
/// `_override`, header and footer blocks, repository setup blocks, `super()`.
const OVERRIDE_A: &str = r#"{% extends parent_template %}

{% set base_apt_packages_append = ['vim', 'less'] %}
{% set base_rocky_packages_append = ['vim-enhanced'] %}
{% set keystone_base_packages_append = ['libldap2-dev'] %}
{% set horizon_packages_remove = ['gettext', 'not-installed'] %}
{% set horizon_pip_packages_append = ['django-debug-toolbar'] %}
{% set nova_api_packages_override = ['nova-api-extra'] %}

{% block base_header %}
RUN echo "site header"
{% endblock %}

{% block keystone_footer %}
RUN echo "keystone footer"
{% endblock %}

{% block base_ubuntu_package_sources_list %}
RUN echo 'deb http://mirror.example.org/ubuntu noble main' > /etc/apt/sources.list
{% endblock %}

{% block base_rocky_repo_overrides_post_yum %}
RUN echo '[mirror]' > /etc/yum.repos.d/mirror.repo
{% endblock %}
"#;

const OVERRIDE_B: &str = r#"{% extends parent_template %}

{% set openstack_base_pip_packages_append = ['pymysql'] %}
{% set glance_api_packages_remove = ['qemu-utils'] %}

{% block nova_api_header %}
{{ super() }}
RUN echo "second file"
{% endblock %}

{% block footer %}
LABEL org.example.site="yes"
{% endblock %}
"#;

const CONF: &str = "[DEFAULT]\n\
# shared by both tools; kolla has no CLI flag for the maintainer\n\
maintainer = Example Ops (https://example.org)\n\
clean_package_cache = true\n";

#[test]
fn kolla_tree_renders_byte_identical_to_the_python_kolla_build() {
    let peer = Peer::install("kolla-peer", "KOLLA_PEER_SPEC", PEER_SPEC);
    let work = tempfile::tempdir().expect("temp dir");
    let conf = work.path().join("kolla-build.conf");
    std::fs::write(&conf, CONF).unwrap();
    let overrides = [("a.j2", OVERRIDE_A), ("b.j2", OVERRIDE_B)].map(|(name, text)| {
        let path = work.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    });

    let supports = |p: &Peer, distro: &str| p.distros.iter().any(|d| d == distro);
    let mut cases: Vec<(&Peer, String, Vec<PathBuf>)> = Vec::new();
    for distro in ["rocky", "debian", "ubuntu"] {
        if supports(&peer, distro) {
            cases.push((&peer, distro.to_string(), Vec::new()));
        }
    }
    assert!(
        cases.len() >= 3,
        "the peer supports only {:?}: nothing much to compare",
        peer.distros
    );
    let centos_peer;
    if supports(&peer, "centos") {
        cases.push((&peer, "centos".into(), Vec::new()));
    } else {
        centos_peer = Peer::install(
            "kolla-peer-centos",
            "KOLLA_PEER_CENTOS_SPEC",
            CENTOS_PEER_SPEC,
        );
        assert!(
            supports(&centos_peer, "centos"),
            "the centos peer, kolla {}, supports only {:?}",
            centos_peer.version,
            centos_peer.distros
        );
        cases.push((&centos_peer, "centos".into(), Vec::new()));
    }
    for distro in ["rocky", "debian"] {
        cases.push((&peer, distro.to_string(), overrides.to_vec()));
    }

    let started = Instant::now();
    let results: Vec<Result<Vec<String>, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = cases
            .iter()
            .enumerate()
            .map(|(i, (peer, distro, overrides))| {
                let (conf, work) = (&conf, work.path());
                scope.spawn(move || {
                    compare(
                        peer,
                        conf,
                        &work.join(format!("case{i}")),
                        distro,
                        overrides,
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("comparison thread panicked".into()))
            })
            .collect()
    });
    let mut failures = Vec::new();
    for ((case_peer, distro, overrides), result) in cases.iter().zip(results) {
        let with = if overrides.is_empty() {
            ""
        } else {
            " with template overrides"
        };
        let label = format!("{distro}{with} (kolla {})", case_peer.version);
        match result {
            Ok(files) => eprintln!("{label}: {} Dockerfiles identical", files.len()),
            Err(report) => failures.push(format!("=== {label}\n{report}")),
        }
    }
    eprintln!("compared in {:.1} s", started.elapsed().as_secs_f64());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The peer kolla-build in a virtualenv.
struct Peer {
    bin: PathBuf,
    tree: PathBuf,
    /// kolla's `template/repos.yaml`, given to ours when it is not beside the tree (kolla before
    /// 23 installs its tree under `<venv>/share/kolla/docker`).
    repos_yaml: PathBuf,
    version: String,
    distros: Vec<String>,
}

impl Peer {
    /// Installs `$spec_var` (else `default_spec`) into `<target tmp>/<dir>` unless already there.
    fn install(dir: &str, spec_var: &str, default_spec: &str) -> Peer {
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(dir);
        let spec = std::env::var(spec_var).unwrap_or_else(|_| default_spec.to_string());
        let marker = venv.join(".installed");
        let python = venv.join("bin/python");
        if std::fs::read_to_string(&marker).ok().as_deref() != Some(spec.as_str()) {
            let _ = std::fs::remove_dir_all(&venv);
            let venv_arg = venv.to_str().expect("utf-8 path");
            run_checked(
                Command::new("python3").args(["-m", "venv", venv_arg]),
                INSTALL_TIMEOUT,
                "creating the peer's virtualenv (python3 -m venv)",
            );
            run_checked(
                Command::new(venv.join("bin/pip")).args([
                    "install",
                    "--disable-pip-version-check",
                    "--quiet",
                    &spec,
                    "docker",
                ]),
                INSTALL_TIMEOUT,
                &format!("installing the peer (pip install {spec} docker) from PyPI"),
            );
            std::fs::write(&marker, &spec).unwrap();
        }
        let info = run_checked(
            Command::new(&python).args([
                "-c",
                // kolla's own search (`_get_images_dir`): inside the package (23), else
                // `<prefix>/share/kolla` (data files of the wheel before 23)
                "import os, sys, kolla.common.config as c, kolla.version as v\n\
                 pkg = os.path.dirname(os.path.dirname(os.path.abspath(c.__file__)))\n\
                 trees = [os.path.join(pkg, 'docker'),\n\
                          os.path.join(sys.prefix, 'share', 'kolla', 'docker')]\n\
                 print(next(t for t in trees if os.path.isdir(os.path.join(t, 'base'))))\n\
                 print(v.version_info.cached_version_string())\n\
                 print(','.join(c.BASE_OS_DISTRO))\n\
                 print(os.path.join(pkg, 'template', 'repos.yaml'))",
            ]),
            Duration::from_secs(60),
            "asking the peer for its tree, version, distros and repos.yaml",
        );
        let mut lines = info.lines();
        let mut next = || lines.next().expect("four lines from the peer").to_string();
        Peer {
            bin: venv.join("bin/kolla-build"),
            tree: PathBuf::from(next()),
            version: next(),
            distros: next().split(',').map(str::to_string).collect(),
            repos_yaml: PathBuf::from(next()),
        }
    }
}

/// Renders kolla's tree with both tools into `dir` and compares; `Ok` lists the files compared.
fn compare(
    peer: &Peer,
    conf: &Path,
    dir: &Path,
    distro: &str,
    overrides: &[PathBuf],
) -> Result<Vec<String>, String> {
    let (image, tag) = match distro {
        "centos" => ("quay.io/centos/centos", "stream10"),
        "rocky" => ("quay.io/rockylinux/rockylinux", "10"),
        "debian" => ("debian", "trixie"),
        _ => ("ubuntu", "24.04"),
    };
    let mut args: Vec<String> = [
        "--config-file",
        conf.to_str().unwrap(),
        "--base",
        distro,
        "--base-image",
        image,
        "--base-tag",
        tag,
        "--base-arch",
        "x86_64",
        "--namespace",
        "acme",
        "--tag",
        "2026.2-test",
        "--openstack-release",
        "2026.2",
        "--openstack-release-codename",
        "Hibiscus",
        "--image-name-prefix=",
        "--template-only",
    ]
    .map(str::to_string)
    .to_vec();
    for file in overrides {
        args.extend(["--template-override".into(), file.display().to_string()]);
    }
    let theirs = dir.join("kolla");
    let ours = dir.join("ours");
    let mut kolla = Command::new(&peer.bin);
    kolla
        .args(&args)
        .arg("--work-dir")
        .arg(&theirs)
        .env("HOME", dir); // no ~/.kolla config of the machine
    run(&mut kolla, RENDER_TIMEOUT).map_err(|e| format!("the peer failed: {e}"))?;
    let mut ours_cmd = Command::new(BIN);
    ours_cmd
        .args(&args)
        .arg("--images-dir")
        .arg(&peer.tree)
        .args(["--kolla-version", &peer.version]);
    if !peer.tree.join("../template/repos.yaml").is_file() {
        ours_cmd.arg("--repos-yaml").arg(&peer.repos_yaml);
    }
    ours_cmd.arg("--work-dir").arg(&ours).arg("--quiet");
    run(&mut ours_cmd, RENDER_TIMEOUT).map_err(|e| format!("kolla-build (ours) failed: {e}"))?;

    let theirs_files = dockerfiles(&theirs.join("docker"));
    let ours_files = dockerfiles(&ours.join("docker"));
    if theirs_files.is_empty() {
        return Err("the peer wrote no Dockerfile".into());
    }
    let mut report = Vec::new();
    for (rel, text) in &theirs_files {
        match ours_files.get(rel) {
            None => report.push(format!("{rel}: missing from ours")),
            Some(mine) if mine != text => {
                let diff = similar::TextDiff::from_lines(text, mine);
                let unified = diff
                    .unified_diff()
                    .context_radius(2)
                    .header(&format!("kolla/{rel}"), &format!("ours/{rel}"))
                    .to_string();
                let head: Vec<&str> = unified.lines().take(30).collect();
                report.push(format!("{rel}: differs\n{}", head.join("\n")));
            }
            Some(_) => {}
        }
    }
    for rel in ours_files.keys().filter(|r| !theirs_files.contains_key(*r)) {
        report.push(format!("{rel}: written by ours, not by kolla"));
    }
    if !overrides.is_empty() {
        // Both tools ignoring the overrides would also be "identical": check they took effect.
        for (rel, marker) in [
            ("base/Dockerfile", "site header"),
            ("nova/nova-api/Dockerfile", "second file"),
        ] {
            if !ours_files.get(rel).is_some_and(|t| t.contains(marker)) {
                report.push(format!("{rel}: the override's `{marker}` is missing"));
            }
        }
    }
    if report.is_empty() {
        Ok(theirs_files.into_keys().collect())
    } else {
        Err(report.join("\n"))
    }
}

/// Every `Dockerfile` below `root`, by relative path (the image's folder).
fn dockerfiles(root: &Path) -> BTreeMap<String, String> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.file_name() == "Dockerfile")
        .map(|e| {
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            (rel, std::fs::read_to_string(e.path()).unwrap())
        })
        .collect()
}

fn run_checked(cmd: &mut Command, timeout: Duration, what: &str) -> String {
    run(cmd, timeout).unwrap_or_else(|e| panic!("{what} failed: {e}"))
}

/// Runs a command with a deadline; its stdout on success, else a message with its stderr's tail.
fn run(cmd: &mut Command, timeout: Duration) -> Result<String, String> {
    let out_file = tempfile::tempfile().map_err(|e| e.to_string())?;
    let err_file = tempfile::tempfile().map_err(|e| e.to_string())?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out_file.try_clone().map_err(|e| e.to_string())?)
        .stderr(err_file.try_clone().map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{cmd:?} took longer than {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut s = String::new();
        let _ = f.seek(std::io::SeekFrom::Start(0));
        let _ = f.read_to_string(&mut s);
        s
    };
    let (stdout, stderr) = (read(out_file), read(err_file));
    if status.success() {
        Ok(stdout)
    } else {
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Err(format!(
            "{cmd:?} exited with {status}:\n{}",
            tail.join("\n")
        ))
    }
}
