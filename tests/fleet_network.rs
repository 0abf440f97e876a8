//! The pod network across a fleet (issue 13): every board gets its pod CIDR from the
//! coordinator, pods reach pods on other boards by address and through Services, every
//! board's DNS answers for the whole fleet, and boards on different subnets are joined
//! by VXLAN.
//!
//! Boards run in network namespaces of a test network (tests/common/fleet.rs); the
//! coordinator listens on the test bridge. The cross-subnet test adds a router namespace
//! and a second subnet that exists only inside the test's namespaces.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;
#[allow(dead_code)]
#[path = "common/fleet.rs"]
mod fleet_support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{wait_for, TestAgent};
use fleet_support::{TestCoordinator, TestNetwork};
use serde_json::Value;

/// `get HOST [PORT]`: the one-line body of a 200 answer (busybox's static wget segfaults,
/// see tests/pod_network.rs).
const GET: &str = "get() { printf 'GET / HTTP/1.0\\r\\nHost: %s\\r\\n\\r\\n' \"$1\" | nc -w 2 \"$1\" \"${2:-80}\" \
                   > /tmp/response && head -n 1 /tmp/response | grep -q ' 200 ' && tail -n 1 /tmp/response; }; ";

struct Fleet {
    // Dropped in this order: agents, extra namespaces, coordinator, network.
    agents: Vec<TestAgent>,
    _extra: ExtraNamespaces,
    coordinator: TestCoordinator,
    network: TestNetwork,
    _files: tempfile::TempDir,
}

/// Namespaces and links a test made beyond its test network; removed on drop.
#[derive(Default)]
struct ExtraNamespaces(Vec<String>);

impl Drop for ExtraNamespaces {
    fn drop(&mut self) {
        for netns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", netns]).status();
        }
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().unwrap();
    assert!(status.success(), "ip {args:?} failed");
}

/// A resolv.conf naming a resolver that does not exist inside the test's namespaces:
/// no forwarded query leaves them.
fn resolv_conf(dir: &std::path::Path) -> String {
    let path = dir.join("resolv.conf");
    std::fs::write(&path, "nameserver 127.0.0.9\n").unwrap();
    path.to_str().unwrap().to_owned()
}

fn agent_args<'a>(
    coordinator: &'a TestCoordinator,
    token: &'a str,
    node_ip: &'a str,
    resolv: &'a str,
) -> Vec<&'a str> {
    vec![
        "--join",
        &coordinator.url,
        "--token",
        token,
        "--network-backend=auto",
        "--node-ip",
        node_ip,
        "--resolv-conf",
        resolv,
    ]
}

/// A coordinator and `names.len()` boards on one subnet.
fn fleet(names: &[&str]) -> Fleet {
    let mut network = TestNetwork::new();
    let coordinator = TestCoordinator::start(&network.gateway(), &[]);
    let files = tempfile::tempdir().unwrap();
    let resolv = resolv_conf(files.path());
    let mut agents = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let netns = network.add_host();
        let token = coordinator.token();
        let node_ip = format!("{}.{}", network.prefix, 10 + i);
        let args = agent_args(&coordinator, &token, &node_ip, &resolv);
        agents.push(TestAgent::start_as(name, Some(&netns), &args));
    }
    let fleet = Fleet {
        agents,
        _extra: ExtraNamespaces::default(),
        coordinator,
        network,
        _files: files,
    };
    fleet.wait_ready(names.len());
    fleet
}

impl Fleet {
    fn wait_ready(&self, count: usize) {
        wait_for(
            Duration::from_secs(30),
            "every node Ready with a pod CIDR",
            || {
                let nodes = self.coordinator.json(&["get", "nodes"]);
                let ready = nodes["items"]
                    .as_array()?
                    .iter()
                    .filter(|n| n["spec"]["podCIDR"].is_string())
                    .filter(|n| {
                        n["status"]["conditions"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                    .count();
                (ready == count).then_some(())
            },
        );
    }

    fn apply(&self, yaml: &str) {
        let file = self.coordinator.state.path().join("apply.yaml");
        std::fs::write(&file, yaml).unwrap();
        self.coordinator
            .ok(&["apply", "-f", file.to_str().unwrap()]);
    }

    /// The pod's address as the coordinator shows it, once it is running.
    fn pod_ip(&self, name: &str) -> String {
        wait_for(
            Duration::from_secs(60),
            &format!("pod {name} running with an IP"),
            || {
                let pod = self.coordinator.json(&["get", "pod", name]);
                let running = pod["status"]["phase"] == "Running";
                running
                    .then(|| pod["status"]["podIP"].as_str().map(str::to_owned))
                    .flatten()
            },
        )
    }

    /// `berth exec POD -- sh -c SCRIPT` on the board the pod runs on.
    fn exec(&self, board: usize, pod: &str, script: &str) -> Option<String> {
        let out = self.agents[board].berth(&["exec", pod, "--", "sh", "-c", script]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// A web server pod pinned to `node`, answering with its name.
fn web_pod(name: &str, node: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: web}}}}\nspec:\n  \
         nodeSelector: {{kubernetes.io/hostname: {node}}}\n  containers:\n  - name: httpd\n    \
         image: busybox:1.35\n    command: [sh, -c, 'mkdir -p /www && hostname > /www/index.html \
         && exec httpd -f -p 80 -h /www']\n    ports: [{{name: http, containerPort: 80}}]\n"
    )
}

fn client_pod(name: &str, node: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeSelector: \
         {{kubernetes.io/hostname: {node}}}\n  containers:\n  - {{name: c, image: busybox:1.35, \
         command: [sleep, '3600']}}\n"
    )
}

const WEB_SERVICE: &str = "---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  \
                           selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: http}]\n";

#[test]
fn pods_on_three_boards_reach_each_other_and_one_service() {
    let fleet = fleet(&["b1", "b2", "b3"]);
    let nodes = fleet.coordinator.json(&["get", "nodes"]);
    let cidrs: BTreeSet<String> = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["spec"]["podCIDR"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(cidrs.len(), 3, "pod CIDRs shared: {cidrs:?}");

    let mut yaml = String::new();
    yaml.push_str(&web_pod("web-b2", "b2"));
    yaml.push_str(&web_pod("web-b3", "b3"));
    yaml.push_str(&client_pod("client", "b1"));
    yaml.push_str(WEB_SERVICE);
    fleet.apply(&yaml);
    let ip_b2 = fleet.pod_ip("web-b2");
    let ip_b3 = fleet.pod_ip("web-b3");
    fleet.pod_ip("client");

    // Pod to pod by address, across boards.
    for (ip, name) in [(&ip_b2, "web-b2"), (&ip_b3, "web-b3")] {
        let body = wait_for(Duration::from_secs(20), &format!("client to {ip}"), || {
            fleet.exec(0, "client", &format!("{GET} get {ip}"))
        });
        assert_eq!(body.trim(), name);
    }

    // One Service, backends on the two other boards, by name from the client's board.
    wait_for(Duration::from_secs(20), "both endpoints on b1", || {
        let endpoints = fleet.agents[0].json(&["get", "endpoints", "web"]);
        let count = endpoints["subsets"][0]["addresses"]
            .as_array()
            .map_or(0, Vec::len);
        (count == 2).then_some(())
    });
    let script =
        format!("{GET} i=0; while [ $i -lt 40 ]; do get web || echo FAILED; i=$((i+1)); done");
    let out = fleet.exec(0, "client", &script).expect("40 requests");
    let answered: BTreeSet<&str> = out.lines().map(str::trim).collect();
    assert_eq!(
        answered,
        BTreeSet::from(["web-b2", "web-b3"]),
        "requests through the Service: {out}"
    );

    // DNS on b3 answers for a Service made while b3 was cut off, soon after it is back.
    fleet.apply(&client_pod("client3", "b3"));
    fleet.pod_ip("client3");
    fleet.network.set_link(2, false);
    fleet.apply(
        "apiVersion: v1\nkind: Service\nmetadata: {name: late}\nspec:\n  selector: {app: web}\n  \
         ports: [{port: 8080, targetPort: 80}]\n",
    );
    let cluster_ip = fleet.coordinator.json(&["get", "service", "late"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_owned();
    let healed = Instant::now();
    fleet.network.set_link(2, true);
    let lookup = wait_for(Duration::from_secs(10), "b3 to resolve late", || {
        fleet
            .exec(2, "client3", "nslookup late.default.svc.cluster.local")
            .filter(|out| out.contains(&cluster_ip))
    });
    eprintln!(
        "b3 resolved a Service made during its partition {:?} after healing: {}",
        healed.elapsed(),
        lookup.lines().last().unwrap_or("")
    );
}

/// Two boards on different subnets, joined by a router namespace: pod traffic between
/// them goes through VXLAN.
#[test]
fn boards_on_two_subnets_are_joined_by_vxlan() {
    let mut network = TestNetwork::new();
    let coordinator = TestCoordinator::start(&network.gateway(), &[]);
    let files = tempfile::tempdir().unwrap();
    let resolv = resolv_conf(files.path());
    let near = network.add_host();
    let router = network.add_host();
    let near_ip = format!("{}.10", network.prefix);
    let router_ip = format!("{}.11", network.prefix);
    // The far subnet exists only between the router and the far board.
    let mut extra = ExtraNamespaces::default();
    let far = format!("{router}-far");
    ip(&["netns", "add", &far]);
    extra.0.push(far.clone());
    ip(&[
        "-n", &router, "link", "add", "far0", "type", "veth", "peer", "name", "up0", "netns", &far,
    ]);
    ip(&[
        "-n",
        &router,
        "addr",
        "add",
        "192.168.250.1/24",
        "dev",
        "far0",
    ]);
    ip(&["-n", &router, "link", "set", "far0", "up"]);
    ip(&["-n", &far, "addr", "add", "192.168.250.10/24", "dev", "up0"]);
    ip(&["-n", &far, "link", "set", "up0", "up"]);
    ip(&["-n", &far, "link", "set", "lo", "up"]);
    ip(&[
        "-n",
        &far,
        "route",
        "add",
        "default",
        "via",
        "192.168.250.1",
    ]);
    ip(&[
        "-n",
        &near,
        "route",
        "add",
        "192.168.250.0/24",
        "via",
        &router_ip,
    ]);
    let forward = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{router}"))
        .args(["--", "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        .status()
        .unwrap();
    assert!(forward.success());
    // The coordinator (on the test bridge, in the machine's own namespace) has no route
    // to the far subnet: the router hides the far board behind its own address for it.
    let rules = format!(
        "table ip router {{\n chain post {{\n  type nat hook postrouting priority 100;\n  \
         ip daddr {} masquerade\n }}\n}}\n",
        network.gateway()
    );
    let mut nft = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{router}"))
        .args(["--", "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut nft.stdin.take().unwrap(), rules.as_bytes()).unwrap();
    assert!(nft.wait().unwrap().success(), "nft in the router");

    let token = coordinator.token();
    let near_agent = TestAgent::start_as(
        "near",
        Some(&near),
        &agent_args(&coordinator, &token, &near_ip, &resolv),
    );
    let token = coordinator.token();
    let far_agent = TestAgent::start_as(
        "far",
        Some(&far),
        &agent_args(&coordinator, &token, "192.168.250.10", &resolv),
    );
    let fleet = Fleet {
        agents: vec![near_agent, far_agent],
        _extra: extra,
        coordinator,
        network,
        _files: files,
    };
    fleet.wait_ready(2);

    let mut yaml = String::new();
    yaml.push_str(&web_pod("web-far", "far"));
    yaml.push_str(&client_pod("client", "near"));
    yaml.push_str(WEB_SERVICE);
    fleet.apply(&yaml);
    let far_ip = fleet.pod_ip("web-far");
    fleet.pod_ip("client");

    let packets = |netns: &str| -> u64 {
        let out = Command::new("ip")
            .args(["-n", netns, "-s", "-j", "link", "show", "berth.1"])
            .output()
            .unwrap();
        assert!(out.status.success(), "no berth.1 in {netns}");
        let links: Value = serde_json::from_slice(&out.stdout).unwrap();
        let stats = &links[0]["stats64"];
        stats["rx"]["packets"].as_u64().unwrap_or(0) + stats["tx"]["packets"].as_u64().unwrap_or(0)
    };
    let before = packets(&near);
    let body = wait_for(
        Duration::from_secs(20),
        "near client to the far pod",
        || fleet.exec(0, "client", &format!("{GET} get {far_ip}")),
    );
    assert_eq!(body.trim(), "web-far");
    let body = wait_for(
        Duration::from_secs(20),
        "the service across subnets",
        || fleet.exec(0, "client", &format!("{GET} get web")),
    );
    assert_eq!(body.trim(), "web-far");
    assert!(packets(&near) > before, "no traffic went through berth.1");
    assert!(
        packets(&far) > 0,
        "no traffic went through the far board's berth.1"
    );
    // Keep the fields in use until here: the agents stop before the namespaces go.
    drop(fleet);
}
