//! The OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/...`): each image is named in
//! the index by its `org.opencontainers.image.ref.name` annotation (`repository:tag`).

use crate::publish::export::image::ExportImage;
use crate::publish::export::layout::{Layout, MediaTypes, WrittenImage};
use crate::publish::export::tarball::{Blob, Entries};

pub(in super::super) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(in super::super) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(in super::super) const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// An OCI image layout; the index's entries gather as images are written.
#[derive(Default)]
pub(in super::super) struct OciLayout {
    index: Vec<serde_json::Value>,
}

impl Layout for OciLayout {
    fn media_types(&self) -> MediaTypes {
        MediaTypes {
            manifest: OCI_MANIFEST,
            config: OCI_CONFIG,
            layer: OCI_LAYER,
        }
    }

    fn blob_path(&self, hex: &str) -> String {
        format!("blobs/sha256/{hex}")
    }

    fn write_image(
        &mut self,
        image: &ExportImage,
        written: &WrittenImage<'_>,
        _entries: &mut Entries,
    ) {
        self.index.push(serde_json::json!({
            "mediaType": OCI_MANIFEST,
            "digest": written.manifest_digest,
            "size": written.manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": format!("{}:{}", image.repository, image.tag)},
        }));
    }

    /// The layout's marker file and its index of every image.
    fn finish(self: Box<Self>, entries: &mut Entries) {
        entries.insert(
            "oci-layout".into(),
            Blob::Bytes(br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        );
        let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": self.index});
        entries.insert(
            "index.json".into(),
            Blob::Bytes(serde_json::to_vec_pretty(&index).expect("json")),
        );
    }
}
