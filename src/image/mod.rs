//! Local OCI image content store of the agent.
//!
//! Everything lives in plain files under `<state_dir>/images` (no SQLite):
//!
//! ```text
//! blobs/sha256/<hex>          content-addressed blobs, visible only once complete and verified
//! refs/<sha256(ref)>.json     one small file per reference, holding its ImageInfo
//! rootfs/<config-hex>/        unpacked layers, the read-only lower dir shared by all pods
//! unsynced/<config-hex>-...   a rootfs not yet known to be on disk (see `rootfs`)
//! tmp/                        staging area; anything left here after a crash is deleted on open
//! ```
//!
//! Every write goes to a temporary name first and becomes visible with one `rename`, so an
//! interrupted import or unpack never leaves something that looks valid. Imports read an
//! OCI image layout (a directory or a tar of one), verify every blob against its descriptor,
//! pick the manifest for the board's platform, unpack the layers and only then publish the
//! blobs and the reference.
//!
//! Pulls (`pull`, `registry`) fetch the same pieces from an OCI distribution registry into
//! a staging directory under `tmp/`, verify each against its digest while streaming, and
//! publish them the same way. They unpack each layer while it downloads (`feed`).

mod blobs;
mod feed;
mod inspect;
mod layout;
mod oci;
mod pull;
mod readahead;
mod reference;
pub mod registry;
mod rootfs;
mod rootfs_file;
mod staging;
mod store;
mod unpack;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use inspect::image_platforms;
pub use pull::{PullEvent, PullOptions};
pub use reference::normalize_reference;
pub use registry::RegistryConfig;
pub use rootfs_file::read_rootfs_file;
pub use store::ImageStore;
pub use unpack::UnpackLimits;

/// The platform of this machine as `os/architecture[/variant]`, e.g. `linux/arm64/v8`;
/// import picks manifests for it.
pub fn host_platform() -> String {
    oci::host_platform().display()
}

/// One image known to the store, as recorded in its reference file.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImageInfo {
    /// Normalized reference, e.g. `docker.io/library/busybox:1.35`.
    pub reference: String,
    /// Digest of the platform-specific manifest, `sha256:<hex>`.
    pub digest: String,
    pub config_digest: String,
    /// Sum of the compressed layer sizes and the config size.
    pub size: u64,
    /// `os/architecture[/variant]`, e.g. `linux/arm64/v8`.
    pub platform: String,
    pub config: ImageConfig,
}

/// The parts of the image config the runtime needs to start a container.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("blob {digest}: content does not match its descriptor ({actual})")]
    DigestMismatch { digest: String, actual: String },
    #[error("image {reference} not found")]
    NotFound { reference: String },
    #[error("image {reference} is in use by a container")]
    InUse { reference: String },
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Layout { path: PathBuf, reason: String },
    #[error("no manifest for platform {wanted} in {} (available: {available})", path.display())]
    Platform {
        path: PathBuf,
        wanted: String,
        available: String,
    },
    #[error("layer {digest}: {reason}")]
    Unpack { digest: String, reason: String },
    #[error("no image for platform {wanted} in {reference} (available: {available})")]
    PlatformUnavailable {
        reference: String,
        wanted: String,
        available: String,
    },
    #[error("registry {registry}: {reason}")]
    Registry { registry: String, reason: String },
    #[error("registry config {}: {reason}", path.display())]
    Config { path: PathBuf, reason: String },
    #[error("no space left on the device of {} while pulling {reference}; the partial download was removed", path.display())]
    NoSpace { path: PathBuf, reference: String },
}

impl ImageError {
    /// Wraps an I/O error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> ImageError {
        ImageError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn layout(path: impl Into<PathBuf>, reason: impl Into<String>) -> ImageError {
        ImageError::Layout {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
