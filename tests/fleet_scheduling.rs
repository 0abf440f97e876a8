//! Scheduling constraints at a coordinator with three test boards in two zones (issue
//! 17): required pod anti-affinity puts one replica per board and leaves the one too many
//! Pending with Kubernetes' message; a topology spread constraint evens replicas out over
//! zones, where spreading by owner alone would not.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;
#[allow(dead_code)]
#[path = "common/fleet.rs"]
mod fleet_support;

use std::collections::BTreeMap;
use std::time::Duration;

use common::wait_for;
use fleet_support::Fleet;
use serde_json::Value;

const ZONE: &str = "topology.kubernetes.io/zone";

fn apply(fleet: &Fleet, yaml: &str) {
    let path = fleet.coordinator.state.path().join("scheduling.yaml");
    std::fs::write(&path, yaml).unwrap();
    fleet
        .coordinator
        .ok(&["apply", "-f", path.to_str().unwrap()]);
}

/// A Deployment of `replicas` sleeping pods labelled `app: <name>`, with `placement` (YAML
/// at the pod spec's indentation).
fn deployment(name: &str, replicas: usize, placement: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      terminationGracePeriodSeconds: 1
{placement}
      containers:
        - name: main
          image: busybox:1.35
          command: [sleep, "100000"]
"#
    )
}

fn pods_of(fleet: &Fleet, app: &str) -> Vec<Value> {
    fleet
        .coordinator
        .pods()
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["app"] == app)
        .filter(|p| p["metadata"].get("deletionTimestamp").is_none())
        .collect()
}

/// Running pods of `app` per zone of their node in `zones` (per node when not there).
fn running_by(fleet: &Fleet, app: &str, zones: &BTreeMap<&str, &str>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for pod in pods_of(fleet, app) {
        if pod["status"]["phase"] != "Running" {
            continue;
        }
        let node = pod["spec"]["nodeName"].as_str().unwrap_or("");
        let domain = zones.get(node).map_or(node, |zone| *zone);
        *counts.entry(domain.to_owned()).or_default() += 1;
    }
    counts
}

#[test]
fn anti_affinity_and_topology_spread_place_replicas_across_boards() {
    let (z1, z2) = (format!("{ZONE}=z1"), format!("{ZONE}=z2"));
    let dongle: &[&str] = &["--extended-resources", "example.com/dongle=1"];
    let fleet = Fleet::start_with(
        &[("s1", &z1, &[]), ("s2", &z1, dongle), ("s3", &z2, &[])],
        &[],
    );
    let no_zones = BTreeMap::new();
    let zones = BTreeMap::from([("s1", "z1"), ("s2", "z1"), ("s3", "z2")]);

    // One database replica per board, whatever else the boards run.
    let anti = "      affinity:\n        podAntiAffinity:\n          \
                requiredDuringSchedulingIgnoredDuringExecution:\n          \
                - labelSelector: {matchLabels: {app: db}}\n            \
                topologyKey: kubernetes.io/hostname";
    apply(&fleet, &deployment("db", 3, anti));
    wait_for(Duration::from_secs(60), "one db per board", || {
        let by_node = running_by(&fleet, "db", &no_zones);
        (by_node.len() == 3 && by_node.values().all(|n| *n == 1)).then_some(())
    });
    fleet
        .coordinator
        .ok(&["scale", "deployment", "db", "--replicas", "4"]);
    let pending = wait_for(Duration::from_secs(30), "the fourth db Pending", || {
        pods_of(&fleet, "db").into_iter().find(|p| {
            p["spec"]["nodeName"].is_null()
                && p["status"]["conditions"][0]["reason"] == "Unschedulable"
        })
    });
    assert_eq!(
        pending["status"]["conditions"][0]["message"],
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."
    );
    assert_eq!(running_by(&fleet, "db", &no_zones).len(), 3);

    // Four web replicas spread over the two zones: two in z2's only board. Spreading
    // by owner alone would give each board one and put the fourth in z1.
    let spread = "      topologySpreadConstraints:\n        \
                  - maxSkew: 1\n          topologyKey: topology.kubernetes.io/zone\n          \
                  whenUnsatisfiable: DoNotSchedule\n          \
                  labelSelector: {matchLabels: {app: web}}";
    apply(&fleet, &deployment("web", 4, spread));
    let by_zone = wait_for(Duration::from_secs(60), "four web replicas running", || {
        let by_zone = running_by(&fleet, "web", &zones);
        (by_zone.values().sum::<usize>() == 4).then_some(by_zone)
    });
    assert_eq!(
        by_zone,
        BTreeMap::from([("z1".to_owned(), 2), ("z2".to_owned(), 2)])
    );

    // The one pod that needs the dongle goes to the one board that has it; a second
    // one waits for it.
    let reader =
        "      containers:\n        - name: main\n          image: busybox:1.35\n          \
                  command: [sleep, \"100000\"]\n          \
                  resources: {limits: {example.com/dongle: 1}}";
    let zigbee = deployment("zigbee", 2, "").replace(
        "      containers:\n        - name: main\n          image: busybox:1.35\n          command: [sleep, \"100000\"]",
        reader,
    );
    assert!(zigbee.contains("example.com/dongle"), "{zigbee}");
    apply(&fleet, &zigbee);
    let pending = wait_for(
        Duration::from_secs(60),
        "one zigbee running, one Pending",
        || {
            let by_node = running_by(&fleet, "zigbee", &no_zones);
            let pending = pods_of(&fleet, "zigbee")
                .into_iter()
                .find(|p| p["status"]["conditions"][0]["reason"] == "Unschedulable");
            (by_node == BTreeMap::from([("s2".to_owned(), 1)]))
                .then_some(pending)
                .flatten()
        },
    );
    assert_eq!(
        pending["status"]["conditions"][0]["message"],
        "0/3 nodes are available: 3 Insufficient example.com/dongle."
    );
}

/// A pod pinned to board `node`, with `tolerations` (YAML at the pod spec's indentation).
fn pinned(name: &str, node: &str, tolerations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: {node}\n  \
         terminationGracePeriodSeconds: 1\n{tolerations}  containers:\n  - name: main\n    \
         image: busybox:1.35\n    command: [sleep, \"100000\"]\n"
    )
}

fn exists(fleet: &Fleet, name: &str) -> bool {
    fleet
        .coordinator
        .pods()
        .iter()
        .any(|p| p["metadata"]["name"] == name && p["metadata"].get("deletionTimestamp").is_none())
}

#[test]
fn a_no_execute_taint_evicts_after_toleration_seconds() {
    let fleet = Fleet::start(&[("t1", ""), ("t2", "")], &[]);
    let tolerate = |seconds: &str| {
        format!(
            "  tolerations:\n  - {{key: dedicated, operator: Exists, effect: NoExecute{seconds}}}\n"
        )
    };
    apply(&fleet, &pinned("plain", "t1", ""));
    apply(
        &fleet,
        &pinned("brief", "t1", &tolerate(", tolerationSeconds: 4")),
    );
    apply(&fleet, &pinned("staying", "t1", &tolerate("")));
    wait_for(Duration::from_secs(60), "three pods running on t1", || {
        let pods = fleet.coordinator.pods();
        let running = pods.iter().filter(|p| p["status"]["phase"] == "Running");
        (running.count() == 3).then_some(())
    });

    let tainted_at = std::time::Instant::now();
    let out = fleet
        .coordinator
        .ok(&["taint", "nodes", "t1", "dedicated=maint:NoExecute"]);
    assert_eq!(out, "node/t1 tainted\n");
    let node = fleet.coordinator.json(&["get", "node", "t1"]);
    let taint = &node["spec"]["taints"][0];
    assert_eq!(taint["effect"], "NoExecute");
    assert!(taint["timeAdded"].is_string(), "{taint}");

    wait_for(Duration::from_secs(20), "plain evicted", || {
        (!exists(&fleet, "plain")).then_some(())
    });
    wait_for(Duration::from_secs(30), "brief evicted", || {
        (!exists(&fleet, "brief")).then_some(())
    });
    // The taint's time has second resolution: allow for its rounding down.
    assert!(
        tainted_at.elapsed() >= Duration::from_secs(3),
        "brief was evicted after {:?}, before its 4 s",
        tainted_at.elapsed()
    );
    assert!(exists(&fleet, "staying"), "tolerated for good");
    // Nothing new goes there without a toleration.
    apply(&fleet, &deployment("after", 1, ""));
    wait_for(Duration::from_secs(60), "the new pod on t2", || {
        (running_by(&fleet, "after", &BTreeMap::new()) == BTreeMap::from([("t2".to_owned(), 1)]))
            .then_some(())
    });
    let out = fleet
        .coordinator
        .ok(&["taint", "nodes", "t1", "dedicated:NoExecute-"]);
    assert_eq!(out, "node/t1 untainted\n");
    let node = fleet.coordinator.json(&["get", "node", "t1"]);
    assert!(
        node["spec"]["taints"].as_array().is_none_or(Vec::is_empty),
        "{node}"
    );
}
