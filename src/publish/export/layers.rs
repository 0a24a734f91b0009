//! A layer's bytes as the export holds them before compressing, and the compression itself:
//! fixed settings (mtime 0, default level), so the same layer always gives the same blob, which
//! is what lets the export cache (`--cache-dir`) stand in for it.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::common::hashing::HashingWriter;
use crate::publish::export::image::Layer;
use crate::publish::export::streams::Interruptible;

/// A file of the engine's image archive, or a layer read from a registry: where its bytes are.
#[derive(Clone)]
pub(super) enum Stored {
    Memory(Vec<u8>),
    /// A file on disk, with the sha256 of its content.
    Disk {
        path: PathBuf,
        sha256: String,
    },
    /// A layer the cache holds compressed already: its bytes were hashed and dropped.
    Cached {
        sha256: String,
    },
}

impl Stored {
    fn open(&self) -> io::Result<Box<dyn Read + '_>> {
        Ok(match self {
            Stored::Memory(bytes) => Box::new(bytes.as_slice()),
            Stored::Disk { path, .. } => Box::new(BufReader::new(File::open(path)?)),
            Stored::Cached { sha256 } => {
                return Err(io::Error::other(format!(
                    "layer sha256:{sha256} was taken from the export cache, its bytes were not kept"
                )));
            }
        })
    }
}

/// Gzips a layer (unless it already is) into `target`, returning its digest and size.
pub(super) fn compress(stored: &Stored, target: &Path) -> io::Result<Layer> {
    let mut source = Interruptible(stored.open()?);
    let mut head = [0u8; 2];
    let n = read_full(&mut source, &mut head)?;
    let mut source = io::Cursor::new(head[..n].to_vec()).chain(source);
    let out = HashingWriter::new(BufWriter::with_capacity(1 << 20, File::create(target)?));
    let (digest, size) = if head[..n] == [0x1f, 0x8b] {
        let mut out = out;
        io::copy(&mut source, &mut out)?;
        let (digest, size, mut inner) = out.finish();
        inner.flush()?;
        (digest, size)
    } else {
        let mut gz = flate2::GzBuilder::new()
            .mtime(0)
            .write(out, flate2::Compression::default());
        io::copy(&mut source, &mut gz)?;
        let (digest, size, mut inner) = gz.finish()?.finish();
        inner.flush()?;
        (digest, size)
    };
    Ok(Layer {
        digest: format!("sha256:{digest}"),
        size,
    })
}

fn read_full(source: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match source.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compress_is_deterministic_and_keeps_gzip_as_is() {
        let dir = tempfile::tempdir().unwrap();
        let stored = Stored::Memory(b"layer bytes".repeat(1000));
        let a = compress(&stored, &dir.path().join("a")).unwrap();
        let b = compress(&stored, &dir.path().join("b")).unwrap();
        assert_eq!((a.digest.clone(), a.size), (b.digest, b.size));
        let gz = Stored::Memory(std::fs::read(dir.path().join("a")).unwrap());
        let again = compress(&gz, &dir.path().join("c")).unwrap();
        assert_eq!(
            again.digest, a.digest,
            "an already gzipped layer is stored unchanged"
        );
    }
}
