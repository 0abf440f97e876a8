//! Network namespaces by path (`/run/netns/x`, a sandbox's bind-mounted `ns/net`), and
//! the per-namespace sysctls under `/proc/sys/net`.
//!
//! A namespace is entered on a thread of its own that ends with the work, so the
//! caller's thread never changes namespace and nothing else runs in the wrong one. A
//! netlink socket, a listening socket, a `/proc/sys/net` file or a child process (`nft`)
//! opened there belongs to that namespace.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};

use super::NetError;

/// Runs `work` inside the network namespace at `netns` and returns what it returned.
pub fn in_netns<T: Send>(
    netns: &Path,
    work: impl FnOnce() -> Result<T, NetError> + Send,
) -> Result<T, NetError> {
    let namespace = File::open(netns).map_err(|source| NetError::Io {
        action: "open network namespace",
        path: netns.to_path_buf(),
        source,
    })?;
    in_netns_file(&namespace, netns, work)
}

/// [`in_netns`] with the namespace already open (`netns` names it in errors).
pub(crate) fn in_netns_file<T: Send>(
    namespace: &File,
    netns: &Path,
    work: impl FnOnce() -> Result<T, NetError> + Send,
) -> Result<T, NetError> {
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            // A fresh thread: the namespace it enters ends with it.
            setns(namespace.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|errno| {
                NetError::kernel(
                    format!("enter network namespace {}", netns.display()),
                    io::Error::from(errno),
                )
            })?;
            work()
        });
        worker.join().unwrap_or_else(|_| {
            Err(NetError::Thread {
                operation: format!("work in network namespace {}", netns.display()),
                reason: "the thread panicked".to_owned(),
            })
        })
    })
}

/// Writes `value` to `/proc/sys/net/<key>` of the calling thread's network namespace
/// (the kernel resolves `/proc/sys/net` by the writer's namespace).
pub(crate) fn write_net_sysctl(key: &str, value: &str) -> Result<(), NetError> {
    let path = PathBuf::from("/proc/sys/net").join(key);
    std::fs::write(&path, value).map_err(|source| NetError::Io {
        action: "write",
        path,
        source,
    })
}
