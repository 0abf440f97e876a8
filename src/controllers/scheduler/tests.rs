use std::collections::BTreeMap;

use super::*;
use crate::model::{Container, PodSpec, ResourceRequirements};

mod claims;
mod pod_rules;
mod priority;
mod shortcuts;

const MI: u64 = 1024 * 1024;
const GI: u64 = 1024 * MI;

fn node(name: &str, cpu_millis: u64, memory_bytes: u64) -> NodeInfo {
    NodeInfo {
        name: name.to_string(),
        labels: BTreeMap::from([("kubernetes.io/hostname".to_string(), name.to_string())]),
        taints: Vec::new(),
        allocatable_cpu_millis: cpu_millis,
        allocatable_memory_bytes: memory_bytes,
        allocatable_extended: BTreeMap::new(),
        platforms: vec!["linux/arm64/v8".to_string()],
        ready: true,
        unschedulable: false,
        pods: Vec::new(),
    }
}

fn pod(cpu_millis: u64, memory_bytes: u64) -> PodRequest {
    PodRequest {
        namespace: "default".to_string(),
        name: "web-1".to_string(),
        cpu_request_millis: cpu_millis,
        memory_request_bytes: memory_bytes,
        ..PodRequest::default()
    }
}

fn placed(owner: Option<&str>, cpu_millis: u64, memory_bytes: u64) -> PlacedPod {
    PlacedPod {
        namespace: "default".to_string(),
        name: "other".to_string(),
        owner_uid: owner.map(str::to_string),
        cpu_request_millis: cpu_millis,
        memory_request_bytes: memory_bytes,
        ..PlacedPod::default()
    }
}

pub(super) fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
    Taint {
        key: key.to_string(),
        value: value.map(str::to_string),
        effect: effect.to_string(),
        time_added: None,
    }
}

pub(super) fn toleration(
    key: Option<&str>,
    operator: TolerationOperator,
    value: Option<&str>,
    effect: Option<&str>,
) -> Toleration {
    Toleration {
        key: key.map(str::to_string),
        operator,
        value: value.map(str::to_string),
        effect: effect.map(str::to_string),
        toleration_seconds: None,
    }
}

use crate::model::test_labels as labels;

fn requirement(key: &str, operator: NodeSelectorOperator, values: &[&str]) -> Requirement {
    Requirement {
        key: key.to_string(),
        operator,
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

fn bind(name: &str) -> Decision {
    Decision::Bind {
        node: name.to_string(),
    }
}

fn unschedulable(message: &str) -> Decision {
    Decision::Unschedulable {
        message: message.to_string(),
    }
}

#[test]
fn each_filter_reports_kubernetes_reason() {
    let mut cordoned = node("a", 4000, 4 * GI);
    cordoned.unschedulable = true;
    let mut not_ready = node("a", 4000, 4 * GI);
    not_ready.ready = false;
    let mut tainted = node("a", 4000, 4 * GI);
    tainted.taints = vec![taint("dedicated", Some("gpu"), EFFECT_NO_EXECUTE)];
    let mut arm32 = node("a", 4000, 4 * GI);
    arm32.platforms = vec!["linux/arm/v7".to_string()];
    let mut selective = pod(100, MI);
    selective.node_selector = labels(&[("kubernetes.io/arch", "amd64")]);
    let mut arm64_only = pod(100, MI);
    arm64_only.image_platforms = Some(vec!["linux/arm64".to_string()]);

    let cases: Vec<(&str, PodRequest, NodeInfo, &str)> = vec![
        (
            "cordoned",
            pod(100, MI),
            cordoned,
            "0/1 nodes are available: 1 node(s) were unschedulable.",
        ),
        (
            "not ready",
            pod(100, MI),
            not_ready,
            "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }.",
        ),
        (
            "taint",
            pod(100, MI),
            tainted,
            "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}.",
        ),
        (
            "selector",
            selective,
            node("a", 4000, 4 * GI),
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.",
        ),
        (
            "cpu",
            pod(4001, MI),
            node("a", 4000, 4 * GI),
            "0/1 nodes are available: 1 Insufficient cpu.",
        ),
        (
            "memory",
            pod(100, 4 * GI + 1),
            node("a", 4000, 4 * GI),
            "0/1 nodes are available: 1 Insufficient memory.",
        ),
        (
            "cpu and memory both reported",
            pod(5000, 5 * GI),
            node("a", 4000, 4 * GI),
            "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory.",
        ),
        (
            "platform",
            arm64_only,
            arm32,
            "0/1 nodes are available: 1 node(s) didn't match the image's platform (the image offers linux/arm64/v8).",
        ),
    ];
    for (name, pod, node, message) in cases {
        assert_eq!(schedule(&pod, &[node]), unschedulable(message), "{name}");
    }
}

#[test]
fn no_nodes_at_all() {
    assert_eq!(
        schedule(&pod(0, 0), &[]),
        unschedulable("no nodes available to schedule pods")
    );
}

#[test]
fn message_counts_reasons_and_sorts_like_kubernetes() {
    let mut nodes = vec![node("a", 4000, GI), node("b", 4000, GI)];
    let mut amd = node("c", 4000, 8 * GI);
    amd.labels
        .insert("kubernetes.io/arch".into(), "amd64".into());
    nodes.push(amd);
    let mut big = pod(100, 2 * GI);
    big.node_selector = labels(&[("kubernetes.io/arch", "arm64")]);
    for n in &mut nodes[..2] {
        n.labels.insert("kubernetes.io/arch".into(), "arm64".into());
    }
    // Kubernetes sorts "COUNT REASON" strings, so the 1 comes before the 2.
    assert_eq!(
        schedule(&big, &nodes),
        unschedulable(
            "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient memory."
        )
    );

    // ... and as strings, so 10 sorts before 2.
    let mut many: Vec<NodeInfo> = (0..10).map(|i| node(&format!("m{i}"), 100, GI)).collect();
    let mut cordoned = node("x", 4000, GI);
    cordoned.unschedulable = true;
    many.push(cordoned.clone());
    cordoned.name = "y".into();
    many.push(cordoned);
    assert_eq!(
        schedule(&pod(200, MI), &many),
        unschedulable(
            "0/12 nodes are available: 10 Insufficient cpu, 2 node(s) were unschedulable."
        )
    );
}

#[test]
fn first_failing_filter_decides_the_reason() {
    // Cordoned, tainted, unlabelled and too small: only the first filter speaks.
    let mut everything_wrong = node("a", 10, 10);
    everything_wrong.unschedulable = true;
    everything_wrong.ready = false;
    everything_wrong.taints = vec![taint("k", None, EFFECT_NO_SCHEDULE)];
    let mut picky = pod(100, MI);
    picky.node_selector = labels(&[("disk", "ssd")]);
    assert_eq!(
        schedule(&picky, &[everything_wrong.clone()]),
        unschedulable("0/1 nodes are available: 1 node(s) were unschedulable.")
    );
    everything_wrong.unschedulable = false;
    assert_eq!(
        schedule(&picky, &[everything_wrong.clone()]),
        unschedulable(
            "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }."
        )
    );
    everything_wrong.ready = true;
    assert_eq!(
        schedule(&picky, &[everything_wrong.clone()]),
        unschedulable("0/1 nodes are available: 1 node(s) had untolerated taint {k: }.")
    );
    everything_wrong.taints.clear();
    assert_eq!(
        schedule(&picky, &[everything_wrong]),
        unschedulable(
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
        )
    );
}

#[test]
fn placed_pods_use_up_allocatable() {
    let mut busy = node("a", 1000, GI);
    busy.pods = vec![placed(None, 600, GI / 2), placed(None, 300, GI / 4)];
    // Exactly the remaining 100m and 256Mi fit.
    assert_eq!(schedule(&pod(100, GI / 4), &[busy.clone()]), bind("a"));
    assert_eq!(
        schedule(&pod(101, GI / 4), &[busy.clone()]),
        unschedulable("0/1 nodes are available: 1 Insufficient cpu.")
    );
    // A pod that requests nothing fits even on an overcommitted node, as in Kubernetes.
    busy.pods.push(placed(None, 5000, 5 * GI));
    assert_eq!(schedule(&pod(0, 0), &[busy]), bind("a"));
}

#[test]
fn tolerated_taints_and_cordon_let_the_pod_in() {
    let mut cordoned = node("a", 4000, GI);
    cordoned.unschedulable = true;
    let mut p = pod(100, MI);
    p.tolerations = vec![toleration(
        Some(TAINT_UNSCHEDULABLE),
        TolerationOperator::Exists,
        None,
        Some(EFFECT_NO_SCHEDULE),
    )];
    assert_eq!(schedule(&p, &[cordoned]), bind("a"));

    let mut tainted = node("a", 4000, GI);
    tainted.taints = vec![
        taint("dedicated", Some("iot"), EFFECT_NO_SCHEDULE),
        taint("zone", Some("attic"), EFFECT_NO_EXECUTE),
        // Only NoSchedule and NoExecute filter; PreferNoSchedule only scores.
        taint("noisy", None, EFFECT_PREFER_NO_SCHEDULE),
    ];
    let mut p = pod(100, MI);
    p.tolerations = vec![toleration(
        Some("dedicated"),
        TolerationOperator::Equal,
        Some("iot"),
        None,
    )];
    assert_eq!(
        schedule(&p, &[tainted.clone()]),
        unschedulable("0/1 nodes are available: 1 node(s) had untolerated taint {zone: attic}.")
    );
    p.tolerations.push(toleration(
        Some("zone"),
        TolerationOperator::Exists,
        None,
        Some(EFFECT_NO_EXECUTE),
    ));
    assert_eq!(schedule(&p, &[tainted]), bind("a"));
}

#[test]
fn selector_and_affinity_must_both_match() {
    let mut a = node("a", 4000, GI);
    a.labels.insert("kubernetes.io/arch".into(), "arm64".into());
    let mut b = node("b", 4000, GI);
    b.labels.insert("kubernetes.io/arch".into(), "arm64".into());
    b.labels.insert("disk".into(), "ssd".into());
    let mut p = pod(100, MI);
    p.node_selector = labels(&[("kubernetes.io/arch", "arm64")]);
    p.required_node_affinity = vec![NodeSelectorTerm {
        match_expressions: vec![requirement("disk", NodeSelectorOperator::Exists, &[])],
    }];
    assert_eq!(schedule(&p, &[a.clone(), b]), bind("b"));
    assert_eq!(
        schedule(&p, &[a]),
        unschedulable(
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
        )
    );
}

#[test]
fn preferred_node_affinity_ranks_nodes_but_never_filters() {
    // Same size: without a preference the name decides, and a comes first.
    let roomy = node("a", 1000, GI);
    let mut camera = node("camera", 1000, GI);
    camera.labels.insert("camera".into(), "yes".into());
    let mut p = pod(100, MI);
    assert_eq!(schedule(&p, &[camera.clone(), roomy.clone()]), bind("a"));
    p.preferred_node_affinity = vec![
        PreferredSchedulingTerm {
            weight: 10,
            preference: NodeSelectorTerm {
                match_expressions: vec![requirement("camera", NodeSelectorOperator::In, &["yes"])],
            },
        },
        PreferredSchedulingTerm {
            weight: 5,
            preference: NodeSelectorTerm {
                match_expressions: vec![requirement("gpu", NodeSelectorOperator::Exists, &[])],
            },
        },
    ];
    assert_eq!(schedule(&p, &[roomy.clone(), camera]), bind("camera"));
    // A preference no node meets leaves every node possible.
    assert_eq!(schedule(&p, &[roomy]), bind("a"));
}

#[test]
fn platform_filter() {
    let arm64 = node("arm64", 4000, GI);
    let mut armv7 = node("armv7", 4000, GI);
    armv7.platforms = vec!["linux/arm/v7".to_string(), "linux/arm/v6".to_string()];
    let mut amd64 = node("amd64", 8000, 8 * GI);
    amd64.platforms = vec!["linux/amd64".to_string()];
    let nodes = [arm64, armv7, amd64];

    let mut p = pod(100, MI);
    // Unknown platforms: no filtering, packing picks by name among equally empty shares.
    p.image_platforms = None;
    assert!(matches!(schedule(&p, &nodes), Decision::Bind { .. }));

    // An index without the v8 variant still matches a linux/arm64/v8 board.
    p.image_platforms = Some(vec!["linux/arm64".to_string()]);
    assert_eq!(schedule(&p, &nodes), bind("arm64"));
    p.image_platforms = Some(vec!["linux/arm/v6".to_string()]);
    assert_eq!(schedule(&p, &nodes), bind("armv7"));
    p.image_platforms = Some(vec!["linux/riscv64".to_string()]);
    assert_eq!(
        schedule(&p, &nodes),
        unschedulable(
            "0/3 nodes are available: 3 node(s) didn't match the image's platform (the image offers linux/riscv64)."
        )
    );
}

fn arm32_node(name: &str, variant: &str) -> NodeInfo {
    let mut n = node(name, 4000, GI);
    n.platforms = vec![format!("linux/arm/{variant}")];
    n
}

#[test]
fn an_armv6_image_runs_on_armv7_boards_but_not_on_arm64_ones() {
    // The arm64 board is emptier and first by name: only the platform keeps the pod off it.
    let arm64 = node("a-pi5", 4000, 8 * GI);
    let nodes = [arm64, arm32_node("b-pi3-armhf", "v7")];
    let mut p = pod(100, MI);
    p.image_platforms = Some(vec!["linux/arm/v6".to_string()]);
    assert_eq!(schedule(&p, &nodes), bind("b-pi3-armhf"));
    assert_eq!(schedule(&p, &[arm32_node("zero-w", "v6")]), bind("zero-w"));
    // A board that reports `linux/arm` without a variant is taken as v7, as containerd does.
    let mut unlabelled = node("plain-arm", 4000, GI);
    unlabelled.platforms = vec!["linux/arm".to_string()];
    assert_eq!(schedule(&p, &[unlabelled]), bind("plain-arm"));
    assert_eq!(
        schedule(&p, &nodes[..1]),
        unschedulable(
            "0/1 nodes are available: 1 node(s) didn't match the image's platform (the image offers linux/arm/v6)."
        )
    );
}

#[test]
fn an_armv7_image_is_not_given_to_an_armv6_board() {
    let nodes = [arm32_node("zero-w", "v6"), node("pi5", 4000, 8 * GI)];
    let mut p = pod(100, MI);
    // `linux/arm` means v7, so it is refused by the v6 board too.
    for offered in ["linux/arm/v7", "linux/arm"] {
        p.image_platforms = Some(vec![offered.to_string()]);
        assert_eq!(
            schedule(&p, &nodes),
            unschedulable(
                "0/2 nodes are available: 2 node(s) didn't match the image's platform (the image offers linux/arm/v7)."
            ),
            "{offered}"
        );
    }
    // A multi-platform index offers each board its own.
    p.image_platforms = Some(
        [
            "linux/amd64",
            "linux/arm/v7",
            "linux/arm/v6",
            "linux/arm64/v8",
        ]
        .map(str::to_string)
        .to_vec(),
    );
    assert_eq!(schedule(&p, &nodes[..1]), bind("zero-w"));
    assert_eq!(schedule(&p, &nodes[1..]), bind("pi5"));
    // Images whose platforms have nothing in common fit no board, and the message says so.
    p.image_platforms = Some(Vec::new());
    assert_eq!(
        schedule(&p, &nodes),
        unschedulable(
            "0/2 nodes are available: 2 node(s) didn't match the image's platform (the pod's images share no platform)."
        )
    );
}

#[test]
fn a_pod_s_images_together_need_a_board_each_of_them_runs_on() {
    let strings = |list: &[&str]| list.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    // One container's image is v6-only, the other's v7-only: a v7 board runs both.
    let common = platforms_common_to(&[strings(&["linux/arm/v6"]), strings(&["linux/arm/v7"])]);
    assert_eq!(common, ["linux/arm/v7"]);
    let mut p = pod(100, MI);
    p.image_platforms = Some(common);
    assert_eq!(
        schedule(&p, &[arm32_node("zero-w", "v6"), arm32_node("pi3", "v7")]),
        bind("pi3")
    );
    // Multi-platform images keep what they share, normalised; nothing shared is empty.
    assert_eq!(
        platforms_common_to(&[
            strings(&["linux/amd64", "linux/arm64", "linux/arm/v7"]),
            strings(&["linux/arm64/v8", "linux/arm/v6", "linux/riscv64"]),
        ]),
        ["linux/arm64/v8", "linux/arm/v7"]
    );
    assert!(
        platforms_common_to(&[strings(&["linux/amd64"]), strings(&["linux/arm64"])]).is_empty()
    );
}

#[test]
fn the_platform_reason_counts_with_the_others() {
    let mut busy = arm32_node("pi3-armhf", "v7");
    busy.pods.push(placed(None, 3900, 0));
    let nodes = [busy, node("pi5", 4000, 8 * GI), arm32_node("zero-w", "v6")];
    let mut p = pod(500, MI);
    p.image_platforms = Some(vec!["linux/arm/v7".to_string()]);
    assert_eq!(
        schedule(&p, &nodes),
        unschedulable(
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match the image's platform (the image offers linux/arm/v7)."
        )
    );
}

/// Schedules `count` replicas of one Deployment, recording each binding in the snapshot
/// as the coordinator does, and returns the chosen node names in order.
fn schedule_replicas(nodes: &mut [NodeInfo], owner: &str, count: usize, cpu: u64) -> Vec<String> {
    let mut chosen = Vec::new();
    for i in 0..count {
        let mut p = pod(cpu, 64 * MI);
        p.name = format!("web-{i}");
        p.owner_uid = Some(owner.to_string());
        let Decision::Bind { node: name } = schedule(&p, nodes) else {
            panic!("replica {i} was not scheduled");
        };
        let target = nodes
            .iter_mut()
            .find(|n| n.name == name)
            .expect("bound to a node of the snapshot");
        target.pods.push(placed(Some(owner), cpu, 64 * MI));
        chosen.push(name);
    }
    chosen
}

#[test]
fn replicas_spread_across_nodes_before_packing() {
    // "c" is already busy, so packing alone would put every replica there.
    let mut nodes = vec![
        node("a", 4000, 4 * GI),
        node("b", 4000, 4 * GI),
        node("c", 4000, 4 * GI),
    ];
    nodes[2]
        .pods
        .push(placed(Some("other-deployment"), 2000, 2 * GI));
    let chosen = schedule_replicas(&mut nodes, "uid-web", 3, 250);
    let mut distinct = chosen.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{chosen:?}");
    // Among equally spread nodes the busiest goes first.
    assert_eq!(chosen[0], "c");

    // Six replicas on three nodes: 2-2-2.
    let chosen = schedule_replicas(&mut nodes, "uid-api", 6, 100);
    for name in ["a", "b", "c"] {
        assert_eq!(
            chosen.iter().filter(|n| *n == name).count(),
            2,
            "{chosen:?}"
        );
    }
}

#[test]
fn packing_prefers_the_busier_node() {
    let mut idle = node("a-idle", 4000, 4 * GI);
    let mut busy = node("z-busy", 4000, 4 * GI);
    busy.pods.push(placed(None, 1000, GI));
    // Both have one replica of the deployment: spreading ties, packing decides.
    idle.pods.push(placed(Some("uid"), 100, MI));
    busy.pods.push(placed(Some("uid"), 100, MI));
    let mut p = pod(100, MI);
    p.owner_uid = Some("uid".into());
    assert_eq!(schedule(&p, &[idle.clone(), busy.clone()]), bind("z-busy"));

    // The share is relative to the node: 1000m of a 1-core board is busier than 1000m of
    // a 4-core board.
    let mut small = node("small", 1000, GI);
    small.pods.push(placed(None, 500, GI / 2));
    let mut large = node("large", 4000, 4 * GI);
    large.pods.push(placed(None, 1000, GI));
    assert_eq!(schedule(&pod(100, MI), &[large, small]), bind("small"));

    // Equal scores fall back to the node name.
    let twins = [node("twin-b", 1000, GI), node("twin-a", 1000, GI)];
    assert_eq!(schedule(&pod(100, MI), &twins), bind("twin-a"));
}

#[test]
fn prefer_no_schedule_ranks_after_spreading_before_packing() {
    let mut soft = node("soft", 4000, 4 * GI);
    soft.taints = vec![taint("flaky", None, EFFECT_PREFER_NO_SCHEDULE)];
    soft.pods.push(placed(None, 3000, 3 * GI)); // busiest: packing alone would pick it
    let plain = node("plain", 4000, 4 * GI);
    let p = pod(100, MI);
    assert_eq!(schedule(&p, &[soft.clone(), plain.clone()]), bind("plain"));

    // Tolerated, the soft taint costs nothing and packing wins again.
    let mut tolerant = p.clone();
    tolerant.tolerations = vec![toleration(
        Some("flaky"),
        TolerationOperator::Exists,
        None,
        None,
    )];
    assert_eq!(
        schedule(&tolerant, &[soft.clone(), plain.clone()]),
        bind("soft")
    );

    // Spreading still comes first: a replica goes to the soft node rather than doubling up.
    let mut plain_with_replica = plain;
    plain_with_replica.pods.push(placed(Some("uid"), 100, MI));
    let mut replica = p;
    replica.owner_uid = Some("uid".into());
    assert_eq!(
        schedule(&replica, &[plain_with_replica, soft]),
        bind("soft")
    );
}

#[test]
fn deterministic_and_independent_of_node_order() {
    let mut nodes: Vec<NodeInfo> = (0..7)
        .map(|i| node(&format!("n{i}"), 1000 + 500 * (i % 3), GI * (1 + i % 2)))
        .collect();
    nodes[3].pods.push(placed(Some("uid"), 200, MI));
    nodes[5].pods.push(placed(None, 700, GI / 2));
    nodes[6].unschedulable = true;
    let mut p = pod(300, 128 * MI);
    p.owner_uid = Some("uid".into());

    let first = schedule(&p, &nodes);
    assert!(matches!(first, Decision::Bind { .. }));
    assert_eq!(schedule(&p, &nodes), first);
    for rotation in 1..nodes.len() {
        let mut rotated = nodes.clone();
        rotated.rotate_left(rotation);
        assert_eq!(schedule(&p, &rotated), first, "rotation {rotation}");
    }
    let mut reversed = nodes.clone();
    reversed.reverse();
    assert_eq!(schedule(&p, &reversed), first);

    // Failure messages do not depend on the order either.
    let huge = pod(100_000, MI);
    let message = schedule(&huge, &nodes);
    assert_eq!(schedule(&huge, &reversed), message);
    assert_eq!(
        message,
        unschedulable("0/7 nodes are available: 1 node(s) were unschedulable, 6 Insufficient cpu.")
    );
}

fn container(name: &str, requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
    Container {
        name: name.to_string(),
        image: "registry.local/app:1".to_string(),
        resources: ResourceRequirements {
            requests: labels(requests),
            limits: labels(limits),
        },
        ..Container::default()
    }
}

#[test]
fn pod_request_sums_containers() {
    let mut spec = PodSpec {
        containers: vec![
            container("app", &[("cpu", "250m"), ("memory", "64Mi")], &[]),
            // Only limits: the model's defaulting turns them into requests.
            container("sidecar", &[], &[("cpu", "0.5"), ("memory", "32Mi")]),
            container("idle", &[], &[]),
        ],
        node_selector: labels(&[("kubernetes.io/arch", "arm64")]),
        ..PodSpec::default()
    };
    spec.apply_defaults();
    let request =
        pod_request_from_spec("prod", "web-1", Some("uid-1"), &spec).expect("quantities are valid");
    assert_eq!(request.namespace, "prod");
    assert_eq!(request.name, "web-1");
    assert_eq!(request.owner_uid.as_deref(), Some("uid-1"));
    assert_eq!(request.cpu_request_millis, 750);
    assert_eq!(request.memory_request_bytes, 96 * MI);
    assert_eq!(request.node_selector, spec.node_selector);
    assert!(request.tolerations.is_empty());
    assert!(request.required_node_affinity.is_empty());
    assert_eq!(request.image_platforms, None);
}

#[test]
fn pod_request_counts_init_containers_at_the_pods_peak() {
    let mut sidecar = container("proxy", &[("cpu", "100m")], &[]);
    sidecar.restart_policy = Some("Always".to_owned());
    let spec = PodSpec {
        init_containers: vec![
            container("migrate", &[("cpu", "1"), ("memory", "16Mi")], &[]),
            sidecar,
            container("warm", &[("cpu", "950m")], &[]),
        ],
        containers: vec![container(
            "app",
            &[("cpu", "200m"), ("memory", "64Mi")],
            &[],
        )],
        ..PodSpec::default()
    };
    let request = pod_request_from_spec("default", "p", None, &spec).unwrap();
    // `warm` runs beside the sidecar started before it: 950m + 100m.
    assert_eq!(request.cpu_request_millis, 1050);
    assert_eq!(request.memory_request_bytes, 64 * MI);
}

#[test]
fn pod_level_requests_replace_the_containers_sum() {
    let mut spec = PodSpec {
        containers: vec![
            container("app", &[("cpu", "250m"), ("memory", "64Mi")], &[]),
            container("idle", &[], &[]),
        ],
        resources: Some(ResourceRequirements {
            requests: labels(&[("cpu", "1")]),
            limits: labels(&[("cpu", "2"), ("memory", "256Mi")]),
        }),
        ..PodSpec::default()
    };
    spec.apply_defaults();
    let request = pod_request_from_spec("default", "p", None, &spec).unwrap();
    assert_eq!(request.cpu_request_millis, 1000, "the pod's own request");
    // No pod-level memory request: Kubernetes defaults it to the containers' 64Mi,
    // since a container requests memory.
    assert_eq!(request.memory_request_bytes, 64 * MI);
    let mut limits_only = PodSpec {
        containers: vec![container("idle", &[], &[])],
        resources: Some(ResourceRequirements {
            requests: labels(&[]),
            limits: labels(&[("memory", "256Mi"), ("pids", "512")]),
        }),
        ..PodSpec::default()
    };
    limits_only.apply_defaults();
    let request = pod_request_from_spec("default", "p", None, &limits_only).unwrap();
    assert_eq!(
        request.memory_request_bytes,
        256 * MI,
        "defaulted from the limit"
    );
    assert!(request.extended.is_empty(), "a pids limit is not a request");
}

#[test]
fn pod_request_reports_bad_quantity() {
    let spec = PodSpec {
        containers: vec![
            container("ok", &[("cpu", "1")], &[]),
            container("bad", &[("memory", "64Mb")], &[]),
        ],
        ..PodSpec::default()
    };
    let err = pod_request_from_spec("default", "p", None, &spec).unwrap_err();
    assert_eq!(
        err.to_string(),
        "containers[1].resources.requests.memory: invalid quantity \"64Mb\""
    );
}

#[test]
fn a_pods_affinity_and_tolerations_reach_the_scheduler() {
    let spec: PodSpec = serde_json::from_value(serde_json::json!({
        "containers": [{"name": "c", "image": "i"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]}}},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]
    }))
    .unwrap();
    let request = pod_request_from_spec("default", "p", None, &spec).unwrap();
    assert_eq!(request.required_node_affinity.len(), 1);
    assert_eq!(
        request.required_node_affinity[0].match_expressions[0].operator,
        NodeSelectorOperator::In
    );
    assert_eq!(request.tolerations[0].operator, TolerationOperator::Exists);
}
