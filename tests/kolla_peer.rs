//! kolla's own tree rendered by the Python kolla-build (the peer, installed from PyPI into a
//! virtualenv under the target dir, one per kolla release) and by ours: every Dockerfile must be
//! byte-identical, for the newest patch release of every maintained kolla (20.x to 23.x), every
//! distro that release supports, in two modes:
//! - defaults: only `--base` and `--template-only` (ours also gets `--images-dir`, the tree of
//!   the installation: the kolla version, its defaults and its repos.yaml are found from it);
//! - explicit: a set of flags and two kolla-build.conf files with `--namespace` between them
//!   (oslo's `$option` interpolation, a `[<name>-user]` section, the second file overriding the
//!   first's values and the flag, and the multi-valued `template_override` spread over both).
//!
//! Nothing of kolla is kept in this repository: the tree is the one inside the installed package.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::support::BIN;

/// The kolla releases compared against (the newest patch release of each maintained major
/// release on PyPI); `KOLLA_PEER_SPECS` (comma-separated pip requirements) overrides them.
pub(crate) const PEER_SPECS: [&str; 4] = [
    "kolla==20.6.0",
    "kolla==21.3.0",
    "kolla==22.2.0",
    "kolla==23.0.0",
];
const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);
const RENDER_TIMEOUT: Duration = Duration::from_secs(300);
/// The distros in the order cases are listed.
const DISTROS: [&str; 4] = ["centos", "rocky", "debian", "ubuntu"];

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

/// The first kolla-build.conf of the explicit mode: options kolla has no flag for, `$option`
/// interpolation (of a file value and of a default), options only kolla 23 has (ignored by older
/// releases), a user section, a profile, and the first template override (`{override_a}`).
const CONF: &str = "[DEFAULT]\n\
# kolla has no command-line flag for the maintainer\n\
maintainer = Example Ops for $namespace (https://example.org)\n\
namespace = first\n\
tag = ${openstack_release}-site\n\
clean_package_cache = false\n\
docker_healthchecks = true\n\
use_dumb_init = false\n\
rpm_setup_config = https://mirror.example.org/first.repo\n\
pip_index_url = https://pypi.example.org/simple\n\
template_override = {override_a}\n\
\n\
[keystone-user]\n\
uid = 52000\n\
gid = 52000\n\
\n\
[profiles]\n\
site = keystone\n";

/// The second file, read after the first and after `--namespace`: it overrides the first
/// file's single values and the flag (`namespace`, which `$namespace` in the first file's
/// maintainer then reads), and adds the second template override to the multi-valued
/// `template_override` (oslo.config's order: the first file's, then this one's).
const CONF2: &str = "[DEFAULT]\n\
namespace = acme\n\
docker_healthchecks = false\n\
rpm_setup_config = https://mirror.example.org/site.repo\n\
template_override = {override_b}\n\
# oslo reads options by their `_` name: kolla-build ignores this line\n\
base-tag = not-read\n\
\n\
[profiles]\n\
site = keystone,nova-api\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Only `--base` and `--template-only`.
    Defaults,
    /// Flags, template overrides and a config file.
    Explicit,
}

#[test]
fn kolla_tree_renders_byte_identical_to_the_python_kolla_build() {
    let specs: Vec<String> = match std::env::var("KOLLA_PEER_SPECS") {
        Ok(list) => list
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        Err(_) => PEER_SPECS.map(str::to_string).to_vec(),
    };
    let started = Instant::now();
    // Each release once, all at once (pip waits on the network).
    let peers: Vec<Peer> = std::thread::scope(|scope| {
        let handles: Vec<_> = specs
            .iter()
            .map(|spec| scope.spawn(move || Peer::install(spec)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("installing a peer panicked"))
            .collect()
    });
    eprintln!("peers ready in {:.1} s", started.elapsed().as_secs_f64());

    let work = tempfile::tempdir().expect("temp dir");
    let overrides = [("a.j2", OVERRIDE_A), ("b.j2", OVERRIDE_B)].map(|(name, text)| {
        let path = work.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    });
    let confs = [
        (
            "kolla-build.conf",
            CONF.replace("{override_a}", &overrides[0].display().to_string()),
        ),
        (
            "site.conf",
            CONF2.replace("{override_b}", &overrides[1].display().to_string()),
        ),
    ]
    .map(|(name, text)| {
        let path = work.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    });

    let mut cases: Vec<(&Peer, &str, Mode)> = Vec::new();
    for peer in &peers {
        let distros: Vec<&str> = DISTROS
            .into_iter()
            .filter(|d| peer.distros.iter().any(|p| p == d))
            .collect();
        assert!(
            distros.len() >= 3,
            "kolla {} supports only {:?}: nothing much to compare",
            peer.version,
            peer.distros
        );
        for distro in distros {
            for mode in [Mode::Defaults, Mode::Explicit] {
                cases.push((peer, distro, mode));
            }
        }
    }

    // A few at once: the Python renders are CPU-bound.
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 4);
    let queue = Mutex::new(cases.iter().enumerate());
    let results: Mutex<Vec<(usize, Result<usize, String>)>> = Mutex::new(Vec::new());
    let rendering = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let Some((i, (peer, distro, mode))) = queue.lock().unwrap().next() else {
                        break;
                    };
                    let dir = work.path().join(format!("case{i}"));
                    let result = compare(peer, &dir, distro, *mode, &confs);
                    let _ = std::fs::remove_dir_all(&dir);
                    results.lock().unwrap().push((i, result));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    let mut failures = Vec::new();
    for (i, result) in results {
        let (peer, distro, mode) = cases[i];
        let label = format!("kolla {} {distro} {mode:?}", peer.version);
        match result {
            Ok(files) => eprintln!("{label}: {files} Dockerfiles identical"),
            Err(report) => failures.push(format!("=== {label}\n{report}")),
        }
    }
    eprintln!(
        "{} cases compared in {:.1} s ({workers} at once)",
        cases.len(),
        rendering.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The peer kolla-build in a virtualenv.
pub(crate) struct Peer {
    pub(crate) bin: PathBuf,
    pub(crate) tree: PathBuf,
    pub(crate) version: String,
    distros: Vec<String>,
}

impl Peer {
    /// Installs `spec` (a pip requirement) into `<target tmp>/<spec's name>` unless already there.
    pub(crate) fn install(spec: &str) -> Peer {
        let dir = spec.replace("==", "-").replace(
            |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '.',
            "_",
        );
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(dir);
        let marker = venv.join(".installed");
        let python = venv.join("bin/python");
        if std::fs::read_to_string(&marker)
            .ok()
            .as_deref()
            .map(str::trim)
            != Some(spec)
        {
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
                    spec,
                    "docker",
                ]),
                INSTALL_TIMEOUT,
                &format!("installing the peer (pip install {spec} docker) from PyPI"),
            );
            std::fs::write(&marker, spec).unwrap();
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
                 print(','.join(c.BASE_OS_DISTRO))",
            ]),
            Duration::from_secs(60),
            "asking the peer for its tree, version and distros",
        );
        let mut lines = info.lines();
        let mut next = || lines.next().expect("three lines from the peer").to_string();
        Peer {
            bin: venv.join("bin/kolla-build"),
            tree: PathBuf::from(next()),
            version: next(),
            distros: next().split(',').map(str::to_string).collect(),
        }
    }
}

/// Renders kolla's tree with both tools into `dir` and compares; `Ok` counts the files compared.
fn compare(
    peer: &Peer,
    dir: &Path,
    distro: &str,
    mode: Mode,
    confs: &[PathBuf; 2],
) -> Result<usize, String> {
    let mut args: Vec<String> = vec!["--base".into(), distro.into(), "--template-only".into()];
    if mode == Mode::Explicit {
        // oslo.config reads each file where it stands: the second file overrides `--namespace`
        args.extend(
            [
                "--config-file",
                confs[0].to_str().unwrap(),
                "--namespace",
                "from-the-flag",
                "--config-file",
                confs[1].to_str().unwrap(),
                "--base-arch",
                "x86_64",
                "--registry",
                "registry.example.org:4000",
                "--image-name-prefix",
                "site-",
            ]
            .map(str::to_string),
        );
    }
    let theirs = dir.join("kolla");
    let ours = dir.join("ours");
    // A fresh HOME: no ~/.kolla configuration of the machine for either tool.
    let home = dir.join("home");
    std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
    let mut kolla = Command::new(&peer.bin);
    kolla
        .args(&args)
        .arg("--work-dir")
        .arg(&theirs)
        .env("HOME", &home);
    run(&mut kolla, RENDER_TIMEOUT).map_err(|e| format!("the peer failed: {e}"))?;
    let mut ours_cmd = Command::new(BIN);
    ours_cmd
        .args(&args)
        .arg("--images-dir")
        .arg(&peer.tree)
        .arg("--work-dir")
        .arg(&ours)
        .arg("--quiet")
        .env("HOME", &home);
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
    // Both tools ignoring a setting would also be "identical": check the settings took effect.
    let base = ours_files
        .get("base/Dockerfile")
        .map(String::as_str)
        .unwrap_or_default();
    let expected: &[(&str, &str)] = match mode {
        Mode::Defaults => &[(
            "base/Dockerfile",
            "Kolla Project (https://launchpad.net/kolla)",
        )],
        Mode::Explicit => &[
            ("base/Dockerfile", "site header"),
            (
                "base/Dockerfile",
                "Example Ops for acme (https://example.org)",
            ),
            ("nova/nova-api/Dockerfile", "second file"),
            (
                "nova/nova-api/Dockerfile",
                "FROM registry.example.org:4000/acme/site-nova-base:",
            ),
        ],
    };
    for (rel, marker) in expected {
        if !ours_files.get(*rel).is_some_and(|t| t.contains(marker)) {
            report.push(format!("{rel}: `{marker}` is missing"));
        }
    }
    if mode == Mode::Defaults && !base.contains(&format!("kolla_version=\"{}\"", peer.version)) {
        report.push(format!(
            "base/Dockerfile: the label of kolla {} is missing",
            peer.version
        ));
    }
    if report.is_empty() {
        Ok(theirs_files.len())
    } else {
        // One broken default differs in every file: the first few tell.
        let more = report.len().saturating_sub(8);
        report.truncate(8);
        if more > 0 {
            report.push(format!("... and {more} more files"));
        }
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
