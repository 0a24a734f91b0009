//! The scheduler: a ready-first DAG walk over the jobs. One coordinator owns all state and the
//! reporter; workers only send events. At most `threads` builds run at once, the job unblocking
//! the most work first. A failure marks the job's descendants `parent_error` while independent
//! jobs go on; cancellation stops new work and aborts running builds.

use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::common::retry::backoff_delay;
use crate::engine::{BuildRequest, Engine, EngineError};
use crate::report::event::{Event, Outcome, PushOutcome, Reporter, Subject};

/// How many log lines of a failed build are kept for the report.
pub const LOG_TAIL: usize = 30;

/// A unit of work for the scheduler.
#[derive(Debug, Clone)]
pub struct Task {
    pub name: String,
    pub deps: Vec<usize>,
    pub priority: usize,
    pub request: BuildRequest,
    /// Decided before scheduling (freshness / skip-existing); such tasks finish at once.
    pub done: Option<Outcome>,
    /// Push the image once it is built (or found fresh).
    pub push: bool,
}

/// Everything a run produced, one entry per task.
#[derive(Debug, Clone, PartialEq)]
pub struct Results {
    pub outcomes: Vec<Outcome>,
    /// `None` where no push was asked for, or the image was not built.
    pub pushes: Vec<Option<PushOutcome>>,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub threads: usize,
    pub retries: u32,
    /// Bounds one build attempt.
    pub timeout: Option<Duration>,
    /// Delay before the first retry; doubles each time.
    pub backoff: Duration,
    /// Pushes at once; pushes run beside builds, off the critical path.
    pub push_threads: usize,
}

pub(super) enum Message {
    Log(usize, String),
    Retrying(usize, u32, String),
    Started(usize, u32),
    Done(usize, Outcome),
    PushStarted(usize),
    PushDone(usize, PushOutcome),
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Ready {
    priority: usize,
    /// Reversed so that, at equal priority, the lower index (earlier name) goes first.
    order: std::cmp::Reverse<usize>,
}

/// What the reporter names each task by.
pub(crate) fn subjects_of(tasks: &[Task]) -> Vec<Subject> {
    tasks
        .iter()
        .map(|t| Subject {
            name: t.name.clone(),
            reference: t.request.reference.clone(),
        })
        .collect()
}

/// For each task, the tasks that depend on it.
pub(crate) fn children_of(tasks: &[Task]) -> Vec<Vec<usize>> {
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); tasks.len()];
    for (i, task) in tasks.iter().enumerate() {
        for &dep in &task.deps {
            children[dep].push(i);
        }
    }
    children
}

/// Runs every task; returns one outcome (and push outcome) per task. `cancel` turning true stops
/// new work and aborts running builds and pushes.
pub async fn run<E: Engine>(
    engine: Arc<E>,
    tasks: &[Task],
    options: &Options,
    reporter: &mut dyn Reporter,
    mut cancel: watch::Receiver<bool>,
) -> Results {
    let n = tasks.len();
    let subjects = subjects_of(tasks);
    let mut outcomes: Vec<Option<Outcome>> = vec![None; n];
    let mut waiting_on: Vec<usize> = tasks.iter().map(|t| t.deps.len()).collect();
    let children = children_of(tasks);
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let mut ready = BinaryHeap::new();
    let mut running: BTreeMap<usize, JoinHandle<()>> = BTreeMap::new();
    let mut pushes: Vec<Option<PushOutcome>> = vec![None; n];
    let mut push_queue: VecDeque<usize> = VecDeque::new();
    let mut pushing: BTreeMap<usize, JoinHandle<()>> = BTreeMap::new();
    let mut finished_now: VecDeque<(usize, Outcome)> = VecDeque::new();
    let mut cancelled = *cancel.borrow();

    for (i, task) in tasks.iter().enumerate() {
        if let Some(outcome) = &task.done {
            finished_now.push_back((i, outcome.clone()));
        } else if waiting_on[i] == 0 {
            ready.push(Ready {
                priority: task.priority,
                order: std::cmp::Reverse(i),
            });
        }
    }
    // Tasks decided up front may still have undecided parents; they are done regardless.
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        // Settle everything that finished: unblock children or mark them parent_error.
        while let Some((i, outcome)) = finished_now.pop_front() {
            if outcomes[i].is_some() {
                continue;
            }
            let ok = outcome.is_ok();
            reporter.event(
                &subjects,
                &Event::Finished {
                    task: i,
                    outcome: outcome.clone(),
                },
            );
            if ok && tasks[i].push {
                push_queue.push_back(i);
            }
            outcomes[i] = Some(outcome);
            for &child in &children[i] {
                if outcomes[child].is_some() {
                    continue;
                }
                if ok {
                    waiting_on[child] -= 1;
                    if waiting_on[child] == 0 && tasks[child].done.is_none() {
                        ready.push(Ready {
                            priority: tasks[child].priority,
                            order: std::cmp::Reverse(child),
                        });
                    }
                } else if outcomes[i] == Some(Outcome::Cancelled) {
                    finished_now.push_back((child, Outcome::Cancelled));
                } else {
                    finished_now.push_back((
                        child,
                        Outcome::ParentFailed {
                            parent: tasks[i].name.clone(),
                        },
                    ));
                }
            }
        }
        if cancelled {
            while let Some(Ready { order, .. }) = ready.pop() {
                finished_now.push_back((order.0, Outcome::Cancelled));
            }
            for i in push_queue.drain(..) {
                pushes[i] = Some(PushOutcome::Cancelled);
            }
        }
        while !cancelled && pushing.len() < options.push_threads.max(1) {
            let Some(i) = push_queue.pop_front() else {
                break;
            };
            let reference = tasks[i].request.reference.clone();
            let handle = tokio::spawn(push_work(
                engine.clone(),
                i,
                reference,
                options.clone(),
                tx.clone(),
            ));
            pushing.insert(i, handle);
        }
        while !cancelled && running.len() < options.threads.max(1) {
            let Some(Ready { order, .. }) = ready.pop() else {
                break;
            };
            let i = order.0;
            let handle = tokio::spawn(work(
                engine.clone(),
                i,
                tasks[i].request.clone(),
                options.clone(),
                tx.clone(),
            ));
            running.insert(i, handle);
        }
        if !finished_now.is_empty() {
            continue;
        }
        if running.is_empty() && pushing.is_empty() {
            break;
        }
        tokio::select! {
            Some(message) = rx.recv() => match message {
                Message::Started(i, attempt) => reporter.event(&subjects, &Event::Started { task: i, attempt }),
                Message::Log(i, line) => reporter.event(&subjects, &Event::Log { task: i, line }),
                Message::Retrying(i, attempt, error) => reporter.event(&subjects, &Event::Retrying { task: i, attempt, error }),
                Message::Done(i, outcome) => {
                    running.remove(&i);
                    finished_now.push_back((i, outcome));
                }
                Message::PushStarted(i) => reporter.event(&subjects, &Event::PushStarted { task: i }),
                Message::PushDone(i, outcome) => {
                    pushing.remove(&i);
                    reporter.event(&subjects, &Event::Pushed { task: i, outcome: outcome.clone() });
                    pushes[i] = Some(outcome);
                }
            },
            _ = tick.tick() => reporter.event(&subjects, &Event::Tick),
            changed = cancel.changed(), if !cancelled => {
                if changed.is_err() || *cancel.borrow() {
                    cancelled = true;
                    // Dropping a build's request makes the engine stop it.
                    for (i, handle) in std::mem::take(&mut running) {
                        handle.abort();
                        let _ = handle.await;
                        finished_now.push_back((i, Outcome::Cancelled));
                    }
                    for (i, handle) in std::mem::take(&mut pushing) {
                        handle.abort();
                        let _ = handle.await;
                        pushes[i] = Some(PushOutcome::Cancelled);
                    }
                }
            }
        }
    }
    // Anything never reached (only possible after cancellation) is cancelled.
    Results {
        outcomes: outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::Cancelled))
            .collect(),
        pushes,
    }
}

/// One image's push, with retries and backoff: registries drop connections under load.
pub(super) async fn push_work<E: Engine>(
    engine: Arc<E>,
    i: usize,
    reference: String,
    options: Options,
    tx: mpsc::UnboundedSender<Message>,
) {
    let started = Instant::now();
    let _ = tx.send(Message::PushStarted(i));
    let mut attempts = 0;
    let result = loop {
        attempts += 1;
        let (log_tx, mut log_rx) = mpsc::unbounded_channel::<String>();
        let result = bounded(
            options.timeout,
            engine.push(&reference, log_tx),
            EngineError::Push,
        )
        .await;
        while let Ok(line) = log_rx.try_recv() {
            let _ = tx.send(Message::Log(i, line));
        }
        match result {
            Err(error) if attempts <= options.retries => {
                back_off(i, attempts, &error, &options, &tx).await
            }
            result => break result,
        }
    };
    let outcome = match result {
        Ok(()) => PushOutcome::Pushed {
            seconds: started.elapsed().as_secs_f64(),
            attempts,
        },
        Err(error) => PushOutcome::Failed {
            error: error.to_string(),
            attempts,
        },
    };
    let _ = tx.send(Message::PushDone(i, outcome));
}

/// One task's attempts, with retries, backoff and a per-attempt timeout.
pub(super) async fn work<E: Engine>(
    engine: Arc<E>,
    i: usize,
    request: BuildRequest,
    options: Options,
    tx: mpsc::UnboundedSender<Message>,
) {
    let started = Instant::now();
    let mut tail: VecDeque<String> = VecDeque::with_capacity(LOG_TAIL);
    let mut attempts = 0;
    let result = loop {
        attempts += 1;
        let _ = tx.send(Message::Started(i, attempts));
        let (log_tx, mut log_rx) = mpsc::unbounded_channel::<String>();
        let build = bounded(
            options.timeout,
            engine.build(request.clone(), log_tx),
            EngineError::Build,
        );
        tokio::pin!(build);
        let result = loop {
            tokio::select! {
                result = &mut build => break result,
                Some(line) = log_rx.recv() => forward(&tx, &mut tail, i, line),
            }
        };
        while let Ok(line) = log_rx.try_recv() {
            forward(&tx, &mut tail, i, line);
        }
        match result {
            Err(error) if attempts <= options.retries => {
                back_off(i, attempts, &error, &options, &tx).await
            }
            result => break result,
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let outcome = match result {
        Ok(image_id) => Outcome::Built {
            image_id,
            seconds,
            attempts,
        },
        Err(error) => Outcome::Failed {
            error: error.to_string(),
            attempts,
            seconds,
            log_tail: tail.into_iter().collect(),
        },
    };
    let _ = tx.send(Message::Done(i, outcome));
}

/// After failed attempt number `attempt` with retries left: tells the coordinator, then waits
/// the backoff before the next attempt.
async fn back_off(
    i: usize,
    attempt: u32,
    error: &EngineError,
    options: &Options,
    tx: &mpsc::UnboundedSender<Message>,
) {
    let _ = tx.send(Message::Retrying(i, attempt, error.to_string()));
    tokio::time::sleep(backoff_delay(options.backoff, attempt)).await;
}

/// `work` cut off after `limit`, failing as `error` says.
async fn bounded<T>(
    limit: Option<Duration>,
    work: impl Future<Output = Result<T, EngineError>>,
    error: fn(String) -> EngineError,
) -> Result<T, EngineError> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, work)
            .await
            .unwrap_or_else(|_| Err(error(format!("timed out after {} s", limit.as_secs())))),
        None => work.await,
    }
}

fn forward(
    tx: &mpsc::UnboundedSender<Message>,
    tail: &mut VecDeque<String>,
    i: usize,
    line: String,
) {
    if tail.len() == LOG_TAIL {
        tail.pop_front();
    }
    tail.push_back(line.clone());
    let _ = tx.send(Message::Log(i, line));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::FakeEngine;
    use crate::prepare::context::ContextSpec;

    fn task(name: &str, deps: &[usize], priority: usize) -> Task {
        Task {
            name: name.into(),
            deps: deps.to_vec(),
            priority,
            request: BuildRequest {
                image: name.into(),
                reference: format!("k/{name}:1"),
                context: ContextSpec::new("FROM x".into(), vec![]),
                labels: BTreeMap::new(),
                build_args: BTreeMap::new(),
                network_mode: "host".into(),
                no_cache: false,
                keep: false,
                pull: false,
                parent: None,
            },
            done: None,
            push: false,
        }
    }

    #[derive(Default)]
    struct Recorder(Vec<Event>);

    impl Reporter for Recorder {
        fn notice(&self, _: &crate::report::event::Notice) {}

        fn event(&mut self, _: &[Subject], event: &Event) {
            if !matches!(event, Event::Tick | Event::Log { .. }) {
                self.0.push(event.clone());
            }
        }
    }

    fn options(threads: usize, retries: u32) -> Options {
        Options {
            threads,
            retries,
            timeout: Some(Duration::from_secs(5)),
            backoff: Duration::from_millis(1),
            push_threads: 2,
        }
    }

    /// base(0) ← openstack-base(1) ← {keystone(2), nova(3)}; base ← mariadb(4).
    fn tree() -> Vec<Task> {
        vec![
            task("base", &[], 5),
            task("openstack-base", &[0], 3),
            task("keystone", &[1], 1),
            task("nova", &[1], 1),
            task("mariadb", &[0], 1),
        ]
    }

    async fn run_with(
        engine: FakeEngine,
        tasks: &[Task],
        opts: Options,
    ) -> (Vec<Outcome>, Arc<FakeEngine>, Recorder) {
        let engine = Arc::new(engine);
        let (_tx, rx) = watch::channel(false);
        let mut recorder = Recorder::default();
        let outcomes = run(engine.clone(), tasks, &opts, &mut recorder, rx)
            .await
            .outcomes;
        (outcomes, engine, recorder)
    }

    #[tokio::test]
    async fn parents_build_before_children_and_priority_picks_wide_parents_first() {
        let (outcomes, engine, _) = run_with(FakeEngine::new(), &tree(), options(1, 0)).await;
        assert!(outcomes.iter().all(Outcome::is_ok), "{outcomes:?}");
        let order = engine.calls();
        assert_eq!(
            order,
            [
                "start base",
                "start openstack-base",
                "start keystone",
                "start nova",
                "start mariadb"
            ]
        );
    }

    #[tokio::test]
    async fn thread_bound_is_respected_and_used() {
        let tasks: Vec<Task> = (0..8).map(|i| task(&format!("leaf{i}"), &[], 1)).collect();
        let engine = (0..8).fold(FakeEngine::new(), |engine, i| {
            engine.with_build_delay(&format!("leaf{i}"), Duration::from_millis(30))
        });
        let (outcomes, engine, _) = run_with(engine, &tasks, options(3, 0)).await;
        assert!(outcomes.iter().all(Outcome::is_ok));
        assert_eq!(engine.max_parallel_builds(), 3);
    }

    #[tokio::test]
    async fn failure_marks_descendants_and_siblings_go_on() {
        let engine = FakeEngine::new().with_build_failures("openstack-base", 9);
        let (outcomes, _, _) = run_with(engine, &tree(), options(2, 0)).await;
        assert_eq!(outcomes[1].status(), "error");
        assert_eq!(
            outcomes[2],
            Outcome::ParentFailed {
                parent: "openstack-base".into()
            }
        );
        assert_eq!(
            outcomes[3],
            Outcome::ParentFailed {
                parent: "openstack-base".into()
            }
        );
        assert_eq!(outcomes[4].status(), "built");
        let Outcome::Failed {
            log_tail, attempts, ..
        } = &outcomes[1]
        else {
            panic!()
        };
        assert_eq!(*attempts, 1);
        assert_eq!(
            log_tail.last().map(String::as_str),
            Some("Step 1/1 : building openstack-base")
        );
    }

    #[tokio::test]
    async fn grandchildren_of_a_failure_are_parent_errors_too() {
        let engine = FakeEngine::new().with_build_failures("base", 9);
        let (outcomes, engine, _) = run_with(engine, &tree(), options(2, 0)).await;
        assert_eq!(
            outcomes[2],
            Outcome::ParentFailed {
                parent: "openstack-base".into()
            }
        );
        assert_eq!(
            engine.calls().len(),
            1,
            "nothing but base was sent to the engine"
        );
    }

    #[tokio::test]
    async fn retries_recover_a_flaky_build() {
        let engine = FakeEngine::new().with_build_failures("mariadb", 2);
        let (outcomes, _, recorder) = run_with(engine, &tree(), options(2, 2)).await;
        let Outcome::Built { attempts, .. } = &outcomes[4] else {
            panic!("{:?}", outcomes[4])
        };
        assert_eq!(*attempts, 3);
        let retries = recorder
            .0
            .iter()
            .filter(|e| matches!(e, Event::Retrying { task: 4, .. }))
            .count();
        assert_eq!(retries, 2);
    }

    #[tokio::test]
    async fn timeout_fails_a_hung_build() {
        let engine = FakeEngine::new().with_hanging_build("keystone");
        let mut opts = options(2, 0);
        opts.timeout = Some(Duration::from_millis(100));
        let (outcomes, _, _) = run_with(engine, &tree(), opts).await;
        let Outcome::Failed { error, .. } = &outcomes[2] else {
            panic!("{:?}", outcomes[2])
        };
        assert!(error.contains("timed out"), "{error}");
        assert_eq!(outcomes[3].status(), "built");
    }

    #[tokio::test]
    async fn decided_tasks_are_not_built_and_unblock_children() {
        let mut tasks = tree();
        tasks[0].done = Some(Outcome::Fresh);
        tasks[1].done = Some(Outcome::Fresh);
        let (outcomes, engine, _) = run_with(FakeEngine::new(), &tasks, options(2, 0)).await;
        assert_eq!(outcomes[0], Outcome::Fresh);
        assert!(outcomes.iter().all(Outcome::is_ok));
        assert!(!engine.calls().contains(&"start base".to_string()));
    }

    #[tokio::test]
    async fn pushes_follow_builds_without_blocking_children_and_failures_are_per_image() {
        let mut tasks = tree();
        for t in &mut tasks {
            t.push = true;
        }
        tasks[0].done = Some(Outcome::Fresh);
        let engine = FakeEngine::new().with_failing_push("k/nova:1");
        // The fresh image is in the engine already.
        engine.add_image("k/base:1", BTreeMap::new(), Vec::new());
        let engine = Arc::new(engine);
        let (_tx, rx) = watch::channel(false);
        let mut recorder = Recorder::default();
        let results = run(engine.clone(), &tasks, &options(2, 1), &mut recorder, rx).await;
        assert!(results.outcomes.iter().all(Outcome::is_ok));
        assert!(
            matches!(results.pushes[0], Some(PushOutcome::Pushed { .. })),
            "fresh images are pushed too"
        );
        let Some(PushOutcome::Failed { attempts, error }) = &results.pushes[3] else {
            panic!("{:?}", results.pushes[3])
        };
        assert_eq!(*attempts, 2, "one retry");
        assert!(error.contains("connection refused"));
        let log = engine.calls();
        let pushed_base = log.iter().position(|l| l == "push k/base:1").unwrap();
        let built_openstack = log
            .iter()
            .position(|l| l == "start openstack-base")
            .unwrap();
        assert!(built_openstack < log.len() && pushed_base < log.len());
        assert_eq!(
            log.iter().filter(|l| l.starts_with("push ")).count(),
            6,
            "5 images, one retried"
        );
    }

    #[tokio::test]
    async fn cancellation_stops_new_work_and_aborts_running_builds() {
        let engine = Arc::new(FakeEngine::new().with_hanging_build("base"));
        let (tx, rx) = watch::channel(false);
        let tasks = tree();
        let opts = options(2, 0);
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            tx.send(true).unwrap();
            tx
        });
        let mut recorder = Recorder::default();
        let outcomes = tokio::time::timeout(
            Duration::from_secs(5),
            run(engine.clone(), &tasks, &opts, &mut recorder, rx),
        )
        .await
        .expect("cancellation ends the run")
        .outcomes;
        let _tx = canceller.await.unwrap();
        assert_eq!(outcomes[0], Outcome::Cancelled);
        assert!(
            outcomes[1..]
                .iter()
                .all(|o| matches!(o, Outcome::ParentFailed { .. } | Outcome::Cancelled)),
            "{outcomes:?}"
        );
        assert_eq!(engine.calls().len(), 1);
    }
}
