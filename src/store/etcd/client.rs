//! [`EtcdClient`]: one method per etcd call, each a blocking request through the gateway.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::transport::{Answer, Replay, Transport};
use super::types::{
    DeleteResponse, KeyValue, LeaseGrant, LeaseKeepAlive, PutOptions, PutResponse, RangeOptions,
    RangeResponse, ResponseHeader, Status, Txn, TxnOp, TxnResponse, WatchRequest,
};
use super::watch::Watch;
use super::wire::{self, GatewayError, StreamLine};
use super::{EtcdConfig, EtcdError, KeyRange};

/// etcd's message for an unknown lease (gRPC NotFound), on keep-alive, revoke and put.
const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";

/// A client of one etcd cluster. Cheap to share between threads (`&self` everywhere);
/// each call is independent and carries its own timeout.
pub struct EtcdClient {
    transport: Transport,
}

/// An answer with only a header (compaction, revoke).
#[derive(Deserialize)]
struct HeaderOnly {
    #[serde(default)]
    header: ResponseHeader,
}

impl EtcdClient {
    /// Checks the configuration and reads the TLS files; connects to nothing yet.
    pub fn new(config: EtcdConfig) -> Result<EtcdClient, EtcdError> {
        Ok(EtcdClient {
            transport: Transport::new(&config)?,
        })
    }

    /// The endpoint the next call tries first: the one that answered last.
    pub fn endpoint(&self) -> &str {
        self.transport.preferred_endpoint()
    }

    /// Reads the keys in `range`.
    pub fn range(
        &self,
        range: &KeyRange,
        options: &RangeOptions,
    ) -> Result<RangeResponse, EtcdError> {
        let request = wire::range_request(range, options);
        self.unary("range", "/v3/kv/range", &request, Replay::Safe)
    }

    /// Reads one key at the current revision.
    pub fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, EtcdError> {
        let mut answer = self.range(&KeyRange::key(key), &RangeOptions::default())?;
        Ok(answer.kvs.pop())
    }

    pub fn put(
        &self,
        key: &[u8],
        value: &[u8],
        options: &PutOptions,
    ) -> Result<PutResponse, EtcdError> {
        let request = wire::put_request(key, value, options);
        self.unary("put", "/v3/kv/put", &request, Replay::OnlyIfNotApplied)
            .map_err(|e| lease_error(options.lease, e))
    }

    /// Deletes the keys in `range`, returning them as they were if `prev_kv`.
    pub fn delete(&self, range: &KeyRange, prev_kv: bool) -> Result<DeleteResponse, EtcdError> {
        let request = wire::delete_request(range, prev_kv);
        let replay = Replay::OnlyIfNotApplied;
        self.unary("delete", "/v3/kv/deleterange", &request, replay)
    }

    /// Runs a transaction. A read-only one may be repeated on another member; one that
    /// writes only when the first member surely did not apply it.
    pub fn txn(&self, txn: &Txn) -> Result<TxnResponse, EtcdError> {
        let read_only = txn
            .success
            .iter()
            .chain(&txn.failure)
            .all(|op| matches!(op, TxnOp::Range { .. }));
        let replay = if read_only {
            Replay::Safe
        } else {
            Replay::OnlyIfNotApplied
        };
        self.unary("txn", "/v3/kv/txn", &wire::txn_request(txn), replay)
    }

    /// Forgets the history before `revision` (keys' current values stay). Watches and
    /// reads at older revisions then fail with "compacted".
    pub fn compact(&self, revision: i64) -> Result<ResponseHeader, EtcdError> {
        let request = wire::compaction_request(revision, false);
        let answer: HeaderOnly =
            self.unary("compact", "/v3/kv/compaction", &request, Replay::Safe)?;
        Ok(answer.header)
    }

    /// Grants a lease of `ttl_seconds` (etcd may grant a longer one: see the answer).
    pub fn grant(&self, ttl_seconds: i64) -> Result<LeaseGrant, EtcdError> {
        let request = wire::lease_grant_request(ttl_seconds);
        let answer = self.transport.call(
            "lease grant",
            "/v3/lease/grant",
            &request,
            Replay::OnlyIfNotApplied,
        )?;
        let grant: LeaseGrant = decode(&answer, "lease grant")?;
        if !grant.error.is_empty() {
            return Err(EtcdError::Server {
                endpoint: answer.endpoint,
                operation: "lease grant",
                status: 200,
                code: 0,
                message: super::error::excerpt(grant.error.as_bytes()),
            });
        }
        if grant.id == 0 {
            return Err(decode_error(&answer, "lease grant", "no lease ID".into()));
        }
        Ok(grant)
    }

    /// Renews a lease once: one message on the keep-alive stream and its one answer.
    pub fn keepalive_once(&self, id: i64) -> Result<LeaseKeepAlive, EtcdError> {
        let request = wire::lease_id_request(id);
        let operation = "lease keep-alive";
        let answer = self
            .transport
            .call(operation, "/v3/lease/keepalive", &request, Replay::Safe)
            .map_err(|e| lease_error(id, e))?;
        // A stream of `{"result":...}` lines; the first is the answer to our message.
        let first = serde_json::Deserializer::from_slice(&answer.body)
            .into_iter::<StreamLine<LeaseKeepAlive>>()
            .next()
            .ok_or_else(|| decode_error(&answer, operation, "empty answer".into()))?
            .map_err(|e| decode_error(&answer, operation, e.to_string()))?;
        if let Some(error) = first.error {
            let refusal = GatewayError::from_value(&error);
            let error = EtcdError::Server {
                endpoint: answer.endpoint,
                operation,
                status: 200,
                code: refusal.code,
                message: refusal.message,
            };
            return Err(lease_error(id, error));
        }
        let kept = first
            .result
            .ok_or_else(|| decode_error(&answer, operation, "no result".into()))?;
        // etcd answers an unknown lease with TTL 0 rather than an error.
        if kept.ttl <= 0 {
            return Err(EtcdError::LeaseNotFound { id });
        }
        Ok(kept)
    }

    /// Revokes a lease, deleting the keys attached to it.
    pub fn revoke(&self, id: i64) -> Result<ResponseHeader, EtcdError> {
        let request = wire::lease_id_request(id);
        let answer: HeaderOnly = self
            .unary("lease revoke", "/v3/lease/revoke", &request, Replay::Safe)
            .map_err(|e| lease_error(id, e))?;
        Ok(answer.header)
    }

    /// The status of the member that answers.
    pub fn status(&self) -> Result<Status, EtcdError> {
        let request = serde_json::json!({});
        self.unary("status", "/v3/maintenance/status", &request, Replay::Safe)
    }

    /// Starts a watch; returns once etcd confirmed it, so every change committed after
    /// this returns is seen (and, with a start revision, every change since then).
    pub fn watch(&self, request: &WatchRequest) -> Result<Watch, EtcdError> {
        let body = wire::watch_create_request(request);
        let stream = self.transport.open_stream("watch", "/v3/watch", &body)?;
        Watch::start(stream, request, self.transport.max_response_bytes())
    }

    fn unary<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        path: &str,
        request: &serde_json::Value,
        replay: Replay,
    ) -> Result<T, EtcdError> {
        let answer = self.transport.call(operation, path, request, replay)?;
        decode(&answer, operation)
    }
}

fn decode<T: DeserializeOwned>(answer: &Answer, operation: &'static str) -> Result<T, EtcdError> {
    serde_json::from_slice(&answer.body).map_err(|e| decode_error(answer, operation, e.to_string()))
}

fn decode_error(answer: &Answer, operation: &'static str, reason: String) -> EtcdError {
    EtcdError::Decode {
        endpoint: answer.endpoint.clone(),
        operation,
        reason,
    }
}

/// etcd's "lease not found" refusal as [`EtcdError::LeaseNotFound`].
fn lease_error(id: i64, error: EtcdError) -> EtcdError {
    match &error {
        EtcdError::Server { message, .. } if id != 0 && message == LEASE_NOT_FOUND => {
            EtcdError::LeaseNotFound { id }
        }
        _ => error,
    }
}
