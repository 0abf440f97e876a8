//! A small key/value table for the agent's own bookkeeping (e.g. node name, last sync).

use rusqlite::{params, OptionalExtension};

use super::error::SqliteContext;
use super::{Backend, Store, StoreError};

impl Store {
    /// How many rows this store has inserted, updated or deleted since it was opened
    /// (SQLite's total changes; the store is its file's only writer). Equal counts mean
    /// nothing was written in between: what is computed from the store need not be again.
    /// On etcd: the newest revision this store has seen (writers elsewhere move it too).
    pub fn change_count(&self) -> u64 {
        match &self.backend {
            Backend::Sqlite(conn) => conn.total_changes(),
            Backend::Etcd(etcd) => etcd.last_revision(),
        }
    }

    /// Stores `value` under `key` unless it is already there. Returns whether it wrote.
    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<bool, StoreError> {
        if self.get_meta(key)?.as_deref() == Some(value) {
            return Ok(false);
        }
        let conn = match &self.backend {
            Backend::Sqlite(conn) => conn,
            Backend::Etcd(etcd) => return etcd.set_meta(key, value).map(|()| true),
        };
        conn.prepare_cached(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .and_then(|mut stmt| stmt.execute(params![key, value]))
        .context(|| format!("cannot store meta {key:?}"))?;
        Ok(true)
    }

    pub fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let conn = match &self.backend {
            Backend::Sqlite(conn) => conn,
            Backend::Etcd(etcd) => return etcd.get_meta(key),
        };
        conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")
            .and_then(|mut stmt| stmt.query_row(params![key], |row| row.get(0)).optional())
            .context(|| format!("cannot read meta {key:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_change_count_moves_with_writes_only() {
        let mut store = Store::open_in_memory().unwrap();
        let start = store.change_count();
        store.get_meta("k").unwrap();
        assert_eq!(store.change_count(), start);
        store.set_meta("k", "v").unwrap();
        let written = store.change_count();
        assert!(written > start);
        store.set_meta("k", "v").unwrap();
        assert_eq!(store.change_count(), written);
    }

    #[test]
    fn meta_round_trip_writes_only_on_change() {
        let mut store = Store::open_in_memory().unwrap();
        assert_eq!(store.get_meta("node").unwrap(), None);
        assert!(store.set_meta("node", "pi-1").unwrap());
        assert!(!store.set_meta("node", "pi-1").unwrap());
        assert_eq!(store.get_meta("node").unwrap().as_deref(), Some("pi-1"));
        assert!(store.set_meta("node", "pi-2").unwrap());
        assert_eq!(store.get_meta("node").unwrap().as_deref(), Some("pi-2"));
    }
}
