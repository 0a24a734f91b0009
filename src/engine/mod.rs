//! The container engine: one trait for every engine call (ping, inspect, pull, build, tag, push,
//! save, import, remove), so that the scheduler, freshness decisions, bootstrap, push and export
//! run the same against a dockerd ([`docker::DockerEngine`], bollard) and an in-memory fake
//! ([`fake::FakeEngine`], for tests without a daemon). A new engine (podman, a remote dockerd)
//! is one more implementation of [`Engine`].

pub mod docker;
pub mod fake;

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use tokio::sync::mpsc;

use crate::prepare::context::ContextSpec;

/// What the engine knows of a tagged image.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageFacts {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    /// The uncompressed digests (`sha256:<hex>`) of its layers, base first (its `RootFS`).
    pub diff_ids: Vec<String>,
}

/// One image build.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub image: String,
    pub reference: String,
    pub context: ContextSpec,
    pub labels: BTreeMap<String, String>,
    pub build_args: BTreeMap<String, String>,
    pub network_mode: String,
    pub no_cache: bool,
    /// Keep the intermediate containers of a failed build (for debugging).
    pub keep: bool,
    /// Ask the engine to pull a newer external base image.
    pub pull: bool,
    /// The image this one is built FROM: its ID at build time is recorded in the
    /// [`PARENT_ID_LABEL`] label, so a parent rebuilt or retagged later makes this image stale.
    pub parent: Option<String>,
}

/// The label carrying the image ID of the parent an image was built on.
pub const PARENT_ID_LABEL: &str = "org.opendev.kolla-build.parent-id";

/// Defined beside the crate `Error` (which carries it) so that `common/` needs no later stage.
pub use crate::common::error::EngineError;

/// A line of build output.
pub type LogSink = mpsc::UnboundedSender<String>;

/// The bytes of an image archive (`docker save`), as the engine sends them.
pub type SaveStream = BoxStream<'static, Result<Bytes, EngineError>>;

/// A tarball fed to the engine in chunks (a root filesystem to import).
pub type ByteReceiver = mpsc::Receiver<io::Result<Bytes>>;

/// Every call made to a container engine. Futures are `Send` so that work runs on any thread.
pub trait Engine: Send + Sync + 'static {
    /// Where the engine is, for messages (`unix:///var/run/docker.sock`).
    fn url(&self) -> &str;

    /// Whether the engine answers at all.
    fn ping(&self) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// The image tagged `reference`, if present.
    fn inspect(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<Option<ImageFacts>, EngineError>> + Send;

    /// Pulls `reference` (`repo:tag`, or `repo@sha256:<hex>` for one manifest) from its
    /// registry into the engine.
    fn pull(&self, reference: &str) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Builds and tags an image; output lines go to `log`. Returns the image ID.
    fn build(
        &self,
        request: BuildRequest,
        log: LogSink,
    ) -> impl Future<Output = Result<String, EngineError>> + Send;

    /// Tags the image `source` as `repo:tag` too.
    fn tag(
        &self,
        source: &str,
        repo: &str,
        tag: &str,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Pushes a tagged image to the registry named in its reference. Returns the digest of the
    /// manifest the registry stored (`sha256:<hex>`), when the engine tells it (docker and
    /// podman do): the other engines pull the image by that digest.
    fn push(
        &self,
        reference: &str,
        log: LogSink,
    ) -> impl Future<Output = Result<Option<String>, EngineError>> + Send;

    /// The images as one `docker save` archive, streamed (never whole in memory).
    fn save(&self, references: &[String]) -> SaveStream;

    /// Imports a root filesystem tarball as `repo:tag`; returns the image ID.
    fn import(
        &self,
        repo: &str,
        tag: &str,
        body: ByteReceiver,
    ) -> impl Future<Output = Result<String, EngineError>> + Send;

    /// Untags (and removes, when nothing else uses it) an image; a missing one is no error.
    fn remove(&self, reference: &str) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Whether the engine still answers a ping within 10 s.
    fn alive(&self) -> impl Future<Output = bool> + Send {
        async {
            tokio::time::timeout(Duration::from_secs(10), self.ping())
                .await
                .is_ok_and(|r| r.is_ok())
        }
    }
}

/// Makes `engine` hold the image `from` names (a registry reference, often by digest) under
/// `reference`: pulls it, tags it, and checks that the image now under `reference` is `id` when
/// one is expected (the registry could serve another image than the one that was built).
/// The pool's hand-off of a parent and the export's gathering of images both go through here.
pub async fn fetch<E: Engine>(
    engine: &E,
    from: &str,
    reference: &str,
    id: Option<&str>,
) -> Result<(), EngineError> {
    engine.pull(from).await?;
    if from != reference {
        let (repo, tag) = split_reference(reference);
        engine.tag(from, repo, tag).await?;
    }
    let got = engine.inspect(reference).await?.map(|facts| facts.id);
    match (id, got) {
        (_, None) => Err(EngineError::Pull(format!(
            "`{reference}` is missing after the pull"
        ))),
        (Some(want), Some(got)) if want != got => Err(EngineError::Pull(format!(
            "the registry served image {got}, not the {want} that was built"
        ))),
        _ => Ok(()),
    }
}

/// `reference`'s repository at the manifest `digest`: `repo@sha256:<hex>`, one image for good
/// whatever its tags do later.
pub fn by_digest(reference: &str, digest: &str) -> String {
    format!("{}@{digest}", split_reference(reference).0)
}

/// `reference` pinned to the manifest `digest` when one is known, else as it is.
pub fn pinned(reference: String, digest: Option<&str>) -> String {
    match digest {
        Some(digest) => by_digest(&reference, digest),
        None => reference,
    }
}

/// `host:port/ns/name:tag` → (`host:port/ns/name`, `tag`); the port's colon is not a tag.
/// A digest reference, `name@sha256:<hex>`, splits at the `@`.
pub fn split_reference(reference: &str) -> (&str, &str) {
    if let Some((name, digest)) = reference.split_once('@') {
        return (name, digest);
    }
    match reference.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (reference, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fetch_pulls_tags_and_checks_the_image_id() {
        let engine = fake::FakeEngine::new();
        let id = engine.add_remote("reg:4000/kolla/base:staging", vec![fake::layer("a", b"1")]);
        fetch(
            &engine,
            "reg:4000/kolla/base:staging",
            "kolla/base:2025.1",
            Some(&id),
        )
        .await
        .unwrap();
        let held = engine.inspect("kolla/base:2025.1").await.unwrap();
        assert_eq!(held.map(|facts| facts.id), Some(id));
        // The registry serves another image than the one built: refused, and named.
        let error = fetch(
            &engine,
            "reg:4000/kolla/base:staging",
            "kolla/base:2025.1",
            Some("sha256:other"),
        )
        .await
        .unwrap_err();
        assert!(
            error.to_string().contains("not the sha256:other"),
            "{error}"
        );
        // Nothing in the registry: the pull's own error.
        assert!(
            fetch(&engine, "reg:4000/kolla/none:1", "kolla/none:1", None)
                .await
                .is_err()
        );
    }

    #[test]
    fn references_split_at_the_tag_or_the_digest() {
        assert_eq!(
            split_reference("127.0.0.1:4000/kolla/base:2025.1"),
            ("127.0.0.1:4000/kolla/base", "2025.1")
        );
        assert_eq!(
            split_reference("127.0.0.1:4000/kolla/base"),
            ("127.0.0.1:4000/kolla/base", "latest")
        );
        assert_eq!(
            split_reference("127.0.0.1:4000/kolla/base@sha256:ab"),
            ("127.0.0.1:4000/kolla/base", "sha256:ab")
        );
        assert_eq!(
            by_digest("127.0.0.1:4000/kolla/base:2025.1", "sha256:ab"),
            "127.0.0.1:4000/kolla/base@sha256:ab"
        );
    }
}
