//! The Deployment controller: from a Deployment and the pods it owns, which pods to
//! create and which to delete, and the status to report.
//!
//! Pods carry the `pod-template-hash` label of the template they were made from. A
//! template change replaces the old pods (rolling semantics come with rollouts); scaling
//! down removes not-ready pods first, then the newest, as Kubernetes' ReplicaSet does.

use super::{mark_pod, Change, World};
use crate::model::{
    pod_template_hash, Deployment, DeploymentCondition, DeploymentStatus, IntOrString,
    OwnerReference, Pod,
};

pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// What the controller needs to know of one owned pod.
#[derive(Clone, Debug, PartialEq)]
pub struct OwnedPod {
    pub name: String,
    pub template_hash: String,
    pub creation_timestamp: String,
    pub ready: bool,
    pub terminating: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeploymentPlan {
    pub create: usize,
    pub delete: Vec<String>,
}

pub fn plan_deployment(
    deploy: &Deployment,
    template_hash: &str,
    pods: &[OwnedPod],
) -> DeploymentPlan {
    let wanted = deploy.spec.replicas.max(0) as usize;
    let active: Vec<&OwnedPod> = pods.iter().filter(|p| !p.terminating).collect();
    let (mut current, old): (Vec<&OwnedPod>, Vec<&OwnedPod>) = active
        .into_iter()
        .partition(|p| p.template_hash == template_hash);
    let mut plan = DeploymentPlan {
        create: 0,
        delete: old.iter().map(|p| p.name.clone()).collect(),
    };
    if current.len() < wanted {
        plan.create = wanted - current.len();
    } else if current.len() > wanted {
        // Not-ready first, then the newest: the pods that serve least go first.
        current.sort_by(|a, b| {
            a.ready
                .cmp(&b.ready)
                .then_with(|| b.creation_timestamp.cmp(&a.creation_timestamp))
                .then_with(|| b.name.cmp(&a.name))
        });
        plan.delete.extend(
            current
                .iter()
                .take(current.len() - wanted)
                .map(|p| p.name.clone()),
        );
    }
    plan
}

/// The changes that bring `deploy`'s pods to its spec: replicas made or removed, pods of
/// an old template replaced.
pub fn reconcile(deploy: &Deployment, world: &World) -> Vec<Change> {
    let namespace = deploy.metadata.namespace_or_empty();
    if world.namespace_dying(namespace) {
        return Vec::new(); // the namespace controller removes it
    }
    let hash = pod_template_hash(&deploy.spec.template);
    let owned = owned_pods(deploy, &world.pods, &|pod| {
        world.ready_pods.contains(&pod.metadata.uid)
    });
    let plan = plan_deployment(deploy, &hash, &owned);
    if plan.create > 0 || !plan.delete.is_empty() {
        log::info!(
            "deployment {namespace}/{}: creating {} pod(s), deleting {}",
            deploy.metadata.name,
            plan.create,
            plan.delete.len()
        );
    }
    let mut changes: Vec<Change> =
        plan.delete
            .iter()
            .filter_map(|name| {
                world.pods.iter().find(|p| {
                    &p.metadata.name == name && p.metadata.namespace_or_empty() == namespace
                })
            })
            .filter_map(mark_pod)
            .collect();
    let template_pod = new_pod(deploy, &hash);
    let generate_name = format!("{}-{hash}-", deploy.metadata.name);
    changes.extend((0..plan.create).map(|_| Change::CreatePod {
        generate_name: generate_name.clone(),
        pod: Box::new(template_pod.clone()),
    }));
    changes
}

/// `deploy` as the API shows it: its status derived from the pods it owns, with their
/// readiness as this scope observes it (`ready`).
pub fn with_status(
    mut deploy: Deployment,
    pods: &[Pod],
    ready: &dyn Fn(&Pod) -> bool,
) -> Deployment {
    let hash = pod_template_hash(&deploy.spec.template);
    let owned = owned_pods(&deploy, pods, ready);
    deploy.status = deployment_status(&deploy, &hash, &owned);
    deploy
}

/// The pods `deploy` owns, as its controller sees them; `ready` is what this scope
/// observes of a pod's readiness.
pub fn owned_pods(
    deploy: &Deployment,
    pods: &[Pod],
    ready: &dyn Fn(&Pod) -> bool,
) -> Vec<OwnedPod> {
    pods.iter()
        .filter(|p| {
            p.metadata
                .owner_references
                .iter()
                .any(|o| o.uid == deploy.metadata.uid)
        })
        .map(|p| OwnedPod {
            name: p.metadata.name.clone(),
            template_hash: p
                .metadata
                .labels
                .get(TEMPLATE_HASH_LABEL)
                .cloned()
                .unwrap_or_default(),
            creation_timestamp: p.metadata.creation_timestamp.clone().unwrap_or_default(),
            ready: ready(p),
            terminating: p.metadata.deletion_timestamp.is_some(),
        })
        .collect()
}

/// A new pod for the Deployment, still unnamed: the driver names it
/// `<deployment>-<template hash>-<five random characters>`.
pub fn new_pod(deploy: &Deployment, template_hash: &str) -> Pod {
    let template = &deploy.spec.template;
    let mut pod = Pod::default();
    pod.metadata.namespace = deploy.metadata.namespace.clone();
    pod.metadata.labels = template.metadata.labels.clone();
    pod.metadata
        .labels
        .insert(TEMPLATE_HASH_LABEL.to_owned(), template_hash.to_owned());
    pod.metadata.annotations = template.metadata.annotations.clone();
    pod.metadata.owner_references = vec![OwnerReference {
        api_version: "apps/v1".to_owned(),
        kind: "Deployment".to_owned(),
        name: deploy.metadata.name.clone(),
        uid: deploy.metadata.uid.clone(),
        controller: Some(true),
    }];
    pod.spec = template.spec.clone();
    pod
}

pub fn deployment_status(
    deploy: &Deployment,
    template_hash: &str,
    pods: &[OwnedPod],
) -> DeploymentStatus {
    let wanted = deploy.spec.replicas.max(0);
    let active: Vec<&OwnedPod> = pods.iter().filter(|p| !p.terminating).collect();
    let count = |f: &dyn Fn(&OwnedPod) -> bool| active.iter().filter(|p| f(p)).count() as i32;
    let replicas = active.len() as i32;
    let updated = count(&|p| p.template_hash == template_hash);
    let ready = count(&|p| p.ready);
    let available = ready;
    let max_unavailable = max_unavailable(deploy, wanted);
    let condition = |type_: &str, ok: bool, reason: &str, message: String| DeploymentCondition {
        type_: type_.to_owned(),
        status: if ok { "True" } else { "False" }.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message),
        ..Default::default()
    };
    let available_ok = available >= wanted - max_unavailable;
    let complete = updated == wanted && available >= wanted && replicas == wanted;
    DeploymentStatus {
        observed_generation: deploy.metadata.generation,
        replicas,
        updated_replicas: updated,
        ready_replicas: ready,
        available_replicas: available,
        unavailable_replicas: (wanted - available).max(0),
        conditions: vec![
            condition(
                "Available",
                available_ok,
                if available_ok {
                    "MinimumReplicasAvailable"
                } else {
                    "MinimumReplicasUnavailable"
                },
                if available_ok {
                    "Deployment has minimum availability.".to_owned()
                } else {
                    "Deployment does not have minimum availability.".to_owned()
                },
            ),
            condition(
                "Progressing",
                true,
                if complete {
                    "NewReplicaSetAvailable"
                } else {
                    "ReplicaSetUpdated"
                },
                format!(
                    "{} of {wanted} updated replicas are available",
                    available.min(updated)
                ),
            ),
        ],
    }
}

/// `maxUnavailable` as a number of pods (percentages round down, as Kubernetes does).
fn max_unavailable(deploy: &Deployment, wanted: i32) -> i32 {
    let value = deploy
        .spec
        .strategy
        .rolling_update
        .as_ref()
        .and_then(|r| r.max_unavailable.clone());
    match value {
        Some(IntOrString::Int(n)) => n.max(0),
        Some(IntOrString::String(s)) => {
            let percent: i64 = s.trim_end_matches('%').parse().unwrap_or(25);
            percent_of(wanted, percent)
        }
        None if deploy.spec.strategy.type_ == "Recreate" => wanted,
        None => percent_of(wanted, 25),
    }
}

/// `percent`% of `total`, rounded down; computed wide, since `replicas` may be as large
/// as `i32::MAX`, and capped at `total`.
fn percent_of(total: i32, percent: i64) -> i32 {
    let scaled = i64::from(total).saturating_mul(percent.clamp(0, 100)) / 100;
    i32::try_from(scaled).unwrap_or(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(replicas: i32) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.name = "web".into();
        d.spec.replicas = replicas;
        d
    }

    fn owned(name: &str, hash: &str, created: &str, ready: bool) -> OwnedPod {
        OwnedPod {
            name: name.into(),
            template_hash: hash.into(),
            creation_timestamp: created.into(),
            ready,
            terminating: false,
        }
    }

    #[test]
    fn creates_missing_replicas() {
        let plan = plan_deployment(&deploy(3), "h", &[owned("a", "h", "1", true)]);
        assert_eq!(
            plan,
            DeploymentPlan {
                create: 2,
                delete: vec![]
            }
        );
    }

    #[test]
    fn scale_down_removes_not_ready_then_newest() {
        let pods = [
            owned("a", "h", "2026-01-01T00:00:01Z", true),
            owned("b", "h", "2026-01-01T00:00:03Z", true),
            owned("c", "h", "2026-01-01T00:00:02Z", false),
            owned("d", "h", "2026-01-01T00:00:04Z", true),
        ];
        let plan = plan_deployment(&deploy(2), "h", &pods);
        assert_eq!(plan.delete, vec!["c".to_owned(), "d".to_owned()]);
        let plan = plan_deployment(&deploy(0), "h", &pods);
        assert_eq!(plan.delete.len(), 4);
    }

    #[test]
    fn template_change_replaces_old_pods() {
        let plan = plan_deployment(&deploy(1), "new", &[owned("a", "old", "1", true)]);
        assert_eq!(
            plan,
            DeploymentPlan {
                create: 1,
                delete: vec!["a".to_owned()]
            }
        );
    }

    #[test]
    fn terminating_pods_do_not_count() {
        let mut gone = owned("a", "h", "1", true);
        gone.terminating = true;
        let plan = plan_deployment(&deploy(1), "h", &[gone.clone()]);
        assert_eq!(plan.create, 1);
        assert_eq!(deployment_status(&deploy(1), "h", &[gone]).replicas, 0);
    }

    #[test]
    fn status_counts_ready_and_updated() {
        let pods = [
            owned("a", "h", "1", true),
            owned("b", "h", "2", false),
            owned("c", "old", "3", true),
        ];
        let status = deployment_status(&deploy(2), "h", &pods);
        assert_eq!(
            (
                status.replicas,
                status.updated_replicas,
                status.ready_replicas
            ),
            (3, 2, 2)
        );
        assert_eq!(status.available_replicas, 2);
    }

    #[test]
    fn the_most_replicas_do_not_overflow() {
        // 25% of i32::MAX computed in i32 would overflow.
        let status = deployment_status(&deploy(i32::MAX), "h", &[]);
        assert_eq!(status.unavailable_replicas, i32::MAX);
        let available = &status.conditions[0];
        assert_eq!(available.status, "False");
        assert_eq!(percent_of(i32::MAX, 25), 536_870_911);
        assert_eq!(percent_of(i32::MAX, 100), i32::MAX);
        assert_eq!(percent_of(8, 1000), 8, "never more than all of them");
    }

    #[test]
    fn new_pods_carry_owner_and_hash_label() {
        let mut d = deploy(1);
        d.metadata.uid = "uid-1".into();
        d.spec
            .template
            .metadata
            .labels
            .insert("app".into(), "web".into());
        let pod = new_pod(&d, "abc");
        assert_eq!(
            pod.metadata
                .labels
                .get(TEMPLATE_HASH_LABEL)
                .map(String::as_str),
            Some("abc")
        );
        assert_eq!(pod.metadata.owner_references[0].uid, "uid-1");
    }
}
