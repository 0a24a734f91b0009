//! File writes that leave a whole file or none.

use std::io::Write;
use std::path::Path;

use crate::common::error::{Error, Result};

/// Writes a whole file or nothing: a temporary file beside it, renamed into place.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let err = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    file.write_all(bytes).map_err(err)?;
    file.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}
