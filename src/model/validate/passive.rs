//! Validation of the kinds berth stores without acting on them (`model::passive`):
//! ServiceAccount, Ingress, IngressClass and NetworkPolicy, field by field as Kubernetes
//! validates them, so a manifest with a mistake is refused here as a cluster would.

use serde_json::Value;

use super::checker::{get, index, join, Checker, JsonObject};
use super::pod_affinity::check_pod_selector;
use super::service::check_target_port;
use crate::model::{is_dns1123_label, is_dns1123_subdomain, Ipv4Cidr};

pub(super) const SERVICE_ACCOUNT_FIELDS: [&str; 6] = [
    "apiVersion",
    "kind",
    "metadata",
    "secrets",
    "imagePullSecrets",
    "automountServiceAccountToken",
];

pub(super) fn check_service_account(c: &mut Checker, top: &JsonObject) {
    for field in ["secrets", "imagePullSecrets"] {
        c.each_in(top, field, "", |c, item, path| {
            if let Some(reference) = c.object(item, path) {
                // `secrets` entries are object references; only the name matters here.
                c.only_fields(
                    reference,
                    path,
                    &["name", "namespace", "kind", "apiVersion", "uid"],
                );
                check_name(c, reference, path, true);
            }
        });
    }
    if let Some(value) = get(top, "automountServiceAccountToken") {
        c.boolean(value, "automountServiceAccountToken");
    }
}

/// A `name` that must be a DNS subdomain (`label` false) or label.
fn check_name(c: &mut Checker, object: &JsonObject, path: &str, required: bool) {
    let name_path = join(path, "name");
    let Some(value) = get(object, "name") else {
        if required {
            c.required(&name_path);
        }
        return;
    };
    if let Some(name) = c.string(value, &name_path) {
        if !is_dns1123_subdomain(name) {
            c.error(
                &name_path,
                format!("invalid name {name:?}: must be a lowercase RFC 1123 subdomain"),
            );
        }
    }
}

pub(super) fn check_ingress_spec(c: &mut Checker, value: Option<&Value>) {
    let Some(spec) = value.and_then(|v| c.object(v, "spec")) else {
        c.required("spec");
        return;
    };
    c.only_fields(
        spec,
        "spec",
        &["ingressClassName", "defaultBackend", "tls", "rules"],
    );
    if let Some(value) = get(spec, "ingressClassName") {
        if let Some(name) = c.string(value, "spec.ingressClassName") {
            if !is_dns1123_subdomain(name) {
                c.error(
                    "spec.ingressClassName",
                    format!("invalid name {name:?}: must be a lowercase RFC 1123 subdomain"),
                );
            }
        }
    }
    if let Some(value) = get(spec, "defaultBackend") {
        check_backend(c, value, "spec.defaultBackend");
    }
    if let Some(value) = get(spec, "tls") {
        check_ingress_tls(c, value);
    }
    let rules = get(spec, "rules").and_then(|v| c.list(v, "spec.rules"));
    if rules.is_none_or(|rules| rules.is_empty()) && get(spec, "defaultBackend").is_none() {
        c.error(
            "spec",
            "either `defaultBackend` or `rules` must be specified",
        );
    }
    for (i, rule) in rules.into_iter().flatten().enumerate() {
        check_ingress_rule(c, rule, &index("spec.rules", i));
    }
}

fn check_ingress_tls(c: &mut Checker, value: &Value) {
    let Some(items) = c.list(value, "spec.tls") else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let path = index("spec.tls", i);
        let Some(tls) = c.object(item, &path) else {
            continue;
        };
        c.only_fields(tls, &path, &["hosts", "secretName"]);
        c.each_in(tls, "hosts", &path, check_host);
        if let Some(value) = get(tls, "secretName") {
            c.string(value, &join(&path, "secretName"));
        }
    }
}

/// A host name, possibly with one leading wildcard label (`*.example.com`); never an IP.
fn check_host(c: &mut Checker, value: &Value, path: &str) {
    let Some(host) = c.string(value, path) else {
        return;
    };
    if host.parse::<std::net::IpAddr>().is_ok() {
        c.error(
            path,
            format!("invalid value {host:?}: must be a DNS name, not an IP address"),
        );
        return;
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    if !is_dns1123_subdomain(name) {
        c.error(
            path,
            format!(
                "invalid value {host:?}: a lowercase RFC 1123 subdomain, optionally with a \
                 leading `*.` wildcard"
            ),
        );
    }
}

fn check_ingress_rule(c: &mut Checker, value: &Value, path: &str) {
    let Some(rule) = c.object(value, path) else {
        return;
    };
    c.only_fields(rule, path, &["host", "http"]);
    if let Some(host) = get(rule, "host") {
        check_host(c, host, &join(path, "host"));
    }
    let Some(http) = get(rule, "http") else {
        return;
    };
    let http_path = join(path, "http");
    let Some(http) = c.object(http, &http_path) else {
        return;
    };
    c.only_fields(http, &http_path, &["paths"]);
    if c.required_field(http, &http_path, "paths").is_some() {
        c.each_in(http, "paths", &http_path, check_ingress_path);
    }
}

fn check_ingress_path(c: &mut Checker, value: &Value, path: &str) {
    let Some(item) = c.object(value, path) else {
        return;
    };
    c.only_fields(item, path, &["path", "pathType", "backend"]);
    let path_type = match get(item, "pathType") {
        None => {
            c.required(&join(path, "pathType"));
            None
        }
        Some(value) => c.one_of(
            value,
            &join(path, "pathType"),
            &["Exact", "Prefix", "ImplementationSpecific"],
        ),
    };
    if let Some(value) = get(item, "path") {
        let text = c.string(value, &join(path, "path"));
        let absolute = text.is_some_and(|p| p.starts_with('/'));
        if matches!(path_type, Some("Exact" | "Prefix")) && text.is_some() && !absolute {
            c.error(&join(path, "path"), "must be an absolute path");
        }
    }
    match get(item, "backend") {
        None => c.required(&join(path, "backend")),
        Some(backend) => check_backend(c, backend, &join(path, "backend")),
    }
}

/// An Ingress backend: a Service and its port (by number or name), or a resource.
fn check_backend(c: &mut Checker, value: &Value, path: &str) {
    let Some(backend) = c.object(value, path) else {
        return;
    };
    c.only_fields(backend, path, &["service", "resource"]);
    match (get(backend, "service"), get(backend, "resource")) {
        (Some(_), Some(_)) | (None, None) => {
            c.error(
                path,
                "exactly one of `service` or `resource` must be specified",
            );
        }
        (Some(service), None) => check_service_backend(c, service, &join(path, "service")),
        (None, Some(resource)) => {
            let resource_path = join(path, "resource");
            if let Some(reference) = c.object(resource, &resource_path) {
                c.only_fields(reference, &resource_path, &["apiGroup", "kind", "name"]);
                for field in ["kind", "name"] {
                    if let Some(value) = c.required_field(reference, &resource_path, field) {
                        c.string(value, &join(&resource_path, field));
                    }
                }
            }
        }
    }
}

fn check_service_backend(c: &mut Checker, value: &Value, path: &str) {
    let Some(service) = c.object(value, path) else {
        return;
    };
    c.only_fields(service, path, &["name", "port"]);
    if let Some(value) = c.required_field(service, path, "name") {
        if let Some(name) = c.string(value, &join(path, "name")) {
            if !is_dns1123_label(name) {
                c.error(
                    &join(path, "name"),
                    format!("invalid name {name:?}: must be a lowercase RFC 1123 label"),
                );
            }
        }
    }
    let port_path = join(path, "port");
    let Some(port) = c
        .required_field(service, path, "port")
        .and_then(|v| c.object(v, &port_path))
    else {
        return;
    };
    c.only_fields(port, &port_path, &["name", "number"]);
    match (get(port, "name"), get(port, "number")) {
        (Some(_), Some(_)) | (None, None) => c.error(
            &port_path,
            "exactly one of `name` or `number` must be specified",
        ),
        (Some(name), None) => check_target_port(c, name, &join(&port_path, "name")),
        (None, Some(number)) => {
            c.integer_in(number, &join(&port_path, "number"), 1, 65535);
        }
    }
}

pub(super) fn check_ingress_class_spec(c: &mut Checker, value: Option<&Value>) {
    let Some(spec) = value.and_then(|v| c.object(v, "spec")) else {
        return;
    };
    c.only_fields(spec, "spec", &["controller", "parameters"]);
    if let Some(value) = get(spec, "controller") {
        c.string(value, "spec.controller");
    }
    let Some(value) = get(spec, "parameters") else {
        return;
    };
    let path = "spec.parameters";
    let Some(parameters) = c.object(value, path) else {
        return;
    };
    c.only_fields(
        parameters,
        path,
        &["apiGroup", "kind", "name", "namespace", "scope"],
    );
    for field in ["kind", "name"] {
        if let Some(value) = c.required_field(parameters, path, field) {
            c.string(value, &join(path, field));
        }
    }
    if let Some(value) = get(parameters, "scope") {
        c.one_of(value, &join(path, "scope"), &["Cluster", "Namespace"]);
    }
}

pub(super) fn check_network_policy_spec(c: &mut Checker, value: Option<&Value>) {
    let Some(spec) = value.and_then(|v| c.object(v, "spec")) else {
        c.required("spec");
        return;
    };
    c.only_fields(
        spec,
        "spec",
        &["podSelector", "policyTypes", "ingress", "egress"],
    );
    match get(spec, "podSelector") {
        Some(selector) => check_pod_selector(c, selector, "spec.podSelector"),
        None => c.required("spec.podSelector"),
    }
    c.each_in(spec, "policyTypes", "spec", |c, item, path| {
        c.one_of(item, path, &["Ingress", "Egress"]);
    });
    for (direction, peers) in [("ingress", "from"), ("egress", "to")] {
        c.each_in(spec, direction, "spec", |c, item, rule_path| {
            let Some(rule) = c.object(item, rule_path) else {
                return;
            };
            c.only_fields(rule, rule_path, &[peers, "ports"]);
            c.each_in(rule, peers, rule_path, check_policy_peer);
            c.each_in(rule, "ports", rule_path, check_policy_port);
        });
    }
}

/// Pods (by pod and namespace selectors) or an IP block, not both.
fn check_policy_peer(c: &mut Checker, value: &Value, path: &str) {
    let Some(peer) = c.object(value, path) else {
        return;
    };
    c.only_fields(peer, path, &["podSelector", "namespaceSelector", "ipBlock"]);
    let selectors = ["podSelector", "namespaceSelector"]
        .into_iter()
        .filter(|field| get(peer, field).is_some())
        .count();
    match get(peer, "ipBlock") {
        Some(_) if selectors > 0 => c.error(
            path,
            "may not specify more than 1 peer type: ipBlock with podSelector or namespaceSelector",
        ),
        Some(block) => check_ip_block(c, block, &join(path, "ipBlock")),
        None if selectors == 0 => c.error(path, "must specify a peer"),
        None => {}
    }
    for field in ["podSelector", "namespaceSelector"] {
        if let Some(selector) = get(peer, field) {
            check_pod_selector(c, selector, &join(path, field));
        }
    }
}

fn check_ip_block(c: &mut Checker, value: &Value, path: &str) {
    let Some(block) = c.object(value, path) else {
        return;
    };
    c.only_fields(block, path, &["cidr", "except"]);
    let check_cidr = |c: &mut Checker, value: &Value, path: &str| {
        let text = c.string(value, path)?;
        // Dual-stack clusters accept IPv6 blocks; berth's pod network is IPv4 only.
        match text.parse::<Ipv4Cidr>() {
            Ok(cidr) => Some(cidr),
            Err(_) => {
                c.error(
                    path,
                    format!("invalid CIDR {text:?}: an IPv4 network such as 10.0.0.0/8"),
                );
                None
            }
        }
    };
    let cidr = c
        .required_field(block, path, "cidr")
        .and_then(|v| check_cidr(c, v, &join(path, "cidr")));
    let Some(value) = get(block, "except") else {
        return;
    };
    let except_path = join(path, "except");
    for (i, item) in c
        .list(value, &except_path)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let item_path = index(&except_path, i);
        if let (Some(inner), Some(outer)) = (check_cidr(c, item, &item_path), &cidr) {
            if !outer.covers(&inner) || inner.prefix() <= outer.prefix() {
                c.error(&item_path, "must be a strict subset of `cidr`");
            }
        }
    }
}

fn check_policy_port(c: &mut Checker, value: &Value, path: &str) {
    let Some(port) = c.object(value, path) else {
        return;
    };
    c.only_fields(port, path, &["protocol", "port", "endPort"]);
    if let Some(value) = get(port, "protocol") {
        c.one_of(value, &join(path, "protocol"), &["TCP", "UDP", "SCTP"]);
    }
    let number = get(port, "port").and_then(|value| {
        check_target_port(c, value, &join(path, "port"));
        value.as_i64()
    });
    if let Some(value) = get(port, "endPort") {
        let end = c.integer_in(value, &join(path, "endPort"), 1, 65535);
        match (number, end) {
            (None, _) => c.error(
                &join(path, "endPort"),
                "may not be specified without a numeric `port`",
            ),
            (Some(start), Some(end)) if end < start => c.error(
                &join(path, "endPort"),
                "must be greater than or equal to `port`",
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{parse_manifests, Kind};

    fn errors(yaml: &str) -> String {
        match parse_manifests(yaml) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn documentation_style_objects_are_accepted() {
        let yaml = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: fanout}
spec:
  ingressClassName: nginx
  tls: [{hosts: [foo.example.com], secretName: tls}]
  rules:
  - host: '*.example.com'
    http:
      paths:
      - {path: /foo, pathType: Prefix, backend: {service: {name: svc1, port: {number: 4200}}}}
      - {path: /bar, pathType: ImplementationSpecific, backend: {service: {name: svc2, port: {name: http}}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: test}
spec:
  podSelector: {matchLabels: {role: db}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - ipBlock: {cidr: 172.17.0.0/16, except: [172.17.1.0/24]}
    - namespaceSelector: {matchLabels: {project: myproject}}
      podSelector: {matchLabels: {role: frontend}}
    ports: [{protocol: TCP, port: 6379}]
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/24}}]
    ports: [{protocol: TCP, port: 32000, endPort: 32768}]
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: external-lb}
spec:
  controller: example.com/ingress-controller
  parameters: {apiGroup: k8s.example.com, kind: IngressParameters, name: external-lb}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: build-robot}
automountServiceAccountToken: false
imagePullSecrets: [{name: registry}]
";
        let kinds: Vec<Kind> = parse_manifests(yaml)
            .expect("valid")
            .iter()
            .map(|o| o.kind())
            .collect();
        assert_eq!(
            kinds,
            [
                Kind::Ingress,
                Kind::NetworkPolicy,
                Kind::IngressClass,
                Kind::ServiceAccount
            ]
        );
    }

    #[test]
    fn mistakes_are_named_by_field() {
        let found = errors(
            "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bad}
spec:
  rules:
  - host: 10.0.0.1
    http:
      paths:
      - {path: foo, pathType: Prefix, backend: {service: {name: svc, port: {number: 0}}}}
      - {path: /, backend: {service: {name: svc, port: {name: http, number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad}
spec:
  podSelector: {}
  policyTypes: [Sideways]
  ingress:
  - from:
    - ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}
    - ipBlock: {cidr: 10.0.0.0/8}
      podSelector: {}
    ports: [{port: 80, endPort: 79}]
",
        );
        for expected in [
            "spec.rules[0].host: invalid value \"10.0.0.1\": must be a DNS name",
            "spec.rules[0].http.paths[0].path: must be an absolute path",
            "spec.rules[0].http.paths[0].backend.service.port.number: must be between 1 and 65535",
            "spec.rules[0].http.paths[1].pathType: required value",
            "spec.rules[0].http.paths[1].backend.service.port: exactly one of `name` or `number`",
            "spec.policyTypes[0]: unsupported value \"Sideways\"",
            "spec.ingress[0].from[1]: may not specify more than 1 peer type",
            "spec.ingress[0].from[0].ipBlock.except[0]: must be a strict subset of `cidr`",
            "spec.ingress[0].ports[0].endPort: must be greater than or equal to `port`",
        ] {
            assert!(found.contains(expected), "{expected} not in\n{found}");
        }
    }
}
