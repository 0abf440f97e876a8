//! Init containers on a real agent (issue 17): they run in order, each to completion,
//! before the app container; a failing one crash-loops as `Init:CrashLoopBackOff`;
//! a sidecar (`restartPolicy: Always`) runs beside the app and stops when it is done.
//! Real agent, real containers, as root.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::time::Duration;

use common::{wait_for, TestAgent};
use serde_json::Value;

/// The pod's row in `get pods`: (READY, STATUS, RESTARTS).
fn row(agent: &TestAgent, name: &str) -> (String, String, String) {
    let table = agent.ok(&["get", "pods"]);
    assert_eq!(
        common::table_header(&table),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    let line = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row for {name} in:\n{table}"));
    let cells: Vec<&str> = line.split_whitespace().collect();
    (cells[1].into(), cells[2].into(), cells[3].into())
}

fn apply(agent: &TestAgent, yaml: &str) {
    let applied = agent.apply_yaml(yaml);
    assert!(applied.status.success(), "{applied:?}");
}

fn wait_status(agent: &TestAgent, name: &str, status: &str) {
    wait_for(
        Duration::from_secs(60),
        &format!("pod {name} {status}"),
        || (row(agent, name).1 == status).then_some(()),
    );
}

fn terminated_at(status: &Value) -> String {
    status["state"]["terminated"]["finishedAt"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Two init containers: the first writes a mark, the second waits for the test's word
/// (so that `Init:1/2` is seen for sure) and checks the mark; the app container
/// starts only after both exited 0, and finds both marks.
#[test]
fn init_containers_run_in_order_before_the_app() {
    let agent = TestAgent::start();
    let yaml = r#"apiVersion: v1
kind: Pod
metadata:
  name: ordered
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
    - name: first
      image: busybox:1.35
      command: ["sh", "-c", "echo first >> /work/order"]
      volumeMounts: [{name: work, mountPath: /work}]
    - name: second
      image: busybox:1.35
      command: ["sh", "-c", "until [ -e /work/go ]; do sleep 0.1; done; grep -q first /work/order && echo second >> /work/order"]
      volumeMounts: [{name: work, mountPath: /work}]
  containers:
    - name: app
      image: busybox:1.35
      command: ["sh", "-c", "cat /work/order; echo app >> /work/order; exec sleep 3600"]
      volumeMounts: [{name: work, mountPath: /work}]
  volumes:
    - name: work
      emptyDir: {}
"#;
    apply(&agent, yaml);

    wait_status(&agent, "ordered", "Init:1/2");
    let pod = wait_for(Duration::from_secs(20), "the second running", || {
        let pod = agent.pod("ordered");
        let second = &pod["status"]["initContainerStatuses"][1];
        second["state"]["running"].is_object().then_some(pod)
    });
    assert_eq!(row(&agent, "ordered").1, "Init:1/2");
    assert_eq!(pod["status"]["phase"], "Pending");
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
        "PodInitializing"
    );
    assert_eq!(common::condition(&pod, "Initialized").unwrap(), "False");
    let conditions = pod["status"]["conditions"].as_array().unwrap();
    let initialized = conditions.iter().find(|c| c["type"] == "Initialized");
    assert_eq!(
        initialized.unwrap()["message"],
        "containers with incomplete status: [second]"
    );
    // The second init container is running: let it go on.
    agent.ok(&["exec", "ordered", "-c", "second", "--", "touch", "/work/go"]);

    let pod = agent.wait_running("ordered");
    let init = pod["status"]["initContainerStatuses"].as_array().unwrap();
    assert_eq!(init.len(), 2);
    for status in init {
        assert_eq!(status["state"]["terminated"]["exitCode"], 0, "{status}");
        assert_eq!(status["state"]["terminated"]["reason"], "Completed");
    }
    let app_started = pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(terminated_at(&init[0]) <= terminated_at(&init[1]));
    assert!(terminated_at(&init[1]) <= app_started, "{pod}");
    assert_eq!(common::condition(&pod, "Initialized").unwrap(), "True");
    let logs = wait_for(Duration::from_secs(10), "the app's output", || {
        let out = agent.try_ok(&["logs", "ordered"])?;
        out.contains("second").then_some(out)
    });
    assert_eq!(logs, "first\nsecond\n");
    assert_eq!(agent.ok(&["logs", "ordered", "-c", "first"]), "");
    assert_eq!(
        row(&agent, "ordered"),
        ("1/1".into(), "Running".into(), "0".into())
    );
    let described = agent.ok(&["describe", "pod", "ordered"]);
    assert!(
        described.contains("Init Containers:\n  first:\n"),
        "{described}"
    );
}

/// An init container that keeps failing holds the app back and crash-loops.
#[test]
fn a_failing_init_container_crash_loops_and_the_app_never_starts() {
    let agent = TestAgent::start();
    let yaml = r#"apiVersion: v1
kind: Pod
metadata:
  name: stuck
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
    - name: wait-for-broker
      image: busybox:1.35
      command: ["sh", "-c", "echo no broker; exit 3"]
  containers:
    - name: app
      image: busybox:1.35
      command: ["sleep", "3600"]
"#;
    apply(&agent, yaml);
    wait_status(&agent, "stuck", "Init:CrashLoopBackOff");
    let pod = agent.pod("stuck");
    assert_eq!(pod["status"]["phase"], "Pending");
    let init = &pod["status"]["initContainerStatuses"][0];
    assert!(init["restartCount"].as_i64().unwrap() >= 1, "{init}");
    assert_eq!(init["lastState"]["terminated"]["exitCode"], 3);
    let app = &pod["status"]["containerStatuses"][0];
    assert_eq!(app["state"]["waiting"]["reason"], "PodInitializing");
    assert!(app["containerID"].is_null(), "the app never started: {app}");
    let (ready, _, restarts) = row(&agent, "stuck");
    assert_eq!(ready, "0/1");
    assert_ne!(restarts, "0");
    // The latest attempt's log: a restart just begun may not have written yet.
    wait_for(Duration::from_secs(30), "the init container's log", || {
        (agent.try_ok(&["logs", "stuck", "-c", "wait-for-broker"])? == "no broker\n").then_some(())
    });

    // The same pod with restartPolicy Never fails instead.
    let never = yaml
        .replace("name: stuck", "name: gives-up")
        .replace("spec:\n", "spec:\n  restartPolicy: Never\n");
    apply(&agent, &never);
    agent.wait_phase("gives-up", "Failed", Duration::from_secs(60));
    assert_eq!(row(&agent, "gives-up").1, "Init:Error");
}

/// A sidecar starts before the app, counts in READY, and is stopped once the app of a
/// pod that never restarts has exited, so the pod completes.
#[test]
fn a_sidecar_runs_beside_the_app_and_stops_after_it() {
    let agent = TestAgent::start();
    let yaml = r#"apiVersion: v1
kind: Pod
metadata:
  name: with-sidecar
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  initContainers:
    - name: shipper
      image: busybox:1.35
      restartPolicy: Always
      command: ["sh", "-c", "touch /work/up; exec sleep 3600"]
      volumeMounts: [{name: work, mountPath: /work}]
  containers:
    - name: app
      image: busybox:1.35
      command: ["sh", "-c", "test -e /work/up && until [ -e /work/done ]; do sleep 0.1; done"]
      volumeMounts: [{name: work, mountPath: /work}]
  volumes:
    - name: work
      emptyDir: {}
"#;
    apply(&agent, yaml);
    agent.wait_running("with-sidecar");
    wait_for(Duration::from_secs(20), "both ready", || {
        (row(&agent, "with-sidecar") == ("2/2".into(), "Running".into(), "0".into())).then_some(())
    });
    agent.ok(&[
        "exec",
        "with-sidecar",
        "-c",
        "app",
        "--",
        "touch",
        "/work/done",
    ]);
    let pod = agent.wait_phase("with-sidecar", "Succeeded", Duration::from_secs(60));
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        0
    );
    let sidecar = wait_for(Duration::from_secs(30), "the sidecar stopped", || {
        let pod = agent.pod("with-sidecar");
        let status = pod["status"]["initContainerStatuses"][0].clone();
        status["state"]["terminated"].is_object().then_some(status)
    });
    assert_eq!(sidecar["restartCount"], 0, "not restarted: {sidecar}");
}
