//! Garbage collection by ownerReferences, as Kubernetes' garbage collector does with
//! background propagation: a ReplicaSet whose controlling Deployment no longer exists is
//! deleted, and a pod whose controlling Deployment, ReplicaSet, ReplicationController,
//! DaemonSet, StatefulSet or Job no longer exists is deleted gracefully.

use super::{key_of, mark_pod, Change, World};
use crate::api::fleet::FLEET_UID_ANNOTATION;
use crate::model::{ControllerRevision, Pod, ReplicaSet};

pub fn reconcile(pod: &Pod, world: &World) -> Option<Change> {
    // A pod a coordinator assigned to this board is owned by a controller that lives
    // only at the coordinator, which judges it there.
    if pod.metadata.annotations.contains_key(FLEET_UID_ANNOTATION) {
        return None;
    }
    let owner = pod.metadata.controller_ref()?;
    let alive = match owner.kind.as_str() {
        "Deployment" => world
            .deployments
            .iter()
            .any(|d| d.metadata.uid == owner.uid),
        "ReplicaSet" => world
            .replica_sets
            .iter()
            .any(|rs| rs.metadata.uid == owner.uid),
        "ReplicationController" => world
            .replication_controllers
            .iter()
            .any(|rc| rc.metadata.uid == owner.uid),
        "DaemonSet" => world
            .daemon_sets
            .iter()
            .any(|ds| ds.metadata.uid == owner.uid),
        "Job" => world.jobs.iter().any(|job| job.metadata.uid == owner.uid),
        "StatefulSet" => world
            .stateful_sets
            .iter()
            .any(|set| set.metadata.uid == owner.uid),
        _ => return None,
    };
    if alive {
        None
    } else {
        mark_pod(pod)
    }
}

/// A Job whose controlling CronJob is gone goes too (its pods follow).
pub fn reconcile_job(job: &crate::model::Job, world: &World) -> Option<Change> {
    let owner = job.metadata.controller_ref()?;
    if owner.kind != "CronJob"
        || world
            .cron_jobs
            .iter()
            .any(|cj| cj.metadata.uid == owner.uid)
    {
        return None;
    }
    Some(Change::Delete(key_of("Job", &job.metadata)))
}

pub fn reconcile_replica_set(rs: &ReplicaSet, world: &World) -> Option<Change> {
    let owner = rs.metadata.controller_ref()?;
    if owner.kind != "Deployment" {
        return None;
    }
    let alive = world
        .deployments
        .iter()
        .any(|d| d.metadata.uid == owner.uid);
    (!alive).then(|| Change::Delete(key_of("ReplicaSet", &rs.metadata)))
}

/// A ControllerRevision whose DaemonSet or StatefulSet is gone goes with it.
pub fn reconcile_revision(cr: &ControllerRevision, world: &World) -> Option<Change> {
    let owner = cr.metadata.controller_ref()?;
    let alive = match owner.kind.as_str() {
        "StatefulSet" => world
            .stateful_sets
            .iter()
            .any(|set| set.metadata.uid == owner.uid),
        _ => world
            .daemon_sets
            .iter()
            .any(|ds| ds.metadata.uid == owner.uid),
    };
    (!alive).then(|| Change::Delete(key_of("ControllerRevision", &cr.metadata)))
}
