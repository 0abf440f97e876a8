//! Garbage collection by ownerReferences: a pod whose controlling Deployment no longer
//! exists is deleted gracefully, as Kubernetes' garbage collector does with background
//! propagation.

use super::{mark_pod, Change, World};
use crate::api::fleet::FLEET_UID_ANNOTATION;
use crate::model::Pod;

pub fn reconcile(pod: &Pod, world: &World) -> Option<Change> {
    // A pod a coordinator assigned to this board is owned by a Deployment that lives
    // only at the coordinator, which judges it there.
    if pod.metadata.annotations.contains_key(FLEET_UID_ANNOTATION) {
        return None;
    }
    let owner = pod.metadata.controller_ref()?;
    if owner.kind != "Deployment" {
        return None;
    }
    let alive = world
        .deployments
        .iter()
        .any(|d| d.metadata.uid == owner.uid);
    if alive {
        None
    } else {
        mark_pod(pod)
    }
}
