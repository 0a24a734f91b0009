//! Which kolla installation a `docker/` tree belongs to, and its version, from the package
//! metadata beside it. The two layouts kolla has installed its tree in:
//! - kolla 23 and later: inside the package, `<site-packages>/kolla/docker`;
//! - kolla 22 and earlier: as data files, `<prefix>/share/kolla/docker` (also `~/.local` and
//!   `<prefix>/local`), with the package in `<prefix>/lib/python3.X/site-packages/kolla`.
//!
//! A checkout (`<checkout>/kolla/docker`, or `<checkout>/docker` before 23) has a package
//! folder but no metadata: its version is not known.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    /// The `kolla` package folder (holding `template/repos.yaml`).
    pub package: Option<PathBuf>,
    /// The metadata the version was read from (`kolla-X.dist-info/METADATA`, `PKG-INFO`).
    pub metadata: Option<PathBuf>,
    pub version: Option<String>,
}

/// The installation `tree` (a kolla `docker/` folder) belongs to, if any can be found.
pub fn detect(tree: &Path) -> Option<Installation> {
    let tree = tree.canonicalize().ok()?;
    let parent = tree.parent()?;
    // kolla 23: <site-packages>/kolla/docker, or a checkout's kolla/docker
    if is_package(parent) {
        let site = parent.parent()?;
        let (metadata, version) = metadata_in(site).unzip();
        return Some(Installation {
            package: Some(parent.to_path_buf()),
            metadata,
            version,
        });
    }
    // kolla 22 and earlier: <prefix>/share/kolla/docker
    if parent.file_name()? == "kolla" && parent.parent()?.file_name()? == "share" {
        let prefix = parent.parent()?.parent()?;
        for site in site_packages(prefix) {
            if let Some((metadata, version)) = metadata_in(&site) {
                let package = site.join("kolla");
                return Some(Installation {
                    package: is_package(&package).then_some(package),
                    metadata: Some(metadata),
                    version: Some(version),
                });
            }
        }
        return None;
    }
    // a checkout before 23: <checkout>/docker beside <checkout>/kolla
    let package = parent.join("kolla");
    is_package(&package).then_some(Installation {
        package: Some(package),
        metadata: None,
        version: None,
    })
}

fn is_package(dir: &Path) -> bool {
    dir.file_name().is_some_and(|n| n == "kolla") && dir.join("template").is_dir()
}

/// `<prefix>/{lib,lib64,local/lib}/python3*/site-packages`, sorted.
fn site_packages(prefix: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for lib in ["lib", "lib64", "local/lib"] {
        let Ok(entries) = std::fs::read_dir(prefix.join(lib)) else {
            continue;
        };
        let mut pythons: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
            .flat_map(|e| {
                [
                    e.path().join("site-packages"),
                    e.path().join("dist-packages"),
                ]
            })
            .filter(|p| p.is_dir())
            .collect();
        pythons.sort();
        found.extend(pythons);
    }
    found
}

/// The kolla distribution's metadata in a site-packages folder and the version it states.
fn metadata_in(site: &Path) -> Option<(PathBuf, String)> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(site)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_lowercase();
            name.starts_with("kolla-")
                && (name.ends_with(".dist-info") || name.ends_with(".egg-info"))
        })
        .collect();
    candidates.sort();
    candidates.into_iter().find_map(|dir| {
        let file = ["METADATA", "PKG-INFO"]
            .iter()
            .map(|f| dir.join(f))
            .find(|f| f.is_file())?;
        let text = std::fs::read_to_string(&file).ok()?;
        let name = header(&text, "Name")?;
        if !name.eq_ignore_ascii_case("kolla") {
            return None;
        }
        Some((file, header(&text, "Version")?))
    })
}

/// A header of core metadata (RFC 822 style, before the first blank line).
fn header(text: &str, key: &str) -> Option<String> {
    text.lines().take_while(|l| !l.is_empty()).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(key)
            .then(|| v.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    const METADATA: &str = "Metadata-Version: 2.1\nName: kolla\nVersion: 22.2.0\n\nbody\n";

    #[test]
    fn kolla_23_layout_reads_the_dist_info_beside_the_package() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("lib/python3.12/site-packages");
        touch(&site.join("kolla/docker/base/Dockerfile.j2"), "");
        touch(&site.join("kolla/template/repos.yaml"), "");
        touch(
            &site.join("kolla-23.0.0.dist-info/METADATA"),
            &METADATA.replace("22.2.0", "23.0.0"),
        );
        let found = detect(&site.join("kolla/docker")).unwrap();
        assert_eq!(found.version.as_deref(), Some("23.0.0"));
        assert_eq!(
            found.package.unwrap(),
            site.join("kolla").canonicalize().unwrap()
        );
    }

    #[test]
    fn share_layout_finds_the_venv_site_packages() {
        let dir = tempfile::tempdir().unwrap();
        touch(
            &dir.path().join("share/kolla/docker/base/Dockerfile.j2"),
            "",
        );
        let site = dir.path().join("lib/python3.11/site-packages");
        touch(&site.join("kolla/template/repos.yaml"), "");
        touch(&site.join("kolla-22.2.0.dist-info/METADATA"), METADATA);
        touch(
            &site.join("kollacli-1.0.dist-info/METADATA"),
            "Name: kollacli\nVersion: 1.0\n",
        );
        let found = detect(&dir.path().join("share/kolla/docker")).unwrap();
        assert_eq!(found.version.as_deref(), Some("22.2.0"));
        assert!(
            found
                .metadata
                .unwrap()
                .ends_with("kolla-22.2.0.dist-info/METADATA")
        );
        assert!(found.package.is_some());
    }

    #[test]
    fn a_checkout_has_a_package_and_no_version() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("docker/base/Dockerfile.j2"), "");
        touch(&dir.path().join("kolla/template/repos.yaml"), "");
        let found = detect(&dir.path().join("docker")).unwrap();
        assert_eq!(found.version, None);
        assert!(found.package.is_some());
        let lone = tempfile::tempdir().unwrap();
        touch(&lone.path().join("docker/base/Dockerfile.j2"), "");
        assert_eq!(detect(&lone.path().join("docker")), None);
    }
}
