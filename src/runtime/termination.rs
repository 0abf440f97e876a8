//! Termination messages (`terminationMessagePath`), as the kubelet gives them: a file of
//! the container's own, bind-mounted at the path it names, read when the container exits
//! into its terminated state's `message`. With `FallbackToLogsOnError`, a failed
//! container that wrote nothing there gets the end of its log instead.

use std::borrow::Cow;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::files;
use super::{ContainerConfig, RuntimeError, VolumeBind};

/// The most of the file that is read, as the kubelet limits it.
const MAX_MESSAGE_BYTES: u64 = 4096;
/// The most of the log that stands in for a missing message: its last lines, and of
/// them at most this many bytes.
const FALLBACK_LINES: usize = 80;
const FALLBACK_BYTES: u64 = 2048;

/// `cfg` with its termination message file made in `dir` and mounted where the
/// container expects it; `cfg` itself when it has none.
pub(crate) fn with_termination_log<'a>(
    cfg: &'a ContainerConfig,
    dir: &Path,
) -> Result<Cow<'a, ContainerConfig>, RuntimeError> {
    let Some(message) = &cfg.termination_message else {
        return Ok(Cow::Borrowed(cfg));
    };
    let file = dir.join(files::TERMINATION_LOG_FILE);
    fs::File::create(&file).map_err(|e| RuntimeError::io("create", &file, e))?;
    // Any user the container runs as may write it, as the kubelet allows.
    fs::set_permissions(&file, fs::Permissions::from_mode(0o666))
        .map_err(|e| RuntimeError::io("chmod", &file, e))?;
    let mut cfg = cfg.clone();
    cfg.volume_mounts.push(VolumeBind {
        source: file,
        destination: message.destination.clone(),
        read_only: false,
        host_to_container: false,
    });
    Ok(Cow::Owned(cfg))
}

/// The message of a container that exited with `exit_code`, if it left one.
pub(crate) fn read_message(cfg: &ContainerConfig, dir: &Path, exit_code: i32) -> Option<String> {
    let settings = cfg.termination_message.as_ref()?;
    let written = read_head(&dir.join(files::TERMINATION_LOG_FILE), MAX_MESSAGE_BYTES);
    if !written.is_empty() {
        return Some(written);
    }
    if settings.fallback_to_logs && exit_code != 0 {
        let tail = log_tail(&cfg.log_path);
        return (!tail.is_empty()).then_some(tail);
    }
    None
}

/// At most `limit` bytes from the start of `path` (not following a symlink the
/// container may have put there), as text.
fn read_head(path: &Path, limit: u64) -> String {
    let Ok(file) = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    else {
        return String::new();
    };
    let mut bytes = Vec::new();
    if file.take(limit).read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The last [`FALLBACK_LINES`] lines of the log, within its last [`FALLBACK_BYTES`].
fn log_tail(path: &Path) -> String {
    let Ok(mut file) = fs::File::open(path) else {
        return String::new();
    };
    let Ok(length) = file.seek(SeekFrom::End(0)) else {
        return String::new();
    };
    let start = length.saturating_sub(FALLBACK_BYTES);
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(FALLBACK_LINES);
    let mut tail = lines[from..].join("\n");
    if text.ends_with('\n') && !tail.is_empty() {
        tail.push('\n');
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::TerminationMessage;

    fn config(log: &Path, fallback: bool) -> ContainerConfig {
        let mut cfg = crate::runtime::fake::test_config("c1");
        cfg.log_path = log.to_path_buf();
        cfg.termination_message = Some(TerminationMessage {
            destination: "/dev/termination-log".into(),
            fallback_to_logs: fallback,
        });
        cfg
    }

    #[test]
    fn the_file_is_mounted_and_read_with_a_limit() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(&dir.path().join("log"), false);
        let mounted = with_termination_log(&cfg, dir.path()).unwrap();
        let bind = mounted.volume_mounts.last().unwrap();
        assert_eq!(bind.destination, "/dev/termination-log");
        let file = dir.path().join(files::TERMINATION_LOG_FILE);
        assert_eq!(bind.source, file);
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666);
        assert_eq!(read_message(&cfg, dir.path(), 1), None);
        fs::write(&file, "x".repeat(5000)).unwrap();
        assert_eq!(read_message(&cfg, dir.path(), 0).unwrap().len(), 4096);
    }

    #[test]
    fn a_failed_container_without_a_message_falls_back_to_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let lines: String = (0..100).map(|i| format!("line {i}\n")).collect();
        fs::write(&log, lines).unwrap();
        let cfg = config(&log, true);
        with_termination_log(&cfg, dir.path()).unwrap();
        let tail = read_message(&cfg, dir.path(), 2).unwrap();
        assert!(
            tail.starts_with("line 20\n") && tail.ends_with("line 99\n"),
            "{tail}"
        );
        // Success, or the File policy: no fallback.
        assert_eq!(read_message(&cfg, dir.path(), 0), None);
        assert_eq!(read_message(&config(&log, false), dir.path(), 2), None);
    }
}
