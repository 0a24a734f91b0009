//! The nightly artifact: images read from the engine (`docker save` as a stream, never whole in
//! memory) and written as a tarball a stock registry serves once unpacked into its storage root
//! (DESIGN section 6), or as an OCI image layout. Blobs shared between images are stored once;
//! layers are compressed in parallel; entries are sorted with fixed mtimes, so the same images
//! give the same bytes; the file appears only when complete.
//!
//! This module runs the export in order; each step is its own module: what the cache and the
//! loopback registry already hold (`cached`, `from_registry`), reading the rest from the engine
//! (`save`), compressing layers (`layers`), laying the images out in the chosen format
//! (`layout`: one module per format behind one trait), and writing the tarball (`tarball`).

mod cached;
mod error;
mod from_registry;
mod image;
mod layers;
mod layout;
mod save;
mod streams;
mod tarball;

use std::path::Path;

use crate::common::types::ExportFormat;
use crate::engine::Engine;
use crate::publish::blob_cache::BlobCache;
pub use crate::publish::export::error::ExportError;
pub use crate::publish::export::image::ExportImage;
use crate::publish::export::image::ImageParts;
use crate::publish::export::layout::Layout;
use crate::publish::export::layout::oci::OciLayout;
use crate::publish::export::layout::registry::RegistryStorage;
use crate::publish::export::save::Saved;
use crate::report::event::ExportReport;

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
    let dir = tarball::folder_of(path).to_path_buf();
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
    let known = match cache {
        Some(cache) => cached::known_parts(engine, images, cache, scratch.path()).await?,
        None => cached::Known {
            parts: vec![None; images.len()],
            from_registry: 0,
        },
    };
    let to_save: Vec<&ExportImage> = images
        .iter()
        .zip(&known.parts)
        .filter(|(_, c)| c.is_none())
        .map(|(i, _)| i)
        .collect();
    let saved = if to_save.is_empty() {
        None
    } else {
        Some(save::save(engine, &to_save, scratch.path(), cache).await?)
    };
    let (images, path, cache) = (images.to_vec(), path.to_path_buf(), cache.cloned());
    tokio::task::spawn_blocking(move || {
        let from_registry = known.from_registry;
        let saved_count = known.parts.iter().filter(|p| p.is_none()).count();
        let parts = every_part(
            known,
            saved.as_ref(),
            &images,
            scratch.path(),
            cache.as_ref(),
        )?;
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

/// The parts of every image, in order: those `known` already, the others from `saved`.
fn every_part(
    known: cached::Known,
    saved: Option<&Saved>,
    images: &[ExportImage],
    scratch: &Path,
    cache: Option<&BlobCache>,
) -> Result<Vec<ImageParts>, ExportError> {
    let mut from_save = match saved {
        Some(saved) => {
            let wanted: Vec<ExportImage> = images
                .iter()
                .zip(&known.parts)
                .filter(|(_, c)| c.is_none())
                .map(|(i, _)| i.clone())
                .collect();
            save::saved_parts(saved, &wanted, scratch, cache)?
        }
        None => Vec::new(),
    }
    .into_iter();
    Ok(known
        .parts
        .into_iter()
        .map(|slot| slot.unwrap_or_else(|| from_save.next().expect("one part per saved image")))
        .collect())
}

/// The layout that writes `format`: the one place a format is chosen.
fn layout_of(format: ExportFormat) -> Box<dyn Layout> {
    match format {
        ExportFormat::Registry => Box::new(RegistryStorage),
        ExportFormat::Oci => Box::new(OciLayout::default()),
    }
}

/// Writes the images with their `parts` to `path` in `format`; the report's counts of where the
/// images came from are left at 0.
fn write_export(
    parts: &[ImageParts],
    images: &[ExportImage],
    path: &Path,
    format: ExportFormat,
) -> Result<ExportReport, ExportError> {
    let laid_out = layout::lay_out(parts, images, layout_of(format));
    let bytes = tarball::write_file(path, &laid_out.entries)?;
    Ok(ExportReport {
        bytes,
        blobs: laid_out.blobs,
        manifests: laid_out.manifests,
        from_cache: 0,
        from_registry: 0,
        saved: 0,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fs::File;
    use std::io::{self, Read, Write};

    use futures_util::StreamExt;
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::engine::fake::{FakeEngine, layer};
    use crate::publish::export::layers::Stored;
    use crate::publish::export::layout::hex_of;
    use crate::publish::export::layout::oci::{OCI_LAYER, OCI_MANIFEST};
    use crate::publish::export::layout::registry::{CONFIG_V1, LAYER_GZIP, MANIFEST_V2};
    use crate::publish::export::save::read_save;

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
