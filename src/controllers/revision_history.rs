//! The revisions of a DaemonSet or StatefulSet: one ControllerRevision per template it
//! has run, named `<owner>-<hash>`, labelled `controller-revision-hash`, and numbered as
//! Deployments number their ReplicaSets, so that `rollout history` and `rollout undo`
//! work the same for them. A template that comes back (an undo) makes its revision the
//! newest again; old revisions beyond `revisionHistoryLimit` that no pod runs any more
//! are deleted, oldest first.

use super::deployment::controlled_by;
use super::{key_of, Change, World};
use crate::model::{
    ControllerRevision, Object, ObjectMeta, PodTemplateSpec, DEFAULT_REVISION_HISTORY_LIMIT,
};

/// The label a revision and its pods carry: the DaemonSet's template hash, or the
/// StatefulSet's revision name.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// What owns revisions.
pub struct Owner<'a> {
    pub kind: &'static str,
    pub meta: &'a ObjectMeta,
    pub template: &'a PodTemplateSpec,
    pub revision_history_limit: Option<i32>,
}

/// The revisions of the object with `uid`.
pub fn revisions<'a>(uid: &str, world: &'a World) -> Vec<&'a ControllerRevision> {
    world
        .controller_revisions
        .iter()
        .filter(|cr| controlled_by(&cr.metadata, uid))
        .collect()
}

fn label_of(cr: &ControllerRevision) -> Option<&str> {
    cr.metadata.labels.get(REVISION_LABEL).map(String::as_str)
}

/// The revision of the current template (`label`, as its pods carry it; `name`, as it
/// is stored) made or renumbered, and old ones past the history limit that no pod runs
/// deleted.
pub fn reconcile(owner: &Owner, world: &World, label: &str, name: &str) -> Vec<Change> {
    let owned = revisions(&owner.meta.uid, world);
    let newest = owned.iter().map(|cr| cr.revision).max().unwrap_or(0);
    let current = owned.iter().find(|cr| label_of(cr) == Some(label));
    let mut changes = Vec::new();
    match current {
        None => changes.push(put(new_revision(owner, label, name, newest + 1))),
        Some(cr) if cr.revision < newest => {
            let mut renumbered = (*cr).clone();
            renumbered.revision = newest + 1;
            changes.push(put(renumbered));
        }
        Some(_) => {}
    }
    let limit = owner
        .revision_history_limit
        .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT)
        .max(0) as usize;
    let running: Vec<&str> = world
        .controlled_pods(&owner.meta.uid)
        .iter()
        .filter_map(|pod| pod.metadata.labels.get(REVISION_LABEL).map(String::as_str))
        .collect();
    // A StatefulSet's newest revision before the current one stays whatever the limit:
    // it makes the pods below its partition from it, as Kubernetes keeps its current
    // revision.
    let previous = owned
        .iter()
        .filter(|cr| owner.kind == "StatefulSet" && label_of(cr) != Some(label))
        .map(|cr| cr.revision)
        .max();
    let mut idle: Vec<&&ControllerRevision> = owned
        .iter()
        .filter(|cr| {
            let of = label_of(cr);
            of != Some(label) && !of.is_some_and(|l| running.contains(&l))
        })
        .collect();
    if idle.len() > limit {
        crate::support::sort::sort_by_key(&mut idle, |cr| cr.revision);
        changes.extend(
            idle.iter()
                .take(idle.len() - limit)
                .filter(|cr| Some(cr.revision) != previous)
                .map(|cr| Change::Delete(key_of("ControllerRevision", &cr.metadata))),
        );
    }
    changes
}

fn put(revision: ControllerRevision) -> Change {
    Change::Put(Box::new(Object::ControllerRevision(revision)))
}

fn new_revision(owner: &Owner, label: &str, name: &str, number: i64) -> ControllerRevision {
    let mut cr = ControllerRevision::default();
    cr.metadata.name = name.to_owned();
    cr.metadata.namespace = owner.meta.namespace.clone();
    cr.metadata.labels = owner.template.metadata.labels.clone();
    cr.metadata
        .labels
        .insert(REVISION_LABEL.to_owned(), label.to_owned());
    cr.metadata.owner_references = vec![super::controlled_by_owner(owner.kind, owner.meta)];
    cr.data.spec.template = owner.template.clone();
    cr.revision = number;
    cr
}
