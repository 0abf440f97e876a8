//! The node lifecycle controller, run by the coordinator (it alone keeps node leases):
//! pods on a node lost for longer than the eviction timeout are removed, so their
//! Deployment replaces them and the scheduler places the replacements elsewhere, as
//! Kubernetes' taint-based eviction does. Pods bound to a node that no longer exists go
//! too, and so do pods deleted before any node took them: no board will ever report
//! them stopped. A `NoExecute` taint evicts the pods that do not tolerate it at once,
//! and those that tolerate it for `tolerationSeconds` once that long has passed since
//! the taint's `timeAdded`, as Kubernetes' taint eviction does.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use super::{key_of, Change};
use crate::model::{tolerates, Pod, Taint};

/// What the coordinator knows of the nodes pods are bound to.
#[derive(Clone, Debug, Default)]
pub struct NodeFacts {
    /// Nodes that exist (a Node object is stored).
    pub known: HashSet<String>,
    /// Nodes whose lease has been expired for longer than the pod eviction timeout.
    pub lost: HashSet<String>,
    /// Nodes whose lease has expired (`Ready=Unknown`), lost ones included.
    pub unreachable: HashSet<String>,
    /// The `NoExecute` taints of nodes that have some.
    pub no_execute: HashMap<String, Vec<Taint>>,
    pub now: Option<SystemTime>,
}

/// Pods on unreachable nodes are not ready, whatever their node last reported, as
/// Kubernetes' node lifecycle controller marks them: they leave their Services'
/// endpoints, and a rollout counts them as unavailable (it neither waits for them nor
/// takes their place as if they served).
pub fn unready_unreachable(world: &mut super::World, nodes: &NodeFacts) {
    let unreachable: HashSet<&str> = world
        .pods
        .iter()
        .filter(|pod| {
            pod.spec
                .node_name
                .as_deref()
                .is_some_and(|node| nodes.unreachable.contains(node))
        })
        .map(|pod| pod.metadata.uid.as_str())
        .collect();
    if unreachable.is_empty() {
        return;
    }
    world
        .ready_pods
        .retain(|uid| !unreachable.contains(uid.as_str()));
}

fn daemon_pod(pod: &Pod) -> bool {
    pod.metadata
        .controller_ref()
        .is_some_and(|owner| owner.kind == "DaemonSet")
}

pub fn reconcile(pod: &Pod, nodes: &NodeFacts) -> Option<Change> {
    let deleting = pod.metadata.deletion_timestamp.is_some();
    let node = pod.spec.node_name.as_deref();
    let evict = match node {
        None => deleting,
        Some(node) if !nodes.known.contains(node) => true,
        // A DaemonSet's pod stays with its node, as Kubernetes' daemon pods tolerate
        // the unreachable taint: the node gets its pod back when it returns.
        Some(node) if nodes.lost.contains(node) && !daemon_pod(pod) => {
            if !deleting {
                log::info!(
                    "evicting pod {}/{} from lost node {node}",
                    pod.metadata.namespace_or_empty(),
                    pod.metadata.name
                );
            }
            true
        }
        Some(node) => !deleting && tainted_out(pod, node, nodes),
    };
    evict.then(|| Change::Delete(key_of("Pod", &pod.metadata)))
}

/// Whether a `NoExecute` taint of `node` evicts `pod` now.
fn tainted_out(pod: &Pod, node: &str, nodes: &NodeFacts) -> bool {
    let Some(taints) = nodes.no_execute.get(node) else {
        return false;
    };
    let now = nodes.now.unwrap_or_else(SystemTime::now);
    for taint in taints {
        let tolerations: Vec<_> = pod
            .spec
            .tolerations
            .iter()
            .filter(|t| tolerates(t, taint))
            .collect();
        // Not tolerated: now. Tolerated: for the shortest `tolerationSeconds` of the
        // tolerations that match (Kubernetes' minimal toleration time), from when the
        // taint came; for good when none of them has one.
        let limit = if tolerations.is_empty() {
            Some(0)
        } else {
            tolerations
                .iter()
                .filter_map(|t| t.toleration_seconds)
                .min()
        };
        let Some(limit) = limit else {
            continue;
        };
        let added = taint
            .time_added
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339(t).ok())
            .unwrap_or(now);
        let until = added + Duration::from_secs(limit.max(0).unsigned_abs());
        if now >= until {
            log::info!(
                "evicting pod {}/{} from node {node}: taint {}:{} (tolerated {limit}s)",
                pod.metadata.namespace_or_empty(),
                pod.metadata.name,
                taint.key,
                taint.effect
            );
            return true;
        }
    }
    false
}
