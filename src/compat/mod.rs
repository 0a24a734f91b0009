//! Everything specific to kolla's own template tree and to the kolla release it belongs to.
//!
//! kolla's defaults (OpenStack release, base images and tags, the image tag, the maintainer...)
//! and a few behaviours of its Python code (`handle_repos`, `build_date`, the unbuildable
//! images, the users table) changed from release to release. They are kept in one table,
//! `kolla.toml`, one row per major release; [`detect`] finds the release of a tree from the
//! installation it belongs to, and [`apply_defaults`] puts the row's defaults under the file and
//! the command line.

pub mod args;
pub mod detect;
pub mod labels;
pub mod layers;
pub mod oslo;
pub mod repos20;
pub mod sources;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;

use crate::common::error::{Error, Result};
use crate::common::types::BaseDistro;
use crate::config::FileConfig;
use crate::config::cli::Cli;
use crate::tree::Layout;

const TABLE: &str = include_str!("kolla.toml");

/// Which `handle_repos` a kolla release has (see `kolla.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum HandleRepos {
    #[serde(rename = "20")]
    Kolla20,
    #[serde(rename = "21")]
    Kolla21,
    #[serde(rename = "23")]
    Kolla23,
}

/// How `--repos-yaml` combines with the release's own file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReposOverride {
    /// The given file is the whole repos.yaml (kolla up to 22).
    Replace,
    /// Laid over the release's file repository by repository (kolla 23).
    Merge,
}

/// One supported base of a release.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Distro {
    pub image: String,
    pub tag: String,
    pub pretty_name: String,
}

/// One row of the table: a major kolla release.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub major: u32,
    pub checked: String,
    pub openstack_release: String,
    pub openstack_release_codename: String,
    pub maintainer: String,
    pub namespace: String,
    pub image_name_prefix: String,
    pub default_base: BaseDistro,
    pub tag: String,
    pub build_date: bool,
    pub handle_repos: HandleRepos,
    pub repos_yaml_override: ReposOverride,
    #[serde(default)]
    pub repos_yaml_el10: Option<String>,
    pub pip_index_options: bool,
    pub users_absent: Vec<String>,
    pub unbuildable_tag_elements: bool,
    pub unbuildable: BTreeMap<String, Vec<String>>,
    pub distros: BTreeMap<String, Distro>,
    /// Labels kolla's build adds at build time (formats; see [`labels`]).
    #[serde(default)]
    pub build_labels: BTreeMap<String, String>,
    /// Whether kolla's build adds the source/revision labels.
    #[serde(default)]
    pub scm_labels: bool,
    /// How kolla tars its sources (see [`sources::SourceTar`]).
    pub source_tar: sources::SourceTar,
    /// The file of kolla/common/ that holds the default SOURCES table.
    pub sources_defaults: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    release: Vec<Release>,
}

/// Every release of the table, oldest first.
pub fn releases() -> &'static [Release] {
    static RELEASES: OnceLock<Vec<Release>> = OnceLock::new();
    RELEASES.get_or_init(|| {
        let mut table: Table = toml::from_str(TABLE).expect("src/compat/kolla.toml parses");
        table.release.sort_by_key(|r| r.major);
        table.release
    })
}

/// The major release of a kolla version (`22.2.0` → 22, `21.1.1.dev3` → 21); `None` for
/// anything that does not start with `<number>.<digit>`.
pub fn major(version: &str) -> Option<u32> {
    let (major, rest) = version.split_once('.')?;
    rest.chars().next()?.is_ascii_digit().then_some(())?;
    major.parse().ok()
}

/// The row for a kolla version: its major release, else the nearest one in the table (a
/// release newer than the table gets the newest row, an older one the oldest).
pub fn release(version: &str) -> &'static Release {
    let all = releases();
    let wanted = major(version).unwrap_or(u32::MAX);
    all.iter().find(|r| r.major == wanted).unwrap_or_else(|| {
        if wanted < all[0].major {
            &all[0]
        } else {
            all.last().expect("the table has rows")
        }
    })
}

impl Release {
    /// Whether the table has this exact major release (not the nearest one).
    pub fn is_exact(&self, version: &str) -> bool {
        major(version) == Some(self.major)
    }

    pub fn distro(&self, base: BaseDistro) -> Option<&Distro> {
        self.distros.get(base.as_str())
    }

    /// The `--tag` default.
    pub fn default_tag(
        &self,
        kolla_version: &str,
        openstack_release: &str,
        base: &str,
        base_tag: &str,
    ) -> String {
        self.tag
            .replace("{kolla_version}", kolla_version)
            .replace("{openstack_release}", openstack_release)
            .replace("{base}", base)
            .replace("{base_tag}", base_tag)
    }

    /// The images kolla leaves out for a base, architecture and base tag (kolla's
    /// `UNBUILDABLE_IMAGES`: a key applies when each of its `+`-joined elements is the base, the
    /// architecture or, where the release matches them, the base tag).
    pub fn unbuildable(&self, base: &str, arch: &str, base_tag: &str) -> BTreeSet<String> {
        let facts: Vec<&str> = if self.unbuildable_tag_elements {
            vec![base, arch, base_tag]
        } else {
            vec![base, arch]
        };
        self.unbuildable
            .iter()
            .filter(|(key, _)| key.split('+').all(|e| facts.contains(&e)))
            .flat_map(|(_, images)| images.iter().cloned())
            .collect()
    }
}

/// What a kolla-layout tree was found to be: the kolla version in effect and where it comes
/// from.
#[derive(Debug, Clone)]
pub struct Kolla {
    pub version: String,
    pub release: &'static Release,
    /// The installation beside the tree, if one was found.
    pub installation: Option<detect::Installation>,
    /// How the version was decided, for messages.
    pub origin: String,
}

/// A kolla-layout tree and the installation it belongs to: found once per run (reading the
/// installation's metadata is the detection); the version in effect follows from it without
/// reading anything again.
#[derive(Debug, Clone)]
pub struct KollaTree {
    dir: PathBuf,
    installation: Option<detect::Installation>,
}

impl KollaTree {
    /// The kolla tree at `images_dir` and its installation; `None` for a tree of this project's
    /// layout.
    pub fn find(images_dir: &Path) -> Option<KollaTree> {
        if Layout::detect(images_dir) != Layout::Kolla
            || !images_dir
                .join("base")
                .join(crate::tree::TEMPLATE_FILE)
                .is_file()
        {
            return None;
        }
        Some(KollaTree {
            dir: images_dir.to_path_buf(),
            installation: detect::detect(images_dir),
        })
    }

    /// The kolla of this tree: `given` (`--kolla-version`, or `kolla_version` in the file), else
    /// the version of the installation the tree belongs to, else the newest release of the table
    /// (with a warning).
    pub fn kolla(&self, given: Option<&str>) -> Kolla {
        // This tool's own version is the setting's default: it says nothing about kolla.
        let given = given.filter(|v| *v != env!("CARGO_PKG_VERSION"));
        let installation = self.installation.as_ref();
        let (version, origin) = match (given, installation.and_then(|i| i.version.clone())) {
            (Some(v), _) => (v.to_string(), "given with --kolla-version".to_string()),
            (None, Some(v)) => {
                let from = installation
                    .and_then(|i| i.metadata.as_ref())
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                (v, format!("detected from {from}"))
            }
            (None, None) => {
                let newest = releases().last().expect("the table has rows");
                (
                    newest.checked.clone(),
                    format!(
                        "assumed: no kolla installation found beside `{}`; pass --kolla-version",
                        self.dir.display()
                    ),
                )
            }
        };
        Kolla {
            release: release(&version),
            version,
            installation: self.installation.clone(),
            origin,
        }
    }
}

/// Puts the kolla release's defaults under the file's settings (the command line stays on top):
/// for a kolla-layout tree, every setting neither given nor in the file gets the value that
/// kolla release's kolla-build defaults to. Returns the kolla in effect (the version given on
/// the command line or in the file, else the tree's); errors when the chosen base is one the
/// release does not support (kolla-build refuses it too).
pub fn apply_defaults(cli: &Cli, file: &mut FileConfig, tree: &KollaTree) -> Result<Kolla> {
    let given = cli
        .kolla_version
        .as_deref()
        .or(file.kolla_version.as_deref());
    let kolla = tree.kolla(given);
    let r = kolla.release;
    let base = cli.base.or(file.base).unwrap_or(r.default_base);
    let Some(distro) = r.distro(base) else {
        return Err(Error::Setting {
            key: "base".into(),
            message: format!(
                "kolla {} does not support `{base}` (its bases: {}); its kolla-build refuses it too",
                kolla.version,
                r.distros.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        });
    };
    let fill = |slot: &mut Option<String>, value: &str| {
        slot.get_or_insert_with(|| value.to_string());
    };
    file.base.get_or_insert(base);
    fill(&mut file.kolla_version, &kolla.version);
    fill(&mut file.base_image, &distro.image);
    fill(&mut file.base_tag, &distro.tag);
    fill(&mut file.namespace, &r.namespace);
    fill(&mut file.image_name_prefix, &r.image_name_prefix);
    fill(&mut file.maintainer, &r.maintainer);
    fill(&mut file.openstack_release, &r.openstack_release);
    fill(
        &mut file.openstack_release_codename,
        &r.openstack_release_codename,
    );
    fill(&mut file.supported_distro_name, &distro.pretty_name);
    let openstack_release = cli
        .openstack_release
        .clone()
        .or(file.openstack_release.clone())
        .unwrap_or_default();
    let base_tag = cli
        .base_tag
        .clone()
        .or(file.base_tag.clone())
        .unwrap_or_default();
    let tag = r.default_tag(&kolla.version, &openstack_release, base.as_str(), &base_tag);
    fill(&mut file.tag, &tag);
    if !r.pip_index_options {
        // Not options of this kolla: its kolla-build ignores them in the file.
        file.pip_index_url = None;
        file.pip_trusted_host = None;
        file.pip_extra_index_url = None;
    }
    Ok(kolla)
}

/// For a kolla-layout tree given with `--images-dir`: the configuration as that kolla-build
/// reads it (see [`oslo`] and [`layers`]): kolla's default files and folders unless
/// `--config-file`/`--config-dir` are given, then those in command-line order; later files win,
/// multi-valued options add up (with the flags', in command-line order), `$name` is
/// interpolated. Flags that a later file overrides are dropped from `cli`, and the flags'
/// multi-valued options are moved into the returned settings. Returns the settings and the
/// files read (a tree of this project's layout has its `build.toml` instead). A single
/// `--config-file` in this tool's TOML is read as such.
pub fn load_config(
    cli: &mut Cli,
    cwd: &Path,
    home: Option<&Path>,
    tree: &KollaTree,
) -> Result<(FileConfig, Vec<PathBuf>)> {
    let kolla = tree.kolla(cli.kolla_version.as_deref());
    let search = oslo::search_dirs(home, Path::new("/"));
    let layers = layers::layers(cli, cwd, &search)?;
    let files: Vec<PathBuf> = layers.iter().map(|l| l.path.clone()).collect();
    let mut texts = Vec::with_capacity(layers.len());
    for layer in &layers {
        let content = std::fs::read_to_string(&layer.path).map_err(|source| Error::Read {
            path: layer.path.clone(),
            source,
        })?;
        if layers.len() == 1 && !crate::config::is_ini(&layer.path, &content) {
            return Ok((FileConfig::load(&layer.path)?, files));
        }
        texts.push(content);
    }
    let shown = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let err_path = files.first().cloned().unwrap_or_default();
    let mut ignored = Vec::new();
    for (layer, text) in layers.iter().zip(&texts) {
        for key in layers::ignored_keys(text) {
            ignored.push(format!(
                "{}: `{}` is ignored: kolla-build (oslo.config) reads option names with `_` in \
                 files; write `{key}`",
                layer.path.display(),
                key.replace('_', "-"),
            ));
        }
    }
    // A flag that a file read after it sets is overridden by that file (oslo).
    for (layer, text) in layers.iter().zip(&texts) {
        for key in layers::keys_set(text) {
            if layers::flag_position(cli, &key).is_some_and(|flag| flag < layer.position) {
                layers::drop_flag(cli, &key);
            }
        }
    }
    let raw = oslo::raw_values(&texts.join("\n"));
    let resolver = Resolver {
        cli: &*cli,
        raw: &raw,
        kolla: &kolla,
    };
    let mut interpolated = Vec::with_capacity(texts.len());
    for (layer, text) in layers.iter().zip(&texts) {
        interpolated.push(
            oslo::interpolate_text(text, &mut |group, name| resolver.get(group, name, 0)).map_err(
                |message| Error::Config {
                    path: layer.path.clone(),
                    message: message.to_string(),
                },
            )?,
        );
    }
    let all: Vec<&str> = interpolated.iter().map(String::as_str).collect();
    let text = layers::merge(&all);
    let (mut config, warnings) = FileConfig::parse_ini(&text).map_err(|message| Error::Config {
        path: err_path.clone(),
        message: format!("{message} (in {shown})"),
    })?;
    add_up_multi(cli, &layers, &interpolated, &mut config)?;
    config.warnings = ignored;
    config.warnings.extend(
        warnings
            .into_iter()
            .map(|warning| format!("{shown}: {warning}")),
    );
    config.source_sections = raw
        .into_iter()
        .filter(|(section, _)| {
            !(section == "DEFAULT" || section == "profiles" || section.ends_with("-user"))
        })
        .collect();
    config.resolve_paths(cwd);
    Ok((config, files))
}

/// kolla's multi-valued options from every file and from the flags, in command-line order (a
/// file's values where the file stands, each flag's value where it stands); the flags' values
/// are moved into `config`.
fn add_up_multi(
    cli: &mut Cli,
    layers: &[layers::Layer],
    texts: &[String],
    config: &mut FileConfig,
) -> Result<()> {
    let mut per_file = Vec::with_capacity(layers.len());
    for (layer, text) in layers.iter().zip(texts) {
        let (file, _) =
            FileConfig::parse_ini(&layers::multi_only(text)).map_err(|message| Error::Config {
                path: layer.path.clone(),
                message: message.to_string(),
            })?;
        per_file.push((layer.position, file));
    }
    fn ordered<T: Clone>(
        files: impl Iterator<Item = (usize, Option<Vec<T>>)>,
        flags: Vec<T>,
        flag_positions: Option<&Vec<usize>>,
    ) -> Option<Vec<T>> {
        let mut events: Vec<(usize, Vec<T>)> = files
            .filter_map(|(position, values)| Some((position, values?)))
            .collect();
        for (i, value) in flags.into_iter().enumerate() {
            let at = flag_positions
                .and_then(|p| p.get(i))
                .copied()
                .unwrap_or(usize::MAX);
            events.push((at, vec![value]));
        }
        // stable: a file's values stay in file order, files in reading order
        events.sort_by_key(|(position, _)| *position);
        let all: Vec<T> = events.into_iter().flat_map(|(_, v)| v).collect();
        (!all.is_empty()).then_some(all)
    }
    config.template_override = ordered(
        per_file
            .iter()
            .map(|(p, f)| (*p, f.template_override.clone())),
        std::mem::take(&mut cli.template_override),
        cli.positions.get("template_override"),
    );
    config.docker_dir = ordered(
        per_file.iter().map(|(p, f)| (*p, f.docker_dir.clone())),
        std::mem::take(&mut cli.docker_dir),
        cli.positions.get("docker_dir"),
    );
    config.profile = ordered(
        per_file.iter().map(|(p, f)| (*p, f.profile.clone())),
        std::mem::take(&mut cli.profile),
        cli.positions.get("profile"),
    );
    Ok(())
}

/// Option values for `$name` interpolation: the command line's, else the files', else kolla's
/// default.
struct Resolver<'a> {
    cli: &'a Cli,
    raw: &'a BTreeMap<String, BTreeMap<String, String>>,
    kolla: &'a Kolla,
}

impl Resolver<'_> {
    fn get(
        &self,
        group: &str,
        name: &str,
        depth: usize,
    ) -> std::result::Result<String, oslo::OsloError> {
        if depth > 16 {
            return Err(format!("`${name}` refers to itself").into());
        }
        let name = name.replace('-', "_");
        let in_group = self.raw.get(group).and_then(|g| g.get(&name));
        if in_group.is_none() || group == "DEFAULT" {
            if let Some(value) = self.cli_value(&name) {
                return Ok(value);
            }
        }
        if let Some(value) = in_group.or_else(|| self.raw.get("DEFAULT").and_then(|g| g.get(&name)))
        {
            return oslo::interpolate(value, group, &mut |g, n| self.get(g, n, depth + 1));
        }
        self.default_value(&name, depth)
            .ok_or_else(|| format!("`${name}` is not an option kolla-build knows").into())
    }

    fn cli_value(&self, name: &str) -> Option<String> {
        let c = self.cli;
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        match name {
            "base" => c.base.map(|b| b.as_str().to_string()),
            "base_image" => c.base_image.clone(),
            "base_tag" => c.base_tag.clone(),
            "base_arch" => c.base_arch.clone(),
            "namespace" => c.namespace.clone(),
            "registry" => c.registry.clone(),
            "tag" => c.tag.clone(),
            "image_name_prefix" => c.image_name_prefix.clone(),
            "openstack_release" => c.openstack_release.clone(),
            "openstack_release_codename" => c.openstack_release_codename.clone(),
            "maintainer" => c.maintainer.clone(),
            "work_dir" => path(&c.work_dir),
            "logs_dir" => path(&c.logs_dir),
            "repos_yaml" => path(&c.repos_yaml),
            _ => None,
        }
    }

    /// kolla's default of an option, for the release of the tree.
    fn default_value(&self, name: &str, depth: usize) -> Option<String> {
        let r = self.kolla.release;
        let value = |n: &str| self.get("DEFAULT", n, depth + 1).ok();
        // the base as given (a `$` in it is not followed here)
        let base: BaseDistro = self
            .cli_value("base")
            .or_else(|| self.raw.get("DEFAULT").and_then(|g| g.get("base")).cloned())
            .and_then(|b| toml::Value::String(b).try_into().ok())
            .unwrap_or(r.default_base);
        let distro = r.distro(base);
        Some(match name {
            "base" => r.default_base.as_str().to_string(),
            "base_image" => distro?.image.clone(),
            "base_tag" => distro?.tag.clone(),
            "base_arch" => host_arch().to_string(),
            "namespace" => r.namespace.clone(),
            "image_name_prefix" => r.image_name_prefix.clone(),
            "maintainer" => r.maintainer.clone(),
            "openstack_release" => r.openstack_release.clone(),
            "openstack_release_codename" if !r.openstack_release_codename.is_empty() => {
                r.openstack_release_codename.clone()
            }
            "tag" => r.default_tag(
                &self.kolla.version,
                &value("openstack_release")?,
                base.as_str(),
                &value("base_tag")?,
            ),
            "registry" | "repos_yaml" | "work_dir" | "logs_dir" => String::new(),
            _ => return None,
        })
    }
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "aarch64",
        other => other,
    }
}

/// One line for the user: the kolla release whose defaults apply, and the configuration read.
pub fn note(kolla: &Kolla, files: Option<&[PathBuf]>) -> String {
    let config = match files {
        None => String::new(),
        Some([]) => {
            "; no configuration file (kolla's places: ~/.kolla/, ~/, /etc/kolla/, /etc/ for \
                     kolla.conf and kolla-build.conf)"
                .to_string()
        }
        Some(files) => format!(
            "; configuration read from {}",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let nearest = if kolla.release.is_exact(&kolla.version) {
        String::new()
    } else {
        format!(
            " (not in the table: kolla {}'s defaults)",
            kolla.release.major
        )
    };
    format!(
        "kolla-build: kolla {}{nearest}, {}{config}",
        kolla.version, kolla.origin
    )
}

/// The `repos.yaml` a kolla-layout tree uses: found from the installation (or beside the tree),
/// with `--repos-yaml` laid over it or replacing it as that kolla does. `None` when none is
/// found and none is given.
pub fn load_repos(
    tree: &crate::tree::Tree,
    kolla: &Kolla,
    given: Option<&Path>,
    base: BaseDistro,
    base_tag: &str,
) -> Result<Option<crate::tree::repos::Repos>> {
    let r = kolla.release;
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let parse = |path: &Path, text: &str| {
        crate::tree::repos::Repos::parse(text).map_err(|message| Error::Config {
            path: path.to_path_buf(),
            message: message.to_string(),
        })
    };
    let mut repos = if let (Some(path), ReposOverride::Replace) = (given, r.repos_yaml_override) {
        parse(path, &read(path)?)?
    } else {
        let el10 = matches!(
            (base, base_tag),
            (BaseDistro::Centos, t) if t.starts_with("stream10")
        ) || (base == BaseDistro::Rocky && base_tag.starts_with("10"));
        let name = match &r.repos_yaml_el10 {
            Some(file) if el10 => file.as_str(),
            _ => "repos.yaml",
        };
        let Some(path) = repos_file(tree, kolla, name) else {
            return match given {
                Some(path) => parse(path, &read(path)?).map(Some),
                None => Ok(None),
            };
        };
        let mut repos = parse(&path, &read(&path)?)?;
        if let Some(over) = given {
            repos
                .merge_override(&read(over)?)
                .map_err(|message| Error::Config {
                    path: over.to_path_buf(),
                    message: message.to_string(),
                })?;
        }
        repos
    };
    repos.kolla_before_23 = r.handle_repos != HandleRepos::Kolla23;
    if r.handle_repos == HandleRepos::Kolla20 {
        repos.dialect = Some(repos20::handle);
    }
    Ok(Some(repos))
}

/// kolla's `template/<name>`: in the installation's package, else beside the tree (an installed
/// kolla 23 keeps `docker/` inside its package; a checkout has `kolla/template/`).
fn repos_file(tree: &crate::tree::Tree, kolla: &Kolla, name: &str) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(package) = kolla.installation.as_ref().and_then(|i| i.package.as_ref()) {
        candidates.push(package.join("template").join(name));
    }
    candidates.push(tree.root.join("../template").join(name));
    candidates.push(tree.root.join("../kolla/template").join(name));
    candidates.into_iter().find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_each_maintained_release_once() {
        let majors: Vec<u32> = releases().iter().map(|r| r.major).collect();
        assert_eq!(majors, [20, 21, 22, 23]);
        for r in releases() {
            assert_eq!(major(&r.checked), Some(r.major), "{}", r.checked);
            assert!(r.distro(r.default_base).is_some(), "kolla {}", r.major);
        }
    }

    #[test]
    fn versions_map_to_their_row_or_the_nearest() {
        assert_eq!(release("22.2.0").major, 22);
        assert_eq!(release("21.1.1.dev3").major, 21);
        assert_eq!(release("24.0.0").major, 23);
        assert_eq!(release("19.8.0").major, 20);
        assert!(!release("24.0.0").is_exact("24.0.0"));
        assert_eq!(major("dev"), None);
        assert_eq!(major("22"), None);
        assert_eq!(major("v22.1"), None);
    }

    #[test]
    fn tag_defaults_follow_the_release() {
        assert_eq!(
            release("22.2.0").default_tag("22.2.0", "2026.1", "rocky", "10"),
            "22.2.0"
        );
        assert_eq!(
            release("23.0.0").default_tag("23.0.0", "2026.2", "debian", "trixie"),
            "2026.2-debian-trixie"
        );
    }

    #[test]
    fn kolla_20_matches_unbuildable_keys_on_the_base_tag() {
        let r = release("20.6.0");
        let nine = r.unbuildable("rocky", "x86_64", "9");
        assert!(
            nine.contains("releaser") && !nine.contains("telegraf"),
            "{nine:?}"
        );
        let ten = r.unbuildable("rocky", "x86_64", "10");
        assert!(
            ten.contains("telegraf") && !ten.contains("releaser"),
            "{ten:?}"
        );
        // kolla 21 does not look at the tag
        assert!(
            !release("21.3.0")
                .unbuildable("rocky", "aarch64", "9")
                .contains("releaser")
        );
        assert!(
            release("21.3.0")
                .unbuildable("rocky", "aarch64", "9")
                .contains("bifrost-base")
        );
    }
}
