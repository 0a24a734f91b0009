//! The byte stream the export reads through: one that stops once a signal arrived (the one that
//! hashes what passes is `common::hashing`).

use std::io::{self, Read};

/// A reader that fails once a signal arrived, so long copies stop soon after SIGINT/SIGTERM.
pub(super) struct Interruptible<R>(pub(super) R);

impl<R: Read> Read for Interruptible<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        crate::common::signals::check()?;
        self.0.read(buf)
    }
}
