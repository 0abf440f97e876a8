//! Priority order and preemption.

use super::*;
use crate::model::{PodAffinityTerm, PodSelector};

/// A pod of `priority` asking `memory`, allowed to preempt.
fn preemptor(priority: i32, memory: u64) -> PodRequest {
    PodRequest {
        name: "urgent".to_string(),
        priority,
        may_preempt: true,
        ..pod(0, memory)
    }
}

/// A placed pod named `name` of `priority` holding `memory`.
fn holding(name: &str, priority: i32, memory: u64) -> PlacedPod {
    PlacedPod {
        name: name.to_string(),
        priority,
        ..placed(None, 0, memory)
    }
}

fn victims(preemption: &Option<Preemption>) -> Vec<&str> {
    let found = preemption.as_ref().map(|p| &p.victims);
    found
        .into_iter()
        .flatten()
        .map(|(_, name)| name.as_str())
        .collect()
}

fn chosen(preemption: &Option<Preemption>) -> Option<&str> {
    preemption.as_ref().map(|p| p.node.as_str())
}

#[test]
fn the_queue_takes_higher_priority_first_then_older() {
    let mut keys = [
        queue_key(0, "2026-01-01T00:00:00Z", "default", "old-low"),
        queue_key(100, "2026-01-03T00:00:00Z", "default", "new-high"),
        queue_key(100, "2026-01-02T00:00:00Z", "default", "old-high"),
        queue_key(-5, "2025-12-01T00:00:00Z", "default", "negative"),
    ];
    keys.sort();
    let names: Vec<&str> = keys.iter().map(|k| k.3).collect();
    assert_eq!(names, ["old-high", "new-high", "old-low", "negative"]);
}

#[test]
fn the_fewest_least_important_pods_are_victims() {
    let mut full = node("a", 4000, 1000);
    full.pods = vec![
        holding("lowest", 1, 500),
        holding("low", 2, 300),
        holding("middling", 5, 200),
    ];
    let nodes = [full];
    let wanted = preemptor(10, 500);
    assert!(matches!(
        schedule(&wanted, &nodes),
        Decision::Unschedulable { .. }
    ));
    let preemption = preempt(&wanted, &nodes);
    // Once all three are out, `middling` and `low` come back and still leave room.
    assert_eq!(chosen(&preemption), Some("a"));
    assert_eq!(victims(&preemption), ["lowest"]);
    // Needing more takes more, still least important first.
    assert_eq!(
        victims(&preempt(&preemptor(10, 800), &nodes)),
        ["low", "lowest"]
    );
}

#[test]
fn equal_or_higher_priorities_and_never_do_not_preempt() {
    let mut full = node("a", 4000, 1000);
    full.pods = vec![holding("peer", 10, 600), holding("boss", 50, 400)];
    let nodes = [full];
    assert_eq!(preempt(&preemptor(10, 500), &nodes), None);
    // One of higher priority may take the peer's place, not the boss's.
    assert_eq!(victims(&preempt(&preemptor(20, 500), &nodes)), ["peer"]);
    assert_eq!(preempt(&preemptor(20, 700), &nodes), None);
    let polite = PodRequest {
        may_preempt: false,
        ..preemptor(20, 500)
    };
    assert_eq!(preempt(&polite, &nodes), None);
}

#[test]
fn every_other_filter_must_hold_on_the_node() {
    let mut tainted = node("a", 4000, 1000);
    tainted.taints = vec![taint("dedicated", Some("db"), EFFECT_NO_SCHEDULE)];
    tainted.pods = vec![holding("cheap-a", 0, 1000)];
    let mut elsewhere = node("b", 4000, 1000);
    elsewhere
        .labels
        .insert("disk".to_string(), "hdd".to_string());
    elsewhere.pods = vec![holding("cheap-b", 0, 1000)];
    let mut wanted = preemptor(10, 500);
    wanted.node_selector = labels(&[("disk", "ssd")]);
    let nodes = [tainted, elsewhere];
    assert_eq!(preempt(&wanted, &nodes), None);
    wanted.node_selector = labels(&[("disk", "hdd")]);
    let preemption = preempt(&wanted, &nodes);
    assert_eq!(chosen(&preemption), Some("b"));
    assert_eq!(victims(&preemption), ["cheap-b"]);
}

#[test]
fn the_node_with_the_least_important_and_fewest_victims_is_chosen() {
    let mut middling = node("a", 4000, 1000);
    middling.pods = vec![holding("five", 5, 1000)];
    let mut two_cheap = node("b", 4000, 1000);
    two_cheap.pods = vec![holding("one-x", 1, 500), holding("one-y", 1, 500)];
    let mut one_cheap = node("c", 4000, 1000);
    one_cheap.pods = vec![holding("one-z", 1, 1000)];
    let wanted = preemptor(10, 800);

    // The lowest highest-victim priority first: two pods of 1 before one of 5.
    let nodes = [middling.clone(), two_cheap.clone()];
    assert_eq!(chosen(&preempt(&wanted, &nodes)), Some("b"));
    // Then the fewest victims.
    let nodes = [middling, two_cheap, one_cheap];
    let preemption = preempt(&wanted, &nodes);
    assert_eq!(chosen(&preemption), Some("c"));
    assert_eq!(victims(&preemption), ["one-z"]);
}

#[test]
fn a_pod_waits_for_victims_already_terminating() {
    let mut going = node("a", 4000, 1000);
    going.pods = vec![PlacedPod {
        terminating: true,
        ..holding("preempted", 0, 1000)
    }];
    let mut other = node("b", 4000, 1000);
    other.pods = vec![holding("cheap", 0, 1000)];
    let nodes = [going, other];
    let wanted = preemptor(10, 500);
    // The terminating pod still holds its memory.
    assert!(matches!(
        schedule(&wanted, &nodes),
        Decision::Unschedulable { .. }
    ));
    let preemption = preempt(&wanted, &nodes);
    assert_eq!(chosen(&preemption), Some("a"));
    assert_eq!(victims(&preemption), Vec::<&str>::new());
}

#[test]
fn extended_resources_are_freed_by_preemption() {
    let dongle = "example.com/dongle";
    let mut with_dongle = node("a", 4000, 4 * GI);
    with_dongle.allocatable_extended = BTreeMap::from([(dongle.to_string(), 1)]);
    with_dongle.pods = vec![PlacedPod {
        extended: BTreeMap::from([(dongle.to_string(), 1)]),
        ..holding("reader", 0, 0)
    }];
    let mut plain = node("b", 4000, 4 * GI);
    plain.pods = vec![holding("bystander", 0, 0)];
    let mut wanted = preemptor(1000, 0);
    wanted.extended = BTreeMap::from([(dongle.to_string(), 1)]);
    let preemption = preempt(&wanted, &[with_dongle, plain]);
    assert_eq!(chosen(&preemption), Some("a"));
    assert_eq!(victims(&preemption), ["reader"]);
}

#[test]
fn preemption_can_clear_an_anti_affinity_conflict() {
    let db = BTreeMap::from([("app".to_string(), "db".to_string())]);
    let term = PodAffinityTerm {
        label_selector: Some(PodSelector {
            match_labels: db.clone(),
            ..PodSelector::default()
        }),
        namespaces: Vec::new(),
        topology_key: "kubernetes.io/hostname".to_string(),
    };
    let mut nodes = Vec::new();
    for (name, priority) in [("a", 5), ("b", 1), ("c", 100)] {
        let mut n = node(name, 4000, 4 * GI);
        n.pods = vec![PlacedPod {
            labels: db.clone(),
            ..holding(&format!("db-{name}"), priority, 0)
        }];
        nodes.push(n);
    }
    let mut wanted = preemptor(10, 0);
    wanted.labels = db;
    wanted.pod_anti_affinity = vec![term];
    assert!(matches!(
        schedule(&wanted, &nodes),
        Decision::Unschedulable { .. }
    ));
    let preemption = preempt(&wanted, &nodes);
    assert_eq!(chosen(&preemption), Some("b"));
    assert_eq!(victims(&preemption), ["db-b"]);
}
