//! The incremental export's way around `docker save`: an image already pushed to a registry on
//! loopback (`--registry 127.0.0.1:4000 --push`) is read from there, where each layer is its own
//! blob, so only the layers missing from the export cache are fetched. The engine's save cannot
//! do that: it writes every layer of the image's chain (hundreds of MB of unchanged parents)
//! before it sends a byte.
//!
//! Nothing is taken on trust: the manifest's config must be the image the engine has (its digest
//! is the image ID), and every fetched layer is decompressed and must hash to the diff ID the
//! engine reports, then it is compressed with the export's own settings, so the tarball is the
//! same, byte for byte, as one written from `docker save`. Any failure (no such registry, another
//! image under the tag, a redirect, a digest that does not match) answers `None`, and the caller
//! reads the image from the engine as before.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::Path;

use sha2::{Digest, Sha256};
use tokio::runtime::Handle;
use tokio_util::io::SyncIoBridge;

use crate::common::hashing::HashingWriter;
use crate::engine::{ImageFacts, split_reference};
use crate::publish::blob_cache::BlobCache;
use crate::publish::export::image::{ImageParts, Layer};
use crate::publish::export::layers::{Stored, compress};
use crate::publish::registry::{Descriptor, Registry};

/// The config and compressed layers of the image `reference` (whose engine facts are `facts`),
/// with the layers the cache lacks read from the loopback registry the reference names; new
/// layers and the config go to the cache. `None` when the registry cannot give exactly this
/// image, or outside any tokio runtime. Runs on a blocking thread of a runtime (the export's
/// `spawn_blocking`), never on an async worker: the registry's requests run on that runtime and
/// their answers, layers streamed, are read here synchronously.
pub(super) fn parts(
    reference: &str,
    facts: &ImageFacts,
    cache: &BlobCache,
    scratch: &Path,
) -> Option<ImageParts> {
    let (host, repository, tag) = loopback_registry(reference)?;
    let runtime = Handle::try_current().ok()?;
    let registry = Registry::new(host, None);
    // The final tag, or the staging tag an atomic push leaves until every image is pushed.
    let manifest = [tag.to_string(), crate::publish::staging_tag(tag)]
        .iter()
        .filter_map(|tag| {
            let reference = format!("{host}/{repository}:{tag}");
            runtime
                .block_on(registry.image_manifest(&reference))
                .ok()
                .flatten()
        })
        .find(|m| m.config.digest == facts.id && m.layers.len() == facts.diff_ids.len())?;
    let config = runtime
        .block_on(registry.blob(repository, &facts.id))
        .ok()?
        .to_vec();
    if format!("sha256:{}", hex::encode(Sha256::digest(&config))) != facts.id {
        return None;
    }
    let mut layers = Vec::with_capacity(facts.diff_ids.len());
    for (diff_id, descriptor) in facts.diff_ids.iter().zip(&manifest.layers) {
        if let Some(hit) = cache.layer(diff_id) {
            layers.push(Layer::cached(hit));
            continue;
        }
        // Named by content: a compressed file is hard-linked into the cache, so no later
        // layer may be written under its name.
        let key = diff_id.strip_prefix("sha256:").unwrap_or(diff_id);
        if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let raw = scratch.join(format!("registry-{key}.tar"));
        let sha256 = fetch_layer(&runtime, &registry, repository, descriptor, &raw).ok()?;
        if format!("sha256:{sha256}") != *diff_id {
            return None;
        }
        let target = scratch.join(format!("registry-{key}.gz"));
        let layer = compress(&Stored::Disk { path: raw, sha256 }, &target).ok()?;
        let stored = cache
            .put_layer(diff_id, &target, &layer.digest, layer.size)
            .ok()?;
        layers.push((layer, stored.path));
    }
    cache.put_config(&config).ok()?;
    Some(ImageParts { config, layers })
}

/// `127.0.0.1:4000/kolla/x:tag` → (`127.0.0.1:4000`, `kolla/x`, `tag`) when the registry is on
/// loopback (the only place a registry is spoken to in plain HTTP, as the Docker engine does).
fn loopback_registry(reference: &str) -> Option<(&str, &str, &str)> {
    let (name, tag) = split_reference(reference);
    let (host, repository) = name.split_once('/')?;
    let hostname = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let loopback = hostname == "localhost"
        || hostname == "[::1]"
        || hostname
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    (loopback && !tag.contains('@')).then_some((host, repository, tag))
}

/// A layer blob written to `raw` uncompressed, streamed from the registry (never whole in
/// memory); returns the hex sha256 of what was written.
fn fetch_layer(
    runtime: &Handle,
    registry: &Registry,
    repository: &str,
    descriptor: &Descriptor,
    raw: &Path,
) -> io::Result<String> {
    let gzip = descriptor.media_type.ends_with("gzip");
    if !gzip && !descriptor.media_type.ends_with("tar") {
        return Err(io::Error::other(format!(
            "unknown layer type {}",
            descriptor.media_type
        )));
    }
    let blob = runtime
        .block_on(registry.blob_reader(repository, &descriptor.digest))
        .map_err(io::Error::other)?;
    // Each read of the bridge waits on the runtime: a large buffer makes few of them.
    let mut body = BufReader::with_capacity(
        1 << 20,
        SyncIoBridge::new_with_handle(blob, runtime.clone()),
    );
    let mut out = HashingWriter::new(BufWriter::with_capacity(1 << 20, File::create(raw)?));
    if gzip {
        io::copy(&mut flate2::read::GzDecoder::new(body), &mut out)?;
    } else {
        io::copy(&mut body, &mut out)?;
    }
    let (sha256, _, mut inner) = out.finish();
    inner.flush()?;
    Ok(sha256)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_registries_are_read() {
        assert_eq!(
            loopback_registry("127.0.0.1:4000/kolla/keystone:1"),
            Some(("127.0.0.1:4000", "kolla/keystone", "1"))
        );
        assert_eq!(
            loopback_registry("localhost:5000/k/x:2"),
            Some(("localhost:5000", "k/x", "2"))
        );
        assert_eq!(loopback_registry("quay.io/kolla/keystone:1"), None);
        assert_eq!(loopback_registry("10.0.0.1:4000/kolla/keystone:1"), None);
        assert_eq!(loopback_registry("kolla/keystone:1"), None);
    }

    use crate::publish::registry::tests::{Then, chunked, serve_raw, whole};
    use std::collections::BTreeMap;
    use std::io::Read as _;

    fn sha256(bytes: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
    }

    /// An image of one layer (`layer`, uncompressed) as the engine knows it, and a registry
    /// on loopback holding it as `kolla/x:1`, the layer gzipped and sent in chunks, but serving
    /// `served` as that layer's bytes.
    async fn registry_holding(layer: &[u8], served: &[u8]) -> (String, ImageFacts) {
        let config = br#"{"config":{"Labels":{"n":"1"}}}"#.to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(served).unwrap();
        let gz = gz.finish().unwrap();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": sha256(&config)},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": sha256(&gz)}],
        });
        let manifest = serde_json::to_vec(&manifest).unwrap();
        let host = serve_raw(BTreeMap::from([
            (
                "GET /v2/kolla/x/manifests/1".to_string(),
                (whole(&manifest), Then::Close),
            ),
            (
                format!("GET /v2/kolla/x/blobs/{}", sha256(&config)),
                (whole(&config), Then::Close),
            ),
            (
                format!("GET /v2/kolla/x/blobs/{}", sha256(&gz)),
                (chunked(&gz, 4096), Then::Close),
            ),
        ]))
        .await;
        let facts = ImageFacts {
            id: sha256(&config),
            diff_ids: vec![sha256(layer)],
            ..ImageFacts::default()
        };
        (host, facts)
    }

    /// `parts` of `host/kolla/x:1`, on a blocking thread as the export calls it.
    async fn parts_of(
        host: &str,
        facts: &ImageFacts,
        cache: &BlobCache,
        scratch: &Path,
    ) -> Option<ImageParts> {
        let (reference, facts) = (format!("{host}/kolla/x:1"), facts.clone());
        let (cache, scratch) = (cache.clone(), scratch.to_path_buf());
        tokio::task::spawn_blocking(move || parts(&reference, &facts, &cache, &scratch))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_pushed_image_is_read_from_the_registry_its_layer_streamed_and_checked() {
        let layer: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (host, facts) = registry_holding(&layer, &layer).await;
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(&dir.path().join("cache")).unwrap();
        let parts = parts_of(&host, &facts, &cache, dir.path())
            .await
            .expect("the image is read from the registry");
        assert_eq!(sha256(&parts.config), facts.id);
        let [(compressed, path)] = parts.layers.as_slice() else {
            panic!("one layer");
        };
        let gz = std::fs::read(path).unwrap();
        assert_eq!(compressed.digest, sha256(&gz));
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_end(&mut unpacked)
            .unwrap();
        assert!(unpacked == layer, "the layer is the one pushed");
        assert!(cache.has_layer(&facts.diff_ids[0]), "and it is cached");
        assert!(cache.config(&facts.id).is_some());
    }

    #[tokio::test]
    async fn a_layer_that_is_not_its_diff_id_or_a_config_that_is_not_the_image_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(&dir.path().join("cache")).unwrap();
        let (host, facts) = registry_holding(b"the layer", b"another layer").await;
        assert!(parts_of(&host, &facts, &cache, dir.path()).await.is_none());
        assert!(!cache.has_layer(&facts.diff_ids[0]));

        let (host, mut facts) = registry_holding(b"the layer", b"the layer").await;
        assert!(parts_of(&host, &facts, &cache, dir.path()).await.is_some());
        facts.id = sha256(b"another image");
        assert!(parts_of(&host, &facts, &cache, dir.path()).await.is_none());
    }

    #[test]
    fn outside_a_runtime_nothing_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(&dir.path().join("cache")).unwrap();
        let facts = ImageFacts::default();
        assert!(parts("127.0.0.1:9/kolla/x:1", &facts, &cache, dir.path()).is_none());
    }
}
