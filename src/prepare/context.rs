//! Build contexts: the rendered Dockerfile plus the image's files as a deterministic tar stream
//! (sorted entries, mtime 0, uid/gid 0, modes normalised to 0644/0755), so the same inputs give
//! the same bytes: the engine's layer cache stays valid and the input hash is stable. Empty
//! directories (kolla's `patches/`) are entries of their own, so they are part of the hash too.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use crate::common::hashing::HashingWriter;

/// What goes into one image's context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextSpec {
    pub dockerfile: String,
    /// (path inside the context, file on disk), sorted by path.
    pub files: Vec<(String, PathBuf)>,
    /// Directories the context holds even when empty (kolla's `patches/`), sorted; none for
    /// most contexts, whose bytes are then those of a context without the field.
    pub dirs: Vec<String>,
}

impl ContextSpec {
    pub fn new(dockerfile: String, mut files: Vec<(String, PathBuf)>) -> ContextSpec {
        files.sort();
        files.dedup_by(|a, b| a.0 == b.0);
        ContextSpec {
            dockerfile,
            files,
            dirs: Vec::new(),
        }
    }

    /// The same context with these directories in it (sorted, each once).
    pub fn with_dirs(mut self, dirs: &[String]) -> ContextSpec {
        self.dirs.extend(dirs.iter().cloned());
        self.dirs.sort();
        self.dirs.dedup();
        self
    }

    /// Writes the tar stream to `out`. The Dockerfile comes first, then the directories, then
    /// the files by path.
    pub fn write_tar<W: Write>(&self, out: W) -> io::Result<W> {
        let mut builder = tar::Builder::new(out);
        builder.mode(tar::HeaderMode::Deterministic);
        append(
            &mut builder,
            "Dockerfile",
            0o644,
            self.dockerfile.len() as u64,
            self.dockerfile.as_bytes(),
        )?;
        for dir in &self.dirs {
            append_dir(&mut builder, dir)?;
        }
        for (path, source) in &self.files {
            crate::common::signals::check()?;
            // A symlink is sent as a symlink (as the docker CLI does), never its target's bytes:
            // a link to a file outside the tree does not leak that file into the image.
            let link = std::fs::symlink_metadata(source).map_err(|e| with_path(e, source))?;
            if link.file_type().is_symlink() {
                let target = std::fs::read_link(source).map_err(|e| with_path(e, source))?;
                let mut header = header(tar::EntryType::Symlink, 0o777, 0);
                builder.append_link(&mut header, path, &target)?;
                continue;
            }
            let file = std::fs::File::open(source).map_err(|e| with_path(e, source))?;
            let meta = file.metadata().map_err(|e| with_path(e, source))?;
            let mode = if is_executable(&meta) { 0o755 } else { 0o644 };
            append(&mut builder, path, mode, meta.len(), file)?;
        }
        builder.into_inner()
    }

    /// sha256 of the tar stream, hex.
    pub fn digest(&self) -> io::Result<String> {
        let hasher = self.write_tar(HashingWriter::new(io::sink()))?;
        Ok(hasher.finish().0)
    }
}

fn append<R: Read>(
    builder: &mut tar::Builder<impl Write>,
    path: &str,
    mode: u32,
    size: u64,
    data: R,
) -> io::Result<()> {
    let mut header = header(tar::EntryType::Regular, mode, size);
    // A file that changes size while being read would corrupt the stream: read exactly `size`.
    builder.append_data(&mut header, path, data.take(size))
}

/// A header of the context's reproducible kind: owner root, mtime 0.
fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
}

/// A directory entry, named with a trailing `/` as the docker CLI names them.
fn append_dir(builder: &mut tar::Builder<impl Write>, path: &str) -> io::Result<()> {
    let mut header = header(tar::EntryType::Directory, 0o755, 0);
    let name = format!("{}/", path.trim_end_matches('/'));
    builder.append_data(&mut header, name, io::empty())
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_: &std::fs::Metadata) -> bool {
    false
}

fn with_path(err: io::Error, path: &std::path::Path) -> io::Error {
    io::Error::new(err.kind(), format!("{}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &std::path::Path) -> ContextSpec {
        std::fs::write(dir.join("b.sh"), "echo b\n").unwrap();
        std::fs::write(dir.join("a.conf"), "a=1\n").unwrap();
        ContextSpec::new(
            "FROM x\n".into(),
            vec![
                ("b.sh".into(), dir.join("b.sh")),
                ("a.conf".into(), dir.join("a.conf")),
            ],
        )
    }

    #[test]
    fn tar_is_sorted_and_normalised() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = spec(dir.path()).write_tar(Vec::new()).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let entries: Vec<(String, u64, u64, u32)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mtime().unwrap(),
                    h.uid().unwrap(),
                    h.mode().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("Dockerfile".into(), 0, 0, 0o644),
                ("a.conf".into(), 0, 0, 0o644),
                ("b.sh".into(), 0, 0, 0o644)
            ]
        );
    }

    #[test]
    fn digest_ignores_mtime_but_sees_content_and_exec_bit() {
        let dir = tempfile::tempdir().unwrap();
        let s = spec(dir.path());
        let first = s.digest().unwrap();
        std::fs::write(dir.path().join("a.conf"), "a=1\n").unwrap(); // new mtime, same bytes
        assert_eq!(s.digest().unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                dir.path().join("b.sh"),
                std::fs::Permissions::from_mode(0o755),
            )
            .unwrap();
            assert_ne!(s.digest().unwrap(), first);
        }
        std::fs::write(dir.path().join("a.conf"), "a=2\n").unwrap();
        assert_ne!(s.digest().unwrap(), first);
    }

    #[test]
    fn an_empty_directory_is_an_entry_of_its_own_after_the_dockerfile() {
        let dir = tempfile::tempdir().unwrap();
        let s = spec(dir.path()).with_dirs(&["patches".to_string()]);
        let bytes = s.write_tar(Vec::new()).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let entries: Vec<(String, tar::EntryType, u64, u64, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.entry_type(),
                    h.mtime().unwrap(),
                    h.uid().unwrap(),
                    h.mode().unwrap(),
                    h.size().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries[..2],
            [
                ("Dockerfile".into(), tar::EntryType::Regular, 0, 0, 0o644, 7),
                ("patches/".into(), tar::EntryType::Directory, 0, 0, 0o755, 0),
            ]
        );
        assert_eq!(entries.len(), 4);
    }

    #[test]
    fn a_directory_changes_the_digest_and_no_directory_leaves_it_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let plain = spec(dir.path());
        let first = plain.digest().unwrap();
        // No directories: the very bytes of a context made before directories existed (this
        // digest is what the code without them gave), so warm caches stay warm.
        assert_eq!(
            plain.clone().with_dirs(&[]).digest().unwrap(),
            "fade0e922d76d8a146481409bfc30a1fc4ec7d9de5201491f5ecb99cf1764200"
        );
        let with = plain.with_dirs(&["patches".to_string(), "patches".to_string()]);
        assert_eq!(with.dirs, ["patches"]);
        assert_ne!(with.digest().unwrap(), first);
        assert_eq!(with.digest().unwrap(), with.digest().unwrap());
    }
}

/// Extra files some images get besides their own (the CA certificates of `base`).
#[derive(Debug, Clone, Default)]
pub struct ExtraFiles(pub std::collections::BTreeMap<String, Vec<(String, PathBuf)>>);
