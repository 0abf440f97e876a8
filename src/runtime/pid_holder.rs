//! The holder of a pod's shared PID namespace (`spec.shareProcessNamespace`).
//!
//! A PID namespace cannot be kept by a bind mount alone, as the sandbox keeps the
//! network, IPC and UTS ones: when its PID 1 exits the kernel kills every other process
//! in it and no new process may enter. So a pod that shares one gets a tiny process as
//! its PID 1, as the kubelet's pause container is: it sleeps, reaps the orphans the
//! namespace hands it, and ignores every signal its containers may send (the kernel
//! drops signals to a namespace's init that it has no handler for; only a SIGKILL from
//! outside, at the sandbox's removal, ends it).
//!
//! The agent runs `berth pid-holder <ns-dir>` (a fork+exec, safe from the multi-threaded
//! agent). That single-threaded process clones the holder into a new PID namespace with
//! `CLONE_PARENT`, so the holder is the agent's child and the agent reaps it when it
//! kills it (after an agent restart, init does). The holder joins the pod's network, IPC
//! and UTS namespaces, moves into a mount namespace of its own whose root is an empty
//! read-only tmpfs, becomes `nobody` without capabilities and not dumpable: a container
//! that reads `/proc/1/root` or `/proc/1/ns/*` finds nothing of the host. The setup
//! process then bind-mounts the namespace on `<ns-dir>/pid` (containers join it by that
//! path) and records the holder in `<ns-dir>/pid-holder.pid`, and exits.
//!
//! The holder is the holder only while its `/proc/<pid>/ns/pid` is the pinned namespace
//! and it is PID 1 there: a reused pid fails that check.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::signal::{kill, signal, SigHandler, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{Gid, Pid, Uid};

use super::{files, procfs, RuntimeError};

/// The hidden subcommand that runs [`pid_holder_main`].
pub const PID_HOLDER_SUBCOMMAND: &str = "pid-holder";
/// The pinned namespace, in the pod's namespace dir.
pub(crate) const PIN_FILE: &str = "pid";
/// `<pid> <start ticks>` of the holder, in the pod's namespace dir.
const PID_FILE: &str = "pid-holder.pid";
/// The pod namespaces the holder joins, when the sandbox has them.
const POD_NAMESPACES: [(&str, CloneFlags); 3] = [
    ("net", CloneFlags::CLONE_NEWNET),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
];
/// `nobody`: the holder needs no privilege once it is set up.
const NOBODY: u32 = 65534;
/// How long a killed holder may take to go.
const STOP_DEADLINE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(10);
/// What the holder writes on its readiness pipe once it is set up.
const READY: &[u8] = b"ok";

/// A holder process: a reused pid has another start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Holder {
    pid: i32,
    start_ticks: Option<u64>,
}

fn parse_pid_file(text: &str) -> Option<Holder> {
    let mut fields = text.split_whitespace();
    let pid = fields.next()?.parse::<i32>().ok().filter(|pid| *pid > 1)?;
    let start_ticks = fields.next().and_then(|t| t.parse().ok());
    Some(Holder { pid, start_ticks })
}

fn read_holder(ns_dir: &Path) -> Option<Holder> {
    files::read_text(&ns_dir.join(PID_FILE))
        .ok()
        .flatten()
        .and_then(|text| parse_pid_file(&text))
}

/// Is `NSpid` (the pids of a process from the reader's namespace down to its own) that
/// of the init of a child namespace: more than one level, and 1 in the innermost?
fn is_child_namespace_init(status: &str) -> bool {
    status
        .lines()
        .find_map(|line| line.strip_prefix("NSpid:"))
        .map(|pids| pids.split_whitespace().collect::<Vec<_>>())
        .is_some_and(|pids| pids.len() > 1 && pids.last() == Some(&"1"))
}

/// Device and inode of the namespace at `path` (a link in `/proc` or a pinned file).
fn namespace_id(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The holder's pid if it is alive and still the init of the pinned namespace.
pub(crate) fn alive(ns_dir: &Path) -> Option<i32> {
    let holder = read_holder(ns_dir)?;
    let pinned = namespace_id(&ns_dir.join(PIN_FILE))?;
    // A zombie has no namespaces any more: its link does not resolve.
    let current = namespace_id(Path::new(&format!("/proc/{}/ns/pid", holder.pid)))?;
    let status = fs::read_to_string(format!("/proc/{}/status", holder.pid)).ok()?;
    (current == pinned && is_child_namespace_init(&status)).then_some(holder.pid)
}

/// Starts the holder for the sandbox in `ns_dir` with `exe` (the berth binary), pins its
/// namespace and records it, unless one runs. Replaces a holder that is gone (then so
/// are all the processes it held).
pub(crate) fn ensure(exe: &Path, ns_dir: &Path, pod_uid: &str) -> Result<(), RuntimeError> {
    if alive(ns_dir).is_some() {
        return Ok(());
    }
    if read_holder(ns_dir).is_some() {
        log::warn!("the process namespace of pod {pod_uid} lost its PID 1; making a new one");
    }
    stop(ns_dir)?;
    let failed = |reason: String| RuntimeError::ProcessNamespace {
        pod_uid: pod_uid.to_owned(),
        reason,
    };
    let output = Command::new(exe)
        .arg(PID_HOLDER_SUBCOMMAND)
        .arg(ns_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| RuntimeError::io("start the pid holder", exe, e))?;
    let holder_pid = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse::<i32>();
    if !output.status.success() {
        // The setup killed the holder; it is our child (CLONE_PARENT): reap it.
        if let Ok(pid) = holder_pid {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(failed(format!(
            "cannot start its holder: {}",
            stderr.trim()
        )));
    }
    match alive(ns_dir) {
        Some(pid) => {
            log::info!("started the process namespace holder of pod {pod_uid} (pid {pid})");
            Ok(())
        }
        None => Err(failed("its new holder is not running".to_owned())),
    }
}

/// SIGKILLs the holder (and so every process left in its namespace), reaps it when it is
/// our child, then unpins the namespace and forgets the holder; idempotent.
pub(crate) fn stop(ns_dir: &Path) -> Result<(), RuntimeError> {
    if let Some(holder) = read_holder(ns_dir) {
        if alive(ns_dir).is_some() || is_recorded_process(holder, ns_dir) {
            // Checked just above to be the holder: the init of the pod's pinned
            // namespace, or (with the pin gone) the very process that was recorded.
            let _ = kill(Pid::from_raw(holder.pid), Signal::SIGKILL);
        }
        wait_gone(holder);
    }
    let pin = ns_dir.join(PIN_FILE);
    match umount2(&pin, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => {
            let action = format!("unmount {}", pin.display());
            return Err(RuntimeError::syscall(action, e));
        }
    }
    let pid_file = ns_dir.join(PID_FILE);
    match fs::remove_file(&pid_file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::io("remove", &pid_file, e)),
    }
}

/// Is `holder` still the process recorded, by start time, and a holder of `ns_dir` by
/// its command line? For a holder whose pin was lost.
fn is_recorded_process(holder: Holder, ns_dir: &Path) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{}/stat", holder.pid)) else {
        return false;
    };
    let cmdline = fs::read(format!("/proc/{}/cmdline", holder.pid)).unwrap_or_default();
    holder.start_ticks.is_some()
        && procfs::stat_start_ticks(&stat) == holder.start_ticks
        && holder_dir(&cmdline).is_some_and(|dir| dir == ns_dir)
}

/// Waits until `holder` is gone or a zombie someone else must reap, reaping it if it is
/// our child; gives up after [`STOP_DEADLINE`] (a holder that still runs then is
/// reported by the next `alive`).
fn wait_gone(holder: Holder) {
    let pid = Pid::from_raw(holder.pid);
    let deadline = Instant::now() + STOP_DEADLINE;
    loop {
        // Gone, or its pid now names another process: nothing to wait for.
        let Ok(stat) = fs::read_to_string(format!("/proc/{}/stat", holder.pid)) else {
            return;
        };
        if holder.start_ticks.is_none() || procfs::stat_start_ticks(&stat) != holder.start_ticks {
            return;
        }
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(_) => return,
            // Not our child: dead once it is a zombie.
            Err(_) if procfs::stat_state(&stat).is_some_and(|s| s == "Z" || s == "X") => return,
            Err(_) => {}
        }
        if Instant::now() > deadline {
            log::warn!("the pid holder {} did not end", holder.pid);
            return;
        }
        std::thread::sleep(POLL);
    }
}

/// Kills the holders of sandboxes under `pods_dir` that no sandbox records: what is left
/// when the state dir was wiped while they ran, which nothing else would ever stop.
/// Called when the runtime starts, before it starts any holder itself.
pub(crate) fn kill_orphans(pods_dir: &Path) {
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    let pids = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok());
    for pid in pids {
        let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let Some(ns_dir) = holder_dir(&cmdline) else {
            continue;
        };
        if !ns_dir.starts_with(pods_dir) || alive(&ns_dir) == Some(pid) {
            continue;
        }
        // The setup process has the same command line; only the holder is an init.
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if !is_child_namespace_init(&status) {
            continue;
        }
        log::info!(
            "stopping the orphaned pid holder {pid} of {}",
            ns_dir.display()
        );
        // Checked just above: a PID namespace's init running `berth pid-holder` for a
        // sandbox dir of ours.
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// The namespace dir of a `<exe> pid-holder <ns-dir>` command line (NUL-separated).
fn holder_dir(cmdline: &[u8]) -> Option<PathBuf> {
    let args: Vec<&[u8]> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .collect();
    match args.as_slice() {
        [_, verb, dir] if *verb == PID_HOLDER_SUBCOMMAND.as_bytes() => {
            Some(PathBuf::from(std::str::from_utf8(dir).ok()?))
        }
        _ => None,
    }
}

/// Runs `berth pid-holder <ns-dir>`; returns the process exit code. Prints the holder's
/// pid on stdout once it has cloned it, and why it failed on stderr.
///
/// Must run in a single-threaded process: the holder is a fork-like clone that goes on
/// running Rust code.
pub fn pid_holder_main(ns_dir: &Path) -> i32 {
    for problem in super::signals::reset_signal_handling() {
        eprintln!("{problem}");
    }
    let (ready_read, ready_write) = match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
        Ok(pipe) => pipe,
        Err(err) => {
            eprintln!("cannot create a pipe: {err}");
            return 1;
        }
    };
    let flags = (libc::CLONE_NEWPID | libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong;
    // No new stack, no tid pointers, no TLS: full-width zeros, as the kernel reads whole
    // registers.
    let none: libc::c_ulong = 0;
    // SAFETY: a fork-like clone (no new stack, nothing shared): this process is
    // single-threaded (a fresh exec that started no thread), so the child's copy of its
    // memory is consistent, and the child only runs `run_holder`, which never returns.
    let cloned = unsafe { libc::syscall(libc::SYS_clone, flags, none, none, none, none) };
    if cloned == 0 {
        drop(ready_read);
        run_holder(ns_dir, ready_write);
    }
    drop(ready_write);
    if cloned < 0 {
        eprintln!(
            "cannot clone into a new PID namespace: {}",
            nix::errno::Errno::last()
        );
        return 1;
    }
    let pid = cloned as i32;
    println!("{pid}");
    let result = wait_ready(ready_read).and_then(|()| pin_and_record(ns_dir, pid));
    match result {
        Ok(()) => 0,
        Err(reason) => {
            eprintln!("{reason}");
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            1
        }
    }
}

/// Reads the holder's readiness pipe to its end: the holder closes it when set up, or
/// by dying.
fn wait_ready(ready: OwnedFd) -> Result<(), String> {
    let mut answer = Vec::new();
    fs::File::from(ready)
        .read_to_end(&mut answer)
        .map_err(|e| format!("read the holder's readiness: {e}"))?;
    if answer == READY {
        Ok(())
    } else {
        Err("the holder failed to set up".to_owned())
    }
}

/// Bind-mounts the holder's PID namespace on `<ns-dir>/pid` and writes the pid file.
fn pin_and_record(ns_dir: &Path, pid: i32) -> Result<(), String> {
    let pin = ns_dir.join(PIN_FILE);
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&pin)
        .map_err(|e| format!("create {}: {e}", pin.display()))?;
    let source = PathBuf::from(format!("/proc/{pid}/ns/pid"));
    mount(
        Some(&source),
        &pin,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| format!("bind {} on {}: {e}", source.display(), pin.display()))?;
    let text = match procfs::start_ticks(pid) {
        Some(ticks) => format!("{pid} {ticks}\n"),
        None => format!("{pid}\n"),
    };
    files::write_atomic(&ns_dir.join(PID_FILE), text.as_bytes()).map_err(|e| e.to_string())
}

/// The holder itself, PID 1 of the new namespace: sets up, says so, and sleeps until it
/// is killed. Never returns.
fn run_holder(ns_dir: &Path, ready: OwnedFd) -> ! {
    // Read while /proc is still there: the file pages mapped so far, dropped once set up.
    let pages = crate::support::file_pages::releasable_file_pages().unwrap_or_default();
    match prepare_holder(ns_dir) {
        Ok(null) => {
            let mut ready = fs::File::from(ready);
            if ready.write_all(READY).is_err() {
                exit_now(1);
            }
            drop(ready);
            // Nothing is written any more: the setup's pipes must not stay open here, or
            // the agent reading them would wait for the holder's end.
            for fd in 0..3 {
                if nix::unistd::dup2(null.as_raw_fd(), fd).is_err() {
                    exit_now(1);
                }
            }
            drop(null);
            close_inherited_fds();
            // What the holder keeps resident is what it will use: hardly anything.
            crate::support::file_pages::release(&pages);
            drop(pages);
            crate::support::memory::trim_heap();
            loop {
                nix::unistd::pause();
            }
        }
        Err(reason) => {
            eprintln!("pid holder: {reason}");
            exit_now(1)
        }
    }
}

/// Closes every descriptor above stdio: whoever started the agent may have left some
/// open without close-on-exec, and the holder, which lives as long as the pod, must not
/// keep them (nor a container reach them through `/proc/1/fd`).
fn close_inherited_fds() {
    // SAFETY: close_range(2) only closes descriptors; none above 2 is in use here.
    let closed = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if closed != 0 {
        // Kernels before 5.9: one by one, up to the usual descriptor limit.
        for fd in 3..1024 {
            // SAFETY: as above; closing a descriptor that is not open is harmless.
            unsafe { libc::close(fd) };
        }
    }
}

/// `_exit`: the holder shares no state worth flushing with anyone.
fn exit_now(code: i32) -> ! {
    // SAFETY: _exit ends the process at once; it is always safe to call.
    unsafe { libc::_exit(code) }
}

/// Everything the holder does before it sleeps; returns `/dev/null` for its stdio.
fn prepare_holder(ns_dir: &Path) -> Result<OwnedFd, String> {
    // A session of its own: a signal to the agent's process group or terminal (a SIGKILL
    // from there would reach even a namespace's init) never ends the pod's namespace.
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    // Ignored SIGCHLD: the kernel reaps the holder's children (the orphans of the pod's
    // containers) as they exit, so none stays a zombie.
    // SAFETY: SIG_IGN installs no handler code.
    unsafe { signal(Signal::SIGCHLD, SigHandler::SigIgn) }
        .map_err(|e| format!("ignore SIGCHLD: {e}"))?;
    let null = open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| format!("open /dev/null: {e}"))?;
    // SAFETY: `open` just returned this descriptor, which nothing else owns.
    let null = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(null) };
    join_pod_namespaces(ns_dir)?;
    isolate_mounts(ns_dir)?;
    drop_privileges()?;
    Ok(null)
}

/// Joins the network, IPC and UTS namespaces the sandbox pinned in `ns_dir`.
fn join_pod_namespaces(ns_dir: &Path) -> Result<(), String> {
    for (name, flag) in POD_NAMESPACES {
        let path = ns_dir.join(name);
        if !super::sandbox::is_namespace_mount(&path) {
            continue;
        }
        let file = fs::File::open(&path).map_err(|e| format!("open {}: {e}", path.display()))?;
        setns(&file, flag).map_err(|e| format!("join {}: {e}", path.display()))?;
    }
    Ok(())
}

/// A mount namespace of the holder's own whose root is an empty read-only tmpfs, with
/// every mount of the host let go (it would otherwise keep them, and other pods'
/// namespace files, alive).
fn isolate_mounts(ns_dir: &Path) -> Result<(), String> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("new mount namespace: {e}"))?;
    let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
    mount(None::<&str>, "/", None::<&str>, private, None::<&str>)
        .map_err(|e| format!("make mounts private: {e}"))?;
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some("tmpfs"),
        ns_dir,
        Some("tmpfs"),
        flags,
        Some("size=4k,mode=0555"),
    )
    .map_err(|e| format!("mount an empty root: {e}"))?;
    nix::unistd::chdir(ns_dir).map_err(|e| format!("enter the empty root: {e}"))?;
    // The old root lands on top of the new one and is detached at once.
    nix::unistd::pivot_root(".", ".").map_err(|e| format!("pivot_root: {e}"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| format!("detach the host's root: {e}"))?;
    nix::unistd::chdir("/").map_err(|e| format!("chdir /: {e}"))
}

/// `nobody`, no groups, no capabilities (lost with the uid), no new privileges, and not
/// dumpable: no container process without CAP_SYS_PTRACE may reach into it.
fn drop_privileges() -> Result<(), String> {
    let (uid, gid) = (Uid::from_raw(NOBODY), Gid::from_raw(NOBODY));
    nix::unistd::setgroups(&[]).map_err(|e| format!("setgroups: {e}"))?;
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| format!("setresgid: {e}"))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| format!("setresuid: {e}"))?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("no_new_privs: {e}"))?;
    // After the uid change, which may set it back.
    nix::sys::prctl::set_dumpable(false).map_err(|e| format!("set not dumpable: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_files_name_a_pid_above_one() {
        let holder = parse_pid_file("4242 12345\n").unwrap();
        assert_eq!(
            holder,
            Holder {
                pid: 4242,
                start_ticks: Some(12345)
            }
        );
        assert_eq!(parse_pid_file("4242").unwrap().start_ticks, None);
        assert!(parse_pid_file("1 5").is_none(), "never init itself");
        assert!(parse_pid_file("").is_none());
        assert!(parse_pid_file("-3 5").is_none());
    }

    #[test]
    fn only_the_init_of_a_child_namespace_is_a_holder() {
        let status = |nspid: &str| format!("Name:\tberth\nState:\tS\nNSpid:{nspid}\nPPid:\t1\n");
        assert!(is_child_namespace_init(&status("\t4242\t1")));
        assert!(!is_child_namespace_init(&status("\t4242\t7")), "not PID 1");
        assert!(!is_child_namespace_init(&status("\t1")), "the host's init");
        assert!(!is_child_namespace_init("Name:\tx\n"));
    }

    #[test]
    fn holders_are_known_by_their_command_line() {
        assert_eq!(
            holder_dir(b"/usr/bin/berth\0pid-holder\0/var/lib/berth/pods/u1/ns\0"),
            Some(PathBuf::from("/var/lib/berth/pods/u1/ns"))
        );
        assert_eq!(
            holder_dir(b"/usr/bin/berth\0shim\0/var/lib/berth/c\0"),
            None
        );
        assert_eq!(holder_dir(b"/usr/bin/berth\0pid-holder\0"), None);
        assert_eq!(holder_dir(b""), None);
    }

    #[test]
    fn a_sandbox_without_holder_has_none_alive_and_stops_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(alive(dir.path()), None);
        fs::write(
            dir.path().join(PID_FILE),
            format!("{}\n", std::process::id()),
        )
        .unwrap();
        assert_eq!(alive(dir.path()), None, "no pinned namespace: not a holder");
        stop(dir.path()).unwrap();
        assert!(!dir.path().join(PID_FILE).exists());
    }
}
