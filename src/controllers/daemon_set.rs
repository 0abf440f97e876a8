//! The DaemonSet controller: one pod of the template on every node that should run it,
//! rolled to a new template node by node.
//!
//! A node should run it when the template's `nodeSelector` and required node affinity
//! match the node's labels and the template tolerates the node's `NoSchedule` and
//! `NoExecute` taints; cordoned nodes run it, as in Kubernetes. On a lone board the
//! board is the one node. Pods carry the `controller-revision-hash` label of their
//! template.
//!
//! `RollingUpdate` replaces pods with `maxUnavailable` nodes (counted among the nodes
//! that should run it) without an available pod at a time; with `maxSurge` the new pod
//! starts beside the old one on up to that many nodes and the old one goes once the new
//! is available. A node's old pods that are not available go at once, budget or not. With
//! no surge, the new pod starts only when the old one has stopped (a daemon often holds a
//! host port). `OnDelete` replaces only pods someone deleted.
//!
//! An unreachable node (its agent silent past the grace period) is left as it is: its
//! pod neither counts against `maxUnavailable` nor is replaced, so an offline board never
//! blocks a rollout; it gets the new revision when it comes back.

use std::collections::BTreeMap;

use super::revision_history::{self, Owner};
use super::{mark_pod, Change, Note, World};
use crate::model::{
    node_fits, pod_template_hash, DaemonSet, DaemonSetStatus, IntOrString, Pod, Taint,
};

pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";

/// A node as the DaemonSet controller sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct NodeView {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    /// Its agent has been silent past the grace period.
    pub unreachable: bool,
}

/// The pods of one DaemonSet on one node that should run it.
#[derive(Default)]
struct OnNode<'a> {
    old: Vec<&'a Pod>,
    new: Vec<&'a Pod>,
    terminating: usize,
}

/// The changes that bring `ds` to one current pod on every node that should run it.
pub fn reconcile(ds: &DaemonSet, world: &World) -> Vec<Change> {
    let namespace = ds.metadata.namespace_or_empty();
    if world.namespace_dying(namespace) || ds.metadata.uid.is_empty() {
        return Vec::new();
    }
    let hash = pod_template_hash(&ds.spec.template);
    let (by_node, misplaced) = pods_by_node(ds, world, &hash);
    let owner = Owner {
        kind: "DaemonSet",
        meta: &ds.metadata,
        template: &ds.spec.template,
        revision_history_limit: ds.spec.revision_history_limit,
    };
    let revision_name = format!("{}-{hash}", ds.metadata.name);
    let mut changes = revision_history::reconcile(&owner, world, &hash, &revision_name);
    changes.extend(misplaced.into_iter().flat_map(|pod| remove(ds, pod)));
    let (max_unavailable, max_surge) = bounds(ds, by_node.len());
    let min_ready = ds.spec.min_ready_seconds;
    let available = |pod: &&Pod| world.is_available(pod, min_ready);
    let mut unavailable = by_node
        .iter()
        .filter(|(node, pods)| {
            !node.unreachable && !pods.old.iter().chain(&pods.new).any(available)
        })
        .count() as i32;
    let mut surging = by_node
        .values()
        .filter(|pods| !pods.old.is_empty() && !pods.new.is_empty())
        .count() as i32;
    let on_delete = ds.spec.update_strategy.type_ == "OnDelete";
    for (node, pods) in &by_node {
        if node.unreachable {
            continue;
        }
        // Extra new pods (a race, or a hand-made one): the oldest stays.
        changes.extend(pods.new.iter().skip(1).flat_map(|pod| remove(ds, pod)));
        let make = || Change::CreatePod {
            generate_name: format!("{}-", ds.metadata.name),
            pod: Box::new(new_pod(ds, &hash, node, world)),
        };
        if pods.new.is_empty() && pods.old.is_empty() {
            if pods.terminating == 0 || max_surge > 0 {
                changes.push(make());
            }
            continue;
        }
        if on_delete || pods.old.is_empty() {
            continue;
        }
        let old_available = pods.old.iter().any(available);
        let new_available = pods.new.iter().any(available);
        if !old_available || new_available {
            // Nothing serving is lost: the old pods go now.
            changes.extend(pods.old.iter().flat_map(|pod| remove(ds, pod)));
            if pods.new.is_empty() && max_surge > 0 {
                changes.push(make());
            }
        } else if max_surge > 0 {
            if pods.new.is_empty() && surging < max_surge {
                surging += 1;
                changes.push(make());
            }
        } else if unavailable < max_unavailable {
            unavailable += 1;
            changes.extend(pods.old.iter().flat_map(|pod| remove(ds, pod)));
        }
    }
    changes
}

/// Graceful deletion of one of `ds`'s pods, with Kubernetes' `SuccessfulDelete` event;
/// nothing for a pod already terminating.
fn remove(ds: &DaemonSet, pod: &Pod) -> Vec<Change> {
    let Some(mark) = mark_pod(pod) else {
        return Vec::new();
    };
    vec![
        mark,
        Note::normal(
            "DaemonSet",
            &ds.metadata,
            "SuccessfulDelete",
            format!("Deleted pod: {}", pod.metadata.name),
            "daemonset-controller",
        ),
    ]
}

/// The pods of `ds` by node that should run it (every such node has an entry), and the
/// pods on nodes that should not.
fn pods_by_node<'a>(
    ds: &DaemonSet,
    world: &'a World,
    hash: &str,
) -> (BTreeMap<&'a NodeView, OnNode<'a>>, Vec<&'a Pod>) {
    let mut by_node: BTreeMap<&NodeView, OnNode> = world
        .nodes
        .iter()
        .filter(|node| should_run(ds, node))
        .map(|node| (node, OnNode::default()))
        .collect();
    let mut misplaced = Vec::new();
    for pod in world.controlled_pods(&ds.metadata.uid) {
        let node_name = pod
            .spec
            .node_name
            .as_deref()
            .or(world.local_node.as_deref());
        let entry = by_node
            .iter_mut()
            .find(|(node, _)| Some(node.name.as_str()) == node_name);
        let Some((_, pods)) = entry else {
            // A node gone or no longer matching: its pod goes (an unreachable node's
            // pod too, as Kubernetes does once the node is deleted).
            misplaced.push(pod);
            continue;
        };
        if pod.metadata.deletion_timestamp.is_some() {
            pods.terminating += 1;
        } else if pod
            .metadata
            .labels
            .get(REVISION_HASH_LABEL)
            .map(String::as_str)
            == Some(hash)
        {
            pods.new.push(pod);
        } else {
            pods.old.push(pod);
        }
    }
    for pods in by_node.values_mut() {
        crate::support::sort::sort_by_key(&mut pods.new, |pod| {
            (
                pod.metadata.creation_timestamp.clone(),
                pod.metadata.name.clone(),
            )
        });
    }
    (by_node, misplaced)
}

/// Whether `node` should run a pod of `ds`: its labels match the template's
/// `nodeSelector` and required node affinity, and the template tolerates its
/// `NoSchedule`/`NoExecute` taints.
pub fn should_run(ds: &DaemonSet, node: &NodeView) -> bool {
    let spec = &ds.spec.template.spec;
    node_fits(
        &spec.node_selector,
        spec.affinity.as_ref(),
        &spec.tolerations,
        &node.labels,
        &node.taints,
    )
}

/// `maxUnavailable` and `maxSurge` as node counts out of `nodes`: percentages round up,
/// as Kubernetes' DaemonSet controller scales them, and both 0 means one unavailable.
fn bounds(ds: &DaemonSet, nodes: usize) -> (i32, i32) {
    let nodes = i32::try_from(nodes).unwrap_or(i32::MAX);
    let rolling = ds.spec.update_strategy.rolling_update.as_ref();
    let scaled = |value: Option<&IntOrString>, default: i32| {
        value.map_or(Ok(default), |v| v.scaled_value(nodes, true))
    };
    let unavailable = scaled(rolling.and_then(|r| r.max_unavailable.as_ref()), 1);
    let surge = scaled(rolling.and_then(|r| r.max_surge.as_ref()), 0);
    match (unavailable, surge) {
        (Ok(u), Ok(s)) if u > 0 || s > 0 => (u.max(0), s.max(0)),
        (Ok(_), Ok(_)) => (1, 0),
        (Err(err), _) | (_, Err(err)) => {
            log::error!(
                "daemon set {}/{}: spec.updateStrategy.rollingUpdate: {err}",
                ds.metadata.namespace_or_empty(),
                ds.metadata.name
            );
            (1, 0)
        }
    }
}

/// A new pod of `ds` for `node`, still unnamed; bound to the node unless it is this
/// board itself.
fn new_pod(ds: &DaemonSet, hash: &str, node: &NodeView, world: &World) -> Pod {
    let mut pod = super::pod_of_template(&ds.spec.template, "DaemonSet", &ds.metadata);
    pod.metadata
        .labels
        .insert(REVISION_HASH_LABEL.to_owned(), hash.to_owned());
    if world.local_node.as_deref() != Some(node.name.as_str()) {
        pod.spec.node_name = Some(node.name.clone());
    }
    pod
}

/// `ds` as the API shows it: its status counted by node.
pub fn with_status(mut ds: DaemonSet, world: &World) -> DaemonSet {
    let hash = pod_template_hash(&ds.spec.template);
    let (by_node, misplaced) = pods_by_node(&ds, world, &hash);
    let min_ready = ds.spec.min_ready_seconds;
    let count = |f: &dyn Fn(&OnNode) -> bool| by_node.values().filter(|p| f(p)).count() as i32;
    let any_live = |pods: &OnNode, f: &dyn Fn(&Pod) -> bool| {
        pods.old.iter().chain(&pods.new).any(|pod| f(pod))
    };
    let desired = by_node.len() as i32;
    let available = count(&|p| any_live(p, &|pod| world.is_available(pod, min_ready)));
    let mut misplaced_nodes: Vec<Option<&str>> = misplaced
        .iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .map(|pod| pod.spec.node_name.as_deref())
        .collect();
    misplaced_nodes.dedup();
    ds.status = DaemonSetStatus {
        current_number_scheduled: count(&|p| any_live(p, &|_| true)),
        number_misscheduled: misplaced_nodes.len() as i32,
        desired_number_scheduled: desired,
        number_ready: count(&|p| any_live(p, &|pod| world.is_ready(pod))),
        observed_generation: ds.metadata.generation,
        updated_number_scheduled: count(&|p| !p.new.is_empty()),
        number_available: available,
        number_unavailable: desired - available,
    };
    ds
}
