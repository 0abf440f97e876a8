//! Small file helpers for the PKI: private key reads that check permissions, and
//! atomic writes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::PkiError;

pub(super) fn exists(path: &Path) -> Result<bool, PkiError> {
    path.try_exists().map_err(io_error("check", path))
}

pub(super) fn read_text(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(io_error("read", path))
}

/// Reads a private key file after checking nobody but the owner can read it.
pub(super) fn read_key_file(path: &Path) -> Result<String, PkiError> {
    let mode = fs::metadata(path)
        .map_err(io_error("inspect", path))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(PkiError::KeyTooOpen {
            path: path.to_path_buf(),
            mode: mode & 0o7777,
        });
    }
    read_text(path)
}

/// Writes `contents` to `path` with `mode` so that readers see the old file or the
/// whole new one, never a partial write.
pub(super) fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let mut temp_name = path.as_os_str().to_owned();
    temp_name.push(".tmp");
    let temp = PathBuf::from(temp_name);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temp)
        .map_err(io_error("create", &temp))?;
    // `mode` only applies to new files; a leftover temp file may have other bits.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_error("set permissions of", &temp))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(io_error("write", &temp))?;
    fs::rename(&temp, path).map_err(io_error("rename into place", path))?;
    if let Some(parent) = path.parent() {
        // Persist the rename itself.
        File::open(parent)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error("sync directory", parent))?;
    }
    Ok(())
}

pub(super) fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PkiError {
    let path = path.to_path_buf();
    move |source| PkiError::Io {
        action,
        path,
        source,
    }
}

/// The CA certificate and key (PEM) in `dir`, when both are there.
pub fn read_ca(dir: &Path) -> Result<Option<(String, String)>, PkiError> {
    let (cert, key) = (dir.join(super::CA_CERT_FILE), dir.join(super::CA_KEY_FILE));
    if !exists(&cert)? || !exists(&key)? {
        return Ok(None);
    }
    Ok(Some((read_text(&cert)?, read_key_file(&key)?)))
}

/// Puts this CA certificate and key (PEM) in `dir` unless they are there already;
/// returns whether it wrote. The server certificate is then re-issued by the next
/// [`super::Pki::load_or_create`], since the old one does not chain to this CA.
pub fn install_ca(dir: &Path, cert_pem: &str, key_pem: &str) -> Result<bool, PkiError> {
    if read_ca(dir)?.is_some_and(|(cert, key)| cert == cert_pem && key == key_pem) {
        return Ok(false);
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_error("create directory", dir))?;
    write_atomically(&dir.join(super::CA_KEY_FILE), key_pem.as_bytes(), 0o600)?;
    write_atomically(&dir.join(super::CA_CERT_FILE), cert_pem.as_bytes(), 0o644)?;
    Ok(true)
}
