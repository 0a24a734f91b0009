//! The last step of a build: what the run did goes into the [`Summary`] (the report stage writes
//! it: [`Summary::write`], [`Summary::table`]), recorded as the steps go, so that an error or a
//! signal at any point still leaves a summary with what is known.

use std::time::Instant;

use crate::build::engines::Engines;
use crate::build::work::{Results, Task};
use crate::common::error::{Error, Result};
use crate::common::package_cache::Route;
use crate::common::types::{PushMode, SummaryFormat};
use crate::graph::selection::Status;
use crate::prepare::Prepared;
use crate::prepare::plan::INPUT_HASH_LABEL;
use crate::report::event::{Notice, Reporter};
use crate::report::summary::{EngineSlots, Entry, PushSummary, Row, Summary};
use crate::report::timing::RunClock;
use crate::settings::Settings;

/// What the coordinator and the publishing step did.
pub(super) struct Ran<'a> {
    pub(super) tasks: &'a [Task],
    pub(super) results: &'a Results,
    /// The engine that built each task, and the engines lost.
    pub(super) built_on: &'a [Option<usize>],
    pub(super) failed_on: &'a [Option<usize>],
    pub(super) lost: &'a [usize],
    /// Each build's way to the package caches.
    pub(super) routes: &'a [(String, Route)],
    pub(super) tags_moved: bool,
}

/// Records each image's outcome and push, the engines of a pool, the package-cache traffic and
/// the push mode.
pub(super) fn record_run(summary: &mut Summary, settings: &Settings, engines: &Engines, ran: &Ran) {
    let (tasks, results) = (ran.tasks, ran.results);
    for ((task, outcome), push) in tasks.iter().zip(&results.outcomes).zip(&results.pushes) {
        summary.record(Row {
            name: &task.name,
            reference: &task.request.reference,
            input_hash: task
                .request
                .labels
                .get(INPUT_HASH_LABEL)
                .map_or("", String::as_str),
            outcome,
            push: push.as_ref(),
            parents: task.deps.iter().map(|&d| tasks[d].name.clone()).collect(),
        });
    }
    if engines.is_pool() {
        let ran_on = ran
            .built_on
            .iter()
            .zip(ran.failed_on)
            .map(|(b, f)| b.or(*f));
        for (task, on) in tasks.iter().zip(ran_on) {
            if let Some(e) = on {
                summary.record_engine(&task.name, &engines.urls[e]);
            }
        }
        summary.lost_engines = ran.lost.iter().map(|&e| engines.urls[e].clone()).collect();
    }
    for (name, route) in ran.routes {
        summary.record_network_bytes(name, route.bytes());
    }
    if settings.build.push {
        if !ran.tags_moved {
            summary.mark_staged();
        }
        summary.push = Some(PushSummary {
            mode: match settings.build.push_mode {
                PushMode::Atomic => "atomic",
                PushMode::Immediate => "immediate",
            }
            .to_string(),
            tags_moved: ran.tags_moved,
            staging_tag: (settings.build.push_mode == PushMode::Atomic)
                .then(|| crate::publish::staging_tag(&settings.naming.tag)),
        });
    }
}

/// The run is over (`result`): the summary's status, its table once something was tried (an
/// error before that is said by itself), and the summary file.
pub(super) fn close(
    settings: &Settings,
    prepared: &Prepared,
    summary: &mut Summary,
    result: &Result<()>,
    started: Instant,
    reporter: &dyn Reporter,
    clock: &RunClock,
) -> Result<()> {
    match result {
        Ok(()) => summary.finish(),
        Err(err) => summary.stop(err, &matched(prepared)),
    }
    let tried = !summary.built.is_empty()
        || summary
            .failed
            .iter()
            .any(|e| e.status.as_deref() != Some("not_built"));
    if tried {
        reporter.notice(&Notice::Summary(
            summary.table(started.elapsed().as_secs_f64()),
        ));
    }
    write(settings, summary, clock)
}

/// The selected images' names.
fn matched(prepared: &Prepared) -> Vec<String> {
    prepared
        .selection
        .ids_with(Status::Matched)
        .map(|id| prepared.graph.name(id).to_string())
        .collect()
}

/// The selection's own lists (not matched, skipped parents, unbuildable), known before building.
pub(super) fn record_selection(summary: &mut Summary, prepared: &Prepared) {
    let graph = &prepared.graph;
    for (id, status) in prepared.selection.status.iter().enumerate() {
        let entry = Entry::named(graph.name(id));
        match status {
            Status::Unmatched => summary.not_matched.push(entry),
            Status::Skipped => summary.skipped.push(entry),
            Status::Unbuildable => summary.unbuildable.push(entry),
            Status::Matched => {}
        }
    }
}

/// The summary, with the run's times, and its picture (`--report`).
fn write(settings: &Settings, summary: &Summary, clock: &RunClock) -> Result<()> {
    let mut summary = summary.clone();
    let engines = (settings.build.engines.iter()).map(|e| EngineSlots {
        url: e.url.clone(),
        threads: e.threads,
    });
    clock.stamp(&mut summary, engines.collect());
    summary.write(
        settings.build.summary_json_file.as_deref(),
        settings.build.format == SummaryFormat::Json,
    )?;
    match &settings.build.report {
        Some(path) => crate::report::timeline::write(path, &summary),
        None => Ok(()),
    }
}

/// Writes the summary (and `--report`) of a run whose settings were refused: the error alone.
pub fn write_summary_to(
    path: Option<&std::path::Path>,
    json_on_stdout: bool,
    report: Option<&std::path::Path>,
    err: &Error,
    reporter: &dyn Reporter,
    clock: &RunClock,
) {
    let mut summary = Summary::default();
    summary.stop(err, &[]);
    clock.stamp(&mut summary, Vec::new());
    summary.write_or_report(path, json_on_stdout, reporter);
    if let Some(report) = report
        && let Err(e) = crate::report::timeline::write(report, &summary)
    {
        reporter.notice(&Notice::Error(e.to_string()));
    }
}

/// Writes the summary of a run that stopped before building (a plan error, bad settings): the
/// top-level error and the selection's statuses as far as they are known.
pub fn write_error_summary(
    settings: &Settings,
    prepared: Option<&Prepared>,
    err: &Error,
    reporter: &dyn Reporter,
    clock: &RunClock,
) {
    let mut summary = Summary::default();
    let mut names = Vec::new();
    if let Some(prepared) = prepared {
        record_selection(&mut summary, prepared);
        names = matched(prepared);
    }
    summary.stop(err, &names);
    if let Err(e) = write(settings, &summary, clock) {
        reporter.notice(&Notice::Error(e.to_string()));
    }
}
