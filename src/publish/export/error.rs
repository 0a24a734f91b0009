//! Why an export was not written, and how that becomes the crate's [`Error`].

use std::io;
use std::path::{Path, PathBuf};

use crate::common::error::Error;
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

impl ExportError {
    /// The crate's error for an export to `target` that failed this way: [`Error::Export`],
    /// which names the target, or [`Error::Interrupted`] when a signal stopped it.
    pub fn into_error(self, target: &Path) -> Error {
        match self {
            ExportError::Interrupted { signal } => Error::Interrupted { signal },
            other => Error::Export {
                path: target.to_path_buf(),
                source: Box::new(other),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_error_becomes_the_crate_error_naming_the_target() {
        let failed = ExportError::NotSaved {
            reference: "kolla/x:1".into(),
        };
        let error = failed.into_error(Path::new("out/registry.tar.gz"));
        // The text the run's notice has always shown.
        assert_eq!(
            error.to_string(),
            "exporting to `out/registry.tar.gz` failed: the engine did not return `kolla/x:1`"
        );
        assert_eq!(error.exit_code(), 1);
        let Error::Export { source, .. } = &error else {
            panic!("{error:?}");
        };
        assert!(
            matches!(
                source.downcast_ref::<ExportError>(),
                Some(ExportError::NotSaved { .. })
            ),
            "the export's own error is kept as the source"
        );
    }

    #[test]
    fn an_interrupted_export_is_an_interrupted_run() {
        let error = ExportError::Interrupted { signal: 15 }.into_error(Path::new("x.tar.gz"));
        assert!(
            matches!(error, Error::Interrupted { signal: 15 }),
            "{error:?}"
        );
        assert_eq!(error.exit_code(), 143);
    }
}
