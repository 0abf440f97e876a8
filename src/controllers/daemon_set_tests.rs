//! DaemonSets through the real controllers on a simulated fleet of nodes.

use super::daemon_set::{with_status, NodeView, REVISION_HASH_LABEL};
use super::sim::Sim;
use super::*;
use crate::model::{DaemonSetRollingUpdate, IntOrString};

fn node(name: &str, sensor: bool) -> NodeView {
    let mut labels = std::collections::BTreeMap::new();
    labels.insert("kubernetes.io/hostname".to_owned(), name.to_owned());
    if sensor {
        labels.insert("sensor".to_owned(), "yes".to_owned());
    }
    NodeView {
        name: name.into(),
        labels,
        ..NodeView::default()
    }
}

fn agent_ds(unavailable: i32, surge: i32) -> DaemonSet {
    let mut ds = DaemonSet::default();
    ds.metadata.name = "agent".into();
    ds.metadata.namespace = Some("default".into());
    ds.metadata.uid = "uid-agent".into();
    ds.spec
        .template
        .spec
        .node_selector
        .insert("sensor".into(), "yes".into());
    ds.spec.update_strategy.rolling_update = Some(DaemonSetRollingUpdate {
        max_unavailable: Some(IntOrString::Int(unavailable)),
        max_surge: Some(IntOrString::Int(surge)),
    });
    set_version(&mut ds, "1");
    ds
}

fn set_version(ds: &mut DaemonSet, version: &str) {
    ds.spec
        .template
        .metadata
        .labels
        .insert("version".into(), version.into());
}

fn fleet(ds: DaemonSet, nodes: Vec<NodeView>) -> Sim {
    let mut sim = Sim::empty();
    sim.world.daemon_sets.push(ds);
    sim.world.nodes = nodes;
    sim
}

/// Passes with every pod healthy until nothing changes; `check` after each.
fn settle(sim: &mut Sim, healthy: &dyn Fn(&Pod) -> bool, check: &dyn Fn(&Sim)) {
    for _ in 0..50 {
        sim.kubelet(healthy);
        check(sim);
        if sim.pass().is_empty() {
            return;
        }
        check(sim);
    }
    panic!("no steady state after 50 passes");
}

/// Node name → versions of its live pods.
fn placement(sim: &Sim) -> Vec<(String, String)> {
    let mut placed: Vec<(String, String)> = sim
        .pods()
        .map(|p| {
            (
                p.spec.node_name.clone().unwrap_or_default(),
                p.metadata.labels["version"].clone(),
            )
        })
        .collect();
    placed.sort();
    placed
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn one_pod_on_each_matching_node_following_label_changes() {
    let nodes = vec![node("pi-1", true), node("pi-2", true), node("pi-3", false)];
    let mut sim = fleet(agent_ds(1, 0), nodes);
    settle(&mut sim, &|_| true, &|_| {});
    assert_eq!(placement(&sim), pairs(&[("pi-1", "1"), ("pi-2", "1")]));
    let hash = &sim.world.pods[0].metadata.labels[REVISION_HASH_LABEL];
    assert_eq!(hash.len(), 10);

    // pi-3 gets the label: it gets the pod; pi-1 loses it: its pod goes.
    sim.world.nodes[2] = node("pi-3", true);
    sim.world.nodes[0] = node("pi-1", false);
    settle(&mut sim, &|_| true, &|_| {});
    assert_eq!(placement(&sim), pairs(&[("pi-2", "1"), ("pi-3", "1")]));

    let status = with_status(sim.world.daemon_sets[0].clone(), &sim.world).status;
    assert_eq!(
        (
            status.desired_number_scheduled,
            status.current_number_scheduled,
            status.number_ready,
            status.updated_number_scheduled,
            status.number_available,
            status.number_misscheduled
        ),
        (2, 2, 2, 2, 2, 0)
    );
}

#[test]
fn a_rolling_update_never_has_more_nodes_without_a_ready_pod_than_allowed() {
    for (unavailable, surge) in [(1, 0), (2, 0), (0, 1)] {
        let nodes = (1..=4).map(|i| node(&format!("pi-{i}"), true)).collect();
        let mut sim = fleet(agent_ds(unavailable, surge), nodes);
        settle(&mut sim, &|_| true, &|_| {});
        set_version(&mut sim.world.daemon_sets[0], "2");
        let check = |sim: &Sim| {
            let serving: std::collections::BTreeSet<String> = sim
                .pods()
                .filter(|p| sim.world.is_ready(p))
                .filter_map(|p| p.spec.node_name.clone())
                .collect();
            let without = 4 - serving.len() as i32;
            assert!(
                without <= unavailable,
                "maxUnavailable {unavailable}, maxSurge {surge}: {without} nodes without a ready pod"
            );
            let per_node = sim.pods().count() as i32;
            assert!(per_node <= 4 + surge, "{per_node} pods");
        };
        settle(&mut sim, &|_| true, &check);
        assert_eq!(
            placement(&sim),
            pairs(&[("pi-1", "2"), ("pi-2", "2"), ("pi-3", "2"), ("pi-4", "2")]),
            "maxUnavailable {unavailable}, maxSurge {surge}"
        );
    }
}

#[test]
fn an_unreachable_node_neither_blocks_the_rollout_nor_is_replaced() {
    let nodes = (1..=3).map(|i| node(&format!("pi-{i}"), true)).collect();
    let mut sim = fleet(agent_ds(1, 0), nodes);
    settle(&mut sim, &|_| true, &|_| {});
    sim.world.nodes[1].unreachable = true;
    let on_pi_2 = |p: &Pod| p.spec.node_name.as_deref() == Some("pi-2");
    // Its pod shows as not ready, as the coordinator sees an unreachable node's pods.
    set_version(&mut sim.world.daemon_sets[0], "2");
    settle(&mut sim, &|p| !on_pi_2(p), &|_| {});
    assert_eq!(
        placement(&sim),
        pairs(&[("pi-1", "2"), ("pi-2", "1"), ("pi-3", "2")])
    );
    // Back: it gets the new revision.
    sim.world.nodes[1].unreachable = false;
    settle(&mut sim, &|_| true, &|_| {});
    assert_eq!(
        placement(&sim),
        pairs(&[("pi-1", "2"), ("pi-2", "2"), ("pi-3", "2")])
    );
}

#[test]
fn on_delete_replaces_only_deleted_pods() {
    let mut ds = agent_ds(1, 0);
    ds.spec.update_strategy.type_ = "OnDelete".into();
    ds.spec.update_strategy.rolling_update = None;
    let mut sim = fleet(ds, vec![node("pi-1", true), node("pi-2", true)]);
    settle(&mut sim, &|_| true, &|_| {});
    set_version(&mut sim.world.daemon_sets[0], "2");
    settle(&mut sim, &|_| true, &|_| {});
    assert_eq!(placement(&sim), pairs(&[("pi-1", "1"), ("pi-2", "1")]));
    let first = sim
        .world
        .pods
        .iter_mut()
        .find(|p| p.spec.node_name.as_deref() == Some("pi-1"))
        .unwrap();
    first.metadata.deletion_timestamp = Some("2026-12-02T10:00:00Z".into());
    settle(&mut sim, &|_| true, &|_| {});
    assert_eq!(placement(&sim), pairs(&[("pi-1", "2"), ("pi-2", "1")]));
}

#[test]
fn on_a_lone_board_the_board_is_the_node_and_pods_stay_unbound() {
    let mut sim = fleet(agent_ds(1, 0), vec![node("board", true)]);
    sim.world.local_node = Some("board".into());
    settle(&mut sim, &|_| true, &|_| {});
    assert_eq!(sim.pods().count(), 1);
    assert_eq!(sim.world.pods[0].spec.node_name, None);
    // A second pass sees that pod on the board: nothing more.
    assert!(sim.pass().is_empty());
    // A selector the board does not match: the pod goes.
    sim.world.nodes[0] = node("board", false);
    settle(&mut sim, &|_| true, &|_| {});
    assert_eq!(sim.pods().count(), 0);
}

#[test]
fn tainted_nodes_get_no_pod_and_daemon_pods_stay_on_lost_nodes() {
    let mut tainted = node("pi-2", true);
    tainted.taints = vec![crate::model::Taint {
        key: "dedicated".into(),
        value: Some("db".into()),
        effect: "NoSchedule".into(),
        time_added: None,
    }];
    let mut sim = fleet(agent_ds(1, 0), vec![node("pi-1", true), tainted]);
    settle(&mut sim, &|_| true, &|_| {});
    assert_eq!(placement(&sim), pairs(&[("pi-1", "1")]));
    let facts = node_lifecycle::NodeFacts {
        known: ["pi-1".to_owned()].into(),
        lost: ["pi-1".to_owned()].into(),
        unreachable: ["pi-1".to_owned()].into(),
        ..Default::default()
    };
    assert_eq!(node_lifecycle::reconcile(&sim.world.pods[0], &facts), None);
}

#[test]
fn revisions_are_numbered_renumbered_on_undo_and_trimmed() {
    let mut ds = agent_ds(1, 0);
    ds.spec.revision_history_limit = Some(1);
    let mut sim = fleet(ds, vec![node("pi-1", true)]);
    let numbers = |sim: &Sim| {
        let mut found: Vec<(String, i64)> = sim
            .world
            .controller_revisions
            .iter()
            .map(|cr| {
                (
                    cr.data.spec.template.metadata.labels["version"].clone(),
                    cr.revision,
                )
            })
            .collect();
        found.sort_by_key(|(_, n)| *n);
        found
    };
    for version in ["1", "2", "3"] {
        set_version(&mut sim.world.daemon_sets[0], version);
        settle(&mut sim, &|_| true, &|_| {});
    }
    assert_eq!(
        numbers(&sim),
        [("2".to_owned(), 2), ("3".to_owned(), 3)],
        "one old revision kept"
    );
    // Undo to version 2: its revision becomes the newest, no new one is made.
    set_version(&mut sim.world.daemon_sets[0], "2");
    settle(&mut sim, &|_| true, &|_| {});
    assert_eq!(numbers(&sim), [("3".to_owned(), 3), ("2".to_owned(), 4)]);
    assert_eq!(placement(&sim), pairs(&[("pi-1", "2")]));
    // The DaemonSet gone: its revisions go with it.
    sim.world.daemon_sets.clear();
    settle(&mut sim, &|_| true, &|_| {});
    assert!(sim.world.controller_revisions.is_empty());
    assert_eq!(sim.pods().count(), 0);
}

#[test]
fn node_affinity_and_tolerations_choose_the_nodes() {
    let mut ds = agent_ds(1, 0);
    ds.spec.template.spec.node_selector.clear();
    let affinity: crate::model::Affinity = serde_json::from_value(serde_json::json!({
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "sensor", "operator": "Exists"}]}]}}}))
    .unwrap();
    ds.spec.template.spec.affinity = Some(affinity);
    let taint = crate::model::Taint {
        key: "dedicated".into(),
        value: Some("db".into()),
        effect: "NoExecute".into(),
        time_added: None,
    };
    let mut tainted = node("pi-3", true);
    tainted.taints = vec![taint];
    let mut sim = fleet(ds, vec![node("pi-1", true), node("pi-2", false), tainted]);
    settle(&mut sim, &|_| true, &|_| {});
    assert_eq!(placement(&sim), pairs(&[("pi-1", "1")]));
    // Tolerating the taint adds pi-3.
    sim.world.daemon_sets[0].spec.template.spec.tolerations = vec![crate::model::Toleration {
        key: Some("dedicated".into()),
        operator: crate::model::TolerationOperator::Exists,
        value: None,
        effect: None,
        toleration_seconds: None,
    }];
    settle(&mut sim, &|_| true, &|_| {});
    let nodes: Vec<String> = placement(&sim).into_iter().map(|(n, _)| n).collect();
    assert_eq!(nodes, ["pi-1", "pi-3"]);
}
