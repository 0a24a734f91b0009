//! The build command: connect to the engine (failing fast), make sure external base images exist,
//! plan, decide what is fresh, schedule, and summarise.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use tokio::sync::watch;

use crate::bootstrap::{BootstrapSpec, bootstrap};
use crate::engine::{BuildRequest, DockerEngine, Engine, split_reference};
use crate::error::{Error, Result};
use crate::export::{ExportImage, export};
use crate::plan::{INPUT_HASH_LABEL, Job, plan};
use crate::prepare::Prepared;
use crate::progress::{Display, Progress};
use crate::schedule::{self, Options, Outcome, Results, Task};
use crate::selection::Status;
use crate::settings::Settings;
use crate::summary::{Entry, Row, Summary};
use crate::types::SummaryFormat;

pub fn build(settings: &Settings, prepared: &Prepared) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Setting {
            key: "runtime".into(),
            message: e.to_string(),
        })?;
    runtime.block_on(build_async(settings, prepared))
}

fn engine_error(e: impl std::fmt::Display) -> Error {
    Error::Engine(e.to_string())
}

async fn build_async(settings: &Settings, prepared: &Prepared) -> Result<ExitCode> {
    let started = Instant::now();
    if settings.build.push && settings.naming.registry.is_none() {
        return Err(Error::Setting {
            key: "push".into(),
            message: "`--push` needs `--registry HOST:PORT` to push to".into(),
        });
    }
    let engine = DockerEngine::connect(&settings.build.engine_url)
        .await
        .map_err(engine_error)?;
    let engine = Arc::new(engine.with_credentials(settings.build.credentials.clone()));
    let display = Display::detect(settings.quiet);
    let say = |verb: &str, text: &str| {
        if display != Display::Quiet {
            eprintln!("{verb:>12} {text}");
        }
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
                let image_id = ensure_external(&engine, settings, external, &say).await?;
                externals.insert(external.clone(), image_id);
            }
        }
    }

    let jobs = plan(
        prepared,
        &settings.build.build_args,
        &prepared.extra_files,
        |external| externals.get(external).cloned(),
    )?;
    let tasks = decide(&engine, settings, jobs).await?;

    let (cancel_tx, cancel_rx) = watch::channel(false);
    let interrupt = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = cancel_tx.send(true);
        }
    });
    let mut progress = Progress::new(display, tasks.len(), settings.build.logs_dir.clone());
    let options = Options {
        threads: settings.threads,
        retries: settings.build.retries,
        timeout: Some(settings.build.timeout),
        backoff: Duration::from_secs(2),
        push_threads: settings.build.push_threads,
    };
    let results = schedule::run(engine.clone(), &tasks, &options, &mut progress, cancel_rx).await;
    progress.finish();
    interrupt.abort();

    let mut summary = summarize(prepared, &tasks, &results);
    if let Some(path) = &settings.build.export {
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
        let began = Instant::now();
        say(
            "Exporting",
            &format!("{} images to {}", images.len(), path.display()),
        );
        let result = export(&engine, &images, path, settings.build.export_format).await;
        match &result {
            Ok(report) => say(
                "Exported",
                &format!(
                    "{} ({} blobs, {:.1} MB) in {:.1}s",
                    path.display(),
                    report.blobs,
                    report.bytes as f64 / 1e6,
                    began.elapsed().as_secs_f64()
                ),
            ),
            Err(e) => eprintln!("error: exporting to `{}` failed: {e}", path.display()),
        }
        summary.record_export(&result);
    }
    if display != Display::Quiet {
        eprint!("\n{}", summary.table(started.elapsed().as_secs_f64()));
    }
    write_summary(settings, &summary)?;
    Ok(if summary.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Finds an external base image, pulling or bootstrapping it when missing; returns its ID.
async fn ensure_external(
    engine: &DockerEngine,
    settings: &Settings,
    reference: &str,
    say: &impl Fn(&str, &str),
) -> Result<String> {
    if let Some(facts) = engine.inspect(reference).await.map_err(engine_error)? {
        return Ok(facts.id);
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
            .map_err(Error::Engine)?;
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
    let (repo, tag) = reference.rsplit_once(':').unwrap_or((reference, "latest"));
    let options = bollard::query_parameters::CreateImageOptionsBuilder::default()
        .from_image(repo)
        .tag(tag)
        .build();
    let mut stream = engine.client().create_image(Some(options), None, None);
    while let Some(item) = stream.next().await {
        if let Err(e) = item {
            return Err(Error::Engine(format!(
                "cannot pull the base image `{reference}`: {e}\n\
                 hint: where no registry is reachable, pass `--bootstrap-base` to make it with debootstrap"
            )));
        }
    }
    engine
        .inspect(reference)
        .await
        .map_err(engine_error)?
        .map(|facts| facts.id)
        .ok_or_else(|| Error::Engine(format!("`{reference}` is missing after its pull")))
}

/// Turns jobs into tasks, deciding up front which need no build: the tagged image already
/// carries the same input hash (fresh), or `--skip-existing` and the tag exists. `--no-cache`
/// asks for a real rebuild (new packages, security updates), so nothing is fresh then.
async fn decide(
    engine: &Arc<DockerEngine>,
    settings: &Settings,
    jobs: Vec<Job>,
) -> Result<Vec<Task>> {
    let naming = &settings.naming;
    let created = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let references: Vec<String> = jobs.iter().map(|j| naming.reference(&j.name)).collect();
    let facts: Vec<_> = futures_util::stream::iter(references.iter().map(|r| engine.inspect(r)))
        .buffered(16)
        .collect()
        .await;
    let mut tasks = Vec::with_capacity(jobs.len());
    for ((job, reference), facts) in jobs.into_iter().zip(references).zip(facts) {
        let facts = facts.map_err(engine_error)?;
        let done = match &facts {
            Some(f)
                if !settings.build.no_cache
                    && f.labels.get(INPUT_HASH_LABEL) == Some(&job.input_hash) =>
            {
                Some(Outcome::Fresh)
            }
            Some(_) if settings.build.skip_existing => Some(Outcome::Existing),
            _ => None,
        };
        let labels = BTreeMap::from([
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
            },
        });
    }
    Ok(tasks)
}

fn summarize(prepared: &Prepared, tasks: &[Task], results: &Results) -> Summary {
    let mut summary = Summary::default();
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
        });
    }
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
    summary
}

fn write_summary(settings: &Settings, summary: &Summary) -> Result<()> {
    if let Some(path) = &settings.build.summary_json_file {
        let json = serde_json::to_string_pretty(summary).expect("summary serializes");
        crate::app::write_atomically(path, format!("{json}\n").as_bytes())?;
    } else if settings.build.format == SummaryFormat::Json {
        println!(
            "{}",
            serde_json::to_string(summary).expect("summary serializes")
        );
    }
    Ok(())
}
