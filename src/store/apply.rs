//! What applying an object does, whichever backend keeps it: the pure decision between
//! created, configured and unchanged, the server-set metadata, and the optimistic
//! concurrency check on `resourceVersion`. The backends ([`super::objects`] on SQLite,
//! [`super::remote`] on etcd) only read and write.

use std::collections::HashMap;
use std::io::Read;
use std::time::SystemTime;

use serde_json::{Map, Value};

use super::{Key, PutOutcome, Record, StoreError};

/// Metadata fields the server owns; whatever a manifest says about them is ignored
/// (except `resourceVersion` when the caller asks for the check, see [`Incoming::parse`]).
const SERVER_SET_METADATA: &[&str] = &["uid", "resourceVersion", "generation", "creationTimestamp"];

/// Whether a `metadata.resourceVersion` in the objects put is a precondition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionCheck {
    /// Ignore it, as for objects a daemon writes itself or receives from its coordinator.
    Ignore,
    /// Refuse the put with [`StoreError::Conflict`] unless it matches the stored one, as
    /// a Kubernetes API server does for a client's update.
    Enforce,
    /// Only create: an object that exists already is [`StoreError::AlreadyExists`] (for
    /// what the first of several coordinators to start decides for all of them).
    CreateOnly,
}

/// An object from the caller, validated and stripped of server-set fields.
#[derive(Clone)]
pub(super) struct Incoming {
    pub key: Key,
    /// The object as the user wrote it: no `status`, no server-set metadata, and
    /// `metadata.namespace` present exactly when the object is namespaced.
    pub content: Value,
    /// The `resourceVersion` the caller based its change on, when it is to be checked.
    pub expected_version: Option<i64>,
    pub create_only: bool,
}

/// How a backend has to write the record of a [`Decision`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Write {
    /// A new object: [`stamp`] the record with the new revision, then store it.
    Insert,
    /// A changed object: [`stamp`] it, then replace the stored one.
    Update,
    /// Only the manifest file that owns it changed (no new revision).
    SourceOnly,
    /// Nothing to write.
    Nothing,
}

pub(super) struct Decision {
    pub record: Record,
    pub outcome: PutOutcome,
    pub write: Write,
}

impl Incoming {
    pub fn parse(index: usize, object: Value, check: VersionCheck) -> Result<Incoming, StoreError> {
        let invalid = |reason: &str| StoreError::Invalid {
            reason: format!("object {}: {reason}", index + 1),
        };
        let Value::Object(mut object) = object else {
            return Err(invalid("not a JSON object"));
        };
        let kind = match object.get("kind") {
            Some(Value::String(kind)) if !kind.is_empty() => kind.clone(),
            _ => return Err(invalid("missing kind")),
        };
        object.remove("status");
        let Some(Value::Object(metadata)) = object.get_mut("metadata") else {
            return Err(invalid("missing metadata"));
        };
        let name = match metadata.get("name") {
            Some(Value::String(name)) if !name.is_empty() => name.clone(),
            _ => return Err(invalid("missing metadata.name")),
        };
        let namespace = match metadata.get("namespace") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(namespace)) => namespace.clone(),
            Some(_) => return Err(invalid("metadata.namespace is not a string")),
        };
        let expected_version = match check {
            VersionCheck::Ignore | VersionCheck::CreateOnly => None,
            VersionCheck::Enforce => expected_version(metadata.get("resourceVersion"))
                .map_err(|reason| invalid(&reason))?,
        };
        for field in SERVER_SET_METADATA {
            metadata.remove(*field);
        }
        // One spelling for "cluster-scoped", so `{}` and `{"namespace": ""}` compare equal.
        if namespace.is_empty() {
            metadata.remove("namespace");
        }
        Ok(Incoming {
            key: Key {
                kind,
                namespace,
                name,
            },
            content: Value::Object(object),
            expected_version,
            create_only: check == VersionCheck::CreateOnly,
        })
    }
}

/// A client's `metadata.resourceVersion`: absent or empty means "no precondition".
fn expected_version(value: Option<&Value>) -> Result<Option<i64>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) => match text.parse::<i64>() {
            Ok(version) if version > 0 => Ok(Some(version)),
            _ => Err(format!(
                "metadata.resourceVersion: Invalid value: {text:?}: must be a resourceVersion \
                 this server gave out"
            )),
        },
        Some(_) => Err("metadata.resourceVersion: must be a string".to_string()),
    }
}

/// Decides between created, configured and unchanged for one object, checking the
/// caller's `resourceVersion` against the stored one first.
pub(super) fn decide(
    item: Incoming,
    existing: Option<Record>,
    source: Option<&str>,
) -> Result<Decision, StoreError> {
    let Some(existing) = existing else {
        if item.expected_version.is_some() {
            return Err(StoreError::Invalid {
                reason: format!(
                    "{}: resourceVersion should not be set on objects to be created",
                    describe(&item.key)
                ),
            });
        }
        let record = Record {
            uid: new_uid()?,
            generation: 1,
            resource_version: 0,
            creation_timestamp: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            source: source.map(str::to_string),
            status: None,
            object: item.content,
            kind: item.key.kind,
            namespace: item.key.namespace,
            name: item.key.name,
        };
        return Ok(Decision {
            record,
            outcome: PutOutcome::Created,
            write: Write::Insert,
        });
    };
    if item.create_only {
        return Err(StoreError::AlreadyExists { key: item.key });
    }
    if let Some(expected) = item.expected_version {
        if expected != existing.resource_version {
            return Err(StoreError::Conflict { key: item.key });
        }
    }
    let mut item = item;
    keep_deletion_timestamp(&existing.object, &mut item.content);
    let stored_content = strip_server_fields(existing.object.clone());
    if stored_content == item.content {
        // Same object; the only thing that may change is which file owns it.
        let mut record = existing;
        let write = if record.source.as_deref() != source {
            record.source = source.map(str::to_string);
            Write::SourceOnly
        } else {
            Write::Nothing
        };
        return Ok(Decision {
            record,
            outcome: PutOutcome::Unchanged,
            write,
        });
    }
    // Like Kubernetes, generation counts changes of what the user wants (spec, or data
    // for kinds without a spec), not of labels or annotations.
    let desired_changed = without_metadata(&stored_content) != without_metadata(&item.content);
    let record = Record {
        generation: existing.generation + i64::from(desired_changed),
        source: source.map(str::to_string),
        object: item.content,
        ..existing
    };
    Ok(Decision {
        record,
        outcome: PutOutcome::Configured,
        write: Write::Update,
    })
}

/// Gives the record of an [`Write::Insert`] or [`Write::Update`] its revision and fills
/// the server-set metadata of its object.
pub(super) fn stamp(mut record: Record, revision: i64) -> Record {
    record.resource_version = revision;
    let content = std::mem::take(&mut record.object);
    with_server_fields(record, content)
}

/// Once an object is being deleted it stays so, as in Kubernetes: applying it again
/// while its containers stop must not bring it back to life.
fn keep_deletion_timestamp(stored: &Value, incoming: &mut Value) {
    let Some(stamp) = stored.pointer("/metadata/deletionTimestamp").cloned() else {
        return;
    };
    if let Some(Value::Object(metadata)) = incoming.get_mut("metadata") {
        metadata.entry("deletionTimestamp").or_insert(stamp);
    }
}

/// Fills the server-set metadata of `content` from `record` and stores it as the
/// record's object.
pub(super) fn with_server_fields(mut record: Record, mut content: Value) -> Record {
    if let Some(Value::Object(metadata)) = content.get_mut("metadata") {
        metadata.insert("uid".into(), Value::String(record.uid.clone()));
        metadata.insert("generation".into(), Value::from(record.generation));
        // Kubernetes clients treat resourceVersion as an opaque string.
        metadata.insert(
            "resourceVersion".into(),
            Value::String(record.resource_version.to_string()),
        );
        metadata.insert(
            "creationTimestamp".into(),
            Value::String(record.creation_timestamp.clone()),
        );
    }
    record.object = content;
    record
}

fn strip_server_fields(mut object: Value) -> Value {
    if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
        for field in SERVER_SET_METADATA {
            metadata.remove(*field);
        }
    }
    object
}

/// Everything except metadata: spec, data, type, and so on.
fn without_metadata(object: &Value) -> Map<String, Value> {
    let mut map = object.as_object().cloned().unwrap_or_default();
    map.remove("metadata");
    map
}

pub(super) fn parse_json(text: &str, what: impl FnOnce() -> String) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|err| StoreError::Corrupt {
        what: what(),
        reason: format!("invalid JSON: {err}"),
    })
}

/// `Kind namespace/name`, or `Kind name` for cluster-scoped objects, for messages.
pub(super) fn describe(key: &Key) -> String {
    if key.namespace.is_empty() {
        format!("{} {}", key.kind, key.name)
    } else {
        format!("{} {}/{}", key.kind, key.namespace, key.name)
    }
}

/// A random (version 4) UUID.
fn new_uid() -> Result<String, StoreError> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut bytes))
        .map_err(|source| StoreError::Random { source })?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex = crate::model::hex::encode(&bytes);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// What applying `incoming` in order does, given what each key holds (`current`).
pub(super) struct BatchPlan {
    /// Each object's key, record and outcome, in input order.
    pub results: Vec<(Key, Record, PutOutcome)>,
    /// What to write for each key that changes.
    pub writes: HashMap<Key, (Record, Write)>,
}

pub(super) fn plan_batch(
    incoming: &[Incoming],
    mut current: HashMap<Key, Option<Record>>,
    source: Option<&str>,
) -> Result<BatchPlan, StoreError> {
    let mut results = Vec::with_capacity(incoming.len());
    let mut writes: HashMap<Key, (Record, Write)> = HashMap::new();
    // A key given twice is decided the second time over the first one's result, as on
    // SQLite.
    for item in incoming {
        let key = item.key.clone();
        let existing = current.get(&key).cloned().flatten();
        let Decision {
            record,
            outcome,
            write,
        } = decide(item.clone(), existing, source)?;
        let record = match write {
            Write::Insert | Write::Update => stamp(record, 0),
            Write::SourceOnly | Write::Nothing => record,
        };
        if write != Write::Nothing {
            // A key created earlier in this put stays a creation.
            let write = match writes.get(&key) {
                Some((_, Write::Insert)) => Write::Insert,
                _ => write,
            };
            writes.insert(key.clone(), (record.clone(), write));
        }
        current.insert(key.clone(), Some(record.clone()));
        results.push((key, record, outcome));
    }
    Ok(BatchPlan { results, writes })
}
