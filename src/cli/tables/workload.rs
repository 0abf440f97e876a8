//! The tables of Deployments, ReplicaSets, ReplicationControllers, DaemonSets and
//! StatefulSets, with kubectl's columns.

use serde_json::Value;

use super::super::output::{age, at, int_at, str_at};

/// The columns `-o wide` adds to a workload's table.
const WIDE: [&str; 3] = ["CONTAINERS", "IMAGES", "SELECTOR"];

pub fn deployment_columns(wide: bool) -> &'static [&'static str] {
    const NARROW: [&str; 5] = ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"];
    const WIDE_ALL: [&str; 8] = [
        "NAME",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "AGE",
        WIDE[0],
        WIDE[1],
        WIDE[2],
    ];
    if wide {
        &WIDE_ALL
    } else {
        &NARROW
    }
}

pub fn replica_set_columns(wide: bool) -> &'static [&'static str] {
    const NARROW: [&str; 5] = ["NAME", "DESIRED", "CURRENT", "READY", "AGE"];
    const WIDE_ALL: [&str; 8] = [
        "NAME", "DESIRED", "CURRENT", "READY", "AGE", WIDE[0], WIDE[1], WIDE[2],
    ];
    if wide {
        &WIDE_ALL
    } else {
        &NARROW
    }
}

pub fn daemon_set_columns(wide: bool) -> &'static [&'static str] {
    const NARROW: [&str; 8] = [
        "NAME",
        "DESIRED",
        "CURRENT",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "NODE SELECTOR",
        "AGE",
    ];
    const WIDE_ALL: [&str; 11] = [
        "NAME",
        "DESIRED",
        "CURRENT",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "NODE SELECTOR",
        "AGE",
        WIDE[0],
        WIDE[1],
        WIDE[2],
    ];
    if wide {
        &WIDE_ALL
    } else {
        &NARROW
    }
}

pub fn daemon_set_row(ds: &Value, wide: bool) -> Vec<String> {
    let count = |field: &str| int_at(ds, &["status", field]).to_string();
    let node_selector = at(ds, &["spec", "template", "spec", "nodeSelector"])
        .as_object()
        .filter(|m| !m.is_empty())
        .map_or_else(
            || "<none>".to_owned(),
            |m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(",")
            },
        );
    let mut row = vec![
        str_at(ds, &["metadata", "name"]).to_owned(),
        count("desiredNumberScheduled"),
        count("currentNumberScheduled"),
        count("numberReady"),
        count("updatedNumberScheduled"),
        count("numberAvailable"),
        node_selector,
        age(str_at(ds, &["metadata", "creationTimestamp"])),
    ];
    if wide {
        row.extend(wide_cells(ds, at(ds, &["spec", "selector", "matchLabels"])));
    }
    row
}

pub fn controller_revision_row(revision: &Value) -> Vec<String> {
    let controller = at(revision, &["metadata", "ownerReferences"])
        .as_array()
        .and_then(|owners| owners.iter().find(|o| o["controller"] == true))
        .map(|o| {
            format!(
                "{}.apps/{}",
                str_at(o, &["kind"]).to_ascii_lowercase(),
                str_at(o, &["name"])
            )
        })
        .unwrap_or_else(|| "<none>".to_owned());
    vec![
        str_at(revision, &["metadata", "name"]).to_owned(),
        controller,
        int_at(revision, &["revision"]).to_string(),
        age(str_at(revision, &["metadata", "creationTimestamp"])),
    ]
}

pub fn deployment_row(deploy: &Value, wide: bool) -> Vec<String> {
    let desired = at(deploy, &["spec", "replicas"]).as_i64().unwrap_or(1);
    let mut row = vec![
        str_at(deploy, &["metadata", "name"]).to_owned(),
        format!("{}/{desired}", int_at(deploy, &["status", "readyReplicas"])),
        int_at(deploy, &["status", "updatedReplicas"]).to_string(),
        int_at(deploy, &["status", "availableReplicas"]).to_string(),
        age(str_at(deploy, &["metadata", "creationTimestamp"])),
    ];
    if wide {
        row.extend(wide_cells(
            deploy,
            at(deploy, &["spec", "selector", "matchLabels"]),
        ));
    }
    row
}

pub fn replica_set_row(rs: &Value, wide: bool) -> Vec<String> {
    replicated_row(rs, wide, at(rs, &["spec", "selector", "matchLabels"]))
}

/// A ReplicationController's row is a ReplicaSet's; its selector is a plain label map.
pub fn replication_controller_row(rc: &Value, wide: bool) -> Vec<String> {
    replicated_row(rc, wide, at(rc, &["spec", "selector"]))
}

/// `DESIRED CURRENT READY AGE`, and with `wide` the containers, images and `selector`.
fn replicated_row(rs: &Value, wide: bool, selector: &Value) -> Vec<String> {
    let mut row = vec![
        str_at(rs, &["metadata", "name"]).to_owned(),
        at(rs, &["spec", "replicas"])
            .as_i64()
            .unwrap_or(1)
            .to_string(),
        int_at(rs, &["status", "replicas"]).to_string(),
        int_at(rs, &["status", "readyReplicas"]).to_string(),
        age(str_at(rs, &["metadata", "creationTimestamp"])),
    ];
    if wide {
        row.extend(wide_cells(rs, selector));
    }
    row
}

pub fn stateful_set_columns(wide: bool) -> &'static [&'static str] {
    if wide {
        &["NAME", "READY", "AGE", WIDE[0], WIDE[1]]
    } else {
        &["NAME", "READY", "AGE"]
    }
}

/// kubectl's READY is ready pods over the wanted replicas; `-o wide` adds no selector.
pub fn stateful_set_row(set: &Value, wide: bool) -> Vec<String> {
    let wanted = at(set, &["spec", "replicas"]).as_i64().unwrap_or(1);
    let mut row = vec![
        str_at(set, &["metadata", "name"]).to_owned(),
        format!("{}/{wanted}", int_at(set, &["status", "readyReplicas"])),
        age(str_at(set, &["metadata", "creationTimestamp"])),
    ];
    if wide {
        row.extend(wide_cells(set, &Value::Null).into_iter().take(2));
    }
    row
}

/// Container names and images of a workload's template, and its selector's labels
/// (`selector`, a label map).
fn wide_cells(workload: &Value, selector: &Value) -> [String; 3] {
    let containers = at(workload, &["spec", "template", "spec", "containers"])
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, &["image"])).collect();
    let selector = selector
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    [names.join(","), images.join(","), selector]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replica_set_rows_show_desired_current_ready() {
        let rs = json!({
            "metadata": {"name": "web-5d8f9c7b6a"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"spec": {"containers": [{"name": "web", "image": "busybox"}]}}},
            "status": {"replicas": 2, "readyReplicas": 1}
        });
        let row = replica_set_row(&rs, true);
        assert_eq!(&row[..4], ["web-5d8f9c7b6a", "3", "2", "1"]);
        assert_eq!(&row[5..], ["web", "busybox", "app=web"]);
        assert_eq!(replica_set_columns(true).len(), row.len());
    }

    #[test]
    fn a_replication_controller_row_reads_its_plain_selector() {
        let rc = json!({
            "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"app": "web", "tier": "front"},
                     "template": {"spec": {"containers": [{"name": "web", "image": "busybox"}]}}},
            "status": {"replicas": 2, "readyReplicas": 2}
        });
        let row = replication_controller_row(&rc, true);
        assert_eq!(&row[..4], ["web", "2", "2", "2"]);
        assert_eq!(&row[5..], ["web", "busybox", "app=web,tier=front"]);
        assert_eq!(replication_controller_row(&rc, false).len(), 5);
    }
}
