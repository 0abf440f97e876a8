//! Validation of a pod's `affinity` (node affinity here, pod affinity in
//! [`super::pod_affinity`]) and `tolerations`.

use serde_json::Value;

use super::checker::{get, index, join, Checker};
use crate::model::{validate_label_key, validate_label_value};

pub(super) fn check_affinity(c: &mut Checker, value: &Value, path: &str) {
    let Some(affinity) = c.object(value, path) else {
        return;
    };
    c.only_fields(
        affinity,
        path,
        &["nodeAffinity", "podAffinity", "podAntiAffinity"],
    );
    for field in ["podAffinity", "podAntiAffinity"] {
        if let Some(value) = get(affinity, field) {
            super::pod_affinity::check_pod_affinity(c, value, &join(path, field));
        }
    }
    let Some(value) = get(affinity, "nodeAffinity") else {
        return;
    };
    let path = join(path, "nodeAffinity");
    let Some(node_affinity) = c.object(value, &path) else {
        return;
    };
    let required = "requiredDuringSchedulingIgnoredDuringExecution";
    let preferred = "preferredDuringSchedulingIgnoredDuringExecution";
    c.only_fields(node_affinity, &path, &[required, preferred]);
    if let Some(value) = get(node_affinity, preferred) {
        check_preferred(c, value, &join(&path, preferred));
    }
    let Some(value) = get(node_affinity, required) else {
        return;
    };
    let path = join(&path, required);
    let Some(selector) = c.object(value, &path) else {
        return;
    };
    c.only_fields(selector, &path, &["nodeSelectorTerms"]);
    let terms_path = join(&path, "nodeSelectorTerms");
    let terms = match get(selector, "nodeSelectorTerms").map(|v| c.list(v, &terms_path)) {
        None | Some(Some([])) => return c.required(&terms_path),
        Some(None) => return,
        Some(Some(terms)) => terms,
    };
    for (i, term) in terms.iter().enumerate() {
        check_term(c, term, &index(&terms_path, i));
    }
}

/// `preferredDuringSchedulingIgnoredDuringExecution`: weighted terms.
fn check_preferred(c: &mut Checker, value: &Value, path: &str) {
    let Some(terms) = c.list(value, path) else {
        return;
    };
    for (i, item) in terms.iter().enumerate() {
        let item_path = index(path, i);
        let Some(item) = c.object(item, &item_path) else {
            continue;
        };
        c.only_fields(item, &item_path, &["weight", "preference"]);
        match get(item, "weight") {
            None => c.required(&join(&item_path, "weight")),
            Some(value) => {
                c.integer_in(value, &join(&item_path, "weight"), 1, 100);
            }
        }
        match get(item, "preference") {
            None => c.required(&join(&item_path, "preference")),
            Some(term) => check_term(c, term, &join(&item_path, "preference")),
        }
    }
}

fn check_term(c: &mut Checker, term: &Value, term_path: &str) {
    let Some(term) = c.object(term, term_path) else {
        return;
    };
    c.only_fields(term, term_path, &["matchExpressions"]);
    let expressions_path = join(term_path, "matchExpressions");
    let Some(expressions) =
        get(term, "matchExpressions").and_then(|v| c.list(v, &expressions_path))
    else {
        return;
    };
    for (j, expression) in expressions.iter().enumerate() {
        check_requirement(c, expression, &index(&expressions_path, j));
    }
}

pub(super) fn check_requirement(c: &mut Checker, value: &Value, path: &str) {
    let Some(requirement) = c.object(value, path) else {
        return;
    };
    c.only_fields(requirement, path, &["key", "operator", "values"]);
    match get(requirement, "key").map(|v| c.string(v, &join(path, "key"))) {
        None | Some(Some("")) => c.required(&join(path, "key")),
        Some(None) => {}
        Some(Some(key)) => {
            if let Err(e) = validate_label_key(key) {
                c.error(
                    &join(path, "key"),
                    format!("invalid label key {key:?}: {e}"),
                );
            }
        }
    }
    let operator_path = join(path, "operator");
    let operator = match get(requirement, "operator") {
        None => {
            c.required(&operator_path);
            None
        }
        Some(value) => c.one_of(
            value,
            &operator_path,
            &["In", "NotIn", "Exists", "DoesNotExist"],
        ),
    };
    let values_path = join(path, "values");
    let values = get(requirement, "values").and_then(|v| c.list(v, &values_path));
    let count = values.map_or(0, <[Value]>::len);
    for (i, value) in values.into_iter().flatten().enumerate() {
        if let Some(text) = c.string(value, &index(&values_path, i)) {
            if let Err(e) = validate_label_value(text) {
                c.error(
                    &index(&values_path, i),
                    format!("invalid label value {text:?}: {e}"),
                );
            }
        }
    }
    match operator {
        Some("In" | "NotIn") if count == 0 => c.error(
            &values_path,
            "must be specified when `operator` is 'In' or 'NotIn'",
        ),
        Some("Exists" | "DoesNotExist") if count > 0 => c.error(
            &values_path,
            "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        ),
        _ => {}
    }
}

pub(super) fn check_tolerations(c: &mut Checker, value: &Value, path: &str) {
    let Some(tolerations) = c.list(value, path) else {
        return;
    };
    for (i, toleration) in tolerations.iter().enumerate() {
        let path = index(path, i);
        let Some(toleration) = c.object(toleration, &path) else {
            continue;
        };
        c.only_fields(
            toleration,
            &path,
            &["key", "operator", "value", "effect", "tolerationSeconds"],
        );
        let key = get(toleration, "key").and_then(|v| c.string(v, &join(&path, "key")));
        if let Some(key) = key.filter(|k| !k.is_empty()) {
            if let Err(e) = validate_label_key(key) {
                c.error(
                    &join(&path, "key"),
                    format!("invalid label key {key:?}: {e}"),
                );
            }
        }
        let operator = match get(toleration, "operator") {
            None => Some("Equal"),
            Some(v) => c.one_of(
                v,
                &join(&path, "operator"),
                &["Equal", "Exists", "Gt", "Lt"],
            ),
        };
        let value = get(toleration, "value").and_then(|v| c.string(v, &join(&path, "value")));
        let numeric = matches!(operator, Some("Gt" | "Lt"));
        if numeric && value.is_none_or(|v| v.parse::<i64>().is_err()) {
            c.error(
                &join(&path, "value"),
                format!(
                    "invalid value {:?}: must be an integer when `operator` is 'Gt' or 'Lt'",
                    value.unwrap_or("")
                ),
            );
        }
        if operator == Some("Exists") && value.is_some_and(|v| !v.is_empty()) {
            c.error(
                &join(&path, "operator"),
                "value must be empty when `operator` is 'Exists'",
            );
        }
        if operator.is_some_and(|o| o != "Exists") && key.is_none_or(str::is_empty) {
            c.error(
                &join(&path, "operator"),
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            );
        }
        let effect = get(toleration, "effect").and_then(|v| {
            c.one_of(
                v,
                &join(&path, "effect"),
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            )
        });
        if let Some(v) = get(toleration, "tolerationSeconds") {
            c.integer(v, &join(&path, "tolerationSeconds"));
            if effect != Some("NoExecute") {
                c.error(
                    &join(&path, "effect"),
                    "effect must be 'NoExecute' when `tolerationSeconds` is set",
                );
            }
        }
    }
}
