//! Where a pod may run, beyond `nodeSelector`: required node affinity, tolerations of
//! node taints, and the yes/no questions about them with Kubernetes' semantics. The
//! scheduler asks them for every pod, the DaemonSet controller for its pods.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `spec.affinity`: node affinity, required (a filter) and preferred (a score at the
/// coordinator; a lone board has no choice to make).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Affinity {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_affinity: Option<NodeAffinity>,
    /// Near which pods the pod goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_affinity: Option<crate::model::PodAffinity>,
    /// Away from which pods the pod goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_anti_affinity: Option<crate::model::PodAffinity>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeAffinity {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_during_scheduling_ignored_during_execution: Option<NodeSelector>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub preferred_during_scheduling_ignored_during_execution: Vec<PreferredSchedulingTerm>,
}

/// A preferred term: nodes it matches score `weight` (1-100) more.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PreferredSchedulingTerm {
    pub weight: i32,
    pub preference: NodeSelectorTerm,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeSelector {
    pub node_selector_terms: Vec<NodeSelectorTerm>,
}

/// One node selector term: its expressions are ANDed; a term with none matches nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeSelectorTerm {
    pub match_expressions: Vec<Requirement>,
}

/// One `matchExpressions` entry on node labels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Requirement {
    pub key: String,
    pub operator: NodeSelectorOperator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeSelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// A pod toleration; `None` and `""` mean the same, as in Kubernetes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Toleration {
    /// Empty tolerates every key (with `Exists`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default)]
    pub operator: TolerationOperator,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Empty tolerates every effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    /// With `NoExecute`: how long the pod stays on a node after the taint is added;
    /// none stays for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TolerationOperator {
    #[default]
    Equal,
    Exists,
    /// The taint's value, an integer, is greater than the toleration's (Kubernetes
    /// 1.35's numeric operators; compared as node affinity's `Gt` compares a label).
    Gt,
    /// The taint's value, an integer, is less than the toleration's.
    Lt,
}

/// A Kubernetes node taint.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Taint {
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`; anything else is ignored.
    pub effect: String,
    /// When a `NoExecute` taint was added (RFC 3339), which `tolerationSeconds` count from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_added: Option<String>,
}

impl Taint {
    /// Whether the taint keeps pods that do not tolerate it off the node
    /// (`PreferNoSchedule` only makes the node less preferred).
    pub fn repels(&self) -> bool {
        matches!(self.effect.as_str(), "NoSchedule" | "NoExecute")
    }
}

impl Affinity {
    /// The required node affinity terms (ORed); empty when none are required.
    pub fn required_terms(&self) -> &[NodeSelectorTerm] {
        self.node_affinity
            .as_ref()
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map_or(&[], |s| s.node_selector_terms.as_slice())
    }

    /// The preferred node affinity terms.
    pub fn preferred_terms(&self) -> &[PreferredSchedulingTerm] {
        self.node_affinity.as_ref().map_or(&[], |a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_slice()
        })
    }
}

/// Kubernetes' `Toleration.ToleratesTaint`: an empty effect matches every effect, an empty
/// key matches every key (only meaningful with `Exists`), `Exists` ignores the value,
/// `Equal` needs the values to be equal (a missing value counts as `""`), and `Gt`/`Lt`
/// compare the taint's value with the toleration's as integers (no match when either is
/// not one: a node's taint values are not validated).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = non_empty(&toleration.effect) {
        if effect != taint.effect {
            return false;
        }
    }
    if let Some(key) = non_empty(&toleration.key) {
        if key != taint.key {
            return false;
        }
    }
    match toleration.operator {
        TolerationOperator::Exists => true,
        TolerationOperator::Equal => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        TolerationOperator::Gt | TolerationOperator::Lt => {
            let number = |value: &Option<String>| value.as_deref()?.parse::<i64>().ok();
            match (number(&taint.value), number(&toleration.value)) {
                (Some(tainted), Some(tolerated))
                    if toleration.operator == TolerationOperator::Gt =>
                {
                    tainted > tolerated
                }
                (Some(tainted), Some(tolerated)) => tainted < tolerated,
                _ => false,
            }
        }
    }
}

/// True when some toleration of the pod tolerates the taint.
pub fn tolerated_by_any(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|s| !s.is_empty())
}

/// The sum of the weights of the preferred terms a node with `labels` matches, as
/// Kubernetes' NodeAffinity score adds them up.
pub fn preference_score(
    terms: &[PreferredSchedulingTerm],
    labels: &BTreeMap<String, String>,
) -> i64 {
    terms
        .iter()
        .filter(|term| term_matches(&term.preference, labels))
        .map(|term| i64::from(term.weight))
        .sum()
}

/// `requiredDuringSchedulingIgnoredDuringExecution`: the terms are ORed. An empty list
/// means the pod asked for nothing, so every node matches; a term with no expressions
/// matches no node, as in Kubernetes.
pub fn affinity_matches(terms: &[NodeSelectorTerm], labels: &BTreeMap<String, String>) -> bool {
    terms.is_empty() || terms.iter().any(|term| term_matches(term, labels))
}

/// The expressions of one term are ANDed.
fn term_matches(term: &NodeSelectorTerm, labels: &BTreeMap<String, String>) -> bool {
    !term.match_expressions.is_empty()
        && term
            .match_expressions
            .iter()
            .all(|requirement| requirement_matches(requirement, labels))
}

/// `NotIn` and `DoesNotExist` match nodes that lack the label, as in Kubernetes.
pub(crate) fn requirement_matches(
    requirement: &Requirement,
    labels: &BTreeMap<String, String>,
) -> bool {
    let value = labels.get(&requirement.key);
    match requirement.operator {
        NodeSelectorOperator::In => value.is_some_and(|v| requirement.values.contains(v)),
        NodeSelectorOperator::NotIn => value.is_none_or(|v| !requirement.values.contains(v)),
        NodeSelectorOperator::Exists => value.is_some(),
        NodeSelectorOperator::DoesNotExist => value.is_none(),
    }
}

/// Whether a pod with `node_selector`, `affinity` and `tolerations` may run on a node
/// with `labels` and `taints`, as far as these rules go.
pub fn node_fits(
    node_selector: &BTreeMap<String, String>,
    affinity: Option<&Affinity>,
    tolerations: &[Toleration],
    labels: &BTreeMap<String, String>,
    taints: &[Taint],
) -> bool {
    node_selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        && affinity_matches(affinity.map_or(&[], Affinity::required_terms), labels)
        && taints
            .iter()
            .filter(|taint| taint.repels())
            .all(|taint| tolerated_by_any(tolerations, taint))
}
