//! Automatic rollback, a berth extension for unattended fleets, off by default: a
//! Deployment annotated `berth.dev/auto-rollback: "true"` whose rollout passes its
//! progress deadline, or whose new pods crash-loop, puts the previous revision's
//! template back by itself, as `berth rollout undo` would.
//!
//! The controller records what it did in the annotation `berth.dev/rolled-back`
//! ("<reason>: <message>"), which the status shows as the condition `RolledBack`. It
//! rolls back once per change of the template by the user: while that annotation is
//! present it does not act again, so a previous revision that fails too is not swapped
//! back and forth. Applying a manifest replaces the annotations, and with them the
//! record.

use super::deployment::{revision, template_of_revision, Revisions};
use super::deployment_status::{progress, Progress};
use super::{Change, Note, World};
use crate::model::{Deployment, DeploymentCondition, Object};

pub const AUTO_ROLLBACK_ANNOTATION: &str = "berth.dev/auto-rollback";
pub const ROLLED_BACK_ANNOTATION: &str = "berth.dev/rolled-back";

/// The Deployment rolled back, when `deploy` asks for it and its rollout failed.
pub fn reconcile(deploy: &Deployment, world: &World) -> Option<Vec<Change>> {
    let annotations = &deploy.metadata.annotations;
    if annotations
        .get(AUTO_ROLLBACK_ANNOTATION)
        .map(String::as_str)
        != Some("true")
        || annotations.contains_key(ROLLED_BACK_ANNOTATION)
    {
        return None;
    }
    let revisions = Revisions::of(deploy, world);
    let new = revisions.new?;
    let crash_looping = || {
        world
            .controlled_pods(&new.metadata.uid)
            .iter()
            .any(|pod| world.crash_looping.contains(&pod.metadata.uid))
    };
    let reason = match progress(deploy, world) {
        Progress::Complete | Progress::Paused => return None,
        Progress::DeadlineExceeded { .. } => "ProgressDeadlineExceeded",
        Progress::Progressing { .. } if crash_looping() => "CrashLoopBackOff",
        Progress::Progressing { .. } => return None,
    };
    let template = template_of_revision(&revisions, None).ok()?;
    let to = revisions
        .old
        .iter()
        .map(|rs| revision(rs))
        .filter(|r| *r < revision(new))
        .max()?;
    let message = format!(
        "revision {} (ReplicaSet \"{}\") failed; rolled back to revision {to}",
        revision(new),
        new.metadata.name
    );
    log::warn!(
        "deployment {}/{}: {reason}: {message}",
        deploy.metadata.namespace_or_empty(),
        deploy.metadata.name
    );
    let mut rolled_back = deploy.clone();
    rolled_back.spec.template = template;
    rolled_back.status = Default::default();
    rolled_back.metadata.annotations.insert(
        ROLLED_BACK_ANNOTATION.to_owned(),
        format!("{reason}: {message}"),
    );
    Some(vec![
        Note::warning(
            "Deployment",
            &deploy.metadata,
            "DeploymentRollback",
            format!("{reason}: {message}"),
            "deployment-controller",
        ),
        Change::Put(Box::new(Object::Deployment(rolled_back))),
    ])
}

/// The `RolledBack` condition of a Deployment that rolled itself back, if it did.
pub fn condition(deploy: &Deployment) -> Option<DeploymentCondition> {
    let record = deploy.metadata.annotations.get(ROLLED_BACK_ANNOTATION)?;
    let (reason, message) = record.split_once(": ").unwrap_or(("RolledBack", record));
    Some(DeploymentCondition {
        type_: "RolledBack".to_owned(),
        status: "True".to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        ..Default::default()
    })
}
