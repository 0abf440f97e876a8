//! The CronJob controller on a fake clock: worlds at chosen times.

use serde_json::json;

use super::cron_job::{next_change, reconcile, SANE_CLOCK, ZONE_RETRY_SECS};
use super::{Change, Note, World};
use crate::api::zoneinfo::read_zone;
use crate::model::{CronJob, CronJobStatus, Job, JobCondition, Object};
use crate::store::Key;

/// 2026-12-03T10:00:00Z.
const T0: i64 = 1_796_292_000;

fn cron_job(spec: serde_json::Value) -> CronJob {
    let mut spec = spec;
    spec["jobTemplate"] = json!({
        "metadata": {"labels": {"app": "upload"}},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "up", "image": "busybox"}]}}},
    });
    serde_json::from_value(json!({
        "metadata": {"name": "upload", "namespace": "default", "uid": "uid-cj",
                     "creationTimestamp": "2026-12-03T09:30:00Z"},
        "spec": spec,
    }))
    .unwrap()
}

fn world(cron_job: &CronJob, jobs: Vec<Job>, now: i64) -> World {
    World {
        cron_jobs: vec![cron_job.clone()],
        jobs,
        now: rfc3339(now),
        now_secs: now,
        ..World::default()
    }
}

fn rfc3339(secs: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

fn created_jobs(changes: &[Change]) -> Vec<Job> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Put(object) => match &**object {
                Object::Job(job) => Some(job.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn status(changes: &[Change]) -> Option<CronJobStatus> {
    changes.iter().find_map(|c| match c {
        Change::Status { status, .. } => Some(serde_json::from_value(status.clone()).unwrap()),
        _ => None,
    })
}

/// `job` as stored: with a uid, and finished as `condition` says (if any).
fn stored(mut job: Job, condition: Option<&str>) -> Job {
    job.metadata.uid = format!("uid-{}", job.metadata.name);
    if let Some(type_) = condition {
        job.status.start_time = Some(rfc3339(T0));
        job.status.completion_time = Some(rfc3339(T0 + 5));
        job.status.conditions.push(JobCondition {
            type_: type_.into(),
            status: "True".into(),
            ..JobCondition::default()
        });
    }
    job
}

#[test]
fn fires_each_scheduled_minute_once() {
    let every = cron_job(json!({"schedule": "* * * * *"}));
    // 30 minutes after its creation: only the latest missed minute runs.
    let changes = reconcile(&every, &world(&every, Vec::new(), T0 + 10));
    let jobs = created_jobs(&changes);
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job.metadata.name, format!("upload-{}", T0 / 60));
    assert_eq!(job.metadata.labels["app"], "upload");
    let owner = &job.metadata.owner_references[0];
    assert_eq!(
        (owner.kind.as_str(), owner.api_version.as_str()),
        ("CronJob", "batch/v1")
    );
    let recorded = status(&changes).unwrap();
    assert_eq!(
        recorded.last_schedule_time.as_deref(),
        Some("2026-12-03T10:00:00Z")
    );

    // Later in the same minute: nothing new.
    let mut ran = every.clone();
    ran.status = recorded;
    let jobs_now = vec![stored(job.clone(), None)];
    let changes = reconcile(&ran, &world(&ran, jobs_now.clone(), T0 + 50));
    assert!(created_jobs(&changes).is_empty());
    assert_eq!(status(&changes).unwrap().active.len(), 1);
    // The next minute: the next Job, beside the running one (Allow).
    ran.status.active = status(&changes).unwrap().active;
    let changes = reconcile(&ran, &world(&ran, jobs_now, T0 + 61));
    assert_eq!(
        created_jobs(&changes)[0].metadata.name,
        format!("upload-{}", T0 / 60 + 1)
    );
    assert_eq!(
        next_change(&ran, &world(&ran, Vec::new(), T0 + 61)),
        Some(T0 + 120)
    );
}

#[test]
fn forbid_skips_while_a_job_runs_and_replace_deletes_it() {
    let mut forbid = cron_job(json!({"schedule": "* * * * *", "concurrencyPolicy": "Forbid"}));
    forbid.status.last_schedule_time = Some(rfc3339(T0 - 60));
    let running = stored(
        created_jobs(&reconcile(&forbid, &world(&forbid, Vec::new(), T0)))[0].clone(),
        None,
    );
    let changes = reconcile(&forbid, &world(&forbid, vec![running.clone()], T0 + 1));
    assert!(
        created_jobs(&changes).is_empty(),
        "Forbid: the old Job still runs"
    );
    assert!(!changes.iter().any(|c| matches!(c, Change::Delete(_))));

    let mut replace = forbid.clone();
    replace.spec.concurrency_policy = "Replace".into();
    let mut other = running;
    other.metadata.name = "upload-older".into();
    let changes = reconcile(&replace, &world(&replace, vec![other], T0 + 1));
    assert!(changes.contains(&Change::Delete(Key::new("Job", "default", "upload-older"))));
    assert_eq!(created_jobs(&changes).len(), 1);
}

#[test]
fn a_missed_time_past_the_starting_deadline_does_not_run() {
    let mut late = cron_job(json!({"schedule": "0 * * * *", "startingDeadlineSeconds": 200}));
    late.status.last_schedule_time = Some(rfc3339(T0 - 3600));
    // Power back at 10:05: the 10:00 run is 300 s late, past the 200 s deadline.
    assert!(created_jobs(&reconcile(&late, &world(&late, Vec::new(), T0 + 300))).is_empty());
    // Back at 10:03 it would still run.
    assert_eq!(
        created_jobs(&reconcile(&late, &world(&late, Vec::new(), T0 + 180))).len(),
        1
    );
}

#[test]
fn nothing_fires_before_the_clock_is_set_or_while_suspended() {
    let every = cron_job(json!({"schedule": "* * * * *"}));
    let unset = SANE_CLOCK - 3600;
    assert!(reconcile(&every, &world(&every, Vec::new(), unset)).is_empty());
    let mut suspended = every.clone();
    suspended.spec.suspend = true;
    assert!(created_jobs(&reconcile(&suspended, &world(&suspended, Vec::new(), T0))).is_empty());
    assert_eq!(
        next_change(&suspended, &world(&suspended, Vec::new(), T0)),
        None
    );
}

#[test]
fn old_finished_jobs_beyond_the_history_limits_are_deleted() {
    let mut keep = cron_job(json!({"schedule": "@daily",
        "successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 0}));
    keep.status.last_schedule_time = Some(rfc3339(T0));
    let job = |name: &str, start: i64, condition: &str| {
        let mut job =
            created_jobs(&reconcile(&keep, &world(&keep, Vec::new(), T0 + 86_400))).remove(0);
        job.metadata.name = name.into();
        let mut job = stored(job, Some(condition));
        job.status.start_time = Some(rfc3339(start));
        job
    };
    let jobs = vec![
        job("upload-a", T0 - 300, "Complete"),
        job("upload-b", T0 - 200, "Complete"),
        job("upload-c", T0 - 100, "Failed"),
    ];
    let changes = reconcile(&keep, &world(&keep, jobs, T0 + 10));
    let deleted: Vec<&str> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Delete(key) => Some(key.name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, ["upload-a", "upload-c"]);
    assert_eq!(
        status(&changes).unwrap().last_successful_time.as_deref(),
        Some("2026-12-03T10:00:05Z")
    );
}

#[test]
fn a_stand_in_fires_only_times_after_what_is_covered() {
    let every = cron_job(json!({"schedule": "*/10 * * * *"}));
    let mut world = world(&every, Vec::new(), T0 + 25 * 60);
    // The coordinator was heard from at 10:22: 10:20 was its to run.
    world
        .cron_covered_until
        .insert("uid-cj".into(), T0 + 22 * 60);
    assert!(created_jobs(&reconcile(&every, &world)).is_empty());
    // At 10:31 the stand-in runs 10:30, which no one else could have.
    world.now_secs = T0 + 31 * 60;
    world.now = rfc3339(world.now_secs);
    let jobs = created_jobs(&reconcile(&every, &world));
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].metadata.name, format!("upload-{}", T0 / 60 + 30));
}

fn at(text: &str) -> i64 {
    let time = humantime::parse_rfc3339(text).unwrap();
    super::driver::unix_seconds(time)
}

/// `cron_job`'s world at `now`, with its time zone as the scope loads it from Debian's
/// tzdata (scripts/setup installs it).
fn zoned_world(cron_job: &CronJob, now: i64) -> World {
    let mut w = world(cron_job, Vec::new(), now);
    if let Some(name) = &cron_job.spec.time_zone {
        let root = std::path::Path::new("/usr/share/zoneinfo");
        w.time_zones.insert(name.clone(), read_zone(root, name));
    }
    w
}

#[test]
fn nine_in_new_york_fires_at_fourteen_utc_in_winter_and_thirteen_in_summer() {
    let mut nine = cron_job(json!({"schedule": "0 9 * * *", "timeZone": "America/New_York"}));
    // Created 2026-12-03T09:30Z: 9:00 in New York is 14:00 UTC in December.
    let before = reconcile(&nine, &zoned_world(&nine, at("2026-12-03T13:59:50Z")));
    assert!(created_jobs(&before).is_empty());
    assert_eq!(
        next_change(&nine, &zoned_world(&nine, at("2026-12-03T13:00:00Z"))),
        Some(at("2026-12-03T14:00:00Z"))
    );
    let changes = reconcile(&nine, &zoned_world(&nine, at("2026-12-03T14:00:10Z")));
    let name = format!("upload-{}", at("2026-12-03T14:00:00Z") / 60);
    assert_eq!(created_jobs(&changes)[0].metadata.name, name);
    assert_eq!(
        status(&changes).unwrap().last_schedule_time.as_deref(),
        Some("2026-12-03T14:00:00Z")
    );
    // In July, daylight saving time: 13:00 UTC.
    nine.status.last_schedule_time = Some("2027-07-09T13:00:00Z".into());
    let changes = reconcile(&nine, &zoned_world(&nine, at("2027-07-10T13:00:05Z")));
    assert_eq!(
        status(&changes).unwrap().last_schedule_time.as_deref(),
        Some("2027-07-10T13:00:00Z")
    );
    assert_eq!(
        next_change(&nine, &zoned_world(&nine, at("2027-07-10T13:00:05Z"))),
        Some(at("2027-07-11T13:00:00Z"))
    );
}

#[test]
fn the_hour_berlin_repeats_in_autumn_runs_twice_with_two_jobs() {
    let mut night = cron_job(json!({"schedule": "30 2 * * *", "timeZone": "Europe/Berlin"}));
    night.status.last_schedule_time = Some("2027-10-31T00:30:00Z".into()); // 02:30 CEST
    let changes = reconcile(&night, &zoned_world(&night, at("2027-10-31T01:30:05Z")));
    // 02:30 CET, an hour later, under its own name.
    assert_eq!(
        created_jobs(&changes)[0].metadata.name,
        format!("upload-{}", at("2027-10-31T01:30:00Z") / 60)
    );
    assert_eq!(
        status(&changes).unwrap().last_schedule_time.as_deref(),
        Some("2027-10-31T01:30:00Z")
    );
    // In spring the 02:30 that does not exist is skipped: from Saturday's run, the next
    // is Monday's.
    night.status.last_schedule_time = Some("2027-03-27T01:30:00Z".into()); // 02:30 CET
    assert_eq!(
        next_change(&night, &zoned_world(&night, at("2027-03-27T12:00:00Z"))),
        Some(at("2027-03-29T00:30:00Z"))
    );
    let sunday = reconcile(&night, &zoned_world(&night, at("2027-03-28T12:00:00Z")));
    assert!(created_jobs(&sunday).is_empty());
}

#[test]
fn a_zone_the_scope_cannot_load_warns_and_fires_nothing() {
    let lost = cron_job(json!({"schedule": "* * * * *", "timeZone": "Mars/Olympus"}));
    // Loaded and failed (the file gone since the apply), or never looked up: the same.
    for w in [
        zoned_world(&lost, T0 + 10),
        world(&lost, Vec::new(), T0 + 10),
    ] {
        let changes = reconcile(&lost, &w);
        assert!(created_jobs(&changes).is_empty());
        let warning = changes.iter().find_map(|c| match c {
            Change::Event(note) => Some(note.as_ref().clone()),
            _ => None,
        });
        assert_eq!(
            warning,
            Some(Note {
                kind: "CronJob".into(),
                namespace: "default".into(),
                name: "upload".into(),
                uid: "uid-cj".into(),
                warning: true,
                reason: "UnknownTimeZone",
                message: "invalid timeZone: \"Mars/Olympus\": unknown time zone Mars/Olympus"
                    .into(),
                component: "cronjob-controller",
            })
        );
        // Looked for again a minute later.
        assert_eq!(next_change(&lost, &w), Some(T0 + 10 + ZONE_RETRY_SECS));
    }
    // A zone that loads after all: it fires again.
    let mut found = zoned_world(&lost, T0 + 10);
    let berlin = read_zone(std::path::Path::new("/usr/share/zoneinfo"), "Europe/Berlin");
    found.time_zones.insert("Mars/Olympus".into(), berlin);
    assert_eq!(created_jobs(&reconcile(&lost, &found)).len(), 1);
}
