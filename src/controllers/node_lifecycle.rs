//! The node lifecycle controller, run by the coordinator (it alone keeps node leases):
//! pods on a node lost for longer than the eviction timeout are removed, so their
//! Deployment replaces them and the scheduler places the replacements elsewhere, as
//! Kubernetes' taint-based eviction does. Pods bound to a node that no longer exists go
//! too, and so do pods deleted before any node took them: no board will ever report
//! them stopped.

use std::collections::HashSet;

use super::{key_of, Change};
use crate::model::Pod;

/// What the coordinator knows of the nodes pods are bound to.
#[derive(Clone, Debug, Default)]
pub struct NodeFacts {
    /// Nodes that exist (a Node object is stored).
    pub known: HashSet<String>,
    /// Nodes whose lease has been expired for longer than the pod eviction timeout.
    pub lost: HashSet<String>,
    /// Nodes whose lease has expired (`Ready=Unknown`), lost ones included.
    pub unreachable: HashSet<String>,
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
        Some(_) => false,
    };
    evict.then(|| Change::Delete(key_of("Pod", &pod.metadata)))
}
