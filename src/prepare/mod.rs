//! From settings to a checked plan: read the tree, render every image, build the graph and
//! select. Everything before the engine is touched.

pub mod context;
pub mod patches;
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
use crate::report::event::Notice;
use crate::settings::{Naming, Settings};
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
    /// Files some images get besides their own (the CA certificates of `base`, the patches of
    /// `--patches-path`).
    pub extra_files: ExtraFiles,
    /// Directories every image's context holds, even empty (`patches/` with `--patches-path`).
    pub context_dirs: Vec<String>,
    /// What the user should hear about the inputs (warnings about the patches).
    pub notices: Vec<Notice>,
    pub render_time: Duration,
}

/// Reads the tree, renders every image, builds the graph and selects. The settings were checked
/// when they were resolved; the profiles they name (read by `graph/`, a later stage than
/// `settings/`) are resolved first here, so what fails after that is the tree.
pub fn prepare(settings: &Settings) -> Result<Prepared> {
    let patterns = selection_patterns(settings)?;
    let inputs = load_inputs(settings)?;
    let variables = variables(settings, inputs.users);
    let started = Instant::now();
    let dockerfiles = render_tree(
        settings,
        &inputs.tree,
        &variables,
        inputs.repos,
        &inputs.overrides,
    )?;
    let render_time = started.elapsed();
    let graph = build_graph(&settings.naming, &dockerfiles)?;
    let selection = select_images(settings, patterns, &inputs.tree, &graph)?;
    let mut extra_files = extra_files(settings);
    let (context_dirs, notices) = add_patches(settings, &inputs.tree, &mut extra_files)?;
    Ok(Prepared {
        tree: inputs.tree,
        dockerfiles,
        graph,
        selection,
        extra_files,
        context_dirs,
        notices,
        render_time,
    })
}

/// What rendering reads besides the settings.
struct Inputs {
    tree: Tree,
    users: crate::tree::users::Users,
    repos: Option<crate::tree::repos::Repos>,
    overrides: Vec<Override>,
}

/// The tree (main tree and overlays), its users and repositories (a kolla-layout tree's of its
/// kolla release, `src/compat/kolla.toml`; ours laid over by the release row), and the template
/// overrides.
fn load_inputs(settings: &Settings) -> Result<Inputs> {
    let tree = Tree::load(&settings.images_dir, &settings.docker_dirs)?;
    check_image_names(&tree, &settings.naming)?;
    let kolla = settings.kolla.as_ref();
    let users_absent = kolla
        .map(|k| k.release.users_absent.clone())
        .unwrap_or_default();
    let users =
        crate::tree::users::load_for_tree(&tree, BUILTIN_USERS, &settings.users, &users_absent)?;
    let mut repos = match kolla {
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
    Ok(Inputs {
        tree,
        users,
        repos,
        overrides,
    })
}

/// What every template sees.
fn variables(settings: &Settings, users: crate::tree::users::Users) -> Variables {
    Variables {
        naming: settings.naming.clone(),
        users,
        clean_package_cache: settings.clean_package_cache,
        use_dumb_init: settings.use_dumb_init,
        docker_healthchecks: settings.docker_healthchecks,
        kolla_version: settings.kolla_version.clone(),
        supported_distro_name: settings.supported_distro_name.clone(),
        build_date: settings
            .kolla
            .as_ref()
            .is_some_and(|k| k.release.build_date),
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
        patches_path: (settings.sources.patches_path.as_ref()).map(|p| p.display().to_string()),
        env: settings.env.clone(),
    }
}

/// Every image's Dockerfile, by name; every error at once, each distinct place once (one broken
/// shared file breaks many images).
fn render_tree(
    settings: &Settings,
    tree: &Tree,
    variables: &Variables,
    repos: Option<crate::tree::repos::Repos>,
    overrides: &[Override],
) -> Result<BTreeMap<String, String>> {
    let renderer = Renderer::new(tree, variables, repos, overrides, settings.undefined);
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
    if errors.is_empty() {
        return Ok(dockerfiles);
    }
    let mut seen = BTreeSet::new();
    errors.retain(|e| seen.insert((e.path.clone(), e.line, e.column, e.message.clone())));
    Err(if errors.len() == 1 {
        errors.remove(0).into()
    } else {
        Error::Templates {
            count: errors.len(),
            errors,
        }
    })
}

/// The images and their parents, from the `FROM` lines: ours are those under our namespace and
/// prefix.
fn build_graph(naming: &Naming, dockerfiles: &BTreeMap<String, String>) -> Result<ImageGraph> {
    let ours_prefix = format!("{}/{}", naming.full_namespace(), naming.image_prefix);
    ImageGraph::build(
        dockerfiles,
        |n| naming.reference(n),
        &ours_prefix,
        &BTreeMap::new(),
    )
}

/// What selects the images: the regexes, else the patterns of the profiles (`profiles/` and the
/// file's).
fn selection_patterns(settings: &Settings) -> Result<Vec<String>> {
    if !settings.selection.regexes.is_empty() {
        return Ok(settings.selection.regexes.clone());
    }
    let profiles = Profiles::load(
        settings
            .data_dir
            .as_deref()
            .map(|d| d.join("profiles"))
            .as_deref(),
        &settings.selection.extra_profiles,
    )?;
    profiles.patterns(&settings.selection.profiles)
}

/// The images the run is about: those `patterns` match (and their parents), less the
/// unbuildable ones.
fn select_images(
    settings: &Settings,
    patterns: Vec<String>,
    tree: &Tree,
    graph: &ImageGraph,
) -> Result<Selection> {
    let filter = Filter {
        patterns,
        skip_parents: settings.selection.skip_parents,
        unbuildable: unbuildable_images(settings, tree)?,
    };
    select(graph, &filter)
}

/// The images left out on this base, install type and arch: the tree's `unbuildable.toml`, else
/// (kolla's tree) its release's table; none with `--enable-unbuildable`.
fn unbuildable_images(settings: &Settings, tree: &Tree) -> Result<BTreeSet<String>> {
    if settings.selection.enable_unbuildable {
        return Ok(BTreeSet::new());
    }
    let naming = &settings.naming;
    let tree_unbuildable = tree.read_data(&["images/unbuildable.toml", "unbuildable.toml"])?;
    match (tree_unbuildable, &settings.kolla) {
        (None, Some(kolla)) => {
            Ok(kolla
                .release
                .unbuildable(naming.base.as_str(), &naming.base_arch, &naming.base_tag))
        }
        (Some((path, text)), _) => {
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
            unbuildable_for(&text, &path, &facts, &known)
        }
        (None, None) => Ok(BTreeSet::new()),
    }
}

/// Files `base` gets besides its own: the CA certificates and the selected release's pins
/// (both checked when the settings were resolved).
fn extra_files(settings: &Settings) -> ExtraFiles {
    let mut base_files: Vec<(String, std::path::PathBuf)> =
        ca_certificate_files(&settings.build.ca_certificates)
            .into_iter()
            // A certificate is sent as its content even where the path given is a symlink.
            .map(|(name, path)| {
                let path = std::fs::canonicalize(&path).unwrap_or(path);
                (format!("ca-certificates/{name}"), path)
            })
            .collect();
    if let Some(release) = &settings.release {
        // Where base's template expects them.
        base_files.push((
            "upper-constraints.txt".to_string(),
            release.constraints.clone(),
        ));
    }
    // kolla's apt_sources_list / apt_preferences, in place of base's own files of those names.
    base_files.extend(settings.base_replacements.iter().cloned());
    let mut extra_files = ExtraFiles::default();
    if !base_files.is_empty() {
        extra_files.0.insert("base".to_string(), base_files);
    }
    extra_files
}

/// kolla's `--patches-path`: the patches of every image of the tree into its extra files, and
/// `patches/` into every context (kolla makes it for every image). Returns the directories
/// every context gets and warnings about folders that apply nothing. Nothing without the option,
/// so the contexts (and their input hashes) stay as they were.
fn add_patches(
    settings: &Settings,
    tree: &Tree,
    extra_files: &mut ExtraFiles,
) -> Result<(Vec<String>, Vec<Notice>)> {
    let Some(root) = &settings.sources.patches_path else {
        return Ok((Vec::new(), Vec::new()));
    };
    let images: Vec<&str> = tree.images.iter().map(|i| i.name.as_str()).collect();
    let found = patches::collect(root, &images).map_err(|e| Error::Sources(Box::new(e)))?;
    for (image, files) in found.files {
        extra_files.0.entry(image).or_default().extend(files);
    }
    let unused = found.unused.iter().map(|folder| {
        Notice::Warning(format!(
            "`{}` of `--patches-path` is named after no image of the tree: its patches are not \
             applied (a folder is named after its image, as `keystone-base`)",
            folder.display()
        ))
    });
    let without_series = found.without_series.iter().map(|folder| {
        Notice::Warning(format!(
            "`{}` has no `series` file: none of its patches is applied (list them, one per \
             line, in `{}`)",
            folder.display(),
            folder.join("series").display()
        ))
    });
    let notices = unused.chain(without_series).collect();
    Ok((vec![patches::CONTEXT_DIR.to_string()], notices))
}

/// Every image's name, with the prefix, must be a Docker repository name: an image folder named
/// `Keystone` or `my image` is an error naming the folder, not a refusal from the engine later.
fn check_image_names(tree: &Tree, naming: &Naming) -> Result<()> {
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
