//! Validation of HorizontalPodAutoscalers (autoscaling/v2, and v1 as converted on
//! parsing), field by field as Kubernetes validates them. berth stores them without
//! scaling anything (`model::passive`): there is no metrics pipeline on a board.

use serde_json::Value;

use super::checker::{get, index, join, Checker};
use crate::model::{is_dns1123_subdomain, is_quantity};

const METRIC_TYPES: [&str; 5] = [
    "Object",
    "Pods",
    "Resource",
    "ContainerResource",
    "External",
];

/// `spec` of a HorizontalPodAutoscaler; `v1` for the older schema with
/// `targetCPUUtilizationPercentage` instead of `metrics` and `behavior`.
pub(super) fn check_autoscaler_spec(c: &mut Checker, value: Option<&Value>, v1: bool) {
    let Some(spec) = value.and_then(|v| c.object(v, "spec")) else {
        c.required("spec");
        return;
    };
    let fields: &[&str] = if v1 {
        &[
            "scaleTargetRef",
            "minReplicas",
            "maxReplicas",
            "targetCPUUtilizationPercentage",
        ]
    } else {
        &[
            "scaleTargetRef",
            "minReplicas",
            "maxReplicas",
            "metrics",
            "behavior",
        ]
    };
    c.only_fields(spec, "spec", fields);
    match get(spec, "scaleTargetRef") {
        None => c.required("spec.scaleTargetRef"),
        Some(value) => check_target_ref(c, value, "spec.scaleTargetRef"),
    }
    let min = get(spec, "minReplicas")
        .and_then(|v| c.integer_in(v, "spec.minReplicas", 1, i64::from(i32::MAX)));
    match get(spec, "maxReplicas") {
        None => c.required("spec.maxReplicas"),
        Some(value) => {
            let max = c.integer_in(value, "spec.maxReplicas", 1, i64::from(i32::MAX));
            if let (Some(min), Some(max)) = (min, max) {
                if max < min {
                    c.error(
                        "spec.maxReplicas",
                        "must be greater than or equal to `minReplicas`",
                    );
                }
            }
        }
    }
    if let Some(value) = get(spec, "targetCPUUtilizationPercentage") {
        let path = "spec.targetCPUUtilizationPercentage";
        c.integer_in(value, path, 1, i64::from(i32::MAX));
    }
    if let Some(value) = get(spec, "metrics") {
        for (i, metric) in c
            .list(value, "spec.metrics")
            .into_iter()
            .flatten()
            .enumerate()
        {
            check_metric(c, metric, &index("spec.metrics", i));
        }
    }
    if let Some(value) = get(spec, "behavior") {
        check_behavior(c, value);
    }
}

/// A reference to the scaled object (`kind` and `name` required) or a metric's object.
fn check_target_ref(c: &mut Checker, value: &Value, path: &str) {
    let Some(target) = c.object(value, path) else {
        return;
    };
    c.only_fields(target, path, &["apiVersion", "kind", "name"]);
    if let Some(value) = get(target, "apiVersion") {
        c.string(value, &join(path, "apiVersion"));
    }
    match get(target, "kind") {
        None => c.required(&join(path, "kind")),
        Some(value) => {
            c.string(value, &join(path, "kind"));
        }
    }
    let name_path = join(path, "name");
    match get(target, "name").map(|v| c.string(v, &name_path)) {
        None | Some(Some("")) => c.required(&name_path),
        Some(None) => {}
        Some(Some(name)) if !is_dns1123_subdomain(name) => c.error(
            &name_path,
            format!("invalid name {name:?}: must be a lowercase RFC 1123 subdomain"),
        ),
        Some(Some(_)) => {}
    }
}

/// One of `spec.metrics`: its `type` names the one member that must be set.
fn check_metric(c: &mut Checker, value: &Value, path: &str) {
    let Some(metric) = c.object(value, path) else {
        return;
    };
    let members = [
        "object",
        "pods",
        "resource",
        "containerResource",
        "external",
    ];
    let mut fields = vec!["type"];
    fields.extend(members);
    c.only_fields(metric, path, &fields);
    let type_path = join(path, "type");
    let Some(kind) = get(metric, "type") else {
        c.required(&type_path);
        return;
    };
    let Some(kind) = c.one_of(kind, &type_path, &METRIC_TYPES) else {
        return;
    };
    let position = METRIC_TYPES.iter().position(|t| *t == kind).unwrap_or(0);
    let wanted = members[position];
    for member in members {
        let member_path = join(path, member);
        match (get(metric, member), member == wanted) {
            (None, true) => c.required(&member_path),
            (Some(_), false) => c.error(
                &member_path,
                format!("must be omitted when `type` is {kind:?}"),
            ),
            (Some(source), true) => check_metric_source(c, source, &member_path, kind),
            (None, false) => {}
        }
    }
}

fn check_metric_source(c: &mut Checker, value: &Value, path: &str, kind: &str) {
    let Some(source) = c.object(value, path) else {
        return;
    };
    let fields: &[&str] = match kind {
        "Resource" => &["name", "target"],
        "ContainerResource" => &["name", "container", "target"],
        "Object" => &["describedObject", "metric", "target"],
        _ => &["metric", "target"],
    };
    c.only_fields(source, path, fields);
    for field in fields {
        let field_path = join(path, field);
        let Some(value) = get(source, field) else {
            c.required(&field_path);
            continue;
        };
        match *field {
            "target" => check_metric_target(c, value, &field_path),
            "describedObject" => check_target_ref(c, value, &field_path),
            "metric" => check_metric_identifier(c, value, &field_path),
            _ => {
                c.string(value, &field_path);
            }
        }
    }
}

fn check_metric_identifier(c: &mut Checker, value: &Value, path: &str) {
    let Some(metric) = c.object(value, path) else {
        return;
    };
    c.only_fields(metric, path, &["name", "selector"]);
    match get(metric, "name") {
        None => c.required(&join(path, "name")),
        Some(value) => {
            c.string(value, &join(path, "name"));
        }
    }
    if let Some(value) = get(metric, "selector") {
        super::pod_affinity::check_pod_selector(c, value, &join(path, "selector"));
    }
}

/// `target`: its `type` names the value that must be set.
fn check_metric_target(c: &mut Checker, value: &Value, path: &str) {
    let Some(target) = c.object(value, path) else {
        return;
    };
    c.only_fields(
        target,
        path,
        &["type", "value", "averageValue", "averageUtilization"],
    );
    let type_path = join(path, "type");
    let kind = match get(target, "type") {
        None => {
            c.required(&type_path);
            None
        }
        Some(value) => c.one_of(value, &type_path, &["Utilization", "Value", "AverageValue"]),
    };
    for field in ["value", "averageValue"] {
        if let Some(value) = get(target, field) {
            check_quantity(c, value, &join(path, field));
        }
    }
    if let Some(value) = get(target, "averageUtilization") {
        c.integer_in(
            value,
            &join(path, "averageUtilization"),
            1,
            i64::from(i32::MAX),
        );
    }
    let needed = match kind {
        Some("Utilization") => "averageUtilization",
        Some("Value") => "value",
        Some("AverageValue") => "averageValue",
        _ => return,
    };
    if get(target, needed).is_none() {
        c.required(&join(path, needed));
    }
}

fn check_quantity(c: &mut Checker, value: &Value, path: &str) {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        _ => {
            c.error(path, "expected quantity");
            return;
        }
    };
    if !is_quantity(&text) {
        c.error(
            path,
            format!("invalid quantity {text:?}: must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
        );
    }
}

/// `spec.behavior`: `scaleUp` and `scaleDown`, each with its policies.
fn check_behavior(c: &mut Checker, value: &Value) {
    let Some(behavior) = c.object(value, "spec.behavior") else {
        return;
    };
    c.only_fields(behavior, "spec.behavior", &["scaleUp", "scaleDown"]);
    for direction in ["scaleUp", "scaleDown"] {
        if let Some(rules) = get(behavior, direction) {
            check_scaling_rules(c, rules, &join("spec.behavior", direction));
        }
    }
}

fn check_scaling_rules(c: &mut Checker, value: &Value, path: &str) {
    let Some(rules) = c.object(value, path) else {
        return;
    };
    c.only_fields(
        rules,
        path,
        &[
            "stabilizationWindowSeconds",
            "selectPolicy",
            "policies",
            "tolerance",
        ],
    );
    if let Some(value) = get(rules, "stabilizationWindowSeconds") {
        c.integer_in(value, &join(path, "stabilizationWindowSeconds"), 0, 3600);
    }
    if let Some(value) = get(rules, "selectPolicy") {
        c.one_of(
            value,
            &join(path, "selectPolicy"),
            &["Max", "Min", "Disabled"],
        );
    }
    if let Some(value) = get(rules, "tolerance") {
        check_quantity(c, value, &join(path, "tolerance"));
    }
    let policies_path = join(path, "policies");
    let policies = get(rules, "policies").and_then(|v| c.list(v, &policies_path));
    for (i, policy) in policies.into_iter().flatten().enumerate() {
        check_scaling_policy(c, policy, &index(&policies_path, i));
    }
}

fn check_scaling_policy(c: &mut Checker, value: &Value, path: &str) {
    let Some(policy) = c.object(value, path) else {
        return;
    };
    c.only_fields(policy, path, &["type", "value", "periodSeconds"]);
    let bounds: [(&str, i64, i64); 2] = [
        ("value", 1, i64::from(i32::MAX)),
        ("periodSeconds", 1, 1800),
    ];
    match get(policy, "type") {
        None => c.required(&join(path, "type")),
        Some(value) => {
            c.one_of(value, &join(path, "type"), &["Pods", "Percent"]);
        }
    }
    for (field, min, max) in bounds {
        match get(policy, field) {
            None => c.required(&join(path, field)),
            Some(value) => {
                c.integer_in(value, &join(path, field), min, max);
            }
        }
    }
}

#[cfg(test)]
#[path = "autoscaler_tests.rs"]
mod tests;
