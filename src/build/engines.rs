//! Step 1 of a build: connect to every engine of the run, failing fast (the error names the one
//! that does not answer), with the registry a pool hands images over through. Watching them is
//! [`watch`]: one watchdog per engine, run by the coordinator, the only liveness check of a run.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::common::error::{Error, Result};
use crate::engine::Engine;
use crate::engine::docker::DockerEngine;
use crate::publish::registry::Registry;
use crate::settings::Settings;

/// One engine of the pool and how many builds it runs at once.
pub struct PoolEngine<E> {
    pub engine: Arc<E>,
    pub threads: usize,
}

/// The engines of a run, in the order `--engine` gave them; the first is the one that makes the
/// external base images, decides freshness and exports.
pub(super) struct Engines {
    pub(super) engines: Vec<Arc<DockerEngine>>,
    /// Each engine's address as `--engine` gave it (for the summary and warnings).
    pub(super) urls: Vec<String>,
    /// The registry of a pool (hand-offs, freshness, tag moves); none for one engine.
    pub(super) registry: Option<Registry>,
}

impl Engines {
    /// Connects to every engine at once; every one answers before any work.
    pub(super) async fn connect(settings: &Settings) -> Result<Engines> {
        let specs = &settings.build.engines;
        let connect = futures_util::future::try_join_all(
            specs
                .iter()
                .map(|spec| DockerEngine::connect(&spec.url, spec.tls_dir.as_deref())),
        );
        let engines = crate::common::signals::or_interrupt(connect)
            .await
            .map_err(|signal| Error::Interrupted { signal })??
            .into_iter()
            .map(|e| Arc::new(e.with_credentials(settings.build.credentials.clone())))
            .collect();
        let registry = match &settings.naming.registry {
            Some(host) if specs.len() > 1 => {
                Some(Registry::new(host, settings.build.credentials.as_ref()))
            }
            _ => None,
        };
        let urls = specs.iter().map(|spec| spec.url.clone()).collect();
        Ok(Engines {
            engines,
            urls,
            registry,
        })
    }

    pub(super) fn first(&self) -> &DockerEngine {
        &self.engines[0]
    }

    /// Several engines: images are handed over through the registry.
    pub(super) fn is_pool(&self) -> bool {
        self.engines.len() > 1
    }

    /// The engines as the coordinator takes them, with how many builds each runs at once.
    pub(super) fn for_coordinator(&self, settings: &Settings) -> Vec<PoolEngine<DockerEngine>> {
        self.engines
            .iter()
            .zip(&settings.build.engines)
            .map(|(engine, spec)| PoolEngine {
                engine: engine.clone(),
                threads: spec.threads,
            })
            .collect()
    }

    /// What was lost when every engine was (`lost` lists the engines lost during the run).
    pub(super) fn lost_message(&self, lost: &[usize]) -> Option<String> {
        if lost.len() < self.engines.len() {
            None
        } else if self.is_pool() {
            Some("every engine of the pool stopped answering during the run".into())
        } else {
            Some(format!(
                "the engine at {} stopped answering during the run",
                self.first().url()
            ))
        }
    }
}

/// The run's one liveness check: each engine is pinged every `every`, and lost (its index sent
/// on `lost`) once it misses three pings in a row (a busy engine answers a ping in milliseconds;
/// a dead one at once with an error, a hung one never). Dropping the watchdog stops it.
pub(super) struct Watchdog(Vec<JoinHandle<()>>);

pub(super) fn watch<E: Engine>(
    engines: &[PoolEngine<E>],
    every: Duration,
    lost: &mpsc::UnboundedSender<usize>,
) -> Watchdog {
    let watch_one = |(e, member): (usize, &PoolEngine<E>)| {
        let (engine, lost) = (member.engine.clone(), lost.clone());
        tokio::spawn(async move {
            let mut misses = 0;
            while misses < 3 {
                tokio::time::sleep(every).await;
                misses = if engine.alive().await { 0 } else { misses + 1 };
            }
            let _ = lost.send(e);
        })
    };
    Watchdog(engines.iter().enumerate().map(watch_one).collect())
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        for handle in &self.0 {
            handle.abort();
        }
    }
}
