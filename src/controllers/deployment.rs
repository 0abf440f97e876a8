//! The Deployment controller: one ReplicaSet per revision of the pod template, rolled
//! out by scaling them ([`super::rollout`] decides the numbers), old ones kept at zero
//! up to `revisionHistoryLimit` for `rollout undo`.
//!
//! The ReplicaSet of the current template is named `<deployment>-<pod-template-hash>`
//! and its pods carry that label. A template that matches an older ReplicaSet (an undo)
//! makes that one current again, with the next revision number. Only a template change
//! starts a rollout; a change of `replicas` scales the current ReplicaSet.

use super::rollout::{new_rs_target, old_rs_scale_down, recreate_step, resolve_bounds, RsState};
use super::{key_of, Change, Note, World};
use crate::model::{
    pod_template_hash, Deployment, IntOrString, Object, ReplicaSet, DEFAULT_REVISION_HISTORY_LIMIT,
};

pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
pub const CHANGE_CAUSE_ANNOTATION: &str = "kubernetes.io/change-cause";

/// A Deployment's ReplicaSets as its controller sees them.
pub struct Revisions<'a> {
    pub hash: String,
    /// The ReplicaSet of the current template, if made yet.
    pub new: Option<&'a ReplicaSet>,
    /// The others, in no particular order.
    pub old: Vec<&'a ReplicaSet>,
}

impl<'a> Revisions<'a> {
    pub fn of(deploy: &Deployment, world: &'a World) -> Revisions<'a> {
        let hash = pod_template_hash(&deploy.spec.template);
        let (new, old): (Vec<&ReplicaSet>, Vec<&ReplicaSet>) = world
            .replica_sets
            .iter()
            .filter(|rs| controlled_by(&rs.metadata, &deploy.metadata.uid))
            .partition(|rs| rs.metadata.labels.get(TEMPLATE_HASH_LABEL) == Some(&hash));
        Revisions {
            hash,
            new: new.into_iter().next(),
            old,
        }
    }

    /// The highest revision among the old ReplicaSets (0 when there is none).
    fn max_old_revision(&self) -> i64 {
        self.old.iter().map(|rs| revision(rs)).max().unwrap_or(0)
    }
}

/// The changes that move `deploy` towards its spec: a ReplicaSet for a new template,
/// ReplicaSets scaled by the strategy's bounds, the history trimmed, and pods made
/// before ReplicaSets existed adopted.
pub fn reconcile(deploy: &Deployment, world: &World) -> Vec<Change> {
    let namespace = deploy.metadata.namespace_or_empty();
    if world.namespace_dying(namespace) || deploy.metadata.uid.is_empty() {
        return Vec::new(); // the namespace controller removes it
    }
    let revisions = Revisions::of(deploy, world);
    let mut changes = adopt_direct_pods(deploy, &revisions, world);
    if deploy.spec.paused {
        changes.extend(paused_scale(deploy, &revisions));
        return changes;
    }
    let Some(new) = revisions.new else {
        let replicas = first_replicas(deploy, &revisions, world);
        let rs = new_replica_set(deploy, &revisions, replicas);
        log::info!(
            "deployment {namespace}/{}: created replica set {} (revision {}) with {replicas} replica(s)",
            deploy.metadata.name,
            rs.metadata.name,
            revision(&rs)
        );
        changes.push(scaling_note(deploy, &rs.metadata.name, 0, replicas));
        changes.push(Change::Put(Box::new(Object::ReplicaSet(rs))));
        return changes;
    };
    let mut new_rs = new.clone();
    let next_revision = revisions.max_old_revision() + 1;
    if revision(new) < next_revision {
        // An older template came back (an undo): it is the newest revision now.
        set_revision(&mut new_rs, deploy, next_revision);
    }
    for (name, replicas) in rollout_targets(deploy, new, &revisions.old, world) {
        if name == new.metadata.name {
            new_rs.spec.replicas = replicas;
        } else if let Some(old) = revisions.old.iter().find(|rs| rs.metadata.name == name) {
            log::info!(
                "deployment {namespace}/{}: scaling replica set {name} to {replicas}",
                deploy.metadata.name
            );
            changes.push(scaling_note(deploy, &name, old.spec.replicas, replicas));
            changes.push(scaled(old, replicas));
        }
    }
    if new_rs != *new {
        if new_rs.spec.replicas != new.spec.replicas {
            log::info!(
                "deployment {namespace}/{}: scaling replica set {} to {}",
                deploy.metadata.name,
                new.metadata.name,
                new_rs.spec.replicas
            );
            changes.push(scaling_note(
                deploy,
                &new.metadata.name,
                new.spec.replicas,
                new_rs.spec.replicas,
            ));
        }
        changes.push(Change::Put(Box::new(Object::ReplicaSet(new_rs))));
    }
    changes.extend(trim_history(deploy, &revisions.old, world));
    changes
}

/// The `spec.replicas` changes a rollout step makes, by strategy.
fn rollout_targets(
    deploy: &Deployment,
    new: &ReplicaSet,
    old: &[&ReplicaSet],
    world: &World,
) -> Vec<(String, i32)> {
    let replicas = deploy.spec.replicas.max(0);
    let min_ready = deploy.spec.min_ready_seconds;
    let mut new_state = world.rs_state(new, min_ready);
    let old_states: Vec<RsState> = old.iter().map(|rs| world.rs_state(rs, min_ready)).collect();
    if deploy.spec.strategy.type_ == "Recreate" {
        let old_pods = old
            .iter()
            .map(|rs| world.controlled_pods(&rs.metadata.uid).len() as i32)
            .sum();
        return recreate_step(replicas, &new_state, &old_states, old_pods);
    }
    let Some((surge, unavailable)) = bounds(deploy) else {
        return Vec::new();
    };
    let mut targets = Vec::new();
    let new_target = new_rs_target(replicas, surge, &new_state, &old_states);
    if new_target != new_state.replicas {
        targets.push((new.metadata.name.clone(), new_target));
        new_state.replicas = new_target;
    }
    targets.extend(old_rs_scale_down(
        replicas,
        unavailable,
        &new_state,
        &old_states,
    ));
    targets
}

/// While paused no rollout moves and no ReplicaSet is made, but a Deployment with one
/// active ReplicaSet (or none: then the newest) still scales, as in Kubernetes.
fn paused_scale(deploy: &Deployment, revisions: &Revisions) -> Vec<Change> {
    let all: Vec<&ReplicaSet> = revisions
        .new
        .iter()
        .copied()
        .chain(revisions.old.iter().copied())
        .collect();
    let active: Vec<&&ReplicaSet> = all.iter().filter(|rs| rs.spec.replicas > 0).collect();
    let target = match active.as_slice() {
        [one] => **one,
        [] => match all.iter().max_by_key(|rs| revision(rs)) {
            Some(latest) => *latest,
            None => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    let replicas = deploy.spec.replicas.max(0);
    if target.spec.replicas == replicas {
        return Vec::new();
    }
    vec![
        scaling_note(
            deploy,
            &target.metadata.name,
            target.spec.replicas,
            replicas,
        ),
        scaled(target, replicas),
    ]
}

/// The surge and unavailability budgets of a rolling update, or `None` (logged) for
/// values only a hand-made object could hold.
pub fn bounds(deploy: &Deployment) -> Option<(i32, i32)> {
    let replicas = deploy.spec.replicas.max(0);
    let quarter = IntOrString::String("25%".to_owned());
    let rolling = deploy.spec.strategy.rolling_update.as_ref();
    let surge = rolling
        .and_then(|r| r.max_surge.as_ref())
        .unwrap_or(&quarter);
    let unavailable = rolling
        .and_then(|r| r.max_unavailable.as_ref())
        .unwrap_or(&quarter);
    match resolve_bounds(replicas, surge, unavailable) {
        Ok(bounds) => Some(bounds),
        Err(err) => {
            log::error!(
                "deployment {}/{}: spec.strategy.rollingUpdate: {err}",
                deploy.metadata.namespace_or_empty(),
                deploy.metadata.name
            );
            None
        }
    }
}

/// The `spec.replicas` of a ReplicaSet made for a new template: under `RollingUpdate`
/// as much as the surge allows at once; under `Recreate` none while old pods remain.
fn first_replicas(deploy: &Deployment, revisions: &Revisions, world: &World) -> i32 {
    let replicas = deploy.spec.replicas.max(0);
    let min_ready = deploy.spec.min_ready_seconds;
    let old_states: Vec<RsState> = revisions
        .old
        .iter()
        .map(|rs| world.rs_state(rs, min_ready))
        .collect();
    let direct_pods = world.controlled_pods(&deploy.metadata.uid).len();
    if deploy.spec.strategy.type_ == "Recreate" {
        let nothing_old =
            direct_pods == 0 && old_states.iter().all(|rs| rs.replicas == 0 && rs.pods == 0);
        return if nothing_old { replicas } else { 0 };
    }
    let Some((surge, _)) = bounds(deploy) else {
        return 0;
    };
    let mut old_states = old_states;
    if direct_pods > 0 {
        // Pods made before ReplicaSets count against the surge like an old ReplicaSet.
        old_states.push(RsState {
            replicas: direct_pods as i32,
            pods: direct_pods as i32,
            ..RsState::default()
        });
    }
    new_rs_target(replicas, surge, &RsState::default(), &old_states)
}

/// The ReplicaSet for `deploy`'s current template, with the next revision number.
fn new_replica_set(deploy: &Deployment, revisions: &Revisions, replicas: i32) -> ReplicaSet {
    let hash = &revisions.hash;
    let mut rs = ReplicaSet::default();
    rs.metadata.name = format!("{}-{hash}", deploy.metadata.name);
    rs.metadata.namespace = deploy.metadata.namespace.clone();
    rs.metadata.labels = deploy.spec.template.metadata.labels.clone();
    rs.metadata
        .labels
        .insert(TEMPLATE_HASH_LABEL.to_owned(), hash.clone());
    rs.metadata.owner_references = vec![super::controlled_by_owner("Deployment", &deploy.metadata)];
    rs.spec.replicas = replicas;
    rs.spec.min_ready_seconds = deploy.spec.min_ready_seconds;
    rs.spec.selector = deploy.spec.selector.clone();
    rs.spec
        .selector
        .match_labels
        .insert(TEMPLATE_HASH_LABEL.to_owned(), hash.clone());
    rs.spec.template = deploy.spec.template.clone();
    rs.spec
        .template
        .metadata
        .labels
        .insert(TEMPLATE_HASH_LABEL.to_owned(), hash.clone());
    set_revision(&mut rs, deploy, revisions.max_old_revision() + 1);
    rs
}

/// Sets the revision annotation, and the change cause the Deployment carries now.
fn set_revision(rs: &mut ReplicaSet, deploy: &Deployment, revision: i64) {
    let annotations = &mut rs.metadata.annotations;
    annotations.insert(REVISION_ANNOTATION.to_owned(), revision.to_string());
    match deploy.metadata.annotations.get(CHANGE_CAUSE_ANNOTATION) {
        Some(cause) => annotations.insert(CHANGE_CAUSE_ANNOTATION.to_owned(), cause.clone()),
        None => annotations.remove(CHANGE_CAUSE_ANNOTATION),
    };
}

/// A ReplicaSet's revision number (0 when it has none).
pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .get(REVISION_ANNOTATION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// Kubernetes' `ScalingReplicaSet` event: "Scaled up replica set web-7d9f to 2".
fn scaling_note(deploy: &Deployment, rs: &str, from: i32, to: i32) -> Change {
    let direction = if to > from { "up" } else { "down" };
    Note::normal(
        "Deployment",
        &deploy.metadata,
        "ScalingReplicaSet",
        format!("Scaled {direction} replica set {rs} to {to}"),
        "deployment-controller",
    )
}

/// `rs` with `spec.replicas` set to `replicas`.
fn scaled(rs: &ReplicaSet, replicas: i32) -> Change {
    let mut rs = rs.clone();
    rs.spec.replicas = replicas;
    Change::Put(Box::new(Object::ReplicaSet(rs)))
}

/// Old ReplicaSets beyond `revisionHistoryLimit`, oldest first, once they are at zero
/// with no pod left.
fn trim_history(deploy: &Deployment, old: &[&ReplicaSet], world: &World) -> Vec<Change> {
    let limit = deploy
        .spec
        .revision_history_limit
        .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT)
        .max(0) as usize;
    let mut idle: Vec<&&ReplicaSet> = old
        .iter()
        .filter(|rs| rs.spec.replicas == 0 && world.controlled_pods(&rs.metadata.uid).is_empty())
        .collect();
    if idle.len() <= limit {
        return Vec::new();
    }
    crate::support::sort::sort_by_key(&mut idle, |rs| (revision(rs), rs.metadata.name.clone()));
    idle.iter()
        .take(idle.len() - limit)
        .map(|rs| Change::Delete(key_of("ReplicaSet", &rs.metadata)))
        .collect()
}

/// Pods a Deployment made itself before it had ReplicaSets (berth before revisions):
/// the current ReplicaSet adopts those of its template, so an upgrade restarts nothing;
/// pods of another template are replaced.
fn adopt_direct_pods(deploy: &Deployment, revisions: &Revisions, world: &World) -> Vec<Change> {
    let Some(new) = revisions.new else {
        return Vec::new();
    };
    world
        .controlled_pods(&deploy.metadata.uid)
        .into_iter()
        .filter_map(|pod| {
            if pod.metadata.labels.get(TEMPLATE_HASH_LABEL) != Some(&revisions.hash) {
                return super::mark_pod(pod);
            }
            let mut adopted = pod.clone();
            adopted.metadata.owner_references =
                vec![super::controlled_by_owner("ReplicaSet", &new.metadata)];
            Some(Change::Put(Box::new(Object::Pod(adopted))))
        })
        .collect()
}

/// Whether `meta`'s controlling owner has uid `uid`.
pub fn controlled_by(meta: &crate::model::ObjectMeta, uid: &str) -> bool {
    meta.controller_ref().is_some_and(|owner| owner.uid == uid)
}

/// The template of revision `revision` (the newest one before the current when
/// `None`), as `rollout undo` puts it back: without the `pod-template-hash` label.
pub fn template_of_revision(
    revisions: &Revisions,
    revision_wanted: Option<i64>,
) -> Result<crate::model::PodTemplateSpec, String> {
    let current = revisions.new.map(revision).unwrap_or(0);
    let found = match revision_wanted {
        Some(wanted) => revisions
            .old
            .iter()
            .chain(revisions.new.iter())
            .find(|rs| revision(rs) == wanted)
            .ok_or_else(|| format!("unable to find specified revision {wanted} in history"))?,
        None => revisions
            .old
            .iter()
            .filter(|rs| revision(rs) < current || current == 0)
            .max_by_key(|rs| revision(rs))
            .ok_or_else(|| "no rollout history found".to_owned())?,
    };
    let mut template = found.spec.template.clone();
    template.metadata.labels.remove(TEMPLATE_HASH_LABEL);
    Ok(template)
}
