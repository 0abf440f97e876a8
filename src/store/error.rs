//! Errors of the store.

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{context}: {source}")]
    Sqlite {
        context: String,
        source: rusqlite::Error,
    },
    #[error("{what} is corrupt: {reason}")]
    Corrupt { what: String, reason: String },
    #[error(
        "database schema version {found} is newer than this berth supports ({supported}); \
         upgrade berth or move the database aside"
    )]
    TooNew { found: i64, supported: i64 },
    #[error("{what} has no free address")]
    Exhausted { what: String },
    #[error("invalid object: {reason}")]
    Invalid { reason: String },
    #[error("secrets encryption key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("cannot seal {what}: {reason}")]
    Sealing { what: String, reason: String },
    /// A `resourceVersion` precondition failed: the object changed since the caller read
    /// it (Kubernetes' 409 Conflict).
    #[error("{}: the object has been modified; please apply your changes to the latest version and try again", super::apply::describe(key))]
    Conflict { key: super::Key },
    /// A create-only put found the object there already.
    #[error("{} already exists", super::apply::describe(key))]
    AlreadyExists { key: super::Key },
    /// The store's backend cannot do this (pod addresses live in an agent's SQLite only).
    #[error("{what} are not kept in this store's backend")]
    Unsupported { what: String },
    /// The distributed store did not answer, or answered something unusable.
    #[error("datastore: {source}")]
    Etcd {
        #[from]
        source: super::etcd::EtcdError,
    },
    /// Concurrent writers kept changing what a write depended on.
    #[error("{what}: still changing under concurrent writers after {attempts} attempts")]
    Contended { what: String, attempts: usize },
    #[error("cannot read random bytes for a uid from /dev/urandom: {source}")]
    Random { source: std::io::Error },
}

/// Attaches a short description of what was being done to a SQLite error.
pub(crate) trait SqliteContext<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, StoreError>;
}

impl<T> SqliteContext<T> for Result<T, rusqlite::Error> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Sqlite {
            context: context(),
            source,
        })
    }
}
