//! The nightly artifact: images read from the engine (`docker save` as a stream, never whole in
//! memory) and written as a tarball a stock registry serves once unpacked into its storage root
//! (DESIGN section 6), or as an OCI image layout. Blobs shared between images are stored once;
//! layers are compressed in parallel; entries are sorted with fixed mtimes, so the same images
//! give the same bytes; the file appears only when complete.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

mod from_registry;

use crate::common::types::ExportFormat;
use crate::engine::{Engine, EngineError, ImageFacts};
use crate::publish::blob_cache::BlobCache;
use crate::report::event::ExportReport;

/// Why an export was not written. Nothing is left at the target (nor beside it) on any of them.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot create `{}`: {source}", .dir.display())]
    CreateDir { dir: PathBuf, source: io::Error },
    /// The scratch directory or the temporary file beside the target.
    #[error("cannot write in `{}`: {source}", .dir.display())]
    Scratch { dir: PathBuf, source: io::Error },
    #[error("interrupted by {}", crate::common::signals::name(*.signal))]
    Interrupted { signal: i32 },
    /// The engine's image archive (`docker save`) broke off.
    #[error("reading the images from the engine: {0}")]
    Engine(EngineError),
    /// The engine's image archive is not what `docker save` writes.
    #[error("reading the saved images: {0}")]
    ReadSave(io::Error),
    #[error("the engine did not return `{reference}`")]
    NotSaved { reference: String },
    #[error("the image config of `{reference}` is missing from the engine's archive")]
    MissingConfig { reference: String },
    #[error("layer `{path}` is missing from the engine's archive")]
    MissingLayer { path: String },
    #[error("compressing a layer: {0}")]
    Compress(io::Error),
    #[error("writing `{}`: {source}", .path.display())]
    Write { path: PathBuf, source: io::Error },
    /// A signal arrived just before the export would have replaced its target.
    #[error("{0}")]
    Stopped(io::Error),
    #[error("cannot move the export into `{}`: {source}", .path.display())]
    Persist { path: PathBuf, source: io::Error },
    /// Inspecting an image to find its layers in the export cache (`--cache-dir`).
    #[error("inspecting `{reference}` for the export cache: {source}")]
    Inspect {
        reference: String,
        source: EngineError,
    },
    #[error("storing {what} in the export cache (--cache-dir): {source}")]
    CacheStore { what: String, source: io::Error },
    /// A worker thread of the export panicked or was cancelled.
    #[error("{0}")]
    Task(String),
}

/// One image to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportImage {
    /// The image's reference in the engine.
    pub reference: String,
    /// The repository it is served as (`kolla/debian-binary-keystone`).
    pub repository: String,
    pub tag: String,
}

const MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
const CONFIG_V1: &str = "application/vnd.docker.container.image.v1+json";
const LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Exports `images` to `path`. On any error nothing is left at `path` (nor beside it).
pub async fn export<E: Engine>(
    engine: &E,
    images: &[ExportImage],
    path: &Path,
    format: ExportFormat,
) -> Result<ExportReport, ExportError> {
    export_cached(engine, images, path, format, None).await
}

/// [`export`] with a cache of compressed layers and image configs ([`BlobCache`]): images whose
/// config and layers are all cached are not read from the engine at all, and only layers missing
/// from the cache are compressed (then stored in it). The tarball is the same, byte for byte.
pub async fn export_cached<E: Engine>(
    engine: &E,
    images: &[ExportImage],
    path: &Path,
    format: ExportFormat,
    cache: Option<&BlobCache>,
) -> Result<ExportReport, ExportError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|source| ExportError::CreateDir {
        dir: dir.clone(),
        source,
    })?;
    // Scratch space beside the output: same filesystem, removed on every exit path.
    let scratch = tempfile::Builder::new()
        .prefix(".kolla-export-")
        .tempdir_in(&dir)
        .map_err(|source| ExportError::Scratch {
            dir: dir.clone(),
            source,
        })?;
    let _tracked = crate::common::signals::track(scratch.path());

    // What the cache already holds, image by image (config and every layer, by diff ID).
    let mut cached: Vec<Option<ImageParts>> = vec![None; images.len()];
    let mut from_registry = 0;
    if let Some(cache) = cache {
        let mut missing = Vec::new();
        for (n, image) in images.iter().enumerate() {
            match cached_parts(engine, cache, &image.reference).await? {
                Lookup::Whole(parts) => cached[n] = Some(parts),
                // An image the cache knows nothing of is read with the rest by `docker save`,
                // which compresses its layers in parallel as they stream.
                Lookup::Missing(facts) if facts.diff_ids.iter().any(|d| cache.has_layer(d)) => {
                    missing.push((n, image.reference.clone(), facts));
                }
                Lookup::Missing(_) | Lookup::Unknown => {}
            }
        }
        // What the cache lacks of the others comes from the loopback registry the images were
        // pushed to, when it holds these very images: only their new layers are read, not the
        // whole chain `docker save` writes before it sends a byte.
        if !missing.is_empty() {
            let (cache, scratch) = (cache.clone(), scratch.path().to_path_buf());
            let found = tokio::task::spawn_blocking(move || {
                missing
                    .into_iter()
                    .filter_map(|(n, reference, facts)| {
                        from_registry::parts(&reference, &facts, &cache, &scratch).map(|p| (n, p))
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|e| ExportError::Task(e.to_string()))?;
            from_registry = found.len();
            for (n, parts) in found {
                cached[n] = Some(parts);
            }
        }
    }
    let to_save: Vec<&ExportImage> = images
        .iter()
        .zip(&cached)
        .filter(|(_, c)| c.is_none())
        .map(|(i, _)| i)
        .collect();
    let saved_count = to_save.len();
    let saved = if to_save.is_empty() {
        None
    } else {
        Some(save(engine, &to_save, scratch.path(), cache).await?)
    };
    let images = images.to_vec();
    let path = path.to_path_buf();
    let cache = cache.cloned();
    tokio::task::spawn_blocking(move || {
        let mut parts = Vec::with_capacity(images.len());
        let mut from_save = match &saved {
            Some(saved) => {
                let wanted: Vec<ExportImage> = images
                    .iter()
                    .zip(&cached)
                    .filter(|(_, c)| c.is_none())
                    .map(|(i, _)| i.clone())
                    .collect();
                saved_parts(saved, &wanted, scratch.path(), cache.as_ref())?
            }
            None => Vec::new(),
        }
        .into_iter();
        for slot in cached {
            match slot {
                Some(p) => parts.push(p),
                None => parts.push(from_save.next().expect("one part per saved image")),
            }
        }
        let mut report = write_export(&parts, &images, &path, format)?;
        report.saved = saved_count;
        report.from_registry = from_registry;
        report.from_cache = images.len() - saved_count - from_registry;
        if let Some(cache) = &cache {
            cache.prune(crate::publish::blob_cache::KEEP_UNUSED);
        }
        Ok(report)
    })
    .await
    .map_err(|e| ExportError::Task(e.to_string()))?
}

/// What the export cache holds of an image.
enum Lookup {
    /// Its config and every layer.
    Whole(ImageParts),
    /// Not all of it: the engine's facts, to find the rest.
    Missing(ImageFacts),
    /// The engine does not know the image (the save that follows names it).
    Unknown,
}

/// The config and compressed layers of `reference` when the cache holds all of them.
async fn cached_parts<E: Engine>(
    engine: &E,
    cache: &BlobCache,
    reference: &str,
) -> Result<Lookup, ExportError> {
    let facts = engine
        .inspect(reference)
        .await
        .map_err(|source| ExportError::Inspect {
            reference: reference.to_string(),
            source,
        })?;
    // An image the engine does not have is named by the save that follows.
    let Some(facts) = facts else {
        return Ok(Lookup::Unknown);
    };
    if facts.id.is_empty() || facts.diff_ids.is_empty() {
        return Ok(Lookup::Unknown);
    }
    let Some(config) = cache.config(&facts.id) else {
        return Ok(Lookup::Missing(facts));
    };
    let mut layers = Vec::with_capacity(facts.diff_ids.len());
    for diff_id in &facts.diff_ids {
        let Some(hit) = cache.layer(diff_id) else {
            return Ok(Lookup::Missing(facts));
        };
        layers.push((
            Layer {
                digest: hit.digest,
                size: hit.size,
            },
            hit.path,
        ));
    }
    Ok(Lookup::Whole(ImageParts { config, layers }))
}

/// Reads `images` from the engine (`docker save`), compressing big layers as they arrive.
async fn save<E: Engine>(
    engine: &E,
    images: &[&ExportImage],
    scratch: &Path,
    cache: Option<&BlobCache>,
) -> Result<Saved, ExportError> {
    let references: Vec<String> = images.iter().map(|i| i.reference.clone()).collect();
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(16);
    let scratch_path = scratch.to_path_buf();
    let cache = cache.cloned();
    let reader = tokio::task::spawn_blocking(move || {
        read_save(ChannelReader::new(rx), &scratch_path, cache.as_ref())
    });
    let mut stream = engine.save(&references);
    let mut stream_error = None;
    loop {
        // A signal stops reading from the engine; the blocking side stops at its next check.
        let chunk = tokio::select! {
            chunk = stream.next() => chunk,
            signal = crate::common::signals::wait() => {
                stream_error = Some(ExportError::Interrupted { signal });
                let _ = tx.send(Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"))).await;
                break;
            }
        };
        let Some(chunk) = chunk else { break };
        match chunk {
            Ok(bytes) => {
                if tx.send(Ok(bytes)).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
                stream_error = Some(ExportError::Engine(e));
                break;
            }
        }
    }
    drop(tx);
    let saved = reader.await.map_err(|e| ExportError::Task(e.to_string()))?;
    if let Some(error) = stream_error {
        return Err(error);
    }
    saved.map_err(ExportError::ReadSave)
}

/// One image's blobs: its config, and its layers compressed (digest, size, file), in order.
#[derive(Clone)]
struct ImageParts {
    config: Vec<u8>,
    layers: Vec<(Layer, PathBuf)>,
}

/// What `docker save` gave: its manifest, and every file it held (big ones spilled to disk).
struct Saved {
    manifest: Vec<SaveManifestEntry>,
    files: BTreeMap<String, Stored>,
    /// Large files (the layers) compressed while the rest of the archive was still streaming,
    /// by their content's sha256.
    compressed: BTreeMap<String, (Layer, PathBuf)>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SaveManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

#[derive(Clone)]
enum Stored {
    Memory(Vec<u8>),
    /// A file on disk, with the sha256 of its content.
    Disk {
        path: PathBuf,
        sha256: String,
    },
    /// A layer the cache holds compressed already: its bytes were hashed and dropped.
    Cached {
        sha256: String,
    },
}

impl Stored {
    fn open(&self) -> io::Result<Box<dyn Read + '_>> {
        Ok(match self {
            Stored::Memory(bytes) => Box::new(bytes.as_slice()),
            Stored::Disk { path, .. } => Box::new(BufReader::new(File::open(path)?)),
            Stored::Cached { sha256 } => {
                return Err(io::Error::other(format!(
                    "layer sha256:{sha256} was taken from the export cache, its bytes were not kept"
                )));
            }
        })
    }
}

const SPILL: u64 = 1 << 20;

fn read_save(reader: impl Read, scratch: &Path, cache: Option<&BlobCache>) -> io::Result<Saved> {
    let mut archive = tar::Archive::new(reader);
    let mut files = BTreeMap::new();
    let mut links = Vec::new();
    let mut manifest = None;
    // Each spilled file is compressed on the rayon pool as soon as it is on disk, so compression
    // overlaps the engine's (I/O-bound) save instead of waiting for all of it.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<(String, io::Result<(Layer, PathBuf)>)>();
    let mut compressing = std::collections::BTreeSet::new();
    // Every compression job is waited for, even when reading fails half-way: none may still be
    // writing into the scratch directory while its owner removes it.
    let mut stream_entries = || -> io::Result<()> {
        for (n, entry) in archive.entries()?.enumerate() {
            crate::common::signals::check()?;
            let mut entry = entry?;
            let name = entry.path()?.to_string_lossy().into_owned();
            // `docker save` links a layer it already wrote (the same diff in two images).
            if entry.header().entry_type().is_symlink() {
                if let Some(target) = entry.link_name()? {
                    let resolved = resolve_link(&name, &target.to_string_lossy());
                    links.push((name, resolved));
                }
                continue;
            }
            if !entry.header().entry_type().is_file() {
                continue;
            }
            if name == "manifest.json" {
                let mut text = String::new();
                entry.read_to_string(&mut text)?;
                manifest = Some(
                    serde_json::from_str::<Vec<SaveManifestEntry>>(&text)
                        .map_err(io::Error::other)?,
                );
            } else if entry.size() < SPILL {
                let mut bytes = Vec::with_capacity(entry.size() as usize);
                entry.read_to_end(&mut bytes)?;
                files.insert(name, Stored::Memory(bytes));
            } else {
                let path = scratch.join(format!("saved-{n}"));
                let mut out = HashingWriter::new(BufWriter::new(File::create(&path)?));
                io::copy(&mut entry, &mut out)?;
                let (sha256, _, mut inner) = out.finish();
                inner.flush()?;
                drop(inner);
                if let Some(hit) = cache.and_then(|c| c.layer(&sha256)) {
                    // Compressed by an earlier export: used as it is, and its spilled copy goes
                    // at once (an unchanged parent streams hundreds of MB that are not needed).
                    std::fs::remove_file(&path)?;
                    if compressing.insert(sha256.clone()) {
                        let layer = Layer {
                            digest: hit.digest,
                            size: hit.size,
                        };
                        let _ = done_tx.send((sha256.clone(), Ok((layer, hit.path))));
                    }
                    files.insert(name, Stored::Cached { sha256 });
                } else {
                    if compressing.insert(sha256.clone()) {
                        let target = scratch.join(format!("layer-{n}.gz"));
                        let stored = Stored::Disk {
                            path: path.clone(),
                            sha256: sha256.clone(),
                        };
                        let (done_tx, key) = (done_tx.clone(), sha256.clone());
                        rayon::spawn(move || {
                            let result = compress(&stored, &target).map(|layer| (layer, target));
                            let _ = done_tx.send((key, result));
                        });
                    }
                    files.insert(name, Stored::Disk { path, sha256 });
                }
            }
        }
        Ok(())
    };
    let streamed = stream_entries();
    drop(done_tx);
    let mut compressed = BTreeMap::new();
    let mut compress_error = None;
    for (sha256, result) in done_rx {
        match result {
            Ok(layer) => {
                compressed.insert(sha256, layer);
            }
            Err(e) => {
                compress_error.get_or_insert(e);
            }
        }
    }
    streamed?;
    if let Some(e) = compress_error {
        return Err(e);
    }
    // Drain what follows the archive, so the engine is never left writing to a closed pipe.
    io::copy(&mut archive.into_inner(), &mut io::sink())?;
    for (name, target) in links {
        if let Some(stored) = files.get(&target).cloned() {
            files.insert(name, stored);
        }
    }
    let manifest = manifest
        .ok_or_else(|| io::Error::other("the engine's image archive has no manifest.json"))?;
    Ok(Saved {
        manifest,
        files,
        compressed,
    })
}

/// The archive path a symlink at `name` points to (`../<id>/layer.tar` → `<id>/layer.tar`).
fn resolve_link(name: &str, target: &str) -> String {
    let mut parts: Vec<&str> = name.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

/// A blob of the output: its digest, size and where its bytes are.
#[derive(Clone)]
enum Blob {
    Bytes(Vec<u8>),
    File(PathBuf),
}

#[derive(Clone)]
struct Layer {
    digest: String,
    size: u64,
}

/// The parts of `images` (in order) from what `docker save` gave: layers compressed earlier are
/// taken, the others (the small ones) compressed now; new layers and configs go to the cache.
fn saved_parts(
    saved: &Saved,
    images: &[ExportImage],
    scratch: &Path,
    cache: Option<&BlobCache>,
) -> Result<Vec<ImageParts>, ExportError> {
    // Which save-manifest entry is which image.
    let mut picked = Vec::new();
    for image in images {
        let wanted = normalize_reference(&image.reference);
        let entry = saved
            .manifest
            .iter()
            .find(|e| {
                e.repo_tags
                    .iter()
                    .flatten()
                    .any(|t| normalize_reference(t) == wanted)
            })
            .ok_or_else(|| ExportError::NotSaved {
                reference: image.reference.clone(),
            })?;
        picked.push((image, entry));
    }
    // Unique layers (by their uncompressed content), compressed in parallel.
    let mut layer_paths: BTreeMap<String, &str> = BTreeMap::new();
    for (_, entry) in &picked {
        for layer in &entry.layers {
            let key = content_key(saved, layer)?;
            layer_paths.entry(key).or_insert(layer.as_str());
        }
    }
    let layer_list: Vec<(&String, &&str)> = layer_paths.iter().collect();
    let compressed: BTreeMap<String, (Layer, PathBuf)> = layer_list
        .par_iter()
        .enumerate()
        .map(|(n, (key, layer))| {
            if let Some((layer, target)) = saved.compressed.get(*key) {
                return Ok(((*key).clone(), (layer.clone(), target.clone())));
            }
            if let Some(hit) = cache.and_then(|c| c.layer(key)) {
                let layer = Layer {
                    digest: hit.digest,
                    size: hit.size,
                };
                return Ok(((*key).clone(), (layer, hit.path)));
            }
            let target = scratch.join(format!("small-layer-{n}.gz"));
            let stored = &saved.files[**layer];
            let layer = compress(stored, &target).map_err(ExportError::Compress)?;
            Ok(((*key).clone(), (layer, target)))
        })
        .collect::<Result<_, ExportError>>()?;
    if let Some(cache) = cache {
        for (key, (layer, file)) in &compressed {
            if !file.starts_with(scratch) {
                continue;
            }
            cache
                .put_layer(key, file, &layer.digest, layer.size)
                .map_err(|source| ExportError::CacheStore {
                    what: format!("layer sha256:{key}"),
                    source,
                })?;
        }
    }
    let mut parts = Vec::with_capacity(picked.len());
    for (image, entry) in &picked {
        let Some(Stored::Memory(config)) = saved.files.get(&entry.config) else {
            return Err(ExportError::MissingConfig {
                reference: image.reference.clone(),
            });
        };
        if let Some(cache) = cache {
            cache
                .put_config(config)
                .map_err(|source| ExportError::CacheStore {
                    what: format!("the image config of `{}`", image.reference),
                    source,
                })?;
        }
        let layers = entry
            .layers
            .iter()
            .map(|l| content_key(saved, l).map(|k| compressed[&k].clone()))
            .collect::<Result<_, _>>()?;
        parts.push(ImageParts {
            config: config.clone(),
            layers,
        });
    }
    Ok(parts)
}

fn write_export(
    parts: &[ImageParts],
    images: &[ExportImage],
    path: &Path,
    format: ExportFormat,
) -> Result<ExportReport, ExportError> {
    let mut blobs: BTreeMap<String, Blob> = BTreeMap::new();
    for (layer, target) in parts.iter().flat_map(|p| &p.layers) {
        blobs.insert(layer.digest.clone(), Blob::File(target.clone()));
    }
    let mut entries: BTreeMap<String, Blob> = BTreeMap::new();
    let mut manifests = BTreeMap::new();
    let mut index = Vec::new();
    for (image, part) in images.iter().zip(parts) {
        let config = &part.config;
        let config_digest = format!("sha256:{}", hex::encode(Sha256::digest(config)));
        blobs.insert(config_digest.clone(), Blob::Bytes(config.clone()));
        let layers: Vec<&Layer> = part.layers.iter().map(|(l, _)| l).collect();
        let (manifest_type, config_type, layer_type) = match format {
            ExportFormat::Registry => (MANIFEST_V2, CONFIG_V1, LAYER_GZIP),
            ExportFormat::Oci => (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER),
        };
        let manifest = Manifest {
            schema_version: 2,
            media_type: manifest_type,
            config: Descriptor {
                media_type: config_type,
                size: config.len() as u64,
                digest: config_digest.clone(),
            },
            layers: layers
                .iter()
                .map(|l| Descriptor {
                    media_type: layer_type,
                    size: l.size,
                    digest: l.digest.clone(),
                })
                .collect(),
        };
        let manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
        let manifest_digest = format!("sha256:{}", hex::encode(Sha256::digest(&manifest_bytes)));
        manifests.insert(image.reference.clone(), manifest_digest.clone());
        index.push(serde_json::json!({
            "mediaType": manifest_type,
            "digest": manifest_digest,
            "size": manifest_bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": format!("{}:{}", image.repository, image.tag)},
        }));
        blobs.insert(manifest_digest.clone(), Blob::Bytes(manifest_bytes));
        if format == ExportFormat::Registry {
            let repo = format!("docker/registry/v2/repositories/{}", image.repository);
            let link = |digest: &str| Blob::Bytes(digest.as_bytes().to_vec());
            // The config needs its own _layers link, else the registry answers 404 for it.
            for digest in layers
                .iter()
                .map(|l| l.digest.as_str())
                .chain([config_digest.as_str()])
            {
                entries.insert(
                    format!("{repo}/_layers/sha256/{}/link", hex_of(digest)),
                    link(digest),
                );
            }
            let m = hex_of(&manifest_digest);
            entries.insert(
                format!("{repo}/_manifests/revisions/sha256/{m}/link"),
                link(&manifest_digest),
            );
            entries.insert(
                format!("{repo}/_manifests/tags/{}/current/link", image.tag),
                link(&manifest_digest),
            );
            entries.insert(
                format!("{repo}/_manifests/tags/{}/index/sha256/{m}/link", image.tag),
                link(&manifest_digest),
            );
        }
    }
    for (digest, blob) in &blobs {
        let hex = hex_of(digest);
        let name = match format {
            ExportFormat::Registry => {
                format!("docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2])
            }
            ExportFormat::Oci => format!("blobs/sha256/{hex}"),
        };
        entries.insert(name, blob.clone());
    }
    if format == ExportFormat::Oci {
        entries.insert(
            "oci-layout".into(),
            Blob::Bytes(br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        );
        let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": index});
        entries.insert(
            "index.json".into(),
            Blob::Bytes(serde_json::to_vec_pretty(&index).expect("json")),
        );
    }

    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temp = tempfile::Builder::new()
        .prefix(".kolla-export-")
        .suffix(".partial")
        .tempfile_in(dir)
        .map_err(|source| ExportError::Scratch {
            dir: dir.to_path_buf(),
            source,
        })?;
    let _tracked = crate::common::signals::track(temp.path());
    let written = write_tar_gz(temp.as_file(), &entries).map_err(|source| ExportError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    // The last moment a signal keeps the previous file.
    crate::common::signals::check().map_err(ExportError::Stopped)?;
    temp.persist(path).map_err(|e| ExportError::Persist {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(ExportReport {
        bytes: written,
        blobs: blobs.len(),
        manifests,
        from_cache: 0,
        from_registry: 0,
        saved: 0,
    })
}

/// Sorted entries, directories implied, mtime 0, owner 0: the same images give the same bytes.
fn write_tar_gz(file: &File, entries: &BTreeMap<String, Blob>) -> io::Result<u64> {
    let counter = CountingWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        count: 0,
    };
    // The layers are gzip already and make up nearly all the bytes: compressing them again
    // costs a core for a few bytes saved. Stored deflate blocks keep it a valid `.tar.gz`
    // (`tar xzf` reads it) at the cost of a checksum pass.
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(counter, flate2::Compression::none());
    let mut builder = tar::Builder::new(gz);
    let mut dirs_done = std::collections::BTreeSet::new();
    for (name, blob) in entries {
        crate::common::signals::check()?;
        // Parent directories first (sorted order puts them before their files), 0755.
        let mut prefix = String::new();
        for part in name
            .split('/')
            .collect::<Vec<_>>()
            .iter()
            .rev()
            .skip(1)
            .rev()
        {
            prefix.push_str(part);
            prefix.push('/');
            if dirs_done.insert(prefix.clone()) {
                let mut header = fixed_header(tar::EntryType::Directory, 0o755);
                header.set_size(0);
                builder.append_data(&mut header, &prefix, io::empty())?;
            }
        }
        let mut header = fixed_header(tar::EntryType::Regular, 0o644);
        match blob {
            Blob::Bytes(bytes) => {
                header.set_size(bytes.len() as u64);
                builder.append_data(&mut header, name, bytes.as_slice())?;
            }
            Blob::File(path) => {
                let file = File::open(path)?;
                header.set_size(file.metadata()?.len());
                let reader = Interruptible(BufReader::with_capacity(1 << 20, file));
                builder.append_data(&mut header, name, reader)?;
            }
        }
    }
    let gz = builder.into_inner()?;
    let mut counter = gz.finish()?;
    counter.flush()?;
    counter.inner.get_ref().sync_all()?;
    Ok(counter.count)
}

/// A header with what every entry of the export shares: mtime 0, owner 0.
fn fixed_header(entry_type: tar::EntryType, mode: u32) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(entry_type);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
}

/// Gzips a layer (unless it already is) into `target`, returning its digest and size.
fn compress(stored: &Stored, target: &Path) -> io::Result<Layer> {
    let mut source = Interruptible(stored.open()?);
    let mut head = [0u8; 2];
    let n = read_full(&mut source, &mut head)?;
    let mut source = io::Cursor::new(head[..n].to_vec()).chain(source);
    let out = HashingWriter::new(BufWriter::with_capacity(1 << 20, File::create(target)?));
    let (digest, size) = if head[..n] == [0x1f, 0x8b] {
        let mut out = out;
        io::copy(&mut source, &mut out)?;
        let (digest, size, mut inner) = out.finish();
        inner.flush()?;
        (digest, size)
    } else {
        let mut gz = flate2::GzBuilder::new()
            .mtime(0)
            .write(out, flate2::Compression::default());
        io::copy(&mut source, &mut gz)?;
        let (digest, size, mut inner) = gz.finish()?.finish();
        inner.flush()?;
        (digest, size)
    };
    Ok(Layer {
        digest: format!("sha256:{digest}"),
        size,
    })
}

/// A reader that fails once a signal arrived, so long copies stop soon after SIGINT/SIGTERM.
struct Interruptible<R>(R);

impl<R: Read> Read for Interruptible<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        crate::common::signals::check()?;
        self.0.read(buf)
    }
}

fn read_full(source: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match source.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// A layer's identity: the sha256 of its saved bytes.
fn content_key(saved: &Saved, path: &str) -> Result<String, ExportError> {
    match saved.files.get(path) {
        Some(Stored::Disk { sha256, .. } | Stored::Cached { sha256 }) => Ok(sha256.clone()),
        Some(Stored::Memory(bytes)) => Ok(hex::encode(Sha256::digest(bytes))),
        None => Err(ExportError::MissingLayer {
            path: path.to_string(),
        }),
    }
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// `docker.io/library/x:t` and `x:t` are the same image.
fn normalize_reference(reference: &str) -> String {
    let r = reference.strip_prefix("docker.io/").unwrap_or(reference);
    r.strip_prefix("library/").unwrap_or(r).to_string()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    media_type: &'static str,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: &'static str,
    size: u64,
    digest: String,
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    fn finish(self) -> (String, u64, W) {
        (hex::encode(self.hasher.finalize()), self.size, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A blocking `Read` over chunks arriving on a channel.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl ChannelReader {
    fn new(rx: mpsc::Receiver<io::Result<Bytes>>) -> Self {
        ChannelReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(bytes)) => self.current = bytes,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::{FakeEngine, layer};

    #[test]
    fn links_resolve_relative_to_their_folder() {
        assert_eq!(resolve_link("b/layer.tar", "../a/layer.tar"), "a/layer.tar");
        assert_eq!(resolve_link("blobs/sha256/x", "y"), "blobs/sha256/y");
    }

    #[test]
    fn references_normalise_docker_hub_names() {
        assert_eq!(
            normalize_reference("docker.io/library/debian:bookworm"),
            "debian:bookworm"
        );
        assert_eq!(
            normalize_reference("127.0.0.1:4000/kolla/x:1"),
            "127.0.0.1:4000/kolla/x:1"
        );
    }

    #[test]
    fn tar_gz_is_sorted_deterministic_and_has_parent_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let mut entries = BTreeMap::new();
        entries.insert("b/x/link".to_string(), Blob::Bytes(b"sha256:1".to_vec()));
        entries.insert("a/data".to_string(), Blob::Bytes(vec![7; 10]));
        let write = |name: &str| {
            let path = dir.path().join(name);
            let file = File::create(&path).unwrap();
            write_tar_gz(&file, &entries).unwrap();
            std::fs::read(path).unwrap()
        };
        let first = write("one.tar.gz");
        assert_eq!(first, write("two.tar.gz"), "same entries, same bytes");
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(first.as_slice()));
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                assert_eq!(e.header().mtime().unwrap(), 0);
                e.path().unwrap().display().to_string()
            })
            .collect();
        assert_eq!(names, ["a/", "a/data", "b/", "b/x/", "b/x/link"]);
    }

    #[test]
    fn compress_is_deterministic_and_keeps_gzip_as_is() {
        let dir = tempfile::tempdir().unwrap();
        let stored = Stored::Memory(b"layer bytes".repeat(1000));
        let a = compress(&stored, &dir.path().join("a")).unwrap();
        let b = compress(&stored, &dir.path().join("b")).unwrap();
        assert_eq!((a.digest.clone(), a.size), (b.digest, b.size));
        let gz = Stored::Memory(std::fs::read(dir.path().join("a")).unwrap());
        let again = compress(&gz, &dir.path().join("c")).unwrap();
        assert_eq!(
            again.digest, a.digest,
            "an already gzipped layer is stored unchanged"
        );
    }

    /// The regular files of a `.tar.gz`, by name.
    fn unpack(path: &Path) -> BTreeMap<String, Vec<u8>> {
        let file = File::open(path).unwrap();
        crate::engine::fake::tar_entries(flate2::read::GzDecoder::new(file))
            .into_iter()
            .collect()
    }

    fn sha256(bytes: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
    }

    /// base, and keystone on top of it (sharing base's layer), in a fake engine, named as in a
    /// registry that is not on loopback (so never read).
    fn two_images() -> (FakeEngine, Vec<ExportImage>) {
        two_images_at("registry.test")
    }

    /// [`two_images`], named as in the registry at `registry`.
    fn two_images_at(registry: &str) -> (FakeEngine, Vec<ExportImage>) {
        let engine = FakeEngine::new();
        let base = layer("etc/os-release", b"trixie");
        let image = |name: &str| ExportImage {
            reference: format!("{registry}/kolla/{name}:1"),
            repository: format!("kolla/{name}"),
            tag: "1".into(),
        };
        let images = vec![image("base"), image("keystone")];
        engine.add_image(&images[0].reference, BTreeMap::new(), vec![base.clone()]);
        engine.add_image(
            &images[1].reference,
            BTreeMap::from([("name".to_string(), "keystone".to_string())]),
            vec![base, layer("usr/bin/keystone", b"#!")],
        );
        (engine, images)
    }

    /// [`two_images`] exported in `format` to a folder the export creates.
    struct TwoExported {
        engine: FakeEngine,
        images: Vec<ExportImage>,
        report: ExportReport,
        bytes: Vec<u8>,
        files: BTreeMap<String, Vec<u8>>,
    }

    async fn export_two_images(format: ExportFormat) -> TwoExported {
        let (engine, images) = two_images();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/images.tar.gz");
        let report = export(&engine, &images, &path, format).await.unwrap();
        TwoExported {
            bytes: std::fs::read(&path).unwrap(),
            files: unpack(&path),
            engine,
            images,
            report,
        }
    }

    /// `images` exported as a registry tarball `dir/name` (through `cache` when given): its bytes.
    async fn exported(
        engine: &FakeEngine,
        images: &[ExportImage],
        dir: &Path,
        name: &str,
        cache: Option<&BlobCache>,
    ) -> Vec<u8> {
        exported_from(engine, images, dir, name, cache).await.0
    }

    /// [`exported`], with how many images came from the cache, the registry and the engine.
    async fn exported_from(
        engine: &FakeEngine,
        images: &[ExportImage],
        dir: &Path,
        name: &str,
        cache: Option<&BlobCache>,
    ) -> (Vec<u8>, [usize; 3]) {
        let path = dir.join(name);
        let report = export_cached(engine, images, &path, ExportFormat::Registry, cache)
            .await
            .unwrap();
        let from = [report.from_cache, report.from_registry, report.saved];
        (std::fs::read(path).unwrap(), from)
    }

    /// keystone ([`two_images`]) rebuilt with another top layer on the same base.
    fn change_keystone(engine: &FakeEngine, images: &[ExportImage]) {
        let keystone = engine.image(&images[1].reference).unwrap();
        engine.add_image(
            &images[1].reference,
            keystone.labels,
            vec![
                keystone.layers[0].clone(),
                layer("usr/bin/keystone", b"#!changed"),
            ],
        );
    }

    /// keystone relabelled: the same layers, another config (another image ID).
    fn relabel_keystone(engine: &FakeEngine, images: &[ExportImage]) {
        let keystone = engine.image(&images[1].reference).unwrap();
        engine.add_image(
            &images[1].reference,
            BTreeMap::from([("name".to_string(), "keystone-2".to_string())]),
            keystone.layers,
        );
    }

    /// `images` ([`two_images`]) exported again through `cache`, where base must come from the
    /// cache and keystone, alone, from the engine's save: the tarball's bytes.
    async fn export_saving_keystone_alone(
        engine: &FakeEngine,
        images: &[ExportImage],
        dir: &Path,
        cache: &BlobCache,
    ) -> Vec<u8> {
        let (bytes, from) = exported_from(engine, images, dir, "inc.tar.gz", Some(cache)).await;
        assert_eq!(from, [1, 0, 1], "base from the cache, keystone saved");
        assert_eq!(
            engine.calls().last(),
            Some(&format!("save {}", images[1].reference)),
            "keystone alone read from the engine"
        );
        bytes
    }

    /// A scratch folder with an empty export cache in it (`cache/`).
    fn with_cache() -> (tempfile::TempDir, BlobCache) {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(&dir.path().join("cache")).unwrap();
        (dir, cache)
    }

    /// A cache, and a test registry on loopback with its `host:port`.
    fn with_cache_and_registry() -> (tempfile::TempDir, BlobCache, TestRegistry, String) {
        let (dir, cache) = with_cache();
        let registry = TestRegistry::serve();
        let host = registry.addr.to_string();
        (dir, cache, registry, host)
    }

    /// How many compressed layers the cache under `dir` holds.
    fn cached_layers(dir: &Path) -> usize {
        let layers = dir
            .join("export/layers")
            .join(crate::publish::blob_cache::COMPRESSION);
        std::fs::read_dir(layers)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension() == Some("gz".as_ref()))
            .count()
    }

    #[tokio::test]
    async fn the_registry_tarball_holds_each_blob_once_and_links_every_repository() {
        let TwoExported {
            engine,
            images,
            report,
            bytes,
            files,
        } = export_two_images(ExportFormat::Registry).await;
        // Two layers (one shared), two configs, two manifests.
        assert_eq!(report.blobs, 6);
        let blob = |digest: &str| {
            let hex = hex_of(digest);
            files
                .get(&format!(
                    "docker/registry/v2/blobs/sha256/{}/{hex}/data",
                    &hex[..2]
                ))
                .unwrap_or_else(|| panic!("no blob {digest}"))
        };
        let blobs: Vec<(&String, &Vec<u8>)> = files
            .iter()
            .filter(|(name, _)| name.starts_with("docker/registry/v2/blobs/"))
            .collect();
        assert_eq!(blobs.len(), 6);
        for (name, bytes) in blobs {
            let hex = hex_of(name.split('/').nth(6).unwrap()).to_string();
            assert_eq!(sha256(bytes), format!("sha256:{hex}"), "{name}");
        }
        let mut layer_digests = Vec::new();
        for image in &images {
            let digest = &report.manifests[&image.reference];
            let repo = format!("docker/registry/v2/repositories/{}", image.repository);
            let m = hex_of(digest);
            for link in [
                format!("{repo}/_manifests/tags/1/current/link"),
                format!("{repo}/_manifests/tags/1/index/sha256/{m}/link"),
                format!("{repo}/_manifests/revisions/sha256/{m}/link"),
            ] {
                assert_eq!(
                    files.get(&link),
                    Some(&digest.as_bytes().to_vec()),
                    "{link}"
                );
            }
            let manifest: serde_json::Value = serde_json::from_slice(blob(digest)).unwrap();
            assert_eq!(manifest["schemaVersion"], 2);
            assert_eq!(manifest["mediaType"], MANIFEST_V2);
            assert_eq!(manifest["config"]["mediaType"], CONFIG_V1);
            let saved = engine.image(&image.reference).unwrap();
            let config = manifest["config"]["digest"].as_str().unwrap();
            assert_eq!(blob(config), &saved.config.to_vec());
            assert_eq!(manifest["config"]["size"], saved.config.len());
            let layers = manifest["layers"].as_array().unwrap();
            assert_eq!(layers.len(), saved.layers.len());
            for (descriptor, raw) in layers.iter().zip(&saved.layers) {
                assert_eq!(descriptor["mediaType"], LAYER_GZIP);
                let digest = descriptor["digest"].as_str().unwrap();
                let gz = blob(digest);
                assert_eq!(descriptor["size"], gz.len());
                let mut unpacked = Vec::new();
                flate2::read::GzDecoder::new(gz.as_slice())
                    .read_to_end(&mut unpacked)
                    .unwrap();
                assert_eq!(&unpacked, raw, "the layer is the engine's, gzipped");
            }
            for digest in layers
                .iter()
                .map(|l| l["digest"].as_str().unwrap())
                .chain([config])
            {
                let link = format!("{repo}/_layers/sha256/{}/link", hex_of(digest));
                assert_eq!(
                    files.get(&link),
                    Some(&digest.as_bytes().to_vec()),
                    "{link}"
                );
            }
            layer_digests.push(layers[0]["digest"].clone());
        }
        assert_eq!(layer_digests[0], layer_digests[1], "the shared layer");
        assert_eq!(
            engine.calls(),
            ["save registry.test/kolla/base:1 registry.test/kolla/keystone:1"]
        );

        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            bytes,
            exported(&engine, &images, dir.path(), "again.tar.gz", None).await,
            "the same images give the same bytes"
        );
    }

    #[tokio::test]
    async fn the_oci_layout_indexes_every_image_by_name() {
        let TwoExported {
            images,
            report,
            files,
            ..
        } = export_two_images(ExportFormat::Oci).await;
        assert!(files.contains_key("oci-layout"));
        let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let names: Vec<(&str, &str)> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["annotations"]["org.opencontainers.image.ref.name"]
                        .as_str()
                        .unwrap(),
                    m["digest"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                (
                    "kolla/base:1",
                    report.manifests[&images[0].reference].as_str()
                ),
                (
                    "kolla/keystone:1",
                    report.manifests[&images[1].reference].as_str()
                )
            ]
        );
        let manifest = &files[&format!(
            "blobs/sha256/{}",
            hex_of(&report.manifests[&images[1].reference])
        )];
        let manifest: serde_json::Value = serde_json::from_slice(manifest).unwrap();
        assert_eq!(manifest["mediaType"], OCI_MANIFEST);
        assert_eq!(manifest["layers"][1]["mediaType"], OCI_LAYER);
    }

    #[tokio::test]
    async fn a_broken_save_leaves_the_previous_file_and_no_scratch() {
        let (engine, images) = two_images();
        let engine = engine.with_save_failing_after(1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.tar.gz");
        std::fs::write(&path, "previous").unwrap();
        let err = export(&engine, &images, &path, ExportFormat::Registry)
            .await
            .unwrap_err();
        assert!(matches!(err, ExportError::Engine(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "reading the images from the engine: unexpected EOF"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "previous");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [std::ffi::OsString::from("registry.tar.gz")]);
    }

    #[tokio::test]
    async fn a_cached_export_reads_nothing_again_and_writes_the_same_bytes() {
        let (engine, images) = two_images();
        let (dir, cache) = with_cache();
        let full = exported(&engine, &images, dir.path(), "full.tar.gz", None).await;
        let first = exported(&engine, &images, dir.path(), "first.tar.gz", Some(&cache)).await;
        let (cached, from) =
            exported_from(&engine, &images, dir.path(), "cached.tar.gz", Some(&cache)).await;
        assert_eq!(from, [2, 0, 0], "both images from the cache");
        let save = "save registry.test/kolla/base:1 registry.test/kolla/keystone:1";
        assert_eq!(
            engine.calls(),
            [save, save],
            "the third export came from the cache"
        );
        assert_eq!(full, first);
        assert_eq!(full, cached);
    }

    #[tokio::test]
    async fn after_one_image_changed_only_it_is_saved_and_the_bytes_equal_a_full_export() {
        let (engine, images) = two_images();
        let (dir, cache) = with_cache();
        let first = exported(&engine, &images, dir.path(), "first.tar.gz", Some(&cache)).await;
        assert_eq!(cached_layers(&dir.path().join("cache")), 2);
        change_keystone(&engine, &images);
        let incremental = export_saving_keystone_alone(&engine, &images, dir.path(), &cache).await;
        assert_eq!(
            cached_layers(&dir.path().join("cache")),
            3,
            "keystone's new layer, and only it, was compressed"
        );
        let full = exported(&engine, &images, dir.path(), "full.tar.gz", None).await;
        assert_eq!(incremental, full, "byte-identical to a full export");
        assert_ne!(incremental, first, "the change is in the export");
    }

    #[tokio::test]
    async fn an_image_with_every_layer_cached_but_a_new_config_is_saved() {
        let (engine, images) = two_images();
        let (dir, cache) = with_cache();
        exported(&engine, &images, dir.path(), "first.tar.gz", Some(&cache)).await;
        relabel_keystone(&engine, &images);
        let incremental = export_saving_keystone_alone(&engine, &images, dir.path(), &cache).await;
        assert_eq!(cached_layers(&dir.path().join("cache")), 2);
        let full = exported(&engine, &images, dir.path(), "full.tar.gz", None).await;
        assert_eq!(incremental, full);
    }

    #[tokio::test]
    async fn a_cached_layer_streamed_again_is_hashed_and_not_kept() {
        let engine = FakeEngine::new();
        // Above the size that is spilled to disk.
        let big = layer("usr/lib/big", &vec![7; 2 << 20]);
        engine.add_image("x:1", BTreeMap::new(), vec![big.clone()]);
        let (dir, cache) = with_cache();
        let image = ExportImage {
            reference: "x:1".into(),
            repository: "x".into(),
            tag: "1".into(),
        };
        exported(&engine, &[image], dir.path(), "first.tar.gz", Some(&cache)).await;
        let archive: Vec<u8> = engine
            .save(&["x:1".to_string()])
            .map(|chunk| chunk.unwrap().to_vec())
            .concat()
            .await;
        let scratch = tempfile::tempdir().unwrap();
        let saved = read_save(archive.as_slice(), scratch.path(), Some(&cache)).unwrap();
        let key = hex::encode(Sha256::digest(&big));
        let name = format!("blobs/sha256/{key}");
        assert!(
            matches!(&saved.files[&name], Stored::Cached { sha256 } if *sha256 == key),
            "the cached layer is known by its digest only"
        );
        assert_eq!(
            saved.compressed[&key].1,
            cache.layer(&key).unwrap().path,
            "its compressed blob is the cache's"
        );
        let left: Vec<_> = std::fs::read_dir(scratch.path()).unwrap().collect();
        assert!(left.is_empty(), "nothing spilled stays: {left:?}");
    }

    /// A registry on loopback serving fixed bodies by path over HTTP/1.1, until dropped; it
    /// records the paths asked for.
    struct TestRegistry {
        addr: std::net::SocketAddr,
        bodies: std::sync::Arc<std::sync::Mutex<BTreeMap<String, Vec<u8>>>>,
        asked: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl TestRegistry {
        fn serve() -> TestRegistry {
            use std::io::BufRead;
            use std::sync::atomic::Ordering;
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let bodies: std::sync::Arc<std::sync::Mutex<BTreeMap<String, Vec<u8>>>> =
                std::sync::Arc::default();
            let (log, done, served) = (asked.clone(), stop.clone(), bodies.clone());
            // One request per connection, said with `Connection: close`: without it the client
            // may reuse a connection this loop has already dropped, and fall back to the engine.
            let thread = std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if done.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut stream) = stream else { continue };
                    let mut reader = io::BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    while reader.read_line(&mut line).unwrap() > 0 && !line.ends_with("\r\n\r\n") {
                        if line.trim().is_empty() {
                            break;
                        }
                        line.clear();
                    }
                    log.lock().unwrap().push(path.clone());
                    let body = served.lock().unwrap().get(&path).cloned();
                    let _ = match body {
                        Some(body) => stream
                            .write_all(
                                format!(
                                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                    body.len()
                                )
                                .as_bytes(),
                            )
                            .and_then(|()| stream.write_all(&body)),
                        None => {
                            stream.write_all(
                            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        )
                        }
                    };
                }
            });
            TestRegistry {
                addr,
                bodies,
                asked,
                stop,
                thread: Some(thread),
            }
        }

        /// Serves the images as a `docker push` leaves them: layers gzipped by another compressor.
        fn hold(&self, engine: &FakeEngine, images: &[ExportImage]) {
            let mut bodies = BTreeMap::new();
            for image in images {
                let fake = engine.image(&image.reference).unwrap();
                let repo = format!("/v2/{}", image.repository);
                let mut layers = Vec::new();
                for raw in &fake.layers {
                    let mut gz =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    gz.write_all(raw).unwrap();
                    let gz = gz.finish().unwrap();
                    let digest = sha256(&gz);
                    layers.push(serde_json::json!({"mediaType": LAYER_GZIP, "size": gz.len(), "digest": digest}));
                    bodies.insert(format!("{repo}/blobs/{digest}"), gz);
                }
                bodies.insert(format!("{repo}/blobs/{}", fake.id), fake.config.to_vec());
                let manifest = serde_json::json!({
                    "schemaVersion": 2,
                    "mediaType": MANIFEST_V2,
                    "config": {"mediaType": CONFIG_V1, "size": fake.config.len(), "digest": fake.id},
                    "layers": layers,
                });
                bodies.insert(
                    format!("{repo}/manifests/{}", image.tag),
                    serde_json::to_vec(&manifest).unwrap(),
                );
            }
            *self.bodies.lock().unwrap() = bodies;
        }

        /// Serves what was at `from` at `to` instead.
        fn rename(&self, from: &str, to: &str) {
            let mut bodies = self.bodies.lock().unwrap();
            let body = bodies.remove(from).unwrap();
            bodies.insert(to.to_string(), body);
        }

        fn asked(&self) -> Vec<String> {
            self.asked.lock().unwrap().clone()
        }
    }

    impl Drop for TestRegistry {
        fn drop(&mut self) {
            self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = std::net::TcpStream::connect(self.addr);
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    /// Two images exported once through `cache`, then keystone rebuilt with a new top layer.
    async fn keystone_changed_after_an_export(
        registry: &str,
        dir: &Path,
        cache: &BlobCache,
    ) -> (FakeEngine, Vec<ExportImage>) {
        let (engine, images) = two_images_at(registry);
        exported(&engine, &images, dir, "first.tar.gz", Some(cache)).await;
        change_keystone(&engine, &images);
        (engine, images)
    }

    /// keystone changed after an export and was pushed (`staged`: under the atomic mode's
    /// staging tag only): the next export reads its config and new layer from the registry,
    /// nothing from the engine, and equals a full export.
    async fn assert_keystone_read_from_the_registry(staged: bool) {
        let (dir, cache, registry, host) = with_cache_and_registry();
        let (engine, images) = keystone_changed_after_an_export(&host, dir.path(), &cache).await;
        registry.hold(&engine, &images);
        if staged {
            registry.rename(
                "/v2/kolla/keystone/manifests/1",
                "/v2/kolla/keystone/manifests/1.kolla-staging",
            );
        }
        let saves_before = engine.calls().len();
        let (incremental, from) =
            exported_from(&engine, &images, dir.path(), "inc.tar.gz", Some(&cache)).await;
        assert_eq!(
            from,
            [1, 1, 0],
            "base from the cache, keystone from the registry"
        );
        assert_eq!(
            engine.calls().len(),
            saves_before,
            "nothing was read from the engine: {:?}",
            engine.calls()
        );
        let keystone = engine.image(&images[1].reference).unwrap();
        let blobs: Vec<String> = registry
            .asked()
            .into_iter()
            .filter(|p| p.contains("/blobs/"))
            .collect();
        assert_eq!(
            blobs.len(),
            2,
            "keystone's config and its new layer only: {blobs:?}"
        );
        assert!(blobs.iter().any(|b| b.ends_with(&keystone.id)), "{blobs:?}");
        assert_eq!(cached_layers(&dir.path().join("cache")), 3);
        let full = exported(&engine, &images, dir.path(), "full.tar.gz", None).await;
        assert_eq!(incremental, full, "byte-identical to a full export");
    }

    #[tokio::test]
    async fn a_changed_image_pushed_to_a_loopback_registry_is_read_from_it_new_layers_only() {
        assert_keystone_read_from_the_registry(false).await;
    }

    #[tokio::test]
    async fn an_image_staged_by_an_atomic_push_is_read_from_its_staging_tag() {
        assert_keystone_read_from_the_registry(true).await;
    }

    #[tokio::test]
    async fn several_images_read_from_the_registry_in_one_export_keep_their_own_layers() {
        let (dir, cache, registry, host) = with_cache_and_registry();
        let (engine, mut images) = two_images_at(&host);
        let base = engine.image(&images[0].reference).unwrap().layers[0].clone();
        images.push(ExportImage {
            reference: format!("{host}/kolla/nova:1"),
            repository: "kolla/nova".into(),
            tag: "1".into(),
        });
        let top = |image: &ExportImage, content: &[u8]| {
            engine.add_image(
                &image.reference,
                BTreeMap::new(),
                vec![base.clone(), layer("top", content)],
            );
        };
        top(&images[2], b"nova");
        exported(&engine, &images, dir.path(), "first.tar.gz", Some(&cache)).await;
        // Both rebuilt: their new layers are at the same place in their chains.
        top(&images[1], b"keystone, changed");
        top(&images[2], b"nova, changed");
        registry.hold(&engine, &images);
        let (incremental, from) =
            exported_from(&engine, &images, dir.path(), "inc.tar.gz", Some(&cache)).await;
        assert_eq!(from, [1, 2, 0]);
        let full = exported(&engine, &images, dir.path(), "full.tar.gz", None).await;
        assert_eq!(incremental, full);
        let (again, from) =
            exported_from(&engine, &images, dir.path(), "again.tar.gz", Some(&cache)).await;
        assert_eq!(from, [3, 0, 0]);
        assert_eq!(again, full, "the cache holds each layer as it was");
    }

    #[tokio::test]
    async fn a_registry_holding_another_image_under_the_tag_is_not_used() {
        let (dir, cache, registry, host) = with_cache_and_registry();
        let (engine, images) = two_images_at(&host);
        registry.hold(&engine, &images);
        exported(&engine, &images, dir.path(), "first.tar.gz", Some(&cache)).await;
        assert_eq!(
            engine.calls(),
            [format!("save {host}/kolla/base:1 {host}/kolla/keystone:1")],
            "with nothing cached, the engine's save (parallel compression) is used"
        );
        // The registry still holds keystone as it was before this.
        relabel_keystone(&engine, &images);
        let incremental = export_saving_keystone_alone(&engine, &images, dir.path(), &cache).await;
        let full = exported(&engine, &images, dir.path(), "full.tar.gz", None).await;
        assert_eq!(incremental, full);
    }

    #[tokio::test]
    async fn an_image_missing_from_the_engine_is_named() {
        let (engine, mut images) = two_images();
        images[1].reference = "registry.test/kolla/nova:1".into();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.tar.gz");
        let err = export(&engine, &images, &path, ExportFormat::Registry)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("reading the images from the engine: ")
                && err.contains("registry.test/kolla/nova:1"),
            "{err}"
        );
        assert!(!path.exists());
    }
}
