//! The final tags of an atomic push: moved only once every image is built and staged, by the
//! engine (a push of the final reference: a manifest, the layers are there) or, for a pool, by
//! the registry itself. The staging name is [`staging_reference`](super::staging_reference).

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::common::retry::retrying;
use crate::engine::{Engine, EngineError};
use crate::publish::registry::{Registry, RegistryError};
use crate::publish::staging_reference;
use crate::report::event::{Notice, PushOutcome, Reporter};

/// How tag moves are paced: at most `threads` at once, each retried `retries` times after
/// `backoff` (doubling).
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub threads: usize,
    pub retries: u32,
    pub backoff: Duration,
}

/// The atomic push's last step: moves the final tag of each staged `(task, reference)` through
/// `mover`, but for those `already_final` (found fresh in the registry under their final tag).
/// `None` when a signal stopped it.
pub async fn move_final_tags<E: Engine>(
    mover: TagMover<'_, E>,
    staged: Vec<(usize, String)>,
    already_final: impl Fn(&str) -> bool,
    pace: Pace,
    reporter: &dyn Reporter,
) -> Option<Vec<(usize, PushOutcome)>> {
    reporter.notice(&Notice::Status {
        verb: "Tagging",
        text: format!("{} images in the registry", staged.len()),
    });
    let references: Vec<(usize, String)> = staged
        .into_iter()
        .filter(|(_, r)| !already_final(r))
        .collect();
    let moving = move_tags(mover, references, pace.threads, pace.retries, pace.backoff);
    crate::common::signals::or_interrupt(moving).await.ok()
}

/// Where final tags are moved.
pub enum TagMover<'a, E> {
    /// The engine pushes each reference again (a manifest; the layers are there).
    Engine(&'a E),
    /// The registry itself: the staging tag's manifest put under the final tag, for a run over
    /// several engines where no one engine holds every image.
    Registry(&'a Registry),
}

/// Why a final tag did not move: the engine's push, or the registry's manifest copy, failed.
#[derive(Debug, thiserror::Error)]
pub enum TagMoveError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Moves the final tags, with the run's retries and at most `threads` at once.
pub async fn move_tags<E: Engine>(
    mover: TagMover<'_, E>,
    references: Vec<(usize, String)>,
    threads: usize,
    retries: u32,
    backoff: Duration,
) -> Vec<(usize, PushOutcome)> {
    let mover = &mover;
    move_tags_with(
        references,
        threads,
        retries,
        backoff,
        |reference| async move {
            match mover {
                TagMover::Engine(engine) => {
                    let (log, _rx) = tokio::sync::mpsc::unbounded_channel();
                    engine
                        .push(&reference, log)
                        .await
                        .map(|_| ())
                        .map_err(TagMoveError::from)
                }
                TagMover::Registry(registry) => registry
                    .copy_tag(&staging_reference(&reference), &reference)
                    .await
                    .map_err(TagMoveError::from),
            }
        },
    )
    .await
}

/// Runs `move_one` on each reference, retrying with backoff, at most `threads` at once.
async fn move_tags_with<F, Fut>(
    references: Vec<(usize, String)>,
    threads: usize,
    retries: u32,
    backoff: Duration,
    move_one: F,
) -> Vec<(usize, PushOutcome)>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(), TagMoveError>>,
{
    let move_one = &move_one;
    futures_util::stream::iter(references.into_iter().map(|(i, reference)| async move {
        let started = Instant::now();
        let (result, attempts) =
            retrying(retries, backoff, |_, _| {}, |_| move_one(reference.clone())).await;
        let outcome = match result {
            Ok(()) => PushOutcome::Pushed {
                seconds: started.elapsed().as_secs_f64(),
                attempts,
                digest: None,
            },
            Err(error) => PushOutcome::Failed {
                error: format!("moving the tag: {error}"),
                attempts,
            },
        };
        (i, outcome)
    }))
    .buffer_unordered(threads.max(1))
    .collect()
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::tests::REFERENCE;

    #[tokio::test]
    async fn a_failed_tag_move_is_reported_after_its_retries() {
        let engine = crate::publish::tests::engine_with_image().with_failing_push(REFERENCE);
        let moved = move_tags(
            TagMover::Engine(&engine),
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
}
