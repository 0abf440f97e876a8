//! The per-container shim process (`berth shim <container-dir>`); see the module docs of
//! [`crate::runtime`] for why it exists.
//!
//! It is single-threaded, which is what makes `libcontainer`'s fork-based create path safe.
//! Its own stdout and stderr are `shim.log` in the container dir (set up by the agent), so
//! its diagnostics are written there directly, with no logger configuration needed.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::SFlag;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::files::{self, ShimSettings};
use super::logfile::{LineSplitter, RotatingLog};
use super::procfs;
use super::{ContainerConfig, ExitInfo};

/// Exit code recorded when the container never ran (like runc's "cannot start").
const START_FAILURE_EXIT_CODE: i32 = 128;
/// Exit code recorded when the init's status could not be collected.
const UNKNOWN_EXIT_CODE: i32 = 255;

/// A started container, as the supervision loop needs it.
struct Started {
    container: Container,
    init_pid: Pid,
    stdout: OwnedFd,
    stderr: OwnedFd,
    started_at: String,
}

/// Runs the shim for the container in `container_dir`; returns the process exit code.
pub fn shim_main(container_dir: &Path) -> i32 {
    prepare_process();
    if let Err(err) = procfs::record_shim(container_dir, std::process::id() as i32) {
        note(&format!("cannot record the shim pid: {err}"));
    }
    let (cfg, settings) = match read_inputs(container_dir) {
        Ok(inputs) => inputs,
        Err(reason) => {
            record_start_failure(container_dir, &reason);
            return 1;
        }
    };
    let started = match start(container_dir, &cfg, &settings) {
        Ok(started) => started,
        Err(reason) => {
            record_start_failure(container_dir, &reason);
            return 1;
        }
    };
    supervise(container_dir, &cfg, &settings, started);
    0
}

/// Leaves the agent's session, becomes a subreaper and restores default signal handling
/// that the container would otherwise inherit.
fn prepare_process() {
    // A new session: signals to the agent's process group or terminal never reach us.
    if let Err(err) = nix::unistd::setsid() {
        note(&format!("setsid failed: {err}"));
    }
    if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
        note(&format!("cannot become a child subreaper: {err}"));
    }
    for problem in super::signals::reset_signal_handling() {
        note(&problem);
    }
}

fn read_inputs(container_dir: &Path) -> Result<(ContainerConfig, ShimSettings), String> {
    let cfg: ContainerConfig = files::read_json(&container_dir.join(files::CONFIG_FILE))
        .map_err(|e| e.to_string())?
        .ok_or("container config.json is missing")?;
    let settings: ShimSettings = files::read_json(&container_dir.join(files::SHIM_SETTINGS_FILE))
        .map_err(|e| e.to_string())?
        .ok_or("shim.json is missing")?;
    Ok((cfg, settings))
}

/// Creates and starts the container; on failure `libcontainer` state is cleaned up.
fn start(
    container_dir: &Path,
    cfg: &ContainerConfig,
    settings: &ShimSettings,
) -> Result<Started, String> {
    let (stdout_read, stdout_write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("create stdout pipe: {e}"))?;
    let (stderr_read, stderr_write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("create stderr pipe: {e}"))?;
    give_pipes_to_user(
        cfg.user.uid,
        cfg.user.gid,
        &[stdout_write.as_fd(), stderr_write.as_fd()],
    )?;
    let dev_null = File::open("/dev/null").map_err(|e| format!("open /dev/null: {e}"))?;
    std::fs::create_dir_all(&settings.libcontainer_root)
        .map_err(|e| format!("create {}: {e}", settings.libcontainer_root.display()))?;

    // The builder owns the write ends and drops them when `build` returns, so only the
    // container holds them afterwards and the pipes reach EOF when it exits.
    let mut container = ContainerBuilder::new(cfg.id.clone(), SyscallType::default())
        .with_root_path(&settings.libcontainer_root)
        .map_err(|e| e.to_string())?
        .with_stdin(dev_null)
        .with_stdout(stdout_write)
        .with_stderr(stderr_write)
        .validate_id()
        .map_err(|e| e.to_string())?
        .as_init(container_dir.join(files::BUNDLE_DIR))
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(|e| describe_error(&e))?;
    let init_pid = match container.pid() {
        Some(pid) => pid,
        None => {
            discard(&mut container, None);
            return Err("libcontainer reported no init pid".to_string());
        }
    };
    if let Err(err) = container.start() {
        discard(&mut container, Some(init_pid));
        return Err(describe_error(&err));
    }
    let started_at = files::now_rfc3339();
    // started_at first: the agent takes init.pid as the "running" mark and then reads it.
    let written = files::write_atomic(
        &container_dir.join(files::STARTED_AT_FILE),
        started_at.as_bytes(),
    )
    .and_then(|()| {
        files::write_atomic(
            &container_dir.join(files::INIT_PID_FILE),
            init_pid.as_raw().to_string().as_bytes(),
        )
    });
    if let Err(err) = written {
        note(&format!("cannot record the init pid: {err}"));
    }
    Ok(Started {
        container,
        init_pid,
        stdout: stdout_read,
        stderr: stderr_read,
        started_at,
    })
}

/// Pipes (and sockets) are created owned by their creator (root) with mode 0600, so a
/// container process of another user could write to its inherited stdout but not reopen
/// it (`/dev/stdout`, which many images link their log files to). Given to the user, as
/// runc does with a container's stdio, it can. Other kinds of file (`/dev/null`, a
/// terminal) are left alone.
pub(crate) fn give_pipes_to_user(uid: u32, gid: u32, fds: &[BorrowedFd]) -> Result<(), String> {
    if uid == 0 && gid == 0 {
        return Ok(());
    }
    for fd in fds {
        let kind = nix::sys::stat::fstat(fd.as_raw_fd())
            .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT)
            .map_err(|e| format!("inspect an output pipe: {e}"))?;
        if kind != SFlag::S_IFIFO && kind != SFlag::S_IFSOCK {
            continue;
        }
        nix::unistd::fchown(
            fd.as_raw_fd(),
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )
        .map_err(|e| format!("give the output pipes to user {uid}: {e}"))?;
    }
    Ok(())
}

/// libcontainer's errors wrap their causes; the whole chain is the useful reason.
pub(crate) fn describe_error(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Kills and deletes a container that failed to start, and reaps its init.
fn discard(container: &mut Container, init_pid: Option<Pid>) {
    if let Err(err) = container.delete(true) {
        note(&format!("cannot delete the failed container: {err}"));
    }
    if let Some(pid) = init_pid {
        let _ = waitpid(pid, None);
    }
}

fn supervise(
    container_dir: &Path,
    cfg: &ContainerConfig,
    settings: &ShimSettings,
    started: Started,
) {
    let Started {
        mut container,
        init_pid,
        stdout,
        stderr,
        started_at,
    } = started;
    pump_logs(cfg, stdout, stderr);
    let (exit_code, signal) = wait_for_init(init_pid);
    reap_other_children();
    // The counter lives in the container's cgroup, which the delete below removes.
    let oom_kills = procfs::oom_kill_count(super::cgroup_version(), &settings.cgroup_path);
    let oom_killed =
        oom_kills > 0 && (signal == Some(libc::SIGKILL) || exit_code == 128 + libc::SIGKILL);
    if let Err(err) = container.delete(true) {
        note(&format!(
            "cannot delete the container after its exit: {err}"
        ));
    }
    let exit = ExitInfo {
        exit_code,
        signal,
        oom_killed,
        started_at: Some(started_at),
        finished_at: files::now_rfc3339(),
        message: super::termination::read_message(cfg, container_dir, exit_code),
    };
    if let Err(err) = files::write_json(&container_dir.join(files::EXIT_FILE), &exit) {
        note(&format!("cannot record the exit: {err}"));
    }
}

/// Copies the container's stdout and stderr into the log file, line by line, until both
/// pipes are closed (the container and everything in its PID namespace are gone).
fn pump_logs(cfg: &ContainerConfig, stdout: OwnedFd, stderr: OwnedFd) {
    let mut log = match RotatingLog::open(&cfg.log_path, cfg.log_max_bytes, cfg.log_max_files) {
        Ok(log) => Some(log),
        Err(err) => {
            note(&format!(
                "cannot open log {}: {err}",
                cfg.log_path.display()
            ));
            None
        }
    };
    let mut streams = [
        (Some(File::from(stdout)), LineSplitter::default()),
        (Some(File::from(stderr)), LineSplitter::default()),
    ];
    let mut buffer = vec![0u8; 16 * 1024];
    let mut reported_write_error = false;
    let mut write_line = |log: &mut Option<RotatingLog>, line: &[u8]| {
        // Keep draining the pipes even when the disk is full, so the container never blocks
        // on a full pipe; report the problem once.
        if let Some(log) = log.as_mut() {
            if let Err(err) = log.write(line) {
                if !reported_write_error {
                    note(&format!("cannot write log: {err}"));
                    reported_write_error = true;
                }
            }
        }
        Ok(())
    };
    while streams.iter().any(|(file, _)| file.is_some()) {
        let ready: Vec<usize> = {
            let open: Vec<(usize, &File)> = streams
                .iter()
                .enumerate()
                .filter_map(|(index, (file, _))| file.as_ref().map(|f| (index, f)))
                .collect();
            let mut poll_fds: Vec<PollFd> = open
                .iter()
                .map(|(_, file)| PollFd::new(file.as_fd(), PollFlags::POLLIN))
                .collect();
            match poll(&mut poll_fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(err) => {
                    note(&format!("poll on container output failed: {err}"));
                    return;
                }
            }
            open.iter()
                .zip(poll_fds.iter())
                .filter(|(_, pfd)| pfd.revents().is_some_and(|r| !r.is_empty()))
                .map(|((index, _), _)| *index)
                .collect()
        };
        for index in ready {
            let (file, splitter) = &mut streams[index];
            let Some(reader) = file.as_mut() else {
                continue;
            };
            match reader.read(&mut buffer) {
                Ok(0) => {
                    let _ = splitter.finish(|line| write_line(&mut log, line));
                    *file = None;
                }
                Ok(n) => {
                    let _ = splitter.feed(&buffer[..n], |line| write_line(&mut log, line));
                }
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => {
                    note(&format!("read of container output failed: {err}"));
                    let _ = splitter.finish(|line| write_line(&mut log, line));
                    *file = None;
                }
            }
        }
    }
}

/// Waits for the container's init; returns (exit code, signal) with 128+signal as the code
/// of a killed process, as shells and Kubernetes report it.
fn wait_for_init(init_pid: Pid) -> (i32, Option<i32>) {
    loop {
        match waitpid(init_pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return (code, None),
            Ok(WaitStatus::Signaled(_, signal, _)) => {
                let number = signal as i32;
                return (128 + number, Some(number));
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(err) => {
                note(&format!("cannot wait for the container init: {err}"));
                return (UNKNOWN_EXIT_CODE, None);
            }
        }
    }
}

/// As a subreaper the shim inherits orphans of libcontainer's helper processes.
fn reap_other_children() {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}

fn record_start_failure(container_dir: &Path, reason: &str) {
    note(&format!("container failed to start: {reason}"));
    let exit = ExitInfo {
        exit_code: START_FAILURE_EXIT_CODE,
        signal: None,
        oom_killed: false,
        started_at: None,
        finished_at: files::now_rfc3339(),
        message: Some(reason.to_string()),
    };
    if let Err(err) = files::write_json(&container_dir.join(files::EXIT_FILE), &exit) {
        note(&format!("cannot record the start failure: {err}"));
    }
}

/// One line into `shim.log` (the shim's stderr).
fn note(message: &str) {
    eprintln!(
        "{} berth-shim[{}]: {message}",
        files::now_rfc3339(),
        std::process::id()
    );
}
