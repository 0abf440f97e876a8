//! `describe` of the kinds berth stores without acting on them, in kubectl's layout.

use serde_json::Value;

use super::super::output::{at, str_at};
use super::super::tables::label_selector_text;
use super::field;
use crate::model::Kind;

pub(super) fn describe_passive(out: &mut String, kind: Kind, object: &Value) {
    match kind {
        Kind::ServiceAccount => {
            let names = |field: &str| {
                let names: Vec<&str> = at(object, &[field])
                    .as_array()
                    .map(|items| items.iter().map(|i| str_at(i, &["name"])).collect())
                    .unwrap_or_default();
                if names.is_empty() {
                    "<none>".to_owned()
                } else {
                    names.join(", ")
                }
            };
            field(out, 0, "Image pull secrets", names("imagePullSecrets"));
            field(out, 0, "Mountable secrets", names("secrets"));
            field(out, 0, "Tokens", "<none>");
        }
        Kind::Ingress => describe_ingress(out, object),
        Kind::IngressClass => {
            field(
                out,
                0,
                "Controller",
                str_at(object, &["spec", "controller"]),
            );
        }
        Kind::NetworkPolicy => {
            out.push_str("Spec:\n");
            let selector = label_selector_text(at(object, &["spec", "podSelector"]));
            let selector = if selector == "<none>" {
                "<none> (Allowing the specific traffic to all pods in this namespace)".to_owned()
            } else {
                selector
            };
            field(out, 2, "PodSelector", selector);
            let types: Vec<&str> = at(object, &["spec", "policyTypes"])
                .as_array()
                .map(|t| t.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            field(out, 2, "Policy Types", types.join(", "));
        }
        Kind::HorizontalPodAutoscaler => {
            let target = at(object, &["spec", "scaleTargetRef"]);
            let kind = str_at(target, &["kind"]);
            let reference = format!("{kind}/{}", str_at(target, &["name"]));
            field(out, 0, "Reference", reference);
            field(out, 0, "Min replicas", at(object, &["spec", "minReplicas"]));
            field(out, 0, "Max replicas", at(object, &["spec", "maxReplicas"]));
            field(out, 0, &format!("{kind} pods"), "0 current / 0 desired");
        }
        Kind::PodDisruptionBudget => {
            let selector = label_selector_text(at(object, &["spec", "selector"]));
            field(out, 0, "Selector", selector);
            for (key, label) in [
                ("minAvailable", "Min available"),
                ("maxUnavailable", "Max unavailable"),
            ] {
                let value = at(object, &["spec", key]);
                if !value.is_null() {
                    field(out, 0, label, value.to_string().trim_matches('"'));
                }
            }
            field(out, 0, "Allowed disruptions", 0);
        }
        _ => {}
    }
}

fn describe_ingress(out: &mut String, ingress: &Value) {
    let class = match str_at(ingress, &["spec", "ingressClassName"]) {
        "" => "<none>",
        class => class,
    };
    field(out, 0, "Ingress Class", class);
    field(out, 0, "Address", "");
    let default = at(ingress, &["spec", "defaultBackend"]);
    let default = if default.is_object() {
        backend_text(default)
    } else {
        "<default>".to_owned()
    };
    field(out, 0, "Default backend", default);
    out.push_str("Rules:\n  Host        Path  Backends\n  ----        ----  --------\n");
    for rule in at(ingress, &["spec", "rules"])
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let host = match str_at(rule, &["host"]) {
            "" => "*",
            host => host,
        };
        out.push_str(&format!("  {host}\n"));
        for path in at(rule, &["http", "paths"])
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            out.push_str(&format!(
                "              {}   {}\n",
                str_at(path, &["path"]),
                backend_text(&path["backend"])
            ));
        }
    }
}

/// `service:port`, or `APIGroup/Kind/name` for a resource backend.
fn backend_text(backend: &Value) -> String {
    let service = &backend["service"];
    if service.is_object() {
        let port = &service["port"];
        let port = match port.get("number").and_then(Value::as_i64) {
            Some(number) => number.to_string(),
            None => str_at(port, &["name"]).to_owned(),
        };
        return format!("{}:{port}", str_at(service, &["name"]));
    }
    let resource = &backend["resource"];
    format!(
        "APIGroup: {}, Kind: {}, Name: {}",
        str_at(resource, &["apiGroup"]),
        str_at(resource, &["kind"]),
        str_at(resource, &["name"])
    )
}
