//! Reading images from the engine: its image archive (`docker save`) as a stream, never whole in
//! memory. Small files are kept in memory; big ones (the layers) are spilled to the scratch
//! folder and compressed on the rayon pool while the rest still streams, unless the export cache
//! holds them compressed already.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;

use bytes::Bytes;
use futures_util::StreamExt;
use rayon::prelude::*;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::common::hashing::HashingWriter;
use crate::engine::Engine;
use crate::publish::blob_cache::BlobCache;
use crate::publish::export::error::ExportError;
use crate::publish::export::image::{ExportImage, ImageParts, Layer};
use crate::publish::export::layers::{Stored, compress};

/// What `docker save` gave: its manifest, and every file it held (big ones spilled to disk).
pub(super) struct Saved {
    manifest: Vec<SaveManifestEntry>,
    pub(super) files: BTreeMap<String, Stored>,
    /// Large files (the layers) compressed while the rest of the archive was still streaming,
    /// by their content's sha256.
    pub(super) compressed: BTreeMap<String, (Layer, PathBuf)>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SaveManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Files from this size on are spilled to disk (and compressed at once).
const SPILL: u64 = 1 << 20;

/// A compression job's result: the layer's sha256, and its compressed blob.
type Compressed = (String, io::Result<(Layer, PathBuf)>);

/// Reads `images` from the engine (`docker save`), compressing big layers as they arrive.
pub(super) async fn save<E: Engine>(
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

/// Reads an image archive as `docker save` writes it.
pub(super) fn read_save(
    reader: impl Read,
    scratch: &Path,
    cache: Option<&BlobCache>,
) -> io::Result<Saved> {
    let mut archive = tar::Archive::new(reader);
    // Each spilled file is compressed on the rayon pool as soon as it is on disk, so compression
    // overlaps the engine's (I/O-bound) save instead of waiting for all of it.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Compressed>();
    let mut reading = Reading {
        scratch,
        cache,
        files: BTreeMap::new(),
        links: Vec::new(),
        manifest: None,
        compressing: BTreeSet::new(),
        done: done_tx,
    };
    // Every compression job is waited for, even when reading fails half-way: none may still be
    // writing into the scratch directory while its owner removes it.
    let streamed = reading.entries(&mut archive);
    let Reading {
        mut files,
        links,
        manifest,
        done,
        ..
    } = reading;
    drop(done);
    let compressed = wait_for(done_rx);
    streamed?;
    let compressed = compressed?;
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

/// Every compression job's result, by the layer's sha256; the first error if any failed.
fn wait_for(
    done: std::sync::mpsc::Receiver<Compressed>,
) -> io::Result<BTreeMap<String, (Layer, PathBuf)>> {
    let mut compressed = BTreeMap::new();
    let mut compress_error = None;
    for (sha256, result) in done {
        match result {
            Ok(layer) => {
                compressed.insert(sha256, layer);
            }
            Err(e) => {
                compress_error.get_or_insert(e);
            }
        }
    }
    match compress_error {
        Some(e) => Err(e),
        None => Ok(compressed),
    }
}

/// What [`read_save`] gathers while the archive streams.
struct Reading<'a> {
    scratch: &'a Path,
    cache: Option<&'a BlobCache>,
    files: BTreeMap<String, Stored>,
    /// (name, the file it links to).
    links: Vec<(String, String)>,
    manifest: Option<Vec<SaveManifestEntry>>,
    /// The layers (by sha256) given to a compression job or found in the cache.
    compressing: BTreeSet<String>,
    done: Sender<Compressed>,
}

impl Reading<'_> {
    fn entries(&mut self, archive: &mut tar::Archive<impl Read>) -> io::Result<()> {
        for (n, entry) in archive.entries()?.enumerate() {
            crate::common::signals::check()?;
            self.entry(n, entry?)?;
        }
        Ok(())
    }

    /// Takes the `n`th entry of the archive.
    fn entry(&mut self, n: usize, mut entry: tar::Entry<'_, impl Read>) -> io::Result<()> {
        let name = entry.path()?.to_string_lossy().into_owned();
        // `docker save` links a layer it already wrote (the same diff in two images).
        if entry.header().entry_type().is_symlink() {
            if let Some(target) = entry.link_name()? {
                let resolved = resolve_link(&name, &target.to_string_lossy());
                self.links.push((name, resolved));
            }
            return Ok(());
        }
        if !entry.header().entry_type().is_file() {
            return Ok(());
        }
        if name == "manifest.json" {
            let mut text = String::new();
            entry.read_to_string(&mut text)?;
            self.manifest = Some(
                serde_json::from_str::<Vec<SaveManifestEntry>>(&text).map_err(io::Error::other)?,
            );
        } else if entry.size() < SPILL {
            let mut bytes = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut bytes)?;
            self.files.insert(name, Stored::Memory(bytes));
        } else {
            self.spill(n, name, &mut entry)?;
        }
        Ok(())
    }

    /// Writes a big file to disk and has it compressed, unless the cache holds it compressed.
    fn spill(&mut self, n: usize, name: String, entry: &mut impl Read) -> io::Result<()> {
        let path = self.scratch.join(format!("saved-{n}"));
        let mut out = HashingWriter::new(BufWriter::new(File::create(&path)?));
        io::copy(entry, &mut out)?;
        let (sha256, _, mut inner) = out.finish();
        inner.flush()?;
        drop(inner);
        if let Some(hit) = self.cache.and_then(|c| c.layer(&sha256)) {
            // Compressed by an earlier export: used as it is, and its spilled copy goes at once
            // (an unchanged parent streams hundreds of MB that are not needed).
            std::fs::remove_file(&path)?;
            if self.compressing.insert(sha256.clone()) {
                let _ = self.done.send((sha256.clone(), Ok(Layer::cached(hit))));
            }
            self.files.insert(name, Stored::Cached { sha256 });
            return Ok(());
        }
        if self.compressing.insert(sha256.clone()) {
            let target = self.scratch.join(format!("layer-{n}.gz"));
            let stored = Stored::Disk {
                path: path.clone(),
                sha256: sha256.clone(),
            };
            let (done, key) = (self.done.clone(), sha256.clone());
            rayon::spawn(move || {
                let result = compress(&stored, &target).map(|layer| (layer, target));
                let _ = done.send((key, result));
            });
        }
        self.files.insert(name, Stored::Disk { path, sha256 });
        Ok(())
    }
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

/// The parts of `images` (in order) from what `docker save` gave: layers compressed earlier are
/// taken, the others (the small ones) compressed now; new layers and configs go to the cache.
pub(super) fn saved_parts(
    saved: &Saved,
    images: &[ExportImage],
    scratch: &Path,
    cache: Option<&BlobCache>,
) -> Result<Vec<ImageParts>, ExportError> {
    let picked = pick(saved, images)?;
    let compressed = compress_layers(saved, &picked, scratch, cache)?;
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

/// Which save-manifest entry is which image.
fn pick<'a>(
    saved: &'a Saved,
    images: &'a [ExportImage],
) -> Result<Vec<(&'a ExportImage, &'a SaveManifestEntry)>, ExportError> {
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
    Ok(picked)
}

/// The picked images' unique layers (by their uncompressed content), compressed in parallel
/// unless compressed already, by content key; the ones compressed now go to the cache.
fn compress_layers(
    saved: &Saved,
    picked: &[(&ExportImage, &SaveManifestEntry)],
    scratch: &Path,
    cache: Option<&BlobCache>,
) -> Result<BTreeMap<String, (Layer, PathBuf)>, ExportError> {
    let mut layer_paths: BTreeMap<String, &str> = BTreeMap::new();
    for (_, entry) in picked {
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
                return Ok(((*key).clone(), Layer::cached(hit)));
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
    Ok(compressed)
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

/// `docker.io/library/x:t` and `x:t` are the same image.
fn normalize_reference(reference: &str) -> String {
    let r = reference.strip_prefix("docker.io/").unwrap_or(reference);
    r.strip_prefix("library/").unwrap_or(r).to_string()
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
}
