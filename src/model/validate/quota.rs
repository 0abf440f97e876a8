//! Validation of ResourceQuotas and LimitRanges: resource names berth can count or
//! bound, quantities, and a LimitRange's bounds consistent with each other (checked, as
//! Kubernetes does, after its defaults are filled in).

use std::collections::BTreeMap;

use serde_json::Value;

use super::checker::{get, index, join, Checker};
use crate::model::limit_range::{LIMIT_RESOURCES, LIMIT_TYPES};
use crate::model::quota_scope::{SCOPE_NAMES, SCOPE_OPERATORS};
use crate::model::resource_quota::{
    format_amount, parse_amount, quota_resources, quota_unit, Unit, COMPUTE_RESOURCES,
};

/// `spec.hard[requests.cpu]`: resource names contain dots, so they go in brackets.
fn key_path(path: &str, key: &str) -> String {
    format!("{path}[{key}]")
}

/// A quantity's text: YAML users write `pods: 10` or `cpu: 1` unquoted.
fn quantity_text(c: &mut Checker, value: &Value, path: &str) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => {
            c.error(path, "expected string");
            None
        }
    }
}

pub(super) fn check_resource_quota_spec(c: &mut Checker, spec: Option<&Value>) {
    let Some(value) = spec else {
        return;
    };
    let Some(spec) = c.object(value, "spec") else {
        return;
    };
    // `scopes` select pods by QoS class or deadline, which berth does not count by;
    // `scopeSelector` by priority class.
    c.only_fields(spec, "spec", &["hard", "scopeSelector"]);
    let scoped = match get(spec, "scopeSelector") {
        Some(value) => {
            check_scope_selector(c, value, "spec.scopeSelector");
            true
        }
        None => false,
    };
    let Some(value) = get(spec, "hard") else {
        return;
    };
    let Some(hard) = c.object(value, "spec.hard") else {
        return;
    };
    for (name, item) in hard {
        let path = key_path("spec.hard", name);
        // A priority class selects pods: only what pods use can be limited by it.
        let for_pods = name == "pods" || COMPUTE_RESOURCES.iter().any(|(n, _)| n == name);
        if scoped && !for_pods {
            c.error(&path, "unsupported scope applied to resource");
            continue;
        }
        let Some(unit) = quota_unit(name) else {
            let supported: Vec<String> =
                quota_resources().iter().map(|n| format!("{n:?}")).collect();
            c.error(
                &path,
                format!(
                    "unsupported resource name {name:?}: supported values: {}",
                    supported.join(", ")
                ),
            );
            continue;
        };
        if let Some(text) = quantity_text(c, item, &path) {
            if let Err(message) = parse_amount(unit, &text) {
                c.error(&path, message);
            }
        }
    }
}

/// `matchExpressions`: each names the `PriorityClass` scope, an operator, and values
/// exactly when the operator compares with some.
fn check_scope_selector(c: &mut Checker, value: &Value, path: &str) {
    let Some(selector) = c.object(value, path) else {
        return;
    };
    c.only_fields(selector, path, &["matchExpressions"]);
    let list_path = join(path, "matchExpressions");
    let Some(value) = c.required_field(selector, path, "matchExpressions") else {
        return;
    };
    let Some(items) = c.list(value, &list_path) else {
        return;
    };
    if items.is_empty() {
        c.required(&list_path);
    }
    for (i, item) in items.iter().enumerate() {
        let path = index(&list_path, i);
        let Some(requirement) = c.object(item, &path) else {
            continue;
        };
        c.only_fields(requirement, &path, &["scopeName", "operator", "values"]);
        if let Some(v) = c.required_field(requirement, &path, "scopeName") {
            c.one_of(v, &join(&path, "scopeName"), &SCOPE_NAMES);
        }
        let operator = c
            .required_field(requirement, &path, "operator")
            .and_then(|v| c.one_of(v, &join(&path, "operator"), &SCOPE_OPERATORS));
        let values_path = join(&path, "values");
        let values = get(requirement, "values").and_then(|v| c.list(v, &values_path));
        for (j, value) in values.unwrap_or_default().iter().enumerate() {
            c.string(value, &index(&values_path, j));
        }
        let count = values.map_or(0, <[Value]>::len);
        match operator {
            Some("In" | "NotIn") if count == 0 => c.error(
                &values_path,
                "must have at least one value when `operator` is 'In' or 'NotIn'",
            ),
            Some("Exists" | "DoesNotExist") if count > 0 => c.error(
                &values_path,
                "must be empty when `operator` is 'Exists' or 'DoesNotExist'",
            ),
            _ => {}
        }
    }
}

pub(super) fn check_limit_range_spec(c: &mut Checker, spec: Option<&Value>) {
    let Some(value) = spec else {
        c.required("spec");
        return;
    };
    let Some(spec) = c.object(value, "spec") else {
        return;
    };
    c.only_fields(spec, "spec", &["limits"]);
    let Some(value) = c.required_field(spec, "spec", "limits") else {
        return;
    };
    let Some(limits) = c.list(value, "spec.limits") else {
        return;
    };
    let mut types = Vec::new();
    for (i, item) in limits.iter().enumerate() {
        let path = index("spec.limits", i);
        if let Some(type_) = check_limit_item(c, item, &path) {
            if types.contains(&type_) {
                c.error(&join(&path, "type"), format!("duplicate value {type_:?}"));
            }
            types.push(type_);
        }
    }
}

/// The bounds of one item, by field and resource, as amounts.
type Bounds = BTreeMap<&'static str, BTreeMap<&'static str, u64>>;

const BOUND_FIELDS: [&str; 5] = [
    "max",
    "min",
    "default",
    "defaultRequest",
    "maxLimitRequestRatio",
];

/// Checks one item of `spec.limits`; returns its type when it is a supported one.
fn check_limit_item<'a>(c: &mut Checker, value: &'a Value, path: &str) -> Option<&'a str> {
    let item = c.object(value, path)?;
    let mut allowed = vec!["type"];
    allowed.extend(BOUND_FIELDS);
    c.only_fields(item, path, &allowed);
    let type_ = c
        .required_field(item, path, "type")
        .and_then(|v| c.one_of(v, &join(path, "type"), &LIMIT_TYPES));
    let mut bounds = Bounds::new();
    for field in BOUND_FIELDS {
        let Some(value) = get(item, field) else {
            continue;
        };
        let field_path = join(path, field);
        if type_ == Some("Pod") && matches!(field, "default" | "defaultRequest") {
            c.error(&field_path, "may not be specified when `type` is 'Pod'");
            continue;
        }
        bounds.insert(field, check_bound_list(c, value, &field_path, field));
    }
    if type_ == Some("Container") {
        apply_container_defaults(&mut bounds);
    }
    check_consistency(c, &bounds, path);
    type_
}

/// A map of `cpu`/`memory` to quantities; returns the amounts that parse.
fn check_bound_list(
    c: &mut Checker,
    value: &Value,
    path: &str,
    field: &str,
) -> BTreeMap<&'static str, u64> {
    let mut amounts = BTreeMap::new();
    let Some(list) = c.object(value, path) else {
        return amounts;
    };
    for (name, item) in list {
        let item_path = key_path(path, name);
        let Some(resource) = LIMIT_RESOURCES.iter().find(|r| *r == name) else {
            c.error(
                &item_path,
                format!(
                    "unsupported resource name {name:?}: supported values: \"cpu\", \"memory\""
                ),
            );
            continue;
        };
        let Some(text) = quantity_text(c, item, &item_path) else {
            continue;
        };
        // A ratio is a plain number, read in thousandths like CPU.
        let unit = if field == "maxLimitRequestRatio" || *resource == "cpu" {
            Unit::Cpu
        } else {
            Unit::Memory
        };
        match parse_amount(unit, &text) {
            Ok(amount) => {
                amounts.insert(*resource, amount);
            }
            Err(message) => c.error(&item_path, message),
        }
    }
    amounts
}

/// The defaults Kubernetes fills in before it validates a `Container` item (see
/// `LimitRangeItem::apply_defaults`).
fn apply_container_defaults(bounds: &mut Bounds) {
    let max = bounds.get("max").cloned().unwrap_or_default();
    let default = bounds.entry("default").or_default();
    for (resource, amount) in max {
        default.entry(resource).or_insert(amount);
    }
    let mut requests = bounds.get("default").cloned().unwrap_or_default();
    for (resource, amount) in bounds.get("min").cloned().unwrap_or_default() {
        requests.entry(resource).or_insert(amount);
    }
    let default_request = bounds.entry("defaultRequest").or_default();
    for (resource, amount) in requests {
        default_request.entry(resource).or_insert(amount);
    }
}

/// min ≤ default request ≤ default limit ≤ max, and ratios of at least 1 that max/min
/// allows, with Kubernetes' messages.
fn check_consistency(c: &mut Checker, bounds: &Bounds, path: &str) {
    let at = |field: &str, resource: &str| key_path(&join(path, field), resource);
    for resource in LIMIT_RESOURCES {
        let unit = if resource == "cpu" {
            Unit::Cpu
        } else {
            Unit::Memory
        };
        let find = |field: &str| bounds.get(field).and_then(|b| b.get(resource)).copied();
        let show = |amount: u64| format_amount(unit, amount);
        let (min, max) = (find("min"), find("max"));
        let (default, request) = (find("default"), find("defaultRequest"));
        if let (Some(min), Some(max)) = (min, max) {
            if min > max {
                let message = format!(
                    "min value {} is greater than max value {}",
                    show(min),
                    show(max)
                );
                c.error(&at("min", resource), message);
            }
        }
        if let Some(request) = request {
            let request_text = show(request);
            if let Some(min) = min.filter(|min| *min > request) {
                let message = format!(
                    "min value {} is greater than default request value {request_text}",
                    show(min)
                );
                c.error(&at("defaultRequest", resource), message);
            }
            if let Some(max) = max.filter(|max| request > *max) {
                let message = format!(
                    "default request value {request_text} is greater than max value {}",
                    show(max)
                );
                c.error(&at("defaultRequest", resource), message);
            }
            if let Some(default) = default.filter(|default| request > *default) {
                let message = format!(
                    "default request value {request_text} is greater than default limit value {}",
                    show(default)
                );
                c.error(&at("defaultRequest", resource), message);
            }
        }
        if let Some(default) = default {
            if let Some(min) = min.filter(|min| *min > default) {
                let message = format!(
                    "min value {} is greater than default value {}",
                    show(min),
                    show(default)
                );
                c.error(&at("default", resource), message);
            }
            if let Some(max) = max.filter(|max| default > *max) {
                let message = format!(
                    "default value {} is greater than max value {}",
                    show(default),
                    show(max)
                );
                c.error(&at("default", resource), message);
            }
        }
        if let Some(ratio) = find("maxLimitRequestRatio") {
            check_ratio(c, ratio, min, max, &at("maxLimitRequestRatio", resource));
        }
    }
}

/// A ratio (in thousandths) is at least 1, and no more than max/min allows.
fn check_ratio(c: &mut Checker, ratio: u64, min: Option<u64>, max: Option<u64>, path: &str) {
    let ratio_text = format_amount(Unit::Cpu, ratio);
    if ratio < 1000 {
        c.error(path, format!("ratio {ratio_text} is less than 1"));
    }
    if let (Some(min), Some(max)) = (min.filter(|m| *m > 0), max) {
        // ratio / 1000 > max / min, exactly.
        if u128::from(ratio) * u128::from(min) > u128::from(max) * 1000 {
            c.error(
                path,
                format!(
                    "ratio {ratio_text} is greater than max/min = {:.6}",
                    max as f64 / min as f64
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::assert_problems;

    fn quota(hard: &str) -> String {
        format!(
            "apiVersion: v1\nkind: ResourceQuota\nmetadata: {{name: q}}\nspec: {{hard: {hard}}}\n"
        )
    }

    fn limits(items: &str) -> String {
        format!(
            "apiVersion: v1\nkind: LimitRange\nmetadata: {{name: l}}\nspec: {{limits: {items}}}\n"
        )
    }

    #[test]
    fn quota_names_resources_berth_counts() {
        assert_problems(
            &quota(
                "{pods: 10, requests.cpu: '1', limits.memory: 2Gi, count/deployments.apps: '3'}",
            ),
            &[],
        );
        let problems = super::super::tests::problems(&quota(
            "{requests.storage: 1Gi, pods: '1.5', memory: 64Mb}",
        ));
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert_eq!(problems[0], "spec.hard[memory]: invalid quantity \"64Mb\"");
        assert_eq!(problems[1], "spec.hard[pods]: must be an integer");
        assert!(
            problems[2].starts_with(
                "spec.hard[requests.storage]: unsupported resource name \"requests.storage\": \
                 supported values: \"pods\", \"cpu\""
            ),
            "{problems:?}"
        );
        assert_problems(
            "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q}\nspec: {scopes: [BestEffort]}\n",
            &["spec.scopes: field not supported by berth"],
        );
    }

    #[test]
    fn scope_selectors_name_priority_classes() {
        let scoped = |selector: &str, hard: &str| {
            format!(
                "apiVersion: v1\nkind: ResourceQuota\nmetadata: {{name: q}}\nspec:\n  \
                 hard: {hard}\n  scopeSelector: {{matchExpressions: [{selector}]}}\n"
            )
        };
        let fine = "{scopeName: PriorityClass, operator: In, values: [high]}";
        assert_problems(&scoped(fine, "{pods: '2', requests.memory: 1Gi}"), &[]);
        let exists = "{scopeName: PriorityClass, operator: Exists}";
        assert_problems(&scoped(exists, "{cpu: '1'}"), &[]);
        assert_problems(
            &scoped(fine, "{pods: '2', count/configmaps: '1'}"),
            &["spec.hard[count/configmaps]: unsupported scope applied to resource"],
        );
        assert_problems(
            &scoped(
                "{scopeName: BestEffort, operator: In}, {scopeName: PriorityClass, operator: \
                 Exists, values: [x]}, {operator: Near}",
                "{pods: '1'}",
            ),
            &[
                "spec.scopeSelector.matchExpressions[0].scopeName: unsupported value \
                 \"BestEffort\": supported values: \"PriorityClass\"",
                "spec.scopeSelector.matchExpressions[0].values: must have at least one value \
                 when `operator` is 'In' or 'NotIn'",
                "spec.scopeSelector.matchExpressions[1].values: must be empty when `operator` \
                 is 'Exists' or 'DoesNotExist'",
                "spec.scopeSelector.matchExpressions[2].scopeName: required value",
                "spec.scopeSelector.matchExpressions[2].operator: unsupported value \"Near\": \
                 supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\"",
            ],
        );
    }

    #[test]
    fn limit_range_bounds_must_be_consistent() {
        assert_problems(
            &limits("[{type: Container, default: {memory: 512Mi}, max: {cpu: '1'}}]"),
            &[],
        );
        assert_problems(
            &limits("[{type: Container, min: {memory: 1Gi}, max: {memory: 512Mi}}]"),
            &[
                "spec.limits[0].min[memory]: min value 1Gi is greater than max value 512Mi",
                // The max gave the default limit, which gave the default request.
                "spec.limits[0].defaultRequest[memory]: min value 1Gi is greater than default \
                 request value 512Mi",
                "spec.limits[0].default[memory]: min value 1Gi is greater than default value \
                 512Mi",
            ],
        );
        assert_problems(
            &limits("[{type: Pod, default: {cpu: '1'}, maxLimitRequestRatio: {cpu: 500m}}]"),
            &[
                "spec.limits[0].default: may not be specified when `type` is 'Pod'",
                "spec.limits[0].maxLimitRequestRatio[cpu]: ratio 500m is less than 1",
            ],
        );
        assert_problems(
            &limits(
                "[{type: PersistentVolumeClaim, max: {storage: 1Gi}}, {type: Container}, \
                 {type: Container, max: {gpu: '1'}}]",
            ),
            &[
                "spec.limits[0].type: unsupported value \"PersistentVolumeClaim\": supported \
                 values: \"Container\", \"Pod\"",
                "spec.limits[0].max[storage]: unsupported resource name \"storage\": supported \
                 values: \"cpu\", \"memory\"",
                "spec.limits[2].max[gpu]: unsupported resource name \"gpu\": supported values: \
                 \"cpu\", \"memory\"",
                "spec.limits[2].type: duplicate value \"Container\"",
            ],
        );
        assert_problems(
            "apiVersion: v1\nkind: LimitRange\nmetadata: {name: l}\n",
            &["spec: required value"],
        );
    }
}
