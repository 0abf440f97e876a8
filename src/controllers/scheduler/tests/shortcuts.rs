//! `schedule` skips work (it counts same-owner pods last and only as far as they can
//! matter); these tests check it against the scoring written out in full.

use std::cmp::Reverse;

use super::*;

/// The scoring written the obvious way (every fitting node's full key, the first smallest
/// wins), to check that `schedule`'s shortcuts never change a decision.
fn reference_choice(pod: &PodRequest, nodes: &[NodeInfo]) -> Option<String> {
    let context = PodContext::new(pod, nodes);
    let share = |used: u64, allocatable: u64| match allocatable {
        0 => 0,
        _ => (u128::from(used.min(allocatable)) * 1_000_000 / u128::from(allocatable)) as u64,
    };
    let key = |node: &NodeInfo| {
        let same_owner = node
            .pods
            .iter()
            .filter(|placed| pod.owner_uid.is_some() && placed.owner_uid == pod.owner_uid)
            .count();
        let soft_taints = node
            .taints
            .iter()
            .filter(|t| t.effect == EFFECT_PREFER_NO_SCHEDULE)
            .filter(|t| {
                !pod.tolerations
                    .iter()
                    .any(|tol| matching::tolerates(tol, t))
            })
            .count();
        let cpu = node.pods.iter().map(|p| p.cpu_request_millis);
        let memory = node.pods.iter().map(|p| p.memory_request_bytes);
        let cpu = cpu.fold(pod.cpu_request_millis, u64::saturating_add);
        let memory = memory.fold(pod.memory_request_bytes, u64::saturating_add);
        let packing =
            share(cpu, node.allocatable_cpu_millis) + share(memory, node.allocatable_memory_bytes);
        (same_owner, soft_taints, Reverse(packing), node.name.clone())
    };
    nodes
        .iter()
        .filter(|node| check_node(&context, node).is_ok())
        .min_by_key(|node| key(node))
        .map(|node| node.name.clone())
}

/// A small deterministic xorshift generator, so the cases below are the same every run.
struct Cases(u64);

impl Cases {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }

    fn owner(&mut self) -> Option<String> {
        ["a", "b", "bb", "c"]
            .get(self.below(5) as usize)
            .map(|o| o.to_string())
    }
}

#[test]
fn shortcuts_decide_like_the_full_scoring() {
    let mut cases = Cases(0x9e37_79b9_7f4a_7c15);
    for round in 0..3000 {
        let nodes: Vec<NodeInfo> = (0..1 + cases.below(8))
            .map(|i| {
                let mut n = node(
                    &format!("n{}", cases.below(6)),
                    [0, 500, 1000, 4000][cases.below(4) as usize] + i,
                    [0, GI, 4 * GI][cases.below(3) as usize],
                );
                n.unschedulable = cases.below(10) == 0;
                if cases.below(4) == 0 {
                    let effect = [EFFECT_PREFER_NO_SCHEDULE, EFFECT_NO_SCHEDULE];
                    n.taints = vec![taint("flaky", None, effect[cases.below(2) as usize])];
                }
                for _ in 0..cases.below(6) {
                    let (cpu, memory) = (100 * cases.below(5), 64 * MI * cases.below(5));
                    n.pods.push(placed(cases.owner().as_deref(), cpu, memory));
                }
                n
            })
            .collect();
        let mut p = pod(100 * cases.below(4), 64 * MI * cases.below(4));
        p.owner_uid = cases.owner();
        if cases.below(3) == 0 {
            p.tolerations = vec![toleration(
                Some("flaky"),
                TolerationOperator::Exists,
                None,
                None,
            )];
        }
        let decision = schedule(&p, &nodes);
        match reference_choice(&p, &nodes) {
            Some(name) => assert_eq!(decision, bind(&name), "round {round}"),
            None => assert!(matches!(decision, Decision::Unschedulable { .. })),
        }
    }
}

#[test]
fn a_filling_fleet_decides_like_the_full_scoring() {
    // The benchmark's shape in small: interleaved Deployments, some pods pinned to arm64.
    let mut nodes: Vec<NodeInfo> = (0..30)
        .map(|i| {
            let mut n = node(&format!("board-{i:02}"), 3750, [8 * GI, GI, GI][i % 3]);
            let arch = if i % 3 == 2 { "arm" } else { "arm64" };
            n.labels = labels(&[("kubernetes.io/arch", arch)]);
            n
        })
        .collect();
    for i in 0..700 {
        let mut p = pod(100, 32 * MI);
        p.owner_uid = Some(format!("deploy-{}", i % 12));
        if i % 10 == 0 {
            p.node_selector = labels(&[("kubernetes.io/arch", "arm64")]);
        }
        let decision = schedule(&p, &nodes);
        let Some(name) = reference_choice(&p, &nodes) else {
            assert!(
                matches!(decision, Decision::Unschedulable { .. }),
                "pod {i}"
            );
            continue;
        };
        assert_eq!(decision, bind(&name), "pod {i}");
        let target = nodes
            .iter_mut()
            .find(|n| n.name == name)
            .expect("known node");
        target
            .pods
            .push(placed(p.owner_uid.as_deref(), 100, 32 * MI));
    }
}
