//! Verifying and staging the blobs of one image from a layout during an import.

use std::fs;
use std::path::{Path, PathBuf};

use super::blobs::{checked_hex, copy_verified, read_verified, verify_file};
use super::layout::LayoutDir;
use super::oci::{
    self, is_config_media_type, is_layer_media_type, ConfigFile, Descriptor, Manifest,
};
use super::reference::Reference;
use super::store::ImageStore;
use super::{ImageError, ImageInfo};

/// An image verified and staged by an import, not yet published.
pub(crate) struct Prepared {
    pub info: ImageInfo,
    /// Layer descriptors with the staged (or already stored) file of each.
    pub layers: Vec<(Descriptor, PathBuf)>,
    pub diff_ids: Vec<String>,
}

/// Verifies and stages the blobs of one image from a layout.
pub(crate) struct Staging<'a> {
    pub store: &'a ImageStore,
    pub layout: &'a LayoutDir,
    pub dir: &'a Path,
    pub movable: bool,
}

impl Staging<'_> {
    pub fn prepare(
        &self,
        reference: &Reference,
        manifest_desc: &Descriptor,
    ) -> Result<Prepared, ImageError> {
        if let Some(digest) = &reference.digest {
            if *digest != manifest_desc.digest {
                return Err(ImageError::InvalidReference {
                    reference: reference.to_canonical(),
                    reason: format!("the imported manifest is {}", manifest_desc.digest),
                });
            }
        }
        let manifest_path = self.stage(manifest_desc)?;
        let manifest: Manifest = parse_json(
            &manifest_path,
            &read_verified(&manifest_path, manifest_desc)?,
        )?;
        if let Some(own) = manifest
            .media_type
            .as_deref()
            .filter(|m| oci::kind_of(m) != oci::Kind::Manifest)
        {
            return Err(ImageError::layout(
                &self.layout.root,
                format!(
                    "blob {} has media type {own:?}, not an image manifest",
                    manifest_desc.digest
                ),
            ));
        }
        if !is_config_media_type(&manifest.config.media_type) {
            return Err(ImageError::layout(
                &self.layout.root,
                format!(
                    "manifest {} is not a container image (config media type {:?})",
                    manifest_desc.digest, manifest.config.media_type
                ),
            ));
        }
        let config_path = self.stage(&manifest.config)?;
        let config: ConfigFile = parse_json(
            &config_path,
            &read_verified(&config_path, &manifest.config)?,
        )?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::layout(
                &self.layout.root,
                format!(
                    "config {} lists {} diff ids for {} layers",
                    manifest.config.digest,
                    config.rootfs.diff_ids.len(),
                    manifest.layers.len()
                ),
            ));
        }
        let mut layers = Vec::new();
        for layer in &manifest.layers {
            if !is_layer_media_type(&layer.media_type) {
                return Err(ImageError::layout(
                    &self.layout.root,
                    format!(
                        "layer {} has unsupported media type {:?}",
                        layer.digest, layer.media_type
                    ),
                ));
            }
            layers.push((layer.clone(), self.stage(layer)?));
        }
        let mut platform = config.platform();
        if platform.architecture.is_empty() {
            platform = manifest_desc.platform.clone().unwrap_or_default();
        }
        let size = manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>();
        Ok(Prepared {
            info: ImageInfo {
                reference: reference.to_canonical(),
                digest: manifest_desc.digest.clone(),
                config_digest: manifest.config.digest.clone(),
                size,
                platform: platform.display(),
                config: config.image_config(),
            },
            layers,
            diff_ids: config.rootfs.diff_ids,
        })
    }

    /// Returns a verified copy of the blob: the stored one if the store has it, otherwise
    /// a staged one (copied, or moved when the layout is our own extracted tar).
    fn stage(&self, desc: &Descriptor) -> Result<PathBuf, ImageError> {
        let hex = checked_hex(&desc.digest)?;
        let stored = self.store.blobs_dir().join(hex);
        if stored.exists() {
            return Ok(stored);
        }
        let staged = self.dir.join(hex);
        if staged.exists() {
            return Ok(staged);
        }
        let source = self.layout.blob(&desc.digest)?;
        if !source.exists() {
            return Err(ImageError::layout(
                &self.layout.root,
                format!("blob {} is listed but missing", desc.digest),
            ));
        }
        if self.movable {
            fs::rename(&source, &staged).map_err(|e| ImageError::io(&staged, e))?;
            verify_file(&staged, desc)?;
        } else {
            copy_verified(&source, &staged, desc)?;
        }
        Ok(staged)
    }
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    bytes: &[u8],
) -> Result<T, ImageError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ImageError::layout(path, format!("invalid JSON document: {e}")))
}
