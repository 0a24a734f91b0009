//! [`Engine`] over the Docker Engine API (dockerd, or podman's compatible service) with bollard.
//!
//! Podman (`podman system service`) answers the same API with a few differences, found on
//! Debian's podman 4.3 and listed in docs/SCALE-OUT.md ("Podman"). Only one needs a different
//! request: its image import ignores the `tag` parameter, so the tag goes into `repo`. The
//! others need nothing here: it stores short names as `docker.io/...` but resolves short names
//! in lookups, tags, builds and `FROM` to the same images; its `save` writes the docker-archive
//! layout (`manifest.json`, `<id>.tar` layers) that the export reader takes.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    PushImageOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
    TagImageOptionsBuilder,
};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::common::types::Credentials;
use crate::engine::{
    BuildRequest, ByteReceiver, Engine, EngineError, ImageFacts, LogSink, PARENT_ID_LABEL,
    SaveStream, split_reference,
};

/// The Docker Engine API over a unix socket or TCP.
#[derive(Clone)]
pub struct DockerEngine {
    docker: Docker,
    url: String,
    credentials: Option<Credentials>,
    flavor: Flavor,
}

/// Which server answers the Docker API, as its `/version` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Docker,
    /// `podman system service`: its `/version` lists a component named `Podman Engine`.
    Podman,
}

impl Flavor {
    fn of(version: &bollard::models::SystemVersion) -> Flavor {
        let podman = version
            .components
            .iter()
            .flatten()
            .any(|c| c.name.starts_with("Podman"));
        if podman {
            Flavor::Podman
        } else {
            Flavor::Docker
        }
    }
}

/// An error with its causes: a failed connection's reason (a refused TLS certificate, a
/// missing socket) is only in the causes of the client's error.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let more = inner.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = inner.source();
    }
    text
}

/// The API client for `url` (no request made yet).
fn client(url: &str, tls_dir: Option<&Path>) -> Result<Docker, EngineError> {
    let unusable = |message: String| EngineError::Address {
        url: url.to_string(),
        message,
    };
    // Builds take long: bound them with our own per-build timeout, not the client's 2 min.
    let timeout = 24 * 3600;
    let version = bollard::API_DEFAULT_VERSION;
    let tcp = url.starts_with("tcp://") || url.starts_with("http://");
    let docker = match (tls_dir, url.strip_prefix("unix://")) {
        (None, Some(path)) => Docker::connect_with_unix(path, timeout, version),
        (None, None) if tcp => Docker::connect_with_http(url, timeout, version),
        (None, None) if url.starts_with("ssh://") => {
            // bollard hands ssh `user@host:port` whole, which ssh takes for a host name.
            let authority = &url["ssh://".len()..];
            if authority
                .rsplit('@')
                .next()
                .is_some_and(|h| h.contains(':'))
            {
                return Err(unusable(
                    "ssh:// engines take no port in the URL (the client library does not pass \
                     it on): give the machine a `Host` entry with its `Port` (and `User`) in \
                     ~/.ssh/config and use ssh://that-name"
                        .into(),
                ));
            }
            Docker::connect_with_ssh(url, timeout, version, None)
        }
        (Some(dir), None) if tcp || url.starts_with("https://") => {
            let files = ["ca.pem", "cert.pem", "key.pem"].map(|f| dir.join(f));
            if let Some(missing) = files.iter().find(|f| !f.is_file()) {
                return Err(unusable(format!(
                    "the TLS file {} is missing: point the engine's `tls_dir` (build.toml \
                     `[[engine]]`) or DOCKER_CERT_PATH at a directory with ca.pem, cert.pem \
                     and key.pem (the client files of a daemon started with --tlsverify)",
                    missing.display()
                )));
            }
            let [ca, cert, key] = &files;
            Docker::connect_with_ssl(url, key, cert, ca, timeout, version)
        }
        (Some(_), _) => {
            return Err(unusable(
                "TLS files are given for an engine that is not tcp:// or https://".into(),
            ));
        }
        _ => {
            return Err(unusable(
                "expected unix:///path, tcp://host:port, https://host:port (TLS) or \
                 ssh://[user@]host"
                    .into(),
            ));
        }
    };
    docker.map_err(|e| {
        if url.starts_with("unix://") {
            // No socket there: the engine is not running (the hint says how to start it).
            EngineError::Unreachable {
                url: url.to_string(),
                message: e.to_string(),
            }
        } else {
            unusable(e.to_string())
        }
    })
}

impl DockerEngine {
    /// Connects and checks the engine answers, so a dead engine is reported before any work.
    /// `unix:///path` and `tcp://host:port` speak plain HTTP; with `tls_dir` (or an `https://`
    /// URL, whose files the settings have found) the client verifies the engine against
    /// `ca.pem` and shows `cert.pem`/`key.pem`, as a daemon started with `--tlsverify` expects;
    /// `ssh://[user@]host` runs `docker system dial-stdio` on the host through the system's
    /// `ssh` (its config, agent and known hosts; a port goes into its config).
    pub async fn connect(url: &str, tls_dir: Option<&Path>) -> Result<DockerEngine, EngineError> {
        let unreachable = |message: String| EngineError::Unreachable {
            url: url.to_string(),
            message,
        };
        let docker = client(url, tls_dir)?;
        let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
            .await
            .map_err(|_| unreachable("no answer within 10 s".into()))?
            .map_err(|e| unreachable(with_causes(&e)))?;
        tokio::time::timeout(Duration::from_secs(10), docker.ping())
            .await
            .map_err(|_| unreachable("no answer within 10 s".into()))?
            .map_err(|e| unreachable(with_causes(&e)))?;
        let version = tokio::time::timeout(Duration::from_secs(10), docker.version())
            .await
            .map_err(|_| unreachable("no answer within 10 s".into()))?
            .map_err(|e| unreachable(with_causes(&e)))?;
        Ok(DockerEngine {
            docker,
            url: url.to_string(),
            credentials: None,
            flavor: Flavor::of(&version),
        })
    }

    /// Whether this is dockerd or podman.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// Credentials sent with pushes.
    pub fn with_credentials(mut self, credentials: Option<Credentials>) -> DockerEngine {
        self.credentials = credentials;
        self
    }

    /// IDs of every container, running or not (to prove builds leave none behind).
    pub async fn container_ids(&self) -> Result<Vec<String>, EngineError> {
        let options = ListContainersOptionsBuilder::default().all(true).build();
        let list = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| EngineError::Api(format!("listing containers: {e}")))?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    pub async fn remove_container(&self, id: &str) -> Result<(), EngineError> {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        self.docker
            .remove_container(id, Some(options))
            .await
            .map_err(|e| EngineError::Api(format!("removing container {id}: {e}")))
    }
}

impl Engine for DockerEngine {
    fn url(&self) -> &str {
        &self.url
    }

    async fn ping(&self) -> Result<(), EngineError> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| EngineError::Unreachable {
                url: self.url.clone(),
                message: e.to_string(),
            })
    }

    async fn pull(&self, reference: &str) -> Result<(), EngineError> {
        // A digest reference goes whole (docker and podman take `fromImage=repo@sha256:...`).
        let options = if reference.contains('@') {
            CreateImageOptionsBuilder::default()
                .from_image(reference)
                .build()
        } else {
            let (repo, tag) = split_reference(reference);
            CreateImageOptionsBuilder::default()
                .from_image(repo)
                .tag(tag)
                .build()
        };
        let mut stream = self.docker.create_image(Some(options), None, None);
        while let Some(item) = stream.next().await {
            item.map_err(|e| EngineError::Pull(e.to_string()))?;
        }
        Ok(())
    }

    async fn push(&self, reference: &str, log: LogSink) -> Result<Option<String>, EngineError> {
        self.push_once(reference, &log).await
    }

    async fn inspect(&self, reference: &str) -> Result<Option<ImageFacts>, EngineError> {
        match self.docker.inspect_image(reference).await {
            Ok(image) => Ok(Some(ImageFacts {
                id: image.id.unwrap_or_default(),
                labels: image
                    .config
                    .and_then(|c| c.labels)
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
                diff_ids: image.root_fs.and_then(|r| r.layers).unwrap_or_default(),
            })),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(EngineError::Api(format!("inspecting {reference}: {e}"))),
        }
    }

    fn save(&self, references: &[String]) -> SaveStream {
        let references: Vec<&str> = references.iter().map(String::as_str).collect();
        self.docker
            .export_images(&references)
            .map(|chunk| chunk.map_err(|e| EngineError::Save(e.to_string())))
            .boxed()
    }

    async fn import(
        &self,
        repo: &str,
        tag: &str,
        body: ByteReceiver,
    ) -> Result<String, EngineError> {
        let reference = format!("{repo}:{tag}");
        let options = match self.flavor {
            Flavor::Docker => CreateImageOptionsBuilder::default()
                .from_src("-")
                .repo(repo)
                .tag(tag),
            // Podman 4.3 ignores `tag` on an import (the image becomes `repo:latest`), but
            // takes a tag inside `repo`.
            Flavor::Podman => CreateImageOptionsBuilder::default()
                .from_src("-")
                .repo(&reference),
        }
        .build();
        let body = bollard::body_try_stream(tokio_stream_from(body));
        let mut stream = self.docker.create_image(Some(options), Some(body), None);
        while let Some(item) = stream.next().await {
            item.map_err(|e| EngineError::Api(format!("importing {reference}: {e}")))?;
        }
        self.inspect(&reference)
            .await?
            .map(|facts| facts.id)
            .ok_or_else(|| EngineError::Api(format!("{reference} is missing after its import")))
    }

    async fn remove(&self, reference: &str) -> Result<(), EngineError> {
        let options = RemoveImageOptionsBuilder::default().noprune(false).build();
        match self
            .docker
            .remove_image(reference, Some(options), None)
            .await
        {
            Ok(_) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(EngineError::Api(format!("removing {reference}: {e}"))),
        }
    }

    async fn tag(&self, source: &str, repo: &str, tag: &str) -> Result<(), EngineError> {
        let options = TagImageOptionsBuilder::default()
            .repo(repo)
            .tag(tag)
            .build();
        self.docker
            .tag_image(source, Some(options))
            .await
            .map_err(|e| EngineError::Api(format!("tagging {source} as {repo}:{tag}: {e}")))
    }

    async fn build(&self, request: BuildRequest, log: LogSink) -> Result<String, EngineError> {
        let (writer, context) = stream_context(request.context.clone());
        let options = build_options(&request, &self.labels_of(&request).await?);
        let body = bollard::body_try_stream(tokio_stream_from(context));
        let stream = self.docker.build_image(options, None, Some(body));
        let (image_id, failure) = follow_build(stream, &log).await;
        let context_result = writer.await;
        if let Some(failure) = failure {
            return Err(failure);
        }
        if let Ok(Err(e)) = context_result {
            return Err(EngineError::Build(format!(
                "writing the build context: {e}"
            )));
        }
        match image_id {
            Some(id) => Ok(id),
            None => self
                .inspect(&request.reference)
                .await?
                .map(|facts| facts.id)
                .ok_or_else(|| {
                    EngineError::Build(format!(
                        "the engine reported no image for {}",
                        request.reference
                    ))
                }),
        }
    }
}

/// The build context, written by a blocking thread into a bounded channel and streamed: it is
/// never held whole in memory. The thread's result says whether the whole context was written.
fn stream_context(
    spec: crate::prepare::context::ContextSpec,
) -> (
    tokio::task::JoinHandle<io::Result<()>>,
    mpsc::Receiver<io::Result<Bytes>>,
) {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(16);
    let writer = tokio::task::spawn_blocking(move || {
        let out = ChannelWriter::new(tx.clone());
        match spec.write_tar(out).and_then(ChannelWriter::finish) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = tx.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
                Err(e)
            }
        }
    });
    (writer, rx)
}

/// The build's query: tag, cache and pull choices, network, labels and build arguments.
fn build_options(
    request: &BuildRequest,
    labels: &std::collections::BTreeMap<String, String>,
) -> bollard::query_parameters::BuildImageOptions {
    let labels: HashMap<&str, &str> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let args: HashMap<&str, &str> = request
        .build_args
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(&request.reference)
        .rm(!request.keep)
        .forcerm(!request.keep)
        .nocache(request.no_cache)
        .pull(if request.pull { "true" } else { "" })
        .networkmode(&request.network_mode)
        .labels(&labels)
        .buildargs(&args)
        .build()
}

/// Reads a build's messages to the end: its output lines go to `log`; gives the image ID the
/// engine announced, and the failure (a step's error, or the API's, which ends the stream).
async fn follow_build(
    mut stream: impl futures_util::Stream<
        Item = Result<bollard::models::BuildInfo, bollard::errors::Error>,
    > + Unpin,
    log: &LogSink,
) -> (Option<String>, Option<EngineError>) {
    let mut image_id = None;
    let mut failure = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(text) = info.stream {
                    for line in text.lines().filter(|l| !l.trim().is_empty()) {
                        let _ = log.send(line.to_string());
                    }
                }
                if let Some(id) = info.aux.and_then(|aux| aux.id) {
                    image_id = Some(id);
                }
            }
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                let _ = log.send(error.clone());
                failure = Some(EngineError::Build(error));
            }
            Err(e) => {
                failure = Some(EngineError::Api(e.to_string()));
                break;
            }
        }
    }
    (image_id, failure)
}

impl DockerEngine {
    /// The request's labels, and the parent's image ID when the parent is there (freshness
    /// compares it: a rebuilt parent makes its children stale).
    async fn labels_of(
        &self,
        request: &BuildRequest,
    ) -> Result<std::collections::BTreeMap<String, String>, EngineError> {
        let mut labels = request.labels.clone();
        if let Some(parent) = &request.parent {
            if let Some(facts) = self.inspect(parent).await? {
                labels.insert(PARENT_ID_LABEL.to_string(), facts.id);
            }
        }
        Ok(labels)
    }

    async fn push_once(
        &self,
        reference: &str,
        log: &LogSink,
    ) -> Result<Option<String>, EngineError> {
        let (name, tag) = split_reference(reference);
        let options = PushImageOptionsBuilder::default().tag(tag).build();
        let credentials = self.credentials.as_ref().map(|c| DockerCredentials {
            username: Some(c.username.clone()),
            password: Some(c.password.clone()),
            serveraddress: name.split('/').next().map(str::to_string),
            ..DockerCredentials::default()
        });
        let mut stream = self.docker.push_image(name, Some(options), credentials);
        let mut digest = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(status) = info.status {
                        digest = digest.or_else(|| pushed_digest(&status));
                        let _ = log.send(status);
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    return Err(EngineError::Push(error));
                }
                Err(e) => return Err(EngineError::Push(e.to_string())),
            }
        }
        Ok(digest)
    }
}

/// The manifest digest in a push's last status line, `<tag>: digest: sha256:<hex> size: <n>`
/// (docker and podman both say it so; bollard drops the `aux` object docker sends beside it).
fn pushed_digest(status: &str) -> Option<String> {
    let hex = status.split_once("digest: sha256:")?.1;
    let hex = hex.split_whitespace().next()?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| format!("sha256:{hex}"))
}

/// Adapts a channel receiver into the stream bollard sends as the request body.
fn tokio_stream_from(
    mut rx: mpsc::Receiver<io::Result<Bytes>>,
) -> impl futures_util::Stream<Item = io::Result<Bytes>> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A `Write` that sends 64 KiB chunks into a channel, from a blocking thread.
pub struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buffer: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl ChannelWriter {
    pub fn new(tx: mpsc::Sender<io::Result<Bytes>>) -> ChannelWriter {
        ChannelWriter {
            tx,
            buffer: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK),
        ));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the engine stopped reading"))
    }

    pub fn finish(mut self) -> io::Result<()> {
        self.send()
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pushed_digest_is_read_off_the_status_docker_and_podman_send() {
        let hex = "efa7578e8dcce591f3fb6f3d29402136795b0c253a07cb911bf6ca4ed8355d58";
        // As Docker 20.10.24 and podman 4.3.1 said it on this machine.
        let said = format!("1: digest: sha256:{hex} size: 527");
        assert_eq!(pushed_digest(&said), Some(format!("sha256:{hex}")));
        for other in [
            "Pushed".to_string(),
            "The push refers to repository [127.0.0.1:4000/kolla/base]".to_string(),
            format!("1: digest: sha256:{} size: 527", &hex[..63]),
            "1: digest: sha256:zz size: 1".to_string(),
        ] {
            assert_eq!(pushed_digest(&other), None, "{other}");
        }
    }

    fn refused(url: &str, tls_dir: Option<&Path>) -> String {
        match client(url, tls_dir) {
            Err(e @ EngineError::Address { .. }) => e.to_string(),
            Err(e) => panic!("{url}: not an address error: {e}"),
            Ok(_) => panic!("{url}: accepted"),
        }
    }

    #[test]
    fn an_unknown_scheme_is_refused_naming_the_ones_spoken() {
        let message = refused("ftp://host:21", None);
        assert!(message.contains("ftp://host:21"), "{message}");
        for scheme in ["unix://", "tcp://", "https://", "ssh://"] {
            assert!(message.contains(scheme), "{message}");
        }
    }

    #[test]
    fn tls_needs_its_three_files_and_a_tcp_engine() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "x").unwrap();
        let message = refused("https://host:2376", Some(dir.path()));
        let missing = dir.path().join("cert.pem");
        assert!(
            message.contains(&missing.display().to_string()),
            "{message}"
        );
        assert!(message.contains("tls_dir"), "{message}");
        let message = refused("unix:///var/run/docker.sock", Some(dir.path()));
        assert!(message.contains("not tcp:// or https://"), "{message}");
    }

    #[test]
    fn an_ssh_port_is_refused_pointing_at_the_ssh_config() {
        let message = refused("ssh://op@build-1:2222", None);
        assert!(message.contains("~/.ssh/config"), "{message}");
        assert!(client("ssh://op@build-1", None).is_ok());
    }

    #[test]
    fn plain_and_ssh_addresses_make_clients() {
        // A socket of the test's own: the machine's engine need not be running.
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("engine.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        for url in [
            format!("unix://{}", socket.display()),
            "tcp://127.0.0.1:2375".to_string(),
            "ssh://op@host".to_string(),
        ] {
            assert!(client(&url, None).is_ok(), "{url}");
        }
    }
}
