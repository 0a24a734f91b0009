//! The byte streams the export reads and writes through: one that hashes what passes, one that
//! stops once a signal arrived.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

/// A writer that hashes (sha256) and counts what it passes on.
pub(super) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(super) fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// The hex sha256 and size of what was written, and the inner writer (to flush).
    pub(super) fn finish(self) -> (String, u64, W) {
        (hex::encode(self.hasher.finalize()), self.size, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that fails once a signal arrived, so long copies stop soon after SIGINT/SIGTERM.
pub(super) struct Interruptible<R>(pub(super) R);

impl<R: Read> Read for Interruptible<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        crate::common::signals::check()?;
        self.0.read(buf)
    }
}
