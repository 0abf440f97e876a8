//! ReplicationControllers on a real agent (issue 17): the selector defaulted from the
//! template, its replicas made and counted in `get rc`, scaled through the scale
//! subresource, a deleted pod replaced, and its pods deleted with it.
//! Real agent, real containers, as root.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::time::Duration;

use common::{table_header, wait_for, TestAgent};
use serde_json::{json, Value};

/// No selector: Kubernetes defaults it, and the controller's labels, to the template's.
const RC: &str = r#"apiVersion: v1
kind: ReplicationController
metadata: {name: web}
spec:
  replicas: 2
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: busybox:1.35
        command: ["sh", "-c", "exec sleep 100000"]
"#;

/// The names of the pods `web` controls that are not terminating.
fn live_pods(agent: &TestAgent) -> Vec<String> {
    let mut names: Vec<String> = agent
        .pods()
        .into_iter()
        .filter(|pod| pod["metadata"]["deletionTimestamp"].is_null())
        .filter(|pod| {
            pod["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|owners| {
                    owners.iter().any(|o| {
                        o["kind"] == "ReplicationController"
                            && o["name"] == "web"
                            && o["apiVersion"] == "v1"
                            && o["controller"] == true
                    })
                })
        })
        .filter_map(|pod| pod["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// The first row of `get rc` once it reads `cells` in its first columns.
fn wait_row(agent: &TestAgent, cells: [&str; 4]) -> Vec<String> {
    wait_for(
        Duration::from_secs(60),
        &format!("get rc showing {cells:?}"),
        || {
            let table = agent.ok(&["get", "rc"]);
            let row: Vec<String> = table
                .lines()
                .nth(1)?
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            (row.len() >= 4 && row[..4] == cells).then_some(row)
        },
    )
}

fn wait_pods(agent: &TestAgent, count: usize) -> Vec<String> {
    wait_for(
        Duration::from_secs(60),
        &format!("{count} pods of the replication controller"),
        || {
            let names = live_pods(agent);
            (names.len() == count).then_some(names)
        },
    )
}

#[test]
fn a_replication_controller_keeps_scales_replaces_and_takes_its_pods_along() {
    let agent = TestAgent::start();
    let applied = agent.apply_yaml(RC);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let said = String::from_utf8_lossy(&applied.stdout);
    assert!(said.contains("replicationcontroller/web created"), "{said}");

    let stored = agent.json(&["get", "rc", "web"]);
    assert_eq!(stored["spec"]["selector"], json!({"app": "web"}));
    assert_eq!(stored["metadata"]["labels"], json!({"app": "web"}));

    let pods = wait_pods(&agent, 2);
    for name in &pods {
        let suffix = name.strip_prefix("web-").unwrap_or_default();
        assert_eq!(suffix.len(), 5, "named <rc>-<5 random characters>: {name}");
    }
    wait_row(&agent, ["web", "2", "2", "2"]);
    let table = agent.ok(&["get", "replicationcontrollers"]);
    assert_eq!(
        table_header(&table),
        ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    );
    let wide = agent.ok(&["get", "rc", "-o", "wide"]);
    let row: Vec<&str> = wide.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[5..], ["web", "busybox:1.35", "app=web"], "{wide}");
    let status: Value = agent.json(&["get", "rc", "web"])["status"].clone();
    assert_eq!(status["readyReplicas"], 2, "{status}");
    assert_eq!(status["fullyLabeledReplicas"], 2, "{status}");

    let described = agent.ok(&["describe", "rc", "web"]);
    assert!(described.contains("2 current / 2 desired"), "{described}");
    assert!(described.contains("app=web"), "{described}");

    let scaled = agent.ok(&["scale", "rc", "web", "--replicas", "3"]);
    assert_eq!(scaled.trim(), "replicationcontroller/web scaled");
    let pods = wait_pods(&agent, 3);
    wait_row(&agent, ["web", "3", "3", "3"]);
    // `all` takes RCs in, after the pods as kubectl lists them.
    let all = agent.ok(&["get", "all"]);
    let blocks: Vec<&str> = all.split("\n\n").collect();
    assert!(blocks[0].contains("pod/web-"), "{all}");
    assert!(
        blocks[1]
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("replicationcontroller/web ")),
        "{all}"
    );

    // A deleted pod is replaced by a new one.
    let gone = pods[0].clone();
    agent.ok(&["delete", "pod", &gone]);
    wait_for(Duration::from_secs(60), "the deleted pod replaced", || {
        let names = live_pods(&agent);
        (names.len() == 3 && !names.contains(&gone)).then_some(())
    });
    wait_row(&agent, ["web", "3", "3", "3"]);

    // Deleting the controller deletes its pods.
    agent.ok(&["delete", "rc", "web"]);
    wait_for(
        Duration::from_secs(60),
        "the controller's pods gone",
        || agent.pods().is_empty().then_some(()),
    );
    assert!(!agent.berth(&["get", "rc", "web"]).status.success());
}
