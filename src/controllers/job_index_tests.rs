//! Indexed Jobs' per-index failures (`backoffLimitPerIndex`, `maxFailedIndexes`,
//! `FailIndex`) and `successPolicy`.

use serde_json::json;

use super::super::job::{reconcile, COMPLETION_INDEX};
use super::{created, exited, job, settle_failing, stored_status, with_policy, world};
use crate::controllers::pod_failure::PodFailure;
use crate::controllers::Change;
use crate::model::Pod;

fn index_of(pod: &Pod) -> i32 {
    pod.metadata.annotations[COMPLETION_INDEX].parse().unwrap()
}

fn attempts(pods: &[Pod], index: i32) -> usize {
    pods.iter().filter(|pod| index_of(pod) == index).count()
}

#[test]
fn an_index_that_fails_past_its_limit_fails_alone_and_then_the_job() {
    let batch = job(json!({"completions": 4, "parallelism": 2,
        "completionMode": "Indexed", "backoffLimitPerIndex": 1}));
    let (batch, pods) = settle_failing(batch, |pod| {
        (index_of(pod) == 0).then(|| exited(&[("work", 1)]))
    });
    assert_eq!(attempts(&pods, 0), 2, "one failure, one retry");
    for index in 1..4 {
        assert_eq!(attempts(&pods, index), 1);
    }
    let retry = pods.iter().rfind(|pod| index_of(pod) == 0).unwrap();
    let count = &retry.metadata.annotations["batch.kubernetes.io/job-index-failure-count"];
    assert_eq!(count, "1");
    let status = &batch.status;
    assert_eq!(
        (
            status.completed_indexes.as_str(),
            status.failed_indexes.as_str()
        ),
        ("1-3", "0")
    );
    let failed = status.condition("Failed").expect("the Job failed");
    assert_eq!(
        (failed.reason.as_str(), failed.message.as_str()),
        ("FailedIndexes", "Job has failed indexes")
    );
    // The Job's own backoffLimit is unlimited with per-index limits: 2 failures of 6
    // would not fail it either, but no default limit applies at all.
    assert_eq!(batch.spec.backoff_limit(), i32::MAX);
}

#[test]
fn a_fail_index_rule_fails_the_index_without_a_retry() {
    let batch = with_policy(
        job(json!({"completions": 4, "parallelism": 2,
            "completionMode": "Indexed", "backoffLimitPerIndex": 1})),
        json!([{"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [42]}}]),
    );
    let (batch, pods) = settle_failing(batch, |pod| match index_of(pod) {
        0 => Some(exited(&[("work", 1)])),
        1 => Some(exited(&[("work", 42)])),
        _ => None,
    });
    assert_eq!((attempts(&pods, 0), attempts(&pods, 1)), (2, 1));
    assert_eq!(batch.status.failed_indexes, "0,1");
    assert_eq!(batch.status.completed_indexes, "2,3");
    assert_eq!(batch.status.failed, 3);
    assert!(batch.status.condition("Failed").is_some());
}

#[test]
fn more_failed_indexes_than_allowed_fail_the_job_at_once() {
    let batch = job(json!({"completions": 5, "parallelism": 1,
        "completionMode": "Indexed", "backoffLimitPerIndex": 0, "maxFailedIndexes": 1}));
    let (batch, pods) = settle_failing(batch, |pod| (index_of(pod) < 3).then(|| PodFailure::at(0)));
    assert_eq!(
        pods.len(),
        2,
        "indexes 0 and 1 ran, and then the Job failed"
    );
    let failed = batch.status.condition("Failed").expect("the Job failed");
    assert_eq!(failed.reason, "MaxFailedIndexesExceeded");
    assert_eq!(batch.status.failed_indexes, "0,1");
}

#[test]
fn a_met_success_policy_completes_the_job_and_stops_the_rest() {
    let mut batch = job(json!({"completions": 10, "parallelism": 10,
        "completionMode": "Indexed",
        "successPolicy": {"rules": [{"succeededIndexes": "0,2-3", "succeededCount": 1}]}}));
    let first = reconcile(&batch, &world(&batch, Vec::new()));
    let pods = created(&first, 0);
    assert_eq!(pods.len(), 10);
    batch.status = stored_status(&first).unwrap();
    let mut w = world(&batch, pods.clone());
    let two = pods.iter().find(|pod| index_of(pod) == 2).unwrap();
    w.ended_pods.insert(two.metadata.uid.clone());
    let changes = reconcile(&batch, &w);

    let status = stored_status(&changes).unwrap();
    for type_ in ["SuccessCriteriaMet", "Complete"] {
        let condition = status.condition(type_).expect(type_);
        assert_eq!(condition.reason, "SuccessPolicy");
        assert_eq!(condition.message, "Matched rules at index 0");
    }
    let stopped = changes
        .iter()
        .filter(|c| matches!(c, Change::MarkDeleted(_)))
        .count();
    assert_eq!(stopped, 9);
    // One success outside the rule's indexes is not enough.
    let mut other = world(&batch, pods.clone());
    let five = pods.iter().find(|pod| index_of(pod) == 5).unwrap();
    other.ended_pods.insert(five.metadata.uid.clone());
    let status = stored_status(&reconcile(&batch, &other)).unwrap_or(batch.status.clone());
    assert!(status.finished().is_none(), "{status:?}");
}
