//! `describe` of workloads: Deployments (with their ReplicaSets), ReplicaSets,
//! ReplicationControllers, DaemonSets, StatefulSets, Jobs and CronJobs, in kubectl's
//! layout.

use serde_json::Value;

use super::super::output::{at, int_at, str_at};
use super::{field, map_lines};

pub(super) fn describe_deployment(out: &mut String, deploy: &Value) {
    field(
        out,
        0,
        "Selector",
        map_lines(at(deploy, &["spec", "selector", "matchLabels"])),
    );
    field(
        out,
        0,
        "Replicas",
        format!(
            "{} desired | {} updated | {} total | {} available | {} unavailable",
            at(deploy, &["spec", "replicas"]).as_i64().unwrap_or(1),
            int_at(deploy, &["status", "updatedReplicas"]),
            int_at(deploy, &["status", "replicas"]),
            int_at(deploy, &["status", "availableReplicas"]),
            int_at(deploy, &["status", "unavailableReplicas"]),
        ),
    );
    field(
        out,
        0,
        "StrategyType",
        str_at(deploy, &["spec", "strategy", "type"]),
    );
    field(
        out,
        0,
        "MinReadySeconds",
        int_at(deploy, &["spec", "minReadySeconds"]).to_string(),
    );
    let rolling = at(deploy, &["spec", "strategy", "rollingUpdate"]);
    if rolling.is_object() {
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        field(
            out,
            0,
            "RollingUpdateStrategy",
            format!(
                "{} max unavailable, {} max surge",
                text(&rolling["maxUnavailable"]),
                text(&rolling["maxSurge"])
            ),
        );
    }
    pod_template(out, deploy);
    out.push_str("Conditions:\n");
    for condition in at(deploy, &["status", "conditions"])
        .as_array()
        .into_iter()
        .flatten()
    {
        field(
            out,
            2,
            str_at(condition, &["type"]),
            format!(
                "{} ({})",
                str_at(condition, &["status"]),
                str_at(condition, &["reason"])
            ),
        );
    }
}

/// kubectl's `OldReplicaSets` and `NewReplicaSet` lines of a Deployment, from the
/// ReplicaSets it controls (`sets`: those of its namespace).
pub(super) fn replica_sets(out: &mut String, deploy: &Value, sets: &[Value]) {
    let uid = str_at(deploy, &["metadata", "uid"]);
    let revision_key = "deployment.kubernetes.io/revision";
    let current = str_at(deploy, &["metadata", "annotations", revision_key]);
    let line = |rs: &Value| {
        format!(
            "{} ({}/{} replicas created)",
            str_at(rs, &["metadata", "name"]),
            int_at(rs, &["status", "replicas"]),
            at(rs, &["spec", "replicas"]).as_i64().unwrap_or(1)
        )
    };
    let (new, old): (Vec<&Value>, Vec<&Value>) = sets
        .iter()
        .filter(|rs| {
            at(rs, &["metadata", "ownerReferences"])
                .as_array()
                .is_some_and(|owners| {
                    owners
                        .iter()
                        .any(|o| o["uid"] == uid && o["controller"] == true)
                })
        })
        .partition(|rs| {
            !current.is_empty() && str_at(rs, &["metadata", "annotations", revision_key]) == current
        });
    // kubectl lists the old ones that still have pods.
    let old: Vec<String> = old
        .into_iter()
        .filter(|rs| {
            int_at(rs, &["status", "replicas"]) > 0 || int_at(rs, &["spec", "replicas"]) > 0
        })
        .map(line)
        .collect();
    field(
        out,
        0,
        "OldReplicaSets",
        if old.is_empty() {
            "<none>".to_owned()
        } else {
            old.join(", ")
        },
    );
    let new = new
        .first()
        .map_or_else(|| "<none>".to_owned(), |rs| line(rs));
    field(out, 0, "NewReplicaSet", new);
}

pub(super) fn describe_replica_set(out: &mut String, rs: &Value) {
    describe_replicated(out, rs, at(rs, &["spec", "selector", "matchLabels"]));
}

/// A ReplicationController is described as a ReplicaSet is; its selector is a plain
/// label map.
pub(super) fn describe_replication_controller(out: &mut String, rc: &Value) {
    describe_replicated(out, rc, at(rc, &["spec", "selector"]));
}

/// What `describe` shows of a ReplicaSet or a ReplicationController, whose selector's
/// labels are `selector`.
fn describe_replicated(out: &mut String, rs: &Value, selector: &Value) {
    field(out, 0, "Selector", map_lines(selector));
    let owner = at(rs, &["metadata", "ownerReferences"])
        .as_array()
        .and_then(|owners| owners.iter().find(|o| o["controller"] == true))
        .map(|o| format!("{}/{}", str_at(o, &["kind"]), str_at(o, &["name"])));
    if let Some(owner) = owner {
        field(out, 0, "Controlled By", owner);
    }
    field(
        out,
        0,
        "Replicas",
        format!(
            "{} current / {} desired",
            int_at(rs, &["status", "replicas"]),
            at(rs, &["spec", "replicas"]).as_i64().unwrap_or(1),
        ),
    );
    field(
        out,
        0,
        "Pods Status",
        format!(
            "{} Ready / {} Available",
            int_at(rs, &["status", "readyReplicas"]),
            int_at(rs, &["status", "availableReplicas"]),
        ),
    );
    pod_template(out, rs);
}

pub(super) fn describe_daemon_set(out: &mut String, ds: &Value) {
    field(
        out,
        0,
        "Selector",
        map_lines(at(ds, &["spec", "selector", "matchLabels"])),
    );
    field(
        out,
        0,
        "Node-Selector",
        map_lines(at(ds, &["spec", "template", "spec", "nodeSelector"])),
    );
    let count = |field: &str| int_at(ds, &["status", field]);
    field(
        out,
        0,
        "Desired Number of Nodes Scheduled",
        count("desiredNumberScheduled").to_string(),
    );
    field(
        out,
        0,
        "Current Number of Nodes Scheduled",
        count("currentNumberScheduled").to_string(),
    );
    field(
        out,
        0,
        "Number of Nodes Scheduled with Up-to-date Pods",
        count("updatedNumberScheduled").to_string(),
    );
    field(
        out,
        0,
        "Number of Nodes Scheduled with Available Pods",
        count("numberAvailable").to_string(),
    );
    field(
        out,
        0,
        "Number of Nodes Misscheduled",
        count("numberMisscheduled").to_string(),
    );
    pod_template(out, ds);
}

/// kubectl's description of a StatefulSet. `Pods Status` counts ready pods as running
/// and the others as waiting: the set's status has no phases.
pub(super) fn describe_stateful_set(out: &mut String, set: &Value) {
    field(
        out,
        0,
        "Selector",
        map_lines(at(set, &["spec", "selector", "matchLabels"])),
    );
    let replicas = int_at(set, &["status", "replicas"]);
    let ready = int_at(set, &["status", "readyReplicas"]);
    let wanted = at(set, &["spec", "replicas"]).as_i64().unwrap_or(1);
    field(
        out,
        0,
        "Replicas",
        format!("{wanted} desired | {replicas} total"),
    );
    let strategy = str_at(set, &["spec", "updateStrategy", "type"]);
    field(out, 0, "Update Strategy", strategy);
    if strategy == "RollingUpdate" {
        let partition = int_at(
            set,
            &["spec", "updateStrategy", "rollingUpdate", "partition"],
        );
        field(out, 2, "Partition", partition.to_string());
    }
    field(
        out,
        0,
        "Pods Status",
        format!(
            "{ready} Running / {} Waiting / 0 Succeeded / 0 Failed",
            replicas - ready
        ),
    );
    pod_template(out, set);
    out.push_str("Volume Claims:\n");
    let templates = at(set, &["spec", "volumeClaimTemplates"]).as_array();
    for claim in templates.map(Vec::as_slice).unwrap_or_default() {
        field(out, 2, "Name", str_at(claim, &["metadata", "name"]));
        field(
            out,
            2,
            "StorageClass",
            str_at(claim, &["spec", "storageClassName"]),
        );
        let capacity = str_at(claim, &["spec", "resources", "requests", "storage"]);
        field(out, 2, "Capacity", capacity);
        let modes: Vec<&str> = at(claim, &["spec", "accessModes"])
            .as_array()
            .map(|modes| modes.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        field(out, 2, "Access Modes", format!("[{}]", modes.join(" ")));
    }
}

/// The containers of a workload's pod template, and their images.
pub(super) fn pod_template(out: &mut String, workload: &Value) {
    out.push_str("Pod Template:\n");
    for container in at(workload, &["spec", "template", "spec", "containers"])
        .as_array()
        .into_iter()
        .flatten()
    {
        out.push_str(&format!("  {}:\n", str_at(container, &["name"])));
        field(out, 4, "Image", str_at(container, &["image"]));
    }
}

pub(super) fn describe_job(out: &mut String, job: &Value) {
    let uid = str_at(job, &["metadata", "uid"]);
    field(
        out,
        0,
        "Selector",
        format!("batch.kubernetes.io/controller-uid={uid}"),
    );
    let parallelism = at(job, &["spec", "parallelism"]).as_i64().unwrap_or(1);
    field(out, 0, "Parallelism", parallelism);
    let completions = at(job, &["spec", "completions"])
        .as_i64()
        .map_or_else(|| "<unset>".to_owned(), |n| n.to_string());
    field(out, 0, "Completions", completions);
    let mode = str_at(job, &["spec", "completionMode"]);
    field(
        out,
        0,
        "Completion Mode",
        if mode.is_empty() { "NonIndexed" } else { mode },
    );
    let started = str_at(job, &["status", "startTime"]);
    if !started.is_empty() {
        field(out, 0, "Start Time", started);
    }
    let completed = str_at(job, &["status", "completionTime"]);
    if !completed.is_empty() {
        field(out, 0, "Completed At", completed);
    }
    field(
        out,
        0,
        "Pods Statuses",
        format!(
            "{} Active / {} Succeeded / {} Failed",
            int_at(job, &["status", "active"]),
            int_at(job, &["status", "succeeded"]),
            int_at(job, &["status", "failed"]),
        ),
    );
    let indexes = str_at(job, &["status", "completedIndexes"]);
    if mode == "Indexed" {
        field(
            out,
            0,
            "Completed Indexes",
            if indexes.is_empty() {
                "<none>"
            } else {
                indexes
            },
        );
    }
    pod_template(out, job);
}

pub(super) fn describe_cron_job(out: &mut String, cron_job: &Value) {
    let spec = &cron_job["spec"];
    field(out, 0, "Schedule", str_at(spec, &["schedule"]));
    let policy = str_at(spec, &["concurrencyPolicy"]);
    field(
        out,
        0,
        "Concurrency Policy",
        if policy.is_empty() { "Allow" } else { policy },
    );
    let suspend = at(spec, &["suspend"]).as_bool() == Some(true);
    field(out, 0, "Suspend", if suspend { "True" } else { "False" });
    let limit = |name: &str, default: i64| at(spec, &[name]).as_i64().unwrap_or(default);
    field(
        out,
        0,
        "Successful Job History Limit",
        limit("successfulJobsHistoryLimit", 3),
    );
    field(
        out,
        0,
        "Failed Job History Limit",
        limit("failedJobsHistoryLimit", 1),
    );
    let deadline = at(spec, &["startingDeadlineSeconds"])
        .as_i64()
        .map_or_else(|| "<unset>".to_owned(), |s| format!("{s}s"));
    field(out, 0, "Starting Deadline Seconds", deadline);
    let last = str_at(cron_job, &["status", "lastScheduleTime"]);
    field(
        out,
        0,
        "Last Schedule Time",
        if last.is_empty() { "<unset>" } else { last },
    );
    let active: Vec<&str> = at(cron_job, &["status", "active"])
        .as_array()
        .into_iter()
        .flatten()
        .map(|job| str_at(job, &["name"]))
        .collect();
    field(
        out,
        0,
        "Active Jobs",
        if active.is_empty() {
            "<none>".to_owned()
        } else {
            active.join(", ")
        },
    );
    pod_template(out, &spec["jobTemplate"]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_deployment_names_its_new_and_old_replica_sets() {
        let deploy = json!({"metadata": {"uid": "d", "annotations": {"deployment.kubernetes.io/revision": "2"}}});
        let rs = |name: &str, revision: &str, spec: i64, pods: i64, owner: &str| {
            json!({"metadata": {"name": name,
                "annotations": {"deployment.kubernetes.io/revision": revision},
                "ownerReferences": [{"uid": owner, "controller": true}]},
                "spec": {"replicas": spec}, "status": {"replicas": pods}})
        };
        let sets = [
            rs("web-new", "2", 3, 2, "d"),
            rs("web-old", "1", 1, 1, "d"),
            rs("web-older", "0", 0, 0, "d"),
            rs("other", "2", 1, 1, "x"),
        ];
        let mut out = String::new();
        replica_sets(&mut out, &deploy, &sets);
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[0].starts_with("OldReplicaSets:")
                && lines[0].ends_with("web-old (1/1 replicas created)"),
            "{out}"
        );
        assert!(
            lines[1].starts_with("NewReplicaSet:")
                && lines[1].ends_with("web-new (2/3 replicas created)"),
            "{out}"
        );
    }
}
