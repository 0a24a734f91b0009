//! Why an export was not written.

use std::io;
use std::path::PathBuf;

use crate::engine::EngineError;

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
