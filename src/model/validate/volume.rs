//! Validation of a pod's `volumes` and its containers' `volumeMounts`, with Kubernetes'
//! rules and messages, and berth's few limits on top: mount paths are absolute, an
//! `emptyDir` size limit needs `medium: Memory` (only tmpfs enforces one), no
//! `Bidirectional` propagation, and the files the agent mounts itself stay its own.

use std::collections::BTreeSet;

use serde_json::Value;

use super::checker::{get, index, join, Checker, JsonObject};
use super::env::{
    check_field_ref, check_object_name, check_optional, check_resource_field_ref, quantity_text,
    quoted,
};
use super::pod::required_string;
use crate::model::names::DNS1123_LABEL_RULE;
use crate::model::{
    is_config_key, is_dns1123_label, octal_mode, parse_memory_bytes, HOST_PATH_TYPES,
    MOUNT_PROPAGATIONS, VOLUME_FIELD_PATHS,
};

/// The volume sources berth implements, in the order Kubernetes lists them.
const SOURCES: [&str; 7] = [
    "configMap",
    "secret",
    "downwardAPI",
    "projected",
    "emptyDir",
    "hostPath",
    "persistentVolumeClaim",
];

const MODE_RULE: &str = "must be a number between 0 and 0777 (octal), both inclusive";

/// Files the agent bind-mounts into every container; a volume there would hide them.
const AGENT_MOUNTS: [&str; 3] = ["/etc/hosts", "/etc/resolv.conf", "/etc/hostname"];

/// The names of a pod's volumes and containers, read ahead of checking them so that a
/// reference to either can be checked wherever it comes. Malformed entries are left out;
/// they get their own errors.
pub(super) struct PodNames<'a> {
    pub(super) volumes: BTreeSet<&'a str>,
    pub(super) containers: BTreeSet<&'a str>,
}

impl<'a> PodNames<'a> {
    pub(super) fn of(spec: &'a JsonObject) -> Self {
        let names = |field: &str| {
            get(spec, field)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|item| item.get("name")?.as_str())
                .filter(|name| !name.is_empty())
                .collect()
        };
        let mut containers: BTreeSet<&str> = names("containers");
        containers.extend(names("initContainers"));
        PodNames {
            volumes: names("volumes"),
            containers,
        }
    }
}

/// `spec.volumes`.
pub(super) fn check_volumes(c: &mut Checker, value: &Value, path: &str, pod: &PodNames) {
    let Some(items) = c.list(value, path) else {
        return;
    };
    let mut names = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        check_volume(c, item, &index(path, i), &mut names, pod);
    }
}

fn check_volume<'a>(
    c: &mut Checker,
    value: &'a Value,
    path: &str,
    names: &mut BTreeSet<&'a str>,
    pod: &PodNames,
) {
    let Some(volume) = c.object(value, path) else {
        return;
    };
    let mut allowed = vec!["name"];
    allowed.extend(SOURCES);
    c.only_fields(volume, path, &allowed);
    let name_path = join(path, "name");
    match required_string(c, volume, &name_path, "name") {
        None => {}
        Some(name) if !is_dns1123_label(name) => c.error(
            &name_path,
            format!("invalid name {name:?}: {DNS1123_LABEL_RULE}"),
        ),
        // Inserting in the guard records the name the first time it is seen.
        Some(name) if !names.insert(name) => {
            c.error(&name_path, format!("duplicate value {name:?}"));
        }
        Some(_) => {}
    }

    let present: Vec<&str> = SOURCES
        .into_iter()
        .filter(|source| get(volume, source).is_some())
        .collect();
    match present.len() {
        // A source berth does not support was reported by name already.
        0 if volume.keys().any(|key| !allowed.contains(&key.as_str())) => {}
        0 => c.error(
            path,
            format!(
                "required value: must specify a volume type, one of {}",
                quoted(&SOURCES)
            ),
        ),
        1 => {}
        _ => c.error(
            path,
            format!(
                "forbidden: may not specify more than 1 volume type: {} are specified",
                quoted(&present)
            ),
        ),
    }
    for (source, value) in present.iter().filter_map(|s| Some((*s, get(volume, s)?))) {
        let source_path = join(path, source);
        match source {
            "configMap" => check_key_volume(c, value, &source_path, "name"),
            "secret" => check_key_volume(c, value, &source_path, "secretName"),
            "downwardAPI" => check_downward_api(c, value, &source_path, pod),
            "projected" => check_projected(c, value, &source_path, pod),
            "emptyDir" => check_empty_dir(c, value, &source_path),
            "hostPath" => check_host_path(c, value, &source_path),
            _ => check_claim(c, value, &source_path),
        }
    }
}

/// A `configMap` or `secret` volume; they differ only in the field naming the object.
fn check_key_volume(c: &mut Checker, value: &Value, path: &str, name_field: &str) {
    let Some(source) = c.object(value, path) else {
        return;
    };
    c.only_fields(
        source,
        path,
        &[name_field, "items", "defaultMode", "optional"],
    );
    check_object_name(c, source, path, name_field);
    check_default_mode(c, source, path);
    if let Some(value) = get(source, "items") {
        check_key_items(c, value, &join(path, "items"), &mut BTreeSet::new());
    }
    check_optional(c, source, path);
}

/// `items` of a configMap or secret source: each key to a file path. `paths` collects
/// the paths across the whole volume, since a projected volume has several sources.
fn check_key_items(c: &mut Checker, value: &Value, path: &str, paths: &mut BTreeSet<String>) {
    let Some(items) = c.list(value, path) else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let item_path = index(path, i);
        let Some(entry) = c.object(item, &item_path) else {
            continue;
        };
        c.only_fields(entry, &item_path, &["key", "path", "mode"]);
        let key_path = join(&item_path, "key");
        if let Some(key) = required_string(c, entry, &key_path, "key") {
            if !is_config_key(key) {
                c.error(
                    &key_path,
                    format!("invalid key {key:?}: {}", super::config::KEY_RULE),
                );
            }
        }
        check_file_path(c, entry, &item_path, paths);
        if let Some(value) = get(entry, "mode") {
            check_mode(c, value, &join(&item_path, "mode"));
        }
    }
}

/// The `path` of a projected file: required, relative, with no `..` element and not
/// starting with `..` (the volume's own bookkeeping entries do), unique in its volume.
fn check_file_path(
    c: &mut Checker,
    entry: &JsonObject,
    item_path: &str,
    paths: &mut BTreeSet<String>,
) {
    let path = join(item_path, "path");
    let Some(text) = required_string(c, entry, &path, "path") else {
        return;
    };
    let problem = relative_path_problem(text).or_else(|| {
        // `..` alone was reported as a `..` element already.
        text.starts_with("..").then_some("must not start with '..'")
    });
    if let Some(problem) = problem {
        c.error(&path, format!("invalid path {text:?}: {problem}"));
    } else if !paths.insert(text.to_owned()) {
        c.error(&path, format!("duplicate value {text:?}"));
    }
}

/// Why `text` cannot name a place below a directory: absolute, or climbing out.
fn relative_path_problem(text: &str) -> Option<&'static str> {
    if text.starts_with('/') {
        Some("must be a relative path")
    } else {
        backstep_problem(text)
    }
}

/// A `..` element: even in an absolute path it says the author meant somewhere else.
fn backstep_problem(text: &str) -> Option<&'static str> {
    text.split('/')
        .any(|part| part == "..")
        .then_some("must not contain '..'")
}

fn check_default_mode(c: &mut Checker, source: &JsonObject, path: &str) {
    if let Some(value) = get(source, "defaultMode") {
        check_mode(c, value, &join(path, "defaultMode"));
    }
}

/// A file mode, `0..=0o777`. YAML's `0644` reaches here as text (see [`octal_mode`]).
fn check_mode(c: &mut Checker, value: &Value, path: &str) {
    check_mode_up_to(c, value, path, 0o777, MODE_RULE);
}

/// A mode in `0..=max`, refused with `rule`.
fn check_mode_up_to(c: &mut Checker, value: &Value, path: &str, max: i64, rule: &str) {
    let (mode, shown) = match value {
        Value::String(text) => (octal_mode(text), format!("{text:?}")),
        Value::Number(_) => match c.integer(value, path) {
            Some(mode) => (Some(mode), mode.to_string()),
            None => return,
        },
        _ => {
            c.error(path, "expected integer");
            return;
        }
    };
    if !mode.is_some_and(|mode| (0..=max).contains(&mode)) {
        c.error(path, format!("invalid value {shown}: {rule}"));
    }
}

fn check_downward_api(c: &mut Checker, value: &Value, path: &str, pod: &PodNames) {
    let Some(source) = c.object(value, path) else {
        return;
    };
    c.only_fields(source, path, &["items", "defaultMode"]);
    check_default_mode(c, source, path);
    if let Some(value) = get(source, "items") {
        check_downward_items(c, value, &join(path, "items"), &mut BTreeSet::new(), pod);
    }
}

/// `items` of a downwardAPI source: each file holds one field of the pod or one
/// resource of a container.
fn check_downward_items(
    c: &mut Checker,
    value: &Value,
    path: &str,
    paths: &mut BTreeSet<String>,
    pod: &PodNames,
) {
    let Some(items) = c.list(value, path) else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let item_path = index(path, i);
        let Some(file) = c.object(item, &item_path) else {
            continue;
        };
        c.only_fields(
            file,
            &item_path,
            &["path", "fieldRef", "resourceFieldRef", "mode"],
        );
        check_file_path(c, file, &item_path, paths);
        let field_ref = get(file, "fieldRef");
        let resource_ref = get(file, "resourceFieldRef");
        if let Some(value) = field_ref {
            check_field_ref(c, value, &join(&item_path, "fieldRef"), &VOLUME_FIELD_PATHS);
        }
        if let Some(value) = resource_ref {
            let ref_path = join(&item_path, "resourceFieldRef");
            check_resource_field_ref(c, value, &ref_path, &pod.containers, true);
        }
        match (field_ref, resource_ref) {
            (Some(_), Some(_)) => c.error(
                &item_path,
                "fieldRef and resourceFieldRef can not be specified simultaneously",
            ),
            (None, None) => c.error(
                &item_path,
                "required value: one of fieldRef and resourceFieldRef is required",
            ),
            (Some(_), None) | (None, Some(_)) => {}
        }
        if let Some(value) = get(file, "mode") {
            check_mode(c, value, &join(&item_path, "mode"));
        }
    }
}

/// A projected volume: configMap, secret and downwardAPI sources in one directory, so
/// their file paths must not collide.
fn check_projected(c: &mut Checker, value: &Value, path: &str, pod: &PodNames) {
    const PROJECTIONS: [&str; 3] = ["configMap", "secret", "downwardAPI"];
    let Some(source) = c.object(value, path) else {
        return;
    };
    c.only_fields(source, path, &["sources", "defaultMode"]);
    check_default_mode(c, source, path);
    let sources_path = join(path, "sources");
    let Some(sources) = get(source, "sources").and_then(|v| c.list(v, &sources_path)) else {
        return;
    };
    let mut paths = BTreeSet::new();
    for (i, item) in sources.iter().enumerate() {
        let item_path = index(&sources_path, i);
        let Some(projection) = c.object(item, &item_path) else {
            continue;
        };
        c.only_fields(projection, &item_path, &PROJECTIONS);
        let present: Vec<&str> = PROJECTIONS
            .into_iter()
            .filter(|kind| get(projection, kind).is_some())
            .collect();
        for (kind, value) in present
            .iter()
            .filter_map(|k| Some((*k, get(projection, k)?)))
        {
            let kind_path = join(&item_path, kind);
            let Some(object) = c.object(value, &kind_path) else {
                continue;
            };
            if kind == "downwardAPI" {
                c.only_fields(object, &kind_path, &["items"]);
                if let Some(value) = get(object, "items") {
                    check_downward_items(c, value, &join(&kind_path, "items"), &mut paths, pod);
                }
                continue;
            }
            c.only_fields(object, &kind_path, &["name", "items", "optional"]);
            check_object_name(c, object, &kind_path, "name");
            if let Some(value) = get(object, "items") {
                check_key_items(c, value, &join(&kind_path, "items"), &mut paths);
            }
            check_optional(c, object, &kind_path);
        }
        match present.len() {
            // A source berth does not support was reported by name already.
            0 if !projection.is_empty() => {}
            0 => c.error(
                &item_path,
                format!("required value: must specify one of {}", quoted(&PROJECTIONS)),
            ),
            1 => {}
            _ => c.error(
                &item_path,
                format!(
                    "forbidden: may not specify more than 1 volume type per source: {} are specified",
                    quoted(&present)
                ),
            ),
        }
    }
}

/// `emptyDir`: on the node's disk, or on tmpfs with `medium: Memory`. berth can bound
/// only the tmpfs (its `size=`), so a limit on a disk-backed one would be a promise
/// nothing keeps.
fn check_empty_dir(c: &mut Checker, value: &Value, path: &str) {
    let Some(source) = c.object(value, path) else {
        return;
    };
    c.only_fields(source, path, &["medium", "sizeLimit", "mode"]);
    if let Some(value) = get(source, "mode") {
        let rule = "must be a number between 0 and 01777 (octal), both inclusive";
        check_mode_up_to(c, value, &join(path, "mode"), 0o1777, rule);
    }
    let medium = get(source, "medium")
        .and_then(|v| c.one_of(v, &join(path, "medium"), &["", "Memory"]))
        .unwrap_or("");
    let Some(value) = get(source, "sizeLimit") else {
        return;
    };
    let limit_path = join(path, "sizeLimit");
    let Some(text) = quantity_text(c, value, &limit_path) else {
        return;
    };
    if let Err(message) = parse_memory_bytes(&text) {
        c.error(&limit_path, message);
    } else if medium != "Memory" {
        c.error(
            &limit_path,
            "forbidden: berth enforces an emptyDir size limit only on tmpfs: set `medium: Memory` or remove `sizeLimit`",
        );
    }
}

fn check_host_path(c: &mut Checker, value: &Value, path: &str) {
    let Some(source) = c.object(value, path) else {
        return;
    };
    c.only_fields(source, path, &["path", "type"]);
    let host_path = join(path, "path");
    if let Some(text) = required_string(c, source, &host_path, "path") {
        let problem = if !text.starts_with('/') {
            Some("must be an absolute path")
        } else {
            backstep_problem(text)
        };
        if let Some(problem) = problem {
            c.error(&host_path, format!("invalid path {text:?}: {problem}"));
        }
    }
    if let Some(value) = get(source, "type") {
        c.one_of(value, &join(path, "type"), &HOST_PATH_TYPES);
    }
}

fn check_claim(c: &mut Checker, value: &Value, path: &str) {
    let Some(source) = c.object(value, path) else {
        return;
    };
    c.only_fields(source, path, &["claimName", "readOnly"]);
    check_object_name(c, source, path, "claimName");
    if let Some(value) = get(source, "readOnly") {
        c.boolean(value, &join(path, "readOnly"));
    }
}

/// A container's `volumeMounts`: each names a volume of the pod, at its own place.
pub(super) fn check_volume_mounts(c: &mut Checker, value: &Value, path: &str, pod: &PodNames) {
    let Some(items) = c.list(value, path) else {
        return;
    };
    let mut mount_points = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = index(path, i);
        let Some(mount) = c.object(item, &item_path) else {
            continue;
        };
        c.only_fields(
            mount,
            &item_path,
            &[
                "name",
                "mountPath",
                "readOnly",
                "subPath",
                "mountPropagation",
            ],
        );
        let name_path = join(&item_path, "name");
        if let Some(name) = required_string(c, mount, &name_path, "name") {
            if !pod.volumes.contains(name) {
                c.error(&name_path, format!("not found {name:?}"));
            }
        }
        let mount_path = join(&item_path, "mountPath");
        if let Some(text) = required_string(c, mount, &mount_path, "mountPath") {
            check_mount_path(c, text, &mount_path, &mut mount_points);
        }
        if let Some(value) = get(mount, "subPath") {
            let sub_path = join(&item_path, "subPath");
            let problem = c
                .string(value, &sub_path)
                .and_then(|text| Some((text, relative_path_problem(text)?)));
            if let Some((text, problem)) = problem {
                c.error(&sub_path, format!("invalid path {text:?}: {problem}"));
            }
        }
        if let Some(value) = get(mount, "readOnly") {
            c.boolean(value, &join(&item_path, "readOnly"));
        }
        if let Some(value) = get(mount, "mountPropagation") {
            let propagation_path = join(&item_path, "mountPropagation");
            if value.as_str() == Some("Bidirectional") {
                c.error(
                    &propagation_path,
                    format!(
                        "forbidden: berth does not support Bidirectional mount propagation: supported values: {}",
                        quoted(&MOUNT_PROPAGATIONS)
                    ),
                );
            } else {
                c.one_of(value, &propagation_path, &MOUNT_PROPAGATIONS);
            }
        }
    }
}

/// An absolute path, not one of the agent's own files, and not where another mount of
/// the container is (`/data` and `/data/` are one place).
fn check_mount_path(c: &mut Checker, text: &str, path: &str, mount_points: &mut BTreeSet<String>) {
    if !text.starts_with('/') {
        c.error(
            path,
            format!("invalid path {text:?}: must be an absolute path"),
        );
        return;
    }
    let clean = clean_path(text);
    if AGENT_MOUNTS.contains(&clean.as_str()) {
        c.error(
            path,
            format!("forbidden: berth mounts {clean} into every container itself"),
        );
    } else if !mount_points.insert(clean) {
        c.error(path, format!("invalid value {text:?}: must be unique"));
    }
}

/// `/etc//x/../hosts/.` → `/etc/hosts`: the place an absolute path names, lexically.
fn clean_path(text: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
#[path = "volume_tests.rs"]
mod tests;
