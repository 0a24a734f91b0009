//! The fetch stage: each image's sources, as kolla's configuration names them
//! ([`crate::compat::sources`]), fetched into a content-addressed cache and handed back as the
//! extra files of the image's build context, with the digest of each archive for its input hash.
//! It knows nothing of engines; it runs between prepare and the builds.
//!
//! What lands in an image's context is kolla's (`kolla/image/tasks.py`, `process_source` and
//! `make_an_archive`):
//! - `<section>-archive` for the image's own section: a download as it is, a git checkout tarred
//!   under `<section>-archive-<reference with / as ->` (`.git` included), a local directory
//!   tarred under its own name, or a local file as it is;
//! - the same `<section>-archive` for each enabled plugin and addition; their archives (tar or
//!   tar.gz) are unpacked into `plugins/` and `additions/`, which are tarred again as
//!   `plugins-archive` and `additions-archive` under the top name `plugins` / `additions`;
//!   every image has both, with an empty top directory when it has none.
//!
//! Tars are owner root, mtime 0, entries in name order (kolla 23's `normalize_tarinfo`; kolla
//! 20-22 keep the mtime, see `source_tar` in `compat/kolla.toml`). kolla's git clone folder,
//! left in its context beside the archive, is not part of ours: no template reads it.
//!
//! Beyond kolla: downloads are revalidated (ETag / Last-Modified) and not downloaded again when
//! unchanged, git remotes are mirrored, fetches run in parallel (bounded, with retries and
//! timeouts), every archive about to be unpacked is checked for members that would land outside
//! it, nothing half-written ever becomes a cache entry, and a failure is one error naming the
//! image, the section and the location, for that image alone (its siblings go on).
//!
//! Use (from build/, after `prepare()` and before `plan()`):
//! 1. requests: [`crate::compat::sources::resolve`] over the selected images, with
//!    [`crate::compat::sources::defaults_for`] and the raw INI sections; its `errors` fail their
//!    images like a failed fetch;
//! 2. `fetch_sources(&requests, &FetchCache::new(cache_dir), &opts, reporter).await`;
//! 3. per image, `Ok(files)`: `files.context_files()` extend that image's entry of
//!    [`crate::prepare::context::ExtraFiles`], so `plan()` puts them in the context and its
//!    digest (the input hash) covers them; `files.archives` name each archive's sha256 for
//!    anything that wants them by name (provenance); `files.directories()` are the empty
//!    directories kolla's context has (`plugins/` without plugins), which `ContextSpec` does not
//!    write yet. `Err(e)`: the image and its descendants fail with `e`, siblings build.

pub mod archive;
pub mod cache;
pub mod git;
pub mod http;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;

use crate::common::hashing::HashingWriter;
use crate::compat::sources::{ImageSources, Source, SourceKind, SourceTar};
use crate::fetch::archive::{ArchiveFormat, Unsafe, mode_of};
use crate::fetch::git::GitFailure;
use crate::fetch::http::{HttpClient, UrlFailure};
use crate::report::event::{Notice, Reporter};

pub use crate::fetch::cache::FetchCache;

/// What one image asks for: its section, plugins and additions.
pub type SourceRequest = ImageSources;

/// How fetching goes.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Sources fetched at once.
    pub jobs: usize,
    /// Further attempts after a network failure (not after a 404 or a wrong sum).
    pub retries: u32,
    /// The first wait before a retry, doubled each time ([`crate::common::retry`]).
    pub backoff: Duration,
    /// Connecting, the answer, and each read of a download; a git transfer that stalls that long.
    pub timeout: Duration,
    /// The key of `sha256` checked (kolla's `debian_arch`: `amd64`, `arm64`).
    pub debian_arch: String,
    /// How directories, checkouts and the plugins/additions trees are tarred.
    pub tar: SourceTar,
}

impl FetchOptions {
    /// kolla's `--timeout` default (120 s), two retries, four fetches at once.
    pub fn new(debian_arch: &str, tar: SourceTar) -> FetchOptions {
        FetchOptions {
            jobs: 4,
            retries: 2,
            backoff: Duration::from_secs(2),
            timeout: Duration::from_secs(120),
            debian_arch: debian_arch.to_string(),
            tar,
        }
    }
}

/// A file of an image's build context that the fetch stage adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextFile {
    /// Its path in the context (`keystone-base-archive`, `plugins/x/setup.py`).
    pub name: String,
    pub content: ContextContent,
    /// Its mode as kolla would send it (for directories and unpacked trees).
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextContent {
    /// A file in the cache (a symbolic link in an unpacked tree stays a link on disk).
    File(PathBuf),
    /// An empty directory (`plugins/` without plugins): the context must still have it.
    Directory,
}

/// An archive the image's input hash must cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveDigest {
    /// Its name in the context.
    pub name: String,
    /// sha256 of its bytes, hex.
    pub sha256: String,
}

/// What one image gets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageFiles {
    pub files: Vec<ContextFile>,
    /// Every `*-archive` of `files`, by name.
    pub archives: Vec<ArchiveDigest>,
}

impl ImageFiles {
    /// The files as [`crate::prepare::context::ContextSpec::new`] takes them: (path in the
    /// context, file on disk). Empty directories are not files: see [`ImageFiles::directories`].
    pub fn context_files(&self) -> Vec<(String, PathBuf)> {
        self.files
            .iter()
            .filter_map(|f| match &f.content {
                ContextContent::File(path) => Some((f.name.clone(), path.clone())),
                ContextContent::Directory => None,
            })
            .collect()
    }

    /// The empty directories the context must hold (`plugins` when the image has none).
    pub fn directories(&self) -> Vec<&str> {
        self.files
            .iter()
            .filter(|f| f.content == ContextContent::Directory)
            .map(|f| f.name.as_str())
            .collect()
    }
}

/// The outcome of a fetch: per image, its files or the one error that stops it.
#[derive(Debug, Default)]
pub struct FetchedSources {
    pub images: BTreeMap<String, Result<ImageFiles, SourceError>>,
    /// Sources whose bytes came over the network this time (downloads, clones, fetches).
    pub transferred: usize,
    /// Sources served from the cache (a 304, a tag already mirrored, a local path).
    pub reused: usize,
}

/// A source that could not be had: the image, the section and the location it names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("image `{image}`: source [{section}] at `{location}`: {problem}")]
pub struct SourceError {
    pub image: String,
    pub section: String,
    pub location: String,
    pub problem: Box<Problem>,
}

/// What went wrong with one source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("{0}")]
    Url(UrlFailure),
    #[error("{0}")]
    Git(GitFailure),
    #[error("no such file or directory: fix `location` (or `locals_base`)")]
    LocalMissing,
    #[error("cannot read it: {0}")]
    Local(String),
    #[error("`sha256` has no sum for architecture `{arch}` (it has: {known}): add `{arch}:<sum>`")]
    MissingArchitecture { arch: String, known: String },
    #[error("unsafe archive: member `{member}` has {reason}; it is not unpacked")]
    Unsafe {
        member: String,
        reason: &'static str,
    },
    #[error("not a tar archive ({0}); plugins and additions must be tar or tar.gz")]
    NotTar(String),
    #[error("cannot unpack it: {0}")]
    Unpack(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// A failure of the stage as a whole (the cache cannot be written).
#[derive(Debug, thiserror::Error)]
#[error("cannot use the source cache `{path}`: {source}\nhint: check `--cache-dir`")]
pub struct FetchError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// One thing to fetch; several sections (of several images) may share one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Unit {
    Url {
        url: String,
        sha256: Option<String>,
    },
    Git {
        url: String,
        reference: String,
        top: String,
    },
    Local {
        path: String,
    },
}

/// A fetched archive in the blob store.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Blob {
    sha256: String,
    path: PathBuf,
    transferred: bool,
}

/// Fetches the sources of every request and assembles each image's context files. Sources run
/// `opts.jobs` at a time; a source shared by several images is fetched once. Returns an error
/// only when the cache itself is unusable; a source that fails fails its image (and only it).
/// The future holds `reporter` across awaits: run it on the caller's task.
pub async fn fetch_sources(
    requests: &[SourceRequest],
    cache: &FetchCache,
    opts: &FetchOptions,
    reporter: &dyn Reporter,
) -> Result<FetchedSources, FetchError> {
    cache.create().map_err(|source| FetchError {
        path: cache.root().to_path_buf(),
        source,
    })?;
    let units = units_of(requests, opts);
    if !units.is_empty() {
        reporter.notice(&Notice::Status {
            verb: "Fetching",
            text: format!(
                "{} source{} for {} image{}",
                units.len(),
                plural(units.len()),
                requests.len(),
                plural(requests.len())
            ),
        });
    }
    let results = fetch_units(units, cache, opts, reporter).await;
    let mut fetched = FetchedSources::default();
    for result in results.values().flatten() {
        if result.transferred {
            fetched.transferred += 1;
        } else {
            fetched.reused += 1;
        }
    }
    fetched.images = assemble_all(requests, results, cache, opts)
        .await
        .into_iter()
        .collect();
    Ok(fetched)
}

/// Every distinct unit the requests' enabled sources need (a source that names no unit fails
/// its image when assembled).
fn units_of(requests: &[SourceRequest], opts: &FetchOptions) -> BTreeSet<Unit> {
    requests
        .iter()
        .flat_map(sources_of)
        .filter_map(|source| unit_of(source, opts).ok())
        .collect()
}

/// The units fetched, `opts.jobs` at a time, each told as it arrives over the network.
async fn fetch_units(
    units: BTreeSet<Unit>,
    cache: &FetchCache,
    opts: &FetchOptions,
    reporter: &dyn Reporter,
) -> BTreeMap<Unit, Result<Blob, Problem>> {
    let needs_http = units.iter().any(|u| matches!(u, Unit::Url { .. }));
    let http = needs_http.then(|| HttpClient::new(opts.timeout));
    futures_util::stream::iter(units)
        .map(|unit| {
            let http = http.as_ref();
            async move {
                let result = fetch_unit(&unit, http, cache, opts, reporter).await;
                if let Ok(blob) = &result
                    && blob.transferred
                {
                    reporter.notice(&Notice::Status {
                        verb: "Fetched",
                        text: unit_location(&unit).to_string(),
                    });
                }
                (unit, result)
            }
        })
        .buffer_unordered(opts.jobs.max(1))
        .collect()
        .await
}

/// Every request's files from the fetched units, on blocking threads (unpacking and tarring).
async fn assemble_all(
    requests: &[SourceRequest],
    results: BTreeMap<Unit, Result<Blob, Problem>>,
    cache: &FetchCache,
    opts: &FetchOptions,
) -> Vec<(String, Result<ImageFiles, SourceError>)> {
    let results = std::sync::Arc::new(results);
    futures_util::stream::iter(requests.iter().cloned())
        .map(|request| {
            let results = results.clone();
            let cache = cache.clone();
            let opts = opts.clone();
            async move {
                let image = request.image.clone();
                let files = tokio::task::spawn_blocking(move || {
                    assemble(&request, &results, &cache, &opts)
                })
                .await
                .unwrap_or_else(|e| {
                    Err(SourceError {
                        image: image.clone(),
                        section: image.clone(),
                        location: String::new(),
                        problem: Box::new(Problem::Internal(e.to_string())),
                    })
                });
                (image, files)
            }
        })
        .buffer_unordered(opts.jobs.max(1))
        .collect()
        .await
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The enabled sources of a request, own section first.
fn sources_of(request: &SourceRequest) -> impl Iterator<Item = &Source> {
    request
        .source
        .iter()
        .chain(&request.plugins)
        .chain(&request.additions)
        .filter(|s| s.enabled)
}

fn unit_of(source: &Source, opts: &FetchOptions) -> Result<Unit, Problem> {
    Ok(match source.kind {
        SourceKind::Url => {
            let sha256 = if source.sha256.is_empty() {
                None
            } else {
                Some(
                    source
                        .sha256
                        .get(&opts.debian_arch)
                        .cloned()
                        .ok_or_else(|| Problem::MissingArchitecture {
                            arch: opts.debian_arch.clone(),
                            known: source.sha256.keys().cloned().collect::<Vec<_>>().join(", "),
                        })?,
                )
            };
            Unit::Url {
                url: source.location.clone(),
                sha256,
            }
        }
        SourceKind::Git => {
            let reference = source.reference.clone().unwrap_or_default();
            Unit::Git {
                url: source.location.clone(),
                top: format!("{}-archive-{}", source.section, reference.replace('/', "-")),
                reference,
            }
        }
        SourceKind::Local => Unit::Local {
            path: source.location.clone(),
        },
    })
}

fn unit_location(unit: &Unit) -> &str {
    match unit {
        Unit::Url { url, .. } | Unit::Git { url, .. } => url,
        Unit::Local { path } => path,
    }
}

/// One unit, retried after network failures.
async fn fetch_unit(
    unit: &Unit,
    http: Option<&std::io::Result<HttpClient>>,
    cache: &FetchCache,
    opts: &FetchOptions,
    reporter: &dyn Reporter,
) -> Result<Blob, Problem> {
    let on_retry = |attempt: u32, problem: &Problem| {
        reporter.notice(&Notice::Warning(format!(
            "fetching `{}` failed (attempt {attempt}): {problem}; retrying",
            unit_location(unit)
        )));
    };
    // The outer error is worth retrying; the inner one is final.
    let (result, _) =
        crate::common::retry::retrying(opts.retries, opts.backoff, on_retry, |_| async move {
            let outcome = fetch_once(unit, http, cache, opts).await;
            match outcome {
                Err(p) if is_transient(&p) => Err(p),
                other => Ok(other),
            }
        })
        .await;
    result.and_then(|inner| inner)
}

fn is_transient(problem: &Problem) -> bool {
    match problem {
        Problem::Url(f) => f.is_transient(),
        Problem::Git(f) => f.is_transient(),
        _ => false,
    }
}

async fn fetch_once(
    unit: &Unit,
    http: Option<&std::io::Result<HttpClient>>,
    cache: &FetchCache,
    opts: &FetchOptions,
) -> Result<Blob, Problem> {
    match unit {
        Unit::Url { url, sha256 } => {
            let client = match http {
                Some(Ok(client)) => client,
                Some(Err(e)) => {
                    return Err(Problem::Url(UrlFailure::Connect(format!(
                        "no TLS root certificates ({e}): install ca-certificates"
                    ))));
                }
                None => return Err(Problem::Internal("no HTTP client".into())),
            };
            let done = client
                .download(cache, url, sha256.as_deref())
                .await
                .map_err(Problem::Url)?;
            Ok(Blob {
                path: cache.blob(&done.sha256),
                sha256: done.sha256,
                transferred: done.transferred,
            })
        }
        Unit::Git {
            url,
            reference,
            top,
        } => {
            let (shared, url, reference, top) =
                (cache.clone(), url.clone(), reference.clone(), top.clone());
            let (style, timeout) = (opts.tar, opts.timeout);
            let archive = tokio::task::spawn_blocking(move || {
                git::archive(&shared, &url, &reference, &top, style, timeout)
            })
            .await
            .map_err(|e| Problem::Internal(e.to_string()))?
            .map_err(Problem::Git)?;
            Ok(Blob {
                path: cache.blob(&archive.sha256),
                sha256: archive.sha256,
                transferred: archive.contacted,
            })
        }
        Unit::Local { path } => {
            let (cache, path, style) = (cache.clone(), PathBuf::from(path), opts.tar);
            tokio::task::spawn_blocking(move || local(&cache, &path, style))
                .await
                .map_err(|e| Problem::Internal(e.to_string()))?
        }
    }
}

/// A local directory tarred under its own name, or a local file as it is, into the blob store.
fn local(cache: &FetchCache, path: &Path, style: SourceTar) -> Result<Blob, Problem> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Problem::LocalMissing),
        Err(e) => return Err(Problem::Local(e.to_string())),
    };
    let cache_err = |e: std::io::Error| Problem::Local(format!("the source cache: {e}"));
    let scratch = cache.scratch_file().map_err(cache_err)?;
    let out = HashingWriter::new(std::io::BufWriter::new(
        scratch.reopen().map_err(cache_err)?,
    ));
    let out = if meta.is_dir() {
        // kolla: `tar.add(path, arcname=os.path.basename(path))`.
        let top = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| ".".to_string());
        archive::tar_directory(path, &top, style, out).map_err(|e| Problem::Local(e.to_string()))?
    } else {
        let mut out = out;
        let mut file = std::fs::File::open(path).map_err(|e| Problem::Local(e.to_string()))?;
        std::io::copy(&mut file, &mut out).map_err(|e| Problem::Local(e.to_string()))?;
        out
    };
    let (sha256, _, buffered) = out.finish();
    buffered
        .into_inner()
        .map_err(|e| cache_err(e.into_error()))?;
    let path = cache.store_blob(scratch, &sha256).map_err(cache_err)?;
    Ok(Blob {
        sha256,
        path,
        transferred: false,
    })
}

/// One image's context files from the fetched units.
fn assemble(
    request: &SourceRequest,
    results: &BTreeMap<Unit, Result<Blob, Problem>>,
    cache: &FetchCache,
    opts: &FetchOptions,
) -> Result<ImageFiles, SourceError> {
    let fail = |source: &Source, problem: Problem| SourceError {
        image: request.image.clone(),
        section: source.section.clone(),
        location: source.location.clone(),
        problem: Box::new(problem),
    };
    let blob_of = |source: &Source| -> Result<Blob, SourceError> {
        let unit = unit_of(source, opts).map_err(|p| fail(source, p))?;
        match results.get(&unit) {
            Some(Ok(blob)) => Ok(blob.clone()),
            Some(Err(problem)) => Err(fail(source, problem.clone())),
            None => Err(fail(source, Problem::Internal("source not fetched".into()))),
        }
    };
    let mut files = ImageFiles::default();
    let add_archive = |files: &mut ImageFiles, name: String, blob: &Blob| {
        files.files.push(ContextFile {
            name: name.clone(),
            content: ContextContent::File(blob.path.clone()),
            mode: 0o644,
        });
        files.archives.push(ArchiveDigest {
            name,
            sha256: blob.sha256.clone(),
        });
    };
    if let Some(source) = request.source.as_ref().filter(|s| s.enabled) {
        let blob = blob_of(source)?;
        // The engine unpacks it (`ADD x-archive /x-source`): refuse what would escape.
        check_if_tar(cache, &blob, false).map_err(|p| fail(source, p))?;
        add_archive(&mut files, format!("{}-archive", source.section), &blob);
    }
    for (top, sources) in [
        ("plugins", &request.plugins),
        ("additions", &request.additions),
    ] {
        let mut items = Vec::new();
        for source in sources.iter().filter(|s| s.enabled) {
            let blob = blob_of(source)?;
            let format = check_if_tar(cache, &blob, true).map_err(|p| fail(source, p))?;
            add_archive(&mut files, format!("{}-archive", source.section), &blob);
            items.push((blob, format));
        }
        let tree_error = |problem| SourceError {
            image: request.image.clone(),
            section: sources
                .first()
                .map_or_else(|| top.to_string(), |s| s.section.clone()),
            location: format!("{top}/"),
            problem: Box::new(problem),
        };
        let (blob, tree) = tree_of(cache, top, &items, opts.tar).map_err(tree_error)?;
        add_archive(&mut files, format!("{top}-archive"), &blob);
        files
            .files
            .extend(tree_files(&tree, top).map_err(tree_error)?);
    }
    files.files.sort_by(|a, b| a.name.cmp(&b.name));
    files.archives.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// Checks a tar or tar.gz archive's members (once per archive: the verdict is kept in the
/// cache); `required`: anything else is an error.
fn check_if_tar(cache: &FetchCache, blob: &Blob, required: bool) -> Result<ArchiveFormat, Problem> {
    let path = &blob.path;
    let format = archive::format_of(path).map_err(|e| Problem::Unpack(e.to_string()))?;
    match format {
        ArchiveFormat::Tar | ArchiveFormat::TarGz => {}
        ArchiveFormat::Unreadable(what) if required => {
            return Err(Problem::NotTar(format!("compressed with {what}")));
        }
        ArchiveFormat::Other if required => {
            return Err(Problem::NotTar("no tar header".into()));
        }
        _ => return Ok(format),
    }
    let verdict = format!("safe\n{}", blob.sha256);
    if cache.indexed(&verdict).as_deref() == Some(blob.sha256.as_str()) {
        return Ok(format);
    }
    archive::check_members(path, format).map_err(|e| match e {
        Unsafe::Member { member, reason } => Problem::Unsafe { member, reason },
        Unsafe::Unreadable(e) => Problem::Unpack(e),
    })?;
    // Only a speed-up: without it the archive is checked again next time.
    let _ = cache.put_indexed(&verdict, &blob.sha256);
    Ok(format)
}

/// The `top` tree (plugins/ or additions/) made of the archives `items`, unpacked in order, and
/// its archive; made once per set of archives and kept under `trees/<its digest>/<top>`.
fn tree_of(
    cache: &FetchCache,
    top: &str,
    items: &[(Blob, ArchiveFormat)],
    style: SourceTar,
) -> Result<(Blob, PathBuf), Problem> {
    let key = format!(
        "tree\n{top}\n{style:?}\n{}",
        items
            .iter()
            .map(|(b, _)| b.sha256.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let cache_err = |e: std::io::Error| Problem::Unpack(format!("the source cache: {e}"));
    if let Some(sha256) = cache.indexed(&key) {
        let tree = cache.tree(&sha256).join(top);
        if tree.is_dir() {
            return Ok((
                Blob {
                    path: cache.blob(&sha256),
                    sha256,
                    transferred: false,
                },
                tree,
            ));
        }
    }
    let scratch = cache.scratch_dir().map_err(cache_err)?;
    let dir = scratch.path().join(top);
    std::fs::create_dir(&dir).map_err(cache_err)?;
    set_mode(&dir, 0o755).map_err(cache_err)?;
    for (blob, format) in items {
        archive::unpack(&blob.path, *format, &dir).map_err(|e| Problem::Unpack(e.to_string()))?;
    }
    let file = cache.scratch_file().map_err(cache_err)?;
    let out = HashingWriter::new(std::io::BufWriter::new(file.reopen().map_err(cache_err)?));
    let out = archive::tar_directory(&dir, top, style, out).map_err(cache_err)?;
    let (sha256, _, buffered) = out.finish();
    buffered
        .into_inner()
        .map_err(|e| cache_err(e.into_error()))?;
    let path = cache.store_blob(file, &sha256).map_err(cache_err)?;
    let home = cache.tree(&sha256);
    if !home.join(top).is_dir() {
        let kept = scratch.keep();
        if std::fs::rename(&kept, &home).is_err() {
            // Another run put the same tree there first.
            let _ = std::fs::remove_dir_all(&kept);
        }
    }
    cache.put_indexed(&key, &sha256).map_err(cache_err)?;
    Ok((
        Blob {
            sha256,
            path,
            transferred: false,
        },
        home.join(top),
    ))
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

/// The files of an unpacked tree as context entries under `top/`; directories only when empty
/// (the others are implied by their files).
fn tree_files(tree: &Path, top: &str) -> Result<Vec<ContextFile>, Problem> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(tree).sort_by_file_name() {
        let entry = entry.map_err(|e| Problem::Unpack(e.to_string()))?;
        let rel = entry
            .path()
            .strip_prefix(tree)
            .expect("walkdir stays under its root");
        let name = if rel.as_os_str().is_empty() {
            top.to_string()
        } else {
            format!("{top}/{}", rel.display())
        };
        let meta = entry
            .path()
            .symlink_metadata()
            .map_err(|e| Problem::Unpack(e.to_string()))?;
        let mode = mode_of(&meta);
        if meta.is_dir() {
            let empty = std::fs::read_dir(entry.path())
                .map_err(|e| Problem::Unpack(e.to_string()))?
                .next()
                .is_none();
            if empty {
                files.push(ContextFile {
                    name,
                    content: ContextContent::Directory,
                    mode,
                });
            }
        } else {
            files.push(ContextFile {
                name,
                content: ContextContent::File(entry.path().to_path_buf()),
                mode,
            });
        }
    }
    Ok(files)
}
