//! The tar writer: a layout's entries as one `.tar.gz`, sorted, with fixed mtimes and owners, so
//! the same entries give the same bytes; written beside its target and moved over it only when
//! complete.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::publish::export::error::ExportError;
use crate::publish::export::streams::Interruptible;

/// The bytes of one file of the tarball.
#[derive(Clone)]
pub(super) enum Blob {
    Bytes(Vec<u8>),
    File(PathBuf),
}

/// The files of the tarball by their path in it; the folders are implied.
pub(super) type Entries = BTreeMap<String, Blob>;

/// The folder `path` is in (`.` for a bare file name).
pub(super) fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes `entries` as the tarball `path`, through a temporary file beside it that replaces
/// `path` only once complete (a signal before that keeps the previous file); returns its size.
pub(super) fn write_file(path: &Path, entries: &Entries) -> Result<u64, ExportError> {
    let dir = folder_of(path);
    let temp = tempfile::Builder::new()
        .prefix(".kolla-export-")
        .suffix(".partial")
        .tempfile_in(dir)
        .map_err(|source| ExportError::Scratch {
            dir: dir.to_path_buf(),
            source,
        })?;
    let _tracked = crate::common::signals::track(temp.path());
    let written = write_tar_gz(temp.as_file(), entries).map_err(|source| ExportError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    // The last moment a signal keeps the previous file.
    crate::common::signals::check().map_err(ExportError::Stopped)?;
    temp.persist(path).map_err(|e| ExportError::Persist {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(written)
}

/// Sorted entries, directories implied, mtime 0, owner 0: the same images give the same bytes.
fn write_tar_gz(file: &File, entries: &Entries) -> io::Result<u64> {
    let counter = CountingWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        count: 0,
    };
    // The layers are gzip already and make up nearly all the bytes: compressing them again
    // costs a core for a few bytes saved. Stored deflate blocks keep it a valid `.tar.gz`
    // (`tar xzf` reads it) at the cost of a checksum pass.
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(counter, flate2::Compression::none());
    let mut builder = tar::Builder::new(gz);
    let mut dirs_done = BTreeSet::new();
    for (name, blob) in entries {
        crate::common::signals::check()?;
        // Parent directories first (sorted order puts them before their files), 0755.
        let mut prefix = String::new();
        for part in name
            .split('/')
            .collect::<Vec<_>>()
            .iter()
            .rev()
            .skip(1)
            .rev()
        {
            prefix.push_str(part);
            prefix.push('/');
            if dirs_done.insert(prefix.clone()) {
                let mut header = fixed_header(tar::EntryType::Directory, 0o755);
                header.set_size(0);
                builder.append_data(&mut header, &prefix, io::empty())?;
            }
        }
        let mut header = fixed_header(tar::EntryType::Regular, 0o644);
        match blob {
            Blob::Bytes(bytes) => {
                header.set_size(bytes.len() as u64);
                builder.append_data(&mut header, name, bytes.as_slice())?;
            }
            Blob::File(path) => {
                let file = File::open(path)?;
                header.set_size(file.metadata()?.len());
                let reader = Interruptible(BufReader::with_capacity(1 << 20, file));
                builder.append_data(&mut header, name, reader)?;
            }
        }
    }
    let gz = builder.into_inner()?;
    let mut counter = gz.finish()?;
    counter.flush()?;
    counter.inner.get_ref().sync_all()?;
    Ok(counter.count)
}

/// A header with what every entry of the export shares: mtime 0, owner 0.
fn fixed_header(entry_type: tar::EntryType, mode: u32) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(entry_type);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
}

/// A writer that counts what it passes on (the tarball's size).
struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_gz_is_sorted_deterministic_and_has_parent_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let mut entries = BTreeMap::new();
        entries.insert("b/x/link".to_string(), Blob::Bytes(b"sha256:1".to_vec()));
        entries.insert("a/data".to_string(), Blob::Bytes(vec![7; 10]));
        let write = |name: &str| {
            let path = dir.path().join(name);
            let file = File::create(&path).unwrap();
            write_tar_gz(&file, &entries).unwrap();
            std::fs::read(path).unwrap()
        };
        let first = write("one.tar.gz");
        assert_eq!(first, write("two.tar.gz"), "same entries, same bytes");
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(first.as_slice()));
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                assert_eq!(e.header().mtime().unwrap(), 0);
                e.path().unwrap().display().to_string()
            })
            .collect();
        assert_eq!(names, ["a/", "a/data", "b/", "b/x/", "b/x/link"]);
    }

    #[test]
    fn a_bare_file_name_is_in_the_current_folder() {
        assert_eq!(folder_of(Path::new("x.tar.gz")), Path::new("."));
        assert_eq!(folder_of(Path::new("out/x.tar.gz")), Path::new("out"));
    }
}
