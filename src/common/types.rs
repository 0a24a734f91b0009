//! Small value types shared by the CLI, the config file and the renderer.

use std::fmt;

use serde::Deserialize;

/// The base distribution images are built on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum BaseDistro {
    Centos,
    Rocky,
    Debian,
    Ubuntu,
}

impl BaseDistro {
    pub const ALL: [BaseDistro; 4] = [Self::Centos, Self::Rocky, Self::Debian, Self::Ubuntu];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Centos => "centos",
            Self::Rocky => "rocky",
            Self::Debian => "debian",
            Self::Ubuntu => "ubuntu",
        }
    }

    /// The image `base` is built FROM when nothing else is configured.
    pub fn default_image(self) -> &'static str {
        match self {
            Self::Centos => "quay.io/centos/centos",
            Self::Rocky => "quay.io/rockylinux/rockylinux",
            Self::Debian => "debian",
            Self::Ubuntu => "ubuntu",
        }
    }

    /// The distro release our package lists are written for.
    pub fn default_tag(self) -> &'static str {
        match self {
            Self::Centos => "stream9",
            Self::Rocky => "9",
            Self::Debian => "trixie",
            Self::Ubuntu => "24.04",
        }
    }

    /// What `/etc/os-release` PRETTY_NAME starts with, checked by the base image.
    pub fn supported_name(self) -> &'static str {
        match self {
            Self::Centos => "CentOS Stream",
            Self::Rocky => "Rocky Linux",
            Self::Debian => "Debian GNU/Linux",
            Self::Ubuntu => "Ubuntu",
        }
    }

    /// What kolla's own tree checks PRETTY_NAME against (kolla's `DISTRO_PRETTY_NAME`), for the
    /// distro releases kolla has targeted; `None` for other tags.
    pub fn kolla_pretty_name(self, tag: &str) -> Option<&'static str> {
        Some(match (self, tag) {
            (Self::Debian, "trixie") => "Debian GNU/Linux 13 (trixie)",
            (Self::Debian, "bookworm") => "Debian GNU/Linux 12 (bookworm)",
            (Self::Ubuntu, "24.04") => "Ubuntu 24.04.* LTS",
            (Self::Ubuntu, "22.04") => "Ubuntu 22.04.* LTS",
            (Self::Rocky, "10") => "Rocky Linux 10.* (Red Quartz)",
            (Self::Rocky, "9") => "Rocky Linux 9.* (Blue Onyx)",
            (Self::Centos, "stream9") => "CentOS Stream 9",
            (Self::Centos, "stream10") => "CentOS Stream 10",
            _ => return None,
        })
    }

    pub fn package_type(self) -> &'static str {
        match self {
            Self::Centos | Self::Rocky => "rpm",
            Self::Debian | Self::Ubuntu => "deb",
        }
    }

    pub fn package_manager(self) -> &'static str {
        match self {
            Self::Centos | Self::Rocky => "dnf",
            Self::Debian | Self::Ubuntu => "apt",
        }
    }
}

impl fmt::Display for BaseDistro {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How OpenStack itself gets into the images.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum InstallType {
    /// The distribution's own OpenStack packages.
    Binary,
    /// Upstream Python packages from PyPI in a virtualenv, pinned by the constraints file.
    Source,
}

impl InstallType {
    pub const ALL: [InstallType; 2] = [Self::Binary, Self::Source];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Binary => "binary",
            Self::Source => "source",
        }
    }
}

impl fmt::Display for InstallType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a template may do with a variable that is not defined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum UndefinedMode {
    /// Any use of an undefined variable is an error (ours, and the default).
    #[default]
    Strict,
    /// Jinja2's default: undefined prints as empty and iterates as empty (for kolla's own tree).
    Lenient,
}

/// How the build summary is printed on stdout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SummaryFormat {
    /// One line of JSON, kolla's shape.
    #[default]
    Json,
    /// Nothing (the table on stderr still shows).
    None,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// A registry's storage tree (`docker/registry/v2/...`), for `/opt/registry`.
    #[default]
    Registry,
    /// An OCI image layout (`oci-layout`, `index.json`, `blobs/`).
    Oci,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PushMode {
    /// Layers and manifests go out as images finish (under a staging tag); tags move only when
    /// every image succeeded.
    #[default]
    Atomic,
    /// Each image is pushed under its final tag as soon as it is built (kolla's way).
    Immediate,
}

/// Registry credentials; never printed (Debug is redacted).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.username)
    }
}

/// The engine used when none is given: the local Docker daemon.
pub const DEFAULT_ENGINE_URL: &str = "unix:///var/run/docker.sock";
