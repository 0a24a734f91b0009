//! The build command: connect to the engine (failing fast), make sure external base images exist,
//! plan, decide what is fresh, schedule, and summarise.

pub mod bootstrap;
pub mod pool;
pub mod schedule;
pub mod work;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use tokio::sync::watch;

use crate::build::bootstrap::{BootstrapSpec, bootstrap};
use crate::build::pool::{Member, PoolOptions, Source};
use crate::build::schedule::{Options, Results, Task};
use crate::common::error::{Error, Result};
use crate::common::types::PushMode;
use crate::common::types::SummaryFormat;
use crate::engine::docker::DockerEngine;
use crate::engine::{BuildRequest, Engine, PARENT_ID_LABEL, by_digest, pinned, split_reference};
use crate::graph::ImageGraph;
use crate::graph::selection::Status;
use crate::prepare::Prepared;
use crate::prepare::plan::{INPUT_HASH_LABEL, Job, plan};
use crate::publish::export::{ExportImage, export_cached};
use crate::publish::registry::Registry;
use crate::report::event::{Notice, Outcome, PushOutcome, Reporter};
use crate::report::progress::Progress;
use crate::report::summary::{Entry, PushSummary, Row, Summary};
use crate::settings::Settings;

pub fn build(
    settings: &Settings,
    prepared: &Prepared,
    progress: &mut Progress,
) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(build_async(settings, prepared, progress))
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

fn engine_error(e: impl std::fmt::Display) -> Error {
    Error::Engine(e.to_string())
}

async fn build_async(
    settings: &Settings,
    prepared: &Prepared,
    progress: &mut Progress,
) -> Result<ExitCode> {
    let started = Instant::now();
    let mut summary = Summary::default();
    record_selection(&mut summary, prepared);
    let mut result = stages(settings, prepared, progress, &mut summary).await;
    // Whatever failed after a signal failed because of it.
    if let (Err(_), Some(signal)) = (&result, crate::common::signals::interrupted()) {
        result = Err(Error::Interrupted { signal });
    }
    match &result {
        Ok(()) => summary.finish(),
        Err(err) => {
            let names: Vec<String> = prepared
                .selection
                .ids_with(Status::Matched)
                .map(|id| prepared.graph.name(id).to_string())
                .collect();
            summary.stop(err, &names);
        }
    }
    // The table once something was tried; an error before that is said by itself.
    let tried = !summary.built.is_empty()
        || summary
            .failed
            .iter()
            .any(|e| e.status.as_deref() != Some("not_built"));
    if tried {
        progress.notice(&Notice::Summary(
            summary.table(started.elapsed().as_secs_f64()),
        ));
    }
    write_summary(settings, &summary, progress)?;
    result?;
    Ok(if summary.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Writes the summary of a run that stopped before building (a plan error, bad settings): the
/// top-level error and the selection's statuses as far as they are known.
pub fn write_error_summary(
    settings: &Settings,
    prepared: Option<&Prepared>,
    err: &Error,
    progress: &Progress,
) {
    let mut summary = Summary::default();
    let mut names = Vec::new();
    if let Some(prepared) = prepared {
        record_selection(&mut summary, prepared);
        names = prepared
            .selection
            .ids_with(Status::Matched)
            .map(|id| prepared.graph.name(id).to_string())
            .collect();
    }
    summary.stop(err, &names);
    if let Err(e) = write_summary(settings, &summary, progress) {
        progress.notice(&Notice::Error(e.to_string()));
    }
}

/// Writes an error summary where only the summary's place is known (the settings did not resolve).
pub fn write_summary_to(
    path: Option<&std::path::Path>,
    json_on_stdout: bool,
    report: Option<&std::path::Path>,
    err: &Error,
    progress: &Progress,
) {
    let mut summary = Summary::default();
    summary.stop(err, &[]);
    progress.clock().stamp(&mut summary, Vec::new());
    let written = summary
        .write(path, json_on_stdout)
        .and_then(|()| match report {
            Some(report) => crate::report::timeline::write(report, &summary),
            None => Ok(()),
        });
    if let Err(e) = written {
        progress.notice(&Notice::Error(e.to_string()));
    }
}

fn interrupted(signal: i32) -> Error {
    Error::Interrupted { signal }
}

/// Every stage of a build, recording into `summary` as it goes, so that an error or a signal
/// at any point still leaves a summary with what is known.
async fn stages(
    settings: &Settings,
    prepared: &Prepared,
    progress: &mut Progress,
    summary: &mut Summary,
) -> Result<()> {
    if settings.build.push && settings.naming.registry.is_none() {
        return Err(Error::Setting {
            key: "push".into(),
            message: "`--push` needs `--registry HOST:PORT` to push to".into(),
        });
    }
    let specs = &settings.build.engines;
    let pool = specs.len() > 1;
    let registry = match (&settings.naming.registry, pool) {
        (Some(host), true) => Some(Registry::new(host, settings.build.credentials.as_ref())),
        (None, true) => {
            return Err(Error::Setting {
                key: "registry".into(),
                message: format!(
                    "{} engines (`--engine`) hand images over through a registry: give \
                     `--registry HOST:PORT`, one that every engine reaches",
                    specs.len()
                ),
            });
        }
        (_, false) => None,
    };
    let durations = match &settings.build.durations_from {
        Some(path) => read_durations(path)?,
        None => BTreeMap::new(),
    };
    // Every engine answers before any work (the error names the one that does not).
    let connect = futures_util::future::try_join_all(
        specs
            .iter()
            .map(|spec| DockerEngine::connect(&spec.url, spec.tls_dir.as_deref())),
    );
    let engines: Vec<Arc<DockerEngine>> = crate::common::signals::or_interrupt(connect)
        .await
        .map_err(interrupted)?
        .map_err(engine_error)?
        .into_iter()
        .map(|e| Arc::new(e.with_credentials(settings.build.credentials.clone())))
        .collect();
    let engine = engines[0].clone();
    let say = |progress: &Progress, verb: &'static str, text: &str| {
        progress.notice(&Notice::Status {
            verb,
            text: text.to_string(),
        })
    };
    if let Some(dir) = &settings.build.logs_dir {
        std::fs::create_dir_all(dir).map_err(|source| Error::Write {
            path: dir.clone(),
            source,
        })?;
    }

    // External images the selected roots are built FROM must exist first.
    let graph = &prepared.graph;
    let mut externals: BTreeMap<String, String> = BTreeMap::new();
    for id in prepared.selection.ids_with(Status::Matched) {
        if let Some(external) = &graph.node(id).external {
            if !externals.contains_key(external) {
                let image_id = ensure_external(&*engine, settings, external, &|verb, text| {
                    say(progress, verb, text)
                })
                .await?;
                externals.insert(external.clone(), image_id);
            }
        }
    }
    // In a pool the first engine's external images reach the others through the registry.
    let mut in_registry: BTreeMap<String, Source> = BTreeMap::new();
    if let Some(registry) = &registry {
        for (external, id) in &externals {
            let tell = |verb: &'static str, text: &str| say(progress, verb, text);
            let source = share_external(&*engine, registry, settings, external, id, &tell);
            let source = crate::common::signals::or_interrupt(source)
                .await
                .map_err(interrupted)??;
            in_registry.insert(external.clone(), source);
        }
    }

    let mut jobs = plan(
        prepared,
        &settings.build.build_args,
        &prepared.extra_files,
        |external| externals.get(external).cloned(),
    )?;
    crate::prepare::plan::weigh(&mut jobs, &durations);
    if let Some(signal) = crate::common::signals::interrupted() {
        return Err(interrupted(signal));
    }
    let decided = decide_with(&*engine, registry.as_ref(), settings, graph, jobs);
    let (mut tasks, fresh_in_registry) = crate::common::signals::or_interrupt(decided)
        .await
        .map_err(interrupted)??;
    in_registry.extend(fresh_in_registry);
    if pool {
        // Pushes are the hand-off: every image goes to the registry but those already there.
        for task in &mut tasks {
            task.push = !in_registry.contains_key(&task.request.reference);
        }
    }
    // `--package-cache`: each build to be run gets its own counted way to the caches.
    let builds = tasks
        .iter_mut()
        .filter(|t| t.done.is_none())
        .map(|t| (t.name.as_str(), &mut t.request.build_args));
    let routes = crate::common::package_cache::routes(&settings.build.package_caches, builds)
        .await
        .map_err(|e| Error::Setting {
            key: "package-cache".into(),
            message: e.to_string(),
        })?;

    // The run stops on a signal, or when the engine stops answering (bounded: a few pings).
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let lost: Arc<std::sync::OnceLock<String>> = Arc::default();
    let watcher = tokio::spawn({
        let (engine, lost) = (engine.clone(), lost.clone());
        async move {
            // A pool survives the loss of an engine (the coordinator moves its work).
            let watch = async {
                if pool {
                    std::future::pending::<String>().await
                } else {
                    watchdog(&*engine).await
                }
            };
            tokio::select! {
                _ = crate::common::signals::wait() => {}
                message = watch => {
                    let _ = lost.set(message);
                }
            }
            let _ = cancel_tx.send(true);
        }
    });
    progress.begin(tasks.len(), settings.build.logs_dir.clone());
    let options = Options {
        threads: settings.build.engines[0].threads,
        retries: settings.build.retries,
        timeout: Some(settings.build.timeout),
        backoff: Duration::from_secs(2),
        push_threads: settings.build.push_threads,
        push_mode: settings.build.push_mode,
    };
    let members: Vec<Member<DockerEngine>> = engines
        .iter()
        .zip(specs)
        .map(|(engine, spec)| Member {
            engine: engine.clone(),
            threads: spec.threads,
        })
        .collect();
    let pool_options = PoolOptions {
        pull_estimate: Duration::from_secs(10),
        build_estimate: Duration::from_secs(120),
        estimates: tasks
            .iter()
            .map(|t| durations.get(&t.name).map(|&s| Duration::from_secs_f64(s)))
            .collect(),
        moves: 2,
        in_registry: in_registry.clone(),
        ..PoolOptions::one(&options)
    };
    let ran = pool::run(&members, &tasks, &pool_options, progress, cancel_rx).await;
    let mut results = ran.results;
    progress.finish();
    watcher.abort();
    let lost_engines: Vec<String> = ran.lost.iter().map(|&e| specs[e].url.clone()).collect();
    for url in &lost_engines {
        progress.notice(&Notice::Warning(format!(
            "the engine at {url} stopped answering during the run; its work was moved to the others"
        )));
    }

    // A failure with the engine gone is the engine's: say what was lost.
    let all_ok = results.outcomes.iter().all(Outcome::is_ok);
    let mut engine_lost = lost.get().cloned();
    if pool && ran.lost.len() == engines.len() {
        engine_lost = Some("every engine of the pool stopped answering during the run".into());
    }
    if engine_lost.is_none()
        && !pool
        && !all_ok
        && crate::common::signals::interrupted().is_none()
        && !engine.alive().await
    {
        engine_lost = Some(format!(
            "the engine at {} stopped answering during the run",
            engine.url()
        ));
    }

    // The atomic push: the final tags move now, only if everything built and staged.
    let mut tags_moved = settings.build.push_mode == PushMode::Immediate;
    if settings.build.push && settings.build.push_mode == PushMode::Atomic {
        let staged_all = results
            .pushes
            .iter()
            .zip(&tasks)
            .all(|(p, t)| !t.push || matches!(p, Some(PushOutcome::Pushed { .. })));
        if all_ok
            && staged_all
            && engine_lost.is_none()
            && crate::common::signals::interrupted().is_none()
        {
            let references: Vec<(usize, String)> = tasks
                .iter()
                .enumerate()
                .filter(|(_, t)| t.push)
                .map(|(i, t)| (i, t.request.reference.clone()))
                .collect();
            say(
                progress,
                "Tagging",
                &format!("{} images in the registry", references.len()),
            );
            // Images fresh in the registry are there under their final tag already.
            let references: Vec<(usize, String)> = references
                .into_iter()
                .filter(|(_, r)| !in_registry.contains_key(r))
                .collect();
            let via = match &registry {
                // No engine of a pool holds every image: the registry moves the tags.
                Some(registry) => crate::publish::Via::Registry(registry),
                None => crate::publish::Via::Engine(&*engine),
            };
            let moving = crate::publish::move_tags(
                via,
                references,
                options.push_threads,
                options.retries,
                options.backoff,
            );
            let moved = crate::common::signals::or_interrupt(moving).await;
            if let Ok(moved) = moved {
                tags_moved = moved
                    .iter()
                    .all(|(_, o)| matches!(o, PushOutcome::Pushed { .. }));
                for (i, outcome) in moved {
                    if let PushOutcome::Failed { .. } = outcome {
                        results.pushes[i] = Some(outcome);
                    }
                }
            }
        }
    }
    summarize(summary, &tasks, &results);
    if pool {
        for (task, on) in tasks.iter().zip(&ran.built_on) {
            if let Some(e) = on {
                summary.record_engine(&task.name, &specs[*e].url);
            }
        }
        summary.lost_engines = lost_engines;
    }
    for (name, route) in &routes {
        summary.record_network_bytes(name, route.bytes());
    }
    drop(routes);
    if settings.build.push {
        if !tags_moved {
            summary.mark_staged();
        }
        summary.push = Some(PushSummary {
            mode: match settings.build.push_mode {
                PushMode::Atomic => "atomic",
                PushMode::Immediate => "immediate",
            }
            .to_string(),
            tags_moved,
            staging_tag: (settings.build.push_mode == PushMode::Atomic)
                .then(|| crate::publish::staging_tag(&settings.naming.tag)),
        });
    }
    if let Some(message) = engine_lost {
        summary.lost = tasks
            .iter()
            .zip(&results.outcomes)
            .filter(|(_, o)| !o.is_ok())
            .map(|(t, _)| t.name.clone())
            .collect();
        return Err(Error::Engine(format!(
            "{message}; lost (not built): {}\nhint: restart the engine and run again: finished images are fresh",
            summary.lost.join(", ")
        )));
    }
    if let Some(signal) = crate::common::signals::interrupted() {
        return Err(interrupted(signal));
    }

    if let Some(path) = &settings.build.export {
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
            progress.notice(&Notice::Error(error.clone()));
            summary.withhold_export(error, missing);
            return Ok(());
        }
        let images: Vec<ExportImage> = tasks
            .iter()
            .zip(&results.outcomes)
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
            .collect();
        if pool {
            // The export reads one engine: the first fetches what the others built.
            let wanted: Vec<(String, String, Option<String>)> = tasks
                .iter()
                .zip(&results.outcomes)
                .zip(&results.pushes)
                .filter(|((_, outcome), _)| outcome.is_ok())
                .map(|((task, outcome), push)| {
                    let reference = task.request.reference.clone();
                    let (from, id) = match (in_registry.get(&reference), outcome) {
                        (Some(source), _) => (source.pull_as.clone(), Some(source.id.clone())),
                        (None, Outcome::Built { image_id, .. }) => {
                            let pushed_as = if tags_moved {
                                reference.clone()
                            } else {
                                (pool_options.pushed_as)(&reference)
                            };
                            let from = pinned(pushed_as, crate::build::pool::pushed_digest(push));
                            (from, Some(image_id.clone()))
                        }
                        (None, _) => (reference.clone(), None),
                    };
                    (reference, from, id)
                })
                .collect();
            let gathered = gather(&*engine, &wanted);
            crate::common::signals::or_interrupt(gathered)
                .await
                .map_err(interrupted)??;
        }
        let began = Instant::now();
        say(
            progress,
            "Exporting",
            &format!("{} images to {}", images.len(), path.display()),
        );
        let cache = match &settings.build.cache_dir {
            Some(dir) => Some(
                crate::publish::blob_cache::BlobCache::open(dir).map_err(|e| Error::Setting {
                    key: "cache-dir".into(),
                    message: e.to_string(),
                })?,
            ),
            None => None,
        };
        let result = export_cached(
            &*engine,
            &images,
            path,
            settings.build.export_format,
            cache.as_ref(),
        )
        .await;
        if let Some(signal) = crate::common::signals::interrupted() {
            return Err(interrupted(signal));
        }
        match &result {
            Ok(report) => say(
                progress,
                "Exported",
                &format!(
                    "{} ({} blobs, {:.1} MB) in {:.1}s",
                    path.display(),
                    report.blobs,
                    report.bytes as f64 / 1e6,
                    began.elapsed().as_secs_f64()
                ),
            ),
            Err(e) => progress.notice(&Notice::Error(format!(
                "exporting to `{}` failed: {e}",
                path.display()
            ))),
        }
        summary.record_export(&result, missing);
    }
    Ok(())
}

/// Resolves with a message once the engine has missed three pings in a row (a busy engine answers
/// a ping in milliseconds; a dead one at once with an error, a hung one never).
async fn watchdog(engine: &impl Engine) -> String {
    let mut misses = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        if engine.alive().await {
            misses = 0;
        } else {
            misses += 1;
            if misses >= 3 {
                return format!(
                    "the engine at {} stopped answering during the run",
                    engine.url()
                );
            }
        }
    }
}

/// Finds an external base image, pulling or bootstrapping it when missing; returns its ID.
async fn ensure_external<E: Engine>(
    engine: &E,
    settings: &Settings,
    reference: &str,
    say: &impl Fn(&'static str, &str),
) -> Result<String> {
    if let Some(facts) = engine.inspect(reference).await.map_err(engine_error)? {
        return Ok(facts.id);
    }
    if let Some(signal) = crate::common::signals::interrupted() {
        return Err(interrupted(signal));
    }
    let naming = &settings.naming;
    let is_base = reference == format!("{}:{}", naming.base_image, naming.base_tag);
    if is_base && settings.build.bootstrap_base {
        let mirror = settings
            .build
            .bootstrap_mirror
            .clone()
            .or_else(|| BootstrapSpec::default_mirror(naming.base).map(str::to_string))
            .unwrap_or_default();
        let spec = BootstrapSpec {
            distro: naming.base,
            release: naming.base_tag.clone(),
            mirror,
            repo: naming.base_image.clone(),
            tag: naming.base_tag.clone(),
        };
        let began = Instant::now();
        let id = bootstrap(engine, &spec, |line| say("Bootstrap", line))
            .await
            .map_err(|e| Error::Engine(e.to_string()))?;
        say(
            "Bootstrapped",
            &format!("{reference} in {:.0}s", began.elapsed().as_secs_f64()),
        );
        return Ok(id);
    }
    if !settings.build.pull {
        return Err(Error::Engine(format!(
            "the base image `{reference}` is not in the engine and --no-pull forbids pulling it\n\
             hint: load it (`docker load`), or pass `--bootstrap-base` to make it with debootstrap"
        )));
    }
    say("Pulling", reference);
    let pull = async {
        engine.pull(reference).await.map_err(|e| {
            Error::Engine(format!(
                "cannot pull the base image `{reference}`: {e}\n\
                 hint: where no registry is reachable, pass `--bootstrap-base` to make it with debootstrap"
            ))
        })
    };
    // Dropping the pull's request stops it in the engine.
    crate::common::signals::or_interrupt(pull)
        .await
        .map_err(interrupted)??;
    engine
        .inspect(reference)
        .await
        .map_err(engine_error)?
        .map(|facts| facts.id)
        .ok_or_else(|| Error::Engine(format!("`{reference}` is missing after its pull")))
}

/// Puts an external image of the first engine into the registry (once: not when the registry
/// holds it already), under the run's namespace, for the other engines of a pool to pull.
async fn share_external<E: Engine>(
    engine: &E,
    registry: &Registry,
    settings: &Settings,
    external: &str,
    id: &str,
    say: &impl Fn(&'static str, &str),
) -> Result<Source> {
    let (name, tag) = split_reference(external);
    let repository = name.rsplit('/').next().unwrap_or(name);
    let pull_as = format!("{}/{repository}:{tag}", settings.naming.full_namespace());
    let there = registry
        .image(&pull_as)
        .await
        .ok()
        .flatten()
        .filter(|image| image.id == id);
    let digest = if let Some(image) = there {
        Some(image.digest)
    } else {
        say(
            "Pushing",
            &format!("{external} as {pull_as} for the other engines"),
        );
        let (repo, tag) = split_reference(&pull_as);
        let (log, _rx) = tokio::sync::mpsc::unbounded_channel();
        let pushed = async {
            engine.tag(external, repo, tag).await?;
            engine.push(&pull_as, log).await
        };
        pushed.await.map_err(|e| {
            Error::Engine(format!(
                "cannot push the base image `{external}` to the registry as `{pull_as}` for the \
                 other engines: {e}"
            ))
        })?
    };
    Ok(Source {
        pull_as: pinned(pull_as, digest.as_deref()),
        id: id.to_string(),
    })
}

/// Makes the first engine hold each `(reference, pulled as, image ID)` for an export: what it
/// lacks (or holds another image under the reference) is pulled from the registry, tagged and
/// checked against the image ID ([`crate::engine::fetch`], as the pool's hand-off does).
async fn gather<E: Engine>(engine: &E, wanted: &[(String, String, Option<String>)]) -> Result<()> {
    for (reference, from, id) in wanted {
        let have = engine
            .inspect(reference)
            .await
            .map_err(engine_error)?
            .map(|f| f.id);
        if have.is_some() && (id.is_none() || have == *id) {
            continue;
        }
        let fetched = crate::engine::fetch(engine, from, reference, id.as_deref());
        fetched.await.map_err(|e| {
            Error::Engine(format!(
                "cannot fetch `{reference}` (as `{from}`) into {} for the export: {e}",
                engine.url()
            ))
        })?;
    }
    Ok(())
}

/// Turns jobs into tasks, deciding up front which need no build: the tagged image already
/// carries the same input hash (fresh), or `--skip-existing` and the tag exists. `--no-cache`
/// asks for a real rebuild (new packages, security updates), so nothing is fresh then.
#[cfg(test)]
async fn decide<E: Engine>(
    engine: &E,
    settings: &Settings,
    graph: &ImageGraph,
    jobs: Vec<Job>,
) -> Result<Vec<Task>> {
    Ok(decide_with(engine, None, settings, graph, jobs).await?.0)
}

/// [`decide`], and for a pool the registry too: an image not fresh in the (first) engine is
/// fresh when the registry's image under its reference (or the reference its push reaches the
/// registry under) carries the same input hash and was built on the same parent. Such images
/// are returned with where to pull them from: no engine builds them.
async fn decide_with<E: Engine>(
    engine: &E,
    registry: Option<&Registry>,
    settings: &Settings,
    graph: &ImageGraph,
    jobs: Vec<Job>,
) -> Result<(Vec<Task>, BTreeMap<String, Source>)> {
    let mut from_registry: BTreeMap<String, Source> = BTreeMap::new();
    // The image ID each fresh image has, wherever it was found.
    let mut fresh_ids: BTreeMap<String, String> = BTreeMap::new();
    let pushed_as = pool::pushed_as(settings.build.push_mode);
    let naming = &settings.naming;
    let created = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    // kolla's tree: the labels its release's build adds (src/compat/labels.rs)
    let kolla_labels = settings.kolla.as_ref().map(|kolla| {
        crate::compat::labels::BuildLabels::new(kolla, &naming.tag, &naming.maintainer, &created)
    });
    let references: Vec<String> = jobs.iter().map(|j| naming.reference(&j.name)).collect();
    let facts: Vec<_> = futures_util::stream::iter(references.iter().map(|r| engine.inspect(r)))
        .buffered(16)
        .collect()
        .await;
    // The image each job is built FROM (ours or external), and its ID in the engine now.
    let parents: Vec<Option<String>> = jobs
        .iter()
        .map(|job| {
            let node = graph.node(graph.id(&job.name).expect("jobs come from the graph"));
            node.parent
                .map(|p| naming.reference(graph.name(p)))
                .or_else(|| node.external.clone())
        })
        .collect();
    let unique: std::collections::BTreeSet<&String> = parents.iter().flatten().collect();
    let mut parent_ids: BTreeMap<String, Option<String>> = BTreeMap::new();
    for reference in unique {
        let id = engine
            .inspect(reference)
            .await
            .map_err(engine_error)?
            .map(|f| f.id);
        parent_ids.insert(reference.clone(), id);
    }
    let planned: BTreeMap<&str, usize> = references
        .iter()
        .enumerate()
        .map(|(i, r)| (r.as_str(), i))
        .collect();
    let mut fresh = vec![false; jobs.len()];
    let mut tasks = Vec::with_capacity(jobs.len());
    for (n, (((job, reference), facts), parent)) in jobs
        .into_iter()
        .zip(references.iter().cloned())
        .zip(facts)
        .zip(parents)
        .enumerate()
    {
        let facts = facts.map_err(engine_error)?;
        // Fresh only on the very parent image it was built on: a parent rebuilt (or retagged
        // outside the tool) since, or being rebuilt now, makes it stale.
        let fresh_by = |labels: &BTreeMap<String, String>| {
            let parent_same = match &parent {
                None => true,
                Some(p) => {
                    let parent_stale = planned.get(p.as_str()).is_some_and(|&i| !fresh[i]);
                    let recorded = labels.get(PARENT_ID_LABEL);
                    let parent_id = fresh_ids
                        .get(p)
                        .or_else(|| parent_ids.get(p).and_then(Option::as_ref));
                    !parent_stale && recorded.is_some() && recorded == parent_id
                }
            };
            !settings.build.no_cache
                && parent_same
                && labels.get(INPUT_HASH_LABEL) == Some(&job.input_hash)
        };
        let mut found: Option<String> = None;
        let mut done = match &facts {
            Some(f) if fresh_by(&f.labels) => {
                found = Some(f.id.clone());
                Some(Outcome::Fresh)
            }
            Some(_) if settings.build.skip_existing => Some(Outcome::Existing),
            _ => None,
        };
        if let (None, Some(registry)) = (&done, registry) {
            for candidate in [reference.clone(), pushed_as(&reference)] {
                // A registry that cannot be read leaves the decision to the engine.
                if let Ok(Some(image)) = registry.image(&candidate).await {
                    if fresh_by(&image.labels) {
                        found = Some(image.id.clone());
                        from_registry.insert(
                            reference.clone(),
                            Source {
                                pull_as: by_digest(&candidate, &image.digest),
                                id: image.id,
                            },
                        );
                        done = Some(Outcome::Fresh);
                        break;
                    }
                }
            }
        }
        if let Some(id) = found {
            fresh_ids.insert(reference.clone(), id);
            fresh[n] = true;
        }
        let mut labels = BTreeMap::from([
            (INPUT_HASH_LABEL.to_string(), job.input_hash.clone()),
            (
                "kolla_version".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
            (
                "org.opencontainers.image.created".to_string(),
                created.clone(),
            ),
            (
                "org.opencontainers.image.title".to_string(),
                job.name.clone(),
            ),
            (
                "org.opencontainers.image.version".to_string(),
                naming.tag.clone(),
            ),
            (
                "org.opencontainers.image.authors".to_string(),
                naming.maintainer.clone(),
            ),
        ]);
        if let Some(kolla) = &kolla_labels {
            kolla.apply(&job.name, &mut labels);
        }
        tasks.push(Task {
            name: job.name.clone(),
            deps: job.deps,
            priority: job.priority,
            done,
            push: settings.build.push,
            request: BuildRequest {
                image: job.name,
                reference,
                context: job.context,
                labels,
                build_args: settings.build.build_args.clone(),
                network_mode: settings.build.network_mode.clone(),
                no_cache: settings.build.no_cache,
                keep: settings.build.keep,
                // External images are ensured above; a pull inside the build would fail offline.
                pull: false,
                parent,
            },
        });
    }
    Ok((tasks, from_registry))
}

fn summarize(summary: &mut Summary, tasks: &[Task], results: &Results) {
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
}

/// The selection's own lists (not matched, skipped parents, unbuildable), known before building.
fn record_selection(summary: &mut Summary, prepared: &Prepared) {
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
fn write_summary(settings: &Settings, summary: &Summary, progress: &Progress) -> Result<()> {
    let mut summary = summary.clone();
    let engines = settings.build.engines.iter();
    let engines = engines.map(|e| crate::report::summary::EngineSlots {
        url: e.url.clone(),
        threads: e.threads,
    });
    progress.clock().stamp(&mut summary, engines.collect());
    summary.write(
        settings.build.summary_json_file.as_deref(),
        settings.build.format == SummaryFormat::Json,
    )?;
    match &settings.build.report {
        Some(path) => crate::report::timeline::write(path, &summary),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FileConfig;
    use crate::config::cli::Cli;
    use crate::engine::fake::{FakeEngine, layer};
    use crate::prepare::context::ContextSpec;
    use clap::Parser;
    use std::cell::RefCell;
    use std::path::Path;

    fn settings(args: &[&str]) -> Settings {
        let cli = Cli::try_parse_from(std::iter::once("kolla-build").chain(args.iter().copied()))
            .unwrap();
        Settings::merge(
            cli,
            FileConfig::default(),
            Some("/d".into()),
            BTreeMap::new(),
            Path::new("/"),
        )
        .unwrap()
    }

    fn external(settings: &Settings) -> String {
        format!(
            "{}:{}",
            settings.naming.base_image, settings.naming.base_tag
        )
    }

    /// The external base image ← base ← keystone.
    fn graph(settings: &Settings) -> ImageGraph {
        let naming = &settings.naming;
        let dockerfiles = BTreeMap::from([
            ("base".to_string(), format!("FROM {}\n", external(settings))),
            (
                "keystone".to_string(),
                format!("FROM {}\n", naming.reference("base")),
            ),
        ]);
        let ours = format!("{}/{}", naming.full_namespace(), naming.image_prefix);
        ImageGraph::build(
            &dockerfiles,
            |n| naming.reference(n),
            &ours,
            &BTreeMap::new(),
        )
        .unwrap()
    }

    fn jobs(base_hash: &str, keystone_hash: &str) -> Vec<Job> {
        let job = |name: &str, deps: Vec<usize>, hash: &str| Job {
            name: name.into(),
            priority: 2 - deps.len(),
            deps,
            input_hash: hash.into(),
            context: ContextSpec::new(format!("FROM {name}'s parent\n"), vec![]),
        };
        vec![
            job("base", vec![], base_hash),
            job("keystone", vec![0], keystone_hash),
        ]
    }

    /// An engine holding the external base image; returns it and that image's ID.
    fn engine_with_base(settings: &Settings) -> (FakeEngine, String) {
        let engine = FakeEngine::new();
        let id = engine.add_image(
            &external(settings),
            BTreeMap::new(),
            vec![layer("etc/os-release", b"trixie")],
        );
        (engine, id)
    }

    /// What the scheduler would do with the tasks: build those not decided, parents first.
    async fn build_all(engine: &FakeEngine, tasks: &[Task]) {
        for task in tasks.iter().filter(|t| t.done.is_none()) {
            let (log, _rx) = tokio::sync::mpsc::unbounded_channel();
            engine.build(task.request.clone(), log).await.unwrap();
        }
    }

    /// Default settings, an engine holding the external base (and its ID) and the graph, after
    /// the first run.
    async fn after_first_run() -> (Settings, FakeEngine, String, ImageGraph) {
        let s = settings(&[]);
        let (engine, base_id) = engine_with_base(&s);
        let g = graph(&s);
        build_first(&engine, &s, &g).await;
        (s, engine, base_id, g)
    }

    /// The first run: base and keystone built with hashes b1 and k1.
    async fn build_first(engine: &FakeEngine, s: &Settings, g: &ImageGraph) {
        build_all(
            engine,
            &decide(engine, s, g, jobs("b1", "k1")).await.unwrap(),
        )
        .await;
    }

    fn decided(tasks: &[Task]) -> Vec<Option<Outcome>> {
        tasks.iter().map(|t| t.done.clone()).collect()
    }

    #[tokio::test]
    async fn decide_builds_what_is_missing_and_finds_it_fresh_next_time() {
        let s = settings(&[]);
        let (engine, _) = engine_with_base(&s);
        let g = graph(&s);
        let tasks = decide(&engine, &s, &g, jobs("b1", "k1")).await.unwrap();
        assert_eq!(decided(&tasks), [None, None]);
        assert_eq!(tasks[0].request.parent, Some(external(&s)));
        assert_eq!(
            tasks[1].request.parent,
            Some(s.naming.reference("base")),
            "the parent is read from the graph"
        );
        assert_eq!(
            tasks[1].request.labels.get(INPUT_HASH_LABEL),
            Some(&"k1".to_string())
        );
        build_all(&engine, &tasks).await;
        let again = decide(&engine, &s, &g, jobs("b1", "k1")).await.unwrap();
        assert_eq!(
            decided(&again),
            [Some(Outcome::Fresh), Some(Outcome::Fresh)]
        );
        assert_eq!(
            engine.calls(),
            ["start base", "start keystone"],
            "deciding only inspects"
        );
    }

    #[tokio::test]
    async fn a_changed_input_hash_makes_the_image_and_its_children_stale() {
        let (s, engine, _, g) = after_first_run().await;
        let child = decide(&engine, &s, &g, jobs("b1", "k2")).await.unwrap();
        assert_eq!(decided(&child), [Some(Outcome::Fresh), None]);
        let parent = decide(&engine, &s, &g, jobs("b2", "k1")).await.unwrap();
        assert_eq!(
            decided(&parent),
            [None, None],
            "a child whose parent is rebuilt now is stale, whatever its own hash"
        );
    }

    #[tokio::test]
    async fn a_parent_retagged_outside_the_tool_makes_its_children_stale() {
        let (s, engine, base_id, g) = after_first_run().await;
        // Another image, with base's labels, now carries base's tag.
        let labels = BTreeMap::from([
            (INPUT_HASH_LABEL.to_string(), "b1".to_string()),
            (PARENT_ID_LABEL.to_string(), base_id),
        ]);
        engine.add_image(
            &s.naming.reference("base"),
            labels,
            vec![layer("other", b"x")],
        );
        let tasks = decide(&engine, &s, &g, jobs("b1", "k1")).await.unwrap();
        assert_eq!(decided(&tasks), [Some(Outcome::Fresh), None]);
    }

    #[tokio::test]
    async fn a_new_external_base_image_makes_everything_stale() {
        let (s, engine, _, g) = after_first_run().await;
        engine.add_image(
            &external(&s),
            BTreeMap::new(),
            vec![layer("etc/os-release", b"trixie, updated")],
        );
        let tasks = decide(&engine, &s, &g, jobs("b1", "k1")).await.unwrap();
        assert_eq!(decided(&tasks), [None, None]);
    }

    #[tokio::test]
    async fn skip_existing_keeps_stale_images_and_no_cache_rebuilds_fresh_ones() {
        let (_, engine, _, g) = after_first_run().await;
        let skip = settings(&["--skip-existing"]);
        let tasks = decide(&engine, &skip, &g, jobs("b2", "k2")).await.unwrap();
        assert_eq!(
            decided(&tasks),
            [Some(Outcome::Existing), Some(Outcome::Existing)]
        );
        let no_cache = settings(&["--no-cache"]);
        let tasks = decide(&engine, &no_cache, &g, jobs("b1", "k1"))
            .await
            .unwrap();
        assert_eq!(decided(&tasks), [None, None]);
        assert!(tasks.iter().all(|t| t.request.no_cache));
    }

    #[tokio::test]
    async fn an_external_image_present_is_used_without_a_pull() {
        let s = settings(&[]);
        let (engine, id) = engine_with_base(&s);
        let found = ensure_external(&engine, &s, &external(&s), &|_: &str, _: &str| {})
            .await
            .unwrap();
        assert_eq!(found, id);
        assert!(engine.calls().is_empty(), "{:?}", engine.calls());
    }

    #[tokio::test]
    async fn a_missing_external_image_is_pulled() {
        let s = settings(&[]);
        let engine = FakeEngine::new();
        let reference = external(&s);
        let id = engine.add_remote(&reference, vec![layer("a", b"1")]);
        let said = RefCell::new(Vec::new());
        let say = |verb: &'static str, text: &str| said.borrow_mut().push(format!("{verb} {text}"));
        let found = ensure_external(&engine, &s, &reference, &say)
            .await
            .unwrap();
        assert_eq!(found, id);
        assert_eq!(engine.calls(), [format!("pull {reference}")]);
        assert_eq!(said.into_inner(), [format!("Pulling {reference}")]);
    }

    #[tokio::test]
    async fn a_failed_pull_names_the_image_and_suggests_bootstrap() {
        let s = settings(&[]);
        let engine = FakeEngine::new();
        let reference = external(&s);
        let err = ensure_external(&engine, &s, &reference, &|_: &str, _: &str| {})
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "cannot pull the base image `{reference}`: manifest for {reference} not found"
            )),
            "{err}"
        );
        assert!(err.contains("pass `--bootstrap-base`"), "{err}");
    }

    #[tokio::test]
    async fn no_pull_refuses_a_missing_external_image() {
        let s = settings(&["--no-pull"]);
        let engine = FakeEngine::new();
        let reference = external(&s);
        engine.add_remote(&reference, vec![layer("a", b"1")]);
        let err = ensure_external(&engine, &s, &reference, &|_: &str, _: &str| {})
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("--no-pull forbids pulling it"), "{err}");
        assert!(engine.calls().is_empty());
    }

    #[tokio::test]
    async fn in_a_pool_an_image_fresh_in_the_registry_is_built_nowhere() {
        use crate::publish::registry::tests::{MANIFEST, serve};
        let (host, _, routes) = serve(BTreeMap::new()).await;
        let s = settings(&["--registry", &host]);
        let (engine, _) = engine_with_base(&s);
        let g = graph(&s);
        build_first(&engine, &s, &g).await;
        let base_id = engine.image(&s.naming.reference("base")).unwrap().id;
        // The first engine lacks keystone; the registry has it, built on that base.
        let keystone = s.naming.reference("keystone");
        engine.remove(&keystone).await.unwrap();
        let (name, tag) = split_reference(&keystone);
        let repository = name.strip_prefix(&format!("{host}/")).unwrap();
        let labels = serde_json::json!({ INPUT_HASH_LABEL: "k1", PARENT_ID_LABEL: base_id });
        let manifest = r#"{"schemaVersion":2,"config":{"digest":"sha256:f00"}}"#;
        routes.lock().unwrap().extend([
            (
                format!("GET /v2/{repository}/manifests/{tag}"),
                (200, MANIFEST, manifest.to_string()),
            ),
            (
                format!("GET /v2/{repository}/blobs/sha256:f00"),
                (
                    200,
                    "application/json",
                    serde_json::json!({ "config": { "Labels": labels } }).to_string(),
                ),
            ),
        ]);
        let registry = Registry::new(&host, None);
        let (tasks, found) = decide_with(&engine, Some(&registry), &s, &g, jobs("b1", "k1"))
            .await
            .unwrap();
        assert_eq!(
            decided(&tasks),
            [Some(Outcome::Fresh), Some(Outcome::Fresh)]
        );
        assert_eq!(
            found,
            BTreeMap::from([(
                keystone.clone(),
                Source {
                    // By the manifest's digest (of the bytes served).
                    pull_as: by_digest(
                        &keystone,
                        &format!(
                            "sha256:{}",
                            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(manifest))
                        )
                    ),
                    id: "sha256:f00".into()
                }
            )])
        );
        // Without the registry keystone is built; with another input hash it is stale there too.
        let tasks = decide(&engine, &s, &g, jobs("b1", "k1")).await.unwrap();
        assert_eq!(decided(&tasks), [Some(Outcome::Fresh), None]);
        let (tasks, found) = decide_with(&engine, Some(&registry), &s, &g, jobs("b1", "k2"))
            .await
            .unwrap();
        assert_eq!(decided(&tasks), [Some(Outcome::Fresh), None]);
        assert!(found.is_empty());
    }
}
