//! The Job controller against hand-made worlds: pods are "run" by moving their uids into
//! the world's ended and failed sets, as a scope's observation would.

use serde_json::json;

use super::job::{next_change, reconcile};
use super::pod_failure::{judge, PodFailure, Verdict};
use super::{Change, World};
use crate::model::{Job, JobStatus, Pod, PodFailurePolicy};
use crate::store::Key;

const NOW: &str = "2026-12-03T10:00:00Z";
const NOW_SECS: i64 = 1_796_292_000;

fn job(spec: serde_json::Value) -> Job {
    let mut spec = spec;
    spec["template"] = json!({"spec": {"restartPolicy": "Never",
        "containers": [{"name": "work", "image": "busybox"}]}});
    let mut job: Job = serde_json::from_value(json!({
        "metadata": {"name": "batch", "namespace": "default", "uid": "uid-batch"},
        "spec": spec,
    }))
    .unwrap();
    job.spec.template.spec.apply_defaults();
    job
}

/// A world at [`NOW`] with `job` and its `pods`.
fn world(job: &Job, pods: Vec<Pod>) -> World {
    World {
        jobs: vec![job.clone()],
        pods,
        now: NOW.into(),
        now_secs: NOW_SECS,
        ..World::default()
    }
}

/// The pods a pass creates, named and given uids as the driver and store would.
fn created(changes: &[Change], first: usize) -> Vec<Pod> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::CreatePod { generate_name, pod } => Some((generate_name, pod)),
            _ => None,
        })
        .enumerate()
        .map(|(i, (generate_name, pod))| {
            let mut pod = (**pod).clone();
            pod.metadata.name = format!("{generate_name}{}", first + i);
            pod.metadata.uid = format!("uid-{}", pod.metadata.name);
            pod
        })
        .collect()
}

/// The status the pass stores, if it stores one.
fn stored_status(changes: &[Change]) -> Option<JobStatus> {
    changes.iter().find_map(|c| match c {
        Change::Status { key, status } => {
            assert_eq!(key, &Key::new("Job", "default", "batch"));
            Some(serde_json::from_value(status.clone()).unwrap())
        }
        _ => None,
    })
}

/// Runs passes, applying each stored status to the Job and ending pods as `outcome`
/// says (true: succeeded), until a pass changes nothing. Returns the Job and all pods.
fn settle(job: Job, outcome: impl Fn(&Pod) -> bool) -> (Job, Vec<Pod>) {
    settle_failing(job, |pod| {
        (!outcome(pod)).then(|| PodFailure::at(NOW_SECS - 1000))
    })
}

/// [`settle`], with each pod failing as `failure` says (`None`: it succeeded).
fn settle_failing(mut job: Job, failure: impl Fn(&Pod) -> Option<PodFailure>) -> (Job, Vec<Pod>) {
    let mut pods: Vec<Pod> = Vec::new();
    let mut w = world(&job, Vec::new());
    for _ in 0..50 {
        w.jobs = vec![job.clone()];
        w.pods = pods.clone();
        let changes = reconcile(&job, &w);
        let status = stored_status(&changes);
        let new = created(&changes, pods.len());
        if status.is_none() && new.is_empty() {
            return (job, pods);
        }
        if let Some(status) = status {
            job.status = status;
        }
        // Every pod started ends before the next pass, its failure back-off long over.
        for pod in &new {
            w.ended_pods.insert(pod.metadata.uid.clone());
            if let Some(failure) = failure(pod) {
                w.failed_pods.insert(pod.metadata.uid.clone(), failure);
            }
        }
        pods.extend(new);
    }
    panic!("the job controller did not settle");
}

#[test]
fn runs_parallelism_pods_at_a_time_until_completions_succeed() {
    let batch = job(json!({"completions": 3, "parallelism": 2}));
    let changes = reconcile(&batch, &world(&batch, Vec::new()));
    let pods = created(&changes, 0);
    assert_eq!(pods.len(), 2);
    let pod = &pods[0];
    assert_eq!(pod.metadata.owner_references[0].kind, "Job");
    assert_eq!(pod.metadata.owner_references[0].api_version, "batch/v1");
    assert_eq!(pod.metadata.labels["job-name"], "batch");
    assert_eq!(
        pod.metadata.labels["batch.kubernetes.io/controller-uid"],
        "uid-batch"
    );
    let status = stored_status(&changes).unwrap();
    assert_eq!(status.start_time.as_deref(), Some(NOW));

    // Two running: nothing more to start.
    let mut running = batch.clone();
    running.status = status;
    let mut w = world(&running, pods.clone());
    let changes = reconcile(&running, &w);
    assert!(created(&changes, 2).is_empty());
    // One succeeds: one more starts (three wanted, one done, one running).
    w.ended_pods.insert(pods[0].metadata.uid.clone());
    let changes = reconcile(&running, &w);
    assert_eq!(created(&changes, 2).len(), 1);

    let (done, all) = settle(batch, |_| true);
    assert_eq!(all.len(), 3);
    assert_eq!(done.status.succeeded, 3);
    let complete = done.status.condition("Complete").unwrap();
    assert_eq!(complete.status, "True");
    assert_eq!(done.status.completion_time.as_deref(), Some(NOW));
}

#[test]
fn more_failures_than_the_backoff_limit_fail_the_job() {
    let (failed, pods) = settle(job(json!({"backoffLimit": 1})), |_| false);
    assert_eq!(pods.len(), 2, "the first pod and one retry");
    assert_eq!(failed.status.failed, 2);
    let condition = failed.status.condition("Failed").unwrap();
    assert_eq!(condition.reason, "BackoffLimitExceeded");
    assert_eq!(
        condition.message,
        "Job has reached the specified backoff limit"
    );
    assert!(failed.status.condition("Complete").is_none());
}

#[test]
fn the_deadline_fails_a_running_job_and_stops_its_pods() {
    let mut batch = job(json!({"activeDeadlineSeconds": 30}));
    let first = reconcile(&batch, &world(&batch, Vec::new()));
    let pods = created(&first, 0);
    batch.status = stored_status(&first).unwrap();
    batch.status.start_time = Some("2026-12-03T09:59:00Z".into());
    assert_eq!(
        next_change(&batch, &world(&batch, Vec::new())),
        Some(NOW_SECS - 60 + 30)
    );
    let changes = reconcile(&batch, &world(&batch, pods));
    assert!(changes
        .iter()
        .any(|c| matches!(c, Change::MarkDeleted(key) if key.name == "batch-0")));
    let status = stored_status(&changes).unwrap();
    assert_eq!(
        status.condition("Failed").unwrap().reason,
        "DeadlineExceeded"
    );
}

#[test]
fn a_finished_job_is_deleted_after_its_ttl() {
    let (mut done, pods) = settle(job(json!({"ttlSecondsAfterFinished": 100})), |_| true);
    let finished_at = NOW_SECS;
    assert_eq!(
        next_change(&done, &world(&done, Vec::new())),
        Some(finished_at + 100)
    );
    let mut w = world(&done, pods);
    w.ended_pods = w.pods.iter().map(|p| p.metadata.uid.clone()).collect();
    assert!(!reconcile(&done, &w)
        .iter()
        .any(|c| matches!(c, Change::Delete(_))));
    w.now_secs = finished_at + 100;
    done.status.conditions[0].last_transition_time = NOW.into();
    assert_eq!(
        reconcile(&done, &w),
        vec![Change::Delete(Key::new("Job", "default", "batch"))]
    );
}

#[test]
fn an_indexed_job_runs_each_index_until_it_succeeds() {
    let batch = job(json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed"}));
    let changes = reconcile(&batch, &world(&batch, Vec::new()));
    let pods = created(&changes, 0);
    let indexes: Vec<&str> = pods
        .iter()
        .map(|p| p.metadata.annotations["batch.kubernetes.io/job-completion-index"].as_str())
        .collect();
    assert_eq!(indexes, ["0", "1", "2"]);
    assert!(pods[1].metadata.name.starts_with("batch-1-"));
    let env = &pods[2].spec.containers[0].env;
    assert!(env
        .iter()
        .any(|e| e.name == "JOB_COMPLETION_INDEX" && e.value == "2"));
    // Index 1 fails, the others succeed: only index 1 runs again.
    let failed_one = |pod: &Pod| pod.metadata.name != "batch-1-1";
    let (done, all) = settle(batch, failed_one);
    assert_eq!(all.len(), 4);
    assert!(all[3].metadata.name.starts_with("batch-1-"));
    assert_eq!(done.status.completed_indexes, "0-2");
    assert_eq!(done.status.failed, 1);
    assert!(done.status.condition("Complete").is_some());
}

#[test]
fn a_work_queue_completes_when_one_pod_succeeded_and_the_rest_stopped() {
    let batch = job(json!({"parallelism": 2}));
    let changes = reconcile(&batch, &world(&batch, Vec::new()));
    let pods = created(&changes, 0);
    assert_eq!(pods.len(), 2);
    let mut running = batch.clone();
    running.status = stored_status(&changes).unwrap();
    let mut w = world(&running, pods.clone());
    w.ended_pods.insert(pods[0].metadata.uid.clone());
    let changes = reconcile(&running, &w);
    assert!(
        created(&changes, 2).is_empty(),
        "no new pod once one succeeded"
    );
    let status = stored_status(&changes).unwrap();
    assert!(status.condition("Complete").is_none(), "one still runs");
    running.status = status;
    w.ended_pods.insert(pods[1].metadata.uid.clone());
    let status = stored_status(&reconcile(&running, &w)).unwrap();
    assert!(status.condition("Complete").is_some());
}

#[test]
fn a_suspended_job_starts_nothing_and_stops_what_runs() {
    let mut batch = job(json!({"parallelism": 2, "completions": 4}));
    let pods = created(&reconcile(&batch, &world(&batch, Vec::new())), 0);
    batch.spec.suspend = true;
    let changes = reconcile(&batch, &world(&batch, pods));
    assert!(created(&changes, 2).is_empty());
    let marked = changes
        .iter()
        .filter(|c| matches!(c, Change::MarkDeleted(_)))
        .count();
    assert_eq!(marked, 2);
}

#[test]
fn counts_never_go_down_when_pods_are_removed() {
    let (done, _) = settle(job(json!({"completions": 2})), |_| true);
    // Its pods deleted by hand: the stored counts stay, nothing restarts.
    let changes = reconcile(&done, &world(&done, Vec::new()));
    assert!(created(&changes, 0).is_empty());
    assert!(stored_status(&changes).is_none());
}

#[test]
fn replacements_of_failed_pods_wait_out_the_failure_back_off() {
    let mut batch = job(json!({"backoffLimit": 6}));
    let first = reconcile(&batch, &world(&batch, Vec::new()));
    let pods = created(&first, 0);
    batch.status = stored_status(&first).unwrap();
    let mut w = world(&batch, pods.clone());
    w.ended_pods.insert(pods[0].metadata.uid.clone());
    w.failed_pods
        .insert(pods[0].metadata.uid.clone(), PodFailure::at(NOW_SECS - 4));
    let changes = reconcile(&batch, &w);
    assert!(
        created(&changes, 1).is_empty(),
        "10 s after the first failure"
    );
    batch.status = stored_status(&changes).unwrap();
    assert_eq!(batch.status.failed, 1);
    assert_eq!(next_change(&batch, &w), Some(NOW_SECS - 4 + 10));
    w.now_secs = NOW_SECS + 6;
    assert_eq!(created(&reconcile(&batch, &w), 1).len(), 1);
    // The second failure doubles the wait.
    batch.status.failed = 2;
    w.now_secs = NOW_SECS;
    assert_eq!(next_change(&batch, &w), Some(NOW_SECS - 4 + 20));
}

/// `job` with `rules` as its pod failure policy.
fn with_policy(mut job: Job, rules: serde_json::Value) -> Job {
    let policy: PodFailurePolicy = serde_json::from_value(json!({ "rules": rules })).unwrap();
    job.spec.pod_failure_policy = Some(policy);
    job
}

/// A failure long enough ago for its back-off to be over, with these containers' exit
/// codes and no conditions.
fn exited(codes: &[(&str, i32)]) -> PodFailure {
    PodFailure {
        exit_codes: codes.iter().map(|(n, c)| (n.to_string(), *c)).collect(),
        ..PodFailure::at(NOW_SECS - 1000)
    }
}

#[test]
fn a_fail_job_rule_fails_the_job_at_once_and_stops_its_pods() {
    let mut batch = with_policy(
        job(json!({"parallelism": 2, "completions": 2, "backoffLimit": 6})),
        json!([{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]),
    );
    let first = reconcile(&batch, &world(&batch, Vec::new()));
    let pods = created(&first, 0);
    batch.status = stored_status(&first).unwrap();
    let mut w = world(&batch, pods.clone());
    w.ended_pods.insert(pods[0].metadata.uid.clone());
    w.failed_pods
        .insert(pods[0].metadata.uid.clone(), exited(&[("work", 42)]));
    let changes = reconcile(&batch, &w);

    let message = "Container work for pod default/batch-0 failed with exit code 42 matching \
                   FailJob rule at index 0";
    let status = stored_status(&changes).unwrap();
    let failed = status.condition("Failed").expect("the Job failed");
    assert_eq!(failed.reason, "PodFailurePolicy");
    assert_eq!(failed.message, message);
    assert_eq!(status.failed, 1, "the failure that failed the Job counts");
    assert!(changes
        .iter()
        .any(|c| matches!(c, Change::MarkDeleted(key) if key.name == "batch-1")));
    assert!(created(&changes, 2).is_empty());
    assert!(changes.iter().any(|c| matches!(c, Change::Event(note)
        if note.reason == "PodFailurePolicy" && note.message == message)));
}

#[test]
fn ignored_failures_do_not_count_against_the_backoff_limit() {
    let batch = with_policy(
        job(json!({"backoffLimit": 1})),
        json!([{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [1]}}]),
    );
    // The first three pods fail with 1, the fourth succeeds.
    let outcome =
        |pod: &Pod| (pod.metadata.name.as_str() < "batch-3").then(|| exited(&[("work", 1)]));
    let (done, pods) = settle_failing(batch.clone(), outcome);
    assert_eq!(pods.len(), 4, "each ignored failure is replaced");
    assert_eq!(done.status.failed, 0);
    assert!(done.status.condition("Complete").is_some());

    // Ignored failures still lengthen the wait for a replacement.
    let mut w = world(&batch, pods[..2].to_vec());
    for pod in &pods[..2] {
        w.ended_pods.insert(pod.metadata.uid.clone());
        let recent = PodFailure {
            at: NOW_SECS - 4,
            ..exited(&[("work", 1)])
        };
        w.failed_pods.insert(pod.metadata.uid.clone(), recent);
    }
    assert_eq!(next_change(&batch, &w), Some(NOW_SECS - 4 + 20));
    assert!(created(&reconcile(&batch, &w), 2).is_empty());
}

#[test]
fn the_first_matching_rule_decides_and_count_counts() {
    let batch = with_policy(
        job(json!({"backoffLimit": 1})),
        json!([
            {"action": "Count", "onExitCodes": {"operator": "In", "values": [1]}},
            {"action": "Ignore", "onExitCodes": {"operator": "NotIn", "values": [7]}},
        ]),
    );
    let (failed, pods) = settle_failing(batch.clone(), |_| Some(exited(&[("work", 1)])));
    assert_eq!(pods.len(), 2, "the first pod and one retry");
    assert_eq!(failed.status.failed, 2);
    let condition = failed.status.condition("Failed").unwrap();
    assert_eq!(condition.reason, "BackoffLimitExceeded");
    // Exit code 2 is not 1, and not 7: the second rule ignores it.
    let (done, pods) = settle_failing(batch, |pod| {
        (pod.metadata.name != "batch-2").then(|| exited(&[("work", 2)]))
    });
    assert_eq!((pods.len(), done.status.failed), (3, 0));
}

#[test]
fn exit_code_rules_look_at_failed_containers_and_the_one_named() {
    let pod = |name: &str| {
        let mut pod = Pod::default();
        pod.metadata.name = name.into();
        pod.metadata.namespace = Some("default".into());
        pod
    };
    let policy = |rules: serde_json::Value| -> PodFailurePolicy {
        serde_json::from_value(json!({ "rules": rules })).unwrap()
    };
    let not_in = policy(json!([{"action": "FailJob",
        "onExitCodes": {"operator": "NotIn", "values": [1, 2]}}]));
    let p = pod("batch-x");
    assert_eq!(
        judge(Some(&not_in), &p, &exited(&[("work", 1)])),
        Verdict::Count
    );
    // A container that succeeded (exit 0) matches no rule, NotIn included.
    assert_eq!(
        judge(Some(&not_in), &p, &exited(&[("work", 0), ("side", 2)])),
        Verdict::Count
    );
    assert_eq!(
        judge(Some(&not_in), &p, &exited(&[("work", 0), ("side", 3)])),
        Verdict::FailJob(
            "Container side for pod default/batch-x failed with exit code 3 matching FailJob \
             rule at index 0"
                .into()
        )
    );

    let named = policy(json!([
        {"action": "Ignore", "onExitCodes": {"containerName": "setup", "operator": "In", "values": [5]}},
        {"action": "FailJob", "onExitCodes": {"containerName": "side", "operator": "In", "values": [5]}},
    ]));
    // Only `work` exited 5: neither named container did.
    assert_eq!(
        judge(Some(&named), &p, &exited(&[("work", 5)])),
        Verdict::Count
    );
    assert_eq!(
        judge(Some(&named), &p, &exited(&[("work", 5), ("side", 5)])),
        Verdict::FailJob(
            "Container side for pod default/batch-x failed with exit code 5 matching FailJob \
             rule at index 1"
                .into()
        )
    );
    assert_eq!(
        judge(Some(&named), &p, &exited(&[("setup", 5)])),
        Verdict::Ignore
    );
    assert_eq!(judge(None, &p, &exited(&[("work", 5)])), Verdict::Count);
}

#[test]
fn condition_rules_match_the_conditions_berth_sets() {
    let policy: PodFailurePolicy = serde_json::from_value(json!({"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        {"action": "FailJob", "onPodConditions": [{"type": "Ready", "status": "False"}]},
    ]}))
    .unwrap();
    let mut pod = Pod::default();
    pod.metadata.name = "batch-0".into();
    pod.metadata.namespace = Some("default".into());
    let failure = PodFailure {
        conditions: vec![
            ("PodScheduled".into(), "True".into()),
            ("Ready".into(), "False".into()),
        ],
        ..exited(&[("work", 1)])
    };
    assert_eq!(
        judge(Some(&policy), &pod, &failure),
        Verdict::FailJob(
            "Pod default/batch-0 has condition Ready matching FailJob rule at index 1".into()
        )
    );
}

#[test]
fn a_failed_pods_status_gives_its_exit_codes_conditions_and_time() {
    let status: crate::model::PodStatus = serde_json::from_value(json!({
        "phase": "Failed",
        "conditions": [{"type": "Ready", "status": "False"}],
        "containerStatuses": [
            {"name": "work", "state": {"terminated": {"exitCode": 42,
                "finishedAt": "2026-12-03T09:59:50Z"}}},
            {"name": "side", "state": {"running": {}}}],
        "initContainerStatuses": [
            {"name": "setup", "state": {"terminated": {"exitCode": 0,
                "finishedAt": "2026-12-03T09:59:00Z"}}}],
    }))
    .unwrap();
    let failure = PodFailure::of(&status, NOW_SECS);
    assert_eq!(failure.at, NOW_SECS - 10);
    assert_eq!(
        failure.exit_codes,
        [("work".to_owned(), 42), ("setup".to_owned(), 0)]
    );
    assert_eq!(
        failure.conditions,
        [("Ready".to_owned(), "False".to_owned())]
    );
    let unknown = PodFailure::of(&crate::model::PodStatus::default(), NOW_SECS);
    assert_eq!(unknown, PodFailure::at(NOW_SECS));
}

#[path = "job_index_tests.rs"]
mod index_tests;
