//! SIGINT and SIGTERM. The first stops the work: every stage waits on [`wait`] or polls
//! [`check`], removes its containers, scratch directories and partial files, and the run ends
//! with the summary's status `interrupted` and the exit code 128 + the signal (130, 143). Targets
//! (an export tarball, the rendered tree, the summary) are only ever replaced by a rename, so the
//! previous output stays whole. A second signal exits at once, after removing the scratch paths
//! registered with [`track`].

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};
use std::time::Duration;

use tokio::sync::watch;

pub const SIGINT: i32 = 2;
pub const SIGTERM: i32 = 15;

static RECEIVED: AtomicI32 = AtomicI32::new(0);
static TRACKED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Held for reading while an owner removes its scratch path, for writing by the second signal's
/// exit: the exit waits for a removal under way instead of cutting it short, and ordinary
/// removals still run side by side.
static REMOVING: RwLock<()> = RwLock::new(());
static GROUPS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static CHANNEL: OnceLock<watch::Sender<i32>> = OnceLock::new();
static INSTALLED: OnceLock<()> = OnceLock::new();

fn channel() -> &'static watch::Sender<i32> {
    CHANNEL.get_or_init(|| watch::channel(0).0)
}

/// Starts listening for SIGINT and SIGTERM (once per process), on a thread of its own so that
/// the synchronous stages (rendering, writing the tree) are covered too.
pub fn install() {
    INSTALLED.get_or_init(|| {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("kolla-build-signals".into())
            .spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    let _ = ready_tx.send(());
                    return;
                };
                runtime.block_on(async move {
                    use tokio::signal::unix::{SignalKind, signal};
                    let (Ok(mut int), Ok(mut term)) = (
                        signal(SignalKind::interrupt()),
                        signal(SignalKind::terminate()),
                    ) else {
                        let _ = ready_tx.send(());
                        return;
                    };
                    let _ = ready_tx.send(());
                    loop {
                        let number = tokio::select! {
                            _ = int.recv() => SIGINT,
                            _ = term.recv() => SIGTERM,
                        };
                        received(number);
                    }
                });
            });
        if spawned.is_ok() {
            let _ = ready_rx.recv_timeout(Duration::from_secs(5));
        }
    });
}

fn received(number: i32) {
    if RECEIVED
        .compare_exchange(0, number, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
    {
        channel().send_replace(number);
    } else {
        // The second signal: the user wants out now. Scratch space goes; targets are whole.
        remove_tracked();
        std::process::exit(128 + number);
    }
}

/// The signal received, if any.
pub fn interrupted() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        n => Some(n),
    }
}

/// `SIGINT` or `SIGTERM`.
pub fn name(number: i32) -> &'static str {
    match number {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// An error for blocking code to return once a signal arrived.
pub fn check() -> std::io::Result<()> {
    match interrupted() {
        Some(n) => Err(std::io::Error::new(
            std::io::ErrorKind::Interrupted,
            format!("interrupted by {}", name(n)),
        )),
        None => Ok(()),
    }
}

/// Resolves when a signal arrives (never, if none does).
pub async fn wait() -> i32 {
    let mut rx = channel().subscribe();
    loop {
        let n = *rx.borrow_and_update();
        if n != 0 {
            return n;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Runs `work` unless a signal arrives first; then `work` is dropped (which stops it) and the
/// signal is returned.
pub async fn or_interrupt<F: Future>(work: F) -> Result<F::Output, i32> {
    tokio::select! {
        biased;
        n = wait() => Err(n),
        out = work => Ok(out),
    }
}

/// A scratch path removed by a second signal's immediate exit, and by its owner when dropped.
/// The removal happens here, while the path is still registered, so that an exit arriving
/// meanwhile waits for it rather than leaving half a tree behind. Declare it after the
/// `tempfile` value it tracks: it is dropped first, and the `tempfile` value then finds the path
/// gone (a persisted file was renamed away already, so nothing of it is touched).
#[must_use]
pub struct Tracked {
    path: PathBuf,
    /// Whether dropping removes the path: not once its owner has kept it ([`Tracked::release`]).
    remove: bool,
}

pub fn track(path: &Path) -> Tracked {
    let mut list = TRACKED.lock().unwrap_or_else(|p| p.into_inner());
    list.push(path.to_path_buf());
    Tracked {
        path: path.to_path_buf(),
        remove: true,
    }
}

impl Tracked {
    /// The owner keeps the path (to rename it into place): forgotten, never removed.
    pub fn release(mut self) {
        self.remove = false;
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.remove {
            let _removing = REMOVING.read().unwrap_or_else(|p| p.into_inner());
            remove_path(&self.path);
        }
        let mut list = TRACKED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = list.iter().rposition(|p| p == &self.path) {
            list.remove(i);
        }
    }
}

/// A child process group (debootstrap and what it runs) killed by a second signal's immediate
/// exit, before the scratch paths go; forgotten when dropped.
#[must_use]
pub struct TrackedGroup(u32);

pub fn track_group(pgid: u32) -> TrackedGroup {
    let mut list = GROUPS.lock().unwrap_or_else(|p| p.into_inner());
    list.push(pgid);
    TrackedGroup(pgid)
}

impl Drop for TrackedGroup {
    fn drop(&mut self) {
        let mut list = GROUPS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = list.iter().rposition(|p| *p == self.0) {
            list.remove(i);
        }
    }
}

/// SIGKILL to a process group: `kill` is the portable way without libc.
pub fn kill_group(pgid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stderr(std::process::Stdio::null())
        .status();
}

fn remove_tracked() {
    // Never released: the process exits holding it, so no owner starts a removal it cannot finish.
    let removing = REMOVING.write().unwrap_or_else(|p| p.into_inner());
    std::mem::forget(removing);
    for pgid in GROUPS.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        kill_group(*pgid);
    }
    let list = TRACKED.lock().unwrap_or_else(|p| p.into_inner());
    for path in list.iter() {
        remove_path(path);
    }
}

/// Removes a scratch file or folder. A killed process group may still finish a write it was in
/// when SIGKILL came (debootstrap's dpkg into the root filesystem), so a folder that is still
/// there is tried again, for at most a second.
fn remove_path(path: &Path) {
    for _ in 0..50 {
        match std::fs::symlink_metadata(path) {
            Err(_) => return,
            Ok(meta) if meta.is_dir() => {
                let _ = std::fs::remove_dir_all(path);
            }
            Ok(_) => {
                let _ = std::fs::remove_file(path);
            }
        }
        if std::fs::symlink_metadata(path).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tracked_path_is_removed_and_forgotten_by_its_owner_and_a_persisted_one_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("scratch");
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::fs::write(tree.join("a/b/file"), "x").unwrap();
        let tracked = track(&tree);
        assert!(TRACKED.lock().unwrap().contains(&tree));
        drop(tracked);
        assert!(!tree.exists(), "the tracked tree was removed");
        assert!(!TRACKED.lock().unwrap().contains(&tree));

        // A file persisted (renamed away) before its guard is dropped keeps its new name.
        let temp = tempfile::NamedTempFile::new_in(dir.path()).unwrap();
        let tracked = track(temp.path());
        let kept = dir.path().join("kept");
        temp.persist(&kept).unwrap();
        drop(tracked);
        assert!(kept.exists());

        // A folder its owner keeps (to rename it into place) stays, and is forgotten.
        let folder = tempfile::TempDir::new_in(dir.path()).unwrap();
        let tracked = track(folder.path());
        let kept = folder.keep();
        tracked.release();
        assert!(kept.is_dir());
        assert!(!TRACKED.lock().unwrap().contains(&kept));
    }
}
