//! `scripts/bench`, issue 6: the fleet coordinator's numbers, appended to
//! docs/benchmarks.md. Not a test: nothing here asserts a time.
//!
//! Measures the pure scheduler alone: 10,000 pods onto 1,000 nodes of mixed board
//! profiles, binding one pod at a time as the coordinator does (each decision sees the
//! pods placed before it). Median pods per second of 5 runs.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use berth::coordinator::{schedule, Decision, NodeInfo, PlacedPod, PodRequest};

const NODES: usize = 1_000;
const PODS: usize = 10_000;
const RUNS: usize = 5;

/// Three kinds of board, like a real mixed fleet: Pi 4 8 GB, Pi 4 2 GB (arm64), Pi 3
/// with a 32-bit OS (arm/v7).
fn nodes() -> Vec<NodeInfo> {
    (0..NODES)
        .map(|i| {
            let (arch, platform, cpu, memory_gib, instance) = match i % 3 {
                0 => ("arm64", "linux/arm64/v8", 3750, 7, "rpi4b-8gb"),
                1 => ("arm64", "linux/arm64/v8", 3750, 1, "rpi4b-2gb"),
                _ => ("arm", "linux/arm/v7", 3750, 1, "rpi3b-plus"),
            };
            NodeInfo {
                name: format!("board-{i:04}"),
                labels: BTreeMap::from([
                    ("kubernetes.io/arch".to_owned(), arch.to_owned()),
                    (
                        "node.kubernetes.io/instance-type".to_owned(),
                        instance.to_owned(),
                    ),
                ]),
                taints: Vec::new(),
                allocatable_cpu_millis: cpu,
                allocatable_memory_bytes: memory_gib << 30,
                platforms: vec![platform.to_owned()],
                ready: true,
                unschedulable: false,
                pods: Vec::new(),
            }
        })
        .collect()
}

/// One run; returns (pods bound, pods per second).
fn run() -> (usize, f64) {
    let mut nodes = nodes();
    let index: HashMap<String, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.clone(), i))
        .collect();
    let pods: Vec<PodRequest> = (0..PODS)
        .map(|p| PodRequest {
            namespace: "default".to_owned(),
            name: format!("pod-{p}"),
            // 100 Deployments of 100 replicas each.
            owner_uid: Some(format!("deploy-{}", p % 100)),
            cpu_request_millis: 100,
            memory_request_bytes: 32 << 20,
            node_selector: if p % 10 == 0 {
                BTreeMap::from([("kubernetes.io/arch".to_owned(), "arm64".to_owned())])
            } else {
                BTreeMap::new()
            },
            ..Default::default()
        })
        .collect();
    let start = Instant::now();
    let mut bound = 0;
    for pod in &pods {
        if let Decision::Bind { node } = schedule(pod, &nodes) {
            nodes[index[&node]].pods.push(PlacedPod {
                namespace: pod.namespace.clone(),
                name: pod.name.clone(),
                owner_uid: pod.owner_uid.clone(),
                cpu_request_millis: pod.cpu_request_millis,
                memory_request_bytes: pod.memory_request_bytes,
            });
            bound += 1;
        }
    }
    (bound, PODS as f64 / start.elapsed().as_secs_f64())
}

fn main() {
    // cargo passes `--bench` to harness-less benches; only a path counts.
    let out = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let mut rates = Vec::new();
    let mut bound = 0;
    for _ in 0..RUNS {
        let (b, rate) = run();
        bound = b;
        rates.push(rate);
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    let median = rates[RUNS / 2];
    let report = format!(
        "\n## Fleet scheduling (issue 6)\n\n\
The pure scheduler (`coordinator::scheduler::schedule`) alone, produced by `cargo bench --bench fleet` \
(run by `scripts/bench`): {PODS} pods (100 Deployments × 100, a tenth of them arm64-only) onto {NODES} \
nodes of three board profiles, one decision at a time, each seeing the pods placed before it. Median of {RUNS} runs.\n\n\
| what | value | target |\n|---|---|---|\n\
| scheduler throughput | {median:.0} pods/s ({bound} bound) | ≥ 20,000 pods/s |\n\
| anchors | Kubernetes scheduler-throughput SLO 100 pods/s; Nomad C1M 3,750 containers/s | — |\n"
    );
    print!("{report}");
    if let Some(path) = out {
        let mut existing = std::fs::read_to_string(&path).unwrap_or_default();
        existing.push_str(&report);
        std::fs::write(&path, existing).expect("write the report");
    }
}
