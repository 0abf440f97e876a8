//! Validation of ConfigMaps and Secrets: their payload sits at the top level (`data`,
//! `binaryData`, `stringData`), not under `spec`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::checker::{get, Checker, JsonObject};
use crate::model::base64;
use crate::model::config::{
    is_config_key, DOCKER_CFG_KEY, DOCKER_CFG_TYPE, DOCKER_CONFIG_JSON_KEY, DOCKER_CONFIG_JSON_TYPE,
};

/// Kubernetes' limit on the payload of one ConfigMap or Secret.
const MAX_PAYLOAD: usize = 1024 * 1024;

pub(super) const KEY_RULE: &str =
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";

/// `data[app.conf]`: keys may contain dots, so they are written in brackets.
fn key_path(map: &str, key: &str) -> String {
    format!("{map}[{key}]")
}

pub(super) const CONFIG_MAP_FIELDS: [&str; 7] = [
    "apiVersion",
    "kind",
    "metadata",
    "data",
    "binaryData",
    "immutable",
    "status",
];

pub(super) const SECRET_FIELDS: [&str; 8] = [
    "apiVersion",
    "kind",
    "metadata",
    "type",
    "data",
    "stringData",
    "immutable",
    "status",
];

pub(super) fn check_config_map(c: &mut Checker, top: &JsonObject) {
    let data = check_keys(c, get(top, "data"), "data");
    let binary = check_keys(c, get(top, "binaryData"), "binaryData");
    let mut size = 0;
    for (key, text) in &data {
        size += text.len();
        if binary.contains_key(key) {
            c.error(&key_path("binaryData", key), "duplicate of a key in data");
        }
    }
    for (key, text) in &binary {
        match base64::decode_strict(text) {
            Some(bytes) => size += bytes.len(),
            None => c.error(&key_path("binaryData", key), "invalid base64 value"),
        }
    }
    check_size(c, size);
    if let Some(value) = get(top, "immutable") {
        c.boolean(value, "immutable");
    }
}

pub(super) fn check_secret(c: &mut Checker, top: &JsonObject) {
    let secret_type = match get(top, "type") {
        None => "Opaque",
        Some(value) => match c.string(value, "type") {
            Some("") => {
                c.required("type");
                "Opaque"
            }
            Some(text) => text,
            None => "Opaque",
        },
    };
    let data = check_keys(c, get(top, "data"), "data");
    let string_data = check_keys(c, get(top, "stringData"), "stringData");
    // What the object will hold once stringData is folded into data.
    let mut decoded: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    for (key, text) in &data {
        match base64::decode_strict(text) {
            Some(bytes) => {
                decoded.insert(key, bytes);
            }
            None => c.error(&key_path("data", key), "invalid base64 value"),
        }
    }
    for (key, text) in &string_data {
        decoded.insert(key, text.as_bytes().to_vec());
    }
    check_size(c, decoded.values().map(Vec::len).sum());
    if let Some(value) = get(top, "immutable") {
        c.boolean(value, "immutable");
    }

    let (key, wrapped) = match secret_type {
        DOCKER_CONFIG_JSON_TYPE => (DOCKER_CONFIG_JSON_KEY, true),
        DOCKER_CFG_TYPE => (DOCKER_CFG_KEY, false),
        _ => return,
    };
    let path = key_path("data", key);
    let Some(bytes) = decoded.get(key) else {
        // Kubernetes reports the missing key this way for typed secrets.
        c.error(
            &path,
            format!("required value for a Secret of type {secret_type}"),
        );
        return;
    };
    match serde_json::from_slice::<Value>(bytes) {
        Err(e) => c.error(&path, format!("invalid JSON: {e}")),
        Ok(document) => {
            let auths = if wrapped {
                document.get("auths")
            } else {
                Some(&document)
            };
            if !auths.is_some_and(Value::is_object) {
                c.error(
                    &path,
                    "must hold an \"auths\" object of registry credentials",
                );
            }
        }
    }
}

/// Checks a string map whose keys are config keys; returns its well-formed entries.
fn check_keys<'a>(
    c: &mut Checker,
    value: Option<&'a Value>,
    path: &str,
) -> BTreeMap<&'a str, &'a str> {
    let Some(value) = value else {
        return BTreeMap::new();
    };
    let entries = c.string_map(value, path);
    for key in entries.keys() {
        if !is_config_key(key) {
            c.error(
                &key_path(path, key),
                format!("invalid key {key:?}: {KEY_RULE}"),
            );
        }
    }
    entries
}

fn check_size(c: &mut Checker, size: usize) {
    if size > MAX_PAYLOAD {
        c.error(
            "data",
            format!("too long: {size} bytes, the limit is {MAX_PAYLOAD} bytes"),
        );
    }
}
