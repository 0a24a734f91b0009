//! Reading a registry over its HTTP API (the Docker Registry / OCI distribution API): an image's
//! manifest and config (its labels and ID) without any engine holding it, and a manifest copied
//! under another tag (the atomic push's tag move, done in the registry for a pool of engines).
//!
//! Plain HTTP only, as engines speak to a registry on loopback (dockerd trusts `127.0.0.0/8`
//! without TLS); a registry that answers otherwise (TLS, token auth) is "not readable" and the
//! callers fall back to the engines. Basic credentials are sent when given.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::common::types::Credentials;
use crate::engine::split_reference;

crate::common::error::message_error!(
    /// A registry request that failed: no answer, an unexpected status, a body that is no
    /// manifest.
    RegistryError
);

/// The manifest media types asked for: one image's manifest, Docker's or OCI's.
const MANIFESTS: &str = "application/vnd.docker.distribution.manifest.v2+json, \
                         application/vnd.oci.image.manifest.v1+json";

/// An image as the registry serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteImage {
    /// The config's digest: the image ID an engine gives the pulled image.
    pub id: String,
    pub labels: BTreeMap<String, String>,
}

/// A registry at `host:port`, read over plain HTTP.
pub struct Registry {
    host: String,
    client: Client<HttpConnector, Full<Bytes>>,
    auth: Option<String>,
}

impl Registry {
    pub fn new(host: &str, credentials: Option<&Credentials>) -> Registry {
        let auth = credentials.map(|c| {
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", c.username, c.password));
            format!("Basic {token}")
        });
        Registry {
            host: host.to_string(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            auth,
        }
    }

    /// `(status, content type, body)` of one request, bounded to 60 s.
    async fn call(
        &self,
        method: Method,
        path: &str,
        accept: Option<&str>,
        body: Option<(String, Bytes)>,
    ) -> Result<(StatusCode, String, Bytes), RegistryError> {
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
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| RegistryError(format!("{uri}: {e}")))?;
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
                .map_err(|e| RegistryError(format!("{uri}: {e}")))?
                .to_bytes();
            Ok((status, content_type, body))
        };
        tokio::time::timeout(Duration::from_secs(60), exchange)
            .await
            .map_err(|_| RegistryError(format!("{uri}: no answer within 60 s")))?
    }

    /// The manifest of `repository:tag` (its content type and bytes), `None` when absent.
    async fn manifest(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<Option<(String, Bytes)>, RegistryError> {
        let path = format!("/v2/{repository}/manifests/{tag}");
        let (status, content_type, body) =
            self.call(Method::GET, &path, Some(MANIFESTS), None).await?;
        match status {
            StatusCode::OK => Ok(Some((content_type, body))),
            StatusCode::NOT_FOUND => Ok(None),
            status => Err(RegistryError(format!(
                "GET {path}: {status}: {}",
                String::from_utf8_lossy(&body).trim()
            ))),
        }
    }

    /// The image `reference` (`host:port/repository:tag`, of this registry) names: its ID and
    /// labels, read from its manifest and config; `None` when the registry lacks it.
    pub async fn image(&self, reference: &str) -> Result<Option<RemoteImage>, RegistryError> {
        let (repository, tag) = self.split(reference)?;
        let Some((_, manifest)) = self.manifest(repository, tag).await? else {
            return Ok(None);
        };
        let manifest: serde_json::Value = serde_json::from_slice(&manifest)
            .map_err(|e| RegistryError(format!("{reference}: the manifest is no JSON: {e}")))?;
        let Some(digest) = manifest["config"]["digest"].as_str() else {
            return Err(RegistryError(format!(
                "{reference}: the manifest names no config (a manifest list?)"
            )));
        };
        let path = format!("/v2/{repository}/blobs/{digest}");
        let (status, _, config) = self.call(Method::GET, &path, None, None).await?;
        if status != StatusCode::OK {
            return Err(RegistryError(format!("GET {path}: {status}")));
        }
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
            id: digest.to_string(),
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
            .call(Method::PUT, &path, None, Some((content_type, manifest)))
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
}
