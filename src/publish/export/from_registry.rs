//! The incremental export's way around `docker save`: an image already pushed to a registry on
//! loopback (`--registry 127.0.0.1:4000 --push`) is read from there, where each layer is its own
//! blob, so only the layers missing from the export cache are fetched. The engine's save cannot
//! do that: it writes every layer of the image's chain (hundreds of MB of unchanged parents)
//! before it sends a byte.
//!
//! Nothing is taken on trust: the manifest's config must be the image the engine has (its digest
//! is the image ID), and every fetched layer is decompressed and must hash to the diff ID the
//! engine reports, then it is compressed with the export's own settings, so the tarball is the
//! same, byte for byte, as one written from `docker save`. Any failure (no such registry, another
//! image under the tag, a redirect, a digest that does not match) answers `None`, and the caller
//! reads the image from the engine as before.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{HashingWriter, ImageParts, Layer, Stored, compress};
use crate::engine::{ImageFacts, split_reference};
use crate::publish::blob_cache::BlobCache;

/// How long a connection or a read may take before the registry counts as unusable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const READ_TIMEOUT: Duration = Duration::from_secs(60);

const ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
                      application/vnd.oci.image.manifest.v1+json";

#[derive(Deserialize)]
struct Manifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
}

/// The config and compressed layers of the image `reference` (whose engine facts are `facts`),
/// with the layers the cache lacks read from the loopback registry the reference names; new
/// layers and the config go to the cache. `None` when the registry cannot give exactly this
/// image.
pub(super) fn parts(
    reference: &str,
    facts: &ImageFacts,
    cache: &BlobCache,
    scratch: &Path,
) -> Option<ImageParts> {
    let (host, repository, tag) = loopback_registry(reference)?;
    let addr = host.to_socket_addrs().ok()?.next()?;
    // The final tag, or the staging tag an atomic push leaves until every image is pushed.
    let manifest = [tag.to_string(), crate::publish::staging_tag(tag)]
        .iter()
        .filter_map(|tag| {
            let path = format!("/v2/{repository}/manifests/{tag}");
            serde_json::from_slice::<Manifest>(&get(addr, host, &path, ACCEPT).ok()?).ok()
        })
        .find(|m| m.config.digest == facts.id && m.layers.len() == facts.diff_ids.len())?;
    let blob = |digest: &str| format!("/v2/{repository}/blobs/{digest}");
    let config = get(addr, host, &blob(&facts.id), "*/*").ok()?;
    if format!("sha256:{}", hex::encode(Sha256::digest(&config))) != facts.id {
        return None;
    }
    let mut layers = Vec::with_capacity(facts.diff_ids.len());
    for (diff_id, descriptor) in facts.diff_ids.iter().zip(&manifest.layers) {
        if let Some(hit) = cache.layer(diff_id) {
            layers.push((
                Layer {
                    digest: hit.digest,
                    size: hit.size,
                },
                hit.path,
            ));
            continue;
        }
        // Named by content: a compressed file is hard-linked into the cache, so no later
        // layer may be written under its name.
        let key = diff_id.strip_prefix("sha256:").unwrap_or(diff_id);
        if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let raw = scratch.join(format!("registry-{key}.tar"));
        let sha256 = fetch_layer(addr, host, &blob(&descriptor.digest), descriptor, &raw).ok()?;
        if format!("sha256:{sha256}") != *diff_id {
            return None;
        }
        let target = scratch.join(format!("registry-{key}.gz"));
        let layer = compress(&Stored::Disk { path: raw, sha256 }, &target).ok()?;
        let stored = cache
            .put_layer(diff_id, &target, &layer.digest, layer.size)
            .ok()?;
        layers.push((layer, stored.path));
    }
    cache.put_config(&config).ok()?;
    Some(ImageParts { config, layers })
}

/// `127.0.0.1:4000/kolla/x:tag` → (`127.0.0.1:4000`, `kolla/x`, `tag`) when the registry is on
/// loopback (the only place a registry is spoken to in plain HTTP, as the Docker engine does).
fn loopback_registry(reference: &str) -> Option<(&str, &str, &str)> {
    let (name, tag) = split_reference(reference);
    let (host, repository) = name.split_once('/')?;
    let hostname = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let loopback = hostname == "localhost"
        || hostname == "[::1]"
        || hostname
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    (loopback && !tag.contains('@')).then_some((host, repository, tag))
}

/// A layer blob written to `raw` uncompressed; returns the hex sha256 of what was written.
fn fetch_layer(
    addr: SocketAddr,
    host: &str,
    path: &str,
    descriptor: &Descriptor,
    raw: &Path,
) -> io::Result<String> {
    let body = request(addr, host, path, "*/*")?;
    let mut out = HashingWriter::new(BufWriter::with_capacity(1 << 20, File::create(raw)?));
    if descriptor.media_type.ends_with("gzip") {
        io::copy(&mut flate2::read::GzDecoder::new(body), &mut out)?;
    } else if descriptor.media_type.ends_with("tar") {
        io::copy(&mut { body }, &mut out)?;
    } else {
        return Err(io::Error::other(format!(
            "unknown layer type {}",
            descriptor.media_type
        )));
    }
    let (sha256, _, mut inner) = out.finish();
    inner.flush()?;
    Ok(sha256)
}

/// The body of a successful GET, whole (manifests and configs are small).
fn get(addr: SocketAddr, host: &str, path: &str, accept: &str) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    request(addr, host, path, accept)?
        .take(16 << 20)
        .read_to_end(&mut body)?;
    Ok(body)
}

/// A GET over HTTP/1.1 (one connection per request); the body as a reader, or an error for
/// any status but 200 (redirects and authentication included: the caller falls back).
fn request(addr: SocketAddr, host: &str, path: &str, accept: &str) -> io::Result<Box<dyn Read>> {
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    write!(
        &stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: {accept}\r\nUser-Agent: kolla-build\r\nConnection: close\r\n\r\n"
    )?;
    let mut reader = BufReader::with_capacity(1 << 20, stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let (mut length, mut chunked) = (None, false);
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<u64>().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            }
        }
    }
    if status != "200" {
        return Err(io::Error::other(format!("{path}: HTTP {status}")));
    }
    Ok(match (chunked, length) {
        (true, _) => Box::new(Chunked {
            inner: reader,
            left: 0,
            done: false,
        }),
        (false, Some(n)) => Box::new(Exact {
            inner: reader.take(n),
            left: n,
        }),
        (false, None) => Box::new(reader),
    })
}

/// A body of a known length: shorter is an error, not a silent truncation.
struct Exact<R> {
    inner: io::Take<R>,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A `Transfer-Encoding: chunked` body.
struct Chunked<R> {
    inner: R,
    left: u64,
    done: bool,
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            self.inner.read_line(&mut line)?;
            if line.trim().is_empty() {
                // The CRLF that ends the previous chunk.
                line.clear();
                self.inner.read_line(&mut line)?;
            }
            let size = line.trim().split(';').next().unwrap_or_default();
            self.left = u64::from_str_radix(size, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_registries_are_read() {
        assert_eq!(
            loopback_registry("127.0.0.1:4000/kolla/keystone:1"),
            Some(("127.0.0.1:4000", "kolla/keystone", "1"))
        );
        assert_eq!(
            loopback_registry("localhost:5000/k/x:2"),
            Some(("localhost:5000", "k/x", "2"))
        );
        assert_eq!(loopback_registry("quay.io/kolla/keystone:1"), None);
        assert_eq!(loopback_registry("10.0.0.1:4000/kolla/keystone:1"), None);
        assert_eq!(loopback_registry("kolla/keystone:1"), None);
    }

    #[test]
    fn chunked_bodies_are_joined() {
        let body = b"4\r\nabcd\r\n3;x=1\r\nefg\r\n0\r\n\r\n";
        let mut out = String::new();
        Chunked {
            inner: &body[..],
            left: 0,
            done: false,
        }
        .read_to_string(&mut out)
        .unwrap();
        assert_eq!(out, "abcdefg");
    }
}
