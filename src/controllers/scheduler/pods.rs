//! The rules that place a pod relative to other pods, as Kubernetes' InterPodAffinity
//! and PodTopologySpread plugins do. Everything that needs a look at every placed pod is
//! counted once per pod to schedule ([`PodRules::new`]); each node then costs a few map
//! lookups. A pod without such rules, in a fleet whose pods have no anti-affinity, costs
//! nothing here.
//!
//! - **Required pod affinity**: the node's domain (the value of the term's `topologyKey`
//!   label) must hold a pod some term picks, and the node must have every term's key. The
//!   first pod of a group that picks itself may go anywhere with those keys, when no pod
//!   anywhere is picked yet.
//! - **Required pod anti-affinity**: no pod a term picks in the node's domain; a node
//!   without the key is not in any domain of that term.
//! - **Existing pods' anti-affinity**: a placed pod whose required anti-affinity picks the
//!   incoming pod keeps it out of the placed pod's domain (the rule is symmetric).
//! - **Topology spread** (`DoNotSchedule`): among the nodes the pod may run on that have
//!   the constraint's key, pods the selector picks in the pod's namespace are counted per
//!   domain; the node's domain after placing may exceed the least-loaded domain by at most
//!   `maxSkew` (with fewer domains than `minDomains`, the least is taken as 0). A node
//!   without the key is refused.
//! - **Preferences**: preferred pod affinity adds its weight for a node whose domain holds
//!   a pod it picks, preferred anti-affinity subtracts it; `ScheduleAnyway` constraints
//!   prefer the node whose domain holds the fewest picked pods.

use std::collections::{BTreeMap, HashMap};

use super::{NodeInfo, PodRequest};
use crate::model::{affinity_matches, tolerated_by_any, PodAffinityTerm, PodSelector};

/// A topology domain: a node label key and its value.
type Domain<'a> = (&'a str, &'a str);

/// Why the inter-pod rules refuse a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PodRuleRejection {
    SpreadMissingLabel,
    Spread,
    Affinity,
    AntiAffinity,
    ExistingAntiAffinity,
}

impl PodRuleRejection {
    /// Kubernetes' reason.
    pub(super) fn reason(self) -> &'static str {
        match self {
            PodRuleRejection::SpreadMissingLabel => {
                "node(s) didn't match pod topology spread constraints (missing required label)"
            }
            PodRuleRejection::Spread => "node(s) didn't match pod topology spread constraints",
            PodRuleRejection::Affinity => "node(s) didn't match pod affinity rules",
            PodRuleRejection::AntiAffinity => "node(s) didn't match pod anti-affinity rules",
            PodRuleRejection::ExistingAntiAffinity => {
                "node(s) didn't satisfy existing pods anti-affinity rules"
            }
        }
    }
}

/// One spread constraint, counted.
struct Spread<'a> {
    key: &'a str,
    max_skew: i64,
    hard: bool,
    /// Picked pods per domain value, every eligible domain present (maybe with 0).
    counts: HashMap<&'a str, i64>,
    /// The least count over the domains (0 with fewer domains than `minDomains`).
    least: i64,
    /// 1 when the incoming pod is picked by the selector itself.
    self_match: i64,
}

/// The pod's inter-pod rules, counted over every node once.
#[derive(Default)]
pub(super) struct PodRules<'a> {
    affinity: HashMap<Domain<'a>, usize>,
    /// The pod picks itself with every required affinity term.
    first_of_group: bool,
    anti_affinity: HashMap<Domain<'a>, usize>,
    existing_anti: HashMap<Domain<'a>, usize>,
    /// Weighted preferred terms: domains holding a picked pod, and the weight (negative
    /// for anti-affinity).
    preferred: Vec<(&'a str, i64, HashMap<&'a str, usize>)>,
    spread: Vec<Spread<'a>>,
}

impl<'a> PodRules<'a> {
    pub(super) fn new(pod: &'a PodRequest, nodes: &'a [NodeInfo]) -> Self {
        let any_existing_anti = nodes
            .iter()
            .any(|n| n.pods.iter().any(|p| !p.anti_affinity.is_empty()));
        if pod.pod_affinity.is_empty()
            && pod.pod_anti_affinity.is_empty()
            && pod.preferred_pod_affinity.is_empty()
            && pod.spread.is_empty()
            && !any_existing_anti
        {
            return PodRules::default();
        }
        let mut rules = PodRules {
            first_of_group: pod
                .pod_affinity
                .iter()
                .all(|t| t.picks(&pod.namespace, &pod.namespace, &pod.labels)),
            preferred: pod
                .preferred_pod_affinity
                .iter()
                .map(|(weight, term)| (term.topology_key.as_str(), *weight, HashMap::new()))
                .collect(),
            ..PodRules::default()
        };
        for node in nodes {
            rules.count_node(pod, node);
        }
        rules.spread = pod
            .spread
            .iter()
            .filter_map(|constraint| count_spread(pod, constraint, nodes))
            .collect();
        rules
    }

    /// Counts the pods of one node for every term.
    fn count_node(&mut self, pod: &'a PodRequest, node: &'a NodeInfo) {
        for placed in &node.pods {
            let picked_by = |term: &PodAffinityTerm| {
                term.picks(&pod.namespace, &placed.namespace, &placed.labels)
            };
            for (term, counts) in [
                (&pod.pod_affinity, &mut self.affinity),
                (&pod.pod_anti_affinity, &mut self.anti_affinity),
            ] {
                for term in term.iter().filter(|t| picked_by(t)) {
                    if let Some(value) = node.labels.get(&term.topology_key) {
                        *counts.entry((&term.topology_key, value)).or_insert(0) += 1;
                    }
                }
            }
            for term in &placed.anti_affinity {
                if term.picks(&placed.namespace, &pod.namespace, &pod.labels) {
                    if let Some(value) = node.labels.get(&term.topology_key) {
                        *self
                            .existing_anti
                            .entry((&term.topology_key, value))
                            .or_insert(0) += 1;
                    }
                }
            }
        }
        self.count_preferred(pod, node);
    }

    fn count_preferred(&mut self, pod: &'a PodRequest, node: &'a NodeInfo) {
        for ((_, term), (key, _, domains)) in pod
            .preferred_pod_affinity
            .iter()
            .zip(self.preferred.iter_mut())
        {
            let Some(value) = node.labels.get(*key) else {
                continue;
            };
            let picked = node
                .pods
                .iter()
                .filter(|p| term.picks(&pod.namespace, &p.namespace, &p.labels))
                .count();
            if picked > 0 {
                *domains.entry(value.as_str()).or_insert(0) += picked;
            }
        }
    }

    /// Runs the filters in Kubernetes' order: topology spread, then pod affinity.
    pub(super) fn check(&self, pod: &PodRequest, node: &NodeInfo) -> Result<(), PodRuleRejection> {
        for spread in self.spread.iter().filter(|s| s.hard) {
            let Some(value) = node.labels.get(spread.key) else {
                return Err(PodRuleRejection::SpreadMissingLabel);
            };
            let count = spread.counts.get(value.as_str()).copied().unwrap_or(0);
            if count + spread.self_match - spread.least > spread.max_skew {
                return Err(PodRuleRejection::Spread);
            }
        }
        if !pod.pod_affinity.is_empty() && !self.affinity_satisfied(pod, node) {
            return Err(PodRuleRejection::Affinity);
        }
        let in_domain = |counts: &HashMap<Domain<'_>, usize>, term: &PodAffinityTerm| {
            node.labels
                .get(&term.topology_key)
                .and_then(|value| counts.get(&(term.topology_key.as_str(), value.as_str())))
                .is_some_and(|count| *count > 0)
        };
        if pod
            .pod_anti_affinity
            .iter()
            .any(|term| in_domain(&self.anti_affinity, term))
        {
            return Err(PodRuleRejection::AntiAffinity);
        }
        let existing = self
            .existing_anti
            .keys()
            .any(|(key, value)| node.labels.get(*key).map(String::as_str) == Some(*value));
        if existing {
            return Err(PodRuleRejection::ExistingAntiAffinity);
        }
        Ok(())
    }

    fn affinity_satisfied(&self, pod: &PodRequest, node: &NodeInfo) -> bool {
        let mut pods_exist = true;
        for term in &pod.pod_affinity {
            let Some(value) = node.labels.get(&term.topology_key) else {
                return false;
            };
            let count = self
                .affinity
                .get(&(term.topology_key.as_str(), value.as_str()));
            pods_exist &= count.is_some_and(|c| *c > 0);
        }
        pods_exist || (self.affinity.is_empty() && self.first_of_group)
    }

    /// The node's preference score, higher is better: preferred pod (anti-)affinity
    /// weights, less the picked pods in its domains of `ScheduleAnyway` constraints.
    pub(super) fn score(&self, node: &NodeInfo) -> i64 {
        let mut score = 0;
        for (key, weight, domains) in &self.preferred {
            let value = node.labels.get(*key).map(String::as_str);
            if value.is_some_and(|v| domains.get(v).is_some_and(|c| *c > 0)) {
                score += weight;
            }
        }
        for spread in self.spread.iter().filter(|s| !s.hard) {
            let value = node.labels.get(spread.key).map(String::as_str);
            score -= value
                .and_then(|v| spread.counts.get(v))
                .copied()
                .unwrap_or(0);
        }
        score
    }
}

/// Counts one spread constraint over the nodes the pod may run on (per its policies).
fn count_spread<'a>(
    pod: &'a PodRequest,
    constraint: &'a crate::model::TopologySpreadConstraint,
    nodes: &'a [NodeInfo],
) -> Option<Spread<'a>> {
    let selector: PodSelector = constraint.selector_for(&pod.labels).unwrap_or_default();
    let has_selector = constraint.label_selector.is_some();
    let honor_affinity = constraint.node_affinity_policy.as_deref() != Some("Ignore");
    let honor_taints = constraint.node_taints_policy.as_deref() == Some("Honor");
    let mut counts: HashMap<&'a str, i64> = HashMap::new();
    for node in nodes {
        let Some(value) = node.labels.get(&constraint.topology_key) else {
            continue;
        };
        if honor_affinity && !allows(&pod.node_selector, pod, &node.labels) {
            continue;
        }
        if honor_taints
            && node
                .taints
                .iter()
                .any(|t| t.repels() && !tolerated_by_any(&pod.tolerations, t))
        {
            continue;
        }
        let picked = node
            .pods
            .iter()
            .filter(|p| has_selector && p.namespace == pod.namespace && selector.matches(&p.labels))
            .count();
        *counts.entry(value.as_str()).or_insert(0) += picked as i64;
    }
    let min_domains = constraint.min_domains.unwrap_or(1).max(1) as usize;
    let least = if counts.len() < min_domains {
        0
    } else {
        counts.values().copied().min().unwrap_or(0)
    };
    Some(Spread {
        key: &constraint.topology_key,
        max_skew: i64::from(constraint.max_skew),
        hard: constraint.is_hard(),
        counts,
        least,
        self_match: i64::from(has_selector && selector.matches(&pod.labels)),
    })
}

fn allows(
    node_selector: &BTreeMap<String, String>,
    pod: &PodRequest,
    labels: &BTreeMap<String, String>,
) -> bool {
    node_selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        && affinity_matches(&pod.required_node_affinity, labels)
}
