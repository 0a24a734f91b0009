//! The coordinator of every run: one ready-first DAG walk over the jobs (one coordinator owns
//! all state and the reporter, workers only send events) over a pool of engines, with a
//! placement step. A run on one engine is a pool of one ([`schedule::run`](super::schedule::run)).
//! A ready job goes to an engine that already holds its parent (whole subtrees stay together);
//! another engine takes it only when every holder is busy for longer than a pull is estimated to
//! take, and then pulls the parent first (the reference the parent was pushed under) and checks
//! its image ID against the one that was built. In a pool of several every built image is pushed,
//! so that any engine can fetch it. An engine that stops answering is dropped: its running jobs,
//! and its images not yet in the registry, are placed again elsewhere (a bounded number of times).
//!
//! [`place`] is the decision alone, a pure function of the engines' state.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::build::work::{Message, Options, Results, Task, Worker};
use crate::engine::{Engine, pinned};
use crate::report::event::{Event, Outcome, PushOutcome, Reporter};

/// One engine of the pool and how many builds it runs at once.
pub struct Member<E> {
    pub engine: Arc<E>,
    pub threads: usize,
}

#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Retries, timeout, backoff and push threads; `threads` is per member instead.
    pub base: Options,
    /// How long a pull of a parent is expected to take.
    pub pull_estimate: Duration,
    /// How long a build is expected to take when nothing better is known.
    pub build_estimate: Duration,
    /// Known build durations per task (from an earlier run's summary); may be empty.
    pub estimates: Vec<Option<Duration>>,
    /// How often a job is placed again after its engine was lost.
    pub moves: u32,
    /// The reference an image's push reaches the registry under (the staging tag in the
    /// atomic push mode).
    pub pushed_as: fn(&str) -> String,
    /// How often each engine is pinged; three misses in a row lose it.
    pub ping_every: Duration,
    /// Images the registry holds before the run, by the reference builds name them with:
    /// external base images pushed for the pool, images found fresh in the registry.
    pub in_registry: BTreeMap<String, Source>,
}

/// An image in the registry before the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
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
            pushed_as: pushed_as(options.push_mode),
            ping_every: Duration::from_secs(3),
            in_registry: BTreeMap::new(),
        }
    }
}

/// The reference a push in `mode` reaches the registry under.
pub fn pushed_as(mode: crate::common::types::PushMode) -> fn(&str) -> String {
    match mode {
        crate::common::types::PushMode::Atomic => crate::publish::staging_reference,
        crate::common::types::PushMode::Immediate => str::to_string,
    }
}

/// What a pool run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolResults {
    pub results: Results,
    /// The engine (index into the members) that built each task.
    pub built_on: Vec<Option<usize>>,
    /// The engines lost during the run, in the order they were lost.
    pub lost: Vec<usize>,
}

/// An engine as [`place`] sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub alive: bool,
    /// Builds it can start now.
    pub free: usize,
    /// Whether the job's parent is in the engine (always true for a job without one).
    pub holds_parent: bool,
    /// Estimated time until one of its builds finishes (zero when a build is free).
    pub wait: Duration,
}

/// Where a ready job goes now, or `None` to leave it waiting. An engine holding the parent with a
/// free build goes first (the one with the most free builds); another engine only when the
/// parent can be pulled (`pullable`) and every live holder stays busy for longer than `pull`.
pub fn place(slots: &[Slot], pullable: bool, pull: Duration) -> Option<usize> {
    let best = |holder: bool| {
        slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.alive && s.free > 0 && s.holds_parent == holder)
            .max_by_key(|(i, s)| (s.free, std::cmp::Reverse(*i)))
            .map(|(i, _)| i)
    };
    if let Some(i) = best(true) {
        return Some(i);
    }
    if !pullable {
        return None;
    }
    let holder_wait = slots
        .iter()
        .filter(|s| s.alive && s.holds_parent)
        .map(|s| s.wait)
        .min();
    match holder_wait {
        Some(wait) if wait <= pull => None,
        _ => best(false),
    }
}

/// Runs every task over the members; returns one outcome per task, the engine that built each,
/// and the engines lost. Every task with `push` is pushed once built (or found fresh); in a pool
/// that is every task, since pushes are the hand-off.
pub async fn run<E: Engine>(
    members: &[Member<E>],
    tasks: &[Task],
    options: &PoolOptions,
    reporter: &mut dyn Reporter,
    mut cancel: watch::Receiver<bool>,
) -> PoolResults {
    let n = tasks.len();
    let m = members.len();
    let subjects = crate::build::work::subjects_of(tasks);
    let children = crate::build::work::children_of(tasks);
    let index: BTreeMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.request.reference.as_str(), i))
        .collect();

    // Who holds what: every parent reference, and the image ID it must have.
    let mut holders: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    let mut wanted: BTreeSet<String> = tasks
        .iter()
        .filter_map(|t| t.request.parent.clone())
        .collect();
    wanted.extend(
        tasks
            .iter()
            .filter(|t| t.done.is_some())
            .map(|t| t.request.reference.clone()),
    );
    let mut alive = vec![true; m];
    for reference in &wanted {
        let set = holders.entry(reference.clone()).or_default();
        for (e, member) in members.iter().enumerate() {
            let want = options.in_registry.get(reference).map(|s| &s.id);
            match member.engine.inspect(reference).await {
                Ok(Some(facts)) if want.is_none_or(|id| *id == facts.id) => {
                    set.insert(e);
                    ids.entry(reference.clone()).or_insert(facts.id);
                }
                Ok(Some(_)) => {}
                Ok(None) => {}
                Err(_) => alive[e] = false,
            }
        }
    }
    for (reference, source) in &options.in_registry {
        ids.insert(reference.clone(), source.id.clone());
    }
    let mut lost: Vec<usize> = (0..m).filter(|&e| !alive[e]).collect();
    for set in holders.values_mut() {
        set.retain(|e| alive[*e]);
    }

    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let (lost_tx, mut lost_rx) = mpsc::unbounded_channel::<usize>();
    let watchdogs: Vec<JoinHandle<()>> = members
        .iter()
        .enumerate()
        .map(|(e, member)| {
            let (engine, lost_tx, every) =
                (member.engine.clone(), lost_tx.clone(), options.ping_every);
            tokio::spawn(async move {
                let mut misses = 0;
                loop {
                    tokio::time::sleep(every).await;
                    if engine.alive().await {
                        misses = 0;
                    } else {
                        misses += 1;
                        if misses >= 3 {
                            let _ = lost_tx.send(e);
                            return;
                        }
                    }
                }
            })
        })
        .collect();

    let mut outcomes: Vec<Option<Outcome>> = vec![None; n];
    let mut reported: Vec<bool> = vec![false; n];
    let mut waiting_on: Vec<usize> = tasks.iter().map(|t| t.deps.len()).collect();
    let mut ready: BTreeSet<usize> = BTreeSet::new();
    let mut running: BTreeMap<usize, (usize, Instant, JoinHandle<()>)> = BTreeMap::new();
    let mut pushing: BTreeMap<usize, (usize, JoinHandle<()>)> = BTreeMap::new();
    let mut push_queue: Vec<(usize, usize)> = Vec::new();
    let mut pushes: Vec<Option<PushOutcome>> = vec![None; n];
    let mut pushed = vec![false; n];
    let mut built_on: Vec<Option<usize>> = vec![None; n];
    let mut moves = vec![0u32; n];
    let mut finished_now: Vec<(usize, Outcome)> = Vec::new();
    let mut durations: Vec<Duration> = Vec::new();
    let mut cancelled = *cancel.borrow();

    for (i, task) in tasks.iter().enumerate() {
        if let Some(outcome) = &task.done {
            finished_now.push((i, outcome.clone()));
        } else if waiting_on[i] == 0 {
            ready.insert(i);
        }
    }
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        while let Some((i, outcome)) = finished_now.pop() {
            if outcomes[i].is_some() {
                continue;
            }
            let ok = outcome.is_ok();
            if !reported[i] {
                reporter.event(
                    &subjects,
                    &Event::Finished {
                        task: i,
                        outcome: outcome.clone(),
                    },
                );
                reported[i] = true;
            }
            if ok && tasks[i].push {
                // A fresh image is pushed from an engine that holds it; one that no live engine
                // holds was found in the registry.
                let from = built_on[i].or_else(|| {
                    holders
                        .get(&tasks[i].request.reference)
                        .and_then(|s| s.first().copied())
                });
                match from {
                    Some(e) => push_queue.push((i, e)),
                    None => pushed[i] = true,
                }
            } else if ok && tasks[i].done.is_some() && built_on[i].is_none() {
                pushed[i] = true;
            }
            outcomes[i] = Some(outcome);
            for &child in &children[i] {
                if outcomes[child].is_some() {
                    continue;
                }
                if ok {
                    waiting_on[child] -= 1;
                    if waiting_on[child] == 0 && tasks[child].done.is_none() {
                        ready.insert(child);
                    }
                } else if outcomes[i] == Some(Outcome::Cancelled) {
                    finished_now.push((child, Outcome::Cancelled));
                } else {
                    finished_now.push((
                        child,
                        Outcome::ParentFailed {
                            parent: tasks[i].name.clone(),
                        },
                    ));
                }
            }
        }
        if cancelled {
            for i in std::mem::take(&mut ready) {
                finished_now.push((i, Outcome::Cancelled));
            }
            for (i, _) in push_queue.drain(..) {
                pushes[i] = Some(PushOutcome::Cancelled);
            }
        }
        // Pushes, at most `push_threads` at once over the pool.
        while !cancelled && pushing.len() < options.base.push_threads.max(1) {
            let Some(pos) = push_queue.iter().position(|(_, e)| alive[*e]) else {
                break;
            };
            let (i, e) = push_queue.remove(pos);
            let worker = Worker {
                engine: members[e].engine.clone(),
                i,
                options: options.base.clone(),
                tx: tx.clone(),
            };
            let handle = tokio::spawn(worker.push(tasks[i].request.reference.clone()));
            pushing.insert(i, (e, handle));
        }
        // Placement, highest priority first.
        if !cancelled {
            let now = Instant::now();
            let mean = if durations.is_empty() {
                options.build_estimate
            } else {
                durations.iter().sum::<Duration>() / durations.len() as u32
            };
            let estimate = |i: usize| options.estimates.get(i).copied().flatten().unwrap_or(mean);
            let mut order: Vec<usize> = ready.iter().copied().collect();
            order.sort_by_key(|&i| (std::cmp::Reverse(tasks[i].priority), i));
            for i in order {
                let parent = tasks[i].request.parent.as_deref();
                let parent_task = parent.and_then(|p| index.get(p).copied());
                if parent_task.is_some_and(|p| outcomes[p].is_none()) {
                    continue; // being built again after its engine was lost
                }
                let held: BTreeSet<usize> = match parent {
                    None => (0..m).collect(),
                    Some(p) => holders.get(p).cloned().unwrap_or_default(),
                };
                // A parent built in this run can be pulled once pushed; one from before the run
                // (an external image or a fresh one) is looked for in the registry.
                let pullable = parent.is_some() && parent_task.is_none_or(|p| pushed[p]);
                let slots: Vec<Slot> = (0..m)
                    .map(|e| {
                        let busy: Vec<Duration> = running
                            .iter()
                            .filter(|(_, (on, _, _))| *on == e)
                            .map(|(&j, (_, started, _))| estimate(j).saturating_sub(now - *started))
                            .collect();
                        let free = members[e].threads.max(1).saturating_sub(busy.len());
                        let wait = if free > 0 {
                            Duration::ZERO
                        } else {
                            busy.into_iter().min().unwrap_or_default()
                        };
                        Slot {
                            alive: alive[e],
                            free,
                            holds_parent: held.contains(&e),
                            wait,
                        }
                    })
                    .collect();
                let Some(e) = place(&slots, pullable, options.pull_estimate) else {
                    continue;
                };
                ready.remove(&i);
                let pull = match parent {
                    Some(p) if !held.contains(&e) => Some(Handoff {
                        reference: p.to_string(),
                        pushed_as: match options.in_registry.get(p) {
                            Some(source) => source.pull_as.clone(),
                            // By the digest its push reported: that very manifest, whatever
                            // the tag holds by now.
                            None => pinned(
                                (options.pushed_as)(p),
                                parent_task.and_then(|p| pushed_digest(&pushes[p])),
                            ),
                        },
                        id: ids.get(p).cloned(),
                    }),
                    _ => None,
                };
                let worker = Worker {
                    engine: members[e].engine.clone(),
                    i,
                    options: options.base.clone(),
                    tx: tx.clone(),
                };
                let handle = tokio::spawn(job(worker, tasks[i].clone(), pull));
                running.insert(i, (e, now, handle));
            }
        }
        if !finished_now.is_empty() {
            continue;
        }
        if running.is_empty() && pushing.is_empty() {
            if ready.is_empty() || cancelled {
                break;
            }
            // Nothing runs and nothing can be placed: no engine left, or a parent that no live
            // engine holds and the registry lacks.
            let reason = if alive.iter().any(|a| *a) {
                "its parent is on no live engine and was not pushed to the registry"
            } else {
                "every engine of the pool was lost"
            };
            for i in std::mem::take(&mut ready) {
                finished_now.push((i, failed(reason)));
            }
            continue;
        }
        let message = tokio::select! {
            Some(message) = rx.recv() => Some(message),
            Some(e) = lost_rx.recv() => {
                if alive[e] {
                    lose(e, &mut Lose {
                        alive: &mut alive, lost: &mut lost, holders: &mut holders,
                        running: &mut running, pushing: &mut pushing, push_queue: &mut push_queue,
                        outcomes: &mut outcomes, built_on: &mut built_on, pushed: &pushed,
                        moves: &mut moves, ready: &mut ready, finished_now: &mut finished_now,
                        limit: options.moves, tasks, children: &children, waiting_on: &mut waiting_on,
                    });
                }
                None
            }
            _ = tick.tick() => { reporter.event(&subjects, &Event::Tick); None }
            changed = cancel.changed(), if !cancelled => {
                if changed.is_err() || *cancel.borrow() {
                    cancelled = true;
                    for (i, (_, _, handle)) in std::mem::take(&mut running) {
                        handle.abort();
                        let _ = handle.await;
                        finished_now.push((i, Outcome::Cancelled));
                    }
                    for (i, (_, handle)) in std::mem::take(&mut pushing) {
                        handle.abort();
                        let _ = handle.await;
                        pushes[i] = Some(PushOutcome::Cancelled);
                    }
                }
                None
            }
        };
        match message {
            None => {}
            Some(Message::Started(i, attempt)) => {
                reporter.event(&subjects, &Event::Started { task: i, attempt })
            }
            Some(Message::Log(i, line)) => reporter.event(&subjects, &Event::Log { task: i, line }),
            Some(Message::Retrying(i, attempt, error)) => reporter.event(
                &subjects,
                &Event::Retrying {
                    task: i,
                    attempt,
                    error,
                },
            ),
            Some(Message::Done(i, outcome)) => {
                let Some((e, started, _)) = running.remove(&i) else {
                    continue; // a job moved off a lost engine, finishing late
                };
                if !outcome.is_ok() && !members[e].engine.alive().await {
                    // The engine, not the image: move the job.
                    running.insert(i, (e, started, tokio::spawn(async {})));
                    lose(
                        e,
                        &mut Lose {
                            alive: &mut alive,
                            lost: &mut lost,
                            holders: &mut holders,
                            running: &mut running,
                            pushing: &mut pushing,
                            push_queue: &mut push_queue,
                            outcomes: &mut outcomes,
                            built_on: &mut built_on,
                            pushed: &pushed,
                            moves: &mut moves,
                            ready: &mut ready,
                            finished_now: &mut finished_now,
                            limit: options.moves,
                            tasks,
                            children: &children,
                            waiting_on: &mut waiting_on,
                        },
                    );
                    continue;
                }
                if let Outcome::Built { image_id, .. } = &outcome {
                    built_on[i] = Some(e);
                    durations.push(Instant::now() - started);
                    let reference = &tasks[i].request.reference;
                    ids.insert(reference.clone(), image_id.clone());
                    holders.insert(reference.clone(), BTreeSet::from([e]));
                }
                if let Some(p) = tasks[i].request.parent.as_ref() {
                    if outcome.is_ok() {
                        holders.entry(p.clone()).or_default().insert(e);
                    }
                }
                finished_now.push((i, outcome));
            }
            Some(Message::PushStarted(i)) => {
                reporter.event(&subjects, &Event::PushStarted { task: i })
            }
            Some(Message::PushDone(i, outcome)) => {
                if pushing.remove(&i).is_none() {
                    continue;
                }
                pushed[i] = matches!(outcome, PushOutcome::Pushed { .. });
                reporter.event(
                    &subjects,
                    &Event::Pushed {
                        task: i,
                        outcome: outcome.clone(),
                    },
                );
                pushes[i] = Some(outcome);
            }
        }
    }
    for watchdog in watchdogs {
        watchdog.abort();
    }
    PoolResults {
        results: Results {
            outcomes: outcomes
                .into_iter()
                .map(|o| o.unwrap_or(Outcome::Cancelled))
                .collect(),
            pushes,
        },
        built_on,
        lost,
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

/// The coordinator's state that losing an engine changes.
struct Lose<'a> {
    alive: &'a mut [bool],
    lost: &'a mut Vec<usize>,
    holders: &'a mut BTreeMap<String, BTreeSet<usize>>,
    running: &'a mut BTreeMap<usize, (usize, Instant, JoinHandle<()>)>,
    pushing: &'a mut BTreeMap<usize, (usize, JoinHandle<()>)>,
    push_queue: &'a mut Vec<(usize, usize)>,
    outcomes: &'a mut [Option<Outcome>],
    built_on: &'a mut [Option<usize>],
    pushed: &'a [bool],
    moves: &'a mut [u32],
    ready: &'a mut BTreeSet<usize>,
    finished_now: &'a mut Vec<(usize, Outcome)>,
    limit: u32,
    tasks: &'a [Task],
    children: &'a [Vec<usize>],
    waiting_on: &'a mut [usize],
}

/// Drops engine `e`: its running jobs go back to the ready set (or fail once moved `limit`
/// times), and the images only it held, not yet in the registry, are built again.
fn lose(e: usize, s: &mut Lose<'_>) {
    s.alive[e] = false;
    s.lost.push(e);
    for set in s.holders.values_mut() {
        set.remove(&e);
    }
    let mut again: Vec<usize> = s
        .running
        .iter()
        .filter(|(_, (on, _, _))| *on == e)
        .map(|(i, _)| *i)
        .collect();
    for i in &again {
        if let Some((_, _, handle)) = s.running.remove(i) {
            handle.abort();
        }
    }
    for (i, (on, handle)) in std::mem::take(s.pushing) {
        if on == e {
            handle.abort();
        } else {
            s.pushing.insert(i, (on, handle));
        }
    }
    s.push_queue.retain(|(_, on)| *on != e);
    // Built there, not pushed: gone with the engine, built again elsewhere. With no engine
    // left they stay built: nothing could use them anyway, and the summary says what happened.
    let others = s.alive.iter().any(|a| *a);
    for i in 0..s.tasks.len() {
        if others && s.built_on[i] == Some(e) && !s.pushed[i] {
            s.built_on[i] = None;
            s.outcomes[i] = None;
            again.push(i);
            for &child in &s.children[i] {
                if s.outcomes[child].is_none() && !s.running.contains_key(&child) {
                    s.ready.remove(&child);
                    s.waiting_on[child] += 1;
                }
            }
        }
    }
    for i in again {
        s.moves[i] += 1;
        if s.moves[i] > s.limit {
            s.finished_now.push((
                i,
                failed(&format!(
                    "its engine was lost {} times; no engine left to try",
                    s.moves[i]
                )),
            ));
        } else if s.tasks[i].deps.iter().all(|&d| s.outcomes[d].is_some()) {
            s.ready.insert(i);
        }
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
                worker.i,
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

    fn slot(free: usize, holds_parent: bool, wait: u64) -> Slot {
        Slot {
            alive: true,
            free,
            holds_parent,
            wait: Duration::from_secs(wait),
        }
    }

    const PULL: Duration = Duration::from_secs(30);

    #[test]
    fn placement_prefers_the_engine_holding_the_parent() {
        let slots = [slot(2, false, 0), slot(1, true, 0), slot(1, false, 0)];
        assert_eq!(place(&slots, true, PULL), Some(1));
        // Of two holders, the one with more free builds.
        let slots = [slot(1, true, 0), slot(3, true, 0)];
        assert_eq!(place(&slots, true, PULL), Some(1));
    }

    #[test]
    fn placement_weighs_a_pull_against_waiting_for_the_holder() {
        // The holder frees up before a pull would finish: wait for it.
        let slots = [slot(0, true, 10), slot(2, false, 0)];
        assert_eq!(place(&slots, true, PULL), None);
        // The holder stays busy longer than a pull: pull elsewhere.
        let slots = [slot(0, true, 300), slot(2, false, 0)];
        assert_eq!(place(&slots, true, PULL), Some(1));
        // Not in the registry yet: only a holder can take it.
        assert_eq!(place(&slots, false, PULL), None);
        // A dead holder does not count.
        let mut slots = [slot(0, true, 10), slot(1, false, 0)];
        slots[0].alive = false;
        assert_eq!(place(&slots, true, PULL), Some(1));
        // Nothing free anywhere.
        assert_eq!(
            place(&[slot(0, true, 5), slot(0, false, 5)], true, PULL),
            None
        );
    }

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
            done: None,
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

    fn pool(n: usize, threads: usize) -> Vec<Member<FakeEngine>> {
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
                Member {
                    engine: Arc::new(engine),
                    threads,
                }
            })
            .collect()
    }

    async fn run_pool(members: &[Member<FakeEngine>], tasks: &[Task]) -> PoolResults {
        let (_tx, rx) = watch::channel(false);
        run(members, tasks, &options(), &mut Quiet, rx).await
    }

    fn builds(members: &[Member<FakeEngine>]) -> Vec<String> {
        let mut all: Vec<String> = members
            .iter()
            .flat_map(|m| m.engine.calls())
            .filter_map(|c| c.strip_prefix("start ").map(str::to_string))
            .collect();
        all.sort();
        all
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
            t.done = Some(Outcome::Fresh);
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
