//! PersistentVolumeClaims with the local-path class (issue 15): a pod waits for its claim,
//! the claim is provisioned as a directory when the pod starts, its data outlives the pod
//! and a `kill -9` of the agent, a read-only volume of it refuses writes, and deleting the
//! claim removes the directory once no pod uses it. Real agent, real containers, as root.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use common::{wait_for, TestAgent};
use serde_json::Value;

const CLAIM: &str = "apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
";

/// A pod with the claim read-write at /data and, in a second container, read-only (by its
/// volume's `readOnly`) at /ro.
const POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: keeper
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: busybox:1.35
      command: ["sh", "-c", "exec sleep 100000"]
      volumeMounts:
        - {name: data, mountPath: /data}
    - name: reader
      image: busybox:1.35
      command: ["sh", "-c", "exec sleep 100000"]
      volumeMounts:
        - {name: data-ro, mountPath: /ro}
  volumes:
    - name: data
      persistentVolumeClaim: {claimName: data}
    - name: data-ro
      persistentVolumeClaim: {claimName: data, readOnly: true}
"#;

fn apply(agent: &TestAgent, yaml: &str) {
    let out = agent.apply_yaml(yaml);
    assert!(
        out.status.success(),
        "apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `berth exec keeper -c C -- sh -c SCRIPT`: (exit code, stdout + stderr).
fn exec(agent: &TestAgent, container: &str, script: &str) -> (i32, String) {
    let out = agent.berth(&["exec", "keeper", "-c", container, "--", "sh", "-c", script]);
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// The directories under the agent's storage dir.
fn storage_dirs(agent: &TestAgent) -> Vec<PathBuf> {
    let root = agent.state.path().join("storage");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs
}

fn delete_pod_and_wait(agent: &TestAgent) {
    agent.ok(&["delete", "pod", "keeper"]);
    wait_for(Duration::from_secs(30), "pod keeper gone", || {
        (!agent.berth(&["get", "pod", "keeper"]).status.success()).then_some(())
    });
}

fn claim(agent: &TestAgent) -> Value {
    agent.json(&["get", "pvc", "data"])
}

#[test]
fn a_claim_keeps_its_data_across_pods_and_agent_restarts() {
    let mut agent = TestAgent::start();
    // The pod first: it waits for its claim, as an unschedulable pod waits.
    apply(&agent, POD);
    let waiting = wait_for(Duration::from_secs(20), "the pod to wait", || {
        let pod = agent.pod("keeper");
        let waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"].clone();
        waiting["message"].is_string().then_some(waiting)
    });
    assert_eq!(waiting["reason"], "ContainerCreating");
    assert_eq!(
        waiting["message"],
        "persistentvolumeclaim \"data\" not found"
    );
    assert!(storage_dirs(&agent).is_empty());

    apply(&agent, CLAIM);
    agent.wait_running("keeper");
    let bound = claim(&agent);
    let uid = bound["metadata"]["uid"].as_str().unwrap().to_owned();
    assert_eq!(bound["status"]["phase"], "Bound", "{bound}");
    assert_eq!(bound["status"]["capacity"]["storage"], "1Gi");
    assert_eq!(bound["spec"]["volumeName"], format!("pvc-{uid}"));
    assert_eq!(bound["spec"]["storageClassName"], "local-path");
    let dir = agent
        .state
        .path()
        .join("storage")
        .join(format!("default_data_{uid}"));
    assert_eq!(storage_dirs(&agent), std::slice::from_ref(&dir));
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o777);
    let table = agent.ok(&["get", "pvc"]);
    assert_eq!(
        common::table_header(&table),
        [
            "NAME",
            "STATUS",
            "VOLUME",
            "CAPACITY",
            "ACCESS MODES",
            "STORAGECLASS",
            "AGE"
        ]
    );
    assert!(
        table.contains(&format!("pvc-{uid}")) && table.contains("RWO"),
        "{table}"
    );
    let described = agent.ok(&["describe", "pvc", "data"]);
    assert!(
        described.contains("Used By:                keeper"),
        "{described}"
    );
    assert!(
        described.contains(&format!("Successfully provisioned volume pvc-{uid}")),
        "{described}"
    );

    // Written in the pod, seen on the board; the read-only volume refuses writes.
    let (code, out) = exec(&agent, "main", "echo kept > /data/note && cat /data/note");
    assert_eq!((code, out.trim()), (0, "kept"));
    assert_eq!(std::fs::read_to_string(dir.join("note")).unwrap(), "kept\n");
    let (code, out) = exec(&agent, "reader", "cat /ro/note && echo x > /ro/other");
    assert_ne!(code, 0, "{out}");
    assert!(out.starts_with("kept"), "{out}");
    assert!(!dir.join("other").exists());

    // A new pod sees what the old one wrote.
    delete_pod_and_wait(&agent);
    assert_eq!(std::fs::read_to_string(dir.join("note")).unwrap(), "kept\n");
    apply(&agent, POD);
    agent.wait_running("keeper");
    let (code, out) = exec(&agent, "main", "cat /data/note");
    assert_eq!((code, out.trim()), (0, "kept"));

    // kill -9 and back: the same claim, the same directory, the same data.
    agent.kill9();
    agent.spawn();
    assert_eq!(claim(&agent)["metadata"]["uid"], uid.as_str());
    delete_pod_and_wait(&agent);
    apply(&agent, POD);
    agent.wait_running("keeper");
    let (code, out) = exec(&agent, "main", "cat /data/note");
    assert_eq!((code, out.trim()), (0, "kept"));
    assert_eq!(storage_dirs(&agent), std::slice::from_ref(&dir));
    // Provisioned and recorded once, for three pods and a restart.
    let log = agent.log();
    assert_eq!(log.matches("provisioned persistentvolumeclaim").count(), 1);
    assert_eq!(
        log.matches("persistentvolumeclaim default/data bound")
            .count(),
        1
    );

    // Deleted while in use: Terminating, the data stays until the pod is gone.
    // As with kubectl, deleting a claim in use would wait for its pods: do not wait.
    agent.ok(&["delete", "pvc", "data", "--wait=false"]);
    let table = agent.ok(&["get", "pvc", "data"]);
    assert!(table.contains("Terminating"), "{table}");
    let (code, out) = exec(&agent, "main", "cat /data/note");
    assert_eq!((code, out.trim()), (0, "kept"));
    assert!(dir.join("note").is_file());
    delete_pod_and_wait(&agent);
    wait_for(
        Duration::from_secs(20),
        "the claim and its directory gone",
        || {
            let gone = !agent.berth(&["get", "pvc", "data"]).status.success();
            (gone && storage_dirs(&agent).is_empty()).then_some(())
        },
    );
    assert!(agent.state.path().join("storage").is_dir());
}

#[test]
fn a_directory_left_by_a_claim_deleted_while_the_agent_was_down_is_swept() {
    let mut agent = TestAgent::start();
    apply(&agent, CLAIM);
    apply(&agent, POD);
    agent.wait_running("keeper");
    let live = storage_dirs(&agent);
    assert_eq!(live.len(), 1);
    agent.kill9();
    // What a claim deleted while the agent was down leaves, and what is not a claim's.
    let root = agent.state.path().join("storage");
    let stray = root.join("default_old_0f8e7d6c-1111-4222-8333-444455556666");
    std::fs::create_dir_all(stray.join("sub")).unwrap();
    std::fs::write(stray.join("sub/file"), "old").unwrap();
    std::fs::create_dir_all(root.join("lost+found")).unwrap();
    std::fs::write(root.join("README"), "mine").unwrap();
    agent.spawn();
    wait_for(Duration::from_secs(20), "the stray directory swept", || {
        (!stray.exists()).then_some(())
    });
    assert!(live[0].is_dir(), "the live claim's directory stays");
    assert!(root.join("lost+found").is_dir());
    assert_eq!(
        std::fs::read_to_string(root.join("README")).unwrap(),
        "mine"
    );
    let (code, out) = exec(&agent, "main", "echo still > /data/note && cat /data/note");
    assert_eq!((code, out.trim()), (0, "still"));
}

#[test]
fn a_claim_of_a_class_berth_does_not_provision_stays_pending_and_so_does_its_pod() {
    let agent = TestAgent::start();
    let nfs = CLAIM.replace("spec:\n", "spec:\n  storageClassName: nfs-client\n");
    let out = agent.apply_yaml(&format!("{nfs}---\n{POD}"));
    assert!(
        out.status.success(),
        "apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(
        warning.contains(
            "Warning: spec.storageClassName: berth provisions only the \"local-path\" class"
        ),
        "{warning}"
    );
    let message = wait_for(
        Duration::from_secs(30),
        "the pod Pending with a reason",
        || {
            let pod = agent.pod("keeper");
            let scheduled = pod["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "PodScheduled" && c["status"] == "False")?
                .clone();
            Some(scheduled["message"].as_str().unwrap_or("").to_owned())
        },
    );
    assert!(
        message.contains("pod has unbound immediate PersistentVolumeClaims"),
        "{message}"
    );
    assert_eq!(agent.pod("keeper")["status"]["phase"], "Pending");
    assert_eq!(
        claim(&agent)["status"]["phase"]
            .as_str()
            .unwrap_or("Pending"),
        "Pending"
    );
    assert!(storage_dirs(&agent).is_empty(), "nothing provisioned");
    agent.ok(&["delete", "pod", "keeper"]);
    agent.ok(&["delete", "pvc", "data"]);
}
