//! Step 7 of a build: `--export` writes the built images to one file ([`crate::publish::export`])
//! from the first engine; in a pool that engine first fetches what the others built.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use crate::build::coordinator::{InRegistry, pushed_digest};
use crate::build::engines::Engines;
use crate::build::work::{Results, Task};
use crate::common::error::{Error, Result};
use crate::engine::{Engine, pinned, split_reference};
use crate::publish::blob_cache::BlobCache;
use crate::publish::export::{ExportImage, export_cached};
use crate::report::event::{Notice, Outcome, Reporter};
use crate::report::summary::Summary;
use crate::settings::Settings;

/// What the export step needs of the run before it.
pub(super) struct Built<'a> {
    pub(super) tasks: &'a [Task],
    pub(super) results: &'a Results,
    pub(super) in_registry: &'a BTreeMap<String, InRegistry>,
    /// Whether the final tags are in the registry (else the staging ones are).
    pub(super) tags_moved: bool,
}

/// Exports the images that built to `path`; with images missing, writes nothing unless
/// `--export-partial` (the summary says which and why).
pub(super) async fn export(
    settings: &Settings,
    engines: &Engines,
    built: &Built<'_>,
    path: &Path,
    reporter: &dyn Reporter,
    summary: &mut Summary,
) -> Result<()> {
    let (tasks, results) = (built.tasks, built.results);
    let missing: Vec<String> = tasks
        .iter()
        .zip(&results.outcomes)
        .filter(|(_, outcome)| !outcome.is_ok())
        .map(|(task, _)| task.name.clone())
        .collect();
    if !missing.is_empty() && !settings.build.export_partial {
        let error = format!(
            "`{}` was not written (a previous file there is kept): {} of {} selected images did not build ({}); `--export-partial` exports the others",
            path.display(),
            missing.len(),
            tasks.len(),
            missing.join(", ")
        );
        reporter.notice(&Notice::Error(error.clone()));
        summary.withhold_export(error, missing);
        return Ok(());
    }
    let images = images_to_export(settings, built);
    if engines.is_pool() {
        // The export reads one engine: the first fetches what the others built.
        let wanted = fetches(settings, built);
        let fetching = fetch_for_export(engines.first(), &wanted);
        crate::common::signals::or_interrupt(fetching)
            .await
            .map_err(|signal| Error::Interrupted { signal })??;
    }
    let began = Instant::now();
    super::status(
        reporter,
        "Exporting",
        &format!("{} images to {}", images.len(), path.display()),
    );
    let cache = match &settings.build.cache_dir {
        Some(dir) => Some(BlobCache::open(dir).map_err(|e| Error::Setting {
            key: "cache-dir".into(),
            message: e.to_string(),
        })?),
        None => None,
    };
    let format = settings.build.export_format;
    let result = export_cached(engines.first(), &images, path, format, cache.as_ref()).await;
    if let Some(signal) = crate::common::signals::interrupted() {
        return Err(Error::Interrupted { signal });
    }
    summary.record_export(&result, missing);
    match result {
        Ok(report) => super::status(
            reporter,
            "Exported",
            &format!(
                "{} ({} blobs, {:.1} MB) in {:.1}s",
                path.display(),
                report.blobs,
                report.bytes as f64 / 1e6,
                began.elapsed().as_secs_f64()
            ),
        ),
        // The crate's error (`exporting to PATH failed: ...`), said here: the run goes on to
        // its summary, which records the export as failed and the exit code as 1.
        Err(e) => reporter.notice(&Notice::Error(e.into_error(path).to_string())),
    }
    Ok(())
}

/// The images that built, named as the export names them (the repository without the registry).
fn images_to_export(settings: &Settings, built: &Built<'_>) -> Vec<ExportImage> {
    built
        .tasks
        .iter()
        .zip(&built.results.outcomes)
        .filter(|(_, outcome)| outcome.is_ok())
        .map(|(task, _)| {
            let (name, tag) = split_reference(&task.request.reference);
            let repository = match &settings.naming.registry {
                Some(registry) => name.strip_prefix(&format!("{registry}/")).unwrap_or(name),
                None => name,
            };
            ExportImage {
                reference: task.request.reference.clone(),
                repository: repository.to_string(),
                tag: tag.to_string(),
            }
        })
        .collect()
}

/// For each image that built: its reference, where the registry has it, and its image ID.
fn fetches(settings: &Settings, built: &Built<'_>) -> Vec<(String, String, Option<String>)> {
    let pushed_as = crate::publish::pushed_as(settings.build.push_mode);
    built
        .tasks
        .iter()
        .zip(&built.results.outcomes)
        .zip(&built.results.pushes)
        .filter(|((_, outcome), _)| outcome.is_ok())
        .map(|((task, outcome), push)| {
            let reference = task.request.reference.clone();
            let (from, id) = match (built.in_registry.get(&reference), outcome) {
                (Some(source), _) => (source.pull_as.clone(), Some(source.id.clone())),
                (None, Outcome::Built { image_id, .. }) => {
                    let pushed_as = if built.tags_moved {
                        reference.clone()
                    } else {
                        pushed_as(&reference)
                    };
                    let from = pinned(pushed_as, pushed_digest(push));
                    (from, Some(image_id.clone()))
                }
                (None, _) => (reference.clone(), None),
            };
            (reference, from, id)
        })
        .collect()
}

/// Makes the first engine hold each `(reference, pulled as, image ID)` for an export: what it
/// lacks (or holds another image under the reference) is pulled from the registry, tagged and
/// checked against the image ID ([`crate::engine::fetch`], as the pool's hand-off does).
async fn fetch_for_export<E: Engine>(
    engine: &E,
    wanted: &[(String, String, Option<String>)],
) -> Result<()> {
    for (reference, from, id) in wanted {
        let have = engine
            .inspect(reference)
            .await
            .map_err(Error::Engine)?
            .map(|f| f.id);
        if have.is_some() && (id.is_none() || have == *id) {
            continue;
        }
        let fetched = crate::engine::fetch(engine, from, reference, id.as_deref());
        fetched.await.map_err(|source| Error::EngineStep {
            doing: format!(
                "cannot fetch `{reference}` (as `{from}`) into {} for the export",
                engine.url()
            ),
            source,
            hint: "",
        })?;
    }
    Ok(())
}
