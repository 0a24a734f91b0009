//! The on-disk configuration: `build.toml` (and `--config-file`). Every key is optional here;
//! `settings` merges it under the CLI and over the defaults.

pub mod cli;
pub mod options;
pub mod report_cli;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::common::error::{Error, Result};
use crate::common::types::{BaseDistro, InstallType, SummaryFormat, UndefinedMode};

crate::common::error::message_error!(
    /// A configuration file (TOML or kolla's INI) that does not parse or holds a bad value.
    ConfigError
);

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    /// What reading the file found odd (kolla options this tool does not use), each prefixed
    /// with the file; reported by the caller.
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// kolla's sections other than `[DEFAULT]`, `[profiles]` and `[<name>-user]`: the source
    /// sections of images, plugins and additions (`[keystone-base]`, `[nova-base-plugin-x]`),
    /// as written (section → option → value, not interpolated: a section's own options, such
    /// as `version`, interpolate first). The build's source stage reads them.
    #[serde(skip)]
    pub source_sections: BTreeMap<String, BTreeMap<String, String>>,
    pub base: Option<BaseDistro>,
    pub base_image: Option<String>,
    pub base_tag: Option<String>,
    pub base_arch: Option<String>,
    pub install_type: Option<InstallType>,
    pub namespace: Option<String>,
    pub registry: Option<String>,
    pub tag: Option<String>,
    pub image_name_prefix: Option<String>,
    pub openstack_release: Option<String>,
    pub openstack_release_codename: Option<String>,
    pub maintainer: Option<String>,
    pub profile: Option<Vec<String>>,
    pub images_dir: Option<PathBuf>,
    pub docker_dir: Option<Vec<PathBuf>>,
    pub template_override: Option<Vec<PathBuf>>,
    pub work_dir: Option<PathBuf>,
    pub enable_unbuildable: Option<bool>,
    pub skip_parents: Option<bool>,
    pub undefined: Option<UndefinedMode>,
    pub clean_package_cache: Option<bool>,
    pub use_dumb_init: Option<bool>,
    pub docker_healthchecks: Option<bool>,
    pub threads: Option<usize>,
    pub engine_url: Option<String>,
    /// `[[engine]]` tables: the engines of a pool.
    pub engine: Option<Vec<EngineEntry>>,
    pub pull: Option<bool>,
    pub bootstrap_base: Option<bool>,
    pub bootstrap_mirror: Option<String>,
    pub build_args: Option<BTreeMap<String, String>>,
    pub network_mode: Option<String>,
    pub no_cache: Option<bool>,
    pub keep: Option<bool>,
    pub ca_certificates: Option<Vec<PathBuf>>,
    /// `--package-cache`: `KIND=URL` entries (apt, pypi).
    pub package_cache: Option<Vec<String>>,
    pub cache_dir: Option<PathBuf>,
    pub retries: Option<u32>,
    pub push: Option<bool>,
    pub push_threads: Option<usize>,
    pub export: Option<PathBuf>,
    pub export_format: Option<crate::common::types::ExportFormat>,
    pub timeout: Option<u64>,
    pub skip_existing: Option<bool>,
    /// `--durations-from`: an earlier run's JSON summary, whose build times order this run.
    pub durations_from: Option<PathBuf>,
    pub logs_dir: Option<PathBuf>,
    pub summary_json_file: Option<PathBuf>,
    /// `--report`: the run's timeline as one HTML file.
    pub report: Option<PathBuf>,
    pub format: Option<SummaryFormat>,
    /// Extra named selections, as kolla's `[profiles]` section: name → regexes.
    pub profiles: Option<BTreeMap<String, Vec<String>>>,
    /// What templates see as `kolla_version`.
    pub kolla_version: Option<String>,
    /// What `base` checks `/etc/os-release` PRETTY_NAME against.
    pub supported_distro_name: Option<String>,
    /// A `repos.yaml` merged over the tree's.
    pub repos_yaml: Option<PathBuf>,
    /// Service users added to the tree's table: name → uid, gid, group.
    pub users: Option<BTreeMap<String, crate::tree::users::UserEntry>>,
    /// kolla's `rpm_setup_config`: `.rpm`/`.repo` files set up before any package is installed.
    pub rpm_setup_config: Option<Vec<String>>,
    /// kolla's pip index settings: each set one adds `ARG PIP_...` after the first `FROM`.
    pub apt_sources_list: Option<PathBuf>,
    pub apt_preferences: Option<PathBuf>,
    pub pip_index_url: Option<String>,
    pub pip_trusted_host: Option<String>,
    pub pip_extra_index_url: Option<String>,
    /// kolla's source options, carried to the source stage.
    pub openstack_branch: Option<String>,
    pub openstack_branch_slashed: Option<String>,
    pub debian_arch: Option<String>,
    pub patches_path: Option<PathBuf>,
    pub tarballs_base: Option<String>,
    pub locals_base: Option<PathBuf>,
    /// The podman service `--engine podman` names.
    pub podman_base_url: Option<String>,
}

/// One `[[engine]]` table of `build.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineEntry {
    pub url: String,
    /// Builds at once on this engine (default: `threads`).
    pub threads: Option<usize>,
    /// The engine's architecture (`x86_64`, `aarch64`); left out of a run for another arch.
    pub arch: Option<String>,
    /// TLS client files for a `tcp://`/`https://` engine started with `--tlsverify`: a directory
    /// laid out as Docker's `DOCKER_CERT_PATH` (`ca.pem`, `cert.pem`, `key.pem`).
    pub tls_dir: Option<PathBuf>,
}

impl FileConfig {
    /// Reads and validates a config file: TOML, or kolla's INI `kolla-build.conf` (see
    /// [`is_ini`]). Relative paths in a TOML file are resolved against its directory, so a config
    /// works from any current directory; in an INI file against the current directory, as kolla
    /// does. Warnings (kolla options this tool does not use) are kept in `warnings`.
    pub fn load(path: &Path) -> Result<FileConfig> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config_err = |message: ConfigError| Error::Config {
            path: path.to_path_buf(),
            message: message.to_string(),
        };
        if is_ini(path, &text) {
            let (mut config, warnings) = Self::parse_ini(&text).map_err(config_err)?;
            config.warnings = warnings
                .into_iter()
                .map(|warning| format!("{}: {warning}", path.display()))
                .collect();
            if let Ok(cwd) = std::env::current_dir() {
                config.resolve_paths(&cwd);
            }
            return Ok(config);
        }
        let mut config = Self::parse(&text).map_err(config_err)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(dir);
        Ok(config)
    }

    /// Reads kolla's INI configuration (oslo.config's format) for the options both tools share:
    /// `[DEFAULT]` keys (`_` or `-`), `[profiles]` (comma-separated regexes) and `[<name>-user]`
    /// sections (uid, gid, group). Returns the settings and warnings for kolla options and
    /// sections this tool accepts but does not use; any other key is an error.
    pub fn parse_ini(text: &str) -> std::result::Result<(FileConfig, Vec<String>), ConfigError> {
        let option = ini::ParseOption {
            enabled_quote: true,
            enabled_escape: false,
            enabled_indented_mutiline_value: true,
            enabled_preserve_key_leading_whitespace: false,
        };
        let ini = ini::Ini::load_from_str_opt(text, option).map_err(|e| e.to_string())?;
        let mut config = FileConfig::default();
        let mut warnings = Vec::new();
        for (section, props) in ini.iter() {
            match section {
                None | Some("DEFAULT") => {
                    // `a-b` and `a_b` are one option; a repeated key gives several values.
                    let mut keys: Vec<(String, Vec<&str>)> = Vec::new();
                    for (key, value) in props.iter() {
                        let key = key.trim().replace('-', "_");
                        match keys.iter_mut().find(|(k, _)| *k == key) {
                            Some((_, values)) => values.push(value),
                            None => keys.push((key, vec![value])),
                        }
                    }
                    for (key, values) in keys {
                        config
                            .set_ini_default(&key, &values, &mut warnings)
                            .map_err(|e| format!("[DEFAULT] {key}: {e}"))?;
                    }
                }
                Some("profiles") => {
                    let profiles = config.profiles.get_or_insert_with(BTreeMap::new);
                    for (name, value) in props.iter() {
                        profiles.insert(name.to_string(), ini_list(value));
                    }
                }
                Some(name) if name.ends_with("-user") => {
                    let user = name.trim_end_matches("-user");
                    let (mut uid, mut gid, mut group) = (None, None, None);
                    for (key, value) in props.iter() {
                        let number = || {
                            value
                                .trim()
                                .parse::<u32>()
                                .map_err(|_| format!("[{name}] {key}: `{value}` is not a number"))
                        };
                        match key {
                            "uid" => uid = Some(number()?),
                            "gid" => gid = Some(number()?),
                            "group" => group = Some(value.to_string()),
                            other => {
                                return Err(format!(
                                    "[{name}]: unknown key `{other}` (a user section takes uid, gid \
                                     and group)"
                                ).into());
                            }
                        }
                    }
                    let (Some(uid), Some(gid)) = (uid, gid) else {
                        return Err(format!(
                            "[{name}]: needs both `uid` and `gid` (this tool has no default ids \
                             for users missing from its table)"
                        )
                        .into());
                    };
                    config.users.get_or_insert_with(BTreeMap::new).insert(
                        user.to_string(),
                        crate::tree::users::UserEntry { uid, gid, group },
                    );
                }
                // Sources of images, plugins and additions: kept raw by `compat::load_config`;
                // one that names no image is reported by the build's source stage.
                Some(_) => {}
            }
        }
        Ok((config, warnings))
    }

    /// One `[DEFAULT]` key of kolla's INI file.
    fn set_ini_default(
        &mut self,
        key: &str,
        values: &[&str],
        warnings: &mut Vec<String>,
    ) -> std::result::Result<(), ConfigError> {
        let key = key.trim().replace('-', "_");
        if self.set_ini_text(&key, values) || self.set_ini_typed(&key, values)? {
            return Ok(());
        }
        unknown_ini_key(&key, warnings)
    }

    /// A `[DEFAULT]` key whose value is text, a path or a list of them (the last value, or all of
    /// a repeated key). Whether `key` is one.
    fn set_ini_text(&mut self, key: &str, values: &[&str]) -> bool {
        let value = values.last().copied().unwrap_or_default().trim();
        let text = || Some(value.to_string());
        let path = || Some(PathBuf::from(value));
        let many = || values.iter().map(|v| v.trim().to_string());
        let paths = || Some(many().map(PathBuf::from).collect());
        match key {
            "base_image" => self.base_image = text(),
            "base_tag" => self.base_tag = text(),
            "base_arch" => self.base_arch = text(),
            "namespace" => self.namespace = text(),
            "registry" => self.registry = text(),
            "tag" => self.tag = text(),
            "image_name_prefix" => self.image_name_prefix = text(),
            "openstack_release" => self.openstack_release = text(),
            "openstack_release_codename" => self.openstack_release_codename = text(),
            "maintainer" => self.maintainer = text(),
            "profile" => self.profile = Some(many().flat_map(|v| ini_list(&v)).collect()),
            "docker_dir" => self.docker_dir = paths(),
            "template_override" => self.template_override = paths(),
            "work_dir" => self.work_dir = path(),
            "logs_dir" => self.logs_dir = path(),
            "summary_json_file" => self.summary_json_file = path(),
            "repos_yaml" => self.repos_yaml = path().filter(|p| !p.as_os_str().is_empty()),
            "network_mode" => self.network_mode = text(),
            "rpm_setup_config" => self.rpm_setup_config = Some(ini_list(value)),
            "apt_sources_list" => self.apt_sources_list = path(),
            "apt_preferences" => self.apt_preferences = path(),
            "pip_index_url" => self.pip_index_url = text(),
            "pip_trusted_host" => self.pip_trusted_host = text(),
            "pip_extra_index_url" => self.pip_extra_index_url = text(),
            "openstack_branch" => self.openstack_branch = text(),
            "openstack_branch_slashed" => self.openstack_branch_slashed = text(),
            "debian_arch" => self.debian_arch = text(),
            "patches_path" => self.patches_path = path(),
            "tarballs_base" => self.tarballs_base = text(),
            "locals_base" => self.locals_base = path(),
            "podman_base_url" => self.podman_base_url = text(),
            "kolla_version" => self.kolla_version = text(),
            "supported_distro_name" => self.supported_distro_name = text(),
            _ => return false,
        }
        true
    }

    /// A `[DEFAULT]` key whose value must parse: a boolean, a number, one of a set of words, or
    /// build args. Whether `key` is one; an error for a value that does not parse.
    fn set_ini_typed(
        &mut self,
        key: &str,
        values: &[&str],
    ) -> std::result::Result<bool, ConfigError> {
        let value = values.last().copied().unwrap_or_default().trim();
        let flag = || ini_bool(value);
        match key {
            "base" => self.base = Some(ini_word(value)?),
            "format" => self.format = Some(ini_word(value)?),
            "enable_unbuildable" => self.enable_unbuildable = Some(flag()?),
            "skip_parents" => self.skip_parents = Some(flag()?),
            "skip_existing" => self.skip_existing = Some(flag()?),
            "clean_package_cache" => self.clean_package_cache = Some(flag()?),
            "use_dumb_init" => self.use_dumb_init = Some(flag()?),
            "docker_healthchecks" => self.docker_healthchecks = Some(flag()?),
            "pull" => self.pull = Some(flag()?),
            "cache" => self.no_cache = Some(!flag()?),
            "keep" => self.keep = Some(flag()?),
            "push" => self.push = Some(flag()?),
            "threads" => self.threads = Some(ini_number(value)?),
            "push_threads" => self.push_threads = Some(ini_number(value)?),
            "retries" => self.retries = Some(ini_number(value)?),
            "timeout" => self.timeout = Some(ini_number(value)?),
            "build_args" => {
                let mut args = BTreeMap::new();
                for pair in ini_list(value) {
                    let (k, v) = pair
                        .split_once(':')
                        .ok_or_else(|| format!("`{pair}` is not KEY:VALUE"))?;
                    args.insert(k.trim().to_string(), v.trim().to_string());
                }
                self.build_args = Some(args);
            }
            // kolla's engine name: the one engine of the run (see `cli::engine_url_of`)
            "engine" => {
                if !cli::is_engine_name(value) {
                    return Err(format!("`{value}` is not an engine (docker or podman)").into());
                }
                self.engine = Some(vec![EngineEntry {
                    url: value.to_string(),
                    threads: None,
                    arch: None,
                    tls_dir: None,
                }]);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Puts the command line's kolla switches and source options over the file's values: a
    /// switch turned off (`--noskip-parents`, `--cache`) must beat the file, which a CLI `bool`
    /// alone cannot; the source options reach the settings through the file's fields.
    pub fn take_cli_switches(&mut self, cli: &cli::Cli) {
        let set = |field: &mut Option<bool>, on: bool, off: bool| {
            if on || off {
                *field = Some(on);
            }
        };
        set(&mut self.skip_parents, cli.skip_parents, cli.noskip_parents);
        set(
            &mut self.skip_existing,
            cli.skip_existing,
            cli.noskip_existing,
        );
        set(
            &mut self.enable_unbuildable,
            cli.enable_unbuildable,
            cli.noenable_unbuildable,
        );
        set(&mut self.keep, cli.keep, cli.nokeep);
        set(&mut self.push, cli.push, cli.nopush);
        set(&mut self.no_cache, cli.no_cache, cli.cache);
        set(
            &mut self.use_dumb_init,
            cli.use_dumb_init,
            cli.nouse_dumb_init,
        );
        set(
            &mut self.docker_healthchecks,
            cli.docker_healthchecks,
            cli.nodocker_healthchecks,
        );
        if cli.nosummary {
            self.format = Some(SummaryFormat::None);
            self.summary_json_file = None;
        }
        let text = |field: &mut Option<String>, given: &Option<String>| {
            if given.is_some() {
                field.clone_from(given);
            }
        };
        text(&mut self.openstack_branch, &cli.openstack_branch);
        text(
            &mut self.openstack_branch_slashed,
            &cli.openstack_branch_slashed,
        );
        text(&mut self.debian_arch, &cli.debian_arch);
        text(&mut self.tarballs_base, &cli.tarballs_base);
        text(&mut self.podman_base_url, &cli.podman_base_url);
        if cli.patches_path.is_some() {
            self.patches_path.clone_from(&cli.patches_path);
        }
        if cli.locals_base.is_some() {
            self.locals_base.clone_from(&cli.locals_base);
        }
    }

    pub fn parse(text: &str) -> std::result::Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(e.to_string()))
    }

    pub(crate) fn resolve_paths(&mut self, dir: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        self.images_dir.iter_mut().for_each(resolve);
        self.repos_yaml.iter_mut().for_each(resolve);
        self.work_dir.iter_mut().for_each(resolve);
        self.cache_dir.iter_mut().for_each(resolve);
        self.logs_dir.iter_mut().for_each(resolve);
        self.export.iter_mut().for_each(resolve);
        self.summary_json_file.iter_mut().for_each(resolve);
        self.report.iter_mut().for_each(resolve);
        self.durations_from.iter_mut().for_each(resolve);
        self.patches_path.iter_mut().for_each(resolve);
        self.apt_sources_list.iter_mut().for_each(resolve);
        self.apt_preferences.iter_mut().for_each(resolve);
        self.locals_base.iter_mut().for_each(resolve);
        self.ca_certificates.iter_mut().flatten().for_each(resolve);
        self.docker_dir.iter_mut().flatten().for_each(resolve);
        self.template_override
            .iter_mut()
            .flatten()
            .for_each(resolve);
        self.engine
            .iter_mut()
            .flatten()
            .filter_map(|e| e.tls_dir.as_mut())
            .for_each(resolve);
    }
}

/// A `[DEFAULT]` key neither reader above takes: kolla's own options are a warning, anything else
/// an error with the nearest known key. (`config::options`' tests read the keys of the readers
/// from `set_ini_default` down to here: keep them in this order.)
fn unknown_ini_key(key: &str, warnings: &mut Vec<String>) -> std::result::Result<(), ConfigError> {
    if KOLLA_ONLY_OPTIONS.contains(&key) {
        warnings.push(format!(
            "kolla option `{key}` is not supported by this tool and is ignored"
        ));
        return Ok(());
    }
    let known = options::ini_keys().chain(KOLLA_ONLY_OPTIONS.iter().copied());
    let hint = crate::common::error::did_you_mean(key, known)
        .map(|best| format!("; did you mean `{best}`?"))
        .unwrap_or_default();
    Err(format!("unknown option `{key}`{hint}").into())
}

/// kolla options an INI file may hold that this tool does not use: a warning, not an error.
const KOLLA_ONLY_OPTIONS: &[&str] = &[
    "buildkit",
    "buildkit_builder",
    "platform",
    "squash",
    "squash_cleanup",
    "squash_tmp_dir",
    "summary",
    "distro_package_manager",
    "base_package_type",
    "allowed_to_fail",
    "list_images",
    "list_dependencies",
    "save_dependency",
    "template_only",
    "debug",
    "quiet",
    "config_dir",
    "config_file",
    "regex",
    "shell_completion",
];

/// oslo.config's boolean words.
fn ini_bool(value: &str) -> std::result::Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "on" | "yes" => Ok(true),
        "false" | "0" | "off" | "no" => Ok(false),
        other => {
            Err(format!("`{other}` is not a boolean (true/false, yes/no, on/off, 1/0)").into())
        }
    }
}

/// One of a set of words (a base distro, a summary format), as the TOML file spells it.
fn ini_word<T: serde::de::DeserializeOwned>(value: &str) -> std::result::Result<T, ConfigError> {
    toml::Value::String(value.to_string())
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError(e.to_string()))
}

fn ini_number<T: std::str::FromStr>(value: &str) -> std::result::Result<T, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("`{value}` is not a whole number").into())
}

/// oslo.config's list: comma-separated, items trimmed, empty items dropped.
fn ini_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether a config file is kolla's INI rather than TOML: a `.conf`, `.ini` or `.cfg` name, else
/// a first section header that TOML would not take for a table of ours (`[DEFAULT]`,
/// `[profiles]` followed by an unquoted list, `[<name>-user]`) or an unquoted `key = value`.
pub fn is_ini(path: &Path, text: &str) -> bool {
    match path.extension().and_then(|e| e.to_str()) {
        Some("conf" | "ini" | "cfg") => return true,
        Some("toml") => return false,
        _ => {}
    }
    if toml::from_str::<toml::Table>(text).is_ok() {
        return false;
    }
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .is_some_and(|first| {
            first == "[DEFAULT]"
                || first == "[profiles]"
                || first.ends_with("-user]")
                || first.split_once('=').is_some_and(|(_, v)| {
                    let v = v.trim();
                    !v.is_empty()
                        && !v.starts_with(['"', '\'', '[', '{'])
                        && v.parse::<f64>().is_err()
                        && !matches!(v, "true" | "false")
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each of `needles` is in one of `lines` (warnings, problems found).
    #[track_caller]
    pub(in crate::config) fn assert_mentions(lines: &[String], needles: &[&str]) {
        for needle in needles {
            assert!(
                lines.iter().any(|line| line.contains(needle)),
                "no line mentions {needle}: {lines:?}"
            );
        }
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = FileConfig::parse("base = \"debian\"\nbsae-tag = \"x\"\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("bsae-tag"), "{err}");
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let err = FileConfig::parse("\n\nthreads = \"four\"\n").unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("threads") || err.contains("integer"), "{err}");
    }

    #[test]
    fn bad_base_lists_valid_values() {
        let err = FileConfig::parse("base = \"arch\"\n").unwrap_err();
        assert!(err.contains("debian") && err.contains("rocky"), "{err}");
    }

    const KOLLA_CONF: &str = "\
# kolla-build.conf
[DEFAULT]
base = rocky
base_tag = 10
namespace = acme
image_name_prefix =
maintainer = Ops Team <ops@example.org>
clean_package_cache = False
template-override = /etc/kolla/a.j2
template_override = /etc/kolla/b.j2
build_args = HTTP_PROXY:http://proxy:3128, NO_PROXY:localhost
engine = docker
buildkit = true

[profiles]
gate = ^keystone, ^nova-api$
infra = cron,fluentd

[valkey-user]
uid = 42494
gid = 42494

[hacluster-user]
uid = 42486
gid = 42486
group = haclient

[keystone-base]
type = git
location = https://opendev.org/openstack/keystone
reference = stable/2024.1
";

    #[test]
    fn kolla_ini_maps_shared_options_profiles_and_users() {
        let (config, warnings) = FileConfig::parse_ini(KOLLA_CONF).unwrap();
        assert_eq!(config.base, Some(BaseDistro::Rocky));
        assert_eq!(config.base_tag.as_deref(), Some("10"));
        assert_eq!(config.namespace.as_deref(), Some("acme"));
        assert_eq!(config.image_name_prefix.as_deref(), Some(""));
        assert_eq!(
            config.maintainer.as_deref(),
            Some("Ops Team <ops@example.org>")
        );
        assert_eq!(config.clean_package_cache, Some(false));
        assert_eq!(
            config.template_override.unwrap(),
            [
                PathBuf::from("/etc/kolla/a.j2"),
                PathBuf::from("/etc/kolla/b.j2")
            ]
        );
        let args = config.build_args.unwrap();
        assert_eq!(args["HTTP_PROXY"], "http://proxy:3128");
        assert_eq!(args["NO_PROXY"], "localhost");
        let profiles = config.profiles.unwrap();
        assert_eq!(profiles["gate"], ["^keystone", "^nova-api$"]);
        assert_eq!(profiles["infra"], ["cron", "fluentd"]);
        let users = config.users.unwrap();
        assert_eq!(users["valkey"].uid, 42494);
        assert_eq!(users["hacluster"].group.as_deref(), Some("haclient"));
        assert_mentions(&warnings, &["`buildkit`"]);
        // kolla's source sections are the source stage's (compat::load_config keeps them):
        // no warning that they are ignored.
        assert!(
            !warnings.iter().any(|w| w.contains("[keystone-base]")),
            "{warnings:?}"
        );
        assert_eq!(config.engine.unwrap()[0].url, "docker");
        let err = FileConfig::parse_ini("[DEFAULT]\nengine = rkt\n").unwrap_err();
        assert!(
            err.contains("engine") && err.contains("docker or podman"),
            "{err}"
        );
    }

    #[test]
    fn kolla_ini_typo_is_an_error_with_a_suggestion() {
        let err = FileConfig::parse_ini("[DEFAULT]\nnamspace = acme\n").unwrap_err();
        assert!(
            err.contains("`namspace`") && err.contains("`namespace`"),
            "{err}"
        );
        let err = FileConfig::parse_ini("[DEFAULT]\nclean_package_cache = maybe\n").unwrap_err();
        assert!(
            err.contains("clean_package_cache") && err.contains("boolean"),
            "{err}"
        );
        let err = FileConfig::parse_ini("[nova-user]\nuid = 1\nshell = x\n").unwrap_err();
        assert!(
            err.contains("[nova-user]") && err.contains("`shell`"),
            "{err}"
        );
    }

    #[test]
    fn ini_is_detected_by_name_or_content() {
        assert!(is_ini(Path::new("kolla-build.conf"), "base = \"rocky\"\n"));
        assert!(is_ini(Path::new("x.ini"), ""));
        assert!(!is_ini(
            Path::new("build.toml"),
            "[DEFAULT]\nbase = rocky\n"
        ));
        assert!(is_ini(Path::new("config"), KOLLA_CONF));
        assert!(is_ini(Path::new("config"), "base = rocky\n"));
        assert!(!is_ini(
            Path::new("config"),
            "base = \"rocky\"\nthreads = 4\n"
        ));
        assert!(!is_ini(
            Path::new("config"),
            "[profiles]\ngate = [\"^keystone\"]\n"
        ));
    }

    #[test]
    fn relative_paths_resolve_against_the_file() {
        let mut config = FileConfig::parse("images-dir = \"trees/main\"\n").unwrap();
        config.resolve_paths(Path::new("/etc/kolla"));
        assert_eq!(
            config.images_dir.unwrap(),
            Path::new("/etc/kolla/trees/main")
        );
    }
}
