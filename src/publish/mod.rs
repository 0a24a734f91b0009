//! All-or-nothing pushes. In the `atomic` mode (the default) each image is pushed, as soon as it
//! is built, under a staging tag (`<tag>.kolla-staging`): its layers and manifest reach the
//! registry beside the builds. The final tags move only once every selected image is built and
//! staged: the image is pushed again under its own tag, which sends a manifest and nothing else
//! (the registry has every layer). A run that fails, or is interrupted before that point, moves
//! no tag. `immediate` pushes under the final tag as each image finishes (kolla's behaviour).

pub mod blob_cache;
pub mod export;

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;

use crate::common::retry::backoff_delay;
use crate::common::types::PushMode;
use crate::engine::split_reference;
use crate::engine::{
    BuildRequest, ByteReceiver, Engine, EngineError, ImageFacts, LogSink, SaveStream,
};
use crate::report::event::PushOutcome;

/// The staging tag an image is pushed under in the atomic mode; fixed per final tag, so runs
/// overwrite it instead of piling up tags in the registry.
pub fn staging_tag(tag: &str) -> String {
    const SUFFIX: &str = ".kolla-staging";
    let keep = tag.len().min(128 - SUFFIX.len());
    format!("{}{SUFFIX}", &tag[..keep])
}

pub fn staging_reference(reference: &str) -> String {
    let (name, tag) = split_reference(reference);
    format!("{name}:{}", staging_tag(tag))
}

/// The engine as the scheduler sees it: every call goes through; pushes follow the mode.
pub struct Publisher<E> {
    pub inner: Arc<E>,
    pub mode: PushMode,
}

impl<E: Engine> Engine for Publisher<E> {
    fn url(&self) -> &str {
        self.inner.url()
    }

    async fn ping(&self) -> Result<(), EngineError> {
        self.inner.ping().await
    }

    async fn inspect(&self, reference: &str) -> Result<Option<ImageFacts>, EngineError> {
        self.inner.inspect(reference).await
    }

    async fn pull(&self, reference: &str) -> Result<(), EngineError> {
        self.inner.pull(reference).await
    }

    async fn build(&self, request: BuildRequest, log: LogSink) -> Result<String, EngineError> {
        self.inner.build(request, log).await
    }

    async fn tag(&self, source: &str, repo: &str, tag: &str) -> Result<(), EngineError> {
        self.inner.tag(source, repo, tag).await
    }

    fn save(&self, references: &[String]) -> SaveStream {
        self.inner.save(references)
    }

    async fn import(
        &self,
        repo: &str,
        tag: &str,
        body: ByteReceiver,
    ) -> Result<String, EngineError> {
        self.inner.import(repo, tag, body).await
    }

    async fn remove(&self, reference: &str) -> Result<(), EngineError> {
        self.inner.remove(reference).await
    }

    async fn push(&self, reference: &str, log: LogSink) -> Result<(), EngineError> {
        match self.mode {
            PushMode::Immediate => self.inner.push(reference, log).await,
            PushMode::Atomic => {
                let staging = staging_reference(reference);
                let (repo, tag) = split_reference(&staging);
                self.inner.tag(reference, repo, tag).await?;
                let pushed = self.inner.push(&staging, log).await;
                // The local staging tag only named the push; the registry keeps it.
                let _ = self.inner.remove(&staging).await;
                pushed
            }
        }
    }
}

/// Moves the final tags: pushes each reference again (a manifest; the layers are there), with
/// the run's retries and at most `threads` at once.
pub async fn move_tags<E: Engine>(
    engine: &E,
    references: Vec<(usize, String)>,
    threads: usize,
    retries: u32,
    backoff: std::time::Duration,
) -> Vec<(usize, PushOutcome)> {
    futures_util::stream::iter(references.into_iter().map(|(i, reference)| async move {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (log, _rx) = tokio::sync::mpsc::unbounded_channel();
            match engine.push(&reference, log).await {
                Ok(()) => {
                    return (
                        i,
                        PushOutcome::Pushed {
                            seconds: started.elapsed().as_secs_f64(),
                            attempts: attempt,
                        },
                    );
                }
                Err(_) if attempt <= retries => {
                    tokio::time::sleep(backoff_delay(backoff, attempt)).await;
                }
                Err(error) => {
                    return (
                        i,
                        PushOutcome::Failed {
                            error: format!("moving the tag: {error}"),
                            attempts: attempt,
                        },
                    );
                }
            }
        }
    }))
    .buffer_unordered(threads.max(1))
    .collect()
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::{FakeEngine, layer};
    use std::collections::BTreeMap;
    use std::time::Duration;

    const REFERENCE: &str = "127.0.0.1:4000/kolla/keystone:1";
    const STAGING: &str = "127.0.0.1:4000/kolla/keystone:1.kolla-staging";

    fn engine_with_image() -> FakeEngine {
        let engine = FakeEngine::new();
        engine.add_image(REFERENCE, BTreeMap::new(), vec![layer("a", b"1")]);
        engine
    }

    /// A publisher in `mode` over an engine holding one image.
    fn publisher(mode: PushMode) -> Publisher<FakeEngine> {
        Publisher {
            inner: Arc::new(engine_with_image()),
            mode,
        }
    }

    async fn push(publisher: &Publisher<FakeEngine>) -> Result<(), EngineError> {
        let (log, _rx) = tokio::sync::mpsc::unbounded_channel();
        publisher.push(REFERENCE, log).await
    }

    #[tokio::test]
    async fn atomic_pushes_stage_and_the_final_tag_moves_only_when_asked() {
        let publisher = publisher(PushMode::Atomic);
        push(&publisher).await.unwrap();
        let engine = &publisher.inner;
        assert_eq!(
            engine.remote_references(),
            [STAGING],
            "only the staging tag"
        );
        assert_eq!(
            engine.remote(STAGING).unwrap().id,
            engine.image(REFERENCE).unwrap().id
        );
        assert_eq!(
            engine.local_references(),
            [REFERENCE],
            "the local staging tag is gone"
        );
        let moved = move_tags(
            &**engine,
            vec![(0, REFERENCE.to_string())],
            2,
            0,
            Duration::from_millis(1),
        )
        .await;
        assert!(
            matches!(moved[..], [(0, PushOutcome::Pushed { .. })]),
            "{moved:?}"
        );
        assert_eq!(engine.remote_references(), [REFERENCE, STAGING]);
        assert_eq!(
            engine.calls(),
            [
                format!("tag {REFERENCE} 127.0.0.1:4000/kolla/keystone:1.kolla-staging"),
                format!("push {STAGING}"),
                format!("remove {STAGING}"),
                format!("push {REFERENCE}"),
            ]
        );
    }

    #[tokio::test]
    async fn a_failed_staging_push_moves_no_tag_and_leaves_no_local_tag() {
        let publisher = Publisher {
            inner: Arc::new(engine_with_image().with_failing_push(STAGING)),
            mode: PushMode::Atomic,
        };
        let err = push(&publisher).await.unwrap_err();
        assert_eq!(err.to_string(), "push failed: connection refused");
        assert!(publisher.inner.remote_references().is_empty());
        assert_eq!(publisher.inner.local_references(), [REFERENCE]);
    }

    #[tokio::test]
    async fn a_failed_tag_move_is_reported_after_its_retries() {
        let engine = engine_with_image().with_failing_push(REFERENCE);
        let moved = move_tags(
            &engine,
            vec![(3, REFERENCE.to_string())],
            1,
            1,
            Duration::from_millis(1),
        )
        .await;
        let [(3, PushOutcome::Failed { error, attempts })] = &moved[..] else {
            panic!("{moved:?}")
        };
        assert_eq!(*attempts, 2);
        assert_eq!(error, "moving the tag: push failed: connection refused");
        assert!(engine.remote_references().is_empty());
    }

    #[tokio::test]
    async fn immediate_pushes_the_final_tag_at_once() {
        let publisher = publisher(PushMode::Immediate);
        push(&publisher).await.unwrap();
        assert_eq!(publisher.inner.remote_references(), [REFERENCE]);
        assert_eq!(publisher.inner.calls(), [format!("push {REFERENCE}")]);
    }

    #[test]
    fn staging_tags_are_valid_tags() {
        assert_eq!(
            staging_reference("127.0.0.1:4000/kolla/x:2024.1"),
            "127.0.0.1:4000/kolla/x:2024.1.kolla-staging"
        );
        let long = staging_tag(&"a".repeat(128));
        assert!(crate::common::reference::tag(&long).is_ok(), "{long}");
    }
}
