//! Events on a real agent: a failing readiness probe and a crash loop are told as the
//! kubelet tells them, in `get events` and in `describe pod`, and telling them writes
//! nothing to the board's disk.

mod common;

use std::time::{Duration, SystemTime};

use common::{wait_for, TestAgent};
use serde_json::Value;

fn pod(name: &str, command: &str, container_extra: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  restartPolicy: Always
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: busybox:1.35
      command: ["sh", "-c", {command:?}]
{container_extra}"#
    )
}

/// The events of `-n default` about pod `name` with `reason`.
fn events_of(agent: &TestAgent, name: &str, reason: &str) -> Vec<Value> {
    let list = agent.json(&["get", "events"]);
    assert_eq!(list["kind"], "List", "{list}");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == name && e["reason"] == reason)
        .cloned()
        .collect()
}

/// Size and modification time of the store's files (the database and its journal).
fn store_files(agent: &TestAgent) -> Vec<(String, u64, SystemTime)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(agent.state.path())
        .expect("state dir")
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("berth.db") {
            let meta = entry.metadata().expect("metadata");
            files.push((name, meta.len(), meta.modified().expect("mtime")));
        }
    }
    files.sort();
    files
}

#[test]
fn a_failing_readiness_probe_is_told_and_written_nowhere() {
    let agent = TestAgent::start();
    let probe = "      readinessProbe:\n        exec:\n          command: [\"false\"]\n        \
                 periodSeconds: 1\n";
    let applied = agent.apply_yaml(&pod("shy", "sleep 1000", probe));
    assert!(applied.status.success(), "{applied:?}");
    let uid = agent.wait_running("shy")["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_owned();
    let event = wait_for(Duration::from_secs(30), "an Unhealthy event", || {
        events_of(&agent, "shy", "Unhealthy").pop()
    });
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["kind"], "Event");
    assert_eq!(event["apiVersion"], "v1");
    assert_eq!(event["involvedObject"]["kind"], "Pod");
    assert_eq!(event["involvedObject"]["uid"], uid.as_str());
    assert_eq!(
        event["involvedObject"]["fieldPath"],
        "spec.containers{main}"
    );
    assert_eq!(event["source"]["component"], "kubelet");
    assert_eq!(event["source"]["host"], "test-node");
    let message = event["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("Readiness probe failed:"), "{message}");
    let started = events_of(&agent, "shy", "Started");
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0]["message"], "Started container main");

    // The probe keeps failing: the same event counts up, and the store is not touched.
    let before = store_files(&agent);
    assert!(!before.is_empty(), "no store in {:?}", agent.state.path());
    let count = |e: &Value| e["count"].as_i64().unwrap_or(0);
    let first = count(&event);
    wait_for(Duration::from_secs(30), "the failures to count up", || {
        let events = events_of(&agent, "shy", "Unhealthy");
        assert_eq!(events.len(), 1, "repeats are folded: {events:?}");
        (count(&events[0]) >= first + 3).then_some(())
    });
    assert_eq!(
        store_files(&agent),
        before,
        "events were written to the store"
    );

    let table = agent.ok(&["get", "events"]);
    let header = table.lines().next().unwrap_or_default();
    let columns: Vec<&str> = header
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        columns,
        ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.contains("Unhealthy"))
        .unwrap_or_else(|| panic!("no Unhealthy row in {table}"));
    assert!(row.contains("Warning") && row.contains("pod/shy"), "{row}");
    assert!(row.contains("Readiness probe failed:"), "{row}");

    let described = agent.ok(&["describe", "pod", "shy"]);
    let section = described
        .split_once("Events:\n")
        .map(|(_, s)| s)
        .unwrap_or_else(|| panic!("no events section in {described}"));
    let lines: Vec<&str> = section.lines().collect();
    assert!(lines[0].trim_start().starts_with("Type"), "{section}");
    let unhealthy = lines
        .iter()
        .find(|l| l.contains("Unhealthy"))
        .unwrap_or_else(|| panic!("no Unhealthy line in {section}"));
    assert!(
        unhealthy.contains("Warning") && unhealthy.contains("kubelet"),
        "{unhealthy}"
    );
    assert!(
        unhealthy.contains(" (x"),
        "a repeated event shows its count: {unhealthy}"
    );
}

#[test]
fn a_crash_loop_is_told_as_back_off_in_its_namespace() {
    let agent = TestAgent::start();
    let applied = agent.apply_yaml(&pod("crash", "exit 1", ""));
    assert!(applied.status.success(), "{applied:?}");
    let event = wait_for(Duration::from_secs(30), "a BackOff event", || {
        events_of(&agent, "crash", "BackOff").pop()
    });
    let uid = agent.pod("crash")["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_owned();
    assert_eq!(event["type"], "Warning");
    assert_eq!(
        event["message"],
        format!("Back-off restarting failed container main in pod crash_default({uid})")
    );
    let started = events_of(&agent, "crash", "Started");
    assert!(
        started.iter().any(|e| e["count"].as_i64() >= Some(2)),
        "every restart counts: {started:?}"
    );

    let all = agent.ok(&["get", "events", "-A"]);
    assert!(all.starts_with("NAMESPACE"), "{all}");
    assert!(
        all.lines()
            .any(|l| l.starts_with("default") && l.contains("BackOff")),
        "{all}"
    );
    let elsewhere = agent.berth(&["get", "events", "-n", "other"]);
    assert!(elsewhere.status.success());
    assert!(
        String::from_utf8_lossy(&elsewhere.stderr)
            .contains("No resources found in other namespace."),
        "{elsewhere:?}"
    );
    let described = agent.ok(&["describe", "pod", "crash"]);
    assert!(
        described.contains("Back-off restarting failed container main"),
        "{described}"
    );
    let all_kinds = agent.ok(&["get", "all"]);
    assert!(
        !all_kinds.contains("LAST SEEN") && !all_kinds.contains("Back-off restarting"),
        "events are not part of all: {all_kinds}"
    );
}
