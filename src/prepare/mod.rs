//! From settings to a checked plan: read the tree, render every image, build the graph and
//! select. Everything before the engine is touched.

pub mod context;
pub mod plan;
pub mod workdir;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::common::error::{Error, Result, TemplateError};
use crate::common::types::{BaseDistro, InstallType};
use crate::graph::ImageGraph;
use crate::graph::selection::{Filter, Profiles, Selection, select, unbuildable_for};
use crate::prepare::context::ExtraFiles;
use crate::render::{Override, Renderer, Variables};
use crate::settings::Settings;
use crate::tree::Tree;

/// The users table shipped with the tool, used when a tree has none (kolla's tree keeps its
/// table in Python code).
const BUILTIN_USERS: &str = include_str!("../../base/users.toml");
const ARCHES: [&str; 2] = ["x86_64", "aarch64"];

/// A rendered and checked tree, ready to list, write or build.
pub struct Prepared {
    pub tree: Tree,
    /// Rendered Dockerfiles by image name.
    pub dockerfiles: BTreeMap<String, String>,
    pub graph: ImageGraph,
    pub selection: Selection,
    /// Files some images get besides their own (the CA certificates of `base`).
    pub extra_files: ExtraFiles,
    pub render_time: Duration,
}

pub fn prepare(settings: &Settings) -> Result<Prepared> {
    // A release row saying the distro has no packages of the release: nothing `binary` is built
    // (or listed as buildable) under this release's tag from another release's packages;
    // checked before any template is read.
    if let Some(reason) = settings
        .release
        .as_ref()
        .and_then(|r| r.unbuildable.as_ref())
        && !settings.selection.enable_unbuildable
        && !settings.actions.template_only
    {
        return Err(Error::Setting {
            key: "install-type".into(),
            message: format!(
                "`{}` images of OpenStack {} are unbuildable on {}: {reason} \
                 (--enable-unbuildable builds them anyway)",
                settings.naming.install_type,
                settings.naming.openstack_release,
                settings.naming.base
            ),
        });
    }
    let tree = Tree::load(&settings.images_dir, &settings.docker_dirs)?;
    check_image_names(&tree, &settings.naming)?;
    // A kolla-layout tree gets the users, repositories and unbuildable images of its kolla
    // release (`src/compat/kolla.toml`).
    let kolla = crate::compat::kolla_for(&tree.root, Some(&settings.kolla_version));
    let users_absent = kolla
        .as_ref()
        .map(|k| k.release.users_absent.clone())
        .unwrap_or_default();
    let users =
        crate::tree::users::load_for_tree(&tree, BUILTIN_USERS, &settings.users, &users_absent)?;
    let mut repos = match &kolla {
        Some(kolla) => crate::compat::load_repos(
            &tree,
            kolla,
            settings.repos_yaml.as_deref(),
            settings.naming.base,
            &settings.naming.base_tag,
        )?,
        None => crate::tree::repos::load_for_tree(&tree, settings.repos_yaml.as_deref())?,
    };
    // Our tree's release row (base/releases.toml) sets its repositories' suites and URLs.
    if let (Some(repos), Some(release)) = (repos.as_mut(), &settings.release) {
        for (name, keys) in &release.repos {
            repos.overlay_keys(settings.naming.base.as_str(), name, keys);
        }
    }
    let overrides = settings
        .template_overrides
        .iter()
        .map(|path| {
            let source = std::fs::read_to_string(path).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            Ok(Override {
                path: path.display().to_string(),
                source,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let variables = Variables {
        naming: settings.naming.clone(),
        users,
        clean_package_cache: settings.clean_package_cache,
        use_dumb_init: settings.use_dumb_init,
        docker_healthchecks: settings.docker_healthchecks,
        kolla_version: settings.kolla_version.clone(),
        supported_distro_name: settings.supported_distro_name.clone(),
        build_date: kolla.as_ref().is_some_and(|k| k.release.build_date),
        repos_yaml: settings
            .repos_yaml
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        rpm_setup: settings.rpm_setup.clone(),
        pip_args: settings.pip_args.clone(),
        ca_certificates: ca_certificate_files(&settings.build.ca_certificates)
            .into_iter()
            .map(|(name, _)| name)
            .collect(),
        env: settings.env.clone(),
    };

    let started = Instant::now();
    let renderer = Renderer::new(&tree, &variables, repos, &overrides, settings.undefined);
    let images: Vec<_> = tree.images.iter().collect();
    let mut dockerfiles = BTreeMap::new();
    let mut errors: Vec<TemplateError> = Vec::new();
    for (image, rendered) in renderer.render_all(&images) {
        match rendered {
            Ok(text) => {
                dockerfiles.insert(image.name.clone(), text);
            }
            Err(err) => errors.push(*err),
        }
    }
    let render_time = started.elapsed();
    if !errors.is_empty() {
        // One broken shared file breaks many images: show each distinct place once.
        let mut seen = BTreeSet::new();
        errors.retain(|e| seen.insert((e.path.clone(), e.line, e.column, e.message.clone())));
        return Err(if errors.len() == 1 {
            errors.remove(0).into()
        } else {
            Error::Templates {
                count: errors.len(),
                errors,
            }
        });
    }

    let naming = &settings.naming;
    let ours_prefix = format!("{}/{}", naming.full_namespace(), naming.image_prefix);
    let graph = ImageGraph::build(
        &dockerfiles,
        |n| naming.reference(n),
        &ours_prefix,
        &BTreeMap::new(),
    )?;

    let profiles = Profiles::load(
        settings
            .data_dir
            .as_deref()
            .map(|d| d.join("profiles"))
            .as_deref(),
        &settings.selection.extra_profiles,
    )?;
    let patterns = if settings.selection.regexes.is_empty() {
        profiles.patterns(&settings.selection.profiles)?
    } else {
        settings.selection.regexes.clone()
    };
    let tree_unbuildable = tree.read_data(&["images/unbuildable.toml", "unbuildable.toml"])?;
    let unbuildable = if settings.selection.enable_unbuildable {
        BTreeSet::new()
    } else if let (None, Some(kolla)) = (&tree_unbuildable, &kolla) {
        kolla
            .release
            .unbuildable(naming.base.as_str(), &naming.base_arch, &naming.base_tag)
    } else {
        match tree_unbuildable {
            Some((path, text)) => {
                let facts = [
                    naming.base.as_str(),
                    naming.install_type.as_str(),
                    naming.base_arch.as_str(),
                ];
                let known: Vec<&str> = BaseDistro::ALL
                    .iter()
                    .map(|b| b.as_str())
                    .chain(InstallType::ALL.iter().map(|t| t.as_str()))
                    .chain(ARCHES)
                    .collect();
                unbuildable_for(&text, &path, &facts, &known)?
            }
            None => BTreeSet::new(),
        }
    };
    let filter = Filter {
        patterns,
        skip_parents: settings.selection.skip_parents,
        unbuildable,
    };
    let selection = select(&graph, &filter)?;
    for cert in &settings.build.ca_certificates {
        if !cert.is_file() {
            return Err(Error::Setting {
                key: "ca-certificate".into(),
                message: format!("`{}` is not a readable file", cert.display()),
            });
        }
    }
    let mut extra_files = ExtraFiles::default();
    let certificates: Vec<(String, std::path::PathBuf)> =
        ca_certificate_files(&settings.build.ca_certificates)
            .into_iter()
            // A certificate is sent as its content even where the path given is a symlink.
            .map(|(name, path)| {
                let path = std::fs::canonicalize(&path).unwrap_or(path);
                (format!("ca-certificates/{name}"), path)
            })
            .collect();
    let mut base_files = certificates;
    if let Some(release) = &settings.release {
        // The selected release's pins, where base's template expects them.
        if !release.constraints.is_file() {
            return Err(Error::Setting {
                key: "openstack-release".into(),
                message: format!(
                    "the constraints file of OpenStack {}, `{}`, is missing \
                     (scripts/make-constraints.sh {} writes it)",
                    release.name,
                    release.constraints.display(),
                    release.name
                ),
            });
        }
        base_files.push((
            "upper-constraints.txt".to_string(),
            release.constraints.clone(),
        ));
    }
    if !base_files.is_empty() {
        extra_files.0.insert("base".to_string(), base_files);
    }
    Ok(Prepared {
        tree,
        dockerfiles,
        graph,
        selection,
        extra_files,
        render_time,
    })
}

/// Every image's name, with the prefix, must be a Docker repository name: an image folder named
/// `Keystone` or `my image` is an error naming the folder, not a refusal from the engine later.
fn check_image_names(tree: &Tree, naming: &crate::settings::Naming) -> Result<()> {
    for image in &tree.images {
        let name = format!("{}{}", naming.image_prefix, image.name);
        let full = format!("{}/{name}", naming.full_namespace());
        let checked = crate::common::reference::path_component(&name)
            .and_then(|()| crate::common::reference::name(&full));
        if let Err(message) = checked {
            let folder = tree
                .file(&image.template)
                .and_then(|t| t.parent())
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| image.dir.clone());
            return Err(Error::BadTree {
                path: folder.into(),
                reason: format!(
                    "the image `{}` would be named {message} (the Docker reference grammar); rename the folder",
                    image.name
                ),
            });
        }
    }
    Ok(())
}

/// The names the CA certificates get in `base`'s context (`ca-certificates/<name>`): numbered so
/// equal file names cannot collide, ending in `.crt` as update-ca-certificates wants.
pub fn ca_certificate_files(paths: &[std::path::PathBuf]) -> Vec<(String, std::path::PathBuf)> {
    paths
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("ca");
            let stem: String = stem
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            (format!("kolla-build-{i}-{stem}.crt"), path.clone())
        })
        .collect()
}
