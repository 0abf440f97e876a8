//! Configuration and data across a fleet (issue 15): a board gets exactly the ConfigMaps
//! and Secrets its pods read, its pods see them in env and files, and an update made at
//! the coordinator reaches a running pod's files on the board without a restart; a
//! PersistentVolumeClaim binds its pods to the board that holds its data.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;
#[allow(dead_code)]
#[path = "common/fleet.rs"]
mod fleet_support;

use std::time::Duration;

use common::wait_for;
use fleet_support::Fleet;

fn apply(fleet: &Fleet, yaml: &str) {
    let path = fleet.agents[0].state.path().join("fleet-config.yaml");
    std::fs::write(&path, yaml).unwrap();
    fleet
        .coordinator
        .ok(&["apply", "-f", path.to_str().unwrap()]);
}

fn config(greeting: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  greeting: {greeting}\n\
         ---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: unused\ndata:\n  x: y\n\
         ---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  token: t0k\n"
    )
}

const POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: reader
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: busybox:1.35
      command: ["sleep", "100000"]
      env:
        - name: TOKEN
          valueFrom:
            secretKeyRef: {name: creds, key: token}
        - name: NODE
          valueFrom:
            fieldRef: {fieldPath: spec.nodeName}
      volumeMounts: [{name: config, mountPath: /config}]
  volumes:
    - name: config
      configMap: {name: app}
"#;

#[test]
fn a_board_gets_the_config_its_pods_read_and_its_updates() {
    let fleet = Fleet::start(&[("c1", "")], &[]);
    let board = &fleet.agents[0];
    apply(&fleet, &config("hello"));
    apply(&fleet, POD);
    let running = |pod: &serde_json::Value| {
        pod["status"]["containerStatuses"][0]["state"]["running"].is_object()
    };
    wait_for(Duration::from_secs(60), "the pod running on c1", || {
        let out = board.berth(&["get", "pod", "reader", "-o", "json"]);
        let pod: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        running(&pod).then_some(())
    });
    let exec = |script: &str| {
        let out = board.berth(&["exec", "reader", "--", "sh", "-c", script]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        exec("echo $TOKEN $NODE; cat /config/greeting"),
        "t0k c1\nhello"
    );
    // Only what the pod reads is on the board.
    let names = |kind: &str| -> Vec<String> {
        board.json(&["get", kind])["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names("configmaps"), ["app"]);
    assert_eq!(names("secrets"), ["creds"]);
    let id = board.pod("reader")["status"]["containerStatuses"][0]["containerID"].clone();
    apply(&fleet, &config("updated"));
    wait_for(
        Duration::from_secs(40),
        "the update in the board's file",
        || (exec("cat /config/greeting") == "updated").then_some(()),
    );
    let pod = board.pod("reader");
    assert_eq!(pod["status"]["containerStatuses"][0]["containerID"], id);
    assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 0);
}

const CLAIM_AND_WRITER: &str = r#"apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 64Mi
---
apiVersion: v1
kind: Pod
metadata:
  name: keeper
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: busybox:1.35
      command: ["sh", "-c", "cat /data/note 2>/dev/null || echo kept > /data/note; exec sleep 100000"]
      volumeMounts: [{name: data, mountPath: /data}]
  volumes:
    - name: data
      persistentVolumeClaim: {claimName: data}
"#;

/// The node of the running pod `keeper`, once it runs.
fn keeper_node(fleet: &Fleet) -> String {
    wait_for(Duration::from_secs(60), "keeper running", || {
        running(fleet, "keeper").map(|(_, node)| node)
    })
}

#[test]
fn a_claim_keeps_its_pods_on_the_board_with_its_data() {
    let fleet = Fleet::start(&[("d1", ""), ("d2", "")], &[]);
    apply(&fleet, CLAIM_AND_WRITER);
    let first = keeper_node(&fleet);
    let claim = fleet.coordinator.json(&["get", "pvc", "data"]);
    assert_eq!(
        claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"],
        first.as_str()
    );
    assert_eq!(claim["status"]["phase"], "Bound");
    let board = fleet.agents.iter().find(|a| a.node_name == first).unwrap();
    wait_for(Duration::from_secs(20), "the note written", || {
        let out = board.berth(&["exec", "keeper", "--", "cat", "/data/note"]);
        (String::from_utf8_lossy(&out.stdout).trim() == "kept").then_some(())
    });
    // The scheduler packs: with a busier other board, only the claim keeps the pod here.
    let other = if first == "d1" { "d2" } else { "d1" };
    apply(
        &fleet,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: filler\nspec:\n  nodeName: {other}\n  \
             containers:\n    - name: main\n      image: busybox:1.35\n      \
             command: [sleep, \"100000\"]\n      resources: {{requests: {{cpu: 500m}}}}\n"
        ),
    );
    // Recreated, the pod lands where its data is, and finds it.
    for _ in 0..2 {
        fleet.coordinator.ok(&["delete", "pod", "keeper"]);
        wait_for(Duration::from_secs(30), "keeper gone", || {
            let gone = !fleet
                .coordinator
                .pods()
                .iter()
                .any(|p| p["metadata"]["name"] == "keeper");
            gone.then_some(())
        });
        apply(&fleet, CLAIM_AND_WRITER);
        assert_eq!(keeper_node(&fleet), first);
    }
    let logs = board.ok(&["logs", "keeper"]);
    assert_eq!(logs.trim(), "kept");
}

const STATEFUL: &str = r#"apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 2
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: main
          image: busybox:1.35
          command: ["sh", "-c", "cat /data/id 2>/dev/null || hostname > /data/id; exec sleep 100000"]
          volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
    - metadata: {name: data}
      spec:
        accessModes: [ReadWriteOnce]
        resources: {requests: {storage: 64Mi}}
"#;

/// The running, not terminating pod `name`: (uid, node).
fn running(fleet: &Fleet, name: &str) -> Option<(String, String)> {
    fleet.coordinator.pods().into_iter().find_map(|pod| {
        let live =
            pod["status"]["phase"] == "Running" && pod["metadata"]["deletionTimestamp"].is_null();
        (pod["metadata"]["name"] == name && live).then(|| {
            (
                pod["metadata"]["uid"].as_str().unwrap().to_owned(),
                pod["spec"]["nodeName"].as_str().unwrap().to_owned(),
            )
        })
    })
}

#[test]
fn a_stateful_set_replica_comes_back_on_the_board_with_its_claim() {
    let fleet = Fleet::start(&[("s1", ""), ("s2", "")], &[]);
    apply(&fleet, STATEFUL);
    let placed: Vec<(String, String)> = ["db-0", "db-1"]
        .iter()
        .map(|name| {
            wait_for(Duration::from_secs(60), &format!("{name} running"), || {
                running(&fleet, name)
            })
        })
        .collect();
    for (ordinal, (_, node)) in placed.iter().enumerate() {
        let claim = fleet
            .coordinator
            .json(&["get", "pvc", &format!("data-db-{ordinal}")]);
        assert_eq!(
            claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"],
            node.as_str()
        );
    }
    // Deleted, each replica is made again by the coordinator's controller, on its
    // claim's board, and finds the data it wrote first.
    for (ordinal, (uid, node)) in placed.iter().enumerate() {
        let name = format!("db-{ordinal}");
        fleet.coordinator.ok(&["delete", "pod", &name]);
        let (new_uid, new_node) = wait_for(Duration::from_secs(60), "made again", || {
            running(&fleet, &name).filter(|(new_uid, _)| new_uid != uid)
        });
        assert_ne!(&new_uid, uid);
        assert_eq!(&new_node, node, "{name} moved off its data");
        let board = fleet.agents.iter().find(|a| &a.node_name == node).unwrap();
        let id = wait_for(Duration::from_secs(20), "the id kept", || {
            let out = board.berth(&["exec", &name, "--", "cat", "/data/id"]);
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        });
        assert_eq!(id, name);
    }
}
