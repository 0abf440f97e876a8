//! CronJobs that keep firing on a board cut off from every coordinator.
//!
//! The coordinator runs a fleet's CronJobs: its controller makes the Jobs and the
//! scheduler places their pods. So that a board cut off from it (or a fleet whose
//! coordinator is down) still runs them, each CronJob gets a *standby node*, chosen
//! once as the scheduler would place a pod of its template, with capacity but not
//! current use counted, and kept in [`STANDBY_NODE_ANNOTATION`] (carried over an
//! apply that lacks it) until that node is deleted or lost. The standby node is given
//! the CronJob and what its pods read. It leaves it alone while the coordinator answers;
//! once cut off for a while it fires the times after the last answer it had, and on its
//! return reports the latest it ran before it polls, which the coordinator takes as
//! `status.lastScheduleTime` (and remembers) so the time is not run twice.
//!
//! A coordinator that starts does not catch up a standby CronJob's missed times until
//! its standby node has polled it (having reported its own runs first), or for the node
//! monitor grace period (at least 35 s, an agent's longest reconnect delay and a
//! margin). As in Kubernetes, a CronJob runs a time approximately once: a board that
//! is cut off while the coordinator still runs fires the times it misses too.

use serde_json::Value;

use super::fleet::Fleet;
use super::Coordinator;
use std::collections::HashSet;
use std::time::Duration;

use crate::api::fleet::{ReportedCronJob, STANDBY_NODE_ANNOTATION};
use crate::controllers::scheduler::{
    pod_request_from_spec, schedule, Decision, NodeInfo, PlacedPod,
};
use crate::controllers::{driver, World};
use crate::model::{CronJob, Object};
use crate::store::{Record, Store};

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
        let Some((node, placed)) = choose(c, cron_job, infos) else {
            continue;
        };
        // Counted where it goes, so the next CronJob's standby spreads to another board.
        if let Some(info) = infos.iter_mut().find(|i| i.name == node) {
            info.pods.push(placed);
        }
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

/// The node the scheduler would give a pod of the template on a fleet holding only the
/// standby CronJobs' pods, and that pod as placed there.
fn choose(c: &Coordinator, cron_job: &CronJob, infos: &[NodeInfo]) -> Option<(String, PlacedPod)> {
    let template = &cron_job.spec.job_template.spec.template;
    let namespace = cron_job.metadata.namespace_or_empty();
    let mut request =
        pod_request_from_spec(namespace, &cron_job.metadata.name, None, &template.spec).ok()?;
    request.labels = template.metadata.labels.clone();
    // One owner for every standby pick: the scheduler spreads them over the boards.
    request.owner_uid = Some("berth.dev/cron-job-standby".to_owned());
    request.image_platforms = super::scheduling::image_platforms(c, &template.spec);
    match schedule(&request, infos) {
        Decision::Bind { node } => Some((node, request.placed())),
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

/// The reconnect delay of an agent grows to 30 s (`agent::fleet::reconnect_retries`):
/// a coordinator that starts waits at least that, with a margin, for a standby node.
const LONGEST_RECONNECT: Duration = Duration::from_secs(35);

/// A coordinator that started lately leaves the CronJobs whose standby node has not
/// polled it yet (`polled`, taken before the world was read) as if suspended, since
/// that node may have run their missed times and reports them before it polls. Runs
/// reported since are covered in the world, so none is run again.
pub(super) fn hold_until_heard(
    c: &Coordinator,
    polled: &(HashSet<String>, Duration),
    world: &mut World,
) {
    let (heard, since_start) = polled;
    let hold = c.options.node_monitor_grace.max(LONGEST_RECONNECT);
    for cron_job in &mut world.cron_jobs {
        let Some(node) = standby_node(cron_job) else {
            continue;
        };
        if !heard.contains(node) && *since_start < hold {
            cron_job.spec.suspend = true;
        }
    }
    world.cron_covered_until.extend(c.fleet.reported_runs());
}

/// Takes the runs `node` reports of the CronJobs it keeps as their standby: a later
/// time than the stored `status.lastScheduleTime` replaces it, and is remembered in
/// `fleet`. A time in the future is refused: a board reports only after it is back, so
/// a node cannot use one to keep a CronJob from running. Returns whether it wrote.
pub(super) fn take_reported_runs(
    store: &mut Store,
    fleet: &Fleet,
    node: &str,
    runs: &[ReportedCronJob],
) -> anyhow::Result<bool> {
    let now = driver::unix_seconds(std::time::SystemTime::now());
    let mut changed = false;
    for run in runs {
        let Some(record) = store.get("CronJob", &run.namespace, &run.name)? else {
            continue;
        };
        let reported = seconds(&run.last_schedule_time).filter(|at| *at <= now);
        let Some(reported) = reported else {
            log::warn!(
                "node {node} reports cronjob {}/{} ran at {:?}: not a time in the past",
                run.namespace,
                run.name,
                run.last_schedule_time
            );
            continue;
        };
        if record.uid != run.fleet_uid || !is_standby_of(&record, node) {
            continue;
        }
        fleet.record_run(&record.uid, reported);
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
        status["lastScheduleTime"] = Value::from(rfc3339(reported));
        changed |= store.set_status("CronJob", &run.namespace, &run.name, &status)?;
        log::info!(
            "node {node} ran cronjob {}/{} at {} while cut off",
            run.namespace,
            run.name,
            rfc3339(reported)
        );
    }
    Ok(changed)
}

fn is_standby_of(record: &Record, node: &str) -> bool {
    matches!(Object::from_json(record.object.clone()), Ok(Object::CronJob(cron_job))
        if standby_node(&cron_job) == Some(node))
}

fn rfc3339(secs: i64) -> String {
    let time = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    humantime::format_rfc3339_seconds(time).to_string()
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
        let fleet = Fleet::new(&store).unwrap();
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
            assert!(!take_reported_runs(&mut store, &fleet, node, &[report]).unwrap());
            assert_eq!(last(&store), "2026-12-03T10:00:00Z");
        }
        // Written as Kubernetes writes times, and remembered for the next pass.
        let loose = run(&uid, "2026-12-03 10:07:00");
        assert!(take_reported_runs(&mut store, &fleet, "n0", &[loose]).unwrap());
        assert_eq!(last(&store), later);
        assert_eq!(fleet.reported_runs()[&uid], 1_796_292_420);
    }
}
