//! The store on a real etcd (issue 16): the same answers as on SQLite, compare-and-swap
//! on `resourceVersion` (one of two writers with the same version gets a conflict, and
//! no update is lost under contention), multi-object applies seen whole or not at all,
//! Secrets sealed in etcd, hostile values reported, and a cluster that loses a member.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;
#[path = "common/etcd.rs"]
mod etcd_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use berth::store::etcd::{EtcdClient, EtcdConfig, KeyRange, PutOptions, RangeOptions};
use berth::store::{PutOutcome, RemoteOptions, Sealer, Store, StoreError, VersionCheck};
use etcd_support::EtcdCluster;
use serde_json::{json, Value};

fn open(cluster: &EtcdCluster) -> Store {
    let options = RemoteOptions::new(EtcdConfig::new(cluster.endpoints()));
    Store::open_etcd(options, Sealer::plaintext()).unwrap()
}

/// A store whose reads come from its cache, kept current by a follower, as in a
/// coordinator. The follower's thread ends with the test process.
fn following(store: Store) -> Store {
    let follower = store.follower().unwrap().unwrap();
    std::thread::spawn(move || follower.run(|_| {}));
    store
}

fn open_following(cluster: &EtcdCluster, prefix: &str) -> Store {
    let mut options = RemoteOptions::new(EtcdConfig::new(cluster.endpoints()));
    options.prefix = prefix.to_string();
    following(Store::open_etcd(options, Sealer::plaintext()).unwrap())
}

fn config_map(namespace: &str, name: &str, value: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"value": value}
    })
}

fn outcomes(results: &[(berth::store::Record, PutOutcome)]) -> Vec<PutOutcome> {
    results.iter().map(|(_, outcome)| *outcome).collect()
}

/// The same sequence on a store; returns what a user would see of it (no versions or
/// uids, which differ between backends by nature).
fn scenario(store: &mut Store) -> Vec<String> {
    let mut seen = Vec::new();
    let first = store
        .put_all(
            vec![
                config_map("a-b", "x", "1"),
                config_map("a", "x", "1"),
                config_map("a", "y", "1"),
            ],
            Some("file.yaml"),
        )
        .unwrap();
    seen.push(format!("{:?}", outcomes(&first)));
    let again = store
        .put_all(vec![config_map("a", "x", "1")], Some("file.yaml"))
        .unwrap();
    seen.push(format!("{:?}", outcomes(&again)));
    assert_eq!(again[0].0.resource_version, first[1].0.resource_version);
    let mut labelled = config_map("a", "x", "1");
    labelled["metadata"]["labels"] = json!({"tier": "web"});
    let relabelled = store.put_all(vec![labelled], Some("file.yaml")).unwrap();
    let changed = store
        .put_all(vec![config_map("a", "x", "2")], Some("file.yaml"))
        .unwrap();
    seen.push(format!(
        "{:?} generation {} then {:?} generation {}",
        relabelled[0].1, relabelled[0].0.generation, changed[0].1, changed[0].0.generation
    ));
    assert!(changed[0].0.resource_version > relabelled[0].0.resource_version);
    let stored = store.get("ConfigMap", "a", "x").unwrap().unwrap();
    assert_eq!(
        stored.object["metadata"]["resourceVersion"],
        json!(changed[0].0.resource_version.to_string())
    );
    assert_eq!(stored.uid, first[1].0.uid, "the uid stays");
    seen.push(format!("data {}", stored.object["data"]));

    // A status write changes no resourceVersion and writes nothing when equal.
    assert!(store
        .set_status("ConfigMap", "a", "x", &json!({"n": 1}))
        .unwrap());
    assert!(!store
        .set_status("ConfigMap", "a", "x", &json!({"n": 1}))
        .unwrap());
    assert!(!store
        .set_status("ConfigMap", "a", "gone", &json!({"n": 1}))
        .unwrap());
    let with_status = store.get("ConfigMap", "a", "x").unwrap().unwrap();
    assert_eq!(with_status.resource_version, stored.resource_version);
    seen.push(format!("status {:?}", with_status.status));

    let names = |records: Vec<berth::store::Record>| {
        records
            .iter()
            .map(|r| format!("{}/{}", r.namespace, r.name))
            .collect::<Vec<_>>()
    };
    seen.push(format!(
        "{:?}",
        names(store.list("ConfigMap", None).unwrap())
    ));
    seen.push(format!(
        "{:?}",
        names(store.list("ConfigMap", Some("a")).unwrap())
    ));
    seen.push(format!(
        "{:?}",
        names(store.list_by_source("file.yaml").unwrap())
    ));
    let deleted = store
        .delete_all(&[
            berth::store::Key::new("ConfigMap", "a", "x"),
            berth::store::Key::new("ConfigMap", "a", "missing"),
        ])
        .unwrap();
    seen.push(format!("deleted {:?}", names(deleted)));
    // Created again: a new object, with no status left from the old one.
    let again = store
        .put_all(vec![config_map("a", "x", "3")], None)
        .unwrap();
    assert_ne!(again[0].0.uid, first[1].0.uid);
    seen.push(format!(
        "recreated {:?} status {:?}",
        again[0].1,
        store.get("ConfigMap", "a", "x").unwrap().unwrap().status
    ));
    assert!(store.set_meta("k", "v").unwrap());
    seen.push(format!("meta {:?}", store.get_meta("k").unwrap()));
    seen
}

#[test]
fn etcd_gives_the_answers_sqlite_gives() {
    let cluster = EtcdCluster::start(1);
    let dir = tempfile::Builder::new()
        .prefix("berth-test")
        .tempdir()
        .unwrap();
    let mut sqlite = Store::open(&dir.path().join("berth.db")).unwrap();
    let mut etcd = open(&cluster);
    let on_sqlite = scenario(&mut sqlite);
    let on_etcd = scenario(&mut etcd);
    assert_eq!(on_etcd, on_sqlite);
    // The same again with reads from the cache a follower keeps.
    let on_cache = scenario(&mut open_following(&cluster, "/followed/"));
    assert_eq!(on_cache, on_sqlite);
    assert_eq!(on_sqlite[0], "[Created, Created, Created]");
    assert!(
        on_sqlite[5].contains("\"a/x\", \"a/y\", \"a-b/x\""),
        "{on_sqlite:?}"
    );
}

#[test]
fn one_of_two_writers_with_the_same_resource_version_gets_a_conflict() {
    let cluster = EtcdCluster::start(1);
    let mut first = open(&cluster);
    let mut second = open(&cluster);
    let created = first
        .put_all(vec![config_map("default", "c", "0")], None)
        .unwrap();
    let version = created[0].0.resource_version.to_string();
    let update = |store: &mut Store, value: &str| {
        let mut object = config_map("default", "c", value);
        object["metadata"]["resourceVersion"] = json!(version);
        store.put_all_checked(vec![object], None, VersionCheck::Enforce)
    };
    let won = update(&mut first, "first").unwrap();
    assert_eq!(won[0].1, PutOutcome::Configured);
    let lost = update(&mut second, "second").unwrap_err();
    assert!(matches!(lost, StoreError::Conflict { .. }), "{lost}");
    assert!(
        lost.to_string().contains("the object has been modified"),
        "{lost}"
    );
    let stored = second.get("ConfigMap", "default", "c").unwrap().unwrap();
    assert_eq!(stored.object["data"]["value"], "first");

    // A version on an object that does not exist is refused, as Kubernetes does.
    let mut fresh = config_map("default", "new", "x");
    fresh["metadata"]["resourceVersion"] = json!("5");
    let err = first
        .put_all_checked(vec![fresh], None, VersionCheck::Enforce)
        .unwrap_err();
    assert!(err.to_string().contains("should not be set"), "{err}");
}

/// Read-modify-write with the version as precondition, from four threads at once: every
/// increment that was acknowledged is in the final count.
#[test]
fn no_increment_is_lost_between_concurrent_writers() {
    let cluster = EtcdCluster::start(1);
    open(&cluster)
        .put_all(vec![config_map("default", "counter", "0")], None)
        .unwrap();
    let endpoints = cluster.endpoints();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let endpoints = endpoints.clone();
            std::thread::spawn(move || {
                let options = RemoteOptions::new(EtcdConfig::new(endpoints));
                let mut store = Store::open_etcd(options, Sealer::plaintext()).unwrap();
                // Half the writers read from a cache, which lags the others' writes.
                if i % 2 == 1 {
                    store = following(store);
                }
                let (mut done, mut conflicts) = (0, 0);
                while done < 25 {
                    let record = store
                        .get("ConfigMap", "default", "counter")
                        .unwrap()
                        .unwrap();
                    let n: u64 = record.object["data"]["value"]
                        .as_str()
                        .unwrap()
                        .parse()
                        .unwrap();
                    let mut object = record.object.clone();
                    object["data"]["value"] = json!((n + 1).to_string());
                    match store.put_all_checked(vec![object], None, VersionCheck::Enforce) {
                        Ok(_) => done += 1,
                        Err(StoreError::Conflict { .. }) => conflicts += 1,
                        Err(err) => panic!("{err}"),
                    }
                }
                conflicts
            })
        })
        .collect();
    let conflicts: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let record = open(&cluster)
        .get("ConfigMap", "default", "counter")
        .unwrap()
        .unwrap();
    assert_eq!(
        record.object["data"]["value"], "100",
        "{conflicts} conflicts"
    );
}

/// A writer applies two objects together, over and over; a reader listing them at the
/// same time always sees both at the same value.
#[test]
fn a_multi_object_apply_is_seen_whole_or_not_at_all() {
    let cluster = EtcdCluster::start(1);
    let mut writer = open(&cluster);
    writer
        .put_all(
            vec![config_map("pair", "a", "0"), config_map("pair", "b", "0")],
            None,
        )
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // One reader reads etcd, the other the cache a follower keeps.
    let readers = [open(&cluster), following(open(&cluster))];
    let reading = readers.map(|reader| {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(Ordering::Relaxed) {
                let pair = reader.list("ConfigMap", Some("pair")).unwrap();
                assert_eq!(pair.len(), 2);
                assert_eq!(
                    pair[0].object["data"], pair[1].object["data"],
                    "a half-applied pair"
                );
                reads += 1;
            }
            reads
        })
    });
    for i in 1..=100 {
        let value = i.to_string();
        writer
            .put_all(
                vec![
                    config_map("pair", "a", &value),
                    config_map("pair", "b", &value),
                ],
                None,
            )
            .unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for reader in reading {
        assert!(reader.join().unwrap() > 0);
    }
}

/// Two coordinators' stores, each reading from its cache: each reads its own writes at
/// once, sees the other's soon, and an apply decided on a cache that has not yet seen
/// the other's write is still applied (never taken for "unchanged").
#[test]
fn a_cached_store_reads_its_own_writes_and_never_loses_one() {
    let cluster = EtcdCluster::start(1);
    let mut first = open_following(&cluster, "/berth/");
    let mut second = open_following(&cluster, "/berth/");
    for i in 0..50 {
        let theirs = format!("second-{i}");
        second
            .put_all(vec![config_map("default", "c", &theirs)], None)
            .unwrap();
        let mine = format!("first-{i}");
        first
            .put_all(vec![config_map("default", "c", &mine)], None)
            .unwrap();
        let read = first.get("ConfigMap", "default", "c").unwrap().unwrap();
        assert_eq!(read.object["data"]["value"], mine.as_str(), "own write");
        // The second store's cache most likely still holds its own value: applying it
        // again right away must still replace the first store's.
        let again = second
            .put_all(vec![config_map("default", "c", &theirs)], None)
            .unwrap();
        assert_eq!(again[0].1, PutOutcome::Configured, "round {i}");
        let stored = open(&cluster)
            .get("ConfigMap", "default", "c")
            .unwrap()
            .unwrap();
        assert_eq!(stored.object["data"]["value"], theirs.as_str(), "round {i}");
    }
    // The first store's cache catches up with the second's writes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        second
            .put_all(vec![config_map("default", "d", "from-second")], None)
            .unwrap();
        if first.get("ConfigMap", "default", "d").unwrap().is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never saw the write");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let deleted = first
        .delete_all(&[berth::store::Key::new("ConfigMap", "default", "d")])
        .unwrap();
    assert_eq!(deleted.len(), 1);
    // The second store reads the first's delete once its watch has brought it (its
    // own writes only are guaranteed at once).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while second.get("ConfigMap", "default", "d").unwrap().is_some() {
        assert!(std::time::Instant::now() < deadline, "never saw the delete");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn secrets_are_sealed_in_etcd_and_hostile_values_are_errors() {
    let cluster = EtcdCluster::start(1);
    let dir = tempfile::Builder::new()
        .prefix("berth-test")
        .tempdir()
        .unwrap();
    let sealer = Sealer::load_or_create(&dir.path().join("secrets.key")).unwrap();
    let options = RemoteOptions::new(EtcdConfig::new(cluster.endpoints()));
    let mut store = Store::open_etcd(options, sealer).unwrap();
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": "default"},
        "stringData": {"password": "hunter2-in-clear"}
    });
    store.put_all(vec![secret], None).unwrap();
    let stored = store.get("Secret", "default", "db").unwrap().unwrap();
    assert_eq!(stored.object["stringData"]["password"], "hunter2-in-clear");

    let raw = EtcdClient::new(EtcdConfig::new(cluster.endpoints())).unwrap();
    let everything = raw
        .range(&KeyRange::prefix(b"/berth/"), &RangeOptions::default())
        .unwrap();
    assert!(!everything.kvs.is_empty());
    for kv in &everything.kvs {
        assert!(
            !String::from_utf8_lossy(&kv.value).contains("hunter2"),
            "a Secret in clear in etcd"
        );
    }

    // What someone else wrote under the prefix is reported, not trusted or panicked on.
    raw.put(
        b"/berth/objects/ConfigMap/default/bad",
        b"{not json",
        &PutOptions::default(),
    )
    .unwrap();
    let err = store.get("ConfigMap", "default", "bad").unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("ConfigMap default/bad"), "{err}");
    let err = store.list("ConfigMap", None).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    raw.put(
        b"/berth/objects/ConfigMap/default/bad/extra",
        b"{}",
        &PutOptions::default(),
    )
    .unwrap();
    let err = store.list("Secret", None).map(|r| r.len());
    assert_eq!(err.unwrap(), 1, "other kinds are still readable");
    // Names that would make another key are refused before anything is written.
    let err = store
        .put_all(vec![config_map("default", "a/b", "x")], None)
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
}

#[test]
fn writes_go_on_when_one_member_of_three_is_down() {
    let mut cluster = EtcdCluster::start(3);
    let mut store = open(&cluster);
    store
        .put_all(vec![config_map("default", "k", "before")], None)
        .unwrap();
    cluster.stop(0);
    for i in 0..5 {
        // A write may time out while the two left elect a leader, or on a loaded
        // machine; the same write again is then answered (it is idempotent).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let object = config_map("default", "k", &format!("during-{i}"));
            match store.put_all(vec![object], None) {
                Ok(_) => break,
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("write {i} again after: {e}");
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => panic!("write {i}: {e}\n{}", cluster.log_tail()),
            }
        }
    }
    cluster.restart(0);
    cluster.wait_healthy();
    let record = store.get("ConfigMap", "default", "k").unwrap().unwrap();
    assert_eq!(record.object["data"]["value"], "during-4");
}

/// More objects than etcd takes in one transaction (128 operations by default) are
/// written and deleted in several.
#[test]
fn large_applies_and_deletes_fit_etcd_s_transaction_limit() {
    let cluster = EtcdCluster::start(1);
    let mut store = open(&cluster);
    let many: Vec<Value> = (0..150)
        .map(|i| config_map("bulk", &format!("c{i:03}"), "x"))
        .collect();
    let created = store.put_all(many.clone(), None).unwrap();
    assert_eq!(created.len(), 150);
    assert!(created.iter().all(|(_, o)| *o == PutOutcome::Created));
    let again = store.put_all(many, None).unwrap();
    assert!(again.iter().all(|(_, o)| *o == PutOutcome::Unchanged));
    assert_eq!(store.list("ConfigMap", Some("bulk")).unwrap().len(), 150);
    let keys: Vec<berth::store::Key> = (0..150)
        .map(|i| berth::store::Key::new("ConfigMap", "bulk", &format!("c{i:03}")))
        .collect();
    assert_eq!(store.delete_all(&keys).unwrap().len(), 150);
    assert!(store.list("ConfigMap", Some("bulk")).unwrap().is_empty());
}
