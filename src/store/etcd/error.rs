//! Errors of the etcd client. Whatever came from the peer (messages, bad values) is cut
//! to a short excerpt before it goes into an error: a hostile member must not be able
//! to fill our logs.

use std::path::PathBuf;

/// Everything that can go wrong talking to etcd.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// The configuration itself is wrong (no endpoint, a bad URL, half a key pair).
    #[error("etcd client configuration: {reason}")]
    Config { reason: String },
    /// A CA, certificate or key file could not be read or parsed.
    #[error("etcd TLS file {}: {reason}", path.display())]
    TlsFile { path: PathBuf, reason: String },
    /// The connection to one endpoint failed after the request may have reached it, so
    /// the client did not try another one (a write could have been applied twice).
    #[error("etcd {endpoint}: {operation}: {reason}")]
    Transport {
        endpoint: String,
        operation: &'static str,
        reason: String,
    },
    /// Every endpoint failed (or the request timeout ran out); one entry per attempt.
    #[error("no etcd endpoint answered {operation}: {}", attempts.join("; "))]
    Unavailable {
        operation: &'static str,
        attempts: Vec<String>,
    },
    /// etcd answered with an error status (through its gateway: the gRPC code and message).
    #[error("etcd {endpoint} refused {operation}: {message} (HTTP {status}, gRPC code {code})")]
    Server {
        endpoint: String,
        operation: &'static str,
        status: u16,
        code: i64,
        message: String,
    },
    /// A response (or one watch message) was over the configured size cap.
    #[error("etcd {endpoint}: {operation}: response larger than the {limit}-byte limit")]
    TooLarge {
        endpoint: String,
        operation: &'static str,
        limit: usize,
    },
    /// A response was not the JSON the gateway documents (bad base64, a bad int64, ...).
    #[error("etcd {endpoint}: {operation}: invalid response: {reason}")]
    Decode {
        endpoint: String,
        operation: &'static str,
        reason: String,
    },
    /// The lease does not exist any more: it expired or was revoked.
    #[error("etcd lease {id:x} not found (expired or revoked)")]
    LeaseNotFound { id: i64 },
    /// A watch asked for revisions that compaction already removed; a new watch has to
    /// start at `compact_revision` or later (after reading the current state again).
    #[error(
        "watch from revision {start_revision}: that revision was compacted; \
         the oldest revision kept is {compact_revision}"
    )]
    Compacted {
        start_revision: i64,
        compact_revision: i64,
    },
    /// etcd canceled the watch for another reason than compaction.
    #[error("etcd canceled the watch: {reason}")]
    WatchCanceled { reason: String },
    /// [`super::WatchCloser::close`] ended the watch.
    #[error("watch closed")]
    WatchClosed,
    /// The member ended the watch stream (it stopped, or the connection dropped).
    #[error("etcd {endpoint} ended the watch stream: {reason}")]
    WatchEnded { endpoint: String, reason: String },
}

impl EtcdError {
    /// The gRPC status code of a [`EtcdError::Server`] error.
    pub fn grpc_code(&self) -> Option<i64> {
        match self {
            EtcdError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// At most this many characters of peer-supplied text go into an error.
const EXCERPT_CHARS: usize = 200;

/// A short, printable excerpt of bytes from the peer.
pub(super) fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text.chars().take(EXCERPT_CHARS).collect();
    if text.chars().nth(EXCERPT_CHARS).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_short_and_printable() {
        assert_eq!(excerpt(b"no leader"), "no leader");
        let long = excerpt(&[b'x'; 5000]);
        assert_eq!(long.chars().count(), EXCERPT_CHARS + 1);
        assert!(long.ends_with('…'));
        assert_eq!(excerpt(&[0xff, b'a']), "\u{fffd}a");
    }

    #[test]
    fn lease_ids_print_in_hex_like_etcdctl() {
        let e = EtcdError::LeaseNotFound {
            id: 0x3f0d_8b2c_41a0_6b0c,
        };
        assert_eq!(
            e.to_string(),
            "etcd lease 3f0d8b2c41a06b0c not found (expired or revoked)"
        );
    }
}
