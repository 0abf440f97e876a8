//! Validation of a Job's `podFailurePolicy`, with Kubernetes' rules and field paths.
//!
//! `FailIndex` needs `backoffLimitPerIndex` (failures counted per index), as in
//! Kubernetes.

use serde_json::Value;

use super::super::checker::{get, index, join, Checker, JsonObject};
use crate::model::validate_qualified_name;

/// Kubernetes' limits on a policy's size.
const MAX_RULES: usize = 20;
const MAX_EXIT_CODES: usize = 255;
const MAX_CONDITION_PATTERNS: usize = 20;

const ACTIONS: [&str; 4] = ["FailJob", "FailIndex", "Ignore", "Count"];

/// Checks `policy` (at `path`) of a Job spec whose template is `template`; `per_index`
/// when the spec sets `backoffLimitPerIndex`.
pub(super) fn check_pod_failure_policy(
    c: &mut Checker,
    policy: &Value,
    path: &str,
    template: Option<&Value>,
    per_index: bool,
) {
    let Some(policy) = c.object(policy, path) else {
        return;
    };
    c.only_fields(policy, path, &["rules"]);
    let rules_path = join(path, "rules");
    let Some(rules) = get(policy, "rules").and_then(|v| c.list(v, &rules_path)) else {
        return;
    };
    if rules.len() > MAX_RULES {
        c.error(
            &rules_path,
            format!(
                "too many: {}: must have at most {MAX_RULES} items",
                rules.len()
            ),
        );
    }
    let names = container_names(template);
    for (i, rule) in rules.iter().enumerate() {
        check_rule(c, rule, &index(&rules_path, i), &names, per_index);
    }
}

/// The names of the template's containers and init containers.
fn container_names(template: Option<&Value>) -> Vec<&str> {
    let spec = template.and_then(|t| t.get("spec"));
    ["containers", "initContainers"]
        .iter()
        .filter_map(|field| spec?.get(field)?.as_array())
        .flatten()
        .filter_map(|container| container.get("name")?.as_str())
        .collect()
}

fn check_rule(c: &mut Checker, value: &Value, path: &str, names: &[&str], per_index: bool) {
    let Some(rule) = c.object(value, path) else {
        return;
    };
    c.only_fields(rule, path, &["action", "onExitCodes", "onPodConditions"]);
    let action_path = join(path, "action");
    match get(rule, "action") {
        None => c.required(&action_path),
        Some(value) if value.as_str() == Some("FailIndex") && !per_index => c.error(
            &action_path,
            "invalid value \"FailIndex\": requires the backoffLimitPerIndex to be set",
        ),
        Some(value) => {
            c.one_of(value, &action_path, &ACTIONS);
        }
    }
    let exit_codes = get(rule, "onExitCodes");
    // An empty list of patterns is none, as the API server reads it.
    let conditions = get(rule, "onPodConditions")
        .filter(|v| v.as_array().is_none_or(|patterns| !patterns.is_empty()));
    match (exit_codes, conditions) {
        (Some(_), Some(_)) => c.error(
            path,
            "invalid value: specifying both onExitCodes and onPodConditions is not supported",
        ),
        (None, None) => c.error(
            path,
            "invalid value: specifying one of onExitCodes and onPodConditions is required",
        ),
        _ => {}
    }
    if let Some(value) = exit_codes {
        check_exit_codes(c, value, &join(path, "onExitCodes"), names);
    }
    if let Some(value) = conditions {
        check_condition_patterns(c, value, &join(path, "onPodConditions"));
    }
}

fn check_exit_codes(c: &mut Checker, value: &Value, path: &str, names: &[&str]) {
    let Some(requirement) = c.object(value, path) else {
        return;
    };
    c.only_fields(requirement, path, &["containerName", "operator", "values"]);
    if let Some(value) = get(requirement, "containerName") {
        let name_path = join(path, "containerName");
        if let Some(name) = c.string(value, &name_path) {
            if !names.contains(&name) {
                c.error(
                    &name_path,
                    format!(
                        "invalid value {name:?}: must be one of the container or \
                         initContainer names in the pod template"
                    ),
                );
            }
        }
    }
    let operator = match get(requirement, "operator") {
        None => {
            c.required(&join(path, "operator"));
            None
        }
        Some(value) => c.one_of(value, &join(path, "operator"), &["In", "NotIn"]),
    };
    check_exit_code_values(c, requirement, path, operator);
}

/// `values`: at least one, at most 255, sorted, without duplicates, and no 0 for `In`
/// (a container that exits 0 succeeded and never matches).
fn check_exit_code_values(
    c: &mut Checker,
    requirement: &JsonObject,
    path: &str,
    operator: Option<&str>,
) {
    let values_path = join(path, "values");
    let Some(values) = get(requirement, "values").and_then(|v| c.list(v, &values_path)) else {
        c.required(&values_path);
        return;
    };
    if values.is_empty() {
        c.error(
            &values_path,
            "required value: at least one value is required",
        );
    } else if values.len() > MAX_EXIT_CODES {
        c.error(
            &values_path,
            format!(
                "too many: {}: must have at most {MAX_EXIT_CODES} items",
                values.len()
            ),
        );
    }
    let mut previous: Option<i64> = None;
    for (i, value) in values.iter().enumerate() {
        let item_path = index(&values_path, i);
        let range = (i64::from(i32::MIN), i64::from(i32::MAX));
        let Some(code) = c.integer_in(value, &item_path, range.0, range.1) else {
            continue;
        };
        if operator == Some("In") && code == 0 {
            c.error(
                &item_path,
                "invalid value 0: must not be 0 for the In operator",
            );
        }
        match previous {
            Some(before) if before == code => {
                c.error(&item_path, format!("duplicate value {code}"));
            }
            Some(before) if before > code => {
                c.error(&item_path, format!("invalid value {code}: must be ordered"));
            }
            _ => {}
        }
        previous = Some(code);
    }
}

fn check_condition_patterns(c: &mut Checker, value: &Value, path: &str) {
    let Some(patterns) = c.list(value, path) else {
        return;
    };
    if patterns.len() > MAX_CONDITION_PATTERNS {
        c.error(
            path,
            format!(
                "too many: {}: must have at most {MAX_CONDITION_PATTERNS} items",
                patterns.len()
            ),
        );
    }
    for (i, pattern) in patterns.iter().enumerate() {
        let item_path = index(path, i);
        let Some(pattern) = c.object(pattern, &item_path) else {
            continue;
        };
        c.only_fields(pattern, &item_path, &["type", "status"]);
        let type_path = join(&item_path, "type");
        match get(pattern, "type").map(|v| c.string(v, &type_path)) {
            None | Some(Some("")) => c.required(&type_path),
            Some(Some(type_)) => {
                if validate_qualified_name(type_).is_err() {
                    c.error(
                        &type_path,
                        format!(
                            "invalid value {type_:?}: must be a qualified name: an optional \
                             DNS subdomain and '/', then at most 63 letters, digits, '-', '_' \
                             or '.', starting and ending with a letter or digit"
                        ),
                    );
                }
            }
            Some(None) => {}
        }
        if let Some(value) = get(pattern, "status") {
            let status_path = join(&item_path, "status");
            c.one_of(value, &status_path, &["True", "False", "Unknown"]);
        }
    }
}

#[cfg(test)]
#[path = "job_failure_policy_tests.rs"]
mod tests;
