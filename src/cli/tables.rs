//! kubectl's tables: the columns of each type and one row per object. Pure.

use serde_json::Value;

use super::output::{age, at, int_at, pod_status_column, str_at};
use super::resource::{name_cell, Resource};
use crate::model::Kind;

mod claim;
pub(crate) mod event;
mod job;
mod passive;
mod quota;
mod service;
mod workload;
pub(crate) use claim::{access_modes_text, claim_status};
pub(crate) use passive::label_selector_text;
pub(crate) use service::{ready_endpoints, selector_text};

/// The header of a table of `resource`, with `NAMESPACE` first for namespaced types
/// when several namespaces are shown.
pub fn header(resource: Resource, wide: bool, with_namespace: bool) -> Vec<&'static str> {
    let mut header: Vec<&'static str> = Vec::new();
    if with_namespace && resource.namespaced() {
        header.push("NAMESPACE");
    }
    let columns: &[&'static str] = match (resource, wide) {
        (Resource::Kind(Kind::Pod), false) => &["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        (Resource::Kind(Kind::Pod), true) => {
            &["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
        }
        (Resource::Kind(Kind::Deployment), wide) => workload::deployment_columns(wide),
        (Resource::Kind(Kind::ReplicaSet | Kind::ReplicationController), wide) => {
            workload::replica_set_columns(wide)
        }
        (Resource::Kind(Kind::DaemonSet), wide) => workload::daemon_set_columns(wide),
        (Resource::Kind(Kind::StatefulSet), wide) => workload::stateful_set_columns(wide),
        (Resource::Kind(Kind::ControllerRevision), _) => &["NAME", "CONTROLLER", "REVISION", "AGE"],
        (Resource::Kind(Kind::Namespace), _) => &["NAME", "STATUS", "AGE"],
        (Resource::Kind(Kind::PriorityClass), _) => &["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE"],
        (Resource::Kind(Kind::ConfigMap), _) => &["NAME", "DATA", "AGE"],
        (Resource::Kind(Kind::Secret), _) => &["NAME", "TYPE", "DATA", "AGE"],
        (Resource::Kind(Kind::PersistentVolumeClaim), _) => &claim::CLAIM_COLUMNS,
        (Resource::Kind(Kind::Service), wide) => service::service_columns(wide),
        (Resource::Kind(Kind::Endpoints), _) => &service::ENDPOINTS_COLUMNS,
        (Resource::Kind(Kind::EndpointSlice), _) => &service::ENDPOINT_SLICE_COLUMNS,
        (Resource::Kind(Kind::ResourceQuota), _) => &quota::RESOURCE_QUOTA_COLUMNS,
        (Resource::Kind(Kind::LimitRange), _) => &quota::LIMIT_RANGE_COLUMNS,
        (Resource::Kind(Kind::Job), wide) => job::job_columns(wide),
        (Resource::Kind(Kind::ServiceAccount), _) => &passive::SERVICE_ACCOUNT_COLUMNS,
        (Resource::Kind(Kind::Ingress), _) => &passive::INGRESS_COLUMNS,
        (Resource::Kind(Kind::IngressClass), _) => &passive::INGRESS_CLASS_COLUMNS,
        (Resource::Kind(Kind::NetworkPolicy), _) => &passive::NETWORK_POLICY_COLUMNS,
        (Resource::Kind(Kind::HorizontalPodAutoscaler), _) => &passive::AUTOSCALER_COLUMNS,
        (Resource::Kind(Kind::PodDisruptionBudget), _) => &passive::DISRUPTION_BUDGET_COLUMNS,
        (Resource::Kind(Kind::CronJob), wide) => job::cron_job_columns(wide),
        (Resource::Node, false) => &["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        (Resource::Node, true) => &[
            "NAME",
            "STATUS",
            "ROLES",
            "AGE",
            "VERSION",
            "INTERNAL-IP",
            "EXTERNAL-IP",
            "ARCH",
            "OS-IMAGE",
            "KERNEL-VERSION",
            "INSTANCE-TYPE",
        ],
        (Resource::Event, wide) => event::event_columns(wide),
        (Resource::Coordinator, _) => &["NAME", "URL", "LEADER", "LEADER-SINCE", "STORE", "AGE"],
    };
    header.extend_from_slice(columns);
    header
}

/// One object's row under [`header`]; `show_kind` writes the name as `pod/NAME`.
pub fn row(
    resource: Resource,
    item: &Value,
    wide: bool,
    with_namespace: bool,
    show_kind: bool,
) -> Vec<String> {
    let mut row = Vec::new();
    if with_namespace && resource.namespaced() {
        row.push(str_at(item, &["metadata", "namespace"]).to_owned());
    }
    let mut cells = match resource {
        Resource::Kind(Kind::Pod) => pod_row(item, wide),
        Resource::Kind(Kind::Deployment) => workload::deployment_row(item, wide),
        Resource::Kind(Kind::ReplicaSet) => workload::replica_set_row(item, wide),
        Resource::Kind(Kind::ReplicationController) => {
            workload::replication_controller_row(item, wide)
        }
        Resource::Kind(Kind::DaemonSet) => workload::daemon_set_row(item, wide),
        Resource::Kind(Kind::StatefulSet) => workload::stateful_set_row(item, wide),
        Resource::Kind(Kind::ControllerRevision) => workload::controller_revision_row(item),
        Resource::Kind(Kind::Namespace) => namespace_row(item),
        Resource::Kind(Kind::PriorityClass) => priority_class_row(item),
        Resource::Kind(Kind::ConfigMap) => config_map_row(item),
        Resource::Kind(Kind::Secret) => secret_row(item),
        Resource::Kind(Kind::PersistentVolumeClaim) => claim::claim_row(item),
        Resource::Kind(Kind::Service) => service::service_row(item, wide),
        Resource::Kind(Kind::Endpoints) => service::endpoints_row(item),
        Resource::Kind(Kind::EndpointSlice) => service::endpoint_slice_row(item),
        Resource::Kind(Kind::ResourceQuota) => quota::resource_quota_row(item),
        Resource::Kind(Kind::LimitRange) => quota::limit_range_row(item),
        Resource::Kind(Kind::Job) => job::job_row(item, wide, std::time::SystemTime::now()),
        Resource::Kind(Kind::ServiceAccount) => passive::service_account_row(item),
        Resource::Kind(Kind::Ingress) => passive::ingress_row(item),
        Resource::Kind(Kind::IngressClass) => passive::ingress_class_row(item),
        Resource::Kind(Kind::NetworkPolicy) => passive::network_policy_row(item),
        Resource::Kind(Kind::HorizontalPodAutoscaler) => passive::autoscaler_row(item),
        Resource::Kind(Kind::PodDisruptionBudget) => passive::disruption_budget_row(item),
        Resource::Kind(Kind::CronJob) => job::cron_job_row(item, wide),
        Resource::Node => node_row(item, wide),
        Resource::Event => event::event_row(item, wide, std::time::SystemTime::now()),
        Resource::Coordinator => coordinator_row(item),
    };
    // An event's row starts with when it was seen: its object is in a column of its own.
    if let (Some(name), false) = (cells.first_mut(), resource == Resource::Event) {
        *name = name_cell(resource, name, show_kind);
    }
    row.extend(cells);
    row
}

/// Number of entries across the given maps of an object (kubectl's DATA column).
fn entry_count(item: &Value, maps: &[&str]) -> usize {
    maps.iter()
        .filter_map(|m| item.get(*m).and_then(Value::as_object))
        .map(|m| m.len())
        .sum()
}

fn config_map_row(item: &Value) -> Vec<String> {
    vec![
        str_at(item, &["metadata", "name"]).to_owned(),
        entry_count(item, &["data", "binaryData"]).to_string(),
        age(str_at(item, &["metadata", "creationTimestamp"])),
    ]
}

fn secret_row(item: &Value) -> Vec<String> {
    vec![
        str_at(item, &["metadata", "name"]).to_owned(),
        str_at(item, &["type"]).to_owned(),
        entry_count(item, &["data"]).to_string(),
        age(str_at(item, &["metadata", "creationTimestamp"])),
    ]
}

fn pod_row(pod: &Value, wide: bool) -> Vec<String> {
    let list = |path: &[&str]| at(pod, path).as_array().cloned().unwrap_or_default();
    let statuses = list(&["status", "containerStatuses"]);
    let init_statuses = list(&["status", "initContainerStatuses"]);
    let is_ready = |s: &&Value| s.get("ready") == Some(&Value::Bool(true));
    // Sidecars (init containers that restart Always) count as kubectl counts them.
    let sidecars: Vec<&Value> = list(&["spec", "initContainers"])
        .iter()
        .zip(&init_statuses)
        .filter(|(spec, _)| str_at(spec, &["restartPolicy"]) == "Always")
        .map(|(_, status)| status)
        .collect();
    let total = list(&["spec", "containers"]).len() + sidecars.len();
    let ready = statuses.iter().filter(is_ready).count()
        + sidecars.iter().copied().filter(is_ready).count();
    let restarts: i64 = statuses
        .iter()
        .chain(&init_statuses)
        .map(|s| int_at(s, &["restartCount"]))
        .sum();
    let mut row = vec![
        str_at(pod, &["metadata", "name"]).to_owned(),
        format!("{ready}/{total}"),
        pod_status_column(pod),
        restarts.to_string(),
        age(str_at(pod, &["metadata", "creationTimestamp"])),
    ];
    if wide {
        row.push(none_if_empty(str_at(pod, &["status", "podIP"])));
        row.push(none_if_empty(str_at(pod, &["spec", "nodeName"])));
    }
    row
}

fn namespace_row(ns: &Value) -> Vec<String> {
    let phase = str_at(ns, &["status", "phase"]);
    vec![
        str_at(ns, &["metadata", "name"]).to_owned(),
        if phase.is_empty() {
            "Active".to_owned()
        } else {
            phase.to_owned()
        },
        age(str_at(ns, &["metadata", "creationTimestamp"])),
    ]
}

/// kubectl's GLOBAL-DEFAULT is the field as a word, `false` when it is left out.
fn priority_class_row(class: &Value) -> Vec<String> {
    let global_default = at(class, &["globalDefault"]).as_bool().unwrap_or(false);
    vec![
        str_at(class, &["metadata", "name"]).to_owned(),
        int_at(class, &["value"]).to_string(),
        global_default.to_string(),
        age(str_at(class, &["metadata", "creationTimestamp"])),
    ]
}

fn none_if_empty(s: &str) -> String {
    if s.is_empty() {
        "<none>".to_owned()
    } else {
        s.to_owned()
    }
}

/// `Ready`, `NotReady` or `Unknown`, with `,SchedulingDisabled` when cordoned.
fn node_row(node: &Value, wide: bool) -> Vec<String> {
    let ready = at(node, &["status", "conditions"])
        .as_array()
        .and_then(|c| c.iter().find(|c| str_at(c, &["type"]) == "Ready"))
        .map(|c| str_at(c, &["status"]).to_owned())
        .unwrap_or_default();
    let mut status = match ready.as_str() {
        "True" => "Ready".to_owned(),
        "False" => "NotReady".to_owned(),
        _ => "Unknown".to_owned(),
    };
    if at(node, &["spec", "unschedulable"]) == &Value::Bool(true) {
        status.push_str(",SchedulingDisabled");
    }
    let mut row = vec![
        str_at(node, &["metadata", "name"]).to_owned(),
        status,
        "<none>".to_owned(),
        age(str_at(node, &["metadata", "creationTimestamp"])),
        str_at(node, &["status", "nodeInfo", "kubeletVersion"]).to_owned(),
    ];
    if wide {
        let label = |key: &str| {
            at(node, &["metadata", "labels"])
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("<none>")
                .to_owned()
        };
        row.push(node_address(node, "InternalIP"));
        row.push(node_address(node, "ExternalIP"));
        row.push(label("kubernetes.io/arch"));
        row.push(str_at(node, &["status", "nodeInfo", "osImage"]).to_owned());
        row.push(str_at(node, &["status", "nodeInfo", "kernelVersion"]).to_owned());
        row.push(label("node.kubernetes.io/instance-type"));
    }
    row
}

/// The node's first address of `kind` (`status.addresses`), `<none>` without one.
fn node_address(node: &Value, kind: &str) -> String {
    at(node, &["status", "addresses"])
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| str_at(a, &["type"]) == kind)
        .map(|a| str_at(a, &["address"]).to_owned())
        .unwrap_or_else(|| "<none>".to_owned())
}

/// NAME URL LEADER LEADER-SINCE STORE AGE, STORE as `etcd 3/3` healthy members.
fn coordinator_row(item: &Value) -> Vec<String> {
    let leader = item
        .pointer("/status/leader")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let since = str_at(item, &["status", "leaderSince"]);
    let store = item.pointer("/status/store");
    let count = |field: &str| {
        store
            .and_then(|s| s.get(field))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let backend = store
        .and_then(|s| s.get("backend"))
        .and_then(Value::as_str)
        .unwrap_or("<unknown>");
    vec![
        str_at(item, &["metadata", "name"]).to_owned(),
        str_at(item, &["spec", "url"]).to_owned(),
        leader.to_string(),
        if since.is_empty() {
            "<none>".to_owned()
        } else {
            since.to_owned()
        },
        format!("{backend} {}/{}", count("healthy"), count("members")),
        age(str_at(item, &["metadata", "creationTimestamp"])),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_take_their_type_when_asked() {
        let pod = json!({"metadata": {"name": "web-1", "namespace": "shop"},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Running", "containerStatuses": [{"ready": true, "restartCount": 2}]}});
        let resource = Resource::Kind(Kind::Pod);
        assert_eq!(
            header(resource, false, true),
            ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        );
        let cells = row(resource, &pod, false, true, true);
        assert_eq!(cells[..5], ["shop", "pod/web-1", "1/1", "Running", "2"]);
        let cells = row(resource, &pod, false, false, false);
        assert_eq!(cells[0], "web-1");
    }

    #[test]
    fn cluster_scoped_types_have_no_namespace_column() {
        let ns = json!({"metadata": {"name": "team"}, "status": {"phase": "Active"}});
        let resource = Resource::Kind(Kind::Namespace);
        assert_eq!(header(resource, false, true), ["NAME", "STATUS", "AGE"]);
        assert_eq!(
            row(resource, &ns, false, true, true)[..2],
            ["namespace/team", "Active"]
        );
        let node = json!({"metadata": {"name": "pi-1"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
            "spec": {"unschedulable": true}});
        assert_eq!(
            row(Resource::Node, &node, false, true, false)[1],
            "Ready,SchedulingDisabled"
        );
        let deploy = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let cells = row(
            Resource::Kind(Kind::Deployment),
            &deploy,
            false,
            false,
            true,
        );
        assert_eq!(cells[..4], ["deployment.apps/web", "2/3", "3", "2"]);
    }

    #[test]
    fn wide_nodes_show_their_addresses_as_kubectl_does() {
        let node = json!({"metadata": {"name": "pi-1", "labels": {"kubernetes.io/arch": "arm64"}},
            "spec": {"podCIDR": "10.42.1.0/24"},
            "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.11"},
                                     {"type": "Hostname", "address": "pi-1"}],
                       "nodeInfo": {"osImage": "Debian", "kernelVersion": "6.6"}}});
        let header = header(Resource::Node, true, false);
        let cells = row(Resource::Node, &node, true, false, false);
        assert_eq!(header.len(), cells.len());
        let cell = |column: &str| &cells[header.iter().position(|h| *h == column).unwrap()];
        assert_eq!(header[5..7], ["INTERNAL-IP", "EXTERNAL-IP"]);
        assert_eq!(cell("INTERNAL-IP"), "192.168.1.11");
        assert_eq!(cell("EXTERNAL-IP"), "<none>");
        assert_eq!(cell("ARCH"), "arm64");
        let bare = json!({"metadata": {"name": "pi-2"}});
        assert_eq!(row(Resource::Node, &bare, true, false, false)[5], "<none>");
    }
}
