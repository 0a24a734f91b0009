//! `url` sources: a GET (following redirects, as kolla's `requests.get` does), revalidated
//! against the cache with `If-None-Match` / `If-Modified-Since`, the body streamed to a scratch
//! file and hashed on the way, checked against the configured sha256, then moved into the blob
//! store. A 304 downloads nothing; a download pinned by its sha256 that the store already has is
//! not even asked for.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::common::hashing::HashingWriter;
use crate::fetch::cache::{FetchCache, UrlEntry};

/// The most redirects followed (`requests` allows 30; real mirrors need a handful).
const MAX_REDIRECTS: usize = 10;

/// Why a download failed; `transient` ones are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlFailure {
    BadUrl(String),
    Status(u16),
    Connect(String),
    Timeout,
    /// The body ended early or the connection broke while reading it.
    Body(String),
    Sha256 {
        expected: String,
        actual: String,
    },
    TooManyRedirects,
    Cache(String),
}

impl UrlFailure {
    /// Worth another try: the network, not the content.
    pub fn is_transient(&self) -> bool {
        match self {
            UrlFailure::Connect(_) | UrlFailure::Timeout | UrlFailure::Body(_) => true,
            UrlFailure::Status(code) => *code >= 500 || *code == 429 || *code == 408,
            _ => false,
        }
    }
}

impl std::fmt::Display for UrlFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UrlFailure::BadUrl(e) => write!(f, "not a URL this tool can fetch: {e}"),
            UrlFailure::Status(code) => write!(
                f,
                "the server answered HTTP {code}{}",
                StatusCode::from_u16(*code)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .map(|r| format!(" {r}"))
                    .unwrap_or_default()
            ),
            UrlFailure::Connect(e) => write!(f, "cannot connect: {e}"),
            UrlFailure::Timeout => write!(f, "no answer within the timeout (`--timeout`)"),
            UrlFailure::Body(e) => write!(f, "the download broke off: {e}"),
            UrlFailure::Sha256 { expected, actual } => write!(
                f,
                "sha256 mismatch: the configuration says {expected}, the download is {actual}"
            ),
            UrlFailure::TooManyRedirects => write!(f, "more than {MAX_REDIRECTS} redirects"),
            UrlFailure::Cache(e) => write!(f, "cannot write the source cache: {e}"),
        }
    }
}

/// A download's result: its blob, and whether the bytes came over the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    pub sha256: String,
    pub bytes: u64,
    /// False when the server said 304 Not Modified.
    pub transferred: bool,
}

/// An HTTP(S) client for sources.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
    timeout: Duration,
}

impl HttpClient {
    /// `timeout` bounds connecting, the answer's headers, and each read of the body (kolla's
    /// `--timeout`, which `requests` applies per socket operation).
    /// Fails when the system has no root certificates at all (install `ca-certificates`).
    pub fn new(timeout: Duration) -> std::io::Result<HttpClient> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(timeout));
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(HttpClient {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        })
    }

    /// Fetches `url` into the cache; `expected` is the sha256 it must have.
    pub async fn download(
        &self,
        cache: &FetchCache,
        url: &str,
        expected: Option<&str>,
    ) -> Result<Downloaded, UrlFailure> {
        if let Some(done) = pinned(cache, expected) {
            return Ok(done);
        }
        let cached = cache.url_entry(url);
        // A cached blob that does not match the configured sum is never revalidated: fetch again.
        let cached = cached.filter(|c| expected.is_none_or(|e| e.eq_ignore_ascii_case(&c.sha256)));
        let response = self.get_following_redirects(url, cached.as_ref()).await?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED
            && let Some(entry) = cached
        {
            let bytes = std::fs::metadata(cache.blob(&entry.sha256)).map_or(0, |m| m.len());
            return Ok(Downloaded {
                sha256: entry.sha256,
                bytes,
                transferred: false,
            });
        }
        if status != StatusCode::OK {
            return Err(UrlFailure::Status(status.as_u16()));
        }
        self.save(cache, url, expected, response).await
    }

    /// The answer to a GET of `url`, redirects followed (a 304 is no redirect).
    async fn get_following_redirects(
        &self,
        url: &str,
        cached: Option<&UrlEntry>,
    ) -> Result<Response<Incoming>, UrlFailure> {
        let mut uri: Uri = url
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| UrlFailure::BadUrl(e.to_string()))?;
        let mut redirects = 0;
        loop {
            let response = self.get(&uri, cached).await?;
            if !response.status().is_redirection() || response.status() == StatusCode::NOT_MODIFIED
            {
                return Ok(response);
            }
            redirects += 1;
            if redirects > MAX_REDIRECTS {
                return Err(UrlFailure::TooManyRedirects);
            }
            let location = response
                .headers()
                .get("Location")
                .and_then(|l| l.to_str().ok())
                .ok_or(UrlFailure::Status(response.status().as_u16()))?;
            uri = follow(&uri, location)?;
        }
    }

    /// One GET of `uri`, revalidating `cached` when there is one.
    async fn get(
        &self,
        uri: &Uri,
        cached: Option<&UrlEntry>,
    ) -> Result<Response<Incoming>, UrlFailure> {
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => return Err(UrlFailure::BadUrl(format!("`{uri}` is not http(s)"))),
        }
        let mut request = Request::get(uri.clone()).header(
            "User-Agent",
            concat!("kolla-build/", env!("CARGO_PKG_VERSION")),
        );
        if let Some(entry) = cached {
            if let Some(etag) = &entry.etag {
                request = request.header("If-None-Match", etag);
            }
            if let Some(modified) = &entry.last_modified {
                request = request.header("If-Modified-Since", modified);
            }
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| UrlFailure::BadUrl(e.to_string()))?;
        tokio::time::timeout(self.timeout, self.client.request(request))
            .await
            .map_err(|_| UrlFailure::Timeout)?
            .map_err(|e| UrlFailure::Connect(error_chain(&e)))
    }

    /// A 200's body into the blob store, checked against `expected`, and its cache entry.
    async fn save(
        &self,
        cache: &FetchCache,
        url: &str,
        expected: Option<&str>,
        response: Response<Incoming>,
    ) -> Result<Downloaded, UrlFailure> {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let etag = header("ETag");
        let last_modified = header("Last-Modified");
        let scratch = cache.scratch_file().map_err(cache_failure)?;
        let file = scratch.reopen().map_err(cache_failure)?;
        let mut writer = HashingWriter::new(std::io::BufWriter::new(file));
        self.stream_body(response.into_body(), &mut writer).await?;
        let (sha256, bytes, buffered) = writer.finish();
        buffered
            .into_inner()
            .map_err(cache_failure)?
            .sync_all()
            .map_err(cache_failure)?;
        if let Some(expected) = expected
            && !expected.eq_ignore_ascii_case(&sha256)
        {
            return Err(UrlFailure::Sha256 {
                expected: expected.to_string(),
                actual: sha256,
            });
        }
        cache.store_blob(scratch, &sha256).map_err(cache_failure)?;
        cache
            .put_url_entry(&UrlEntry {
                url: url.to_string(),
                sha256: sha256.clone(),
                etag,
                last_modified,
            })
            .map_err(cache_failure)?;
        Ok(Downloaded {
            sha256,
            bytes,
            transferred: true,
        })
    }

    /// The body written to `out`, each read bounded by the timeout.
    async fn stream_body(
        &self,
        mut body: Incoming,
        out: &mut impl std::io::Write,
    ) -> Result<(), UrlFailure> {
        loop {
            let frame = tokio::time::timeout(self.timeout, body.frame())
                .await
                .map_err(|_| UrlFailure::Timeout)?;
            let Some(frame) = frame else {
                return Ok(());
            };
            let frame = frame.map_err(|e| UrlFailure::Body(error_chain(&e)))?;
            if let Ok(data) = frame.into_data() {
                out.write_all(&data).map_err(cache_failure)?;
            }
        }
    }
}

/// A pinned sum names the content: a blob with that name is that download, unchanged.
fn pinned(cache: &FetchCache, expected: Option<&str>) -> Option<Downloaded> {
    let expected = expected
        .filter(|e| e.len() == 64 && e.bytes().all(|b| b.is_ascii_hexdigit()))?
        .to_ascii_lowercase();
    let meta = std::fs::metadata(cache.blob(&expected)).ok()?;
    Some(Downloaded {
        sha256: expected,
        bytes: meta.len(),
        transferred: false,
    })
}

fn cache_failure(error: impl std::fmt::Display) -> UrlFailure {
    UrlFailure::Cache(error.to_string())
}

/// A redirect's target: an absolute URL, or a path on the same server.
fn follow(from: &Uri, location: &str) -> Result<Uri, UrlFailure> {
    let bad = |e: String| UrlFailure::BadUrl(format!("redirect to `{location}`: {e}"));
    if location.contains("://") {
        return location
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| bad(e.to_string()));
    }
    let mut parts = from.clone().into_parts();
    let path = if location.starts_with('/') {
        location.to_string()
    } else {
        let base = from.path();
        format!(
            "{}{location}",
            &base[..base.rfind('/').map_or(0, |i| i + 1)]
        )
    };
    parts.path_and_query = Some(
        path.parse()
            .map_err(|e: hyper::http::uri::InvalidUri| bad(e.to_string()))?,
    );
    Uri::from_parts(parts).map_err(|e| bad(e.to_string()))
}

/// An error and its causes on one line (hyper's top error says little: "client error
/// (Connect)").
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_resolve_against_the_current_url() {
        let from: Uri = "http://h:1/a/b/c.tar.gz?x=1".parse().unwrap();
        assert_eq!(
            follow(&from, "https://o/x").unwrap().to_string(),
            "https://o/x"
        );
        assert_eq!(follow(&from, "/y").unwrap().to_string(), "http://h:1/y");
        assert_eq!(follow(&from, "z").unwrap().to_string(), "http://h:1/a/b/z");
    }

    #[test]
    fn only_network_failures_are_retried() {
        assert!(UrlFailure::Timeout.is_transient());
        assert!(UrlFailure::Status(503).is_transient());
        assert!(!UrlFailure::Status(404).is_transient());
        assert!(
            !UrlFailure::Sha256 {
                expected: "a".into(),
                actual: "b".into()
            }
            .is_transient()
        );
    }
}
