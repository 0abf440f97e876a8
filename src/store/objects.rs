//! Objects: apply (create/configure/unchanged), read, list, delete, status.

use std::io::Read;
use std::time::SystemTime;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::{Map, Value};

use super::error::SqliteContext;
use super::sealing::Sealer;
use super::{Key, PutOutcome, Record, Store, StoreError};

/// Metadata fields the server owns; whatever a manifest says about them is ignored.
const SERVER_SET_METADATA: &[&str] = &["uid", "resourceVersion", "generation", "creationTimestamp"];

const SELECT_COLUMNS: &str = "SELECT kind, namespace, name, uid, generation, resource_version, \
     creation_timestamp, source, object, status FROM objects";

/// An object from the caller, validated and stripped of server-set fields.
struct Incoming {
    key: Key,
    /// The object as the user wrote it: no `status`, no server-set metadata, and
    /// `metadata.namespace` present exactly when the object is namespaced.
    content: Value,
}

impl Store {
    /// Applies `objects` in one transaction: all of them are stored or none is.
    ///
    /// Returns each object's record and what happened to it, in input order.
    pub fn put_all(
        &mut self,
        objects: Vec<Value>,
        source: Option<&str>,
    ) -> Result<Vec<(Record, PutOutcome)>, StoreError> {
        // Validate everything before touching the database.
        let incoming = objects
            .into_iter()
            .enumerate()
            .map(|(index, object)| Incoming::parse(index, object))
            .collect::<Result<Vec<_>, _>>()?;
        // IMMEDIATE takes the write lock up front, so the reads below cannot go stale
        // under another writer. Taking it writes nothing to disk by itself.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context(|| "cannot start a transaction".to_string())?;
        let mut results = Vec::with_capacity(incoming.len());
        for item in incoming {
            let existing = select_one(&tx, &self.sealer, &item.key)?;
            results.push(apply_one(&tx, &self.sealer, item, existing, source)?);
        }
        tx.commit()
            .context(|| "cannot commit applied objects".to_string())?;
        Ok(results)
    }

    /// The object with this identity, if stored.
    pub fn get(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Record>, StoreError> {
        select_one(&self.conn, &self.sealer, &Key::new(kind, namespace, name))
    }

    /// Objects of `kind`, in one namespace or all, ordered by namespace then name.
    pub fn list(&self, kind: &str, namespace: Option<&str>) -> Result<Vec<Record>, StoreError> {
        match namespace {
            Some(namespace) => select_many(
                &self.conn,
                &self.sealer,
                &format!(
                    "{SELECT_COLUMNS} WHERE kind = ?1 AND namespace = ?2 ORDER BY namespace, name"
                ),
                params![kind, namespace],
            ),
            None => select_many(
                &self.conn,
                &self.sealer,
                &format!("{SELECT_COLUMNS} WHERE kind = ?1 ORDER BY namespace, name"),
                params![kind],
            ),
        }
    }

    /// Objects last applied from the manifest file `source`, ordered by kind, namespace, name.
    pub fn list_by_source(&self, source: &str) -> Result<Vec<Record>, StoreError> {
        select_many(
            &self.conn,
            &self.sealer,
            &format!("{SELECT_COLUMNS} WHERE source = ?1 ORDER BY kind, namespace, name"),
            params![source],
        )
    }

    /// Deletes the objects with these keys in one transaction and returns what was
    /// deleted; keys that are not stored are skipped.
    pub fn delete_all(&mut self, keys: &[Key]) -> Result<Vec<Record>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context(|| "cannot start a transaction".to_string())?;
        let mut deleted = Vec::new();
        for key in keys {
            let Some(record) = select_one(&tx, &self.sealer, key)? else {
                continue;
            };
            tx.prepare_cached(
                "DELETE FROM objects WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
            )
            .and_then(|mut stmt| stmt.execute(params![key.kind, key.namespace, key.name]))
            .context(|| format!("cannot delete {}", describe(key)))?;
            deleted.push(record);
        }
        tx.commit()
            .context(|| "cannot commit deletions".to_string())?;
        Ok(deleted)
    }

    /// Stores the observed status of an object, but only if it differs from the stored
    /// one. Returns whether it wrote; a missing object is not an error (it may have been
    /// deleted while its status was being computed) and writes nothing.
    pub fn set_status(
        &mut self,
        kind: &str,
        namespace: &str,
        name: &str,
        status: &Value,
    ) -> Result<bool, StoreError> {
        let key = Key::new(kind, namespace, name);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context(|| "cannot start a transaction".to_string())?;
        let stored: Option<Option<String>> = tx
            .prepare_cached(
                "SELECT status FROM objects WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![kind, namespace, name], |row| row.get(0))
                    .optional()
            })
            .context(|| format!("cannot read the status of {}", describe(&key)))?;
        let Some(stored) = stored else {
            return Ok(false);
        };
        if let Some(text) = stored {
            if parse_json(&text, || format!("status of {}", describe(&key)))? == *status {
                return Ok(false);
            }
        }
        tx.prepare_cached(
            "UPDATE objects SET status = ?4 WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
        )
        .and_then(|mut stmt| stmt.execute(params![kind, namespace, name, status.to_string()]))
        .context(|| format!("cannot store the status of {}", describe(&key)))?;
        tx.commit()
            .context(|| format!("cannot commit the status of {}", describe(&key)))?;
        Ok(true)
    }
}

impl Store {
    /// Seals again every row of a sealed kind that is in clear or sealed with an older key,
    /// then checkpoints the WAL so no old copy stays in it. Returns how many rows changed;
    /// with nothing to do it writes nothing.
    pub(super) fn reseal(&mut self) -> Result<usize, StoreError> {
        let sealer = &self.sealer;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context(|| "cannot start a transaction".to_string())?;
        let mut rewritten = 0;
        for kind in sealer.sealed_kinds() {
            let rows: Vec<(String, String, String)> = tx
                .prepare_cached("SELECT namespace, name, object FROM objects WHERE kind = ?1")
                .and_then(|mut stmt| {
                    stmt.query_map(params![kind], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                    })?
                    .collect()
                })
                .context(|| format!("cannot list {kind} objects to seal"))?;
            for (namespace, name, text) in rows {
                if !sealer.needs_reseal(kind, &text) {
                    continue;
                }
                let key = Key::new(kind, &namespace, &name);
                let sealed = sealer.seal(&key, sealer.unseal(&key, text)?)?;
                tx.prepare_cached(
                    "UPDATE objects SET object = ?4 WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
                )
                .and_then(|mut stmt| stmt.execute(params![kind, namespace, name, sealed]))
                .context(|| format!("cannot seal {}", describe(&key)))?;
                rewritten += 1;
            }
        }
        tx.commit()
            .context(|| "cannot commit sealed objects".to_string())?;
        if rewritten > 0 {
            self.conn
                .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
                .context(|| "cannot checkpoint the WAL after sealing".to_string())?;
            log::info!("sealed {rewritten} stored object(s) with the current key");
        }
        Ok(rewritten)
    }
}

impl Incoming {
    fn parse(index: usize, object: Value) -> Result<Incoming, StoreError> {
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
        })
    }
}

/// Decides between created, configured and unchanged for one object and writes only in
/// the first two cases.
fn apply_one(
    conn: &Connection,
    sealer: &Sealer,
    item: Incoming,
    existing: Option<Record>,
    source: Option<&str>,
) -> Result<(Record, PutOutcome), StoreError> {
    let Some(existing) = existing else {
        let record = Record {
            uid: new_uid()?,
            generation: 1,
            resource_version: next_revision(conn)?,
            creation_timestamp: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            source: source.map(str::to_string),
            status: None,
            object: Value::Null,
            kind: item.key.kind,
            namespace: item.key.namespace,
            name: item.key.name,
        };
        let record = with_server_fields(record, item.content);
        insert(conn, sealer, &record)?;
        return Ok((record, PutOutcome::Created));
    };
    let mut item = item;
    keep_deletion_timestamp(&existing.object, &mut item.content);
    let stored_content = strip_server_fields(existing.object.clone());
    if stored_content == item.content {
        // Same object; the only thing that may change is which file owns it.
        let mut record = existing;
        if record.source.as_deref() != source {
            record.source = source.map(str::to_string);
            update_source(conn, &record)?;
        }
        return Ok((record, PutOutcome::Unchanged));
    }
    // Like Kubernetes, generation counts changes of what the user wants (spec, or data
    // for kinds without a spec), not of labels or annotations.
    let desired_changed = without_metadata(&stored_content) != without_metadata(&item.content);
    let record = Record {
        generation: existing.generation + i64::from(desired_changed),
        resource_version: next_revision(conn)?,
        source: source.map(str::to_string),
        object: Value::Null,
        ..existing
    };
    let record = with_server_fields(record, item.content);
    update(conn, sealer, &record)?;
    Ok((record, PutOutcome::Configured))
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
fn with_server_fields(mut record: Record, mut content: Value) -> Record {
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

/// Bumps and returns the global revision (the next `resourceVersion`).
fn next_revision(conn: &Connection) -> Result<i64, StoreError> {
    conn.prepare_cached("UPDATE revision SET value = value + 1 WHERE id = 1 RETURNING value")
        .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
        .context(|| "cannot advance the revision counter".to_string())
}

fn insert(conn: &Connection, sealer: &Sealer, record: &Record) -> Result<(), StoreError> {
    let object = sealer.seal(&record.key(), record.object.to_string())?;
    conn.prepare_cached(
        "INSERT INTO objects (kind, namespace, name, uid, generation, resource_version, \
         creation_timestamp, source, object, status) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            record.kind,
            record.namespace,
            record.name,
            record.uid,
            record.generation,
            record.resource_version,
            record.creation_timestamp,
            record.source,
            object,
        ])
    })
    .context(|| format!("cannot store {}", describe(&record.key())))?;
    Ok(())
}

fn update(conn: &Connection, sealer: &Sealer, record: &Record) -> Result<(), StoreError> {
    let object = sealer.seal(&record.key(), record.object.to_string())?;
    conn.prepare_cached(
        "UPDATE objects SET generation = ?4, resource_version = ?5, source = ?6, object = ?7 \
         WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            record.kind,
            record.namespace,
            record.name,
            record.generation,
            record.resource_version,
            record.source,
            object,
        ])
    })
    .context(|| format!("cannot update {}", describe(&record.key())))?;
    Ok(())
}

fn update_source(conn: &Connection, record: &Record) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE objects SET source = ?4 WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            record.kind,
            record.namespace,
            record.name,
            record.source
        ])
    })
    .context(|| format!("cannot update the source of {}", describe(&record.key())))?;
    Ok(())
}

/// A stored row before its JSON columns are parsed.
struct Row {
    kind: String,
    namespace: String,
    name: String,
    uid: String,
    generation: i64,
    resource_version: i64,
    creation_timestamp: String,
    source: Option<String>,
    object: String,
    status: Option<String>,
}

impl Row {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
        Ok(Row {
            kind: row.get(0)?,
            namespace: row.get(1)?,
            name: row.get(2)?,
            uid: row.get(3)?,
            generation: row.get(4)?,
            resource_version: row.get(5)?,
            creation_timestamp: row.get(6)?,
            source: row.get(7)?,
            object: row.get(8)?,
            status: row.get(9)?,
        })
    }

    fn into_record(self, sealer: &Sealer) -> Result<Record, StoreError> {
        let key = Key::new(&self.kind, &self.namespace, &self.name);
        let text = sealer.unseal(&key, self.object)?;
        let object = parse_json(&text, || format!("stored {}", describe(&key)))?;
        let status = match &self.status {
            Some(text) => Some(parse_json(text, || {
                format!("status of {}", describe(&key))
            })?),
            None => None,
        };
        Ok(Record {
            kind: self.kind,
            namespace: self.namespace,
            name: self.name,
            uid: self.uid,
            generation: self.generation,
            resource_version: self.resource_version,
            creation_timestamp: self.creation_timestamp,
            source: self.source,
            object,
            status,
        })
    }
}

fn select_one(conn: &Connection, sealer: &Sealer, key: &Key) -> Result<Option<Record>, StoreError> {
    let row = conn
        .prepare_cached(&format!(
            "{SELECT_COLUMNS} WHERE kind = ?1 AND namespace = ?2 AND name = ?3"
        ))
        .and_then(|mut stmt| {
            stmt.query_row(params![key.kind, key.namespace, key.name], Row::read)
                .optional()
        })
        .context(|| format!("cannot read {}", describe(key)))?;
    row.map(|row| row.into_record(sealer)).transpose()
}

fn select_many(
    conn: &Connection,
    sealer: &Sealer,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Record>, StoreError> {
    let rows = conn
        .prepare_cached(sql)
        .and_then(|mut stmt| {
            stmt.query_map(params, Row::read)?
                .collect::<rusqlite::Result<Vec<Row>>>()
        })
        .context(|| "cannot list objects".to_string())?;
    rows.into_iter()
        .map(|row| row.into_record(sealer))
        .collect()
}

fn parse_json(text: &str, what: impl FnOnce() -> String) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|err| StoreError::Corrupt {
        what: what(),
        reason: format!("invalid JSON: {err}"),
    })
}

/// `Kind namespace/name`, or `Kind name` for cluster-scoped objects, for messages.
fn describe(key: &Key) -> String {
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

#[cfg(test)]
#[path = "objects_tests.rs"]
mod tests;
