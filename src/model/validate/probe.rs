//! Validation of a container's probes and its `lifecycle` hooks.

use std::collections::BTreeSet;

use serde_json::Value;

use super::checker::{get, index, join, Checker, JsonObject};
use super::pod::{check_string_list, invalid_port_name, required_string};
use crate::model::is_iana_svc_name;

/// The probe fields of a container, and whether Kubernetes requires
/// `successThreshold: 1` for them (a liveness or startup probe acts on its first
/// success, so a higher threshold would mean nothing).
pub(super) const PROBE_FIELDS: [(&str, bool); 3] = [
    ("livenessProbe", true),
    ("readinessProbe", false),
    ("startupProbe", true),
];

const HANDLERS: [&str; 3] = ["exec", "httpGet", "tcpSocket"];

/// Checks one probe. `port_names` are the names of the container's ports, which a
/// probe may use instead of a number.
pub(super) fn check_probe(
    c: &mut Checker,
    value: &Value,
    path: &str,
    success_must_be_one: bool,
    port_names: &BTreeSet<&str>,
) {
    let Some(probe) = c.object(value, path) else {
        return;
    };
    c.only_fields(
        probe,
        path,
        &[
            "exec",
            "httpGet",
            "tcpSocket",
            "initialDelaySeconds",
            "periodSeconds",
            "timeoutSeconds",
            "successThreshold",
            "failureThreshold",
        ],
    );

    let handlers = HANDLERS.iter().filter(|h| get(probe, h).is_some()).count();
    if handlers != 1 {
        c.error(path, "must specify exactly one of exec, httpGet, tcpSocket");
    }
    if let Some(value) = get(probe, "exec") {
        check_exec(c, value, &join(path, "exec"));
    }
    if let Some(value) = get(probe, "httpGet") {
        check_http_get(c, value, &join(path, "httpGet"), port_names);
    }
    if let Some(value) = get(probe, "tcpSocket") {
        check_tcp_socket(c, value, &join(path, "tcpSocket"), port_names);
    }

    if let Some(value) = get(probe, "initialDelaySeconds") {
        c.integer_in(
            value,
            &join(path, "initialDelaySeconds"),
            0,
            i64::from(i32::MAX),
        );
    }
    for field in ["periodSeconds", "timeoutSeconds", "failureThreshold"] {
        if let Some(value) = get(probe, field) {
            c.integer_in(value, &join(path, field), 1, i64::from(i32::MAX));
        }
    }
    if let Some(value) = get(probe, "successThreshold") {
        let threshold_path = join(path, "successThreshold");
        let threshold = c.integer_in(value, &threshold_path, 1, i64::from(i32::MAX));
        if success_must_be_one && threshold.is_some_and(|n| n != 1) {
            c.error(&threshold_path, "must be 1");
        }
    }
}

/// Checks `lifecycle`: only `preStop` with an `exec` handler is supported.
pub(super) fn check_lifecycle(c: &mut Checker, value: &Value, path: &str) {
    let Some(lifecycle) = c.object(value, path) else {
        return;
    };
    c.only_fields(lifecycle, path, &["postStart", "preStop"]);
    for hook in ["postStart", "preStop"] {
        let Some(value) = get(lifecycle, hook) else {
            continue;
        };
        let hook_path = join(path, hook);
        let Some(handler) = c.object(value, &hook_path) else {
            continue;
        };
        c.only_fields(handler, &hook_path, &["exec"]);
        match get(handler, "exec") {
            Some(value) => check_exec(c, value, &join(&hook_path, "exec")),
            // An unsupported handler (`httpGet`, `sleep`) is already reported; saying
            // that `exec` is missing as well would only repeat it.
            None if handler.is_empty() => c.required(&join(&hook_path, "exec")),
            None => {}
        }
    }
}

fn check_exec(c: &mut Checker, value: &Value, path: &str) {
    let Some(exec) = c.object(value, path) else {
        return;
    };
    c.only_fields(exec, path, &["command"]);
    let command_path = join(path, "command");
    match get(exec, "command") {
        None => c.required(&command_path),
        Some(Value::Array(items)) if items.is_empty() => c.required(&command_path),
        Some(value) => check_string_list(c, value, &command_path),
    }
}

fn check_http_get(c: &mut Checker, value: &Value, path: &str, port_names: &BTreeSet<&str>) {
    let Some(http_get) = c.object(value, path) else {
        return;
    };
    c.only_fields(
        http_get,
        path,
        &["path", "port", "host", "scheme", "httpHeaders"],
    );
    if let Some(value) = get(http_get, "path") {
        let url_path = join(path, "path");
        // An empty path is defaulted to `/`, as Kubernetes does.
        if let Some(text) = c.string(value, &url_path) {
            if !text.is_empty() && !text.starts_with('/') {
                c.error(
                    &url_path,
                    format!("invalid path {text:?}: must start with \"/\""),
                );
            }
        }
    }
    check_probe_port(c, http_get, path, port_names);
    if let Some(value) = get(http_get, "host") {
        check_probe_host(c, value, &join(path, "host"));
    }
    if let Some(value) = get(http_get, "scheme") {
        // HTTPS would need certificate handling the agent does not have.
        c.one_of(value, &join(path, "scheme"), &["HTTP"]);
    }
    if let Some(value) = get(http_get, "httpHeaders") {
        check_headers(c, value, &join(path, "httpHeaders"));
    }
}

fn check_tcp_socket(c: &mut Checker, value: &Value, path: &str, port_names: &BTreeSet<&str>) {
    let Some(tcp_socket) = c.object(value, path) else {
        return;
    };
    c.only_fields(tcp_socket, path, &["port", "host"]);
    check_probe_port(c, tcp_socket, path, port_names);
    if let Some(value) = get(tcp_socket, "host") {
        check_probe_host(c, value, &join(path, "host"));
    }
}

/// A probe's `host`: refused rather than ignored. The agent probes from inside the pod's
/// network namespace (`127.0.0.1`), where the kubelet would connect to the named host
/// from the node; an empty host means the pod itself, as in Kubernetes.
fn check_probe_host(c: &mut Checker, value: &Value, path: &str) {
    if c.string(value, path).is_some_and(|host| !host.is_empty()) {
        c.error(
            path,
            "forbidden: berth probes only the pod's own address; a probe host is not supported",
        );
    }
}

/// The required `port` of a handler: a number in 1..65535, or the name of one of the
/// container's ports.
fn check_probe_port(
    c: &mut Checker,
    handler: &JsonObject,
    path: &str,
    port_names: &BTreeSet<&str>,
) {
    let port_path = join(path, "port");
    match get(handler, "port") {
        None => c.required(&port_path),
        Some(value @ Value::Number(_)) => {
            c.integer_in(value, &port_path, 1, 65535);
        }
        Some(Value::String(name)) => {
            if !is_iana_svc_name(name) {
                c.error(&port_path, invalid_port_name(name));
            } else if !port_names.contains(name.as_str()) {
                c.error(
                    &port_path,
                    format!("no port named {name:?} in the container"),
                );
            }
        }
        Some(_) => c.error(&port_path, "expected integer or string"),
    }
}

fn check_headers(c: &mut Checker, value: &Value, path: &str) {
    let Some(items) = c.list(value, path) else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let item_path = index(path, i);
        let Some(header) = c.object(item, &item_path) else {
            continue;
        };
        c.only_fields(header, &item_path, &["name", "value"]);
        let name_path = join(&item_path, "name");
        if let Some(name) = required_string(c, header, &name_path, "name") {
            // The Kubernetes rule; it also keeps the request line well formed.
            if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                c.error(
                    &name_path,
                    format!("invalid header name {name:?}: must consist of letters, digits or '-'"),
                );
            }
        }
        if let Some(value) = get(header, "value") {
            c.string(value, &join(&item_path, "value"));
        }
    }
}

#[cfg(test)]
mod tests;
