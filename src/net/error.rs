//! What can go wrong while programming the pod network, each error naming the operation
//! and the link, route or program it was about.

use std::io;
use std::path::PathBuf;

/// Errors of the pod network layer.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The kernel refused a netlink request (`create veth veth1a2b3c4d: File exists (os
    /// error 17)`), with the kernel's own explanation when it gave one.
    #[error("{operation}: {source}{}", detail_suffix(.detail))]
    Kernel {
        operation: String,
        #[source]
        source: io::Error,
        detail: Option<String>,
    },
    /// A netlink reply that could not be decoded.
    #[error("{operation}: unreadable reply from the kernel: {reason}")]
    Reply { operation: String, reason: String },
    /// Opening a file the network depends on: a network namespace, a sysctl.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A thread that entered another network namespace failed on its own terms.
    #[error("{operation}: {reason}")]
    Thread { operation: String, reason: String },
    /// A link name the kernel would refuse: empty, over 15 bytes, or with `/` or blanks.
    #[error("invalid link name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    /// A link of that name exists but is of another kind than berth needs.
    #[error("link {name} exists but is a {found}, not a {wanted}")]
    WrongKind {
        name: String,
        found: String,
        wanted: &'static str,
    },
    /// A link the operation needs is not there.
    #[error("{operation}: no link named {name}")]
    NoSuchLink { operation: String, name: String },
    /// The `nft` program is not installed (or not on `PATH`).
    #[error("the nft program (Debian package nftables) is needed for the pod network: {source}")]
    NftMissing {
        #[source]
        source: io::Error,
    },
    /// `nft` ran and refused the ruleset.
    #[error("nft refused {what}: {stderr}")]
    Nft { what: &'static str, stderr: String },
}

fn detail_suffix(detail: &Option<String>) -> String {
    match detail {
        Some(detail) => format!(" (kernel: {detail})"),
        None => String::new(),
    }
}

impl NetError {
    /// The errno of a refused netlink request, to tell "already there" or "not there"
    /// from real failures.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetError::Kernel { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    pub(crate) fn kernel(operation: impl Into<String>, source: io::Error) -> NetError {
        NetError::Kernel {
            operation: operation.into(),
            source,
            detail: None,
        }
    }
}
