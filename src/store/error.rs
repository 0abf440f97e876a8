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
