//! Pod sandboxes: the network, IPC and UTS namespaces shared by a pod's containers, kept
//! alive by bind mounts instead of a process (like `ip netns add`), and for a pod with
//! `shareProcessNamespace` a PID namespace, which needs a process ([`super::pid_holder`]).

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use super::bundle::SandboxNamespaces;
use super::files::Layout;
use super::RuntimeError;

/// `statfs` magic of the namespace filesystem (`NSFS_MAGIC` in linux/magic.h).
const NSFS_MAGIC: i64 = 0x6e73_6673;
/// Kubernetes truncates pod hostnames to 63 characters, the DNS label limit.
const MAX_HOSTNAME_LEN: usize = 63;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SharedNamespace {
    Net,
    Ipc,
    Uts,
}

impl SharedNamespace {
    const ALL: [SharedNamespace; 3] = [
        SharedNamespace::Net,
        SharedNamespace::Ipc,
        SharedNamespace::Uts,
    ];

    fn file_name(self) -> &'static str {
        match self {
            SharedNamespace::Net => "net",
            SharedNamespace::Ipc => "ipc",
            SharedNamespace::Uts => "uts",
        }
    }

    fn clone_flag(self) -> CloneFlags {
        match self {
            SharedNamespace::Net => CloneFlags::CLONE_NEWNET,
            SharedNamespace::Ipc => CloneFlags::CLONE_NEWIPC,
            SharedNamespace::Uts => CloneFlags::CLONE_NEWUTS,
        }
    }

    /// Host-network pods keep the host's network and UTS namespaces; IPC stays private.
    fn needed(self, host_network: bool) -> bool {
        match self {
            SharedNamespace::Net | SharedNamespace::Uts => !host_network,
            SharedNamespace::Ipc => true,
        }
    }
}

pub(crate) fn is_valid_pod_uid(pod_uid: &str) -> bool {
    !pod_uid.is_empty()
        && pod_uid != "."
        && pod_uid != ".."
        && pod_uid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

pub(crate) fn check_pod_uid(pod_uid: &str) -> Result<(), RuntimeError> {
    if is_valid_pod_uid(pod_uid) {
        Ok(())
    } else {
        Err(RuntimeError::SandboxNotFound {
            pod_uid: pod_uid.to_string(),
        })
    }
}

/// Is a namespace bind-mounted on `path`? An unmounted placeholder file is on the state
/// dir's own filesystem instead.
pub(crate) fn is_namespace_mount(path: &Path) -> bool {
    match nix::sys::statfs::statfs(path) {
        // The width of the statfs type field differs between targets (i32 on 32-bit ARM).
        #[allow(clippy::useless_conversion)]
        Ok(stat) => i64::from(stat.filesystem_type().0) == NSFS_MAGIC,
        Err(_) => false,
    }
}

pub(crate) fn create(
    layout: &Layout,
    pod_uid: &str,
    hostname: &str,
    host_network: bool,
) -> Result<(), RuntimeError> {
    check_pod_uid(pod_uid)?;
    let dir = layout.namespace_dir(pod_uid);
    fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("create", &dir, e))?;
    let missing: Vec<SharedNamespace> = SharedNamespace::ALL
        .into_iter()
        .filter(|ns| ns.needed(host_network) && !is_namespace_mount(&dir.join(ns.file_name())))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    for ns in &missing {
        let path = dir.join(ns.file_name());
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| RuntimeError::io("create", &path, e))?;
    }
    let hostname = truncate_hostname(hostname);
    // Unsharing changes the namespaces of the calling thread only, so a throwaway thread does
    // it and leaves the agent's other threads untouched.
    let result = std::thread::scope(|scope| {
        scope
            .spawn(|| enter_and_pin(&dir, &missing, &hostname))
            .join()
    });
    match result {
        Ok(outcome) => outcome?,
        Err(_) => {
            return Err(RuntimeError::syscall(
                format!("create namespaces of pod {pod_uid}"),
                nix::errno::Errno::EIO,
            ))
        }
    }
    log::info!("created sandbox of pod {pod_uid}");
    Ok(())
}

fn truncate_hostname(hostname: &str) -> String {
    let mut name: String = hostname.chars().take(MAX_HOSTNAME_LEN).collect();
    while name.ends_with('-') || name.ends_with('.') {
        name.pop();
    }
    name
}

/// Runs on its own thread: new namespaces, hostname, loopback, then bind mounts that keep
/// the namespaces alive after the thread ends.
fn enter_and_pin(
    dir: &Path,
    missing: &[SharedNamespace],
    hostname: &str,
) -> Result<(), RuntimeError> {
    let flags = missing
        .iter()
        .fold(CloneFlags::empty(), |flags, ns| flags | ns.clone_flag());
    unshare(flags).map_err(|e| RuntimeError::syscall("unshare pod namespaces", e))?;
    if missing.contains(&SharedNamespace::Uts) && !hostname.is_empty() {
        nix::unistd::sethostname(hostname)
            .map_err(|e| RuntimeError::syscall(format!("set hostname {hostname}"), e))?;
    }
    if missing.contains(&SharedNamespace::Net) {
        bring_loopback_up()?;
    }
    for ns in missing {
        let source = PathBuf::from(format!("/proc/thread-self/ns/{}", ns.file_name()));
        let target = dir.join(ns.file_name());
        mount(
            Some(&source),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| {
            RuntimeError::syscall(
                format!("bind {} on {}", source.display(), target.display()),
                e,
            )
        })?;
    }
    Ok(())
}

/// Sets `IFF_UP` on `lo` in the calling thread's network namespace.
fn bring_loopback_up() -> Result<(), RuntimeError> {
    use std::os::fd::AsRawFd;
    let socket = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| RuntimeError::syscall("open socket for loopback setup", e))?;
    // SAFETY: ifreq is a plain C struct of integers and unions of integers; all zero is a
    // valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the interface name and writes the flags into `request`,
    // which lives for the whole call; the socket fd is open.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) } < 0 {
        return Err(RuntimeError::syscall(
            "get flags of lo",
            nix::errno::Errno::last(),
        ));
    }
    // SAFETY: the kernel filled ifru_flags just above, so reading that union field is valid.
    unsafe {
        request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS reads `request`, which is initialised and outlives the call.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) } < 0 {
        return Err(RuntimeError::syscall(
            "bring lo up",
            nix::errno::Errno::last(),
        ));
    }
    Ok(())
}

/// Starts the holder of the pod's shared PID namespace unless it runs (see
/// [`super::pid_holder`]); the pod's other namespaces must exist already.
pub(crate) fn ensure_pid_namespace(
    layout: &Layout,
    pod_uid: &str,
    holder_exe: &Path,
) -> Result<(), RuntimeError> {
    check_pod_uid(pod_uid)?;
    super::pid_holder::ensure(holder_exe, &layout.namespace_dir(pod_uid), pod_uid)
}

/// Kills the PID namespace holder, if any, unmounts the namespace files and removes the
/// pod's directory; idempotent.
pub(crate) fn remove(layout: &Layout, pod_uid: &str) -> Result<(), RuntimeError> {
    if !is_valid_pod_uid(pod_uid) {
        return Ok(());
    }
    let dir = layout.namespace_dir(pod_uid);
    super::pid_holder::stop(&dir)?;
    for ns in SharedNamespace::ALL {
        let path = dir.join(ns.file_name());
        match umount2(&path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => {
                return Err(RuntimeError::syscall(
                    format!("unmount {}", path.display()),
                    e,
                ))
            }
        }
    }
    let pod_dir = layout.pods_dir().join(pod_uid);
    // Volumes on tmpfs: unmounted first, so the removal never reaches into a mount.
    super::volumes::unmount_below(&pod_dir)?;
    match fs::remove_dir_all(&pod_dir) {
        Ok(()) => {
            log::info!("removed sandbox of pod {pod_uid}");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::io("remove", &pod_dir, e)),
    }
}

pub(crate) fn list(layout: &Layout) -> Result<Vec<String>, RuntimeError> {
    let dir = layout.pods_dir();
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RuntimeError::io("read", &dir, e)),
    };
    let mut pods: Vec<String> = entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| is_valid_pod_uid(name))
        .collect();
    crate::support::sort::sort(&mut pods);
    Ok(pods)
}

/// The pod's pinned network namespace; `None` for host-network and unknown pods.
pub(crate) fn network_namespace(layout: &Layout, pod_uid: &str) -> Option<PathBuf> {
    if !is_valid_pod_uid(pod_uid) {
        return None;
    }
    let path = layout
        .namespace_dir(pod_uid)
        .join(SharedNamespace::Net.file_name());
    is_namespace_mount(&path).then_some(path)
}

/// The namespace paths a container of this pod joins; errors if the sandbox is missing,
/// or if the pod shares its PID namespace and that has lost its holder.
pub(crate) fn namespaces_for(
    layout: &Layout,
    pod_uid: &str,
    host_network: bool,
    share_pid: bool,
) -> Result<SandboxNamespaces, RuntimeError> {
    check_pod_uid(pod_uid)?;
    let dir = layout.namespace_dir(pod_uid);
    let path_of = |ns: SharedNamespace| -> Result<Option<PathBuf>, RuntimeError> {
        if !ns.needed(host_network) {
            return Ok(None);
        }
        let path = dir.join(ns.file_name());
        if is_namespace_mount(&path) {
            Ok(Some(path))
        } else {
            Err(RuntimeError::SandboxNotFound {
                pod_uid: pod_uid.to_string(),
            })
        }
    };
    let ipc = path_of(SharedNamespace::Ipc)?.ok_or_else(|| RuntimeError::SandboxNotFound {
        pod_uid: pod_uid.to_string(),
    })?;
    let pid = if share_pid {
        if super::pid_holder::alive(&dir).is_none() {
            return Err(RuntimeError::ProcessNamespace {
                pod_uid: pod_uid.to_owned(),
                reason: "its holder process is gone (the sandbox must be made again)".into(),
            });
        }
        Some(dir.join(super::pid_holder::PIN_FILE))
    } else {
        None
    };
    Ok(SandboxNamespaces {
        net: path_of(SharedNamespace::Net)?,
        ipc,
        uts: path_of(SharedNamespace::Uts)?,
        pid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_are_cut_to_a_dns_label() {
        let long = "a".repeat(70);
        assert_eq!(truncate_hostname(&long).len(), 63);
        let with_dash = format!("{}-b", "a".repeat(62));
        assert_eq!(truncate_hostname(&with_dash), "a".repeat(62));
    }

    #[test]
    fn pod_uids_cannot_escape_the_pods_dir() {
        assert!(is_valid_pod_uid("0f7c2a4e-1b2c-4d5e-8f90-123456789abc"));
        assert!(!is_valid_pod_uid("../x"));
        assert!(!is_valid_pod_uid(".."));
        assert!(!is_valid_pod_uid(""));
    }

    #[test]
    fn host_network_needs_only_ipc() {
        assert!(SharedNamespace::Ipc.needed(true));
        assert!(!SharedNamespace::Net.needed(true));
        assert!(!SharedNamespace::Uts.needed(true));
        assert!(SharedNamespace::Uts.needed(false));
    }
}
