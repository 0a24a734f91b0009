//! Settings resolved once: CLI over `build.toml` (or `--config-file`) over defaults. This is the
//! only module that reads the process environment or looks for the project's data directory.
//!
//! As ripgrep's `HiArgs::from_low_args`: the command line and the file (the low level) go in,
//! each section is resolved by its own module (`naming`, `engines`, `build`, and here what
//! templates see), and `checks` checks the run as a whole. Every error the user's input can
//! cause is found here, before any template is rendered or engine called.

mod build;
mod checks;
mod engines;
mod naming;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::error::{Error, Result};
use crate::common::types::UndefinedMode;
use crate::compat::{Kolla, KollaTree};
use crate::config::FileConfig;
use crate::config::cli::Cli;
use crate::config::options::{
    DEFAULT_CLEAN_PACKAGE_CACHE, DEFAULT_DOCKER_HEALTHCHECKS, DEFAULT_LOCALS_BASE,
    DEFAULT_TARBALLS_BASE, DEFAULT_USE_DUMB_INIT,
};
use crate::report::event::Notice;
use crate::tree::releases::ReleaseFacts;

pub use crate::config::options::{
    DEFAULT_MAINTAINER, DEFAULT_NAMESPACE, DEFAULT_OPENSTACK_CODENAME, DEFAULT_OPENSTACK_RELEASE,
    DEFAULT_PREFIX,
};
pub use build::{BuildSettings, MAX_RETRIES};
pub use engines::EngineSpec;
pub use naming::Naming;

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
    /// For kolla's own tree: the kolla release it belongs to (detected once, here).
    pub kolla: Option<Kolla>,
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
    /// Files that replace `base`'s own in its context: kolla's `apt_sources_list` (as
    /// `sources.list`) and `apt_preferences` (as `apt_preferences`).
    pub base_replacements: Vec<(String, PathBuf)>,
    pub clean_package_cache: bool,
    pub use_dumb_init: bool,
    pub docker_healthchecks: bool,
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
    /// kolla's source sections as written (`[keystone-base]`, `[<image>-plugin-*]`...).
    pub sections: BTreeMap<String, BTreeMap<String, String>>,
}

/// kolla's source options: given, else kolla's defaults; paths relative to `cwd`.
fn kolla_sources(file: &FileConfig, cwd: &Path) -> KollaSources {
    KollaSources {
        openstack_branch: file.openstack_branch.clone(),
        openstack_branch_slashed: file.openstack_branch_slashed.clone(),
        debian_arch: file.debian_arch.clone(),
        // An empty value is no path, as for kolla (whose test is the string's truth).
        patches_path: (file.patches_path.as_ref())
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| cwd.join(p)),
        tarballs_base: (file.tarballs_base.clone())
            .unwrap_or_else(|| DEFAULT_TARBALLS_BASE.to_string()),
        sections: file.source_sections.clone(),
        locals_base: cwd
            .join((file.locals_base.as_deref()).unwrap_or(Path::new(DEFAULT_LOCALS_BASE))),
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

/// The low-level inputs (ripgrep's `LowArgs`): the command line, the file's values under it,
/// and the surroundings of the process.
struct Sources {
    cli: Cli,
    file: FileConfig,
    data_dir: Option<PathBuf>,
    env: BTreeMap<String, String>,
}

impl Settings {
    /// Resolves the settings for this process: finds the data directory from the current
    /// directory (or the installed data) and reads the default `build.toml` there; for kolla's
    /// tree, kolla's configuration files and its release's defaults.
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
        // kolla's own tree named on the command line: its configuration files are kolla's. The
        // tree is looked at once: here when the command line names it, else below.
        let named_tree = cli
            .images_dir
            .as_ref()
            .map(|dir| KollaTree::find(&cwd.join(dir)));
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let kolla_config = match named_tree.as_ref().and_then(Option::as_ref) {
            Some(tree) => Some(crate::compat::load_config(
                &mut cli,
                &cwd,
                home.as_deref(),
                tree,
            )?),
            None => None,
        };
        let kolla_files = kolla_config.as_ref().map(|(_, files)| files.clone());
        let mut file = load_file(&cli, data_dir.as_deref(), kolla_config.map(|(c, _)| c))?;
        let mut notices: Vec<Notice> = file.warnings.drain(..).map(Notice::Warning).collect();
        let images_dir = images_dir(&cli, &file, data_dir.as_deref(), &cwd)?;
        let tree = named_tree.unwrap_or_else(|| KollaTree::find(&images_dir));
        let kolla = match &tree {
            Some(tree) => Some(crate::compat::apply_defaults(&cli, &mut file, tree)?),
            None => None,
        };
        if let Some(kolla) = &kolla {
            notices.push(Notice::Note(crate::compat::note(
                kolla,
                kolla_files.as_deref(),
            )));
        }
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let sources = Sources {
            cli,
            file,
            data_dir,
            env,
        };
        let mut settings = Self::from_sources(sources, &cwd, images_dir, kolla)?;
        settings.notices.splice(0..0, notices);
        Ok(settings)
    }

    /// The pure part of `resolve`: CLI over file over defaults (kolla's release of a kolla tree
    /// is found here, as `resolve` would).
    pub fn merge(
        cli: Cli,
        file: FileConfig,
        data_dir: Option<PathBuf>,
        env: BTreeMap<String, String>,
        cwd: &Path,
    ) -> Result<Settings> {
        let images_dir = images_dir(&cli, &file, data_dir.as_deref(), cwd)?;
        let given = cli
            .kolla_version
            .as_deref()
            .or(file.kolla_version.as_deref());
        let kolla = KollaTree::find(&images_dir).map(|tree| tree.kolla(given));
        let sources = Sources {
            cli,
            file,
            data_dir,
            env,
        };
        Self::from_sources(sources, cwd, images_dir, kolla)
    }

    /// Every section resolved by its own module, then the run checked as a whole.
    fn from_sources(
        sources: Sources,
        cwd: &Path,
        images_dir: PathBuf,
        kolla: Option<Kolla>,
    ) -> Result<Settings> {
        let Sources {
            cli,
            mut file,
            data_dir,
            env,
        } = sources;
        // The command line's kolla switches (`--noX`) and source options over the file's.
        file.take_cli_switches(&cli);
        let (naming, release) = naming::resolve(&cli, &file, &images_dir)?;
        let mut notices = Vec::new();
        let kolla_sources = kolla_sources(&file, cwd);
        if let Some(path) = (kolla_sources.patches_path.as_ref()).filter(|p| !p.is_dir()) {
            // kolla ignores it silently; the images are still built as kolla builds them (an
            // empty `patches/`, `kolla_patch` finding no series), so a warning, not a refusal.
            notices.push(Notice::Warning(format!(
                "`patches_path` ({}) is not a directory: no patches are applied; create it \
                 with a folder per image holding a `series`, or correct the path",
                path.display()
            )));
        }
        let engines = engines::resolve(&cli, &file, &env, &naming.base_arch, &mut notices)?;
        let build = build::resolve(&cli, &file, &env, cwd, engines, naming.registry.as_deref())?;
        let (docker_dirs, template_overrides) = tree_layers(&cli, &file, cwd);
        let settings = Settings {
            notices,
            data_dir,
            docker_dirs,
            template_overrides,
            release,
            kolla,
            selection: selection(&cli, &file),
            undefined: undefined_mode(&cli, &file, &images_dir),
            supported_distro_name: supported_distro_name(&cli, &file, &images_dir, &naming),
            kolla_version: cli
                .kolla_version
                .clone()
                .or(file.kolla_version.clone())
                .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string()),
            repos_yaml: cli.repos_yaml.map(|p| cwd.join(p)).or(file.repos_yaml),
            users: file.users.unwrap_or_default(),
            rpm_setup: rpm_setup_lines(&file.rpm_setup_config.unwrap_or_default())?,
            pip_args: pip_args(&[
                ("PIP_INDEX_URL", &file.pip_index_url),
                ("PIP_TRUSTED_HOST", &file.pip_trusted_host),
                ("PIP_EXTRA_INDEX_URL", &file.pip_extra_index_url),
            ]),
            sources: kolla_sources,
            base_replacements: [
                ("sources.list", &file.apt_sources_list),
                ("apt_preferences", &file.apt_preferences),
            ]
            .into_iter()
            .filter_map(|(name, path)| Some((name.to_string(), path.clone()?)))
            .collect(),
            clean_package_cache: file
                .clean_package_cache
                .unwrap_or(DEFAULT_CLEAN_PACKAGE_CACHE),
            use_dumb_init: file.use_dumb_init.unwrap_or(DEFAULT_USE_DUMB_INIT),
            docker_healthchecks: file
                .docker_healthchecks
                .unwrap_or(DEFAULT_DOCKER_HEALTHCHECKS),
            work_dir: cli.work_dir.map(|d| cwd.join(d)).or(file.work_dir),
            actions: Actions {
                template_only: cli.template_only,
                list_images: cli.list_images,
                list_dependencies: cli.list_dependencies,
                save_dependency: cli.save_dependency.map(|f| cwd.join(f)),
            },
            images_dir,
            naming,
            build,
            quiet: cli.quiet,
            debug: cli.debug,
            env: template_env(env),
        };
        checks::check(&settings)?;
        Ok(settings)
    }
}

/// The configuration file of the run: kolla's (already read, for kolla's tree), else the one
/// `--config-file` names, else the data directory's `build.toml`, else none.
fn load_file(
    cli: &Cli,
    data_dir: Option<&Path>,
    kolla_config: Option<FileConfig>,
) -> Result<FileConfig> {
    match (cli.config_file.as_slice(), data_dir, kolla_config) {
        (_, _, Some(config)) => Ok(config),
        ([path], _, None) => FileConfig::load(path),
        ([_, _, ..], _, None) => Err(Error::Setting {
            key: "config-file".into(),
            message: "several --config-file are read for kolla's own tree only; \
                      give this tree one file"
                .into(),
        }),
        ([], Some(dir), None) if dir.join("build.toml").is_file() => {
            FileConfig::load(&dir.join("build.toml"))
        }
        _ => Ok(FileConfig::default()),
    }
}

/// The main template tree: `--images-dir` (or the file's), else the data directory.
fn images_dir(
    cli: &Cli,
    file: &FileConfig,
    data_dir: Option<&Path>,
    cwd: &Path,
) -> Result<PathBuf> {
    match cli.images_dir.as_ref().or(file.images_dir.as_ref()) {
        Some(dir) => Ok(cwd.join(dir)),
        None => data_dir
            .map(Path::to_path_buf)
            .ok_or_else(|| Error::NoTree {
                searched: format!(
                    "`{}` and its parents, and the installed data",
                    cwd.display()
                ),
            }),
    }
}

/// The trees laid over the main one (`--docker-dir`) and the template overrides: the file's,
/// then the command line's.
fn tree_layers(cli: &Cli, file: &FileConfig, cwd: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut docker_dirs = file.docker_dir.clone().unwrap_or_default();
    docker_dirs.extend(cli.docker_dir.iter().map(|d| cwd.join(d)));
    let mut template_overrides = file.template_override.clone().unwrap_or_default();
    template_overrides.extend(cli.template_override.iter().map(|f| cwd.join(f)));
    (docker_dirs, template_overrides)
}

fn selection(cli: &Cli, file: &FileConfig) -> SelectionSettings {
    SelectionSettings {
        regexes: cli.regex.clone(),
        // Profiles on the command line replace the file's.
        profiles: if cli.profile.is_empty() {
            file.profile.clone().unwrap_or_default()
        } else {
            cli.profile.clone()
        },
        skip_parents: cli.skip_parents || file.skip_parents.unwrap_or(false),
        enable_unbuildable: cli.enable_unbuildable || file.enable_unbuildable.unwrap_or(false),
        extra_profiles: file.profiles.clone().unwrap_or_default(),
    }
}

/// kolla's tree is written for Jinja2's lenient undefined; ours is checked strictly.
fn undefined_mode(cli: &Cli, file: &FileConfig, images_dir: &Path) -> UndefinedMode {
    cli.undefined
        .or(file.undefined)
        .unwrap_or(match crate::tree::Layout::detect(images_dir) {
            crate::tree::Layout::Kolla => UndefinedMode::Lenient,
            crate::tree::Layout::Split => UndefinedMode::Strict,
        })
}

/// kolla's tree checks the full PRETTY_NAME of the release kolla targets; ours the prefix.
fn supported_distro_name(
    cli: &Cli,
    file: &FileConfig,
    images_dir: &Path,
    naming: &Naming,
) -> String {
    cli.supported_distro_name
        .clone()
        .or(file.supported_distro_name.clone())
        .unwrap_or_else(|| {
            let kolla = match crate::tree::Layout::detect(images_dir) {
                crate::tree::Layout::Kolla => naming.base.kolla_pretty_name(&naming.base_tag),
                crate::tree::Layout::Split => None,
            };
            kolla.unwrap_or(naming.base.supported_name()).to_string()
        })
}

/// One `ARG` line per pip index setting that is set (kolla's `pip_index_url` and friends).
fn pip_args(settings: &[(&str, &Option<String>)]) -> Vec<String> {
    settings
        .iter()
        .filter(|(_, v)| v.as_deref().is_some_and(|v| !v.is_empty()))
        .map(|(k, _)| format!("ARG {k}"))
        .collect()
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

/// The environment as templates see it (`env`): without the registry credentials the tool reads.
fn template_env(env: BTreeMap<String, String>) -> BTreeMap<String, String> {
    env.into_iter()
        .filter(|(key, _)| !key.starts_with("KOLLA_REGISTRY_"))
        .collect()
}

/// A template tree in this project's layout (it carries build.toml and profiles/ beside it).
fn is_our_tree(dir: &Path) -> bool {
    dir.join("base/Dockerfile.j2").is_file() && dir.join("images").is_dir()
}

/// The project's data directory: a checkout found from `cwd` upwards, else the data installed
/// beside the binary (`<prefix>/share/kolla-build`). Nothing else: never the directory the
/// binary was compiled in (a copied binary would read another tree's config silently).
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
    use super::build::registry_credentials;
    use super::*;
    use crate::common::types::BaseDistro;
    use crate::config::options::DEFAULT_THREADS;
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
        // A pool hands images over through a registry.
        let pool = ["--base-arch", "x86_64", "--registry", "127.0.0.1:4000"];
        let s = merge(&pool, file).unwrap();
        let urls = engine_urls(&s);
        assert_eq!(urls, [("unix:///a.sock", 2), ("ssh://b", 3)]);
        assert_eq!(s.build.engines[0].url, "unix:///a.sock");
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
                "--registry",
                "127.0.0.1:4000",
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
        // A pool hands images over through a registry.
        let pool = ["kolla-build", "--registry", "127.0.0.1:4000"];
        let cli = Cli::try_parse_from(pool.into_iter().chain(args.iter().copied())).unwrap();
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
        assert_eq!(s.build.engines[0].url, "tcp://127.0.0.1:2375");
        assert!(merge(&["--build-args", "novalue"], "").is_err());
    }

    #[test]
    fn source_date_epoch_sets_the_creation_time_and_a_bad_one_is_named() {
        let with = |value: Option<&str>| {
            let env = value
                .map(|v| BTreeMap::from([("SOURCE_DATE_EPOCH".to_string(), v.to_string())]))
                .unwrap_or_default();
            let cli = Cli::try_parse_from(["kolla-build"]).unwrap();
            Settings::merge(
                cli,
                FileConfig::default(),
                Some("/d".into()),
                env,
                Path::new("/"),
            )
            .map(|s| s.build.source_date_epoch)
        };
        assert_eq!(with(None).unwrap(), None);
        assert_eq!(with(Some("")).unwrap(), None);
        assert_eq!(
            with(Some("1700000000")).unwrap(),
            Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000))
        );
        let err = with(Some("yesterday")).unwrap_err().to_string();
        assert!(
            err.contains("SOURCE_DATE_EPOCH") && err.contains("`yesterday`"),
            "{err}"
        );
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
    fn kolla_s_release_is_found_with_the_tree_and_carried() {
        // kolla 23's layout: <site-packages>/kolla/docker beside kolla-23.0.1.dist-info.
        let site = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let path = site.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("kolla/docker/base/Dockerfile.j2", "FROM x\n");
        write("kolla/template/repos.yaml", "");
        write(
            "kolla-23.0.1.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: kolla\nVersion: 23.0.1\n",
        );
        let tree = site.path().join("kolla/docker");
        let tree = tree.to_str().unwrap();
        let detected = merge(&["--images-dir", tree], "").unwrap();
        let kolla = detected.kolla.expect("a kolla tree");
        assert_eq!(
            (kolla.version.as_str(), kolla.release.major),
            ("23.0.1", 23)
        );
        assert!(
            kolla.origin.starts_with("detected from"),
            "{}",
            kolla.origin
        );
        assert!(kolla.installation.is_some_and(|i| i.package.is_some()));
        // A version given wins over the installation's; the installation is still known.
        let given = merge(&["--images-dir", tree, "--kolla-version", "22.2.0"], "").unwrap();
        let kolla = given.kolla.expect("a kolla tree");
        assert_eq!(
            (kolla.version.as_str(), kolla.release.major),
            ("22.2.0", 22)
        );
        assert!(kolla.installation.is_some());
        // A tree of this project's layout has none.
        assert!(merge(&[], "").unwrap().kolla.is_none());
    }

    #[test]
    fn profiles_from_cli_replace_the_file_default() {
        let s = merge(&["-p", "gate"], "profile = [\"default\"]\n").unwrap();
        assert_eq!(s.selection.profiles, vec!["gate"]);
        let s = merge(&[], "profile = [\"default\"]\n").unwrap();
        assert_eq!(s.selection.profiles, vec!["default"]);
    }
}
