//! CronJobs that keep firing on a board cut off from every coordinator.
//!
//! The coordinator runs a fleet's CronJobs: its controller makes the Jobs and the
//! scheduler places their pods. So that a board cut off from it (or a fleet whose
//! coordinator is down) still runs them, each CronJob gets a *standby node*, chosen
//! once as the scheduler would place a pod of its template, with capacity but not
//! current use counted, and kept in [`STANDBY_NODE_ANNOTATION`] until that node is
//! deleted or lost. The standby node is given the CronJob (with the last time the
//! coordinator ran, [`LAST_SCHEDULE_ANNOTATION`]) and what its pods read. It leaves it
//! alone while the coordinator answers; once cut off for a while it fires the times
//! after the last one it knows was run, and on its return reports the latest it ran,
//! which the coordinator takes as `status.lastScheduleTime` so the time is not run twice.
//!
//! A coordinator that starts does not catch up a standby CronJob's missed times until
//! its standby node has been heard from (it reports its own runs first), or for at most
//! the node monitor grace period. As in Kubernetes, a CronJob runs a time approximately
//! once: a board that is cut off while the coordinator still runs fires the times it
//! misses too.

use serde_json::Value;

use super::Coordinator;
use crate::api::fleet::{ReportedCronJob, LAST_SCHEDULE_ANNOTATION, STANDBY_NODE_ANNOTATION};
use crate::controllers::scheduler::{pod_request_from_spec, schedule, Decision, NodeInfo};
use crate::controllers::{driver, World};
use crate::model::{CronJob, Object};
use crate::store::{Record, Store};

/// How far ahead of the coordinator's clock a reported run may be: boards' clocks differ.
const CLOCK_SKEW_SECS: i64 = 60;

/// Gives every CronJob without one a standby node; returns whether it wrote.
pub(super) fn pick_standby_nodes(
    c: &Coordinator,
    cron_jobs: &[CronJob],
    node_ready: &dyn Fn(&str) -> bool,
) -> anyhow::Result<bool> {
    let mut infos: Option<Vec<NodeInfo>> = None;
    let mut changed = false;
    for cron_job in cron_jobs {
        if cron_job.metadata.deletion_timestamp.is_some() || has_standby(c, cron_job)? {
            continue;
        }
        let infos = match &mut infos {
            Some(infos) => infos,
            None => infos.insert(super::scheduling::node_infos(c, node_ready)?),
        };
        let Some(node) = choose(c, cron_job, infos) else {
            continue;
        };
        changed |= set_standby(&mut c.store(), cron_job, &node)?;
    }
    Ok(changed)
}

/// Whether the CronJob's standby node exists and is not lost.
fn has_standby(c: &Coordinator, cron_job: &CronJob) -> anyhow::Result<bool> {
    let Some(node) = standby_node(cron_job) else {
        return Ok(false);
    };
    if c.store().get("Node", "", node)?.is_none() {
        return Ok(false);
    }
    let lost_after = c.options.node_monitor_grace + c.options.pod_eviction_timeout;
    Ok(c.fleet.last_seen(node).elapsed() <= lost_after)
}

pub(super) fn standby_node(cron_job: &CronJob) -> Option<&str> {
    cron_job
        .metadata
        .annotations
        .get(STANDBY_NODE_ANNOTATION)
        .map(String::as_str)
        .filter(|node| !node.is_empty())
}

/// The node the scheduler would give a pod of the template on an empty fleet.
fn choose(c: &Coordinator, cron_job: &CronJob, infos: &[NodeInfo]) -> Option<String> {
    let template = &cron_job.spec.job_template.spec.template;
    let namespace = cron_job.metadata.namespace_or_empty();
    let mut request =
        pod_request_from_spec(namespace, &cron_job.metadata.name, None, &template.spec).ok()?;
    request.labels = template.metadata.labels.clone();
    request.image_platforms = super::scheduling::image_platforms(c, &template.spec);
    match schedule(&request, infos) {
        Decision::Bind { node } => Some(node),
        Decision::Unschedulable { message } => {
            log::debug!(
                "cronjob {namespace}/{} has no standby node: {message}",
                cron_job.metadata.name
            );
            None
        }
    }
}

fn set_standby(store: &mut Store, cron_job: &CronJob, node: &str) -> anyhow::Result<bool> {
    let namespace = cron_job.metadata.namespace_or_empty();
    let Some(record) = store.get("CronJob", namespace, &cron_job.metadata.name)? else {
        return Ok(false);
    };
    let mut object = record.object.clone();
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return Ok(false);
    };
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    let Some(annotations) = annotations.as_object_mut() else {
        return Ok(false);
    };
    annotations.insert(STANDBY_NODE_ANNOTATION.into(), Value::from(node));
    store.put_all(vec![object], record.source.as_deref())?;
    log::info!(
        "cronjob {namespace}/{} has {node} as its standby node",
        cron_job.metadata.name
    );
    Ok(true)
}

/// A coordinator that started lately leaves the CronJobs whose standby node it has not
/// heard from yet as if suspended, since that node may have run their missed times.
pub(super) fn hold_until_heard(c: &Coordinator, world: &mut World) {
    let grace = c.options.node_monitor_grace;
    for cron_job in &mut world.cron_jobs {
        let Some(node) = standby_node(cron_job) else {
            continue;
        };
        let (heard, since_start) = c.fleet.heard_since_start(node);
        if !heard && since_start < grace {
            cron_job.spec.suspend = true;
        }
    }
}

/// Takes the runs `node` reports of the CronJobs it keeps as their standby: a later
/// time than the stored `status.lastScheduleTime` replaces it. Returns whether it wrote.
pub(super) fn take_reported_runs(
    store: &mut Store,
    node: &str,
    runs: &[ReportedCronJob],
) -> anyhow::Result<bool> {
    let now = driver::unix_seconds(std::time::SystemTime::now());
    let mut changed = false;
    for run in runs {
        let Some(record) = store.get("CronJob", &run.namespace, &run.name)? else {
            continue;
        };
        let Some(reported) = seconds(&run.last_schedule_time) else {
            log::warn!(
                "node {node} reports cronjob {}/{} ran at an invalid time {:?}",
                run.namespace,
                run.name,
                run.last_schedule_time
            );
            continue;
        };
        if record.uid != run.fleet_uid
            || !is_standby_of(&record, node)
            || reported > now + CLOCK_SKEW_SECS
        {
            continue;
        }
        let mut status = record
            .status
            .clone()
            .unwrap_or_else(|| Value::Object(Default::default()));
        let stored = status
            .get("lastScheduleTime")
            .and_then(Value::as_str)
            .and_then(seconds);
        if stored.is_some_and(|stored| stored >= reported) {
            continue;
        }
        status["lastScheduleTime"] = Value::from(run.last_schedule_time.as_str());
        changed |= store.set_status("CronJob", &run.namespace, &run.name, &status)?;
        log::info!(
            "node {node} ran cronjob {}/{} at {} while cut off",
            run.namespace,
            run.name,
            run.last_schedule_time
        );
    }
    Ok(changed)
}

fn is_standby_of(record: &Record, node: &str) -> bool {
    matches!(Object::from_json(record.object.clone()), Ok(Object::CronJob(cron_job))
        if standby_node(&cron_job) == Some(node))
}

/// The CronJob as pushed to its standby node: with the coordinator's last schedule time.
pub(super) fn with_last_schedule(record: &Record, mut pushed: Value) -> Value {
    let last = record
        .status
        .as_ref()
        .and_then(|status| status.get("lastScheduleTime"))
        .and_then(Value::as_str);
    if let (Some(last), Some(annotations)) = (
        last,
        pushed
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut),
    ) {
        annotations.insert(LAST_SCHEDULE_ANNOTATION.into(), Value::from(last));
    }
    pushed
}

fn seconds(text: &str) -> Option<i64> {
    humantime::parse_rfc3339_weak(text)
        .ok()
        .map(driver::unix_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store_with_cron_job() -> (Store, String) {
        let mut store = Store::open_in_memory().unwrap();
        let cron_job = json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "upload", "namespace": "default",
                         "annotations": {STANDBY_NODE_ANNOTATION: "n0"}},
            "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}}}});
        store.put_all(vec![cron_job], None).unwrap();
        let status = json!({"lastScheduleTime": "2026-12-03T10:00:00Z"});
        store
            .set_status("CronJob", "default", "upload", &status)
            .unwrap();
        let uid = store
            .get("CronJob", "default", "upload")
            .unwrap()
            .unwrap()
            .uid;
        (store, uid)
    }

    fn run(uid: &str, time: &str) -> ReportedCronJob {
        ReportedCronJob {
            namespace: "default".into(),
            name: "upload".into(),
            fleet_uid: uid.into(),
            last_schedule_time: time.into(),
        }
    }

    fn last(store: &Store) -> String {
        let record = store.get("CronJob", "default", "upload").unwrap().unwrap();
        record.status.unwrap()["lastScheduleTime"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn only_the_standby_nodes_later_runs_are_taken() {
        let (mut store, uid) = store_with_cron_job();
        let later = "2026-12-03T10:07:00Z";
        // Another node, another incarnation, an earlier time, a time in the future, or
        // no time at all: the stored time stays.
        for (node, report) in [
            ("n1", run(&uid, later)),
            ("n0", run("someone-else", later)),
            ("n0", run(&uid, "2026-12-03T09:59:00Z")),
            ("n0", run(&uid, "2999-01-01T00:00:00Z")),
            ("n0", run(&uid, "yesterday")),
        ] {
            assert!(!take_reported_runs(&mut store, node, &[report]).unwrap());
            assert_eq!(last(&store), "2026-12-03T10:00:00Z");
        }
        assert!(take_reported_runs(&mut store, "n0", &[run(&uid, later)]).unwrap());
        assert_eq!(last(&store), later);
    }
}
