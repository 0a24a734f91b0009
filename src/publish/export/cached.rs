//! What an incremental export (`--cache-dir`) knows of the images without the engine's save:
//! the images whose config and layers the export cache holds whole, and those whose missing
//! layers the loopback registry they were pushed to can give (`from_registry`).

use std::path::Path;

use crate::engine::{Engine, ImageFacts};
use crate::publish::blob_cache::BlobCache;
use crate::publish::export::error::ExportError;
use crate::publish::export::from_registry;
use crate::publish::export::image::{ExportImage, ImageParts, Layer};

/// What the cache and the loopback registry gave: the parts of each image (`None` for those
/// left to the engine's save), in the order of the images, and how many came from the registry.
pub(super) struct Known {
    pub(super) parts: Vec<Option<ImageParts>>,
    pub(super) from_registry: usize,
}

/// The parts of `images` known without the engine's save.
pub(super) async fn known_parts<E: Engine>(
    engine: &E,
    images: &[ExportImage],
    cache: &BlobCache,
    scratch: &Path,
) -> Result<Known, ExportError> {
    // What the cache already holds, image by image (config and every layer, by diff ID).
    let mut parts: Vec<Option<ImageParts>> = vec![None; images.len()];
    let mut missing = Vec::new();
    for (n, image) in images.iter().enumerate() {
        match lookup(engine, cache, &image.reference).await? {
            Lookup::Whole(whole) => parts[n] = Some(whole),
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
    let mut from_registry = 0;
    if !missing.is_empty() {
        let (cache, scratch) = (cache.clone(), scratch.to_path_buf());
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
        for (n, found) in found {
            parts[n] = Some(found);
        }
    }
    Ok(Known {
        parts,
        from_registry,
    })
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
async fn lookup<E: Engine>(
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
        layers.push(Layer::cached(hit));
    }
    Ok(Lookup::Whole(ImageParts { config, layers }))
}
