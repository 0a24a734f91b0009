//! The archive layouts an export is written in. Each is a [`Layout`]: the media types its
//! manifests use, where a blob goes, what names an image, and what describes the whole archive.
//! What they share (a manifest per image, each blob stored once) is [`lay_out`]; a new format is
//! a module here and a value in `common::types::ExportFormat` (the export picks its layout).

pub(super) mod oci;
pub(super) mod registry;

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::publish::export::image::{ExportImage, ImageParts, Layer};
use crate::publish::export::tarball::{Blob, Entries};

/// The media types of a layout's manifests.
pub(super) struct MediaTypes {
    pub(super) manifest: &'static str,
    pub(super) config: &'static str,
    pub(super) layer: &'static str,
}

/// One image as its manifest was written: what a layout names it by.
pub(super) struct WrittenImage<'a> {
    pub(super) config_digest: &'a str,
    pub(super) layers: &'a [&'a Layer],
    pub(super) manifest_digest: &'a str,
    pub(super) manifest_size: usize,
}

/// One archive layout of the export.
pub(super) trait Layout {
    fn media_types(&self) -> MediaTypes;
    /// The archive path of the blob whose sha256 is `hex`.
    fn blob_path(&self, hex: &str) -> String;
    /// Adds what names `image` (its manifest written as `written`) to `entries`.
    fn write_image(
        &mut self,
        image: &ExportImage,
        written: &WrittenImage<'_>,
        entries: &mut Entries,
    );
    /// Adds what describes the whole archive, once every image is written.
    fn finish(self: Box<Self>, entries: &mut Entries);
}

/// The tarball's contents in one layout.
pub(super) struct LaidOut {
    pub(super) entries: Entries,
    /// How many distinct blobs (layers, configs, manifests) it holds.
    pub(super) blobs: usize,
    /// Manifest digest per exported reference.
    pub(super) manifests: BTreeMap<String, String>,
}

/// `images` (with their `parts`, in the same order) laid out by `layout`: a manifest per image,
/// every blob stored once.
pub(super) fn lay_out(
    parts: &[ImageParts],
    images: &[ExportImage],
    mut layout: Box<dyn Layout>,
) -> LaidOut {
    let types = layout.media_types();
    let mut blobs: BTreeMap<String, Blob> = BTreeMap::new();
    for (layer, target) in parts.iter().flat_map(|p| &p.layers) {
        blobs.insert(layer.digest.clone(), Blob::File(target.clone()));
    }
    let mut entries = Entries::new();
    let mut manifests = BTreeMap::new();
    for (image, part) in images.iter().zip(parts) {
        let config_digest = sha256_digest(&part.config);
        blobs.insert(config_digest.clone(), Blob::Bytes(part.config.clone()));
        let layers: Vec<&Layer> = part.layers.iter().map(|(l, _)| l).collect();
        let manifest = manifest_bytes(&types, &part.config, &config_digest, &layers);
        let manifest_digest = sha256_digest(&manifest);
        manifests.insert(image.reference.clone(), manifest_digest.clone());
        let written = WrittenImage {
            config_digest: &config_digest,
            layers: &layers,
            manifest_digest: &manifest_digest,
            manifest_size: manifest.len(),
        };
        layout.write_image(image, &written, &mut entries);
        blobs.insert(manifest_digest, Blob::Bytes(manifest));
    }
    let count = blobs.len();
    for (digest, blob) in blobs {
        entries.insert(layout.blob_path(hex_of(&digest)), blob);
    }
    layout.finish(&mut entries);
    LaidOut {
        entries,
        blobs: count,
        manifests,
    }
}

/// An image manifest (schema 2) in the layout's media types, pretty-printed.
fn manifest_bytes(
    types: &MediaTypes,
    config: &[u8],
    config_digest: &str,
    layers: &[&Layer],
) -> Vec<u8> {
    let manifest = Manifest {
        schema_version: 2,
        media_type: types.manifest,
        config: Descriptor {
            media_type: types.config,
            size: config.len() as u64,
            digest: config_digest.to_string(),
        },
        layers: layers
            .iter()
            .map(|l| Descriptor {
                media_type: types.layer,
                size: l.size,
                digest: l.digest.clone(),
            })
            .collect(),
    };
    serde_json::to_vec_pretty(&manifest).expect("manifest serializes")
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `sha256:<hex>` → `<hex>`.
pub(super) fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
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
