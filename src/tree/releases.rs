//! The OpenStack releases a tree builds, as data (`base/releases.toml`): per release its codename
//! and constraints file, and per base distro the base image, the repositories and whether the
//! distro carries the release's packages. Settings pick a row; nothing here reads files except
//! `ReleaseTable::load`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::common::error::{Error, Result};
use crate::common::types::{BaseDistro, InstallType};

/// Where a tree in this project's layout keeps its table.
pub const RELEASES_FILE: &str = "base/releases.toml";

/// `base/releases.toml`, parsed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseTable {
    /// The release built when none is asked for.
    pub default: String,
    pub releases: BTreeMap<String, Release>,
    /// The folder the table was read from: constraints paths are relative to it.
    #[serde(skip)]
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub codename: String,
    /// The constraints file of `source` installs, relative to the table's folder.
    pub constraints: PathBuf,
    #[serde(default)]
    pub centos: Option<DistroRelease>,
    #[serde(default)]
    pub rocky: Option<DistroRelease>,
    #[serde(default)]
    pub debian: Option<DistroRelease>,
    #[serde(default)]
    pub ubuntu: Option<DistroRelease>,
}

/// One release on one base distro.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistroRelease {
    pub image: String,
    pub tag: String,
    /// Whether the distro (with `repos`) carries the release's OpenStack packages.
    pub binary: bool,
    /// Why not, when `binary` is false.
    #[serde(default)]
    pub unbuildable: Option<String>,
    /// Keys laid over `repos.yaml`'s entries of these names, for this distro.
    #[serde(default)]
    pub repos: BTreeMap<String, BTreeMap<String, toml::Value>>,
}

/// What the selected row says for one base distro and install type.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseFacts {
    pub name: String,
    pub codename: String,
    pub base_image: String,
    pub base_tag: String,
    /// The constraints file (absolute).
    pub constraints: PathBuf,
    /// Repository name → keys laid over repos.yaml's entry (as YAML scalars).
    pub repos: BTreeMap<String, BTreeMap<String, String>>,
    /// Set when the pair base/install type cannot be built for this release: the reason.
    pub unbuildable: Option<String>,
}

impl ReleaseTable {
    /// Reads `base/releases.toml` below `tree_root`, if the tree has one.
    pub fn load(tree_root: &Path) -> Result<Option<ReleaseTable>> {
        let path = tree_root.join(RELEASES_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(&text, &path).map(Some)
    }

    pub fn parse(text: &str, path: &Path) -> Result<ReleaseTable> {
        let mut table: ReleaseTable = toml::from_str(text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        table.dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        if !table.releases.contains_key(&table.default) {
            return Err(Error::Config {
                path: path.to_path_buf(),
                message: format!(
                    "`default = \"{}\"` names no [releases.\"{}\"] table",
                    table.default, table.default
                ),
            });
        }
        Ok(table)
    }

    /// The row for `release` (the table's default when `None`) on `base`, or an error naming
    /// the releases and distros the table knows.
    pub fn facts(
        &self,
        release: Option<&str>,
        base: BaseDistro,
        install_type: InstallType,
    ) -> Result<ReleaseFacts> {
        let name = release.unwrap_or(&self.default);
        let known = || self.releases.keys().cloned().collect::<Vec<_>>().join(", ");
        let row = self.releases.get(name).ok_or_else(|| Error::Setting {
            key: "openstack-release".into(),
            message: format!(
                "`{name}` is not in {}; it knows {}. Add a row there, or pick one of those",
                self.dir.join("releases.toml").display(),
                known()
            ),
        })?;
        let distro = match base {
            BaseDistro::Centos => &row.centos,
            BaseDistro::Rocky => &row.rocky,
            BaseDistro::Debian => &row.debian,
            BaseDistro::Ubuntu => &row.ubuntu,
        }
        .as_ref()
        .ok_or_else(|| Error::Setting {
            key: "base".into(),
            message: format!(
                "OpenStack {name} has no row for {base} in {}",
                self.dir.join("releases.toml").display()
            ),
        })?;
        let unbuildable = (install_type == InstallType::Binary && !distro.binary).then(|| {
            distro.unbuildable.clone().unwrap_or_else(|| {
                format!("{base} {} carries no OpenStack {name} packages", distro.tag)
            })
        });
        let repos = distro
            .repos
            .iter()
            .map(|(repo, keys)| {
                let keys = keys
                    .iter()
                    .map(|(k, v)| {
                        let v = match v {
                            toml::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (k.clone(), v)
                    })
                    .collect();
                (repo.clone(), keys)
            })
            .collect();
        Ok(ReleaseFacts {
            name: name.to_string(),
            codename: row.codename.clone(),
            base_image: distro.image.clone(),
            base_tag: distro.tag.clone(),
            constraints: self.dir.join(&row.constraints),
            repos,
            unbuildable,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = r#"
default = "2025.1"
[releases."2025.1"]
codename = "epoxy"
constraints = "constraints/2025.1.txt"
debian = { image = "debian", tag = "trixie", binary = true }
ubuntu = { image = "ubuntu", tag = "24.04", binary = true, repos = { cloud-archive = { suite = "noble-updates/epoxy" } } }
[releases."2024.1"]
codename = "caracal"
constraints = "constraints/2024.1.txt"
debian = { image = "debian", tag = "bookworm", binary = false, unbuildable = "bookworm carries Zed" }
"#;

    fn table() -> ReleaseTable {
        ReleaseTable::parse(TABLE, Path::new("/tree/base/releases.toml")).unwrap()
    }

    #[test]
    fn the_default_row_sets_codename_base_and_constraints() {
        let facts = table()
            .facts(None, BaseDistro::Debian, InstallType::Binary)
            .unwrap();
        assert_eq!(facts.name, "2025.1");
        assert_eq!(facts.codename, "epoxy");
        assert_eq!(facts.base_tag, "trixie");
        assert_eq!(
            facts.constraints,
            PathBuf::from("/tree/base/constraints/2025.1.txt")
        );
        assert_eq!(facts.unbuildable, None);
    }

    #[test]
    fn repository_keys_come_with_the_row() {
        let facts = table()
            .facts(Some("2025.1"), BaseDistro::Ubuntu, InstallType::Binary)
            .unwrap();
        assert_eq!(facts.repos["cloud-archive"]["suite"], "noble-updates/epoxy");
    }

    #[test]
    fn binary_without_packages_is_unbuildable_with_the_reason_source_is_not() {
        let t = table();
        let binary = t
            .facts(Some("2024.1"), BaseDistro::Debian, InstallType::Binary)
            .unwrap();
        assert_eq!(binary.unbuildable.as_deref(), Some("bookworm carries Zed"));
        let source = t
            .facts(Some("2024.1"), BaseDistro::Debian, InstallType::Source)
            .unwrap();
        assert_eq!(source.unbuildable, None);
        assert_eq!(source.base_tag, "bookworm");
    }

    #[test]
    fn unknown_release_and_missing_distro_name_what_is_known() {
        let t = table();
        let err = t
            .facts(Some("2023.2"), BaseDistro::Debian, InstallType::Source)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`2023.2`") && err.contains("2024.1, 2025.1"),
            "{err}"
        );
        let err = t
            .facts(Some("2024.1"), BaseDistro::Rocky, InstallType::Source)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no row for rocky"), "{err}");
    }

    #[test]
    fn a_default_without_its_row_and_unknown_keys_are_errors() {
        let err = ReleaseTable::parse("default = \"9\"\n[releases]\n", Path::new("r.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("names no"), "{err}");
        let err = ReleaseTable::parse(
            &TABLE.replace("binary = true", "binary = true, binnary = 1"),
            Path::new("r.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("binnary"), "{err}");
    }

    #[test]
    fn the_trees_own_table_parses_and_every_row_has_its_constraints() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let table = ReleaseTable::load(root)
            .unwrap()
            .expect("base/releases.toml");
        for (name, row) in &table.releases {
            assert!(
                table.dir.join(&row.constraints).is_file(),
                "{name}: {} missing",
                row.constraints.display()
            );
            for base in BaseDistro::ALL {
                table
                    .facts(Some(name), base, InstallType::Source)
                    .unwrap_or_else(|e| panic!("{name} {base}: {e}"));
            }
        }
    }
}
