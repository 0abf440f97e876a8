//! Desired state kept in SQLite (or, for redundant coordinators, in etcd).
//!
//! The store is deliberately generic: it keeps Kubernetes-shaped objects as JSON
//! (`serde_json::Value`) keyed by kind, namespace and name, and knows nothing about the
//! model types. It assigns the server-set metadata (`uid`, `generation`,
//! `resourceVersion`, `creationTimestamp`) the way an API server does.
//!
//! Two properties matter on a board:
//! - every multi-object change is one transaction, so a manifest is applied entirely or
//!   not at all, even across a power cut;
//! - an idle board writes nothing (SD cards wear out): reads never write, and a put,
//!   status or meta update that changes nothing issues no write statement at all.

mod addresses;
mod apply;
mod cache;
mod error;
pub mod etcd;
mod follow;
mod meta;
mod objects;
mod remote;
mod schema;
mod sealing;
mod transfer;

pub use apply::VersionCheck;
pub use error::StoreError;
pub use follow::{Change, Follower};
pub use remote::RemoteOptions;
pub use sealing::Sealer;

/// Creates a daemon's state dir if needed and makes it its owner's only (0700). A state
/// dir owned by another user is refused: whoever owns it could swap the database, the
/// key file or the images under us.
pub fn ensure_private_dir(dir: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!(
            "the state dir {} is owned by uid {}, not by this process's user (uid {me}); \
             refusing to use a directory another user controls",
            dir.display(),
            meta.uid()
        ));
    }
    if meta.permissions().mode() & 0o7777 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot restrict {}: {e}", dir.display()))?;
    }
    Ok(())
}

/// Where a daemon's Secrets key lives unless `--encryption-key-file` says otherwise.
pub fn default_key_file(state_dir: &std::path::Path) -> std::path::PathBuf {
    state_dir.join("secrets.key")
}

/// A daemon's desired state: an agent's (or a lone coordinator's) SQLite database, or
/// the objects of redundant coordinators in etcd ([`Store::open_etcd`]). Both backends
/// give the same answers; only SQLite keeps the agent's pod addresses.
pub struct Store {
    backend: Backend,
    /// Seals the objects of secret kinds before they are written.
    sealer: Sealer,
}

enum Backend {
    Sqlite(rusqlite::Connection),
    Etcd(Box<remote::EtcdObjects>),
}

impl Store {
    /// The SQLite connection, for what only the SQLite backend keeps.
    fn sqlite(&self, what: &str) -> Result<&rusqlite::Connection, StoreError> {
        match &self.backend {
            Backend::Sqlite(conn) => Ok(conn),
            Backend::Etcd(_) => Err(StoreError::Unsupported {
                what: what.to_string(),
            }),
        }
    }

    fn sqlite_mut(&mut self, what: &str) -> Result<&mut rusqlite::Connection, StoreError> {
        match &mut self.backend {
            Backend::Sqlite(conn) => Ok(conn),
            Backend::Etcd(_) => Err(StoreError::Unsupported {
                what: what.to_string(),
            }),
        }
    }

    /// Which backend this is, for messages: `sqlite` or `etcd`.
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Etcd(_) => "etcd",
        }
    }
}

/// One stored object with its server-set fields.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub kind: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub generation: i64,
    pub resource_version: i64,
    /// RFC 3339 UTC with seconds, e.g. `2026-11-28T08:00:00Z`.
    pub creation_timestamp: String,
    /// The manifest file that last applied the object, if it came from the manifests dir.
    pub source: Option<String>,
    /// The full object with `metadata.uid`, `generation`, `resourceVersion` (a string, as
    /// in Kubernetes) and `creationTimestamp` filled in. It never contains `status`.
    pub object: serde_json::Value,
    pub status: Option<serde_json::Value>,
}

/// What `put_all` did with one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    Configured,
    Unchanged,
}

impl PutOutcome {
    /// The word kubectl prints for this outcome.
    pub fn as_str(self) -> &'static str {
        match self {
            PutOutcome::Created => "created",
            PutOutcome::Configured => "configured",
            PutOutcome::Unchanged => "unchanged",
        }
    }
}

/// Identity of a stored object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Ord, PartialOrd)]
pub struct Key {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(kind: &str, namespace: &str, name: &str) -> Key {
        Key {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

impl Record {
    pub fn key(&self) -> Key {
        Key::new(&self.kind, &self.namespace, &self.name)
    }
}
