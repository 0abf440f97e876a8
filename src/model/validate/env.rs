//! Validation of a container's `env` and `envFrom`, and of the downward API selectors
//! (`fieldRef`, `resourceFieldRef`) that env and downwardAPI volumes share. The rules and
//! messages are Kubernetes'; references to ConfigMaps and Secrets are checked for form
//! only, since whether the object exists is decided when the container starts.

use std::collections::BTreeSet;

use serde_json::Value;

use super::checker::{get, index, join, Checker, JsonObject};
use super::config::KEY_RULE;
use super::pod::required_string;
use crate::model::names::DNS1123_SUBDOMAIN_RULE;
use crate::model::{
    is_config_key, is_dns1123_subdomain, same_quantity, subscripted_field, validate_qualified_name,
    ENV_FIELD_PATHS, RESOURCE_FIELDS,
};

/// Kubernetes' rule for environment variable names since its relaxed validation became
/// the default (1.32): any printable ASCII but `=`.
pub(super) const ENV_NAME_RULE: &str = "a valid environment variable name must consist only of \
     printable ASCII characters other than '='";

/// The sources of `valueFrom`, in the order Kubernetes names them in its messages.
const VALUE_SOURCES: [&str; 4] = [
    "fieldRef",
    "resourceFieldRef",
    "configMapKeyRef",
    "secretKeyRef",
];

/// The divisors Kubernetes allows for each kind of resource, in its words.
const CPU_DIVISORS: [&str; 2] = ["1m", "1"];
const MEMORY_DIVISORS: [&str; 13] = [
    "1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei",
];

/// Why `name` is not a valid environment variable name, if it is not.
pub(super) fn env_name_problem(name: &str) -> Option<&'static str> {
    (!crate::model::is_env_var_name(name)).then_some(ENV_NAME_RULE)
}

/// `env`. `containers` are the pod's container names, which a `resourceFieldRef` may
/// name.
pub(super) fn check_env(c: &mut Checker, value: &Value, path: &str, containers: &BTreeSet<&str>) {
    let Some(items) = c.list(value, path) else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let item_path = index(path, i);
        let Some(var) = c.object(item, &item_path) else {
            continue;
        };
        c.only_fields(var, &item_path, &["name", "value", "valueFrom"]);
        let name_path = join(&item_path, "name");
        if let Some(name) = required_string(c, var, &name_path, "name") {
            if let Some(problem) = env_name_problem(name) {
                c.error(&name_path, format!("invalid name {name:?}: {problem}"));
            }
        }
        let literal = get(var, "value").and_then(|v| c.string(v, &join(&item_path, "value")));
        if let Some(from) = get(var, "valueFrom") {
            let has_value = literal.is_some_and(|text| !text.is_empty());
            let from_path = join(&item_path, "valueFrom");
            check_value_from(c, from, &from_path, has_value, containers);
        }
    }
}

fn check_value_from(
    c: &mut Checker,
    value: &Value,
    path: &str,
    has_value: bool,
    containers: &BTreeSet<&str>,
) {
    let Some(from) = c.object(value, path) else {
        return;
    };
    c.only_fields(from, path, &VALUE_SOURCES);
    let present: Vec<&str> = VALUE_SOURCES
        .into_iter()
        .filter(|source| get(from, source).is_some())
        .collect();
    for (source, value) in present.iter().filter_map(|s| Some((*s, get(from, s)?))) {
        let source_path = join(path, source);
        match source {
            "fieldRef" => check_field_ref(c, value, &source_path, &ENV_FIELD_PATHS),
            "resourceFieldRef" => {
                check_resource_field_ref(c, value, &source_path, containers, false);
            }
            _ => check_key_selector(c, value, &source_path),
        }
    }
    match present.len() {
        0 => c.error(
            path,
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        ),
        _ if has_value => c.error(path, "may not be specified when `value` is not empty"),
        1 => {}
        _ => c.error(
            path,
            format!(
                "may not have more than one field specified at a time: {}",
                quoted(&present)
            ),
        ),
    }
}

/// `configMapKeyRef` and `secretKeyRef`.
fn check_key_selector(c: &mut Checker, value: &Value, path: &str) {
    let Some(selector) = c.object(value, path) else {
        return;
    };
    c.only_fields(selector, path, &["name", "key", "optional"]);
    check_object_name(c, selector, path, "name");
    let key_path = join(path, "key");
    if let Some(key) = required_string(c, selector, &key_path, "key") {
        if !is_config_key(key) {
            c.error(&key_path, format!("invalid key {key:?}: {KEY_RULE}"));
        }
    }
    check_optional(c, selector, path);
}

/// `envFrom`: every key of one ConfigMap or Secret, each name behind `prefix`.
pub(super) fn check_env_from(c: &mut Checker, value: &Value, path: &str) {
    let Some(items) = c.list(value, path) else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let item_path = index(path, i);
        let Some(source) = c.object(item, &item_path) else {
            continue;
        };
        c.only_fields(source, &item_path, &["prefix", "configMapRef", "secretRef"]);
        if let Some(value) = get(source, "prefix") {
            let prefix_path = join(&item_path, "prefix");
            // Kubernetes checks the prefix alone with the name rule: it starts every name.
            let problem = c
                .string(value, &prefix_path)
                .filter(|prefix| !prefix.is_empty())
                .and_then(|prefix| Some((prefix, env_name_problem(prefix)?)));
            if let Some((prefix, problem)) = problem {
                c.error(
                    &prefix_path,
                    format!("invalid prefix {prefix:?}: {problem}"),
                );
            }
        }
        let mut count = 0;
        for field in ["configMapRef", "secretRef"] {
            let Some(value) = get(source, field) else {
                continue;
            };
            count += 1;
            let ref_path = join(&item_path, field);
            if let Some(reference) = c.object(value, &ref_path) {
                c.only_fields(reference, &ref_path, &["name", "optional"]);
                check_object_name(c, reference, &ref_path, "name");
                check_optional(c, reference, &ref_path);
            }
        }
        match count {
            0 => c.error(&item_path, "must specify one of: `configMapRef` or `secretRef`"),
            1 => {}
            _ => c.error(
                &item_path,
                "may not have more than one field specified at a time: \"configMapRef\", \"secretRef\"",
            ),
        }
    }
}

/// A `fieldRef`: a field of the pod among `allowed`, or one label or annotation by key.
pub(super) fn check_field_ref(c: &mut Checker, value: &Value, path: &str, allowed: &[&str]) {
    let Some(selector) = c.object(value, path) else {
        return;
    };
    c.only_fields(selector, path, &["apiVersion", "fieldPath"]);
    if let Some(value) = get(selector, "apiVersion") {
        c.one_of(value, &join(path, "apiVersion"), &["v1"]);
    }
    let field_path = join(path, "fieldPath");
    let Some(value) = get(selector, "fieldPath") else {
        c.required(&field_path);
        return;
    };
    match c.string(value, &field_path) {
        None => {}
        Some("") => c.required(&field_path),
        Some(text) => match subscripted_field(text) {
            Some((map, key)) => {
                // Annotation keys are compared without case, so Kubernetes checks them so.
                let key = if map == "metadata.annotations" {
                    key.to_lowercase()
                } else {
                    key.to_owned()
                };
                if let Err(message) = validate_qualified_name(&key) {
                    c.error(&field_path, message);
                }
            }
            None => {
                c.one_of(value, &field_path, allowed);
            }
        },
    }
}

/// A `resourceFieldRef`. In a volume the container must be named (there is no "this
/// container"); in env it defaults to the container itself. A named container must be
/// one of the pod's.
pub(super) fn check_resource_field_ref(
    c: &mut Checker,
    value: &Value,
    path: &str,
    containers: &BTreeSet<&str>,
    in_volume: bool,
) {
    let Some(selector) = c.object(value, path) else {
        return;
    };
    c.only_fields(selector, path, &["containerName", "resource", "divisor"]);
    let name_path = join(path, "containerName");
    let container = if in_volume {
        required_string(c, selector, &name_path, "containerName")
    } else {
        get(selector, "containerName").and_then(|v| c.string(v, &name_path))
    };
    if let Some(name) = container.filter(|name| !name.is_empty()) {
        if !containers.contains(name) {
            c.error(&name_path, format!("not found {name:?}"));
        }
    }
    let resource_path = join(path, "resource");
    let resource = match get(selector, "resource") {
        None => {
            c.required(&resource_path);
            None
        }
        Some(value) => c.one_of(value, &resource_path, &RESOURCE_FIELDS),
    };
    if let Some(value) = get(selector, "divisor") {
        check_divisor(c, value, &join(path, "divisor"), resource);
    }
}

/// A divisor is a quantity equal to one of the units of its resource; zero means unset
/// (the unit), as in Kubernetes.
fn check_divisor(c: &mut Checker, value: &Value, path: &str, resource: Option<&str>) {
    let Some(text) = quantity_text(c, value, path) else {
        return;
    };
    if !same_quantity(&text, &text) {
        c.error(path, format!("invalid quantity {text:?}"));
        return;
    }
    let (units, kind): (&[&str], &str) = match resource {
        Some("limits.cpu" | "requests.cpu") => (&CPU_DIVISORS, "cpu"),
        Some(_) => (&MEMORY_DIVISORS, "memory"),
        // Which units apply depends on the resource, which is wrong already.
        None => return,
    };
    if same_quantity(&text, "0") || units.iter().any(|unit| same_quantity(&text, unit)) {
        return;
    }
    c.error(
        path,
        format!(
            "invalid value {text:?}: only divisor's values {} are supported with the {kind} resource",
            words(units)
        ),
    );
}

/// A quantity as YAML users write it: a string, or an unquoted number.
pub(super) fn quantity_text(c: &mut Checker, value: &Value, path: &str) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => {
            c.error(path, "expected quantity");
            None
        }
    }
}

/// The name of a ConfigMap, Secret or claim at `path.key`: required, a DNS subdomain
/// (no object could have another name).
pub(super) fn check_object_name(c: &mut Checker, object: &JsonObject, path: &str, key: &str) {
    let name_path = join(path, key);
    if let Some(name) = required_string(c, object, &name_path, key) {
        if !is_dns1123_subdomain(name) {
            c.error(
                &name_path,
                format!("invalid name {name:?}: {DNS1123_SUBDOMAIN_RULE}"),
            );
        }
    }
}

/// `optional`, a boolean when present.
pub(super) fn check_optional(c: &mut Checker, object: &JsonObject, path: &str) {
    if let Some(value) = get(object, "optional") {
        c.boolean(value, &join(path, "optional"));
    }
}

/// `"a", "b"`.
pub(super) fn quoted(items: &[&str]) -> String {
    items
        .iter()
        .map(|item| format!("{item:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `1m and 1`, `1, 1k, ... and 1Ei`: Kubernetes' list of divisors.
fn words(items: &[&str]) -> String {
    match items.split_last() {
        Some((last, rest)) if rest.len() == 1 => format!("{} and {last}", rest[0]),
        _ => items.join(", "),
    }
}

#[cfg(test)]
#[path = "env_tests.rs"]
mod tests;
