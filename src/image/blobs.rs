//! Verified blob copies and atomic file writes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::oci::Descriptor;
use super::reference::validate_digest;
use super::ImageError;

/// JSON documents (index, manifest, config) larger than this are refused rather than
/// read into memory; real ones are a few kilobytes.
pub const MAX_JSON_BLOB: u64 = 4 << 20;

/// Checks that a descriptor's digest is a well-formed sha256 digest, so that its hex part
/// is safe to use as a file name.
pub fn checked_hex(digest: &str) -> Result<&str, ImageError> {
    validate_digest(digest).map_err(|reason| ImageError::InvalidReference {
        reference: digest.to_string(),
        reason,
    })?;
    Ok(&digest["sha256:".len()..])
}

/// `<blobs_dir>/<hex>` for a digest, after validating it.
pub fn blob_path(blobs_dir: &Path, digest: &str) -> Result<PathBuf, ImageError> {
    Ok(blobs_dir.join(checked_hex(digest)?))
}

/// A reader that computes the sha256 and length of everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Reads the rest of the stream (tar readers stop before trailing padding) and
    /// returns `("sha256:<hex>", length)`.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((format!("sha256:{:x}", self.hasher.finalize()), self.len))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// Compares what was read with the descriptor.
fn check(desc: &Descriptor, digest: &str, len: u64) -> Result<(), ImageError> {
    if len != desc.size || digest != desc.digest {
        return Err(ImageError::DigestMismatch {
            digest: desc.digest.clone(),
            actual: format!(
                "read {len} bytes with digest {digest}, expected {} bytes",
                desc.size
            ),
        });
    }
    Ok(())
}

/// Streams `src` into a new file `dst`, verifying size and digest, and fsyncs it.
/// On mismatch the partial file is removed.
pub fn copy_verified(src: &Path, dst: &Path, desc: &Descriptor) -> Result<(), ImageError> {
    let result = (|| {
        let input = File::open(src).map_err(|e| ImageError::io(src, e))?;
        // One byte more than announced is enough to notice an oversized blob.
        let mut reader = HashingReader::new(input.take(desc.size.saturating_add(1)));
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dst)
            .map_err(|e| ImageError::io(dst, e))?;
        io::copy(&mut reader, &mut out).map_err(|e| ImageError::io(src, e))?;
        let (digest, len) = reader.finish().map_err(|e| ImageError::io(src, e))?;
        check(desc, &digest, len)?;
        out.sync_all().map_err(|e| ImageError::io(dst, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(dst);
    }
    result
}

/// Verifies a file in place (used for blobs already staged on our own disk) and fsyncs it.
pub fn verify_file(path: &Path, desc: &Descriptor) -> Result<(), ImageError> {
    let file = File::open(path).map_err(|e| ImageError::io(path, e))?;
    let reader = HashingReader::new((&file).take(desc.size.saturating_add(1)));
    let (digest, len) = reader.finish().map_err(|e| ImageError::io(path, e))?;
    check(desc, &digest, len)?;
    file.sync_all().map_err(|e| ImageError::io(path, e))
}

/// Reads a small JSON blob and verifies it against its descriptor.
pub fn read_verified(path: &Path, desc: &Descriptor) -> Result<Vec<u8>, ImageError> {
    if desc.size > MAX_JSON_BLOB {
        return Err(ImageError::layout(
            path,
            format!(
                "document {} is {} bytes, more than allowed",
                desc.digest, desc.size
            ),
        ));
    }
    let file = File::open(path).map_err(|e| ImageError::io(path, e))?;
    let mut reader = HashingReader::new(file.take(desc.size + 1));
    let mut bytes = Vec::with_capacity(desc.size as usize);
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| ImageError::io(path, e))?;
    let (digest, len) = reader.finish().map_err(|e| ImageError::io(path, e))?;
    check(desc, &digest, len)?;
    Ok(bytes)
}

/// Writes `bytes` to `dst` through a temporary file in `tmp_dir`, fsync and rename, so
/// readers see either the old or the new content, never a partial one.
pub fn write_atomic(tmp_dir: &Path, dst: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let name = dst.file_name().unwrap_or_default().to_string_lossy();
    let tmp = tmp_dir.join(format!("{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = File::create(&tmp).map_err(|e| ImageError::io(&tmp, e))?;
        file.write_all(bytes).map_err(|e| ImageError::io(&tmp, e))?;
        file.sync_all().map_err(|e| ImageError::io(&tmp, e))?;
        fs::rename(&tmp, dst).map_err(|e| ImageError::io(dst, e))?;
        sync_parent(dst)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Makes a rename or unlink in `path`'s directory durable.
pub fn sync_parent(path: &Path) -> Result<(), ImageError> {
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

pub fn sync_dir(dir: &Path) -> Result<(), ImageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ImageError::io(dir, e))
}

/// Files being written ask the kernel to start writing them to disk every this many bytes.
pub const WRITEBACK_STEP: u64 = 4 << 20;

/// Starts writing a range of `file` to disk without waiting for it (`sync_file_range`
/// with `SYNC_FILE_RANGE_WRITE`), so a later fsync or syncfs has little left to do and
/// the disk works while we still download or unpack. Only a hint: errors are ignored,
/// the fsync or syncfs that follows reports real ones.
pub fn start_writeback(file: &File, offset: u64, len: u64) {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: sync_file_range only reads its integer arguments; the descriptor is open
    // for as long as `file` is borrowed.
    unsafe {
        libc::sync_file_range(
            std::os::fd::AsRawFd::as_raw_fd(file),
            offset,
            len,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// Flushes everything written on the filesystem that holds `path` (`syncfs`): one call
/// makes a whole unpacked tree durable, where an fsync per file would cost a flush each.
pub fn sync_filesystem(path: &Path) -> Result<(), ImageError> {
    let file = File::open(path).map_err(|e| ImageError::io(path, e))?;
    nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&file))
        .map_err(|e| ImageError::io(path, e.into()))
}

/// The sha256 digest of `bytes` as `sha256:<hex>`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}
