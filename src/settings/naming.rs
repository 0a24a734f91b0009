//! The naming section: base, install type, release and the parts of every image reference,
//! checked against the Docker reference grammar.

use std::path::Path;

use crate::common::error::{Error, Result};
use crate::common::types::{BaseDistro, InstallType};
use crate::config::FileConfig;
use crate::config::cli::Cli;
use crate::config::options::{
    DEFAULT_BASE, DEFAULT_INSTALL_TYPE, DEFAULT_MAINTAINER, DEFAULT_NAMESPACE,
    DEFAULT_OPENSTACK_CODENAME, DEFAULT_OPENSTACK_RELEASE, DEFAULT_PREFIX,
};
use crate::tree::releases::{ReleaseFacts, ReleaseTable};

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

    /// kolla's branch of the release's sources: `stable-<release>`, `master` for master.
    pub fn openstack_branch(&self) -> String {
        match self.openstack_release.as_str() {
            "master" => "master".to_string(),
            release => format!("stable-{release}"),
        }
    }

    pub fn debian_arch(&self) -> &str {
        match self.base_arch.as_str() {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        }
    }
}

/// What a setting neither given nor in the file becomes: the release table's row for this base,
/// else the built-in defaults.
struct ReleaseDefaults {
    release: String,
    base_image: String,
    base_tag: String,
    codename: String,
}

impl ReleaseDefaults {
    fn of(facts: Option<&ReleaseFacts>, base: BaseDistro) -> ReleaseDefaults {
        match facts {
            Some(facts) => ReleaseDefaults {
                release: facts.name.clone(),
                base_image: facts.base_image.clone(),
                base_tag: facts.base_tag.clone(),
                codename: facts.codename.clone(),
            },
            None => ReleaseDefaults {
                release: DEFAULT_OPENSTACK_RELEASE.to_string(),
                base_image: base.default_image().to_string(),
                base_tag: base.default_tag().to_string(),
                codename: DEFAULT_OPENSTACK_CODENAME.to_string(),
            },
        }
    }
}

/// The naming of the run and the release row it selects (from the tree's `base/releases.toml`;
/// a tree without one, kolla's, gets the built-in defaults). Checked.
pub(super) fn resolve(
    cli: &Cli,
    file: &FileConfig,
    images_dir: &Path,
) -> Result<(Naming, Option<ReleaseFacts>)> {
    let base = cli.base.or(file.base).unwrap_or(DEFAULT_BASE);
    let install_type = cli
        .install_type
        .or(file.install_type)
        .unwrap_or(DEFAULT_INSTALL_TYPE);
    let asked_release = cli
        .openstack_release
        .clone()
        .or(file.openstack_release.clone());
    let release = match ReleaseTable::load(images_dir)? {
        Some(table) => Some(table.facts(asked_release.as_deref(), base, install_type)?),
        None => None,
    };
    let defaults = ReleaseDefaults::of(release.as_ref(), base);
    let openstack_release = asked_release.unwrap_or(defaults.release);
    let either = |cli: &Option<String>, file: &Option<String>| cli.clone().or(file.clone());
    let prefix_template = either(&cli.image_name_prefix, &file.image_name_prefix)
        .unwrap_or_else(|| DEFAULT_PREFIX.to_string());
    let naming = Naming {
        base,
        base_image: either(&cli.base_image, &file.base_image).unwrap_or(defaults.base_image),
        base_tag: either(&cli.base_tag, &file.base_tag).unwrap_or(defaults.base_tag),
        base_arch: either(&cli.base_arch, &file.base_arch)
            .unwrap_or_else(|| std::env::consts::ARCH.to_string()),
        install_type,
        registry: either(&cli.registry, &file.registry).filter(|r| !r.is_empty()),
        namespace: either(&cli.namespace, &file.namespace)
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()),
        image_prefix: prefix_template
            .replace("{base}", base.as_str())
            .replace("{install_type}", install_type.as_str()),
        tag: either(&cli.tag, &file.tag).unwrap_or_else(|| openstack_release.clone()),
        openstack_release_codename: either(
            &cli.openstack_release_codename,
            &file.openstack_release_codename,
        )
        .unwrap_or(defaults.codename),
        openstack_release,
        maintainer: either(&cli.maintainer, &file.maintainer)
            .unwrap_or_else(|| DEFAULT_MAINTAINER.to_string()),
    };
    validate(&naming)?;
    Ok((naming, release))
}

fn validate(naming: &Naming) -> Result<()> {
    if !matches!(naming.base_arch.as_str(), "x86_64" | "aarch64") {
        return Err(Error::Setting {
            key: "base-arch".into(),
            message: "expected `x86_64` or `aarch64`".into(),
        });
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
