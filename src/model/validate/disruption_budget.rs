//! Validation of PodDisruptionBudgets (policy/v1), as Kubernetes validates them. berth
//! stores them without an eviction API to hold to them (`model::passive`).

use serde_json::Value;

use super::checker::{get, Checker};
use super::deployment::int_or_percent;
use super::pod_affinity::check_pod_selector;

pub(super) fn check_disruption_budget_spec(c: &mut Checker, value: Option<&Value>) {
    let Some(spec) = value.and_then(|v| c.object(v, "spec")) else {
        c.required("spec");
        return;
    };
    c.only_fields(
        spec,
        "spec",
        &[
            "minAvailable",
            "maxUnavailable",
            "selector",
            "unhealthyPodEvictionPolicy",
        ],
    );
    let min = get(spec, "minAvailable").and_then(|v| int_or_percent(c, v, "spec.minAvailable"));
    let max = get(spec, "maxUnavailable").and_then(|v| int_or_percent(c, v, "spec.maxUnavailable"));
    if get(spec, "minAvailable").is_some() && get(spec, "maxUnavailable").is_some() {
        c.error("spec", "minAvailable and maxUnavailable cannot be both set");
    }
    for (amount, path) in [(min, "spec.minAvailable"), (max, "spec.maxUnavailable")] {
        if amount.is_some_and(|a| a.percent && a.amount > 100) {
            c.error(path, "must not be greater than 100%");
        }
    }
    if let Some(value) = get(spec, "selector") {
        check_pod_selector(c, value, "spec.selector");
    }
    if let Some(value) = get(spec, "unhealthyPodEvictionPolicy") {
        c.one_of(
            value,
            "spec.unhealthyPodEvictionPolicy",
            &["IfHealthyBudget", "AlwaysAllow"],
        );
    }
}
