//! The pod network of one board (issue 13): pod addresses on the `berth0` bridge,
//! Services load-balanced by the kernel, the cluster DNS, egress NAT, hostPort and
//! NodePort, and an agent killed with its pods on the network.
//!
//! Every agent here runs in a network namespace of its own test network
//! (tests/common/fleet.rs), with a second namespace on that network as "the outside
//! world": a web server, and the DNS server the agent forwards to (`--resolv-conf` names
//! it), so no test traffic reaches any other address.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;
#[allow(dead_code)]
#[path = "common/fleet.rs"]
mod fleet_support;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{die_with_parent, wait_for, TestAgent};
use fleet_support::TestNetwork;
use serde_json::Value;

/// A board on its own test network, with an outside host beside it.
struct Board {
    // Dropped first: the agent and its pods, then the servers, then the namespaces.
    agent: TestAgent,
    servers: Vec<Child>,
    /// The outside host's address.
    outside_ip: String,
    outside: String,
    netns: String,
    board_ip: String,
    _files: tempfile::TempDir,
    _network: TestNetwork,
}

impl Drop for Board {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

impl Board {
    fn start() -> Board {
        Board::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Board {
        let mut network = TestNetwork::new();
        let netns = network.add_host();
        let outside = network.add_host();
        let board_ip = format!("{}.10", network.prefix);
        let outside_ip = format!("{}.11", network.prefix);
        let files = tempfile::tempdir().unwrap();
        // The outside host answers DNS for outside.test and serves HTTP on 8080.
        let resolv = files.path().join("resolv.conf");
        std::fs::write(&resolv, format!("nameserver {outside_ip}\n")).unwrap();
        let www = files.path().join("www");
        std::fs::create_dir(&www).unwrap();
        std::fs::write(www.join("index.html"), "outside\n").unwrap();
        let in_outside = |program: &str| {
            let mut command = Command::new("nsenter");
            command
                .arg(format!("--net=/run/netns/{outside}"))
                .arg("--")
                .arg(program);
            command
        };
        let mut servers = Vec::new();
        servers.push(
            die_with_parent(in_outside("dnsmasq").args([
                "--no-daemon",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                &format!("--listen-address={outside_ip}"),
                &format!("--address=/outside.test/{outside_ip}"),
                "--user=root",
                "--pid-file=",
            ]))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq (Debian package dnsmasq-base)"),
        );
        servers.push(
            die_with_parent(in_outside("busybox").args([
                "httpd",
                "-f",
                "-p",
                &format!("{outside_ip}:8080"),
                "-h",
                www.to_str().unwrap(),
            ]))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start busybox httpd"),
        );
        let mut args = vec![
            "--network-backend=auto",
            "--resolv-conf",
            resolv.to_str().unwrap(),
            "--node-ip",
            &board_ip,
        ];
        args.extend_from_slice(extra);
        let agent = TestAgent::start_as("board", Some(&netns), &args);
        let board = Board {
            agent,
            servers,
            outside_ip,
            outside,
            netns,
            board_ip,
            _files: files,
            _network: network,
        };
        // The outside web server is up before any test relies on it.
        wait_for(Duration::from_secs(10), "the outside web server", || {
            board
                .curl_from_outside(&format!("http://{}:8080/", board.outside_ip))
                .filter(|body| body == "outside\n")
        });
        board
    }

    /// `curl` run in the outside host's namespace; the body when it answered 2xx.
    fn curl_from_outside(&self, url: &str) -> Option<String> {
        let out = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.outside))
            .args(["--", "curl", "-sf", "--max-time", "2", url])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `args` in the board's namespace (not in a pod); its stdout when it succeeded.
    fn on_board(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.netns))
            .arg("--")
            .args(args)
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `berth exec POD -- sh -c SCRIPT`: its stdout when it exited 0.
    fn exec(&self, pod: &str, script: &str) -> Option<String> {
        let out = self.agent.berth(&["exec", pod, "--", "sh", "-c", script]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn apply(&self, yaml: &str) {
        let out = self.agent.apply_yaml(yaml);
        assert!(
            out.status.success(),
            "apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pod_ip(&self, name: &str) -> String {
        wait_for(Duration::from_secs(20), &format!("pod {name}'s IP"), || {
            let pod = self.agent.pod(name);
            pod["status"]["podIP"].as_str().map(str::to_owned)
        })
    }

    /// The ready addresses of Endpoints `name`.
    fn endpoint_ips(&self, name: &str) -> Vec<String> {
        let out = self.agent.berth(&["get", "endpoints", name, "-o", "json"]);
        let endpoints: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let mut ips: Vec<String> = endpoints["subsets"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|subset| subset["addresses"].as_array().cloned().unwrap_or_default())
            .filter_map(|address| address["ip"].as_str().map(str::to_owned))
            .collect();
        ips.sort();
        ips
    }

    fn names_of_pods(&self, selector: &str) -> Vec<String> {
        let list = self.agent.json(&["get", "pods", "-l", selector]);
        let mut names: Vec<String> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|pod| pod["metadata"]["name"].as_str().map(str::to_owned))
            .collect();
        names.sort();
        names
    }
}

/// A shell function for HTTP GETs from inside pods: `get HOST [PORT]` prints the (one
/// line) body of a 200 answer and fails otherwise. Debian's static busybox 1.35 `wget`
/// segfaults, even on a bare address, so the request goes through `nc` as HTTP/1.0.
const GET: &str = "get() { printf 'GET / HTTP/1.0\\r\\nHost: %s\\r\\n\\r\\n' \"$1\" | nc -w 2 \"$1\" \"${2:-80}\" \
                   > /tmp/response && head -n 1 /tmp/response | grep -q ' 200 ' && tail -n 1 /tmp/response; }; ";

/// Web servers that answer with their pod's name, ready while /tmp/ready exists.
const WEB: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: httpd
        image: busybox:1.35
        command: [sh, -c, 'mkdir -p /www && hostname > /www/index.html && touch /tmp/ready && exec httpd -f -p 80 -h /www']
        ports: [{name: http, containerPort: 80}]
        readinessProbe:
          exec: {command: [test, -f, /tmp/ready]}
          periodSeconds: 1
          failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers:
  - {name: client, image: busybox:1.35, command: [sleep, '3600']}
";

#[test]
fn a_service_spreads_requests_over_ready_pods_found_by_name() {
    let board = Board::start();
    board.apply(WEB);
    let pods = wait_for(Duration::from_secs(30), "3 web endpoints", || {
        let pods = board.names_of_pods("app=web");
        (pods.len() == 3 && board.endpoint_ips("web").len() == 3).then_some(pods)
    });
    let mut ips: Vec<String> = pods.iter().map(|pod| board.pod_ip(pod)).collect();
    ips.sort();
    assert_eq!(board.endpoint_ips("web"), ips);
    for ip in &ips {
        assert!(
            ip.starts_with("10.42.0."),
            "pod IP {ip} outside 10.42.0.0/24"
        );
    }
    let wide = board.agent.ok(&["get", "pods", "-o", "wide"]);
    assert!(wide.lines().next().unwrap().contains("IP"), "{wide}");
    assert!(wide.contains(&ips[0]), "{wide}");
    board.agent.wait_running("client");

    // By the short name (search list) and by the full name.
    for host in ["web", "web.default.svc.cluster.local"] {
        let body = wait_for(
            Duration::from_secs(10),
            &format!("GET http://{host}/"),
            || board.exec("client", &format!("{GET} get {host}")),
        );
        assert!(
            pods.contains(&body.trim().to_owned()),
            "{host} answered {body:?}"
        );
    }

    // 300 requests reach all three pods.
    let script =
        format!("{GET} i=0; while [ $i -lt 300 ]; do get web || echo FAILED; i=$((i+1)); done");
    let out = board.exec("client", &script).expect("300 requests");
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for line in out.lines() {
        *counts.entry(line.trim().to_owned()).or_default() += 1;
    }
    assert!(!counts.contains_key("FAILED"), "{counts:?}");
    assert_eq!(
        counts.keys().cloned().collect::<Vec<_>>(),
        pods,
        "{counts:?}"
    );

    // A pod that stops being ready leaves the endpoints within a probe period or so,
    // and requests keep succeeding from the others.
    let dropped = &pods[0];
    board
        .exec(dropped, "rm /tmp/ready")
        .expect("make a pod unready");
    wait_for(
        Duration::from_secs(3),
        "the unready pod out of the endpoints",
        || (board.endpoint_ips("web").len() == 2).then_some(()),
    );
    let script =
        format!("{GET} i=0; while [ $i -lt 60 ]; do get web || echo FAILED; i=$((i+1)); done");
    let out = board.exec("client", &script).expect("60 requests");
    assert!(!out.contains("FAILED"), "{out}");
    assert!(
        !out.contains(dropped.as_str()),
        "the unready pod was sent requests"
    );
}

const OUTSIDE: &str = "\
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  type: ExternalName
  externalName: outside.test
---
apiVersion: v1
kind: Service
metadata: {name: legacy}
spec:
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: legacy}
subsets:
- addresses: [{ip: OUTSIDE_IP}]
  ports: [{port: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: edge, labels: {app: edge}}
spec:
  containers:
  - name: httpd
    image: busybox:1.35
    command: [sh, -c, 'mkdir -p /www && echo edge > /www/index.html && exec httpd -f -p 80 -h /www']
    ports: [{containerPort: 80, hostPort: 8081}]
---
apiVersion: v1
kind: Service
metadata: {name: edge}
spec:
  type: NodePort
  selector: {app: edge}
  ports: [{port: 80, nodePort: 30080}]
";

/// A LoadBalancer Service in front of the same pod: with no load-balancer controller it
/// gets a node port of its own, as on a bare-metal cluster.
const EDGE_LOAD_BALANCER: &str = "\
apiVersion: v1
kind: Service
metadata: {name: edge-lb}
spec:
  type: LoadBalancer
  selector: {app: edge}
  ports: [{port: 80}]
";

#[test]
fn pods_reach_the_outside_and_the_outside_reaches_pods() {
    // hostPort is for privileged namespaces only (Pod Security baseline forbids it).
    let board = Board::start_with(&["--pod-security-level=privileged"]);
    board.apply(&OUTSIDE.replace("OUTSIDE_IP", &board.outside_ip));
    board.apply(WEB.split("---").last().unwrap());
    board.agent.wait_running("client");
    board.agent.wait_running("edge");

    // Egress through NAT, to the outside host's address.
    let body = wait_for(Duration::from_secs(10), "egress to the outside", || {
        board.exec("client", &format!("{GET} get {} 8080", board.outside_ip))
    });
    assert_eq!(body, "outside\n");

    // A Service without a selector, with the Endpoints given by hand.
    let body = wait_for(Duration::from_secs(10), "the selector-less service", || {
        board.exec("client", &format!("{GET} get legacy"))
    });
    assert_eq!(body, "outside\n");

    // hostPort and NodePort, on the board's address, from the outside host.
    for port in [8081, 30080] {
        let url = format!("http://{}:{port}/", board.board_ip);
        let body = wait_for(Duration::from_secs(10), &format!("GET {url}"), || {
            board.curl_from_outside(&url)
        });
        assert_eq!(body, "edge\n", "{url}");
    }
    let services = board.agent.ok(&["get", "services"]);
    assert!(services.contains("80:30080/TCP"), "{services}");
    load_balancer_service_is_reached_on_its_node_port(&board);

    // ExternalName: a CNAME, and the addresses of its target (the cluster DNS asks the
    // upstream for them, as CoreDNS does).
    let lookup = wait_for(Duration::from_secs(10), "nslookup db", || {
        board.exec("client", "nslookup db.default.svc.cluster.local")
    });
    assert!(lookup.contains("outside.test"), "{lookup}");
    assert!(lookup.contains(&board.outside_ip), "{lookup}");
    let body = board
        .exec("client", &format!("{GET} get db 8080"))
        .expect("GET through the ExternalName");
    assert_eq!(body, "outside\n");
}

/// Applies [`EDGE_LOAD_BALANCER`]: the apply warns that it stays pending, `get services`
/// shows it so, and the outside host reaches the pod on its allocated node port.
fn load_balancer_service_is_reached_on_its_node_port(board: &Board) {
    let out = board.agent.apply_yaml(EDGE_LOAD_BALANCER);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "apply failed: {stderr}");
    assert!(
        stderr.contains("Warning: spec.type: berth has no load-balancer controller"),
        "{stderr}"
    );
    let service = board.agent.json(&["get", "service", "edge-lb"]);
    let node_port = service["spec"]["ports"][0]["nodePort"]
        .as_i64()
        .expect("an allocated node port");
    let url = format!("http://{}:{node_port}/", board.board_ip);
    let body = wait_for(Duration::from_secs(10), &format!("GET {url}"), || {
        board.curl_from_outside(&url)
    });
    assert_eq!(body, "edge\n", "{url}");
    let services = board.agent.ok(&["get", "services"]);
    let row: Vec<&str> = services
        .lines()
        .find(|line| line.starts_with("edge-lb "))
        .unwrap_or_else(|| panic!("no edge-lb in\n{services}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[1], "LoadBalancer", "{services}");
    assert_eq!(row[3], "<pending>", "{services}");
    assert_eq!(row[4], format!("80:{node_port}/TCP"), "{services}");
}

#[test]
fn a_killed_agent_keeps_pod_addresses_and_deleting_pods_leaves_nothing() {
    let mut board = Board::start();
    let mut yaml = String::new();
    for i in 0..5 {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}}}\nspec:\n  containers:\n  \
             - {{name: c, image: busybox:1.35, command: [sh, -c, 'mkdir -p /www && echo p{i} > \
             /www/index.html && exec httpd -f -p 80 -h /www']}}\n"
        ));
    }
    board.apply(&yaml);
    let names: Vec<String> = (0..5).map(|i| format!("p{i}")).collect();
    let before: Vec<String> = names
        .iter()
        .map(|name| {
            board.agent.wait_running(name);
            board.pod_ip(name)
        })
        .collect();
    let mut unique = before.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 5, "an address handed out twice: {before:?}");
    let pids: Vec<Value> = names
        .iter()
        .map(|n| board.agent.pod(n)["status"]["containerStatuses"][0]["containerID"].clone())
        .collect();

    board.agent.kill9();
    board.agent.spawn();
    let after: Vec<String> = names.iter().map(|name| board.pod_ip(name)).collect();
    assert_eq!(after, before, "addresses changed across an agent restart");
    let same: Vec<Value> = names
        .iter()
        .map(|n| board.agent.pod(n)["status"]["containerStatuses"][0]["containerID"].clone())
        .collect();
    assert_eq!(same, pids, "containers were restarted");
    // Pod to pod by address, still.
    let body = wait_for(Duration::from_secs(10), "p0 to p4", || {
        board.exec("p0", &format!("{GET} get {}", before[4]))
    });
    assert_eq!(body, "p4\n");

    board.agent.ok(&["delete", "pods", "--all"]);
    wait_for(Duration::from_secs(30), "the pods gone", || {
        board.agent.pods().is_empty().then_some(())
    });
    let links = board.on_board(&["ip", "-o", "link"]).unwrap();
    assert!(!links.contains("bveth"), "pod links left behind:\n{links}");
    let addresses = board
        .on_board(&["ip", "-o", "-4", "addr", "show", "dev", "berth0"])
        .unwrap();
    assert_eq!(addresses.lines().count(), 1, "{addresses}");
    let rules = board
        .on_board(&["nft", "list", "table", "ip", "berth"])
        .unwrap();
    for ip in &before {
        assert!(
            !rules.contains(ip.as_str()),
            "a rule for {ip} left:\n{rules}"
        );
    }

    // Uninstall: nothing of the pod network stays.
    board.agent.terminate();
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", board.netns))
        .args(["--", common::BERTH, "agent", "--cleanup-network"])
        .args(["--state-dir", board.agent.state.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let links = board.on_board(&["ip", "-o", "link"]).unwrap();
    assert!(!links.contains("berth0"), "{links}");
    assert!(board
        .on_board(&["nft", "list", "table", "ip", "berth"])
        .is_none());
}

#[test]
fn the_cluster_dns_survives_garbage_and_still_answers() {
    let board = Board::start();
    board.apply(WEB.split("---").nth(1).unwrap());
    board.apply(WEB.split("---").last().unwrap());
    board.agent.wait_running("client");
    // From the board's namespace: truncated, oversized and random datagrams.
    send_garbage(&board.netns, "10.42.0.1:53");
    let lookup = wait_for(Duration::from_secs(10), "nslookup web", || {
        board.exec("client", "nslookup web.default.svc.cluster.local")
    });
    let cluster_ip = board.agent.json(&["get", "service", "web"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(lookup.contains(&cluster_ip), "{lookup}");
    let resolv = board.exec("client", "cat /etc/resolv.conf").unwrap();
    assert!(resolv.contains("nameserver 10.42.0.1"), "{resolv}");
    assert!(
        resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{resolv}"
    );
    assert!(resolv.contains("ndots:5"), "{resolv}");
    let hosts = board.exec("client", "cat /etc/hosts").unwrap();
    let ip = board.pod_ip("client");
    assert!(
        hosts
            .lines()
            .any(|l| l.starts_with(&ip) && l.contains("client")),
        "{hosts}"
    );
}

/// Sends truncated, oversized and random datagrams to `server` from inside `netns`.
fn send_garbage(netns: &str, server: &str) {
    let path = format!("/run/netns/{netns}");
    let server = server.to_owned();
    std::thread::spawn(move || {
        use std::os::fd::AsFd;
        let namespace = std::fs::File::open(&path).unwrap();
        // A fresh thread: its namespace ends with it.
        nix::sched::setns(namespace.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut random = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect()
        };
        for n in [0, 1, 5, 12, 13, 100, 512, 4096, 65000] {
            let _ = socket.send_to(&random(n), &server);
        }
        for i in 0..300 {
            let _ = socket.send_to(&random(i % 200), &server);
        }
        // A query whose name runs past the end of the packet.
        let _ = socket.send_to(
            b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03web",
            &server,
        );
    })
    .join()
    .unwrap();
}
