//! ConfigMaps and Secrets across a fleet (issue 15): a board gets exactly the ones its
//! pods read, its pods see them in env and files, and an update made at the coordinator
//! reaches a running pod's files on the board without a restart.

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
