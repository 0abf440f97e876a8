//! What a lone board does with pods it cannot run (issue 17): it decides as a one-node
//! cluster's scheduler would, so a pod asking for a device the board lacks, a label it
//! does not have or a place its anti-affinity forbids stays Pending with Kubernetes'
//! message, and starts once the pod in its way is gone. Real agent, as root.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::time::Duration;

use common::{wait_for, TestAgent};
use serde_json::Value;

fn pod(name: &str, extra_spec: &str, resources: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: reader}}\nspec:\n  \
         terminationGracePeriodSeconds: 1\n{extra_spec}  containers:\n  - name: main\n    \
         image: busybox:1.35\n    command: [sleep, \"100000\"]\n{resources}"
    )
}

fn apply(agent: &TestAgent, yaml: &str) {
    let applied = agent.apply_yaml(yaml);
    assert!(applied.status.success(), "{applied:?}");
}

/// The pod once it is Pending as unschedulable, with the scheduler's message.
fn unschedulable(agent: &TestAgent, name: &str) -> String {
    let pod: Value = wait_for(Duration::from_secs(20), "an unschedulable pod", || {
        let pod = agent.pod(name);
        (pod["status"]["conditions"][0]["reason"] == "Unschedulable").then_some(pod)
    });
    assert_eq!(pod["status"]["phase"], "Pending");
    assert!(pod["spec"]["nodeName"].is_null(), "{pod}");
    pod["status"]["conditions"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_lone_board_keeps_pods_it_cannot_run_pending() {
    let agent = TestAgent::start_with(&["--extended-resources", "example.com/dongle=1"]);
    let dongle = "    resources: {limits: {example.com/dongle: 1}}\n";
    apply(&agent, &pod("first", "", dongle));
    agent.wait_running("first");
    apply(&agent, &pod("second", "", dongle));
    assert_eq!(
        unschedulable(&agent, "second"),
        "0/1 nodes are available: 1 Insufficient example.com/dongle."
    );
    let events = agent.ok(&["get", "events"]);
    assert!(events.contains("FailedScheduling"), "{events}");

    let elsewhere = "  nodeSelector: {room: greenhouse}\n";
    apply(&agent, &pod("elsewhere", elsewhere, ""));
    assert_eq!(
        unschedulable(&agent, "elsewhere"),
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
    );
    let apart = "  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      \
                 - labelSelector: {matchLabels: {app: reader}}\n        topologyKey: kubernetes.io/hostname\n";
    apply(&agent, &pod("apart", apart, ""));
    assert_eq!(
        unschedulable(&agent, "apart"),
        "0/1 nodes are available: 1 node(s) didn't match pod anti-affinity rules."
    );

    // The dongle's holder goes: the second pod gets it (the pod that wants to be apart
    // from every reader goes first, or it would take the board's place).
    agent.ok(&["delete", "pod", "apart"]);
    agent.ok(&["delete", "pod", "first"]);
    agent.wait_running("second");
    assert_eq!(agent.pod("elsewhere")["status"]["phase"], "Pending");
}
