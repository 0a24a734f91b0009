//! Writing to the terminal without ever failing the run: a closed stderr or stdout (a pipe whose
//! reader went away, `| head`) silences that stream; the work goes on and is kept.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static STDERR_GONE: AtomicBool = AtomicBool::new(false);
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);

/// `text` and a newline on stderr; nothing once stderr is gone.
pub fn eprintln(text: &str) {
    eprint(&format!("{text}\n"));
}

/// `text` on stderr; nothing once stderr is gone.
pub fn eprint(text: &str) {
    if STDERR_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut err = std::io::stderr().lock();
    if err
        .write_all(text.as_bytes())
        .and_then(|_| err.flush())
        .is_err()
    {
        STDERR_GONE.store(true, Ordering::Relaxed);
    }
}

/// `text` and a newline on stdout; nothing once stdout is gone.
pub fn println(text: &str) {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{text}").and_then(|_| out.flush()).is_err() {
        STDOUT_GONE.store(true, Ordering::Relaxed);
    }
}

/// Whether an error is a closed pipe (the reader went away), which ends output, not the run.
pub fn is_broken_pipe(err: &std::io::Error) -> bool {
    err.kind() == std::io::ErrorKind::BrokenPipe
}
