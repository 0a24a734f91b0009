//! The export's cache of compressed layers (and of image configs), so that a nightly export
//! recompresses only the layers that changed since the last one.
//!
//! Layout under the cache directory (`--cache-dir`):
//! ```text
//! export/layers/<compression>/<diff-id hex>.gz     the compressed layer
//! export/layers/<compression>/<diff-id hex>.json   {"digest": "sha256:..", "size": N}
//! export/configs/<image-id hex>.json               the image config, byte for byte
//! ```
//! A layer is keyed by its uncompressed digest (the image's `RootFS` diff ID) and the compression
//! settings, which fix the compressed bytes (gzip through the same deflate implementation, level
//! and header are deterministic). A config is keyed by the image ID, which is its sha256, and is
//! checked against it when read. Every file is written to a temporary name in its folder and
//! renamed into place, the layer before its record, so a reader never sees half an entry; an
//! entry whose blob is missing or has another size than recorded is a miss.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The compression every exported layer gets: part of the cache key, so that a change of level
/// or of deflate implementation never serves blobs made with the old settings. Bump the version
/// when `export::layers::compress` changes its output.
pub const COMPRESSION: &str = "gzip-zlibrs-level6-mtime0-v1";

/// Entries not used for this long are removed after an export.
pub const KEEP_UNUSED: Duration = Duration::from_secs(14 * 24 * 3600);

#[derive(Debug, Clone)]
pub struct BlobCache {
    layers: PathBuf,
    configs: PathBuf,
}

/// A compressed layer found in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedLayer {
    pub path: PathBuf,
    /// `sha256:<hex>` of the compressed bytes.
    pub digest: String,
    pub size: u64,
}

#[derive(Serialize, Deserialize)]
struct Record {
    digest: String,
    size: u64,
}

impl BlobCache {
    /// Opens (creating) the cache under `dir`.
    pub fn open(dir: &Path) -> io::Result<BlobCache> {
        let layers = dir.join("export").join("layers").join(COMPRESSION);
        let configs = dir.join("export").join("configs");
        for d in [&layers, &configs] {
            std::fs::create_dir_all(d).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot create the export cache `{}`: {e} (point --cache-dir at a writable directory)",
                        d.display()
                    ),
                )
            })?;
        }
        Ok(BlobCache { layers, configs })
    }

    fn key(hex: &str) -> Option<&str> {
        let hex = hex.strip_prefix("sha256:").unwrap_or(hex);
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
    }

    /// The compressed layer whose uncompressed digest is `diff_id`, if cached and whole.
    pub fn layer(&self, diff_id: &str) -> Option<CachedLayer> {
        let key = Self::key(diff_id)?;
        let record = self.layers.join(format!("{key}.json"));
        let record: Record = serde_json::from_slice(&std::fs::read(&record).ok()?).ok()?;
        let path = self.layers.join(format!("{key}.gz"));
        let meta = std::fs::metadata(&path).ok()?;
        if meta.len() != record.size || Self::key(&record.digest).is_none() {
            return None;
        }
        touch(&path);
        Some(CachedLayer {
            path,
            digest: record.digest,
            size: record.size,
        })
    }

    /// Whether the layer whose uncompressed digest is `diff_id` is cached (without marking it
    /// used).
    pub fn has_layer(&self, diff_id: &str) -> bool {
        Self::key(diff_id).is_some_and(|key| self.layers.join(format!("{key}.json")).is_file())
    }

    /// Stores the compressed layer at `compressed` under `diff_id` (hard-linked when on the same
    /// filesystem, else copied); returns the cached entry.
    pub fn put_layer(
        &self,
        diff_id: &str,
        compressed: &Path,
        digest: &str,
        size: u64,
    ) -> io::Result<CachedLayer> {
        let key = Self::key(diff_id)
            .ok_or_else(|| io::Error::other(format!("not a sha256 digest: `{diff_id}`")))?;
        let path = self.layers.join(format!("{key}.gz"));
        let temp = tempfile::Builder::new()
            .prefix(".layer-")
            .tempfile_in(&self.layers)?
            .into_temp_path();
        std::fs::remove_file(&temp)?;
        if std::fs::hard_link(compressed, &temp).is_err() {
            std::fs::copy(compressed, &temp)?;
        }
        temp.persist(&path).map_err(|e| e.error)?;
        let record = serde_json::to_vec(&Record {
            digest: digest.to_string(),
            size,
        })
        .expect("record serializes");
        write_atomically(&self.layers.join(format!("{key}.json")), &record)?;
        Ok(CachedLayer {
            path,
            digest: digest.to_string(),
            size,
        })
    }

    /// The config of image `id` (`sha256:<hex>`), if cached and matching its digest.
    pub fn config(&self, id: &str) -> Option<Vec<u8>> {
        let key = Self::key(id)?;
        let path = self.configs.join(format!("{key}.json"));
        let bytes = std::fs::read(&path).ok()?;
        if hex::encode(Sha256::digest(&bytes)) != key {
            return None;
        }
        touch(&path);
        Some(bytes)
    }

    /// Stores an image config under its own digest.
    pub fn put_config(&self, bytes: &[u8]) -> io::Result<()> {
        let key = hex::encode(Sha256::digest(bytes));
        write_atomically(&self.configs.join(format!("{key}.json")), bytes)
    }

    /// Removes entries not used for `keep`; returns how many files went.
    pub fn prune(&self, keep: Duration) -> usize {
        let now = SystemTime::now();
        let mut removed = 0;
        for dir in [&self.layers, &self.configs] {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .is_some_and(|age| age > keep);
                // The layer's record first: a reader then sees a miss, never a record without
                // its blob (which is a miss too).
                if old && std::fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        removed
    }
}

/// Marks an entry as used now (pruning goes by modification time).
fn touch(path: &Path) {
    if let Ok(file) = File::options().append(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    file.write_all(bytes)?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn a_layer_round_trips_and_a_torn_entry_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        assert_eq!(cache.layer(ID), None);
        assert!(!cache.has_layer(ID));
        let blob = dir.path().join("blob");
        std::fs::write(&blob, b"compressed").unwrap();
        let put = cache.put_layer(ID, &blob, "sha256:ab", 10).unwrap();
        // Record digests must be sha256 digests: this one is not, so it is a miss.
        assert_eq!(cache.layer(ID), None);
        let digest = format!("sha256:{}", "2".repeat(64));
        let put2 = cache.put_layer(ID, &blob, &digest, 10).unwrap();
        assert_eq!(put.path, put2.path);
        assert_eq!(cache.layer(ID), Some(put2.clone()));
        assert!(cache.has_layer(ID));
        assert_eq!(std::fs::read(&put2.path).unwrap(), b"compressed");
        // A blob of another size than its record (a torn copy) is a miss.
        std::fs::write(&put2.path, b"short").unwrap();
        assert_eq!(cache.layer(ID), None);
        assert_eq!(cache.layer("not-a-digest"), None);
    }

    #[test]
    fn configs_are_checked_against_their_digest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let config = br#"{"architecture":"amd64"}"#;
        cache.put_config(config).unwrap();
        let id = format!("sha256:{}", hex::encode(Sha256::digest(config)));
        assert_eq!(cache.config(&id).as_deref(), Some(&config[..]));
        let path = dir
            .path()
            .join("export/configs")
            .join(format!("{}.json", &id[7..]));
        std::fs::write(path, b"tampered").unwrap();
        assert_eq!(cache.config(&id), None);
    }

    #[test]
    fn prune_removes_only_old_entries() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        cache.put_config(b"{}").unwrap();
        cache.put_config(b"[]").unwrap();
        assert_eq!(cache.prune(Duration::from_secs(3600)), 0);
        let old = dir
            .path()
            .join("export/configs")
            .join(format!("{}.json", hex::encode(Sha256::digest(b"{}"))));
        File::options()
            .append(true)
            .open(&old)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(7200))
            .unwrap();
        assert_eq!(cache.prune(Duration::from_secs(3600)), 1);
        assert!(!old.exists());
    }
}
