//! The tables of the kinds berth stores without acting on them, with kubectl's columns:
//! ServiceAccounts, Ingresses, IngressClasses, NetworkPolicies, HorizontalPodAutoscalers
//! and PodDisruptionBudgets. Pure.

use serde_json::Value;

use crate::cli::output::{age, at, str_at};

pub(super) const SERVICE_ACCOUNT_COLUMNS: [&str; 3] = ["NAME", "SECRETS", "AGE"];
pub(super) const INGRESS_COLUMNS: [&str; 6] = ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"];
pub(super) const INGRESS_CLASS_COLUMNS: [&str; 4] = ["NAME", "CONTROLLER", "PARAMETERS", "AGE"];
pub(super) const NETWORK_POLICY_COLUMNS: [&str; 3] = ["NAME", "POD-SELECTOR", "AGE"];
pub(super) const AUTOSCALER_COLUMNS: [&str; 7] = [
    "NAME",
    "REFERENCE",
    "TARGETS",
    "MINPODS",
    "MAXPODS",
    "REPLICAS",
    "AGE",
];
pub(super) const DISRUPTION_BUDGET_COLUMNS: [&str; 5] = [
    "NAME",
    "MIN AVAILABLE",
    "MAX UNAVAILABLE",
    "ALLOWED DISRUPTIONS",
    "AGE",
];

fn name_and_age(item: &Value) -> (String, String) {
    (
        str_at(item, &["metadata", "name"]).to_owned(),
        age(str_at(item, &["metadata", "creationTimestamp"])),
    )
}

pub(super) fn service_account_row(item: &Value) -> Vec<String> {
    let (name, age) = name_and_age(item);
    let secrets = at(item, &["secrets"]).as_array().map_or(0, Vec::len);
    vec![name, secrets.to_string(), age]
}

/// kubectl's HOSTS: the rules' hosts (`*` for a rule without one); ADDRESS stays empty
/// (no controller gives one); PORTS is `80`, or `80, 443` with TLS.
pub(super) fn ingress_row(item: &Value) -> Vec<String> {
    let (name, age) = name_and_age(item);
    let class = match str_at(item, &["spec", "ingressClassName"]) {
        "" => "<none>".to_owned(),
        class => class.to_owned(),
    };
    let rules = at(item, &["spec", "rules"]).as_array();
    let mut hosts: Vec<&str> = rules
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|rule| match str_at(rule, &["host"]) {
            "" => "*",
            host => host,
        })
        .collect();
    hosts.dedup();
    if hosts.is_empty() {
        hosts.push("*");
    }
    let tls = at(item, &["spec", "tls"])
        .as_array()
        .is_some_and(|tls| !tls.is_empty());
    let ports = if tls { "80, 443" } else { "80" };
    vec![
        name,
        class,
        hosts.join(","),
        String::new(),
        ports.to_owned(),
        age,
    ]
}

pub(super) fn ingress_class_row(item: &Value) -> Vec<String> {
    let (name, age) = name_and_age(item);
    let parameters = at(item, &["spec", "parameters"]);
    let parameters = if parameters.is_object() {
        let group = str_at(parameters, &["apiGroup"]);
        let kind = str_at(parameters, &["kind"]);
        let kind = if group.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}.{group}")
        };
        format!("{kind}/{}", str_at(parameters, &["name"]))
    } else {
        "<none>".to_owned()
    };
    vec![
        name,
        str_at(item, &["spec", "controller"]).to_owned(),
        parameters,
        age,
    ]
}

pub(super) fn network_policy_row(item: &Value) -> Vec<String> {
    let (name, age) = name_and_age(item);
    vec![
        name,
        label_selector_text(at(item, &["spec", "podSelector"])),
        age,
    ]
}

/// kubectl's TARGETS: each metric's current value (always `<unknown>`: nothing measures)
/// over its target, `cpu: <unknown>/50%` for a resource's utilization.
pub(super) fn autoscaler_row(item: &Value) -> Vec<String> {
    let (name, age) = name_and_age(item);
    let target = at(item, &["spec", "scaleTargetRef"]);
    let reference = format!(
        "{}/{}",
        str_at(target, &["kind"]),
        str_at(target, &["name"])
    );
    let metrics = at(item, &["spec", "metrics"]).as_array();
    let targets: Vec<String> = metrics
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(metric_target_text)
        .collect();
    let targets = if targets.is_empty() {
        "<none>".to_owned()
    } else {
        targets.join(", ")
    };
    let count = |key: &str| match at(item, &["spec", key]) {
        Value::Number(n) => n.to_string(),
        _ => "<unset>".to_owned(),
    };
    let replicas = at(item, &["status", "currentReplicas"])
        .as_i64()
        .unwrap_or(0);
    vec![
        name,
        reference,
        targets,
        count("minReplicas"),
        count("maxReplicas"),
        replicas.to_string(),
        age,
    ]
}

fn metric_target_text(metric: &Value) -> String {
    let member = match str_at(metric, &["type"]) {
        "Resource" => "resource",
        "ContainerResource" => "containerResource",
        "Pods" => "pods",
        "Object" => "object",
        _ => "external",
    };
    let source = at(metric, &[member]);
    let target = at(source, &["target"]);
    let goal = match str_at(target, &["type"]) {
        "Utilization" => format!("{}%", at(target, &["averageUtilization"])),
        "Value" => json_text(at(target, &["value"])),
        _ => format!("{} (avg)", json_text(at(target, &["averageValue"]))),
    };
    let prefix = match str_at(source, &["name"]) {
        "" => String::new(),
        name => format!("{name}: "),
    };
    format!("{prefix}<unknown>/{goal}")
}

fn json_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

pub(super) fn disruption_budget_row(item: &Value) -> Vec<String> {
    let (name, age) = name_and_age(item);
    let amount = |key: &str| match at(item, &["spec", key]) {
        Value::Null => "N/A".to_owned(),
        value => json_text(value),
    };
    let allowed = at(item, &["status", "disruptionsAllowed"])
        .as_i64()
        .unwrap_or(0);
    vec![
        name,
        amount("minAvailable"),
        amount("maxUnavailable"),
        allowed.to_string(),
        age,
    ]
}

/// A label selector as kubectl prints it: `app=web,tier in (a,b)`, `<none>` when empty.
pub(crate) fn label_selector_text(selector: &Value) -> String {
    let labels = super::service::selector_text(at(selector, &["matchLabels"]));
    let mut parts: Vec<String> = Vec::new();
    if labels != "<none>" {
        parts.push(labels);
    }
    for expression in at(selector, &["matchExpressions"])
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let key = str_at(expression, &["key"]);
        let values: Vec<&str> = at(expression, &["values"])
            .as_array()
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        parts.push(match str_at(expression, &["operator"]) {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_owned(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other}"),
        });
    }
    if parts.is_empty() {
        "<none>".to_owned()
    } else {
        parts.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_read_as_kubectl_shows_them() {
        let ingress = json!({
            "metadata": {"name": "web"},
            "spec": {
                "ingressClassName": "nginx",
                "tls": [{"hosts": ["a.example"], "secretName": "tls"}],
                "rules": [{"host": "a.example"}, {"http": {}}],
            },
        });
        assert_eq!(
            &ingress_row(&ingress)[..5],
            ["web", "nginx", "a.example,*", "", "80, 443"]
        );
        let policy = json!({
            "metadata": {"name": "deny"},
            "spec": {"podSelector": {}},
        });
        assert_eq!(&network_policy_row(&policy)[..2], ["deny", "<none>"]);
        let selector = json!({
            "matchLabels": {"app": "db"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}],
        });
        assert_eq!(label_selector_text(&selector), "app=db,tier in (a,b)");
        let autoscaler = json!({
            "metadata": {"name": "php-apache"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "php-apache"},
                "minReplicas": 1,
                "maxReplicas": 10,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                    {"type": "Pods", "pods": {"metric": {"name": "packets"}, "target": {"type": "AverageValue", "averageValue": "1k"}}},
                ],
            },
        });
        assert_eq!(
            &autoscaler_row(&autoscaler)[..6],
            [
                "php-apache",
                "Deployment/php-apache",
                "cpu: <unknown>/50%, <unknown>/1k (avg)",
                "1",
                "10",
                "0"
            ]
        );
        let budget = json!({"metadata": {"name": "zk-pdb"}, "spec": {"maxUnavailable": 1}});
        assert_eq!(
            &disruption_budget_row(&budget)[..4],
            ["zk-pdb", "N/A", "1", "0"]
        );
        let class = json!({
            "metadata": {"name": "external-lb"},
            "spec": {
                "controller": "example.com/ingress-controller",
                "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"},
            },
        });
        assert_eq!(
            &ingress_class_row(&class)[..3],
            [
                "external-lb",
                "example.com/ingress-controller",
                "IngressParameters.k8s.example.com/external-lb"
            ]
        );
    }
}
