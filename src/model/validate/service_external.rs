//! The Service fields about reaching it from outside the fleet: `externalTrafficPolicy`
//! and those of LoadBalancer Services, with Kubernetes' rules and field paths.
//!
//! A LoadBalancer Service is accepted as a cluster with no load-balancer controller
//! accepts it: its load-balancer fields are checked and kept, though nothing acts on
//! them (`model::warnings` says so at apply). `externalTrafficPolicy: Local` is refused
//! by name: berth forwards node-port traffic to the endpoints on every board.

use std::net::IpAddr;

use serde_json::Value;

use super::super::checker::{get, index, Checker, JsonObject};
use super::NODE_PORT_TYPES;
use crate::model::validate_qualified_name;

const LOAD_BALANCER_ONLY: &str = "forbidden: may only be used when `type` is 'LoadBalancer'";

/// Checks the fields; `service_type` is `None` when `spec.type` itself was refused, and
/// then only the values are checked, not whether the type allows them.
pub(super) fn check_external_fields(
    c: &mut Checker,
    spec: &JsonObject,
    service_type: Option<&str>,
) {
    check_traffic_policy(c, spec, service_type);
    // Whether a field only LoadBalancer Services may have is out of place.
    let misplaced = service_type.is_some_and(|t| t != "LoadBalancer");
    if let Some(value) = get(spec, "allocateLoadBalancerNodePorts") {
        let path = "spec.allocateLoadBalancerNodePorts";
        if misplaced {
            c.error(path, LOAD_BALANCER_ONLY);
        }
        c.boolean(value, path);
    }
    if let Some(value) = get(spec, "loadBalancerClass") {
        check_class(c, value, misplaced);
    }
    if let Some(value) = get(spec, "loadBalancerSourceRanges") {
        check_source_ranges(c, value, misplaced);
    }
    if let Some(value) = get(spec, "loadBalancerIP") {
        let path = "spec.loadBalancerIP";
        // Any type may carry it, as in Kubernetes; only LoadBalancer Services ask for it.
        if let Some(text) = c.string(value, path) {
            if !text.is_empty() && text.parse::<IpAddr>().is_err() {
                c.error(
                    path,
                    format!("invalid value {text:?}: must be a valid IP address"),
                );
            }
        }
    }
}

/// `Cluster` for Services with node ports; nothing for the others, which nobody outside
/// reaches.
fn check_traffic_policy(c: &mut Checker, spec: &JsonObject, service_type: Option<&str>) {
    let Some(value) = get(spec, "externalTrafficPolicy") else {
        return;
    };
    let path = "spec.externalTrafficPolicy";
    // An empty policy is no policy, as the API server reads it.
    if value.as_str() == Some("") {
        return;
    }
    if service_type.is_some_and(|t| !NODE_PORT_TYPES.contains(&t)) {
        c.error(
            path,
            format!("invalid value {value}: may only be set for externally-accessible services"),
        );
    } else if value.as_str() == Some("Local") {
        c.error(
            path,
            "unsupported value \"Local\": berth forwards node-port traffic to the endpoints \
             on every board, not only to those on the board it arrives at; supported values: \
             \"Cluster\"",
        );
    } else {
        c.one_of(value, path, &["Cluster"]);
    }
}

fn check_class(c: &mut Checker, value: &Value, misplaced: bool) {
    let path = "spec.loadBalancerClass";
    if misplaced {
        c.error(path, LOAD_BALANCER_ONLY);
    }
    let Some(class) = c.string(value, path) else {
        return;
    };
    if validate_qualified_name(class).is_err() {
        c.error(
            path,
            format!(
                "invalid value {class:?}: must be a qualified name: an optional DNS subdomain \
                 and '/', then at most 63 letters, digits, '-', '_' or '.', starting and \
                 ending with a letter or digit (e.g. 'example.com/internal-vip')"
            ),
        );
    }
}

/// A list of IP ranges in CIDR notation (IPv4 or IPv6, as Kubernetes takes them: they
/// describe clients, not berth's network), surrounding spaces allowed.
fn check_source_ranges(c: &mut Checker, value: &Value, misplaced: bool) {
    let path = "spec.loadBalancerSourceRanges";
    let Some(items) = c.list(value, path) else {
        return;
    };
    if misplaced && !items.is_empty() {
        c.error(path, LOAD_BALANCER_ONLY);
    }
    for (i, item) in items.iter().enumerate() {
        let item_path = index(path, i);
        let Some(text) = c.string(item, &item_path) else {
            continue;
        };
        if !is_cidr(text.trim()) {
            c.error(
                &item_path,
                format!(
                    "invalid value {text:?}: must be an IP range in CIDR notation (e.g. \
                     192.168.0.0/16)"
                ),
            );
        }
    }
}

/// `address/prefix`, the prefix in decimal digits and no longer than the address.
/// Host bits may be set (`10.0.0.1/8`), as Go's CIDR parser allows.
fn is_cidr(text: &str) -> bool {
    let Some((address, prefix)) = text.split_once('/') else {
        return false;
    };
    let digits =
        !prefix.is_empty() && prefix.len() <= 3 && prefix.bytes().all(|b| b.is_ascii_digit());
    let (Ok(address), Ok(prefix), true) = (address.parse::<IpAddr>(), prefix.parse::<u8>(), digits)
    else {
        return false;
    };
    let bits = match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    prefix <= bits
}

#[cfg(test)]
mod tests {
    use super::is_cidr;

    #[test]
    fn cidr_notation() {
        for good in [
            "10.0.0.0/8",
            "0.0.0.0/0",
            "192.168.1.5/24",
            "2001:db8::/32",
            "::/0",
        ] {
            assert!(is_cidr(good), "{good}");
        }
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0.0/+8",
            "10.0.0.0/",
            "::/129",
            "a.b.c.d/8",
            "10.0.0/8",
            "/8",
            "10.0.0.0/0008",
        ] {
            assert!(!is_cidr(bad), "{bad}");
        }
    }
}
