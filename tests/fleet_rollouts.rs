//! Rollouts across a fleet (issue 14): a DaemonSet on three test boards, each agent in
//! its own network namespace, with a coordinator pacing the rollout by boards.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;
#[allow(dead_code)]
#[path = "common/fleet.rs"]
mod fleet_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::wait_for;
use fleet_support::{Fleet, TestCoordinator};
use serde_json::Value;

/// A coordinator and one board per (name, extra node labels), all joined and Ready.
fn fleet(boards: &[(&str, &str)]) -> Fleet {
    Fleet::start(boards, &[])
}

fn fleet_with(boards: &[(&str, &str)], coordinator_args: &[&str]) -> Fleet {
    Fleet::start(boards, coordinator_args)
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

/// Waits until node `name`'s Ready condition is no longer True.
fn wait_not_ready(coordinator: &TestCoordinator, name: &str) {
    wait_for(
        Duration::from_secs(30),
        &format!("{name} not ready"),
        || {
            let node = coordinator.json(&["get", "node", name]);
            let ready = node["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            (!ready).then_some(())
        },
    );
}

const SHORT_GRACE: [&str; 4] = [
    "--node-monitor-grace-period",
    "3s",
    "--pod-eviction-timeout",
    "3s",
];

#[test]
fn an_offline_board_does_not_block_a_daemon_set_rollout_and_catches_up_when_back() {
    let fleet = fleet_with(
        &[
            ("d1", "sensor=yes"),
            ("d2", "sensor=yes"),
            ("d3", "sensor=yes"),
        ],
        &SHORT_GRACE,
    );
    let c = &fleet.coordinator;
    apply(c, &daemon_set("v1"));
    wait_for(Duration::from_secs(60), "probe on all three", || {
        settled(c, &["d1", "d2", "d3"], "v1").then_some(())
    });
    fleet.network.set_link(2, false);
    wait_not_ready(c, "d3");
    apply(c, &daemon_set("v2"));
    // d1 and d2 roll; d3's pod is neither replaced nor evicted meanwhile.
    wait_for(Duration::from_secs(60), "v2 on d1 and d2", || {
        let placed = by_node(c);
        let rolled = ["d1", "d2"].iter().all(|n| {
            placed
                .get(*n)
                .is_some_and(|p| p.len() == 1 && p[0] == ("v2".to_owned(), true))
        });
        let d3_kept = placed
            .get("d3")
            .is_some_and(|p| p.len() == 1 && p[0].0 == "v1");
        (rolled && d3_kept).then_some(())
    });
    assert_eq!(
        fleet.agents[2].pods().len(),
        1,
        "d3 keeps its pod while cut off"
    );
    fleet.network.set_link(2, true);
    wait_for(Duration::from_secs(90), "d3 rolled too once back", || {
        settled(c, &["d1", "d2", "d3"], "v2").then_some(())
    });
}

fn deployment(version: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 4
  selector: {{matchLabels: {{app: web}}}}
  strategy: {{type: RollingUpdate, rollingUpdate: {{maxSurge: 1, maxUnavailable: 1}}}}
  template:
    metadata: {{labels: {{app: web, version: '{version}'}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox:1.35
        command: [sleep, '100000']
        resources: {{requests: {{memory: 16Mi, cpu: 10m}}}}
"
    )
}

#[test]
fn a_deployment_rollout_goes_on_without_an_offline_board_which_drops_its_old_pods_when_back() {
    let fleet = fleet_with(&[("e1", ""), ("e2", "")], &SHORT_GRACE);
    let c = &fleet.coordinator;
    let pods_of = |version: &str| -> BTreeMap<String, usize> {
        let mut by_node = BTreeMap::new();
        for pod in c.pods() {
            let live = pod["metadata"]["deletionTimestamp"].is_null();
            let running = pod["status"]["phase"] == "Running";
            if live && running && pod["metadata"]["labels"]["version"] == version {
                let node = pod["spec"]["nodeName"].as_str().unwrap_or("").to_owned();
                *by_node.entry(node).or_default() += 1;
            }
        }
        by_node
    };
    apply(c, &deployment("v1"));
    wait_for(Duration::from_secs(60), "4 v1 pods, some on e2", || {
        let placed = pods_of("v1");
        (placed.values().sum::<usize>() == 4 && placed.contains_key("e2")).then_some(())
    });
    fleet.network.set_link(1, false);
    wait_not_ready(c, "e2");
    apply(c, &deployment("v2"));
    // The rollout finishes on e1: e2's pods count as unavailable, then are replaced.
    wait_for(Duration::from_secs(90), "4 v2 pods on e1", || {
        let progressing = c.json(&["get", "deployment", "web"])["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Progressing" && c["reason"] == "NewReplicaSetAvailable");
        (pods_of("v2").get("e1") == Some(&4) && progressing).then_some(())
    });
    fleet.network.set_link(1, true);
    wait_for(Duration::from_secs(90), "e2 drops its old pods", || {
        fleet.agents[1].pods().is_empty().then_some(())
    });
}

#[test]
fn a_coordinator_killed_mid_rollout_resumes_it_within_its_bounds() {
    let mut fleet = fleet(&[("f1", ""), ("f2", "")]);
    apply(&fleet.coordinator, &deployment("v1"));
    // Pods of `version` at the coordinator: (live, ready); None while it does not answer.
    let sample = |c: &TestCoordinator, version: &str| -> Option<(usize, usize)> {
        let out = c.berth(&["get", "pods", "-l", "app=web", "-o", "json"]);
        let list: Value = serde_json::from_slice(&out.stdout).ok()?;
        let pods = list["items"].as_array()?;
        let live: Vec<&Value> = pods
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .filter(|p| version.is_empty() || p["metadata"]["labels"]["version"] == version)
            .collect();
        let ready = live
            .iter()
            .filter(|p| {
                p["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
            .count();
        Some((live.len(), ready))
    };
    wait_for(Duration::from_secs(60), "4 ready v1 pods", || {
        (sample(&fleet.coordinator, "v1") == Some((4, 4))).then_some(())
    });
    apply(&fleet.coordinator, &deployment("v2"));
    wait_for(Duration::from_secs(60), "the first v2 pods", || {
        sample(&fleet.coordinator, "v2").filter(|(live, _)| *live >= 1)
    });
    fleet.coordinator.stop();
    assert!(
        fleet.coordinator.spawn(),
        "the coordinator restarts on its state"
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        // maxSurge 1, maxUnavailable 1 of 4: at most 5 pods, at least 3 ready.
        if let Some((live, ready)) = sample(&fleet.coordinator, "") {
            assert!(live <= 5 && ready >= 3, "{live} pods, {ready} ready");
        }
        if sample(&fleet.coordinator, "v2") == Some((4, 4))
            && sample(&fleet.coordinator, "") == Some((4, 4))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            fleet.coordinator.log_tail()
        );
    }
}
