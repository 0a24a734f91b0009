//! A small builder for running the real binary in a temp dir with a fixture tree.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_kolla-build");
pub(crate) const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// A temporary directory holding a template tree and whatever a test writes.
pub(crate) struct Test {
    dir: tempfile::TempDir,
    args: Vec<String>,
}

/// A minimal tree in this project's layout: base ← openstack-base ← keystone-base ← keystone.
pub(crate) const SMALL_TREE: &[(&str, &str)] = &[
    ("build.toml", "base = \"debian\"\n"),
    (
        "base/Dockerfile.j2",
        "FROM {{ base_image }}:{{ base_distro_tag }}\n{% import \"macros.j2\" as macros with context %}\n{% block base_header %}{% endblock %}\nRUN echo base\n",
    ),
    (
        "base/macros.j2",
        "{% macro install_packages(packages) %}{% if packages %}RUN {{ debian_package_install(packages) }}{% endif %}{% endmacro %}\n",
    ),
    ("base/start.sh", "#!/bin/sh\n"),
    (
        "images/openstack-base/Dockerfile.j2",
        "FROM {{ namespace }}/{{ image_prefix }}base:{{ tag }}\n",
    ),
    (
        "images/keystone/keystone-base/Dockerfile.j2",
        "FROM {{ namespace }}/{{ image_prefix }}openstack-base:{{ tag }}\n{% import \"macros.j2\" as macros with context %}\n{% block keystone_base_header %}{% endblock %}\n{{ macros.install_packages(['keystone'] | customizable('packages')) }}\n",
    ),
    (
        "images/keystone/keystone/Dockerfile.j2",
        "FROM {{ namespace }}/{{ image_prefix }}keystone-base:{{ tag }}\n{% block keystone_footer %}{% endblock %}\n",
    ),
    ("images/keystone/keystone/extend_start.sh", "echo start\n"),
    (
        "images/cron/Dockerfile.j2",
        "FROM {{ namespace }}/{{ image_prefix }}base:{{ tag }}\n",
    ),
    (
        "profiles/gate.toml",
        "description = \"ci\"\nimages = [\"^keystone$\"]\n",
    ),
];

impl Test {
    pub(crate) fn new() -> Test {
        Test {
            dir: tempfile::tempdir().expect("temp dir"),
            args: Vec::new(),
        }
    }

    /// A test whose directory holds `SMALL_TREE`.
    pub(crate) fn small_tree() -> Test {
        let test = Test::new();
        for (rel, text) in SMALL_TREE {
            test.write(rel, text);
        }
        test
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn write(&self, rel: &str, text: &str) -> &Test {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    pub(crate) fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    pub(crate) fn read_bytes(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    pub(crate) fn exists(&self, rel: &str) -> bool {
        self.dir.path().join(rel).exists()
    }

    pub(crate) fn args<I: IntoIterator<Item = S>, S: AsRef<str>>(&mut self, args: I) -> &mut Test {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// Runs the binary in the test's directory.
    pub(crate) fn run(&self) -> Run {
        let output = Command::new(BIN)
            .args(&self.args)
            .current_dir(self.dir.path())
            .env_remove("DOCKER_HOST")
            .output()
            .expect("run kolla-build");
        Run(output)
    }
}

pub(crate) struct Run(pub(crate) Output);

impl Run {
    pub(crate) fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }

    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }

    #[track_caller]
    pub(crate) fn success(self) -> Run {
        assert!(
            self.0.status.success(),
            "expected success, got {:?}\nstdout:\n{}\nstderr:\n{}",
            self.0.status,
            self.stdout(),
            self.stderr()
        );
        self
    }

    #[track_caller]
    pub(crate) fn failure(self) -> Run {
        assert!(
            !self.0.status.success(),
            "expected failure\nstdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        assert_eq!(
            self.0.status.code(),
            Some(1),
            "user errors exit 1\nstderr:\n{}",
            self.stderr()
        );
        self
    }
}

/// Every file below `dir`, relative, sorted.
pub(crate) fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// A private Docker engine (scripts/private-dockerd.sh) in its own directory under /var/tmp, on
/// its own pre-created bridge: stopped, with its bridge and files, when dropped.
pub(crate) struct PrivateEngine {
    dir: tempfile::TempDir,
    bridge: &'static str,
    cidr: &'static str,
    /// Also listens on tcp://127.0.0.1:PORT with --tlsverify (certificates made by the script).
    tls_port: Option<u16>,
}

impl PrivateEngine {
    /// Not started yet; `bridge` and `cidr` must differ from every other private engine's.
    pub(crate) fn new(bridge: &'static str, cidr: &'static str) -> PrivateEngine {
        PrivateEngine {
            dir: tempfile::Builder::new()
                .prefix("kb-private-engine-")
                .tempdir_in("/var/tmp")
                .unwrap(),
            bridge,
            cidr,
            tls_port: None,
        }
    }

    /// Not started yet; it will also answer over TLS on 127.0.0.1:`port`.
    pub(crate) fn with_tls(mut self, port: u16) -> PrivateEngine {
        self.tls_port = Some(port);
        self
    }

    pub(crate) fn script(&self, action: &str) -> Output {
        let mut command = Command::new(format!("{REPO}/scripts/private-dockerd.sh"));
        command.arg(action).arg(self.dir.path());
        match action {
            "start" => command
                .args([self.bridge, self.cidr])
                .args(self.tls_port.map(|p| p.to_string())),
            "stop" => command.arg(self.bridge),
            _ => &mut command,
        };
        command.output().unwrap()
    }

    #[track_caller]
    pub(crate) fn start(&self) {
        let out = self.script("start");
        assert!(
            out.status.success(),
            "private dockerd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub(crate) fn url(&self) -> String {
        format!("unix://{}/docker.sock", self.dir.path().display())
    }

    /// The TLS address and the client's files (DOCKER_CERT_PATH layout), when started with TLS.
    pub(crate) fn tls(&self) -> Option<(String, PathBuf)> {
        let port = self.tls_port?;
        let client = self.dir.path().join("tls/client");
        Some((format!("https://127.0.0.1:{port}"), client))
    }
}

impl Drop for PrivateEngine {
    fn drop(&mut self) {
        let _ = self.script("stop");
    }
}

/// An sshd on 127.0.0.1:`port` (scripts/loopback-sshd.sh) that ssh clients reach as
/// `kolla-build-test-PORT` (a Host entry in /etc/ssh/ssh_config.d/): this machine's engine seen
/// the way a remote build machine is. Stopped, with its Host entry, when dropped.
pub(crate) struct LoopbackSshd {
    dir: tempfile::TempDir,
    port: u16,
}

impl LoopbackSshd {
    #[track_caller]
    pub(crate) fn start(port: u16) -> LoopbackSshd {
        let sshd = LoopbackSshd {
            dir: tempfile::Builder::new()
                .prefix("kb-sshd-")
                .tempdir_in("/var/tmp")
                .unwrap(),
            port,
        };
        let out = sshd.script("start");
        assert!(
            out.status.success(),
            "loopback sshd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        sshd
    }

    fn script(&self, action: &str) -> Output {
        Command::new(format!("{REPO}/scripts/loopback-sshd.sh"))
            .arg(action)
            .arg(self.dir.path())
            .arg(self.port.to_string())
            .output()
            .unwrap()
    }

    /// The engine URL of this machine's engine over ssh.
    pub(crate) fn engine_url(&self) -> String {
        format!("ssh://kolla-build-test-{}", self.port)
    }
}

impl Drop for LoopbackSshd {
    fn drop(&mut self) {
        let _ = self.script("stop");
    }
}
