//! Reading a small file (such as `/etc/passwd`) out of an unpacked image rootfs. The image
//! is untrusted: its symlinks are resolved as if the rootfs were `/` (never out of it), only
//! a regular file is opened (a FIFO would block, a device node could act on the host), and
//! no more than a cap is read.

use std::fs::{self, File};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::unpack::resolve_in_root;

/// Symlinks followed for the file itself, as the kernel's limit.
const MAX_LINK_HOPS: u32 = 40;

/// The host path of `rel` inside `rootfs`, following symlinks (the file's own too) as if
/// `rootfs` were `/`; `None` when it does not exist.
fn resolve_file(rootfs: &Path, rel: &str) -> Result<Option<PathBuf>, String> {
    let mut rel = PathBuf::from(rel.trim_start_matches('/'));
    for _ in 0..=MAX_LINK_HOPS {
        let name = rel
            .file_name()
            .map(ToOwned::to_owned)
            .ok_or("does not name a file")?;
        let dir = resolve_in_root(rootfs, rel.parent().unwrap_or(Path::new("")))?;
        let path = rootfs.join(&dir).join(&name);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = fs::read_link(&path).map_err(|e| e.to_string())?;
                rel = match target.strip_prefix("/") {
                    Ok(absolute) => absolute.to_path_buf(),
                    Err(_) => dir.join(target),
                };
            }
            Ok(_) => return Ok(Some(path)),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("too many symlinks".to_owned())
}

/// The text of `rel` (a path inside the rootfs, e.g. `etc/passwd`), `None` if the image
/// has no such file. Errors for anything but a regular file of at most `max_bytes`.
/// Invalid UTF-8 is replaced, which no user or group name in it can match.
pub fn read_rootfs_file(
    rootfs: &Path,
    rel: &str,
    max_bytes: u64,
) -> Result<Option<String>, String> {
    let shown = format!("/{}", rel.trim_start_matches('/'));
    let Some(path) = resolve_file(rootfs, rel).map_err(|e| format!("image file {shown}: {e}"))?
    else {
        return Ok(None);
    };
    // lstat first, so that nothing but a regular file is ever opened.
    let before = match fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("image file {shown}: {e}")),
    };
    if !before.file_type().is_file() {
        return Err(format!("image file {shown} is not a regular file"));
    }
    let mut file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&path)
        .map_err(|e| format!("image file {shown}: {e}"))?;
    let after = file
        .metadata()
        .map_err(|e| format!("image file {shown}: {e}"))?;
    if !after.file_type().is_file() || (after.dev(), after.ino()) != (before.dev(), before.ino()) {
        return Err(format!("image file {shown} changed while it was opened"));
    }
    let mut bytes = Vec::new();
    (&mut file)
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("image file {shown}: {e}"))?;
    if bytes.len() as u64 > max_bytes {
        return Err(format!(
            "image file {shown} is larger than {max_bytes} bytes"
        ));
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn reads_a_file_and_follows_links_only_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("passwd"), "host:x:0:0::/:\n").unwrap();
        let root = tempfile::tempdir().unwrap();
        let etc = root.path().join("etc");
        fs::create_dir(&etc).unwrap();
        fs::write(etc.join("group"), "root:x:0:\n").unwrap();
        assert_eq!(
            read_rootfs_file(root.path(), "etc/group", 100).unwrap(),
            Some("root:x:0:\n".to_owned())
        );
        assert_eq!(read_rootfs_file(root.path(), "etc/passwd", 100), Ok(None));

        // An absolute link to the host's file lands inside the root, where there is none.
        let host_file = outside.path().join("passwd");
        symlink(&host_file, etc.join("passwd")).unwrap();
        assert_eq!(read_rootfs_file(root.path(), "etc/passwd", 100), Ok(None));
        fs::create_dir_all(root.path().join(outside.path().strip_prefix("/").unwrap())).unwrap();
        fs::write(
            root.path().join(host_file.strip_prefix("/").unwrap()),
            "inside:x:1:1::/:\n",
        )
        .unwrap();
        assert_eq!(
            read_rootfs_file(root.path(), "/etc/passwd", 100).unwrap(),
            Some("inside:x:1:1::/:\n".to_owned())
        );
        // So does a relative one that climbs.
        fs::remove_file(etc.join("passwd")).unwrap();
        symlink("../../../../../../../../etc/group", etc.join("passwd")).unwrap();
        assert_eq!(
            read_rootfs_file(root.path(), "etc/passwd", 100).unwrap(),
            Some("root:x:0:\n".to_owned())
        );
    }

    #[test]
    fn refuses_big_files_fifos_and_directories() {
        let root = tempfile::tempdir().unwrap();
        let etc = root.path().join("etc");
        fs::create_dir(&etc).unwrap();
        fs::write(etc.join("passwd"), "x".repeat(101)).unwrap();
        let err = read_rootfs_file(root.path(), "etc/passwd", 100).unwrap_err();
        assert_eq!(err, "image file /etc/passwd is larger than 100 bytes");
        assert!(read_rootfs_file(root.path(), "etc/passwd", 101).is_ok());

        nix::unistd::mkfifo(&etc.join("group"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = read_rootfs_file(root.path(), "etc/group", 100).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        fs::create_dir(etc.join("shadow")).unwrap();
        assert!(read_rootfs_file(root.path(), "etc/shadow", 100).is_err());
        symlink("loop", etc.join("loop")).unwrap();
        assert!(read_rootfs_file(root.path(), "etc/loop", 100)
            .unwrap_err()
            .contains("too many symlinks"));
    }
}
