//! CronJobs on a real agent and a real clock (issue 17): a CronJob every minute makes a
//! Job at the minute, which runs to completion; one with `concurrencyPolicy: Forbid`
//! whose Job is still running makes no second Job at the next minute. The schedule
//! arithmetic itself is tested on a fake clock in `controllers::cron_job_tests`.
//! Real agent, real containers, as root; takes up to about two minutes of wall clock.
//! A CronJob's `timeZone` must load from the agent's zoneinfo directory (tzdata,
//! installed by scripts/setup) to be applied.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::time::Duration;

use common::{wait_for, TestAgent};
use serde_json::Value;

fn cron_job(name: &str, policy: &str, command: &str) -> String {
    format!(
        r#"apiVersion: batch/v1
kind: CronJob
metadata:
  name: {name}
spec:
  schedule: "* * * * *"
  concurrencyPolicy: {policy}
  successfulJobsHistoryLimit: 5
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 1
          containers:
            - name: work
              image: busybox:1.35
              command: ["sh", "-c", {command:?}]
"#
    )
}

/// The Jobs a CronJob made, by name.
fn jobs_of(agent: &TestAgent, cron_job: &str) -> Vec<Value> {
    let mut jobs: Vec<Value> = agent.json(&["get", "jobs"])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|job| job["metadata"]["ownerReferences"][0]["name"] == cron_job)
        .collect();
    jobs.sort_by_key(|job| job["metadata"]["name"].as_str().unwrap_or("").to_owned());
    jobs
}

fn complete(job: &Value) -> bool {
    job["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Complete" && c["status"] == "True")
    })
}

#[test]
fn cron_jobs_fire_on_the_minute_and_forbid_keeps_one_running() {
    let agent = TestAgent::start();
    for yaml in [
        cron_job("tick", "Allow", "true"),
        cron_job("hold", "Forbid", "sleep 600"),
    ] {
        let out = agent.apply_yaml(&yaml);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The next minute boundary makes tick's first Job, which completes.
    let first = wait_for(Duration::from_secs(90), "tick's first Job complete", || {
        jobs_of(&agent, "tick").into_iter().find(complete)
    });
    let name = first["metadata"]["name"].as_str().unwrap();
    let minute: i64 = name.strip_prefix("tick-").unwrap().parse().unwrap();
    let cron = agent.json(&["get", "cronjob", "tick"]);
    let last = cron["status"]["lastScheduleTime"].as_str().unwrap();
    let at = humantime::parse_rfc3339(last).unwrap();
    let at_secs = at.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!(at_secs / 60 >= minute, "{last} for {name}");
    assert_eq!(at_secs % 60, 0, "scheduled on the minute: {last}");

    // One more minute: tick makes a second Job; hold's first one still sleeps, so
    // Forbid makes no second one.
    wait_for(Duration::from_secs(90), "tick's second Job", || {
        (jobs_of(&agent, "tick").len() >= 2).then_some(())
    });
    let held = jobs_of(&agent, "hold");
    assert_eq!(held.len(), 1, "{held:?}");
    assert!(!complete(&held[0]));
    let hold = agent.json(&["get", "cronjob", "hold"]);
    assert_eq!(hold["status"]["active"].as_array().map(Vec::len), Some(1));

    let table = agent.ok(&["get", "cronjobs"]);
    assert_eq!(
        common::table_header(&table),
        [
            "NAME",
            "SCHEDULE",
            "TIMEZONE",
            "SUSPEND",
            "ACTIVE",
            "LAST SCHEDULE",
            "AGE"
        ]
    );
    assert!(table.contains("* * * * *"), "{table}");

    // Deleting the CronJob deletes its Jobs, and their pods.
    agent.ok(&["delete", "cronjob", "hold"]);
    wait_for(Duration::from_secs(30), "hold's Jobs and pods gone", || {
        let pods_left = agent.pods().iter().any(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .starts_with("hold-")
        });
        (jobs_of(&agent, "hold").is_empty() && !pods_left).then_some(())
    });
}

/// A suspended CronJob at nine every morning in `zone`.
fn zoned(name: &str, zone: &str) -> String {
    format!(
        r#"apiVersion: batch/v1
kind: CronJob
metadata:
  name: {name}
spec:
  schedule: "0 9 * * *"
  timeZone: {zone}
  suspend: true
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
            - name: work
              image: busybox:1.35
              command: ["true"]
"#
    )
}

#[test]
fn a_time_zone_must_load_to_be_applied_and_is_shown() {
    let agent = TestAgent::start();
    let out = agent.apply_yaml(&zoned("mars", "Mars/Olympus"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "CronJob.batch \"mars\" is invalid: spec.timeZone: Invalid value: \
             \"Mars/Olympus\": unknown time zone Mars/Olympus"
        ),
        "{stderr}"
    );
    let stored = agent.json(&["get", "cronjobs"]);
    assert_eq!(
        stored["items"].as_array().map(Vec::len),
        Some(0),
        "{stored}"
    );

    let out = agent.apply_yaml(&zoned("berlin", "Europe/Berlin"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = agent.ok(&["get", "cronjobs"]);
    let row: Vec<&str> = table
        .lines()
        .find(|line| line.starts_with("berlin "))
        .unwrap_or_else(|| panic!("no berlin row in:\n{table}"))
        .split_whitespace()
        .collect();
    // NAME, then the schedule's five fields, then TIMEZONE and SUSPEND.
    assert_eq!(
        row[..8],
        ["berlin", "0", "9", "*", "*", "*", "Europe/Berlin", "True"]
    );
}
