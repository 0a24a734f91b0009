//! The labels kolla's own build adds to every image at build time (not in the templates), per
//! kolla release, from the `build_labels` and `scm_labels` keys of `kolla.toml`:
//!
//! - kolla 22 and later (`KollaWorker.build_image_list`): `org.opencontainers.image.{title,
//!   description, version, created, authors, url, licenses}`, and `source`/`revision` from the
//!   installation's `direct_url.json` (pip's record of a VCS or local install), else from the git
//!   checkout the package lives in (kolla's GitPython fallback), a `file:` source reading as
//!   `https://opendev.org/openstack/kolla`;
//! - kolla 23 and later (`DockerWorker.builder`): `build-date` (`%Y%m%d` of the build), which
//!   the templates of 20 to 22 write themselves.
//!
//! kolla 20 and 21 add none. Values are formats over `{image}`, `{tag}`, `{maintainer}`,
//! `{created}` (the run's start, `%Y-%m-%dT%H:%M:%SZ` in UTC, one for every image, as kolla's
//! worker) and `{build_date}`.

use std::collections::BTreeMap;
use std::path::Path;

use super::Kolla;

/// The source kolla names when pip's record points at a local path (kolla's constant).
const KOLLA_SOURCE: &str = "https://opendev.org/openstack/kolla";

/// kolla's build-time labels of one run, ready to apply per image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildLabels {
    formats: BTreeMap<String, String>,
    scm: BTreeMap<String, String>,
    tag: String,
    maintainer: String,
    created: String,
    build_date: String,
}

impl BuildLabels {
    /// The labels of a kolla release's build; `created` is the run's start (RFC 3339, seconds,
    /// UTC).
    pub fn new(kolla: &Kolla, tag: &str, maintainer: &str, created: &str) -> BuildLabels {
        let r = kolla.release;
        let scm = if r.scm_labels {
            kolla
                .installation
                .as_ref()
                .map(|i| scm_labels(i.metadata.as_deref(), i.package.as_deref()))
                .unwrap_or_default()
        } else {
            BTreeMap::new()
        };
        BuildLabels {
            formats: r.build_labels.clone(),
            scm,
            tag: tag.to_string(),
            maintainer: maintainer.to_string(),
            created: created.to_string(),
            // `2026-12-02T13:00:00Z` → `20261202`
            build_date: created.get(..10).unwrap_or_default().replace('-', ""),
        }
    }

    /// Puts kolla's labels for `image` into `labels` (replacing labels of the same name). The
    /// `kolla_version` label is left to the template (kolla's base writes the kolla version
    /// there; a build-time label of this tool's version would replace it).
    pub fn apply(&self, image: &str, labels: &mut BTreeMap<String, String>) {
        labels.remove("kolla_version");
        for (name, value) in &self.scm {
            labels.insert(name.clone(), value.clone());
        }
        for (name, format) in &self.formats {
            let value = format
                .replace("{image}", image)
                .replace("{tag}", &self.tag)
                .replace("{maintainer}", &self.maintainer)
                .replace("{created}", &self.created)
                .replace("{build_date}", &self.build_date);
            labels.insert(name.clone(), value);
        }
    }
}

/// `org.opencontainers.image.source`/`revision` as kolla finds them: pip's `direct_url.json`
/// beside the metadata, else the git checkout holding the package.
pub fn scm_labels(metadata: Option<&Path>, package: Option<&Path>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let direct_url = metadata
        .and_then(Path::parent)
        .map(|dist_info| dist_info.join("direct_url.json"))
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok());
    if let Some(data) = direct_url {
        if let Some(url) = data.get("url").and_then(|u| u.as_str()) {
            labels.insert(
                "org.opencontainers.image.source".to_string(),
                url.to_string(),
            );
        }
        if let Some(commit) = data
            .get("vcs_info")
            .and_then(|v| v.get("commit_id"))
            .and_then(|c| c.as_str())
        {
            labels.insert(
                "org.opencontainers.image.revision".to_string(),
                commit.to_string(),
            );
        }
    }
    let source = labels
        .get("org.opencontainers.image.source")
        .cloned()
        .unwrap_or_default();
    if !labels.contains_key("org.opencontainers.image.revision") || source.starts_with("file:") {
        if let Some(commit) = package.and_then(git_head) {
            labels.insert("org.opencontainers.image.revision".to_string(), commit);
            if source.is_empty() || source.starts_with("file:") {
                labels.insert(
                    "org.opencontainers.image.source".to_string(),
                    KOLLA_SOURCE.to_string(),
                );
            }
        }
    }
    if labels
        .get("org.opencontainers.image.source")
        .is_some_and(|s| s.starts_with("file:"))
    {
        labels.insert(
            "org.opencontainers.image.source".to_string(),
            KOLLA_SOURCE.to_string(),
        );
    }
    labels
}

/// The commit checked out in the git repository holding `dir` (searching its parents, as
/// GitPython's `search_parent_directories`); `None` outside a repository or without git.
fn git_head(dir: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--verify", "-q", "HEAD"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let sha = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && sha.len() == 40).then_some(sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kolla(version: &str) -> Kolla {
        Kolla {
            version: version.to_string(),
            release: super::super::release(version),
            installation: None,
            origin: String::new(),
        }
    }

    fn labels_of(version: &str) -> BTreeMap<String, String> {
        let labels = BuildLabels::new(
            &kolla(version),
            "2026.2-rocky-10",
            "Kolla Project (https://launchpad.net/kolla)",
            "2026-12-02T13:04:05Z",
        );
        let mut out = BTreeMap::from([
            ("mine".to_string(), "kept".to_string()),
            ("kolla_version".to_string(), "0.1.0".to_string()),
        ]);
        labels.apply("nova-api", &mut out);
        out
    }

    #[test]
    fn kolla_20_and_21_add_no_labels_at_build_time() {
        let only_ours = BTreeMap::from([("mine".to_string(), "kept".to_string())]);
        assert_eq!(labels_of("20.6.0"), only_ours);
        assert_eq!(labels_of("21.3.0"), only_ours);
    }

    #[test]
    fn kolla_22_adds_the_oci_labels() {
        let labels = labels_of("22.2.0");
        let oci = |k: &str| labels[&format!("org.opencontainers.image.{k}")].as_str();
        assert_eq!(oci("title"), "nova-api");
        assert_eq!(oci("description"), "OpenStack Kolla nova-api image");
        assert_eq!(oci("version"), "2026.2-rocky-10");
        assert_eq!(oci("created"), "2026-12-02T13:04:05Z");
        assert_eq!(
            oci("authors"),
            "Kolla Project (https://launchpad.net/kolla)"
        );
        assert_eq!(oci("url"), "https://opendev.org/openstack/kolla");
        assert_eq!(oci("licenses"), "Apache-2.0");
        assert_eq!(labels["mine"], "kept");
        // the template's kolla_version label stands
        assert!(!labels.contains_key("kolla_version"), "{labels:?}");
        // the templates of 22 still write build-date themselves
        assert!(!labels.contains_key("build-date"), "{labels:?}");
    }

    #[test]
    fn kolla_23_also_adds_the_build_date() {
        let labels = labels_of("23.0.0");
        assert_eq!(labels["build-date"], "20261202");
        assert_eq!(labels["org.opencontainers.image.title"], "nova-api");
        // a newer kolla gets the newest row
        assert_eq!(labels_of("24.0.0")["build-date"], "20261202");
    }

    #[test]
    fn scm_labels_come_from_pips_record() {
        let dir = tempfile::tempdir().unwrap();
        let dist = dir.path().join("kolla-23.0.1.dist-info");
        std::fs::create_dir_all(&dist).unwrap();
        std::fs::write(dist.join("METADATA"), "Name: kolla\n").unwrap();
        std::fs::write(
            dist.join("direct_url.json"),
            r#"{"url": "https://opendev.org/openstack/kolla", "vcs_info": {"vcs": "git", "commit_id": "0123456789abcdef0123456789abcdef01234567"}}"#,
        )
        .unwrap();
        let labels = scm_labels(Some(&dist.join("METADATA")), None);
        assert_eq!(
            labels["org.opencontainers.image.revision"],
            "0123456789abcdef0123456789abcdef01234567"
        );
        assert_eq!(
            labels["org.opencontainers.image.source"],
            "https://opendev.org/openstack/kolla"
        );
        // a local install without a checkout: the source is kolla's, no revision
        std::fs::write(
            dist.join("direct_url.json"),
            r#"{"url": "file:///src/kolla", "dir_info": {}}"#,
        )
        .unwrap();
        let outside = tempfile::tempdir().unwrap();
        let labels = scm_labels(Some(&dist.join("METADATA")), Some(outside.path()));
        assert_eq!(
            labels
                .get("org.opencontainers.image.source")
                .map(String::as_str),
            Some("https://opendev.org/openstack/kolla")
        );
        // no record at all (a wheel from PyPI): nothing
        std::fs::remove_file(dist.join("direct_url.json")).unwrap();
        assert!(scm_labels(Some(&dist.join("METADATA")), Some(outside.path())).is_empty());
    }
}
