//! Every option, declared once: its flag, its key in `build.toml`, the `kolla-build.conf` key it
//! is read from, its default and its help.
//!
//! - The command line takes its help (and the `[default: …]` it shows) from [`OPTIONS`]: the
//!   fields of [`Cli`](super::cli::Cli) only say how a flag parses and under which heading
//!   `--help` lists it ([`with_help`]).
//! - `settings` takes its defaults from the `DEFAULT_*` constants below, the only place a
//!   default is written in code.
//! - kolla's INI reader takes the `[DEFAULT]` keys it accepts from here ([`ini_keys`]).
//! - `build.toml` (the documented default configuration) and README's flag table are prose; the
//!   tests at the end of this file check them, the CLI and `FileConfig` against the table.

use crate::common::types::{BaseDistro, DEFAULT_ENGINE_URL, InstallType};

/// The base distro when none is given.
pub const DEFAULT_BASE: BaseDistro = BaseDistro::Debian;
/// The install type when none is given.
pub const DEFAULT_INSTALL_TYPE: InstallType = InstallType::Binary;
pub const DEFAULT_NAMESPACE: &str = "kolla";
pub const DEFAULT_PREFIX: &str = "{base}-{install_type}-";
pub const DEFAULT_MAINTAINER: &str = "kolla-build (https://opendev.org/openstack/kolla)";
/// For trees without a releases table (kolla's own tree).
pub const DEFAULT_OPENSTACK_RELEASE: &str = "2025.1";
pub const DEFAULT_OPENSTACK_CODENAME: &str = "epoxy";
/// The environment variable that names the engine when `engine-url` is not given.
pub const ENGINE_URL_ENV: &str = "DOCKER_HOST";
pub const DEFAULT_THREADS: usize = 8;
pub const DEFAULT_PUSH_THREADS: usize = 4;
pub const DEFAULT_RETRIES: u32 = 1;
/// Seconds one build may take.
pub const DEFAULT_TIMEOUT: u64 = 7200;
pub const DEFAULT_NETWORK_MODE: &str = "host";
pub const DEFAULT_PULL: bool = true;
pub const DEFAULT_CLEAN_PACKAGE_CACHE: bool = true;
pub const DEFAULT_USE_DUMB_INIT: bool = true;
pub const DEFAULT_DOCKER_HEALTHCHECKS: bool = true;
/// kolla's `podman_base_url`: the engine `--engine podman` names.
pub const DEFAULT_PODMAN_BASE_URL: &str = "unix:///run/podman/podman.sock";
/// kolla's `tarballs_base` and `locals_base` (for the source stage).
pub const DEFAULT_TARBALLS_BASE: &str = "https://tarballs.opendev.org";
pub const DEFAULT_LOCALS_BASE: &str = "./";

/// How an option is given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// Only in a configuration file.
    None,
    /// `--<name>`.
    Long(&'static str),
    /// A positional argument, by its value name.
    Positional(&'static str),
}

/// Where kolla's INI `kolla-build.conf` holds an option this tool reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ini {
    pub section: &'static str,
    /// The key (`_` spelling; oslo.config reads `-` as `_`).
    pub name: &'static str,
}

/// An option's value when it is given nowhere.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Default {
    /// Unset: the feature is off or the value absent.
    None,
    Bool(bool),
    Int(u64),
    Str(&'static str),
    /// An empty list (values given add to it).
    Empty,
    /// An environment variable when it is set, else the value.
    EnvOr(&'static str, &'static str),
    /// Decided at run time (from the releases table, the host, the tree...): what `--help` says.
    Described(&'static str),
}

/// One option.
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    pub flag: Flag,
    /// The key in `build.toml` (kebab-case).
    pub toml: Option<&'static str>,
    pub ini: Option<Ini>,
    pub default: Default,
    /// One paragraph, without a final period (clap's style) and without the default.
    pub help: &'static str,
}

impl Opt {
    /// A flag `--name`, with no file key yet.
    const fn long(name: &'static str) -> Opt {
        Opt {
            flag: Flag::Long(name),
            toml: None,
            ini: None,
            default: Default::None,
            help: "",
        }
    }

    /// A flag `--name` that is also the `build.toml` key `name`.
    const fn shared(name: &'static str) -> Opt {
        Opt::long(name).toml(name)
    }

    const fn positional(value_name: &'static str) -> Opt {
        Opt {
            flag: Flag::Positional(value_name),
            ..Opt::long("")
        }
    }

    /// Only a `build.toml` key.
    const fn file(key: &'static str) -> Opt {
        Opt {
            flag: Flag::None,
            ..Opt::long("")
        }
        .toml(key)
    }

    const fn toml(self, key: &'static str) -> Opt {
        Opt {
            toml: Some(key),
            ..self
        }
    }

    /// The `[DEFAULT]` key of kolla-build.conf.
    const fn ini(self, name: &'static str) -> Opt {
        self.ini_in("DEFAULT", name)
    }

    const fn ini_in(self, section: &'static str, name: &'static str) -> Opt {
        Opt {
            ini: Some(Ini { section, name }),
            ..self
        }
    }

    const fn default(self, default: Default) -> Opt {
        Opt { default, ..self }
    }

    const fn help(self, help: &'static str) -> Opt {
        Opt { help, ..self }
    }

    /// How messages name it: its flag, else its file key.
    pub fn name(&self) -> &'static str {
        match self.flag {
            Flag::Long(name) | Flag::Positional(name) => name,
            Flag::None => self.toml.unwrap_or_default(),
        }
    }

    /// The default as `--help` shows it, if it has one worth showing (switches and empty lists
    /// go without).
    pub fn shown_default(&self) -> Option<String> {
        match self.default {
            Default::Int(n) => Some(n.to_string()),
            Default::Str(s) | Default::Described(s) => Some(s.to_string()),
            Default::EnvOr(var, value) => Some(format!("{var}, else {value}")),
            Default::None | Default::Bool(_) | Default::Empty => None,
        }
    }

    /// The help line of its flag: the help, then `[default: …]`.
    pub fn cli_help(&self) -> String {
        match self.shown_default() {
            Some(default) => format!("{} [default: {default}]", self.help),
            None => self.help.to_string(),
        }
    }
}

/// The help of a kolla flag this tool refuses; the reason is in the error.
const REFUSED_HELP: &str = "kolla's flag, refused with the reason (not supported here)";

/// Every option, in the order `--help` lists the flags; options only a file holds come last.
pub const OPTIONS: &[Opt] = &[
    Opt::positional("REGEX").help(
        "Regexes selecting images by name (searched anywhere in the name, as kolla does); their \
         ancestors are selected too. No regex and no profile selects every buildable image",
    ),
    // Configuration
    Opt::long("config-file").help(
        "A configuration file to use instead of the tree's build.toml: TOML, or kolla's INI \
         kolla-build.conf (a `.conf`/`.ini` name or INI content) for the options both tools \
         share. For kolla's own tree, without it the first of ~/.kolla/, ~/, /etc/kolla/, /etc/ \
         holding kolla.conf, and the first holding kolla-build.conf, are read, as kolla-build \
         does (the files read are named on stderr). Repeatable for kolla's tree: files and \
         --config-dir folders are read in command-line order, as oslo.config does (later files \
         win; the multi-valued template_override, docker_dir and profile add up)",
    ),
    Opt::long("config-dir")
        .default(Default::Described(
            "the first kolla.conf.d/ and kolla-build.conf.d/ found where kolla looks for its files",
        ))
        .help(
            "For kolla's own tree: a folder whose `*.conf` files are read after the config file \
             (repeatable; oslo.config's --config-dir)",
        ),
    // Naming
    Opt::shared("base")
        .ini("base")
        .default(Default::Str(DEFAULT_BASE.as_str()))
        .help("The base distro (for kolla's tree: that kolla release's default)"),
    Opt::shared("base-image")
        .ini("base_image")
        .default(Default::Described(
            "the release's row in base/releases.toml",
        ))
        .help("The base image `base` is built FROM"),
    Opt::shared("base-tag")
        .ini("base_tag")
        .default(Default::Described(
            "the release's row in base/releases.toml; for 2025.1: trixie, 24.04, stream9, 9",
        ))
        .help("The tag of the base image"),
    Opt::shared("base-arch")
        .ini("base_arch")
        .default(Default::Described("the host's"))
        .help("The target architecture"),
    Opt::shared("install-type")
        .default(Default::Str(DEFAULT_INSTALL_TYPE.as_str()))
        .help("How OpenStack is installed: distro packages or PyPI sources in a virtualenv"),
    Opt::shared("namespace")
        .ini("namespace")
        .default(Default::Str(DEFAULT_NAMESPACE))
        .help("The image namespace"),
    Opt::shared("registry")
        .ini("registry")
        .help("The registry (HOST:PORT) prepended to the namespace"),
    Opt::shared("tag")
        .ini("tag")
        .default(Default::Described("the OpenStack release"))
        .help("The image tag"),
    Opt::shared("image-name-prefix")
        .ini("image_name_prefix")
        .default(Default::Str(DEFAULT_PREFIX))
        .help("Prefix of every image name; `{base}` and `{install_type}` are replaced"),
    Opt::shared("openstack-release")
        .ini("openstack_release")
        .default(Default::Described("the table's default, 2025.1"))
        .help(
            "The OpenStack release: picks a row of base/releases.toml, which sets the codename, \
             the base image and tag, the repositories and the constraints of `source` installs",
        ),
    Opt::shared("openstack-release-codename")
        .ini("openstack_release_codename")
        .default(Default::Described("the release's row, e.g. epoxy"))
        .help("The OpenStack release's codename"),
    Opt::shared("openstack-branch")
        .ini("openstack_branch")
        .default(Default::Described(
            "stable-<openstack-release>, master for master",
        ))
        .help(
            "The branch of source images, with a dash (kolla's internal option; set \
             --openstack-release instead), for the source stage; templates' `openstack_branch` \
             still follows --openstack-release",
        ),
    Opt::shared("openstack-branch-slashed")
        .ini("openstack_branch_slashed")
        .default(Default::Described("--openstack-branch with `/` for `-`"))
        .help("The same branch with a slash, for the source stage"),
    Opt::shared("maintainer")
        .ini("maintainer")
        .default(Default::Str(DEFAULT_MAINTAINER))
        .help("The maintainer label of every image"),
    // Selection
    Opt::shared("profile")
        .ini("profile")
        .default(Default::Empty)
        .help("A named selection from profiles/ (repeatable); ignored when regexes are given, as in kolla"),
    Opt::shared("skip-parents")
        .ini("skip_parents")
        .default(Default::Bool(false))
        .help("Do not build the ancestors of the selected images (they must already exist)"),
    Opt::shared("enable-unbuildable")
        .ini("enable_unbuildable")
        .default(Default::Bool(false))
        .help("Also select images listed as unbuildable for this base and install type"),
    Opt::long("list-images").help("Print `N : name` for each selected image and exit"),
    Opt::long("list-dependencies")
        .help("Print the dependency tree of the selected images as JSON and exit"),
    Opt::long("save-dependency")
        .help("Write the dependency graph of the selected images as Graphviz dot to FILE"),
    // Templates
    Opt::long("template-only")
        .help("Render the Dockerfiles and their context files into WORK_DIR/docker/ and exit"),
    Opt::shared("work-dir")
        .ini("work_dir")
        .default(Default::Described("a temporary dir"))
        .help("Where rendered Dockerfiles and build contexts are written"),
    Opt::shared("images-dir").help(
        "The template tree to use instead of this project's base/ and images/ (ours, or a tree \
         laid out like kolla's docker/ folder)",
    ),
    Opt::shared("docker-dir")
        .ini("docker_dir")
        .default(Default::Empty)
        .help("A template tree laid over the main one (repeatable; later trees win, file by file)"),
    Opt::shared("template-override")
        .ini("template_override")
        .default(Default::Empty)
        .help(
            "A template that `{% extends parent_template %}` and replaces blocks of every image \
             (repeatable; later files win)",
        ),
    Opt::shared("kolla-version")
        .ini("kolla_version")
        .default(Default::Described(
            "for kolla's tree, the version of the kolla installation it belongs to; else this \
             tool's version",
        ))
        .help(
            "The kolla release whose defaults and behaviour apply to kolla's own tree, and what \
             templates see as `kolla_version`",
        ),
    Opt::shared("supported-distro-name")
        .ini("supported_distro_name")
        .default(Default::Described(
            "the distro's name; for a kolla-layout tree, kolla's full name of the release for \
             the known base tags, e.g. `Debian GNU/Linux 13 (trixie)`",
        ))
        .help(
            "What base checks /etc/os-release's PRETTY_NAME against (`supported_distro_name`)",
        ),
    Opt::shared("repos-yaml")
        .ini("repos_yaml")
        .help("A repos.yaml merged over the tree's, repository by repository (kolla's --repos-yaml)"),
    Opt::shared("undefined")
        .default(Default::Described(
            "strict, lenient for a tree laid out like kolla's",
        ))
        .help(
            "What an undefined template variable does: `strict` fails with its location, \
             `lenient` renders it empty as Jinja2 does",
        ),
    Opt::shared("use-dumb-init")
        .ini("use_dumb_init")
        .default(Default::Bool(DEFAULT_USE_DUMB_INIT))
        .help("dumb-init as PID 1 (ENTRYPOINT) in every image (the default; --nouse-dumb-init: none)"),
    Opt::shared("docker-healthchecks")
        .ini("docker_healthchecks")
        .default(Default::Bool(DEFAULT_DOCKER_HEALTHCHECKS))
        .help("Healthcheck scripts in every image (the default; --nodocker-healthchecks: none)"),
    Opt::shared("debian-arch")
        .ini("debian_arch")
        .default(Default::Described("amd64 for x86_64, arm64 for aarch64 (from --base-arch)"))
        .help(
            "`amd64` or `arm64`: which checksum of a `version` source the source stage checks \
             (kolla's meaning; templates get `debian_arch` from --base-arch, as in kolla)",
        ),
    Opt::shared("patches-path")
        .ini("patches_path")
        .help(
            "A folder of patches per image (`<image>/series` and the files it lists), copied into \
             each image's context as `patches/` for kolla's `kolla_patch` (kolla's \
             --patches-path)",
        ),
    Opt::shared("tarballs-base")
        .ini("tarballs_base")
        .default(Default::Str(DEFAULT_TARBALLS_BASE))
        .help("The base URL of OpenStack tarballs, for the source stage (kolla's `$tarballs_base`)"),
    Opt::shared("locals-base")
        .ini("locals_base")
        .default(Default::Str(DEFAULT_LOCALS_BASE))
        .help("The folder `local` sources are found under, for the source stage"),
    // Build
    Opt::shared("threads")
        .ini("threads")
        .default(Default::Int(DEFAULT_THREADS as u64))
        .help("How many images build at once"),
    Opt::shared("engine-url")
        .default(Default::EnvOr(ENGINE_URL_ENV, DEFAULT_ENGINE_URL))
        .help(
            "The engine API: unix:///path, tcp://host:port, https://host:port (TLS with the \
             client files of DOCKER_CERT_PATH, else ~/.docker; also tcp:// under \
             DOCKER_TLS_VERIFY) or ssh://[user@]host; the one engine when no --engine is given",
        ),
    Opt::long("engine")
        .toml("engine")
        .ini("engine")
        .default(Default::Described("the one engine of --engine-url"))
        .help(
            "kolla's engine names: `docker` (the engine of --engine-url, else DOCKER_HOST, else \
             the default socket) or `podman` (--podman-base-url); or an engine URL, an engine \
             of a pool (repeatable): with several, one run spreads its builds over \
             them and hands parents over through --registry, which they then need. Given, the \
             engines replace --engine-url; in build.toml, `[[engine]]` tables with `url`, \
             `threads` (builds at once there, default --threads), `arch` (an engine whose \
             arch is not --base-arch is left out) and `tls_dir` (its TLS client files: ca.pem, \
             cert.pem, key.pem)",
        ),
    Opt::shared("pull")
        .ini("pull")
        .default(Default::Bool(DEFAULT_PULL))
        .help("Pull the base image when it is missing (the default)"),
    Opt::long("no-pull").help("Never pull: a missing base image is an error (kolla's --nopull)"),
    Opt::shared("podman-base-url")
        .ini("podman_base_url")
        .default(Default::Str(DEFAULT_PODMAN_BASE_URL))
        .help("The podman service's API socket that `--engine podman` builds on"),
    Opt::shared("bootstrap-base")
        .default(Default::Bool(false))
        .help(
            "The base image is missing and cannot be pulled: make it with debootstrap from a \
             package mirror (Debian and Ubuntu) and import it under --base-image:--base-tag, \
             with the apt and dpkg settings of the distro's image on Docker Hub (no sync after \
             each unpacked file, no translations, no policy-rc.d service starts)",
        ),
    Opt::shared("bootstrap-mirror")
        .default(Default::Described("deb.debian.org / archive.ubuntu.com"))
        .help("The package mirror for --bootstrap-base"),
    Opt::shared("build-args")
        .ini("build_args")
        .help("A build argument K=V (repeatable; `K=V,K2=V2` and kolla's `K:V` also work)"),
    Opt::shared("network-mode")
        .ini("network_mode")
        .default(Default::Str(DEFAULT_NETWORK_MODE))
        .help("The network of RUN steps"),
    // kolla's `cache` is the opposite switch.
    Opt::shared("no-cache")
        .ini("cache")
        .default(Default::Bool(false))
        .help(
            "Rebuild every selected image without the engine's layer cache (no image is fresh; \
             kolla's --nocache)",
        ),
    Opt::long("cache").help("Use the engine's layer cache (the default; undoes --no-cache)"),
    Opt::shared("keep")
        .ini("keep")
        .default(Default::Bool(false))
        .help("Keep the intermediate containers of failed builds (for debugging)"),
    Opt::long("ca-certificate")
        .toml("ca-certificates")
        .default(Default::Empty)
        .help("A CA certificate (PEM) every image trusts, installed in `base` (repeatable)"),
    Opt::shared("package-cache").default(Default::Empty).help(
        "Download packages through a caching proxy, for the build only: `apt=URL` \
         (apt-cacher-ng, e.g. apt=http://127.0.0.1:3142) and/or `pypi=URL` (a PyPI mirror's \
         simple index, e.g. pypi=http://127.0.0.1:3141/root/pypi/+simple/), repeatable; \
         `scripts/setup-caches.sh` starts both. No proxy setting or cache address is left in the \
         images; each image's bytes from the caches are in the summary",
    ),
    Opt::shared("cache-dir")
        .default(Default::Described(
            "$XDG_CACHE_HOME/kolla-build, else ~/.cache/kolla-build",
        ))
        .help(
            "Where --export keeps compressed layers between runs, so an export recompresses \
             only new layers",
        ),
    Opt::shared("push")
        .ini("push")
        .default(Default::Bool(false))
        .help("Push every built (or fresh) selected image to --registry, as soon as it is built"),
    Opt::shared("push-threads")
        .ini("push_threads")
        .default(Default::Int(DEFAULT_PUSH_THREADS as u64))
        .help("Pushes at once"),
    Opt::shared("export").help(
        "Write the selected images (built or fresh) to PATH.tar.gz: a registry's storage tree to \
         unpack into e.g. /opt/registry, or with --export-format oci an OCI image layout",
    ),
    // `ExportFormat`'s `#[default]` (the tests check they agree).
    Opt::shared("export-format")
        .default(Default::Str("registry"))
        .help("`registry` (a registry storage tree) or `oci` (an OCI image layout)"),
    Opt::long("export-partial").help(
        "Write the export even when some selected images did not build (the summary names the \
         missing ones). Without it the export replaces its target only when every image \
         succeeded",
    ),
    // `PushMode`'s `#[default]` (the tests check they agree).
    Opt::long("push-mode").default(Default::Str("atomic")).help(
        "How --push publishes: `atomic` pushes layers and manifests as images finish, under a \
         staging tag, and moves the final tags only once every selected image succeeded, so a \
         failed or interrupted run moves no tag and the registry never holds a mixed set; \
         `immediate` pushes each image under its final tag as soon as it is built (kolla's way)",
    ),
    Opt::shared("retries")
        .ini("retries")
        .default(Default::Int(DEFAULT_RETRIES as u64))
        .help(
            "Retries of a failed build or push, with exponential backoff (2 s doubling, at most \
             60 s between attempts; at most 10 retries)",
        ),
    Opt::shared("timeout")
        .ini("timeout")
        .default(Default::Int(DEFAULT_TIMEOUT))
        .help("Seconds one build may take before it is stopped (at least 1)"),
    Opt::shared("skip-existing")
        .ini("skip_existing")
        .default(Default::Bool(false))
        .help(
            "Do not build an image whose tag exists in the engine, whatever its inputs (kolla's \
             meaning; images whose inputs are unchanged are skipped anyway, as \"fresh\")",
        ),
    // Output
    Opt::shared("logs-dir")
        .ini("logs_dir")
        .help("Write each image's build log to DIR/<image>.log (created if missing)"),
    Opt::shared("durations-from").help(
        "An earlier run's JSON summary (--summary-json-file): its build times order this run, \
         the longest chain of work first (each image weighs its own time plus that of every \
         image waiting on it), and tell a pool of engines how long a build there will take. \
         Without it, images that unblock the most others go first",
    ),
    Opt::shared("summary-json-file")
        .ini("summary_json_file")
        .help("Write the JSON summary to FILE (indented) instead of stdout"),
    Opt::shared("report").help(
        "Write a picture of the run to FILE (HTML, self-contained, no network): a lane per \
         engine and build slot, a bar per image coloured by outcome, the critical path marked, \
         wall time against the CPU floor; written on failure and interruption too. \
         `kolla-build report SUMMARY.json -o FILE` draws it for an earlier run",
    ),
    // `SummaryFormat`'s `#[default]` (the tests check they agree).
    Opt::shared("format")
        .ini("format")
        .default(Default::Str("json"))
        .help("The summary on stdout: `json` (one line, as kolla) or `none`"),
    Opt::long("summary").help(
        "Print the summary at the end (the default); kolla's --nosummary prints none, on \
         stdout or in --summary-json-file",
    ),
    Opt::long("quiet").help("Print errors only"),
    Opt::long("debug").help(
        "Print every build's output as it runs, each line prefixed with its image (kept per image with --logs-dir too)",
    ),
    // kolla flags refused (`cli::REFUSED` says why)
    Opt::long("squash").help(REFUSED_HELP),
    Opt::long("buildkit").help(REFUSED_HELP),
    Opt::long("buildkit-builder").help(REFUSED_HELP),
    Opt::long("platform").help(REFUSED_HELP),
    Opt::long("shell-completion").help(REFUSED_HELP),
    // Only in a configuration file
    Opt::file("clean-package-cache")
        .ini("clean_package_cache")
        .default(Default::Bool(DEFAULT_CLEAN_PACKAGE_CACHE))
        .help("Remove package manager caches in the same layer that installs packages"),
    Opt::file("profiles")
        .ini_in("profiles", "<name>")
        .help("Named selections on top of profiles/: name = [regexes]"),
    Opt::file("users")
        .ini_in("<name>-user", "uid, gid, group")
        .help("Service users added to (or replacing entries of) the users table"),
    Opt::file("rpm-setup-config")
        .ini("rpm_setup_config")
        .help("kolla's rpm_setup_config: .rpm / .repo files set up before any package"),
    Opt::file("apt-sources-list")
        .ini("apt_sources_list")
        .help("kolla's apt_sources_list: a file that replaces base's `sources.list` (Debian, Ubuntu)"),
    Opt::file("apt-preferences")
        .ini("apt_preferences")
        .help("kolla's apt_preferences: a file that replaces base's `apt_preferences`"),
    Opt::file("pip-index-url")
        .ini("pip_index_url")
        .help("kolla's pip index URL: adds `ARG PIP_INDEX_URL` after the first FROM"),
    Opt::file("pip-trusted-host")
        .ini("pip_trusted_host")
        .help("kolla's pip trusted host: adds `ARG PIP_TRUSTED_HOST` after the first FROM"),
    Opt::file("pip-extra-index-url")
        .ini("pip_extra_index_url")
        .help("kolla's pip extra index URL: adds `ARG PIP_EXTRA_INDEX_URL` after the first FROM"),
];

/// The option of a flag (`threads` for `--threads`) or of a positional's value name.
pub fn by_flag(name: &str) -> Option<&'static Opt> {
    OPTIONS.iter().find(|o| match o.flag {
        Flag::Long(n) | Flag::Positional(n) => n == name,
        Flag::None => false,
    })
}

/// A clap argument's name as the table has it: its long flag, or a positional's value name.
pub fn arg_name(arg: &clap::Arg) -> String {
    match arg.get_long() {
        Some(long) => long.to_string(),
        None => arg
            .get_value_names()
            .and_then(|names| names.first())
            .map(|n| n.to_string())
            .unwrap_or_default(),
    }
}

/// Gives a clap argument its help from the table (`#[command(mut_args = …)]` on `Cli`).
pub fn with_help(arg: clap::Arg) -> clap::Arg {
    let name = arg_name(&arg);
    let arg = match by_flag(&name) {
        Some(opt) => arg.help(opt.cli_help()),
        None => match inverse_of(&name) {
            Some(flag) => arg.help(format!("The inverse of --{flag}")),
            None => arg,
        },
    };
    // oslo spells some flags with `_` (`--network_mode`, `--podman_base_url`): both spellings
    // of every flag are taken
    let underscored = name.replace('-', "_");
    if arg.get_long().is_some()
        && underscored != name
        && !arg
            .get_all_aliases()
            .is_some_and(|a| a.contains(&underscored.as_str()))
    {
        // clap takes `&'static str` names (without its `string` feature): one short string per
        // flag, for the life of the process
        arg.alias(underscored.leak() as &'static str)
    } else {
        arg
    }
}

/// The flag a hidden `--no<flag>` argument inverts (oslo.config's inverse of a boolean option).
pub fn inverse_of(name: &str) -> Option<&'static str> {
    let flag = name.strip_prefix("no")?;
    match by_flag(flag)?.flag {
        Flag::Long(flag) => Some(flag),
        Flag::None | Flag::Positional(_) => None,
    }
}

/// The `[DEFAULT]` keys of kolla's INI file this tool reads.
pub fn ini_keys() -> impl Iterator<Item = &'static str> {
    OPTIONS
        .iter()
        .filter_map(|o| o.ini)
        .filter(|ini| ini.section == "DEFAULT")
        .map(|ini| ini.name)
}

#[cfg(test)]
mod tests {
    //! The table against everything that repeats it: each check returns the problems it finds,
    //! naming the option, so a failure says what to fix; the `*_notices_*` tests show each check
    //! can fail.

    use std::collections::BTreeSet;
    use std::path::Path;

    use clap::CommandFactory;

    use super::*;
    use crate::config::FileConfig;
    use crate::config::cli::Cli;
    use crate::config::tests::assert_mentions;

    fn repo_file(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[track_caller]
    fn assert_none(problems: Vec<String>) {
        assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    }

    /// A clap argument's kind of flag and its name as the table has it.
    fn arg_kind_and_name(arg: &clap::Arg) -> (Flag, String) {
        let kind = match arg.get_long() {
            Some(_) => Flag::Long(""),
            None => Flag::Positional(""),
        };
        (kind, arg_name(arg))
    }

    fn same_kind(a: Flag, b: Flag) -> bool {
        std::mem::discriminant(&a) == std::mem::discriminant(&b)
    }

    /// Every argument of the command is in the table with its help, and every flag of the table
    /// is an argument.
    fn check_cli(command: &clap::Command) -> Vec<String> {
        let mut problems = Vec::new();
        let mut seen = BTreeSet::new();
        for arg in command.get_arguments() {
            if matches!(arg.get_id().as_str(), "help" | "version") {
                continue;
            }
            let (kind, name) = arg_kind_and_name(arg);
            seen.insert(name.clone());
            match by_flag(&name) {
                // oslo's `--no<flag>`: hidden, its help generated
                None if inverse_of(&name).is_some() => {
                    let flag = inverse_of(&name).unwrap_or_default();
                    let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                    if !arg.is_hide_set() || help != format!("The inverse of --{flag}") {
                        problems.push(format!(
                            "`{name}` should be hidden with the help `The inverse of --{flag}`"
                        ));
                    }
                }
                None => problems.push(format!("the CLI's `{name}` is not in OPTIONS")),
                Some(opt) if !same_kind(opt.flag, kind) => problems.push(format!(
                    "`{name}` is {kind:?} in the CLI but {:?} in OPTIONS",
                    opt.flag
                )),
                Some(opt) => {
                    let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                    if help != opt.cli_help() {
                        problems.push(format!(
                            "`{name}`'s help is `{help}`, not the table's `{}`",
                            opt.cli_help()
                        ));
                    }
                }
            }
        }
        for opt in OPTIONS {
            if let Flag::Long(name) | Flag::Positional(name) = opt.flag
                && !seen.contains(name)
            {
                problems.push(format!(
                    "OPTIONS has `{name}`, the CLI has no such argument"
                ));
            }
        }
        problems
    }

    /// The keys `FileConfig` accepts, as serde sees them (its `deny_unknown_fields` list).
    fn file_config_keys() -> Vec<&'static str> {
        use serde::de::{self, Deserializer, Visitor};

        struct Fields<'a>(&'a mut &'static [&'static str]);

        impl<'de> Deserializer<'de> for Fields<'_> {
            type Error = de::value::Error;

            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(de::Error::custom("not a struct"))
            }

            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                *self.0 = fields;
                Err(de::Error::custom("fields read"))
            }

            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
                identifier ignored_any
            }
        }

        let mut fields: &'static [&'static str] = &[];
        let _ = <FileConfig as serde::Deserialize>::deserialize(Fields(&mut fields));
        fields.to_vec()
    }

    fn check_file_keys(keys: &[&str]) -> Vec<String> {
        let mut problems = Vec::new();
        for key in keys {
            if !OPTIONS.iter().any(|o| o.toml == Some(key)) {
                problems.push(format!(
                    "build.toml key `{key}` (FileConfig) is not in OPTIONS"
                ));
            }
        }
        for key in OPTIONS.iter().filter_map(|o| o.toml) {
            if !keys.contains(&key) {
                problems.push(format!(
                    "OPTIONS has the file key `{key}`, FileConfig does not"
                ));
            }
        }
        problems
    }

    /// Whether a value is the default; `None` when the default is not a value to compare.
    fn is_default(default: Default, value: &toml::Value) -> Option<bool> {
        use toml::Value;
        Some(match default {
            Default::Bool(b) => *value == Value::Boolean(b),
            Default::Int(n) => value.as_integer() == i64::try_from(n).ok(),
            Default::Str(s) | Default::EnvOr(_, s) => value.as_str() == Some(s),
            Default::Empty => value.as_array().is_some_and(|a| a.is_empty()),
            Default::None | Default::Described(_) => return None,
        })
    }

    /// build.toml with its commented-out keys (`# key = value`, `# [table]`) put back.
    fn documented(text: &str) -> String {
        let key = regex::Regex::new(r"^#\s?([a-z][a-z0-9-]*\s*=\s*\S.*)$").unwrap();
        let table = regex::Regex::new(r"^#\s?(\[\[?[a-z][a-z0-9.-]*\]\]?)\s*$").unwrap();
        text.lines()
            .map(
                |line| match key.captures(line).or_else(|| table.captures(line)) {
                    Some(c) => c[1].to_string(),
                    None => line.to_string(),
                },
            )
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// build.toml documents every key of the table (set or commented out), no other key, and
    /// each with the table's default; the keys it sets are defaults.
    fn check_build_toml(text: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let documented_text = documented(text);
        if let Err(e) = FileConfig::parse(&documented_text) {
            problems.push(format!(
                "build.toml with its comments' keys put back is not a valid config: {e}"
            ));
        }
        let (set, documented) = match (
            toml::from_str::<toml::Table>(text),
            toml::from_str::<toml::Table>(&documented_text),
        ) {
            (Ok(set), Ok(documented)) => (set, documented),
            (Err(e), _) | (_, Err(e)) => return vec![format!("build.toml: {e}")],
        };
        for opt in OPTIONS {
            let Some(key) = opt.toml else { continue };
            match documented.get(key) {
                None => problems.push(format!("build.toml does not document `{key}`")),
                Some(value) if is_default(opt.default, value) == Some(false) => {
                    problems.push(format!(
                        "build.toml shows `{key} = {value}`, the default is {:?}",
                        opt.default
                    ))
                }
                Some(_) => {}
            }
        }
        for (key, value) in &documented {
            let Some(opt) = OPTIONS.iter().find(|o| o.toml == Some(key)) else {
                problems.push(format!("build.toml documents `{key}`, which OPTIONS lacks"));
                continue;
            };
            // A key build.toml sets must be its default (or an empty table, a heading).
            let Some(set_value) = set.get(key) else {
                continue;
            };
            let empty = set_value.as_table().is_some_and(|t| t.is_empty());
            if is_default(opt.default, value).is_none() && !empty {
                problems.push(format!(
                    "build.toml sets `{key}`, which has no default to show: comment it out"
                ));
            }
        }
        problems
    }

    /// The rows of README's flag table: (first column, whole row).
    fn readme_rows(readme: &str) -> Vec<(String, String)> {
        readme
            .lines()
            .skip_while(|line| line.trim() != "### Flags")
            .skip(1)
            .skip_while(|line| !line.starts_with('|'))
            .take_while(|line| line.starts_with('|'))
            .skip(2)
            .map(|row| {
                let row = row.replace("\\|", "/");
                let first = row.split('|').nth(1).unwrap_or_default().to_string();
                (first, row)
            })
            .collect()
    }

    /// README's flag table lists every flag of the table (with its short form) and no other;
    /// a row states each number default, and a row of one option that states a default states
    /// the table's.
    fn check_readme(readme: &str, command: &clap::Command) -> Vec<String> {
        let long = regex::Regex::new(r"--[a-z][a-z0-9-]*").unwrap();
        let rows = readme_rows(readme);
        let mut problems = Vec::new();
        if rows.is_empty() {
            return vec!["README has no `### Flags` table".to_string()];
        }
        for opt in OPTIONS {
            let flag = match opt.flag {
                Flag::None => continue,
                Flag::Positional(name) => format!("{name}..."),
                Flag::Long(name) => format!("--{name}"),
            };
            let in_first_column = |row: &&(String, String)| {
                long.find_iter(&row.0).any(|m| m.as_str() == flag) || row.0.contains(&flag)
            };
            let Some((first, row)) = rows.iter().find(in_first_column) else {
                problems.push(format!("README's flag table lacks `{flag}`"));
                continue;
            };
            if let Flag::Long(name) = opt.flag
                && let Some(short) = command
                    .get_arguments()
                    .find(|a| a.get_long() == Some(name))
                    .and_then(|a| a.get_short())
                && !first.contains(&format!("-{short}, {flag}"))
            {
                problems.push(format!("README's row of `{flag}` lacks `-{short}, {flag}`"));
            }
            let options_in_row = long.find_iter(first).count();
            match opt.default {
                Default::Int(n) if !row.contains(&format!("default {n}")) => problems.push(
                    format!("README's row of `{flag}` does not say `default {n}`"),
                ),
                Default::Str(value) | Default::EnvOr(_, value)
                    if options_in_row == 1 && row.contains("default") && !row.contains(value) =>
                {
                    problems.push(format!(
                        "README's row of `{flag}` states a default other than `{value}`"
                    ))
                }
                _ => {}
            }
        }
        for (first, _) in &rows {
            for m in long.find_iter(first) {
                let name = &m.as_str()[2..];
                if by_flag(name).is_none() && inverse_of(name).is_none() {
                    problems.push(format!(
                        "README lists `{}`, which OPTIONS lacks",
                        m.as_str()
                    ));
                }
            }
        }
        problems
    }

    #[test]
    fn every_cli_argument_is_in_the_table_with_its_help() {
        assert_none(check_cli(&Cli::command()));
    }

    #[test]
    fn every_file_key_is_in_the_table() {
        let keys = file_config_keys();
        assert!(keys.contains(&"threads"), "{keys:?}");
        assert_none(check_file_keys(&keys));
    }

    #[test]
    fn build_toml_documents_every_key_with_its_default() {
        assert_none(check_build_toml(&repo_file("build.toml")));
    }

    #[test]
    fn readme_flag_table_lists_every_flag() {
        assert_none(check_readme(&repo_file("README.md"), &Cli::command()));
    }

    #[test]
    fn ini_keys_are_the_keys_the_ini_reader_takes() {
        for key in ini_keys() {
            if let Err(e) = FileConfig::parse_ini(&format!("[DEFAULT]\n{key} = 1\n")) {
                assert!(!e.contains("unknown option"), "`{key}`: {e}");
            }
        }
        // and the reader takes no `[DEFAULT]` key the table lacks
        let source = repo_file("src/config/mod.rs");
        let start = source.find("fn set_ini_default").unwrap();
        let end = start + source[start..].find("KOLLA_ONLY_OPTIONS.contains").unwrap();
        let arm = regex::Regex::new(r#"(?m)^\s*"([a-z_]+)"\s*=>"#).unwrap();
        let keys: Vec<&str> = ini_keys().collect();
        let arms: Vec<&str> = arm
            .captures_iter(&source[start..end])
            .map(|c| c.get(1).unwrap().as_str())
            .collect();
        assert!(arms.contains(&"threads"), "{arms:?}");
        for key in arms {
            assert!(
                keys.contains(&key),
                "the INI reader takes `{key}`; OPTIONS lacks it"
            );
        }
    }

    #[test]
    fn enum_defaults_agree_with_the_types() {
        use crate::common::types::{ExportFormat, PushMode, SummaryFormat};
        use clap::ValueEnum;
        fn name<T: ValueEnum + std::default::Default>() -> String {
            T::default()
                .to_possible_value()
                .unwrap()
                .get_name()
                .to_string()
        }
        for (flag, default) in [
            ("export-format", name::<ExportFormat>()),
            ("push-mode", name::<PushMode>()),
            ("format", name::<SummaryFormat>()),
        ] {
            assert_eq!(
                by_flag(flag).unwrap().default,
                Default::Str(default.leak()),
                "--{flag}"
            );
        }
    }

    #[test]
    fn check_cli_notices_an_extra_or_missing_flag() {
        let extra = Cli::command().arg(clap::Arg::new("bogus").long("bogus"));
        assert_mentions(&check_cli(&extra), &["`bogus`"]);
        let fewer = Cli::command().mut_args(|a| {
            if a.get_long() == Some("threads") {
                a.long("threadz")
            } else {
                a
            }
        });
        assert_mentions(&check_cli(&fewer), &["`threadz`", "`threads`"]);
    }

    #[test]
    fn check_file_keys_notices_an_unknown_key() {
        let mut keys = file_config_keys();
        keys.retain(|k| *k != "logs-dir");
        keys.push("bogus-key");
        assert_mentions(&check_file_keys(&keys), &["`bogus-key`", "`logs-dir`"]);
    }

    #[test]
    fn check_build_toml_notices_a_wrong_default_or_a_missing_key() {
        let text = repo_file("build.toml");
        assert!(text.contains("\nthreads = 8\n"));
        for (changed, problem) in [
            (
                text.replace("\nthreads = 8\n", "\nthreads = 9\n"),
                "`threads = 9`",
            ),
            (text.replace("\nthreads = 8\n", "\n"), "`threads`"),
            (format!("bogus = 1\n{text}"), "`bogus`"),
        ] {
            assert_mentions(&check_build_toml(&changed), &[problem]);
        }
    }

    #[test]
    fn check_readme_notices_a_missing_flag_or_default() {
        let readme = repo_file("README.md");
        let row = readme
            .lines()
            .find(|l| l.starts_with("| `-T, --threads N`"))
            .unwrap();
        let command = Cli::command();
        for (changed_row, problem) in [
            (String::new(), "`--threads`"),
            (row.replace("8", "16"), "default 8"),
            (row.replace("-T, ", ""), "`-T, --threads`"),
        ] {
            let problems = check_readme(&readme.replace(row, &changed_row), &command);
            assert_mentions(&problems, &[problem]);
        }
    }
}
