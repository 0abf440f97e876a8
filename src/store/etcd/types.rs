//! The requests and answers of the etcd v3 API, as typed values.
//!
//! The answers deserialize straight from the gateway's JSON (protobuf's JSON mapping):
//! every field is optional because protobuf omits zero values (a missing `kvs` is no
//! keys, a missing `succeeded` is false), int64s arrive as strings and bytes as base64.
//! The field functions in [`super::wire`] apply those rules and name the field on error.

use serde::Deserialize;

use super::wire::{self, field};

/// The header of every answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ResponseHeader {
    #[serde(deserialize_with = "field::cluster_id")]
    pub cluster_id: u64,
    #[serde(deserialize_with = "field::member_id")]
    pub member_id: u64,
    /// The store's revision when the request was applied (or, in a watch, see
    /// [`super::Watch::next_revision`]).
    #[serde(deserialize_with = "field::revision")]
    pub revision: i64,
    #[serde(deserialize_with = "field::raft_term")]
    pub raft_term: u64,
}

/// One key and its value with their revisions (mvccpb.KeyValue).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct KeyValue {
    #[serde(deserialize_with = "field::key")]
    pub key: Vec<u8>,
    /// The revision that created the key (0 in a DELETE event's kv).
    #[serde(deserialize_with = "field::create_revision")]
    pub create_revision: i64,
    /// The revision of the last change to the key.
    #[serde(deserialize_with = "field::mod_revision")]
    pub mod_revision: i64,
    /// How many times the key changed since it was created (1 after the create).
    #[serde(deserialize_with = "field::version")]
    pub version: i64,
    #[serde(deserialize_with = "field::value")]
    pub value: Vec<u8>,
    /// The lease the key is attached to; 0 for none.
    #[serde(deserialize_with = "field::lease")]
    pub lease: i64,
}

/// Answer to a range request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RangeResponse {
    pub header: ResponseHeader,
    #[serde(deserialize_with = "wire::null_as_default")]
    pub kvs: Vec<KeyValue>,
    /// More keys matched than `limit` let through.
    #[serde(deserialize_with = "wire::null_as_default")]
    pub more: bool,
    /// How many keys matched, whatever the limit.
    #[serde(deserialize_with = "field::count")]
    pub count: i64,
}

/// Answer to a put.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct PutResponse {
    pub header: ResponseHeader,
    /// The key before the put, when asked for and when it existed.
    pub prev_kv: Option<KeyValue>,
}

/// Answer to a delete.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct DeleteResponse {
    pub header: ResponseHeader,
    #[serde(deserialize_with = "field::deleted")]
    pub deleted: i64,
    #[serde(deserialize_with = "wire::null_as_default")]
    pub prev_kvs: Vec<KeyValue>,
}

/// Answer to a transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct TxnResponse {
    /// `header.revision` is the revision after the transaction (unchanged if it wrote
    /// nothing).
    pub header: ResponseHeader,
    /// Whether every comparison held (and so the success operations ran).
    #[serde(deserialize_with = "wire::null_as_default")]
    pub succeeded: bool,
    /// One answer per operation that ran, in order.
    #[serde(deserialize_with = "wire::null_as_default")]
    pub responses: Vec<TxnOpResponse>,
}

/// The answer to one operation of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub enum TxnOpResponse {
    #[serde(rename = "response_range")]
    Range(RangeResponse),
    #[serde(rename = "response_put")]
    Put(PutResponse),
    #[serde(rename = "response_delete_range")]
    Delete(DeleteResponse),
}

/// A granted lease.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct LeaseGrant {
    pub header: ResponseHeader,
    #[serde(rename = "ID", deserialize_with = "field::lease_id")]
    pub id: i64,
    /// The TTL etcd granted, in seconds (it may raise a too-short one).
    #[serde(rename = "TTL", deserialize_with = "field::ttl")]
    pub ttl: i64,
    /// Set when etcd could not grant the lease.
    #[serde(deserialize_with = "wire::null_as_default")]
    pub error: String,
}

/// Answer to one keep-alive.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct LeaseKeepAlive {
    pub header: ResponseHeader,
    #[serde(rename = "ID", deserialize_with = "field::lease_id")]
    pub id: i64,
    /// The lease's new TTL in seconds; never 0 here (that is [`super::EtcdError::LeaseNotFound`]).
    #[serde(rename = "TTL", deserialize_with = "field::ttl")]
    pub ttl: i64,
}

/// A member's status (maintenance/status). The gateway spells these in camelCase, as
/// the proto file does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Status {
    pub header: ResponseHeader,
    #[serde(deserialize_with = "wire::null_as_default")]
    pub version: String,
    #[serde(rename = "dbSize", deserialize_with = "field::db_size")]
    pub db_size: i64,
    /// The member id of the leader as this member sees it; 0 when there is none.
    #[serde(deserialize_with = "field::leader")]
    pub leader: u64,
    #[serde(rename = "raftIndex", deserialize_with = "field::raft_index")]
    pub raft_index: u64,
    #[serde(rename = "raftTerm", deserialize_with = "field::raft_term")]
    pub raft_term: u64,
    #[serde(
        rename = "raftAppliedIndex",
        deserialize_with = "field::raft_applied_index"
    )]
    pub raft_applied_index: u64,
    #[serde(deserialize_with = "wire::null_as_default")]
    pub errors: Vec<String>,
    #[serde(rename = "dbSizeInUse", deserialize_with = "field::db_size_in_use")]
    pub db_size_in_use: i64,
    #[serde(rename = "isLearner", deserialize_with = "wire::null_as_default")]
    pub is_learner: bool,
}

/// What happened to a key in a watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct WatchEvent {
    #[serde(
        rename = "type",
        default = "put_kind",
        deserialize_with = "wire::event_kind"
    )]
    pub kind: EventKind,
    /// The key after the change; for a delete only `key` and `mod_revision` are set.
    #[serde(default)]
    pub kv: KeyValue,
    /// The key before the change, when the watch asked for it and the key existed.
    #[serde(default)]
    pub prev_kv: Option<KeyValue>,
}

/// PUT is event type 0, so protobuf's JSON leaves it out.
fn put_kind() -> EventKind {
    EventKind::Put
}

/// Options of a range request; the defaults read everything at the current revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeOptions {
    /// At most this many keys; 0 for no limit.
    pub limit: i64,
    /// Read the store as it was at this revision; 0 for the current one.
    pub revision: i64,
    /// Only keys and revisions, no values.
    pub keys_only: bool,
    /// Only `count`, no keys.
    pub count_only: bool,
}

/// Options of a put.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// Attach the key to this lease (deleted with it); 0 for none.
    pub lease: i64,
    /// Return the key as it was before.
    pub prev_kv: bool,
}

/// How a comparison of a transaction compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Equal,
    Greater,
    Less,
    NotEqual,
}

/// What a comparison looks at, with the value it compares with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompareTarget {
    Version(i64),
    /// 0 means "the key does not exist".
    CreateRevision(i64),
    ModRevision(i64),
    Value(Vec<u8>),
    Lease(i64),
}

/// One condition of a transaction, on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    pub key: Vec<u8>,
    pub op: CompareOp,
    pub target: CompareTarget,
}

impl Compare {
    pub fn version(key: &[u8], op: CompareOp, version: i64) -> Compare {
        Compare::new(key, op, CompareTarget::Version(version))
    }

    /// `create_revision(key, Equal, 0)` holds when the key does not exist.
    pub fn create_revision(key: &[u8], op: CompareOp, revision: i64) -> Compare {
        Compare::new(key, op, CompareTarget::CreateRevision(revision))
    }

    /// `mod_revision(key, Equal, r)` holds when nobody changed the key since revision `r`:
    /// the compare of a compare-and-swap.
    pub fn mod_revision(key: &[u8], op: CompareOp, revision: i64) -> Compare {
        Compare::new(key, op, CompareTarget::ModRevision(revision))
    }

    pub fn value(key: &[u8], op: CompareOp, value: &[u8]) -> Compare {
        Compare::new(key, op, CompareTarget::Value(value.to_vec()))
    }

    pub fn lease(key: &[u8], op: CompareOp, lease: i64) -> Compare {
        Compare::new(key, op, CompareTarget::Lease(lease))
    }

    fn new(key: &[u8], op: CompareOp, target: CompareTarget) -> Compare {
        Compare {
            key: key.to_vec(),
            op,
            target,
        }
    }
}

/// One operation of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOp {
    Range {
        range: super::KeyRange,
        options: RangeOptions,
    },
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        options: PutOptions,
    },
    Delete {
        range: super::KeyRange,
        prev_kv: bool,
    },
}

impl TxnOp {
    /// Reads one key.
    pub fn get(key: &[u8]) -> TxnOp {
        TxnOp::Range {
            range: super::KeyRange::key(key),
            options: RangeOptions::default(),
        }
    }

    pub fn put(key: &[u8], value: &[u8], options: PutOptions) -> TxnOp {
        TxnOp::Put {
            key: key.to_vec(),
            value: value.to_vec(),
            options,
        }
    }

    /// Deletes one key.
    pub fn delete(key: &[u8]) -> TxnOp {
        TxnOp::Delete {
            range: super::KeyRange::key(key),
            prev_kv: false,
        }
    }
}

/// A transaction: if every compare holds, run `success`, else `failure`, atomically.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Txn {
    pub compare: Vec<Compare>,
    pub success: Vec<TxnOp>,
    pub failure: Vec<TxnOp>,
}

/// What a watch watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchRequest {
    pub range: super::KeyRange,
    /// The first revision to report; 0 for "changes after now".
    pub start_revision: i64,
    /// Events carry the key as it was before the change.
    pub prev_kv: bool,
    /// Ask etcd for empty progress answers while idle (every 10 minutes by default in
    /// etcd 3.4), which move [`super::Watch::next_revision`] forward.
    pub progress_notify: bool,
}

impl WatchRequest {
    pub fn new(range: super::KeyRange, start_revision: i64) -> WatchRequest {
        WatchRequest {
            range,
            start_revision,
            prev_kv: false,
            progress_notify: false,
        }
    }
}
