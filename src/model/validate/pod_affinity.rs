//! Validation of `podAffinity`, `podAntiAffinity` and `topologySpreadConstraints`.

use std::collections::BTreeSet;

use serde_json::Value;

use super::checker::{get, index, join, Checker, JsonObject};
use super::node_affinity::check_requirement;
use crate::model::names::DNS1123_LABEL_RULE;
use crate::model::{is_dns1123_label, validate_label_key};

const REQUIRED: &str = "requiredDuringSchedulingIgnoredDuringExecution";
const PREFERRED: &str = "preferredDuringSchedulingIgnoredDuringExecution";

/// `podAffinity` or `podAntiAffinity`: required terms and weighted preferred ones.
pub(super) fn check_pod_affinity(c: &mut Checker, value: &Value, path: &str) {
    let Some(affinity) = c.object(value, path) else {
        return;
    };
    c.only_fields(affinity, path, &[REQUIRED, PREFERRED]);
    if let Some(terms) = get(affinity, REQUIRED).and_then(|v| c.list(v, &join(path, REQUIRED))) {
        for (i, term) in terms.iter().enumerate() {
            check_term(c, term, &index(&join(path, REQUIRED), i));
        }
    }
    let preferred_path = join(path, PREFERRED);
    let Some(terms) = get(affinity, PREFERRED).and_then(|v| c.list(v, &preferred_path)) else {
        return;
    };
    for (i, item) in terms.iter().enumerate() {
        let item_path = index(&preferred_path, i);
        let Some(item) = c.object(item, &item_path) else {
            continue;
        };
        c.only_fields(item, &item_path, &["weight", "podAffinityTerm"]);
        match get(item, "weight") {
            None => c.required(&join(&item_path, "weight")),
            Some(value) => {
                c.integer_in(value, &join(&item_path, "weight"), 1, 100);
            }
        }
        match get(item, "podAffinityTerm") {
            None => c.required(&join(&item_path, "podAffinityTerm")),
            Some(term) => check_term(c, term, &join(&item_path, "podAffinityTerm")),
        }
    }
}

fn check_term(c: &mut Checker, value: &Value, path: &str) {
    let Some(term) = c.object(value, path) else {
        return;
    };
    c.only_fields(term, path, &["labelSelector", "namespaces", "topologyKey"]);
    check_topology_key(c, term, path);
    if let Some(value) = get(term, "labelSelector") {
        check_pod_selector(c, value, &join(path, "labelSelector"));
    }
    let namespaces_path = join(path, "namespaces");
    let namespaces = get(term, "namespaces").and_then(|v| c.list(v, &namespaces_path));
    for (i, value) in namespaces.into_iter().flatten().enumerate() {
        let item_path = index(&namespaces_path, i);
        if let Some(name) = c.string(value, &item_path) {
            if !is_dns1123_label(name) {
                c.error(
                    &item_path,
                    format!("invalid name {name:?}: {DNS1123_LABEL_RULE}"),
                );
            }
        }
    }
}

/// A required node label key.
fn check_topology_key(c: &mut Checker, object: &JsonObject, path: &str) {
    let key_path = join(path, "topologyKey");
    match get(object, "topologyKey").map(|v| c.string(v, &key_path)) {
        None | Some(Some("")) => c.required(&key_path),
        Some(None) => {}
        Some(Some(key)) => {
            if let Err(e) = validate_label_key(key) {
                c.error(&key_path, format!("invalid label key {key:?}: {e}"));
            }
        }
    }
}

/// A label selector on pods: `matchLabels` and `matchExpressions`.
pub(super) fn check_pod_selector(c: &mut Checker, value: &Value, path: &str) {
    let Some(selector) = c.object(value, path) else {
        return;
    };
    c.only_fields(selector, path, &["matchLabels", "matchExpressions"]);
    if let Some(value) = get(selector, "matchLabels") {
        c.labels(value, &join(path, "matchLabels"));
    }
    let expressions_path = join(path, "matchExpressions");
    let expressions = get(selector, "matchExpressions").and_then(|v| c.list(v, &expressions_path));
    for (i, expression) in expressions.into_iter().flatten().enumerate() {
        check_requirement(c, expression, &index(&expressions_path, i));
    }
}

/// `spec.topologySpreadConstraints`.
pub(super) fn check_topology_spread(c: &mut Checker, value: &Value, path: &str) {
    let Some(constraints) = c.list(value, path) else {
        return;
    };
    let mut seen = BTreeSet::new();
    for (i, item) in constraints.iter().enumerate() {
        let item_path = index(path, i);
        let Some(constraint) = c.object(item, &item_path) else {
            continue;
        };
        c.only_fields(
            constraint,
            &item_path,
            &[
                "maxSkew",
                "topologyKey",
                "whenUnsatisfiable",
                "labelSelector",
                "minDomains",
                "matchLabelKeys",
                "nodeAffinityPolicy",
                "nodeTaintsPolicy",
            ],
        );
        match get(constraint, "maxSkew") {
            None => c.required(&join(&item_path, "maxSkew")),
            Some(value) => {
                c.integer_in(value, &join(&item_path, "maxSkew"), 1, i64::from(i32::MAX));
            }
        }
        check_topology_key(c, constraint, &item_path);
        let when_path = join(&item_path, "whenUnsatisfiable");
        let when = match get(constraint, "whenUnsatisfiable") {
            None => {
                c.required(&when_path);
                None
            }
            Some(value) => c.one_of(value, &when_path, &["DoNotSchedule", "ScheduleAnyway"]),
        };
        let key = get(constraint, "topologyKey").and_then(Value::as_str);
        if let (Some(key), Some(when)) = (key, when) {
            if !seen.insert((key, when)) {
                c.error(
                    &item_path,
                    format!(
                        "duplicate value {{{key:?}, {when:?}}}: topologyKey and whenUnsatisfiable"
                    ),
                );
            }
        }
        if let Some(value) = get(constraint, "minDomains") {
            let min_path = join(&item_path, "minDomains");
            c.integer_in(value, &min_path, 1, i64::from(i32::MAX));
            if when == Some("ScheduleAnyway") {
                c.error(
                    &min_path,
                    "forbidden: can only use minDomains if whenUnsatisfiable=DoNotSchedule",
                );
            }
        }
        if let Some(value) = get(constraint, "labelSelector") {
            check_pod_selector(c, value, &join(&item_path, "labelSelector"));
        }
        check_spread_keys_and_policies(c, constraint, &item_path);
    }
}

fn check_spread_keys_and_policies(c: &mut Checker, constraint: &JsonObject, path: &str) {
    let keys_path = join(path, "matchLabelKeys");
    let keys = get(constraint, "matchLabelKeys").and_then(|v| c.list(v, &keys_path));
    for (i, value) in keys.into_iter().flatten().enumerate() {
        let item_path = index(&keys_path, i);
        if let Some(key) = c.string(value, &item_path) {
            if let Err(e) = validate_label_key(key) {
                c.error(&item_path, format!("invalid label key {key:?}: {e}"));
            }
        }
    }
    for field in ["nodeAffinityPolicy", "nodeTaintsPolicy"] {
        if let Some(value) = get(constraint, field) {
            c.one_of(value, &join(path, field), &["Honor", "Ignore"]);
        }
    }
}
