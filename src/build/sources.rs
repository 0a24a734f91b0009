//! Step 3 of a build, for kolla's own tree: each selected image's sources (kolla's source stage),
//! resolved from kolla's defaults and the configuration's sections, fetched through the
//! download cache ([`crate::fetch`]) and laid into the image's build context before it is
//! planned, so that an archive's bytes are part of its input hash. An image whose source
//! cannot be had fails with the error naming its section and location; its descendants are
//! not built; its siblings are.

use std::collections::{BTreeMap, BTreeSet};

use crate::build::work::Task;
use crate::common::error::{Error, Result};
use crate::compat::oslo::OsloError;
use crate::compat::sources::{defaults_for, resolve};
use crate::fetch::{FetchCache, FetchOptions, fetch_sources};
use crate::graph::selection::Status;
use crate::prepare::Prepared;
use crate::prepare::context::ExtraFiles;
use crate::report::event::{Notice, Outcome, Reporter};
use crate::settings::Settings;

/// The build contexts' files with the sources in, and the images whose sources failed.
pub(super) struct Sourced {
    pub(super) extra_files: ExtraFiles,
    /// Image → why its sources could not be had.
    pub(super) failed: BTreeMap<String, String>,
}

/// Fetches the sources of the selected images of kolla's tree (a tree of ours has none: its
/// contexts are its folders).
pub(super) async fn fetch(
    settings: &Settings,
    prepared: &Prepared,
    reporter: &dyn Reporter,
) -> Result<Sourced> {
    let mut sourced = Sourced {
        extra_files: ExtraFiles(prepared.extra_files.0.clone()),
        failed: BTreeMap::new(),
    };
    let Some(kolla) = &settings.kolla else {
        return Ok(sourced);
    };
    warn_of_unused_sections(settings, prepared, reporter);
    let images: Vec<String> = (prepared.selection.ids_with(Status::Matched))
        .map(|id| prepared.graph.name(id).to_string())
        .collect();
    let defaults = defaults_for(kolla)?.unwrap_or_default();
    let resolved = resolve(
        &images,
        &defaults,
        &settings.sources.sections,
        &mut |name| default_option(settings, name),
    );
    for error in resolved.errors {
        let text = format!(
            "image `{}`: source [{}]: {}",
            error.image, error.section, error.message
        );
        sourced.failed.insert(error.image, text);
    }
    let Some(cache_dir) = &settings.build.cache_dir else {
        return Err(Error::Setting {
            key: "cache-dir".into(),
            message: "kolla's sources are downloaded into a cache: give `--cache-dir DIR` \
                      (neither XDG_CACHE_HOME nor HOME is set)"
                .into(),
        });
    };
    let mut options = FetchOptions::new(&debian_arch(settings), kolla.release.source_tar);
    options.retries = settings.build.retries;
    let fetched = fetch_sources(
        &resolved.images,
        &FetchCache::new(cache_dir),
        &options,
        reporter,
    )
    .await
    .map_err(|e| Error::Sources(Box::new(e)))?;
    if fetched.transferred + fetched.reused > 0 {
        reporter.notice(&Notice::Note(format!(
            "Sources: {} fetched, {} unchanged in the cache",
            fetched.transferred, fetched.reused
        )));
    }
    for (image, files) in fetched.images {
        match files {
            Ok(files) => {
                (sourced.extra_files.0.entry(image).or_default()).extend(files.context_files())
            }
            Err(e) => {
                sourced.failed.insert(image, e.to_string());
            }
        }
    }
    Ok(sourced)
}

/// kolla's `[DEFAULT]` options a source's `location` may name (`$tarballs_base`,
/// `${openstack_branch}`...), with kolla's defaults for those derived from others.
fn default_option(settings: &Settings, name: &str) -> std::result::Result<String, OsloError> {
    let sources = &settings.sources;
    let naming = &settings.naming;
    let branch = || (sources.openstack_branch.clone()).unwrap_or_else(|| naming.openstack_branch());
    Ok(match name {
        "tarballs_base" => sources.tarballs_base.clone(),
        "locals_base" => sources.locals_base.display().to_string(),
        "openstack_branch" => branch(),
        "openstack_branch_slashed" => {
            (sources.openstack_branch_slashed.clone()).unwrap_or_else(|| branch().replace('-', "/"))
        }
        "debian_arch" => debian_arch(settings),
        "openstack_release" => naming.openstack_release.clone(),
        "base" => naming.base.to_string(),
        "base_arch" => naming.base_arch.clone(),
        "base_image" => naming.base_image.clone(),
        "base_tag" => naming.base_tag.clone(),
        "namespace" => naming.namespace.clone(),
        "tag" => naming.tag.clone(),
        other => {
            return Err(OsloError::from(format!(
                "`${other}` is not an option a source location can name (tarballs_base, \
                 locals_base, openstack_branch, openstack_branch_slashed, debian_arch, \
                 openstack_release, base, base_arch, base_image, base_tag, namespace, tag)"
            )));
        }
    })
}

/// The architecture key of `sha256` tables: `--debian-arch`, else from `base_arch` (kolla).
fn debian_arch(settings: &Settings) -> String {
    (settings.sources.debian_arch.clone())
        .unwrap_or_else(|| settings.naming.debian_arch().to_string())
}

/// A section that names no image of the tree (nor a plugin or addition of one) is most likely
/// a typo; kolla ignores it silently.
fn warn_of_unused_sections(settings: &Settings, prepared: &Prepared, reporter: &dyn Reporter) {
    let graph = &prepared.graph;
    let names: BTreeSet<&str> = (0..graph.len()).map(|id| graph.name(id)).collect();
    for section in settings.sources.sections.keys() {
        let of_an_image = names.contains(section.as_str())
            || names.iter().any(|name| {
                section.starts_with(&format!("{name}-plugin-"))
                    || section.starts_with(&format!("{name}-additions-"))
            });
        if !of_an_image {
            reporter.notice(&Notice::Warning(format!(
                "section [{section}] of the configuration names no image of the tree (nor a \
                 plugin or addition of one): it is not used"
            )));
        }
    }
}

/// The images whose sources failed fail with that error, and every image built on them is not
/// built: decided before the coordinator starts, which then builds only the rest.
pub(super) fn fail_tasks(tasks: &mut [Task], failed: &BTreeMap<String, String>) {
    let mut stopped: Vec<Option<String>> = vec![None; tasks.len()];
    for (i, task) in tasks.iter_mut().enumerate() {
        if let Some(error) = failed.get(&task.name) {
            task.decided = Some(Outcome::Failed {
                error: error.clone(),
                attempts: 0,
                seconds: 0.0,
                log_tail: Vec::new(),
            });
            stopped[i] = Some(task.name.clone());
        }
    }
    // Descendants, however deep (tasks need not be in graph order): until nothing changes.
    loop {
        let mut changed = false;
        for i in 0..tasks.len() {
            if stopped[i].is_some() {
                continue;
            }
            if let Some(&parent) = tasks[i].deps.iter().find(|&&d| stopped[d].is_some()) {
                let parent = tasks[parent].name.clone();
                tasks[i].decided = Some(Outcome::ParentFailed {
                    parent: parent.clone(),
                });
                stopped[i] = Some(parent);
                changed = true;
            }
        }
        if !changed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(name: &str, deps: &[usize], decided: Option<Outcome>) -> Task {
        Task {
            name: name.into(),
            deps: deps.to_vec(),
            priority: 0,
            request: crate::build::work::test_request(name, format!("k/{name}:1"), None),
            decided,
            push: false,
        }
    }

    #[test]
    fn a_failed_source_fails_its_image_and_stops_every_descendant_only() {
        // base <- openstack-base <- glance-base <- glance-api, listed out of graph order, and
        // keystone-base (a sibling, fresh) on openstack-base.
        let mut tasks = vec![
            task("glance-api", &[3], None),
            task("base", &[], None),
            task("keystone-base", &[4], Some(Outcome::Fresh)),
            task("glance-base", &[4], None),
            task("openstack-base", &[1], None),
            // A grandchild listed before its parent is reached too.
            task("glance-api-child", &[0], None),
        ];
        tasks.swap(0, 5);
        for t in &mut tasks {
            t.deps = t
                .deps
                .iter()
                .map(|&d| {
                    if d == 0 {
                        5
                    } else if d == 5 {
                        0
                    } else {
                        d
                    }
                })
                .collect();
        }
        let failed = BTreeMap::from([(
            "glance-base".to_string(),
            "image `glance-base`: source [glance-base] at `http://x/g.tar.gz`: 404".to_string(),
        )]);
        fail_tasks(&mut tasks, &failed);
        assert!(matches!(
            &tasks[3].decided,
            Some(Outcome::Failed { error, .. }) if error.contains("[glance-base]")
        ));
        assert_eq!(
            tasks[5].decided,
            Some(Outcome::ParentFailed {
                parent: "glance-base".into()
            })
        );
        assert_eq!(
            tasks[0].decided,
            Some(Outcome::ParentFailed {
                parent: "glance-api".into()
            })
        );
        assert_eq!(tasks[1].decided, None);
        assert_eq!(tasks[2].decided, Some(Outcome::Fresh));
        assert_eq!(tasks[4].decided, None);
    }

    #[test]
    fn nothing_failed_changes_nothing() {
        let mut tasks = vec![task("base", &[], None), task("a", &[0], None)];
        fail_tasks(&mut tasks, &BTreeMap::new());
        assert!(tasks.iter().all(|t| t.decided.is_none()));
    }
}
