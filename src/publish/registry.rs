//! Reading a registry over its HTTP API (the Docker Registry / OCI distribution API): an image's
//! manifest and config (its labels and ID) without any engine holding it, its blobs (whole, or
//! streamed for layers), and a manifest copied under another tag (the atomic push's tag move,
//! done in the registry for a pool of engines).
//!
//! Plain HTTP only, as engines speak to a registry on loopback (dockerd trusts `127.0.0.0/8`
//! without TLS); a registry that answers otherwise (TLS, token auth, a redirect) is "not
//! readable" and the callers fall back to the engines. Basic credentials are sent when given.

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use tokio::io::AsyncRead;
use tokio_util::io::StreamReader;

use crate::common::types::Credentials;
use crate::engine::split_reference;
use sha2::{Digest, Sha256};

crate::common::error::message_error!(
    /// A registry request that failed: no answer, an unexpected status, a body that is no
    /// manifest.
    RegistryError
);

/// The manifest media types asked for: one image's manifest, Docker's or OCI's.
const MANIFESTS: &str = "application/vnd.docker.distribution.manifest.v2+json, \
                         application/vnd.oci.image.manifest.v1+json";

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an exchange read whole may take, and a streamed blob's answer or any one read of it.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// The most of a blob read whole (a config): more is an error, not memory spent.
const WHOLE_BLOB_LIMIT: usize = 16 << 20;

/// An image as the registry serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteImage {
    /// The config's digest: the image ID an engine gives the pulled image.
    pub id: String,
    /// The manifest's digest: `repo@<digest>` pulls this very image.
    pub digest: String,
    pub labels: BTreeMap<String, String>,
}

/// One image's manifest: its config and its layers (base first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageManifest {
    /// Of the manifest's bytes as served (the registry serves the stored bytes for the types
    /// asked for): the digest that pulls this image.
    pub digest: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// A blob as a manifest names it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
}

/// A registry at `host:port`, read over plain HTTP.
pub struct Registry {
    host: String,
    client: Client<HttpConnector, Full<Bytes>>,
    auth: Option<String>,
    /// [`READ_TIMEOUT`], shorter in tests.
    read_timeout: Duration,
}

impl Registry {
    pub fn new(host: &str, credentials: Option<&Credentials>) -> Registry {
        let auth = credentials.map(|c| {
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", c.username, c.password));
            format!("Basic {token}")
        });
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        Registry {
            host: host.to_string(),
            client: Client::builder(TokioExecutor::new()).build(connector),
            auth,
            read_timeout: READ_TIMEOUT,
        }
    }

    /// The answer to one request, its body not read yet; not bounded in time (the callers are).
    async fn send(
        &self,
        method: Method,
        path: &str,
        accept: Option<&str>,
        body: Option<(String, Bytes)>,
    ) -> Result<Response<Incoming>, RegistryError> {
        let uri = format!("http://{}{path}", self.host);
        let mut request = Request::builder().method(method).uri(&uri);
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        if let Some(auth) = &self.auth {
            request = request.header("Authorization", auth);
        }
        let payload = match body {
            Some((content_type, bytes)) => {
                request = request.header("Content-Type", content_type);
                bytes
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(payload))
            .map_err(|e| RegistryError(format!("{uri}: {e}")))?;
        self.client
            .request(request)
            .await
            .map_err(|e| RegistryError(format!("{uri}: {e}")))
    }

    /// `(status, content type, body)` of the request `sent` (to `path`), the whole exchange
    /// bounded to 60 s.
    async fn call(
        &self,
        path: &str,
        sent: impl Future<Output = Result<Response<Incoming>, RegistryError>>,
    ) -> Result<(StatusCode, String, Bytes), RegistryError> {
        let exchange = async {
            let response = sent.await?;
            let status = response.status();
            let content_type = response
                .headers()
                .get("Content-Type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| RegistryError(format!("{}{path}: {e}", self.host)))?
                .to_bytes();
            Ok((status, content_type, body))
        };
        self.bounded(path, exchange).await?
    }

    /// `work` if it ends within the read timeout.
    async fn bounded<T>(
        &self,
        path: &str,
        work: impl Future<Output = T>,
    ) -> Result<T, RegistryError> {
        tokio::time::timeout(self.read_timeout, work)
            .await
            .map_err(|_| {
                RegistryError(format!(
                    "{}{path}: no answer within {} s",
                    self.host,
                    self.read_timeout.as_secs()
                ))
            })
    }

    /// The manifest of `repository:tag` (its content type and bytes), `None` when absent.
    async fn manifest(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<Option<(String, Bytes)>, RegistryError> {
        let path = format!("/v2/{repository}/manifests/{tag}");
        let (status, content_type, body) = self
            .call(&path, self.send(Method::GET, &path, Some(MANIFESTS), None))
            .await?;
        match status {
            StatusCode::OK => Ok(Some((content_type, body))),
            StatusCode::NOT_FOUND => Ok(None),
            status => Err(RegistryError(format!(
                "GET {path}: {status}: {}",
                String::from_utf8_lossy(&body).trim()
            ))),
        }
    }

    /// The manifest of the image `reference` (`host:port/repository:tag`, of this registry)
    /// names: its config and layers; `None` when the registry lacks it.
    pub async fn image_manifest(
        &self,
        reference: &str,
    ) -> Result<Option<ImageManifest>, RegistryError> {
        #[derive(Deserialize)]
        struct Parsed {
            config: Option<Descriptor>,
            #[serde(default)]
            layers: Vec<Descriptor>,
        }
        let (repository, tag) = self.split(reference)?;
        let Some((_, bytes)) = self.manifest(repository, tag).await? else {
            return Ok(None);
        };
        let manifest: Parsed = serde_json::from_slice(&bytes).map_err(|e| {
            RegistryError(format!(
                "{reference}: the manifest is no JSON manifest: {e}"
            ))
        })?;
        let Some(config) = manifest.config else {
            return Err(RegistryError(format!(
                "{reference}: the manifest names no config (a manifest list?)"
            )));
        };
        Ok(Some(ImageManifest {
            digest: format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
            config,
            layers: manifest.layers,
        }))
    }

    /// The blob `digest` of `repository`, whole: for small ones (a config), bounded to 16 MiB
    /// and 60 s.
    pub async fn blob(&self, repository: &str, digest: &str) -> Result<Bytes, RegistryError> {
        let path = blob_path(repository, digest);
        let read = async {
            let body = self.blob_response(&path).await?.into_body();
            Limited::new(body, WHOLE_BLOB_LIMIT)
                .collect()
                .await
                .map(|body| body.to_bytes())
                .map_err(|e| RegistryError(format!("GET {path}: {e}")))
        };
        self.bounded(&path, read).await?
    }

    /// The blob `digest` of `repository` as a stream of its bytes, never held whole (a layer
    /// can be hundreds of MB): the answer must come within 60 s, and so must each read after it
    /// (a stalled registry is a read error, not a hang). A body cut short is a read error too.
    pub async fn blob_reader(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<impl AsyncRead + Send + Unpin + 'static, RegistryError> {
        let path = blob_path(repository, digest);
        let body = self
            .bounded(&path, self.blob_response(&path))
            .await??
            .into_body();
        let timeout = self.read_timeout;
        // The body's data frames, each awaited within the timeout; the stream ends at its first
        // error.
        let frames = futures_util::stream::unfold(Some(body), move |body| async move {
            let mut body = body?;
            loop {
                let data = match tokio::time::timeout(timeout, body.frame()).await {
                    Err(_) => Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no data within {} s", timeout.as_secs()),
                    )),
                    Ok(None) => return None,
                    Ok(Some(Err(e))) => Err(io::Error::other(e)),
                    Ok(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) => Ok(data),
                        // Trailers carry no data.
                        Err(_) => continue,
                    },
                };
                return Some(match data {
                    Ok(data) => (Ok(data), Some(body)),
                    Err(e) => (Err(e), None),
                });
            }
        });
        Ok(StreamReader::new(Box::pin(frames)))
    }

    /// The answer to GET `path` (a blob), its body unread; an error for any status but 200
    /// (redirects included).
    async fn blob_response(&self, path: &str) -> Result<Response<Incoming>, RegistryError> {
        let response = self.send(Method::GET, path, None, None).await?;
        match response.status() {
            StatusCode::OK => Ok(response),
            status => Err(RegistryError(format!("GET {path}: {status}"))),
        }
    }

    /// The image `reference` (`host:port/repository:tag`, of this registry) names: its ID and
    /// labels, read from its manifest and config; `None` when the registry lacks it.
    pub async fn image(&self, reference: &str) -> Result<Option<RemoteImage>, RegistryError> {
        let Some(manifest) = self.image_manifest(reference).await? else {
            return Ok(None);
        };
        let (repository, _) = self.split(reference)?;
        let id = manifest.config.digest;
        let config = self.blob(repository, &id).await?;
        let config: serde_json::Value = serde_json::from_slice(&config)
            .map_err(|e| RegistryError(format!("{reference}: the config is no JSON: {e}")))?;
        let labels = config["config"]["Labels"]
            .as_object()
            .map(|labels| {
                labels
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(RemoteImage {
            id,
            digest: manifest.digest,
            labels,
        }))
    }

    /// Puts the manifest of `from` under `to` too (both references in this registry, same
    /// repository): the tag moves without any engine.
    pub async fn copy_tag(&self, from: &str, to: &str) -> Result<(), RegistryError> {
        let (repository, from_tag) = self.split(from)?;
        let (to_repository, to_tag) = self.split(to)?;
        if repository != to_repository {
            return Err(RegistryError(format!(
                "{from} and {to} are not in one repository"
            )));
        }
        let Some((content_type, manifest)) = self.manifest(repository, from_tag).await? else {
            return Err(RegistryError(format!("{from} is not in the registry")));
        };
        let path = format!("/v2/{repository}/manifests/{to_tag}");
        let (status, _, body) = self
            .call(
                &path,
                self.send(Method::PUT, &path, None, Some((content_type, manifest))),
            )
            .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(RegistryError(format!(
                "PUT {path}: {status}: {}",
                String::from_utf8_lossy(&body).trim()
            )))
        }
    }

    /// `host:port/repository:tag` → (`repository`, `tag`), for a reference of this registry.
    fn split<'a>(&self, reference: &'a str) -> Result<(&'a str, &'a str), RegistryError> {
        let (name, tag) = split_reference(reference);
        name.strip_prefix(&format!("{}/", self.host))
            .map(|repository| (repository, tag))
            .ok_or_else(|| RegistryError(format!("`{reference}` is not in {}", self.host)))
    }
}

fn blob_path(repository: &str, digest: &str) -> String {
    format!("/v2/{repository}/blobs/{digest}")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    pub(crate) type Log = Arc<Mutex<Vec<String>>>;
    pub(crate) type Routes = Arc<Mutex<BTreeMap<String, (u16, &'static str, String)>>>;

    /// A registry on a loopback port answering `routes` ("METHOD path" → (status, content type,
    /// body)), 404 otherwise; records each request as "METHOD path content-type body".
    pub(crate) async fn serve(
        routes: BTreeMap<String, (u16, &'static str, String)>,
    ) -> (String, Log, Routes) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let log: Log = Arc::default();
        let seen = log.clone();
        let routes: Routes = Arc::new(Mutex::new(routes));
        let table = routes.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                let (head, body) = loop {
                    let n = stream.read(&mut buf).await.unwrap();
                    data.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&data).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_lowercase()
                                    .strip_prefix("content-length: ")
                                    .map(str::to_string)
                            })
                            .and_then(|n| n.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if body.len() >= length || n == 0 {
                            break (head.to_string(), body.to_string());
                        }
                    }
                };
                let line: Vec<&str> = head.lines().next().unwrap().split(' ').collect();
                let key = format!("{} {}", line[0], line[1]);
                let content_type = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-type: "))
                    .unwrap_or("-");
                seen.lock()
                    .unwrap()
                    .push(format!("{key} {content_type} {body}"));
                let route = table.lock().unwrap().get(&key).cloned();
                let (status, kind, reply) = route.unwrap_or((404, "text/plain", String::new()));
                let response = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                    reply.len()
                );
                stream.write_all(response.as_bytes()).await.unwrap();
            }
        });
        (host, log, routes)
    }

    /// What [`serve_raw`] does after writing an answer: close the connection, or hold it open
    /// (a stalled registry) until the client goes.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Then {
        Close,
        Hold,
    }

    /// A registry on a loopback port writing the raw bytes `answers` holds for "GET path" (a
    /// status line, headers and body, as given), 404 otherwise; one request per connection.
    pub(crate) async fn serve_raw(answers: BTreeMap<String, (Vec<u8>, Then)>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let answers = Arc::new(answers);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let answers = answers.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.ends_with(b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).to_string();
                    let line: Vec<&str> = head.lines().next().unwrap().split(' ').collect();
                    let key = format!("{} {}", line[0], line[1]);
                    let (answer, then) = answers.get(&key).cloned().unwrap_or((
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec(),
                        Then::Close,
                    ));
                    let _ = stream.write_all(&answer).await;
                    if then == Then::Hold {
                        while stream.read(&mut buf).await.is_ok_and(|n| n > 0) {}
                    }
                });
            }
        });
        host
    }

    /// A 200 answer carrying `body` in chunks of `chunk` bytes (`Transfer-Encoding: chunked`).
    pub(crate) fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
        let mut out =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
        for piece in body.chunks(chunk) {
            out.extend_from_slice(format!("{:x};ext=1\r\n", piece.len()).as_bytes());
            out.extend_from_slice(piece);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    }

    /// A 200 answer carrying `body` with its `Content-Length`.
    pub(crate) fn whole(body: &[u8]) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body);
        out
    }

    pub(crate) const MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

    fn routes() -> BTreeMap<String, (u16, &'static str, String)> {
        let manifest = r#"{"schemaVersion":2,"config":{"digest":"sha256:c0"}}"#.to_string();
        let config = r#"{"config":{"Labels":{"hash":"h1","n":"1"}}}"#.to_string();
        BTreeMap::from([
            (
                "GET /v2/ns/x/manifests/1".to_string(),
                (200, MANIFEST, manifest),
            ),
            (
                "GET /v2/ns/x/blobs/sha256:c0".to_string(),
                (200, "application/json", config),
            ),
            (
                "PUT /v2/ns/x/manifests/2".to_string(),
                (201, "text/plain", String::new()),
            ),
        ])
    }

    #[tokio::test]
    async fn an_image_is_read_from_its_manifest_and_config_and_a_missing_one_is_none() {
        let (host, _, _) = serve(routes()).await;
        let registry = Registry::new(&host, None);
        let image = registry
            .image(&format!("{host}/ns/x:1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(image.id, "sha256:c0");
        // The manifest's own digest, as the registry would answer in Docker-Content-Digest.
        let manifest = r#"{"schemaVersion":2,"config":{"digest":"sha256:c0"}}"#;
        assert_eq!(
            image.digest,
            format!("sha256:{}", hex::encode(Sha256::digest(manifest)))
        );
        assert_eq!(image.labels.get("hash").map(String::as_str), Some("h1"));
        assert_eq!(
            registry.image(&format!("{host}/ns/y:1")).await.unwrap(),
            None
        );
        let err = registry.image("elsewhere:5000/ns/x:1").await.unwrap_err();
        assert!(err.contains("is not in"), "{err}");
    }

    #[tokio::test]
    async fn a_tag_is_copied_with_the_manifest_and_its_type() {
        let (host, log, _) = serve(routes()).await;
        let registry = Registry::new(&host, None);
        registry
            .copy_tag(&format!("{host}/ns/x:1"), &format!("{host}/ns/x:2"))
            .await
            .unwrap();
        let put = log.lock().unwrap().last().cloned().unwrap();
        assert_eq!(
            put,
            format!(
                r#"PUT /v2/ns/x/manifests/2 {MANIFEST} {{"schemaVersion":2,"config":{{"digest":"sha256:c0"}}}}"#
            )
        );
        let err = registry
            .copy_tag(&format!("{host}/ns/z:1"), &format!("{host}/ns/z:2"))
            .await
            .unwrap_err();
        assert!(err.contains("is not in the registry"), "{err}");
    }

    /// Bytes that are not all alike: `n` of them.
    fn varied(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    async fn read_all(
        registry: &Registry,
        digest: &str,
    ) -> Result<Result<Vec<u8>, io::Error>, RegistryError> {
        use tokio::io::AsyncReadExt as _;
        let mut reader = registry.blob_reader("ns/x", digest).await?;
        let mut out = Vec::new();
        Ok(reader.read_to_end(&mut out).await.map(|_| out))
    }

    #[tokio::test]
    async fn a_blob_is_streamed_chunked_or_whole_and_a_redirect_or_a_short_body_is_an_error() {
        let body = varied(300_000);
        let mut short = whole(&body);
        short.truncate(short.len() - 10);
        let blob = |name: &str| format!("GET /v2/ns/x/blobs/sha256:{name}");
        let host = serve_raw(BTreeMap::from([
            (blob("chunked"), (chunked(&body, 65_536), Then::Close)),
            (blob("whole"), (whole(&body), Then::Close)),
            (blob("short"), (short, Then::Close)),
            (
                blob("moved"),
                (
                    b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://elsewhere/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
                    Then::Close,
                ),
            ),
        ]))
        .await;
        let registry = Registry::new(&host, None);
        for name in ["sha256:chunked", "sha256:whole"] {
            let read = read_all(&registry, name).await.unwrap().unwrap();
            assert!(read == body, "{name}: {} bytes read", read.len());
            let whole = registry.blob("ns/x", name).await.unwrap();
            assert!(whole == body, "{name}: {} bytes read whole", whole.len());
        }
        let cut = read_all(&registry, "sha256:short").await.unwrap();
        assert!(cut.is_err(), "a body shorter than its length is an error");
        let err = read_all(&registry, "sha256:moved").await.unwrap_err();
        assert!(err.contains("307"), "{err}");
        let err = read_all(&registry, "sha256:absent").await.unwrap_err();
        assert!(err.contains("404"), "{err}");
    }

    #[tokio::test]
    async fn a_stalled_blob_is_a_read_error_not_a_hang() {
        let mut started = chunked(&varied(1000), 500);
        started.truncate(started.len() - 600);
        let host = serve_raw(BTreeMap::from([
            (
                "GET /v2/ns/x/blobs/sha256:stalls".to_string(),
                (started, Then::Hold),
            ),
            (
                "GET /v2/ns/x/blobs/sha256:silent".to_string(),
                (Vec::new(), Then::Hold),
            ),
        ]))
        .await;
        let registry = Registry {
            read_timeout: Duration::from_millis(300),
            ..Registry::new(&host, None)
        };
        let begun = std::time::Instant::now();
        let err = read_all(&registry, "sha256:stalls")
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        let err = read_all(&registry, "sha256:silent").await.unwrap_err();
        assert!(err.contains("no answer within"), "{err}");
        assert!(begun.elapsed() < Duration::from_secs(10));
    }
}
