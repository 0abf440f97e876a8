//! Validation of Services, Endpoints and EndpointSlices, with Kubernetes' rules and
//! field paths. Only what can be decided from the document is checked here; whether a
//! cluster IP or node port is free and inside the configured ranges is decided at
//! admission (`api::services`), where the other Services are known.
//!
//! Berth's service network is IPv4, single-stack, without session affinity: those
//! values are refused by name instead of being accepted and ignored. LoadBalancer
//! Services are accepted as a cluster without a load-balancer controller accepts them
//! (their own fields are checked in `service_external.rs`).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use serde_json::Value;

use super::checker::{get, index, join, Checker, JsonObject};
use super::pod::invalid_port_name;
use crate::model::names::{DNS1123_LABEL_RULE, DNS1123_SUBDOMAIN_RULE};
use crate::model::{is_dns1123_label, is_dns1123_subdomain, is_iana_svc_name, CLUSTER_IP_NONE};

const SERVICE_SPEC_FIELDS: [&str; 15] = [
    "type",
    "selector",
    "ports",
    "clusterIP",
    "clusterIPs",
    "externalName",
    "sessionAffinity",
    "publishNotReadyAddresses",
    "ipFamilies",
    "ipFamilyPolicy",
    "externalTrafficPolicy",
    "allocateLoadBalancerNodePorts",
    "loadBalancerClass",
    "loadBalancerIP",
    "loadBalancerSourceRanges",
];

const SERVICE_TYPES: [&str; 4] = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];

/// The types whose Services hold node ports.
const NODE_PORT_TYPES: [&str; 2] = ["NodePort", "LoadBalancer"];

pub(super) const ENDPOINTS_FIELDS: [&str; 4] = ["apiVersion", "kind", "metadata", "subsets"];

pub(super) const ENDPOINT_SLICE_FIELDS: [&str; 6] = [
    "apiVersion",
    "kind",
    "metadata",
    "addressType",
    "endpoints",
    "ports",
];

/// Kubernetes' limits on the size of one EndpointSlice.
const MAX_SLICE_ENDPOINTS: usize = 1000;
const MAX_ENDPOINT_ADDRESSES: usize = 100;

/// What `spec.clusterIP` (or the first of `clusterIPs`) asks for.
#[derive(Clone, Copy, PartialEq)]
enum ClusterIp {
    /// Empty: allocated at admission (or none, for ExternalName).
    Unset,
    Headless,
    Address,
    /// Already reported.
    Invalid,
}

pub(super) fn check_service_spec(c: &mut Checker, value: Option<&Value>) {
    let path = "spec";
    let empty = JsonObject::new();
    let spec = match value {
        None => &empty,
        Some(value) => match c.object(value, path) {
            Some(spec) => spec,
            None => return,
        },
    };
    c.only_fields(spec, path, &SERVICE_SPEC_FIELDS);
    let service_type = match get(spec, "type") {
        None => Some("ClusterIP"),
        Some(value) => c.one_of(value, "spec.type", &SERVICE_TYPES),
    };
    external::check_external_fields(c, spec, service_type);
    if let Some(value) = get(spec, "selector") {
        c.labels(value, "spec.selector");
    }
    if let Some(value) = get(spec, "sessionAffinity") {
        check_session_affinity(c, value);
    }
    if let Some(value) = get(spec, "publishNotReadyAddresses") {
        c.boolean(value, "spec.publishNotReadyAddresses");
    }
    let cluster_ip = check_cluster_ips(c, spec);
    check_ip_families(c, spec, service_type);
    let external_name = get(spec, "externalName");
    let ports = get(spec, "ports");
    if let Some(value) = ports {
        check_service_ports(c, value, service_type);
    }
    let Some(service_type) = service_type else {
        return;
    };
    let cluster_ip_set = !matches!(cluster_ip, ClusterIp::Unset);
    match service_type {
        "ExternalName" => {
            if cluster_ip_set {
                c.error(
                    "spec.clusterIP",
                    "forbidden: may not be set for ExternalName services",
                );
            }
            match external_name {
                None => c.required("spec.externalName"),
                Some(value) => check_external_name(c, value),
            }
        }
        _ => {
            if external_name.is_some() {
                c.error(
                    "spec.externalName",
                    format!(
                        "forbidden: may only be set when `type` is 'ExternalName', not \
                         '{service_type}'"
                    ),
                );
            }
            let headless = cluster_ip == ClusterIp::Headless;
            if headless && NODE_PORT_TYPES.contains(&service_type) {
                c.error(
                    "spec.clusterIP",
                    format!(
                        "invalid value \"None\": may not be set to 'None' for {service_type} \
                         services"
                    ),
                );
            }
            let no_ports = ports.and_then(Value::as_array).is_none_or(Vec::is_empty);
            if no_ports && !headless && cluster_ip != ClusterIp::Invalid {
                c.required("spec.ports");
            }
        }
    }
}

fn check_session_affinity(c: &mut Checker, value: &Value) {
    let path = "spec.sessionAffinity";
    if value.as_str() == Some("ClientIP") {
        c.error(
            path,
            "unsupported value \"ClientIP\": berth spreads connections over the endpoints \
             without affinity; supported values: \"None\"",
        );
        return;
    }
    c.one_of(value, path, &["None"]);
}

/// `clusterIP` and `clusterIPs`, which must agree; returns what they ask for.
fn check_cluster_ips(c: &mut Checker, spec: &JsonObject) -> ClusterIp {
    let mut asked = ClusterIp::Unset;
    let mut single = "";
    if let Some(value) = get(spec, "clusterIP") {
        match c.string(value, "spec.clusterIP") {
            Some(text) => {
                single = text;
                asked = cluster_ip(c, text, "spec.clusterIP");
            }
            None => asked = ClusterIp::Invalid,
        }
    }
    let Some(value) = get(spec, "clusterIPs") else {
        return asked;
    };
    let path = "spec.clusterIPs";
    let Some(items) = c.list(value, path) else {
        return ClusterIp::Invalid;
    };
    if items.len() > 1 {
        c.error(
            path,
            format!(
                "too many: {}: must have at most 1 item (berth's service network is IPv4 \
                 single-stack)",
                items.len()
            ),
        );
        return ClusterIp::Invalid;
    }
    let Some(first) = items.first() else {
        return asked;
    };
    let first_path = index(path, 0);
    let Some(text) = c.string(first, &first_path) else {
        return ClusterIp::Invalid;
    };
    if !single.is_empty() {
        if single != text {
            c.error(
                &first_path,
                format!("invalid value {text:?}: must be the same as `clusterIP`"),
            );
        }
        return asked;
    }
    match asked {
        ClusterIp::Invalid => ClusterIp::Invalid,
        ClusterIp::Unset | ClusterIp::Headless | ClusterIp::Address => {
            cluster_ip(c, text, &first_path)
        }
    }
}

fn cluster_ip(c: &mut Checker, text: &str, path: &str) -> ClusterIp {
    if text.is_empty() {
        return ClusterIp::Unset;
    }
    if text == CLUSTER_IP_NONE {
        return ClusterIp::Headless;
    }
    match text.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => ClusterIp::Address,
        Ok(IpAddr::V6(_)) => {
            c.error(
                path,
                format!("invalid value {text:?}: berth's service network is IPv4 only"),
            );
            ClusterIp::Invalid
        }
        Err(_) => {
            c.error(
                path,
                format!("invalid value {text:?}: must be empty, 'None' or a valid IPv4 address"),
            );
            ClusterIp::Invalid
        }
    }
}

/// `ipFamilies` and `ipFamilyPolicy`: only what berth's network is (IPv4, single-stack),
/// and nothing for ExternalName Services, which have no address. A Service that only
/// prefers dual stack gets IPv4 alone, as on a Kubernetes cluster without IPv6.
fn check_ip_families(c: &mut Checker, spec: &JsonObject, service_type: Option<&str>) {
    let external = service_type == Some("ExternalName");
    let prefers_dual =
        get(spec, "ipFamilyPolicy").and_then(Value::as_str) == Some("PreferDualStack");
    if let Some(value) = get(spec, "ipFamilies") {
        let path = "spec.ipFamilies";
        if external {
            c.error(path, "forbidden: may not be set for ExternalName services");
        } else if let Some(items) = c.list(value, path) {
            let dual = [Value::from("IPv4"), Value::from("IPv6")];
            if prefers_dual && items == dual.as_slice() {
                return;
            }
            if items.len() > 1 {
                c.error(
                    path,
                    format!(
                        "too many: {}: must have at most 1 item (berth's service network is \
                         IPv4 single-stack)",
                        items.len()
                    ),
                );
            }
            for (i, item) in items.iter().enumerate() {
                c.one_of(item, &index(path, i), &["IPv4"]);
            }
        }
    }
    if let Some(value) = get(spec, "ipFamilyPolicy") {
        let path = "spec.ipFamilyPolicy";
        if external {
            c.error(path, "forbidden: may not be set for ExternalName services");
        } else {
            c.one_of(value, path, &["SingleStack", "PreferDualStack"]);
        }
    }
}

fn check_external_name(c: &mut Checker, value: &Value) {
    let path = "spec.externalName";
    let Some(name) = c.string(value, path) else {
        return;
    };
    // A fully qualified name may end with the root's dot.
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() {
        c.required(path);
    } else if !is_dns1123_subdomain(bare) {
        c.error(
            path,
            format!("invalid value {name:?}: {DNS1123_SUBDOMAIN_RULE}"),
        );
    }
}

/// `spec.ports`: names (required and unique when there are several), protocols, port
/// numbers, target ports, node ports only for Services that hold them, no port twice.
fn check_service_ports(c: &mut Checker, value: &Value, service_type: Option<&str>) {
    let path = "spec.ports";
    let Some(items) = c.list(value, path) else {
        return;
    };
    let several = items.len() > 1;
    let mut names = BTreeSet::new();
    let mut ports = BTreeSet::new();
    let mut node_ports = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = index(path, i);
        let Some(port) = c.object(item, &item_path) else {
            continue;
        };
        c.only_fields(
            port,
            &item_path,
            &["name", "protocol", "port", "targetPort", "nodePort"],
        );
        check_port_name(c, port, &item_path, several, &mut names);
        let protocol = check_protocol(c, port, &item_path);
        let number = check_port_number(c, port, &item_path);
        if let Some(value) = get(port, "targetPort") {
            check_target_port(c, value, &join(&item_path, "targetPort"));
        }
        if let (Some(number), Some(protocol)) = (number, protocol) {
            if !ports.insert((number, protocol)) {
                c.error(
                    &item_path,
                    format!("duplicate value: port {number}/{protocol}"),
                );
            }
        }
        let Some(value) = get(port, "nodePort") else {
            continue;
        };
        let node_path = join(&item_path, "nodePort");
        // 0 asks for one to be allocated, as an absent nodePort does.
        let Some(node_port) = c.integer_in(value, &node_path, 0, 65535) else {
            continue;
        };
        match service_type {
            Some(kind) if NODE_PORT_TYPES.contains(&kind) => {}
            None => {}
            Some(other) if node_port != 0 => c.error(
                &node_path,
                format!("forbidden: may not be used when `type` is '{other}'"),
            ),
            Some(_) => {}
        }
        if let (true, Some(protocol)) = (node_port != 0, protocol) {
            if !node_ports.insert((node_port, protocol)) {
                c.error(
                    &node_path,
                    format!("duplicate value: {node_port}/{protocol}"),
                );
            }
        }
    }
}

/// A port `name`: a DNS-1123 label, unique; required when the list has several ports.
fn check_port_name<'a>(
    c: &mut Checker,
    port: &'a JsonObject,
    item_path: &str,
    required: bool,
    names: &mut BTreeSet<&'a str>,
) {
    let name_path = join(item_path, "name");
    let name = match get(port, "name") {
        None => "",
        Some(value) => match c.string(value, &name_path) {
            Some(name) => name,
            None => return,
        },
    };
    if name.is_empty() {
        if required {
            c.required(&name_path);
        }
        return;
    }
    if !is_dns1123_label(name) {
        c.error(
            &name_path,
            format!("invalid value {name:?}: {DNS1123_LABEL_RULE}"),
        );
    } else if !names.insert(name) {
        c.error(&name_path, format!("duplicate value {name:?}"));
    }
}

/// `protocol`, TCP when absent; SCTP and others are refused.
fn check_protocol<'a>(c: &mut Checker, port: &'a JsonObject, item_path: &str) -> Option<&'a str> {
    match get(port, "protocol") {
        None => Some("TCP"),
        Some(value) => c.one_of(value, &join(item_path, "protocol"), &["TCP", "UDP"]),
    }
}

/// The required `port`, 1 to 65535.
fn check_port_number(c: &mut Checker, port: &JsonObject, item_path: &str) -> Option<i64> {
    let port_path = join(item_path, "port");
    let value = c.required_field(port, item_path, "port")?;
    c.integer_in(value, &port_path, 1, 65535)
}

/// A number 1 to 65535, or the name of a container port (an IANA service name).
pub(super) fn check_target_port(c: &mut Checker, value: &Value, path: &str) {
    match value {
        Value::String(name) => {
            if !is_iana_svc_name(name) {
                c.error(path, invalid_port_name(name));
            }
        }
        Value::Number(_) => {
            c.integer_in(value, path, 1, 65535);
        }
        _ => c.error(path, "expected integer or string"),
    }
}

/// Endpoints: `subsets` of addresses (ready or not) that serve the same ports.
pub(super) fn check_endpoints(c: &mut Checker, top: &JsonObject) {
    let path = "subsets";
    let Some(value) = get(top, path) else {
        return;
    };
    let Some(subsets) = c.list(value, path) else {
        return;
    };
    for (i, item) in subsets.iter().enumerate() {
        let subset_path = index(path, i);
        let Some(subset) = c.object(item, &subset_path) else {
            continue;
        };
        c.only_fields(
            subset,
            &subset_path,
            &["addresses", "notReadyAddresses", "ports"],
        );
        let mut addresses = 0;
        for field in ["addresses", "notReadyAddresses"] {
            if let Some(value) = get(subset, field) {
                addresses += check_endpoint_addresses(c, value, &join(&subset_path, field));
            }
        }
        if addresses == 0 {
            c.error(
                &subset_path,
                "required value: must specify `addresses` or `notReadyAddresses`",
            );
        }
        let ports_path = join(&subset_path, "ports");
        match get(subset, "ports").map(|value| c.list(value, &ports_path)) {
            None | Some(Some([])) => c.required(&ports_path),
            Some(None) => {}
            Some(Some(ports)) => check_endpoint_ports(c, ports, &ports_path, true),
        }
    }
}

/// A list of Endpoints addresses; returns how many there are.
fn check_endpoint_addresses(c: &mut Checker, value: &Value, path: &str) -> usize {
    let Some(items) = c.list(value, path) else {
        return 0;
    };
    for (i, item) in items.iter().enumerate() {
        let item_path = index(path, i);
        let Some(address) = c.object(item, &item_path) else {
            continue;
        };
        c.only_fields(
            address,
            &item_path,
            &["ip", "hostname", "nodeName", "targetRef"],
        );
        let ip_path = join(&item_path, "ip");
        if let Some(value) = c.required_field(address, &item_path, "ip") {
            if let Some(ip) = c.string(value, &ip_path) {
                check_endpoint_ip(c, ip, &ip_path);
            }
        }
        check_endpoint_identity(c, address, &item_path);
    }
    items.len()
}

/// `hostname`, `nodeName` and `targetRef`, shared by Endpoints addresses and
/// EndpointSlice endpoints.
fn check_endpoint_identity(c: &mut Checker, object: &JsonObject, path: &str) {
    if let Some(value) = get(object, "hostname") {
        let hostname_path = join(path, "hostname");
        if let Some(name) = c.string(value, &hostname_path) {
            if !is_dns1123_label(name) {
                c.error(
                    &hostname_path,
                    format!("invalid value {name:?}: {DNS1123_LABEL_RULE}"),
                );
            }
        }
    }
    if let Some(value) = get(object, "nodeName") {
        let node_path = join(path, "nodeName");
        if let Some(name) = c.string(value, &node_path) {
            if !is_dns1123_subdomain(name) {
                c.error(
                    &node_path,
                    format!("invalid value {name:?}: {DNS1123_SUBDOMAIN_RULE}"),
                );
            }
        }
    }
    if let Some(value) = get(object, "targetRef") {
        let ref_path = join(path, "targetRef");
        if let Some(reference) = c.object(value, &ref_path) {
            let fields = ["kind", "namespace", "name", "uid"];
            c.only_fields(reference, &ref_path, &fields);
            for field in fields {
                if let Some(value) = get(reference, field) {
                    c.string(value, &join(&ref_path, field));
                }
            }
        }
    }
}

/// Kubernetes' rules for an endpoint address (here IPv4 only): no address that cannot
/// be forwarded to, or that would reach the node itself.
fn check_endpoint_ip(c: &mut Checker, text: &str, path: &str) {
    let problem = match text.parse::<IpAddr>() {
        Err(_) => "must be a valid IPv4 address",
        Ok(IpAddr::V6(_)) => "berth's pod and service networks are IPv4 only",
        Ok(IpAddr::V4(ip)) => match special_range(ip) {
            Some(problem) => problem,
            None => return,
        },
    };
    c.error(path, format!("invalid value {text:?}: {problem}"));
}

fn special_range(ip: Ipv4Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some("may not be unspecified (0.0.0.0)")
    } else if ip.is_loopback() {
        Some("may not be in the loopback range (127.0.0.0/8)")
    } else if ip.is_link_local() {
        Some("may not be in the link-local range (169.254.0.0/16)")
    } else if ip.octets()[..3] == [224, 0, 0] {
        Some("may not be in the link-local multicast range (224.0.0.0/24)")
    } else {
        None
    }
}

/// Ports of Endpoints (`name_required`: when there are several) or of an EndpointSlice.
fn check_endpoint_ports(c: &mut Checker, ports: &[Value], path: &str, name_required: bool) {
    let several = name_required && ports.len() > 1;
    let mut names = BTreeSet::new();
    for (i, item) in ports.iter().enumerate() {
        let item_path = index(path, i);
        let Some(port) = c.object(item, &item_path) else {
            continue;
        };
        c.only_fields(port, &item_path, &["name", "port", "protocol"]);
        check_port_name(c, port, &item_path, several, &mut names);
        check_port_number(c, port, &item_path);
        check_protocol(c, port, &item_path);
    }
}

/// An EndpointSlice: IPv4 addresses of endpoints with their conditions, and ports.
pub(super) fn check_endpoint_slice(c: &mut Checker, top: &JsonObject) {
    match get(top, "addressType") {
        None => c.required("addressType"),
        Some(value) => {
            if value.as_str().is_some_and(|t| t == "IPv6" || t == "FQDN") {
                c.error(
                    "addressType",
                    format!(
                        "unsupported value {value}: berth's pod network is IPv4; supported \
                         values: \"IPv4\""
                    ),
                );
            } else {
                c.one_of(value, "addressType", &["IPv4"]);
            }
        }
    }
    if let Some(value) = get(top, "endpoints") {
        if let Some(endpoints) = c.list(value, "endpoints") {
            if endpoints.len() > MAX_SLICE_ENDPOINTS {
                c.error(
                    "endpoints",
                    format!(
                        "too many: {}: must have at most {MAX_SLICE_ENDPOINTS} items",
                        endpoints.len()
                    ),
                );
            }
            for (i, item) in endpoints.iter().enumerate() {
                check_slice_endpoint(c, item, &index("endpoints", i));
            }
        }
    }
    if let Some(value) = get(top, "ports") {
        if let Some(ports) = c.list(value, "ports") {
            check_endpoint_ports(c, ports, "ports", false);
        }
    }
}

fn check_slice_endpoint(c: &mut Checker, value: &Value, path: &str) {
    let Some(endpoint) = c.object(value, path) else {
        return;
    };
    c.only_fields(
        endpoint,
        path,
        &[
            "addresses",
            "conditions",
            "hostname",
            "nodeName",
            "targetRef",
        ],
    );
    let addresses_path = join(path, "addresses");
    match get(endpoint, "addresses").map(|value| c.list(value, &addresses_path)) {
        None | Some(Some([])) => c.error(
            &addresses_path,
            "required value: must contain at least 1 address",
        ),
        Some(None) => {}
        Some(Some(addresses)) => {
            if addresses.len() > MAX_ENDPOINT_ADDRESSES {
                c.error(
                    &addresses_path,
                    format!(
                        "too many: {}: must have at most {MAX_ENDPOINT_ADDRESSES} items",
                        addresses.len()
                    ),
                );
            }
            for (i, item) in addresses.iter().enumerate() {
                let item_path = index(&addresses_path, i);
                if let Some(ip) = c.string(item, &item_path) {
                    check_endpoint_ip(c, ip, &item_path);
                }
            }
        }
    }
    if let Some(value) = get(endpoint, "conditions") {
        let conditions_path = join(path, "conditions");
        if let Some(conditions) = c.object(value, &conditions_path) {
            let fields = ["ready", "serving", "terminating"];
            c.only_fields(conditions, &conditions_path, &fields);
            for field in fields {
                if let Some(value) = get(conditions, field) {
                    c.boolean(value, &join(&conditions_path, field));
                }
            }
        }
    }
    check_endpoint_identity(c, endpoint, path);
}

#[path = "service_external.rs"]
mod external;

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
