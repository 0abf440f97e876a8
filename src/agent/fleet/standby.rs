//! The CronJobs this board keeps as their standby node (see `coordinator::cron_standby`):
//! the latest time it fired each while cut off goes to the coordinator before the next
//! poll, so the coordinator takes it as `status.lastScheduleTime` before it runs the
//! CronJob again and a time is not run twice.

use std::collections::HashMap;

use crate::agent::Agent;
use crate::api::fleet::{PodStatusReport, ReportedCronJob, FLEET_UID_ANNOTATION};
use crate::api::{percent_encode, ApiError, Client};
use crate::store::Record;

/// What the coordinator acknowledged, by fleet uid: the last schedule time reported.
#[derive(Debug, Default)]
pub struct ReportedRuns(HashMap<String, String>);

impl ReportedRuns {
    /// Sends the runs the coordinator has not heard of. Nothing is sent (and the store
    /// is read only) while this board fired nothing on its own.
    pub fn send(&mut self, agent: &Agent, client: &Client, node: &str) -> Result<(), ApiError> {
        let records = match agent.store().list("CronJob", None) {
            Ok(records) => records,
            Err(err) => {
                log::warn!("cannot read the standby CronJobs: {err}");
                return Ok(());
            }
        };
        let runs: Vec<ReportedCronJob> = records
            .iter()
            .filter_map(own_run)
            .filter(|run| self.0.get(&run.fleet_uid) != Some(&run.last_schedule_time))
            .collect();
        if runs.is_empty() {
            return Ok(());
        }
        let report = PodStatusReport {
            pods: Vec::new(),
            cron_jobs: runs,
        };
        let body = serde_json::to_value(&report).map_err(|err| ApiError::Protocol {
            reason: format!("cannot encode the cronjob report: {err}"),
        })?;
        let path = format!(
            "/apis/berth.dev/v1/nodes/{}/podstatuses",
            percent_encode(node)
        );
        client.request("PUT", &path, Some(&body))?;
        for run in report.cron_jobs {
            log::info!(
                "told the coordinator cronjob {}/{} ran here at {}",
                run.namespace,
                run.name,
                run.last_schedule_time
            );
            self.0.insert(run.fleet_uid, run.last_schedule_time);
        }
        Ok(())
    }
}

/// A pushed CronJob with a local last schedule time: one this board ran on its own
/// (only it writes a pushed CronJob's status here).
fn own_run(record: &Record) -> Option<ReportedCronJob> {
    let annotations = record.object.pointer("/metadata/annotations")?;
    let fleet_uid = annotations.get(FLEET_UID_ANNOTATION)?.as_str()?;
    let local = record.status.as_ref()?.get("lastScheduleTime")?.as_str()?;
    Some(ReportedCronJob {
        namespace: record.namespace.clone(),
        name: record.name.clone(),
        fleet_uid: fleet_uid.to_owned(),
        last_schedule_time: local.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn record(annotations: Value, status: Option<Value>) -> Record {
        Record {
            kind: "CronJob".into(),
            namespace: "default".into(),
            name: "upload".into(),
            uid: "local".into(),
            generation: 1,
            resource_version: 1,
            creation_timestamp: "2026-12-03T10:00:00Z".into(),
            source: Some(crate::api::fleet::FLEET_SOURCE.into()),
            object: json!({"metadata": {"name": "upload", "annotations": annotations}}),
            status,
        }
    }

    #[test]
    fn only_pushed_cron_jobs_that_ran_here_are_reported() {
        let ran = Some(json!({"lastScheduleTime": "2026-12-03T10:07:00Z"}));
        let pushed = json!({FLEET_UID_ANNOTATION: "u1"});
        let run = own_run(&record(pushed.clone(), ran.clone())).unwrap();
        assert_eq!(
            (run.fleet_uid.as_str(), run.last_schedule_time.as_str()),
            ("u1", "2026-12-03T10:07:00Z")
        );
        assert!(own_run(&record(pushed, None)).is_none());
        // Applied on the board itself: not the coordinator's business.
        assert!(own_run(&record(json!({}), ran)).is_none());
    }
}
