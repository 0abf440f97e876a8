use super::*;
use serde_json::json;
use std::path::Path;

fn pod(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": image}]}
    })
}

fn put_one(store: &mut Store, object: Value) -> (Record, PutOutcome) {
    let mut results = store.put_all(vec![object], None).unwrap();
    assert_eq!(results.len(), 1);
    results.remove(0)
}

#[test]
fn create_assigns_server_fields() {
    let mut store = Store::open_in_memory().unwrap();
    let (record, outcome) = put_one(&mut store, pod("web", "nginx:1"));
    assert_eq!(outcome, PutOutcome::Created);
    assert_eq!((record.generation, record.resource_version), (1, 1));
    assert_eq!(record.uid.len(), 36);
    assert_eq!(&record.uid[14..15], "4", "version 4 uuid: {}", record.uid);
    assert!(humantime::parse_rfc3339(&record.creation_timestamp).is_ok());
    assert!(record.creation_timestamp.ends_with('Z'));
    let metadata = &record.object["metadata"];
    assert_eq!(metadata["uid"], json!(record.uid));
    assert_eq!(metadata["generation"], json!(1));
    assert_eq!(metadata["resourceVersion"], json!("1"));
    assert_eq!(
        metadata["creationTimestamp"],
        json!(record.creation_timestamp)
    );
    assert_eq!(store.get("Pod", "default", "web").unwrap(), Some(record));
}

#[test]
fn unchanged_object_keeps_everything_and_ignores_server_fields() {
    let mut store = Store::open_in_memory().unwrap();
    let (created, _) = put_one(&mut store, pod("web", "nginx:1"));
    let mut again = pod("web", "nginx:1");
    again["metadata"]["uid"] = json!("something-else");
    again["metadata"]["resourceVersion"] = json!("999");
    again["metadata"]["generation"] = json!(7);
    again["status"] = json!({"phase": "Running"});
    let (record, outcome) = put_one(&mut store, again);
    assert_eq!(outcome, PutOutcome::Unchanged);
    assert_eq!(record, created);
    // Putting back what `get` returned is also a no-op.
    let (_, outcome) = put_one(&mut store, created.object.clone());
    assert_eq!(outcome, PutOutcome::Unchanged);
}

#[test]
fn label_change_bumps_resource_version_only() {
    let mut store = Store::open_in_memory().unwrap();
    let (created, _) = put_one(&mut store, pod("web", "nginx:1"));
    let mut relabelled = pod("web", "nginx:1");
    relabelled["metadata"]["labels"]["tier"] = json!("front");
    let (record, outcome) = put_one(&mut store, relabelled);
    assert_eq!(outcome, PutOutcome::Configured);
    assert_eq!(record.generation, 1);
    assert_eq!(record.resource_version, created.resource_version + 1);
    assert_eq!(record.uid, created.uid);
    assert_eq!(record.creation_timestamp, created.creation_timestamp);
    assert_eq!(record.object["metadata"]["labels"]["tier"], json!("front"));
    assert_eq!(record.object["metadata"]["resourceVersion"], json!("2"));
}

#[test]
fn spec_change_bumps_generation_and_keeps_identity() {
    let mut store = Store::open_in_memory().unwrap();
    let (created, _) = put_one(&mut store, pod("web", "nginx:1"));
    let (record, outcome) = put_one(&mut store, pod("web", "nginx:2"));
    assert_eq!(outcome, PutOutcome::Configured);
    assert_eq!(record.generation, 2);
    assert_eq!(record.resource_version, 2);
    assert_eq!(record.uid, created.uid);
    assert_eq!(record.creation_timestamp, created.creation_timestamp);
    assert_eq!(record.object["metadata"]["generation"], json!(2));
    assert_eq!(
        store.get("Pod", "default", "web").unwrap().unwrap().object["spec"]["containers"][0]
            ["image"],
        json!("nginx:2")
    );
}

#[test]
fn data_change_of_a_kind_without_spec_bumps_generation() {
    let mut store = Store::open_in_memory().unwrap();
    let config = |value: &str| {
        json!({"kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "default"},
               "data": {"key": value}})
    };
    put_one(&mut store, config("a"));
    let (record, outcome) = put_one(&mut store, config("b"));
    assert_eq!(outcome, PutOutcome::Configured);
    assert_eq!(record.generation, 2);
}

#[test]
fn resource_version_is_one_global_counter_that_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut store = Store::open(&path).unwrap();
    let results = store
        .put_all(
            vec![
                pod("a", "x"),
                json!({"kind": "Namespace", "metadata": {"name": "prod"}}),
            ],
            None,
        )
        .unwrap();
    let versions: Vec<i64> = results.iter().map(|(r, _)| r.resource_version).collect();
    assert_eq!(versions, vec![1, 2]);
    assert_ne!(results[0].0.uid, results[1].0.uid);
    drop(store);
    let mut store = Store::open(&path).unwrap();
    let (record, _) = put_one(&mut store, pod("b", "x"));
    assert_eq!(record.resource_version, 3);
}

#[test]
fn put_all_is_all_or_nothing() {
    let mut store = Store::open_in_memory().unwrap();
    let invalid = json!({"kind": "Pod", "metadata": {"namespace": "default"}});
    let err = store
        .put_all(vec![pod("first", "x"), invalid], None)
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    assert!(
        err.to_string().contains("object 2: missing metadata.name"),
        "{err}"
    );
    assert_eq!(store.get("Pod", "default", "first").unwrap(), None);
    // The revision counter did not move either.
    let (record, _) = put_one(&mut store, pod("first", "x"));
    assert_eq!(record.resource_version, 1);
}

#[test]
fn invalid_objects_are_described() {
    let mut store = Store::open_in_memory().unwrap();
    let cases = [
        (json!([1, 2]), "object 1: not a JSON object"),
        (json!({"metadata": {"name": "a"}}), "object 1: missing kind"),
        (json!({"kind": "Pod"}), "object 1: missing metadata"),
        (
            json!({"kind": "Pod", "metadata": {"name": "a", "namespace": 3}}),
            "object 1: metadata.namespace is not a string",
        ),
    ];
    for (object, expected) in cases {
        let err = store.put_all(vec![object], None).unwrap_err();
        assert!(err.to_string().contains(expected), "{err} vs {expected}");
    }
}

/// Size and modification time of the database and its WAL, to prove nothing was written.
fn file_fingerprint(db: &Path) -> Vec<(u64, std::time::SystemTime)> {
    let wal = db.with_extension("db-wal");
    [db, wal.as_path()]
        .iter()
        .map(|path| {
            let meta = std::fs::metadata(path).unwrap();
            (meta.len(), meta.modified().unwrap())
        })
        .collect()
}

fn data_version(conn: &Connection) -> i64 {
    conn.query_row("PRAGMA data_version", [], |row| row.get(0))
        .unwrap()
}

#[test]
fn idle_store_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut store = Store::open(&path).unwrap();
    store
        .put_all(vec![pod("web", "nginx:1")], Some("a.yaml"))
        .unwrap();
    store
        .set_status("Pod", "default", "web", &json!({"phase": "Running"}))
        .unwrap();
    store.set_meta("node", "pi").unwrap();

    let observer = Connection::open(&path).unwrap();
    let version_before = data_version(&observer);
    let files_before = file_fingerprint(&path);

    let (_, outcome) = store
        .put_all(vec![pod("web", "nginx:1")], Some("a.yaml"))
        .unwrap()
        .remove(0);
    assert_eq!(outcome, PutOutcome::Unchanged);
    assert!(store.get("Pod", "default", "web").unwrap().is_some());
    assert_eq!(store.list("Pod", None).unwrap().len(), 1);
    assert_eq!(store.list_by_source("a.yaml").unwrap().len(), 1);
    assert!(!store
        .set_status("Pod", "default", "web", &json!({"phase": "Running"}))
        .unwrap());
    assert!(!store
        .set_status("Pod", "default", "gone", &json!({}))
        .unwrap());
    assert!(!store.set_meta("node", "pi").unwrap());
    assert_eq!(store.get_meta("node").unwrap().as_deref(), Some("pi"));
    assert!(store
        .delete_all(&[Key::new("Pod", "default", "gone")])
        .unwrap()
        .is_empty());

    assert_eq!(data_version(&observer), version_before);
    assert_eq!(file_fingerprint(&path), files_before);

    // The same checks do see a real change, so they can fail.
    store
        .put_all(vec![pod("web", "nginx:2")], Some("a.yaml"))
        .unwrap();
    assert_ne!(data_version(&observer), version_before);
    assert_ne!(file_fingerprint(&path), files_before);
}

#[test]
fn list_orders_by_namespace_then_name_and_filters() {
    let mut store = Store::open_in_memory().unwrap();
    let in_ns = |ns: &str, name: &str| json!({"kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": {}});
    store
        .put_all(
            vec![
                in_ns("prod", "b"),
                in_ns("default", "z"),
                in_ns("prod", "a"),
                in_ns("default", "c"),
                json!({"kind": "Service", "metadata": {"name": "svc", "namespace": "default"}}),
            ],
            None,
        )
        .unwrap();
    let names = |records: Vec<Record>| -> Vec<String> {
        records
            .into_iter()
            .map(|r| format!("{}/{}", r.namespace, r.name))
            .collect()
    };
    assert_eq!(
        names(store.list("Pod", None).unwrap()),
        ["default/c", "default/z", "prod/a", "prod/b"]
    );
    assert_eq!(
        names(store.list("Pod", Some("prod")).unwrap()),
        ["prod/a", "prod/b"]
    );
    assert!(store.list("Pod", Some("nowhere")).unwrap().is_empty());
    assert_eq!(names(store.list("Service", None).unwrap()), ["default/svc"]);
}

#[test]
fn cluster_scoped_objects_have_an_empty_namespace() {
    let mut store = Store::open_in_memory().unwrap();
    let (record, _) = put_one(
        &mut store,
        json!({"kind": "Namespace", "metadata": {"name": "prod", "namespace": ""}}),
    );
    assert_eq!(record.namespace, "");
    assert!(record.object["metadata"].get("namespace").is_none());
    let (_, outcome) = put_one(
        &mut store,
        json!({"kind": "Namespace", "metadata": {"name": "prod"}}),
    );
    assert_eq!(outcome, PutOutcome::Unchanged);
    assert_eq!(store.list("Namespace", Some("")).unwrap().len(), 1);
}

#[test]
fn list_by_source_follows_the_last_applier() {
    let mut store = Store::open_in_memory().unwrap();
    store
        .put_all(vec![pod("a", "x"), pod("b", "x")], Some("one.yaml"))
        .unwrap();
    store
        .put_all(vec![pod("c", "x")], Some("two.yaml"))
        .unwrap();
    store.put_all(vec![pod("d", "x")], None).unwrap();
    let names = |store: &Store, source: &str| -> Vec<String> {
        store
            .list_by_source(source)
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect()
    };
    assert_eq!(names(&store, "one.yaml"), ["a", "b"]);
    assert_eq!(names(&store, "two.yaml"), ["c"]);
    // An unchanged object applied from another file moves to that file.
    let (record, outcome) = store
        .put_all(vec![pod("b", "x")], Some("two.yaml"))
        .unwrap()
        .remove(0);
    assert_eq!(outcome, PutOutcome::Unchanged);
    assert_eq!(record.source.as_deref(), Some("two.yaml"));
    assert_eq!(names(&store, "one.yaml"), ["a"]);
    assert_eq!(names(&store, "two.yaml"), ["b", "c"]);
}

#[test]
fn delete_all_returns_what_it_deleted() {
    let mut store = Store::open_in_memory().unwrap();
    store
        .put_all(vec![pod("a", "x"), pod("b", "x")], None)
        .unwrap();
    let deleted = store
        .delete_all(&[
            Key::new("Pod", "default", "a"),
            Key::new("Pod", "default", "missing"),
            Key::new("Pod", "default", "b"),
        ])
        .unwrap();
    let names: Vec<&str> = deleted.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert!(store.list("Pod", None).unwrap().is_empty());
    // A re-created object is a new object.
    let (record, outcome) = put_one(&mut store, pod("a", "x"));
    assert_eq!(outcome, PutOutcome::Created);
    assert_ne!(record.uid, deleted[0].uid);
    assert_eq!(record.generation, 1);
}

#[test]
fn set_status_writes_only_on_change() {
    let mut store = Store::open_in_memory().unwrap();
    let (created, _) = put_one(&mut store, pod("web", "x"));
    let running = json!({"phase": "Running", "podIP": "10.88.0.2"});
    assert!(store.set_status("Pod", "default", "web", &running).unwrap());
    assert!(!store.set_status("Pod", "default", "web", &running).unwrap());
    let stored = store.get("Pod", "default", "web").unwrap().unwrap();
    assert_eq!(stored.status, Some(running));
    assert_eq!(stored.resource_version, created.resource_version);
    assert!(stored.object.get("status").is_none());
    assert!(store
        .set_status("Pod", "default", "web", &json!({"phase": "Failed"}))
        .unwrap());
    assert!(!store
        .set_status("Pod", "default", "nope", &json!({}))
        .unwrap());
    // Re-applying the spec keeps the status.
    put_one(&mut store, pod("web", "y"));
    let stored = store.get("Pod", "default", "web").unwrap().unwrap();
    assert_eq!(stored.status, Some(json!({"phase": "Failed"})));
}

#[test]
fn corrupt_row_is_reported_not_panicked() {
    let mut store = Store::open_in_memory().unwrap();
    put_one(&mut store, pod("web", "x"));
    store
        .sqlite("objects")
        .unwrap()
        .execute(
            "UPDATE objects SET object = '{not json' WHERE name = 'web'",
            [],
        )
        .unwrap();
    let err = store.get("Pod", "default", "web").unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("Pod default/web"), "{err}");
    assert!(store.list("Pod", None).is_err());
}

/// The bytes of the database and its WAL, as someone who copied the files would see them.
fn raw_files(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    bytes.extend(std::fs::read(Path::new(&wal)).unwrap_or_default());
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

fn secret(value: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "default"},
        "data": {"password": crate::model::base64::encode(value.as_bytes())}
    })
}

#[test]
fn secrets_are_sealed_on_disk_and_read_back_in_clear() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    let sealer = || Sealer::load_or_create(&dir.path().join("secrets.key")).unwrap();
    let value = "correct-horse-battery-staple";
    let encoded = crate::model::base64::encode(value.as_bytes());
    {
        let mut store = Store::open_sealed(&path, sealer()).unwrap();
        put_one(&mut store, secret(value));
        put_one(&mut store, pod("web", "nginx:1"));
        let bytes = raw_files(&path);
        assert!(!contains(&bytes, value) && !contains(&bytes, &encoded));
        assert!(contains(&bytes, "nginx:1"), "other kinds stay readable");
        let read = store.get("Secret", "default", "db").unwrap().unwrap();
        assert_eq!(read.object["data"]["password"], json!(encoded));
    }
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", path.display());
        if let Ok(meta) = std::fs::metadata(&file) {
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{file}");
        }
    }
    let store = Store::open_sealed(&path, sealer()).unwrap();
    let read = store.get("Secret", "default", "db").unwrap().unwrap();
    assert_eq!(read.object["data"]["password"], json!(encoded));
}

#[test]
fn secrets_stored_in_clear_are_sealed_when_the_store_opens_with_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    let value = "stored-before-sealing-existed";
    let encoded = crate::model::base64::encode(value.as_bytes());
    {
        let mut store = Store::open(&path).unwrap();
        put_one(&mut store, secret(value));
        assert!(contains(&raw_files(&path), &encoded));
    }
    let sealer = Sealer::load_or_create(&dir.path().join("secrets.key")).unwrap();
    let store = Store::open_sealed(&path, sealer).unwrap();
    let bytes = raw_files(&path);
    assert!(
        !contains(&bytes, &encoded),
        "no copy left in the file or WAL"
    );
    let read = store.get("Secret", "default", "db").unwrap().unwrap();
    assert_eq!(read.object["data"]["password"], json!(encoded));
}

#[test]
fn a_resource_version_is_a_precondition_only_when_checked() {
    let mut store = Store::open_in_memory().unwrap();
    let (created, _) = put_one(&mut store, pod("web", "a"));
    let with_version = |image: &str, version: &str| {
        let mut object = pod("web", image);
        object["metadata"]["resourceVersion"] = json!(version);
        object
    };
    let current = created.resource_version.to_string();
    let stale = (created.resource_version - 1).to_string();
    // Ignored unless asked for: daemons write back what they read.
    let ignored = store
        .put_all(vec![with_version("b", &stale)], None)
        .unwrap();
    assert_eq!(ignored[0].1, PutOutcome::Configured);
    let now = ignored[0].0.resource_version.to_string();
    let err = store
        .put_all_checked(
            vec![with_version("c", &current)],
            None,
            VersionCheck::Enforce,
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert_eq!(
        store.get("Pod", "default", "web").unwrap().unwrap().object["spec"],
        pod("web", "b")["spec"],
        "a conflict writes nothing"
    );
    let ok = store
        .put_all_checked(vec![with_version("c", &now)], None, VersionCheck::Enforce)
        .unwrap();
    assert_eq!(ok[0].1, PutOutcome::Configured);
    for bad in ["x", "-1", "0"] {
        let err = store
            .put_all_checked(vec![with_version("d", bad)], None, VersionCheck::Enforce)
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid { .. }), "{bad}: {err}");
    }
    // Empty means no precondition, as in Kubernetes.
    let ok = store
        .put_all_checked(vec![with_version("d", "")], None, VersionCheck::Enforce)
        .unwrap();
    assert_eq!(ok[0].1, PutOutcome::Configured);
}
