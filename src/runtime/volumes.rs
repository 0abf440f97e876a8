//! The host side of pod volumes: tmpfs mounts, the kubelet's atomic writer for projected
//! files, the device numbers a container's device cgroup must allow, and unmounting
//! everything below a pod's directory when it goes.
//!
//! # The atomic writer
//!
//! A volume's files live in a timestamped directory `..<nanos>/`; the symlink `..data`
//! names the current one and every top-level name is a symlink through it
//! (`app.conf -> ..data/app.conf`). An update writes a new directory, then swaps `..data`
//! with one `rename(2)`, so a reader inside the container sees either all old or all new
//! files, never a mix or a half-written file.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::RuntimeError;

/// `statfs` magic of tmpfs (`TMPFS_MAGIC` in linux/magic.h).
const TMPFS_MAGIC: i64 = 0x0102_1994;
const DATA_LINK: &str = "..data";
const DATA_TMP_LINK: &str = "..data_tmp";

/// One file of a volume the agent writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadFile {
    pub bytes: Vec<u8>,
    /// Permission bits (`0644`).
    pub mode: u32,
}

/// A device a container may use: a `c` or `b` rule of its device cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceRule {
    pub block: bool,
    pub major: i64,
    pub minor: i64,
}

/// The device at `path`, if it is a character or block device.
pub fn device_rule(path: &Path) -> Option<DeviceRule> {
    let meta = fs::metadata(path).ok()?;
    let kind = meta.file_type();
    if !kind.is_char_device() && !kind.is_block_device() {
        return None;
    }
    let rdev = meta.rdev();
    Some(DeviceRule {
        block: kind.is_block_device(),
        major: i64::try_from(nix::sys::stat::major(rdev)).ok()?,
        minor: i64::try_from(nix::sys::stat::minor(rdev)).ok()?,
    })
}

/// Is a tmpfs mounted at `dir` itself (not just somewhere above it)?
fn is_tmpfs_mount(dir: &Path) -> bool {
    let on_tmpfs = match nix::sys::statfs::statfs(dir) {
        // The width of the statfs type field differs between targets.
        #[allow(clippy::useless_conversion)]
        Ok(stat) => i64::from(stat.filesystem_type().0) == TMPFS_MAGIC,
        Err(_) => false,
    };
    let parent_dev = dir
        .parent()
        .and_then(|p| fs::metadata(p).ok())
        .map(|m| m.dev());
    let own_dev = fs::metadata(dir).ok().map(|m| m.dev());
    on_tmpfs && own_dev.is_some() && own_dev != parent_dev
}

/// Creates `dir` and mounts a private tmpfs on it (of at most `size_bytes`), unless one
/// is there already (a restarted agent finds its mounts).
pub fn mount_tmpfs(dir: &Path, size_bytes: Option<u64>, mode: u32) -> Result<(), RuntimeError> {
    fs::create_dir_all(dir).map_err(|e| RuntimeError::io("create", dir, e))?;
    if is_tmpfs_mount(dir) {
        return Ok(());
    }
    let mut options = format!("mode={mode:o}");
    if let Some(size) = size_bytes {
        options.push_str(&format!(",size={size}"));
    }
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(|e| RuntimeError::syscall(format!("mount tmpfs on {}", dir.display()), e))
}

/// Unmounts every mount at or below `dir`, deepest first, so the directory can be
/// removed without reaching into anything mounted there.
pub fn unmount_below(dir: &Path) -> Result<(), RuntimeError> {
    let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else {
        return Ok(());
    };
    let mut points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|point| point.starts_with(dir))
        .collect();
    crate::support::sort::sort_by_key(&mut points, |p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    for point in points {
        match umount2(&point, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => {
                return Err(RuntimeError::syscall(
                    format!("unmount {}", point.display()),
                    e,
                ))
            }
        }
    }
    Ok(())
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_path(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from(
        String::from_utf8_lossy(&out).into_owned(),
    ))
}

/// A relative path that stays inside its directory.
fn is_contained(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        && !path.starts_with("..")
}

/// What `..data` holds now, or `None` when there is no readable payload yet.
fn current_payload(dir: &Path) -> Option<BTreeMap<String, PayloadFile>> {
    let data = dir.join(DATA_LINK);
    fs::symlink_metadata(&data)
        .ok()?
        .file_type()
        .is_symlink()
        .then_some(())?;
    let mut files = BTreeMap::new();
    let mut pending = vec![(data, String::new())];
    while let Some((at, prefix)) = pending.pop() {
        for entry in fs::read_dir(&at).ok()? {
            let entry = entry.ok()?;
            let name = entry.file_name().into_string().ok()?;
            let relative = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let meta = entry.metadata().ok()?;
            if meta.is_dir() {
                pending.push((entry.path(), relative));
            } else {
                let bytes = fs::read(entry.path()).ok()?;
                let mode = meta.permissions().mode() & 0o777;
                files.insert(relative, PayloadFile { bytes, mode });
            }
        }
    }
    Some(files)
}

/// Makes the files of `dir` exactly `files`, atomically; returns whether anything
/// changed. Files are owned by root and, with `gid`, by that group (the pod's fsGroup),
/// which may then read what the owner may, as the kubelet arranges.
pub fn write_payload(
    dir: &Path,
    files: &BTreeMap<String, PayloadFile>,
    gid: Option<u32>,
) -> Result<bool, RuntimeError> {
    let group_readable;
    let files = match gid {
        None => files,
        Some(_) => {
            group_readable = files
                .iter()
                .map(|(path, file)| {
                    let mode = file.mode | ((file.mode & 0o400) >> 3);
                    let bytes = file.bytes.clone();
                    (path.clone(), PayloadFile { bytes, mode })
                })
                .collect();
            &group_readable
        }
    };
    if let Some(bad) = files.keys().find(|path| !is_contained(path)) {
        return Err(RuntimeError::io(
            "write",
            dir.join(bad),
            std::io::Error::new(ErrorKind::InvalidInput, "path leaves the volume"),
        ));
    }
    if current_payload(dir).as_ref() == Some(files) {
        return Ok(false);
    }
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |e| RuntimeError::io(what, &path, e)
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let version = format!("..{nanos}");
    let staged = dir.join(&version);
    fs::create_dir(&staged).map_err(io("create", &staged))?;
    for (relative, file) in files {
        let path = staged.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io("create", parent))?;
        }
        fs::write(&path, &file.bytes).map_err(io("write", &path))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(file.mode))
            .map_err(io("chmod", &path))?;
        if let Some(gid) = gid {
            std::os::unix::fs::chown(&path, None, Some(gid)).map_err(io("chown", &path))?;
        }
    }
    let tmp_link = dir.join(DATA_TMP_LINK);
    match fs::remove_file(&tmp_link) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(RuntimeError::io("remove", &tmp_link, e)),
    }
    std::os::unix::fs::symlink(&version, &tmp_link).map_err(io("link", &tmp_link))?;
    fs::rename(&tmp_link, dir.join(DATA_LINK)).map_err(io("rename", &tmp_link))?;
    let top: BTreeSet<&str> = files
        .keys()
        .filter_map(|path| path.split('/').next())
        .collect();
    for name in &top {
        let link = dir.join(name);
        if fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("{DATA_LINK}/{name}"), &link)
                .map_err(io("link", &link))?;
        }
    }
    // What the new payload no longer has: old versions and links to names now gone.
    for entry in fs::read_dir(dir).map_err(io("read", dir))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = if name.starts_with("..") {
            name != DATA_LINK && name != version
        } else {
            !top.contains(name.as_str())
        };
        if stale {
            let path = entry.path();
            let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            removed.map_err(io("remove", &path))?;
        }
    }
    Ok(true)
}

#[cfg(test)]
#[path = "volumes_tests.rs"]
mod tests;
