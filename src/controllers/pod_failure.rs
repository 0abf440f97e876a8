//! Failed pods as the Job controller sees them: when each failed, the exit codes of its
//! terminated containers and its conditions (taken from its status, as the agent derives
//! it from its containers or as a board reports it to the coordinator), and which rule
//! of a Job's `podFailurePolicy` a failure matches, as Kubernetes' job controller decides.
//!
//! Berth sets no `DisruptionTarget` condition (it neither evicts nor preempts pods, and a
//! drained board's pods are deleted, not failed), so `onPodConditions` rules can only
//! match the conditions a failed pod has here: `PodScheduled`, `Initialized`,
//! `ContainersReady` and `Ready`.

use crate::model::{
    ExitCodeOperator, OnExitCodes, Pod, PodFailurePolicy, PodFailurePolicyAction, PodStatus,
};

/// What the controllers know of one failed pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodFailure {
    /// When it failed (Unix seconds): its last container's finish, or when it was first
    /// seen failed when that is unknown.
    pub at: i64,
    /// Each terminated container's name and exit code: app containers, then init
    /// containers, the order in which Kubernetes looks for a match.
    pub exit_codes: Vec<(String, i32)>,
    /// The pod's conditions, as (type, status).
    pub conditions: Vec<(String, String)>,
}

impl PodFailure {
    /// A failure known only by its time.
    pub fn at(at: i64) -> PodFailure {
        PodFailure {
            at,
            ..PodFailure::default()
        }
    }

    /// The failure of a pod whose status is `status`, seen at `now_secs`.
    pub fn of(status: &PodStatus, now_secs: i64) -> PodFailure {
        let containers = status
            .container_statuses
            .iter()
            .chain(&status.init_container_statuses);
        let mut failure = PodFailure::at(now_secs);
        let mut finished = None;
        for container in containers {
            let Some(terminated) = &container.state.terminated else {
                continue;
            };
            failure
                .exit_codes
                .push((container.name.clone(), terminated.exit_code));
            let at = terminated.finished_at.as_deref().and_then(unix_seconds);
            finished = finished.max(at);
        }
        failure.at = finished.unwrap_or(now_secs);
        failure.conditions = status
            .conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone()))
            .collect();
        failure
    }
}

/// What a pod's failure does to its Job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Counts against `backoffLimit`, as every failure does without a policy.
    Count,
    /// Does not count; the pod is replaced.
    Ignore,
    /// Fails the Job, for the reason given (Kubernetes' message).
    FailJob(String),
    /// Fails the pod's index (Jobs with `backoffLimitPerIndex`).
    FailIndex,
}

/// The verdict of the first rule of `policy` that `failure` of `pod` matches; a failure
/// that matches none, or a Job without a policy, counts.
pub fn judge(policy: Option<&PodFailurePolicy>, pod: &Pod, failure: &PodFailure) -> Verdict {
    let Some(policy) = policy else {
        return Verdict::Count;
    };
    let meta = &pod.metadata;
    let pod_name = format!("{}/{}", meta.namespace_or_empty(), meta.name);
    for (index, rule) in policy.rules.iter().enumerate() {
        let action = rule.action.as_str();
        let matched = match &rule.on_exit_codes {
            Some(requirement) => matching_exit_code(requirement, failure).map(|(name, code)| {
                format!(
                    "Container {name} for pod {pod_name} failed with exit code {code} \
                     matching {action} rule at index {index}"
                )
            }),
            None => matching_condition(rule, failure).map(|type_| {
                format!(
                    "Pod {pod_name} has condition {type_} matching {action} rule at index {index}"
                )
            }),
        };
        let Some(message) = matched else {
            continue;
        };
        return match rule.action {
            PodFailurePolicyAction::FailJob => Verdict::FailJob(message),
            PodFailurePolicyAction::FailIndex => Verdict::FailIndex,
            PodFailurePolicyAction::Ignore => Verdict::Ignore,
            PodFailurePolicyAction::Count => Verdict::Count,
        };
    }
    Verdict::Count
}

/// The first terminated container (of the one named, if a name is given) whose exit
/// code meets `requirement`. A container that exited 0 succeeded and never matches.
fn matching_exit_code<'a>(
    requirement: &OnExitCodes,
    failure: &'a PodFailure,
) -> Option<(&'a str, i32)> {
    failure
        .exit_codes
        .iter()
        .filter(|(name, _)| {
            requirement
                .container_name
                .as_ref()
                .is_none_or(|n| n == name)
        })
        .filter(|(_, code)| *code != 0)
        .find(|(_, code)| {
            let listed = requirement.values.contains(code);
            match requirement.operator {
                ExitCodeOperator::In => listed,
                ExitCodeOperator::NotIn => !listed,
            }
        })
        .map(|(name, code)| (name.as_str(), *code))
}

/// The type of the first of the pod's conditions that one of the rule's patterns names
/// with the same status.
fn matching_condition<'a>(
    rule: &crate::model::PodFailurePolicyRule,
    failure: &'a PodFailure,
) -> Option<&'a str> {
    failure
        .conditions
        .iter()
        .find(|(type_, status)| {
            rule.on_pod_conditions
                .iter()
                .any(|p| p.type_ == *type_ && p.status == *status)
        })
        .map(|(type_, _)| type_.as_str())
}

fn unix_seconds(text: &str) -> Option<i64> {
    let time = humantime::parse_rfc3339(text).ok()?;
    let since = time.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(since.as_secs()).ok()
}
