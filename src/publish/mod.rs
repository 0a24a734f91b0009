//! All-or-nothing pushes. In the `atomic` mode (the default) each image is pushed, as soon as it
//! is built, under a staging tag (`<tag>.kolla-staging`): its layers and manifest reach the
//! registry beside the builds. The final tags move only once every selected image is built and
//! staged: the image is pushed again under its own tag, which sends a manifest and nothing else
//! (the registry has every layer). A run that fails, or is interrupted before that point, moves
//! no tag. `immediate` pushes under the final tag as each image finishes (kolla's behaviour).

pub mod blob_cache;
pub mod export;
pub mod registry;
pub mod tags;

use crate::common::types::PushMode;
use crate::engine::split_reference;
use crate::engine::{Engine, EngineError, LogSink};

/// The staging tag an image is pushed under in the atomic mode; fixed per final tag, so runs
/// overwrite it instead of piling up tags in the registry.
pub fn staging_tag(tag: &str) -> String {
    const SUFFIX: &str = ".kolla-staging";
    let keep = tag.len().min(128 - SUFFIX.len());
    format!("{}{SUFFIX}", &tag[..keep])
}

/// The reference an image is pushed under in the atomic mode (its staging tag).
pub fn staging_reference(reference: &str) -> String {
    let (name, tag) = split_reference(reference);
    format!("{name}:{}", staging_tag(tag))
}

/// The reference a push in `mode` reaches the registry under: the staging reference in the
/// atomic mode, the image's own in the immediate one.
pub fn pushed_as(mode: PushMode) -> fn(&str) -> String {
    match mode {
        PushMode::Atomic => staging_reference,
        PushMode::Immediate => str::to_string,
    }
}

/// Pushes one image as the mode says: `Immediate` under its own reference; `Atomic` under its
/// staging reference (tagged for the push, the local tag removed after: the registry keeps it).
pub async fn push<E: Engine>(
    engine: &E,
    reference: &str,
    mode: PushMode,
    log: LogSink,
) -> Result<Option<String>, EngineError> {
    match mode {
        PushMode::Immediate => engine.push(reference, log).await,
        PushMode::Atomic => {
            let staging = staging_reference(reference);
            let (repo, tag) = split_reference(&staging);
            engine.tag(reference, repo, tag).await?;
            let pushed = engine.push(&staging, log).await;
            let _ = engine.remove(&staging).await;
            pushed
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::engine::fake::{FakeEngine, layer};
    use crate::publish::tags::TagMover;
    use crate::report::event::PushOutcome;
    use std::collections::BTreeMap;
    use std::time::Duration;

    pub(super) const REFERENCE: &str = "127.0.0.1:4000/kolla/keystone:1";
    const STAGING: &str = "127.0.0.1:4000/kolla/keystone:1.kolla-staging";

    pub(super) fn engine_with_image() -> FakeEngine {
        let engine = FakeEngine::new();
        engine.add_image(REFERENCE, BTreeMap::new(), vec![layer("a", b"1")]);
        engine
    }

    /// Pushes the image in `mode`.
    async fn push_in(engine: &FakeEngine, mode: PushMode) -> Result<Option<String>, EngineError> {
        let (log, _rx) = tokio::sync::mpsc::unbounded_channel();
        push(engine, REFERENCE, mode, log).await
    }

    #[tokio::test]
    async fn atomic_pushes_stage_and_the_final_tag_moves_only_when_asked() {
        let engine = &engine_with_image();
        push_in(engine, PushMode::Atomic).await.unwrap();
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
        let moved = tags::move_tags(
            TagMover::Engine(engine),
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
        let engine = engine_with_image().with_failing_push(STAGING);
        let err = push_in(&engine, PushMode::Atomic).await.unwrap_err();
        assert_eq!(err.to_string(), "push failed: connection refused");
        assert!(engine.remote_references().is_empty());
        assert_eq!(engine.local_references(), [REFERENCE]);
    }

    #[tokio::test]
    async fn immediate_pushes_the_final_tag_at_once() {
        let engine = engine_with_image();
        push_in(&engine, PushMode::Immediate).await.unwrap();
        assert_eq!(engine.remote_references(), [REFERENCE]);
        assert_eq!(engine.calls(), [format!("push {REFERENCE}")]);
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
