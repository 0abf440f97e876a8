//! Admission of the pods the controllers make, as Kubernetes' API server admits a
//! ReplicaSet's or a DaemonSet's pod creations: each gets the priority of its
//! PriorityClass and its namespace's LimitRange defaults, and one that names no
//! existing class, breaks a LimitRange's bounds or would take the namespace past a
//! ResourceQuota is not made. Its controller then reports `FailedCreate`, and tries
//! again on a later pass (after something it reads has changed, such as the quota).
//!
//! The rules are [`crate::model::admission`]'s and
//! [`crate::model::priority_class::admit_priority`], the same that apply uses.

use std::collections::HashMap;

use super::{Change, Note, World};
use crate::model::admission::{admit_pod, forbidden, Policy};
use crate::model::priority_class::admit_priority;
use crate::model::resource_quota::{pod_usage, Usage};
use crate::model::{Kind, Pod};

/// `changes` with each pod creation admitted: given its defaults, or replaced by a
/// `FailedCreate` warning on its controller. Creations in one namespace count together,
/// in order.
pub fn admit_created(world: &World, changes: Vec<Change>) -> Vec<Change> {
    let mut used: HashMap<String, Usage> = HashMap::new();
    changes
        .into_iter()
        .filter_map(|change| {
            let Change::CreatePod {
                generate_name,
                mut pod,
            } = change
            else {
                return Some(change);
            };
            if let Err(reason) = admit_priority(&mut pod.spec, &world.priority_classes, None) {
                return failed_create(&pod, &generate_name, &reason);
            }
            let namespace = pod.metadata.namespace_or_empty().to_owned();
            let policy = policy(world, &namespace);
            if policy.is_empty() {
                return Some(Change::CreatePod { generate_name, pod });
            }
            let used = used
                .entry(namespace)
                .or_insert_with_key(|namespace| usage(world, namespace));
            match admit_pod(&policy, used, &mut pod, None) {
                Ok(()) => Some(Change::CreatePod { generate_name, pod }),
                Err(reason) => failed_create(&pod, &generate_name, &reason),
            }
        })
        .collect()
}

/// The LimitRanges and ResourceQuotas of `namespace`, in name order.
fn policy<'a>(world: &'a World, namespace: &str) -> Policy<'a> {
    let mut policy = Policy {
        limit_ranges: world
            .limit_ranges
            .iter()
            .filter(|r| r.metadata.namespace_or_empty() == namespace)
            .collect(),
        quotas: world
            .resource_quotas
            .iter()
            .filter(|q| q.metadata.namespace_or_empty() == namespace)
            .collect(),
    };
    policy
        .limit_ranges
        .sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    policy
        .quotas
        .sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    policy
}

/// What the pods of `namespace` use: the only objects a pod's admission weighs.
/// Terminating pods still count, as in Kubernetes until their grace period is over.
fn usage(world: &World, namespace: &str) -> Usage {
    let mut usage = Usage::default();
    for pod in world
        .pods
        .iter()
        .filter(|p| p.metadata.namespace_or_empty() == namespace)
    {
        let ended = world.ended_pods.contains(&pod.metadata.uid);
        usage.add(&pod_usage(pod, ended));
    }
    usage
}

/// `FailedCreate` on the controller of a refused pod: `Error creating: pods "web-7d4b9-"
/// is forbidden: exceeded quota: ...`. The pod is named by its `generateName` alone, as
/// Kubernetes did before it named pods ahead of admission: the message stays the same
/// from one attempt to the next, so the attempts count up on one event instead of
/// crowding the others out. A StatefulSet's pod has its own name, and says so in the
/// StatefulSet controller's words.
fn failed_create(pod: &Pod, generate_name: &str, reason: &str) -> Option<Change> {
    let owner = pod.metadata.controller_ref()?;
    let refusal = |name: &str| forbidden(Kind::Pod, name, reason);
    let (component, message) = match owner.kind.as_str() {
        "ReplicaSet" | "ReplicationController" => {
            (super::replica_set::component_of(&owner.kind), None)
        }
        "DaemonSet" => ("daemonset-controller", None),
        "Job" => ("job-controller", None),
        "StatefulSet" => {
            let name = &pod.metadata.name;
            let message = format!(
                "create Pod {name} in StatefulSet {} failed error: {}",
                owner.name,
                refusal(name)
            );
            ("statefulset-controller", Some(message))
        }
        _ => return None,
    };
    let message = message.unwrap_or_else(|| format!("Error creating: {}", refusal(generate_name)));
    Some(Change::Event(Box::new(Note {
        kind: owner.kind.clone(),
        namespace: pod.metadata.namespace_or_empty().to_owned(),
        name: owner.name.clone(),
        uid: owner.uid.clone(),
        warning: true,
        reason: "FailedCreate",
        message,
        component,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::reconcile_all;
    use crate::model::{parse_manifests, Object, ReplicaSet};

    fn parsed(yaml: &str) -> Vec<Object> {
        parse_manifests(yaml).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A ReplicaSet of `replicas` pods asking 512Mi each, in `default`.
    fn replica_set(replicas: i32) -> ReplicaSet {
        let yaml = format!(
            "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {{name: web-abc, namespace: default}}\n\
             spec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    \
             metadata: {{labels: {{app: web}}}}\n    spec: {{containers: [{{name: app, image: busybox, \
             resources: {{requests: {{memory: 512Mi}}}}}}]}}\n"
        );
        let Some(Object::ReplicaSet(mut rs)) = parsed(&yaml).pop() else {
            panic!("a replica set");
        };
        rs.metadata.uid = "uid-rs".into();
        rs
    }

    fn world_with(rs: ReplicaSet, policies: &str) -> World {
        let mut world = World {
            replica_sets: vec![rs],
            now: "2026-12-02T10:00:00Z".into(),
            ..World::default()
        };
        for object in parsed(policies) {
            match object {
                Object::ResourceQuota(quota) => world.resource_quotas.push(quota),
                Object::LimitRange(range) => world.limit_ranges.push(range),
                Object::PriorityClass(class) => world.priority_classes.push(class),
                other => panic!("{other:?}"),
            }
        }
        world
    }

    const QUOTA: &str = "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: mem, namespace: \
                         default}\nspec: {hard: {requests.memory: 1Gi}}\n";

    #[test]
    fn replica_set_pods_past_the_quota_are_not_made() {
        let mut world = world_with(replica_set(3), QUOTA);
        let changes = reconcile_all(&mut world);
        let made = changes
            .iter()
            .filter(|c| matches!(c, Change::CreatePod { .. }))
            .count();
        assert_eq!(made, 2, "two pods of 512Mi fit in 1Gi");
        let failed: Vec<&Note> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Event(note) if note.reason == "FailedCreate" => Some(note.as_ref()),
                _ => None,
            })
            .collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(
            (failed[0].kind.as_str(), failed[0].name.as_str()),
            ("ReplicaSet", "web-abc")
        );
        assert!(failed[0].warning);
        assert_eq!(failed[0].component, "replicaset-controller");
        assert_eq!(
            failed[0].message,
            "Error creating: pods \"web-abc-\" is forbidden: exceeded quota: mem, requested: \
             requests.memory=512Mi, used: requests.memory=1Gi, limited: requests.memory=1Gi"
        );
    }

    #[test]
    fn pods_already_there_count_and_ended_ones_do_not() {
        let rs = replica_set(2);
        let mut running = crate::controllers::replica_set::new_pod(&rs);
        running.metadata.name = "web-abc-1".into();
        running.metadata.uid = "uid-1".into();
        let mut done = running.clone();
        done.metadata.name = "bare".into();
        done.metadata.uid = "uid-2".into();
        done.metadata.owner_references.clear();
        let mut world = world_with(rs, QUOTA);
        world.pods = vec![running, done];
        let creates = |world: &mut World| {
            reconcile_all(world)
                .iter()
                .filter(|c| matches!(c, Change::CreatePod { .. }))
                .count()
        };
        assert_eq!(creates(&mut world.clone()), 0, "1Gi used already");
        world.ended_pods.insert("uid-2".into());
        assert_eq!(creates(&mut world), 1);
    }

    fn made_pods(world: &mut World) -> Vec<Pod> {
        reconcile_all(world)
            .into_iter()
            .filter_map(|c| match c {
                Change::CreatePod { pod, .. } => Some(*pod),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn made_pods_get_their_class_priority() {
        let mut rs = replica_set(1);
        rs.spec.template.spec.priority_class_name = Some("high".into());
        let class = "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: \
                     high}\nvalue: 1000\npreemptionPolicy: Never\n";
        let mut world = world_with(rs.clone(), class);
        let pods = made_pods(&mut world);
        assert_eq!(pods.len(), 1);
        assert_eq!(pods[0].spec.priority, Some(1000));
        assert_eq!(pods[0].spec.preemption_policy.as_deref(), Some("Never"));

        // Without the class, no pod, and the ReplicaSet says why.
        let mut world = World {
            replica_sets: vec![rs],
            ..World::default()
        };
        let changes = reconcile_all(&mut world);
        assert!(!changes
            .iter()
            .any(|c| matches!(c, Change::CreatePod { .. })));
        let failed = changes.iter().find_map(|c| match c {
            Change::Event(note) if note.reason == "FailedCreate" => Some(note.message.clone()),
            _ => None,
        });
        assert_eq!(
            failed.as_deref(),
            Some(
                "Error creating: pods \"web-abc-\" is forbidden: no PriorityClass with name \
                 high was found"
            )
        );
    }

    #[test]
    fn made_pods_get_the_limit_range_defaults() {
        let range = "apiVersion: v1\nkind: LimitRange\nmetadata: {name: l, namespace: default}\n\
                     spec: {limits: [{type: Container, default: {cpu: 250m}}]}\n";
        let mut world = world_with(replica_set(1), range);
        let pods: Vec<Pod> = reconcile_all(&mut world)
            .into_iter()
            .filter_map(|c| match c {
                Change::CreatePod { pod, .. } => Some(*pod),
                _ => None,
            })
            .collect();
        assert_eq!(pods.len(), 1);
        let resources = &pods[0].spec.containers[0].resources;
        assert_eq!(resources.limits["cpu"], "250m");
        assert_eq!(resources.requests["cpu"], "250m");
        assert_eq!(resources.requests["memory"], "512Mi");
    }
}
