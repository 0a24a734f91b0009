//! The registry storage layout: the tree a stock registry (`registry:2`) keeps under its storage
//! root (`docker/registry/v2/...`), so the tarball unpacked into `/opt/registry` is served as is
//! (DESIGN section 6).

use crate::publish::export::image::ExportImage;
use crate::publish::export::layout::{Layout, MediaTypes, WrittenImage, hex_of};
use crate::publish::export::tarball::{Blob, Entries};

pub(in super::super) const MANIFEST_V2: &str =
    "application/vnd.docker.distribution.manifest.v2+json";
pub(in super::super) const CONFIG_V1: &str = "application/vnd.docker.container.image.v1+json";
pub(in super::super) const LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// A registry's storage tree: blobs by digest, and per repository the links that name them.
pub(in super::super) struct RegistryStorage;

impl Layout for RegistryStorage {
    fn media_types(&self) -> MediaTypes {
        MediaTypes {
            manifest: MANIFEST_V2,
            config: CONFIG_V1,
            layer: LAYER_GZIP,
        }
    }

    fn blob_path(&self, hex: &str) -> String {
        format!("docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2])
    }

    /// The repository's links to the image's layers, config and manifest, and its tag.
    fn write_image(
        &mut self,
        image: &ExportImage,
        written: &WrittenImage<'_>,
        entries: &mut Entries,
    ) {
        let repo = format!("docker/registry/v2/repositories/{}", image.repository);
        // The config needs its own _layers link, else the registry answers 404 for it.
        for digest in written
            .layers
            .iter()
            .map(|l| l.digest.as_str())
            .chain([written.config_digest])
        {
            entries.insert(
                format!("{repo}/_layers/sha256/{}/link", hex_of(digest)),
                link(digest),
            );
        }
        let manifest = written.manifest_digest;
        let m = hex_of(manifest);
        entries.insert(
            format!("{repo}/_manifests/revisions/sha256/{m}/link"),
            link(manifest),
        );
        entries.insert(
            format!("{repo}/_manifests/tags/{}/current/link", image.tag),
            link(manifest),
        );
        entries.insert(
            format!("{repo}/_manifests/tags/{}/index/sha256/{m}/link", image.tag),
            link(manifest),
        );
    }

    /// A registry's storage has no file describing the whole.
    fn finish(self: Box<Self>, _entries: &mut Entries) {}
}

/// A registry link file: the digest it points to.
fn link(digest: &str) -> Blob {
    Blob::Bytes(digest.as_bytes().to_vec())
}
