//! Objects: apply (create/configure/unchanged), read, list, delete, status.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::Value;

use super::apply::{decide, describe, parse_json, stamp, Decision, Incoming, VersionCheck, Write};
use super::error::SqliteContext;
use super::sealing::Sealer;
use super::{Backend, Key, PutOutcome, Record, Store, StoreError};

const SELECT_COLUMNS: &str = "SELECT kind, namespace, name, uid, generation, resource_version, \
     creation_timestamp, source, object, status FROM objects";

impl Store {
    /// Applies `objects` in one transaction: all of them are stored or none is.
    ///
    /// Returns each object's record and what happened to it, in input order.
    /// `metadata.resourceVersion` in `objects` is ignored: see [`Store::put_all_checked`].
    pub fn put_all(
        &mut self,
        objects: Vec<Value>,
        source: Option<&str>,
    ) -> Result<Vec<(Record, PutOutcome)>, StoreError> {
        self.put_all_checked(objects, source, VersionCheck::Ignore)
    }

    /// [`Store::put_all`], with `check` saying whether a `metadata.resourceVersion` in
    /// the objects must match the stored one ([`StoreError::Conflict`] otherwise), as for
    /// a client's update in Kubernetes.
    pub fn put_all_checked(
        &mut self,
        objects: Vec<Value>,
        source: Option<&str>,
        check: VersionCheck,
    ) -> Result<Vec<(Record, PutOutcome)>, StoreError> {
        // Validate everything before touching the database.
        let incoming = objects
            .into_iter()
            .enumerate()
            .map(|(index, object)| Incoming::parse(index, object, check))
            .collect::<Result<Vec<_>, _>>()?;
        match &mut self.backend {
            Backend::Sqlite(conn) => put_all(conn, &self.sealer, incoming, source),
            Backend::Etcd(etcd) => etcd.put_all(&self.sealer, incoming, source),
        }
    }

    /// The object with this identity, if stored.
    pub fn get(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Record>, StoreError> {
        let key = Key::new(kind, namespace, name);
        match &self.backend {
            Backend::Sqlite(conn) => select_one(conn, &self.sealer, &key),
            Backend::Etcd(etcd) => etcd.get(&self.sealer, &key),
        }
    }

    /// Objects of `kind`, in one namespace or all, ordered by namespace then name.
    pub fn list(&self, kind: &str, namespace: Option<&str>) -> Result<Vec<Record>, StoreError> {
        let conn = match &self.backend {
            Backend::Sqlite(conn) => conn,
            Backend::Etcd(etcd) => return etcd.list(&self.sealer, kind, namespace),
        };
        match namespace {
            Some(namespace) => select_many(
                conn,
                &self.sealer,
                &format!(
                    "{SELECT_COLUMNS} WHERE kind = ?1 AND namespace = ?2 ORDER BY namespace, name"
                ),
                params![kind, namespace],
            ),
            None => select_many(
                conn,
                &self.sealer,
                &format!("{SELECT_COLUMNS} WHERE kind = ?1 ORDER BY namespace, name"),
                params![kind],
            ),
        }
    }

    /// Objects last applied from the manifest file `source`, ordered by kind, namespace, name.
    pub fn list_by_source(&self, source: &str) -> Result<Vec<Record>, StoreError> {
        match &self.backend {
            Backend::Sqlite(conn) => select_many(
                conn,
                &self.sealer,
                &format!("{SELECT_COLUMNS} WHERE source = ?1 ORDER BY kind, namespace, name"),
                params![source],
            ),
            Backend::Etcd(etcd) => etcd.list_by_source(&self.sealer, source),
        }
    }

    /// Deletes the objects with these keys in one transaction and returns what was
    /// deleted; keys that are not stored are skipped.
    pub fn delete_all(&mut self, keys: &[Key]) -> Result<Vec<Record>, StoreError> {
        match &mut self.backend {
            Backend::Sqlite(conn) => delete_all(conn, &self.sealer, keys),
            Backend::Etcd(etcd) => etcd.delete_all(&self.sealer, keys),
        }
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
        match &mut self.backend {
            Backend::Sqlite(conn) => set_status(conn, &key, status),
            Backend::Etcd(etcd) => etcd.set_status(&key, status),
        }
    }
}

fn put_all(
    conn: &mut Connection,
    sealer: &Sealer,
    incoming: Vec<Incoming>,
    source: Option<&str>,
) -> Result<Vec<(Record, PutOutcome)>, StoreError> {
    // IMMEDIATE takes the write lock up front, so the reads below cannot go stale
    // under another writer. Taking it writes nothing to disk by itself.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context(|| "cannot start a transaction".to_string())?;
    let mut results = Vec::with_capacity(incoming.len());
    for item in incoming {
        let existing = select_one(&tx, sealer, &item.key)?;
        results.push(apply_one(&tx, sealer, item, existing, source)?);
    }
    tx.commit()
        .context(|| "cannot commit applied objects".to_string())?;
    Ok(results)
}

fn delete_all(
    conn: &mut Connection,
    sealer: &Sealer,
    keys: &[Key],
) -> Result<Vec<Record>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context(|| "cannot start a transaction".to_string())?;
    let mut deleted = Vec::new();
    for key in keys {
        let Some(record) = select_one(&tx, sealer, key)? else {
            continue;
        };
        tx.prepare_cached("DELETE FROM objects WHERE kind = ?1 AND namespace = ?2 AND name = ?3")
            .and_then(|mut stmt| stmt.execute(params![key.kind, key.namespace, key.name]))
            .context(|| format!("cannot delete {}", describe(key)))?;
        deleted.push(record);
    }
    tx.commit()
        .context(|| "cannot commit deletions".to_string())?;
    Ok(deleted)
}

fn set_status(conn: &mut Connection, key: &Key, status: &Value) -> Result<bool, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context(|| "cannot start a transaction".to_string())?;
    let stored: Option<Option<String>> = tx
        .prepare_cached(
            "SELECT status FROM objects WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
        )
        .and_then(|mut stmt| {
            stmt.query_row(params![key.kind, key.namespace, key.name], |row| row.get(0))
                .optional()
        })
        .context(|| format!("cannot read the status of {}", describe(key)))?;
    let Some(stored) = stored else {
        return Ok(false);
    };
    if let Some(text) = stored {
        if parse_json(&text, || format!("status of {}", describe(key)))? == *status {
            return Ok(false);
        }
    }
    write_status(&tx, key, status)?;
    tx.commit()
        .context(|| format!("cannot commit the status of {}", describe(key)))?;
    Ok(true)
}

/// Stores `status` as the object's status, whatever it was.
pub(super) fn write_status(conn: &Connection, key: &Key, status: &Value) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE objects SET status = ?4 WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            key.kind,
            key.namespace,
            key.name,
            status.to_string()
        ])
    })
    .context(|| format!("cannot store the status of {}", describe(key)))?;
    Ok(())
}

impl Store {
    /// Seals again every object of a sealed kind that is in clear or sealed with an older
    /// key. Returns how many changed; with nothing to do it writes nothing.
    pub(super) fn reseal(&mut self) -> Result<usize, StoreError> {
        let rewritten = match &mut self.backend {
            Backend::Sqlite(conn) => reseal(conn, &self.sealer)?,
            Backend::Etcd(etcd) => etcd.reseal(&self.sealer)?,
        };
        if rewritten > 0 {
            log::info!("sealed {rewritten} stored object(s) with the current key");
        }
        Ok(rewritten)
    }
}

/// Seals again on SQLite, then checkpoints the WAL so no old copy stays in it.
fn reseal(conn: &mut Connection, sealer: &Sealer) -> Result<usize, StoreError> {
    let tx = conn
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
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .context(|| "cannot checkpoint the WAL after sealing".to_string())?;
    }
    Ok(rewritten)
}

/// Applies one object on SQLite: writes only when it is created or changed (or only
/// its source changed).
fn apply_one(
    conn: &Connection,
    sealer: &Sealer,
    item: Incoming,
    existing: Option<Record>,
    source: Option<&str>,
) -> Result<(Record, PutOutcome), StoreError> {
    let Decision {
        record,
        outcome,
        write,
    } = decide(item, existing, source)?;
    let record = match write {
        Write::Insert => {
            let record = stamp(record, next_revision(conn)?);
            insert(conn, sealer, &record)?;
            record
        }
        Write::Update => {
            let record = stamp(record, next_revision(conn)?);
            update(conn, sealer, &record)?;
            record
        }
        Write::SourceOnly => {
            update_source(conn, &record)?;
            record
        }
        Write::Nothing => record,
    };
    Ok((record, outcome))
}

/// Bumps and returns the global revision (the next `resourceVersion`).
pub(super) fn next_revision(conn: &Connection) -> Result<i64, StoreError> {
    conn.prepare_cached("UPDATE revision SET value = value + 1 WHERE id = 1 RETURNING value")
        .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
        .context(|| "cannot advance the revision counter".to_string())
}

pub(super) fn insert(
    conn: &Connection,
    sealer: &Sealer,
    record: &Record,
) -> Result<(), StoreError> {
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

#[cfg(test)]
#[path = "objects_tests.rs"]
mod tests;
