//! PriorityClasses and preemption at a coordinator with two test boards, one of which
//! has the fleet's only dongle (issue 17): a low-priority pod takes the dongle; a
//! high-priority pod that wants it preempts the low one (deleted gracefully, with a
//! `Preempted` event, and gone for good: no controller makes it again) and runs on that
//! board; a pod of a class with `preemptionPolicy: Never` stays Pending.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;
#[allow(dead_code)]
#[path = "common/fleet.rs"]
mod fleet_support;

use std::time::Duration;

use common::wait_for;
use fleet_support::Fleet;
use serde_json::Value;

const CLASSES: &str = r#"apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: low}
value: 10
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: high}
value: 1000
description: may take the dongle from others
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: polite}
value: 500
preemptionPolicy: Never
"#;

fn apply(fleet: &Fleet, name: &str, yaml: &str) -> std::process::Output {
    let path = fleet.coordinator.state.path().join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    fleet
        .coordinator
        .berth(&["apply", "-f", path.to_str().unwrap()])
}

/// A bare pod of `class` that holds the dongle and sleeps.
fn dongle_pod(name: &str, class: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  priorityClassName: \
         {class}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    \
         image: busybox:1.35\n    command: [sleep, \"100000\"]\n    \
         resources: {{limits: {{example.com/dongle: 1}}}}\n"
    )
}

fn pod(fleet: &Fleet, name: &str) -> Option<Value> {
    fleet
        .coordinator
        .pods()
        .into_iter()
        .find(|p| p["metadata"]["name"] == name)
}

/// The node `name` runs on, once it runs.
fn running_on(fleet: &Fleet, name: &str) -> Option<String> {
    let pod = pod(fleet, name)?;
    if pod["status"]["phase"] != "Running" {
        return None;
    }
    pod["spec"]["nodeName"].as_str().map(str::to_owned)
}

#[test]
fn a_higher_priority_pod_preempts_a_lower_one_for_the_dongle() {
    let dongle: &[&str] = &["--extended-resources", "example.com/dongle=1"];
    let fleet = Fleet::start_with(&[("d1", "", dongle), ("d2", "", &[])], &[]);
    let out = apply(&fleet, "classes", CLASSES);
    assert!(out.status.success(), "{out:?}");

    // The built-in classes are there beside the applied ones, with kubectl's columns.
    let table = fleet.coordinator.ok(&["get", "pc"]);
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE"],
        "{table}"
    );
    let rows: Vec<(&str, &str, &str)> = lines[1..].iter().map(|r| (r[0], r[1], r[2])).collect();
    for expected in [
        ("high", "1000", "false"),
        ("low", "10", "false"),
        ("polite", "500", "false"),
        ("system-cluster-critical", "2000000000", "false"),
        ("system-node-critical", "2000001000", "false"),
    ] {
        assert!(rows.contains(&expected), "{expected:?} in:\n{table}");
    }
    // A pod naming no class that exists is refused.
    let out = apply(&fleet, "unknown", &dongle_pod("stray", "nope"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pods \"stray\" is forbidden: no PriorityClass with name nope was found"),
        "{stderr}"
    );

    assert!(apply(&fleet, "low", &dongle_pod("low", "low"))
        .status
        .success());
    let node = wait_for(Duration::from_secs(60), "low running", || {
        running_on(&fleet, "low")
    });
    assert_eq!(node, "d1");
    let low_uid = pod(&fleet, "low").unwrap()["metadata"]["uid"].clone();

    assert!(apply(&fleet, "high", &dongle_pod("high", "high"))
        .status
        .success());
    let node = wait_for(Duration::from_secs(90), "high running", || {
        running_on(&fleet, "high")
    });
    assert_eq!(node, "d1");
    let high = pod(&fleet, "high").unwrap();
    assert_eq!(high["spec"]["priority"], 1000);
    assert_eq!(high["spec"]["preemptionPolicy"], "PreemptLowerPriority");
    assert!(
        pod(&fleet, "low").is_none(),
        "a bare pod preempted stays gone"
    );

    let events = fleet.coordinator.json(&["get", "events"]);
    let preempted = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["reason"] == "Preempted")
        .cloned()
        .unwrap_or_else(|| panic!("no Preempted event in {events:#}"));
    assert_eq!(preempted["involvedObject"]["name"], "low");
    assert_eq!(preempted["involvedObject"]["uid"], low_uid);
    assert_eq!(
        preempted["message"],
        format!(
            "Preempted by pod {} on node d1",
            high["metadata"]["uid"].as_str().unwrap()
        )
    );

    // A pod that may not preempt waits, though it outranks what `low` was.
    assert!(apply(&fleet, "polite", &dongle_pod("polite", "polite"))
        .status
        .success());
    let polite = wait_for(Duration::from_secs(30), "polite unschedulable", || {
        pod(&fleet, "polite").filter(|p| p["status"]["conditions"][0]["reason"] == "Unschedulable")
    });
    assert_eq!(
        polite["status"]["conditions"][0]["message"],
        "0/2 nodes are available: 2 Insufficient example.com/dongle."
    );
    assert_eq!(polite["status"].get("nominatedNodeName"), None, "{polite}");
    assert_eq!(polite["spec"]["priority"], 500);
    assert_eq!(running_on(&fleet, "high").as_deref(), Some("d1"));

    // A gated pod is not tried at all: SchedulingGated, and no FailedScheduling event.
    let gated = "apiVersion: v1\nkind: Pod\nmetadata: {name: gated}\nspec:\n  \
                 schedulingGates: [{name: example.com/approval}]\n  containers:\n  \
                 - {name: main, image: busybox:1.35, command: [sleep, '100000']}\n";
    assert!(apply(&fleet, "gated", gated).status.success());
    let waiting = wait_for(Duration::from_secs(30), "gated pod marked", || {
        pod(&fleet, "gated").filter(|p| p["status"]["conditions"][0]["reason"] == "SchedulingGated")
    });
    assert!(waiting["spec"]["nodeName"].is_null(), "{waiting}");
    let events = fleet.coordinator.ok(&["get", "events"]);
    let told = events
        .lines()
        .any(|line| line.contains("FailedScheduling") && line.contains("gated"));
    assert!(!told, "{events}");
}
