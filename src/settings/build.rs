//! The build, push and export sections: how images are built once rendered, where they go, and
//! what the run writes besides them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::common::error::{Error, Result};
use crate::common::package_cache::{CacheUrl, Kind};
use crate::common::types::{Credentials, ExportFormat, PushMode, SummaryFormat};
use crate::config::FileConfig;
use crate::config::cli::Cli;
use crate::config::options::{DEFAULT_NETWORK_MODE, DEFAULT_PULL, DEFAULT_PUSH_THREADS};
use crate::config::options::{DEFAULT_RETRIES, DEFAULT_TIMEOUT};
use crate::settings::engines::EngineSpec;

/// How images are built, once rendered.
#[derive(Debug, Clone)]
pub struct BuildSettings {
    /// The engines the run builds on: `--engine`/`[[engine]]`, else the one of `--engine-url`.
    pub engines: Vec<EngineSpec>,
    pub pull: bool,
    pub bootstrap_base: bool,
    pub bootstrap_mirror: Option<String>,
    pub build_args: BTreeMap<String, String>,
    pub network_mode: String,
    pub no_cache: bool,
    pub keep: bool,
    pub ca_certificates: Vec<PathBuf>,
    /// `--package-cache`: the caches builds download through, by kind.
    pub package_caches: BTreeMap<Kind, CacheUrl>,
    /// `--cache-dir`: the export's layer cache lives under it.
    pub cache_dir: Option<PathBuf>,
    pub retries: u32,
    pub push: bool,
    pub push_threads: usize,
    pub export: Option<PathBuf>,
    pub export_format: ExportFormat,
    /// `--export-partial`: export what built even when some images did not.
    pub export_partial: bool,
    pub push_mode: PushMode,
    /// For pushes: `KOLLA_REGISTRY_USERNAME`/`_PASSWORD`, else the Docker config file's entry.
    pub credentials: Option<Credentials>,
    pub timeout: Duration,
    pub skip_existing: bool,
    /// An earlier run's JSON summary: its build times weigh priorities and the pool's estimates.
    pub durations_from: Option<PathBuf>,
    pub logs_dir: Option<PathBuf>,
    pub summary_json_file: Option<PathBuf>,
    /// `--report`: the timeline of the run, written beside the summary on every exit.
    pub report: Option<PathBuf>,
    pub format: SummaryFormat,
    /// `SOURCE_DATE_EPOCH` (the reproducible-builds convention, which BuildKit honours too): the
    /// images' `org.opencontainers.image.created`, else the run's start. With it, the same inputs
    /// give the same image, so the engine's layer cache serves its children in any namespace.
    pub source_date_epoch: Option<SystemTime>,
}

/// The most retries a build or push may have: each waits longer (up to a minute), and a failure
/// that survives ten is not transient.
pub const MAX_RETRIES: u32 = 10;

/// The build section over `engines`; `registry` is where pushes go (their credentials).
/// Paths on the command line are relative to `cwd` (the file's are already absolute).
pub(super) fn resolve(
    cli: &Cli,
    file: &FileConfig,
    env: &BTreeMap<String, String>,
    cwd: &Path,
    engines: Vec<EngineSpec>,
    registry: Option<&str>,
) -> Result<BuildSettings> {
    let path = |cli: &Option<PathBuf>, file: &Option<PathBuf>| {
        cli.as_ref().map(|p| cwd.join(p)).or(file.clone())
    };
    let flag = |cli: bool, file: Option<bool>| cli || file.unwrap_or(false);
    let mut ca_certificates = file.ca_certificates.clone().unwrap_or_default();
    ca_certificates.extend(cli.ca_certificate.iter().map(|f| cwd.join(f)));
    let build = BuildSettings {
        engines,
        pull: !cli.no_pull && (cli.pull || file.pull.unwrap_or(DEFAULT_PULL)),
        bootstrap_base: flag(cli.bootstrap_base, file.bootstrap_base),
        bootstrap_mirror: cli
            .bootstrap_mirror
            .clone()
            .or(file.bootstrap_mirror.clone()),
        build_args: build_args(cli, file)?,
        network_mode: cli
            .network_mode
            .clone()
            .or(file.network_mode.clone())
            .unwrap_or_else(|| DEFAULT_NETWORK_MODE.into()),
        no_cache: flag(cli.no_cache, file.no_cache),
        keep: flag(cli.keep, file.keep),
        ca_certificates,
        package_caches: package_caches(cli, file)?,
        cache_dir: path(&cli.cache_dir, &file.cache_dir).or_else(|| default_cache_dir(env)),
        retries: cli.retries.or(file.retries).unwrap_or(DEFAULT_RETRIES),
        push: flag(cli.push, file.push),
        push_threads: cli
            .push_threads
            .or(file.push_threads)
            .unwrap_or(DEFAULT_PUSH_THREADS)
            .max(1),
        export: path(&cli.export, &file.export),
        export_format: cli.export_format.or(file.export_format).unwrap_or_default(),
        export_partial: cli.export_partial,
        push_mode: cli.push_mode.unwrap_or_default(),
        credentials: registry_credentials(registry, env),
        timeout: Duration::from_secs(cli.timeout.or(file.timeout).unwrap_or(DEFAULT_TIMEOUT)),
        skip_existing: flag(cli.skip_existing, file.skip_existing),
        durations_from: path(&cli.durations_from, &file.durations_from),
        logs_dir: path(&cli.logs_dir, &file.logs_dir),
        summary_json_file: path(&cli.summary_json_file, &file.summary_json_file),
        report: path(&cli.report, &file.report),
        format: cli.format.or(file.format).unwrap_or_default(),
        source_date_epoch: source_date_epoch(env)?,
    };
    validate(&build)?;
    Ok(build)
}

/// `SOURCE_DATE_EPOCH`: whole seconds since 1970 (empty is unset, as reproducible-builds.org
/// says).
fn source_date_epoch(env: &BTreeMap<String, String>) -> Result<Option<SystemTime>> {
    match env.get("SOURCE_DATE_EPOCH").map(|v| v.trim()) {
        None | Some("") => Ok(None),
        Some(value) => value
            .parse::<u64>()
            .map(|secs| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)))
            .map_err(|_| Error::Setting {
                key: "SOURCE_DATE_EPOCH".into(),
                message: format!(
                    "`{value}` is not a number of seconds since 1970 (e.g. `git log -1 --format=%ct`)"
                ),
            }),
    }
}

/// The file's build args, then each `--build-args` in order (a later one wins).
fn build_args(cli: &Cli, file: &FileConfig) -> Result<BTreeMap<String, String>> {
    let mut build_args = file.build_args.clone().unwrap_or_default();
    for arg in &cli.build_args {
        build_args.extend(parse_build_args(arg)?);
    }
    Ok(build_args)
}

/// `K=V`, `K=V,K2=V2`, or kolla's `K:V`.
fn parse_build_args(arg: &str) -> Result<Vec<(String, String)>> {
    arg.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .or_else(|| pair.split_once(':'))
                .ok_or_else(|| Error::Setting {
                    key: "build-args".into(),
                    message: format!("`{pair}` is not K=V"),
                })?;
            Ok((key.trim().to_string(), value.to_string()))
        })
        .collect()
}

/// `--package-cache KIND=URL` entries of the file, then of the command line (a later one wins).
fn package_caches(cli: &Cli, file: &FileConfig) -> Result<BTreeMap<Kind, CacheUrl>> {
    let mut caches = BTreeMap::new();
    for spec in file
        .package_cache
        .iter()
        .flatten()
        .chain(&cli.package_cache)
    {
        let (kind, url) =
            crate::common::package_cache::parse(spec).map_err(|e| Error::Setting {
                key: "package-cache".into(),
                message: e.to_string(),
            })?;
        caches.insert(kind, url);
    }
    Ok(caches)
}

/// `$XDG_CACHE_HOME/kolla-build`, else `~/.cache/kolla-build`.
fn default_cache_dir(env: &BTreeMap<String, String>) -> Option<PathBuf> {
    env.get("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| env.get("HOME").map(|h| Path::new(h).join(".cache")))
        .map(|d| d.join("kolla-build"))
}

/// Registry credentials from the environment or the Docker config file (`docker login`).
pub(super) fn registry_credentials(
    registry: Option<&str>,
    env: &BTreeMap<String, String>,
) -> Option<Credentials> {
    if let (Some(username), Some(password)) = (
        env.get("KOLLA_REGISTRY_USERNAME"),
        env.get("KOLLA_REGISTRY_PASSWORD"),
    ) {
        return Some(Credentials {
            username: username.clone(),
            password: password.clone(),
        });
    }
    let registry = registry?;
    let config = env
        .get("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| env.get("HOME").map(|home| Path::new(home).join(".docker")))?
        .join("config.json");
    let text = std::fs::read_to_string(config).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let auth = json["auths"][registry]["auth"].as_str()?;
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .ok()?;
    let (username, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some(Credentials {
        username: username.to_string(),
        password: password.to_string(),
    })
}

fn validate(build: &BuildSettings) -> Result<()> {
    if build.retries > MAX_RETRIES {
        return Err(Error::Setting {
            key: "retries".into(),
            message: format!("{} is more than {MAX_RETRIES}", build.retries),
        });
    }
    if build.timeout.is_zero() {
        return Err(Error::Setting {
            key: "timeout".into(),
            message: "0 would stop every build at once; give at least 1 second".into(),
        });
    }
    Ok(())
}
