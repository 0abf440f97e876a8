//! `berth describe KIND NAME`: a readable summary of one object, kubectl style, ending
//! with the events the server keeps about it (`events`).

use serde_json::Value;

use super::get::parse_kind;
use super::output::{at, int_at, pod_status_column, str_at};
use super::{call, object_path, GlobalOptions};
use crate::api::ApiError;
use crate::model::Kind;

mod claim;
mod events;
mod passive;
mod pod_volumes;
mod quota;
mod service;
mod workload;

#[derive(clap::Args, Debug)]
pub struct DescribeArgs {
    /// pod, deployment, service, endpoints, endpointslice, namespace, configmap, secret,
    /// resourcequota, limitrange, persistentvolumeclaim, priorityclass or node
    pub kind: String,
    /// Name of the object
    pub name: String,
}

pub fn run(global: &GlobalOptions, args: DescribeArgs) -> anyhow::Result<()> {
    if super::get::is_node_kind(&args.kind) {
        let client = global.client()?;
        let node = call(
            &client,
            "GET",
            &super::get::node_path(Some(&args.name)),
            None,
        )?;
        let mut out = describe_node(&node);
        events::section(&mut out, &events::fetch(&client, "Node", &node)?, now());
        print!("{out}");
        return Ok(());
    }
    let kind = parse_kind(&args.kind)?;
    let client = global.client()?;
    let object = call(
        &client,
        "GET",
        &object_path(kind, global.namespace(), &args.name),
        None,
    )?;
    if kind == Kind::Service {
        // A Service's endpoints are those of the Endpoints object of its name.
        let path = object_path(Kind::Endpoints, global.namespace(), &args.name);
        let endpoints = match client.request("GET", &path, None) {
            Ok((_, endpoints)) => Some(endpoints),
            Err(ApiError::Status { code: 404, .. }) => None,
            Err(err) => return Err(err.into()),
        };
        let mut out = describe_service(&object, endpoints.as_ref());
        events::section(
            &mut out,
            &events::fetch(&client, kind.as_str(), &object)?,
            now(),
        );
        print!("{out}");
        return Ok(());
    }
    let mut out = describe(kind, &object);
    if kind == Kind::PersistentVolumeClaim {
        let path = super::collection_path(Kind::Pod, Some(global.namespace()));
        let pods = call(&client, "GET", &path, None)?;
        let pods = pods["items"].as_array().map(Vec::as_slice);
        claim::describe_claim(&mut out, &object, pods.unwrap_or_default());
    }
    if kind == Kind::Deployment {
        let path = super::collection_path(Kind::ReplicaSet, Some(global.namespace()));
        let sets = call(&client, "GET", &path, None)?;
        workload::replica_sets(
            &mut out,
            &object,
            sets["items"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default(),
        );
    }
    events::section(
        &mut out,
        &events::fetch(&client, kind.as_str(), &object)?,
        now(),
    );
    print!("{out}");
    Ok(())
}

fn now() -> std::time::SystemTime {
    std::time::SystemTime::now()
}

/// `describe service`: with the endpoints of each port, from `endpoints`.
pub fn describe_service(service: &Value, endpoints: Option<&Value>) -> String {
    let mut out = header(Kind::Service, service);
    service::describe_service(&mut out, service, endpoints);
    out
}

fn describe_node(node: &Value) -> String {
    let mut out = String::new();
    field(&mut out, 0, "Name", str_at(node, &["metadata", "name"]));
    field(
        &mut out,
        0,
        "Labels",
        map_lines(at(node, &["metadata", "labels"])),
    );
    field(
        &mut out,
        0,
        "Annotations",
        map_lines(at(node, &["metadata", "annotations"])),
    );
    field(
        &mut out,
        0,
        "CreationTimestamp",
        str_at(node, &["metadata", "creationTimestamp"]),
    );
    field(
        &mut out,
        0,
        "Unschedulable",
        at(node, &["spec", "unschedulable"])
            .as_bool()
            .unwrap_or(false),
    );
    out.push_str("Conditions:\n");
    for condition in at(node, &["status", "conditions"])
        .as_array()
        .into_iter()
        .flatten()
    {
        out.push_str(&format!(
            "  {}  {}  {}  {}  {}\n",
            str_at(condition, &["type"]),
            str_at(condition, &["status"]),
            str_at(condition, &["lastHeartbeatTime"]),
            str_at(condition, &["reason"]),
            str_at(condition, &["message"]),
        ));
    }
    out.push_str("Addresses:\n");
    for address in at(node, &["status", "addresses"])
        .as_array()
        .into_iter()
        .flatten()
    {
        field(
            &mut out,
            2,
            str_at(address, &["type"]),
            str_at(address, &["address"]),
        );
    }
    for section in ["capacity", "allocatable"] {
        let mut title = section.to_owned();
        title[..1].make_ascii_uppercase();
        out.push_str(&format!("{title}:\n"));
        for (key, value) in at(node, &["status", section])
            .as_object()
            .into_iter()
            .flatten()
        {
            out.push_str(&format!("  {key}:  {}\n", value.as_str().unwrap_or("")));
        }
    }
    out.push_str("System Info:\n");
    for (key, value) in at(node, &["status", "nodeInfo"])
        .as_object()
        .into_iter()
        .flatten()
    {
        field(&mut out, 2, key, value.as_str().unwrap_or(""));
    }
    let pod_cidr = str_at(node, &["spec", "podCIDR"]);
    if !pod_cidr.is_empty() {
        field(&mut out, 0, "PodCIDR", pod_cidr);
        let all: Vec<&str> = at(node, &["spec", "podCIDRs"])
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        field(&mut out, 0, "PodCIDRs", all.join(","));
    }
    out
}

/// `Label:` then the value at column 24, or two spaces after a longer label (kubectl's
/// tab writer never runs a label into its value).
fn field(out: &mut String, indent: usize, name: &str, value: impl std::fmt::Display) {
    let label = format!("{}{name}:", " ".repeat(indent));
    let width = 24.max(label.chars().count() + 2);
    out.push_str(&format!("{label:<width$}{value}\n"));
}

fn map_lines(value: &Value) -> String {
    match value.as_object() {
        Some(map) if !map.is_empty() => map
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join("\n                        "),
        _ => "<none>".to_owned(),
    }
}

pub fn describe(kind: Kind, object: &Value) -> String {
    let mut out = header(kind, object);
    match kind {
        Kind::Pod => describe_pod(&mut out, object),
        Kind::Deployment => workload::describe_deployment(&mut out, object),
        Kind::ReplicaSet => workload::describe_replica_set(&mut out, object),
        Kind::ReplicationController => workload::describe_replication_controller(&mut out, object),
        Kind::DaemonSet => workload::describe_daemon_set(&mut out, object),
        Kind::StatefulSet => workload::describe_stateful_set(&mut out, object),
        Kind::ServiceAccount
        | Kind::Ingress
        | Kind::IngressClass
        | Kind::NetworkPolicy
        | Kind::HorizontalPodAutoscaler
        | Kind::PodDisruptionBudget => passive::describe_passive(&mut out, kind, object),
        Kind::Job => workload::describe_job(&mut out, object),
        Kind::CronJob => workload::describe_cron_job(&mut out, object),
        Kind::ControllerRevision => {
            field(
                &mut out,
                0,
                "Revision",
                int_at(object, &["revision"]).to_string(),
            );
            workload::pod_template(&mut out, &object["data"]);
        }
        Kind::Namespace => {
            let phase = str_at(object, &["status", "phase"]);
            field(
                &mut out,
                0,
                "Status",
                if phase.is_empty() { "Active" } else { phase },
            );
        }
        Kind::ConfigMap => describe_data(&mut out, object, false),
        Kind::Secret => {
            field(&mut out, 0, "Type", str_at(object, &["type"]));
            describe_data(&mut out, object, true);
        }
        // Its users are added by `run`, which reads the pods.
        Kind::PersistentVolumeClaim => {}
        Kind::Service => service::describe_service(&mut out, object, None),
        Kind::Endpoints => service::describe_endpoints(&mut out, object),
        Kind::EndpointSlice => service::describe_endpoint_slice(&mut out, object),
        Kind::ResourceQuota => quota::describe_resource_quota(&mut out, object),
        Kind::LimitRange => quota::describe_limit_range(&mut out, object),
        Kind::PriorityClass => {
            field(&mut out, 0, "Value", int_at(object, &["value"]));
            let global_default = at(object, &["globalDefault"]).as_bool();
            field(
                &mut out,
                0,
                "GlobalDefault",
                global_default.unwrap_or(false),
            );
            let policy = str_at(object, &["preemptionPolicy"]);
            field(&mut out, 0, "PreemptionPolicy", policy);
            field(&mut out, 0, "Description", str_at(object, &["description"]));
        }
    }
    out
}

/// Name, namespace, labels and annotations; the creation time too, except for the kinds
/// kubectl leaves it out of.
fn header(kind: Kind, object: &Value) -> String {
    let mut out = String::new();
    field(&mut out, 0, "Name", str_at(object, &["metadata", "name"]));
    if kind.namespaced() {
        field(
            &mut out,
            0,
            "Namespace",
            str_at(object, &["metadata", "namespace"]),
        );
    }
    // kubectl shows a quota or a limit range by its name and its table alone.
    if matches!(kind, Kind::ResourceQuota | Kind::LimitRange) {
        return out;
    }
    field(
        &mut out,
        0,
        "Labels",
        map_lines(at(object, &["metadata", "labels"])),
    );
    field(
        &mut out,
        0,
        "Annotations",
        map_lines(at(object, &["metadata", "annotations"])),
    );
    if !matches!(kind, Kind::Service | Kind::Endpoints | Kind::EndpointSlice) {
        field(
            &mut out,
            0,
            "CreationTimestamp",
            str_at(object, &["metadata", "creationTimestamp"]),
        );
    }
    out
}

/// Keys with their sizes; values are printed for ConfigMaps only, as kubectl does, so a
/// secret never lands on a terminal by accident.
fn describe_data(out: &mut String, object: &Value, secret: bool) {
    out.push_str("Data\n====\n");
    for map in ["data", "binaryData"] {
        for (key, value) in at(object, &[map]).as_object().into_iter().flatten() {
            let text = value.as_str().unwrap_or_default();
            if secret || map == "binaryData" {
                let size = crate::model::base64::decode(text).map_or(0, |b| b.len());
                out.push_str(&format!("{key}:  {size} bytes\n"));
            } else {
                out.push_str(&format!("{key}:\n----\n{text}\n\n"));
            }
        }
    }
}

fn describe_pod(out: &mut String, pod: &Value) {
    // Shown once admission has given the pod a priority, as kubectl shows them.
    if let Some(priority) = at(pod, &["spec", "priority"]).as_i64() {
        field(out, 0, "Priority", priority);
    }
    let class = str_at(pod, &["spec", "priorityClassName"]);
    if !class.is_empty() {
        field(out, 0, "Priority Class Name", class);
    }
    let nominated = str_at(pod, &["status", "nominatedNodeName"]);
    if !nominated.is_empty() {
        field(out, 0, "NominatedNodeName", nominated);
    }
    field(out, 0, "Status", pod_status_column(pod));
    field(out, 0, "Phase", str_at(pod, &["status", "phase"]));
    field(out, 0, "IP", or_none(str_at(pod, &["status", "podIP"])));
    field(
        out,
        0,
        "Restart Policy",
        str_at(pod, &["spec", "restartPolicy"]),
    );
    let owners = at(pod, &["metadata", "ownerReferences"])
        .as_array()
        .cloned()
        .unwrap_or_default();
    if let Some(owner) = owners.first() {
        field(
            out,
            0,
            "Controlled By",
            format!("{}/{}", str_at(owner, &["kind"]), str_at(owner, &["name"])),
        );
    }
    if at(pod, &["spec", "initContainers"]).is_array() {
        out.push_str("Init Containers:\n");
        describe_containers(out, pod, "initContainers", "initContainerStatuses");
    }
    out.push_str("Containers:\n");
    describe_containers(out, pod, "containers", "containerStatuses");
    out.push_str("Conditions:\n");
    let conditions = at(pod, &["status", "conditions"]);
    for condition in conditions.as_array().into_iter().flatten() {
        field(
            out,
            2,
            str_at(condition, &["type"]),
            str_at(condition, &["status"]),
        );
    }
    pod_volumes::describe_volumes(out, pod);
}

/// One `Containers:` or `Init Containers:` section: `list` in the spec, `statuses` in the
/// status.
fn describe_containers(out: &mut String, pod: &Value, list: &str, statuses: &str) {
    let statuses = at(pod, &["status", statuses])
        .as_array()
        .cloned()
        .unwrap_or_default();
    for container in at(pod, &["spec", list]).as_array().into_iter().flatten() {
        let name = str_at(container, &["name"]);
        out.push_str(&format!("  {name}:\n"));
        field(out, 4, "Image", str_at(container, &["image"]));
        let status = statuses.iter().find(|s| str_at(s, &["name"]) == name);
        if let Some(status) = status {
            field(out, 4, "Image ID", or_none(str_at(status, &["imageID"])));
            field(
                out,
                4,
                "Container ID",
                or_none(str_at(status, &["containerID"])),
            );
            field(out, 4, "State", state_text(at(status, &["state"])));
            let last = state_text(at(status, &["lastState"]));
            if last != "<none>" {
                field(out, 4, "Last State", last);
            }
            field(
                out,
                4,
                "Ready",
                at(status, &["ready"]).as_bool().unwrap_or(false),
            );
            field(out, 4, "Restart Count", int_at(status, &["restartCount"]));
        }
        let limits = at(container, &["resources", "limits"]);
        if limits.is_object() {
            field(out, 4, "Limits", map_lines(limits).replace('=', ": "));
        }
        let requests = at(container, &["resources", "requests"]);
        if requests.is_object() {
            field(out, 4, "Requests", map_lines(requests).replace('=', ": "));
        }
        pod_volumes::describe_container_config(out, container);
    }
}

fn state_text(state: &Value) -> String {
    if let Some(running) = state.get("running") {
        return format!("Running (started {})", str_at(running, &["startedAt"]));
    }
    if let Some(waiting) = state.get("waiting") {
        return format!("Waiting ({})", str_at(waiting, &["reason"]));
    }
    if let Some(t) = state.get("terminated") {
        return format!(
            "Terminated ({}, exit code {}, finished {})",
            str_at(t, &["reason"]),
            int_at(t, &["exitCode"]),
            str_at(t, &["finishedAt"])
        );
    }
    "<none>".to_owned()
}

fn or_none(s: &str) -> &str {
    if s.is_empty() {
        "<none>"
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_node_shows_its_addresses_and_pod_cidr() {
        let node = json!({"metadata": {"name": "pi-1"},
            "spec": {"podCIDR": "10.42.1.0/24", "podCIDRs": ["10.42.1.0/24"]},
            "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.11"},
                                     {"type": "Hostname", "address": "pi-1"}]}});
        let text = describe_node(&node);
        assert!(
            text.contains("Addresses:\n  InternalIP:           192.168.1.11\n"),
            "{text}"
        );
        assert!(text.contains("  Hostname:             pi-1\n"), "{text}");
        assert!(
            text.contains("PodCIDR:                10.42.1.0/24\n"),
            "{text}"
        );
        assert!(
            text.contains("PodCIDRs:               10.42.1.0/24\n"),
            "{text}"
        );
        assert!(!describe_node(&json!({"metadata": {"name": "x"}})).contains("PodCIDR"));
    }
}
