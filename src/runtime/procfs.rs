//! Liveness checks through `/proc` and pidfds, robust against PID reuse, and the cgroup
//! counters the shim reads.

use std::fs;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::CgroupVersion;

use super::files::{self, SHIM_PID_FILE};
use super::RuntimeError;

/// A shim process, identified by its pid and its start time (in clock ticks since boot, as
/// in `/proc/<pid>/stat`): a reused pid has a different start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ShimIdentity {
    pub(crate) pid: i32,
    pub(crate) start_ticks: Option<u64>,
}

/// Writes `shim.pid` as `<pid> <start ticks>`.
pub(crate) fn record_shim(container_dir: &Path, pid: i32) -> Result<(), RuntimeError> {
    let text = match start_ticks(pid) {
        Some(ticks) => format!("{pid} {ticks}\n"),
        None => format!("{pid}\n"),
    };
    files::write_atomic(&container_dir.join(SHIM_PID_FILE), text.as_bytes())
}

/// Reads `shim.pid`; `None` if it is missing or malformed.
pub(crate) fn read_shim(container_dir: &Path) -> Result<Option<ShimIdentity>, RuntimeError> {
    Ok(files::read_text(&container_dir.join(SHIM_PID_FILE))?
        .and_then(|text| parse_shim_identity(&text)))
}

fn parse_shim_identity(text: &str) -> Option<ShimIdentity> {
    let mut fields = text.split_whitespace();
    let pid = fields.next()?.parse::<i32>().ok().filter(|pid| *pid > 0)?;
    let start_ticks = fields.next().and_then(|t| t.parse::<u64>().ok());
    Some(ShimIdentity { pid, start_ticks })
}

/// Is the shim for `container_dir` alive? Dead, zombie, and reused pids read as "not
/// alive". The start time is the primary check, because the command line of a process is
/// briefly empty while it execs; a non-empty command line must also name the container dir.
pub(crate) fn is_shim_alive(shim: &ShimIdentity, container_dir: &Path) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{}/stat", shim.pid)) else {
        return false;
    };
    if stat_state(&stat).is_none_or(|state| state == "Z" || state == "X") {
        return false;
    }
    let Ok(cmdline) = fs::read(format!("/proc/{}/cmdline", shim.pid)) else {
        return false;
    };
    match shim.start_ticks {
        Some(ticks) => {
            stat_start_ticks(&stat) == Some(ticks)
                && (cmdline.is_empty() || cmdline_names_shim(&cmdline, container_dir))
        }
        None => cmdline_names_shim(&cmdline, container_dir),
    }
}

/// Looks through `/proc` for a live shim of `container_dir`: one that was spawned but has
/// not recorded its pid yet. Only called for the rare container without `shim.pid`.
pub(crate) fn find_shim(container_dir: &Path) -> Option<ShimIdentity> {
    let entries = fs::read_dir("/proc").ok()?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find_map(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            if !cmdline_names_shim(&cmdline, container_dir) {
                return None;
            }
            let shim = ShimIdentity {
                pid,
                start_ticks: start_ticks(pid),
            };
            is_shim_alive(&shim, container_dir).then_some(shim)
        })
}

/// Fields of `/proc/<pid>/stat` after the command name, which is in parentheses and may
/// contain spaces: the first one is field 3 (state).
fn stat_fields_after_comm(stat: &str) -> Option<std::str::SplitWhitespace<'_>> {
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace())
}

pub(crate) fn stat_state(stat: &str) -> Option<&str> {
    stat_fields_after_comm(stat)?.next()
}

/// Field 22, `starttime`.
pub(crate) fn stat_start_ticks(stat: &str) -> Option<u64> {
    stat_fields_after_comm(stat)?.nth(19)?.parse().ok()
}

pub(crate) fn start_ticks(pid: i32) -> Option<u64> {
    stat_start_ticks(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Does a NUL-separated command line read `<exe> shim <container_dir>`?
pub(crate) fn cmdline_names_shim(cmdline: &[u8], container_dir: &Path) -> bool {
    let args: Vec<&[u8]> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .collect();
    let dir = container_dir.as_os_str().as_encoded_bytes();
    args.len() == 3 && args[1] == b"shim" && args[2] == dir
}

/// Is `pid` a live process inside the cgroup `cgroup_path` (e.g. `/berth/<id>`)? Used before
/// signalling a container's init so a reused PID is never signalled.
pub(crate) fn is_in_cgroup(pid: i32, cgroup_path: &str) -> bool {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return false;
    };
    let zombie = fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .as_deref()
        .and_then(stat_state)
        .is_none_or(|state| state == "Z" || state == "X");
    if zombie {
        return false;
    }
    cgroup_file_names_path(&text, cgroup_path)
}

/// Does a `/proc/<pid>/cgroup` text place the process in `cgroup_path` in some hierarchy?
/// Paths are shown relative to the reader's cgroup namespace, so a suffix match is used.
pub(crate) fn cgroup_file_names_path(text: &str, cgroup_path: &str) -> bool {
    text.lines()
        .filter_map(|line| line.splitn(3, ':').nth(2))
        .any(|path| path == cgroup_path || path.ends_with(cgroup_path))
}

/// Opens a pidfd for `pid` (Linux 5.3+).
pub(crate) fn pidfd_open(pid: i32) -> Result<OwnedFd, nix::errno::Errno> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new file descriptor or -1;
    // no memory is passed to the kernel.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(nix::errno::Errno::last());
    }
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The file with the OOM-kill counter of a cgroup, per cgroup version.
pub(crate) fn oom_events_file(version: CgroupVersion, cgroup_path: &str) -> PathBuf {
    let relative = cgroup_path.trim_start_matches('/');
    match version {
        CgroupVersion::V1 => Path::new("/sys/fs/cgroup/memory")
            .join(relative)
            .join("memory.oom_control"),
        CgroupVersion::V2 => Path::new("/sys/fs/cgroup")
            .join(relative)
            .join("memory.events"),
    }
}

/// Parses the `oom_kill N` line of `memory.oom_control` (v1) or `memory.events` (v2).
pub(crate) fn parse_oom_kill_count(text: &str) -> u64 {
    text.lines()
        .filter_map(|line| line.strip_prefix("oom_kill "))
        .filter_map(|n| n.trim().parse().ok())
        .next()
        .unwrap_or(0)
}

/// How many processes of the cgroup the kernel OOM-killed; 0 if unknown.
pub(crate) fn oom_kill_count(version: CgroupVersion, cgroup_path: &str) -> u64 {
    match fs::read_to_string(oom_events_file(version, cgroup_path)) {
        Ok(text) => parse_oom_kill_count(&text),
        Err(err) => {
            log::debug!("cannot read the oom counter of {cgroup_path}: {err}");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shim_cmdline_must_name_the_container_dir() {
        let dir = Path::new("/var/lib/berth/containers/a");
        assert!(cmdline_names_shim(
            b"/usr/bin/berth\0shim\0/var/lib/berth/containers/a\0",
            dir
        ));
        assert!(!cmdline_names_shim(
            b"/usr/bin/berth\0shim\0/var/lib/berth/containers/ab\0",
            dir
        ));
        assert!(!cmdline_names_shim(b"/bin/sleep\x001000\x00", dir));
        assert!(!cmdline_names_shim(b"", dir));
    }

    #[test]
    fn cgroup_membership_matches_any_hierarchy() {
        let v1 = "5:devices:/\n4:memory:/berth/c1\n0::/\n";
        assert!(cgroup_file_names_path(v1, "/berth/c1"));
        assert!(!cgroup_file_names_path(v1, "/berth/c2"));
        let nested = "0::/../../berth/c1\n";
        assert!(cgroup_file_names_path(nested, "/berth/c1"));
    }

    #[test]
    fn oom_counter_is_parsed_from_both_formats() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(parse_oom_kill_count(v1), 2);
        let v2 = "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(parse_oom_kill_count(v2), 1);
        assert_eq!(parse_oom_kill_count(""), 0);
    }

    #[test]
    fn a_shim_that_has_not_recorded_itself_is_found_by_its_command_line() {
        // `sh shim <dir>` runs the script `shim` from the current dir, and its command
        // line reads like a shim's: `<exe> shim <container dir>`. The script waits with
        // the builtin `read`: a forked child would carry the same command line.
        let scratch = tempfile::tempdir().expect("temp dir");
        std::fs::write(scratch.path().join("shim"), "read line\n").expect("script");
        let container_dir = scratch.path().join("container");
        let mut child = std::process::Command::new("sh")
            .arg("shim")
            .arg(&container_dir)
            .current_dir(scratch.path())
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let found = loop {
            if let Some(shim) = find_shim(&container_dir) {
                break Some(shim);
            }
            if std::time::Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(found.map(|s| s.pid), Some(child.id() as i32));
        assert_eq!(find_shim(&container_dir), None, "a dead shim is not found");
    }

    #[test]
    fn own_process_is_not_a_shim_and_pidfd_opens() {
        let me = std::process::id() as i32;
        let without_start = ShimIdentity {
            pid: me,
            start_ticks: None,
        };
        assert!(!is_shim_alive(&without_start, Path::new("/nonexistent")));
        let with_wrong_start = ShimIdentity {
            pid: me,
            start_ticks: start_ticks(me).map(|t| t + 1),
        };
        assert!(!is_shim_alive(&with_wrong_start, Path::new("/nonexistent")));
        assert!(pidfd_open(me).is_ok());
    }

    #[test]
    fn stat_fields_are_found_after_the_command_name() {
        let stat = "42 (a ) b) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 777 100 1";
        assert_eq!(stat_state(stat), Some("S"));
        assert_eq!(stat_start_ticks(stat), Some(777));
    }

    #[test]
    fn shim_pid_file_parses_with_and_without_start_time() {
        assert_eq!(
            parse_shim_identity("12 345\n"),
            Some(ShimIdentity {
                pid: 12,
                start_ticks: Some(345)
            })
        );
        assert_eq!(
            parse_shim_identity("12"),
            Some(ShimIdentity {
                pid: 12,
                start_ticks: None
            })
        );
        assert_eq!(parse_shim_identity("x"), None);
    }
}
