//! PersistentVolumeClaims: a pod goes where its claims' data is, waits when a claim is
//! missing or going, and its first placement picks the node of claims on none yet.

use super::*;
use crate::controllers::scheduler::volumes::{claim_needs, select_node, ClaimInfo};
use crate::model::{PersistentVolumeClaimVolumeSource, Volume};

fn with_claims(names: &[&str]) -> PodSpec {
    PodSpec {
        volumes: names
            .iter()
            .enumerate()
            .map(|(i, claim)| Volume {
                name: format!("v{i}"),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim.to_string(),
                    read_only: false,
                }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn claim(name: &str, node: Option<&str>, deleting: bool) -> ClaimInfo {
    ClaimInfo {
        namespace: "default".into(),
        name: name.into(),
        selected_node: node.map(str::to_owned),
        deleting,
        unprovisioned: false,
    }
}

#[test]
fn a_pod_goes_where_its_claim_keeps_its_data() {
    let mut busy = node("pi-1", 4000, 4 * GI);
    busy.pods.push(placed(None, 2000, GI));
    let nodes = [busy, node("pi-2", 4000, 4 * GI)];
    // Packing alone would pick the busy pi-1.
    assert_eq!(
        schedule(&pod(100, MI), &nodes),
        Decision::Bind {
            node: "pi-1".into()
        }
    );
    let held = PodRequest {
        volume_nodes: vec!["pi-2".into()],
        ..pod(100, MI)
    };
    assert_eq!(
        schedule(&held, &nodes),
        Decision::Bind {
            node: "pi-2".into()
        }
    );
}

#[test]
fn a_pod_whose_claim_s_node_is_gone_or_down_stays_pending() {
    let gone = PodRequest {
        volume_nodes: vec!["pi-9".into()],
        ..pod(100, MI)
    };
    let nodes = [node("pi-1", 4000, 4 * GI), node("pi-2", 4000, 4 * GI)];
    assert_eq!(
        schedule(&gone, &nodes),
        Decision::Unschedulable {
            message: "0/2 nodes are available: 2 node(s) had volume node affinity conflict.".into()
        }
    );
    let mut down = node("pi-2", 4000, 4 * GI);
    down.ready = false;
    let nodes = [node("pi-1", 4000, 4 * GI), down];
    let held = PodRequest {
        volume_nodes: vec!["pi-2".into()],
        ..pod(100, MI)
    };
    assert_eq!(
        schedule(&held, &nodes),
        Decision::Unschedulable {
            message: "0/2 nodes are available: 1 node(s) had untolerated taint \
                      {node.kubernetes.io/not-ready: }, 1 node(s) had volume node affinity conflict."
                .into()
        }
    );
    // Two claims on two nodes: no node is both.
    let split = PodRequest {
        volume_nodes: vec!["pi-1".into(), "pi-2".into()],
        ..pod(100, MI)
    };
    let nodes = [node("pi-1", 4000, 4 * GI), node("pi-2", 4000, 4 * GI)];
    assert!(matches!(
        schedule(&split, &nodes),
        Decision::Unschedulable { .. }
    ));
}

#[test]
fn a_missing_or_going_claim_is_the_whole_reason() {
    let nodes = [node("pi-1", 4000, 4 * GI), node("pi-2", 4000, 4 * GI)];
    let claims = [claim("going", Some("pi-1"), true)];
    let needs = claim_needs("default", &with_claims(&["data"]), &claims);
    assert_eq!(
        needs.problem.as_deref(),
        Some("persistentvolumeclaim \"data\" not found")
    );
    let request = PodRequest {
        volume_problem: needs.problem,
        ..pod(100, MI)
    };
    assert_eq!(
        schedule(&request, &nodes),
        Decision::Unschedulable {
            message: "0/2 nodes are available: persistentvolumeclaim \"data\" not found.".into()
        }
    );
    let needs = claim_needs("default", &with_claims(&["going"]), &claims);
    assert_eq!(
        needs.problem.as_deref(),
        Some("persistentvolumeclaim \"going\" is being deleted")
    );
    // A claim of the same name in another namespace is another claim.
    let needs = claim_needs("other", &with_claims(&["going"]), &claims);
    assert!(needs.problem.unwrap().contains("not found"));
}

#[test]
fn the_first_pod_places_its_claims_and_later_pods_follow() {
    let mut claims = vec![
        claim("data", None, false),
        claim("logs", Some("pi-2"), false),
        claim("cache", None, false),
    ];
    let spec = with_claims(&["data", "logs", "data"]);
    let needs = claim_needs("default", &spec, &claims);
    assert_eq!(needs.problem, None);
    assert_eq!(needs.nodes, ["pi-2"]);
    assert_eq!(needs.unplaced, ["data"]);

    let first = claim_needs("default", &with_claims(&["cache"]), &claims);
    assert!(first.nodes.is_empty());
    let nodes = [node("pi-1", 4000, 4 * GI), node("pi-2", 4000, 4 * GI)];
    let Decision::Bind { node: chosen } = schedule(&pod(100, MI), &nodes) else {
        panic!("a free pod fits");
    };
    let selected = select_node(&mut claims, "default", &first.unplaced, &chosen);
    assert_eq!(selected, ["cache"]);
    assert_eq!(claims[2].selected_node.as_deref(), Some(chosen.as_str()));
    // Once placed, a claim is not placed again.
    assert!(select_node(&mut claims, "default", &first.unplaced, "pi-2").is_empty());
    let later = claim_needs("default", &with_claims(&["cache"]), &claims);
    assert_eq!(later.nodes, [chosen]);
    assert!(later.unplaced.is_empty());
}

#[test]
fn a_claim_of_a_class_berth_does_not_provision_keeps_its_pod_pending() {
    let nodes = [node("pi-1", 4000, 4 * GI), node("pi-2", 4000, 4 * GI)];
    let mut manual = claim("manual", None, false);
    manual.unprovisioned = true;
    let needs = claim_needs("default", &with_claims(&["manual"]), &[manual]);
    assert_eq!(
        needs.problem.as_deref(),
        Some("pod has unbound immediate PersistentVolumeClaims")
    );
    let waiting = PodRequest {
        volume_problem: needs.problem,
        ..pod(100, MI)
    };
    assert_eq!(
        schedule(&waiting, &nodes),
        Decision::Unschedulable {
            message: "0/2 nodes are available: pod has unbound immediate \
                      PersistentVolumeClaims."
                .into()
        }
    );
}
