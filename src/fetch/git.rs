//! `git` sources through the system `git`: a mirror per remote in the cache (`git clone
//! --mirror` once, then `git fetch` only when the reference is not already there as a tag or a
//! commit), and kolla's archive of a checkout: a clone checked out at the reference, its
//! `origin` removed, tarred (`.git` included, as kolla does) under
//! `<section>-archive-<reference with / as ->`. The archive of one commit is made once and kept.
//!
//! Blocking: run it on a blocking thread.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::common::hashing::HashingWriter;
use crate::compat::sources::SourceTar;
use crate::fetch::archive::tar_directory;
use crate::fetch::cache::FetchCache;

/// Why a git source failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitFailure {
    /// Cloning or fetching the remote failed (the network, a wrong URL).
    Remote(String),
    /// The remote has no such tag, branch or commit.
    Reference {
        reference: String,
    },
    /// Checking out or tarring failed.
    Checkout(String),
    Cache(String),
}

impl GitFailure {
    pub fn is_transient(&self) -> bool {
        matches!(self, GitFailure::Remote(_))
    }
}

impl std::fmt::Display for GitFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GitFailure::Remote(e) => write!(f, "git could not read the remote: {e}"),
            GitFailure::Reference { reference } => write!(
                f,
                "the remote has no tag, branch or commit `{reference}`: fix `reference`"
            ),
            GitFailure::Checkout(e) => write!(f, "cannot check out: {e}"),
            GitFailure::Cache(e) => write!(f, "cannot write the source cache: {e}"),
        }
    }
}

/// A checkout's archive in the blob store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitArchive {
    pub sha256: String,
    pub commit: String,
    /// Whether the remote was contacted (clone or fetch).
    pub contacted: bool,
}

/// The archive of `url` at `reference`, top directory `top`.
pub fn archive(
    cache: &FetchCache,
    url: &str,
    reference: &str,
    top: &str,
    style: SourceTar,
    timeout: Duration,
) -> Result<GitArchive, GitFailure> {
    // One mirror is updated by one thread at a time (two sections may share a remote).
    let lock = mirror_lock(url);
    let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
    let mirror = cache.git_mirror(url);
    let contacted = ensure_mirror(cache, url, &mirror, timeout)?;
    let (commit, contacted) = commit_of(&mirror, reference, contacted, timeout)?;
    let key = format!("git\n{url}\n{commit}\n{top}\n{style:?}");
    if let Some(sha256) = cache.indexed(&key) {
        return Ok(GitArchive {
            sha256,
            commit,
            contacted,
        });
    }
    let scratch = cache.scratch_dir().map_err(cache_failure)?;
    let checkout = scratch.path().join(top);
    check_out(&mirror, &checkout, reference, &commit, timeout)?;
    let sha256 = tar_checkout(cache, &checkout, top, style)?;
    cache.put_indexed(&key, &sha256).map_err(cache_failure)?;
    Ok(GitArchive {
        sha256,
        commit,
        contacted,
    })
}

/// Clones the mirror of `url` when the cache has none yet; true when it did.
fn ensure_mirror(
    cache: &FetchCache,
    url: &str,
    mirror: &Path,
    timeout: Duration,
) -> Result<bool, GitFailure> {
    if mirror.join("HEAD").is_file() {
        return Ok(false);
    }
    let scratch = cache.scratch_dir().map_err(cache_failure)?;
    let into = scratch.path().join("mirror.git");
    git(None, timeout)
        .args(["clone", "--mirror", "--quiet", "--", url])
        .arg(&into)
        .run()
        .map_err(remote)?;
    if let Err(e) = std::fs::rename(&into, mirror)
        && !mirror.join("HEAD").is_file()
    {
        return Err(GitFailure::Cache(format!("{}: {e}", mirror.display())));
    }
    Ok(true)
}

/// The commit `reference` names in the mirror, fetching the remote first unless the reference
/// is settled or the mirror was just cloned; and whether the remote has been contacted.
fn commit_of(
    mirror: &Path,
    reference: &str,
    contacted: bool,
    timeout: Duration,
) -> Result<(String, bool), GitFailure> {
    if let Some(commit) = settled(mirror, reference) {
        return Ok((commit, contacted));
    }
    if !contacted {
        git(Some(mirror), timeout)
            .args(["fetch", "--quiet", "--prune", "origin"])
            .run()
            .map_err(remote)?;
    }
    let commit = resolve(mirror, reference).ok_or_else(|| GitFailure::Reference {
        reference: reference.to_string(),
    })?;
    Ok((commit, true))
}

/// A clone of the mirror at `checkout`, checked out at `reference` (which must be `commit`), its
/// `origin` removed as kolla does.
fn check_out(
    mirror: &Path,
    checkout: &Path,
    reference: &str,
    commit: &str,
    timeout: Duration,
) -> Result<(), GitFailure> {
    git(None, timeout)
        .args(["clone", "--quiet", "--no-checkout", "--"])
        .arg(mirror)
        .arg(checkout)
        .run()
        .map_err(checkout_failure)?;
    // The reference as kolla checks it out (a branch gets its local branch), then the commit
    // resolved in the mirror must be what the checkout has.
    git(Some(checkout), timeout)
        .args(["checkout", "--quiet", reference, "--"])
        .run()
        .map_err(checkout_failure)?;
    let head = git(Some(checkout), timeout)
        .args(["rev-parse", "HEAD"])
        .output()
        .map_err(checkout_failure)?;
    if head != commit {
        return Err(GitFailure::Checkout(format!(
            "`{reference}` is {head} in the checkout but {commit} in the mirror"
        )));
    }
    git(Some(checkout), timeout)
        .args(["remote", "remove", "origin"])
        .run()
        .map_err(checkout_failure)
}

/// The checkout tarred under `top` into the blob store; its sha256.
fn tar_checkout(
    cache: &FetchCache,
    checkout: &Path,
    top: &str,
    style: SourceTar,
) -> Result<String, GitFailure> {
    let file = cache.scratch_file().map_err(cache_failure)?;
    let out = file.reopen().map_err(cache_failure)?;
    let writer = tar_directory(
        checkout,
        top,
        style,
        HashingWriter::new(std::io::BufWriter::new(out)),
    )
    .map_err(|e| GitFailure::Checkout(format!("cannot tar the checkout: {e}")))?;
    let (sha256, _, buffered) = writer.finish();
    buffered.into_inner().map_err(cache_failure)?;
    cache.store_blob(file, &sha256).map_err(cache_failure)?;
    Ok(sha256)
}

fn remote(error: GitCommandError) -> GitFailure {
    GitFailure::Remote(error.to_string())
}

fn checkout_failure(error: GitCommandError) -> GitFailure {
    GitFailure::Checkout(error.to_string())
}

fn cache_failure(error: impl std::fmt::Display) -> GitFailure {
    GitFailure::Cache(error.to_string())
}

fn mirror_lock(url: &str) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<std::collections::BTreeMap<String, Arc<Mutex<()>>>>> =
        OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    locks.entry(url.to_string()).or_default().clone()
}

/// A reference that cannot move once the mirror has it: a tag, or a full commit name.
fn settled(mirror: &Path, reference: &str) -> Option<String> {
    let is_commit = reference.len() == 40 && reference.chars().all(|c| c.is_ascii_hexdigit());
    let name = if is_commit {
        reference.to_string()
    } else {
        format!("refs/tags/{reference}")
    };
    resolve(mirror, &name)
}

/// The commit `reference` names in the mirror (a tag, a branch, or a commit).
fn resolve(mirror: &Path, reference: &str) -> Option<String> {
    git(Some(mirror), Duration::from_secs(60))
        .args(["rev-parse", "--verify", "--quiet", "--end-of-options"])
        .arg(format!("{reference}^{{commit}}"))
        .output()
        .ok()
}

/// A `git` command that never asks for a password and gives up on a stalled transfer.
struct Git(Command);

/// Why one `git` command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum GitCommandError {
    /// `git` could not be started at all.
    #[error("cannot run `git` ({0}): install git")]
    Spawn(String),
    /// `git` failed; its own last lines of stderr, joined by `; `.
    #[error("{0}")]
    Failed(String),
}

fn git(dir: Option<&Path>, timeout: Duration) -> Git {
    let mut command = Command::new("git");
    if let Some(dir) = dir {
        command.arg("-C").arg(dir);
    }
    command
        .args(["-c", "http.lowSpeedLimit=1"])
        .arg("-c")
        .arg(format!("http.lowSpeedTime={}", timeout.as_secs().max(1)))
        .args(["-c", "advice.detachedHead=false"])
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .stdin(Stdio::null());
    Git(command)
}

impl Git {
    fn args<I, S>(mut self, args: I) -> Git
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.0.args(args);
        self
    }

    fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Git {
        self.0.arg(arg);
        self
    }

    fn run(self) -> Result<(), GitCommandError> {
        self.output().map(drop)
    }

    /// Stdout, trimmed; an error carries git's own last lines.
    fn output(mut self) -> Result<String, GitCommandError> {
        let out = self
            .0
            .output()
            .map_err(|e| GitCommandError::Spawn(e.to_string()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last: Vec<&str> = stderr.lines().rev().take(3).collect();
            Err(GitCommandError::Failed(
                last.into_iter().rev().collect::<Vec<_>>().join("; "),
            ))
        }
    }
}
