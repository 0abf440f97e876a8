//! Opening the database: connection settings and schema migrations.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::error::SqliteContext;
use super::sealing::Sealer;
use super::{Backend, Store, StoreError};

/// Schema migrations, applied in order. `PRAGMA user_version` holds how many have been
/// applied. Never edit an entry once released; append a new one instead.
const MIGRATIONS: &[&str] = &[
    // 1: objects, the global revision counter, and a small key/value table.
    "CREATE TABLE objects (
        kind TEXT NOT NULL,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        uid TEXT NOT NULL UNIQUE,
        generation INTEGER NOT NULL,
        resource_version INTEGER NOT NULL,
        creation_timestamp TEXT NOT NULL,
        source TEXT,
        object TEXT NOT NULL,
        status TEXT,
        PRIMARY KEY (kind, namespace, name)
    ) WITHOUT ROWID;
    CREATE INDEX objects_by_source ON objects (source);
    CREATE TABLE revision (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        value INTEGER NOT NULL
    );
    INSERT INTO revision (id, value) VALUES (1, 0);
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;",
    // 2: which pod holds which address of the node's pod network (issue 13).
    "CREATE TABLE pod_addresses (
        pod_uid TEXT PRIMARY KEY,
        address TEXT NOT NULL UNIQUE
    ) WITHOUT ROWID;",
];

/// How long a statement waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl Store {
    /// Opens (creating if missing) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .context(|| format!("cannot open database {}", path.display()))?;
        let label = format!("database {}", path.display());
        configure(&conn, &label, true)?;
        migrate(&conn, &label, MIGRATIONS)?;
        log::debug!("opened {label}");
        Ok(Store {
            backend: Backend::Sqlite(conn),
            sealer: Sealer::plaintext(),
        })
    }

    /// Opens the database at `path` as [`Store::open`] does, readable by its owner only,
    /// with Secrets sealed by `sealer`. Rows stored in clear or with an older key are
    /// sealed again with the current key right away.
    pub fn open_sealed(path: &Path, sealer: Sealer) -> Result<Store, StoreError> {
        make_private(path)?;
        let mut store = Store::open(path)?;
        store.sealer = sealer;
        make_private(path)?;
        store.reseal()?;
        Ok(store)
    }

    /// A throwaway in-memory store, for tests.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory()
            .context(|| "cannot open in-memory database".to_string())?;
        let label = "in-memory database".to_string();
        configure(&conn, &label, false)?;
        migrate(&conn, &label, MIGRATIONS)?;
        Ok(Store {
            backend: Backend::Sqlite(conn),
            sealer: Sealer::plaintext(),
        })
    }
}

/// Creates the database file with mode 0600 if it is missing and takes group and other
/// permissions away from it and its WAL and shared-memory files (SQLite gives those the
/// database file's mode when it creates them).
fn make_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io = |what: &Path, source: std::io::Error| StoreError::Corrupt {
        what: format!("database file {}", what.display()),
        reason: format!("cannot make it private: {source}"),
    };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io(path, e))?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = Path::new(&name);
        match std::fs::metadata(file) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| io(file, e))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(file, e)),
        }
    }
    Ok(())
}

/// Checks the file is a database this binary understands, then sets the connection up.
///
/// The version check comes before anything that could write (switching to WAL rewrites
/// the header), so a database from a newer berth is left exactly as it was.
fn configure(conn: &Connection, label: &str, use_wal: bool) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)
        .context(|| format!("cannot set busy timeout on {label}"))?;
    let found = user_version(conn, label)?;
    let supported = MIGRATIONS.len() as i64;
    if found > supported {
        return Err(StoreError::TooNew { found, supported });
    }
    if use_wal {
        // WAL lets readers run while the agent writes, and with synchronous=NORMAL a
        // commit costs one fsync at checkpoint rather than one per transaction; a power
        // cut may lose the last commits but never corrupts the file.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .context(|| format!("cannot switch {label} to WAL mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            log::warn!("{label} stays in journal mode {mode}; WAL is not available");
        }
    }
    // A small page cache: the store holds a few hundred objects on a board, and the
    // default (2 MB) would be most of the agent's memory.
    conn.execute_batch(
        // secure_delete: freed pages are zeroed, so a deleted or re-sealed Secret leaves
        // no readable copy in the file.
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -256; \
         PRAGMA secure_delete = ON;",
    )
    .context(|| format!("cannot configure {label}"))?;
    Ok(())
}

/// Reads `PRAGMA user_version`, turning "not a database" into a clear error.
fn user_version(conn: &Connection, label: &str) -> Result<i64, StoreError> {
    match conn.query_row("PRAGMA user_version", [], |row| row.get(0)) {
        Ok(version) => Ok(version),
        Err(err) if err.sqlite_error_code() == Some(ErrorCode::NotADatabase) => {
            Err(StoreError::Corrupt {
                what: label.to_string(),
                reason: "the file is not a SQLite database".to_string(),
            })
        }
        Err(source) => Err(StoreError::Sqlite {
            context: format!("cannot read the schema version of {label}"),
            source,
        }),
    }
}

/// Applies the migrations that the database has not seen yet, each in its own
/// transaction together with the bump of `user_version`, so a crash in the middle leaves
/// the schema at a well-defined version.
fn migrate(conn: &Connection, label: &str, migrations: &[&str]) -> Result<(), StoreError> {
    let current = user_version(conn, label)?;
    let supported = migrations.len() as i64;
    if current > supported {
        return Err(StoreError::TooNew {
            found: current,
            supported,
        });
    }
    for (index, sql) in migrations.iter().enumerate().skip(current as usize) {
        let version = index as i64 + 1;
        let tx = conn
            .unchecked_transaction()
            .context(|| format!("cannot start migration {version} of {label}"))?;
        tx.execute_batch(sql)
            .context(|| format!("migration {version} of {label} failed"))?;
        // PRAGMA does not take bound parameters; `version` is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {version}"))
            .context(|| format!("cannot record migration {version} of {label}"))?;
        tx.commit()
            .context(|| format!("cannot commit migration {version} of {label}"))?;
        log::info!("migrated {label} to schema version {version}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user_version_of(path: &Path) -> i64 {
        let conn = Connection::open(path).unwrap();
        conn.query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn new_file_gets_the_latest_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        Store::open(&path).unwrap();
        assert_eq!(user_version_of(&path), MIGRATIONS.len() as i64);
        let conn = Connection::open(&path).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn reopening_keeps_data_and_applies_nothing_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let mut store = Store::open(&path).unwrap();
        let object =
            json!({"kind": "ConfigMap", "metadata": {"name": "a", "namespace": "default"}});
        store.put_all(vec![object], None).unwrap();
        drop(store);
        // Migration 1 has no IF NOT EXISTS, so running it again would fail here.
        let store = Store::open(&path).unwrap();
        assert!(store.get("ConfigMap", "default", "a").unwrap().is_some());
    }

    #[test]
    fn pending_migrations_are_applied_to_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let conn = Connection::open(&path).unwrap();
        let first = ["CREATE TABLE things (name TEXT NOT NULL)"];
        migrate(&conn, "test", &first).unwrap();
        conn.execute("INSERT INTO things (name) VALUES ('kept')", [])
            .unwrap();
        let both = [
            first[0],
            "ALTER TABLE things ADD COLUMN size INTEGER NOT NULL DEFAULT 7",
        ];
        migrate(&conn, "test", &both).unwrap();
        let (name, size): (String, i64) = conn
            .query_row("SELECT name, size FROM things", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .unwrap();
        assert_eq!((name.as_str(), size), ("kept", 7));
        assert_eq!(user_version_of(&path), 2);
    }

    #[test]
    fn failed_migration_leaves_the_previous_version() {
        let conn = Connection::open_in_memory().unwrap();
        let migrations = ["CREATE TABLE a (x)", "CREATE TABLE b (x); THIS IS NOT SQL"];
        let err = migrate(&conn, "test", &migrations).unwrap_err();
        assert!(
            err.to_string().contains("migration 2 of test failed"),
            "{err}"
        );
        assert_eq!(user_version(&conn, "test").unwrap(), 1);
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'b'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0);
    }

    #[test]
    fn newer_schema_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let too_new = MIGRATIONS.len() as i64 + 1;
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(&format!("PRAGMA user_version = {too_new}"))
                .unwrap();
        }
        let before = std::fs::read(&path).unwrap();
        let err = Store::open(&path).err().unwrap();
        assert!(
            matches!(err, StoreError::TooNew { found, supported }
                if found == too_new && supported == MIGRATIONS.len() as i64),
            "{err}"
        );
        assert!(err.to_string().contains("newer than this berth supports"));
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn garbage_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let garbage = b"this is not a database, just some text that is long enough".repeat(100);
        std::fs::write(&path, &garbage).unwrap();
        let err = Store::open(&path).err().unwrap();
        let message = err.to_string();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("not a SQLite database"), "{message}");
        assert_eq!(std::fs::read(&path).unwrap(), garbage);
    }
}
