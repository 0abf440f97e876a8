//! A coordinator that keeps its objects in a real etcd (`--datastore-endpoint`, issue 16):
//! a board joins, a Deployment runs on it, the objects are in etcd and not in a SQLite
//! file, and two clients updating one object from the same `resourceVersion` get one
//! success and one 409 Conflict with Kubernetes' message.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;
#[path = "common/etcd.rs"]
mod etcd_support;
#[allow(dead_code)]
#[path = "common/fleet.rs"]
mod fleet_support;

use std::time::Duration;

use berth::store::etcd::{EtcdClient, EtcdConfig};
use common::wait_for;
use etcd_support::EtcdCluster;
use fleet_support::Fleet;

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: main
          image: busybox:1.35
          command: ["sleep", "100000"]
"#;

fn config_map(value: &str, version: Option<&str>) -> String {
    let version = version.map_or(String::new(), |v| format!("  resourceVersion: \"{v}\"\n"));
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n{version}data:\n  value: {value}\n")
}

#[test]
fn a_coordinator_on_etcd_runs_a_fleet_with_compare_and_swap_updates() {
    let cluster = EtcdCluster::start(1);
    let endpoints = cluster.endpoint_list();
    let fleet = Fleet::start(&[("e1", "")], &["--datastore-endpoint", &endpoints]);
    let coordinator = &fleet.coordinator;
    let apply = |name: &str, yaml: &str| {
        let path = coordinator.state.path().join(name);
        std::fs::write(&path, yaml).unwrap();
        coordinator.berth(&["apply", "-f", path.to_str().unwrap()])
    };
    let out = apply("web.yaml", DEPLOYMENT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(
        Duration::from_secs(90),
        "two web pods running on e1",
        || {
            let running = coordinator
                .pods()
                .iter()
                .filter(|p| p["status"]["phase"] == "Running" && p["spec"]["nodeName"] == "e1")
                .count();
            (running == 2).then_some(())
        },
    );
    // The objects are in etcd, and no SQLite store was made.
    let raw = EtcdClient::new(EtcdConfig::new(cluster.endpoints())).unwrap();
    assert!(raw
        .get(b"/berth/objects/Deployment/default/web")
        .unwrap()
        .is_some());
    assert!(raw.get(b"/berth/objects/Node//e1").unwrap().is_some());
    assert!(!coordinator.state.path().join("berth.db").exists());

    // Two writers read version V; the first update from V wins, the second conflicts.
    assert!(apply("c0.yaml", &config_map("zero", None)).status.success());
    let read = coordinator.json(&["get", "configmap", "settings"]);
    let version = read["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = apply("c1.yaml", &config_map("one", Some(&version)));
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = apply("c2.yaml", &config_map("two", Some(&version)));
    assert!(!second.status.success());
    let message = String::from_utf8_lossy(&second.stderr);
    assert!(
        message.contains(
            "Operation cannot be fulfilled on configmaps \"settings\": the object has been \
             modified; please apply your changes to the latest version and try again"
        ),
        "{message}"
    );
    let stored = coordinator.json(&["get", "configmap", "settings"]);
    assert_eq!(stored["data"]["value"], "one");
    let newer: i64 = stored["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(newer > version.parse::<i64>().unwrap());
}
