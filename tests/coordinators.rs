//! Several coordinators over one etcd (issue 16): three etcd members, three coordinators
//! and three agents that know all three. The leader coordinator is killed with SIGKILL:
//! another takes over, an apply made right after succeeds, the agents get it (through
//! another coordinator), and no node is ever `Ready=Unknown`. A lone coordinator's SQLite
//! state migrated into etcd keeps its agents' pods and credentials.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;
#[path = "common/etcd.rs"]
mod etcd_support;
#[allow(dead_code)]
#[path = "common/fleet.rs"]
mod fleet_support;

use std::time::{Duration, Instant};

use common::{wait_for, TestAgent};
use etcd_support::EtcdCluster;
use fleet_support::{TestCoordinator, TestNetwork, GENERIC_BOARD};
use serde_json::Value;

fn deployment(name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  \
         selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    \
         spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n        - name: main\n          \
         image: busybox:1.35\n          command: [\"sleep\", \"100000\"]\n"
    )
}

fn leads(coordinator: &TestCoordinator) -> bool {
    let log = std::fs::read_to_string(coordinator.state.path().join("coordinator.log"))
        .unwrap_or_default();
    let became = log.rfind("became the leader");
    let stopped = log.rfind("stopped leading");
    became.is_some() && became > stopped
}

/// Whether an agent's log shows it left a coordinator for another: on a refused
/// connection ("now talking to"), or after a hung or unavailable one ("leaving").
fn moved_on(log: &str) -> bool {
    log.contains("api client: now talking to") || log.contains("api client: leaving")
}

/// Pods of `app` running, by node, as the coordinator `c` reports them.
fn running(c: &TestCoordinator, app: &str) -> usize {
    let out = c.berth(&["get", "pods", "-o", "json"]);
    let pods: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    pods["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|p| p["metadata"]["labels"]["app"] == app)
                .filter(|p| p["status"]["phase"] == "Running")
                .count()
        })
        .unwrap_or(0)
}

/// Nodes that are not `Ready=True` according to `c` (none if `c` does not answer).
fn not_ready(c: &TestCoordinator) -> Vec<String> {
    let out = c.berth(&["get", "nodes", "-o", "json"]);
    let Ok(nodes) = serde_json::from_slice::<Value>(&out.stdout) else {
        return Vec::new();
    };
    nodes["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| {
            !n["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .map(|n| n["metadata"]["name"].as_str().unwrap_or("?").to_owned())
        .collect()
}

#[test]
fn killing_the_leader_coordinator_moves_leadership_and_keeps_the_fleet_ready() {
    let cluster = EtcdCluster::start(3);
    let mut network = TestNetwork::new();
    let gateway = network.gateway();
    let endpoints = cluster.endpoint_list();
    // Every coordinator of a fleet holds the same key for Secrets at rest.
    let key_file = cluster.dir.path().join("secrets.key");
    let key_file = key_file.to_str().unwrap();
    let args = [
        "--datastore-endpoint",
        endpoints.as_str(),
        "--encryption-key-file",
        key_file,
    ];
    // The first to start leads, and the agents talk to it first (their URL list starts
    // with it): killing it makes both the leadership and the agents move.
    let mut coordinators = vec![TestCoordinator::start(&gateway, &args)];
    wait_for(
        Duration::from_secs(20),
        "the first coordinator leading",
        || leads(&coordinators[0]).then_some(()),
    );
    coordinators.push(TestCoordinator::start(&gateway, &args));
    coordinators.push(TestCoordinator::start(&gateway, &args));
    let urls = coordinators
        .iter()
        .map(|c| c.url.clone())
        .collect::<Vec<_>>()
        .join(",");
    // A token made through one coordinator lets agents join through any.
    let token = coordinators[2].token();
    let agents: Vec<TestAgent> = ["h1", "h2", "h3"]
        .iter()
        .map(|name| {
            let netns = network.add_host();
            let join = ["--join", &urls, "--token", &token, "--board", GENERIC_BOARD];
            TestAgent::start_as(name, Some(&netns), &join)
        })
        .collect();
    wait_for(Duration::from_secs(30), "the three nodes Ready", || {
        let nodes = coordinators[1].json(&["get", "nodes"]);
        let count = nodes["items"].as_array()?.len();
        (count == 3 && not_ready(&coordinators[1]).is_empty()).then_some(())
    });
    let leader = wait_for(Duration::from_secs(20), "one leader", || {
        let leading: Vec<usize> = (0..3).filter(|&i| leads(&coordinators[i])).collect();
        (leading.len() == 1).then(|| leading[0])
    });
    assert_eq!(leader, 0);
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();

    // Written through a coordinator that does not lead: the leader schedules it.
    let apply = |c: &TestCoordinator, name: &str, replicas: u32| {
        let path = c.state.path().join(format!("{name}.yaml"));
        std::fs::write(&path, deployment(name, replicas)).unwrap();
        c.ok(&["apply", "-f", path.to_str().unwrap()]);
    };
    apply(&coordinators[others[0]], "before", 2);
    wait_for(Duration::from_secs(60), "2 pods of before", || {
        (running(&coordinators[others[1]], "before") == 2).then_some(())
    });

    let killed_at = Instant::now();
    coordinators[leader].stop();
    let new_leader = wait_for(Duration::from_secs(30), "a new leader", || {
        others.iter().copied().find(|&i| leads(&coordinators[i]))
    });
    let took = killed_at.elapsed();
    // An apply made right after succeeds, and the agents run it.
    apply(&coordinators[others[0]], "after", 2);
    let mut unready = Vec::new();
    wait_for(Duration::from_secs(60), "2 pods of after", || {
        unready.extend(not_ready(&coordinators[new_leader]));
        (running(&coordinators[new_leader], "after") == 2).then_some(())
    });
    // Nodes stay Ready for a while after the change of leader.
    let watch_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < watch_until {
        for &i in &others {
            unready.extend(not_ready(&coordinators[i]));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(unready.is_empty(), "nodes not Ready: {unready:?}");
    // The agents left the killed coordinator for another one.
    for agent in &agents {
        assert!(moved_on(&agent.log()), "{}", agent.log_tail());
    }
    eprintln!("new leader after {took:?}");

    // `get coordinators`: the two left, the new leader marked, every etcd member healthy.
    let survivor = &coordinators[others[1]];
    let listed = wait_for(Duration::from_secs(30), "two coordinators listed", || {
        let list = survivor.json(&["get", "coordinators"]);
        let items = list["items"].as_array()?.clone();
        (items.len() == 2).then_some(items)
    });
    let leading: Vec<&Value> = listed
        .iter()
        .filter(|c| c["status"]["leader"] == true)
        .collect();
    assert_eq!(leading.len(), 1, "{listed:?}");
    assert_eq!(
        leading[0]["spec"]["url"],
        coordinators[new_leader].url.as_str()
    );
    assert_eq!(leading[0]["status"]["store"]["healthy"], 3);
    let table = survivor.ok(&["get", "coordinators"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("etcd 3/3"), "{table}");
    drop(agents);
}

/// uid of every pod of `app`, sorted.
fn pod_uids(c: &TestCoordinator, app: &str) -> Vec<String> {
    let pods = c.json(&["get", "pods", "-l", &format!("app={app}")]);
    let mut uids: Vec<String> = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["metadata"]["uid"].as_str().map(str::to_owned))
        .collect();
    uids.sort();
    uids
}

#[test]
fn a_sqlite_fleet_migrated_to_etcd_keeps_its_pods_and_credentials() {
    let cluster = EtcdCluster::start(1);
    let mut network = TestNetwork::new();
    let mut coordinator = TestCoordinator::start(&network.gateway(), &[]);
    let token = coordinator.token();
    let agents: Vec<TestAgent> = ["m1", "m2"]
        .iter()
        .map(|name| {
            let netns = network.add_host();
            let join = [
                "--join",
                &coordinator.url,
                "--token",
                &token,
                "--board",
                GENERIC_BOARD,
            ];
            TestAgent::start_as(name, Some(&netns), &join)
        })
        .collect();
    let path = coordinator.state.path().join("web.yaml");
    std::fs::write(&path, deployment("web", 2)).unwrap();
    coordinator.ok(&["apply", "-f", path.to_str().unwrap()]);
    wait_for(Duration::from_secs(60), "2 web pods running", || {
        (running(&coordinator, "web") == 2).then_some(())
    });
    let uids = pod_uids(&coordinator, "web");
    let containers: Vec<Vec<String>> = agents
        .iter()
        .map(|a| {
            a.container_dirs()
                .iter()
                .map(|d| d.display().to_string())
                .collect()
        })
        .collect();

    assert_eq!(uids.len(), 2);
    assert!(
        containers.iter().all(|dirs| !dirs.is_empty()),
        "{containers:?}"
    );
    coordinator.stop();
    let db = coordinator.state.path().join("berth.db");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["coordinator", "migrate", "--from"])
        .arg(format!("sqlite:{}", db.display()))
        .args(["--to", &format!("etcd:{}", cluster.endpoint_list())])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("migrated "));
    let endpoints = cluster.endpoint_list();
    coordinator.set_args(&["--datastore-endpoint", &endpoints]);
    assert!(coordinator.spawn(), "{}", coordinator.log_tail());

    // Same pods, same containers; the agents' credentials still work (nodes Ready, and
    // a scale-up reaches them).
    wait_for(Duration::from_secs(30), "both nodes Ready on etcd", || {
        let nodes = coordinator.json(&["get", "nodes"]);
        (nodes["items"].as_array()?.len() == 2 && not_ready(&coordinator).is_empty()).then_some(())
    });
    assert_eq!(pod_uids(&coordinator, "web"), uids);
    coordinator.ok(&["scale", "deployment", "web", "--replicas", "3"]);
    wait_for(Duration::from_secs(60), "3 web pods running", || {
        (running(&coordinator, "web") == 3).then_some(())
    });
    for (agent, before) in agents.iter().zip(&containers) {
        let now: Vec<String> = agent
            .container_dirs()
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        for dir in before {
            assert!(now.contains(dir), "container {dir} of the old pods is gone");
        }
    }
    assert!(!coordinator.log_tail().contains("invalid credential"));
}

/// Three coordinators on `cluster` (or on `endpoints` for each, when given), the first
/// started alone so that it leads.
fn three_coordinators(
    cluster: &EtcdCluster,
    gateway: &str,
    endpoints: [String; 3],
) -> Vec<TestCoordinator> {
    let key_file = cluster.dir.path().join("secrets.key");
    let key_file = key_file.to_str().unwrap().to_owned();
    let start = |endpoints: &str| {
        let args = [
            "--datastore-endpoint",
            endpoints,
            "--encryption-key-file",
            key_file.as_str(),
        ];
        TestCoordinator::start(gateway, &args)
    };
    let mut coordinators = vec![start(&endpoints[0])];
    wait_for(
        Duration::from_secs(20),
        "the first coordinator leading",
        || leads(&coordinators[0]).then_some(()),
    );
    coordinators.push(start(&endpoints[1]));
    coordinators.push(start(&endpoints[2]));
    coordinators
}

/// The first coordinator's admin config, once it lists every coordinator (each writes
/// the URLs of those registered in etcd into its own), its own first.
fn config_for_all(coordinators: &[TestCoordinator]) -> std::path::PathBuf {
    let first = &coordinators[0];
    let path = first.config();
    wait_for(
        Duration::from_secs(20),
        "every coordinator in the admin config",
        || {
            let config = berth::api::config::ClientConfig::load(&path).ok()?;
            let servers: Vec<&str> = config.server.split(',').collect();
            let all = coordinators
                .iter()
                .all(|c| servers.contains(&c.url.as_str()));
            (all && servers[0] == first.url).then_some(())
        },
    );
    path
}

/// A client applies numbered updates as fast as it can (each one a new ConfigMap
/// `log-N` and ConfigMap `counter` set to N) while the leader coordinator is killed and
/// one etcd member stopped: every acknowledged update is there at the end, and the
/// `resourceVersion`s the client reads back only grow.
#[test]
fn no_acknowledged_write_is_lost_when_the_leader_and_an_etcd_member_die() {
    let mut cluster = EtcdCluster::start(3);
    let network = TestNetwork::new();
    let all = cluster.endpoint_list();
    let coordinators = three_coordinators(
        &cluster,
        &network.gateway(),
        [all.clone(), all.clone(), all],
    );
    let config = config_for_all(&coordinators);
    let berth = move |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap()
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let writer = {
        let (stop, acked) = (stop.clone(), acked.clone());
        let dir = cluster.dir.path().to_path_buf();
        let berth = berth.clone();
        std::thread::spawn(move || {
            let mut versions: Vec<i64> = Vec::new();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                let yaml = format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: log-{n}\ndata:\n  n: \"{n}\"\n---\n\
                     apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: counter\ndata:\n  n: \"{n}\"\n"
                );
                let path = dir.join("update.yaml");
                std::fs::write(&path, yaml).unwrap();
                if !berth(&["apply", "-f", path.to_str().unwrap()])
                    .status
                    .success()
                {
                    continue;
                }
                acked.lock().unwrap().push(n);
                let out = berth(&["get", "configmap", "counter", "-o", "json"]);
                if let Ok(counter) = serde_json::from_slice::<Value>(&out.stdout) {
                    let version: i64 = counter["metadata"]["resourceVersion"]
                        .as_str()
                        .and_then(|v| v.parse().ok())
                        .unwrap();
                    versions.push(version);
                }
            }
            versions
        })
    };
    let acked_count = || acked.lock().unwrap().len();
    let wait_acked = |more: usize, what: &str| {
        let target = acked_count() + more;
        wait_for(Duration::from_secs(60), what, || {
            (acked_count() >= target).then_some(())
        });
    };
    wait_acked(5, "5 acknowledged updates");
    let mut coordinators = coordinators;
    coordinators[0].stop();
    wait_acked(5, "5 updates after the leader died");
    cluster.stop(1);
    wait_acked(5, "5 updates with an etcd member down");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let versions = writer.join().unwrap();
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "versions went back: {versions:?}"
    );

    let acked = acked.lock().unwrap().clone();
    let stored = coordinators[1].json(&["get", "configmaps"]);
    let names: std::collections::HashSet<String> = stored["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    for n in &acked {
        assert!(
            names.contains(&format!("log-{n}")),
            "acknowledged update {n} is lost"
        );
    }
    let counter = coordinators[1].json(&["get", "configmap", "counter"]);
    let last: u64 = counter["data"]["n"].as_str().unwrap().parse().unwrap();
    assert!(last >= *acked.last().unwrap());
    eprintln!("{} acknowledged updates", acked.len());
}

/// The leader loses etcd (through a proxy the test cuts) but not its agents: it stops
/// acting as leader before another coordinator is elected, and only the new leader
/// binds the pods applied during the partition.
#[test]
fn a_leader_cut_off_from_etcd_steps_down_before_another_is_elected() {
    let cluster = EtcdCluster::start(1);
    let mut network = TestNetwork::new();
    let proxy = etcd_support::PartitionProxy::start(
        cluster.endpoints()[0]
            .trim_start_matches("http://")
            .to_owned(),
    );
    let direct = cluster.endpoint_list();
    let coordinators = three_coordinators(
        &cluster,
        &network.gateway(),
        [proxy.url(), direct.clone(), direct],
    );
    let token = coordinators[1].token();
    let netns = network.add_host();
    let urls: Vec<&str> = coordinators.iter().map(|c| c.url.as_str()).collect();
    let urls = urls.join(",");
    let join = ["--join", &urls, "--token", &token, "--board", GENERIC_BOARD];
    let agent = TestAgent::start_as("p1", Some(&netns), &join);
    wait_for(Duration::from_secs(30), "the node Ready", || {
        let nodes = coordinators[1].json(&["get", "nodes"]);
        (nodes["items"].as_array()?.len() == 1 && not_ready(&coordinators[1]).is_empty())
            .then_some(())
    });

    // Joined (the answer arrived), not just stored: a join whose answer is lost cannot
    // be made again under the same name.
    wait_for(Duration::from_secs(30), "the agent joined", || {
        agent.log().contains("joined the fleet").then_some(())
    });
    proxy.cut();
    let path = coordinators[1].state.path().join("during.yaml");
    std::fs::write(&path, deployment("during", 2)).unwrap();
    coordinators[1].ok(&["apply", "-f", path.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while running(&coordinators[1], "during") != 2 {
        assert!(
            Instant::now() < deadline,
            "2 pods of during are not running; agent log:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Each coordinator's decisions, in time order: when it stopped or started leading
    // and the pods it bound.
    let log = |c: &TestCoordinator| {
        std::fs::read_to_string(c.state.path().join("coordinator.log")).unwrap_or_default()
    };
    let stamp = |line: &str| line.get(1..24).unwrap_or("").to_owned();
    let old = log(&coordinators[0]);
    let stepped_down = old
        .lines()
        .filter(|l| l.contains("stopped leading"))
        .map(stamp)
        .next()
        .expect("the cut-off leader says it stopped leading");
    let new_leader = (1..3)
        .find(|&i| leads(&coordinators[i]))
        .expect("a new leader");
    let elected = log(&coordinators[new_leader])
        .lines()
        .rfind(|l| l.contains("became the leader"))
        .map(stamp)
        .unwrap();
    assert!(
        stepped_down < elected,
        "old leader stopped at {stepped_down}, new one began at {elected}"
    );
    let bound_by_old: Vec<&str> = old
        .lines()
        .filter(|l| l.contains("bound pod default/during"))
        .collect();
    assert!(
        bound_by_old.is_empty(),
        "the cut-off leader acted: {bound_by_old:?}"
    );
    // The agent, which talked to the cut-off coordinator, moved on to another.
    assert!(moved_on(&agent.log()), "{}", agent.log_tail());
    proxy.heal();
}
