//! An in-memory [`Engine`] for tests of every stage that talks to an engine (scheduling,
//! freshness, pull, bootstrap, push, export), with no daemon. Deterministic: image IDs are the
//! sha256 of a config built from labels and layers, as in the Docker engine, and a save is a
//! sorted archive with fixed mtimes. Knobs script delays, hangs and failures per image.
//!
//! It keeps two stores: the engine's local images by reference, and a registry (what was pushed,
//! and what a pull may fetch). Every call but `inspect` and `ping` is recorded in [`calls`]
//! (`start <image>` for a build, `push <reference>`, `pull ..`, `tag ..`, `remove ..`,
//! `import ..`, `save ..`), so tests can check what reached the engine, in order.
//!
//! [`calls`]: FakeEngine::calls

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::engine::{
    BuildRequest, ByteReceiver, Engine, EngineError, ImageFacts, LogSink, PARENT_ID_LABEL,
    SaveStream, split_reference,
};

/// An image the fake holds: its ID, labels and uncompressed layers (base first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeImage {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    pub layers: Vec<Bytes>,
    /// The image config; its sha256 is the ID.
    pub config: Bytes,
}

impl FakeImage {
    pub fn new(labels: BTreeMap<String, String>, layers: Vec<Bytes>) -> FakeImage {
        let diff_ids: Vec<String> = layers
            .iter()
            .map(|l| format!("sha256:{}", hex::encode(Sha256::digest(l))))
            .collect();
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": labels},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let config = Bytes::from(serde_json::to_vec(&config).expect("config serializes"));
        FakeImage {
            id: format!("sha256:{}", hex::encode(Sha256::digest(&config))),
            labels,
            layers,
            config,
        }
    }
}

#[derive(Default)]
struct State {
    local: BTreeMap<String, FakeImage>,
    calls: Vec<String>,
    running: usize,
    max_running: usize,
    build_failures: BTreeMap<String, u32>,
}

/// The scripted engine. Configure with the `with_*` methods, seed with [`add_image`] and
/// [`add_remote`], then read [`calls`], [`image`] and [`remote`].
///
/// [`add_image`]: FakeEngine::add_image
/// [`add_remote`]: FakeEngine::add_remote
/// [`calls`]: FakeEngine::calls
/// [`image`]: FakeEngine::image
/// [`remote`]: FakeEngine::remote
#[derive(Default)]
pub struct FakeEngine {
    state: Mutex<State>,
    /// What was pushed and what a pull may fetch; several fakes may share one.
    registry: Arc<Mutex<BTreeMap<String, FakeImage>>>,
    url: Option<String>,
    pull_delay: Duration,
    build_delays: BTreeMap<String, Duration>,
    hanging: BTreeSet<String>,
    failing_pushes: BTreeSet<String>,
    failing_import: Option<String>,
    save_fails_after: Option<usize>,
    latency: Duration,
    dead: AtomicBool,
}

/// How long a build takes unless [`FakeEngine::with_build_delay`] says otherwise.
const BUILD_DELAY: Duration = Duration::from_millis(5);

/// The size of the chunks a save is streamed in.
const SAVE_CHUNK: usize = 16 * 1024;

impl FakeEngine {
    pub fn new() -> FakeEngine {
        FakeEngine::default()
    }

    /// Builds of `image` take `delay`.
    pub fn with_build_delay(mut self, image: &str, delay: Duration) -> FakeEngine {
        self.build_delays.insert(image.to_string(), delay);
        self
    }

    /// Answers as `url` (the default is `fake://engine`).
    pub fn with_url(mut self, url: &str) -> FakeEngine {
        self.url = Some(url.to_string());
        self
    }

    /// Uses the registry of `other`: what one pushes, the other can pull (a pool of engines).
    pub fn sharing_registry_with(mut self, other: &FakeEngine) -> FakeEngine {
        self.registry = other.registry.clone();
        self
    }

    /// Pulls take `delay`.
    pub fn with_pull_delay(mut self, delay: Duration) -> FakeEngine {
        self.pull_delay = delay;
        self
    }

    /// The next `attempts` builds of `image` fail (as a failing `RUN` does).
    pub fn with_build_failures(self, image: &str, attempts: u32) -> FakeEngine {
        self.lock()
            .build_failures
            .insert(image.to_string(), attempts);
        self
    }

    /// Builds of `image` never finish (until dropped: a timeout or a cancellation).
    pub fn with_hanging_build(mut self, image: &str) -> FakeEngine {
        self.hanging.insert(image.to_string());
        self
    }

    /// Every push of `reference` fails with "connection refused".
    pub fn with_failing_push(mut self, reference: &str) -> FakeEngine {
        self.failing_pushes.insert(reference.to_string());
        self
    }

    /// Every import fails with `message`.
    pub fn with_failing_import(mut self, message: &str) -> FakeEngine {
        self.failing_import = Some(message.to_string());
        self
    }

    /// Saves stream `chunks` chunks, then break off with an error.
    pub fn with_save_failing_after(mut self, chunks: usize) -> FakeEngine {
        self.save_fails_after = Some(chunks);
        self
    }

    /// Every call but `save` waits `latency` first.
    pub fn with_latency(mut self, latency: Duration) -> FakeEngine {
        self.latency = latency;
        self
    }

    /// A dead engine answers no call (pings fail, every call is `Unreachable`).
    pub fn set_dead(&self, dead: bool) {
        self.dead.store(dead, Ordering::SeqCst);
    }

    /// Puts an image in the engine under `reference`; returns its ID.
    pub fn add_image(
        &self,
        reference: &str,
        labels: BTreeMap<String, String>,
        layers: Vec<Bytes>,
    ) -> String {
        let image = FakeImage::new(labels, layers);
        let id = image.id.clone();
        self.lock().local.insert(reference.to_string(), image);
        id
    }

    /// Puts an image without labels in the registry under `reference`, where a pull finds it.
    pub fn add_remote(&self, reference: &str, layers: Vec<Bytes>) -> String {
        let image = FakeImage::new(BTreeMap::new(), layers);
        let id = image.id.clone();
        self.registry_lock().insert(reference.to_string(), image);
        id
    }

    /// The digest a push of `reference` reported (the fake's stand-in for the manifest's).
    pub fn pushed_digest(&self, reference: &str) -> Option<String> {
        self.remote(reference).map(|image| manifest_digest(&image))
    }

    /// The image tagged `reference` in the engine.
    pub fn image(&self, reference: &str) -> Option<FakeImage> {
        self.lock().local.get(reference).cloned()
    }

    /// The image the registry serves as `reference`.
    pub fn remote(&self, reference: &str) -> Option<FakeImage> {
        self.registry_lock().get(reference).cloned()
    }

    /// Every reference tagged in the engine, sorted.
    pub fn local_references(&self) -> Vec<String> {
        self.lock().local.keys().cloned().collect()
    }

    /// Every reference in the registry, sorted.
    pub fn remote_references(&self) -> Vec<String> {
        self.registry_lock().keys().cloned().collect()
    }

    /// The calls that reached the engine, in order.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// The most builds that ran at once.
    pub fn max_parallel_builds(&self) -> usize {
        self.lock().max_running
    }

    fn registry_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, FakeImage>> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every call starts here: the latency, then a dead engine's refusal, then the record.
    async fn enter(&self, call: Option<String>) -> Result<(), EngineError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        self.check_alive()?;
        if let Some(call) = call {
            self.lock().calls.push(call);
        }
        Ok(())
    }

    fn check_alive(&self) -> Result<(), EngineError> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(EngineError::Unreachable {
                url: self.url().to_string(),
                message: "connection refused".into(),
            });
        }
        Ok(())
    }

    /// The image a reference or an ID names.
    fn find(&self, name: &str) -> Option<FakeImage> {
        let state = self.lock();
        state
            .local
            .get(name)
            .or_else(|| state.local.values().find(|i| i.id == name))
            .cloned()
    }
}

/// Counts a running build, and uncounts it however the build ends (finished, failed, dropped).
struct Running<'a>(&'a FakeEngine);

impl<'a> Running<'a> {
    fn start(engine: &'a FakeEngine) -> Running<'a> {
        let mut state = engine.lock();
        state.running += 1;
        state.max_running = state.max_running.max(state.running);
        Running(engine)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.lock().running -= 1;
    }
}

/// A stand-in for the digest of the manifest a registry would store for `image`: one per
/// image ID, unlike the ID.
fn manifest_digest(image: &FakeImage) -> String {
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(format!("manifest of {}", image.id)))
    )
}

/// A one-file layer, as a build step that writes `path` makes.
pub fn layer(path: &str, content: &[u8]) -> Bytes {
    Bytes::from(tar_of([(path, content)]))
}

/// The regular files of a tar stream (name, bytes), in archive order: what tests read back.
pub fn tar_entries(reader: impl std::io::Read) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(reader);
    archive
        .entries()
        .expect("a tar stream")
        .map(|e| e.expect("a tar entry"))
        .filter(|e| e.header().entry_type().is_file())
        .map(|mut e| {
            let name = e.path().expect("a path").display().to_string();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut bytes).expect("readable");
            (name, bytes)
        })
        .collect()
}

/// A tar archive of regular files (mode 0644, time 0), in the order given.
fn tar_of<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, name, bytes)
            .expect("writing to memory");
    }
    builder.into_inner().expect("writing to memory")
}

impl Engine for FakeEngine {
    fn url(&self) -> &str {
        self.url.as_deref().unwrap_or("fake://engine")
    }

    async fn ping(&self) -> Result<(), EngineError> {
        self.enter(None).await
    }

    async fn inspect(&self, reference: &str) -> Result<Option<ImageFacts>, EngineError> {
        self.enter(None).await?;
        Ok(self.image(reference).map(|image| ImageFacts {
            diff_ids: image
                .layers
                .iter()
                .map(|l| format!("sha256:{}", hex::encode(Sha256::digest(l))))
                .collect(),
            id: image.id,
            labels: image.labels,
        }))
    }

    async fn pull(&self, reference: &str) -> Result<(), EngineError> {
        self.enter(Some(format!("pull {reference}"))).await?;
        if !self.pull_delay.is_zero() {
            tokio::time::sleep(self.pull_delay).await;
            self.check_alive()?;
        }
        let image = match reference.split_once('@') {
            // By digest: any tag of the repository whose image has that manifest.
            Some((repo, digest)) => self
                .registry_lock()
                .iter()
                .find(|(r, image)| split_reference(r).0 == repo && manifest_digest(image) == digest)
                .map(|(_, image)| image.clone()),
            None => self.registry_lock().get(reference).cloned(),
        };
        let image = image.ok_or_else(|| {
            EngineError::Pull(format!(
                "manifest for {reference} not found: manifest unknown"
            ))
        })?;
        self.lock().local.insert(reference.to_string(), image);
        Ok(())
    }

    async fn build(&self, request: BuildRequest, log: LogSink) -> Result<String, EngineError> {
        self.enter(Some(format!("start {}", request.image))).await?;
        let _running = Running::start(self);
        let _ = log.send(format!("Step 1/1 : building {}", request.image));
        if self.hanging.contains(&request.image) {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        let delay = self
            .build_delays
            .get(&request.image)
            .copied()
            .unwrap_or(BUILD_DELAY);
        tokio::time::sleep(delay).await;
        // An engine that died during the build does not finish it.
        self.check_alive()?;
        if let Some(left) = self.lock().build_failures.get_mut(&request.image) {
            if *left > 0 {
                *left -= 1;
                return Err(EngineError::Build(format!(
                    "RUN failed in {}",
                    request.image
                )));
            }
        }
        let mut labels = request.labels.clone();
        let mut layers = Vec::new();
        if let Some(parent) = request.parent.as_deref().and_then(|p| self.find(p)) {
            labels.insert(PARENT_ID_LABEL.to_string(), parent.id);
            layers = parent.layers;
        }
        layers.push(layer(
            &format!("etc/kolla-fake/{}", request.image),
            request.context.dockerfile.as_bytes(),
        ));
        let image = FakeImage::new(labels, layers);
        let id = image.id.clone();
        self.lock().local.insert(request.reference, image);
        Ok(id)
    }

    async fn tag(&self, source: &str, repo: &str, tag: &str) -> Result<(), EngineError> {
        self.enter(Some(format!("tag {source} {repo}:{tag}")))
            .await?;
        let image = self.find(source).ok_or_else(|| {
            EngineError::Api(format!(
                "tagging {source} as {repo}:{tag}: No such image: {source}"
            ))
        })?;
        self.lock().local.insert(format!("{repo}:{tag}"), image);
        Ok(())
    }

    async fn push(&self, reference: &str, log: LogSink) -> Result<Option<String>, EngineError> {
        self.enter(Some(format!("push {reference}"))).await?;
        if self.failing_pushes.contains(reference) {
            return Err(EngineError::Push("connection refused".into()));
        }
        let image = self.image(reference).ok_or_else(|| {
            EngineError::Push(format!(
                "An image does not exist locally with the tag: {}",
                split_reference(reference).0
            ))
        })?;
        let _ = log.send(format!("{}: Pushed", split_reference(reference).1));
        let digest = manifest_digest(&image);
        self.registry_lock().insert(reference.to_string(), image);
        Ok(Some(digest))
    }

    fn save(&self, references: &[String]) -> SaveStream {
        let archive = self.check_alive().and_then(|()| {
            self.lock()
                .calls
                .push(format!("save {}", references.join(" ")));
            let mut images = Vec::new();
            for reference in references {
                let image = self.image(reference).ok_or_else(|| {
                    EngineError::Save(format!(
                        "Error response from daemon: reference does not exist: {reference}"
                    ))
                })?;
                images.push((reference.clone(), image));
            }
            Ok(save_archive(&images))
        });
        let chunks: Vec<Result<Bytes, EngineError>> = match archive {
            Err(e) => vec![Err(e)],
            Ok(archive) => {
                let mut chunks: Vec<_> = archive
                    .chunks(SAVE_CHUNK)
                    .map(|c| Ok(Bytes::copy_from_slice(c)))
                    .collect();
                if let Some(n) = self.save_fails_after {
                    chunks.truncate(n);
                    chunks.push(Err(EngineError::Save("unexpected EOF".into())));
                }
                chunks
            }
        };
        futures_util::stream::iter(chunks).boxed()
    }

    async fn import(
        &self,
        repo: &str,
        tag: &str,
        mut body: ByteReceiver,
    ) -> Result<String, EngineError> {
        self.enter(Some(format!("import {repo}:{tag}"))).await?;
        if let Some(message) = &self.failing_import {
            return Err(EngineError::Api(format!(
                "importing {repo}:{tag}: {message}"
            )));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = body.recv().await {
            let chunk =
                chunk.map_err(|e| EngineError::Api(format!("importing {repo}:{tag}: {e}")))?;
            bytes.extend_from_slice(&chunk);
        }
        let image = FakeImage::new(BTreeMap::new(), vec![Bytes::from(bytes)]);
        let id = image.id.clone();
        self.lock().local.insert(format!("{repo}:{tag}"), image);
        Ok(id)
    }

    async fn remove(&self, reference: &str) -> Result<(), EngineError> {
        self.enter(Some(format!("remove {reference}"))).await?;
        self.lock().local.remove(reference);
        Ok(())
    }
}

/// A `docker save` archive as engines since Docker 25 write it (an OCI layout plus
/// `manifest.json`): each blob once, entries sorted, mtime 0.
fn save_archive(images: &[(String, FakeImage)]) -> Vec<u8> {
    let blob_name = |bytes: &[u8]| format!("blobs/sha256/{}", hex::encode(Sha256::digest(bytes)));
    let mut files: BTreeMap<String, Bytes> = BTreeMap::new();
    let mut manifest = Vec::new();
    for (reference, image) in images {
        let config = blob_name(&image.config);
        files.insert(config.clone(), image.config.clone());
        let mut layers = Vec::new();
        for layer in &image.layers {
            let name = blob_name(layer);
            files.insert(name.clone(), layer.clone());
            layers.push(name);
        }
        manifest.push(serde_json::json!({
            "Config": config,
            "RepoTags": [reference],
            "Layers": layers,
        }));
    }
    files.insert(
        "manifest.json".into(),
        Bytes::from(serde_json::to_vec(&manifest).expect("json")),
    );
    files.insert(
        "oci-layout".into(),
        Bytes::from_static(br#"{"imageLayoutVersion":"1.0.0"}"#),
    );
    tar_of(
        files
            .iter()
            .map(|(name, bytes)| (name.as_str(), bytes.as_ref())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ids_follow_content_and_tags_share_them() {
        let engine = FakeEngine::new();
        let a = engine.add_image("k/a:1", BTreeMap::new(), vec![layer("a", b"1")]);
        let b = engine.add_image("k/b:1", BTreeMap::new(), vec![layer("a", b"1")]);
        assert_eq!(a, b, "the same content is the same image");
        engine.tag("k/a:1", "k/c", "2").await.unwrap();
        assert_eq!(engine.inspect("k/c:2").await.unwrap().unwrap().id, a);
        engine.remove("k/c:2").await.unwrap();
        assert_eq!(engine.inspect("k/c:2").await.unwrap(), None);
        assert_eq!(engine.calls(), ["tag k/a:1 k/c:2", "remove k/c:2"]);
    }

    #[tokio::test]
    async fn a_dead_engine_answers_nothing() {
        let engine = FakeEngine::new();
        assert!(engine.alive().await);
        engine.set_dead(true);
        assert!(!engine.alive().await);
        let err = engine.inspect("x").await.unwrap_err();
        assert!(matches!(err, EngineError::Unreachable { .. }), "{err}");
    }
}
