//! Step 4 of a build: which images need no build, decided up front. An image is fresh when the
//! tagged image already carries the same input hash and was built on the very parent image the
//! run builds it on; `--skip-existing` keeps any image whose tag exists; `--no-cache` asks for a
//! real rebuild (new packages, security updates), so nothing is fresh then. For a pool the
//! registry is asked too: an image fresh there is built nowhere.

use std::collections::BTreeMap;
use std::time::SystemTime;

use futures_util::StreamExt;

use crate::build::coordinator::InRegistry;
use crate::build::work::Task;
use crate::common::error::{Error, Result};
use crate::compat::labels::BuildLabels;
use crate::engine::{BuildRequest, Engine, ImageFacts, PARENT_ID_LABEL, by_digest};
use crate::graph::ImageGraph;
use crate::prepare::plan::{INPUT_HASH_LABEL, Job};
use crate::publish::registry::Registry;
use crate::report::event::Outcome;
use crate::settings::Settings;

/// Turns jobs into tasks, deciding which need no build: those are done already (fresh, or
/// existing). With a `registry` (a pool) an image not fresh in the (first) engine is fresh when
/// the registry's image under its reference (or the reference its push reaches the registry
/// under) carries the same input hash and was built on the same parent; such images are
/// returned with where to pull them from.
pub(super) async fn decide<E: Engine>(
    engine: &E,
    registry: Option<&Registry>,
    settings: &Settings,
    graph: &ImageGraph,
    jobs: Vec<Job>,
) -> Result<(Vec<Task>, BTreeMap<String, InRegistry>)> {
    let naming = &settings.naming;
    let created = settings
        .build
        .source_date_epoch
        .unwrap_or_else(SystemTime::now);
    let created = humantime::format_rfc3339_seconds(created).to_string();
    // kolla's tree: the labels its release's build adds (src/compat/labels.rs)
    let kolla_labels = (settings.kolla.as_ref())
        .map(|kolla| BuildLabels::new(kolla, &naming.tag, &naming.maintainer, &created));
    let references: Vec<String> = jobs.iter().map(|j| naming.reference(&j.name)).collect();
    let facts: Vec<_> = futures_util::stream::iter(references.iter().map(|r| engine.inspect(r)))
        .buffered(16)
        .collect()
        .await;
    // The image each job is built FROM (ours or external).
    let parents: Vec<Option<String>> = jobs
        .iter()
        .map(|job| {
            let node = graph.node(graph.id(&job.name).expect("jobs come from the graph"));
            node.parent
                .map(|p| naming.reference(graph.name(p)))
                .or_else(|| node.external.clone())
        })
        .collect();
    let mut judge = Judge {
        registry,
        settings,
        pushed_as: crate::publish::pushed_as(settings.build.push_mode),
        planned: references.iter().cloned().zip(0..).collect(),
        parent_ids: ids_now(engine, &parents).await?,
        fresh: vec![false; jobs.len()],
        fresh_ids: BTreeMap::new(),
        from_registry: BTreeMap::new(),
    };
    let mut tasks = Vec::with_capacity(jobs.len());
    for (n, (((job, reference), facts), parent)) in jobs
        .into_iter()
        .zip(references)
        .zip(facts)
        .zip(parents)
        .enumerate()
    {
        let facts = facts.map_err(Error::Engine)?;
        let done = judge
            .decide(n, &job.input_hash, &reference, facts, parent.as_deref())
            .await;
        let mut labels = labels_of(&job, settings, &created);
        if let Some(kolla) = &kolla_labels {
            kolla.apply(&job.name, &mut labels);
        }
        tasks.push(task_of(job, reference, parent, done, labels, settings));
    }
    Ok((tasks, judge.from_registry))
}

/// The image ID each of `references` has in the engine now (none where it lacks it).
async fn ids_now<E: Engine>(
    engine: &E,
    references: &[Option<String>],
) -> Result<BTreeMap<String, Option<String>>> {
    let unique: std::collections::BTreeSet<&String> = references.iter().flatten().collect();
    let mut ids = BTreeMap::new();
    for reference in unique {
        let id = engine
            .inspect(reference)
            .await
            .map_err(Error::Engine)?
            .map(|f| f.id);
        ids.insert(reference.clone(), id);
    }
    Ok(ids)
}

/// What deciding knows, job after job (parents come before their children).
struct Judge<'a> {
    registry: Option<&'a Registry>,
    settings: &'a Settings,
    /// The reference a push reaches the registry under.
    pushed_as: fn(&str) -> String,
    /// Each planned image's job, by reference.
    planned: BTreeMap<String, usize>,
    /// The parents' image IDs in the engine before the run.
    parent_ids: BTreeMap<String, Option<String>>,
    /// Which jobs were found fresh so far.
    fresh: Vec<bool>,
    /// The image ID each fresh image has, wherever it was found.
    fresh_ids: BTreeMap<String, String>,
    /// The images found fresh in the registry (and not in the engine).
    from_registry: BTreeMap<String, InRegistry>,
}

impl Judge<'_> {
    /// Whether an image with `labels` is fresh: the same input hash, built on the very parent
    /// image the run builds on (a parent rebuilt, or retagged outside the tool, since, or being
    /// rebuilt now, makes it stale).
    fn is_fresh(
        &self,
        input_hash: &str,
        parent: Option<&str>,
        labels: &BTreeMap<String, String>,
    ) -> bool {
        let parent_same = match parent {
            None => true,
            Some(p) => {
                let parent_stale = self.planned.get(p).is_some_and(|&i| !self.fresh[i]);
                let recorded = labels.get(PARENT_ID_LABEL);
                let parent_id = self
                    .fresh_ids
                    .get(p)
                    .or_else(|| self.parent_ids.get(p).and_then(Option::as_ref));
                !parent_stale && recorded.is_some() && recorded == parent_id
            }
        };
        !self.settings.build.no_cache
            && parent_same
            && labels.get(INPUT_HASH_LABEL).map(String::as_str) == Some(input_hash)
    }

    /// Job `n`'s decision: fresh (in the engine, or in the registry), existing, or none (built).
    async fn decide(
        &mut self,
        n: usize,
        input_hash: &str,
        reference: &str,
        facts: Option<ImageFacts>,
        parent: Option<&str>,
    ) -> Option<Outcome> {
        let mut found: Option<String> = None;
        let mut done = match &facts {
            Some(f) if self.is_fresh(input_hash, parent, &f.labels) => {
                found = Some(f.id.clone());
                Some(Outcome::Fresh)
            }
            Some(_) if self.settings.build.skip_existing => Some(Outcome::Existing),
            _ => None,
        };
        if let (None, Some(registry)) = (&done, self.registry) {
            for candidate in [reference.to_string(), (self.pushed_as)(reference)] {
                // A registry that cannot be read leaves the decision to the engine.
                if let Ok(Some(image)) = registry.image(&candidate).await {
                    if self.is_fresh(input_hash, parent, &image.labels) {
                        found = Some(image.id.clone());
                        self.from_registry.insert(
                            reference.to_string(),
                            InRegistry {
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
            self.fresh_ids.insert(reference.to_string(), id);
            self.fresh[n] = true;
        }
        done
    }
}

/// The labels every image of ours carries (kolla's tree adds its own).
fn labels_of(job: &Job, settings: &Settings, created: &str) -> BTreeMap<String, String> {
    let naming = &settings.naming;
    BTreeMap::from([
        (INPUT_HASH_LABEL.to_string(), job.input_hash.clone()),
        (
            "kolla_version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        (
            "org.opencontainers.image.created".to_string(),
            created.to_string(),
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
    ])
}

fn task_of(
    job: Job,
    reference: String,
    parent: Option<String>,
    done: Option<Outcome>,
    labels: BTreeMap<String, String>,
    settings: &Settings,
) -> Task {
    Task {
        name: job.name.clone(),
        deps: job.deps,
        priority: job.priority,
        decided: done,
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
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::config::FileConfig;
    use crate::config::cli::Cli;
    use crate::engine::fake::{FakeEngine, layer};
    use crate::engine::split_reference;
    use crate::prepare::context::ContextSpec;
    use clap::Parser;
    use std::path::Path;

    pub(in crate::build) fn settings(args: &[&str]) -> Settings {
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

    pub(in crate::build) fn external(settings: &Settings) -> String {
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
    pub(in crate::build) fn engine_with_base(settings: &Settings) -> (FakeEngine, String) {
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
        for task in tasks.iter().filter(|t| t.decided.is_none()) {
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
            &decide_in_engine(engine, s, g, jobs("b1", "k1"))
                .await
                .unwrap(),
        )
        .await;
    }

    /// [`decide`] without a registry: the engine alone.
    async fn decide_in_engine(
        engine: &FakeEngine,
        settings: &Settings,
        graph: &ImageGraph,
        jobs: Vec<Job>,
    ) -> Result<Vec<Task>> {
        Ok(decide(engine, None, settings, graph, jobs).await?.0)
    }

    fn decided(tasks: &[Task]) -> Vec<Option<Outcome>> {
        tasks.iter().map(|t| t.decided.clone()).collect()
    }

    #[tokio::test]
    async fn decide_builds_what_is_missing_and_finds_it_fresh_next_time() {
        let s = settings(&[]);
        let (engine, _) = engine_with_base(&s);
        let g = graph(&s);
        let tasks = decide_in_engine(&engine, &s, &g, jobs("b1", "k1"))
            .await
            .unwrap();
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
        let again = decide_in_engine(&engine, &s, &g, jobs("b1", "k1"))
            .await
            .unwrap();
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
        let child = decide_in_engine(&engine, &s, &g, jobs("b1", "k2"))
            .await
            .unwrap();
        assert_eq!(decided(&child), [Some(Outcome::Fresh), None]);
        let parent = decide_in_engine(&engine, &s, &g, jobs("b2", "k1"))
            .await
            .unwrap();
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
        let tasks = decide_in_engine(&engine, &s, &g, jobs("b1", "k1"))
            .await
            .unwrap();
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
        let tasks = decide_in_engine(&engine, &s, &g, jobs("b1", "k1"))
            .await
            .unwrap();
        assert_eq!(decided(&tasks), [None, None]);
    }

    #[tokio::test]
    async fn skip_existing_keeps_stale_images_and_no_cache_rebuilds_fresh_ones() {
        let (_, engine, _, g) = after_first_run().await;
        let skip = settings(&["--skip-existing"]);
        let tasks = decide_in_engine(&engine, &skip, &g, jobs("b2", "k2"))
            .await
            .unwrap();
        assert_eq!(
            decided(&tasks),
            [Some(Outcome::Existing), Some(Outcome::Existing)]
        );
        let no_cache = settings(&["--no-cache"]);
        let tasks = decide_in_engine(&engine, &no_cache, &g, jobs("b1", "k1"))
            .await
            .unwrap();
        assert_eq!(decided(&tasks), [None, None]);
        assert!(tasks.iter().all(|t| t.request.no_cache));
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
        let (tasks, found) = decide(&engine, Some(&registry), &s, &g, jobs("b1", "k1"))
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
                InRegistry {
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
        let tasks = decide_in_engine(&engine, &s, &g, jobs("b1", "k1"))
            .await
            .unwrap();
        assert_eq!(decided(&tasks), [Some(Outcome::Fresh), None]);
        let (tasks, found) = decide(&engine, Some(&registry), &s, &g, jobs("b1", "k2"))
            .await
            .unwrap();
        assert_eq!(decided(&tasks), [Some(Outcome::Fresh), None]);
        assert!(found.is_empty());
    }
}
