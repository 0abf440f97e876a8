//! The Job kind (batch/v1): runs pods of one template until a number of them succeed
//! (its controller is in the controllers layer).
//!
//! Its pods are found by their controller reference, not by a selector: the selector
//! Kubernetes generates (`controller-uid`) needs the Job's uid, which exists only once
//! it is stored. A `spec.selector` given with `manualSelector` is accepted and not used.

use serde::{Deserialize, Serialize};

use crate::model::{LabelSelector, ObjectMeta, PodTemplateSpec};

/// Kubernetes' default `backoffLimit`.
pub const DEFAULT_BACKOFF_LIMIT: i32 = 6;

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Job {
    pub metadata: ObjectMeta,
    pub spec: JobSpec,
    #[serde(skip_serializing_if = "crate::model::is_default")]
    pub status: JobStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JobSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<i32>,
    /// `None`: the Job is done once any pod succeeded (a work queue).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completions: Option<i32>,
    /// `NonIndexed` (default) or `Indexed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<i32>,
    #[serde(skip_serializing_if = "crate::model::is_default")]
    pub suspend: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manual_selector: Option<bool>,
    /// How a failed pod counts: the first rule it matches decides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_failure_policy: Option<PodFailurePolicy>,
    /// Indexed Jobs: failures allowed per index before the index fails (and is not
    /// retried), instead of one `backoffLimit` for the whole Job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_limit_per_index: Option<i32>,
    /// With `backoffLimitPerIndex`: the Job fails once more indexes than this failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_failed_indexes: Option<i32>,
    /// Indexed Jobs: when the Job succeeds before every index did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_policy: Option<SuccessPolicy>,
    pub template: PodTemplateSpec,
}

/// `spec.successPolicy`: the Job succeeds once any rule is met.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SuccessPolicy {
    pub rules: Vec<SuccessPolicyRule>,
}

/// Met when `succeededCount` of `succeededIndexes` (every index, when not given)
/// succeeded, or all of `succeededIndexes` without a count.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SuccessPolicyRule {
    /// Kubernetes' index list: `0,2-3`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub succeeded_indexes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub succeeded_count: Option<i32>,
}

/// `spec.podFailurePolicy`: rules tried in order on each failed pod.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodFailurePolicy {
    pub rules: Vec<PodFailurePolicyRule>,
}

/// One rule: an action, and what a failed pod must show for it (exactly one of exit
/// codes and conditions, as validation ensures).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodFailurePolicyRule {
    pub action: PodFailurePolicyAction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_exit_codes: Option<OnExitCodes>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub on_pod_conditions: Vec<OnPodCondition>,
}

/// What a matching failure does. `FailIndex` needs `backoffLimitPerIndex` (validated).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PodFailurePolicyAction {
    /// The Job fails at once (`PodFailurePolicy`), its running pods stopped.
    FailJob,
    /// The pod's index fails at once and is not retried.
    FailIndex,
    /// The failure does not count against `backoffLimit`; the pod is replaced.
    Ignore,
    /// The failure counts, as without a policy.
    #[default]
    Count,
}

impl PodFailurePolicyAction {
    pub fn as_str(&self) -> &'static str {
        match self {
            PodFailurePolicyAction::FailJob => "FailJob",
            PodFailurePolicyAction::FailIndex => "FailIndex",
            PodFailurePolicyAction::Ignore => "Ignore",
            PodFailurePolicyAction::Count => "Count",
        }
    }
}

/// Exit codes of terminated containers (all, or the one named), 0 never matching.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OnExitCodes {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    pub operator: ExitCodeOperator,
    /// Sorted, without duplicates (validated).
    pub values: Vec<i32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ExitCodeOperator {
    #[default]
    In,
    NotIn,
}

/// A pod condition of this type with this status (`True` unless given).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OnPodCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
}

impl JobSpec {
    /// Defaults the API server fills in: the pod template's, and `True` for a pod
    /// condition pattern's status.
    pub fn apply_defaults(&mut self) {
        self.template.spec.apply_defaults();
        let rules = self
            .pod_failure_policy
            .iter_mut()
            .flat_map(|p| &mut p.rules);
        for pattern in rules.flat_map(|rule| &mut rule.on_pod_conditions) {
            if pattern.status.is_empty() {
                pattern.status = "True".to_owned();
            }
        }
    }

    /// How many pods may run at once (default 1).
    pub fn parallelism(&self) -> i32 {
        self.parallelism.unwrap_or(1).max(0)
    }

    /// Kubernetes' default is 6, or no limit when failures are counted per index.
    pub fn backoff_limit(&self) -> i32 {
        let default = if self.backoff_limit_per_index.is_some() {
            i32::MAX
        } else {
            DEFAULT_BACKOFF_LIMIT
        };
        self.backoff_limit.unwrap_or(default).max(0)
    }

    pub fn indexed(&self) -> bool {
        self.completion_mode.as_deref() == Some("Indexed")
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JobStatus {
    #[serde(skip_serializing_if = "crate::model::is_default")]
    pub active: i32,
    #[serde(skip_serializing_if = "crate::model::is_default")]
    pub succeeded: i32,
    #[serde(skip_serializing_if = "crate::model::is_default")]
    pub failed: i32,
    /// Indexed Jobs: the indexes that succeeded, as Kubernetes writes them (`0-2,4`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub completed_indexes: String,
    /// Jobs with `backoffLimitPerIndex`: the indexes that failed, in the same form.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub failed_indexes: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<JobCondition>,
}

impl JobStatus {
    /// The condition of `type_` that is `True`, if any.
    pub fn condition(&self, type_: &str) -> Option<&JobCondition> {
        self.conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == "True")
    }

    /// Whether the Job has ended: `Complete` or `Failed`.
    pub fn finished(&self) -> Option<&JobCondition> {
        self.condition("Complete")
            .or_else(|| self.condition("Failed"))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JobCondition {
    /// `Complete`, `Failed` or `Suspended`.
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_probe_time: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_transition_time: String,
}
