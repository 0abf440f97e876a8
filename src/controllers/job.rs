//! The Job controller: runs pods of a Job's template until `completions` of them
//! succeeded (or, without `completions`, until one did and none is left running), at
//! most `parallelism` at a time, as Kubernetes' job controller does.
//!
//! - A Job fails with `BackoffLimitExceeded` once more pods failed than `backoffLimit`,
//!   and with `DeadlineExceeded` once it ran `activeDeadlineSeconds`; its running pods
//!   are then stopped.
//! - `podFailurePolicy` judges each failed pod by the first rule it matches
//!   ([`pod_failure::judge`]): `FailJob` fails the Job at once (`PodFailurePolicy`, with
//!   Kubernetes' message naming the pod, container and exit code), `Ignore` keeps the
//!   failure out of `status.failed` and so of `backoffLimit`, `Count` (or no match)
//!   counts it. Ignored failures still lengthen the back-off before a replacement, as in
//!   Kubernetes, so pods that always fail are not restarted in a tight loop.
//! - `suspend` stops the running pods and starts none; `ttlSecondsAfterFinished`
//!   deletes a finished Job (its pods go with it, through garbage collection).
//! - `Indexed` Jobs give each pod an index (`batch.kubernetes.io/job-completion-index`,
//!   `JOB_COMPLETION_INDEX`) and complete when every index has succeeded once.
//!
//! The status is stored, since pods can be removed: the counts of succeeded and failed
//! pods never go down. Limit: with `restartPolicy: OnFailure` a container's restarts do
//! not count against `backoffLimit` (the pod does not fail; its restarts show in its
//! status).

use std::collections::BTreeSet;

use serde_json::Value;

use super::job_indexes::{
    format_indexes, met_success_rule, parse_indexes, IndexFailures, INDEX_FAILURE_COUNT,
};
use super::pod_failure::{self, Verdict};
use super::{key_of, mark_pod, Change, Note, World};
use crate::model::{EnvVar, Job, JobCondition, JobStatus, Pod};

const COMPONENT: &str = "job-controller";
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

/// What the Job's pods are doing, as this scope observes them.
struct Observed<'a> {
    /// Not ended and not terminating.
    active: Vec<&'a Pod>,
    succeeded: usize,
    /// Failures that count against `backoffLimit`.
    failed: usize,
    /// Failures the pod failure policy ignores.
    ignored: usize,
    /// Why the pod failure policy fails the Job, if a failure matched a `FailJob` rule.
    fail_job: Option<String>,
    /// Indexed Jobs: the indexes of the pods that succeeded.
    succeeded_indexes: BTreeSet<i32>,
    /// Indexed Jobs: the indexes of the active pods.
    active_indexes: BTreeSet<i32>,
    /// When the last of its failed pods failed (Unix seconds).
    last_failure: Option<i64>,
    /// Jobs with `backoffLimitPerIndex`: failures per index.
    index_failures: IndexFailures,
}

impl<'a> Observed<'a> {
    fn of(job: &Job, world: &'a World) -> Observed<'a> {
        let mut observed = Observed {
            active: Vec::new(),
            succeeded: 0,
            failed: 0,
            ignored: 0,
            fail_job: None,
            succeeded_indexes: BTreeSet::new(),
            active_indexes: BTreeSet::new(),
            last_failure: None,
            index_failures: IndexFailures::default(),
        };
        for pod in world.controlled_pods(&job.metadata.uid) {
            let uid = &pod.metadata.uid;
            let index = completion_index(pod);
            let earlier = earlier_index_failures(pod);
            if let Some(failure) = world.failed_pods.get(uid) {
                observed.last_failure = observed.last_failure.max(Some(failure.at));
                let policy = job.spec.pod_failure_policy.as_ref();
                let verdict = pod_failure::judge(policy, pod, failure);
                observed.count_failure(index, earlier, failure.at, verdict);
                continue;
            }
            if let Some(index) = index {
                observed.index_failures.note(index, earlier, 0);
            }
            if world.ended_pods.contains(uid) {
                observed.succeeded += 1;
                observed.succeeded_indexes.extend(index);
            } else if pod.metadata.deletion_timestamp.is_none() {
                observed.active.push(pod);
                observed.active_indexes.extend(index);
            }
        }
        observed
    }

    /// Counts a failed pod of `index` (if indexed) by the policy's verdict.
    fn count_failure(&mut self, index: Option<i32>, earlier: i32, at: i64, verdict: Verdict) {
        let failures = &mut self.index_failures;
        if let Some(index) = index {
            failures.note_time(index, at);
            let added = i32::from(verdict != Verdict::Ignore);
            failures.note(index, earlier, added);
            if verdict == Verdict::FailIndex {
                failures.failed_by_policy.insert(index);
            }
        }
        match verdict {
            Verdict::Count | Verdict::FailIndex => self.failed += 1,
            Verdict::Ignore => self.ignored += 1,
            Verdict::FailJob(message) => {
                self.failed += 1;
                self.fail_job.get_or_insert(message);
            }
        }
    }

    /// The failures the back-off before a replacement counts: the stored count, or more
    /// when ignored failures are among those seen.
    fn back_off_failures(&self, status: &JobStatus) -> i32 {
        status.failed.max(count(self.failed + self.ignored))
    }
}

pub fn reconcile(job: &Job, world: &World) -> Vec<Change> {
    if job.metadata.uid.is_empty() {
        return Vec::new();
    }
    let observed = Observed::of(job, world);
    let mut status = job.status.clone();
    status.succeeded = status.succeeded.max(count(observed.succeeded));
    status.failed = status.failed.max(count(observed.failed));
    status.active = count(observed.active.len());
    if job.spec.indexed() {
        let known = parse_indexes(&status.completed_indexes);
        status.completed_indexes =
            format_indexes(&known.union(&observed.succeeded_indexes).copied().collect());
        let known = parse_indexes(&status.failed_indexes);
        let failed = observed.index_failures.failed(&job.spec, &known);
        status.failed_indexes = format_indexes(&failed);
    }
    let mut changes = Vec::new();
    if let Some(finished) = status.finished().cloned() {
        changes.extend(stop(&observed.active));
        if expired(job, &finished, world.now_secs) {
            changes.push(Change::Delete(key_of("Job", &job.metadata)));
            return changes;
        }
    } else if let Some((reason, message)) = failure(job, &status, &observed, world.now_secs) {
        changes.extend(stop(&observed.active));
        finish(&mut status, "Failed", reason, &message, world);
        changes.push(Note::warning(
            "Job",
            &job.metadata,
            reason,
            message,
            COMPONENT,
        ));
    } else if let Some((reason, message)) = complete(job, &status, &observed) {
        changes.extend(stop(&observed.active));
        if !reason.is_empty() {
            finish(&mut status, "SuccessCriteriaMet", reason, &message, world);
        }
        finish(&mut status, "Complete", reason, &message, world);
        status.completion_time = Some(world.now.clone());
        changes.push(Note::normal(
            "Job",
            &job.metadata,
            "Completed",
            "Job completed".to_string(),
            COMPONENT,
        ));
    } else if job.spec.suspend {
        changes.extend(stop(&observed.active));
    } else {
        status.start_time.get_or_insert_with(|| world.now.clone());
        // After a failure, replacements wait out Kubernetes' pod-failure back-off (per
        // index, when failures are counted per index).
        let failures = observed.back_off_failures(&status);
        let per_index = job.spec.backoff_limit_per_index.is_some();
        let retry = retry_at(failures, observed.last_failure).filter(|_| !per_index);
        if retry.is_none_or(|at| world.now_secs >= at) {
            changes.extend(new_pods(job, &status, &observed, world.now_secs));
        }
    }
    if status != job.status {
        changes.push(Change::Status {
            key: key_of("Job", &job.metadata),
            status: serde_json::to_value(&status).unwrap_or(Value::Null),
        });
    }
    changes
}

/// When time alone next changes what the controller does with `job` (Unix seconds):
/// its deadline or the end of a failure back-off while it runs, the end of its TTL
/// once it finished.
pub fn next_change(job: &Job, world: &World) -> Option<i64> {
    if let Some(finished) = job.status.finished() {
        let ttl = job.spec.ttl_seconds_after_finished?;
        return Some(seconds(&finished.last_transition_time)?.saturating_add(i64::from(ttl)));
    }
    let deadline = job.spec.active_deadline_seconds.and_then(|deadline| {
        Some(seconds(job.status.start_time.as_deref()?)?.saturating_add(deadline))
    });
    let observed = Observed::of(job, world);
    let failures = &observed.index_failures;
    let back_off = if job.spec.backoff_limit_per_index.is_some() {
        // Only indexes still to run wait for their back-off.
        let ended = parse_indexes(&job.status.completed_indexes)
            .into_iter()
            .chain(parse_indexes(&job.status.failed_indexes))
            .collect::<std::collections::BTreeSet<i32>>();
        failures
            .last
            .iter()
            .filter(|(index, _)| !ended.contains(index))
            .filter_map(|(index, at)| retry_at(failures.count(*index), Some(*at)))
            .filter(|at| *at > world.now_secs)
            .min()
    } else {
        let failures = observed.back_off_failures(&job.status);
        retry_at(failures, observed.last_failure).filter(|at| *at > world.now_secs)
    };
    [deadline, back_off].into_iter().flatten().min()
}

/// Kubernetes' pod-failure back-off: after the n-th failure, replacements wait 10 s
/// doubled n-1 times, at most 6 min, from the last failure.
const FAILURE_BACKOFF_BASE: i64 = 10;
const FAILURE_BACKOFF_MAX: i64 = 360;

fn retry_at(failures: i32, last_failure: Option<i64>) -> Option<i64> {
    if failures <= 0 {
        return None;
    }
    let doublings = u32::try_from(failures - 1).unwrap_or(u32::MAX).min(6);
    let delay = (FAILURE_BACKOFF_BASE << doublings).min(FAILURE_BACKOFF_MAX);
    Some(last_failure?.saturating_add(delay))
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn stop(active: &[&Pod]) -> Vec<Change> {
    active.iter().filter_map(|pod| mark_pod(pod)).collect()
}

/// Why the Job fails now, if it does: Kubernetes' reasons and messages. A `FailJob`
/// rule comes first, as in Kubernetes, where it decides as the pod's failure is seen.
fn failure(
    job: &Job,
    status: &JobStatus,
    observed: &Observed,
    now: i64,
) -> Option<(&'static str, String)> {
    if let Some(message) = &observed.fail_job {
        return Some(("PodFailurePolicy", message.clone()));
    }
    if status.failed > job.spec.backoff_limit() {
        return Some((
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit".to_owned(),
        ));
    }
    if let Some(reason) = index_failure(job, status) {
        return Some(reason);
    }
    let deadline = job.spec.active_deadline_seconds?;
    let started = seconds(status.start_time.as_deref()?)?;
    (now >= started.saturating_add(deadline)).then(|| {
        (
            "DeadlineExceeded",
            "Job was active longer than specified deadline".to_owned(),
        )
    })
}

/// With `backoffLimitPerIndex`: the Job fails once more indexes failed than
/// `maxFailedIndexes`, or once every index ended and some failed.
fn index_failure(job: &Job, status: &JobStatus) -> Option<(&'static str, String)> {
    job.spec.backoff_limit_per_index?;
    let failed = parse_indexes(&status.failed_indexes);
    let too_many = job
        .spec
        .max_failed_indexes
        .is_some_and(|max| failed.len() > usize::try_from(max).unwrap_or(0));
    if too_many {
        return Some((
            "MaxFailedIndexesExceeded",
            "Job has exceeded the specified maximal number of failed indexes".to_owned(),
        ));
    }
    let completed = parse_indexes(&status.completed_indexes);
    let all_ended = (0..job.spec.completions.unwrap_or(0))
        .all(|i| completed.contains(&i) || failed.contains(&i));
    (all_ended && !failed.is_empty())
        .then(|| ("FailedIndexes", "Job has failed indexes".to_owned()))
}

/// Whether the Job is complete, with the reason and message of its conditions: empty
/// when every completion is there, `SuccessPolicy` when a rule of it was met first.
fn complete(job: &Job, status: &JobStatus, observed: &Observed) -> Option<(&'static str, String)> {
    let done = match job.spec.completions {
        Some(completions) if job.spec.indexed() => {
            let completed = parse_indexes(&status.completed_indexes);
            if let Some(rule) = job
                .spec
                .success_policy
                .as_ref()
                .and_then(|policy| met_success_rule(policy, &completed))
            {
                return Some(("SuccessPolicy", format!("Matched rules at index {rule}")));
            }
            (0..completions).all(|i| completed.contains(&i))
        }
        Some(completions) => status.succeeded >= completions,
        // A work queue: done once a pod succeeded and the others have stopped.
        None => status.succeeded > 0 && observed.active.is_empty(),
    };
    done.then(|| ("", String::new()))
}

/// Adds the final condition (and the failure's reason) to `status`.
fn finish(status: &mut JobStatus, type_: &str, reason: &str, message: &str, world: &World) {
    status.conditions.push(JobCondition {
        type_: type_.to_string(),
        status: "True".to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        last_probe_time: world.now.clone(),
        last_transition_time: world.now.clone(),
    });
}

/// Whether a finished Job has outlived `ttlSecondsAfterFinished`.
fn expired(job: &Job, finished: &JobCondition, now: i64) -> bool {
    let Some(ttl) = job.spec.ttl_seconds_after_finished else {
        return false;
    };
    seconds(&finished.last_transition_time)
        .is_some_and(|at| now >= at.saturating_add(i64::from(ttl)))
}

/// The pods to start so that `parallelism` run, without starting more than the
/// completions still missing.
fn new_pods(job: &Job, status: &JobStatus, observed: &Observed, now: i64) -> Vec<Change> {
    let parallelism = job.spec.parallelism();
    let active = count(observed.active.len());
    let wanted = match job.spec.completions {
        Some(completions) if job.spec.indexed() => {
            let completed = parse_indexes(&status.completed_indexes);
            let failed = parse_indexes(&status.failed_indexes);
            let failures = &observed.index_failures;
            // Per index, a failed index waits out its own back-off.
            let waiting = |i: &i32| {
                job.spec.backoff_limit_per_index.is_some()
                    && retry_at(failures.count(*i), failures.last.get(i).copied())
                        .is_some_and(|at| now < at)
            };
            let missing = (0..completions)
                .filter(|i| !observed.succeeded_indexes.contains(i) && !completed.contains(i))
                .filter(|i| !failed.contains(i) && !observed.active_indexes.contains(i))
                .filter(|i| !waiting(i));
            let room = usize::try_from(parallelism - active).unwrap_or(0);
            return missing
                .take(room)
                .map(|index| create(job, Some((index, failures.count(index)))))
                .collect();
        }
        Some(completions) => parallelism.min(completions - status.succeeded),
        None if status.succeeded > 0 => 0,
        None => parallelism,
    };
    (active..wanted).map(|_| create(job, None)).collect()
}

/// A new pod of `job`; of an Indexed Job, with its index and the failures of the
/// index so far.
fn create(job: &Job, index: Option<(i32, i32)>) -> Change {
    let mut pod = super::pod_of_template(&job.spec.template, "Job", &job.metadata);
    let labels = &mut pod.metadata.labels;
    for (key, value) in [
        (CONTROLLER_UID_LABEL, &job.metadata.uid),
        (JOB_NAME_LABEL, &job.metadata.name),
        ("controller-uid", &job.metadata.uid),
        ("job-name", &job.metadata.name),
    ] {
        labels.insert(key.to_string(), value.clone());
    }
    let mut generate_name = format!("{}-", job.metadata.name);
    if let Some((index, failures)) = index {
        if job.spec.backoff_limit_per_index.is_some() {
            pod.metadata
                .annotations
                .insert(INDEX_FAILURE_COUNT.to_string(), failures.to_string());
        }
        let text = index.to_string();
        pod.metadata
            .annotations
            .insert(COMPLETION_INDEX.to_string(), text.clone());
        pod.metadata
            .labels
            .insert(COMPLETION_INDEX.to_string(), text.clone());
        // Init containers see their index too, as in Kubernetes.
        let spec = &mut pod.spec;
        for container in spec.init_containers.iter_mut().chain(&mut spec.containers) {
            container.env.push(EnvVar {
                name: "JOB_COMPLETION_INDEX".to_string(),
                value: text.clone(),
                value_from: None,
            });
        }
        generate_name = format!("{}-{text}-", job.metadata.name);
    }
    Change::CreatePod {
        generate_name,
        pod: Box::new(pod),
    }
}

fn completion_index(pod: &Pod) -> Option<i32> {
    pod.metadata.annotations.get(COMPLETION_INDEX)?.parse().ok()
}

fn earlier_index_failures(pod: &Pod) -> i32 {
    let text = pod.metadata.annotations.get(INDEX_FAILURE_COUNT);
    text.and_then(|t| t.parse().ok()).unwrap_or(0)
}

/// Unix seconds of an RFC 3339 time.
fn seconds(text: &str) -> Option<i64> {
    let time = humantime::parse_rfc3339_weak(text).ok()?;
    Some(super::driver::unix_seconds(time))
}
