//! A fleet's CronJob keeps firing with its coordinator stopped (issue 17): while the
//! coordinator runs, it makes the Jobs and the standby board makes none; once the
//! coordinator has been gone for a while, the board fires the next minute itself and
//! runs the Job to completion; when the coordinator comes back it learns that run
//! before it runs the CronJob again, so that minute does not run twice.
//! Real agent in its own network namespace, real containers, real clock: about three
//! minutes of wall clock.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;
#[allow(dead_code)]
#[path = "common/fleet.rs"]
mod fleet_support;

use std::time::Duration;

use common::wait_for;
use fleet_support::Fleet;
use serde_json::Value;

const STANDBY: &str = "berth.dev/standby-node";

const CRON_JOB: &str = r#"apiVersion: batch/v1
kind: CronJob
metadata:
  name: upload
spec:
  schedule: "* * * * *"
  successfulJobsHistoryLimit: 10
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 1
          containers:
            - name: work
              image: busybox:1.35
              command: ["sh", "-c", "echo uploaded"]
"#;

/// The minutes (since the epoch) of the Jobs `upload` made, as `get jobs` shows them.
fn minutes(jobs: &Value) -> Vec<i64> {
    let mut minutes: Vec<i64> = jobs["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|job| job["metadata"]["name"].as_str()?.strip_prefix("upload-"))
        .filter_map(|minute| minute.parse().ok())
        .collect();
    minutes.sort_unstable();
    minutes
}

fn complete(jobs: &Value, minute: i64) -> bool {
    let name = format!("upload-{minute}");
    jobs["items"].as_array().into_iter().flatten().any(|job| {
        job["metadata"]["name"] == name.as_str()
            && job["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Complete" && c["status"] == "True")
            })
    })
}

fn unix_minute(rfc3339: &str) -> i64 {
    let at = humantime::parse_rfc3339(rfc3339).unwrap();
    at.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 / 60
}

#[test]
fn a_standby_board_fires_while_the_coordinator_is_down_and_it_learns_the_run() {
    let mut fleet = Fleet::start(&[("n0", "")], &[]);
    let path = fleet.coordinator.state.path().join("cron.yaml");
    std::fs::write(&path, CRON_JOB).unwrap();
    fleet
        .coordinator
        .ok(&["apply", "-f", path.to_str().unwrap()]);
    // The one board is its standby, and is given it.
    wait_for(Duration::from_secs(30), "n0 keeps upload", || {
        let at_coordinator = fleet.coordinator.json(&["get", "cronjob", "upload"]);
        (at_coordinator["metadata"]["annotations"][STANDBY] == "n0").then_some(())?;
        let on_board = fleet.agents[0].try_ok(&["get", "cronjob", "upload", "-o", "json"])?;
        (!on_board.is_empty()).then_some(())
    });

    // Online: the coordinator runs it, the board does not.
    let first = wait_for(
        Duration::from_secs(90),
        "the coordinator's first Job",
        || {
            minutes(&fleet.coordinator.json(&["get", "jobs"]))
                .first()
                .copied()
        },
    );
    // Its pod ran on the board, which has heard from the coordinator since that run.
    wait_for(
        Duration::from_secs(60),
        "the coordinator's Job complete",
        || complete(&fleet.coordinator.json(&["get", "jobs"]), first).then_some(()),
    );
    assert!(
        minutes(&fleet.agents[0].json(&["get", "jobs"])).is_empty(),
        "the board fired while its coordinator answered"
    );

    // Coordinator gone: after the stand-in delay the board fires the next minute itself.
    fleet.coordinator.stop();
    let own = wait_for(Duration::from_secs(120), "a Job the board made", || {
        minutes(&fleet.agents[0].json(&["get", "jobs"]))
            .first()
            .copied()
    });
    assert!(own > first, "the board ran {own}, the coordinator {first}");
    wait_for(Duration::from_secs(60), "the board's Job complete", || {
        complete(&fleet.agents[0].json(&["get", "jobs"]), own).then_some(())
    });

    // Back: the coordinator takes the board's run as its last schedule time before it
    // fires again, and never makes a Job for that minute.
    assert!(
        fleet.coordinator.spawn(),
        "{}",
        fleet.coordinator.log_tail()
    );
    wait_for(Duration::from_secs(90), "the board's run known", || {
        let cron = fleet.coordinator.json(&["get", "cronjob", "upload"]);
        let last = cron["status"]["lastScheduleTime"].as_str()?;
        (unix_minute(last) >= own).then_some(())
    });
    // It came from the board's report, not from a later run of the coordinator's own.
    let at = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_secs(own as u64 * 60),
    )
    .to_string();
    let log = std::fs::read_to_string(fleet.coordinator.state.path().join("coordinator.log"))
        .unwrap_or_default();
    assert!(
        log.contains(&format!(
            "node n0 ran cronjob default/upload at {at} while cut off"
        )),
        "no report of the board's run at {at}:\n{}",
        fleet.coordinator.log_tail()
    );
    let made = minutes(&fleet.coordinator.json(&["get", "jobs"]));
    assert!(
        !made.contains(&own),
        "minute {own} ran twice: at the coordinator too ({made:?})"
    );
}
