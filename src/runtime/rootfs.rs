//! The container's writable root filesystem: an overlay of the shared image rootfs.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::files;
use super::RuntimeError;

/// Mounts the container's writable rootfs: the shared image rootfs as the read-only lower
/// layer, and `upper/` + `work/` in the container dir for its changes.
pub(crate) fn mount_overlay(
    id: &str,
    lower: &Path,
    dir: &Path,
    target: &Path,
) -> Result<(), RuntimeError> {
    if !lower.is_dir() {
        return Err(RuntimeError::Spec {
            id: id.to_string(),
            reason: format!("image rootfs {} is not a directory", lower.display()),
        });
    }
    let upper = dir.join(files::UPPER_DIR);
    let work = dir.join(files::WORK_DIR);
    for path in [lower, upper.as_path(), work.as_path()] {
        // The overlay option string uses ',' and ':' as separators.
        let text = path.to_string_lossy();
        if text.contains(',') || text.contains(':') {
            return Err(RuntimeError::Spec {
                id: id.to_string(),
                reason: format!("path {text} contains ',' or ':'"),
            });
        }
    }
    match_root_of(lower, &upper).map_err(|e| RuntimeError::io("set up", &upper, e))?;
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|e| RuntimeError::syscall(format!("mount overlay on {}", target.display()), e))
}

/// Gives the upper dir the owner and mode of the image's root: the upper dir's root is
/// what the container sees as `/`, and with our umask's mode or owner a non-root process
/// might not even be able to look up a path.
fn match_root_of(lower: &Path, upper: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let image_root = std::fs::metadata(lower)?;
    std::os::unix::fs::chown(upper, Some(image_root.uid()), Some(image_root.gid()))?;
    std::fs::set_permissions(
        upper,
        std::fs::Permissions::from_mode(image_root.mode() & 0o7777),
    )
}

/// Unmounts the overlay rootfs of a container dir if it is mounted.
pub(crate) fn unmount_rootfs(dir: &Path) {
    let rootfs: PathBuf = dir.join(files::ROOTFS_DIR);
    match umount2(&rootfs, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(err) => log::warn!("cannot unmount {}: {err}", rootfs.display()),
    }
}
