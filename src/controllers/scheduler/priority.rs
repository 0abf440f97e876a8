//! Pod priority at the scheduler, as Kubernetes' scheduling queue and its
//! DefaultPreemption plugin use it: pending pods are taken highest priority first
//! ([`queue_key`]), and a pod no node can take may have pods of strictly lower priority
//! removed to make room ([`preempt`]).
//!
//! # Preemption
//!
//! Only a pod whose `preemptionPolicy` is not `Never` preempts, and never for claims that
//! cannot be had (no node is looked at then). For each node:
//!
//! 1. Every pod of lower priority on it is taken away, and so are the pods terminating
//!    there already (they are going anyway). If the pod still does not pass every filter
//!    of [`super::schedule`] on that node — taints, node selector and affinity, cordon,
//!    volume nodes, image platform, inter-pod rules and resources alike — the node
//!    cannot help.
//! 2. The lower-priority pods are then given back one at a time, most important first
//!    (highest priority, then the order the node lists them in); one whose return makes
//!    the pod no longer fit is a victim, the others stay. Equal or higher priorities are
//!    never victims.
//!
//! Of the nodes that can help, the one chosen has the lowest highest-victim priority,
//! then the fewest victims, then the lowest sum of victim priorities, then the first
//! name. A node where the pod fits once its terminating pods are gone needs no victims
//! and wins: the pod waits there for what an earlier preemption already deleted,
//! instead of preempting again.
//!
//! # Cost
//!
//! A node is judged by itself unless the pod has inter-pod rules or a placed pod has
//! required anti-affinity: then the counts over every node decide, and each check
//! counts them again (with a cheap check by the node alone first, which rules out nodes
//! that fail for reasons other than those rules). Preemption runs only for a pod that
//! fits nowhere and outranks some placed pod.

use std::cmp::Reverse;

use super::{check_node, NodeInfo, PodContext, PodRequest, Rejection};

/// Where a pending pod stands in the queue: a smaller key is scheduled first — higher
/// priority, then older (`created`, RFC 3339 text), then by namespace and name.
pub fn queue_key<'a>(
    priority: i32,
    created: &'a str,
    namespace: &'a str,
    name: &'a str,
) -> (Reverse<i32>, &'a str, &'a str, &'a str) {
    (Reverse(priority), created, namespace, name)
}

/// A node where the pod fits once `victims` are gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preemption {
    pub node: String,
    /// The pods to delete, by namespace and name, most important first. Empty when the
    /// pod only waits for pods terminating there already.
    pub victims: Vec<(String, String)>,
}

/// The node to preempt on for `pod`, which [`super::schedule`] found no room for, and
/// the pods to delete there; `None` when no removal of lower-priority pods helps.
pub fn preempt(pod: &PodRequest, nodes: &[NodeInfo]) -> Option<Preemption> {
    if !pod.may_preempt || pod.volume_problem.is_some() {
        return None;
    }
    let counts_span_nodes = !pod.pod_affinity.is_empty()
        || !pod.pod_anti_affinity.is_empty()
        || !pod.preferred_pod_affinity.is_empty()
        || !pod.spread.is_empty()
        || nodes
            .iter()
            .any(|n| n.pods.iter().any(|p| !p.anti_affinity.is_empty()));
    let judge = Judge {
        pod,
        nodes,
        counts_span_nodes,
    };
    let mut best: Option<(ChoiceKey, Preemption)> = None;
    for (index, node) in nodes.iter().enumerate() {
        let Some(victims) = judge.victims_on(index) else {
            continue;
        };
        let priorities: Vec<i32> = victims.iter().map(|i| node.pods[*i].priority).collect();
        let key: ChoiceKey = (
            priorities.iter().max().copied(),
            victims.len(),
            priorities.iter().map(|p| i64::from(*p)).sum(),
        );
        if best
            .as_ref()
            .is_some_and(|(b, p)| (b, &p.node) <= (&key, &node.name))
        {
            continue;
        }
        let victims = victims
            .iter()
            .map(|i| (node.pods[*i].namespace.clone(), node.pods[*i].name.clone()))
            .collect();
        let preemption = Preemption {
            node: node.name.clone(),
            victims,
        };
        best = Some((key, preemption));
    }
    best.map(|(_, preemption)| preemption)
}

/// How a node's set of victims compares, smaller is better: (highest victim priority,
/// victims, sum of their priorities). No victims at all is best (`None` sorts first).
type ChoiceKey = (Option<i32>, usize, i64);

/// What judging one node against the others needs.
struct Judge<'a> {
    pod: &'a PodRequest,
    nodes: &'a [NodeInfo],
    /// Inter-pod rules count pods on every node: a node cannot be judged alone.
    counts_span_nodes: bool,
}

impl Judge<'_> {
    /// The victims on node `index` (indices into its pods), or `None` when removing
    /// every lower-priority pod there does not make room.
    fn victims_on(&self, index: usize) -> Option<Vec<usize>> {
        let node = &self.nodes[index];
        let lower: Vec<usize> = (0..node.pods.len())
            .filter(|i| {
                let placed = &node.pods[*i];
                !placed.terminating && placed.priority < self.pod.priority
            })
            .collect();
        let terminating = node.pods.iter().any(|p| p.terminating);
        if lower.is_empty() && !terminating {
            return None;
        }
        let mut kept: Vec<bool> = node
            .pods
            .iter()
            .map(|p| !p.terminating && p.priority >= self.pod.priority)
            .collect();
        if !self.fits(index, &kept) {
            return None;
        }
        let mut order = lower;
        // Stable: equal priorities keep the node's order.
        order.sort_by_key(|i| Reverse(node.pods[*i].priority));
        let mut victims = Vec::new();
        for i in order {
            kept[i] = true;
            if !self.fits(index, &kept) {
                kept[i] = false;
                victims.push(i);
            }
        }
        Some(victims)
    }

    /// Whether the pod passes every filter on node `index` with only its `kept` pods.
    fn fits(&self, index: usize, kept: &[bool]) -> bool {
        let mut reduced = self.nodes[index].clone();
        let mut keep = kept.iter();
        reduced
            .pods
            .retain(|_| keep.next().copied().unwrap_or(true));
        let alone = std::slice::from_ref(&reduced);
        let verdict = check_node(&PodContext::new(self.pod, alone), &reduced);
        if !self.counts_span_nodes {
            return verdict.is_ok();
        }
        // Judged alone, a node refused for anything but the inter-pod rules is refused
        // for good: only those rules look at other nodes.
        if matches!(verdict, Err(ref r) if !matches!(r, Rejection::PodRule(_))) {
            return false;
        }
        let mut all = self.nodes.to_vec();
        all[index] = reduced;
        let context = PodContext::new(self.pod, &all);
        check_node(&context, &all[index]).is_ok()
    }
}
