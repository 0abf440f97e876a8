//! Kubernetes' pvc-protection, in both scopes: a PersistentVolumeClaim being deleted
//! (`Terminating`) stays while a pod that names it may still run, and goes with the last
//! of them, so no pod loses its data under it. Its directory on the board goes after it
//! (`agent::local_path`).
//!
//! As in Kubernetes, a pod counts once it is placed on a node (a pod still waiting for
//! the scheduler has mounted nothing) — on a lone board, every pod — until its object is
//! gone, terminating or not.

use super::{key_of, Change, World};
use crate::model::{claims_of, PersistentVolumeClaim};

pub fn reconcile(claim: &PersistentVolumeClaim, world: &World) -> Option<Change> {
    claim.metadata.deletion_timestamp.as_ref()?;
    let namespace = claim.metadata.namespace_or_empty();
    let in_use = world.pods.iter().any(|pod| {
        let placed = pod.spec.node_name.is_some() || world.local_node.is_some();
        placed
            && pod.metadata.namespace_or_empty() == namespace
            && claims_of(&pod.spec).contains(&claim.metadata.name.as_str())
    });
    (!in_use).then(|| Change::Delete(key_of("PersistentVolumeClaim", &claim.metadata)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PersistentVolumeClaimVolumeSource, Pod, Volume};

    fn claim(deleting: bool) -> PersistentVolumeClaim {
        let mut claim = PersistentVolumeClaim::default();
        claim.metadata.name = "data".into();
        claim.metadata.namespace = Some("shop".into());
        if deleting {
            claim.metadata.deletion_timestamp = Some("2026-12-02T10:00:00Z".into());
        }
        claim
    }

    fn user(namespace: &str, node: Option<&str>) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = "db".into();
        pod.metadata.namespace = Some(namespace.into());
        pod.spec.node_name = node.map(str::to_owned);
        pod.spec.volumes = vec![Volume {
            name: "v".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: "data".into(),
                read_only: false,
            }),
            ..Default::default()
        }];
        pod
    }

    #[test]
    fn a_claim_in_use_waits_for_its_pods() {
        let gone = Some(Change::Delete(crate::store::Key::new(
            "PersistentVolumeClaim",
            "shop",
            "data",
        )));
        let mut world = World::default();
        assert_eq!(reconcile(&claim(false), &world), None, "not being deleted");
        assert_eq!(reconcile(&claim(true), &world), gone);

        world.pods = vec![user("shop", Some("pi-1"))];
        assert_eq!(
            reconcile(&claim(true), &world),
            None,
            "a placed pod uses it"
        );
        world.pods[0].metadata.deletion_timestamp = Some("2026-12-02T10:00:01Z".into());
        assert_eq!(reconcile(&claim(true), &world), None, "still stopping");

        // A pod of another namespace, or one the scheduler has not placed, mounts nothing.
        world.pods = vec![user("other", Some("pi-1")), user("shop", None)];
        assert_eq!(reconcile(&claim(true), &world), gone);
        // On a lone board every pod runs there.
        world.local_node = Some("pi".into());
        assert_eq!(reconcile(&claim(true), &world), None);
    }
}
