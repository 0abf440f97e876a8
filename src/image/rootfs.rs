//! Unpacking an image's layers into its shared rootfs: staged under a unique temporary
//! name, every diff id checked, then published with one rename.
//!
//! Durability: the unpacked files are written without an fsync each (a flush per file
//! would be slow on an SD card). One `syncfs` makes all of them durable, but it waits for
//! every byte the disk has not taken yet, so it runs on a thread of its own after the
//! rename instead of making the pull wait. Until it has finished, a marker in
//! `unsynced/` (holding the boot id) says the rootfs may not be on disk; the marker is
//! durable before the rename is. When the store is opened, a marker from an earlier boot
//! means a power cut or reboot may have lost part of that rootfs: it is deleted, and
//! unpacked again from the (fsynced) blobs when needed. A marker from this boot means only
//! the agent stopped; the page cache still holds the files, so one `syncfs` settles it.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::blobs::{checked_hex, sync_dir, sync_filesystem};
use super::oci::Descriptor;
use super::store::{read_dir, remove_any, ImageStore, TempDir};
use super::unpack::{unpack_layer, UnpackBudget};
use super::{ImageError, ImageInfo};

/// Makes rootfs staging and marker names unique within this process (a pull unpacks
/// while it downloads, outside the store's lock).
static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// Where one layer's blob is read from while unpacking.
pub(super) type OpenLayer<'a> =
    dyn FnMut(&Descriptor, &Path) -> Result<Box<dyn Read + Send + 'a>, ImageError> + 'a;

impl ImageStore {
    /// Unpacks the stored or staged layer files and publishes the rootfs. Does nothing if
    /// the rootfs exists. The caller holds the store's lock.
    pub(super) fn ensure_rootfs(
        &self,
        info: &ImageInfo,
        layers: &[(Descriptor, PathBuf)],
        diff_ids: &[String],
    ) -> Result<PathBuf, ImageError> {
        let dir = self.rootfs_path(info)?;
        if dir.is_dir() {
            return Ok(dir);
        }
        let staged = self.rootfs_staging(info)?;
        unpack_layers(
            &staged.0,
            layers,
            diff_ids,
            self.unpack_limits,
            &mut |_, path| {
                let file = File::open(path).map_err(|e| ImageError::io(path, e))?;
                Ok(Box::new(file))
            },
        )?;
        self.publish_rootfs(info, staged)
    }

    /// `rootfs/<config-hex>`.
    pub(super) fn rootfs_path(&self, info: &ImageInfo) -> Result<PathBuf, ImageError> {
        Ok(self.rootfs_dir().join(checked_hex(&info.config_digest)?))
    }

    /// A new empty `rootfs/<config-hex>.tmp-<pid>-<n>`, removed when dropped (and by
    /// `ImageStore::open` after a crash).
    pub(super) fn rootfs_staging(&self, info: &ImageInfo) -> Result<TempDir, ImageError> {
        let hex = checked_hex(&info.config_digest)?;
        let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
        let staged = TempDir(
            self.rootfs_dir()
                .join(format!("{hex}.tmp-{}-{n}", std::process::id())),
        );
        remove_any(&staged.0).map_err(|e| ImageError::io(&staged.0, e))?;
        fs::create_dir(&staged.0).map_err(|e| ImageError::io(&staged.0, e))?;
        // The root of the rootfs is "/" in the container: 0755 whatever our umask is.
        fs::set_permissions(
            &staged.0,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .map_err(|e| ImageError::io(&staged.0, e))?;
        Ok(staged)
    }

    /// Renames a completely unpacked and checked rootfs into place; if another unpack of
    /// the same image won the race, ours is dropped. The caller holds the store's lock.
    pub(super) fn publish_rootfs(
        &self,
        info: &ImageInfo,
        staged: TempDir,
    ) -> Result<PathBuf, ImageError> {
        let dir = self.rootfs_path(info)?;
        if dir.is_dir() {
            return Ok(dir);
        }
        let hex = checked_hex(&info.config_digest)?;
        let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
        let marker = self
            .unsynced_dir()
            .join(format!("{hex}-{}-{n}", std::process::id()));
        fs::write(&marker, boot_id().unwrap_or_default())
            .map_err(|e| ImageError::io(&marker, e))?;
        sync_dir(&self.unsynced_dir())?;
        fs::rename(&staged.0, &dir).map_err(|e| ImageError::io(&dir, e))?;
        sync_dir(&self.rootfs_dir())?;
        log::info!("image {} unpacked into {}", info.reference, dir.display());
        sync_in_background(self.lock.clone(), dir.clone(), marker);
        Ok(dir)
    }

    /// Settles the markers an earlier agent left in `unsynced/` (see the module docs).
    pub(super) fn settle_unsynced(&self) -> Result<(), ImageError> {
        let markers = read_dir(&self.unsynced_dir())?;
        if markers.is_empty() {
            return Ok(());
        }
        let boot = boot_id();
        let mut synced = false;
        for marker in markers {
            let written_in = match fs::read_to_string(&marker) {
                Ok(text) => Some(text),
                // The sync thread of a publish in this process unmarked it meanwhile: that
                // rootfs is on disk (treating the marker as a stranger's would delete it).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(_) => None,
            };
            if boot.is_some() && written_in == boot {
                if !synced {
                    sync_filesystem(&self.rootfs_dir())?;
                    synced = true;
                }
            } else {
                let name = marker.file_name().unwrap_or_default().to_string_lossy();
                let hex = name.split('-').next().unwrap_or_default();
                if let Ok(hex) = checked_hex(&format!("sha256:{hex}")) {
                    let dir = self.rootfs_dir().join(hex);
                    if dir.exists() {
                        log::info!(
                            "rootfs {} may have been cut short by a reboot; removing it",
                            dir.display()
                        );
                        remove_any(&dir).map_err(|e| ImageError::io(&dir, e))?;
                    }
                }
            }
            // Only now: a crash while removing leaves the marker, and the next open goes on.
            // (The sync thread of a publish in this process may have removed it already.)
            match fs::remove_file(&marker) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ImageError::io(&marker, e)),
            }
        }
        sync_dir(&self.rootfs_dir())?;
        sync_dir(&self.unsynced_dir())
    }
}

/// Flushes the filesystem of `rootfs`, then removes its marker, on a thread of its own.
/// It starts once the publishing operation has let go of the store's `lock`, so that
/// operation's own fsyncs (blobs, reference) do not queue behind the flush.
fn sync_in_background(lock: Arc<Mutex<()>>, rootfs: PathBuf, marker: PathBuf) {
    let work = move || {
        drop(lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        sync_and_unmark(&rootfs, &marker);
    };
    if let Err(e) = std::thread::Builder::new()
        .name("rootfs-sync".to_string())
        .spawn(work)
    {
        log::warn!("cannot start the rootfs sync thread ({e}); the next start syncs it");
    }
}

fn sync_and_unmark(rootfs: &Path, marker: &Path) {
    match sync_filesystem(rootfs) {
        Ok(()) => match fs::remove_file(marker) {
            Ok(()) => log::debug!("rootfs {} is on disk", rootfs.display()),
            // A reopened store settled it first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("cannot remove {}: {e}", marker.display()),
        },
        Err(e) => log::warn!("{e}; {} stays marked as not synced", rootfs.display()),
    }
}

/// This boot's id: it changes with every boot, so a marker holding another one outlived
/// a reboot (or power cut).
fn boot_id() -> Option<String> {
    let id = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(id.trim().to_string()).filter(|id| !id.is_empty())
}

/// Applies the layers in order onto `dir`, reading each through `open`, and checks each
/// layer's diff id against the config's. All layers together stay within `limits`.
pub(super) fn unpack_layers(
    dir: &Path,
    layers: &[(Descriptor, PathBuf)],
    diff_ids: &[String],
    limits: super::UnpackLimits,
    open: &mut OpenLayer<'_>,
) -> Result<(), ImageError> {
    let mut budget = UnpackBudget::new(limits);
    for (index, (layer, path)) in layers.iter().enumerate() {
        let blob = open(layer, path)?;
        let diff_id =
            unpack_layer(blob, dir, &mut budget).map_err(|reason| ImageError::Unpack {
                digest: layer.digest.clone(),
                reason,
            })?;
        if diff_ids.get(index) != Some(&diff_id) {
            return Err(ImageError::DigestMismatch {
                digest: layer.digest.clone(),
                actual: format!(
                    "uncompressed content is {diff_id}, the config says {}",
                    diff_ids.get(index).map_or("nothing", String::as_str)
                ),
            });
        }
    }
    Ok(())
}
