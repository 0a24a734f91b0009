//! The source cache, under `<cache>/sources/`:
//!
//! ```text
//! blobs/sha256/<hex>        every archive, named by its sha256 (downloads, git and directory
//!                           tars, plugins-archive / additions-archive)
//! url/<sha256 of url>.json  a download's validators (ETag, Last-Modified) and its blob
//! git/<sha256 of url>.git   a `git clone --mirror` of a remote, fetched into when needed
//! index/<sha256 of key>     the blob made from given inputs: a checkout's tar (remote, commit,
//!                           top name, tar style), a plugins-archive (its archives' digests)
//! trees/<hex>/              the unpacked plugins/ or additions/ tree of the archive <hex>
//! tmp/                      work in progress; renamed into place only when whole and checked
//! ```
//!
//! Nothing is ever written in place: an entry is written under `tmp/` and renamed, so an
//! interrupted fetch leaves no partial archive and no entry pointing at one.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The source cache of one cache directory.
#[derive(Debug, Clone)]
pub struct FetchCache {
    root: PathBuf,
}

/// What a download's cache entry remembers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlEntry {
    pub url: String,
    pub sha256: String,
    #[serde(default)]
    pub etag: Option<String>,
    #[serde(default)]
    pub last_modified: Option<String>,
}

impl FetchCache {
    /// The cache under `cache_dir` (`--cache-dir`): its `sources/` folder.
    pub fn new(cache_dir: &Path) -> FetchCache {
        FetchCache {
            root: cache_dir.join("sources"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the folders; the first error names the folder.
    pub fn create(&self) -> io::Result<()> {
        for dir in ["blobs/sha256", "url", "git", "index", "trees", "tmp"] {
            let path = self.root.join(dir);
            std::fs::create_dir_all(&path).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot create `{}`: {e}", path.display()))
            })?;
        }
        Ok(())
    }

    pub fn blob(&self, sha256: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(sha256)
    }

    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A new scratch file under `tmp/`, removed when dropped unless persisted (and by a second
    /// Ctrl-C's immediate exit).
    pub fn scratch_file(&self) -> io::Result<ScratchFile> {
        let file = tempfile::NamedTempFile::new_in(self.tmp())?;
        let tracked = crate::common::signals::track(file.path());
        Ok(ScratchFile {
            file,
            _tracked: tracked,
        })
    }

    /// A new scratch folder under `tmp/`, removed when dropped (and by a second Ctrl-C's
    /// immediate exit).
    pub fn scratch_dir(&self) -> io::Result<ScratchDir> {
        let dir = tempfile::TempDir::new_in(self.tmp())?;
        let tracked = crate::common::signals::track(dir.path());
        Ok(ScratchDir { dir, tracked })
    }

    /// Moves a whole, checked scratch file into the blob store under its digest. A blob already
    /// there has the same bytes (it has the same name), so it is kept.
    pub fn store_blob(&self, scratch: ScratchFile, sha256: &str) -> io::Result<PathBuf> {
        let path = self.blob(sha256);
        if !path.exists() {
            scratch.file.persist(&path).map_err(|e| e.error)?;
        }
        Ok(path)
    }

    fn url_entry_path(&self, url: &str) -> PathBuf {
        self.root.join("url").join(format!("{}.json", key_of(url)))
    }

    /// A download's entry, when it has one whose blob is still there.
    pub fn url_entry(&self, url: &str) -> Option<UrlEntry> {
        let text = std::fs::read_to_string(self.url_entry_path(url)).ok()?;
        let entry: UrlEntry = serde_json::from_str(&text).ok()?;
        (entry.url == url && self.blob(&entry.sha256).is_file()).then_some(entry)
    }

    pub fn put_url_entry(&self, entry: &UrlEntry) -> io::Result<()> {
        let text = serde_json::to_string_pretty(entry).map_err(io::Error::other)?;
        self.write_atomically(&self.url_entry_path(&entry.url), text.as_bytes())
    }

    /// Where the mirror of a git remote lives.
    pub fn git_mirror(&self, url: &str) -> PathBuf {
        self.root.join("git").join(format!("{}.git", key_of(url)))
    }

    /// The blob made before from the inputs `key` names, when it is still there.
    pub fn indexed(&self, key: &str) -> Option<String> {
        let sha = std::fs::read_to_string(self.root.join("index").join(key_of(key))).ok()?;
        let sha = sha.trim().to_string();
        self.blob(&sha).is_file().then_some(sha)
    }

    pub fn put_indexed(&self, key: &str, sha256: &str) -> io::Result<()> {
        let path = self.root.join("index").join(key_of(key));
        self.write_atomically(&path, sha256.as_bytes())
    }

    /// The unpacked tree of the archive `sha256`.
    pub fn tree(&self, sha256: &str) -> PathBuf {
        self.root.join("trees").join(sha256)
    }

    fn write_atomically(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        use std::io::Write;
        let mut scratch = self.scratch_file()?;
        scratch.file.write_all(bytes)?;
        scratch.file.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

/// A scratch file of the cache.
pub struct ScratchFile {
    pub file: tempfile::NamedTempFile,
    _tracked: crate::common::signals::Tracked,
}

impl ScratchFile {
    /// Another handle on the file, to write it.
    pub fn reopen(&self) -> io::Result<std::fs::File> {
        self.file.reopen()
    }
}

/// A scratch folder of the cache.
pub struct ScratchDir {
    dir: tempfile::TempDir,
    tracked: crate::common::signals::Tracked,
}

impl ScratchDir {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Keeps the folder (the caller renames it into place).
    pub fn keep(self) -> PathBuf {
        self.tracked.release();
        self.dir.keep()
    }
}

/// A file name for any text (a URL, a key): its sha256, hex.
pub fn key_of(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}
