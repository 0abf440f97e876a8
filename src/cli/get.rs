//! `berth get KIND [NAME]`: tables like kubectl, or the Kubernetes JSON/YAML.

use anyhow::{anyhow, Context};
use serde_json::Value;

use super::output::{
    age, at, int_at, pod_status_column, print_columns, print_document, str_at, Format,
};
use super::{call, collection_path, object_path, GlobalOptions};
use crate::api::http::percent_encode;
use crate::model::Kind;

#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// pods, deployments or namespaces (short names po, deploy, ns work too)
    pub kind: String,
    /// One object by name
    pub name: Option<String>,
}

pub fn parse_kind(s: &str) -> anyhow::Result<Kind> {
    Kind::from_cli_name(s).ok_or_else(|| {
        anyhow!(
            "the server doesn't have a resource type {s:?} (known: pods, deployments, namespaces)"
        )
    })
}

/// Nodes exist only at a coordinator and are not a manifest kind.
pub fn is_node_kind(s: &str) -> bool {
    matches!(s.to_ascii_lowercase().as_str(), "node" | "nodes" | "no")
}

pub fn node_path(name: Option<&str>) -> String {
    match name {
        Some(name) => format!("/api/v1/nodes/{}", percent_encode(name)),
        None => "/api/v1/nodes".to_string(),
    }
}

pub fn run(global: &GlobalOptions, args: GetArgs) -> anyhow::Result<()> {
    if is_node_kind(&args.kind) {
        return get_nodes(global, args.name.as_deref());
    }
    let kind = parse_kind(&args.kind)?;
    let format = global.output_format()?;
    let client = global.client()?;
    let value = match &args.name {
        Some(name) => call(
            &client,
            "GET",
            &object_path(kind, global.namespace(), name),
            None,
        )?,
        None => {
            let namespace = if global.all_namespaces {
                None
            } else {
                Some(global.namespace())
            };
            let mut path = collection_path(kind, namespace);
            if let Some(selector) = &global.selector {
                path.push_str(&format!("?labelSelector={}", percent_encode(selector)));
            }
            call(&client, "GET", &path, None)?
        }
    };
    match format {
        Format::Json | Format::Yaml => print_document(format, &value),
        Format::Table | Format::Wide => {
            let items = match value.get("items").and_then(Value::as_array) {
                Some(items) => items.clone(),
                None => vec![value],
            };
            if items.is_empty() {
                let scope = if global.all_namespaces || !kind.namespaced() {
                    String::new()
                } else {
                    format!(" in {} namespace", global.namespace())
                };
                eprintln!("No resources found{scope}.");
                return Ok(());
            }
            print_table(kind, &items, format == Format::Wide, global.all_namespaces)
                .context("cannot print the table")
        }
    }
}

fn get_nodes(global: &GlobalOptions, name: Option<&str>) -> anyhow::Result<()> {
    let format = global.output_format()?;
    let client = global.client()?;
    let mut path = node_path(name);
    if let (None, Some(selector)) = (name, &global.selector) {
        path.push_str(&format!("?labelSelector={}", percent_encode(selector)));
    }
    let value = call(&client, "GET", &path, None)?;
    match format {
        Format::Json | Format::Yaml => print_document(format, &value),
        Format::Table | Format::Wide => {
            let items = match value.get("items").and_then(Value::as_array) {
                Some(items) => items.clone(),
                None => vec![value],
            };
            if items.is_empty() {
                eprintln!("No resources found.");
                return Ok(());
            }
            let wide = format == Format::Wide;
            let mut header = vec!["NAME", "STATUS", "ROLES", "AGE", "VERSION"];
            if wide {
                header.extend(["ARCH", "OS-IMAGE", "KERNEL-VERSION", "INSTANCE-TYPE"]);
            }
            let rows: Vec<Vec<String>> = items.iter().map(|n| node_row(n, wide)).collect();
            print_columns(&header, &rows);
            Ok(())
        }
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
        row.push(label("kubernetes.io/arch"));
        row.push(str_at(node, &["status", "nodeInfo", "osImage"]).to_owned());
        row.push(str_at(node, &["status", "nodeInfo", "kernelVersion"]).to_owned());
        row.push(label("node.kubernetes.io/instance-type"));
    }
    row
}

pub fn print_table(
    kind: Kind,
    items: &[Value],
    wide: bool,
    with_namespace: bool,
) -> anyhow::Result<()> {
    let mut header: Vec<&str> = Vec::new();
    if with_namespace && kind.namespaced() {
        header.push("NAMESPACE");
    }
    let columns: &[&str] = match (kind, wide) {
        (Kind::Pod, false) => &["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        (Kind::Pod, true) => &["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"],
        (Kind::Deployment, false) => &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        (Kind::Deployment, true) => &[
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR",
        ],
        (Kind::Namespace, _) => &["NAME", "STATUS", "AGE"],
        (Kind::ConfigMap, _) => &["NAME", "DATA", "AGE"],
        (Kind::Secret, _) => &["NAME", "TYPE", "DATA", "AGE"],
    };
    header.extend_from_slice(columns);
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| {
            let mut row = Vec::new();
            if with_namespace && kind.namespaced() {
                row.push(str_at(item, &["metadata", "namespace"]).to_owned());
            }
            row.extend(match kind {
                Kind::Pod => pod_row(item, wide),
                Kind::Deployment => deployment_row(item, wide),
                Kind::Namespace => namespace_row(item),
                Kind::ConfigMap => config_map_row(item),
                Kind::Secret => secret_row(item),
            });
            row
        })
        .collect();
    print_columns(&header, &rows);
    Ok(())
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
    let statuses = at(pod, &["status", "containerStatuses"])
        .as_array()
        .cloned()
        .unwrap_or_default();
    let total = at(pod, &["spec", "containers"])
        .as_array()
        .map_or(0, Vec::len);
    let ready = statuses
        .iter()
        .filter(|s| s.get("ready") == Some(&Value::Bool(true)))
        .count();
    let restarts: i64 = statuses.iter().map(|s| int_at(s, &["restartCount"])).sum();
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

fn deployment_row(deploy: &Value, wide: bool) -> Vec<String> {
    let desired = at(deploy, &["spec", "replicas"]).as_i64().unwrap_or(1);
    let mut row = vec![
        str_at(deploy, &["metadata", "name"]).to_owned(),
        format!("{}/{desired}", int_at(deploy, &["status", "readyReplicas"])),
        int_at(deploy, &["status", "updatedReplicas"]).to_string(),
        int_at(deploy, &["status", "availableReplicas"]).to_string(),
        age(str_at(deploy, &["metadata", "creationTimestamp"])),
    ];
    if wide {
        let containers = at(deploy, &["spec", "template", "spec", "containers"])
            .as_array()
            .cloned()
            .unwrap_or_default();
        let names: Vec<&str> = containers.iter().map(|c| str_at(c, &["name"])).collect();
        let images: Vec<&str> = containers.iter().map(|c| str_at(c, &["image"])).collect();
        let selector = at(deploy, &["spec", "selector", "matchLabels"])
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        row.push(names.join(","));
        row.push(images.join(","));
        row.push(selector);
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

fn none_if_empty(s: &str) -> String {
    if s.is_empty() {
        "<none>".to_owned()
    } else {
        s.to_owned()
    }
}
