//! Fleet assignments against a real store (SQLite in a temporary directory) and a fake
//! runtime: what lands, what is deleted, and that an unchanged set writes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use super::sync::apply_set;
use super::{reconnect_retries, Link, StandIn, STAND_IN_AFTER};
use crate::agent::{Agent, AgentOptions};
use crate::api::fleet::{FLEET_SOURCE, FLEET_UID_ANNOTATION};
use crate::runtime::fake::FakeRuntime;

fn test_agent(dir: &std::path::Path) -> Arc<Agent> {
    let options = AgentOptions {
        state_dir: dir.to_path_buf(),
        manifests_dir: None,
        node_name: "pi-1".into(),
        cgroup_parent: "berth-test".into(),
        backoff_base: Duration::from_secs(10),
        backoff_max: Duration::from_secs(300),
        board: None,
        registries: None,
        node_labels: Default::default(),
        extended_resources: Default::default(),
        join: None,
        unpack_limits: Default::default(),
        encryption_key_file: None,
        local_path: None,
        network: crate::agent::NetworkOptions {
            backend: crate::agent::NetworkBackend::None,
            ..Default::default()
        },
        pod_security_level: crate::model::PodSecurityLevel::Baseline,
        service_cidr: crate::model::default_service_cidr(),
        node_port_range: crate::model::DEFAULT_NODE_PORT_RANGE,
    };
    let (agent, _wake) = Agent::new(options, Arc::new(FakeRuntime::new())).unwrap();
    crate::controllers::namespace::ensure_default(&mut agent.store()).unwrap();
    agent
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "uid": format!("c-{name}"),
            "annotations": {FLEET_UID_ANNOTATION: format!("c-{name}")}}})
}

/// A pod as a coordinator pushes it: owned by a Deployment that exists only there.
fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "web", "uid": format!("c-{name}"),
            "resourceVersion": "7",
            "annotations": {FLEET_UID_ANNOTATION: format!("c-{name}")},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "d",
                "uid": "coordinator-deployment", "controller": true}]},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], "nodeName": "pi-1"},
        "status": {"phase": "Pending"}})
}

fn config_map(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "web",
            "annotations": {FLEET_UID_ANNOTATION: format!("c-{name}")}},
        "data": {"k": "v"}})
}

/// Every stored object with its resourceVersion: any write changes this.
fn revisions(agent: &Agent) -> BTreeMap<String, i64> {
    let store = agent.store();
    let mut all = BTreeMap::new();
    for kind in ["Namespace", "Pod", "ConfigMap"] {
        for record in store.list(kind, None).unwrap() {
            all.insert(
                format!("{kind}/{}/{}", record.namespace, record.name),
                record.resource_version,
            );
        }
    }
    all
}

#[test]
fn a_set_lands_and_an_unchanged_set_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let agent = test_agent(dir.path());
    let set = vec![namespace("web"), config_map("settings"), pod("a")];
    let applied = apply_set(&agent, &set).unwrap();
    assert_eq!((applied.created, applied.configured), (3, 0));
    let record = agent.store().get("Pod", "web", "a").unwrap().unwrap();
    assert_eq!(record.source.as_deref(), Some(FLEET_SOURCE));
    // The local store gives its own uid; the coordinator's stays in the annotation.
    assert_ne!(record.uid, "c-a");
    assert_eq!(
        record.object["metadata"]["annotations"][FLEET_UID_ANNOTATION],
        "c-a"
    );

    let before = revisions(&agent);
    let applied = apply_set(&agent, &set).unwrap();
    assert_eq!(
        (applied.created, applied.configured, applied.deleted),
        (0, 0, 0)
    );
    assert_eq!(revisions(&agent), before, "an unchanged set must not write");
}

#[test]
fn objects_that_leave_the_set_are_deleted_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let agent = test_agent(dir.path());
    apply_set(
        &agent,
        &[namespace("web"), config_map("settings"), pod("a"), pod("b")],
    )
    .unwrap();
    let applied = apply_set(&agent, &[namespace("web"), pod("b")]).unwrap();
    assert_eq!(applied.deleted, 2);
    let store = agent.store();
    assert!(store.get("ConfigMap", "web", "settings").unwrap().is_none());
    let a = store.get("Pod", "web", "a").unwrap().unwrap();
    assert!(
        a.object.pointer("/metadata/deletionTimestamp").is_some(),
        "a pod stops gracefully"
    );
    let b = store.get("Pod", "web", "b").unwrap().unwrap();
    assert!(b.object.pointer("/metadata/deletionTimestamp").is_none());
    // The default namespace, made locally, is neither taken nor deleted.
    let default = store.get("Namespace", "", "default").unwrap().unwrap();
    assert_eq!(default.source, None);
}

#[test]
fn a_deletion_pushed_by_the_coordinator_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let agent = test_agent(dir.path());
    apply_set(&agent, &[namespace("web"), pod("a")]).unwrap();
    let mut deleting = pod("a");
    deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    apply_set(&agent, &[namespace("web"), deleting]).unwrap();
    let a = agent.store().get("Pod", "web", "a").unwrap().unwrap();
    assert_eq!(
        a.object["metadata"]["deletionTimestamp"],
        "2026-01-01T00:00:00Z"
    );
}

#[test]
fn fleet_pods_are_not_garbage_collected_for_their_missing_owner() {
    let dir = tempfile::tempdir().unwrap();
    let agent = test_agent(dir.path());
    apply_set(&agent, &[namespace("web"), pod("fleet")]).unwrap();
    // The same pod without the fleet annotation: a local orphan.
    let mut orphan = pod("orphan");
    orphan["metadata"]["annotations"] = json!({});
    agent.store().put_all(vec![orphan], None).unwrap();

    let observed = agent.observe().unwrap();
    crate::agent::controllers::run(&agent, &observed, SystemTime::now()).unwrap();
    let store = agent.store();
    let deleting = |name: &str| {
        store
            .get("Pod", "web", name)
            .unwrap()
            .unwrap()
            .object
            .pointer("/metadata/deletionTimestamp")
            .is_some()
    };
    assert!(!deleting("fleet"));
    assert!(deleting("orphan"));
}

#[test]
fn reconnect_delays_are_jittered_below_a_doubling_ceiling_of_thirty_seconds() {
    let mut delay = reconnect_retries();
    assert!(delay.is_fresh());
    for ceiling in [1, 2, 4, 8, 16, 30, 30] {
        let wait = delay.after_failure();
        assert!(
            wait <= Duration::from_secs(ceiling),
            "{wait:?} > {ceiling}s"
        );
    }
    assert!(!delay.is_fresh());
    delay.reset();
    assert!(delay.is_fresh());
    assert!(delay.after_failure() <= Duration::from_secs(1));
}

#[test]
fn a_board_stands_in_only_after_the_coordinator_stayed_out_of_reach() {
    let link = Link::new("https://coord:6443".into());
    let now = SystemTime::now();
    assert_eq!(link.stand_in(now), StandIn::No);
    link.up();
    assert_eq!(link.stand_in(now), StandIn::No);
    let before_failure = SystemTime::now();
    link.down(&"refused");
    let after_failure = SystemTime::now();
    let StandIn::Soon(from) = link.stand_in(after_failure) else {
        panic!("a fresh failure is not yet a reason to stand in");
    };
    assert!(from >= before_failure + STAND_IN_AFTER && from <= after_failure + STAND_IN_AFTER);
    // Later failures do not push the time back.
    link.down(&"refused again");
    assert_eq!(link.stand_in(after_failure), StandIn::Soon(from));
    let StandIn::Yes { covered_until } = link.stand_in(from) else {
        panic!("out of reach long enough");
    };
    assert!(covered_until <= before_failure, "the last answer");
    link.up();
    assert_eq!(link.stand_in(from), StandIn::No);
    // Refused (deleted or revoked) is not out of reach: another node stands in.
    link.down(&"refused");
    link.refused();
    assert_eq!(link.stand_in(from + STAND_IN_AFTER), StandIn::No);
    // Started while cut off: the times after the first failure are this board's.
    let fresh = Link::new("https://coord:6443".into());
    fresh.down(&"refused");
    let StandIn::Yes { covered_until } = fresh.stand_in(SystemTime::now() + STAND_IN_AFTER) else {
        panic!("out of reach long enough");
    };
    assert!(covered_until >= after_failure);
}
