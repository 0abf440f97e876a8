//! Pod affinity, anti-affinity and topology spread at the scheduler.

use super::*;
use crate::model::{PodAffinityTerm, PodSelector, TopologySpreadConstraint};

fn app(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("app".to_string(), name.to_string())])
}

fn term(app_name: &str, key: &str) -> PodAffinityTerm {
    PodAffinityTerm {
        label_selector: Some(PodSelector {
            match_labels: app(app_name),
            ..PodSelector::default()
        }),
        namespaces: Vec::new(),
        topology_key: key.to_string(),
    }
}

/// Pods labelled `app: web` spread over zones with a skew of at most 1.
fn web_over_zones(when_unsatisfiable: &str) -> TopologySpreadConstraint {
    TopologySpreadConstraint {
        max_skew: 1,
        topology_key: "zone".to_string(),
        when_unsatisfiable: when_unsatisfiable.to_string(),
        label_selector: Some(PodSelector {
            match_labels: app("web"),
            ..PodSelector::default()
        }),
        ..TopologySpreadConstraint::default()
    }
}

fn labelled(app_name: &str) -> PlacedPod {
    PlacedPod {
        labels: app(app_name),
        ..placed(None, 0, 0)
    }
}

fn zoned(name: &str, zone: &str) -> NodeInfo {
    let mut n = node(name, 4000, 4 * GI);
    n.labels.insert("zone".to_string(), zone.to_string());
    n
}

fn bound(decision: Decision) -> String {
    match decision {
        Decision::Bind { node } => node,
        Decision::Unschedulable { message } => panic!("unschedulable: {message}"),
    }
}

#[test]
fn anti_affinity_puts_one_replica_per_node() {
    let mut nodes = vec![zoned("a", "z1"), zoned("b", "z1"), zoned("c", "z2")];
    let mut replica = pod(100, 0);
    replica.labels = app("db");
    replica.pod_anti_affinity = vec![term("db", "kubernetes.io/hostname")];
    let mut used = Vec::new();
    for _ in 0..3 {
        let chosen = bound(schedule(&replica, &nodes));
        assert!(!used.contains(&chosen), "{chosen} twice");
        used.push(chosen.clone());
        let info = nodes.iter_mut().find(|n| n.name == chosen).unwrap();
        info.pods.push(replica.clone().placed());
    }
    assert_eq!(
        schedule(&replica, &nodes),
        Decision::Unschedulable {
            message: "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."
                .into()
        }
    );
    // A pod without rules of its own is kept away by the placed pods' anti-affinity.
    let mut plain = pod(100, 0);
    plain.labels = app("db");
    assert_eq!(
        schedule(&plain, &nodes),
        Decision::Unschedulable {
            message: "0/3 nodes are available: 3 node(s) didn't satisfy existing pods \
                      anti-affinity rules."
                .into()
        }
    );
}

#[test]
fn affinity_follows_the_picked_pods_domain_and_lets_the_first_one_anywhere() {
    let mut nodes = vec![zoned("a", "z1"), zoned("b", "z2"), zoned("c", "z2")];
    let mut web = pod(100, 0);
    web.labels = app("web");
    web.pod_affinity = vec![term("cache", "zone")];
    assert_eq!(
        schedule(&web, &nodes),
        Decision::Unschedulable {
            message: "0/3 nodes are available: 3 node(s) didn't match pod affinity rules.".into()
        }
    );
    nodes[1].pods.push(labelled("cache"));
    let chosen = bound(schedule(&web, &nodes));
    assert!(chosen == "b" || chosen == "c", "{chosen} is not in zone z2");

    // A pod that picks itself goes anywhere while none of its group runs yet.
    let mut first = pod(100, 0);
    first.labels = app("group");
    first.pod_affinity = vec![term("group", "zone")];
    assert_eq!(bound(schedule(&first, &nodes)), "a");
}

#[test]
fn topology_spread_keeps_the_skew_within_max_skew() {
    let mut nodes = vec![zoned("a", "z1"), zoned("b", "z1"), zoned("c", "z2")];
    let mut replica = pod(100, 0);
    replica.labels = app("web");
    replica.spread = vec![web_over_zones("DoNotSchedule")];
    nodes[0].pods.push(labelled("web"));
    // z1 has one, z2 none: the next must go to z2.
    assert_eq!(bound(schedule(&replica, &nodes)), "c");
    nodes[2].pods.push(labelled("web"));
    nodes[2].pods.push(labelled("web"));
    // z1 1, z2 2: only z1 is within the skew.
    let chosen = bound(schedule(&replica, &nodes));
    assert!(chosen == "a" || chosen == "b", "{chosen}");
    // A node without the key is refused with Kubernetes' reason.
    let mut unlabelled = node("d", 4000, 4 * GI);
    unlabelled.pods.clear();
    let only = [unlabelled];
    assert_eq!(
        schedule(&replica, &only),
        Decision::Unschedulable {
            message: "0/1 nodes are available: 1 node(s) didn't match pod topology spread \
                      constraints (missing required label)."
                .into()
        }
    );
}

#[test]
fn schedule_anyway_and_preferred_anti_affinity_only_rank() {
    let mut nodes = vec![zoned("a", "z1"), zoned("b", "z2")];
    nodes[0].pods.push(labelled("web"));
    let mut replica = pod(0, 0);
    replica.labels = app("web");
    replica.preferred_pod_affinity = vec![(-100, term("web", "kubernetes.io/hostname"))];
    assert_eq!(bound(schedule(&replica, &nodes)), "b");
    let mut soft = pod(0, 0);
    soft.labels = app("web");
    soft.spread = vec![web_over_zones("ScheduleAnyway")];
    assert_eq!(bound(schedule(&soft, &nodes)), "b");
    nodes[1].pods.push(labelled("web"));
    nodes[1].pods.push(labelled("web"));
    assert_eq!(bound(schedule(&soft, &nodes)), "a");
}

#[test]
fn extended_resources_are_counted_like_cpu_and_memory() {
    let mut nodes = vec![node("plain", 4000, 4 * GI), node("zigbee", 4000, 4 * GI)];
    nodes[1]
        .allocatable_extended
        .insert("example.com/dongle".to_string(), 1);
    let mut reader = pod(0, 0);
    reader.extended = BTreeMap::from([("example.com/dongle".to_string(), 1)]);
    assert_eq!(bound(schedule(&reader, &nodes)), "zigbee");
    nodes[1].pods.push(reader.clone().placed());
    assert_eq!(
        schedule(&reader, &nodes),
        Decision::Unschedulable {
            message: "0/2 nodes are available: 2 Insufficient example.com/dongle.".into()
        }
    );
}
