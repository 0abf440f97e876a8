//! `describe service|endpoints|endpointslice`, laid out as kubectl does: a Service's
//! ports one block each, with the ready endpoints of that port. Pure.

use serde_json::Value;

use super::field;
use crate::cli::output::{at, str_at};
use crate::cli::tables::{ready_endpoints, selector_text};

fn items<'a>(value: &'a Value, path: &[&str]) -> &'a [Value] {
    at(value, path).as_array().map_or(&[], Vec::as_slice)
}

fn or_unset(value: &str) -> &str {
    if value.is_empty() {
        "<unset>"
    } else {
        value
    }
}

fn joined(values: &[Value]) -> String {
    values
        .iter()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// A number or a name, as `targetPort` may be.
fn port_text(value: &Value) -> String {
    match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    }
}

/// The Service part of `describe service`; `endpoints` is the Endpoints object of the
/// same name, if there is one.
pub(super) fn describe_service(out: &mut String, service: &Value, endpoints: Option<&Value>) {
    field(
        out,
        0,
        "Selector",
        selector_text(at(service, &["spec", "selector"])),
    );
    let service_type = str_at(service, &["spec", "type"]);
    field(out, 0, "Type", service_type);
    let policy = str_at(service, &["spec", "ipFamilyPolicy"]);
    if !policy.is_empty() {
        field(out, 0, "IP Family Policy", policy);
    }
    let families = items(service, &["spec", "ipFamilies"]);
    if !families.is_empty() {
        field(out, 0, "IP Families", joined(families));
    }
    field(out, 0, "IP", str_at(service, &["spec", "clusterIP"]));
    let ips = items(service, &["spec", "clusterIPs"]);
    if !ips.is_empty() {
        field(out, 0, "IPs", joined(ips));
    }
    let desired = str_at(service, &["spec", "loadBalancerIP"]);
    if !desired.is_empty() {
        field(out, 0, "Desired LoadBalancer IP", desired);
    }
    let external_name = str_at(service, &["spec", "externalName"]);
    if !external_name.is_empty() {
        field(out, 0, "External Name", external_name);
    }
    describe_ports(out, service, endpoints);
    field(
        out,
        0,
        "Session Affinity",
        str_at(service, &["spec", "sessionAffinity"]),
    );
    let traffic_policy = str_at(service, &["spec", "externalTrafficPolicy"]);
    if !traffic_policy.is_empty() {
        field(out, 0, "External Traffic Policy", traffic_policy);
    }
    let ranges = items(service, &["spec", "loadBalancerSourceRanges"]);
    if !ranges.is_empty() {
        field(out, 0, "LoadBalancer Source Ranges", joined(ranges));
    }
    if at(service, &["spec", "publishNotReadyAddresses"]) == &Value::Bool(true) {
        field(out, 0, "Publish Not Ready Addresses", "true");
    }
}

/// One block per port: the port, its target, its node port if any, its ready endpoints.
fn describe_ports(out: &mut String, service: &Value, endpoints: Option<&Value>) {
    for port in items(service, &["spec", "ports"]) {
        let name = str_at(port, &["name"]);
        let protocol = str_at(port, &["protocol"]);
        let number = at(port, &["port"]).as_i64().unwrap_or(0);
        field(
            out,
            0,
            "Port",
            format!("{}  {number}/{protocol}", or_unset(name)),
        );
        let target = port_text(at(port, &["targetPort"]));
        field(out, 0, "TargetPort", format!("{target}/{protocol}"));
        let node_port = at(port, &["nodePort"]).as_i64().unwrap_or(0);
        if node_port != 0 {
            field(
                out,
                0,
                "NodePort",
                format!("{}  {node_port}/{protocol}", or_unset(name)),
            );
        }
        let shown = match endpoints {
            Some(endpoints) => ready_endpoints(endpoints, Some(name)),
            None => "<none>".to_owned(),
        };
        field(out, 0, "Endpoints", shown);
    }
}

/// One line per address list of each subset, then its ports as a small table.
pub(super) fn describe_endpoints(out: &mut String, endpoints: &Value) {
    out.push_str("Subsets:\n");
    for subset in items(endpoints, &["subsets"]) {
        for (label, key) in [
            ("Addresses", "addresses"),
            ("NotReadyAddresses", "notReadyAddresses"),
        ] {
            let ips: Vec<&str> = items(subset, &[key])
                .iter()
                .map(|address| str_at(address, &["ip"]))
                .collect();
            let shown = if ips.is_empty() {
                "<none>".to_owned()
            } else {
                ips.join(",")
            };
            field(out, 2, label, shown);
        }
        out.push_str("  Ports:\n    Name\tPort\tProtocol\n    ----\t----\t--------\n");
        for port in items(subset, &["ports"]) {
            out.push_str(&format!(
                "    {}\t{}\t{}\n",
                or_unset(str_at(port, &["name"])),
                at(port, &["port"]).as_i64().unwrap_or(0),
                str_at(port, &["protocol"]),
            ));
        }
        out.push('\n');
    }
}

pub(super) fn describe_endpoint_slice(out: &mut String, slice: &Value) {
    field(out, 0, "AddressType", str_at(slice, &["addressType"]));
    out.push_str("Ports:\n  Name\tPort\tProtocol\n  ----\t----\t--------\n");
    for port in items(slice, &["ports"]) {
        let number = at(port, &["port"])
            .as_i64()
            .map_or("<unset>".to_owned(), |n| n.to_string());
        out.push_str(&format!(
            "  {}\t{number}\t{}\n",
            or_unset(str_at(port, &["name"])),
            str_at(port, &["protocol"]),
        ));
    }
    out.push_str("Endpoints:\n");
    for endpoint in items(slice, &["endpoints"]) {
        let addresses = joined(items(endpoint, &["addresses"]));
        out.push_str(&format!("  - Addresses:  {addresses}\n"));
        out.push_str("    Conditions:\n");
        for condition in ["ready", "serving", "terminating"] {
            let value = at(endpoint, &["conditions", condition]);
            let shown = value
                .as_bool()
                .map_or("<unset>".to_owned(), |b| b.to_string());
            let mut label = condition.to_owned();
            label[..1].make_ascii_uppercase();
            field(out, 6, &label, shown);
        }
        field(
            out,
            4,
            "Hostname",
            or_unset(str_at(endpoint, &["hostname"])),
        );
        let target = at(endpoint, &["targetRef"]);
        let target = if target.is_object() {
            format!(
                "{}/{}",
                str_at(target, &["kind"]),
                str_at(target, &["name"])
            )
        } else {
            "<unset>".to_owned()
        };
        field(out, 4, "TargetRef", target);
        field(
            out,
            4,
            "NodeName",
            or_unset(str_at(endpoint, &["nodeName"])),
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::cli::describe::{describe, describe_service};
    use crate::model::Kind;

    #[test]
    fn a_service_is_described_like_kubectl() {
        let service = json!({"metadata": {"name": "web", "namespace": "shop",
            "labels": {"app": "web"}},
            "spec": {"type": "NodePort", "selector": {"app": "web"},
                "clusterIP": "10.43.7.9", "clusterIPs": ["10.43.7.9"],
                "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                "sessionAffinity": "None",
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "web",
                           "nodePort": 30080},
                          {"name": "metrics", "port": 9090, "protocol": "TCP", "targetPort": 9090}]}});
        let endpoints = json!({"subsets": [{"addresses": [{"ip": "10.42.0.5"}, {"ip": "10.42.0.6"}],
            "ports": [{"name": "http", "port": 8080}, {"name": "metrics", "port": 9090}]}]});
        let expected = "\
Name:                   web
Namespace:              shop
Labels:                 app=web
Annotations:            <none>
Selector:               app=web
Type:                   NodePort
IP Family Policy:       SingleStack
IP Families:            IPv4
IP:                     10.43.7.9
IPs:                    10.43.7.9
Port:                   http  80/TCP
TargetPort:             web/TCP
NodePort:               http  30080/TCP
Endpoints:              10.42.0.5:8080,10.42.0.6:8080
Port:                   metrics  9090/TCP
TargetPort:             9090/TCP
Endpoints:              10.42.0.5:9090,10.42.0.6:9090
Session Affinity:       None
";
        assert_eq!(describe_service(&service, Some(&endpoints)), expected);
        let without = describe_service(&service, None);
        assert_eq!(without.matches("Endpoints:              <none>").count(), 2);
    }

    #[test]
    fn a_load_balancer_service_shows_what_it_asks_of_a_load_balancer() {
        let service = json!({"metadata": {"name": "edge", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.43.2.3",
                "loadBalancerIP": "192.0.2.7", "sessionAffinity": "None",
                "externalTrafficPolicy": "Cluster",
                "loadBalancerSourceRanges": ["10.0.0.0/8", "192.168.0.0/16"],
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080,
                           "nodePort": 31234}]}});
        let text = describe(Kind::Service, &service);
        for line in [
            "Type:                   LoadBalancer\nIP:                     10.43.2.3\n\
             Desired LoadBalancer IP:  192.0.2.7\n",
            "NodePort:               <unset>  31234/TCP\n",
            "Session Affinity:       None\nExternal Traffic Policy:  Cluster\n\
             LoadBalancer Source Ranges:  10.0.0.0/8,192.168.0.0/16\n",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
    }

    #[test]
    fn an_external_name_service_names_its_target() {
        let service = json!({"metadata": {"name": "db", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "db.example.com",
                "sessionAffinity": "None"}});
        let text = describe(Kind::Service, &service);
        assert!(
            text.contains("Type:                   ExternalName\n"),
            "{text}"
        );
        assert!(
            text.contains("External Name:          db.example.com\n"),
            "{text}"
        );
        assert!(text.contains("Selector:               <none>\n"), "{text}");
        assert!(!text.contains("CreationTimestamp"), "{text}");
    }

    #[test]
    fn endpoints_and_slices_list_their_addresses_and_ports() {
        let endpoints = json!({"metadata": {"name": "db", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": "192.168.1.50"}],
                "ports": [{"port": 5432, "protocol": "TCP"}]}]});
        let text = describe(Kind::Endpoints, &endpoints);
        assert!(
            text.contains("  Addresses:            192.168.1.50\n"),
            "{text}"
        );
        assert!(text.contains("  NotReadyAddresses:    <none>\n"), "{text}");
        assert!(text.contains("    <unset>\t5432\tTCP\n"), "{text}");
        let slice = json!({"metadata": {"name": "web-x", "namespace": "default"},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.42.0.5"], "conditions": {"ready": true},
                "nodeName": "pi-1", "targetRef": {"kind": "Pod", "name": "web-1"}}]});
        let text = describe(Kind::EndpointSlice, &slice);
        for line in [
            "AddressType:            IPv4\n",
            "  http\t80\tTCP\n",
            "  - Addresses:  10.42.0.5\n",
            "      Ready:            true\n",
            "      Serving:          <unset>\n",
            "    TargetRef:          Pod/web-1\n",
            "    NodeName:           pi-1\n",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
    }
}
