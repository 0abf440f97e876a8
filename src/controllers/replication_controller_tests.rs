//! ReplicationControllers kept by the ReplicaSet controller, stepped through with the
//! in-memory store and kubelet.

use super::replica_set::replication_controller_with_status;
use super::sim::Sim;
use super::*;
use crate::model::parse_manifests;

fn rc(replicas: i32) -> ReplicationController {
    let yaml = format!(
        "apiVersion: v1
kind: ReplicationController
metadata: {{name: web, namespace: default}}
spec:
  replicas: {replicas}
  minReadySeconds: 10
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: busybox}}]
"
    );
    match parse_manifests(&yaml).expect("valid").remove(0) {
        Object::ReplicationController(mut rc) => {
            rc.metadata.uid = "rc-uid".into();
            // The store counts spec changes; this one has had some.
            rc.metadata.generation = 4;
            rc
        }
        other => panic!("not a ReplicationController: {other:?}"),
    }
}

fn sim_of(rc: ReplicationController) -> Sim {
    let mut sim = Sim::empty();
    sim.world.replication_controllers.push(rc);
    sim
}

#[test]
fn it_makes_its_replicas_named_after_it_and_owned_by_it() {
    let mut sim = sim_of(rc(2));
    let changes = sim.pass();
    let names: Vec<&str> = changes
        .iter()
        .filter_map(|change| match change {
            Change::CreatePod { generate_name, .. } => Some(generate_name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["web-", "web-"]);
    assert_eq!(sim.pods().count(), 2);
    for pod in sim.pods() {
        let owner = pod.metadata.controller_ref().expect("owned");
        assert_eq!(
            (owner.api_version.as_str(), owner.kind.as_str()),
            ("v1", "ReplicationController")
        );
        assert_eq!((owner.name.as_str(), owner.uid.as_str()), ("web", "rc-uid"));
        assert_eq!(
            pod.metadata.labels.get("app").map(String::as_str),
            Some("web")
        );
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
    }
    // Kept: another pass makes nothing more.
    sim.pass();
    assert_eq!(sim.pods().count(), 2);
}

#[test]
fn scaling_down_removes_pods_and_a_deleted_pod_is_replaced() {
    let mut sim = sim_of(rc(3));
    sim.pass();
    sim.kubelet(|_| true);
    sim.world.replication_controllers[0].spec.replicas = 1;
    let changes = sim.pass();
    let marked = changes
        .iter()
        .filter(|c| matches!(c, Change::MarkDeleted(_)))
        .count();
    assert_eq!(marked, 2, "{changes:?}");
    let deleted_events = changes
        .iter()
        .filter(|c| {
            matches!(c, Change::Event(note) if note.reason == "SuccessfulDelete"
            && note.kind == "ReplicationController"
            && note.component == "replication-controller")
        })
        .count();
    assert_eq!(deleted_events, 2);
    sim.kubelet(|_| true);
    assert_eq!(sim.pods().count(), 1);

    let survivor = sim.pods().next().expect("one pod").metadata.name.clone();
    sim.world.pods.clear();
    sim.pass();
    let names: Vec<&str> = sim.pods().map(|p| p.metadata.name.as_str()).collect();
    assert_eq!(names.len(), 1);
    assert_ne!(names[0], survivor, "a new pod, not the deleted one");
}

#[test]
fn its_status_is_counted_from_its_pods() {
    let mut sim = sim_of(rc(2));
    sim.pass();
    let status = replication_controller_with_status(rc(2), &sim.world).status;
    assert_eq!(
        (
            status.replicas,
            status.ready_replicas,
            status.available_replicas
        ),
        (2, 0, 0)
    );
    assert_eq!(status.fully_labeled_replicas, 2);
    assert_eq!(status.observed_generation, 4);

    sim.kubelet(|_| true);
    let status = replication_controller_with_status(rc(2), &sim.world).status;
    assert_eq!((status.ready_replicas, status.available_replicas), (2, 0));
    // Available once ready for minReadySeconds.
    sim.tick(10);
    let status = replication_controller_with_status(rc(2), &sim.world).status;
    assert_eq!(status.available_replicas, 2);

    // A pod whose labels were changed by hand still counts, but not as fully labeled.
    if let Some(pod) = sim.world.pods.first_mut() {
        pod.metadata.labels.insert("app".into(), "other".into());
    }
    let status = replication_controller_with_status(rc(2), &sim.world).status;
    assert_eq!((status.replicas, status.fully_labeled_replicas), (2, 1));
}

#[test]
fn its_pods_go_with_it_and_it_goes_with_its_namespace() {
    let mut sim = sim_of(rc(2));
    sim.pass();
    sim.world.replication_controllers.clear();
    let changes = sim.pass();
    let marked = changes
        .iter()
        .filter(|c| matches!(c, Change::MarkDeleted(key) if key.kind == "Pod"))
        .count();
    assert_eq!(
        marked, 2,
        "the garbage collector takes its pods: {changes:?}"
    );

    let mut dying = Namespace::default();
    dying.metadata.name = "default".into();
    dying.metadata.deletion_timestamp = Some("2026-12-02T09:59:00Z".into());
    let mut world = World {
        namespaces: vec![dying],
        replication_controllers: vec![rc(2)],
        ..World::default()
    };
    let changes = reconcile_all(&mut world);
    let wanted = Key::new("ReplicationController", "default", "web");
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::Delete(key) if *key == wanted)),
        "{changes:?}"
    );
    assert!(
        !changes
            .iter()
            .any(|c| matches!(c, Change::CreatePod { .. })),
        "no pods in a dying namespace"
    );
}

#[test]
fn its_pods_are_reported_created_by_the_replication_controller() {
    let mut pod = replica_set::new_pod(&rc(1));
    pod.metadata.name = "web-abcde".into();
    let note = Note::created(&pod).expect("a controlled pod");
    assert_eq!(
        (note.kind.as_str(), note.name.as_str(), note.component),
        ("ReplicationController", "web", "replication-controller")
    );
    assert_eq!(note.message, "Created pod: web-abcde");
}
