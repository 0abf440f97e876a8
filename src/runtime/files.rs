//! The runtime's file layout under the state dir, atomic writes and timestamps.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::RuntimeError;

pub(crate) const CONFIG_FILE: &str = "config.json";
pub(crate) const BUNDLE_DIR: &str = "bundle";
pub(crate) const ROOTFS_DIR: &str = "rootfs";
pub(crate) const UPPER_DIR: &str = "upper";
pub(crate) const WORK_DIR: &str = "work";
pub(crate) const SHIM_PID_FILE: &str = "shim.pid";
pub(crate) const INIT_PID_FILE: &str = "init.pid";
pub(crate) const STARTED_AT_FILE: &str = "started_at";
pub(crate) const EXIT_FILE: &str = "exit.json";
/// The host side of the container's termination message file.
pub(crate) const TERMINATION_LOG_FILE: &str = "termination-log";
pub(crate) const SHIM_LOG_FILE: &str = "shim.log";
/// Written by the agent next to `config.json`: the cgroup parent and libcontainer root the
/// shim must use, so the shim needs nothing but the container dir.
pub(crate) const SHIM_SETTINGS_FILE: &str = "shim.json";

/// Paths of everything the runtime keeps under the state dir.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    state_dir: PathBuf,
}

impl Layout {
    pub(crate) fn new(state_dir: &Path) -> Self {
        Layout {
            state_dir: state_dir.to_path_buf(),
        }
    }

    pub(crate) fn containers_dir(&self) -> PathBuf {
        self.state_dir.join("containers")
    }

    pub(crate) fn container_dir(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id)
    }

    pub(crate) fn pods_dir(&self) -> PathBuf {
        self.state_dir.join("pods")
    }

    pub(crate) fn namespace_dir(&self, pod_uid: &str) -> PathBuf {
        self.pods_dir().join(pod_uid).join("ns")
    }

    /// `libcontainer`'s root directory for its own container state.
    pub(crate) fn libcontainer_root(&self) -> PathBuf {
        self.state_dir.join("runtime")
    }
}

/// What the shim needs besides the container's own config.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ShimSettings {
    pub(crate) libcontainer_root: PathBuf,
    pub(crate) cgroup_path: String,
}

/// Writes a file so that readers see either the old or the new content, never a part.
/// The temporary name is unique per process and call, because the agent and a shim may
/// write the same file (`shim.pid`) at the same moment.
pub(crate) fn write_atomic(path: &Path, content: &[u8]) -> Result<(), RuntimeError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = PathBuf::from(tmp_name);
    let mut file = fs::File::create(&tmp).map_err(|e| RuntimeError::io("create", &tmp, e))?;
    file.write_all(content)
        .map_err(|e| RuntimeError::io("write", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| RuntimeError::io("rename into place", path, e))
}

pub(crate) fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), RuntimeError> {
    let text = serde_json::to_vec_pretty(value).map_err(|e| RuntimeError::Json {
        path: path.to_path_buf(),
        source: e,
    })?;
    write_atomic(path, &text)
}

/// Reads a json file; `None` if it does not exist.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Option<T>, RuntimeError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| RuntimeError::Json {
                path: path.to_path_buf(),
                source: e,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RuntimeError::io("read", path, e)),
    }
}

/// Reads a small text file, trimmed; `None` if it does not exist.
pub(crate) fn read_text(path: &Path) -> Result<Option<String>, RuntimeError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RuntimeError::io("read", path, e)),
    }
}

/// Reads a pid file; `None` if it is missing or does not hold a positive number.
pub(crate) fn read_pid(path: &Path) -> Result<Option<i32>, RuntimeError> {
    Ok(read_text(path)?
        .and_then(|text| text.parse::<i32>().ok())
        .filter(|pid| *pid > 0))
}

/// The current time as RFC 3339 in UTC with second precision, e.g. `2024-05-01T12:00:00Z`.
pub(crate) fn now_rfc3339() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format_rfc3339(seconds)
}

/// Formats seconds since the Unix epoch as RFC 3339 UTC (civil-from-days conversion).
pub(crate) fn format_rfc3339(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let second_of_day = unix_seconds % 86_400;
    // Shift the epoch to 0000-03-01 so leap days fall at the end of each 400-year era.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_timestamps() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(1_714_564_800), "2024-05-01T12:00:00Z");
        assert_eq!(format_rfc3339(1_735_689_599), "2024-12-31T23:59:59Z");
    }

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        write_json(&path, &vec![1, 2]).unwrap();
        write_json(&path, &vec![3]).unwrap();
        let back: Option<Vec<i32>> = read_json(&path).unwrap();
        assert_eq!(back, Some(vec![3]));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        let missing: Option<Vec<i32>> = read_json(&dir.path().join("none")).unwrap();
        assert_eq!(missing, None);
    }

    #[test]
    fn pid_files_must_hold_positive_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pid");
        fs::write(&path, "123\n").unwrap();
        assert_eq!(read_pid(&path).unwrap(), Some(123));
        fs::write(&path, "-1").unwrap();
        assert_eq!(read_pid(&path).unwrap(), None);
        fs::write(&path, "junk").unwrap();
        assert_eq!(read_pid(&path).unwrap(), None);
    }
}
