//! Tar archives as kolla writes and reads them: a directory tarred under a top name
//! (`tarfile.add(dir, arcname=top, filter=...)`: the top directory first, then its entries depth
//! first in name order, owner root), the safety check before anything is unpacked, and the
//! unpacking of plugins and additions.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, Write};
use std::path::{Component, Path};

use crate::compat::sources::SourceTar;

/// What an archive's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    Tar,
    TarGz,
    /// A compression this tool does not read (bzip2, xz, zstd).
    Unreadable(&'static str),
    /// Not an archive (a binary, a gzip of something else...).
    Other,
}

/// Sniffs `path`: gzip (then a tar inside?), a ustar/GNU tar header, or other.
pub fn format_of(path: &Path) -> io::Result<ArchiveFormat> {
    let mut head = [0u8; 6];
    let n = read_up_to(&mut File::open(path)?, &mut head)?;
    let head = &head[..n];
    if head.starts_with(&[0x1f, 0x8b]) {
        let mut gz = flate2::read::GzDecoder::new(File::open(path)?);
        let mut block = [0u8; 512];
        let n = read_up_to(&mut gz, &mut block).unwrap_or(0);
        return Ok(if is_tar_header(&block[..n]) {
            ArchiveFormat::TarGz
        } else {
            ArchiveFormat::Other
        });
    }
    if head.starts_with(b"BZh") {
        return Ok(ArchiveFormat::Unreadable("bzip2"));
    }
    if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Ok(ArchiveFormat::Unreadable("xz"));
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Ok(ArchiveFormat::Unreadable("zstd"));
    }
    let mut block = [0u8; 512];
    let n = read_up_to(&mut File::open(path)?, &mut block)?;
    Ok(if is_tar_header(&block[..n]) {
        ArchiveFormat::Tar
    } else {
        ArchiveFormat::Other
    })
}

fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// A ustar or GNU header: the magic at 257 (v7 tars without one are not recognised).
fn is_tar_header(block: &[u8]) -> bool {
    block.len() == 512 && &block[257..262] == b"ustar"
}

fn open_tar(path: &Path, format: ArchiveFormat) -> io::Result<tar::Archive<Box<dyn Read>>> {
    let file = BufReader::new(File::open(path)?);
    let reader: Box<dyn Read> = match format {
        ArchiveFormat::TarGz => Box::new(flate2::read::GzDecoder::new(file)),
        _ => Box::new(file),
    };
    Ok(tar::Archive::new(reader))
}

/// Why an archive is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsafe {
    /// A member that would land outside the directory it is unpacked in.
    Member {
        member: String,
        reason: &'static str,
    },
    /// The archive cannot be read.
    Unreadable(String),
}

/// Checks every member of a tar (or tar.gz) archive: no absolute name, no `..` component, no
/// symbolic or hard link whose target leaves the directory the archive is unpacked in.
pub fn check_members(path: &Path, format: ArchiveFormat) -> Result<(), Unsafe> {
    let unreadable = |e: io::Error| Unsafe::Unreadable(e.to_string());
    let mut archive = open_tar(path, format).map_err(unreadable)?;
    for entry in archive.entries().map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let refuse = |reason| {
            Err(Unsafe::Member {
                member: name.clone(),
                reason,
            })
        };
        if name.starts_with('/') {
            return refuse("an absolute path");
        }
        if Path::new(&name)
            .components()
            .any(|c| c == Component::ParentDir)
        {
            return refuse("a `..` component");
        }
        let kind = entry.header().entry_type();
        if let Some(target) = entry.link_name_bytes() {
            let target = String::from_utf8_lossy(&target).into_owned();
            let escapes = if kind == tar::EntryType::Symlink {
                // Relative to the link's own directory.
                let base = Path::new(&name).parent().unwrap_or(Path::new(""));
                target.starts_with('/') || leaves_root(&base.join(&target))
            } else {
                // Hard links name another member, from the archive's root.
                target.starts_with('/') || leaves_root(Path::new(&target))
            };
            if escapes && matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
                return refuse("a link that points outside the archive");
            }
        }
    }
    Ok(())
}

/// Whether `path`, read from the root, climbs above it at some point.
fn leaves_root(path: &Path) -> bool {
    let mut depth: i64 = 0;
    for component in path.components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::RootDir | Component::Prefix(_) => return true,
            Component::CurDir => {}
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

/// Unpacks a checked archive into `dest` (modes and mtimes as archived; owners not set).
pub fn unpack(path: &Path, format: ArchiveFormat, dest: &Path) -> io::Result<()> {
    let mut archive = open_tar(path, format)?;
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    archive.unpack(dest)
}

/// Writes `dir` as a tar under the top name `top`, kolla's way: the directory entry first, then
/// each entry depth first in name order; owner root (uid/gid 0, names `root`), mtime 0, modes as
/// on disk (plus the owner-write bit for [`SourceTar::Normalized`]). Symbolic links stay links;
/// sockets and fifos are left out (as Python's tarfile does).
pub fn tar_directory<W: Write>(dir: &Path, top: &str, style: SourceTar, out: W) -> io::Result<W> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    add_tree(&mut builder, dir, top, style)?;
    builder.into_inner()
}

fn add_tree<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &Path,
    name: &str,
    style: SourceTar,
) -> io::Result<()> {
    crate::common::signals::check()?;
    let meta = std::fs::symlink_metadata(path).map_err(|e| with_path(e, path))?;
    let kind = meta.file_type();
    let mut header = tar::Header::new_gnu();
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_username("root")?;
    header.set_groupname("root")?;
    let mode = mode_of(&meta)
        | if style == SourceTar::Normalized {
            0o200
        } else {
            0
        };
    header.set_mode(mode);
    if kind.is_symlink() {
        let target = std::fs::read_link(path).map_err(|e| with_path(e, path))?;
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder.append_link(&mut header, name, &target)?;
    } else if kind.is_dir() {
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        builder.append_data(&mut header, name, io::empty())?;
        let mut children: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| with_path(e, path))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(|e| with_path(e, path))?;
        children.sort();
        for child in children {
            let child_name = format!("{name}/{}", child.to_string_lossy());
            add_tree(builder, &path.join(&child), &child_name, style)?;
        }
    } else if kind.is_file() {
        let file = File::open(path).map_err(|e| with_path(e, path))?;
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(meta.len());
        // Exactly the size stated in the header, even if the file grows meanwhile.
        builder.append_data(&mut header, name, file.take(meta.len()))?;
    }
    Ok(())
}

/// A file's permission bits, as a tar header and a build context carry them.
#[cfg(unix)]
pub(crate) fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
pub(crate) fn mode_of(meta: &std::fs::Metadata) -> u32 {
    if meta.is_dir() { 0o755 } else { 0o644 }
}

fn with_path(err: io::Error, path: &Path) -> io::Error {
    io::Error::new(err.kind(), format!("{}: {err}", path.display()))
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    file.rewind()?;
    let mut writer = crate::common::hashing::HashingWriter::new(io::sink());
    io::copy(&mut file, &mut writer)?;
    Ok(writer.finish().0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, Option<&str>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind, link) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_size(0);
            header.set_mode(0o644);
            // The tar crate refuses `..` in names it writes: put the raw bytes in the header.
            let raw = &mut header.as_old_mut().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(link) = link {
                let raw = &mut header.as_old_mut().linkname;
                raw[..link.len()].copy_from_slice(link.as_bytes());
            }
            header.set_cksum();
            builder.append(&header, io::empty()).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn check(bytes: &[u8]) -> Result<(), Unsafe> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(format_of(&path).unwrap(), ArchiveFormat::Tar);
        check_members(&path, ArchiveFormat::Tar)
    }

    #[test]
    fn members_that_leave_the_directory_are_refused() {
        use tar::EntryType::{Link, Regular, Symlink};
        assert_eq!(check(&tar_of(&[("a/b", Regular, None)])), Ok(()));
        assert_eq!(check(&tar_of(&[("a/l", Symlink, Some("../a/b"))])), Ok(()));
        for (entries, reason) in [
            (vec![("../x", Regular, None)], "a `..` component"),
            (vec![("a/../../x", Regular, None)], "a `..` component"),
            (vec![("/etc/passwd", Regular, None)], "an absolute path"),
            (
                vec![("a/l", Symlink, Some("../../etc"))],
                "a link that points outside the archive",
            ),
            (
                vec![("a/l", Symlink, Some("/etc/passwd"))],
                "a link that points outside the archive",
            ),
            (
                vec![("a/h", Link, Some("../outside"))],
                "a link that points outside the archive",
            ),
        ] {
            match check(&tar_of(&entries)) {
                Err(Unsafe::Member { reason: r, .. }) => assert_eq!(r, reason, "{entries:?}"),
                other => panic!("{entries:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_directory_is_tarred_as_kolla_does() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("b")).unwrap();
        std::fs::write(src.join("b/z"), "z").unwrap();
        std::fs::write(src.join("a"), "a").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(src.join("a"), std::fs::Permissions::from_mode(0o444))
                .unwrap();
            std::os::unix::fs::symlink("a", src.join("c")).unwrap();
        }
        for (style, a_mode) in [(SourceTar::Owner, 0o444), (SourceTar::Normalized, 0o644)] {
            let bytes = tar_directory(&src, "top", style, Vec::new()).unwrap();
            let mut archive = tar::Archive::new(bytes.as_slice());
            let entries: Vec<(String, u64, u64, String, u32)> = archive
                .entries()
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    let h = e.header();
                    (
                        e.path().unwrap().display().to_string(),
                        h.uid().unwrap(),
                        h.mtime().unwrap(),
                        h.username().unwrap().unwrap().to_string(),
                        h.mode().unwrap(),
                    )
                })
                .collect();
            let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
            assert_eq!(names, ["top", "top/a", "top/b", "top/b/z", "top/c"]);
            assert!(
                entries
                    .iter()
                    .all(|e| e.1 == 0 && e.2 == 0 && e.3 == "root")
            );
            assert_eq!(entries[1].4, a_mode, "{style:?}");
        }
    }
}
