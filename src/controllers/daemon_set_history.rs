//! A DaemonSet's revisions: one ControllerRevision per template it has run, named
//! `<daemon set>-<hash>` and numbered as Deployments number their ReplicaSets, so that
//! `rollout history` and `rollout undo` work the same for both. A template that comes
//! back (an undo) makes its revision the newest again; old revisions beyond
//! `revisionHistoryLimit` that no pod runs any more are deleted, oldest first.

use super::daemon_set::REVISION_HASH_LABEL;
use super::deployment::controlled_by;
use super::{key_of, Change, World};
use crate::model::{ControllerRevision, DaemonSet, Object, DEFAULT_REVISION_HISTORY_LIMIT};

/// The revisions of `ds`.
pub fn revisions<'a>(ds: &DaemonSet, world: &'a World) -> Vec<&'a ControllerRevision> {
    world
        .controller_revisions
        .iter()
        .filter(|cr| controlled_by(&cr.metadata, &ds.metadata.uid))
        .collect()
}

/// The revision of the current template (`hash`) made or renumbered, and old ones past
/// the history limit deleted.
pub fn reconcile(ds: &DaemonSet, world: &World, hash: &str) -> Vec<Change> {
    let owned = revisions(ds, world);
    let newest = owned.iter().map(|cr| cr.revision).max().unwrap_or(0);
    let current = owned.iter().find(|cr| {
        cr.metadata
            .labels
            .get(REVISION_HASH_LABEL)
            .map(String::as_str)
            == Some(hash)
    });
    let mut changes = Vec::new();
    match current {
        None => changes.push(put(new_revision(ds, hash, newest + 1))),
        Some(cr) if cr.revision < newest => {
            let mut renumbered = (*cr).clone();
            renumbered.revision = newest + 1;
            changes.push(put(renumbered));
        }
        Some(_) => {}
    }
    let limit = ds
        .spec
        .revision_history_limit
        .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT)
        .max(0) as usize;
    let running: Vec<&str> = world
        .controlled_pods(&ds.metadata.uid)
        .iter()
        .filter_map(|pod| {
            pod.metadata
                .labels
                .get(REVISION_HASH_LABEL)
                .map(String::as_str)
        })
        .collect();
    let mut idle: Vec<&&ControllerRevision> = owned
        .iter()
        .filter(|cr| {
            let of = cr
                .metadata
                .labels
                .get(REVISION_HASH_LABEL)
                .map(String::as_str);
            of != Some(hash) && !of.is_some_and(|h| running.contains(&h))
        })
        .collect();
    if idle.len() > limit {
        crate::support::sort::sort_by_key(&mut idle, |cr| cr.revision);
        changes.extend(
            idle.iter()
                .take(idle.len() - limit)
                .map(|cr| Change::Delete(key_of("ControllerRevision", &cr.metadata))),
        );
    }
    changes
}

fn put(revision: ControllerRevision) -> Change {
    Change::Put(Box::new(Object::ControllerRevision(revision)))
}

fn new_revision(ds: &DaemonSet, hash: &str, number: i64) -> ControllerRevision {
    let mut cr = ControllerRevision::default();
    cr.metadata.name = format!("{}-{hash}", ds.metadata.name);
    cr.metadata.namespace = ds.metadata.namespace.clone();
    cr.metadata.labels = ds.spec.template.metadata.labels.clone();
    cr.metadata
        .labels
        .insert(REVISION_HASH_LABEL.to_owned(), hash.to_owned());
    cr.metadata.owner_references = vec![super::controlled_by_owner("DaemonSet", &ds.metadata)];
    cr.data.spec.template = ds.spec.template.clone();
    cr.revision = number;
    cr
}
