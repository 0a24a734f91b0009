//! Settings resolved once: CLI over `build.toml` (or `--config-file`) over defaults. This is the
//! only module that reads the process environment or looks for the project's data directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::error::{Error, Result};
use crate::common::types::{BaseDistro, InstallType, SummaryFormat, UndefinedMode};
use crate::common::types::{Credentials, DEFAULT_ENGINE_URL};
use crate::config::FileConfig;
use crate::config::cli::Cli;
use crate::report::event::Notice;
use crate::tree::releases::{ReleaseFacts, ReleaseTable};

// The defaults, from the table of options.
use crate::config::EngineEntry;
use crate::config::cli::{engine_url_of, is_engine_name};
use crate::config::options::{
    DEFAULT_BASE, DEFAULT_CLEAN_PACKAGE_CACHE, DEFAULT_DOCKER_HEALTHCHECKS, DEFAULT_INSTALL_TYPE,
    DEFAULT_LOCALS_BASE, DEFAULT_NETWORK_MODE, DEFAULT_PODMAN_BASE_URL, DEFAULT_PULL,
    DEFAULT_PUSH_THREADS, DEFAULT_RETRIES, DEFAULT_TARBALLS_BASE, DEFAULT_THREADS, DEFAULT_TIMEOUT,
    DEFAULT_USE_DUMB_INIT, ENGINE_URL_ENV,
};
pub use crate::config::options::{
    DEFAULT_MAINTAINER, DEFAULT_NAMESPACE, DEFAULT_OPENSTACK_CODENAME, DEFAULT_OPENSTACK_RELEASE,
    DEFAULT_PREFIX,
};

/// Everything that decides which images are rendered and how they are named.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Notes and warnings from reading the configuration, for the reporter.
    pub notices: Vec<Notice>,
    /// Where the project's `profiles/` live (a checkout or the installed data), if found.
    pub data_dir: Option<PathBuf>,
    /// The main template tree and the trees laid over it, in order.
    pub images_dir: PathBuf,
    pub docker_dirs: Vec<PathBuf>,
    pub template_overrides: Vec<PathBuf>,
    pub naming: Naming,
    /// What the tree's releases table says for the selected release, base and install type.
    pub release: Option<ReleaseFacts>,
    pub selection: SelectionSettings,
    pub undefined: UndefinedMode,
    /// What templates see as `kolla_version` (kolla's `LABEL kolla_version`).
    pub kolla_version: String,
    /// What `base` checks `/etc/os-release` PRETTY_NAME against (`supported_distro_name`).
    pub supported_distro_name: String,
    /// A `repos.yaml` merged over the tree's (kolla's `repos_yaml`), repository by repository.
    pub repos_yaml: Option<PathBuf>,
    /// Users added to (or replacing entries of) the tree's table: kolla's `[<name>-user]`.
    pub users: BTreeMap<String, crate::tree::users::UserEntry>,
    /// Lines templates get as `rpm_setup`, from kolla's `rpm_setup_config`.
    pub rpm_setup: Vec<String>,
    /// `ARG` lines inserted after the first `FROM` (kolla's `pip_index_url` and friends).
    pub pip_args: Vec<String>,
    /// kolla's source options, for the source stage (given, or kolla's defaults).
    pub sources: KollaSources,
    pub clean_package_cache: bool,
    pub use_dumb_init: bool,
    pub docker_healthchecks: bool,
    pub threads: usize,
    pub work_dir: Option<PathBuf>,
    pub actions: Actions,
    pub build: BuildSettings,
    pub quiet: bool,
    pub debug: bool,
    /// The process environment, handed to templates as `env`.
    pub env: BTreeMap<String, String>,
}

/// kolla's options about image sources (`--tarballs-base`, `--locals-base`, `--patches-path`,
/// `--openstack-branch`...), carried to the source stage.
#[derive(Debug, Clone, Default)]
pub struct KollaSources {
    /// Overrides of the branch kolla derives from the release (`stable-<release>`).
    pub openstack_branch: Option<String>,
    pub openstack_branch_slashed: Option<String>,
    /// Which sha256 of a `version` source applies (else from `base_arch`).
    pub debian_arch: Option<String>,
    pub patches_path: Option<PathBuf>,
    pub tarballs_base: String,
    pub locals_base: PathBuf,
}

/// Base, install type and the parts of an image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    pub base: BaseDistro,
    pub base_image: String,
    pub base_tag: String,
    pub base_arch: String,
    pub install_type: InstallType,
    pub registry: Option<String>,
    pub namespace: String,
    pub image_prefix: String,
    pub tag: String,
    pub openstack_release: String,
    pub openstack_release_codename: String,
    pub maintainer: String,
}

impl Naming {
    /// The namespace as templates see it: the registry is part of it, as in kolla.
    pub fn full_namespace(&self) -> String {
        match &self.registry {
            Some(registry) => format!("{registry}/{}", self.namespace),
            None => self.namespace.clone(),
        }
    }

    /// `{registry}/{namespace}/{prefix}{name}:{tag}`.
    pub fn reference(&self, image: &str) -> String {
        format!(
            "{}/{}{image}:{}",
            self.full_namespace(),
            self.image_prefix,
            self.tag
        )
    }

    pub fn debian_arch(&self) -> &str {
        match self.base_arch.as_str() {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct SelectionSettings {
    pub regexes: Vec<String>,
    pub profiles: Vec<String>,
    pub skip_parents: bool,
    pub enable_unbuildable: bool,
    /// Profiles defined in the config file, on top of `profiles/`.
    pub extra_profiles: BTreeMap<String, Vec<String>>,
}

/// How images are built, once rendered.
#[derive(Debug, Clone)]
pub struct BuildSettings {
    /// The first engine's URL (the only one's, without a pool).
    pub engine_url: String,
    /// The engines the run builds on: `--engine`/`[[engine]]`, else the one of `engine_url`.
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
    pub package_caches:
        BTreeMap<crate::common::package_cache::Kind, crate::common::package_cache::CacheUrl>,
    /// `--cache-dir`: the export's layer cache lives under it.
    pub cache_dir: Option<PathBuf>,
    pub retries: u32,
    pub push: bool,
    pub push_threads: usize,
    pub export: Option<PathBuf>,
    pub export_format: crate::common::types::ExportFormat,
    /// `--export-partial`: export what built even when some images did not.
    pub export_partial: bool,
    pub push_mode: crate::common::types::PushMode,
    /// For pushes: `KOLLA_REGISTRY_USERNAME`/`_PASSWORD`, else the Docker config file's entry.
    pub credentials: Option<Credentials>,
    pub timeout: Duration,
    pub skip_existing: bool,
    /// An earlier run's JSON summary: its build times weigh priorities and the pool's estimates.
    pub durations_from: Option<PathBuf>,
    pub logs_dir: Option<PathBuf>,
    pub summary_json_file: Option<PathBuf>,
    pub format: SummaryFormat,
}

/// One engine of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSpec {
    pub url: String,
    /// Builds at once on it.
    pub threads: usize,
    /// TLS client files (`ca.pem`, `cert.pem`, `key.pem`): the engine is spoken to over TLS.
    pub tls_dir: Option<PathBuf>,
}

/// Where TLS client files are looked for when an engine's URL asks for TLS but no `tls_dir`
/// names them, and whether `DOCKER_HOST` asks for TLS: Docker's own environment
/// (`DOCKER_CERT_PATH`, else `~/.docker`; `DOCKER_TLS_VERIFY`), so a shell set up for the
/// `docker` CLI works as it is.
struct TlsDefaults {
    cert_dir: PathBuf,
    verify: bool,
}

impl TlsDefaults {
    fn from_env(env: &BTreeMap<String, String>) -> TlsDefaults {
        let cert_dir = env
            .get("DOCKER_CERT_PATH")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| env.get("HOME").map(|h| Path::new(h).join(".docker")))
            .unwrap_or_else(|| PathBuf::from(".docker"));
        let verify = env.get("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty());
        TlsDefaults { cert_dir, verify }
    }

    /// The TLS files of `url`: the given directory, else the default one for an `https://` URL
    /// (or a `tcp://` one under `DOCKER_TLS_VERIFY`), else none (plain).
    fn for_url(&self, url: &str, given: Option<PathBuf>, verify_tcp: bool) -> Option<PathBuf> {
        let wants_tls = url.starts_with("https://") || (verify_tcp && url.starts_with("tcp://"));
        given.or_else(|| wants_tls.then(|| self.cert_dir.clone()))
    }
}

/// The engines of the run: `--engine` URLs (taking `threads` and `arch` from a `[[engine]]`
/// table of the same URL), else the file's `[[engine]]` tables, else the one engine of
/// `engine_url`. Engines of another arch than `base_arch` are left out, with a warning.
fn resolve_engines(
    cli: &[String],
    file: Option<Vec<crate::config::EngineEntry>>,
    engine_url: &str,
    threads: usize,
    base_arch: &str,
    tls: &TlsDefaults,
    notices: &mut Vec<Notice>,
) -> Result<Vec<EngineSpec>> {
    let file = file.unwrap_or_default();
    let entries: Vec<crate::config::EngineEntry> = if cli.is_empty() {
        file
    } else {
        cli.iter()
            .map(|url| {
                file.iter()
                    .find(|e| e.url == *url)
                    .cloned()
                    .unwrap_or(crate::config::EngineEntry {
                        url: url.clone(),
                        threads: None,
                        arch: None,
                        tls_dir: None,
                    })
            })
            .collect()
    };
    if entries.is_empty() {
        return Ok(vec![EngineSpec {
            url: engine_url.to_string(),
            threads,
            // DOCKER_TLS_VERIFY applies to the one engine of DOCKER_HOST, as in the docker CLI.
            tls_dir: tls.for_url(engine_url, None, tls.verify),
        }]);
    }
    let mut engines: Vec<EngineSpec> = Vec::new();
    for entry in entries {
        if entry.url.is_empty() {
            return Err(Error::Setting {
                key: "engine".into(),
                message: "an engine without a URL".into(),
            });
        }
        if engines.iter().any(|e| e.url == entry.url) {
            return Err(Error::Setting {
                key: "engine".into(),
                message: format!("`{}` is given twice", entry.url),
            });
        }
        if entry.threads == Some(0) {
            return Err(Error::Setting {
                key: "engine".into(),
                message: format!("`{}`: threads must be at least 1", entry.url),
            });
        }
        if let Some(arch) = entry.arch.as_deref().filter(|a| *a != base_arch) {
            notices.push(Notice::Warning(format!(
                "the engine at {} is {arch}, not {base_arch}: not used for this run",
                entry.url
            )));
            continue;
        }
        engines.push(EngineSpec {
            tls_dir: tls.for_url(&entry.url, entry.tls_dir, false),
            url: entry.url,
            threads: entry.threads.unwrap_or(threads),
        });
    }
    if engines.is_empty() {
        return Err(Error::Setting {
            key: "engine".into(),
            message: format!("no engine is {base_arch} (the `arch` of every `[[engine]]`)"),
        });
    }
    Ok(engines)
}

/// What the run is asked to do; several may be combined.
#[derive(Debug, Clone, Default)]
pub struct Actions {
    pub template_only: bool,
    pub list_images: bool,
    pub list_dependencies: bool,
    pub save_dependency: Option<PathBuf>,
}

impl Actions {
    pub fn builds(&self) -> bool {
        !(self.template_only
            || self.list_images
            || self.list_dependencies
            || self.save_dependency.is_some())
    }
}

impl Settings {
    /// Resolves the settings for this process: finds the data directory from the current
    /// directory (or the installed data) and reads the default `build.toml` there.
    pub fn resolve(mut cli: Cli) -> Result<Settings> {
        let cwd = std::env::current_dir().map_err(|source| Error::Read {
            path: PathBuf::from("."),
            source,
        })?;
        // `--images-dir` naming a tree of ours is a data directory too (its build.toml, profiles).
        let data_dir = find_data_dir(&cwd).or_else(|| {
            let dir = cwd.join(cli.images_dir.as_ref()?);
            is_our_tree(&dir).then_some(dir)
        });
        // kolla's own tree: kolla's configuration files and its release's defaults.
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let kolla_config = crate::compat::load_config(&mut cli, &cwd, home.as_deref())?;
        let kolla_files = kolla_config.as_ref().map(|(_, files)| files.clone());
        let mut config = match (cli.config_file.as_slice(), &data_dir, kolla_config) {
            (_, _, Some((config, _))) => config,
            ([path], _, None) => FileConfig::load(path)?,
            ([_, _, ..], _, None) => {
                return Err(Error::Setting {
                    key: "config-file".into(),
                    message: "several --config-file are read for kolla's own tree only; \
                              give this tree one file"
                        .into(),
                });
            }
            ([], Some(dir), None) if dir.join("build.toml").is_file() => {
                FileConfig::load(&dir.join("build.toml"))?
            }
            _ => FileConfig::default(),
        };
        let mut notices: Vec<Notice> = config.warnings.drain(..).map(Notice::Warning).collect();
        if let Some(kolla) =
            crate::compat::apply_defaults(&cli, &mut config, &cwd, data_dir.as_deref())?
        {
            notices.push(Notice::Note(crate::compat::note(
                &kolla,
                kolla_files.as_deref(),
            )));
        }
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let mut settings = Self::merge(cli, config, data_dir, env, &cwd)?;
        settings.notices.splice(0..0, notices);
        Ok(settings)
    }

    /// The pure part of `resolve`: CLI over file over defaults.
    pub fn merge(
        cli: Cli,
        file: FileConfig,
        data_dir: Option<PathBuf>,
        env: BTreeMap<String, String>,
        cwd: &Path,
    ) -> Result<Settings> {
        let mut file = file;
        file.take_cli_switches(&cli);
        let base = cli.base.or(file.base).unwrap_or(DEFAULT_BASE);
        let install_type = cli
            .install_type
            .or(file.install_type)
            .unwrap_or(DEFAULT_INSTALL_TYPE);
        let images_dir = match cli.images_dir.or(file.images_dir) {
            Some(dir) => cwd.join(dir),
            None => data_dir.clone().ok_or_else(|| Error::NoTree {
                searched: format!(
                    "`{}` and its parents, and the installed data",
                    cwd.display()
                ),
            })?,
        };
        // The tree's releases table (base/releases.toml) sets the defaults that follow from the
        // release; a tree without one (kolla's) gets the built-in defaults.
        let asked_release = cli.openstack_release.or(file.openstack_release);
        let release = match ReleaseTable::load(&images_dir)? {
            Some(table) => Some(table.facts(asked_release.as_deref(), base, install_type)?),
            None => None,
        };
        // What a setting neither given nor in the file becomes: the release table's row for
        // this base, else the built-in defaults.
        let (default_release, default_image, default_tag, default_codename) = match &release {
            Some(facts) => (
                facts.name.clone(),
                facts.base_image.clone(),
                facts.base_tag.clone(),
                facts.codename.clone(),
            ),
            None => (
                DEFAULT_OPENSTACK_RELEASE.to_string(),
                base.default_image().to_string(),
                base.default_tag().to_string(),
                DEFAULT_OPENSTACK_CODENAME.to_string(),
            ),
        };
        let openstack_release = asked_release.unwrap_or(default_release);
        let prefix_template = cli
            .image_name_prefix
            .or(file.image_name_prefix)
            .unwrap_or_else(|| DEFAULT_PREFIX.to_string());
        let registry = cli.registry.or(file.registry).filter(|r| !r.is_empty());
        let naming = Naming {
            base,
            base_image: cli.base_image.or(file.base_image).unwrap_or(default_image),
            base_tag: cli.base_tag.or(file.base_tag).unwrap_or(default_tag),
            base_arch: cli
                .base_arch
                .or(file.base_arch)
                .unwrap_or_else(|| std::env::consts::ARCH.to_string()),
            install_type,
            registry,
            namespace: cli
                .namespace
                .or(file.namespace)
                .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()),
            image_prefix: prefix_template
                .replace("{base}", base.as_str())
                .replace("{install_type}", install_type.as_str()),
            tag: cli
                .tag
                .or(file.tag)
                .unwrap_or_else(|| openstack_release.clone()),
            openstack_release_codename: cli
                .openstack_release_codename
                .or(file.openstack_release_codename)
                .unwrap_or(default_codename),
            openstack_release,
            maintainer: cli
                .maintainer
                .or(file.maintainer)
                .unwrap_or_else(|| DEFAULT_MAINTAINER.to_string()),
        };
        validate_naming(&naming)?;

        let mut docker_dirs = file.docker_dir.unwrap_or_default();
        docker_dirs.extend(cli.docker_dir.into_iter().map(|d| cwd.join(d)));
        let mut template_overrides = file.template_override.unwrap_or_default();
        template_overrides.extend(cli.template_override.into_iter().map(|f| cwd.join(f)));

        let threads = cli.threads.or(file.threads).unwrap_or(DEFAULT_THREADS);
        if threads == 0 {
            return Err(Error::Setting {
                key: "threads".into(),
                message: "must be at least 1".into(),
            });
        }
        let mut build_args = file.build_args.unwrap_or_default();
        for arg in &cli.build_args {
            build_args.extend(parse_build_args(arg)?);
        }
        let mut ca_certificates = file.ca_certificates.unwrap_or_default();
        ca_certificates.extend(cli.ca_certificate.iter().map(|f| cwd.join(f)));
        let mut package_caches = BTreeMap::new();
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
            package_caches.insert(kind, url);
        }
        let cache_dir = cli
            .cache_dir
            .map(|d| cwd.join(d))
            .or(file.cache_dir)
            .or_else(|| {
                env.get("XDG_CACHE_HOME")
                    .filter(|d| !d.is_empty())
                    .map(PathBuf::from)
                    .or_else(|| env.get("HOME").map(|h| Path::new(h).join(".cache")))
                    .map(|d| d.join("kolla-build"))
            });
        let engine_urls_given = cli.engine.iter().any(|e| !is_engine_name(e));
        if engine_urls_given && cli.engine_url.is_some() {
            return Err(Error::Setting {
                key: "engine".into(),
                message: "give the engines with `--engine` (repeatable) or the one engine with \
                          `--engine-url`, not both"
                    .into(),
            });
        }
        let engine_url = cli
            .engine_url
            .or(file.engine_url)
            .or_else(|| env.get(ENGINE_URL_ENV).cloned())
            .unwrap_or_else(|| DEFAULT_ENGINE_URL.to_string());
        // kolla's `--engine docker|podman` name an engine URL
        let podman_url = file
            .podman_base_url
            .clone()
            .unwrap_or_else(|| DEFAULT_PODMAN_BASE_URL.to_string());
        let given_engines: Vec<String> = cli
            .engine
            .iter()
            .map(|e| engine_url_of(e, &engine_url, &podman_url))
            .collect();
        let mut notices = Vec::new();
        let engines = resolve_engines(
            &given_engines,
            file.engine.map(|entries| {
                (entries.into_iter())
                    .map(|e| EngineEntry {
                        url: engine_url_of(&e.url, &engine_url, &podman_url),
                        ..e
                    })
                    .collect()
            }),
            &engine_url,
            threads,
            &naming.base_arch,
            &TlsDefaults::from_env(&env),
            &mut notices,
        )?;
        let build = BuildSettings {
            engine_url: engines[0].url.clone(),
            engines,
            pull: if cli.no_pull {
                false
            } else {
                cli.pull || file.pull.unwrap_or(DEFAULT_PULL)
            },
            bootstrap_base: cli.bootstrap_base || file.bootstrap_base.unwrap_or(false),
            bootstrap_mirror: cli.bootstrap_mirror.or(file.bootstrap_mirror),
            build_args,
            network_mode: cli
                .network_mode
                .or(file.network_mode)
                .unwrap_or_else(|| DEFAULT_NETWORK_MODE.into()),
            no_cache: cli.no_cache || file.no_cache.unwrap_or(false),
            keep: cli.keep || file.keep.unwrap_or(false),
            ca_certificates,
            package_caches,
            cache_dir,
            retries: cli.retries.or(file.retries).unwrap_or(DEFAULT_RETRIES),
            push: cli.push || file.push.unwrap_or(false),
            push_threads: cli
                .push_threads
                .or(file.push_threads)
                .unwrap_or(DEFAULT_PUSH_THREADS)
                .max(1),
            export: cli.export.map(|p| cwd.join(p)).or(file.export),
            export_format: cli.export_format.or(file.export_format).unwrap_or_default(),
            export_partial: cli.export_partial,
            push_mode: cli.push_mode.unwrap_or_default(),
            credentials: registry_credentials(naming.registry.as_deref(), &env),
            timeout: Duration::from_secs(cli.timeout.or(file.timeout).unwrap_or(DEFAULT_TIMEOUT)),
            skip_existing: cli.skip_existing || file.skip_existing.unwrap_or(false),
            durations_from: cli
                .durations_from
                .map(|f| cwd.join(f))
                .or(file.durations_from),
            logs_dir: cli.logs_dir.map(|d| cwd.join(d)).or(file.logs_dir),
            summary_json_file: cli
                .summary_json_file
                .map(|f| cwd.join(f))
                .or(file.summary_json_file),
            format: cli.format.or(file.format).unwrap_or_default(),
        };
        validate_build(&build)?;
        // kolla's tree is written for Jinja2's lenient undefined; ours is checked strictly.
        let undefined = cli.undefined.or(file.undefined).unwrap_or(
            match crate::tree::Layout::detect(&images_dir) {
                crate::tree::Layout::Kolla => UndefinedMode::Lenient,
                crate::tree::Layout::Split => UndefinedMode::Strict,
            },
        );
        // kolla's tree checks the full PRETTY_NAME of the release kolla targets; ours the prefix.
        let supported_distro_name = cli
            .supported_distro_name
            .or(file.supported_distro_name)
            .unwrap_or_else(|| {
                let kolla = match crate::tree::Layout::detect(&images_dir) {
                    crate::tree::Layout::Kolla => naming.base.kolla_pretty_name(&naming.base_tag),
                    crate::tree::Layout::Split => None,
                };
                kolla.unwrap_or(naming.base.supported_name()).to_string()
            });
        let profiles = if cli.profile.is_empty() {
            file.profile.unwrap_or_default()
        } else {
            cli.profile
        };
        Ok(Settings {
            notices,
            data_dir,
            images_dir,
            docker_dirs,
            template_overrides,
            naming,
            release,
            selection: SelectionSettings {
                regexes: cli.regex,
                profiles,
                skip_parents: cli.skip_parents || file.skip_parents.unwrap_or(false),
                enable_unbuildable: cli.enable_unbuildable
                    || file.enable_unbuildable.unwrap_or(false),
                extra_profiles: file.profiles.unwrap_or_default(),
            },
            undefined,
            supported_distro_name,
            kolla_version: cli
                .kolla_version
                .or(file.kolla_version)
                .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string()),
            repos_yaml: cli.repos_yaml.map(|p| cwd.join(p)).or(file.repos_yaml),
            users: file.users.unwrap_or_default(),
            rpm_setup: rpm_setup_lines(&file.rpm_setup_config.unwrap_or_default())?,
            pip_args: [
                ("PIP_INDEX_URL", &file.pip_index_url),
                ("PIP_TRUSTED_HOST", &file.pip_trusted_host),
                ("PIP_EXTRA_INDEX_URL", &file.pip_extra_index_url),
            ]
            .into_iter()
            .filter(|(_, v)| v.as_deref().is_some_and(|v| !v.is_empty()))
            .map(|(k, _)| format!("ARG {k}"))
            .collect(),
            sources: KollaSources {
                openstack_branch: file.openstack_branch,
                openstack_branch_slashed: file.openstack_branch_slashed,
                debian_arch: file.debian_arch,
                patches_path: file.patches_path.map(|p| cwd.join(p)),
                tarballs_base: file
                    .tarballs_base
                    .unwrap_or_else(|| DEFAULT_TARBALLS_BASE.to_string()),
                locals_base: cwd.join(
                    file.locals_base
                        .as_deref()
                        .unwrap_or(Path::new(DEFAULT_LOCALS_BASE)),
                ),
            },
            clean_package_cache: file
                .clean_package_cache
                .unwrap_or(DEFAULT_CLEAN_PACKAGE_CACHE),
            use_dumb_init: file.use_dumb_init.unwrap_or(DEFAULT_USE_DUMB_INIT),
            docker_healthchecks: file
                .docker_healthchecks
                .unwrap_or(DEFAULT_DOCKER_HEALTHCHECKS),
            threads,
            work_dir: cli.work_dir.map(|d| cwd.join(d)).or(file.work_dir),
            actions: Actions {
                template_only: cli.template_only,
                list_images: cli.list_images,
                list_dependencies: cli.list_dependencies,
                save_dependency: cli.save_dependency.map(|f| cwd.join(f)),
            },
            build,
            quiet: cli.quiet,
            debug: cli.debug,
            env: template_env(env),
        })
    }
}

/// Registry credentials from the environment or the Docker config file (`docker login`).
fn registry_credentials(
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

/// kolla's `rpm_setup_config`: `.rpm` files are installed, `.repo` files fetched or copied.
fn rpm_setup_lines(entries: &[String]) -> Result<Vec<String>> {
    entries
        .iter()
        .map(|entry| {
            if entry.ends_with(".rpm") {
                Ok(format!("RUN dnf -y install {entry}"))
            } else if entry.ends_with(".repo") {
                if entry.starts_with("http") {
                    let name = entry.rsplit('/').next().unwrap_or(entry);
                    Ok(format!("RUN curl -L {entry} -o /etc/yum.repos.d/{name}"))
                } else {
                    Ok(format!("COPY {entry} /etc/yum.repos.d/"))
                }
            } else if entry.is_empty() {
                Ok(String::new())
            } else {
                Err(Error::Setting {
                    key: "rpm_setup_config".into(),
                    message: format!("`{entry}` is neither a .rpm nor a .repo file"),
                })
            }
        })
        .collect()
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

/// The most retries a build or push may have: each waits longer (up to a minute), and a failure
/// that survives ten is not transient.
pub const MAX_RETRIES: u32 = 10;

fn validate_build(build: &BuildSettings) -> Result<()> {
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

/// The environment as templates see it (`env`): without the registry credentials the tool reads.
fn template_env(env: BTreeMap<String, String>) -> BTreeMap<String, String> {
    env.into_iter()
        .filter(|(key, _)| !key.starts_with("KOLLA_REGISTRY_"))
        .collect()
}

fn validate_naming(naming: &Naming) -> Result<()> {
    let bad = |key: &str, message: &str| {
        Err(Error::Setting {
            key: key.to_string(),
            message: message.to_string(),
        })
    };
    if !matches!(naming.base_arch.as_str(), "x86_64" | "aarch64") {
        return bad("base-arch", "expected `x86_64` or `aarch64`");
    }
    let grammar =
        |key: &str, checked: std::result::Result<(), crate::common::reference::ReferenceError>| {
            checked.map_err(|message| Error::Setting {
                key: key.to_string(),
                message: format!("{message} (the Docker reference grammar)"),
            })
        };
    grammar(
        "namespace",
        crate::common::reference::path(&naming.namespace),
    )?;
    if let Some(registry) = &naming.registry {
        grammar("registry", crate::common::reference::domain(registry))?;
    }
    // The prefix is the start of every image's name: with a name after it, it must be one.
    if let Err(message) =
        crate::common::reference::path_component(&format!("{}a", naming.image_prefix))
    {
        return Err(Error::Setting {
            key: "image-name-prefix".into(),
            message: format!(
                "`{}` cannot start an image name: {message} (the Docker reference grammar)",
                naming.image_prefix
            ),
        });
    }
    grammar("tag", crate::common::reference::tag(&naming.tag))?;
    Ok(())
}

/// The project's data directory: a checkout found from `cwd` upwards, else the data installed
/// beside the binary (`<prefix>/share/kolla-build`). Nothing else: never the directory the
/// binary was compiled in (a copied binary would read another tree's config silently).
/// A template tree in this project's layout (it carries build.toml and profiles/ beside it).
fn is_our_tree(dir: &Path) -> bool {
    dir.join("base/Dockerfile.j2").is_file() && dir.join("images").is_dir()
}

fn find_data_dir(cwd: &Path) -> Option<PathBuf> {
    if let Some(dir) = cwd.ancestors().find(|dir| is_our_tree(dir)) {
        return Some(dir.to_path_buf());
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("share/kolla-build")))
        .filter(|dir| is_our_tree(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn merge(args: &[&str], file: &str) -> Result<Settings> {
        let cli = Cli::try_parse_from(std::iter::once("kolla-build").chain(args.iter().copied()))
            .unwrap();
        let file = FileConfig::parse(file).unwrap();
        Settings::merge(
            cli,
            file,
            Some("/data".into()),
            BTreeMap::new(),
            Path::new("/cwd"),
        )
    }

    #[test]
    fn cli_overrides_file_overrides_defaults() {
        let s = merge(
            &["--base", "ubuntu"],
            "base = \"rocky\"\nnamespace = \"acme\"\n",
        )
        .unwrap();
        assert_eq!(s.naming.base, BaseDistro::Ubuntu);
        assert_eq!(s.naming.namespace, "acme");
        assert_eq!(s.naming.base_tag, "24.04");
        assert_eq!(s.naming.tag, DEFAULT_OPENSTACK_RELEASE);
    }

    /// Each engine's URL and threads.
    fn engine_urls(s: &Settings) -> Vec<(&str, usize)> {
        s.build
            .engines
            .iter()
            .map(|e| (e.url.as_str(), e.threads))
            .collect()
    }

    #[test]
    fn one_engine_is_the_default_and_engines_replace_it() {
        let s = merge(&["--engine-url", "tcp://127.0.0.1:2375"], "").unwrap();
        assert_eq!(
            s.build.engines,
            [EngineSpec {
                url: "tcp://127.0.0.1:2375".into(),
                threads: DEFAULT_THREADS,
                tls_dir: None,
            }]
        );
        let file = "threads = 3\nengine-url = \"unix:///x.sock\"\n\
                    [[engine]]\nurl = \"unix:///a.sock\"\nthreads = 2\narch = \"x86_64\"\n\
                    [[engine]]\nurl = \"ssh://b\"\n\
                    [[engine]]\nurl = \"ssh://arm\"\narch = \"aarch64\"\n";
        let s = merge(&["--base-arch", "x86_64"], file).unwrap();
        let urls = engine_urls(&s);
        assert_eq!(urls, [("unix:///a.sock", 2), ("ssh://b", 3)]);
        assert_eq!(s.build.engine_url, "unix:///a.sock");
        assert!(
            s.notices
                .iter()
                .any(|n| matches!(n, Notice::Warning(w) if w.contains("ssh://arm"))),
            "{:?}",
            s.notices
        );
        // --engine picks engines; a table of the same URL gives its threads.
        let s = merge(
            &[
                "--base-arch",
                "x86_64",
                "--engine",
                "ssh://c",
                "--engine",
                "unix:///a.sock",
            ],
            file,
        )
        .unwrap();
        let urls = engine_urls(&s);
        assert_eq!(urls, [("ssh://c", 3), ("unix:///a.sock", 2)]);
    }

    /// Each engine's URL and TLS directory, merged with `env` as the environment.
    fn engine_tls(
        args: &[&str],
        file: &str,
        env: &[(&str, &str)],
    ) -> Vec<(String, Option<PathBuf>)> {
        let cli = Cli::try_parse_from(std::iter::once("kolla-build").chain(args.iter().copied()))
            .unwrap();
        let mut file = FileConfig::parse(file).unwrap();
        file.resolve_paths(Path::new("/etc/kb"));
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let s = Settings::merge(cli, file, Some("/data".into()), env, Path::new("/cwd")).unwrap();
        s.build
            .engines
            .into_iter()
            .map(|e| (e.url, e.tls_dir))
            .collect()
    }

    #[test]
    fn engines_speak_tls_with_docker_s_files_or_the_given_ones() {
        let home = [("HOME", "/home/op")];
        // https:// asks for TLS: Docker's DOCKER_CERT_PATH, else ~/.docker.
        assert_eq!(
            engine_tls(&["--engine-url", "https://h:2376"], "", &home),
            [("https://h:2376".into(), Some("/home/op/.docker".into()))]
        );
        assert_eq!(
            engine_tls(
                &["--engine-url", "https://h:2376"],
                "",
                &[("HOME", "/home/op"), ("DOCKER_CERT_PATH", "/certs")]
            ),
            [("https://h:2376".into(), Some("/certs".into()))]
        );
        // tcp:// is plain unless DOCKER_TLS_VERIFY says otherwise, as for the docker CLI.
        assert_eq!(
            engine_tls(&["--engine-url", "tcp://h:2375"], "", &home),
            [("tcp://h:2375".into(), None)]
        );
        assert_eq!(
            engine_tls(
                &[],
                "",
                &[
                    ("HOME", "/r"),
                    ("DOCKER_HOST", "tcp://h:2376"),
                    ("DOCKER_TLS_VERIFY", "1")
                ]
            ),
            [("tcp://h:2376".into(), Some("/r/.docker".into()))]
        );
        // A table's tls_dir (relative to build.toml) is taken, also for an --engine of its URL.
        let file = "[[engine]]\nurl = \"tcp://a:2376\"\ntls_dir = \"tls/a\"\n\
                    [[engine]]\nurl = \"unix:///b.sock\"\n";
        let expected = [
            (
                "tcp://a:2376".to_string(),
                Some(PathBuf::from("/etc/kb/tls/a")),
            ),
            ("unix:///b.sock".to_string(), None),
        ];
        assert_eq!(engine_tls(&[], file, &home), expected);
        assert_eq!(
            engine_tls(
                &["--engine", "tcp://a:2376", "--engine", "unix:///b.sock"],
                file,
                &home
            ),
            expected
        );
    }

    #[test]
    fn engines_are_checked_naming_the_option() {
        for (args, file, needle) in [
            (
                &["--engine", "ssh://a", "--engine-url", "ssh://b"][..],
                "",
                "not both",
            ),
            (
                &["--engine", "ssh://a", "--engine", "ssh://a"][..],
                "",
                "twice",
            ),
            (
                &[][..],
                "[[engine]]\nurl = \"ssh://a\"\nthreads = 0\n",
                "at least 1",
            ),
            (
                &["--base-arch", "x86_64"][..],
                "[[engine]]\nurl = \"ssh://a\"\narch = \"aarch64\"\n",
                "no engine is x86_64",
            ),
        ] {
            let err = merge(args, file).unwrap_err().to_string();
            assert!(err.contains("`engine`") && err.contains(needle), "{err}");
        }
    }

    #[test]
    fn default_prefix_is_base_and_install_type() {
        let s = merge(&["-b", "centos", "-t", "source"], "").unwrap();
        assert_eq!(s.naming.image_prefix, "centos-source-");
        assert_eq!(
            s.naming.reference("keystone"),
            "kolla/centos-source-keystone:2025.1"
        );
    }

    #[test]
    fn registry_is_part_of_the_namespace() {
        let s = merge(&["--registry", "127.0.0.1:4000", "--tag", "nightly"], "").unwrap();
        assert_eq!(s.naming.full_namespace(), "127.0.0.1:4000/kolla");
        assert_eq!(
            s.naming.reference("base"),
            "127.0.0.1:4000/kolla/debian-binary-base:nightly"
        );
    }

    #[test]
    fn bad_tag_is_rejected_with_the_rule() {
        let err = merge(&["--tag", "no spaces"], "").unwrap_err().to_string();
        assert!(
            err.contains("`tag`") && err.contains("[A-Za-z0-9_.-]"),
            "{err}"
        );
    }

    #[test]
    fn build_args_accept_both_syntaxes_and_engine_url_follows_docker_host() {
        let cli = Cli::try_parse_from([
            "kolla-build",
            "--build-args",
            "A=1,B:2",
            "--build-args",
            "C=x=y",
        ])
        .unwrap();
        let env = BTreeMap::from([(
            "DOCKER_HOST".to_string(),
            "tcp://127.0.0.1:2375".to_string(),
        )]);
        let s = Settings::merge(
            cli,
            FileConfig::default(),
            Some("/d".into()),
            env,
            Path::new("/"),
        )
        .unwrap();
        let args: Vec<_> = s
            .build
            .build_args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(args, ["A=1", "B=2", "C=x=y"]);
        assert_eq!(s.build.engine_url, "tcp://127.0.0.1:2375");
        assert!(merge(&["--build-args", "novalue"], "").is_err());
    }

    #[test]
    fn credentials_come_from_env_or_the_docker_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"auths": {"127.0.0.1:4000": {"auth": "dXNlcjpzM2NyZXQ="}}}"#,
        )
        .unwrap();
        let env = BTreeMap::from([(
            "DOCKER_CONFIG".to_string(),
            dir.path().display().to_string(),
        )]);
        let creds = registry_credentials(Some("127.0.0.1:4000"), &env).unwrap();
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("user", "s3cret")
        );
        assert!(!format!("{creds:?}").contains("s3cret"), "never printed");
        assert!(registry_credentials(Some("other:5000"), &env).is_none());
        let env = BTreeMap::from([
            ("KOLLA_REGISTRY_USERNAME".to_string(), "u".to_string()),
            ("KOLLA_REGISTRY_PASSWORD".to_string(), "p".to_string()),
        ]);
        assert_eq!(registry_credentials(None, &env).unwrap().username, "u");
    }

    #[test]
    fn no_pull_wins_over_the_file() {
        assert!(!merge(&["--no-pull"], "pull = true\n").unwrap().build.pull);
        assert!(merge(&[], "").unwrap().build.pull);
    }

    #[test]
    fn profiles_from_cli_replace_the_file_default() {
        let s = merge(&["-p", "gate"], "profile = [\"default\"]\n").unwrap();
        assert_eq!(s.selection.profiles, vec!["gate"]);
        let s = merge(&[], "profile = [\"default\"]\n").unwrap();
        assert_eq!(s.selection.profiles, vec!["default"]);
    }
}
