//! Moving a whole store to another backend (`berth coordinator migrate`): every object
//! with its identity (uid, generation, creation time), status and source, so that what
//! agents hold (pod uids, node credentials) stays valid. Only the `resourceVersion`s are
//! new: they belong to the store that hands them out.

use super::apply::stamp;
use super::error::SqliteContext;
use super::{objects, Backend, Record, Store, StoreError};

impl Store {
    /// Every stored object of every kind, internal kinds included, ordered by kind,
    /// namespace and name.
    pub fn export_all(&self) -> Result<Vec<Record>, StoreError> {
        match &self.backend {
            Backend::Sqlite(_) => {
                let conn = self.sqlite("objects")?;
                let kinds: Vec<String> = conn
                    .prepare("SELECT DISTINCT kind FROM objects ORDER BY kind")
                    .and_then(|mut stmt| stmt.query_map([], |row| row.get(0))?.collect())
                    .context(|| "cannot list the stored kinds".to_string())?;
                let mut all = Vec::new();
                for kind in kinds {
                    all.extend(self.list(&kind, None)?);
                }
                Ok(all)
            }
            Backend::Etcd(etcd) => etcd.export_all(&self.sealer),
        }
    }

    /// Writes `records` as they are into a store that holds no object yet; refuses a
    /// store that does, so that nothing there is overwritten.
    pub fn import_all(&mut self, records: Vec<Record>) -> Result<usize, StoreError> {
        if !self.export_all()?.is_empty() {
            return Err(StoreError::Invalid {
                reason: "the target store already holds objects; migrate into an empty one"
                    .to_string(),
            });
        }
        let count = records.len();
        match &mut self.backend {
            Backend::Sqlite(conn) => {
                let tx = conn
                    .transaction()
                    .context(|| "cannot start a transaction".to_string())?;
                for record in records {
                    let status = record.status.clone();
                    let record = stamp(record, objects::next_revision(&tx)?);
                    objects::insert(&tx, &self.sealer, &record)?;
                    if let Some(status) = status {
                        objects::write_status(&tx, &record.key(), &status)?;
                    }
                }
                tx.commit()
                    .context(|| "cannot commit the imported objects".to_string())?;
            }
            Backend::Etcd(etcd) => etcd.import_all(&self.sealer, records)?,
        }
        Ok(count)
    }
}
