//! Applying layer tarballs onto a rootfs directory, with OCI whiteouts, without ever
//! writing outside the target.
//!
//! Path safety: entry names with `..` or a leading `/` are rejected, and parent directories
//! are resolved component by component inside the target, so a symlink left by an earlier
//! layer (say `etc -> /`) is followed as if the target were `/` (like a chroot would) and
//! never leads to the host's files. The final component is never followed: whatever is there
//! is replaced. A whiteout may only name one plain entry of its own directory: `.wh..`,
//! `.wh...` and `.wh.` (which would hide the directory itself, its parent or everything)
//! are refused, so a hostile layer cannot delete outside the rootfs it is unpacked into.
//!
//! Size safety: a layer is a compressed stream whose unpacked size nobody vouches for (a
//! few kilobytes of gzip can expand to terabytes). [`UnpackLimits`] caps the bytes of tar
//! stream and the number of entries an image may unpack to, across all its layers, and
//! the unpack stops with an error naming the limit as soon as one is passed.

use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;
use nix::sys::stat::{mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use tar::EntryType;

use super::blobs::HashingReader;
use super::readahead::read_ahead;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// Linux's own limit on symlinks followed while resolving one path.
const MAX_SYMLINK_HOPS: u32 = 40;

/// How much one image may unpack to, all layers together. The defaults are generous for
/// real images (the largest common ones unpack to a few GiB and a few hundred thousand
/// files) and still stop a decompression bomb long before it fills an SD card.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Bytes of uncompressed tar stream (file contents plus 512-byte headers).
    pub max_bytes: u64,
    /// Tar entries (files, directories, links, whiteouts).
    pub max_entries: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_bytes: 16 << 30,
            max_entries: 1_000_000,
        }
    }
}

/// What is left of an image's [`UnpackLimits`] while its layers are applied in turn.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UnpackBudget {
    limits: UnpackLimits,
    bytes_used: u64,
    entries_used: u64,
}

impl UnpackBudget {
    pub(crate) fn new(limits: UnpackLimits) -> Self {
        UnpackBudget {
            limits,
            bytes_used: 0,
            entries_used: 0,
        }
    }

    fn too_many_bytes(&self) -> String {
        format!(
            "the image unpacks to more than {} bytes, the agent's limit \
             (--max-unpacked-image-size)",
            self.limits.max_bytes
        )
    }

    fn too_many_entries(&self) -> String {
        format!(
            "the image has more than {} files, the agent's limit (--max-image-files)",
            self.limits.max_entries
        )
    }
}

/// Passes bytes through until `left` is used up, then fails: the tar reader stops at
/// the first byte past the limit, whatever the headers claimed.
struct CappedReader<R> {
    inner: R,
    left: u64,
    message: String,
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One byte beyond the limit is enough to know it was passed.
        let allowed = usize::try_from(self.left.saturating_add(1)).unwrap_or(usize::MAX);
        let want = buf.len().min(allowed);
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > self.left {
            return Err(io::Error::other(self.message.clone()));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Applies one layer blob (gzip or plain tar, detected by the gzip magic) read from
/// `blob` onto `target` and returns the digest of the uncompressed tar (the layer's diff
/// id). Streams: besides the current entry's header, at most a few pieces read ahead are
/// held in memory. Decompressing and hashing run on a second thread beside the writing.
/// What the layer unpacks to is taken from `budget`; past it the unpack fails.
pub(crate) fn unpack_layer(
    blob: impl Read + Send,
    target: &Path,
    budget: &mut UnpackBudget,
) -> Result<String, String> {
    let mut buffered = BufReader::with_capacity(64 * 1024, blob);
    let is_gzip = buffered
        .fill_buf()
        .map_err(|e| format!("read layer: {e}"))?
        .starts_with(&[0x1f, 0x8b]);
    let decompressed: Box<dyn Read + Send> = if is_gzip {
        Box::new(MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let capped = CappedReader {
        inner: decompressed,
        left: budget.limits.max_bytes.saturating_sub(budget.bytes_used),
        message: budget.too_many_bytes(),
    };
    let mut layer = LayerWriter {
        root: target,
        written: HashSet::new(),
        dirs: Vec::new(),
        entries_left: budget
            .limits
            .max_entries
            .saturating_sub(budget.entries_used),
        entries: 0,
        too_many_entries: budget.too_many_entries(),
    };
    let (applied, hashed) = read_ahead(
        HashingReader::new(capped),
        |tar_stream| layer.apply_archive(tar_stream),
        HashingReader::finish,
    );
    // A passed byte limit shows up in the reader's error, on either side.
    let over_limit = budget.too_many_bytes();
    if let Err(e) = &hashed {
        if e.to_string() == over_limit {
            return Err(over_limit);
        }
    }
    applied?;
    let (diff_id, len) = hashed.map_err(|e| format!("read layer: {e}"))?;
    budget.bytes_used = budget.bytes_used.saturating_add(len);
    budget.entries_used = budget.entries_used.saturating_add(layer.entries);
    Ok(diff_id)
}

struct LayerWriter<'a> {
    root: &'a Path,
    /// Resolved paths (relative to root) created by this layer, with their ancestors:
    /// whiteouts only hide what lower layers made.
    written: HashSet<PathBuf>,
    /// Directory mtimes, applied after the layer since adding children changes them.
    dirs: Vec<(PathBuf, u64)>,
    /// Entries this layer may still have, and has had so far.
    entries_left: u64,
    entries: u64,
    too_many_entries: String,
}

impl LayerWriter<'_> {
    fn apply_archive(&mut self, tar_stream: &mut dyn Read) -> Result<(), String> {
        let mut archive = tar::Archive::new(tar_stream);
        archive.set_preserve_permissions(true);
        archive.set_preserve_ownerships(true);
        archive.set_preserve_mtime(true);
        archive.set_overwrite(true);
        let entries = archive.entries().map_err(|e| format!("read tar: {e}"))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| format!("read tar: {e}"))?;
            self.entries += 1;
            if self.entries > self.entries_left {
                return Err(self.too_many_entries.clone());
            }
            self.apply(&mut entry)?;
        }
        self.set_dir_mtimes()
    }

    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<(), String> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let raw = entry
            .path()
            .map_err(|e| format!("bad entry name: {e}"))?
            .into_owned();
        // The entry for "." itself: the rootfs root keeps the mode we gave it.
        let Some(rel) = clean_entry_path(&raw)? else {
            return Ok(());
        };
        let name = rel.file_name().unwrap_or_default().to_os_string();
        let parent = resolve_in_root(self.root, rel.parent().unwrap_or(Path::new("")))?;

        if let Some(hidden) = name.as_bytes().strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if name == OPAQUE_MARKER {
                return self.make_opaque(&parent);
            }
            let victim = whiteout_victim(&parent, std::ffi::OsStr::from_bytes(hidden))
                .map_err(|why| format!("whiteout {}: {why}", raw.display()))?;
            if !self.written.contains(&victim) {
                remove_any(&self.root.join(&victim))?;
            }
            return Ok(());
        }

        let parent_abs = self.root.join(&parent);
        fs::create_dir_all(&parent_abs)
            .map_err(|e| format!("create {}: {e}", parent_abs.display()))?;
        let dst_rel = parent.join(&name);
        let dst = self.root.join(&dst_rel);
        if let Ok(existing) = fs::symlink_metadata(&dst) {
            // Directories merge with the lower layer's; anything else replaces it.
            if !(kind.is_dir() && existing.is_dir()) {
                remove_any(&dst)?;
            }
        }

        let header = entry.header();
        let fail = |e: io::Error| format!("unpack {}: {e}", raw.display());
        match kind {
            EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(fail)?
                    .ok_or_else(|| format!("hard link {} has no target", raw.display()))?;
                let source = self.resolve_link_source(&target)?;
                fs::hard_link(&source, &dst).map_err(fail)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let file_type = match kind {
                    EntryType::Char => SFlag::S_IFCHR,
                    EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                // A FIFO has no device number, and GNU tar and Python leave its device
                // fields blank, which is not a number: read them for devices only.
                let (major, minor) = if kind == EntryType::Fifo {
                    (0, 0)
                } else {
                    (
                        header.device_major().map_err(fail)?.unwrap_or(0),
                        header.device_minor().map_err(fail)?.unwrap_or(0),
                    )
                };
                let mode = header.mode().map_err(fail)?;
                mknod(&dst, file_type, Mode::empty(), libc::makedev(major, minor))
                    .map_err(|e| fail(e.into()))?;
                let uid = header.uid().map_err(fail)? as u32;
                let gid = header.gid().map_err(fail)? as u32;
                std::os::unix::fs::lchown(&dst, Some(uid), Some(gid)).map_err(fail)?;
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&dst, fs::Permissions::from_mode(mode & 0o7777))
                    .map_err(fail)?;
            }
            _ => {
                if kind.is_dir() {
                    let mtime = header.mtime().map_err(fail)?;
                    self.dirs.push((dst_rel.clone(), mtime));
                }
                entry.unpack(&dst).map_err(fail)?;
            }
        }
        self.mark_written(dst_rel);
        Ok(())
    }

    fn mark_written(&mut self, path: PathBuf) {
        let mut current = Some(path.as_path());
        while let Some(p) = current {
            if p.as_os_str().is_empty() || !self.written.insert(p.to_path_buf()) {
                break;
            }
            current = p.parent();
        }
    }

    /// `.wh..wh..opq`: everything lower layers put in `dir` disappears; what this layer
    /// already wrote there stays.
    fn make_opaque(&self, dir: &Path) -> Result<(), String> {
        let abs = self.root.join(dir);
        let children = match fs::read_dir(&abs) {
            Ok(children) => children,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("read {}: {e}", abs.display())),
        };
        for child in children {
            let child = child.map_err(|e| format!("read {}: {e}", abs.display()))?;
            let child_rel = dir.join(child.file_name());
            if !self.written.contains(&child_rel) {
                remove_any(&child.path())?;
            } else if child.file_type().is_ok_and(|t| t.is_dir()) {
                self.make_opaque(&child_rel)?;
            }
        }
        Ok(())
    }

    /// A hard link's target, resolved inside the root; it must already exist.
    fn resolve_link_source(&self, link: &Path) -> Result<PathBuf, String> {
        let rel = clean_entry_path(link)?
            .ok_or_else(|| format!("hard link to the root directory {}", link.display()))?;
        let parent = resolve_in_root(self.root, rel.parent().unwrap_or(Path::new("")))?;
        let source = self
            .root
            .join(parent)
            .join(rel.file_name().unwrap_or_default());
        match fs::symlink_metadata(&source) {
            Ok(meta) if !meta.is_dir() => Ok(source),
            Ok(_) => Err(format!("hard link to directory {}", link.display())),
            Err(e) => Err(format!("hard link target {}: {e}", link.display())),
        }
    }

    fn set_dir_mtimes(&self) -> Result<(), String> {
        for (dir, mtime) in &self.dirs {
            let path = self.root.join(dir);
            // time_t is 32 bits on 32-bit targets (armhf): a later time stops at 2038.
            let seconds = libc::time_t::try_from(*mtime).unwrap_or(libc::time_t::MAX);
            let time = TimeSpec::new(seconds, 0);
            // The directory may have been whited out later in the same layer.
            match utimensat(None, &path, &time, &time, UtimensatFlags::NoFollowSymlink) {
                Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
                Err(e) => return Err(format!("set mtime of {}: {e}", path.display())),
            }
        }
        Ok(())
    }
}

/// The path (relative to the root) a whiteout hides: one plain entry of the whiteout's
/// own directory, never the directory itself, its parent or the root.
fn whiteout_victim(parent: &Path, hidden: &std::ffi::OsStr) -> Result<PathBuf, String> {
    let bytes = hidden.as_bytes();
    if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
        return Err(format!(
            "hides {:?}, which is not the name of an entry",
            hidden.to_string_lossy()
        ));
    }
    let victim = parent.join(hidden);
    // `parent` comes from `resolve_in_root`: plain components only. Checked again here
    // because deleting the wrong directory cannot be undone.
    if !victim
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(format!("hides {}, outside the layer", victim.display()));
    }
    Ok(victim)
}

/// Turns an entry name into a relative path of plain components (`./` dropped).
/// `None` stands for the root itself. Absolute names and `..` are refused.
pub(crate) fn clean_entry_path(raw: &Path) -> Result<Option<PathBuf>, String> {
    let mut clean = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!("entry {} climbs out with '..'", raw.display()))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("entry {} has an absolute path", raw.display()))
            }
        }
    }
    Ok((!clean.as_os_str().is_empty()).then_some(clean))
}

/// Resolves `rel` (plain components) inside `root`, following symlinks as if `root` were
/// `/`: absolute targets restart at `root`, `..` never climbs above it. Returns the
/// resolved path relative to `root`; components that do not exist yet are kept as they are.
pub(crate) fn resolve_in_root(root: &Path, rel: &Path) -> Result<PathBuf, String> {
    let mut resolved: Vec<OsString> = Vec::new();
    let mut pending: VecDeque<OsString> = rel.iter().map(|c| c.to_os_string()).collect();
    let mut hops = 0;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        if part == "." || part.is_empty() || part == "/" {
            continue;
        }
        let candidate: PathBuf = std::iter::once(root.as_os_str())
            .chain(resolved.iter().map(|p| p.as_os_str()))
            .chain(std::iter::once(part.as_os_str()))
            .collect();
        match fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err(format!("too many symlinks resolving {}", rel.display()));
                }
                let target = fs::read_link(&candidate)
                    .map_err(|e| format!("read link {}: {e}", candidate.display()))?;
                if target.is_absolute() {
                    resolved.clear();
                }
                for component in target.iter().rev() {
                    pending.push_front(component.to_os_string());
                }
            }
            Ok(meta) if !meta.is_dir() => {
                return Err(format!(
                    "{} is used as a directory but is not one",
                    candidate.display()
                ));
            }
            _ => resolved.push(part),
        }
    }
    Ok(resolved.iter().collect())
}

/// Removes a file, symlink (not its target) or whole directory; absent is fine.
fn remove_any(path: &Path) -> Result<(), String> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.map_err(|e| format!("remove {}: {e}", path.display()))
}

#[cfg(test)]
#[path = "unpack_tests.rs"]
pub(crate) mod tests;
