//! Makes a base image where none can be pulled (air-gapped sites, CI machines without registry
//! access): `debootstrap` a Debian or Ubuntu root filesystem from a package mirror and import it
//! through the engine API, streamed, under the configured base image name and tag.

use std::io::{self, Read};
use std::path::Path;
use std::process::{Command, Stdio};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::common::types::BaseDistro;
use crate::engine::{Engine, EngineError};

/// Why no base image was made.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(
        "--bootstrap-base makes Debian and Ubuntu images only; for {distro} pull `{repo}:{tag}` or load it with `docker load`"
    )]
    Unsupported {
        distro: BaseDistro,
        repo: String,
        tag: String,
    },
    #[error("cannot create a directory for the root filesystem: {0}")]
    Scratch(io::Error),
    #[error("cannot write the debootstrap log: {0}")]
    Log(io::Error),
    #[error(
        "`debootstrap` is not installed: `apt-get install debootstrap` (scripts/setup-engine.sh does)"
    )]
    NoDebootstrap,
    #[error("cannot run debootstrap: {0}")]
    Debootstrap(io::Error),
    #[error(
        "debootstrap {suite} from {mirror} failed ({status}); last lines:\n  {}\nhint: check `--bootstrap-mirror` and that this runs as root",
        .tail.join("\n  ")
    )]
    DebootstrapFailed {
        suite: String,
        mirror: String,
        status: std::process::ExitStatus,
        tail: Vec<String>,
    },
    #[error("cannot write {path} into the bootstrapped root filesystem: {source}")]
    ImageConfig { path: String, source: io::Error },
    #[error("interrupted by {}", crate::common::signals::name(*.signal))]
    Interrupted { signal: i32 },
    #[error("cannot run tar: {0}")]
    NoTar(io::Error),
    #[error("tar: {0}")]
    Tar(io::Error),
    #[error("tar of the root filesystem failed: {stderr}")]
    TarFailed { stderr: String },
    /// The engine refused the import.
    #[error("{0}")]
    Import(EngineError),
    /// The thread reading tar's output panicked or was cancelled.
    #[error("{0}")]
    Task(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapSpec {
    pub distro: BaseDistro,
    /// The release: a Debian codename, or an Ubuntu version or codename.
    pub release: String,
    pub mirror: String,
    pub repo: String,
    pub tag: String,
}

impl BootstrapSpec {
    pub fn default_mirror(distro: BaseDistro) -> Option<&'static str> {
        match distro {
            BaseDistro::Debian => Some("http://deb.debian.org/debian"),
            BaseDistro::Ubuntu => Some("http://archive.ubuntu.com/ubuntu"),
            BaseDistro::Centos | BaseDistro::Rocky => None,
        }
    }

    /// debootstrap wants a suite name: `22.04` is `jammy`.
    pub fn suite(&self) -> &str {
        match self.release.as_str() {
            "20.04" => "focal",
            "22.04" => "jammy",
            "24.04" => "noble",
            "12" => "bookworm",
            "13" => "trixie",
            other => other,
        }
    }
}

/// Bootstraps and imports; returns the new image's ID. `status` receives progress lines.
pub async fn bootstrap<E: Engine>(
    engine: &E,
    spec: &BootstrapSpec,
    status: impl Fn(&str),
) -> Result<String, BootstrapError> {
    if spec.distro != BaseDistro::Debian && spec.distro != BaseDistro::Ubuntu {
        return Err(BootstrapError::Unsupported {
            distro: spec.distro,
            repo: spec.repo.clone(),
            tag: spec.tag.clone(),
        });
    }
    // /var/tmp: a disk-backed place where device nodes and ownership survive.
    let root = tempfile::Builder::new()
        .prefix("kolla-build-rootfs-")
        .tempdir_in(if Path::new("/var/tmp").is_dir() {
            Path::new("/var/tmp")
        } else {
            Path::new("/tmp")
        })
        .map_err(BootstrapError::Scratch)?;
    let rootfs = root.path().join("rootfs");
    status(&format!(
        "debootstrap {} from {}",
        spec.suite(),
        spec.mirror
    ));
    let suite = spec.suite().to_string();
    let mirror = spec.mirror.clone();
    let target = rootfs.clone();
    let log_path = root.path().join("debootstrap.log");
    let _tracked = crate::common::signals::track(root.path());
    let log_file = std::fs::File::create(&log_path)
        .and_then(|f| Ok((f.try_clone()?, f)))
        .map_err(BootstrapError::Log)?;
    // Its own process group, so that a signal stops debootstrap and everything it started
    // (wget, dpkg) before the root filesystem is removed.
    let mut child = tokio::process::Command::new("debootstrap")
        .args(["--variant=minbase", &suite])
        .arg(&target)
        .arg(&mirror)
        .stdin(Stdio::null())
        .stdout(log_file.0)
        .stderr(log_file.1)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => BootstrapError::NoDebootstrap,
            _ => BootstrapError::Debootstrap(e),
        })?;
    let _group = child.id().map(crate::common::signals::track_group);
    let ran = tokio::select! {
        status = child.wait() => status.map_err(BootstrapError::Debootstrap)?,
        signal = crate::common::signals::wait() => {
            if let Some(pid) = child.id() {
                kill_group(pid);
            }
            let _ = child.wait().await;
            return Err(BootstrapError::Interrupted { signal });
        }
    };
    if !ran.success() {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<String> = log
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .map(str::to_string)
            .collect();
        return Err(BootstrapError::DebootstrapFailed {
            suite: spec.suite().to_string(),
            mirror: spec.mirror.clone(),
            status: ran,
            tail,
        });
    }
    // Trim what an image does not need: apt lists and caches are refetched by every build anyway.
    for dir in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        clean_dir(&rootfs.join(dir));
    }
    write_image_config(&rootfs)?;
    status(&format!("importing {}:{}", spec.repo, spec.tag));
    import_rootfs(engine, &rootfs, &spec.repo, &spec.tag).await
}

/// Imports the root filesystem at `rootfs` as `repo:tag`, streamed through the system `tar`
/// (never whole in memory); returns the image ID.
pub async fn import_rootfs<E: Engine>(
    engine: &E,
    rootfs: &Path,
    repo: &str,
    tag: &str,
) -> Result<String, BootstrapError> {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(16);
    // The system tar keeps device nodes, hard links and numeric ownership of a root filesystem.
    let mut child = Command::new("tar")
        .args(["--numeric-owner", "--sort=name", "--mtime=@0", "-C"])
        .arg(rootfs)
        .args(["-cf", "-", "."])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(BootstrapError::NoTar)?;
    let mut stdout = child.stdout.take().expect("piped");
    let tar_pid = child.id();
    let reader = tokio::task::spawn_blocking(move || {
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            match stdout.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buffer[..n])))
                        .is_err()
                    {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
        // Nobody reads tar's output any more: close it so that tar ends instead of blocking.
        drop(stdout);
        child.wait_with_output()
    });
    let imported = tokio::select! {
        imported = engine.import(repo, tag, rx) => imported,
        signal = crate::common::signals::wait() => {
            kill_group(tar_pid);
            let _ = reader.await;
            return Err(BootstrapError::Interrupted { signal });
        }
    };
    let tar = reader
        .await
        .map_err(|e| BootstrapError::Task(e.to_string()))?
        .map_err(BootstrapError::Tar)?;
    if !tar.status.success() {
        return Err(BootstrapError::TarFailed {
            stderr: String::from_utf8_lossy(&tar.stderr).into_owned(),
        });
    }
    imported.map_err(BootstrapError::Import)
}

/// SIGKILL to a process group (debootstrap's) or, failing that, the single process (tar).
fn kill_group(pid: u32) {
    crate::common::signals::kill_group(pid);
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// The files Debian's and Ubuntu's images on Docker Hub carry for package installs in a build
/// (their rootfs builders, debuerreotype and Ubuntu's, add them): a bootstrapped base must behave
/// as the `FROM debian:trixie` that kolla's operators build on, and they are why installs there
/// are fast. Same paths as in those images, so that a Dockerfile that edits or removes one
/// (a common move for apt cache mounts) does the same here. `(path in the rootfs, mode, body)`.
const IMAGE_CONFIG: [(&str, u32, &str); 6] = [
    (
        "usr/sbin/policy-rc.d",
        0o755,
        "#!/bin/sh\n# A build has no init system: packages must not try to start their services.\nexit 101\n",
    ),
    (
        "etc/dpkg/dpkg.cfg.d/docker-apt-speedup",
        0o644,
        "# An image build is thrown away when it fails, so dpkg need not sync every file it unpacks.\nforce-unsafe-io\n",
    ),
    (
        "etc/apt/apt.conf.d/docker-clean",
        0o644,
        "# Downloaded packages and apt's binary caches would only fatten each layer.\n\
         DPkg::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };\n\
         APT::Update::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };\n\
         Dir::Cache::pkgcache \"\";\n\
         Dir::Cache::srcpkgcache \"\";\n",
    ),
    (
        "etc/apt/apt.conf.d/docker-gzip-indexes",
        0o644,
        "# Package lists stay compressed on disk.\nAcquire::GzipIndexes \"true\";\n",
    ),
    (
        "etc/apt/apt.conf.d/docker-no-languages",
        0o644,
        "# No translated package descriptions: a smaller and faster `apt-get update`.\nAcquire::Languages \"none\";\n",
    ),
    (
        "etc/apt/apt.conf.d/docker-autoremove-suggests",
        0o644,
        "# `apt-get autoremove` also takes what was only kept because something suggests it.\nApt::AutoRemove::SuggestsImportant \"false\";\n",
    ),
];

/// Writes [`IMAGE_CONFIG`] into the root filesystem at `rootfs`.
fn write_image_config(rootfs: &Path) -> Result<(), BootstrapError> {
    use std::os::unix::fs::PermissionsExt;
    for (path, mode, body) in IMAGE_CONFIG {
        let target = rootfs.join(path);
        let written = target
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&target, body))
            .and_then(|()| {
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
            });
        written.map_err(|source| BootstrapError::ImageConfig {
            path: format!("/{path}"),
            source,
        })?;
    }
    Ok(())
}

fn clean_dir(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_file() && path.file_name().is_some_and(|n| n != "lock") {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::FakeEngine;

    #[test]
    fn ubuntu_versions_map_to_suites() {
        let spec = |release: &str| BootstrapSpec {
            distro: BaseDistro::Ubuntu,
            release: release.into(),
            mirror: String::new(),
            repo: "ubuntu".into(),
            tag: release.into(),
        };
        assert_eq!(spec("22.04").suite(), "jammy");
        assert_eq!(spec("noble").suite(), "noble");
    }

    #[test]
    fn the_image_config_of_docker_hubs_debian_images_is_written_into_the_rootfs() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        // debootstrap made these directories; policy-rc.d's is there too.
        std::fs::create_dir_all(root.path().join("etc/apt/apt.conf.d")).unwrap();
        write_image_config(root.path()).unwrap();
        let read = |path: &str| std::fs::read_to_string(root.path().join(path)).unwrap();
        assert!(read("etc/dpkg/dpkg.cfg.d/docker-apt-speedup").contains("\nforce-unsafe-io\n"));
        assert!(
            read("etc/apt/apt.conf.d/docker-no-languages").contains("Acquire::Languages \"none\";")
        );
        assert!(read("etc/apt/apt.conf.d/docker-clean").contains("Dir::Cache::pkgcache \"\";"));
        let policy = root.path().join("usr/sbin/policy-rc.d");
        assert!(read("usr/sbin/policy-rc.d").ends_with("exit 101\n"));
        let mode = std::fs::metadata(&policy).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "policy-rc.d must be executable");
        // A file in the way of a directory is an error that names the file.
        let blocked = tempfile::tempdir().unwrap();
        std::fs::write(blocked.path().join("etc"), "").unwrap();
        let error = write_image_config(blocked.path()).unwrap_err().to_string();
        assert!(
            error.contains("/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"),
            "{error}"
        );
    }

    /// The names and contents of a tarball's regular files, in archive order.
    fn files_of(tarball: &[u8]) -> Vec<(String, String)> {
        crate::engine::fake::tar_entries(tarball)
            .into_iter()
            .map(|(name, bytes)| (name, String::from_utf8(bytes).unwrap()))
            .collect()
    }

    #[tokio::test]
    async fn a_root_filesystem_is_imported_as_one_layer_under_its_name() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/os-release"), "ID=debian\n").unwrap();
        std::fs::write(root.path().join("bin"), "#!").unwrap();
        let engine = FakeEngine::new();
        let id = import_rootfs(&engine, root.path(), "debian", "trixie")
            .await
            .unwrap();
        let image = engine.image("debian:trixie").expect("imported");
        assert_eq!(image.id, id);
        assert_eq!(image.layers.len(), 1);
        assert_eq!(
            files_of(&image.layers[0]),
            [
                ("./bin".to_string(), "#!".to_string()),
                ("./etc/os-release".to_string(), "ID=debian\n".to_string())
            ],
            "sorted by name"
        );
        assert_eq!(engine.calls(), ["import debian:trixie"]);
        let again = import_rootfs(&engine, root.path(), "debian", "again")
            .await
            .unwrap();
        assert_eq!(
            again, id,
            "the same tree gives the same bytes, so the same image"
        );
    }

    #[tokio::test]
    async fn a_refused_import_is_the_engines_error() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("f"), "x").unwrap();
        let engine = FakeEngine::new().with_failing_import("no space left on device");
        let err = import_rootfs(&engine, root.path(), "debian", "trixie")
            .await
            .unwrap_err();
        assert!(matches!(err, BootstrapError::Import(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "engine error: importing debian:trixie: no space left on device"
        );
        assert!(engine.image("debian:trixie").is_none());
    }

    #[tokio::test]
    async fn only_debian_and_ubuntu_bootstrap() {
        let engine = FakeEngine::new();
        let spec = BootstrapSpec {
            distro: BaseDistro::Rocky,
            release: "9".into(),
            mirror: String::new(),
            repo: "rockylinux".into(),
            tag: "9".into(),
        };
        let err = bootstrap(&engine, &spec, |_| {}).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "--bootstrap-base makes Debian and Ubuntu images only; for rocky pull `rockylinux:9` or load it with `docker load`"
        );
        assert!(engine.calls().is_empty());
    }
}
