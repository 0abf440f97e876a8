//! The JSON of etcd's v3 gateway (grpc-gateway over the gRPC API, protobuf's JSON
//! mapping with the proto field names): building requests and reading answers.
//!
//! The mapping's rules, which both directions follow:
//! - int64 and uint64 are JSON strings (`"revision":"42"`); we send strings and accept
//!   strings or numbers;
//! - bytes are standard base64;
//! - enums are names (`"DELETE"`) or numbers; we send names and accept both;
//! - zero values are omitted: every missing field reads as its zero, and so does `null`.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::types::{
    Compare, CompareOp, CompareTarget, EventKind, PutOptions, RangeOptions, ResponseHeader, Txn,
    TxnOp, WatchEvent, WatchRequest,
};
use super::KeyRange;
use crate::model::base64;

/// `null` or a missing field: the zero value.
pub(super) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// An event type: `"PUT"`/`"DELETE"` or `0`/`1`.
pub(super) fn event_kind<'de, D: Deserializer<'de>>(d: D) -> Result<EventKind, D::Error> {
    struct Kind;
    impl Visitor<'_> for Kind {
        type Value = EventKind;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("type: PUT or DELETE")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<EventKind, E> {
            match v {
                "PUT" => Ok(EventKind::Put),
                "DELETE" => Ok(EventKind::Delete),
                other => Err(E::custom(format!(
                    "type: unknown event type {:?}",
                    super::error::excerpt(other.as_bytes())
                ))),
            }
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<EventKind, E> {
            match v {
                0 => Ok(EventKind::Put),
                1 => Ok(EventKind::Delete),
                other => Err(E::custom(format!("type: unknown event type {other}"))),
            }
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<EventKind, E> {
            Err(E::custom(format!("type: unknown event type {v}")))
        }
        fn visit_unit<E: de::Error>(self) -> Result<EventKind, E> {
            Ok(EventKind::Put)
        }
    }
    d.deserialize_any(Kind)
}

/// An integer field, named for error messages.
struct Integer<T> {
    field: &'static str,
    kind: &'static str,
    _type: std::marker::PhantomData<T>,
}

impl<T> Integer<T> {
    fn new(field: &'static str, kind: &'static str) -> Integer<T> {
        Integer {
            field,
            kind,
            _type: std::marker::PhantomData,
        }
    }
}

impl<T> Visitor<'_> for Integer<T>
where
    T: TryFrom<i64> + TryFrom<u64> + std::str::FromStr + Default,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: an {} as a decimal string", self.field, self.kind)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(|_| {
            E::custom(format!(
                "{}: invalid {} {:?}",
                self.field,
                self.kind,
                super::error::excerpt(v.as_bytes())
            ))
        })
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::custom(format!("{}: {v} is not a {}", self.field, self.kind)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::custom(format!("{}: {v} is not a {}", self.field, self.kind)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Ok(T::default())
    }
}

/// A bytes field (base64), named for error messages.
struct Bytes(&'static str);

impl Visitor<'_> for Bytes {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: base64 bytes", self.0)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        base64::decode(v).ok_or_else(|| {
            E::custom(format!(
                "{}: invalid base64 ({} characters starting {:?})",
                self.0,
                v.len(),
                super::error::excerpt(&v.as_bytes()[..v.len().min(16)])
            ))
        })
    }

    fn visit_unit<E: de::Error>(self) -> Result<Vec<u8>, E> {
        Ok(Vec::new())
    }
}

/// Per-field deserializers, so that an error names the field it is about (serde itself
/// does not say which field failed).
pub(super) mod field {
    use super::*;

    macro_rules! fields {
        ($kind:literal, $type:ty: $($name:ident = $json:literal),* $(,)?) => {
            $(
                pub(in super::super) fn $name<'de, D: Deserializer<'de>>(
                    d: D,
                ) -> Result<$type, D::Error> {
                    d.deserialize_any(Integer::<$type>::new($json, $kind))
                }
            )*
        };
    }

    fields!("int64", i64:
        revision = "revision",
        create_revision = "create_revision",
        mod_revision = "mod_revision",
        version = "version",
        lease = "lease",
        count = "count",
        deleted = "deleted",
        lease_id = "ID",
        ttl = "TTL",
        db_size = "dbSize",
        db_size_in_use = "dbSizeInUse",
        watch_id = "watch_id",
        compact_revision = "compact_revision",
    );

    fields!("uint64", u64:
        cluster_id = "cluster_id",
        member_id = "member_id",
        raft_term = "raft_term",
        leader = "leader",
        raft_index = "raftIndex",
        raft_applied_index = "raftAppliedIndex",
    );

    pub(in super::super) fn key<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_any(Bytes("key"))
    }

    pub(in super::super) fn value<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_any(Bytes("value"))
    }
}

/// One message of a watch stream.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct WatchMessage {
    pub header: ResponseHeader,
    #[serde(deserialize_with = "field::watch_id")]
    pub watch_id: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub created: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub canceled: bool,
    #[serde(deserialize_with = "field::compact_revision")]
    pub compact_revision: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub cancel_reason: String,
    #[serde(deserialize_with = "null_as_default")]
    pub events: Vec<WatchEvent>,
}

/// One line of a streaming answer (watch, keep-alive): a message or an error.
#[derive(Debug, Deserialize)]
#[serde(bound = "T: Deserialize<'de>")]
pub(super) struct StreamLine<T> {
    #[serde(default)]
    pub result: Option<T>,
    /// grpc-gateway puts a status object here (`{"grpc_code":..,"message":..}`); before the
    /// stream starts, a plain error answer may come instead. Either is read by
    /// [`GatewayError::from_value`].
    #[serde(default)]
    pub error: Option<Value>,
}

/// An error answer of the gateway: `{"error":"..","message":"..","code":N}` for unary
/// calls, or the status object of a stream error.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct GatewayError {
    pub code: i64,
    pub message: String,
}

impl GatewayError {
    /// Reads an error body; anything unreadable becomes its excerpt as the message.
    pub fn parse(body: &[u8]) -> GatewayError {
        match serde_json::from_slice::<Value>(body) {
            Ok(value) => GatewayError::from_value(&value),
            Err(_) => GatewayError {
                code: 0,
                message: super::error::excerpt(body),
            },
        }
    }

    pub fn from_value(value: &Value) -> GatewayError {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
        let code = |v: Option<&Value>| v.and_then(Value::as_i64).unwrap_or_default();
        let (message, code) = match value {
            Value::String(s) => (s.clone(), 0),
            Value::Object(map) => match map.get("error") {
                // A stream error line's status object, passed whole.
                Some(Value::Object(inner)) => {
                    (text(inner.get("message")), code(inner.get("grpc_code")))
                }
                Some(Value::String(error)) if text(map.get("message")).is_empty() => {
                    (error.clone(), code(map.get("code")))
                }
                _ => {
                    let grpc = map.get("code").or_else(|| map.get("grpc_code"));
                    (text(map.get("message")), code(grpc))
                }
            },
            other => (other.to_string(), 0),
        };
        GatewayError {
            code,
            message: super::error::excerpt(message.as_bytes()),
        }
    }
}

fn b64(bytes: &[u8]) -> Value {
    Value::String(base64::encode(bytes))
}

fn int(n: i64) -> Value {
    Value::String(n.to_string())
}

/// Adds a field unless it has its zero value, as protobuf's own encoder does (the
/// gateway would take the zeros too; leaving them out keeps requests small).
fn set_nonzero(map: &mut Map<String, Value>, name: &str, value: Value) {
    let zero = match &value {
        Value::String(s) => s.is_empty() || s == "0",
        Value::Bool(b) => !b,
        _ => false,
    };
    if !zero {
        map.insert(name.to_string(), value);
    }
}

fn key_range(map: &mut Map<String, Value>, range: &KeyRange) {
    map.insert("key".into(), b64(&range.key));
    set_nonzero(map, "range_end", b64(&range.range_end));
}

pub(super) fn range_request(range: &KeyRange, options: &RangeOptions) -> Value {
    let mut map = Map::new();
    key_range(&mut map, range);
    set_nonzero(&mut map, "limit", int(options.limit));
    set_nonzero(&mut map, "revision", int(options.revision));
    set_nonzero(&mut map, "keys_only", Value::Bool(options.keys_only));
    set_nonzero(&mut map, "count_only", Value::Bool(options.count_only));
    Value::Object(map)
}

pub(super) fn put_request(key: &[u8], value: &[u8], options: &PutOptions) -> Value {
    let mut map = Map::new();
    map.insert("key".into(), b64(key));
    set_nonzero(&mut map, "value", b64(value));
    set_nonzero(&mut map, "lease", int(options.lease));
    set_nonzero(&mut map, "prev_kv", Value::Bool(options.prev_kv));
    Value::Object(map)
}

pub(super) fn delete_request(range: &KeyRange, prev_kv: bool) -> Value {
    let mut map = Map::new();
    key_range(&mut map, range);
    set_nonzero(&mut map, "prev_kv", Value::Bool(prev_kv));
    Value::Object(map)
}

fn compare(compare: &Compare) -> Value {
    let result = match compare.op {
        CompareOp::Equal => "EQUAL",
        CompareOp::Greater => "GREATER",
        CompareOp::Less => "LESS",
        CompareOp::NotEqual => "NOT_EQUAL",
    };
    // The value is a oneof: it is sent even when zero (`create_revision: 0` is how one
    // asks "does the key not exist"), so etcd sees which member of the oneof is set.
    let (target, field, value) = match &compare.target {
        CompareTarget::Version(v) => ("VERSION", "version", int(*v)),
        CompareTarget::CreateRevision(r) => ("CREATE", "create_revision", int(*r)),
        CompareTarget::ModRevision(r) => ("MOD", "mod_revision", int(*r)),
        CompareTarget::Value(v) => ("VALUE", "value", b64(v)),
        CompareTarget::Lease(l) => ("LEASE", "lease", int(*l)),
    };
    let mut map = Map::new();
    map.insert("key".into(), b64(&compare.key));
    map.insert("result".into(), result.into());
    map.insert("target".into(), target.into());
    map.insert(field.into(), value);
    Value::Object(map)
}

fn txn_op(op: &TxnOp) -> Value {
    match op {
        TxnOp::Range { range, options } => {
            json!({ "request_range": range_request(range, options) })
        }
        TxnOp::Put {
            key,
            value,
            options,
        } => json!({ "request_put": put_request(key, value, options) }),
        TxnOp::Delete { range, prev_kv } => {
            json!({ "request_delete_range": delete_request(range, *prev_kv) })
        }
    }
}

pub(super) fn txn_request(txn: &Txn) -> Value {
    json!({
        "compare": txn.compare.iter().map(compare).collect::<Vec<_>>(),
        "success": txn.success.iter().map(txn_op).collect::<Vec<_>>(),
        "failure": txn.failure.iter().map(txn_op).collect::<Vec<_>>(),
    })
}

pub(super) fn lease_grant_request(ttl_seconds: i64) -> Value {
    json!({ "TTL": int(ttl_seconds) })
}

pub(super) fn lease_id_request(id: i64) -> Value {
    json!({ "ID": int(id) })
}

pub(super) fn compaction_request(revision: i64, physical: bool) -> Value {
    let mut map = Map::new();
    map.insert("revision".into(), int(revision));
    set_nonzero(&mut map, "physical", Value::Bool(physical));
    Value::Object(map)
}

pub(super) fn watch_create_request(request: &WatchRequest) -> Value {
    let mut map = Map::new();
    key_range(&mut map, &request.range);
    set_nonzero(&mut map, "start_revision", int(request.start_revision));
    set_nonzero(&mut map, "prev_kv", Value::Bool(request.prev_kv));
    set_nonzero(
        &mut map,
        "progress_notify",
        Value::Bool(request.progress_notify),
    );
    json!({ "create_request": map })
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
