//! The shared controllers on typed objects, and the driver on an in-memory store.

use std::time::{Duration, SystemTime};

use serde_json::json;

use super::deployment::{REVISION_ANNOTATION, TEMPLATE_HASH_LABEL};
use super::node_lifecycle::NodeFacts;
use super::*;
use crate::api::events::{EventLog, FieldSelector};
use crate::api::fleet::FLEET_UID_ANNOTATION;
use crate::model::{pod_template_hash, Object, OwnerReference, ReplicaSet};
use crate::store::Store;

const NOW: &str = "2026-12-02T10:00:00Z";

fn namespace(name: &str, dying: bool) -> Namespace {
    let mut ns = Namespace::default();
    ns.metadata.name = name.into();
    if dying {
        ns.metadata.deletion_timestamp = Some("2026-12-02T09:59:00Z".into());
    }
    ns
}

fn deployment(ns: &str, name: &str, replicas: i32) -> Deployment {
    let mut d = Deployment::default();
    d.metadata.name = name.into();
    d.metadata.namespace = Some(ns.into());
    d.metadata.uid = format!("uid-{name}");
    d.spec.replicas = replicas;
    d
}

/// The ReplicaSet `owner` would make for its current template, as stored (with a uid).
fn current_rs(owner: &Deployment, replicas: i32) -> ReplicaSet {
    let mut w = world(vec![], vec![owner.clone()], vec![]);
    let changes = reconcile_written(&mut w);
    let Some(Change::Put(object)) = changes.into_iter().next() else {
        panic!("expected a new replica set");
    };
    let Object::ReplicaSet(mut rs) = *object else {
        panic!("expected a replica set");
    };
    rs.metadata.uid = format!("uid-{}", rs.metadata.name);
    rs.metadata.creation_timestamp = Some("2026-12-01T00:00:00Z".into());
    rs.spec.replicas = replicas;
    rs
}

/// A pod of `owner` made from its template.
fn owned_pod(owner: &ReplicaSet, name: &str, created: &str) -> Pod {
    let mut pod = replica_set::new_pod(owner);
    pod.metadata.name = name.into();
    pod.metadata.uid = format!("uid-{name}");
    pod.metadata.creation_timestamp = Some(created.into());
    pod
}

/// A world whose namespaces have their `default` ServiceAccounts already.
fn world(namespaces: Vec<Namespace>, deployments: Vec<Deployment>, pods: Vec<Pod>) -> World {
    World {
        service_accounts: namespaces
            .iter()
            .map(|ns| Key::new("ServiceAccount", &ns.metadata.name, "default"))
            .collect(),
        namespaces,
        deployments,
        pods,
        now: NOW.into(),
        ..World::default()
    }
}

/// What the controllers write (their events left out: they go to memory).
fn reconcile_written(world: &mut World) -> Vec<Change> {
    without_events(reconcile_all(world))
}

/// The changes that write something (events go to memory).
fn without_events(changes: Vec<Change>) -> Vec<Change> {
    changes
        .into_iter()
        .filter(|c| !matches!(c, Change::Event(_)))
        .collect()
}

fn pod_key(ns: &str, name: &str) -> Key {
    Key::new("Pod", ns, name)
}

#[test]
fn a_deployment_makes_a_replica_set_which_makes_pods_with_generated_names() {
    let web = deployment("default", "web", 3);
    let hash = pod_template_hash(&web.spec.template);
    let mut w = world(vec![], vec![web.clone()], vec![]);
    let changes = reconcile_written(&mut w);
    let [Change::Put(object)] = changes.as_slice() else {
        panic!("expected one new replica set, got {changes:?}");
    };
    let Object::ReplicaSet(rs) = object.as_ref() else {
        panic!("expected a replica set, got {object:?}");
    };
    assert_eq!(rs.metadata.name, format!("web-{hash}"));
    assert_eq!(rs.spec.replicas, 3, "nothing old: all at once");
    assert_eq!(
        rs.metadata
            .annotations
            .get(REVISION_ANNOTATION)
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(
        rs.spec.selector.match_labels.get(TEMPLATE_HASH_LABEL),
        Some(&hash)
    );

    let rs = current_rs(&web, 3);
    let mut w = world(vec![], vec![web], vec![owned_pod(&rs, "web-a", "1")]);
    w.replica_sets = vec![rs];
    let changes = reconcile_written(&mut w);
    assert_eq!(changes.len(), 2, "{changes:?}");
    for change in &changes {
        let Change::CreatePod { generate_name, pod } = change else {
            panic!("expected a new pod, got {change:?}");
        };
        assert_eq!(generate_name, &format!("web-{hash}-"));
        assert_eq!(pod.metadata.labels.get(TEMPLATE_HASH_LABEL), Some(&hash));
        assert_eq!(
            pod.metadata.controller_ref().map(|o| o.uid.as_str()),
            Some(format!("uid-web-{hash}").as_str())
        );
    }
}

#[test]
fn scaling_down_removes_the_not_ready_then_the_newest() {
    let mut web = deployment("default", "web", 3);
    let rs = current_rs(&web, 3);
    web.spec.replicas = 1;
    let pods = vec![
        owned_pod(&rs, "old-ready", "2026-12-01T00:00:01Z"),
        owned_pod(&rs, "new-ready", "2026-12-01T00:00:03Z"),
        owned_pod(&rs, "not-ready", "2026-12-01T00:00:00Z"),
    ];
    let mut w = world(vec![], vec![web], pods);
    w.replica_sets = vec![rs];
    w.observe_readiness(|pod| pod.metadata.name != "not-ready");
    let changes = reconcile_written(&mut w);
    assert!(
        matches!(&changes[0], Change::Put(o) if matches!(o.as_ref(), Object::ReplicaSet(rs) if rs.spec.replicas == 1)),
        "{changes:?}"
    );
    assert_eq!(
        changes[1..],
        [
            Change::MarkDeleted(pod_key("default", "not-ready")),
            Change::MarkDeleted(pod_key("default", "new-ready")),
        ]
    );
    // The world the next controller sees has them terminating; a second pass adds nothing.
    assert!(reconcile_written(&mut w).is_empty());
}

#[test]
fn pods_made_before_replica_sets_are_adopted_or_replaced() {
    let web = deployment("default", "web", 2);
    let rs = current_rs(&web, 2);
    let direct = |name: &str, hash: &str| {
        let mut pod = owned_pod(&rs, name, "1");
        pod.metadata.owner_references[0].kind = "Deployment".into();
        pod.metadata.owner_references[0].uid = web.metadata.uid.clone();
        pod.metadata
            .labels
            .insert(TEMPLATE_HASH_LABEL.into(), hash.into());
        pod
    };
    let hash = pod_template_hash(&web.spec.template);
    let mut w = world(
        vec![],
        vec![web.clone()],
        vec![direct("same", &hash), direct("older", "0123456789")],
    );
    w.replica_sets = vec![rs.clone()];
    let changes = reconcile_written(&mut w);
    let Change::Put(adopted) = &changes[0] else {
        panic!("expected the adoption first, got {changes:?}");
    };
    let Object::Pod(adopted) = adopted.as_ref() else {
        panic!("expected a pod");
    };
    assert_eq!(adopted.metadata.name, "same");
    assert_eq!(
        adopted.metadata.controller_ref().map(|o| o.uid.clone()),
        Some(rs.metadata.uid.clone())
    );
    assert_eq!(changes[1], Change::MarkDeleted(pod_key("default", "older")));
    // The adopted pod counts for the ReplicaSet in the same pass: one more to make.
    let made = changes
        .iter()
        .filter(|c| matches!(c, Change::CreatePod { .. }))
        .count();
    assert_eq!(made, 1, "{changes:?}");
}

#[test]
fn a_dying_namespace_takes_its_objects_and_goes_when_its_pods_are_gone() {
    let web = deployment("shop", "web", 1);
    let rs = current_rs(&web, 1);
    let pod = owned_pod(&rs, "web-a", "1");
    let other = deployment("default", "db", 0);
    let mut w = world(
        vec![namespace("shop", true), namespace("default", false)],
        vec![web, other],
        vec![pod],
    );
    w.replica_sets = vec![rs.clone()];
    w.config_keys = vec![
        Key::new("ConfigMap", "shop", "settings"),
        Key::new("Secret", "shop", "token"),
    ];
    let mut changes = reconcile_written(&mut w);
    // `db` (0 replicas) gets its empty ReplicaSet; nothing else outside `shop` moves.
    changes.retain(|c| !matches!(c, Change::Put(o) if o.meta().name.starts_with("db-")));
    assert_eq!(
        changes,
        [
            Change::Delete(Key::new("Deployment", "shop", "web")),
            Change::Delete(Key::new("ReplicaSet", "shop", &rs.metadata.name)),
            Change::Delete(Key::new("ConfigMap", "shop", "settings")),
            Change::Delete(Key::new("Secret", "shop", "token")),
            Change::MarkDeleted(pod_key("shop", "web-a")),
        ],
        "no replacement pod for a deployment of a dying namespace, nothing else touched"
    );
    // The pod is still there (terminating): the namespace waits for it.
    w.deployments.retain(|d| d.metadata.name != "db");
    assert!(reconcile_written(&mut w).is_empty());
    w.pods.clear();
    assert_eq!(
        reconcile_written(&mut w),
        [Change::Delete(Key::new("Namespace", "", "shop"))]
    );
}

#[test]
fn objects_whose_controller_is_gone_are_collected_but_not_fleet_pods_or_bare_pods() {
    let gone = deployment("default", "gone", 1);
    let gone_rs = current_rs(&gone, 1);
    let orphan = owned_pod(&gone_rs, "orphan", "1");
    let mut from_fleet = owned_pod(&gone_rs, "from-fleet", "1");
    from_fleet
        .metadata
        .annotations
        .insert(FLEET_UID_ANNOTATION.into(), "c-1".into());
    let mut bare = Pod::default();
    bare.metadata.name = "bare".into();
    bare.metadata.namespace = Some("default".into());
    let mut other_kind = owned_pod(&gone_rs, "other-kind", "1");
    other_kind.metadata.owner_references = vec![OwnerReference {
        // A controller berth does not have (Argo Rollouts'): its pods are not berth's to collect.
        kind: "Rollout".into(),
        uid: "uid-rollout".into(),
        controller: Some(true),
        ..OwnerReference::default()
    }];
    let mut w = world(vec![], vec![], vec![orphan, from_fleet, bare, other_kind]);
    assert_eq!(
        reconcile_written(&mut w),
        [Change::MarkDeleted(pod_key("default", "orphan"))]
    );
    // A ReplicaSet whose Deployment is gone goes at once (its pods then follow).
    let mut w = world(vec![], vec![], vec![]);
    w.replica_sets = vec![gone_rs.clone()];
    assert_eq!(
        reconcile_written(&mut w),
        [Change::Delete(Key::new(
            "ReplicaSet",
            "default",
            &gone_rs.metadata.name
        ))]
    );
}

#[test]
fn node_lifecycle_evicts_from_lost_and_unknown_nodes_and_finalises_unbound_deletions() {
    let pod = |name: &str, node: Option<&str>, deleting: bool| {
        let mut pod = Pod::default();
        pod.metadata.name = name.into();
        pod.metadata.namespace = Some("default".into());
        pod.spec.node_name = node.map(str::to_owned);
        if deleting {
            pod.metadata.deletion_timestamp = Some(NOW.into());
        }
        pod
    };
    let facts = NodeFacts {
        known: ["pi-1", "pi-2"].map(String::from).into(),
        lost: ["pi-2"].map(String::from).into(),
        unreachable: ["pi-2"].map(String::from).into(),
        ..NodeFacts::default()
    };
    let decide = |p: &Pod| node_lifecycle::reconcile(p, &facts);
    assert_eq!(decide(&pod("healthy", Some("pi-1"), false)), None);
    assert_eq!(
        decide(&pod("stopping", Some("pi-1"), true)),
        None,
        "its node removes it"
    );
    assert_eq!(decide(&pod("pending", None, false)), None);
    for (name, node, deleting) in [
        ("on-lost", Some("pi-2"), false),
        ("on-deleted-node", Some("pi-9"), false),
        ("deleted-unbound", None, true),
    ] {
        assert_eq!(
            decide(&pod(name, node, deleting)),
            Some(Change::Delete(pod_key("default", name))),
            "{name}"
        );
    }
}

#[test]
fn the_driver_reads_a_store_and_writes_the_changes_back() {
    let mut store = Store::open_in_memory().unwrap();
    let web = deployment("default", "web", 2);
    let mut objects = vec![
        Object::Deployment(web).to_json(),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": "default"}}),
    ];
    for object in &mut objects {
        if let Some(meta) = object["metadata"].as_object_mut() {
            meta.remove("uid"); // the store assigns uids
        }
    }
    store.put_all(objects, None).unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_669_600);
    let events = EventLog::new();
    let pass = |store: &mut Store| {
        let mut w = driver::load(store, now).unwrap();
        let changes = reconcile_all(&mut w);
        let wrote = driver::write(store, changes.clone(), &w.now, &events).unwrap();
        (w, without_events(changes), wrote)
    };
    let reasons = || -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = events
            .list(None, &FieldSelector::default())
            .into_iter()
            .map(|e| (e.reason, e.message))
            .collect();
        all.sort();
        all
    };

    // First the ReplicaSet, then (once it has a uid) its pods.
    let (w, changes, wrote) = pass(&mut store);
    assert_eq!((w.deployments.len(), w.namespaces.len()), (1, 1));
    assert!(wrote && changes.len() == 1, "{changes:?}");
    let rs = store.list("ReplicaSet", Some("default")).unwrap();
    assert_eq!(rs.len(), 1);
    assert!(!rs[0].uid.is_empty());
    let (_, changes, _) = pass(&mut store);
    assert_eq!(changes.len(), 2, "two replicas: {changes:?}");
    let pods = store.list("Pod", Some("default")).unwrap();
    assert_eq!(pods.len(), 2);
    // What the controllers did, as `berth get events` shows it (memory only).
    let mut expected = vec![(
        "ScalingReplicaSet".to_owned(),
        format!("Scaled up replica set {} to 2", rs[0].name),
    )];
    expected.extend(pods.iter().map(|p| {
        (
            "SuccessfulCreate".to_owned(),
            format!("Created pod: {}", p.name),
        )
    }));
    expected.sort();
    assert_eq!(reasons(), expected);
    let prefix = format!("{}-", rs[0].name);
    assert!(pods
        .iter()
        .all(|p| p.name.starts_with(&prefix) && p.name.len() == prefix.len() + 5));
    let (_, changes, wrote) = pass(&mut store);
    assert!(changes.is_empty() && !wrote, "settled: {changes:?}");

    // Scaled to zero: the ReplicaSet follows and both pods are marked once, dated now, in
    // one pass; writing the same marks again is a no-op.
    let mut deploy = store
        .get("Deployment", "default", "web")
        .unwrap()
        .unwrap()
        .object;
    deploy["spec"]["replicas"] = json!(0);
    store.put_all(vec![deploy], None).unwrap();
    let (w, changes, _) = pass(&mut store);
    assert_eq!(changes.len(), 3, "{changes:?}");
    for pod in store.list("Pod", Some("default")).unwrap() {
        assert_eq!(pod.object["metadata"]["deletionTimestamp"], json!(w.now));
    }
    let marks: Vec<Change> = changes
        .into_iter()
        .filter(|c| matches!(c, Change::MarkDeleted(_)))
        .collect();
    assert!(!driver::write(&mut store, marks, "2030-01-01T00:00:00Z", &events).unwrap());
}

#[test]
fn the_driver_lists_configs_only_in_dying_namespaces_and_keeps_reported_status() {
    let mut store = Store::open_in_memory().unwrap();
    store
        .put_all(
            vec![
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "live"}}),
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dying",
                    "deletionTimestamp": NOW}}),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "live"}}),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "dying"}}),
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "live"}}),
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "dying"}}),
                json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "s", "namespace": "dying"}}),
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "live"},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
            ],
            None,
        )
        .unwrap();
    let ready = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]});
    store.set_status("Pod", "live", "p", &ready).unwrap();
    let w = driver::load(&store, SystemTime::now()).unwrap();
    assert_eq!(
        w.config_keys,
        [
            Key::new("ConfigMap", "dying", "b"),
            Key::new("Service", "dying", "s"),
            Key::new("Endpoints", "dying", "s"),
        ]
    );
    assert!(
        w.pods[0].status.is_ready(),
        "the reported Ready condition is kept"
    );
}

#[test]
fn a_no_execute_taint_evicts_after_the_shortest_toleration() {
    let taint = crate::model::Taint {
        key: "dedicated".into(),
        value: Some("maint".into()),
        effect: "NoExecute".into(),
        time_added: Some(NOW.into()),
    };
    let added = humantime::parse_rfc3339(NOW).unwrap_or(std::time::UNIX_EPOCH);
    let facts = |after: u64| NodeFacts {
        known: ["pi-1"].map(String::from).into(),
        no_execute: [("pi-1".to_owned(), vec![taint.clone()])].into(),
        now: Some(added + std::time::Duration::from_secs(after)),
        ..NodeFacts::default()
    };
    let pod = |tolerations: serde_json::Value| -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"nodeName": "pi-1", "containers": [{"name": "c", "image": "i"}],
                     "tolerations": tolerations}}))
        .unwrap_or_default()
    };
    let evicted = |p: &Pod, after: u64| node_lifecycle::reconcile(p, &facts(after)).is_some();
    let plain = pod(serde_json::json!([]));
    assert!(evicted(&plain, 0), "not tolerated: at once");
    let brief = pod(serde_json::json!([
        {"key": "dedicated", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60},
        {"operator": "Exists", "tolerationSeconds": 30}]));
    assert!(!evicted(&brief, 29));
    assert!(
        evicted(&brief, 30),
        "the shortest of the matching tolerations"
    );
    let forever = pod(serde_json::json!([{"key": "dedicated", "operator": "Exists"}]));
    assert!(!evicted(&forever, 100_000));
}
