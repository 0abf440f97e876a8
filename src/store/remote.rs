//! The store's objects in etcd, for coordinators that share one fleet (issue 16).
//!
//! Layout under a prefix (`/berth/` by default), one key per object and one per status:
//!
//! - `<prefix>objects/<kind>/<namespace>/<name>`: JSON [`StoredObject`] (the object as
//!   text, sealed for secret kinds, plus uid, generation, creation time and source);
//! - `<prefix>status/<kind>/<namespace>/<name>`: the status as JSON, apart so that a
//!   status write leaves the object's `resourceVersion` alone, as on SQLite;
//! - `<prefix>meta/<key>`: the store's small key/value table.
//!
//! An object's `resourceVersion` is the etcd `mod_revision` of its key: the revision of
//! the transaction that last wrote it, so versions only grow, across every coordinator.
//! Every write is one transaction guarded by a compare on the `mod_revision` of each key
//! it read: read, decide (the pure [`super::apply`]), then write only if nothing changed
//! in between, and otherwise read and decide again.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::apply::{describe, parse_json, plan_batch, with_server_fields, Incoming, Write};
use super::cache::{ObjectCache, Stored};
use super::etcd::{
    Compare, CompareOp, EtcdClient, EtcdConfig, KeyRange, KeyValue, PutOptions, RangeOptions,
    ResponseHeader, Txn, TxnOp, TxnOpResponse, TxnResponse,
};
use super::follow::Follower;
use super::sealing::Sealer;
use super::{Key, PutOutcome, Record, StoreError};

/// Objects per transaction: etcd refuses a transaction with more than `--max-txn-ops`
/// (128 by default) operations in any of its lists, and each object takes up to two
/// (object and status key). More objects go in several transactions, each whole.
const TXN_KEYS: usize = 64;
const IMPORT_CHUNK: usize = TXN_KEYS;

/// How often a write is tried again when another writer changed what it read.
const ATTEMPTS: usize = 20;

/// How to reach the etcd that keeps a fleet's objects.
#[derive(Clone, Debug)]
pub struct RemoteOptions {
    pub etcd: EtcdConfig,
    /// Every key berth writes starts with it, so one etcd can hold other data (or
    /// another fleet under another prefix).
    pub prefix: String,
}

impl RemoteOptions {
    pub const DEFAULT_PREFIX: &'static str = "/berth/";

    pub fn new(etcd: EtcdConfig) -> RemoteOptions {
        RemoteOptions {
            etcd,
            prefix: RemoteOptions::DEFAULT_PREFIX.to_string(),
        }
    }
}

/// The value of an object's key.
#[derive(Serialize, Deserialize)]
struct StoredObject {
    uid: String,
    generation: i64,
    #[serde(rename = "creationTimestamp")]
    creation_timestamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    /// The object's JSON as text; sealed for secret kinds.
    object: String,
}

pub(super) struct EtcdObjects {
    client: EtcdClient,
    /// To open the follower's client.
    config: EtcdConfig,
    prefix: String,
    /// The newest revision any answer carried ([`super::Store::change_count`]).
    last_revision: AtomicI64,
    /// The revision of the last write made through this store: reads from the cache
    /// wait until it holds that write.
    written: AtomicI64,
    /// Fed by a [`Follower`] when one runs; until then every read goes to etcd.
    cache: Arc<ObjectCache>,
}

impl EtcdObjects {
    /// Connects (checking that a member answers) with these options.
    pub fn connect(options: RemoteOptions) -> Result<EtcdObjects, StoreError> {
        if !options.prefix.starts_with('/') || !options.prefix.ends_with('/') {
            return Err(StoreError::Invalid {
                reason: format!(
                    "etcd key prefix {:?} must start and end with '/'",
                    options.prefix
                ),
            });
        }
        let client = EtcdClient::new(options.etcd.clone())?;
        let status = client.status()?;
        let objects = EtcdObjects {
            client,
            config: options.etcd,
            cache: Arc::new(ObjectCache::new(&options.prefix)),
            prefix: options.prefix,
            last_revision: AtomicI64::new(0),
            written: AtomicI64::new(0),
        };
        objects.saw(&status.header);
        Ok(objects)
    }

    pub fn client(&self) -> &EtcdClient {
        &self.client
    }

    pub fn last_revision(&self) -> u64 {
        u64::try_from(self.last_revision.load(Ordering::Relaxed)).unwrap_or(0)
    }

    fn saw(&self, header: &ResponseHeader) {
        self.last_revision
            .fetch_max(header.revision, Ordering::Relaxed);
    }

    fn txn(&self, txn: &Txn) -> Result<TxnResponse, StoreError> {
        let answer = self.client.txn(txn)?;
        self.saw(&answer.header);
        let ops = if answer.succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        if ops.iter().any(|op| !matches!(op, TxnOp::Range { .. })) {
            self.wrote(&answer.header);
        }
        Ok(answer)
    }

    fn wrote(&self, header: &ResponseHeader) {
        self.written.fetch_max(header.revision, Ordering::Relaxed);
    }

    fn written(&self) -> i64 {
        self.written.load(Ordering::Relaxed)
    }

    /// A follower to keep this store's cache current (one per store).
    pub fn follower(&self) -> Result<Follower, StoreError> {
        let client = EtcdClient::new(self.config.clone())?;
        Ok(Follower::new(
            client,
            self.prefix.clone(),
            Arc::clone(&self.cache),
        ))
    }

    pub fn get(&self, sealer: &Sealer, key: &Key) -> Result<Option<Record>, StoreError> {
        let found = match self.cache.get(&path_of(key)?, self.written()) {
            Some(found) => vec![found],
            None => self.read(std::slice::from_ref(key))?,
        };
        let Some(Some((object, status))) = found.into_iter().next() else {
            return Ok(None);
        };
        self.record(sealer, &object, status.as_ref()).map(Some)
    }

    pub fn list(
        &self,
        sealer: &Sealer,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<Vec<Record>, StoreError> {
        check_part("kind", kind)?;
        let mut path = format!("{kind}/");
        if let Some(namespace) = namespace {
            check_part("namespace", namespace)?;
            path.push_str(namespace);
            path.push('/');
        }
        let mut records = self.scan(sealer, &path)?;
        records.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(records)
    }

    pub fn list_by_source(&self, sealer: &Sealer, source: &str) -> Result<Vec<Record>, StoreError> {
        let mut records = self.scan(sealer, "")?;
        records.retain(|record| record.source.as_deref() == Some(source));
        records.sort_by_key(Record::key);
        Ok(records)
    }

    /// Every object whose path (`kind/namespace/name`) starts with `path`, with its
    /// status, both read in one transaction (one revision).
    fn scan(&self, sealer: &Sealer, path: &str) -> Result<Vec<Record>, StoreError> {
        if let Some(found) = self.cache.scan(path, self.written()) {
            return found
                .iter()
                .map(|(object, status)| self.record(sealer, object, status.as_ref()))
                .collect();
        }
        let objects = format!("{}objects/{path}", self.prefix);
        let statuses = format!("{}status/{path}", self.prefix);
        let answer = self.txn(&Txn {
            compare: Vec::new(),
            success: vec![range_op(&objects), range_op(&statuses)],
            failure: Vec::new(),
        })?;
        let mut ranges = answer.responses.into_iter().map(|response| match response {
            TxnOpResponse::Range(range) => range.kvs,
            _ => Vec::new(),
        });
        let objects = ranges.next().unwrap_or_default();
        let statuses: HashMap<Vec<u8>, KeyValue> = ranges
            .next()
            .unwrap_or_default()
            .into_iter()
            .map(|kv| (kv.key.clone(), kv))
            .collect();
        let status_of = |object: &KeyValue| {
            let suffix = object.key.get(self.prefix.len() + "objects/".len()..)?;
            let mut key = format!("{}status/", self.prefix).into_bytes();
            key.extend_from_slice(suffix);
            statuses.get(&key)
        };
        objects
            .iter()
            .map(|object| self.record(sealer, object, status_of(object)))
            .collect()
    }

    /// The object and status keys of `keys`, read in one transaction.
    fn read(&self, keys: &[Key]) -> Result<Vec<Option<Stored>>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(TXN_KEYS) {
            out.extend(self.read_chunk(chunk)?);
        }
        Ok(out)
    }

    fn read_chunk(&self, keys: &[Key]) -> Result<Vec<Option<Stored>>, StoreError> {
        let mut success = Vec::with_capacity(keys.len() * 2);
        for key in keys {
            success.push(TxnOp::get(&self.object_key(key)?));
            success.push(TxnOp::get(&self.status_key(key)?));
        }
        let answer = self.txn(&Txn {
            compare: Vec::new(),
            success,
            failure: Vec::new(),
        })?;
        let mut found = answer.responses.into_iter().map(|response| match response {
            TxnOpResponse::Range(mut range) => range.kvs.pop(),
            _ => None,
        });
        let mut out = Vec::with_capacity(keys.len());
        for _ in keys {
            let object = found.next().flatten();
            let status = found.next().flatten();
            out.push(object.map(|object| (object, status)));
        }
        Ok(out)
    }

    /// Applies `incoming` in one transaction, or, past [`TXN_KEYS`] objects, in several
    /// (each whole, in order).
    pub fn put_all(
        &self,
        sealer: &Sealer,
        incoming: Vec<Incoming>,
        source: Option<&str>,
    ) -> Result<Vec<(Record, PutOutcome)>, StoreError> {
        let mut results = Vec::with_capacity(incoming.len());
        let mut batch: Vec<Incoming> = Vec::new();
        let mut batch_keys: HashSet<Key> = HashSet::new();
        for item in incoming {
            if !batch_keys.contains(&item.key) && batch_keys.len() == TXN_KEYS {
                results.extend(self.put_batch(sealer, std::mem::take(&mut batch), source)?);
                batch_keys.clear();
            }
            batch_keys.insert(item.key.clone());
            batch.push(item);
        }
        if !batch.is_empty() {
            results.extend(self.put_batch(sealer, batch, source)?);
        }
        Ok(results)
    }

    /// Applies objects of at most [`TXN_KEYS`] keys in one transaction: reads what the
    /// keys hold, decides, and writes only if none of them changed meanwhile.
    ///
    /// The first reading comes from the cache, which saves a round trip when it is
    /// current; when it is not, the compare fails and the next attempt reads etcd. A
    /// decision to write nothing is always checked against etcd itself: the cache may
    /// not hold another coordinator's write yet, and no compare would catch that.
    fn put_batch(
        &self,
        sealer: &Sealer,
        incoming: Vec<Incoming>,
        source: Option<&str>,
    ) -> Result<Vec<(Record, PutOutcome)>, StoreError> {
        let mut keys: Vec<Key> = Vec::new();
        for item in &incoming {
            if !keys.contains(&item.key) {
                keys.push(item.key.clone());
            }
        }
        for attempt in 0..ATTEMPTS {
            let (found, from_cache) = self.read_for_write(&keys, attempt)?;
            let mut compare = Vec::with_capacity(keys.len());
            let mut current: HashMap<Key, Option<Record>> = HashMap::new();
            for (key, found) in keys.iter().zip(found) {
                let revision = found.as_ref().map_or(0, |(kv, _)| kv.mod_revision);
                compare.push(Compare::mod_revision(
                    &self.object_key(key)?,
                    CompareOp::Equal,
                    revision,
                ));
                let record = match found {
                    Some((object, status)) => {
                        Some(self.record(sealer, &object, status.as_ref())?)
                    }
                    None => None,
                };
                current.insert(key.clone(), record);
            }
            let plan = match plan_batch(&incoming, current, source) {
                Ok(plan) => plan,
                // A conflict seen in a stale cache may be none: decide again on etcd's
                // answer.
                Err(_) if from_cache => continue,
                Err(err) => return Err(err),
            };
            if plan.writes.is_empty() {
                if from_cache {
                    continue;
                }
                return Ok(plan.results.into_iter().map(|(_, r, o)| (r, o)).collect());
            }
            if let Some(revision) = self.write_batch(sealer, &keys, compare, &plan.writes)? {
                return Ok(plan
                    .results
                    .into_iter()
                    .map(|(key, record, outcome)| match plan.writes.get(&key) {
                        Some(_) => (restamp(record, revision), outcome),
                        None => (record, outcome),
                    })
                    .collect());
            }
        }
        Err(contended("apply"))
    }

    /// What `keys` hold, for a write's attempt: from the cache on the first attempt if
    /// it can serve (then `true`), from etcd otherwise.
    fn read_for_write(
        &self,
        keys: &[Key],
        attempt: usize,
    ) -> Result<(Vec<Option<Stored>>, bool), StoreError> {
        if attempt == 0 {
            let mut found = Vec::with_capacity(keys.len());
            for key in keys {
                match self.cache.get(&path_of(key)?, self.written()) {
                    Some(stored) => found.push(stored),
                    None => return Ok((self.read(keys)?, false)),
                }
            }
            return Ok((found, true));
        }
        Ok((self.read(keys)?, false))
    }

    /// Writes the planned records of `keys` in one transaction guarded by `compare`;
    /// returns the transaction's revision, or `None` when a key changed meanwhile.
    fn write_batch(
        &self,
        sealer: &Sealer,
        keys: &[Key],
        compare: Vec<Compare>,
        writes: &HashMap<Key, (Record, Write)>,
    ) -> Result<Option<i64>, StoreError> {
        let mut success = Vec::with_capacity(writes.len());
        for key in keys {
            if let Some((record, _)) = writes.get(key) {
                success.push(TxnOp::put(
                    &self.object_key(key)?,
                    &stored_value(sealer, record)?,
                    PutOptions::default(),
                ));
            }
        }
        let answer = self.txn(&Txn {
            compare,
            success,
            failure: Vec::new(),
        })?;
        Ok(answer.succeeded.then_some(answer.header.revision))
    }

    /// Deletes `keys` in one transaction, or, past [`TXN_KEYS`] keys, in several.
    pub fn delete_all(&self, sealer: &Sealer, keys: &[Key]) -> Result<Vec<Record>, StoreError> {
        let mut unique: Vec<Key> = Vec::new();
        let mut seen: HashSet<&Key> = HashSet::new();
        for key in keys {
            if seen.insert(key) {
                unique.push(key.clone());
            }
        }
        let mut deleted = Vec::new();
        for chunk in unique.chunks(TXN_KEYS) {
            deleted.extend(self.delete_batch(sealer, chunk)?);
        }
        Ok(deleted)
    }

    /// Deletes what `unique` holds if none of it changed meanwhile; like
    /// [`EtcdObjects::put_batch`], the first reading may come from the cache, and finding
    /// nothing to delete there is checked against etcd.
    fn delete_batch(&self, sealer: &Sealer, unique: &[Key]) -> Result<Vec<Record>, StoreError> {
        for attempt in 0..ATTEMPTS {
            let (found, from_cache) = self.read_for_write(unique, attempt)?;
            let mut txn = Txn::default();
            let mut deleted = Vec::new();
            for (key, found) in unique.iter().zip(found) {
                let Some((object, status)) = found else {
                    continue;
                };
                let object_key = self.object_key(key)?;
                txn.compare.push(Compare::mod_revision(
                    &object_key,
                    CompareOp::Equal,
                    object.mod_revision,
                ));
                txn.success.push(TxnOp::delete(&object_key));
                txn.success.push(TxnOp::delete(&self.status_key(key)?));
                deleted.push(self.record(sealer, &object, status.as_ref())?);
            }
            if deleted.is_empty() {
                if from_cache {
                    continue;
                }
                return Ok(deleted);
            }
            if self.txn(&txn)?.succeeded {
                return Ok(deleted);
            }
        }
        Err(contended("delete"))
    }

    pub fn set_status(&self, key: &Key, status: &Value) -> Result<bool, StoreError> {
        let status_key = self.status_key(key)?;
        for _ in 0..ATTEMPTS {
            let Some(Some((object, stored))) =
                self.read(std::slice::from_ref(key))?.into_iter().next()
            else {
                return Ok(false);
            };
            if let Some(stored) = &stored {
                if parse_status(key, &stored.value)? == *status {
                    return Ok(false);
                }
            }
            let txn = Txn {
                compare: vec![
                    // The same object (not deleted and created again) ...
                    Compare::create_revision(
                        &self.object_key(key)?,
                        CompareOp::Equal,
                        object.create_revision,
                    ),
                    // ... and the status it had.
                    Compare::mod_revision(
                        &status_key,
                        CompareOp::Equal,
                        stored.map_or(0, |kv| kv.mod_revision),
                    ),
                ],
                success: vec![TxnOp::put(
                    &status_key,
                    status.to_string().as_bytes(),
                    PutOptions::default(),
                )],
                failure: Vec::new(),
            };
            if self.txn(&txn)?.succeeded {
                return Ok(true);
            }
        }
        Err(contended(&format!("status of {}", describe(key))))
    }

    /// Seals again the objects of sealed kinds that are in clear or sealed with an older
    /// key; an object another coordinator writes meanwhile is left to it.
    pub fn reseal(&self, sealer: &Sealer) -> Result<usize, StoreError> {
        let mut rewritten = 0;
        for kind in sealer.sealed_kinds() {
            let prefix = format!("{}objects/{kind}/", self.prefix);
            let answer = self.client.range(
                &KeyRange::prefix(prefix.as_bytes()),
                &RangeOptions::default(),
            )?;
            self.saw(&answer.header);
            for kv in answer.kvs {
                let key = self.key_of(&kv.key)?;
                let mut stored = parse_stored(&key, &kv.value)?;
                if !sealer.needs_reseal(kind, &stored.object) {
                    continue;
                }
                stored.object = sealer.seal(&key, sealer.unseal(&key, stored.object)?)?;
                let txn = Txn {
                    compare: vec![Compare::mod_revision(
                        &kv.key,
                        CompareOp::Equal,
                        kv.mod_revision,
                    )],
                    success: vec![TxnOp::put(
                        &kv.key,
                        &to_json(&stored)?,
                        PutOptions::default(),
                    )],
                    failure: Vec::new(),
                };
                if self.txn(&txn)?.succeeded {
                    rewritten += 1;
                }
            }
        }
        Ok(rewritten)
    }

    /// Every object, ordered by kind, namespace and name.
    pub fn export_all(&self, sealer: &Sealer) -> Result<Vec<Record>, StoreError> {
        let mut records = self.scan(sealer, "")?;
        records.sort_by_key(Record::key);
        Ok(records)
    }

    /// Writes `records` as they are, each only where no object is yet, a few dozen per
    /// transaction (etcd's default limit is 128 operations).
    pub fn import_all(&self, sealer: &Sealer, records: Vec<Record>) -> Result<(), StoreError> {
        for chunk in records.chunks(IMPORT_CHUNK) {
            let mut txn = Txn::default();
            for record in chunk {
                let key = record.key();
                let object_key = self.object_key(&key)?;
                txn.compare
                    .push(Compare::create_revision(&object_key, CompareOp::Equal, 0));
                txn.success.push(TxnOp::put(
                    &object_key,
                    &stored_value(sealer, record)?,
                    PutOptions::default(),
                ));
                if let Some(status) = &record.status {
                    txn.success.push(TxnOp::put(
                        &self.status_key(&key)?,
                        status.to_string().as_bytes(),
                        PutOptions::default(),
                    ));
                }
            }
            if !self.txn(&txn)?.succeeded {
                return Err(StoreError::Invalid {
                    reason: "objects appeared in the target store during the migration".to_string(),
                });
            }
        }
        Ok(())
    }

    pub fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let answer = self.client.range(
            &KeyRange::key(self.meta_key(key).as_bytes()),
            &RangeOptions::default(),
        )?;
        self.saw(&answer.header);
        let Some(kv) = answer.kvs.into_iter().next() else {
            return Ok(None);
        };
        String::from_utf8(kv.value)
            .map(Some)
            .map_err(|_| StoreError::Corrupt {
                what: format!("meta {key:?} in etcd"),
                reason: "not UTF-8".to_string(),
            })
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let answer = self.client.put(
            self.meta_key(key).as_bytes(),
            value.as_bytes(),
            &PutOptions::default(),
        )?;
        self.saw(&answer.header);
        self.wrote(&answer.header);
        Ok(())
    }

    fn meta_key(&self, key: &str) -> String {
        format!("{}meta/{key}", self.prefix)
    }

    fn object_key(&self, key: &Key) -> Result<Vec<u8>, StoreError> {
        Ok(format!("{}objects/{}", self.prefix, path_of(key)?).into_bytes())
    }

    fn status_key(&self, key: &Key) -> Result<Vec<u8>, StoreError> {
        Ok(format!("{}status/{}", self.prefix, path_of(key)?).into_bytes())
    }

    /// The identity behind an object's etcd key.
    fn key_of(&self, etcd_key: &[u8]) -> Result<Key, StoreError> {
        let corrupt = || StoreError::Corrupt {
            what: format!(
                "etcd key {:?}",
                String::from_utf8_lossy(&etcd_key[..etcd_key.len().min(200)])
            ),
            reason: "not <prefix>objects/<kind>/<namespace>/<name>".to_string(),
        };
        let path = std::str::from_utf8(etcd_key)
            .ok()
            .and_then(|key| key.strip_prefix(&self.prefix))
            .and_then(|key| key.strip_prefix("objects/"))
            .ok_or_else(corrupt)?;
        let mut parts = path.split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(kind), Some(namespace), Some(name), None)
                if !kind.is_empty() && !name.is_empty() =>
            {
                Ok(Key::new(kind, namespace, name))
            }
            _ => Err(corrupt()),
        }
    }

    /// The record of an object's key-value (and its status's).
    fn record(
        &self,
        sealer: &Sealer,
        object: &KeyValue,
        status: Option<&KeyValue>,
    ) -> Result<Record, StoreError> {
        let key = self.key_of(&object.key)?;
        let stored = parse_stored(&key, &object.value)?;
        let text = sealer.unseal(&key, stored.object)?;
        let content = parse_json(&text, || format!("stored {}", describe(&key)))?;
        let status = status.map(|kv| parse_status(&key, &kv.value)).transpose()?;
        let record = Record {
            kind: key.kind,
            namespace: key.namespace,
            name: key.name,
            uid: stored.uid,
            generation: stored.generation,
            resource_version: object.mod_revision,
            creation_timestamp: stored.creation_timestamp,
            source: stored.source,
            object: Value::Null,
            status,
        };
        Ok(with_server_fields(record, content))
    }
}

impl super::Store {
    /// A store whose objects live in etcd under `options.prefix`, with Secrets sealed by
    /// `sealer` (every coordinator of a fleet needs the same key file). Fails unless a
    /// member answers. Objects stored in clear or with an older key are sealed again.
    pub fn open_etcd(options: RemoteOptions, sealer: Sealer) -> Result<super::Store, StoreError> {
        let objects = EtcdObjects::connect(options)?;
        let mut store = super::Store {
            backend: super::Backend::Etcd(Box::new(objects)),
            sealer,
        };
        store.reseal()?;
        Ok(store)
    }

    /// A follower that keeps this store's cache of etcd current while it runs
    /// ([`Follower::run`]); `None` on SQLite. Without one, every read goes to etcd.
    pub fn follower(&self) -> Result<Option<Follower>, StoreError> {
        match &self.backend {
            super::Backend::Etcd(objects) => objects.follower().map(Some),
            super::Backend::Sqlite(_) => Ok(None),
        }
    }

    /// The etcd client behind an etcd store (for leader election); `None` on SQLite.
    pub fn etcd_client(&self) -> Option<&EtcdClient> {
        match &self.backend {
            super::Backend::Etcd(objects) => Some(objects.client()),
            super::Backend::Sqlite(_) => None,
        }
    }
}

/// The value stored for `record`.
fn stored_value(sealer: &Sealer, record: &Record) -> Result<Vec<u8>, StoreError> {
    let stored = StoredObject {
        uid: record.uid.clone(),
        generation: record.generation,
        creation_timestamp: record.creation_timestamp.clone(),
        source: record.source.clone(),
        object: sealer.seal(&record.key(), record.object.to_string())?,
    };
    to_json(&stored)
}

fn to_json(stored: &StoredObject) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(stored).map_err(|e| StoreError::Invalid {
        reason: format!("cannot encode an object for etcd: {e}"),
    })
}

/// A written record with the revision of the transaction that wrote it.
fn restamp(mut record: Record, revision: i64) -> Record {
    record.resource_version = revision;
    let content = std::mem::take(&mut record.object);
    with_server_fields(record, content)
}

fn parse_stored(key: &Key, value: &[u8]) -> Result<StoredObject, StoreError> {
    serde_json::from_slice(value).map_err(|e| StoreError::Corrupt {
        what: format!("stored {} in etcd", describe(key)),
        reason: format!("invalid JSON: {e}"),
    })
}

fn parse_status(key: &Key, value: &[u8]) -> Result<Value, StoreError> {
    serde_json::from_slice(value).map_err(|e| StoreError::Corrupt {
        what: format!("status of {} in etcd", describe(key)),
        reason: format!("invalid JSON: {e}"),
    })
}

/// `kind/namespace/name`, refusing parts that would make another key.
fn path_of(key: &Key) -> Result<String, StoreError> {
    check_part("kind", &key.kind)?;
    check_part("namespace", &key.namespace)?;
    check_part("name", &key.name)?;
    if key.kind.is_empty() || key.name.is_empty() {
        return Err(StoreError::Invalid {
            reason: format!("{}: an empty kind or name", describe(key)),
        });
    }
    Ok(format!("{}/{}/{}", key.kind, key.namespace, key.name))
}

fn check_part(what: &str, part: &str) -> Result<(), StoreError> {
    if part.contains('/') || part.contains('\0') {
        return Err(StoreError::Invalid {
            reason: format!("{what} {part:?} contains '/' or NUL"),
        });
    }
    Ok(())
}

fn range_op(prefix: &str) -> TxnOp {
    TxnOp::Range {
        range: KeyRange::prefix(prefix.as_bytes()),
        options: RangeOptions::default(),
    }
}

fn contended(what: &str) -> StoreError {
    StoreError::Contended {
        what: what.to_string(),
        attempts: ATTEMPTS,
    }
}
