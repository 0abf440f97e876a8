//! The StatefulSet controller: pods with a stable identity, made, removed and updated in
//! ordinal order, as Kubernetes' StatefulSet controller does.
//!
//! Pod `N` is `<set>-N`, with hostname `<set>-N` and subdomain `serviceName`, so the
//! governing headless Service gives it the DNS name `<set>-N.<service>`. Before it is
//! made, its claims (`<template>-<set>-N`, one per `volumeClaimTemplates` entry) are made
//! if missing; they are never deleted by the controller (`Retain`), so a pod made again,
//! after a deletion, a scale down and up or a new template, mounts the same data. In a
//! fleet the claim keeps the pod on the board that holds it.
//!
//! `OrderedReady` (the default) makes pod `N` only when pods below it are running and
//! ready, and removes the highest ordinal first, one at a time, only while the others
//! are ready. `Parallel` makes and removes them all at once. A `RollingUpdate` replaces,
//! once every pod is ready, the pods from the highest ordinal down to `partition` whose
//! revision is not the template's, one at a time, waiting for each to be ready again.
//! `OnDelete` leaves them until someone deletes them.
//!
//! Each template the set has run is kept as a ControllerRevision
//! ([`super::revision_history`]), so that a pod below the partition that is made again
//! during a partitioned update comes back with the revision the pods below the partition
//! run, as Kubernetes does; elsewhere (and with `OnDelete`) pods are made from the
//! current template. The partition counts from the first ordinal.

use std::collections::BTreeMap;

use super::revision_history::{self, Owner};
use super::{key_of, mark_pod, Change, Note, World};
use crate::model::stateful_set::{POD_INDEX_LABEL, POD_NAME_LABEL, REVISION_LABEL, ROLLING_UPDATE};
use crate::model::{
    ControllerRevision, Object, PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod,
    PodTemplateSpec, StatefulSet, StatefulSetStatus, Volume,
};

const COMPONENT: &str = "statefulset-controller";

/// The set's pods by ordinal (terminating ones included), and those that are not one
/// of its names.
struct Members<'a> {
    by_ordinal: BTreeMap<i32, &'a Pod>,
    strangers: Vec<&'a Pod>,
}

fn members<'a>(set: &StatefulSet, world: &'a World) -> Members<'a> {
    let mut by_ordinal = BTreeMap::new();
    let mut strangers = Vec::new();
    for pod in world.controlled_pods(&set.metadata.uid) {
        match set.ordinal_of(&pod.metadata.name) {
            Some(ordinal) => {
                by_ordinal.insert(ordinal, pod);
            }
            None => strangers.push(pod),
        }
    }
    Members {
        by_ordinal,
        strangers,
    }
}

/// The changes that bring `set` one step closer to its spec.
pub fn reconcile(set: &StatefulSet, world: &World) -> Vec<Change> {
    let namespace = set.metadata.namespace_or_empty();
    if world.namespace_dying(namespace) || set.metadata.uid.is_empty() {
        return Vec::new();
    }
    let members = members(set, world);
    let wanted = wanted_ordinals(set);
    let revision = set.update_revision();
    let owner = Owner {
        kind: "StatefulSet",
        meta: &set.metadata,
        template: &set.spec.template,
        revision_history_limit: set.spec.revision_history_limit,
    };
    let mut changes = revision_history::reconcile(&owner, world, &revision, &revision);
    changes.extend(members.strangers.iter().flat_map(|pod| remove(set, pod)));
    // A failed pod is removed and made again, as Kubernetes does with an evicted one.
    for pod in members.by_ordinal.values() {
        if world.failed_pods.contains_key(&pod.metadata.uid) {
            changes.extend(remove(set, pod));
        }
    }
    let healthy = |pod: &Pod| {
        pod.metadata.deletion_timestamp.is_none()
            && !world.failed_pods.contains_key(&pod.metadata.uid)
            && world.is_available(pod, set.spec.min_ready_seconds)
    };
    let parallel = set.spec.parallel();
    let mut all_healthy = true;
    for ordinal in wanted.clone() {
        match members.by_ordinal.get(&ordinal) {
            None => {
                let (template, revision) = version_for(set, ordinal, &members, &revision, world);
                changes.extend(create(set, template, ordinal, &revision, world));
            }
            Some(pod) if healthy(pod) => continue,
            Some(_) => {}
        }
        all_healthy = false;
        if !parallel {
            // Ordered: nothing after a pod that is not yet running and ready.
            return changes;
        }
    }
    let condemned: Vec<&Pod> = members
        .by_ordinal
        .iter()
        .rev()
        .filter(|(ordinal, _)| !wanted.contains(ordinal))
        .map(|(_, pod)| *pod)
        .collect();
    if parallel {
        changes.extend(condemned.iter().flat_map(|pod| remove(set, pod)));
    } else if let Some(highest) = condemned.first() {
        // Ordered: one at a time, the highest first, while the rest are ready.
        if all_healthy {
            changes.extend(remove(set, highest));
        }
        return changes;
    }
    if all_healthy && condemned.is_empty() {
        changes.extend(next_update(set, &members, &revision));
    }
    changes
}

fn wanted_ordinals(set: &StatefulSet) -> std::ops::Range<i32> {
    let start = set.spec.start_ordinal();
    start..start.saturating_add(set.spec.replicas.max(0))
}

/// The next pod a rolling update replaces: the highest at or above the partition whose
/// revision is not the template's.
fn next_update(set: &StatefulSet, members: &Members, revision: &str) -> Option<Change> {
    if set.spec.update_strategy.type_ != ROLLING_UPDATE {
        return None;
    }
    let partition = set
        .spec
        .start_ordinal()
        .saturating_add(set.spec.partition());
    let outdated = members
        .by_ordinal
        .iter()
        .rev()
        .filter(|(ordinal, _)| **ordinal >= partition)
        .map(|(_, pod)| *pod)
        .find(|pod| {
            pod.metadata.labels.get(REVISION_LABEL).map(String::as_str) != Some(revision)
        })?;
    log::info!(
        "stateful set {}/{}: updating pod {} to revision {revision}",
        set.metadata.namespace_or_empty(),
        set.metadata.name,
        outdated.metadata.name
    );
    mark_pod(outdated)
}

/// Graceful deletion of one of the set's pods, with Kubernetes' event.
fn remove(set: &StatefulSet, pod: &Pod) -> Vec<Change> {
    let Some(mark) = mark_pod(pod) else {
        return Vec::new();
    };
    vec![
        mark,
        Note::normal(
            "StatefulSet",
            &set.metadata,
            "SuccessfulDelete",
            format!(
                "delete Pod {} in StatefulSet {} successful",
                pod.metadata.name, set.metadata.name
            ),
            COMPONENT,
        ),
    ]
}

/// The template and revision to make pod `ordinal` from: below the partition of a
/// rolling update, the revision the pods there run (the lowest one's that is not the
/// update revision, else the newest kept before it), if its ControllerRevision is kept;
/// otherwise the set's template.
fn version_for<'a>(
    set: &'a StatefulSet,
    ordinal: i32,
    members: &Members,
    update_revision: &str,
    world: &'a World,
) -> (&'a PodTemplateSpec, String) {
    let current = (&set.spec.template, update_revision.to_owned());
    let below_partition = set
        .spec
        .start_ordinal()
        .saturating_add(set.spec.partition());
    if set.spec.update_strategy.type_ != ROLLING_UPDATE || ordinal >= below_partition {
        return current;
    }
    let kept = revision_history::revisions(&set.metadata.uid, world);
    let label = |cr: &ControllerRevision| cr.metadata.labels.get(REVISION_LABEL).cloned();
    let running_below = members
        .by_ordinal
        .range(..below_partition)
        .filter_map(|(_, pod)| pod.metadata.labels.get(REVISION_LABEL))
        .find(|revision| *revision != update_revision);
    let older = match running_below {
        Some(revision) => kept
            .into_iter()
            .find(|cr| label(cr).as_deref() == Some(revision.as_str())),
        None => {
            let update = kept
                .iter()
                .find(|cr| label(cr).as_deref() == Some(update_revision))
                .map_or(i64::MAX, |cr| cr.revision);
            kept.into_iter()
                .filter(|cr| cr.revision < update)
                .max_by_key(|cr| cr.revision)
        }
    };
    match older.and_then(|cr| Some((&cr.data.spec.template, label(cr)?))) {
        Some(version) => version,
        None => current,
    }
}

/// The pod with `ordinal`, after the claims it mounts that do not exist yet.
fn create(
    set: &StatefulSet,
    template: &PodTemplateSpec,
    ordinal: i32,
    revision: &str,
    world: &World,
) -> Vec<Change> {
    let pod = new_pod(set, template, ordinal, revision);
    let mut changes = Vec::new();
    for template in &set.spec.volume_claim_templates {
        let claim = new_claim(set, template, ordinal);
        if world
            .claims
            .contains(&key_of("PersistentVolumeClaim", &claim.metadata))
        {
            continue;
        }
        changes.push(Note::normal(
            "StatefulSet",
            &set.metadata,
            "SuccessfulCreate",
            format!(
                "create Claim {} Pod {} in StatefulSet {} success",
                claim.metadata.name, pod.metadata.name, set.metadata.name
            ),
            COMPONENT,
        ));
        changes.push(Change::Put(Box::new(Object::PersistentVolumeClaim(claim))));
    }
    changes.push(Change::CreatePod {
        generate_name: String::new(),
        pod: Box::new(pod),
    });
    changes
}

/// Pod `ordinal` of `set` from `template` (the set's, or a kept revision's): named,
/// labelled with its name, ordinal and revision, with its hostname in the governing
/// Service's subdomain and its claims as volumes.
pub fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, ordinal: i32, revision: &str) -> Pod {
    let mut pod = super::pod_of_template(template, "StatefulSet", &set.metadata);
    let name = set.pod_name(ordinal);
    let labels = &mut pod.metadata.labels;
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(REVISION_LABEL.into(), revision.to_owned());
    pod.spec.hostname = Some(name.clone());
    if !set.spec.service_name.is_empty() {
        pod.spec.subdomain = Some(set.spec.service_name.clone());
    }
    for template in &set.spec.volume_claim_templates {
        let volume = Volume {
            name: template.metadata.name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: set.claim_name(&template.metadata.name, ordinal),
                read_only: false,
            }),
            ..Volume::default()
        };
        match pod.spec.volumes.iter_mut().find(|v| v.name == volume.name) {
            Some(existing) => *existing = volume,
            None => pod.spec.volumes.push(volume),
        }
    }
    pod.metadata.name = name;
    pod
}

/// The claim `template` makes for pod `ordinal`: labelled with the set's selector, as
/// Kubernetes does, and owned by nobody, so that it outlives the pod and the set.
fn new_claim(
    set: &StatefulSet,
    template: &PersistentVolumeClaim,
    ordinal: i32,
) -> PersistentVolumeClaim {
    let mut claim = PersistentVolumeClaim {
        metadata: template.metadata.clone(),
        spec: template.spec.clone(),
        status: Default::default(),
    };
    claim.metadata.name = set.claim_name(&template.metadata.name, ordinal);
    claim.metadata.namespace = set.metadata.namespace.clone();
    claim.metadata.labels.extend(
        set.spec
            .selector
            .match_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    claim.spec.apply_defaults();
    claim
}

/// `set` as the API shows it: its status counted from its pods.
pub fn with_status(mut set: StatefulSet, world: &World) -> StatefulSet {
    let members = members(&set, world);
    let live: Vec<&Pod> = members
        .by_ordinal
        .values()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .copied()
        .collect();
    let update_revision = set.update_revision();
    let revision_of = |pod: &Pod| pod.metadata.labels.get(REVISION_LABEL).cloned();
    let updated = live
        .iter()
        .filter(|pod| revision_of(pod).as_deref() == Some(update_revision.as_str()))
        .count() as i32;
    // The revision the not yet updated pods run (the lowest ordinal's), or the update
    // revision once every pod runs it.
    let current_revision = live
        .iter()
        .filter_map(|pod| revision_of(pod))
        .find(|revision| *revision != update_revision)
        .unwrap_or_else(|| update_revision.clone());
    let count = |f: &dyn Fn(&Pod) -> bool| live.iter().filter(|pod| f(pod)).count() as i32;
    set.status = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        replicas: live.len() as i32,
        ready_replicas: count(&|pod| world.is_ready(pod)),
        current_replicas: count(&|pod| revision_of(pod).as_deref() == Some(&current_revision)),
        updated_replicas: updated,
        available_replicas: count(&|pod| world.is_available(pod, set.spec.min_ready_seconds)),
        current_revision,
        update_revision,
    };
    set
}
