//! Applying layer tarballs onto a rootfs directory, with OCI whiteouts, without ever
//! writing outside the target.
//!
//! Path safety: entry names with `..` or a leading `/` are rejected, and parent directories
//! are resolved component by component inside the target, so a symlink left by an earlier
//! layer (say `etc -> /`) is followed as if the target were `/` (like a chroot would) and
//! never leads to the host's files. The final component is never followed: whatever is there
//! is replaced.

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

/// Applies one layer blob (gzip or plain tar, detected by the gzip magic) read from
/// `blob` onto `target` and returns the digest of the uncompressed tar (the layer's diff
/// id). Streams: besides the current entry's header, at most a few pieces read ahead are
/// held in memory. Decompressing and hashing run on a second thread beside the writing.
pub(crate) fn unpack_layer(blob: impl Read + Send, target: &Path) -> Result<String, String> {
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
    let mut layer = LayerWriter {
        root: target,
        written: HashSet::new(),
        dirs: Vec::new(),
    };
    let (applied, hashed) = read_ahead(
        HashingReader::new(decompressed),
        |tar_stream| layer.apply_archive(tar_stream),
        HashingReader::finish,
    );
    applied?;
    let (diff_id, _) = hashed.map_err(|e| format!("read layer: {e}"))?;
    Ok(diff_id)
}

struct LayerWriter<'a> {
    root: &'a Path,
    /// Resolved paths (relative to root) created by this layer, with their ancestors:
    /// whiteouts only hide what lower layers made.
    written: HashSet<PathBuf>,
    /// Directory mtimes, applied after the layer since adding children changes them.
    dirs: Vec<(PathBuf, u64)>,
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
            let victim = parent.join(std::ffi::OsStr::from_bytes(hidden));
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
pub(crate) mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// Builds layer tarballs in memory for tests.
    pub(crate) struct LayerBuilder(tar::Builder<Vec<u8>>);

    impl LayerBuilder {
        pub fn new() -> Self {
            LayerBuilder(tar::Builder::new(Vec::new()))
        }

        fn header(kind: EntryType, mode: u32, size: u64) -> tar::Header {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(kind);
            header.set_mode(mode);
            header.set_size(size);
            header.set_mtime(1_000_000);
            header.set_uid(0);
            header.set_gid(0);
            header
        }

        pub fn dir(mut self, path: &str) -> Self {
            let mut header = Self::header(EntryType::Directory, 0o755, 0);
            self.0.append_data(&mut header, path, io::empty()).unwrap();
            self
        }

        pub fn file(mut self, path: &str, content: &str) -> Self {
            let mut header = Self::header(EntryType::Regular, 0o644, content.len() as u64);
            self.0
                .append_data(&mut header, path, content.as_bytes())
                .unwrap();
            self
        }

        pub fn file_with(
            mut self,
            path: &str,
            content: &str,
            mode: u32,
            uid: u64,
            mtime: u64,
        ) -> Self {
            let mut header = Self::header(EntryType::Regular, mode, content.len() as u64);
            header.set_uid(uid);
            header.set_gid(uid);
            header.set_mtime(mtime);
            self.0
                .append_data(&mut header, path, content.as_bytes())
                .unwrap();
            self
        }

        pub fn symlink(mut self, path: &str, target: &str) -> Self {
            let mut header = Self::header(EntryType::Symlink, 0o777, 0);
            self.0.append_link(&mut header, path, target).unwrap();
            self
        }

        pub fn hardlink(mut self, path: &str, target: &str) -> Self {
            let mut header = Self::header(EntryType::Link, 0o644, 0);
            self.0.append_link(&mut header, path, target).unwrap();
            self
        }

        /// An entry whose name bypasses the tar crate's own checks (`..`, absolute).
        pub fn raw_name(mut self, name: &str, content: &str) -> Self {
            let mut header = Self::header(EntryType::Regular, 0o644, content.len() as u64);
            let gnu = header.as_gnu_mut().unwrap();
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            header.set_cksum();
            self.0.append(&header, content.as_bytes()).unwrap();
            self
        }

        /// A FIFO whose device fields hold `blank` bytes instead of numbers, as GNU tar
        /// (spaces) and Python's tarfile (NULs) write them.
        pub fn fifo_with_blank_devices(mut self, path: &str, blank: u8) -> Self {
            let mut header = Self::header(EntryType::Fifo, 0o620, 0);
            header.set_path(path).unwrap();
            let gnu = header.as_gnu_mut().unwrap();
            gnu.dev_major = [blank; 8];
            gnu.dev_minor = [blank; 8];
            header.set_cksum();
            self.0.append(&header, io::empty()).unwrap();
            self
        }

        pub fn tar(self) -> Vec<u8> {
            self.0.into_inner().unwrap()
        }

        pub fn gzip(self) -> Vec<u8> {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(&self.tar()).unwrap();
            encoder.finish().unwrap()
        }
    }

    /// Writes each layer to a file and applies them in order onto `root`.
    fn apply(dir: &Path, root: &Path, layers: Vec<Vec<u8>>) -> Result<Vec<String>, String> {
        fs::create_dir_all(root).unwrap();
        let mut diff_ids = Vec::new();
        for (i, layer) in layers.into_iter().enumerate() {
            let blob = dir.join(format!("layer{i}"));
            fs::write(&blob, layer).unwrap();
            diff_ids.push(unpack_layer(fs::File::open(&blob).unwrap(), root)?);
        }
        Ok(diff_ids)
    }

    #[test]
    fn whiteouts_and_opaque_dirs_hide_lower_layers_only() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let lower = LayerBuilder::new()
            .dir("a")
            .file("a/keep", "k")
            .file("a/gone", "g")
            .dir("d")
            .file("d/old", "o")
            .dir("d/sub")
            .file("d/sub/deep", "x")
            .file("top", "t")
            .gzip();
        let upper = LayerBuilder::new()
            .file("a/.wh.gone", "")
            .dir("d")
            .file("d/new", "written before the marker")
            .file("d/.wh..wh..opq", "")
            .file("d/after", "written after the marker")
            .file(".wh.top", "")
            .tar();
        apply(tmp.path(), &root, vec![lower, upper]).unwrap();
        assert!(root.join("a/keep").exists());
        assert!(!root.join("a/gone").exists());
        assert!(!root.join("a/.wh.gone").exists());
        assert!(
            root.join("d/new").exists(),
            "same-layer entry survives the opaque marker"
        );
        assert!(root.join("d/after").exists());
        assert!(!root.join("d/old").exists());
        assert!(!root.join("d/sub").exists());
        assert!(!root.join("d/.wh..wh..opq").exists());
        assert!(!root.join("top").exists());
    }

    #[test]
    fn traversal_entries_are_rejected() {
        let tmp = tempfile::tempdir().unwrap();
        for name in ["../evil", "a/../../evil", "/abs-evil"] {
            let root = tmp.path().join("root");
            let layer = LayerBuilder::new().raw_name(name, "pwned").tar();
            let err = apply(tmp.path(), &root, vec![layer]).unwrap_err();
            assert!(
                err.contains("..") || err.contains("absolute"),
                "{name}: {err}"
            );
            assert!(!tmp.path().join("evil").exists());
            fs::remove_dir_all(&root).unwrap();
        }
        let layer = LayerBuilder::new()
            .file("f", "x")
            .hardlink("h", "../outside")
            .tar();
        let err = apply(tmp.path(), &tmp.path().join("root"), vec![layer]).unwrap_err();
        assert!(err.contains(".."), "{err}");
    }

    #[test]
    fn symlinks_from_lower_layers_stay_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let victim = tmp.path().join("victim");
        fs::write(&victim, "orig").unwrap();
        let lower = LayerBuilder::new()
            .symlink("up", "../../outside")
            .symlink("abs", "/")
            .symlink("link", victim.to_str().unwrap())
            .tar();
        let upper = LayerBuilder::new()
            .file("up/pwned", "1")
            .file("abs/etc/hostname", "2")
            .file("link", "replaced")
            .tar();
        apply(tmp.path(), &root, vec![lower, upper]).unwrap();
        assert!(root.join("outside/pwned").is_file());
        assert!(!tmp.path().join("outside").exists());
        assert_eq!(fs::read_to_string(root.join("etc/hostname")).unwrap(), "2");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "orig");
        let link = fs::symlink_metadata(root.join("link")).unwrap();
        assert!(link.is_file());
    }

    #[test]
    fn modes_owners_mtimes_and_hardlinks_are_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let layer = LayerBuilder::new()
            .dir("bin")
            .file_with("bin/tool", "#!/bin/sh\n", 0o4750, 1000, 12345)
            .hardlink("bin/alias", "bin/tool")
            .symlink("bin/sym", "tool")
            .tar();
        let expected = crate::image::blobs::digest_of(&layer);
        let diff_ids = apply(tmp.path(), &root, vec![layer]).unwrap();
        assert_eq!(diff_ids, vec![expected]);
        let tool = fs::metadata(root.join("bin/tool")).unwrap();
        assert_eq!(tool.permissions().mode() & 0o7777, 0o4750);
        assert_eq!((tool.uid(), tool.gid()), (1000, 1000));
        assert_eq!(tool.mtime(), 12345);
        let alias = fs::metadata(root.join("bin/alias")).unwrap();
        assert_eq!(alias.ino(), tool.ino());
        assert_eq!(
            fs::read_link(root.join("bin/sym")).unwrap(),
            Path::new("tool")
        );
        assert_eq!(fs::metadata(root.join("bin")).unwrap().mtime(), 1_000_000);
    }

    #[test]
    fn fifos_with_blank_device_fields_unpack() {
        use std::os::unix::fs::FileTypeExt;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let layer = LayerBuilder::new()
            .dir("run")
            .fifo_with_blank_devices("run/gnu-fifo", b' ')
            .fifo_with_blank_devices("run/python-fifo", 0)
            .tar();
        apply(tmp.path(), &root, vec![layer]).unwrap();
        for name in ["run/gnu-fifo", "run/python-fifo"] {
            let meta = fs::symlink_metadata(root.join(name)).unwrap();
            assert!(meta.file_type().is_fifo(), "{name}: {meta:?}");
            assert_eq!(meta.permissions().mode() & 0o7777, 0o620, "{name}");
        }
    }

    #[test]
    fn resolve_in_root_clamps_and_detects_loops() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        std::os::unix::fs::symlink("../../../x/y", root.join("far")).unwrap();
        assert!(resolve_in_root(root, Path::new("loop/a"))
            .unwrap_err()
            .contains("too many"));
        assert_eq!(
            resolve_in_root(root, Path::new("far/z")).unwrap(),
            Path::new("x/y/z")
        );
    }
}
