//! Desired state kept in SQLite.
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

mod error;
mod meta;
mod objects;
mod schema;

pub use error::StoreError;

/// The agent's SQLite database of desired state.
pub struct Store {
    conn: rusqlite::Connection,
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
