//! What the scheduler runs: the tasks, the run's options and results, and the workers (one
//! build or one push, with retries, backoff and a per-attempt timeout). Workers never report:
//! they send [`Message`]s to the coordinator ([`coordinator::run`](super::coordinator::run)).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::common::retry::retrying;
use crate::common::types::PushMode;
use crate::engine::{BuildRequest, Engine, EngineError};
use crate::report::event::{Outcome, PushOutcome, Subject};

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
    pub decided: Option<Outcome>,
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
    /// How a push publishes (under a staging tag, or the final one).
    pub push_mode: PushMode,
}

pub(super) enum Message {
    Log(usize, String),
    Retrying(usize, u32, String),
    Started(usize, u32),
    Done(usize, Outcome),
    PushStarted(usize),
    PushDone(usize, PushOutcome),
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

/// One job of the coordinator's: task `task` on one engine, telling the coordinator through `tx`.
pub(super) struct Worker<E> {
    pub(super) engine: Arc<E>,
    /// The task's index (what the coordinator's messages name it by).
    pub(super) task: usize,
    pub(super) options: Options,
    pub(super) tx: mpsc::UnboundedSender<Message>,
}

impl<E: Engine> Worker<E> {
    /// The image's push (as `options.push_mode` says), with retries and backoff: registries
    /// drop connections under load.
    pub(super) async fn push(self, reference: String) {
        let (engine, i, options, tx) = (self.engine, self.task, self.options, self.tx);
        let started = Instant::now();
        let _ = tx.send(Message::PushStarted(i));
        let (result, attempts) = with_retries(i, &options, &tx, |_| async {
            let (log_tx, mut log_rx) = mpsc::unbounded_channel::<String>();
            let push = crate::publish::push(&*engine, &reference, options.push_mode, log_tx);
            let result = bounded(options.timeout, push, EngineError::Push).await;
            while let Ok(line) = log_rx.try_recv() {
                let _ = tx.send(Message::Log(i, line));
            }
            result
        })
        .await;
        let outcome = match result {
            Ok(digest) => PushOutcome::Pushed {
                seconds: started.elapsed().as_secs_f64(),
                attempts,
                digest,
            },
            Err(error) => PushOutcome::Failed {
                error: error.to_string(),
                attempts,
            },
        };
        let _ = tx.send(Message::PushDone(i, outcome));
    }

    /// The task's build attempts, with retries, backoff and a per-attempt timeout.
    pub(super) async fn build(self, request: BuildRequest) {
        let (engine, i, options, tx) = (self.engine, self.task, self.options, self.tx);
        let started = Instant::now();
        let tail: Mutex<VecDeque<String>> = Mutex::new(VecDeque::with_capacity(LOG_TAIL));
        let (result, attempts) = with_retries(i, &options, &tx, |attempt| {
            let (engine, request, tx, tail) = (&engine, request.clone(), &tx, &tail);
            async move {
                let _ = tx.send(Message::Started(i, attempt));
                let (log_tx, mut log_rx) = mpsc::unbounded_channel::<String>();
                let build = bounded(
                    options.timeout,
                    engine.build(request, log_tx),
                    EngineError::Build,
                );
                tokio::pin!(build);
                let result = loop {
                    tokio::select! {
                        result = &mut build => break result,
                        Some(line) = log_rx.recv() => forward(tx, tail, i, line),
                    }
                };
                while let Ok(line) = log_rx.try_recv() {
                    forward(tx, tail, i, line);
                }
                result
            }
        })
        .await;
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
                log_tail: tail.into_inner().unwrap_or_default().into_iter().collect(),
            },
        };
        let _ = tx.send(Message::Done(i, outcome));
    }
}

/// Runs `attempt` (given its number, from 1) until it succeeds or the retries are spent, telling
/// the coordinator of each retry and waiting the backoff before it; returns the last result and
/// the number of attempts.
async fn with_retries<T, F, Fut>(
    i: usize,
    options: &Options,
    tx: &mpsc::UnboundedSender<Message>,
    attempt: F,
) -> (Result<T, EngineError>, u32)
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, EngineError>>,
{
    let tell = |n: u32, error: &EngineError| {
        let _ = tx.send(Message::Retrying(i, n, error.to_string()));
    };
    retrying(options.retries, options.backoff, tell, attempt).await
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

/// A build's log line: kept in the tail for the report, and sent on.
fn forward(
    tx: &mpsc::UnboundedSender<Message>,
    tail: &Mutex<VecDeque<String>>,
    i: usize,
    line: String,
) {
    if let Ok(mut tail) = tail.lock() {
        if tail.len() == LOG_TAIL {
            tail.pop_front();
        }
        tail.push_back(line.clone());
    }
    let _ = tx.send(Message::Log(i, line));
}

/// A build request for scheduler tests: `name` built as `reference`, FROM `parent`.
#[cfg(test)]
pub(super) fn test_request(name: &str, reference: String, parent: Option<String>) -> BuildRequest {
    BuildRequest {
        image: name.into(),
        reference,
        context: crate::prepare::context::ContextSpec::new(format!("FROM {name}'s parent"), vec![]),
        labels: std::collections::BTreeMap::new(),
        build_args: std::collections::BTreeMap::new(),
        network_mode: "host".into(),
        no_cache: false,
        keep: false,
        pull: false,
        parent,
    }
}
