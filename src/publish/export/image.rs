//! What the export is asked for (the images, by reference and by the name they are served as)
//! and what it gathers of each before writing: its config and its compressed layers.

use std::path::PathBuf;

use crate::publish::blob_cache::CachedLayer;

/// One image to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportImage {
    /// The image's reference in the engine.
    pub reference: String,
    /// The repository it is served as (`kolla/debian-binary-keystone`).
    pub repository: String,
    pub tag: String,
}

/// One image's blobs: its config, and its layers compressed (digest, size, file), in order.
#[derive(Clone)]
pub(super) struct ImageParts {
    pub(super) config: Vec<u8>,
    pub(super) layers: Vec<(Layer, PathBuf)>,
}

/// A compressed layer as the manifests name it.
#[derive(Clone)]
pub(super) struct Layer {
    /// `sha256:<hex>` of the compressed bytes.
    pub(super) digest: String,
    pub(super) size: u64,
}

impl Layer {
    /// A layer the export cache holds compressed, and its file there.
    pub(super) fn cached(hit: CachedLayer) -> (Layer, PathBuf) {
        let layer = Layer {
            digest: hit.digest,
            size: hit.size,
        };
        (layer, hit.path)
    }
}
