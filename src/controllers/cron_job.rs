//! The CronJob controller: makes a Job from the template at each scheduled time, as
//! Kubernetes' cronjob controller does.
//!
//! - Only the most recent missed time runs (after a power cut, not one Job per missed
//!   minute), and not at all when it is more than `startingDeadlineSeconds` late.
//! - `concurrencyPolicy`: `Allow` runs Jobs side by side, `Forbid` skips a time while a
//!   Job still runs, `Replace` deletes the running Jobs first.
//! - Finished Jobs beyond `successfulJobsHistoryLimit` and `failedJobsHistoryLimit` are
//!   deleted, oldest first.
//! - A clock before [`SANE_CLOCK`] is taken as not set yet (a board without a real-time
//!   clock boots in 1970 until NTP answers): nothing fires until it is. The same holds
//!   for a clock that reads earlier than the CronJob's creation or last scheduled time.
//!
//! - The schedule is read on the wall clock of `spec.timeZone` (UTC without one), as
//!   robfig/cron reads it for Kubernetes ([`Schedule::next_in`]: a local time skipped
//!   in spring does not fire that day, one repeated in autumn fires twice). A zone the
//!   scope could not load (its file gone from the board since the apply) makes a
//!   Warning `UnknownTimeZone`, Kubernetes' event, and nothing fires until it loads
//!   (looked for again every minute: [`ZONE_RETRY_SECS`]).
//!
//! The Jobs are named `<cronjob>-<scheduled time in minutes since the epoch>`, so a time
//! is never run twice, even by two passes that raced; `status.lastScheduleTime` is in
//! UTC whatever the zone.

use super::{key_of, Change, Note, World};
use crate::model::{CronJob, CronJobStatus, Job, Object, ObjectReference, Schedule, Zone};

const COMPONENT: &str = "cronjob-controller";

/// 2025-01-01T00:00:00Z: no board runs berth with a clock set earlier than this.
pub const SANE_CLOCK: i64 = 1_735_689_600;

pub fn reconcile(cron_job: &CronJob, world: &World) -> Vec<Change> {
    if cron_job.metadata.uid.is_empty() {
        return Vec::new();
    }
    let jobs: Vec<&Job> = world
        .jobs
        .iter()
        .filter(|job| owned_by(job, cron_job))
        .collect();
    let mut changes = prune_history(cron_job, &jobs);
    let mut status = observed_status(cron_job, &jobs);
    match zone_of(cron_job, world) {
        Ok(zone) => {
            if let Some(due) = due_time(cron_job, &zone, world) {
                changes.extend(run(cron_job, &jobs, due, &mut status));
            }
        }
        Err(problem) => changes.push(Note::warning(
            "CronJob",
            &cron_job.metadata,
            "UnknownTimeZone",
            problem,
            COMPONENT,
        )),
    }
    if status != cron_job.status {
        changes.push(Change::Status {
            key: key_of("CronJob", &cron_job.metadata),
            status: serde_json::to_value(&status).unwrap_or_default(),
        });
    }
    changes
}

fn owned_by(job: &Job, cron_job: &CronJob) -> bool {
    job.metadata
        .controller_ref()
        .is_some_and(|owner| owner.uid == cron_job.metadata.uid)
}

/// The status as the Jobs show it: the ones still running, and the last success.
fn observed_status(cron_job: &CronJob, jobs: &[&Job]) -> CronJobStatus {
    let mut status = cron_job.status.clone();
    status.active = jobs
        .iter()
        .filter(|job| job.status.finished().is_none())
        .map(|job| ObjectReference {
            kind: "Job".into(),
            namespace: job.metadata.namespace_or_empty().to_owned(),
            name: job.metadata.name.clone(),
            uid: job.metadata.uid.clone(),
        })
        .collect();
    let last_success = jobs
        .iter()
        .filter(|job| job.status.condition("Complete").is_some())
        .filter_map(|job| job.status.completion_time.clone())
        .max();
    if last_success > status.last_successful_time {
        status.last_successful_time = last_success;
    }
    status
}

/// The zone `cron_job`'s schedule is read in, or Kubernetes' event message for one the
/// scope could not load.
fn zone_of(cron_job: &CronJob, world: &World) -> Result<Zone, String> {
    let Some(name) = cron_job.spec.time_zone.as_deref() else {
        return Ok(Zone::utc());
    };
    match world.time_zones.get(name) {
        Some(Ok(zone)) => Ok(zone.clone()),
        Some(Err(problem)) => Err(format!("invalid timeZone: {name:?}: {problem}")),
        None => Err(format!(
            "invalid timeZone: {name:?}: {}",
            crate::model::zone::unknown(name)
        )),
    }
}

/// The scheduled time to run now (Unix seconds), if one has come and may still run.
fn due_time(cron_job: &CronJob, zone: &Zone, world: &World) -> Option<i64> {
    if cron_job.spec.suspend || world.now_secs < SANE_CLOCK {
        return None;
    }
    let schedule = Schedule::parse(&cron_job.spec.schedule).ok()?;
    let since = cron_job
        .status
        .last_schedule_time
        .as_deref()
        .or(cron_job.metadata.creation_timestamp.as_deref())
        .and_then(seconds)?;
    let since = match world.cron_covered_until.get(&cron_job.metadata.uid) {
        Some(covered) => since.max(*covered),
        None => since,
    };
    let latest = most_recent(&schedule, zone, since, world.now_secs)?;
    let late = world.now_secs - latest;
    match cron_job.spec.starting_deadline_seconds {
        Some(deadline) if late > deadline => None,
        _ => Some(latest),
    }
}

/// The last time `schedule` fires in `(since, now]`. A schedule missed for more than a
/// year is looked at over its last year only.
fn most_recent(schedule: &Schedule, zone: &Zone, since: i64, now: i64) -> Option<i64> {
    let mut at = since.max(now - 400 * 24 * 3600);
    let mut latest = None;
    while let Some(next) = schedule.next_in(at, zone).filter(|next| *next <= now) {
        latest = Some(next);
        at = next;
    }
    latest
}

/// Runs the Job of `due` as the concurrency policy allows, recording the time.
fn run(cron_job: &CronJob, jobs: &[&Job], due: i64, status: &mut CronJobStatus) -> Vec<Change> {
    let name = format!("{}-{}", cron_job.metadata.name, due / 60);
    let mut changes = Vec::new();
    if !jobs.iter().any(|job| job.metadata.name == name) {
        let running: Vec<&&Job> = jobs
            .iter()
            .filter(|job| job.status.finished().is_none())
            .collect();
        match cron_job.spec.concurrency_policy() {
            "Forbid" if !running.is_empty() => return changes,
            "Replace" => {
                for job in running {
                    changes.push(Change::Delete(key_of("Job", &job.metadata)));
                    changes.push(Note::normal(
                        "CronJob",
                        &cron_job.metadata,
                        "SuccessfulDelete",
                        format!("Deleted job {}", job.metadata.name),
                        COMPONENT,
                    ));
                }
            }
            _ => {}
        }
        changes.push(Change::Put(Box::new(Object::Job(new_job(cron_job, &name)))));
        changes.push(Note::normal(
            "CronJob",
            &cron_job.metadata,
            "SuccessfulCreate",
            format!("Created job {name}"),
            COMPONENT,
        ));
    }
    status.last_schedule_time = Some(rfc3339(due));
    changes
}

fn new_job(cron_job: &CronJob, name: &str) -> Job {
    let template = &cron_job.spec.job_template;
    let mut job = Job::default();
    job.metadata.name = name.to_owned();
    job.metadata.namespace = cron_job.metadata.namespace.clone();
    job.metadata.labels = template.metadata.labels.clone();
    job.metadata.annotations = template.metadata.annotations.clone();
    job.metadata.owner_references = vec![super::controlled_by_owner("CronJob", &cron_job.metadata)];
    job.spec = template.spec.clone();
    job
}

/// Deletes the oldest finished Jobs beyond the history limits.
fn prune_history(cron_job: &CronJob, jobs: &[&Job]) -> Vec<Change> {
    let keep = |type_: &str, limit: Option<i32>, default: i32| {
        let mut finished: Vec<&&Job> = jobs
            .iter()
            .filter(|job| job.status.condition(type_).is_some())
            .collect();
        finished.sort_by(|a, b| {
            let start = |job: &Job| job.status.start_time.clone().unwrap_or_default();
            start(b)
                .cmp(&start(a))
                .then_with(|| b.metadata.name.cmp(&a.metadata.name))
        });
        let limit = usize::try_from(limit.unwrap_or(default)).unwrap_or(0);
        finished
            .into_iter()
            .skip(limit)
            .map(|job| Change::Delete(key_of("Job", &job.metadata)))
            .collect::<Vec<_>>()
    };
    let spec = &cron_job.spec;
    let mut changes = keep(
        "Complete",
        spec.successful_jobs_history_limit,
        crate::model::DEFAULT_SUCCESSFUL_HISTORY,
    );
    changes.extend(keep(
        "Failed",
        spec.failed_jobs_history_limit,
        crate::model::DEFAULT_FAILED_HISTORY,
    ));
    changes
}

/// How long a scope waits before it looks again for a zone that did not load (tzdata
/// installed since, say): a board sleeping until then would not notice otherwise.
pub const ZONE_RETRY_SECS: i64 = 60;

/// When `cron_job` next fires (Unix seconds), for a scope that sleeps until then; while
/// its zone does not load, when to look for it again.
pub fn next_change(cron_job: &CronJob, world: &World) -> Option<i64> {
    if cron_job.spec.suspend {
        return None;
    }
    let Ok(zone) = zone_of(cron_job, world) else {
        return Some(world.now_secs + ZONE_RETRY_SECS);
    };
    Schedule::parse(&cron_job.spec.schedule)
        .ok()?
        .next_in(world.now_secs.max(SANE_CLOCK), &zone)
}

fn seconds(text: &str) -> Option<i64> {
    let time = humantime::parse_rfc3339_weak(text).ok()?;
    Some(super::driver::unix_seconds(time))
}

fn rfc3339(secs: i64) -> String {
    let time =
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    humantime::format_rfc3339_seconds(time).to_string()
}
