//! `--package-cache`: builds download Debian packages through an apt caching proxy
//! (apt-cacher-ng) and Python packages through a PyPI caching mirror (devpi-server), for the
//! build only: nothing of it is left in the images.
//!
//! How a build finds the caches without a trace: the only build-time variables the engine keeps
//! out of an image (its `Env`, its files and the `history` of its config) are Docker's
//! predefined proxy arguments (`http_proxy`, `https_proxy`, `ftp_proxy`, `no_proxy`,
//! `all_proxy`, and their upper-case forms), which a `RUN` step sees as environment variables
//! without any `ARG` line (an `ARG` would record its value in the history). So:
//! - `http_proxy` points apt (and anything else fetching plain `http://`) at the apt cache, and
//!   `no_proxy` keeps loopback direct;
//! - `ftp_proxy` carries the PyPI cache's simple index (nothing in a build uses FTP): the tree's
//!   pip macro (`base/macros.j2`, `install_pip`) adds `--index-url "$ftp_proxy"` when it is set.
//!   Without `--package-cache` it is unset and pip uses PyPI as before.
//!
//! Each image's build goes through a relay of its own on loopback (a TCP forwarder to the cache)
//! that counts the bytes the cache sent to that build: the per-image `network_bytes` of the
//! summary. What the caches themselves fetched from the outside is in their logs
//! (`scripts/setup-caches.sh` says where).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

crate::common::error::message_error!(
    /// A `--package-cache` value that does not parse, or a cache that does not answer.
    PackageCacheError
);

/// The build-time variable carrying the PyPI cache's index (see the module docs).
pub const PYPI_INDEX_ARG: &str = "ftp_proxy";

/// Which kind of cache a `--package-cache KIND=URL` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Apt,
    Pypi,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Apt => "apt",
            Kind::Pypi => "pypi",
        }
    }
}

/// An `http://host:port/path` URL of a cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheUrl {
    pub host: String,
    pub port: u16,
    /// Starts with `/` (just `/` when none was given).
    pub path: String,
}

impl CacheUrl {
    pub fn parse(text: &str) -> Result<CacheUrl, PackageCacheError> {
        let rest = text.strip_prefix("http://").ok_or_else(|| {
            format!("`{text}`: a package cache is an http:// URL (caches listen on loopback)")
        })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(format!(
                "`{text}`: credentials in a package cache URL are not supported (they would reach the build)"
            )
            .into());
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("`{text}`: `{p}` is not a port"))?,
            ),
            _ => (authority, 80),
        };
        if host.is_empty() {
            return Err(format!("`{text}`: no host").into());
        }
        Ok(CacheUrl {
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }
}

impl std::fmt::Display for CacheUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}:{}{}", self.host, self.port, self.path)
    }
}

/// Parses one `--package-cache` value, `apt=URL` or `pypi=URL`.
pub fn parse(spec: &str) -> Result<(Kind, CacheUrl), PackageCacheError> {
    let (kind, url) = spec.split_once('=').ok_or_else(|| {
        format!(
            "`{spec}`: expected KIND=URL with KIND `apt` or `pypi`, e.g. apt=http://127.0.0.1:3142 \
             or pypi=http://127.0.0.1:3141/root/pypi/+simple/"
        )
    })?;
    let kind = match kind.trim() {
        "apt" => Kind::Apt,
        "pypi" => Kind::Pypi,
        other => {
            return Err(format!(
                "`{spec}`: unknown package cache kind `{other}` (known: apt, pypi)"
            )
            .into());
        }
    };
    Ok((kind, CacheUrl::parse(url.trim())?))
}

/// Checks every cache answers a TCP connection (bounded), naming the one that does not.
pub async fn check(caches: &BTreeMap<Kind, CacheUrl>) -> Result<(), PackageCacheError> {
    for (kind, url) in caches {
        let address = format!("{}:{}", url.host, url.port);
        let connect = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&address));
        match connect.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(unreachable(*kind, url, &e.to_string())),
            Err(_) => return Err(unreachable(*kind, url, "no answer in 5 s")),
        }
    }
    Ok(())
}

fn unreachable(kind: Kind, url: &CacheUrl, why: &str) -> PackageCacheError {
    PackageCacheError(format!(
        "the {} package cache is not reachable at {url}: {why}\n\
         hint: start the caches with `scripts/setup-caches.sh` (as root), or drop `--package-cache {}=...`",
        kind.as_str(),
        kind.as_str()
    ))
}

/// One image's way to the caches: its build arguments and the bytes the caches sent it.
pub struct Route {
    pub build_args: BTreeMap<String, String>,
    pub bytes: Arc<AtomicU64>,
    relays: Vec<tokio::task::JoinHandle<()>>,
}

impl Route {
    /// Opens relays to `caches` for one build.
    pub async fn open(caches: &BTreeMap<Kind, CacheUrl>) -> std::io::Result<Route> {
        let bytes = Arc::new(AtomicU64::new(0));
        let mut build_args = BTreeMap::new();
        let mut relays = Vec::new();
        for (kind, url) in caches {
            let (port, task) = relay(format!("{}:{}", url.host, url.port), bytes.clone()).await?;
            relays.push(task);
            match kind {
                Kind::Apt => {
                    build_args.insert("http_proxy".into(), format!("http://127.0.0.1:{port}"));
                }
                Kind::Pypi => {
                    build_args.insert(
                        PYPI_INDEX_ARG.into(),
                        format!("http://127.0.0.1:{port}{}", url.path),
                    );
                }
            }
        }
        if !build_args.is_empty() {
            build_args.insert("no_proxy".into(), "localhost,127.0.0.1,::1".into());
        }
        Ok(Route {
            build_args,
            bytes,
            relays,
        })
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

impl Drop for Route {
    fn drop(&mut self) {
        for relay in &self.relays {
            relay.abort();
        }
    }
}

/// A loopback listener forwarding every connection to `upstream`, adding what upstream sends
/// back to `bytes` as it flows.
async fn relay(
    upstream: String,
    bytes: Arc<AtomicU64>,
) -> std::io::Result<(u16, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((client, _)) = listener.accept().await else {
                // Out of file descriptors, say: wait for connections to close rather than spin.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            let (upstream, bytes) = (upstream.clone(), bytes.clone());
            connections.spawn(async move {
                if let Ok(server) = TcpStream::connect(&upstream).await {
                    let _ = forward(client, server, &bytes).await;
                }
            });
            // Reap finished connections so the set does not grow with a long build.
            while connections.try_join_next().is_some() {}
        }
    });
    Ok((port, task))
}

async fn forward(client: TcpStream, server: TcpStream, bytes: &AtomicU64) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = async {
        let r = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
        r
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = server_read.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            client_write.write_all(&buf[..n]).await?;
            bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        client_write.shutdown().await
    };
    let (a, b) = tokio::join!(up, down);
    a.map(|_| ()).and(b)
}

/// Checks the caches and opens a route for every build to be run (by image name, with its
/// build arguments, to which the route's are added); returns the routes by image name (none
/// without caches).
pub async fn routes<'a>(
    caches: &BTreeMap<Kind, CacheUrl>,
    builds: impl IntoIterator<Item = (&'a str, &'a mut BTreeMap<String, String>)>,
) -> Result<Vec<(String, Route)>, PackageCacheError> {
    let builds: Vec<_> = builds.into_iter().collect();
    if caches.is_empty() || builds.is_empty() {
        return Ok(Vec::new());
    }
    check(caches).await?;
    let mut routes = Vec::new();
    for (name, build_args) in builds {
        let route = Route::open(caches)
            .await
            .map_err(|e| format!("cannot open a loopback port for the package caches: {e}"))?;
        for (key, value) in &route.build_args {
            build_args.insert(key.clone(), value.clone());
        }
        routes.push((name.to_string(), route));
    }
    Ok(routes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_errors_teach() {
        let (kind, url) = parse("pypi=http://127.0.0.1:3141/root/pypi/+simple/").unwrap();
        assert_eq!(kind, Kind::Pypi);
        assert_eq!(url.port, 3141);
        assert_eq!(url.path, "/root/pypi/+simple/");
        assert_eq!(url.to_string(), "http://127.0.0.1:3141/root/pypi/+simple/");
        let (kind, url) = parse("apt=http://localhost:3142").unwrap();
        assert_eq!(
            (kind, url.host.as_str(), url.path.as_str()),
            (Kind::Apt, "localhost", "/")
        );
        assert!(
            parse("http://127.0.0.1:3142")
                .unwrap_err()
                .contains("KIND=URL")
        );
        assert!(parse("npm=http://x:1").unwrap_err().contains("apt, pypi"));
        assert!(parse("apt=https://x:1").unwrap_err().contains("http://"));
        assert!(
            parse("apt=http://u:p@x:1")
                .unwrap_err()
                .contains("credentials")
        );
        assert!(
            parse("apt=http://x:port")
                .unwrap_err()
                .contains("not a port")
        );
    }

    #[tokio::test]
    async fn a_route_relays_and_counts_what_the_cache_sends() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let cache = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = cache.local_addr().unwrap().port();
        // (`check` connects too, and sends nothing.)
        tokio::spawn(async move {
            loop {
                let (mut s, _) = cache.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut req = [0u8; 5];
                    if s.read_exact(&mut req).await.is_ok() && &req == b"hello" {
                        s.write_all(&[7u8; 1000]).await.unwrap();
                    }
                });
            }
        });
        let caches = BTreeMap::from([(
            Kind::Apt,
            CacheUrl::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
        )]);
        check(&caches).await.unwrap();
        let route = Route::open(&caches).await.unwrap();
        let proxy = &route.build_args["http_proxy"];
        assert_eq!(route.build_args["no_proxy"], "localhost,127.0.0.1,::1");
        let relay = proxy.strip_prefix("http://").unwrap();
        let mut c = TcpStream::connect(relay).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), 1000);
        assert_eq!(route.bytes(), 1000);
    }

    #[tokio::test]
    async fn an_unreachable_cache_names_itself_and_the_fix() {
        let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let caches = BTreeMap::from([(
            Kind::Pypi,
            CacheUrl::parse(&format!("http://127.0.0.1:{port}/root/pypi/+simple/")).unwrap(),
        )]);
        let err = check(&caches).await.unwrap_err();
        assert!(err.contains("pypi package cache is not reachable"), "{err}");
        assert!(err.contains("scripts/setup-caches.sh"), "{err}");
    }
}
