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
    mut_args = options::with_help
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

    #[arg(
        short = 'p',
        long = "profile",
        value_name = "NAME",
        help_heading = "Selection"
    )]
    pub profile: Vec<String>,
    #[arg(long, help_heading = "Selection")]
    pub skip_parents: bool,
    #[arg(long, help_heading = "Selection")]
    pub enable_unbuildable: bool,
    #[arg(long, help_heading = "Selection")]
    pub list_images: bool,
    #[arg(short = 'l', long, help_heading = "Selection")]
    pub list_dependencies: bool,
    #[arg(long, value_name = "FILE", help_heading = "Selection")]
    pub save_dependency: Option<PathBuf>,

    #[arg(long, help_heading = "Templates")]
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

    #[arg(short = 'T', long, value_name = "N", help_heading = "Build")]
    pub threads: Option<usize>,
    #[arg(long, value_name = "URL", help_heading = "Build")]
    pub engine_url: Option<String>,
    #[arg(long = "engine", value_name = "URL", help_heading = "Build")]
    pub engine: Vec<String>,
    #[arg(long, overrides_with = "no_pull", help_heading = "Build")]
    pub pull: bool,
    #[arg(long, overrides_with = "pull", help_heading = "Build")]
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
    #[arg(long, alias = "nocache", help_heading = "Build")]
    pub no_cache: bool,
    #[arg(long, help_heading = "Build")]
    pub keep: bool,
    #[arg(long = "ca-certificate", value_name = "FILE", help_heading = "Build")]
    pub ca_certificate: Vec<PathBuf>,
    #[arg(long, value_name = "KIND=URL", help_heading = "Build")]
    pub package_cache: Vec<String>,
    #[arg(long, value_name = "DIR", help_heading = "Build")]
    pub cache_dir: Option<PathBuf>,
    #[arg(long, help_heading = "Build")]
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
    #[arg(long, help_heading = "Build")]
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

    #[arg(short = 'q', long, help_heading = "Output")]
    pub quiet: bool,
    #[arg(short = 'd', long, help_heading = "Output")]
    pub debug: bool,

    /// Where each option given on the command line stands (argument indices, by option id), for
    /// oslo.config's order of `--config-file`/`--config-dir` against the other flags; filled by
    /// `compat::args::parse_from`, empty when parsed otherwise (the flags then win).
    #[arg(skip)]
    pub positions: std::collections::BTreeMap<String, Vec<usize>>,
}
