//! A small key/value table for the agent's own bookkeeping (e.g. node name, last sync).

use rusqlite::{params, OptionalExtension};

use super::error::SqliteContext;
use super::{Store, StoreError};

impl Store {
    /// Stores `value` under `key` unless it is already there. Returns whether it wrote.
    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<bool, StoreError> {
        if self.get_meta(key)?.as_deref() == Some(value) {
            return Ok(false);
        }
        self.conn
            .prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut stmt| stmt.execute(params![key, value]))
            .context(|| format!("cannot store meta {key:?}"))?;
        Ok(true)
    }

    pub fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")
            .and_then(|mut stmt| stmt.query_row(params![key], |row| row.get(0)).optional())
            .context(|| format!("cannot read meta {key:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
