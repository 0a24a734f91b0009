//! The coordinator of every run: one ready-first DAG walk over the tasks (one coordinator owns
//! all state and the reporter, workers only send events) over a pool of engines. A run on one
//! engine is a pool of one ([`schedule::run`](super::schedule::run)). A ready task goes where
//! [`place`] says: to an engine that already holds its parent (whole subtrees stay together), or
//! to another that pulls the parent first (the reference the parent was pushed under) and checks
//! its image ID against the one that was built. In a pool of several every built image is
//! pushed, so that any engine can fetch it. An engine that stops answering is dropped: its
//! running tasks, and its images not yet in the registry, are placed again elsewhere (a bounded
//! number of times); a run on one engine stops then, as on a signal.
//!
//! The loop, as cargo's `DrainState`: [`Coordinator::handle_finished`] releases the children of
//! what finished, [`Coordinator::spawn_pushes`] and [`Coordinator::spawn_builds`] start what
//! can start, then one event is awaited and handled ([`Coordinator::handle_message`], a lost
//! engine, a tick, a cancellation).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use crate::build::engines::PoolEngine;

use crate::build::engines::Engines;
use crate::build::placement::{Candidate, place};
use crate::build::work::{Message, Options, Results, Task, Worker};
use crate::engine::{Engine, pinned};
use crate::report::event::{Event, Notice, Outcome, PushOutcome, Reporter, Subject};
use crate::settings::Settings;

#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Retries, timeout, backoff and push threads; `threads` is per engine instead.
    pub base: Options,
    /// How long a pull of a parent is expected to take.
    pub pull_estimate: Duration,
    /// How long a build is expected to take when nothing better is known.
    pub build_estimate: Duration,
    /// Known build durations per task (from an earlier run's summary); may be empty.
    pub estimates: Vec<Option<Duration>>,
    /// How often a task is placed again after its engine was lost.
    pub moves: u32,
    /// The reference an image's push reaches the registry under (the staging reference in the
    /// atomic push mode: [`crate::publish::pushed_as`]).
    pub pushed_as: fn(&str) -> String,
    /// How often each engine is pinged; three misses in a row lose it.
    pub ping_every: Duration,
    /// Images the registry holds before the run, by the reference builds name them with:
    /// external base images pushed for the pool, images found fresh in the registry.
    pub in_registry: BTreeMap<String, InRegistry>,
}

/// An image in the registry before the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InRegistry {
    /// The reference to pull it as.
    pub pull_as: String,
    /// Its image ID: an engine holding another image under the same reference does not hold it.
    pub id: String,
}

impl PoolOptions {
    /// For a run on one engine: nothing is handed over, so only the run's options count.
    pub fn one(options: &Options) -> PoolOptions {
        PoolOptions {
            base: options.clone(),
            pull_estimate: Duration::ZERO,
            build_estimate: Duration::from_secs(60),
            estimates: Vec::new(),
            moves: 0,
            pushed_as: crate::publish::pushed_as(options.push_mode),
            ping_every: Duration::from_secs(3),
            in_registry: BTreeMap::new(),
        }
    }
}

/// What a pool run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolResults {
    pub results: Results,
    /// The engine (index into the pool) that built each task.
    pub built_on: Vec<Option<usize>>,
    /// The engine on which each failed build ran its last attempt (for the report's lanes).
    pub failed_on: Vec<Option<usize>>,
    /// The engines lost during the run, in the order they were lost.
    pub lost: Vec<usize>,
}

/// Step 5 of a build: runs the tasks over the run's engines, from the reporter's `begin` to its
/// `finish`; a signal stops the run.
pub(super) async fn coordinate(
    settings: &Settings,
    engines: &Engines,
    tasks: &[Task],
    durations: &BTreeMap<String, f64>,
    in_registry: &BTreeMap<String, InRegistry>,
    reporter: &mut dyn Reporter,
) -> PoolResults {
    // The engines are watched by the coordinator itself (`engines::watch`).
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let on_signal = tokio::spawn(async move {
        crate::common::signals::wait().await;
        let _ = cancel_tx.send(true);
    });
    reporter.begin(tasks.len(), settings.build.logs_dir.clone());
    let options = Options {
        threads: settings.build.engines[0].threads,
        retries: settings.build.retries,
        timeout: Some(settings.build.timeout),
        backoff: Duration::from_secs(2),
        push_threads: settings.build.push_threads,
        push_mode: settings.build.push_mode,
    };
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
    let pool = engines.for_coordinator(settings);
    let ran = run(&pool, tasks, &pool_options, reporter, cancel_rx).await;
    reporter.finish();
    on_signal.abort();
    for &e in &ran.lost {
        reporter.notice(&Notice::Warning(format!(
            "the engine at {} stopped answering during the run; its work was moved to the others",
            engines.urls[e]
        )));
    }
    ran
}

/// Runs every task over the engines; returns one outcome per task, the engine that built each,
/// and the engines lost. Every task with `push` is pushed once built (or found fresh); in a pool
/// that is every task, since pushes are the hand-off. `cancel` turning true stops new work and
/// aborts running builds and pushes.
pub async fn run<E: Engine>(
    engines: &[PoolEngine<E>],
    tasks: &[Task],
    options: &PoolOptions,
    reporter: &mut dyn Reporter,
    mut cancel: watch::Receiver<bool>,
) -> PoolResults {
    let (tx, mut messages) = mpsc::unbounded_channel::<Message>();
    let mut c = Coordinator::new(engines, tasks, options, tx, *cancel.borrow());
    c.find_holders().await;
    let (lost_tx, mut lost) = mpsc::unbounded_channel::<usize>();
    let _watchdog = crate::build::engines::watch(engines, options.ping_every, &lost_tx);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        c.handle_finished(reporter);
        if c.cancelled {
            c.cancel_waiting();
        }
        c.spawn_pushes();
        if !c.cancelled {
            c.spawn_builds();
        }
        if !c.finished_now.is_empty() {
            continue;
        }
        if c.running.is_empty() && c.pushing.is_empty() {
            if c.ready.is_empty() || c.cancelled {
                break;
            }
            c.fail_unplaceable();
            continue;
        }
        tokio::select! {
            Some(message) = messages.recv() => c.handle_message(message, reporter).await,
            Some(e) = lost.recv() => c.engine_lost(e).await,
            _ = tick.tick() => reporter.event(&c.subjects, &Event::Tick),
            changed = cancel.changed(), if !c.cancelled => {
                if changed.is_err() || *cancel.borrow() {
                    c.cancel().await;
                }
            }
        }
    }
    c.into_results()
}

/// A build running on `engine` since `started`.
struct Running {
    engine: usize,
    started: Instant,
    handle: JoinHandle<()>,
}

/// A push running from `engine`.
struct Pushing {
    engine: usize,
    handle: JoinHandle<()>,
}

/// All the state of a run: who holds what, the walk over the tasks, what runs where.
struct Coordinator<'a, E> {
    engines: &'a [PoolEngine<E>],
    tasks: &'a [Task],
    options: &'a PoolOptions,
    /// What the reporter names each task by.
    subjects: Vec<Subject>,
    /// For each task, the tasks built FROM it.
    children: Vec<Vec<usize>>,
    /// Each task, by the reference it builds.
    by_reference: BTreeMap<&'a str, usize>,
    /// For every parent reference (and image done before the run), the engines holding it.
    holders: BTreeMap<String, BTreeSet<usize>>,
    /// The image ID each reference must have.
    ids: BTreeMap<String, String>,
    alive: Vec<bool>,
    /// The engines lost, in the order they were lost.
    lost: Vec<usize>,
    outcomes: Vec<Option<Outcome>>,
    /// Whether the reporter heard of each task's outcome (a task built again does not tell twice).
    reported: Vec<bool>,
    /// How many of its parents each task still waits for.
    waiting_on: Vec<usize>,
    ready: BTreeSet<usize>,
    running: BTreeMap<usize, Running>,
    pushing: BTreeMap<usize, Pushing>,
    /// Pushes to start: the task, and the engine to push it from.
    push_queue: Vec<(usize, usize)>,
    pushes: Vec<Option<PushOutcome>>,
    /// Whether each task's image is in the registry (pushed, or found there).
    pushed: Vec<bool>,
    built_on: Vec<Option<usize>>,
    failed_on: Vec<Option<usize>>,
    /// How often each task was placed again after its engine was lost.
    moves: Vec<u32>,
    /// Outcomes to handle (release or fail the children).
    finished_now: Vec<(usize, Outcome)>,
    /// How long the builds of this run took, for the estimates.
    durations: Vec<Duration>,
    cancelled: bool,
    tx: mpsc::UnboundedSender<Message>,
}

impl<'a, E: Engine> Coordinator<'a, E> {
    fn new(
        engines: &'a [PoolEngine<E>],
        tasks: &'a [Task],
        options: &'a PoolOptions,
        tx: mpsc::UnboundedSender<Message>,
        cancelled: bool,
    ) -> Self {
        let n = tasks.len();
        let mut c = Coordinator {
            engines,
            tasks,
            options,
            subjects: crate::build::work::subjects_of(tasks),
            children: crate::build::work::children_of(tasks),
            by_reference: tasks
                .iter()
                .enumerate()
                .map(|(i, t)| (t.request.reference.as_str(), i))
                .collect(),
            holders: BTreeMap::new(),
            ids: BTreeMap::new(),
            alive: vec![true; engines.len()],
            lost: Vec::new(),
            outcomes: vec![None; n],
            reported: vec![false; n],
            waiting_on: tasks.iter().map(|t| t.deps.len()).collect(),
            ready: BTreeSet::new(),
            running: BTreeMap::new(),
            pushing: BTreeMap::new(),
            push_queue: Vec::new(),
            pushes: vec![None; n],
            pushed: vec![false; n],
            built_on: vec![None; n],
            failed_on: vec![None; n],
            moves: vec![0; n],
            finished_now: Vec::new(),
            durations: Vec::new(),
            cancelled,
            tx,
        };
        for (i, task) in tasks.iter().enumerate() {
            if let Some(outcome) = &task.decided {
                c.finished_now.push((i, outcome.clone()));
            } else if c.waiting_on[i] == 0 {
                c.ready.insert(i);
            }
        }
        c
    }

    /// Who holds what before the run: every parent reference and every image decided before
    /// the run, in each engine, with the image ID it must have. An engine that cannot answer is
    /// lost at once.
    async fn find_holders(&mut self) {
        let mut wanted: BTreeSet<String> = self
            .tasks
            .iter()
            .filter_map(|t| t.request.parent.clone())
            .collect();
        wanted.extend(
            self.tasks
                .iter()
                .filter(|t| t.decided.is_some())
                .map(|t| t.request.reference.clone()),
        );
        for reference in &wanted {
            let set = self.holders.entry(reference.clone()).or_default();
            for (e, member) in self.engines.iter().enumerate() {
                let want = self.options.in_registry.get(reference).map(|s| &s.id);
                match member.engine.inspect(reference).await {
                    Ok(Some(facts)) if want.is_none_or(|id| *id == facts.id) => {
                        set.insert(e);
                        self.ids.entry(reference.clone()).or_insert(facts.id);
                    }
                    Ok(_) => {}
                    Err(_) => self.alive[e] = false,
                }
            }
        }
        for (reference, image) in &self.options.in_registry {
            self.ids.insert(reference.clone(), image.id.clone());
        }
        self.lost = (0..self.engines.len())
            .filter(|&e| !self.alive[e])
            .collect();
        for set in self.holders.values_mut() {
            set.retain(|e| self.alive[*e]);
        }
    }

    /// Handles every outcome that came in: reported once, its push queued, its children
    /// released (or failed with it).
    fn handle_finished(&mut self, reporter: &mut dyn Reporter) {
        while let Some((i, outcome)) = self.finished_now.pop() {
            if self.outcomes[i].is_some() {
                continue;
            }
            if !self.reported[i] {
                let event = Event::Finished {
                    task: i,
                    outcome: outcome.clone(),
                };
                reporter.event(&self.subjects, &event);
                self.reported[i] = true;
            }
            let ok = outcome.is_ok();
            if ok {
                self.queue_push(i);
            }
            let cancelled = outcome == Outcome::Cancelled;
            self.outcomes[i] = Some(outcome);
            self.release_children(i, ok, cancelled);
        }
    }

    /// Queues the push of task `i`, which finished well, when it asks for one.
    fn queue_push(&mut self, i: usize) {
        let task = &self.tasks[i];
        if task.push {
            // A fresh image is pushed from an engine that holds it; one that no live engine
            // holds was found in the registry.
            let from = self.built_on[i].or_else(|| {
                self.holders
                    .get(&task.request.reference)
                    .and_then(|s| s.first().copied())
            });
            match from {
                Some(e) => self.push_queue.push((i, e)),
                None => self.pushed[i] = true,
            }
        } else if task.decided.is_some() && self.built_on[i].is_none() {
            self.pushed[i] = true;
        }
    }

    /// Task `i` finished: its children wait for one parent less, or fail (are cancelled) with it.
    fn release_children(&mut self, i: usize, ok: bool, cancelled: bool) {
        for &child in &self.children[i] {
            if self.outcomes[child].is_some() {
                continue;
            }
            if ok {
                self.waiting_on[child] -= 1;
                if self.waiting_on[child] == 0 && self.tasks[child].decided.is_none() {
                    self.ready.insert(child);
                }
            } else if cancelled {
                self.finished_now.push((child, Outcome::Cancelled));
            } else {
                let parent = self.tasks[i].name.clone();
                self.finished_now
                    .push((child, Outcome::ParentFailed { parent }));
            }
        }
    }

    /// After a cancellation: nothing waiting starts.
    fn cancel_waiting(&mut self) {
        for i in std::mem::take(&mut self.ready) {
            self.finished_now.push((i, Outcome::Cancelled));
        }
        for (i, _) in self.push_queue.drain(..) {
            self.pushes[i] = Some(PushOutcome::Cancelled);
        }
    }

    /// Starts queued pushes, at most `push_threads` at once over the pool.
    fn spawn_pushes(&mut self) {
        while !self.cancelled && self.pushing.len() < self.options.base.push_threads.max(1) {
            let Some(pos) = self.push_queue.iter().position(|(_, e)| self.alive[*e]) else {
                break;
            };
            let (i, e) = self.push_queue.remove(pos);
            let push = self
                .worker(i, e)
                .push(self.tasks[i].request.reference.clone());
            let handle = tokio::spawn(push);
            self.pushing.insert(i, Pushing { engine: e, handle });
        }
    }

    /// Places the ready tasks, highest priority first.
    fn spawn_builds(&mut self) {
        let now = Instant::now();
        let mut order: Vec<usize> = self.ready.iter().copied().collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(self.tasks[i].priority), i));
        for i in order {
            self.try_place(i, now);
        }
    }

    /// Starts task `i` where [`place`] says, pulling its parent first on an engine that lacks it;
    /// leaves it ready when no engine should take it now.
    fn try_place(&mut self, i: usize, now: Instant) {
        let tasks = self.tasks;
        let parent = tasks[i].request.parent.as_deref();
        let parent_task = parent.and_then(|p| self.by_reference.get(p).copied());
        if parent_task.is_some_and(|p| self.outcomes[p].is_none()) {
            return; // being built again after its engine was lost
        }
        let held: BTreeSet<usize> = match parent {
            None => (0..self.engines.len()).collect(),
            Some(p) => self.holders.get(p).cloned().unwrap_or_default(),
        };
        // A parent built in this run can be pulled once pushed; one from before the run (an
        // external image or a fresh one) is looked for in the registry.
        let pullable = parent.is_some() && parent_task.is_none_or(|p| self.pushed[p]);
        let candidates = self.candidates(&held, now);
        let Some(e) = place(&candidates, pullable, self.options.pull_estimate) else {
            return;
        };
        self.ready.remove(&i);
        let pull = match parent {
            Some(p) if !held.contains(&e) => Some(self.handoff(p, parent_task)),
            _ => None,
        };
        let handle = tokio::spawn(job(self.worker(i, e), tasks[i].clone(), pull));
        let started = now;
        self.running.insert(
            i,
            Running {
                engine: e,
                started,
                handle,
            },
        );
    }

    /// Each engine as [`place`] sees it, for a task whose parent the `held` engines hold.
    fn candidates(&self, held: &BTreeSet<usize>, now: Instant) -> Vec<Candidate> {
        let mean = if self.durations.is_empty() {
            self.options.build_estimate
        } else {
            self.durations.iter().sum::<Duration>() / self.durations.len() as u32
        };
        let estimate = |i: usize| {
            let known = self.options.estimates.get(i).copied().flatten();
            known.unwrap_or(mean)
        };
        (0..self.engines.len())
            .map(|e| {
                let busy: Vec<Duration> = self
                    .running
                    .iter()
                    .filter(|(_, r)| r.engine == e)
                    .map(|(&j, r)| estimate(j).saturating_sub(now - r.started))
                    .collect();
                let free = self.engines[e].threads.max(1).saturating_sub(busy.len());
                let wait = if free > 0 {
                    Duration::ZERO
                } else {
                    busy.into_iter().min().unwrap_or_default()
                };
                Candidate {
                    alive: self.alive[e],
                    free,
                    holds_parent: held.contains(&e),
                    wait,
                }
            })
            .collect()
    }

    /// How an engine that lacks `parent` (built by `parent_task`, or from before the run) gets it.
    fn handoff(&self, parent: &str, parent_task: Option<usize>) -> Handoff {
        let pushed_as = match self.options.in_registry.get(parent) {
            Some(image) => image.pull_as.clone(),
            // By the digest its push reported: that very manifest, whatever the tag holds by now.
            None => pinned(
                (self.options.pushed_as)(parent),
                parent_task.and_then(|p| pushed_digest(&self.pushes[p])),
            ),
        };
        Handoff {
            reference: parent.to_string(),
            pushed_as,
            id: self.ids.get(parent).cloned(),
        }
    }

    fn worker(&self, task: usize, engine: usize) -> Worker<E> {
        Worker {
            engine: self.engines[engine].engine.clone(),
            task,
            options: self.options.base.clone(),
            tx: self.tx.clone(),
        }
    }

    /// Nothing runs and nothing can be placed: no engine left, or a parent that no live engine
    /// holds and the registry lacks.
    fn fail_unplaceable(&mut self) {
        let reason = if self.alive.iter().any(|a| *a) {
            "its parent is on no live engine and was not pushed to the registry"
        } else {
            "every engine of the pool was lost"
        };
        for i in std::mem::take(&mut self.ready) {
            self.finished_now.push((i, failed(reason)));
        }
    }

    /// Stops the run: running builds and pushes are aborted (and awaited).
    async fn cancel(&mut self) {
        self.cancelled = true;
        for (i, running) in std::mem::take(&mut self.running) {
            running.handle.abort();
            let _ = running.handle.await;
            self.finished_now.push((i, Outcome::Cancelled));
        }
        for (i, pushing) in std::mem::take(&mut self.pushing) {
            pushing.handle.abort();
            let _ = pushing.handle.await;
            self.pushes[i] = Some(PushOutcome::Cancelled);
        }
    }

    /// The watchdog lost engine `e`. With one engine there is nowhere to move its work: the run
    /// stops as on a signal.
    async fn engine_lost(&mut self, e: usize) {
        if !self.alive[e] {
            return;
        }
        if self.engines.len() == 1 {
            self.cancel().await;
        }
        self.lose(e);
    }

    async fn handle_message(&mut self, message: Message, reporter: &mut dyn Reporter) {
        let event = match message {
            Message::Started(task, attempt) => Event::Started { task, attempt },
            Message::Log(task, line) => Event::Log { task, line },
            Message::Retrying(task, attempt, error) => Event::Retrying {
                task,
                attempt,
                error,
            },
            Message::PushStarted(task) => Event::PushStarted { task },
            Message::Done(i, outcome) => return self.build_done(i, outcome).await,
            Message::PushDone(i, outcome) => {
                if self.pushing.remove(&i).is_none() {
                    return;
                }
                self.pushed[i] = matches!(outcome, PushOutcome::Pushed { .. });
                self.pushes[i] = Some(outcome.clone());
                Event::Pushed { task: i, outcome }
            }
        };
        reporter.event(&self.subjects, &event);
    }

    /// Task `i`'s build ended: who holds what now. A failure on an engine that no longer answers
    /// is the engine's, not the image's: the engine is lost and the task moves.
    async fn build_done(&mut self, i: usize, outcome: Outcome) {
        let Some(Running {
            engine: e, started, ..
        }) = self.running.remove(&i)
        else {
            return; // a task moved off a lost engine, finishing late
        };
        if !outcome.is_ok() && !self.engines[e].engine.alive().await {
            let handle = tokio::spawn(async {});
            self.running.insert(
                i,
                Running {
                    engine: e,
                    started,
                    handle,
                },
            );
            self.lose(e);
            return;
        }
        let request = &self.tasks[i].request;
        if let Outcome::Failed { .. } = &outcome {
            self.failed_on[i] = Some(e);
        }
        if let Outcome::Built { image_id, .. } = &outcome {
            self.built_on[i] = Some(e);
            self.durations.push(Instant::now() - started);
            self.ids.insert(request.reference.clone(), image_id.clone());
            self.holders
                .insert(request.reference.clone(), BTreeSet::from([e]));
        }
        if let (Some(parent), true) = (&request.parent, outcome.is_ok()) {
            self.holders.entry(parent.clone()).or_default().insert(e);
        }
        self.finished_now.push((i, outcome));
    }

    /// Drops engine `e`: its running tasks go back to the ready set (or fail once moved
    /// `moves` times), and the images only it held, not yet in the registry, are built again.
    fn lose(&mut self, e: usize) {
        self.alive[e] = false;
        self.lost.push(e);
        for set in self.holders.values_mut() {
            set.remove(&e);
        }
        let mut again: Vec<usize> = self
            .running
            .iter()
            .filter(|(_, r)| r.engine == e)
            .map(|(i, _)| *i)
            .collect();
        for i in &again {
            if let Some(running) = self.running.remove(i) {
                running.handle.abort();
            }
        }
        for (i, pushing) in std::mem::take(&mut self.pushing) {
            if pushing.engine == e {
                pushing.handle.abort();
            } else {
                self.pushing.insert(i, pushing);
            }
        }
        self.push_queue.retain(|(_, on)| *on != e);
        again.extend(self.unbuild_on(e));
        for i in again {
            self.moves[i] += 1;
            if self.moves[i] > self.options.moves {
                let reason = format!(
                    "its engine was lost {} times; no engine left to try",
                    self.moves[i]
                );
                self.finished_now.push((i, failed(&reason)));
            } else if self.tasks[i]
                .deps
                .iter()
                .all(|&d| self.outcomes[d].is_some())
            {
                self.ready.insert(i);
            }
        }
    }

    /// The images built on lost engine `e` and not pushed: gone with the engine, to be built
    /// again elsewhere (their children wait for them again). With no engine left they stay
    /// built: nothing could use them anyway, and the summary says what happened.
    fn unbuild_on(&mut self, e: usize) -> Vec<usize> {
        if !self.alive.iter().any(|a| *a) {
            return Vec::new();
        }
        let mut again = Vec::new();
        for i in 0..self.tasks.len() {
            if self.built_on[i] == Some(e) && !self.pushed[i] {
                self.built_on[i] = None;
                self.outcomes[i] = None;
                again.push(i);
                for &child in &self.children[i] {
                    if self.outcomes[child].is_none() && !self.running.contains_key(&child) {
                        self.ready.remove(&child);
                        self.waiting_on[child] += 1;
                    }
                }
            }
        }
        again
    }

    fn into_results(self) -> PoolResults {
        let outcomes = self.outcomes.into_iter();
        PoolResults {
            results: Results {
                outcomes: outcomes.map(|o| o.unwrap_or(Outcome::Cancelled)).collect(),
                pushes: self.pushes,
            },
            built_on: self.built_on,
            failed_on: self.failed_on,
            lost: self.lost,
        }
    }
}

fn failed(reason: &str) -> Outcome {
    Outcome::Failed {
        error: reason.to_string(),
        attempts: 0,
        seconds: 0.0,
        log_tail: Vec::new(),
    }
}

/// The manifest digest a finished push reported.
pub fn pushed_digest(push: &Option<PushOutcome>) -> Option<&str> {
    match push {
        Some(PushOutcome::Pushed {
            digest: Some(digest),
            ..
        }) => Some(digest),
        _ => None,
    }
}

/// A parent to fetch before a build: pulled as `pushed_as`, tagged as `reference`, checked
/// against `id`.
struct Handoff {
    reference: String,
    pushed_as: String,
    id: Option<String>,
}

/// Pulls the parent when the engine lacks it, then builds (with the single-engine worker).
async fn job<E: Engine>(worker: Worker<E>, task: Task, pull: Option<Handoff>) {
    if let Some(pull) = pull {
        let fetched = crate::engine::fetch(
            &*worker.engine,
            &pull.pushed_as,
            &pull.reference,
            pull.id.as_deref(),
        );
        if let Err(error) = fetched.await {
            let _ = worker.tx.send(Message::Done(
                worker.task,
                failed(&format!(
                    "cannot hand `{}` over to the engine at {}: {error}\nhint: check that the engine reaches the registry",
                    pull.reference,
                    worker.engine.url()
                )),
            ));
            return;
        }
    }
    worker.build(task.request).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::FakeEngine;
    use crate::report::event::Notice;
    use std::collections::BTreeSet;
    use std::sync::Arc;

    const REGISTRY: &str = "127.0.0.1:4000/k";

    fn reference(name: &str) -> String {
        format!("{REGISTRY}/{name}:1")
    }

    fn task(name: &str, parent: Option<(usize, &str)>, priority: usize) -> Task {
        Task {
            name: name.into(),
            deps: parent.map(|(i, _)| vec![i]).unwrap_or_default(),
            priority,
            request: crate::build::work::test_request(
                name,
                reference(name),
                parent.map(|(_, p)| reference(p)),
            ),
            decided: None,
            push: true,
        }
    }

    /// base ← openstack-base ← {keystone, nova, glance}; base ← {mariadb, memcached}.
    fn tree() -> Vec<Task> {
        vec![
            task("base", None, 9),
            task("openstack-base", Some((0, "base")), 5),
            task("keystone", Some((1, "openstack-base")), 1),
            task("nova", Some((1, "openstack-base")), 1),
            task("glance", Some((1, "openstack-base")), 1),
            task("mariadb", Some((0, "base")), 1),
            task("memcached", Some((0, "base")), 1),
        ]
    }

    #[derive(Default)]
    struct Quiet;

    impl Reporter for Quiet {
        fn notice(&self, _: &Notice) {}
        fn event(&mut self, _: &[crate::report::event::Subject], _: &Event) {}
    }

    fn options() -> PoolOptions {
        PoolOptions {
            base: Options {
                threads: 1,
                retries: 0,
                timeout: None,
                backoff: Duration::from_millis(1),
                push_threads: 4,
                push_mode: crate::common::types::PushMode::Immediate,
            },
            pull_estimate: Duration::from_secs(5),
            build_estimate: Duration::from_secs(60),
            estimates: Vec::new(),
            moves: 2,
            pushed_as: |r| r.to_string(),
            ping_every: Duration::from_secs(3),
            in_registry: BTreeMap::new(),
        }
    }

    /// `n` fakes over one registry; every build takes a minute, every pull 5 s.
    /// Marks `engine` dead once `seconds` of the (paused) clock have passed.
    fn kill_after(engine: &Arc<FakeEngine>, seconds: u64) -> JoinHandle<()> {
        let doomed = engine.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            doomed.set_dead(true);
        })
    }

    fn pool(n: usize, threads: usize) -> Vec<PoolEngine<FakeEngine>> {
        let first = FakeEngine::new();
        (0..n)
            .map(|e| {
                let engine = if e == 0 {
                    FakeEngine::new()
                } else {
                    FakeEngine::new().sharing_registry_with(&first)
                };
                let engine = tree().iter().fold(
                    engine
                        .sharing_registry_with(&first)
                        .with_url(&format!("fake://engine{e}"))
                        .with_pull_delay(Duration::from_secs(5)),
                    |engine, t| engine.with_build_delay(&t.name, Duration::from_secs(60)),
                );
                PoolEngine {
                    engine: Arc::new(engine),
                    threads,
                }
            })
            .collect()
    }

    async fn run_pool(members: &[PoolEngine<FakeEngine>], tasks: &[Task]) -> PoolResults {
        let (_tx, rx) = watch::channel(false);
        run(members, tasks, &options(), &mut Quiet, rx).await
    }

    fn builds(members: &[PoolEngine<FakeEngine>]) -> Vec<String> {
        let mut all: Vec<String> = members
            .iter()
            .flat_map(|m| m.engine.calls())
            .filter_map(|c| c.strip_prefix("start ").map(str::to_string))
            .collect();
        all.sort();
        all
    }

    /// A failed build says which engine it failed on (the report draws it in that engine's
    /// lane); a built one says where it was built; a child never started says nothing.
    #[tokio::test(start_paused = true)]
    async fn a_failed_build_names_the_engine_it_ran_on() {
        let members: Vec<PoolEngine<FakeEngine>> = pool(2, 1)
            .into_iter()
            .map(|m| PoolEngine {
                engine: Arc::new(
                    Arc::try_unwrap(m.engine)
                        .ok()
                        .unwrap()
                        .with_build_failures("nova", 9),
                ),
                threads: m.threads,
            })
            .collect();
        let tasks = tree();
        let out = run_pool(&members, &tasks).await;
        let nova = tasks.iter().position(|t| t.name == "nova").unwrap();
        assert!(
            matches!(out.results.outcomes[nova], Outcome::Failed { .. }),
            "{out:?}"
        );
        assert!(out.failed_on[nova].is_some(), "{out:?}");
        assert_eq!(out.built_on[nova], None);
        let base = tasks.iter().position(|t| t.name == "base").unwrap();
        assert_eq!(out.failed_on[base], None);
        assert!(out.built_on[base].is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn every_image_is_built_once_pushed_and_handed_over_by_pulls() {
        let members = pool(3, 1);
        let tasks = tree();
        let out = run_pool(&members, &tasks).await;
        assert!(out.results.outcomes.iter().all(Outcome::is_ok), "{out:?}");
        let mut names: Vec<String> = tasks.iter().map(|t| t.name.clone()).collect();
        names.sort();
        assert_eq!(builds(&members), names, "each image built exactly once");
        assert!(out.lost.is_empty());
        let used: BTreeSet<usize> = out.built_on.iter().flatten().copied().collect();
        assert!(used.len() > 1, "the work was spread: {:?}", out.built_on);
        // What the registry serves is what was built, and an engine that built a child of a
        // parent it did not build pulled that parent first, by the digest its push reported.
        for (i, t) in tasks.iter().enumerate() {
            let Outcome::Built { image_id, .. } = &out.results.outcomes[i] else {
                panic!()
            };
            let e = out.built_on[i].unwrap();
            let remote = members[0].engine.remote(&t.request.reference).unwrap();
            assert_eq!(&remote.id, image_id, "{}", t.name);
            if let Some(&p) = t.deps.first() {
                let calls = members[e].engine.calls();
                let parent = &tasks[p].request.reference;
                let digest = members[0].engine.pushed_digest(parent).unwrap();
                assert_eq!(
                    pushed_digest(&out.results.pushes[p]),
                    Some(digest.as_str()),
                    "{}",
                    tasks[p].name
                );
                let pulled = calls.contains(&format!(
                    "pull {}",
                    crate::engine::by_digest(parent, &digest)
                ));
                assert!(
                    !calls.contains(&format!("pull {parent}")),
                    "pulled by tag: {calls:?}"
                );
                assert_eq!(pulled, out.built_on[p] != Some(e), "{}: {calls:?}", t.name);
                let parent_id = members[e]
                    .engine
                    .image(&tasks[p].request.reference)
                    .unwrap()
                    .id;
                let Outcome::Built { image_id, .. } = &out.results.outcomes[p] else {
                    panic!()
                };
                assert_eq!(&parent_id, image_id);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_chain_stays_on_one_engine_without_pulls() {
        let members = pool(3, 1);
        let tasks = vec![
            task("base", None, 3),
            task("openstack-base", Some((0, "base")), 2),
            task("keystone", Some((1, "openstack-base")), 1),
        ];
        let out = run_pool(&members, &tasks).await;
        assert!(out.results.outcomes.iter().all(Outcome::is_ok));
        assert_eq!(out.built_on, [Some(0), Some(0), Some(0)]);
        assert!(
            members
                .iter()
                .all(|m| !m.engine.calls().iter().any(|c| c.starts_with("pull "))),
            "no pulls"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn fresh_images_from_the_registry_are_built_nowhere() {
        let members = pool(2, 1);
        let mut tasks = tree();
        let first = run_pool(&members, &tasks).await;
        assert!(first.results.outcomes.iter().all(Outcome::is_ok));
        for t in &mut tasks {
            t.decided = Some(Outcome::Fresh);
        }
        let before = builds(&members).len();
        let again = run_pool(&members, &tasks).await;
        assert!(again.results.outcomes.iter().all(|o| *o == Outcome::Fresh));
        assert_eq!(builds(&members).len(), before);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_engine_has_its_jobs_built_elsewhere() {
        let members = pool(3, 1);
        let tasks = tree();
        // Mid-build: base is done (60 s), its children are building.
        let killer = kill_after(&members[1].engine, 90);
        let out = run_pool(&members, &tasks).await;
        killer.await.unwrap();
        assert!(out.results.outcomes.iter().all(Outcome::is_ok), "{out:?}");
        assert_eq!(out.lost, [1]);
        assert!(
            out.built_on.iter().all(|e| e.is_some() && *e != Some(1)),
            "nothing counts as built on the lost engine: {:?}",
            out.built_on
        );
        // Everything is in the registry.
        for t in &tasks {
            assert!(
                members[0].engine.remote(&t.request.reference).is_some(),
                "{}",
                t.name
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn losing_the_last_engine_keeps_what_it_built() {
        let members = pool(1, 1);
        let mut tasks = tree();
        for t in &mut tasks {
            t.push = false;
        }
        // base is built (60 s), openstack-base is building.
        let killer = kill_after(&members[0].engine, 90);
        let out = run_pool(&members, &tasks).await;
        killer.await.unwrap();
        assert_eq!(out.lost, [0]);
        assert!(
            matches!(out.results.outcomes[0], Outcome::Built { .. }),
            "base was built before the loss: {out:?}"
        );
        assert!(
            out.results.outcomes[1..].iter().all(|o| !o.is_ok()),
            "{out:?}"
        );
    }
}
