//! Step 2 of a build: the external images the selected roots are built FROM exist in the first
//! engine before anything else (found, pulled, or bootstrapped with `--bootstrap-base`); in a
//! pool they are put into the registry for the other engines to pull.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::build::bootstrap::{BootstrapSpec, bootstrap};
use crate::build::coordinator::InRegistry;
use crate::build::engines::Engines;
use crate::common::error::{Error, Result};
use crate::engine::{Engine, pinned, split_reference};
use crate::graph::selection::Status;
use crate::prepare::Prepared;
use crate::publish::registry::Registry;
use crate::report::event::Reporter;
use crate::settings::Settings;

/// The external base images of a run.
pub(super) struct BaseImages {
    /// Each one's image ID in the first engine, by reference.
    pub(super) ids: BTreeMap<String, String>,
    /// For a pool, where each is in the registry.
    pub(super) in_registry: BTreeMap<String, InRegistry>,
}

/// Makes sure every external image the selection is built FROM is in the first engine (and, for
/// a pool, in the registry).
pub(super) async fn ensure(
    engines: &Engines,
    settings: &Settings,
    prepared: &Prepared,
    reporter: &dyn Reporter,
) -> Result<BaseImages> {
    let engine = engines.first();
    let say = |verb: &'static str, text: &str| super::status(reporter, verb, text);
    let graph = &prepared.graph;
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    for id in prepared.selection.ids_with(Status::Matched) {
        if let Some(external) = &graph.node(id).external {
            if !ids.contains_key(external) {
                let image_id = ensure_external(engine, settings, external, &say).await?;
                ids.insert(external.clone(), image_id);
            }
        }
    }
    // In a pool the first engine's external images reach the others through the registry.
    let mut in_registry: BTreeMap<String, InRegistry> = BTreeMap::new();
    if let Some(registry) = &engines.registry {
        for (external, id) in &ids {
            let shared = share_external(engine, registry, settings, external, id, &say);
            let shared = crate::common::signals::or_interrupt(shared)
                .await
                .map_err(|signal| Error::Interrupted { signal })??;
            in_registry.insert(external.clone(), shared);
        }
    }
    Ok(BaseImages { ids, in_registry })
}

pub(super) async fn ensure_external<E: Engine>(
    engine: &E,
    settings: &Settings,
    reference: &str,
    say: &impl Fn(&'static str, &str),
) -> Result<String> {
    if let Some(facts) = engine.inspect(reference).await.map_err(Error::Engine)? {
        return Ok(facts.id);
    }
    if let Some(signal) = crate::common::signals::interrupted() {
        return Err(Error::Interrupted { signal });
    }
    let naming = &settings.naming;
    let is_base = reference == format!("{}:{}", naming.base_image, naming.base_tag);
    if is_base && settings.build.bootstrap_base {
        let mirror = settings
            .build
            .bootstrap_mirror
            .clone()
            .or_else(|| BootstrapSpec::default_mirror(naming.base).map(str::to_string))
            .unwrap_or_default();
        let spec = BootstrapSpec {
            distro: naming.base,
            release: naming.base_tag.clone(),
            mirror,
            repo: naming.base_image.clone(),
            tag: naming.base_tag.clone(),
        };
        let began = Instant::now();
        let id = bootstrap(engine, &spec, |line| say("Bootstrap", line))
            .await
            .map_err(|e| Error::Bootstrap(Box::new(e)))?;
        say(
            "Bootstrapped",
            &format!("{reference} in {:.0}s", began.elapsed().as_secs_f64()),
        );
        return Ok(id);
    }
    if !settings.build.pull {
        return Err(Error::NoPull {
            reference: reference.to_string(),
        });
    }
    say("Pulling", reference);
    let pull = async {
        engine
            .pull(reference)
            .await
            .map_err(|source| Error::EngineStep {
                doing: format!("cannot pull the base image `{reference}`"),
                source,
                hint: "\nhint: where no registry is reachable, pass `--bootstrap-base` to make it \
                       with debootstrap",
            })
    };
    // Dropping the pull's request stops it in the engine.
    crate::common::signals::or_interrupt(pull)
        .await
        .map_err(|signal| Error::Interrupted { signal })??;
    engine
        .inspect(reference)
        .await
        .map_err(Error::Engine)?
        .map(|facts| facts.id)
        .ok_or_else(|| Error::MissingAfterPull {
            reference: reference.to_string(),
        })
}
async fn share_external<E: Engine>(
    engine: &E,
    registry: &Registry,
    settings: &Settings,
    external: &str,
    id: &str,
    say: &impl Fn(&'static str, &str),
) -> Result<InRegistry> {
    let (name, tag) = split_reference(external);
    let repository = name.rsplit('/').next().unwrap_or(name);
    let pull_as = format!("{}/{repository}:{tag}", settings.naming.full_namespace());
    let there = registry
        .image(&pull_as)
        .await
        .ok()
        .flatten()
        .filter(|image| image.id == id);
    let digest = if let Some(image) = there {
        Some(image.digest)
    } else {
        say(
            "Pushing",
            &format!("{external} as {pull_as} for the other engines"),
        );
        let (repo, tag) = split_reference(&pull_as);
        let (log, _rx) = tokio::sync::mpsc::unbounded_channel();
        let pushed = async {
            engine.tag(external, repo, tag).await?;
            engine.push(&pull_as, log).await
        };
        pushed.await.map_err(|source| Error::EngineStep {
            doing: format!(
                "cannot push the base image `{external}` to the registry as `{pull_as}` for the \
                 other engines"
            ),
            source,
            hint: "",
        })?
    };
    Ok(InRegistry {
        pull_as: pinned(pull_as, digest.as_deref()),
        id: id.to_string(),
    })
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::freshness::tests::{engine_with_base, external, settings};
    use crate::engine::fake::{FakeEngine, layer};
    use std::cell::RefCell;

    #[tokio::test]
    async fn an_external_image_present_is_used_without_a_pull() {
        let s = settings(&[]);
        let (engine, id) = engine_with_base(&s);
        let found = ensure_external(&engine, &s, &external(&s), &|_: &str, _: &str| {})
            .await
            .unwrap();
        assert_eq!(found, id);
        assert!(engine.calls().is_empty(), "{:?}", engine.calls());
    }

    #[tokio::test]
    async fn a_missing_external_image_is_pulled() {
        let s = settings(&[]);
        let engine = FakeEngine::new();
        let reference = external(&s);
        let id = engine.add_remote(&reference, vec![layer("a", b"1")]);
        let said = RefCell::new(Vec::new());
        let say = |verb: &'static str, text: &str| said.borrow_mut().push(format!("{verb} {text}"));
        let found = ensure_external(&engine, &s, &reference, &say)
            .await
            .unwrap();
        assert_eq!(found, id);
        assert_eq!(engine.calls(), [format!("pull {reference}")]);
        assert_eq!(said.into_inner(), [format!("Pulling {reference}")]);
    }

    #[tokio::test]
    async fn a_failed_pull_names_the_image_and_suggests_bootstrap() {
        let s = settings(&[]);
        let engine = FakeEngine::new();
        let reference = external(&s);
        let err = ensure_external(&engine, &s, &reference, &|_: &str, _: &str| {})
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "cannot pull the base image `{reference}`: manifest for {reference} not found"
            )),
            "{err}"
        );
        assert!(err.contains("pass `--bootstrap-base`"), "{err}");
    }

    #[tokio::test]
    async fn no_pull_refuses_a_missing_external_image() {
        let s = settings(&["--no-pull"]);
        let engine = FakeEngine::new();
        let reference = external(&s);
        engine.add_remote(&reference, vec![layer("a", b"1")]);
        let err = ensure_external(&engine, &s, &reference, &|_: &str, _: &str| {})
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("--no-pull forbids pulling it"), "{err}");
        assert!(engine.calls().is_empty());
    }
}
