//! The fetch stage against a loopback HTTP server started by each test (127.0.0.1:0), local git
//! repositories and folders made by the test: what lands in an image's context, what the cache
//! keeps, and one clear error per failing source.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kolla_build::compat::sources::{ImageSources, Source, SourceKind, SourceTar};
use kolla_build::fetch::{
    ContextContent, FetchCache, FetchOptions, FetchedSources, Problem, fetch_sources,
};
use kolla_build::report::event::{Event, Notice, Reporter, Subject};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the server answers for a path.
#[derive(Clone)]
enum Reply {
    /// 200 with an ETag (of the body's sha256), or 304 when it matches.
    File(Vec<u8>),
    /// Announces `len` bytes, sends `sent`, then closes the connection.
    Cut { len: usize, sent: Vec<u8> },
    /// Announces `len` bytes, sends `sent`, then never another byte.
    Stall { len: usize, sent: Vec<u8> },
    /// 200 with a Last-Modified date and no ETag, or 304 when `If-Modified-Since` gives it.
    Dated(Vec<u8>),
    /// 503 the first time, then the file.
    Unavailable(Vec<u8>),
}

#[derive(Clone, Default)]
struct Server {
    port: u16,
    replies: Arc<Mutex<HashMap<String, Reply>>>,
    requests: Arc<AtomicUsize>,
    /// Answers that carried a body (200s).
    bodies: Arc<AtomicUsize>,
}

impl Server {
    async fn start() -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server {
            port: listener.local_addr().unwrap().port(),
            ..Server::default()
        };
        let shared = server.clone();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(shared.clone().answer(socket));
            }
        });
        server
    }

    fn serve(&self, path: &str, reply: Reply) {
        self.replies.lock().unwrap().insert(path.to_string(), reply);
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn answer(self, mut socket: tokio::net::TcpStream) {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        self.requests.fetch_add(1, Ordering::SeqCst);
        let head = String::from_utf8_lossy(&head).into_owned();
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        let if_none_match = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("if-none-match")
                .then(|| v.trim().to_string())
        });
        let if_modified_since = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("if-modified-since")
                .then(|| v.trim().to_string())
        });
        // Decided under the lock, answered after it (a guard must not live across an await).
        let reply = {
            let mut replies = self.replies.lock().unwrap();
            let reply = replies.get(&path).cloned();
            if let Some(Reply::Unavailable(body)) = &reply {
                replies.insert(path.clone(), Reply::File(body.clone()));
            }
            reply
        };
        if let Some(Reply::Unavailable(_)) = reply {
            let out = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\
                       Connection: close\r\n\r\n";
            let _ = socket.write_all(out.as_bytes()).await;
            let _ = socket.shutdown().await;
            return;
        }
        let out = match reply {
            None => {
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
            }
            Some(Reply::File(body)) => {
                let etag = format!("\"{}\"", &sha256_hex(&body)[..16]);
                if if_none_match.as_deref() == Some(etag.as_str()) {
                    format!(
                        "HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nConnection: close\r\n\r\n"
                    )
                    .into_bytes()
                } else {
                    self.bodies.fetch_add(1, Ordering::SeqCst);
                    let mut out = format!(
                        "HTTP/1.1 200 OK\r\nETag: {etag}\r\nContent-Length: {}\r\n\
                         Connection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    out.extend(body);
                    out
                }
            }
            Some(Reply::Unavailable(_)) => unreachable!("answered above"),
            Some(Reply::Dated(body)) => {
                let date = "Wed, 21 Oct 2026 07:28:00 GMT";
                if if_modified_since.as_deref() == Some(date) {
                    b"HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n".to_vec()
                } else {
                    self.bodies.fetch_add(1, Ordering::SeqCst);
                    let mut out = format!(
                        "HTTP/1.1 200 OK\r\nLast-Modified: {date}\r\nContent-Length: {}\r\n\
                         Connection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    out.extend(body);
                    out
                }
            }
            Some(Reply::Cut { len, sent }) | Some(Reply::Stall { len, sent }) => {
                self.bodies.fetch_add(1, Ordering::SeqCst);
                let mut out = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
                )
                .into_bytes();
                out.extend(sent);
                let _ = socket.write_all(&out).await;
                let _ = socket.flush().await;
                if matches!(
                    self.replies.lock().unwrap().get(&path),
                    Some(Reply::Stall { .. })
                ) {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                return;
            }
        };
        let _ = socket.write_all(&out).await;
        let _ = socket.shutdown().await;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Keeps every notice.
#[derive(Default)]
struct Notes(Mutex<Vec<Notice>>);

impl Reporter for Notes {
    fn event(&mut self, _: &[Subject], _: &Event) {}
    fn notice(&self, notice: &Notice) {
        self.0.lock().unwrap().push(notice.clone());
    }
}

fn source(section: &str, kind: SourceKind, location: &str) -> Source {
    Source {
        section: section.to_string(),
        kind,
        location: location.to_string(),
        reference: None,
        enabled: true,
        sha256: BTreeMap::new(),
    }
}

fn image(name: &str, own: Option<Source>) -> ImageSources {
    ImageSources {
        image: name.to_string(),
        source: own,
        plugins: Vec::new(),
        additions: Vec::new(),
    }
}

fn options() -> FetchOptions {
    let mut opts = FetchOptions::new("amd64", SourceTar::Normalized);
    opts.retries = 0;
    opts.timeout = Duration::from_secs(5);
    opts
}

async fn fetch(requests: &[ImageSources], cache: &FetchCache) -> FetchedSources {
    fetch_sources(requests, cache, &options(), &Notes::default())
        .await
        .unwrap()
}

/// A small tar.gz whose single member is `top/<name>` holding `content`.
fn tar_gz(top: &str, name: &str, content: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, format!("{top}/{name}"), content)
        .unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

/// (path, uid, mtime, user) of every member of a tar file.
fn members(path: &Path) -> Vec<(String, u64, u64, String)> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().display().to_string(),
                h.uid().unwrap(),
                h.mtime().unwrap(),
                h.username().unwrap().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn archive_path(fetched: &FetchedSources, image: &str, name: &str) -> PathBuf {
    let files = fetched.images[image].as_ref().unwrap();
    let file = files
        .files
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no `{name}` in {:?}", files.files));
    match &file.content {
        ContextContent::File(path) => path.clone(),
        ContextContent::Directory => panic!("`{name}` is a directory"),
    }
}

fn digest(fetched: &FetchedSources, image: &str, name: &str) -> String {
    let files = fetched.images[image].as_ref().unwrap();
    files
        .archives
        .iter()
        .find(|a| a.name == name)
        .unwrap()
        .sha256
        .clone()
}

fn failure(fetched: &FetchedSources, image: &str) -> (Problem, String) {
    let err = fetched.images[image].as_ref().unwrap_err();
    ((*err.problem).clone(), err.to_string())
}

/// Files under the cache's blob store, scratch area and download entries.
fn cache_counts(cache: &FetchCache) -> (usize, usize, usize) {
    let count = |dir: &str| {
        std::fs::read_dir(cache.root().join(dir))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    (count("blobs/sha256"), count("tmp"), count("url"))
}

#[tokio::test]
async fn a_download_is_revalidated_and_not_downloaded_again() {
    let server = Server::start().await;
    let body = tar_gz("keystone-27.0.0", "setup.py", b"print(1)\n");
    server.serve("/keystone.tar.gz", Reply::File(body.clone()));
    let dir = tempfile::tempdir().unwrap();
    let cache = FetchCache::new(dir.path());
    let url = server.url("/keystone.tar.gz");
    let requests = [image(
        "keystone-base",
        Some(source("keystone-base", SourceKind::Url, &url)),
    )];

    let first = fetch(&requests, &cache).await;
    let path = archive_path(&first, "keystone-base", "keystone-base-archive");
    assert_eq!(std::fs::read(&path).unwrap(), body, "the bytes as served");
    assert_eq!((first.transferred, first.reused), (1, 0));
    assert_eq!(server.bodies.load(Ordering::SeqCst), 1);

    let second = fetch(&requests, &cache).await;
    assert_eq!(server.requests.load(Ordering::SeqCst), 2, "revalidated");
    assert_eq!(server.bodies.load(Ordering::SeqCst), 1, "304: no body");
    assert_eq!((second.transferred, second.reused), (0, 1));
    assert_eq!(
        digest(&first, "keystone-base", "keystone-base-archive"),
        digest(&second, "keystone-base", "keystone-base-archive")
    );

    // A new file on the server: downloaded, with a new digest.
    server.serve(
        "/keystone.tar.gz",
        Reply::File(tar_gz("keystone-27.0.1", "setup.py", b"print(2)\n")),
    );
    let third = fetch(&requests, &cache).await;
    assert_eq!(server.bodies.load(Ordering::SeqCst), 2);
    assert_ne!(
        digest(&first, "keystone-base", "keystone-base-archive"),
        digest(&third, "keystone-base", "keystone-base-archive")
    );
}

#[tokio::test]
async fn a_missing_file_fails_its_image_only() {
    let server = Server::start().await;
    server.serve("/ok.tar.gz", Reply::File(tar_gz("ok", "f", b"x")));
    let dir = tempfile::tempdir().unwrap();
    let cache = FetchCache::new(dir.path());
    let missing = server.url("/missing.tar.gz");
    let fetched = fetch(
        &[
            image("a", Some(source("a", SourceKind::Url, &missing))),
            image(
                "b",
                Some(source("b", SourceKind::Url, &server.url("/ok.tar.gz"))),
            ),
        ],
        &cache,
    )
    .await;
    let (_, message) = failure(&fetched, "a");
    assert!(message.contains("image `a`"), "{message}");
    assert!(message.contains("[a]"), "{message}");
    assert!(message.contains(&missing), "{message}");
    assert!(message.contains("HTTP 404"), "{message}");
    assert!(fetched.images["b"].is_ok(), "the sibling is fetched");
}

#[tokio::test]
async fn a_refused_connection_is_an_error_not_a_crash() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let cache = FetchCache::new(dir.path());
    let url = format!("http://127.0.0.1:{port}/x.tar.gz");
    let fetched = fetch(
        &[image("a", Some(source("a", SourceKind::Url, &url)))],
        &cache,
    )
    .await;
    let (problem, message) = failure(&fetched, "a");
    assert!(
        matches!(problem, Problem::Url(ref f) if f.is_transient()),
        "{problem:?}"
    );
    assert!(message.contains("cannot connect"), "{message}");
    assert_eq!(cache_counts(&cache), (0, 0, 0));
}

#[tokio::test]
async fn a_wrong_sum_is_refused_and_nothing_is_kept() {
    let server = Server::start().await;
    server.serve("/etcd.tar.gz", Reply::File(tar_gz("etcd", "etcd", b"bin")));
    let dir = tempfile::tempdir().unwrap();
    let cache = FetchCache::new(dir.path());
    let mut etcd = source("etcd", SourceKind::Url, &server.url("/etcd.tar.gz"));
    etcd.sha256.insert("amd64".into(), "00".repeat(32));
    etcd.sha256.insert("arm64".into(), "11".repeat(32));
    let fetched = fetch(&[image("etcd", Some(etcd.clone()))], &cache).await;
    let (problem, message) = failure(&fetched, "etcd");
    assert!(
        matches!(problem, Problem::Url(ref f) if !f.is_transient()),
        "{problem:?}"
    );
    assert!(message.contains("sha256 mismatch"), "{message}");
    assert_eq!(cache_counts(&cache), (0, 0, 0), "no blob, no entry");

    // The right sum is accepted.
    let right = sha256_hex(&tar_gz("etcd", "etcd", b"bin"));
    etcd.sha256.insert("amd64".into(), right.clone());
    let fetched = fetch(&[image("etcd", Some(etcd.clone()))], &cache).await;
    assert_eq!(digest(&fetched, "etcd", "etcd-archive"), right);
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
    // Pinned and in the store: not even revalidated.
    let again = fetch(&[image("etcd", Some(etcd))], &cache).await;
    assert_eq!(digest(&again, "etcd", "etcd-archive"), right);
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

#[tokio::test]
async fn a_sum_without_this_architecture_is_an_error_before_any_request() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = FetchCache::new(dir.path());
    let mut etcd = source("etcd", SourceKind::Url, &server.url("/etcd.tar.gz"));
    etcd.sha256.insert("arm64".into(), "11".repeat(32));
    let fetched = fetch(&[image("etcd", Some(etcd))], &cache).await;
    let (problem, message) = failure(&fetched, "etcd");
    assert!(
        matches!(problem, Problem::MissingArchitecture { ref arch, .. } if arch == "amd64"),
        "{problem:?}"
    );
    assert!(message.contains("amd64:<sum>"), "{message}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_download_cut_short_or_dropped_leaves_no_cache_entry() {
    let server = Server::start().await;
    server.serve(
        "/cut.tar.gz",
        Reply::Cut {
            len: 100_000,
            sent: vec![7; 1000],
        },
    );
    server.serve(
        "/stall.tar.gz",
        Reply::Stall {
            len: 100_000,
            sent: vec![7; 1000],
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = FetchCache::new(dir.path());
    let cut = server.url("/cut.tar.gz");
    let fetched = fetch(
        &[image("a", Some(source("a", SourceKind::Url, &cut)))],
        &cache,
    )
    .await;
    let (problem, _) = failure(&fetched, "a");
    assert!(matches!(problem, Problem::Url(_)), "{problem:?}");
    assert_eq!(cache_counts(&cache), (0, 0, 0));

    // Stopped mid-download (what Ctrl-C does to the future): the scratch file goes with it.
    let stall = server.url("/stall.tar.gz");
    let requests = [image("b", Some(source("b", SourceKind::Url, &stall)))];
    let notes = Notes::default();
    let opts = options();
    let stopped = tokio::time::timeout(
        Duration::from_millis(500),
        fetch_sources(&requests, &cache, &opts, &notes),
    )
    .await;
    assert!(stopped.is_err(), "the stalled download was still running");
    assert_eq!(server.bodies.load(Ordering::SeqCst), 2);
    assert_eq!(cache_counts(&cache), (0, 0, 0));
}

#[tokio::test]
async fn an_archive_with_a_member_outside_it_is_refused() {
    let server = Server::start().await;
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(1);
    header.set_mode(0o644);
    let name = b"top/../../etc/evil";
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_cksum();
    builder.append(&header, &b"x"[..]).unwrap();
    server.serve("/evil.tar", Reply::File(builder.into_inner().unwrap()));
    let dir = tempfile::tempdir().unwrap();
    let cache = FetchCache::new(dir.path());
    let url = server.url("/evil.tar");
    let mut request = image("horizon", Some(source("horizon", SourceKind::Url, &url)));
    let fetched = fetch(std::slice::from_ref(&request), &cache).await;
    let (problem, message) = failure(&fetched, "horizon");
    assert!(
        matches!(problem, Problem::Unsafe { ref member, .. } if member == "top/../../etc/evil"),
        "{problem:?}"
    );
    assert!(message.contains("[horizon]"), "{message}");

    // As a plugin too, and nothing is unpacked.
    request.source = None;
    request
        .plugins
        .push(source("horizon-plugin-evil", SourceKind::Url, &url));
    let fetched = fetch(&[request], &cache).await;
    let (problem, message) = failure(&fetched, "horizon");
    assert!(matches!(problem, Problem::Unsafe { .. }), "{problem:?}");
    assert!(message.contains("[horizon-plugin-evil]"), "{message}");
    assert_eq!(
        std::fs::read_dir(cache.root().join("trees"))
            .unwrap()
            .count(),
        0
    );
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.test"])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

/// A repository with a tag `1.0.0` and a branch `stable/x`.
fn repository(dir: &Path) -> PathBuf {
    let repo = dir.join("gnocchi");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "--quiet", "-b", "main"]);
    std::fs::write(repo.join("setup.py"), "v1\n").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "--quiet", "-m", "one"]);
    git(&repo, &["tag", "1.0.0"]);
    git(&repo, &["branch", "stable/x"]);
    std::fs::write(repo.join("setup.py"), "v2\n").unwrap();
    git(&repo, &["commit", "--quiet", "-am", "two"]);
    repo
}

#[tokio::test]
async fn a_git_tag_is_tarred_in_kollas_layout_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repository(dir.path());
    let cache = FetchCache::new(&dir.path().join("cache"));
    let mut gnocchi = source("gnocchi-base", SourceKind::Git, repo.to_str().unwrap());
    gnocchi.reference = Some("1.0.0".into());
    let requests = [image("gnocchi-base", Some(gnocchi.clone()))];
    let first = fetch(&requests, &cache).await;
    let path = archive_path(&first, "gnocchi-base", "gnocchi-base-archive");
    let entries = members(&path);
    let top = "gnocchi-base-archive-1.0.0";
    assert_eq!(entries[0].0, top, "the top directory first");
    assert!(
        entries
            .iter()
            .all(|e| e.0 == top || e.0.starts_with(&format!("{top}/")))
    );
    assert!(
        entries
            .iter()
            .all(|e| e.1 == 0 && e.2 == 0 && e.3 == "root")
    );
    assert!(
        entries.iter().any(|e| e.0 == format!("{top}/.git/HEAD")),
        "with .git"
    );
    let mut archive = tar::Archive::new(std::fs::File::open(&path).unwrap());
    let setup = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| {
            e.path()
                .unwrap()
                .ends_with("gnocchi-base-archive-1.0.0/setup.py")
        })
        .map(|mut e| {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut e, &mut s).unwrap();
            s
        });
    assert_eq!(setup.as_deref(), Some("v1\n"), "the tag's content");
    assert_eq!(first.transferred, 1, "cloned");

    // Again: the tag is in the mirror, the archive is kept: the same bytes, nothing fetched.
    let second = fetch(&requests, &cache).await;
    assert_eq!((second.transferred, second.reused), (0, 1));
    assert_eq!(
        digest(&first, "gnocchi-base", "gnocchi-base-archive"),
        digest(&second, "gnocchi-base", "gnocchi-base-archive")
    );

    // A branch with a slash: `/` becomes `-` in the top name.
    gnocchi.reference = Some("stable/x".into());
    let fetched = fetch(&[image("gnocchi-base", Some(gnocchi))], &cache).await;
    let path = archive_path(&fetched, "gnocchi-base", "gnocchi-base-archive");
    assert_eq!(members(&path)[0].0, "gnocchi-base-archive-stable-x");
}

#[tokio::test]
async fn a_git_reference_that_does_not_exist_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repository(dir.path());
    let cache = FetchCache::new(&dir.path().join("cache"));
    let mut gnocchi = source("gnocchi-base", SourceKind::Git, repo.to_str().unwrap());
    gnocchi.reference = Some("9.9.9".into());
    let fetched = fetch(&[image("gnocchi-base", Some(gnocchi))], &cache).await;
    let (problem, message) = failure(&fetched, "gnocchi-base");
    assert!(matches!(problem, Problem::Git(_)), "{problem:?}");
    assert!(
        message.contains("no tag, branch or commit `9.9.9`"),
        "{message}"
    );
    assert!(message.contains(repo.to_str().unwrap()), "{message}");
}

#[tokio::test]
async fn a_local_path_that_does_not_exist_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cache = FetchCache::new(dir.path());
    let missing = dir.path().join("nowhere");
    let fetched = fetch(
        &[image(
            "heat-base",
            Some(source(
                "heat-base",
                SourceKind::Local,
                missing.to_str().unwrap(),
            )),
        )],
        &cache,
    )
    .await;
    let (problem, message) = failure(&fetched, "heat-base");
    assert_eq!(problem, Problem::LocalMissing);
    assert!(message.contains("nowhere"), "{message}");
}

#[tokio::test]
async fn a_local_directory_plugin_lands_in_plugins_and_its_archive() {
    let dir = tempfile::tempdir().unwrap();
    let cache = FetchCache::new(&dir.path().join("cache"));
    let plugin = dir.path().join("blazar-dashboard");
    std::fs::create_dir_all(plugin.join("pkg")).unwrap();
    std::fs::write(plugin.join("setup.py"), "s\n").unwrap();
    std::fs::write(plugin.join("pkg/__init__.py"), "").unwrap();
    let mut request = image("horizon", None);
    request.plugins.push(source(
        "horizon-plugin-blazar-dashboard",
        SourceKind::Local,
        plugin.to_str().unwrap(),
    ));
    let fetched = fetch(&[request], &cache).await;
    let files = fetched.images["horizon"].as_ref().unwrap();
    let names: Vec<&str> = files.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "additions",
            "additions-archive",
            "horizon-plugin-blazar-dashboard-archive",
            "plugins-archive",
            "plugins/blazar-dashboard/pkg/__init__.py",
            "plugins/blazar-dashboard/setup.py",
        ]
    );
    assert_eq!(files.directories(), ["additions"]);
    // The plugin's own archive: the directory under its own name.
    let own = members(&archive_path(
        &fetched,
        "horizon",
        "horizon-plugin-blazar-dashboard-archive",
    ));
    assert_eq!(own[0].0, "blazar-dashboard");
    // plugins-archive: the plugins/ tree under the top name `plugins`.
    let plugins = members(&archive_path(&fetched, "horizon", "plugins-archive"));
    let names: Vec<&str> = plugins.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "plugins",
            "plugins/blazar-dashboard",
            "plugins/blazar-dashboard/pkg",
            "plugins/blazar-dashboard/pkg/__init__.py",
            "plugins/blazar-dashboard/setup.py",
        ]
    );
    assert!(
        plugins
            .iter()
            .all(|e| e.1 == 0 && e.2 == 0 && e.3 == "root")
    );
    // The files fit today's build context as they are.
    let spec = kolla_build::prepare::context::ContextSpec::new(
        "FROM base\n".into(),
        files.context_files(),
    );
    let context = spec.write_tar(Vec::new()).unwrap();
    let mut context = tar::Archive::new(context.as_slice());
    let in_context: Vec<String> = context
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(
        in_context,
        [
            "Dockerfile",
            "additions-archive",
            "horizon-plugin-blazar-dashboard-archive",
            "plugins-archive",
            "plugins/blazar-dashboard/pkg/__init__.py",
            "plugins/blazar-dashboard/setup.py",
        ]
    );
    // Every archive is in the input hash's list.
    let archived: Vec<&str> = files.archives.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        archived,
        [
            "additions-archive",
            "horizon-plugin-blazar-dashboard-archive",
            "plugins-archive"
        ]
    );
}

#[tokio::test]
async fn an_image_without_sources_gets_empty_plugins_and_additions_archives() {
    let dir = tempfile::tempdir().unwrap();
    let cache = FetchCache::new(dir.path());
    let fetched = fetch(&[image("base", None)], &cache).await;
    let files = fetched.images["base"].as_ref().unwrap();
    assert_eq!(files.directories(), ["additions", "plugins"]);
    for top in ["plugins", "additions"] {
        let entries = members(&archive_path(&fetched, "base", &format!("{top}-archive")));
        assert_eq!(
            entries,
            [(top.to_string(), 0, 0, "root".to_string())],
            "kolla archives the empty {top}/ folder"
        );
    }
    assert_eq!(fetched.transferred + fetched.reused, 0);
}

#[tokio::test]
async fn a_server_error_is_retried_and_reported() {
    let server = Server::start().await;
    let body = tar_gz("nova", "setup.py", b"n");
    server.serve("/nova.tar.gz", Reply::Unavailable(body.clone()));
    let dir = tempfile::tempdir().unwrap();
    let cache = FetchCache::new(dir.path());
    let url = server.url("/nova.tar.gz");
    let requests = [image(
        "nova-base",
        Some(source("nova-base", SourceKind::Url, &url)),
    )];
    let mut opts = options();
    opts.retries = 1;
    opts.backoff = Duration::from_millis(10);
    let notes = Notes::default();
    let fetched = fetch_sources(&requests, &cache, &opts, &notes)
        .await
        .unwrap();
    let path = archive_path(&fetched, "nova-base", "nova-base-archive");
    assert_eq!(std::fs::read(path).unwrap(), body);
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
    let notes = notes.0.lock().unwrap();
    assert!(
        notes.iter().any(
            |n| matches!(n, Notice::Warning(w) if w.contains("HTTP 503") && w.contains("retrying"))
        ),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| matches!(n, Notice::Status { verb: "Fetched", text } if text == &url)),
        "{notes:?}"
    );
}

#[tokio::test]
async fn a_git_branch_is_fetched_again_and_follows_new_commits() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repository(dir.path());
    let cache = FetchCache::new(&dir.path().join("cache"));
    let mut gnocchi = source("gnocchi-base", SourceKind::Git, repo.to_str().unwrap());
    gnocchi.reference = Some("stable/x".into());
    let requests = [image("gnocchi-base", Some(gnocchi))];
    let first = fetch(&requests, &cache).await;
    git(&repo, &["checkout", "--quiet", "stable/x"]);
    std::fs::write(repo.join("setup.py"), "v1.1\n").unwrap();
    git(&repo, &["commit", "--quiet", "-am", "backport"]);
    let second = fetch(&requests, &cache).await;
    assert_eq!(second.transferred, 1, "a branch is fetched into the mirror");
    assert_ne!(
        digest(&first, "gnocchi-base", "gnocchi-base-archive"),
        digest(&second, "gnocchi-base", "gnocchi-base-archive")
    );
    // One mirror for the remote, cloned once.
    assert_eq!(
        std::fs::read_dir(cache.root().join("git")).unwrap().count(),
        1
    );
}

#[tokio::test]
async fn a_download_with_only_a_date_is_revalidated_by_it() {
    let server = Server::start().await;
    server.serve("/dated.tar.gz", Reply::Dated(tar_gz("d", "f", b"d")));
    let dir = tempfile::tempdir().unwrap();
    let cache = FetchCache::new(dir.path());
    let url = server.url("/dated.tar.gz");
    let requests = [image("d", Some(source("d", SourceKind::Url, &url)))];
    let first = fetch(&requests, &cache).await;
    let second = fetch(&requests, &cache).await;
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
    assert_eq!(
        server.bodies.load(Ordering::SeqCst),
        1,
        "If-Modified-Since: 304"
    );
    assert_eq!(
        digest(&first, "d", "d-archive"),
        digest(&second, "d", "d-archive")
    );
}

#[tokio::test]
async fn a_source_shared_by_images_is_fetched_once() {
    let server = Server::start().await;
    server.serve("/req.tar.gz", Reply::File(tar_gz("req", "u", b"c")));
    let dir = tempfile::tempdir().unwrap();
    let cache = FetchCache::new(dir.path());
    let url = server.url("/req.tar.gz");
    let fetched = fetch(
        &[
            image("a", Some(source("a", SourceKind::Url, &url))),
            image("b", Some(source("b", SourceKind::Url, &url))),
        ],
        &cache,
    )
    .await;
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    assert_eq!(
        digest(&fetched, "a", "a-archive"),
        digest(&fetched, "b", "b-archive")
    );
}

#[tokio::test]
async fn a_server_that_stops_sending_times_out() {
    let server = Server::start().await;
    server.serve(
        "/slow.tar.gz",
        Reply::Stall {
            len: 10_000,
            sent: vec![1; 10],
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = FetchCache::new(dir.path());
    let url = server.url("/slow.tar.gz");
    let mut opts = options();
    opts.timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let fetched = fetch_sources(
        &[image("a", Some(source("a", SourceKind::Url, &url)))],
        &cache,
        &opts,
        &Notes::default(),
    )
    .await
    .unwrap();
    let (_, message) = failure(&fetched, "a");
    assert!(
        message.contains("no answer within the timeout"),
        "{message}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(cache_counts(&cache), (0, 0, 0));
}
