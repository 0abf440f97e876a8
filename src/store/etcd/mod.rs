//! A small, blocking etcd v3 client (issue 16: the coordinator's store on etcd).
//!
//! It speaks etcd's v3 JSON gateway (`POST /v3/kv/range` and friends, served by every
//! etcd ≥ 3.4 on its client port) over the HTTP client berth already links for registry
//! pulls (ureq on rustls), not gRPC: a gRPC stack (tonic, h2, prost, tokio) would add
//! megabytes to a binary that has to fit a Pi Zero 2.
//!
//! What it offers is the part of the API a store and a leader election need: ranges,
//! puts, deletes and transactions ([`EtcdClient::range`], [`EtcdClient::txn`]...),
//! leases, and watches as a blocking iterator ([`Watch`]).
//!
//! The members and the network are not trusted: every answer is read up to a size cap
//! ([`EtcdConfig::max_response_bytes`]) before any of it is parsed, nothing is
//! allocated from a size the peer announces, and whatever does not decode becomes an
//! [`EtcdError`] that names the field. Plain HTTP is accepted for loopback endpoints
//! only.
//!
//! Several endpoints make one cluster: a request goes to the endpoint that last
//! answered, and moves on to the next one when it cannot connect, or when a member
//! answers that it cannot serve (5xx, e.g. `etcdserver: no leader`). Reads move on after
//! any failure; writes only when the request surely was not applied, since writing twice
//! is not harmless (a second compare-and-swap would report a conflict with itself).

mod client;
mod error;
mod transport;
mod types;
mod watch;
mod wire;

use std::path::PathBuf;
use std::time::Duration;

pub use client::EtcdClient;
pub use error::EtcdError;
pub use types::{
    Compare, CompareOp, CompareTarget, DeleteResponse, EventKind, KeyValue, LeaseGrant,
    LeaseKeepAlive, PutOptions, PutResponse, RangeOptions, RangeResponse, ResponseHeader, Status,
    Txn, TxnOp, TxnOpResponse, TxnResponse, WatchEvent, WatchRequest,
};
pub use watch::{Watch, WatchCloser, WatchResponse};

/// How to reach a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdConfig {
    /// Client URLs of the members, `https://host:port` (or `http://` on loopback).
    pub endpoints: Vec<String>,
    pub tls: EtcdTls,
    /// How long to wait for one TCP and TLS connection.
    pub connect_timeout: Duration,
    /// How long one call may take in all, trying every endpoint (not a watch's stream).
    pub request_timeout: Duration,
    /// A watch that receives nothing for this long fails (to notice a dead member
    /// behind a silent network); `None` waits forever. Pair it with
    /// [`WatchRequest::progress_notify`] so that a healthy idle watch hears something.
    pub watch_idle_timeout: Option<Duration>,
    /// The largest answer (or watch message) accepted, in bytes.
    pub max_response_bytes: usize,
}

/// The files of a TLS connection to etcd, like k3s' `--datastore-cafile`,
/// `--datastore-certfile` and `--datastore-keyfile`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EtcdTls {
    /// The CA that signed the members' certificates; without it, the system's roots.
    pub ca_file: Option<PathBuf>,
    /// A client certificate (PEM, with its chain) for members that require one.
    pub cert_file: Option<PathBuf>,
    /// The private key of `cert_file` (PEM).
    pub key_file: Option<PathBuf>,
}

/// 16 MiB: a full listing of a small fleet's objects fits many times over, and a board
/// with 512 MiB survives it.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

impl EtcdConfig {
    /// A configuration with these endpoints, no client certificate, and default limits.
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> EtcdConfig {
        EtcdConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            tls: EtcdTls::default(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            watch_idle_timeout: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// A span of keys: `[key, range_end)` in etcd's terms. An empty `range_end` means the
/// single key `key`; a `range_end` of `[0]` means every key from `key` on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
}

impl KeyRange {
    /// Exactly one key.
    pub fn key(key: &[u8]) -> KeyRange {
        KeyRange {
            key: key.to_vec(),
            range_end: Vec::new(),
        }
    }

    /// Every key that starts with `prefix` (every key at all for an empty prefix).
    pub fn prefix(prefix: &[u8]) -> KeyRange {
        if prefix.is_empty() {
            return KeyRange::from_key(&[0]);
        }
        KeyRange {
            key: prefix.to_vec(),
            range_end: prefix_end(prefix),
        }
    }

    /// `key` and every key after it.
    pub fn from_key(key: &[u8]) -> KeyRange {
        KeyRange {
            key: key.to_vec(),
            range_end: vec![0],
        }
    }

    /// Keys from `start` (included) to `end` (excluded).
    pub fn between(start: &[u8], end: &[u8]) -> KeyRange {
        KeyRange {
            key: start.to_vec(),
            range_end: end.to_vec(),
        }
    }
}

/// The first key after every key that starts with `prefix`: the prefix with its last
/// byte that is not 0xff incremented and what follows dropped; `[0]` ("to the end") when
/// every byte is 0xff.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    match prefix.iter().rposition(|&b| b < 0xff) {
        Some(at) => {
            let mut end = prefix[..=at].to_vec();
            end[at] += 1;
            end
        }
        None => vec![0],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ranges_end_after_the_last_key_with_the_prefix() {
        assert_eq!(
            KeyRange::prefix(b"/registry/pods/").range_end,
            b"/registry/pods0"
        );
        assert_eq!(KeyRange::prefix(b"a").range_end, b"b");
        assert_eq!(KeyRange::prefix(&[b'a', 0xff]).range_end, b"b");
        assert_eq!(KeyRange::prefix(&[b'a', 0xff, 0xff]).range_end, b"b");
        assert_eq!(KeyRange::prefix(&[0xff, 0xff]).range_end, vec![0]);
        assert_eq!(KeyRange::prefix(&[0xff]).key, vec![0xff]);
    }

    #[test]
    fn an_empty_prefix_is_every_key() {
        let all = KeyRange::prefix(b"");
        assert_eq!((all.key, all.range_end), (vec![0], vec![0]));
    }

    #[test]
    fn single_keys_have_no_range_end() {
        assert!(KeyRange::key(b"k").range_end.is_empty());
        assert_eq!(KeyRange::from_key(b"k").range_end, vec![0]);
        assert_eq!(KeyRange::between(b"a", b"c").range_end, b"c");
    }

    #[test]
    fn defaults_are_bounded() {
        let config = EtcdConfig::new(["https://10.0.0.1:2379"]);
        assert_eq!(config.endpoints, ["https://10.0.0.1:2379"]);
        assert_eq!(config.max_response_bytes, DEFAULT_MAX_RESPONSE_BYTES);
        assert!(config.request_timeout > config.connect_timeout);
    }
}
