//! The LimitRanger and ResourceQuota admissions of Kubernetes, as pure functions: a new
//! pod gets its namespace's LimitRange defaults and is held to their bounds, and no
//! creation may take a namespace past a quota.
//!
//! Both paths that create objects use them: apply (`api::apply`, on an agent and on a
//! coordinator) and the controllers that make pods (`controllers::admission`). The
//! callers read the namespace's LimitRanges and ResourceQuotas and count what its
//! objects use ([`pod_usage`], [`object_usage`]); each admission adds what it let
//! through to that count, so several creations in one request or one pass are judged
//! together.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::limit_range::{apply_limit_defaults, check_limits};
use crate::model::resource_quota::{object_usage_of, pod_usage, Usage, COMPUTE_RESOURCES};
use crate::model::{Kind, LimitRange, Object, Pod, ResourceQuota, ResourceRequirements};

/// What governs the objects of one namespace.
#[derive(Clone, Debug, Default)]
pub struct Policy<'a> {
    /// In name order: the first with a default for a resource gives it.
    pub limit_ranges: Vec<&'a LimitRange>,
    /// In name order: the first exceeded is the one reported.
    pub quotas: Vec<&'a ResourceQuota>,
}

impl Policy<'_> {
    /// Whether nothing governs the namespace: admission has nothing to do.
    pub fn is_empty(&self) -> bool {
        self.limit_ranges.is_empty() && self.quotas.is_empty()
    }
}

/// Kubernetes' refusal of a creation: `pods "web" is forbidden: <reason>`.
pub fn forbidden(kind: Kind, name: &str, reason: &str) -> String {
    format!("{} \"{name}\" is forbidden: {reason}", resource(kind))
}

/// The resource of a kind as Kubernetes names it in messages: its plural, with its API
/// group when it has one (`pods`, `deployments.apps`).
pub fn resource(kind: Kind) -> String {
    match kind.api_version().split_once('/') {
        Some((group, _)) => format!("{}.{group}", kind.plural()),
        None => kind.plural().to_owned(),
    }
}

/// Admits `pod` into its namespace: gives its containers the limit ranges' defaults,
/// checks their bounds, then the quotas. `used` is what the namespace uses now (the
/// pod's `previous` version included, with its usage, when this replaces one); on
/// success it also holds what the pod uses. `Err` is the reason (see [`forbidden`]).
///
/// A replaced pod is held to the bounds only when its resources change, and to the
/// quotas only for what it adds, so that applying it again as it was still succeeds.
pub fn admit_pod(
    policy: &Policy,
    used: &mut Usage,
    pod: &mut Pod,
    previous: Option<(&Pod, &Usage)>,
) -> Result<(), String> {
    apply_limit_defaults(&policy.limit_ranges, pod);
    let changed = previous.is_none_or(|(before, _)| {
        resources(before) != resources(pod) || before.spec.resources != pod.spec.resources
    });
    if changed {
        for range in &policy.limit_ranges {
            check_limits(range, pod)?;
        }
    }
    let usage = pod_usage(pod, false);
    let before = previous.map(|(_, usage)| usage.clone()).unwrap_or_default();
    let growth = usage.growth_over(&before);
    if previous.is_none() || !growth.0.is_empty() {
        check_quotas(&policy.quotas, used, &growth, Some(pod))?;
    }
    used.replace(&before, &usage);
    Ok(())
}

/// Admits `object` (not a pod) against the quotas; `previous` is the stored version it
/// replaces, and an update is held to the quotas only for what it adds (a Service
/// turned NodePort takes node ports).
pub fn admit_object(
    policy: &Policy,
    used: &mut Usage,
    object: &Object,
    previous: Option<&Object>,
) -> Result<(), String> {
    let usage = object_usage_of(object);
    let before = previous.map(object_usage_of).unwrap_or_default();
    let growth = usage.growth_over(&before);
    if previous.is_none() || !growth.0.is_empty() {
        check_quotas(&policy.quotas, used, &growth, None)?;
    }
    used.replace(&before, &usage);
    Ok(())
}

/// The resources of each container, by name: what the bounds are checked on.
fn resources(pod: &Pod) -> Vec<(&str, &ResourceRequirements)> {
    pod.spec
        .all_containers()
        .map(|c| (c.name.as_str(), &c.resources))
        .collect()
}

/// Refuses `requested` when it would take `used` past a quota's limit, or a pod whose
/// containers do not set a compute resource a quota limits (Kubernetes' old rule: a
/// quota on `cpu` makes every container state its CPU request). A quota scoped by
/// priority class judges only the pods in its scope, by what the pods in it use.
fn check_quotas(
    quotas: &[&ResourceQuota],
    used: &Usage,
    requested: &Usage,
    pod: Option<&Pod>,
) -> Result<(), String> {
    let quotas: Vec<&ResourceQuota> = quotas
        .iter()
        .copied()
        .filter(|quota| match pod {
            Some(pod) => quota.counts(pod),
            None => quota.spec.scope_selector.is_none(),
        })
        .collect();
    if let Some(pod) = pod {
        for quota in &quotas {
            if let Some(missing) = missing_resources(quota, pod) {
                return Err(format!(
                    "failed quota: {}: must specify {missing}",
                    quota.metadata.name
                ));
            }
        }
    }
    for quota in quotas {
        let scoped;
        let used = if quota.spec.scope_selector.is_some() {
            scoped = quota.used_of(used);
            &scoped
        } else {
            used
        };
        let hard = quota.hard_amounts();
        let charged: Vec<&String> = hard
            .keys()
            .copied()
            .filter(|name| requested.get(name) > 0)
            .collect();
        let exceeded: Vec<&String> = charged
            .into_iter()
            .filter(|name| {
                let limit = hard.get(*name).copied().unwrap_or(0);
                used.get(name).saturating_add(requested.get(name)) > limit
            })
            .collect();
        if exceeded.is_empty() {
            continue;
        }
        let limited = Usage(
            hard.iter()
                .map(|(name, amount)| ((*name).clone(), *amount))
                .collect(),
        );
        return Err(format!(
            "exceeded quota: {}, requested: {}, used: {}, limited: {}",
            quota.metadata.name,
            requested.pretty(&exceeded),
            used.pretty(&exceeded),
            limited.pretty(&exceeded),
        ));
    }
    Ok(())
}

/// `limits.cpu for: app; requests.memory for: app,sidecar`: the compute resources
/// `quota` limits that containers of `pod` do not set, with those containers. A
/// pod-level amount states it for every container: the pod is counted by it.
fn missing_resources(quota: &ResourceQuota, pod: &Pod) -> Option<String> {
    let pod_level = pod.spec.resources.as_ref();
    let stated_by_pod = |name: &str| {
        pod_level.is_some_and(|r| match name {
            "cpu" | "requests.cpu" => r.requests.contains_key("cpu"),
            "memory" | "requests.memory" => r.requests.contains_key("memory"),
            "limits.cpu" => r.limits.contains_key("cpu"),
            _ => r.limits.contains_key("memory"),
        })
    };
    let required: Vec<&str> = COMPUTE_RESOURCES
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| quota.spec.hard.contains_key(*name) && !stated_by_pod(name))
        .collect();
    let mut missing: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for container in pod.spec.all_containers() {
        let resources = &container.resources;
        for name in &required {
            let set = match *name {
                "cpu" | "requests.cpu" => resources.requests.contains_key("cpu"),
                "memory" | "requests.memory" => resources.requests.contains_key("memory"),
                "limits.cpu" => resources.limits.contains_key("cpu"),
                _ => resources.limits.contains_key("memory"),
            };
            if !set {
                missing.entry(name).or_default().insert(&container.name);
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(name, containers)| {
            let containers: Vec<&str> = containers.iter().copied().collect();
            format!("{name} for: {}", containers.join(","))
        })
        .collect();
    Some(parts.join("; "))
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod tests;
