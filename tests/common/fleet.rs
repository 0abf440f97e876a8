//! Several "boards" on one machine: a test bridge, one network namespace per agent with
//! a veth into the bridge, and a coordinator listening on the bridge address. Everything
//! is removed on drop, also when a test fails.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;

use crate::common::{die_with_parent, listens_on, wait_for, BERTH};

static NETWORKS: AtomicUsize = AtomicUsize::new(0);

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {args:?} failed");
}

/// A bridge `btb<id>` with 10.<octet>.0.1/24 (a free octet) and the namespaces hanging
/// off it.
///
/// The bridge gets a fixed MAC address of its own. Left to the kernel, a bridge takes
/// the lowest MAC among its ports, so a host joining with a lower one changes the
/// gateway's MAC under the hosts already there. A host whose ARP entry still names the
/// old MAC, another port's, then has every frame to the gateway dropped (the bridge
/// passes it up, and the IP stack discards it as addressed to another host) until the
/// entry expires, 15 to 45 s and more; its kept connection to the coordinator hangs
/// meanwhile, far past a short node-monitor grace period.
pub struct TestNetwork {
    pub bridge: String,
    pub prefix: String,
    id: String,
    hosts: Vec<String>,
}

impl TestNetwork {
    pub fn new() -> TestNetwork {
        // Unique per process and per network, short enough for 15-character names.
        let n = NETWORKS.fetch_add(1, Ordering::SeqCst);
        let id = format!("{:x}{n}", std::process::id() % 0xfff);
        let mut network = TestNetwork {
            bridge: format!("btb{id}"),
            prefix: String::new(),
            id,
            hosts: Vec::new(),
        };
        // A run killed before its drop (SIGKILL, CI timeout) may have left this
        // process's names behind; they are this test's own, so take them back.
        network.remove_leftovers();
        // Locally administered, and distinct per network like the names.
        let pid = std::process::id();
        let address = format!(
            "02:62:74:{:02x}:{:02x}:{:02x}",
            (pid >> 8) & 0xff,
            pid & 0xff,
            n & 0xff
        );
        ip(&[
            "link",
            "add",
            &network.bridge,
            "address",
            &address,
            "type",
            "bridge",
        ]);
        network.prefix = network.claim_subnet(std::process::id() as usize * 7 + n);
        ip(&["link", "set", &network.bridge, "up"]);
        network
    }

    /// Puts the gateway address of a free 10.<octet>.0.0/24 on the bridge, trying octets
    /// from 100 + `seed` % 100 on; returns "10.<octet>.0". A subnet with an address on any
    /// link is taken (another test's network, or one a killed run left behind), and so
    /// is one that another process claimed at the same moment.
    fn claim_subnet(&self, seed: usize) -> String {
        // One claim at a time in this process.
        static CLAIMS: Mutex<()> = Mutex::new(());
        let _claim = CLAIMS.lock().unwrap_or_else(PoisonError::into_inner);
        let addresses = |prefix: &str| -> usize {
            let out = Command::new("ip")
                .args(["-o", "addr", "show", "to", &format!("{prefix}.0/24")])
                .output()
                .expect("run ip");
            assert!(out.status.success(), "ip addr show failed");
            String::from_utf8_lossy(&out.stdout).lines().count()
        };
        for i in 0..100 {
            let prefix = format!("10.{}.0", 100 + (seed + i) % 100);
            if addresses(&prefix) > 0 {
                continue;
            }
            let gateway = format!("{prefix}.1/24");
            ip(&["addr", "add", &gateway, "dev", &self.bridge]);
            if addresses(&prefix) == 1 {
                return prefix;
            }
            ip(&["addr", "del", &gateway, "dev", &self.bridge]);
        }
        panic!("no free 10.x.0.0/24 (x in 100..200) for a test network");
    }

    pub fn gateway(&self) -> String {
        format!("{}.1", self.prefix)
    }

    /// A new namespace `btn<id>-<i>` at address `.<10+i>`; returns its name.
    pub fn add_host(&mut self) -> String {
        let i = self.hosts.len();
        assert!(i < MAX_HOSTS, "at most {MAX_HOSTS} hosts per test network");
        let netns = format!("btn{}-{i}", self.id);
        let outside = self.host_link(i);
        let inside = format!("bti{}{i}", self.id);
        ip(&["netns", "add", &netns]);
        self.hosts.push(netns.clone());
        ip(&[
            "link", "add", &outside, "type", "veth", "peer", "name", &inside,
        ]);
        ip(&["link", "set", &outside, "master", &self.bridge, "up"]);
        ip(&["link", "set", &inside, "netns", &netns]);
        let exec = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &netns, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        exec(&[
            "addr",
            "add",
            &format!("{}.{}/24", self.prefix, 10 + i),
            "dev",
            &inside,
        ]);
        exec(&["link", "set", &inside, "up"]);
        exec(&["link", "set", "lo", "up"]);
        exec(&["route", "add", "default", "via", &self.gateway()]);
        netns
    }

    /// Cuts (or restores) a host's link, as a pulled cable or lost uplink would.
    pub fn set_link(&self, host: usize, up: bool) {
        ip(&[
            "link",
            "set",
            &self.host_link(host),
            if up { "up" } else { "down" },
        ]);
    }

    /// The bridge side of a host's link (its port on the bridge).
    pub fn host_link(&self, host: usize) -> String {
        format!("bth{}{host}", self.id)
    }
}

impl TestNetwork {
    /// Deletes the bridge and the first hosts' links and namespaces of this network's
    /// names, whether or not they exist.
    fn remove_leftovers(&self) {
        let quiet = |args: &[&str]| {
            let _ = Command::new("ip").args(args).stderr(Stdio::null()).status();
        };
        for i in 0..MAX_HOSTS {
            quiet(&["link", "del", &self.host_link(i)]);
            quiet(&["netns", "del", &format!("btn{}-{i}", self.id)]);
        }
        quiet(&["link", "del", &self.bridge]);
    }
}

/// Hosts per network that `remove_leftovers` looks for; more are refused.
const MAX_HOSTS: usize = 8;

impl Drop for TestNetwork {
    fn drop(&mut self) {
        self.remove_leftovers();
    }
}

/// A lone board on a test network of its own, with the pod network, so the cluster DNS
/// answers. Nothing here resolves outside names: the upstream it is given is the
/// gateway, never asked.
pub struct NetworkedBoard {
    // Dropped first: the agent and its pods, then the namespace.
    pub agent: crate::common::TestAgent,
    pub netns: String,
    _files: tempfile::TempDir,
    _network: TestNetwork,
}

impl NetworkedBoard {
    pub fn start() -> NetworkedBoard {
        let mut network = TestNetwork::new();
        let netns = network.add_host();
        let board_ip = format!("{}.10", network.prefix);
        let files = tempfile::tempdir().expect("tempdir");
        let resolv = files.path().join("resolv.conf");
        std::fs::write(&resolv, format!("nameserver {}\n", network.gateway()))
            .expect("write resolv.conf");
        let args = [
            "--network-backend=auto",
            "--resolv-conf",
            resolv.to_str().expect("utf-8 path"),
            "--node-ip",
            &board_ip,
        ];
        let agent = crate::common::TestAgent::start_as("board", Some(&netns), &args);
        NetworkedBoard {
            agent,
            netns,
            _files: files,
            _network: network,
        }
    }
}

/// A coordinator process with its own state dir; killed on drop.
pub struct TestCoordinator {
    pub state: tempfile::TempDir,
    pub url: String,
    pub listen: String,
    args: Vec<String>,
    child: Option<Child>,
}

impl TestCoordinator {
    pub fn start(listen_ip: &str, extra: &[&str]) -> TestCoordinator {
        // The free port may be taken by someone else before the coordinator binds it;
        // the coordinator then exits, and another port is tried, in a new state dir
        // (the admin config written at the first start names the port).
        let mut last_log = String::new();
        for _ in 0..5 {
            let state = tempfile::Builder::new()
                .prefix("berth-coord")
                .tempdir()
                .expect("tempdir");
            let port = std::net::TcpListener::bind(format!("{listen_ip}:0"))
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("free port");
            let listen = format!("{listen_ip}:{port}");
            let mut coordinator = TestCoordinator {
                state,
                url: format!("https://{listen}"),
                listen,
                args: extra.iter().map(|s| s.to_string()).collect(),
                child: None,
            };
            if coordinator.spawn() {
                return coordinator;
            }
            last_log = coordinator.log_tail();
        }
        panic!("the coordinator exited at start five times; the last log:\n{last_log}");
    }

    /// Starts the coordinator and waits for its port; false if it exited instead.
    pub fn spawn(&mut self) -> bool {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.state.path().join("coordinator.log"))
            .expect("coordinator log");
        let mut child = die_with_parent(&mut Command::new(BERTH))
            .args(["coordinator", "--listen", &self.listen, "--state-dir"])
            .arg(self.state.path())
            .args(&self.args)
            .env("RUST_LOG", "debug,rustls=info,ureq=info,ureq_proto=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the coordinator");
        let port = self
            .listen
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .expect("listen address with a port");
        let serving = wait_for(Duration::from_secs(10), "the coordinator port", || {
            if child.try_wait().ok().flatten().is_some() {
                return Some(false);
            }
            listens_on(child.id(), port).then_some(true)
        });
        self.child = Some(child);
        serving
    }

    /// The extra arguments of the next [`TestCoordinator::spawn`].
    pub fn set_args(&mut self, args: &[&str]) {
        self.args = args.iter().map(|s| s.to_string()).collect();
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn config(&self) -> PathBuf {
        self.state.path().join("admin.config")
    }

    // Only some test binaries look at the process itself.
    #[allow(dead_code)]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        Command::new(BERTH)
            .arg("--config")
            .arg(self.config())
            .args(args)
            .output()
            .expect("run berth")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed: {}\n--- coordinator log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).expect("JSON output")
    }

    pub fn token(&self) -> String {
        self.ok(&["token", "create"]).trim().to_owned()
    }

    pub fn pods(&self) -> Vec<Value> {
        self.json(&["get", "pods"])["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.state.path().join("coordinator.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for TestCoordinator {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- coordinator log (tail):\n{}", self.log_tail());
        }
    }
}

pub const GENERIC_BOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/board-configs/generic-x86_64.yaml"
);

/// A coordinator and boards joined to it, each agent in its own network namespace.
pub struct Fleet {
    // Dropped in this order: agents, coordinator, network.
    pub agents: Vec<crate::common::TestAgent>,
    pub coordinator: TestCoordinator,
    pub network: TestNetwork,
}

impl Fleet {
    /// One board per (name, extra node labels), all joined and Ready.
    pub fn start(boards: &[(&str, &str)], coordinator_args: &[&str]) -> Fleet {
        let boards: Vec<(&str, &str, &[&str])> = boards
            .iter()
            .map(|(name, labels)| (*name, *labels, &[][..]))
            .collect();
        Fleet::start_with(&boards, coordinator_args)
    }

    /// One board per (name, extra node labels, more agent flags), all joined and Ready.
    pub fn start_with(boards: &[(&str, &str, &[&str])], coordinator_args: &[&str]) -> Fleet {
        let mut network = TestNetwork::new();
        let coordinator = TestCoordinator::start(&network.gateway(), coordinator_args);
        let mut agents = Vec::new();
        for (name, labels, extra) in boards {
            let netns = network.add_host();
            let token = coordinator.token();
            let mut args = vec![
                "--join",
                &coordinator.url,
                "--token",
                &token,
                "--board",
                GENERIC_BOARD,
            ];
            if !labels.is_empty() {
                args.extend(["--node-labels", labels]);
            }
            args.extend(extra.iter().copied());
            agents.push(crate::common::TestAgent::start_as(
                name,
                Some(&netns),
                &args,
            ));
        }
        wait_for(Duration::from_secs(30), "every node Ready", || {
            let nodes = coordinator.json(&["get", "nodes"]);
            let ready = nodes["items"]
                .as_array()?
                .iter()
                .filter(|n| {
                    n["status"]["conditions"].as_array().is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                })
                .count();
            (ready == boards.len()).then_some(())
        });
        Fleet {
            agents,
            coordinator,
            network,
        }
    }
}
