//! The build command, a sequence of steps, each in a file of its own:
//! 1. [`engines`]: connect to the engines (the run's one watchdog is there too);
//! 2. [`base_images`]: make or share the external base images;
//! 3. [`sources`]: kolla's sources fetched into the contexts (beside step 2), then plan
//!    ([`crate::prepare::plan`]) and route builds to the package caches;
//! 4. [`freshness`]: decide what needs no build;
//! 5. [`coordinator`]: build and push over the engines (its [`work`]ers, [`placement`]);
//! 6. [`publishing`]: the atomic push's final tags;
//! 7. [`export`]: the `--export` file;
//! 8. [`summary`]: what the run did.

pub mod base_images;
pub mod bootstrap;
pub mod coordinator;
pub mod engines;
mod export;
mod freshness;
pub mod placement;
mod publishing;
pub mod schedule;
mod sources;
mod summary;
pub mod work;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use crate::build::engines::Engines;
use crate::build::work::Task;
use crate::common::error::{Error, Result};
use crate::common::package_cache::Route;
use crate::prepare::Prepared;
use crate::prepare::plan::plan;
use crate::report::event::{Notice, Reporter};
use crate::report::summary::Summary;
use crate::report::timing::RunClock;
use crate::settings::Settings;

pub use summary::{write_error_summary, write_summary_to};

pub fn build(
    settings: &Settings,
    prepared: &Prepared,
    reporter: &mut dyn Reporter,
    clock: &RunClock,
) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(build_async(settings, prepared, reporter, clock))
}

async fn build_async(
    settings: &Settings,
    prepared: &Prepared,
    reporter: &mut dyn Reporter,
    clock: &RunClock,
) -> Result<ExitCode> {
    let started = Instant::now();
    let mut summary = Summary::default();
    summary::record_selection(&mut summary, prepared);
    let mut result = run(settings, prepared, reporter, &mut summary).await;
    // Whatever failed after a signal failed because of it.
    if let (Err(_), Some(signal)) = (&result, crate::common::signals::interrupted()) {
        result = Err(Error::Interrupted { signal });
    }
    summary::close(
        settings,
        prepared,
        &mut summary,
        &result,
        started,
        reporter,
        clock,
    )?;
    result?;
    Ok(if summary.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Every step of a build, recording into `summary` as it goes, so that an error or a signal
/// at any point still leaves a summary with what is known.
async fn run(
    settings: &Settings,
    prepared: &Prepared,
    reporter: &mut dyn Reporter,
    summary: &mut Summary,
) -> Result<()> {
    let durations = match &settings.build.durations_from {
        Some(path) => read_durations(path)?,
        None => BTreeMap::new(),
    };
    let engines = Engines::connect(settings).await?;
    create_logs_dir(settings)?;
    // kolla's sources download while the base images are made or found: neither needs the other.
    let (bases, sourced) = futures_util::future::join(
        base_images::ensure(&engines, settings, prepared, &*reporter),
        sources::fetch(settings, prepared, &*reporter),
    )
    .await;
    let (bases, sourced) = (bases?, sourced?);
    stop_on_signal()?;
    let external = |reference: &str| bases.ids.get(reference).cloned();
    let build_args = &settings.build.build_args;
    let mut jobs = plan(prepared, build_args, &sourced.extra_files, external)?;
    crate::prepare::plan::weigh(&mut jobs, &durations);
    stop_on_signal()?;
    let (registry, graph) = (engines.registry.as_ref(), &prepared.graph);
    let deciding = freshness::decide(engines.first(), registry, settings, graph, jobs);
    let (mut tasks, fresh_in_registry) = crate::common::signals::or_interrupt(deciding)
        .await
        .map_err(|signal| Error::Interrupted { signal })??;
    sources::fail_tasks(&mut tasks, &sourced.failed);
    let mut in_registry = bases.in_registry;
    in_registry.extend(fresh_in_registry);
    if engines.is_pool() {
        // Pushes are the hand-off: every image goes to the registry but those already there.
        for task in &mut tasks {
            task.push = !in_registry.contains_key(&task.request.reference);
        }
    }
    let routes = route_to_package_caches(settings, &mut tasks).await?;

    let ran = coordinator::coordinate(
        settings,
        &engines,
        &tasks,
        &durations,
        &in_registry,
        reporter,
    )
    .await;
    let engine_lost = engines.lost_message(&ran.lost);
    let mut results = ran.results;
    let tags_moved = publishing::finish_push(
        settings,
        &engines,
        &tasks,
        &mut results,
        &in_registry,
        engine_lost.is_some(),
        reporter,
    )
    .await;
    let record = summary::Ran {
        tasks: &tasks,
        results: &results,
        built_on: &ran.built_on,
        failed_on: &ran.failed_on,
        lost: &ran.lost,
        routes: &routes,
        tags_moved,
    };
    summary::record_run(summary, settings, &engines, &record);
    drop(routes);
    if let Some(message) = engine_lost {
        return Err(engine_lost_error(message, &tasks, &results, summary));
    }
    stop_on_signal()?;
    if let Some(path) = &settings.build.export {
        let built = export::Built {
            tasks: &tasks,
            results: &results,
            in_registry: &in_registry,
            tags_moved,
        };
        export::export(settings, &engines, &built, path, reporter, summary).await?;
    }
    Ok(())
}

/// A failure with the engine gone is the engine's: say what was lost.
fn engine_lost_error(
    message: String,
    tasks: &[Task],
    results: &work::Results,
    summary: &mut Summary,
) -> Error {
    summary.lost = tasks
        .iter()
        .zip(&results.outcomes)
        .filter(|(_, o)| !o.is_ok())
        .map(|(t, _)| t.name.clone())
        .collect();
    let lost = summary.lost.clone();
    Error::EngineLost { message, lost }
}

fn create_logs_dir(settings: &Settings) -> Result<()> {
    if let Some(dir) = &settings.build.logs_dir {
        std::fs::create_dir_all(dir).map_err(|source| Error::Write {
            path: dir.clone(),
            source,
        })?;
    }
    Ok(())
}

/// The build times of the earlier run `--durations-from` names.
fn read_durations(path: &Path) -> Result<BTreeMap<String, f64>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    crate::report::summary::durations_of(&text).map_err(|message| Error::Config {
        path: path.to_path_buf(),
        message: format!(
            "--durations-from takes the JSON summary of an earlier run \
             (--summary-json-file): {message}"
        ),
    })
}

/// `--package-cache`: each build to be run gets its own counted way to the caches.
async fn route_to_package_caches(
    settings: &Settings,
    tasks: &mut [Task],
) -> Result<Vec<(String, Route)>> {
    let builds = tasks
        .iter_mut()
        .filter(|t| t.decided.is_none())
        .map(|t| (t.name.as_str(), &mut t.request.build_args));
    crate::common::package_cache::routes(&settings.build.package_caches, builds)
        .await
        .map_err(|e| Error::Setting {
            key: "package-cache".into(),
            message: e.to_string(),
        })
}

/// The run stops between steps once a signal came.
fn stop_on_signal() -> Result<()> {
    match crate::common::signals::interrupted() {
        Some(signal) => Err(Error::Interrupted { signal }),
        None => Ok(()),
    }
}

/// A cargo-style status line (`   Pulling debian:trixie`).
fn status(reporter: &dyn Reporter, verb: &'static str, text: &str) {
    reporter.notice(&Notice::Status {
        verb,
        text: text.to_string(),
    });
}
