//! The StatefulSet controller stepped through with the in-memory store and kubelet.

use super::sim::Sim;
use super::stateful_set::with_status;
use super::*;
use crate::model::parse_manifests;

fn set(extra: &str) -> StatefulSet {
    let yaml = format!(
        "apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db, namespace: default}}
spec:
  serviceName: db
  replicas: 3
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec:
      containers:
      - {{name: db, image: busybox, volumeMounts: [{{name: data, mountPath: /data}}]}}
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}
{extra}"
    );
    match parse_manifests(&yaml).expect("valid").remove(0) {
        Object::StatefulSet(mut set) => {
            set.metadata.uid = "set-uid".into();
            set
        }
        other => panic!("not a StatefulSet: {other:?}"),
    }
}

fn sim_of(set: StatefulSet) -> Sim {
    let mut sim = Sim::empty();
    sim.world.stateful_sets.push(set);
    sim
}

fn names(sim: &Sim) -> Vec<String> {
    let mut names: Vec<String> = sim.pods().map(|p| p.metadata.name.clone()).collect();
    names.sort();
    names
}

fn all_ready(_: &Pod) -> bool {
    true
}

#[test]
fn ordered_ready_makes_one_pod_at_a_time_in_order() {
    let mut sim = sim_of(set(""));
    sim.pass();
    assert_eq!(names(&sim), ["db-0"]);
    // Not ready yet: nothing more.
    sim.kubelet(|_| false);
    sim.pass();
    assert_eq!(names(&sim), ["db-0"]);
    sim.kubelet(all_ready);
    sim.pass();
    assert_eq!(names(&sim), ["db-0", "db-1"]);
    sim.kubelet(all_ready);
    sim.pass();
    sim.kubelet(all_ready);
    sim.pass();
    assert_eq!(names(&sim), ["db-0", "db-1", "db-2"]);

    let pod = sim.pods().find(|p| p.metadata.name == "db-1").unwrap();
    assert_eq!(pod.spec.hostname.as_deref(), Some("db-1"));
    assert_eq!(pod.spec.subdomain.as_deref(), Some("db"));
    assert_eq!(
        pod.metadata.labels["statefulset.kubernetes.io/pod-name"],
        "db-1"
    );
    assert_eq!(pod.metadata.labels["apps.kubernetes.io/pod-index"], "1");
    let claim = pod.spec.volumes[0]
        .persistent_volume_claim
        .as_ref()
        .unwrap();
    assert_eq!(claim.claim_name, "data-db-1");
    let claims: Vec<&str> = {
        let mut keys: Vec<&str> = sim.world.claims.iter().map(|k| k.name.as_str()).collect();
        keys.sort();
        keys
    };
    assert_eq!(claims, ["data-db-0", "data-db-1", "data-db-2"]);
    let events: Vec<&str> = sim.events.iter().map(|e| e.message.as_str()).collect();
    assert!(
        events.contains(&"create Claim data-db-0 Pod db-0 in StatefulSet db success"),
        "{events:?}"
    );
}

#[test]
fn parallel_makes_and_removes_all_at_once() {
    let mut sim = sim_of(set("  podManagementPolicy: Parallel\n"));
    sim.pass();
    assert_eq!(names(&sim), ["db-0", "db-1", "db-2"]);
    sim.world.stateful_sets[0].spec.replicas = 1;
    sim.kubelet(|_| false);
    sim.pass();
    sim.kubelet(|_| false);
    assert_eq!(names(&sim), ["db-0"]);
    // Claims are kept when the set scales down.
    assert_eq!(sim.world.claims.len(), 3);
}

#[test]
fn ordered_scale_down_removes_the_highest_first_one_at_a_time() {
    let mut sim = sim_of(set(""));
    for _ in 0..3 {
        sim.pass();
        sim.kubelet(all_ready);
    }
    sim.world.stateful_sets[0].spec.replicas = 1;
    sim.pass();
    assert_eq!(names(&sim), ["db-0", "db-1"]);
    sim.kubelet(all_ready);
    sim.pass();
    sim.kubelet(all_ready);
    assert_eq!(names(&sim), ["db-0"]);
}

#[test]
fn a_deleted_pod_comes_back_with_its_name_and_claim() {
    let mut sim = sim_of(set(""));
    for _ in 0..3 {
        sim.pass();
        sim.kubelet(all_ready);
    }
    let old_uid = sim
        .world
        .pods
        .iter()
        .find(|p| p.metadata.name == "db-1")
        .unwrap()
        .metadata
        .uid
        .clone();
    sim.world.pods.retain(|p| p.metadata.name != "db-1");
    sim.pass();
    let again = sim
        .pods()
        .find(|p| p.metadata.name == "db-1")
        .expect("made again");
    assert_ne!(again.metadata.uid, old_uid);
    let claim = again.spec.volumes[0]
        .persistent_volume_claim
        .as_ref()
        .unwrap();
    assert_eq!(claim.claim_name, "data-db-1");
    // No claim is made twice (the sim panics if one is).
    assert_eq!(sim.world.claims.len(), 3);
}

#[test]
fn a_rolling_update_goes_down_from_the_highest_ordinal_to_the_partition() {
    let mut sim = sim_of(set("  updateStrategy: {rollingUpdate: {partition: 1}}\n"));
    for _ in 0..3 {
        sim.pass();
        sim.kubelet(all_ready);
    }
    let old = sim.world.stateful_sets[0].update_revision();
    sim.world.stateful_sets[0].spec.template.spec.containers[0].image = "busybox:2".into();
    let new = sim.world.stateful_sets[0].update_revision();
    assert_ne!(old, new);
    let revision_of = |sim: &Sim, name: &str| {
        sim.pods()
            .find(|p| p.metadata.name == name)
            .map(|p| p.metadata.labels["controller-revision-hash"].clone())
    };
    sim.pass();
    assert_eq!(names(&sim), ["db-0", "db-1"], "db-2 goes first");
    sim.kubelet(all_ready);
    sim.pass();
    assert_eq!(revision_of(&sim, "db-2"), Some(new.clone()));
    // db-2 is not ready yet: db-1 waits.
    sim.kubelet(|p| p.metadata.name != "db-2");
    sim.pass();
    assert_eq!(revision_of(&sim, "db-1"), Some(old.clone()));
    for _ in 0..4 {
        sim.kubelet(all_ready);
        sim.pass();
    }
    assert_eq!(revision_of(&sim, "db-1"), Some(new.clone()));
    // Below the partition: kept.
    assert_eq!(revision_of(&sim, "db-0"), Some(old.clone()));
    let status = with_status(sim.world.stateful_sets[0].clone(), &sim.world).status;
    assert_eq!(status.replicas, 3);
    assert_eq!(status.updated_replicas, 2);
    assert_eq!(status.current_revision, old);
    assert_eq!(status.update_revision, new);
    assert_eq!(status.current_replicas, 1);
}

#[test]
fn a_pod_below_the_partition_comes_back_with_its_old_revision() {
    // Even with no history kept, the revision below the partition stays.
    let mut sim = sim_of(set(
        "  revisionHistoryLimit: 0\n  updateStrategy: {rollingUpdate: {partition: 2}}\n",
    ));
    for _ in 0..3 {
        sim.pass();
        sim.kubelet(all_ready);
    }
    let old = sim.world.stateful_sets[0].update_revision();
    sim.world.stateful_sets[0].spec.template.spec.containers[0].image = "busybox:2".into();
    let new = sim.world.stateful_sets[0].update_revision();
    for _ in 0..4 {
        sim.pass();
        sim.kubelet(all_ready);
    }
    let kept: Vec<(String, i64)> = sim
        .world
        .controller_revisions
        .iter()
        .map(|cr| (cr.metadata.name.clone(), cr.revision))
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept.contains(&(old.clone(), 1)) && kept.contains(&(new.clone(), 2)));
    let version = |sim: &Sim, name: &str| {
        sim.pods().find(|p| p.metadata.name == name).map(|p| {
            let revision = p.metadata.labels["controller-revision-hash"].clone();
            (revision, p.spec.containers[0].image.clone())
        })
    };
    assert_eq!(
        version(&sim, "db-2"),
        Some((new.clone(), "busybox:2".into()))
    );
    // db-0 and db-1 lost: both come back as they were, below the partition.
    sim.world.pods.retain(|p| p.metadata.name == "db-2");
    for _ in 0..3 {
        sim.pass();
        sim.kubelet(all_ready);
    }
    assert_eq!(version(&sim, "db-0"), Some((old.clone(), "busybox".into())));
    assert_eq!(version(&sim, "db-1"), Some((old.clone(), "busybox".into())));
    // Lowering the partition then updates db-1 to the new revision.
    sim.world.stateful_sets[0]
        .spec
        .update_strategy
        .rolling_update
        .as_mut()
        .unwrap()
        .partition = 1;
    for _ in 0..3 {
        sim.pass();
        sim.kubelet(all_ready);
    }
    assert_eq!(version(&sim, "db-1"), Some((new, "busybox:2".into())));
    assert_eq!(version(&sim, "db-0"), Some((old, "busybox".into())));
}

#[test]
fn on_delete_updates_only_what_is_deleted() {
    let mut sim = sim_of(set("  updateStrategy: {type: OnDelete}\n"));
    for _ in 0..3 {
        sim.pass();
        sim.kubelet(all_ready);
    }
    sim.world.stateful_sets[0].spec.template.spec.containers[0].image = "busybox:2".into();
    let changes = sim.pass();
    assert!(
        !changes.iter().any(|c| matches!(c, Change::MarkDeleted(_))),
        "{changes:?}"
    );
}

#[test]
fn pods_of_a_deleted_set_are_collected() {
    let mut sim = sim_of(set("  podManagementPolicy: Parallel\n"));
    sim.pass();
    sim.world.stateful_sets.clear();
    sim.pass();
    sim.kubelet(all_ready);
    assert!(names(&sim).is_empty());
}
