//! The command line, as close to the flags as possible (the "low level" arguments). Options shared
//! with the Python kolla-build keep its names and short forms; `settings` resolves them.

use std::path::PathBuf;

use clap::Parser;

use crate::types::{BaseDistro, InstallType, SummaryFormat, UndefinedMode};

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
        kolla-build --bootstrap-base --ca-certificate /usr/local/share/ca-certificates/proxy.crt -p gate"
)]
pub struct Cli {
    /// Regexes selecting images by name (searched anywhere in the name, as kolla does); their
    /// ancestors are selected too. No regex and no profile selects every buildable image.
    #[arg(value_name = "REGEX")]
    pub regex: Vec<String>,

    /// A configuration file to use instead of the tree's build.toml: TOML, or kolla's INI
    /// kolla-build.conf (a `.conf`/`.ini` name or INI content) for the options both tools share.
    /// For kolla's own tree, without it the first of ~/.kolla/, ~/, /etc/kolla/, /etc/ holding
    /// kolla.conf, and the first holding kolla-build.conf, are read, as kolla-build does (the
    /// files read are named on stderr).
    #[arg(long, value_name = "PATH", help_heading = "Configuration")]
    pub config_file: Option<PathBuf>,
    /// For kolla's own tree: a folder whose `*.conf` files are read after the config file
    /// (repeatable; oslo.config's --config-dir) [default: the first kolla.conf.d/ and
    /// kolla-build.conf.d/ found where kolla looks for its files].
    #[arg(long, value_name = "DIR", help_heading = "Configuration")]
    pub config_dir: Vec<PathBuf>,

    /// The base distro.
    #[arg(short = 'b', long, value_enum, help_heading = "Naming")]
    pub base: Option<BaseDistro>,
    /// The base image `base` is built FROM [default: the release's row in base/releases.toml].
    #[arg(long, value_name = "IMAGE", help_heading = "Naming")]
    pub base_image: Option<String>,
    /// The tag of the base image [default: the release's row in base/releases.toml; for
    /// 2025.1: trixie, 24.04, stream9, 9].
    #[arg(long, value_name = "TAG", help_heading = "Naming")]
    pub base_tag: Option<String>,
    /// The target architecture [default: the host's].
    #[arg(long, value_name = "ARCH", help_heading = "Naming")]
    pub base_arch: Option<String>,
    /// How OpenStack is installed: distro packages or PyPI sources in a virtualenv.
    #[arg(short = 't', long, value_enum, help_heading = "Naming")]
    pub install_type: Option<InstallType>,
    /// The image namespace [default: kolla].
    #[arg(short = 'n', long, help_heading = "Naming")]
    pub namespace: Option<String>,
    /// The registry (HOST:PORT) prepended to the namespace.
    #[arg(long, value_name = "HOST:PORT", help_heading = "Naming")]
    pub registry: Option<String>,
    /// The image tag [default: the OpenStack release].
    #[arg(long, help_heading = "Naming")]
    pub tag: Option<String>,
    /// Prefix of every image name; `{base}` and `{install_type}` are replaced
    /// [default: {base}-{install_type}-].
    #[arg(long, value_name = "PREFIX", help_heading = "Naming")]
    pub image_name_prefix: Option<String>,
    /// The OpenStack release: picks a row of base/releases.toml, which sets the codename, the
    /// base image and tag, the repositories and the constraints of `source` installs
    /// [default: the table's default, 2025.1].
    #[arg(long, value_name = "RELEASE", help_heading = "Naming")]
    pub openstack_release: Option<String>,
    /// The OpenStack release's codename [default: the release's row, e.g. epoxy].
    #[arg(long, value_name = "NAME", help_heading = "Naming")]
    pub openstack_release_codename: Option<String>,
    /// The maintainer label of every image.
    #[arg(long, help_heading = "Naming")]
    pub maintainer: Option<String>,

    /// A named selection from profiles/ (repeatable); ignored when regexes are given, as in kolla.
    #[arg(
        short = 'p',
        long = "profile",
        value_name = "NAME",
        help_heading = "Selection"
    )]
    pub profile: Vec<String>,
    /// Do not build the ancestors of the selected images (they must already exist).
    #[arg(long, help_heading = "Selection")]
    pub skip_parents: bool,
    /// Also select images listed as unbuildable for this base and install type.
    #[arg(long, help_heading = "Selection")]
    pub enable_unbuildable: bool,
    /// Print `N : name` for each selected image and exit.
    #[arg(long, help_heading = "Selection")]
    pub list_images: bool,
    /// Print the dependency tree of the selected images as JSON and exit.
    #[arg(short = 'l', long, help_heading = "Selection")]
    pub list_dependencies: bool,
    /// Write the dependency graph of the selected images as Graphviz dot to FILE.
    #[arg(long, value_name = "FILE", help_heading = "Selection")]
    pub save_dependency: Option<PathBuf>,

    /// Render the Dockerfiles and their context files into WORK_DIR/docker/ and exit.
    #[arg(long, help_heading = "Templates")]
    pub template_only: bool,
    /// Where rendered Dockerfiles and build contexts are written [default: a temporary dir].
    #[arg(long, value_name = "DIR", help_heading = "Templates")]
    pub work_dir: Option<PathBuf>,
    /// The template tree to use instead of this project's base/ and images/ (ours, or a tree laid
    /// out like kolla's docker/ folder).
    #[arg(long, value_name = "DIR", help_heading = "Templates")]
    pub images_dir: Option<PathBuf>,
    /// A template tree laid over the main one (repeatable; later trees win, file by file).
    #[arg(
        short = 'D',
        long = "docker-dir",
        value_name = "DIR",
        help_heading = "Templates"
    )]
    pub docker_dir: Vec<PathBuf>,
    /// A template that `{% extends parent_template %}` and replaces blocks of every image
    /// (repeatable; later files win).
    #[arg(
        long = "template-override",
        value_name = "FILE",
        help_heading = "Templates"
    )]
    pub template_override: Vec<PathBuf>,
    /// The kolla release whose defaults and behaviour apply to kolla's own tree, and what
    /// templates see as `kolla_version` [default: for kolla's tree, the version of the kolla
    /// installation it belongs to; else this tool's version].
    #[arg(long, value_name = "VERSION", help_heading = "Templates")]
    pub kolla_version: Option<String>,
    /// What base checks /etc/os-release's PRETTY_NAME against (`supported_distro_name`)
    /// [default: the distro's name; for a kolla-layout tree, kolla's full name of the release
    /// for the known base tags, e.g. `Debian GNU/Linux 13 (trixie)`].
    #[arg(long, value_name = "NAME", help_heading = "Templates")]
    pub supported_distro_name: Option<String>,
    /// A repos.yaml merged over the tree's, repository by repository (kolla's --repos-yaml).
    #[arg(long, value_name = "FILE", help_heading = "Templates")]
    pub repos_yaml: Option<PathBuf>,
    /// What an undefined template variable does: `strict` fails with its location, `lenient`
    /// renders it empty as Jinja2 does [default: strict, lenient for a tree laid out like kolla's].
    #[arg(long, value_enum, value_name = "MODE", help_heading = "Templates")]
    pub undefined: Option<UndefinedMode>,

    /// How many images build at once [default: 8].
    #[arg(short = 'T', long, value_name = "N", help_heading = "Build")]
    pub threads: Option<usize>,
    /// The engine API: unix:///path or tcp://host:port [default: DOCKER_HOST, else
    /// unix:///var/run/docker.sock].
    #[arg(long, value_name = "URL", help_heading = "Build")]
    pub engine_url: Option<String>,
    /// Pull the base image when it is missing (the default).
    #[arg(long, overrides_with = "no_pull", help_heading = "Build")]
    pub pull: bool,
    /// Never pull: a missing base image is an error.
    #[arg(long, overrides_with = "pull", help_heading = "Build")]
    pub no_pull: bool,
    /// The base image is missing and cannot be pulled: make it with debootstrap from a package
    /// mirror (Debian and Ubuntu) and import it under --base-image:--base-tag.
    #[arg(long, help_heading = "Build")]
    pub bootstrap_base: bool,
    /// The package mirror for --bootstrap-base [default: deb.debian.org / archive.ubuntu.com].
    #[arg(long, value_name = "URL", help_heading = "Build")]
    pub bootstrap_mirror: Option<String>,
    /// A build argument K=V (repeatable; `K=V,K2=V2` and kolla's `K:V` also work).
    #[arg(long = "build-args", value_name = "K=V", help_heading = "Build")]
    pub build_args: Vec<String>,
    /// The network of RUN steps [default: host].
    #[arg(
        long,
        alias = "network_mode",
        value_name = "MODE",
        help_heading = "Build"
    )]
    pub network_mode: Option<String>,
    /// Rebuild every selected image without the engine's layer cache (no image is fresh).
    #[arg(long, alias = "nocache", help_heading = "Build")]
    pub no_cache: bool,
    /// Keep the intermediate containers of failed builds (for debugging).
    #[arg(long, help_heading = "Build")]
    pub keep: bool,
    /// A CA certificate (PEM) every image trusts, installed in `base` (repeatable).
    #[arg(long = "ca-certificate", value_name = "FILE", help_heading = "Build")]
    pub ca_certificate: Vec<PathBuf>,
    /// Download packages through a caching proxy, for the build only: `apt=URL` (apt-cacher-ng,
    /// e.g. apt=http://127.0.0.1:3142) and/or `pypi=URL` (a PyPI mirror's simple index, e.g.
    /// pypi=http://127.0.0.1:3141/root/pypi/+simple/), repeatable; `scripts/setup-caches.sh`
    /// starts both. No proxy setting or cache address is left in the images (Docker's
    /// predefined proxy arguments carry them); each image's bytes from the caches are in the
    /// summary.
    #[arg(long, value_name = "KIND=URL", help_heading = "Build")]
    pub package_cache: Vec<String>,
    /// Where --export keeps compressed layers between runs, so an export recompresses only new
    /// layers [default: $XDG_CACHE_HOME/kolla-build, else ~/.cache/kolla-build].
    #[arg(long, value_name = "DIR", help_heading = "Build")]
    pub cache_dir: Option<PathBuf>,
    /// Push every built (or fresh) selected image to --registry, as soon as it is built.
    #[arg(long, help_heading = "Build")]
    pub push: bool,
    /// Pushes at once [default: 4].
    #[arg(long, value_name = "N", help_heading = "Build")]
    pub push_threads: Option<usize>,
    /// Write the selected images (built or fresh) to PATH.tar.gz: a registry's storage tree to
    /// unpack into e.g. /opt/registry, or with --export-format oci an OCI image layout.
    #[arg(long, value_name = "PATH", help_heading = "Build")]
    pub export: Option<PathBuf>,
    /// `registry` (a registry storage tree) or `oci` (an OCI image layout).
    #[arg(long, value_enum, value_name = "FORMAT", help_heading = "Build")]
    pub export_format: Option<crate::export::ExportFormat>,
    /// Write the export even when some selected images did not build (the summary names the
    /// missing ones). Without it the export replaces its target only when every image succeeded.
    #[arg(long, help_heading = "Build")]
    pub export_partial: bool,
    /// How --push publishes: `atomic` (the default) pushes layers and manifests as images finish,
    /// under a staging tag, and moves the final tags only once every selected image succeeded, so
    /// a failed or interrupted run moves no tag and the registry never holds a mixed set;
    /// `immediate` pushes each image under its final tag as soon as it is built (kolla's way).
    #[arg(long, value_enum, value_name = "MODE", help_heading = "Build")]
    pub push_mode: Option<crate::publish::PushMode>,
    /// Retries of a failed build or push, with exponential backoff (2 s doubling, at most 60 s
    /// between attempts) [default: 1, at most 10].
    #[arg(short = 'r', long, value_name = "N", help_heading = "Build")]
    pub retries: Option<u32>,
    /// Seconds one build may take before it is stopped (at least 1) [default: 7200].
    #[arg(long, value_name = "SECS", help_heading = "Build")]
    pub timeout: Option<u64>,
    /// Do not build an image whose tag exists in the engine, whatever its inputs (kolla's
    /// meaning; images whose inputs are unchanged are skipped anyway, as "fresh").
    #[arg(long, help_heading = "Build")]
    pub skip_existing: bool,

    /// Write each image's build log to DIR/<image>.log (created if missing).
    #[arg(long, value_name = "DIR", help_heading = "Output")]
    pub logs_dir: Option<PathBuf>,
    /// Write the JSON summary to FILE (indented) instead of stdout.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub summary_json_file: Option<PathBuf>,
    /// The summary on stdout: `json` (one line, as kolla) or `none`.
    #[arg(
        short = 'f',
        long,
        value_enum,
        value_name = "FORMAT",
        help_heading = "Output"
    )]
    pub format: Option<SummaryFormat>,

    /// Print errors only.
    #[arg(short = 'q', long, help_heading = "Output")]
    pub quiet: bool,
    /// Print debugging detail (template error internals).
    #[arg(short = 'd', long, help_heading = "Output")]
    pub debug: bool,
}
