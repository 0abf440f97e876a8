//! Validation of a pod spec, used for Pods and for Deployment templates.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::checker::{get, index, join, Checker, JsonObject};
use super::probe::{check_lifecycle, check_probe, PROBE_FIELDS};
use super::security::{check_container_security_context, check_pod_security_context};
use super::volume::PodNames;
use crate::model::names::{DNS1123_LABEL_RULE, DNS1123_SUBDOMAIN_RULE};
use crate::model::{
    is_dns1123_label, is_dns1123_subdomain, is_extended_resource, is_iana_svc_name, parse_count,
    parse_cpu_millis, parse_memory_bytes,
};

const RESOURCE_NAMES: [&str; 2] = ["cpu", "memory"];

/// Checks the pod spec at `path`. Pods made from a template must restart `Always`,
/// because a controller, not the kubelet, replaces them.
/// The pod spec fields berth implements; any other is refused by name.
const POD_SPEC_FIELDS: [&str; 27] = [
    "containers",
    "restartPolicy",
    "nodeSelector",
    "hostNetwork",
    "shareProcessNamespace",
    "terminationGracePeriodSeconds",
    "nodeName",
    "imagePullSecrets",
    "securityContext",
    "dnsPolicy",
    "dnsConfig",
    "hostname",
    "subdomain",
    "hostAliases",
    "affinity",
    "tolerations",
    "volumes",
    "serviceAccountName",
    "serviceAccount",
    "automountServiceAccountToken",
    "initContainers",
    "topologySpreadConstraints",
    "priorityClassName",
    "priority",
    "preemptionPolicy",
    "resources",
    "schedulingGates",
];

pub(super) fn check_pod_spec(c: &mut Checker, value: Option<&Value>, path: &str, template: bool) {
    let Some(value) = value else {
        c.required(&join(path, "containers"));
        return;
    };
    let Some(spec) = c.object(value, path) else {
        return;
    };
    c.only_fields(spec, path, &POD_SPEC_FIELDS);
    check_service_account(c, spec, path);
    check_priority(c, spec, path);
    check_scheduling_gates(c, spec, path);
    if let Some(value) = get(spec, "affinity") {
        super::node_affinity::check_affinity(c, value, &join(path, "affinity"));
    }
    if let Some(value) = get(spec, "tolerations") {
        super::node_affinity::check_tolerations(c, value, &join(path, "tolerations"));
    }
    if let Some(value) = get(spec, "topologySpreadConstraints") {
        let spread_path = join(path, "topologySpreadConstraints");
        super::pod_affinity::check_topology_spread(c, value, &spread_path);
    }
    super::pod_dns::check_pod_dns(c, spec, path);
    if let Some(value) = get(spec, "imagePullSecrets") {
        check_local_references(c, value, &join(path, "imagePullSecrets"));
    }
    if let Some(value) = get(spec, "securityContext") {
        check_pod_security_context(c, value, &join(path, "securityContext"));
    }

    let pod = PodNames::of(spec);
    if let Some(value) = get(spec, "volumes") {
        super::volume::check_volumes(c, value, &join(path, "volumes"), &pod);
    }

    check_containers(c, spec, path, &pod);
    super::pod_resources::check_pod_resources(c, spec, path);

    check_pod_fields(c, spec, path, template);
}

/// The pod's own scalar fields: its restart policy (`Always` alone in a template that
/// keeps replicas), node selector, host network, shared process namespace, grace period
/// and node name.
fn check_pod_fields(c: &mut Checker, spec: &JsonObject, path: &str, template: bool) {
    if let Some(value) = get(spec, "restartPolicy") {
        let supported: &[&str] = if template {
            &["Always"]
        } else {
            &["Always", "OnFailure", "Never"]
        };
        c.one_of(value, &join(path, "restartPolicy"), supported);
    }
    if let Some(value) = get(spec, "nodeSelector") {
        c.labels(value, &join(path, "nodeSelector"));
    }
    if let Some(value) = get(spec, "hostNetwork") {
        c.boolean(value, &join(path, "hostNetwork"));
    }
    // Kubernetes refuses it with `hostPID`, which berth does not have (refused by name).
    if let Some(value) = get(spec, "shareProcessNamespace") {
        c.boolean(value, &join(path, "shareProcessNamespace"));
    }
    if let Some(value) = get(spec, "terminationGracePeriodSeconds") {
        c.integer_in(
            value,
            &join(path, "terminationGracePeriodSeconds"),
            0,
            i64::MAX,
        );
    }
    if let Some(value) = get(spec, "nodeName") {
        let node_path = join(path, "nodeName");
        if let Some(node) = c.string(value, &node_path) {
            if !node.is_empty() && !is_dns1123_subdomain(node) {
                c.error(
                    &node_path,
                    format!("invalid name {node:?}: {DNS1123_SUBDOMAIN_RULE}"),
                );
            }
        }
    }
}

/// `priorityClassName` (admission checks that it exists), `priority` (admission checks
/// it against the class) and `preemptionPolicy`.
fn check_priority(c: &mut Checker, spec: &JsonObject, path: &str) {
    if let Some(value) = get(spec, "priorityClassName") {
        let class_path = join(path, "priorityClassName");
        if let Some(name) = c.string(value, &class_path) {
            if !name.is_empty() && !is_dns1123_subdomain(name) {
                c.error(
                    &class_path,
                    format!("invalid name {name:?}: {DNS1123_SUBDOMAIN_RULE}"),
                );
            }
        }
    }
    if let Some(value) = get(spec, "priority") {
        let (min, max) = (i64::from(i32::MIN), i64::from(i32::MAX));
        c.integer_in(value, &join(path, "priority"), min, max);
    }
    if let Some(value) = get(spec, "preemptionPolicy") {
        let policies = &crate::model::priority_class::PREEMPTION_POLICIES;
        c.one_of(value, &join(path, "preemptionPolicy"), policies);
    }
}

/// `schedulingGates`: unique qualified names, on a pod no scheduler has placed yet.
fn check_scheduling_gates(c: &mut Checker, spec: &JsonObject, path: &str) {
    let gates_path = join(path, "schedulingGates");
    let Some(gates) = get(spec, "schedulingGates").and_then(|v| c.list(v, &gates_path)) else {
        return;
    };
    let mut seen = std::collections::BTreeSet::new();
    for (i, gate) in gates.iter().enumerate() {
        let gate_path = super::checker::index(&gates_path, i);
        let Some(gate) = c.object(gate, &gate_path) else {
            continue;
        };
        c.only_fields(gate, &gate_path, &["name"]);
        let name_path = join(&gate_path, "name");
        let Some(name) = get(gate, "name").and_then(|v| c.string(v, &name_path)) else {
            c.required(&name_path);
            continue;
        };
        if let Err(e) = crate::model::validate_qualified_name(name) {
            c.error(&name_path, e);
        }
        if !seen.insert(name) {
            c.error(&name_path, format!("duplicate value {name:?}"));
        }
    }
    if !gates.is_empty() && get(spec, "nodeName").is_some() {
        c.error(
            &join(path, "nodeName"),
            "forbidden: cannot be set until all schedulingGates have been cleared",
        );
    }
}

/// `serviceAccountName`, its deprecated spelling and `automountServiceAccountToken`.
fn check_service_account(c: &mut Checker, spec: &JsonObject, path: &str) {
    for field in ["serviceAccountName", "serviceAccount"] {
        if let Some(value) = get(spec, field) {
            if let Some(name) = c.string(value, &join(path, field)) {
                if !is_dns1123_subdomain(name) {
                    c.error(
                        &join(path, field),
                        format!("invalid name {name:?}: {DNS1123_SUBDOMAIN_RULE}"),
                    );
                }
            }
        }
    }
    if let Some(value) = get(spec, "automountServiceAccountToken") {
        c.boolean(value, &join(path, "automountServiceAccountToken"));
    }
}

/// `initContainers` and `containers`; names are unique across both.
fn check_containers(c: &mut Checker, spec: &JsonObject, path: &str, pod: &PodNames) {
    // Read here for the hostPort and resizePolicy rules; their types are checked below.
    let host_network = get(spec, "hostNetwork").and_then(Value::as_bool) == Some(true);
    let never = get(spec, "restartPolicy").and_then(Value::as_str) == Some("Never");
    // Names are unique across init and app containers.
    let mut names = BTreeSet::new();
    let init_path = join(path, "initContainers");
    if let Some(Some(containers)) = get(spec, "initContainers").map(|v| c.list(v, &init_path)) {
        for (i, item) in containers.iter().enumerate() {
            let at = ContainerAt {
                path: index(&init_path, i),
                init: true,
                host_network,
                never,
            };
            check_container(c, item, &at, &mut names, pod);
        }
    }
    let containers_path = join(path, "containers");
    match get(spec, "containers").map(|v| c.list(v, &containers_path)) {
        None | Some(Some([])) => c.required(&containers_path),
        Some(None) => {}
        Some(Some(containers)) => {
            for (i, item) in containers.iter().enumerate() {
                let at = ContainerAt {
                    path: index(&containers_path, i),
                    init: false,
                    host_network,
                    never,
                };
                check_container(c, item, &at, &mut names, pod);
            }
        }
    }
}

/// Where a container is, and what kind it is.
struct ContainerAt {
    path: String,
    /// In `initContainers`: probes and lifecycle hooks only on sidecars.
    init: bool,
    host_network: bool,
    /// The pod's `restartPolicy` is `Never`: a resize may not restart a container.
    never: bool,
}

/// `names` collects the container names seen so far; `pod` has every name of the pod.
fn check_container<'a>(
    c: &mut Checker,
    value: &'a Value,
    at: &ContainerAt,
    names: &mut BTreeSet<&'a str>,
    pod: &PodNames,
) {
    let path = at.path.as_str();
    let Some(container) = c.object(value, path) else {
        return;
    };
    c.only_fields(
        container,
        path,
        &[
            "name",
            "image",
            "imagePullPolicy",
            "command",
            "args",
            "env",
            "envFrom",
            "volumeMounts",
            "workingDir",
            "ports",
            "resources",
            "livenessProbe",
            "readinessProbe",
            "startupProbe",
            "lifecycle",
            "securityContext",
            "restartPolicy",
            "terminationMessagePath",
            "terminationMessagePolicy",
            "resizePolicy",
        ],
    );

    let name_path = join(path, "name");
    match required_string(c, container, &name_path, "name") {
        None => {}
        Some(name) if !is_dns1123_label(name) => {
            c.error(
                &name_path,
                format!("invalid name {name:?}: {DNS1123_LABEL_RULE}"),
            );
        }
        // Inserting in the guard records the name the first time it is seen.
        Some(name) if !names.insert(name) => {
            c.error(&name_path, format!("duplicate value {name:?}"));
        }
        Some(_) => {}
    }

    let image_path = join(path, "image");
    if let Some(image) = required_string(c, container, &image_path, "image") {
        if image.chars().any(char::is_whitespace) {
            c.error(
                &image_path,
                format!("invalid image {image:?}: must not contain whitespace"),
            );
        }
    }
    if let Some(value) = get(container, "imagePullPolicy") {
        c.one_of(
            value,
            &join(path, "imagePullPolicy"),
            &["Always", "IfNotPresent", "Never"],
        );
    }
    check_restart_policy(c, container, at);
    check_termination_message(c, container, path);
    check_container_process(c, container, path, pod);
    if let Some(value) = get(container, "ports") {
        check_ports(c, value, &join(path, "ports"), at.host_network);
    }
    if let Some(value) = get(container, "resources") {
        check_resources(c, value, &join(path, "resources"));
    }
    if let Some(value) = get(container, "resizePolicy") {
        let policy_path = join(path, "resizePolicy");
        super::pod_resources::check_resize_policy(c, value, &policy_path, at.never);
    }
    check_container_hooks(c, container, path);
    if let Some(value) = get(container, "securityContext") {
        check_container_security_context(c, value, &join(path, "securityContext"));
    }
}

/// `terminationMessagePath` (an absolute path without `..`, as a mount point must be)
/// and `terminationMessagePolicy`.
fn check_termination_message(c: &mut Checker, container: &JsonObject, path: &str) {
    if let Some(value) = get(container, "terminationMessagePath") {
        let at = join(path, "terminationMessagePath");
        if let Some(file) = c.string(value, &at) {
            let escapes = file.split('/').any(|part| part == "..");
            if !file.starts_with('/') || escapes || file == "/" || file.len() > 4096 {
                c.error(
                    &at,
                    format!("invalid value {file:?}: must be an absolute file path without '..'"),
                );
            }
        }
    }
    if let Some(value) = get(container, "terminationMessagePolicy") {
        c.one_of(
            value,
            &join(path, "terminationMessagePolicy"),
            &["File", "FallbackToLogsOnError"],
        );
    }
}

/// A container's `restartPolicy`: `Always` makes an init container a sidecar, which
/// alone may have probes and hooks; app containers follow the pod's policy.
fn check_restart_policy(c: &mut Checker, container: &JsonObject, at: &ContainerAt) {
    let policy_path = join(&at.path, "restartPolicy");
    let policy = get(container, "restartPolicy");
    if !at.init {
        if policy.is_some() {
            c.error(
                &policy_path,
                "forbidden: may not be set for non-init containers",
            );
        }
        return;
    }
    let sidecar = match policy {
        Some(value) => c.one_of(value, &policy_path, &["Always"]).is_some(),
        None => false,
    };
    if sidecar {
        return;
    }
    for field in [
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
        "lifecycle",
        "resizePolicy",
    ] {
        if get(container, field).is_some() {
            c.error(
                &join(&at.path, field),
                "forbidden: may not be set for init containers without restartPolicy=Always",
            );
        }
    }
}

/// What the container runs: its command, environment, mounts and directory.
fn check_container_process(c: &mut Checker, container: &JsonObject, path: &str, pod: &PodNames) {
    for field in ["command", "args"] {
        if let Some(value) = get(container, field) {
            check_string_list(c, value, &join(path, field));
        }
    }
    if let Some(value) = get(container, "env") {
        super::env::check_env(c, value, &join(path, "env"), &pod.containers);
    }
    if let Some(value) = get(container, "envFrom") {
        super::env::check_env_from(c, value, &join(path, "envFrom"));
    }
    if let Some(value) = get(container, "volumeMounts") {
        super::volume::check_volume_mounts(c, value, &join(path, "volumeMounts"), pod);
    }
    if let Some(value) = get(container, "workingDir") {
        let dir_path = join(path, "workingDir");
        if let Some(dir) = c.string(value, &dir_path) {
            if !dir.starts_with('/') {
                c.error(
                    &dir_path,
                    format!("invalid path {dir:?}: must be an absolute path"),
                );
            }
        }
    }
}

/// Probes and lifecycle hooks.
fn check_container_hooks(c: &mut Checker, container: &JsonObject, path: &str) {
    let port_names = port_names(container);
    for (field, success_must_be_one) in PROBE_FIELDS {
        if let Some(value) = get(container, field) {
            check_probe(
                c,
                value,
                &join(path, field),
                success_must_be_one,
                &port_names,
            );
        }
    }
    if let Some(value) = get(container, "lifecycle") {
        check_lifecycle(c, value, &join(path, "lifecycle"));
    }
}

/// The port names a probe may refer to. Malformed ports are reported by `check_ports`,
/// so here they are simply skipped.
fn port_names(container: &JsonObject) -> BTreeSet<&str> {
    get(container, "ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|port| port.get("name")?.as_str())
        .collect()
}

/// A string field that must be present and non-empty.
/// A list of `{name: ...}` references to objects in the pod's namespace.
fn check_local_references(c: &mut Checker, value: &Value, path: &str) {
    let Some(items) = c.list(value, path) else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let item_path = index(path, i);
        let Some(reference) = c.object(item, &item_path) else {
            continue;
        };
        c.only_fields(reference, &item_path, &["name"]);
        let name_path = join(&item_path, "name");
        match get(reference, "name").map(|v| c.string(v, &name_path)) {
            None | Some(Some("")) => c.required(&name_path),
            Some(None) => {}
            Some(Some(name)) if !is_dns1123_subdomain(name) => c.error(
                &name_path,
                format!("invalid name {name:?}: {DNS1123_SUBDOMAIN_RULE}"),
            ),
            Some(Some(_)) => {}
        }
    }
}

pub(super) fn required_string<'a>(
    c: &mut Checker,
    object: &'a JsonObject,
    path: &str,
    key: &str,
) -> Option<&'a str> {
    match get(object, key).map(|v| c.string(v, path)) {
        None | Some(Some("")) => {
            c.required(path);
            None
        }
        Some(found) => found,
    }
}

pub(super) fn check_string_list(c: &mut Checker, value: &Value, path: &str) {
    if let Some(items) = c.list(value, path) {
        for (i, item) in items.iter().enumerate() {
            c.string(item, &index(path, i));
        }
    }
}

/// `ports`. On the host network the container's own port is the node's, so there a
/// `hostPort` must equal `containerPort` (what Kubernetes defaults it to); otherwise the
/// agent forwards the host port to the pod (DNAT), for TCP and UDP.
fn check_ports(c: &mut Checker, value: &Value, path: &str, host_network: bool) {
    let Some(items) = c.list(value, path) else {
        return;
    };
    let mut names = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = index(path, i);
        let Some(port) = c.object(item, &item_path) else {
            continue;
        };
        c.only_fields(
            port,
            &item_path,
            &["name", "containerPort", "protocol", "hostPort", "hostIP"],
        );
        if let Some(value) = get(port, "name") {
            let name_path = join(&item_path, "name");
            if let Some(name) = c.string(value, &name_path) {
                if !is_iana_svc_name(name) {
                    c.error(&name_path, invalid_port_name(name));
                } else if !names.insert(name) {
                    c.error(&name_path, format!("duplicate value {name:?}"));
                }
            }
        }
        let port_path = join(&item_path, "containerPort");
        let container_port = match get(port, "containerPort") {
            None => {
                c.required(&port_path);
                None
            }
            Some(value) => c.integer_in(value, &port_path, 1, 65535),
        };
        let protocol = get(port, "protocol").and_then(|value| {
            c.one_of(
                value,
                &join(&item_path, "protocol"),
                &["TCP", "UDP", "SCTP"],
            )
        });
        if let Some(value) = get(port, "hostPort") {
            let host_path = join(&item_path, "hostPort");
            match c.integer_in(value, &host_path, 1, 65535) {
                Some(host) if host_network && container_port.is_some_and(|port| port != host) => c.error(
                    &host_path,
                    format!("invalid value {host}: must match `containerPort` when `hostNetwork` is true"),
                ),
                Some(_) if !host_network && protocol == Some("SCTP") => c.error(
                    &host_path,
                    "forbidden: berth forwards host ports for TCP and UDP only",
                ),
                Some(_) | None => {}
            }
        }
        if let Some(value) = get(port, "hostIP") {
            let ip_path = join(&item_path, "hostIP");
            if let Some(ip) = c.string(value, &ip_path) {
                if ip.parse::<std::net::Ipv4Addr>().is_err() {
                    c.error(
                        &ip_path,
                        format!("invalid value {ip:?}: must be a valid IPv4 address"),
                    );
                }
            }
        }
    }
}

/// The message for a port name that is not an IANA service name.
pub(super) fn invalid_port_name(name: &str) -> String {
    format!(
        "invalid port name {name:?}: must be at most 15 lowercase letters, digits or '-', \
         with at least one letter and no leading, trailing or doubled '-'"
    )
}

fn check_resources(c: &mut Checker, value: &Value, path: &str) {
    let Some(resources) = c.object(value, path) else {
        return;
    };
    c.only_fields(resources, path, &["requests", "limits"]);
    let requests = get(resources, "requests")
        .map(|v| check_resource_list(c, v, &join(path, "requests")))
        .unwrap_or_default();
    let limits = get(resources, "limits")
        .map(|v| check_resource_list(c, v, &join(path, "limits")))
        .unwrap_or_default();
    for (name, request) in &requests {
        let request_path = join(&join(path, "requests"), name);
        let limit = limits.get(name);
        if RESOURCE_NAMES.contains(name) {
            if limit.is_some_and(|limit| request > limit) {
                c.error(
                    &request_path,
                    format!("must be less than or equal to {name} limit"),
                );
            }
            continue;
        }
        // Extended resources are not overcommitted: the limit is the request.
        match limit {
            None => c.error(
                &join(path, "limits"),
                "required value: Limit must be set for non overcommitable resources",
            ),
            Some(limit) if limit != request => c.error(
                &request_path,
                format!("must be equal to {name} limit of {limit}"),
            ),
            Some(_) => {}
        }
    }
}

/// Checks a `requests` or `limits` map and returns the parsed amounts (millicores, bytes,
/// or counts of extended resources) by name.
fn check_resource_list<'a>(
    c: &mut Checker,
    value: &'a Value,
    path: &str,
) -> BTreeMap<&'a str, u64> {
    let mut amounts = BTreeMap::new();
    let Some(list) = c.object(value, path) else {
        return amounts;
    };
    for (name, item) in list {
        let item_path = join(path, name);
        if !RESOURCE_NAMES.contains(&name.as_str()) && !is_extended_resource(name) {
            c.error(
                &item_path,
                format!(
                    "unsupported resource name {name:?}: supported values: \"cpu\", \"memory\" \
                     and extended resources (\"example.com/dongle\")"
                ),
            );
            continue;
        }
        // Unquoted YAML numbers (`cpu: 1`, `cpu: 0.5`) are valid quantities.
        let text = match item {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => {
                c.error(&item_path, "expected string");
                continue;
            }
        };
        // CPU is compared in millicores, memory in bytes, extended resources in units.
        let parsed = match name.as_str() {
            "cpu" => parse_cpu_millis(&text),
            "memory" => parse_memory_bytes(&text),
            _ => parse_count(&text),
        };
        match parsed {
            Ok(amount) => {
                amounts.insert(name.as_str(), amount);
            }
            Err(message) => c.error(&item_path, message),
        }
    }
    amounts
}
