//! The scheduler of a run on one engine: a ready-first DAG walk over the jobs, the job
//! unblocking the most work first, at most `threads` builds at once. It is the pool's coordinator
//! ([`coordinator::run`]) over a pool of one engine: one coordinator owns all state and the reporter,
//! workers only send events. A failure marks the job's descendants `parent_error` while
//! independent jobs go on; cancellation stops new work and aborts running builds.

use std::sync::Arc;

use tokio::sync::watch;

use crate::build::coordinator::{self, PoolEngine, PoolOptions};
use crate::engine::Engine;
use crate::report::event::Reporter;

pub use crate::build::work::{LOG_TAIL, Options, Results, Task};

/// Runs every task; returns one outcome (and push outcome) per task. `cancel` turning true stops
/// new work and aborts running builds and pushes.
pub async fn run<E: Engine>(
    engine: Arc<E>,
    tasks: &[Task],
    options: &Options,
    reporter: &mut dyn Reporter,
    cancel: watch::Receiver<bool>,
) -> Results {
    let pool = [PoolEngine {
        engine,
        threads: options.threads,
    }];
    coordinator::run(&pool, tasks, &PoolOptions::one(options), reporter, cancel)
        .await
        .results
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::types::PushMode;
    use crate::engine::fake::FakeEngine;
    use crate::report::event::{Event, Outcome, PushOutcome, Subject};
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn task(name: &str, deps: &[usize], priority: usize) -> Task {
        Task {
            name: name.into(),
            deps: deps.to_vec(),
            priority,
            request: crate::build::work::test_request(name, format!("k/{name}:1"), None),
            decided: None,
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
            push_mode: PushMode::Immediate,
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
        tasks[0].decided = Some(Outcome::Fresh);
        tasks[1].decided = Some(Outcome::Fresh);
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
        tasks[0].decided = Some(Outcome::Fresh);
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
