//! Where a pod goes relative to other pods: pod affinity and anti-affinity (near or away
//! from pods a selector picks, within a topology domain such as a node or a zone) and
//! topology spread constraints (pods a selector picks spread evenly over domains), with
//! Kubernetes' names and semantics. The scheduler answers them; here are the types and
//! the one question every rule asks, whether a pod's labels match a selector.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::node_affinity::{requirement_matches, Requirement};

/// `podAffinity` or `podAntiAffinity`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodAffinity {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub required_during_scheduling_ignored_during_execution: Vec<PodAffinityTerm>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub preferred_during_scheduling_ignored_during_execution: Vec<WeightedPodAffinityTerm>,
}

/// The pods `label_selector` picks in `namespaces` (the pod's own when empty), and the
/// node label whose value makes a domain (`kubernetes.io/hostname`: each node).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodAffinityTerm {
    /// No selector picks no pod, as in Kubernetes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<PodSelector>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    pub topology_key: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WeightedPodAffinityTerm {
    pub weight: i32,
    pub pod_affinity_term: PodAffinityTerm,
}

/// A label selector on pods: `matchLabels` and `matchExpressions`, ANDed; an empty one
/// picks every pod.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSelector {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<Requirement>,
}

impl PodSelector {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
            && self
                .match_expressions
                .iter()
                .all(|requirement| requirement_matches(requirement, labels))
    }
}

impl PodAffinityTerm {
    /// Whether the term picks a pod in `namespace` with `labels`; `own_namespace` is the
    /// namespace of the pod that has the term.
    pub fn picks(
        &self,
        own_namespace: &str,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> bool {
        let in_namespace = if self.namespaces.is_empty() {
            namespace == own_namespace
        } else {
            self.namespaces.iter().any(|n| n == namespace)
        };
        in_namespace
            && self
                .label_selector
                .as_ref()
                .is_some_and(|s| s.matches(labels))
    }
}

impl PodAffinity {
    pub fn required(&self) -> &[PodAffinityTerm] {
        &self.required_during_scheduling_ignored_during_execution
    }

    pub fn preferred(&self) -> &[WeightedPodAffinityTerm] {
        &self.preferred_during_scheduling_ignored_during_execution
    }
}

/// One entry of `topologySpreadConstraints`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopologySpreadConstraint {
    pub max_skew: i32,
    pub topology_key: String,
    /// `DoNotSchedule` (a filter) or `ScheduleAnyway` (a preference).
    pub when_unsatisfiable: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<PodSelector>,
    /// With `DoNotSchedule`: fewer domains than this count as a global minimum of 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_domains: Option<i32>,
    /// Labels of the incoming pod whose values are added to the selector.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub match_label_keys: Vec<String>,
    /// `Honor` (default) counts only nodes the pod's node affinity allows, `Ignore` all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_affinity_policy: Option<String>,
    /// `Ignore` (default) counts tainted nodes too, `Honor` leaves those the pod does not
    /// tolerate out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_taints_policy: Option<String>,
}

impl TopologySpreadConstraint {
    pub fn is_hard(&self) -> bool {
        self.when_unsatisfiable != "ScheduleAnyway"
    }

    /// The selector with the incoming pod's `matchLabelKeys` added, as Kubernetes merges
    /// them; `None` picks no pod.
    pub fn selector_for(&self, pod_labels: &BTreeMap<String, String>) -> Option<PodSelector> {
        let mut selector = self.label_selector.clone()?;
        for key in &self.match_label_keys {
            if let Some(value) = pod_labels.get(key) {
                selector.match_labels.insert(key.clone(), value.clone());
            }
        }
        Some(selector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NodeSelectorOperator;

    use crate::model::test_labels as labels;

    #[test]
    fn terms_pick_pods_by_labels_and_namespace() {
        let term = PodAffinityTerm {
            label_selector: Some(PodSelector {
                match_labels: labels(&[("app", "db")]),
                match_expressions: vec![Requirement {
                    key: "tier".into(),
                    operator: NodeSelectorOperator::NotIn,
                    values: vec!["test".into()],
                }],
            }),
            namespaces: Vec::new(),
            topology_key: "kubernetes.io/hostname".into(),
        };
        assert!(term.picks("prod", "prod", &labels(&[("app", "db")])));
        assert!(!term.picks("prod", "other", &labels(&[("app", "db")])));
        assert!(!term.picks("prod", "prod", &labels(&[("app", "db"), ("tier", "test")])));
        let no_selector = PodAffinityTerm {
            label_selector: None,
            ..term
        };
        assert!(!no_selector.picks("prod", "prod", &labels(&[("app", "db")])));
    }

    #[test]
    fn match_label_keys_narrow_the_selector() {
        let constraint = TopologySpreadConstraint {
            max_skew: 1,
            topology_key: "zone".into(),
            when_unsatisfiable: "DoNotSchedule".into(),
            label_selector: Some(PodSelector {
                match_labels: labels(&[("app", "web")]),
                ..PodSelector::default()
            }),
            match_label_keys: vec!["pod-template-hash".into()],
            ..TopologySpreadConstraint::default()
        };
        let selector = constraint
            .selector_for(&labels(&[("app", "web"), ("pod-template-hash", "abc")]))
            .unwrap_or_default();
        assert!(selector.matches(&labels(&[("app", "web"), ("pod-template-hash", "abc")])));
        assert!(!selector.matches(&labels(&[("app", "web"), ("pod-template-hash", "old")])));
        assert!(constraint.is_hard());
    }
}
