//! A Deployment's status, derived from its ReplicaSets and their pods as a scope
//! observes them: counts, the `Available` and `Progressing` conditions, and whether the
//! rollout has gone past its progress deadline.
//!
//! Nothing of it is stored. The time of the last progress, which Kubernetes keeps in the
//! `Progressing` condition, is read from the objects instead: the latest of the current
//! ReplicaSet's creation, its pods' creation and the moment each became ready. A rollout
//! makes progress exactly when one of those happens (a step scales the new ReplicaSet
//! up, which makes a pod; a pod that becomes ready lets the next step go).

use super::deployment::{bounds, revision, Revisions, REVISION_ANNOTATION};
use super::rollout::is_complete;
use super::World;
use crate::model::{
    Deployment, DeploymentCondition, DeploymentStatus, Pod, DEFAULT_PROGRESS_DEADLINE_SECONDS,
};

/// Where a rollout stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// `spec.paused`: nothing moves, no deadline runs.
    Paused,
    /// The current ReplicaSet has every replica available and no old pod is left.
    Complete,
    /// Moving; the last progress was at `since` (Unix seconds).
    Progressing { since: i64 },
    /// No progress for `progressDeadlineSeconds` since `since`.
    DeadlineExceeded { since: i64 },
}

/// Where `deploy`'s rollout stands in `world`.
pub fn progress(deploy: &Deployment, world: &World) -> Progress {
    if deploy.spec.paused {
        return Progress::Paused;
    }
    let revisions = Revisions::of(deploy, world);
    let Some(new) = revisions.new else {
        return Progress::Progressing {
            since: world.now_secs,
        };
    };
    let min_ready = deploy.spec.min_ready_seconds;
    let new_state = world.rs_state(new, min_ready);
    let old_states: Vec<_> = revisions
        .old
        .iter()
        .map(|rs| world.rs_state(rs, min_ready))
        .collect();
    let no_direct_pods = world.controlled_pods(&deploy.metadata.uid).is_empty();
    if no_direct_pods && is_complete(deploy.spec.replicas.max(0), &new_state, &old_states) {
        return Progress::Complete;
    }
    let pods = world.controlled_pods(&new.metadata.uid);
    let since = pods
        .iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .flat_map(|pod| {
            let ready = world.ready_since.get(&pod.metadata.uid).copied();
            [seconds(pod.metadata.creation_timestamp.as_deref()), ready]
        })
        .chain([seconds(new.metadata.creation_timestamp.as_deref())])
        .flatten()
        .max()
        .unwrap_or(world.now_secs);
    let deadline = deploy
        .spec
        .progress_deadline_seconds
        .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS);
    if world.now_secs > since + i64::from(deadline) {
        Progress::DeadlineExceeded { since }
    } else {
        Progress::Progressing { since }
    }
}

/// When (Unix seconds) something about `deploy` changes with time alone: a ready pod
/// becomes available, or the progress deadline passes. A scope wakes its controllers
/// then.
pub fn next_change(deploy: &Deployment, world: &World) -> Option<i64> {
    let min_ready = i64::from(deploy.spec.min_ready_seconds);
    let revisions = Revisions::of(deploy, world);
    let available_at = revisions
        .new
        .iter()
        .chain(revisions.old.iter())
        .flat_map(|rs| world.controlled_pods(&rs.metadata.uid))
        .filter_map(|pod| world.ready_since.get(&pod.metadata.uid))
        .map(|since| since + min_ready)
        .filter(|at| *at > world.now_secs);
    let deadline = match progress(deploy, world) {
        Progress::Progressing { since } => Some(
            since
                + i64::from(
                    deploy
                        .spec
                        .progress_deadline_seconds
                        .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS),
                )
                + 1,
        ),
        _ => None,
    };
    available_at.chain(deadline).min()
}

/// `deploy` as the API shows it: its status counted from its ReplicaSets' pods, and the
/// current revision in `deployment.kubernetes.io/revision`.
pub fn with_status(mut deploy: Deployment, world: &World) -> Deployment {
    let revisions = Revisions::of(&deploy, world);
    let min_ready = deploy.spec.min_ready_seconds;
    let mut pods: Vec<&Pod> = world.controlled_pods(&deploy.metadata.uid);
    for rs in revisions.new.iter().chain(revisions.old.iter()) {
        pods.extend(world.controlled_pods(&rs.metadata.uid));
    }
    pods.retain(|pod| pod.metadata.deletion_timestamp.is_none());
    let new_uid = revisions.new.map(|rs| rs.metadata.uid.as_str());
    let count = |f: &dyn Fn(&Pod) -> bool| pods.iter().filter(|p| f(p)).count() as i32;
    let wanted = deploy.spec.replicas.max(0);
    let available = count(&|p| world.is_available(p, min_ready));
    let updated =
        count(&|p| new_uid.is_some_and(|uid| super::deployment::controlled_by(&p.metadata, uid)));
    let max_unavailable = match deploy.spec.strategy.type_.as_str() {
        "Recreate" => wanted,
        _ => bounds(&deploy).map_or(0, |(_, unavailable)| unavailable.min(wanted)),
    };
    let available_ok = available >= wanted - max_unavailable;
    let new_name = revisions.new.map(|rs| rs.metadata.name.clone());
    let progressing = progressing_condition(progress(&deploy, world), new_name.as_deref());
    if let Some(new) = revisions.new {
        deploy
            .metadata
            .annotations
            .insert(REVISION_ANNOTATION.to_owned(), revision(new).to_string());
    }
    deploy.status = DeploymentStatus {
        observed_generation: deploy.metadata.generation,
        replicas: pods.len() as i32,
        updated_replicas: updated,
        ready_replicas: count(&|p| world.is_ready(p)),
        available_replicas: available,
        unavailable_replicas: (wanted - available).max(0),
        conditions: vec![available_condition(available_ok), progressing],
    };
    deploy
        .status
        .conditions
        .extend(super::auto_rollback::condition(&deploy));
    deploy
}

fn available_condition(ok: bool) -> DeploymentCondition {
    let (reason, message) = if ok {
        (
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        (
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    condition(
        "Available",
        if ok { "True" } else { "False" },
        reason,
        message.to_owned(),
    )
}

/// Kubernetes' `Progressing` condition for where the rollout stands.
fn progressing_condition(progress: Progress, new: Option<&str>) -> DeploymentCondition {
    let new = new.unwrap_or_default();
    let mut since = None;
    let (status, reason, message) = match progress {
        Progress::Paused => (
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused".to_owned(),
        ),
        Progress::Complete => (
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{new}\" has successfully progressed."),
        ),
        Progress::Progressing { since: at } => {
            since = Some(at);
            (
                "True",
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{new}\" is progressing."),
            )
        }
        Progress::DeadlineExceeded { since: at } => {
            since = Some(at);
            (
                "False",
                "ProgressDeadlineExceeded",
                format!("ReplicaSet \"{new}\" has timed out progressing."),
            )
        }
    };
    let mut condition = condition("Progressing", status, reason, message);
    condition.last_update_time = since.and_then(rfc3339);
    condition
}

fn condition(type_: &str, status: &str, reason: &str, message: String) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message),
        ..Default::default()
    }
}

/// Unix seconds of an RFC 3339 timestamp, if it is one.
pub fn seconds(text: Option<&str>) -> Option<i64> {
    let time = humantime::parse_rfc3339_weak(text?).ok()?;
    let since_epoch = time.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(since_epoch.as_secs()).ok()
}

/// RFC 3339 text (UTC, seconds) of Unix seconds.
pub fn rfc3339(secs: i64) -> Option<String> {
    let secs = u64::try_from(secs).ok()?;
    let time = std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs))?;
    Some(humantime::format_rfc3339_seconds(time).to_string())
}
