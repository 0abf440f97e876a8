//! The kubelet's events as the agent tells them, on the fake runtime: starts, a crash
//! loop's back-off (once per crash, however many passes wait it out), failed starts and
//! stops, read back through the agent's API.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::agent::test_support::{
    apply, call, instances, pod_uid, pod_yaml, reconcile_until, test_agent,
};
use crate::agent::Agent;

/// A back-off that no test outlives.
const LONG: Duration = Duration::from_secs(3600);

/// `(type, reason, message, count)` of the events about pod `name`, oldest first.
fn told(agent: &Arc<Agent>, name: &str) -> Vec<(String, String, String, i64)> {
    let path = format!(
        "/api/v1/namespaces/default/events?fieldSelector=involvedObject.kind=Pod,\
         involvedObject.name={name}"
    );
    let (status, list) = call(agent, "GET", &path, None);
    assert_eq!(status, 200, "{list}");
    let text = |e: &Value, field: &str| e[field].as_str().unwrap_or_default().to_owned();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["involvedObject"]["fieldPath"], "spec.containers{app}");
            assert_eq!(e["source"]["component"], "kubelet");
            assert_eq!(e["source"]["host"], "pi-1");
            let count = e["count"].as_i64().unwrap();
            (
                text(e, "type"),
                text(e, "reason"),
                text(e, "message"),
                count,
            )
        })
        .collect()
}

fn event(type_: &str, reason: &str, message: &str, count: i64) -> (String, String, String, i64) {
    (type_.into(), reason.into(), message.into(), count)
}

fn running(agent: &Agent, uid: &str) -> Vec<String> {
    instances(agent, uid)
        .into_iter()
        .filter(|i| i.is_running())
        .map(|i| i.id)
        .collect()
}

#[test]
fn starts_back_offs_and_stops_are_told_once_each() {
    let test = test_agent(LONG);
    apply(&test.agent, &pod_yaml("web", &["app"], "Always"));
    let uid = pod_uid(&test.agent, "web");
    reconcile_until(&test.agent, "the pod runs", || {
        running(&test.agent, &uid).len() == 1
    });
    let created = event("Normal", "Created", "Created container app", 1);
    let started = event("Normal", "Started", "Started container app", 1);
    assert_eq!(told(&test.agent, "web"), [created.clone(), started.clone()]);

    // The first restart is immediate; the second crash waits out the back-off, told
    // once however many passes look at it.
    test.runtime.exit(&running(&test.agent, &uid)[0], 1);
    reconcile_until(&test.agent, "the first restart", || {
        instances(&test.agent, &uid)
            .iter()
            .any(|i| i.attempt == 1 && i.is_running())
    });
    test.runtime.exit(&running(&test.agent, &uid)[0], 1);
    for _ in 0..5 {
        test.agent.reconcile_once().unwrap();
    }
    let back_off = format!("Back-off restarting failed container app in pod web_default({uid})");
    assert_eq!(
        told(&test.agent, "web"),
        [
            event("Normal", "Created", "Created container app", 2),
            event("Normal", "Started", "Started container app", 2),
            event("Warning", "BackOff", &back_off, 1),
        ]
    );

    let (status, _) = call(
        &test.agent,
        "DELETE",
        "/api/v1/namespaces/default/pods/web",
        None,
    );
    assert_eq!(status, 200);
    reconcile_until(&test.agent, "the pod is forgotten", || {
        test.agent
            .store()
            .get("Pod", "default", "web")
            .unwrap()
            .is_none()
    });
    // Its events outlive it, as in Kubernetes. Nothing ran, so nothing was stopped.
    let events = told(&test.agent, "web");
    assert_eq!(events.len(), 3, "{events:?}");
}

#[test]
fn a_failed_start_is_told_as_a_warning_each_time_it_fails() {
    let test = test_agent(LONG);
    test.runtime.fail_starts_of("app", "exec format error");
    apply(&test.agent, &pod_yaml("web", &["app"], "Always"));
    let uid = pod_uid(&test.agent, "web");
    reconcile_until(&test.agent, "the start failed", || {
        test.agent.start_failures(&uid).contains_key("app")
    });
    for _ in 0..3 {
        test.agent.reconcile_once().unwrap();
    }
    let events = told(&test.agent, "web");
    assert_eq!(events.len(), 1, "{events:?}");
    let (type_, reason, message, count) = &events[0];
    assert_eq!(
        (type_.as_str(), reason.as_str(), *count),
        ("Warning", "Failed", 1)
    );
    assert!(
        message.starts_with("Error: ") && message.contains("exec format error"),
        "{message}"
    );
}

#[test]
fn passes_over_a_running_pod_tell_nothing_and_its_stop_is_told() {
    let test = test_agent(LONG);
    apply(&test.agent, &pod_yaml("web", &["app"], "Always"));
    let uid = pod_uid(&test.agent, "web");
    reconcile_until(&test.agent, "the pod runs", || {
        running(&test.agent, &uid).len() == 1
    });
    let before = test.agent.events.len();
    for _ in 0..5 {
        test.agent.reconcile_once().unwrap();
    }
    assert_eq!(test.agent.events.len(), before);
    let all = told(&test.agent, "web");
    let counts: Vec<i64> = all.iter().map(|e| e.3).collect();
    assert_eq!(
        counts,
        [1, 1],
        "passes over a running pod count nothing: {all:?}"
    );

    let (status, _) = call(
        &test.agent,
        "DELETE",
        "/api/v1/namespaces/default/pods/web",
        None,
    );
    assert_eq!(status, 200);
    reconcile_until(&test.agent, "the pod is forgotten", || {
        test.agent
            .store()
            .get("Pod", "default", "web")
            .unwrap()
            .is_none()
    });
    let events = told(&test.agent, "web");
    let killing = event("Normal", "Killing", "Stopping container app", 1);
    assert_eq!(events.last(), Some(&killing), "{events:?}");
}
