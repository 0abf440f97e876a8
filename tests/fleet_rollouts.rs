//! Rollouts across a fleet (issue 14): a DaemonSet on three test boards, each agent in
//! its own network namespace, with a coordinator pacing the rollout by boards.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;
#[allow(dead_code)]
#[path = "common/fleet.rs"]
mod fleet_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{wait_for, TestAgent};
use fleet_support::{TestCoordinator, TestNetwork};
use serde_json::Value;

const GENERIC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/board-configs/generic-x86_64.yaml"
);

struct Fleet {
    // Dropped in this order: agents, coordinator, network.
    agents: Vec<TestAgent>,
    coordinator: TestCoordinator,
    _network: TestNetwork,
}

/// A coordinator and one board per (name, extra node labels), all joined and Ready.
fn fleet(boards: &[(&str, &str)]) -> Fleet {
    let mut network = TestNetwork::new();
    let coordinator = TestCoordinator::start(&network.gateway(), &[]);
    let mut agents = Vec::new();
    for (name, labels) in boards {
        let netns = network.add_host();
        let token = coordinator.token();
        let mut args = vec![
            "--join",
            &coordinator.url,
            "--token",
            &token,
            "--board",
            GENERIC,
        ];
        if !labels.is_empty() {
            args.extend(["--node-labels", labels]);
        }
        agents.push(TestAgent::start_as(name, Some(&netns), &args));
    }
    wait_for(Duration::from_secs(30), "every node Ready", || {
        let nodes = coordinator.json(&["get", "nodes"]);
        let ready = nodes["items"]
            .as_array()?
            .iter()
            .filter(|n| {
                n["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
            .count();
        (ready == boards.len()).then_some(())
    });
    Fleet {
        agents,
        coordinator,
        _network: network,
    }
}

fn daemon_set(version: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: probe}}
spec:
  selector: {{matchLabels: {{app: probe}}}}
  updateStrategy:
    type: RollingUpdate
    rollingUpdate: {{maxUnavailable: 1}}
  template:
    metadata: {{labels: {{app: probe, version: '{version}'}}}}
    spec:
      terminationGracePeriodSeconds: 1
      nodeSelector: {{sensor: 'yes'}}
      containers:
      - name: main
        image: busybox:1.35
        command: [sleep, '100000']
        readinessProbe:
          exec: {{command: ['true']}}
          periodSeconds: 1
"
    )
}

fn apply(coordinator: &TestCoordinator, yaml: &str) {
    let file = coordinator.state.path().join("apply.yaml");
    std::fs::write(&file, yaml).unwrap();
    coordinator.ok(&["apply", "-f", file.to_str().unwrap()]);
}

/// The DaemonSet's live pods at the coordinator: node → (version, ready) each.
fn by_node(coordinator: &TestCoordinator) -> BTreeMap<String, Vec<(String, bool)>> {
    let mut by_node: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
    let list = coordinator.json(&["get", "pods", "-l", "app=probe"]);
    for pod in list["items"].as_array().cloned().unwrap_or_default() {
        if !pod["metadata"]["deletionTimestamp"].is_null() {
            continue;
        }
        let ready = pod["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        let version = pod["metadata"]["labels"]["version"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let node = pod["spec"]["nodeName"].as_str().unwrap_or("").to_owned();
        by_node.entry(node).or_default().push((version, ready));
    }
    by_node
}

/// Whether exactly `nodes` run one ready pod of `version` each, and nothing else.
fn settled(coordinator: &TestCoordinator, nodes: &[&str], version: &str) -> bool {
    let placed = by_node(coordinator);
    let names: BTreeSet<&str> = placed.keys().map(String::as_str).collect();
    names == nodes.iter().copied().collect()
        && placed
            .values()
            .all(|pods| pods.len() == 1 && pods[0].0 == version && pods[0].1)
}

#[test]
fn a_daemon_set_follows_node_labels_and_rolls_one_board_at_a_time() {
    let fleet = fleet(&[("b1", "sensor=yes"), ("b2", "sensor=yes"), ("b3", "")]);
    let c = &fleet.coordinator;
    apply(c, &daemon_set("v1"));
    wait_for(Duration::from_secs(60), "probe on b1 and b2", || {
        settled(c, &["b1", "b2"], "v1").then_some(())
    });
    let ds = c.json(&["get", "daemonset", "probe"]);
    assert_eq!(ds["status"]["desiredNumberScheduled"], 2, "{ds:#}");
    assert_eq!(ds["status"]["numberReady"], 2, "{ds:#}");
    // The pods run on their boards, as the boards themselves report.
    for agent in &fleet.agents[..2] {
        let pods = agent.pods();
        assert_eq!(pods.len(), 1, "on {}", agent.node_name);
    }

    // A label change on b3 gives it its pod.
    c.ok(&["label", "node", "b3", "sensor=yes"]);
    wait_for(Duration::from_secs(60), "probe on all three", || {
        settled(c, &["b1", "b2", "b3"], "v1").then_some(())
    });
    let table = c.ok(&["get", "daemonsets"]);
    assert!(
        table.starts_with("NAME    DESIRED   CURRENT   READY   UP-TO-DATE"),
        "{table}"
    );

    // A rolling update with maxUnavailable 1: never two boards without a ready pod.
    apply(c, &daemon_set("v2"));
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut samples = 0;
    while !settled(c, &["b1", "b2", "b3"], "v2") {
        let placed = by_node(c);
        let serving = ["b1", "b2", "b3"]
            .iter()
            .filter(|node| {
                placed
                    .get(**node)
                    .is_some_and(|pods| pods.iter().any(|(_, ready)| *ready))
            })
            .count();
        assert!(serving >= 2, "two boards without a ready pod: {placed:?}");
        samples += 1;
        assert!(
            Instant::now() < deadline,
            "rollout not done: {placed:?}\n{}",
            c.log_tail()
        );
    }
    eprintln!("DaemonSet rollout over 3 boards: {samples} samples, never 2 boards down");
    let value: Value = c.json(&["get", "daemonset", "probe"]);
    assert_eq!(value["status"]["updatedNumberScheduled"], 3, "{value:#}");
}
