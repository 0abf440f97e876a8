//! The shared controllers on typed objects, and the driver on an in-memory store.

use std::time::{Duration, SystemTime};

use serde_json::json;

use super::deployment::TEMPLATE_HASH_LABEL;
use super::node_lifecycle::NodeFacts;
use super::*;
use crate::api::fleet::FLEET_UID_ANNOTATION;
use crate::model::{pod_template_hash, Object, OwnerReference};
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

/// A pod of `owner` made from its current template.
fn owned_pod(owner: &Deployment, name: &str, created: &str) -> Pod {
    let hash = pod_template_hash(&owner.spec.template);
    let mut pod = deployment::new_pod(owner, &hash);
    pod.metadata.name = name.into();
    pod.metadata.uid = format!("uid-{name}");
    pod.metadata.creation_timestamp = Some(created.into());
    pod
}

fn world(namespaces: Vec<Namespace>, deployments: Vec<Deployment>, pods: Vec<Pod>) -> World {
    World {
        namespaces,
        deployments,
        pods,
        now: NOW.into(),
        ..World::default()
    }
}

fn pod_key(ns: &str, name: &str) -> Key {
    Key::new("Pod", ns, name)
}

#[test]
fn a_deployment_creates_its_missing_replicas_with_generated_names() {
    let web = deployment("default", "web", 3);
    let mut w = world(
        vec![],
        vec![web.clone()],
        vec![owned_pod(&web, "web-a", "1")],
    );
    let changes = reconcile_all(&mut w);
    let hash = pod_template_hash(&web.spec.template);
    assert_eq!(changes.len(), 2, "{changes:?}");
    for change in &changes {
        let Change::CreatePod { generate_name, pod } = change else {
            panic!("expected a new pod, got {change:?}");
        };
        assert_eq!(generate_name, &format!("web-{hash}-"));
        assert_eq!(pod.metadata.labels.get(TEMPLATE_HASH_LABEL), Some(&hash));
        assert_eq!(
            pod.metadata.controller_ref().map(|o| o.uid.as_str()),
            Some("uid-web")
        );
    }
}

#[test]
fn scaling_down_removes_the_not_ready_then_the_newest() {
    let web = deployment("default", "web", 1);
    let pods = vec![
        owned_pod(&web, "old-ready", "2026-12-01T00:00:01Z"),
        owned_pod(&web, "new-ready", "2026-12-01T00:00:03Z"),
        owned_pod(&web, "not-ready", "2026-12-01T00:00:00Z"),
    ];
    let mut w = world(vec![], vec![web], pods);
    w.observe_readiness(|pod| {
        pod.metadata.name.ends_with("-ready") && pod.metadata.name != "not-ready"
    });
    let changes = reconcile_all(&mut w);
    assert_eq!(
        changes,
        [
            Change::MarkDeleted(pod_key("default", "not-ready")),
            Change::MarkDeleted(pod_key("default", "new-ready")),
        ]
    );
    // The world the next controller sees has them terminating; a second pass adds nothing.
    assert!(reconcile_all(&mut w).is_empty());
}

#[test]
fn a_template_change_replaces_old_pods() {
    let mut web = deployment("default", "web", 1);
    let old = owned_pod(&web, "web-old", "1");
    web.spec
        .template
        .metadata
        .labels
        .insert("version".into(), "2".into());
    let mut w = world(vec![], vec![web], vec![old]);
    let changes = reconcile_all(&mut w);
    assert!(
        matches!(changes[0], Change::MarkDeleted(ref k) if k == &pod_key("default", "web-old"))
    );
    assert!(matches!(changes[1], Change::CreatePod { .. }));
    assert_eq!(changes.len(), 2);
}

#[test]
fn a_dying_namespace_takes_its_objects_and_goes_when_its_pods_are_gone() {
    let web = deployment("shop", "web", 1);
    let pod = owned_pod(&web, "web-a", "1");
    let other = deployment("default", "db", 0);
    let mut w = world(
        vec![namespace("shop", true), namespace("default", false)],
        vec![web, other],
        vec![pod],
    );
    w.config_keys = vec![
        Key::new("ConfigMap", "shop", "settings"),
        Key::new("Secret", "shop", "token"),
    ];
    let changes = reconcile_all(&mut w);
    assert_eq!(
        changes,
        [
            Change::Delete(Key::new("Deployment", "shop", "web")),
            Change::Delete(Key::new("ConfigMap", "shop", "settings")),
            Change::Delete(Key::new("Secret", "shop", "token")),
            Change::MarkDeleted(pod_key("shop", "web-a")),
        ],
        "no replacement pod for a deployment of a dying namespace, nothing else touched"
    );
    // The pod is still there (terminating): the namespace waits for it.
    assert!(reconcile_all(&mut w).is_empty());
    w.pods.clear();
    assert_eq!(
        reconcile_all(&mut w),
        [Change::Delete(Key::new("Namespace", "", "shop"))]
    );
}

#[test]
fn pods_whose_deployment_is_gone_are_collected_but_not_fleet_pods_or_bare_pods() {
    let gone = deployment("default", "gone", 1);
    let orphan = owned_pod(&gone, "orphan", "1");
    let mut from_fleet = owned_pod(&gone, "from-fleet", "1");
    from_fleet
        .metadata
        .annotations
        .insert(FLEET_UID_ANNOTATION.into(), "c-1".into());
    let mut bare = Pod::default();
    bare.metadata.name = "bare".into();
    bare.metadata.namespace = Some("default".into());
    let mut other_kind = owned_pod(&gone, "other-kind", "1");
    other_kind.metadata.owner_references = vec![OwnerReference {
        kind: "ReplicaSet".into(),
        uid: "uid-rs".into(),
        controller: Some(true),
        ..OwnerReference::default()
    }];
    let mut w = world(vec![], vec![], vec![orphan, from_fleet, bare, other_kind]);
    assert_eq!(
        reconcile_all(&mut w),
        [Change::MarkDeleted(pod_key("default", "orphan"))]
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
    let extra = owned_pod(&web, "web-extra", "2026-12-02T09:00:00Z");
    let mut objects = vec![
        Object::Deployment(web).to_json(),
        Object::Pod(extra).to_json(),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}),
    ];
    for object in &mut objects {
        if let Some(meta) = object["metadata"].as_object_mut() {
            meta.remove("uid"); // the store assigns uids
        }
    }
    store.put_all(objects, None).unwrap();
    // The stored deployment has the store's uid: re-own the pod to it.
    let uid = store
        .get("Deployment", "default", "web")
        .unwrap()
        .unwrap()
        .uid;
    let mut pod = store
        .get("Pod", "default", "web-extra")
        .unwrap()
        .unwrap()
        .object;
    pod["metadata"]["ownerReferences"][0]["uid"] = json!(uid);
    store.put_all(vec![pod], None).unwrap();

    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_669_600);
    let mut w = driver::load(&store, now).unwrap();
    assert_eq!(
        (w.deployments.len(), w.pods.len(), w.namespaces.len()),
        (1, 1, 1)
    );
    let changes = reconcile_all(&mut w);
    assert_eq!(changes.len(), 1, "one more replica: {changes:?}");
    assert!(driver::write(&mut store, changes, &w.now).unwrap());
    let pods = store.list("Pod", Some("default")).unwrap();
    assert_eq!(pods.len(), 2);
    let made = pods.iter().find(|p| p.name != "web-extra").unwrap();
    let hash_prefix = format!(
        "web-{}-",
        made.object["metadata"]["labels"][TEMPLATE_HASH_LABEL]
            .as_str()
            .unwrap()
    );
    assert!(made.name.starts_with(&hash_prefix) && made.name.len() == hash_prefix.len() + 5);

    // Scaled to zero: both are marked once, dated now; writing the same marks again is a no-op.
    let mut deploy = store
        .get("Deployment", "default", "web")
        .unwrap()
        .unwrap()
        .object;
    deploy["spec"]["replicas"] = json!(0);
    store.put_all(vec![deploy], None).unwrap();
    let mut w = driver::load(&store, now).unwrap();
    let changes = reconcile_all(&mut w);
    assert_eq!(changes.len(), 2);
    assert!(driver::write(&mut store, changes.clone(), &w.now).unwrap());
    for pod in store.list("Pod", Some("default")).unwrap() {
        assert_eq!(pod.object["metadata"]["deletionTimestamp"], json!(w.now));
    }
    assert!(!driver::write(&mut store, changes, "2030-01-01T00:00:00Z").unwrap());
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
