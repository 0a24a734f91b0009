//! The command line, as close to the flags as possible (the "low level" arguments). Options shared
//! with the Python kolla-build keep its names and short forms; `settings` resolves them. A field
//! says how its flag parses and where `--help` lists it; its help and default are in
//! [`options::OPTIONS`], the one table of options.

use std::path::PathBuf;

use clap::Parser;

use super::options;
use crate::common::types::{BaseDistro, InstallType, SummaryFormat, UndefinedMode};

#[derive(Debug, Default, Parser)]
#[command(
    name = "kolla-build",
    version,
    about = "Build OpenStack container images from kolla-dialect Dockerfile templates",
    long_about = "Build OpenStack container images from kolla-dialect Dockerfile templates.\n\n\
        Templates under base/ and images/ are rendered for one base distro and install type, \
        ordered by the parent named in each FROM line, and built in dependency order.\n\
        Settings come from build.toml (or --config-file); flags override it.",
    after_help = "Examples:\n  \
        kolla-build --base debian -t binary --template-only --work-dir out keystone\n  \
        kolla-build --profile default --list-images\n  \
        kolla-build -b ubuntu --list-dependencies '^nova'\n  \
        kolla-build --bootstrap-base --ca-certificate /usr/local/share/ca-certificates/proxy.crt -p gate\n\n\
        Exit status:\n  \
        0    every selected image built, fresh or skipped (and pushed/exported as asked)\n  \
        1    a bad input (configuration, template, selection), the engine or registry \
        unreachable, or an image failed (the summary says which)\n  \
        2    an internal error: a bug in kolla-build, please report it\n  \
        128+N  stopped by signal N (130 for Ctrl-C, 143 for SIGTERM); finished images are kept",
    mut_args = options::with_help,
    // argparse (kolla's parser) takes any unambiguous prefix of a flag (`--network`)
    infer_long_args = true,
    // and a single-valued flag given twice takes the last value
    args_override_self = true
)]
pub struct Cli {
    #[arg(value_name = "REGEX")]
    pub regex: Vec<String>,

    #[arg(long, value_name = "PATH", help_heading = "Configuration")]
    pub config_file: Vec<PathBuf>,
    #[arg(long, value_name = "DIR", help_heading = "Configuration")]
    pub config_dir: Vec<PathBuf>,

    #[arg(short = 'b', long, value_enum, help_heading = "Naming")]
    pub base: Option<BaseDistro>,
    #[arg(long, value_name = "IMAGE", help_heading = "Naming")]
    pub base_image: Option<String>,
    #[arg(long, value_name = "TAG", help_heading = "Naming")]
    pub base_tag: Option<String>,
    #[arg(long, value_name = "ARCH", help_heading = "Naming")]
    pub base_arch: Option<String>,
    #[arg(short = 't', long, value_enum, help_heading = "Naming")]
    pub install_type: Option<InstallType>,
    #[arg(short = 'n', long, help_heading = "Naming")]
    pub namespace: Option<String>,
    #[arg(long, value_name = "HOST:PORT", help_heading = "Naming")]
    pub registry: Option<String>,
    #[arg(long, help_heading = "Naming")]
    pub tag: Option<String>,
    #[arg(long, value_name = "PREFIX", help_heading = "Naming")]
    pub image_name_prefix: Option<String>,
    #[arg(long, value_name = "RELEASE", help_heading = "Naming")]
    pub openstack_release: Option<String>,
    #[arg(long, value_name = "NAME", help_heading = "Naming")]
    pub openstack_release_codename: Option<String>,
    #[arg(long, help_heading = "Naming")]
    pub maintainer: Option<String>,
    #[arg(long, value_name = "BRANCH", help_heading = "Naming")]
    pub openstack_branch: Option<String>,
    #[arg(long, value_name = "BRANCH", help_heading = "Naming")]
    pub openstack_branch_slashed: Option<String>,

    #[arg(
        short = 'p',
        long = "profile",
        value_name = "NAME",
        help_heading = "Selection"
    )]
    pub profile: Vec<String>,
    #[arg(long, overrides_with = "noskip_parents", help_heading = "Selection")]
    pub skip_parents: bool,
    #[arg(
        long,
        overrides_with = "noenable_unbuildable",
        help_heading = "Selection"
    )]
    pub enable_unbuildable: bool,
    #[arg(long, overrides_with = "nolist_images", help_heading = "Selection")]
    pub list_images: bool,
    #[arg(
        short = 'l',
        long,
        overrides_with = "nolist_dependencies",
        help_heading = "Selection"
    )]
    pub list_dependencies: bool,
    #[arg(long, value_name = "FILE", help_heading = "Selection")]
    pub save_dependency: Option<PathBuf>,

    #[arg(long, overrides_with = "notemplate_only", help_heading = "Templates")]
    pub template_only: bool,
    #[arg(long, value_name = "DIR", help_heading = "Templates")]
    pub work_dir: Option<PathBuf>,
    #[arg(long, value_name = "DIR", help_heading = "Templates")]
    pub images_dir: Option<PathBuf>,
    #[arg(
        short = 'D',
        long = "docker-dir",
        value_name = "DIR",
        help_heading = "Templates"
    )]
    pub docker_dir: Vec<PathBuf>,
    #[arg(
        long = "template-override",
        value_name = "FILE",
        help_heading = "Templates"
    )]
    pub template_override: Vec<PathBuf>,
    #[arg(long, value_name = "VERSION", help_heading = "Templates")]
    pub kolla_version: Option<String>,
    #[arg(long, value_name = "NAME", help_heading = "Templates")]
    pub supported_distro_name: Option<String>,
    #[arg(long, value_name = "FILE", help_heading = "Templates")]
    pub repos_yaml: Option<PathBuf>,
    #[arg(long, value_enum, value_name = "MODE", help_heading = "Templates")]
    pub undefined: Option<UndefinedMode>,
    #[arg(long, overrides_with = "nouse_dumb_init", help_heading = "Templates")]
    pub use_dumb_init: bool,
    #[arg(
        long,
        overrides_with = "nodocker_healthchecks",
        help_heading = "Templates"
    )]
    pub docker_healthchecks: bool,
    #[arg(long, value_name = "ARCH", value_parser = ["amd64", "arm64"], help_heading = "Templates")]
    pub debian_arch: Option<String>,
    #[arg(long, value_name = "DIR", help_heading = "Templates")]
    pub patches_path: Option<PathBuf>,
    #[arg(long, value_name = "URL", help_heading = "Templates")]
    pub tarballs_base: Option<String>,
    #[arg(long, value_name = "DIR", help_heading = "Templates")]
    pub locals_base: Option<PathBuf>,

    #[arg(short = 'T', long, value_name = "N", help_heading = "Build")]
    pub threads: Option<usize>,
    #[arg(long, value_name = "URL", help_heading = "Build")]
    pub engine_url: Option<String>,
    #[arg(
        long = "engine",
        value_name = "docker|podman|URL",
        help_heading = "Build"
    )]
    pub engine: Vec<String>,
    #[arg(long, value_name = "URL", help_heading = "Build")]
    pub podman_base_url: Option<String>,
    #[arg(long, overrides_with = "no_pull", help_heading = "Build")]
    pub pull: bool,
    #[arg(
        long,
        alias = "nopull",
        overrides_with = "pull",
        help_heading = "Build"
    )]
    pub no_pull: bool,
    #[arg(long, help_heading = "Build")]
    pub bootstrap_base: bool,
    #[arg(long, value_name = "URL", help_heading = "Build")]
    pub bootstrap_mirror: Option<String>,
    #[arg(long = "build-args", value_name = "K=V", help_heading = "Build")]
    pub build_args: Vec<String>,
    #[arg(
        long,
        alias = "network_mode",
        value_name = "MODE",
        help_heading = "Build"
    )]
    pub network_mode: Option<String>,
    #[arg(
        long,
        alias = "nocache",
        overrides_with = "cache",
        help_heading = "Build"
    )]
    pub no_cache: bool,
    #[arg(long, overrides_with = "no_cache", help_heading = "Build")]
    pub cache: bool,
    #[arg(long, overrides_with = "nokeep", help_heading = "Build")]
    pub keep: bool,
    #[arg(long = "ca-certificate", value_name = "FILE", help_heading = "Build")]
    pub ca_certificate: Vec<PathBuf>,
    #[arg(long, value_name = "KIND=URL", help_heading = "Build")]
    pub package_cache: Vec<String>,
    #[arg(long, value_name = "DIR", help_heading = "Build")]
    pub cache_dir: Option<PathBuf>,
    #[arg(long, overrides_with = "nopush", help_heading = "Build")]
    pub push: bool,
    #[arg(long, value_name = "N", help_heading = "Build")]
    pub push_threads: Option<usize>,
    #[arg(long, value_name = "PATH", help_heading = "Build")]
    pub export: Option<PathBuf>,
    #[arg(long, value_enum, value_name = "FORMAT", help_heading = "Build")]
    pub export_format: Option<crate::common::types::ExportFormat>,
    #[arg(long, help_heading = "Build")]
    pub export_partial: bool,
    #[arg(long, value_enum, value_name = "MODE", help_heading = "Build")]
    pub push_mode: Option<crate::common::types::PushMode>,
    #[arg(short = 'r', long, value_name = "N", help_heading = "Build")]
    pub retries: Option<u32>,
    #[arg(long, value_name = "SECS", help_heading = "Build")]
    pub timeout: Option<u64>,
    #[arg(long, overrides_with = "noskip_existing", help_heading = "Build")]
    pub skip_existing: bool,
    #[arg(long, value_name = "FILE", help_heading = "Build")]
    pub durations_from: Option<PathBuf>,

    #[arg(long, value_name = "DIR", help_heading = "Output")]
    pub logs_dir: Option<PathBuf>,
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub summary_json_file: Option<PathBuf>,
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub report: Option<PathBuf>,
    #[arg(
        short = 'f',
        long,
        value_enum,
        value_name = "FORMAT",
        help_heading = "Output"
    )]
    pub format: Option<SummaryFormat>,

    #[arg(long, overrides_with = "nosummary", help_heading = "Output")]
    pub summary: bool,
    #[arg(short = 'q', long, overrides_with = "noquiet", help_heading = "Output")]
    pub quiet: bool,
    #[arg(short = 'd', long, overrides_with = "nodebug", help_heading = "Output")]
    pub debug: bool,

    // kolla's flags this tool refuses (`refusal` says why): accepted by the parser so the
    // message names them, never silently ignored.
    #[arg(
        long,
        overrides_with = "nosquash",
        help_heading = "kolla flags refused"
    )]
    pub squash: bool,
    #[arg(
        long,
        overrides_with = "nobuildkit",
        help_heading = "kolla flags refused"
    )]
    pub buildkit: bool,
    #[arg(long, value_name = "NAME", help_heading = "kolla flags refused")]
    pub buildkit_builder: Option<String>,
    #[arg(long, value_name = "PLATFORM", help_heading = "kolla flags refused")]
    pub platform: Option<String>,
    #[arg(long, value_name = "SHELL", help_heading = "kolla flags refused")]
    pub shell_completion: Option<String>,

    // oslo.config's `--no<flag>` of every boolean kolla option: hidden, "The inverse of --flag".
    #[arg(long = "nodebug", hide = true, overrides_with = "debug")]
    pub nodebug: bool,
    #[arg(long = "noquiet", hide = true, overrides_with = "quiet")]
    pub noquiet: bool,
    #[arg(long = "nosummary", hide = true, overrides_with = "summary")]
    pub nosummary: bool,
    #[arg(long = "nolist-images", hide = true, overrides_with = "list_images")]
    pub nolist_images: bool,
    #[arg(
        long = "nolist-dependencies",
        hide = true,
        overrides_with = "list_dependencies"
    )]
    pub nolist_dependencies: bool,
    #[arg(
        long = "notemplate-only",
        hide = true,
        overrides_with = "template_only"
    )]
    pub notemplate_only: bool,
    #[arg(long = "noskip-parents", hide = true, overrides_with = "skip_parents")]
    pub noskip_parents: bool,
    #[arg(
        long = "noskip-existing",
        hide = true,
        overrides_with = "skip_existing"
    )]
    pub noskip_existing: bool,
    #[arg(
        long = "noenable-unbuildable",
        hide = true,
        overrides_with = "enable_unbuildable"
    )]
    pub noenable_unbuildable: bool,
    #[arg(long = "nokeep", hide = true, overrides_with = "keep")]
    pub nokeep: bool,
    #[arg(long = "nopush", hide = true, overrides_with = "push")]
    pub nopush: bool,
    #[arg(
        long = "nouse-dumb-init",
        hide = true,
        overrides_with = "use_dumb_init"
    )]
    pub nouse_dumb_init: bool,
    #[arg(
        long = "nodocker-healthchecks",
        hide = true,
        overrides_with = "docker_healthchecks"
    )]
    pub nodocker_healthchecks: bool,
    #[arg(long = "nosquash", hide = true, overrides_with = "squash")]
    pub nosquash: bool,
    #[arg(long = "nobuildkit", hide = true, overrides_with = "buildkit")]
    pub nobuildkit: bool,

    /// Where each option given on the command line stands (argument indices, by option id), for
    /// oslo.config's order of `--config-file`/`--config-dir` against the other flags; filled by
    /// `compat::args::parse_from`, empty when parsed otherwise (the flags then win).
    #[arg(skip)]
    pub positions: std::collections::BTreeMap<String, Vec<usize>>,
}

/// A kolla flag given on the command line that this tool does not honour: refused before any
/// work, naming the flag and why, rather than ignored (each would change the images or the run).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`--{flag}` is not supported because {reason}")]
pub struct Refused {
    pub flag: &'static str,
    pub reason: &'static str,
}

/// kolla's flags this tool refuses, and why (also listed in docs/KOLLA-COMPAT.md).
pub const REFUSED: &[(&str, &str)] = &[
    (
        "squash",
        "squashing each image's layers (kolla runs docker-squash after the build) is not \
         implemented: images keep their layers (--nosquash, kolla's default, is accepted)",
    ),
    (
        "buildkit",
        "images are built through the engine's build API (the classic builder), not `docker \
         buildx build`; --nobuildkit builds the same Dockerfiles the way this tool does",
    ),
    (
        "buildkit-builder",
        "it names a `docker buildx` builder instance, and this tool does not build with buildx",
    ),
    (
        "platform",
        "cross-platform builds (a build --platform other than the engine's) are not \
         implemented; build on an engine of that architecture instead (--engine with an \
         `[[engine]]` table of that `arch`, and --base-arch)",
    ),
    (
        "shell-completion",
        "this tool does not generate shell completion scripts",
    ),
];

impl Cli {
    /// The first refused kolla flag given, if any.
    pub fn refused(&self) -> Option<Refused> {
        let given = |flag: &str| match flag {
            "squash" => self.squash,
            "buildkit" => self.buildkit,
            "buildkit-builder" => self.buildkit_builder.is_some(),
            "platform" => self.platform.is_some(),
            "shell-completion" => self.shell_completion.is_some(),
            _ => false,
        };
        REFUSED
            .iter()
            .find(|(flag, _)| given(flag))
            .map(|&(flag, reason)| Refused { flag, reason })
    }

    /// What kolla's `--nosummary` means: no summary, on stdout or in a file.
    pub fn apply_nosummary(&mut self) {
        if self.nosummary {
            self.format = Some(SummaryFormat::None);
            self.summary_json_file = None;
        }
    }
}

/// The engine URL an `--engine` value names: kolla's engine names `docker` (the Docker engine
/// of `--engine-url`, else DOCKER_HOST, else the default socket: `docker_url`) and `podman`
/// (`podman_url`, from `--podman-base-url`), else the value itself, an engine URL of a pool.
pub fn engine_url_of(value: &str, docker_url: &str, podman_url: &str) -> String {
    match value {
        "docker" => docker_url.to_string(),
        "podman" => podman_url.to_string(),
        url => url.to_string(),
    }
}

/// Whether an `--engine` value is one of kolla's engine names rather than a URL.
pub fn is_engine_name(value: &str) -> bool {
    matches!(value, "docker" | "podman")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::compat::args::parse_from;
    use crate::config::FileConfig;
    use crate::settings::Settings;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        parse_from(std::iter::once("kolla-build").chain(args.iter().copied()))
    }

    fn settings(args: &[&str], file: &str, env: &[(&str, &str)]) -> Settings {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::merge(
            parse(args).unwrap(),
            FileConfig::parse(file).unwrap(),
            Some("/data".into()),
            env,
            Path::new("/cwd"),
        )
        .unwrap()
    }

    fn engine_urls(s: &Settings) -> Vec<&str> {
        s.build.engines.iter().map(|e| e.url.as_str()).collect()
    }

    #[test]
    fn kolla_engine_names_pick_the_docker_or_the_podman_url() {
        let docker_host = [("DOCKER_HOST", "tcp://127.0.0.1:2375")];
        let s = settings(&["--engine", "docker"], "", &docker_host);
        assert_eq!(engine_urls(&s), ["tcp://127.0.0.1:2375"]);
        let s = settings(
            &["--engine", "docker", "--engine-url", "unix:///d.sock"],
            "",
            &[],
        );
        assert_eq!(engine_urls(&s), ["unix:///d.sock"]);
        let s = settings(&["--engine", "podman"], "", &docker_host);
        assert_eq!(engine_urls(&s), ["unix:///run/podman/podman.sock"]);
        let s = settings(
            &["--engine", "podman", "--podman_base_url", "unix:///p.sock"],
            "",
            &[],
        );
        assert_eq!(engine_urls(&s), ["unix:///p.sock"]);
        let s = settings(
            &["--engine", "podman"],
            "podman-base-url = \"unix:///f.sock\"\n",
            &[],
        );
        assert_eq!(engine_urls(&s), ["unix:///f.sock"]);
        // kolla-build.conf's `engine = podman` reads as a table of that name
        let s = settings(&[], "[[engine]]\nurl = \"podman\"\n", &[]);
        assert_eq!(engine_urls(&s), ["unix:///run/podman/podman.sock"]);
        // a URL keeps naming an engine of a pool
        let s = settings(&["--engine", "ssh://a"], "", &[]);
        assert_eq!(engine_urls(&s), ["ssh://a"]);
    }

    #[test]
    fn inverse_switches_beat_the_file_and_the_last_flag_wins() {
        let file = "skip-parents = true\nno-cache = true\ndocker-healthchecks = true\n";
        let s = settings(
            &["--noskip-parents", "--cache", "--nodocker-healthchecks"],
            file,
            &[],
        );
        assert!(!s.selection.skip_parents);
        assert!(!s.build.no_cache);
        assert!(!s.docker_healthchecks);
        let s = settings(
            &["--nouse-dumb-init", "--use-dumb-init", "--nopush"],
            "",
            &[],
        );
        assert!(s.use_dumb_init);
        assert!(!s.build.push);
        let s = settings(
            &["--skip-parents", "--noskip-parents", "--nocache"],
            "",
            &[],
        );
        assert!(!s.selection.skip_parents);
        assert!(s.build.no_cache);
        let s = settings(&["--nosummary", "--summary-json-file", "s.json"], "", &[]);
        assert_eq!(s.build.format, SummaryFormat::None);
        assert_eq!(s.build.summary_json_file, None);
        let cli = parse(&["--list-images", "--nolist-images", "--debug", "--nodebug"]).unwrap();
        assert!(!cli.list_images && !cli.debug);
    }

    #[test]
    fn both_spellings_and_prefixes_are_taken() {
        let cli = parse(&[
            "--network",
            "none",
            "--podman-base-url",
            "unix:///a.sock",
            "--skip_parents",
            "--base_arch",
            "aarch64",
        ])
        .unwrap();
        assert_eq!(cli.network_mode.as_deref(), Some("none"));
        assert_eq!(cli.podman_base_url.as_deref(), Some("unix:///a.sock"));
        assert!(cli.skip_parents);
        assert_eq!(cli.base_arch.as_deref(), Some("aarch64"));
        let cli = parse(&["--podman_base_url", "unix:///b.sock"]).unwrap();
        assert_eq!(cli.podman_base_url.as_deref(), Some("unix:///b.sock"));
        // argparse: a repeated single value takes the last; repeatable flags add up
        let cli = parse(&["--tag", "a", "--tag", "b", "-p", "x", "-p", "y"]).unwrap();
        assert_eq!(cli.tag.as_deref(), Some("b"));
        assert_eq!(cli.profile, ["x", "y"]);
    }

    #[test]
    fn source_flags_reach_the_settings() {
        let s = settings(
            &[
                "--tarballs-base",
                "https://mirror.example.org",
                "--patches-path",
                "p",
                "--openstack-branch",
                "stable-x",
                "--debian-arch",
                "arm64",
            ],
            "locals-base = \"/src\"\n",
            &[],
        );
        assert_eq!(s.sources.tarballs_base, "https://mirror.example.org");
        assert_eq!(s.sources.patches_path.as_deref(), Some(Path::new("/cwd/p")));
        assert_eq!(s.sources.locals_base, Path::new("/src"));
        assert_eq!(s.sources.openstack_branch.as_deref(), Some("stable-x"));
        assert_eq!(s.sources.debian_arch.as_deref(), Some("arm64"));
        assert!(parse(&["--debian-arch", "i386"]).is_err());
    }

    #[test]
    fn refused_flags_say_which_and_why() {
        for (args, flag) in [
            (&["--squash"][..], "--squash"),
            (&["--buildkit"][..], "--buildkit"),
            (&["--buildkit-builder", "b"][..], "--buildkit-builder"),
            (&["--platform", "linux/arm64"][..], "--platform"),
            (&["--shell_completion", "bash"][..], "--shell-completion"),
        ] {
            let err = parse(args).unwrap_err().to_string();
            assert!(
                err.contains(&format!("`{flag}` is not supported because ")),
                "{args:?}: {err}"
            );
        }
        // kolla's defaults are accepted
        assert!(parse(&["--nosquash", "--nobuildkit"]).is_ok());
        assert!(parse(&["--squash", "--nosquash"]).is_ok());
    }
}
