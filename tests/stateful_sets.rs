//! StatefulSets on a real agent (issue 17): pods made one at a time in ordinal order,
//! each waiting for the one before to be ready; a pod deleted comes back with its name,
//! its claim and its data; `db-1.db` resolves from another pod through the headless
//! Service; scaling down removes the highest ordinals and keeps their claims.
//!
//! The agent runs in a network namespace of its own test network (tests/common/fleet.rs)
//! with the pod network, so the cluster DNS answers.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;
#[allow(dead_code)]
#[path = "common/fleet.rs"]
mod fleet_support;

use std::time::Duration;

use common::wait_for;
use fleet_support::NetworkedBoard;

/// A headless Service and a StatefulSet whose pods are ready once `/tmp/ready` exists,
/// which the test creates: it decides when each pod is ready.
const SET: &str = r#"apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 80, name: web}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 3
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: db
        image: busybox:1.35
        command: ["sh", "-c", "exec sleep 100000"]
        readinessProbe:
          exec: {command: ["test", "-f", "/tmp/ready"]}
          periodSeconds: 1
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"#;

impl NetworkedBoard {
    /// `sh -c SCRIPT` in `pod`: its stdout when it exits 0.
    fn exec(&self, pod: &str, script: &str) -> Option<String> {
        let out = self.agent.berth(&["exec", pod, "--", "sh", "-c", script]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn exists(&self, pod: &str) -> bool {
        self.agent.berth(&["get", "pod", pod]).status.success()
    }

    /// Makes `pod` ready and waits until it is.
    fn make_ready(&self, pod: &str) {
        wait_for(Duration::from_secs(20), &format!("{pod} ready"), || {
            self.exec(pod, "touch /tmp/ready")?;
            let status = &self.agent.pod(pod)["status"];
            let ready = status["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            ready.then_some(())
        });
    }
}

#[test]
fn a_stateful_set_starts_in_order_and_keeps_names_data_and_dns() {
    let board = NetworkedBoard::start();
    let out = board.agent.apply_yaml(SET);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // In order: each pod is made only once the one before it is ready.
    for (ordinal, next) in [(0, Some(1)), (1, Some(2)), (2, None)] {
        let pod = format!("db-{ordinal}");
        board.agent.wait_running(&pod);
        if let Some(next) = next {
            assert!(
                !board.exists(&format!("db-{next}")),
                "db-{next} was made before {pod} was ready"
            );
        }
        board.make_ready(&pod);
    }
    let table = wait_for(Duration::from_secs(20), "3/3 ready", || {
        let table = board.agent.ok(&["get", "statefulsets"]);
        table.contains("3/3").then_some(table)
    });
    assert_eq!(common::table_header(&table), ["NAME", "READY", "AGE"]);
    let claims = board.agent.ok(&["get", "pvc"]);
    for ordinal in 0..3 {
        assert!(claims.contains(&format!("data-db-{ordinal}")), "{claims}");
    }

    // A deleted pod comes back with its name, its claim and its data.
    board.exec("db-1", "echo kept-by-db-1 > /data/id").unwrap();
    let old_uid = board.agent.pod("db-1")["metadata"]["uid"].clone();
    board.agent.ok(&["delete", "pod", "db-1"]);
    wait_for(Duration::from_secs(30), "db-1 made again", || {
        let pod = board.agent.pod("db-1");
        (pod["metadata"]["uid"] != old_uid && pod["status"]["phase"] == "Running").then_some(())
    });
    let data = wait_for(Duration::from_secs(20), "db-1's data", || {
        board.exec("db-1", "cat /data/id")
    });
    assert_eq!(data, "kept-by-db-1\n");
    assert_eq!(board.exec("db-1", "hostname").unwrap(), "db-1\n");

    // db-1.db resolves, from db-0, to db-1's address, once db-1 is ready again.
    board.make_ready("db-1");
    let address = board.agent.pod("db-1")["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_owned();
    let lookup = wait_for(Duration::from_secs(20), "nslookup db-1.db", || {
        board
            .exec("db-0", "nslookup db-1.db.default.svc.cluster.local")
            .filter(|out| out.contains(&address))
    });
    assert!(
        lookup.contains("db-1.db.default.svc.cluster.local"),
        "{lookup}"
    );

    // Scaling down removes the highest ordinals and keeps their claims.
    let out = board
        .agent
        .ok(&["scale", "statefulset", "db", "--replicas", "1"]);
    assert_eq!(out, "statefulset.apps/db scaled\n");
    wait_for(Duration::from_secs(30), "db-1 and db-2 gone", || {
        (!board.exists("db-1") && !board.exists("db-2")).then_some(())
    });
    assert!(board.exists("db-0"));
    let claims = board.agent.ok(&["get", "pvc"]);
    assert!(claims.contains("data-db-2"), "{claims}");
}
