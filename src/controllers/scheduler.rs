//! The scheduler: a pure, deterministic function that picks a node for one pod, or says
//! why no node can take it, in the words Kubernetes uses.
//!
//! [`schedule`] sees only its arguments (no clock, no randomness, no I/O), so the same pod
//! and the same nodes always give the same answer, whatever order the nodes come in. The
//! caller keeps the node snapshot current: after a [`Decision::Bind`] it adds the pod to
//! that node's [`NodeInfo::pods`] before scheduling the next pod.
//!
//! # Filtering
//!
//! Every node goes through the filters in Kubernetes' plugin order; the first filter that
//! rejects a node decides its reason, so each node reports one reason, except the
//! resource filter, which reports both `Insufficient cpu` and `Insufficient memory` when
//! both are short (as Kubernetes' NodeResourcesFit does).
//!
//! 1. *Unschedulable* (cordoned) nodes are skipped unless the pod tolerates the
//!    `node.kubernetes.io/unschedulable:NoSchedule` taint — `node(s) were unschedulable`.
//! 2. *Taints*: a `NoSchedule` or `NoExecute` taint the pod does not tolerate rejects the
//!    node — `node(s) had untolerated taint {key: value}`, naming the first such taint. A
//!    node that is not ready carries `node.kubernetes.io/not-ready:NoSchedule` first in
//!    its taints, as Kubernetes' node lifecycle controller adds it, so it reads
//!    `node(s) had untolerated taint {node.kubernetes.io/not-ready: }` (and, as in
//!    Kubernetes, a pod tolerating every taint may still land there).
//! 3. *Node selector and required node affinity*: every `nodeSelector` pair must be a
//!    node label, and one of the affinity terms must match —
//!    `node(s) didn't match Pod's node affinity/selector`.
//! 4. *Resources*: the pod's CPU and memory requests must fit in the node's allocatable
//!    minus the requests of the pods already placed there — `Insufficient cpu`,
//!    `Insufficient memory`. A zero request always fits, as in Kubernetes.
//! 5. *Volume binding*: a pod whose PersistentVolumeClaims already keep their data on a
//!    node (the `volume.kubernetes.io/selected-node` the scheduler wrote when it placed
//!    their first pod) may go only there — `node(s) had volume node affinity conflict`.
//!    Before any node is looked at, a claim that does not exist or is being deleted makes
//!    the pod wait with that reason alone (`persistentvolumeclaim "data" not found`), as
//!    Kubernetes' VolumeBinding pre-filter does ([`volumes`]).
//! 6. *Image platform* (berth's own): when the image platforms are known, one of them must
//!    run on a platform of the node — `node(s) didn't match the image's platform (the
//!    image offers linux/arm/v7)`, naming what the image offers as the taint reason names
//!    the taint. Architectures must be equal (an arm64 board is not given a 32-bit `arm`
//!    image); a 32-bit ARM board runs images of its own or an older variant (a `v7`
//!    board takes a `linux/arm/v6` image, a `v6` board no `v7` one).
//!
//! When no node is left the message is Kubernetes' summary: `0/N nodes are available: `
//! then `COUNT REASON` for each reason, sorted as strings the way Kubernetes' scheduler
//! sorts them (so `1 node(s) didn't match ...` comes before `2 Insufficient memory`),
//! joined by `, ` and ending with `.`. With no nodes at all it is
//! `no nodes available to schedule pods`.
//!
//! # Scoring
//!
//! Among the nodes that pass, the winner is decided by comparing, in this order:
//!
//! 1. **Spreading**: fewest pods on the node with the same owner (the Deployment's uid)
//!    as the pod. Replicas of a Deployment therefore go to different boards before any
//!    board gets a second one, so losing a board loses as few replicas as possible. Pods
//!    without an owner skip this step.
//! 2. **Soft taints**: fewest `PreferNoSchedule` taints the pod does not tolerate, so such
//!    a node is used only when it is otherwise no worse for spreading.
//! 3. **Packing** (most-allocated): the highest share of the node that would be requested
//!    once the pod is placed, averaged over CPU and memory (each share capped at 100%,
//!    and 0 for a resource the node has none of). Filling busy boards first keeps whole
//!    boards free for large pods and lets idle boards be powered down.
//! 4. **Name**: the alphabetically first node name, so ties never depend on input order.
//!
//! Shares are compared in integer parts per million, so no floating-point rounding can
//! make two equal nodes compare differently.
//!
//! # Priority
//!
//! [`schedule`] places one pod; the caller takes pending pods highest priority first
//! ([`queue_key`]) and, for one that fits nowhere, asks [`preempt`] which pods of lower
//! priority to remove and where ([`priority`]). Pods being deleted still count on their
//! node until they are gone, so a preemptor goes there only once its victims have left.
//!
//! # Cost
//!
//! Every decision looks at every placed pod of every node, because the snapshot carries
//! no totals. The expensive part of that is comparing owner uids (one string per placed
//! pod), so same-owner pods are counted last and only as far as they can change the
//! outcome; the requests are summed in a plain pass that touches no strings. The reasons
//! for the failure message are gathered only when no node fits.

mod matching;
mod pods;
pub mod priority;
#[cfg(test)]
mod tests;
pub mod volumes;

use std::cmp::Reverse;
use std::collections::BTreeMap;

use crate::controllers::scheduler::matching::{
    affinity_matches, normalize_platform, tolerated_by_any, NormalPlatform,
};
use crate::model::{
    is_extended_resource, parse_count, parse_cpu_millis, parse_memory_bytes, preference_score,
    PodAffinityTerm, PodSpec, TopologySpreadConstraint,
};
pub use crate::model::{
    NodeSelectorOperator, NodeSelectorTerm, PreferredSchedulingTerm, Requirement, Taint,
    Toleration, TolerationOperator,
};
pub use priority::{preempt, queue_key, Preemption};

/// The taint a node that is not ready carries (added by Kubernetes' node lifecycle
/// controller; berth derives it from [`NodeInfo::ready`]).
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint a cordoned node carries; tolerating it lets a pod onto a cordoned node.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// Taint effects, as Kubernetes spells them.
pub const EFFECT_NO_SCHEDULE: &str = "NoSchedule";
pub const EFFECT_PREFER_NO_SCHEDULE: &str = "PreferNoSchedule";
pub const EFFECT_NO_EXECUTE: &str = "NoExecute";

/// What the scheduler needs to know about one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub allocatable_cpu_millis: u64,
    pub allocatable_memory_bytes: u64,
    /// Extended resources (`example.com/dongle`) the node has, as counts.
    pub allocatable_extended: BTreeMap<String, u64>,
    /// OCI platforms the node can run, e.g. `linux/arm64/v8`, `linux/arm/v7`.
    pub platforms: Vec<String>,
    /// The node's `Ready` condition is true.
    pub ready: bool,
    /// Cordoned (`spec.unschedulable`).
    pub unschedulable: bool,
    /// Pods already bound to the node, counted against its allocatable.
    pub pods: Vec<PlacedPod>,
}

/// A pod already bound to a node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlacedPod {
    pub namespace: String,
    pub name: String,
    /// The uid of the pod's controller (its Deployment), used for spreading.
    pub owner_uid: Option<String>,
    pub cpu_request_millis: u64,
    pub memory_request_bytes: u64,
    /// Extended resources it holds, as counts.
    pub extended: BTreeMap<String, u64>,
    pub labels: BTreeMap<String, String>,
    /// Its required pod anti-affinity, which keeps pods it picks out of its domain.
    pub anti_affinity: Vec<PodAffinityTerm>,
    /// `spec.priority`: only pods of higher priority may preempt it.
    pub priority: i32,
    /// Being deleted: it still holds what it requests, and is no victim to choose.
    pub terminating: bool,
}

/// What the scheduler needs to know about the pod to place.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodRequest {
    pub namespace: String,
    pub name: String,
    /// The uid of the pod's controller (its Deployment): replicas are spread by it.
    pub owner_uid: Option<String>,
    pub cpu_request_millis: u64,
    pub memory_request_bytes: u64,
    /// Extended resources (`example.com/dongle`) it needs, as counts.
    pub extended: BTreeMap<String, u64>,
    pub node_selector: BTreeMap<String, String>,
    /// Required node affinity terms: ORed; an empty list requires nothing.
    pub required_node_affinity: Vec<NodeSelectorTerm>,
    /// Preferred node affinity terms: a node scores the weights of those it matches.
    pub preferred_node_affinity: Vec<PreferredSchedulingTerm>,
    pub tolerations: Vec<Toleration>,
    pub labels: BTreeMap<String, String>,
    /// Required pod affinity and anti-affinity terms (see [`pods`]).
    pub pod_affinity: Vec<PodAffinityTerm>,
    pub pod_anti_affinity: Vec<PodAffinityTerm>,
    /// Preferred pod affinity terms with their weight, negative for anti-affinity.
    pub preferred_pod_affinity: Vec<(i64, PodAffinityTerm)>,
    pub spread: Vec<TopologySpreadConstraint>,
    /// Platforms every image of the pod runs on (see [`platforms_common_to`]); `None`
    /// when unknown, which lets every node pass the platform filter.
    pub image_platforms: Option<Vec<String>>,
    /// The nodes the pod's claims keep their data on (see [`volumes::claim_needs`]): a
    /// node must be each of them.
    pub volume_nodes: Vec<String>,
    /// Why the pod's claims cannot be had at all (missing, being deleted): no node is
    /// looked at.
    pub volume_problem: Option<String>,
    /// `spec.priority` (0 when unset).
    pub priority: i32,
    /// Whether it may preempt lower-priority pods (`preemptionPolicy` is not `Never`).
    pub may_preempt: bool,
}

impl PodRequest {
    /// The pod as it counts once bound to a node.
    pub fn placed(self) -> PlacedPod {
        PlacedPod {
            namespace: self.namespace,
            name: self.name,
            owner_uid: self.owner_uid,
            cpu_request_millis: self.cpu_request_millis,
            memory_request_bytes: self.memory_request_bytes,
            extended: self.extended,
            labels: self.labels,
            anti_affinity: self.pod_anti_affinity,
            priority: self.priority,
            terminating: false,
        }
    }
}

/// The scheduler's answer for one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Bind {
        node: String,
    },
    /// The pod stays `Pending` with `PodScheduled=False`, reason `Unschedulable` and this
    /// message.
    Unschedulable {
        message: String,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchedulerError {
    #[error("{list}[{index}].resources.requests.{resource}: {message}")]
    InvalidRequest {
        /// `containers` or `initContainers`.
        list: &'static str,
        index: usize,
        resource: &'static str,
        message: String,
    },
}

/// Builds the scheduler's view of a pod from its spec: its pod-level requests, or the
/// sum of the containers' (the model already defaults a missing request to its limit), the node
/// selector, required node affinity and tolerations. `image_platforms` is `None`
/// (unknown): the caller sets it when it has the images' indexes. The spec has been validated, so a bad
/// quantity here means stored data went wrong; it is reported rather than ignored.
pub fn pod_request_from_spec(
    namespace: &str,
    name: &str,
    owner_uid: Option<&str>,
    spec: &PodSpec,
) -> Result<PodRequest, SchedulerError> {
    check_requests(spec)?;
    let request_of =
        |c: &crate::model::Container, resource: &str| requested(c, resource).unwrap_or(0);
    // Pod-level requests (PodLevelResources) replace the containers' sum, as in
    // Kubernetes' scheduler.
    let cpu_request_millis = spec
        .pod_request("cpu")
        .unwrap_or_else(|| spec.peak_amount(|c| request_of(c, "cpu")));
    let memory_request_bytes = spec
        .pod_request("memory")
        .unwrap_or_else(|| spec.peak_amount(|c| request_of(c, "memory")));
    let extended = extended_requests(spec);
    let affinity = spec.affinity.as_ref();
    let anti_affinity = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
    Ok(PodRequest {
        namespace: namespace.to_string(),
        name: name.to_string(),
        owner_uid: owner_uid.map(str::to_string),
        cpu_request_millis,
        memory_request_bytes,
        extended,
        node_selector: spec.node_selector.clone(),
        required_node_affinity: spec
            .affinity
            .as_ref()
            .map(|a| a.required_terms().to_vec())
            .unwrap_or_default(),
        preferred_node_affinity: spec
            .affinity
            .as_ref()
            .map(|a| a.preferred_terms().to_vec())
            .unwrap_or_default(),
        tolerations: spec.tolerations.clone(),
        labels: BTreeMap::new(),
        pod_affinity: affinity
            .and_then(|a| a.pod_affinity.as_ref())
            .map_or_else(Vec::new, |a| a.required().to_vec()),
        pod_anti_affinity: anti_affinity.map_or_else(Vec::new, |a| a.required().to_vec()),
        preferred_pod_affinity: preferred_pod_terms(affinity),
        spread: spec.topology_spread_constraints.clone(),
        image_platforms: None,
        volume_nodes: Vec::new(),
        volume_problem: None,
        priority: crate::model::priority_class::pod_priority(spec),
        may_preempt: crate::model::priority_class::may_preempt(spec),
    })
}

/// Reads every container's CPU and memory request, so that a bad one is reported with
/// its container.
fn check_requests(spec: &PodSpec) -> Result<(), SchedulerError> {
    let lists = [
        ("initContainers", &spec.init_containers),
        ("containers", &spec.containers),
    ];
    for (list, containers) in lists {
        for (index, container) in containers.iter().enumerate() {
            let invalid = |resource, message| SchedulerError::InvalidRequest {
                list,
                index,
                resource,
                message,
            };
            for resource in ["cpu", "memory"] {
                requested(container, resource).map_err(|message| invalid(resource, message))?;
            }
        }
    }
    Ok(())
}

/// What `container` requests of `resource`, in its unit (millicores, bytes, or a count
/// of an extended resource); 0 when it requests none.
fn requested(container: &crate::model::Container, resource: &str) -> Result<u64, String> {
    let Some(quantity) = container.resources.requests.get(resource) else {
        return Ok(0);
    };
    match resource {
        "cpu" => parse_cpu_millis(quantity),
        "memory" => parse_memory_bytes(quantity),
        _ => parse_count(quantity),
    }
}

/// The extended resources the pod requests, each at its peak.
fn extended_requests(spec: &PodSpec) -> BTreeMap<String, u64> {
    let mut extended = BTreeMap::new();
    for container in spec.all_containers() {
        for name in container.resources.requests.keys() {
            if is_extended_resource(name) && !extended.contains_key(name) {
                let count = spec.peak_amount(|c| requested(c, name).unwrap_or(0));
                extended.insert(name.clone(), count);
            }
        }
    }
    extended
}

/// The preferred pod affinity terms with their weights, anti-affinity ones negative.
fn preferred_pod_terms(affinity: Option<&crate::model::Affinity>) -> Vec<(i64, PodAffinityTerm)> {
    let Some(affinity) = affinity else {
        return Vec::new();
    };
    let near = affinity.pod_affinity.iter().flat_map(|a| a.preferred());
    let away = affinity
        .pod_anti_affinity
        .iter()
        .flat_map(|a| a.preferred());
    near.map(|t| (i64::from(t.weight), t.pod_affinity_term.clone()))
        .chain(away.map(|t| (-i64::from(t.weight), t.pod_affinity_term.clone())))
        .collect()
}

/// The platforms every one of a pod's images runs on, from each image's list of offered
/// platforms: a platform is kept when each image offers one that runs there. Plain
/// intersection would be wrong for 32-bit ARM: a `linux/arm/v6` image and a `linux/arm/v7`
/// image share no entry, yet both run on a `linux/arm/v7` board.
pub fn platforms_common_to(images: &[Vec<String>]) -> Vec<String> {
    let mut common: Vec<String> = Vec::new();
    for candidate in images.iter().flatten() {
        let board = normalize_platform(candidate);
        let runs_everywhere = images.iter().all(|offered| {
            offered
                .iter()
                .any(|platform| normalize_platform(platform).runs_on(&board))
        });
        let text = board.to_canonical_string();
        if runs_everywhere && !common.contains(&text) {
            common.push(text);
        }
    }
    common
}

/// Picks the node for `pod` among `nodes`; see the module documentation for the rules.
pub fn schedule(pod: &PodRequest, nodes: &[NodeInfo]) -> Decision {
    if nodes.is_empty() {
        return Decision::Unschedulable {
            message: "no nodes available to schedule pods".to_string(),
        };
    }
    if let Some(problem) = &pod.volume_problem {
        return Decision::Unschedulable {
            message: format!("0/{} nodes are available: {problem}.", nodes.len()),
        };
    }
    let context = PodContext::new(pod, nodes);
    let mut best: Option<Candidate<'_>> = None;
    for node in nodes {
        let Ok(usage) = check_node(&context, node) else {
            continue;
        };
        let rank = rank(&context, node, &usage);
        // Spreading comes before the rank, so a node ahead on rank wins with as many
        // same-owner pods as the best so far, and one not ahead needs fewer. Only a
        // strictly better node replaces the best: of equal nodes the first stays.
        let most_same_owner = match &best {
            None => usize::MAX,
            Some(best) if rank < best.rank => best.same_owner_pods,
            Some(best) => match best.same_owner_pods.checked_sub(1) {
                Some(fewer) => fewer,
                None => continue,
            },
        };
        if let Some(same_owner_pods) = count_same_owner(&context, node, most_same_owner) {
            best = Some(Candidate {
                node,
                same_owner_pods,
                rank,
            });
        }
    }
    match best {
        Some(best) => Decision::Bind {
            node: best.node.name.clone(),
        },
        None => Decision::Unschedulable {
            message: unschedulable_message(&context, nodes),
        },
    }
}

/// What is worked out once per pod rather than once per node.
struct PodContext<'a> {
    pod: &'a PodRequest,
    /// Pod affinity and topology spread, counted over every node.
    rules: pods::PodRules<'a>,
    /// The Deployment whose replicas are spread; `None` skips spreading.
    owner_uid: Option<&'a str>,
    image_platforms: Option<ImagePlatforms<'a>>,
    tolerates_cordon: bool,
    tolerates_not_ready: bool,
}

impl<'a> PodContext<'a> {
    fn new(pod: &'a PodRequest, nodes: &'a [NodeInfo]) -> Self {
        let image_platforms = pod.image_platforms.as_ref().map(|list| {
            let normal: Vec<NormalPlatform<'a>> =
                list.iter().map(|p| normalize_platform(p)).collect();
            let canonical = normal.iter().map(|p| p.to_canonical_string()).collect();
            ImagePlatforms { normal, canonical }
        });
        let tolerates = |key: &str| {
            let taint = Taint {
                key: key.to_string(),
                value: None,
                effect: EFFECT_NO_SCHEDULE.to_string(),
                time_added: None,
            };
            tolerated_by_any(&pod.tolerations, &taint)
        };
        PodContext {
            pod,
            rules: pods::PodRules::new(pod, nodes),
            owner_uid: pod.owner_uid.as_deref(),
            image_platforms,
            tolerates_cordon: tolerates(TAINT_UNSCHEDULABLE),
            tolerates_not_ready: tolerates(TAINT_NOT_READY),
        }
    }
}

/// The pod's image platforms, normalised once per pod.
struct ImagePlatforms<'a> {
    normal: Vec<NormalPlatform<'a>>,
    /// The same as text: boards report canonical platforms, so one string comparison
    /// usually settles it without normalising the node's platform for every pod.
    canonical: Vec<String>,
}

impl ImagePlatforms<'_> {
    fn offered_by(&self, node: &NodeInfo) -> bool {
        node.platforms.iter().any(|node_platform| {
            if self.canonical.contains(node_platform) {
                return true;
            }
            let node_platform = normalize_platform(node_platform);
            self.normal
                .iter()
                .any(|image| image.runs_on(&node_platform))
        })
    }

    /// The reason a node is refused: what the images offer, so the reader can compare
    /// it with the node's `kubernetes.io/arch` and `berth.dev/arch-variant` labels.
    fn mismatch_reason(&self) -> String {
        let mut offered: Vec<&str> = self.canonical.iter().map(String::as_str).collect();
        offered.sort_unstable();
        offered.dedup();
        if offered.is_empty() {
            "node(s) didn't match the image's platform (the pod's images share no platform)"
                .to_string()
        } else {
            format!(
                "node(s) didn't match the image's platform (the image offers {})",
                offered.join(", ")
            )
        }
    }
}

/// Why one node cannot take the pod.
enum Rejection<'n> {
    Unschedulable,
    UntoleratedTaint {
        key: &'n str,
        value: &'n str,
    },
    NodeAffinity,
    Insufficient {
        cpu: bool,
        memory: bool,
        /// Extended resources short, by name.
        extended: Vec<String>,
    },
    VolumeNodeConflict,
    PodRule(pods::PodRuleRejection),
    Platform,
}

impl Rejection<'_> {
    /// Kubernetes' reason strings for this rejection.
    fn reasons(&self, context: &PodContext<'_>) -> Vec<String> {
        match self {
            Rejection::Unschedulable => vec!["node(s) were unschedulable".to_string()],
            Rejection::UntoleratedTaint { key, value } => {
                vec![format!("node(s) had untolerated taint {{{key}: {value}}}")]
            }
            Rejection::NodeAffinity => {
                vec!["node(s) didn't match Pod's node affinity/selector".to_string()]
            }
            Rejection::Insufficient {
                cpu,
                memory,
                extended,
            } => {
                let mut reasons = Vec::new();
                if *cpu {
                    reasons.push("Insufficient cpu".to_string());
                }
                if *memory {
                    reasons.push("Insufficient memory".to_string());
                }
                reasons.extend(extended.iter().map(|name| format!("Insufficient {name}")));
                reasons
            }
            Rejection::VolumeNodeConflict => {
                vec!["node(s) had volume node affinity conflict".to_string()]
            }
            Rejection::PodRule(rejection) => vec![rejection.reason().to_string()],
            Rejection::Platform => context
                .image_platforms
                .as_ref()
                .map(ImagePlatforms::mismatch_reason)
                .into_iter()
                .collect(),
        }
    }
}

/// The requests of the pods already on a node.
struct Usage {
    used_cpu_millis: u64,
    used_memory_bytes: u64,
}

/// Runs the filters in order and stops at the first that rejects the node.
fn check_node<'n>(context: &PodContext<'_>, node: &'n NodeInfo) -> Result<Usage, Rejection<'n>> {
    let pod = context.pod;
    if node.unschedulable && !context.tolerates_cordon {
        return Err(Rejection::Unschedulable);
    }
    if let Some(taint) = first_untolerated_taint(context, node) {
        return Err(taint);
    }
    if !selector_and_affinity_match(pod, node) {
        return Err(Rejection::NodeAffinity);
    }
    let usage = usage(node);
    let free_cpu = node
        .allocatable_cpu_millis
        .saturating_sub(usage.used_cpu_millis);
    let free_memory = node
        .allocatable_memory_bytes
        .saturating_sub(usage.used_memory_bytes);
    let cpu_short = pod.cpu_request_millis > 0 && pod.cpu_request_millis > free_cpu;
    let memory_short = pod.memory_request_bytes > 0 && pod.memory_request_bytes > free_memory;
    let extended_short = extended_short(pod, node);
    if cpu_short || memory_short || !extended_short.is_empty() {
        return Err(Rejection::Insufficient {
            cpu: cpu_short,
            memory: memory_short,
            extended: extended_short,
        });
    }
    if pod.volume_nodes.iter().any(|held_on| *held_on != node.name) {
        return Err(Rejection::VolumeNodeConflict);
    }
    context.rules.check(pod, node).map_err(Rejection::PodRule)?;
    if let Some(image_platforms) = &context.image_platforms {
        if !image_platforms.offered_by(node) {
            return Err(Rejection::Platform);
        }
    }
    Ok(usage)
}

/// The extended resources the pod needs more of than the node has left.
fn extended_short(pod: &PodRequest, node: &NodeInfo) -> Vec<String> {
    let mut short = Vec::new();
    for (name, wanted) in pod.extended.iter().filter(|(_, wanted)| **wanted > 0) {
        let used: u64 = node
            .pods
            .iter()
            .filter_map(|placed| placed.extended.get(name))
            .sum();
        let has = node.allocatable_extended.get(name).copied().unwrap_or(0);
        if used.saturating_add(*wanted) > has {
            short.push(name.clone());
        }
    }
    short
}

/// The first `NoSchedule`/`NoExecute` taint the pod does not tolerate, the derived
/// not-ready taint first.
fn first_untolerated_taint<'n>(
    context: &PodContext<'_>,
    node: &'n NodeInfo,
) -> Option<Rejection<'n>> {
    if !node.ready && !context.tolerates_not_ready {
        return Some(Rejection::UntoleratedTaint {
            key: TAINT_NOT_READY,
            value: "",
        });
    }
    let pod = context.pod;
    node.taints
        .iter()
        .filter(|taint| taint.effect == EFFECT_NO_SCHEDULE || taint.effect == EFFECT_NO_EXECUTE)
        .find(|taint| !tolerated_by_any(&pod.tolerations, taint))
        .map(|taint| Rejection::UntoleratedTaint {
            key: &taint.key,
            value: taint.value.as_deref().unwrap_or(""),
        })
}

fn selector_and_affinity_match(pod: &PodRequest, node: &NodeInfo) -> bool {
    pod.node_selector
        .iter()
        .all(|(key, value)| node.labels.get(key) == Some(value))
        && affinity_matches(&pod.required_node_affinity, &node.labels)
}

/// Sums the requests without looking at any string: this runs for every placed pod of
/// every node on every decision.
fn usage(node: &NodeInfo) -> Usage {
    let mut usage = Usage {
        used_cpu_millis: 0,
        used_memory_bytes: 0,
    };
    for placed in &node.pods {
        usage.used_cpu_millis = usage
            .used_cpu_millis
            .saturating_add(placed.cpu_request_millis);
        usage.used_memory_bytes = usage
            .used_memory_bytes
            .saturating_add(placed.memory_request_bytes);
    }
    usage
}

/// The pods on `node` with the pod's owner, or `None` once there are more than `limit`
/// (the node cannot win then, so the rest are not compared). A pod without an owner
/// counts 0 everywhere.
fn count_same_owner(context: &PodContext<'_>, node: &NodeInfo, limit: usize) -> Option<usize> {
    let Some(owner_uid) = context.owner_uid else {
        return Some(0);
    };
    let mut count = 0;
    for placed in &node.pods {
        if placed.owner_uid.as_deref() == Some(owner_uid) {
            count += 1;
            if count > limit {
                return None;
            }
        }
    }
    Some(count)
}

/// The best node so far and what it won with.
struct Candidate<'n> {
    node: &'n NodeInfo,
    same_owner_pods: usize,
    rank: Rank<'n>,
}

/// Everything after spreading, smaller is better: (untolerated soft taints, preferred
/// node and pod affinity and soft topology spread reversed, packing reversed, name).
type Rank<'n> = (usize, Reverse<i64>, Reverse<u64>, &'n str);

fn rank<'n>(context: &PodContext<'_>, node: &'n NodeInfo, usage: &Usage) -> Rank<'n> {
    let pod = context.pod;
    let soft_taints = node
        .taints
        .iter()
        .filter(|taint| taint.effect == EFFECT_PREFER_NO_SCHEDULE)
        .filter(|taint| !tolerated_by_any(&pod.tolerations, taint))
        .count();
    let packing = share_ppm(
        usage.used_cpu_millis.saturating_add(pod.cpu_request_millis),
        node.allocatable_cpu_millis,
    ) + share_ppm(
        usage
            .used_memory_bytes
            .saturating_add(pod.memory_request_bytes),
        node.allocatable_memory_bytes,
    );
    let preferred =
        preference_score(&pod.preferred_node_affinity, &node.labels) + context.rules.score(node);
    // The sum of the two shares orders nodes exactly as their average does.
    (
        soft_taints,
        Reverse(preferred),
        Reverse(packing),
        node.name.as_str(),
    )
}

/// `requested / allocatable` in parts per million, capped at a million; 0 when the node
/// has none of the resource.
fn share_ppm(requested: u64, allocatable: u64) -> u64 {
    if allocatable == 0 {
        return 0;
    }
    let capped = u128::from(requested.min(allocatable));
    // capped <= allocatable, so the quotient is at most 1_000_000 and fits in u64.
    (capped * 1_000_000 / u128::from(allocatable)) as u64
}

/// Kubernetes' `FitError` text: a histogram of reasons over all nodes.
fn unschedulable_message(context: &PodContext<'_>, nodes: &[NodeInfo]) -> String {
    let mut histogram: BTreeMap<String, usize> = BTreeMap::new();
    for node in nodes {
        if let Err(rejection) = check_node(context, node) {
            for reason in rejection.reasons(context) {
                *histogram.entry(reason).or_insert(0) += 1;
            }
        }
    }
    // Kubernetes sorts the "COUNT REASON" strings themselves, count included.
    let mut entries: Vec<String> = histogram
        .into_iter()
        .map(|(reason, count)| format!("{count} {reason}"))
        .collect();
    crate::support::sort::sort(&mut entries);
    format!(
        "0/{} nodes are available: {}.",
        nodes.len(),
        entries.join(", ")
    )
}
