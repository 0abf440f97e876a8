//! `scripts/bench`, issue 13: the pod network's numbers, appended to docs/benchmarks.md.
//! Not a test: nothing here asserts a time.
//!
//! Everything runs in network namespaces this bench makes and removes: a "board"
//! namespace with two agents (release binary), one without a pod network and one with
//! it, side by side in the same run. Measures:
//! - HTTP/1.0 GETs to a busybox httpd pod, directly to the pod IP and through its
//!   ClusterIP Service, from a client pod and from the board ([`http`]).
//! - apply → container running → port reachable, without and with the pod network; and
//!   `net::link::attach_pod` alone on fresh namespaces → first TCP connect.
//! - cluster DNS queries per second for a Service name beside Debian's dnsmasq answering
//!   the same name from a local record, and the agent's RSS around the load ([`dns`]).
//! - agent RSS with 10 pods (and, networked, 10 Services) as docs/benchmarks.md measures
//!   it for issue 7.
//! - issue 14: a rolling update of 3 HTTP replicas behind a Service, apply → rolled out,
//!   with requests through the Service all along ([`rollout`]).

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "network/dns.rs"]
mod dns;
#[path = "network/http.rs"]
mod http;
#[path = "network/rollout.rs"]
mod rollout;

use berth::net::link::{attach_pod, ensure_bridge, Bridge, PodLink};
use common::{cgroup_dirs, die_with_parent, mounts_under, remove_cgroups};
use dns::{dns, report_dns};
use http::{http, report_http};
use nix::sched::{setns, CloneFlags};
use rollout::{report_rollouts, rollouts};
use simple_dns::rdata::RData;
use simple_dns::{Name, Packet, PacketFlag, Question, CLASS, RCODE, TYPE};

const START_RUNS: usize = 30;
const IDLE_SECONDS: u64 = 60;

/// The board's own address, on a veth pair inside the board namespace (no traffic
/// leaves it); dnsmasq listens here.
const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 254, 0, 10);
const CLUSTER_IP: Ipv4Addr = Ipv4Addr::new(10, 43, 0, 5);
const SERVICE_NAME: &str = "web.default.svc.cluster.local";
/// The agent's cluster DNS: the bridge address of the first /24 of 10.42.0.0/16.
const AGENT_DNS: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 42, 0, 1), 53);

fn main() {
    // cargo passes `--bench` to harness-less benches; only a path counts.
    let out = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let idle = std::env::var("BENCH_IDLE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(IDLE_SECONDS);
    let berth = PathBuf::from(env!("CARGO_BIN_EXE_berth"));
    // target/demo-image, as scripts/bench builds it (built here when missing).
    let image = common::demo_image();
    let began = Instant::now();

    // Dropped last: the namespaces outlive the agents in them.
    let id = std::process::id();
    let board = Netns::new(&format!("bnb{id}"));
    board.ip("link add bnb0 type veth peer name bnb1");
    board.ip(&format!("addr add {NODE_IP}/24 dev bnb0"));
    board.ip("link set bnb0 up");
    board.ip("link set bnb1 up");
    // A default route, as a board has: the ClusterIP is routed before it is DNATed.
    board.ip("route add default via 10.254.0.1 dev bnb0");
    let files = tempfile::Builder::new()
        .prefix("berth-netbench")
        .tempdir()
        .unwrap();
    let resolv = files.path().join("resolv.conf");
    std::fs::write(&resolv, format!("nameserver {NODE_IP}\n")).unwrap();

    let plain = Agent::start(&berth, &board, "plain", &["--network-backend=none"], image);
    let node_ip = NODE_IP.to_string();
    let net_args = [
        "--network-backend=auto",
        "--node-ip",
        &node_ip,
        "--resolv-conf",
        resolv.to_str().unwrap(),
    ];
    let net = Agent::start(&berth, &board, "net", &net_args, image);

    // For working on one set of figures alone (not used by scripts/bench).
    match std::env::var("BENCH_ONLY").as_deref() {
        Ok("rollout") => {
            print!("{}", report_rollouts(&rollouts(&net, &board)));
            return;
        }
        Ok("footprint") => {
            print!("{}", report_footprint(&footprint(&plain, &net, idle), idle));
            return;
        }
        _ => {}
    }
    let (start_plain, start_net) = pod_start(&plain, &net, &board);
    let attach = attach_alone(id);
    let http = http(&net, &board);
    let dns = dns(&net, &board);
    let rollouts = rollouts(&net, &board);
    drop(net);
    drop(plain);
    // The footprint of fresh agents, as issue 7 measures it: not of ones that just served
    // a DNS flood and thousands of connections.
    let plain = Agent::start(&berth, &board, "plain2", &["--network-backend=none"], image);
    let net = Agent::start(&berth, &board, "net2", &net_args, image);
    let footprints = footprint(&plain, &net, idle);
    drop(net);
    drop(plain);
    drop(board);

    let report = format!(
        "\n## Pod network (issue 13)\n\n\
Produced by `cargo bench --bench network` (run by `scripts/bench`) on {}, in {:.0} s. Two agents (release \
binary) run in a network namespace the bench makes (\"the board\"), one with `--network-backend=none` and one \
with the pod network (`--network-backend=auto`); every client runs in that namespace too, so no traffic leaves \
it. Nothing here is asserted by tests.\n\n{}{}{}{}{}",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        began.elapsed().as_secs_f64(),
        report_http(&http),
        report_start(&start_plain, &start_net, &attach),
        report_dns(&dns),
        report_footprint(&footprints, idle),
        report_rollouts(&rollouts),
    );
    print!("{report}");
    if let Some(path) = out {
        let mut existing = std::fs::read_to_string(&path).unwrap_or_default();
        existing.push_str(&report);
        std::fs::write(&path, existing).expect("write the report");
    }
}

// ---------------------------------------------------------------------------------------
// Namespaces and agents

/// A named network namespace with loopback up; deleted on drop, also on a panic.
struct Netns {
    name: String,
}

impl Netns {
    fn new(name: &str) -> Netns {
        let _ = Command::new("ip")
            .args(["netns", "del", name])
            .stderr(Stdio::null())
            .status();
        run("ip", &["netns", "add", name]);
        let netns = Netns {
            name: name.to_owned(),
        };
        netns.ip("link set lo up");
        netns
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// `ip -n NAME COMMAND…`, the command split at blanks.
    fn ip(&self, command: &str) {
        let mut all = vec!["-n", &self.name];
        all.extend(command.split_whitespace());
        run("ip", &all);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().expect(program);
    assert!(status.success(), "{program} {args:?} failed");
}

/// Runs `work` on a thread inside the network namespace at `netns`; the caller's thread
/// stays where it is.
fn in_ns<T: Send>(netns: &Path, work: impl FnOnce() -> T + Send) -> T {
    let namespace = File::open(netns).unwrap_or_else(|e| panic!("{}: {e}", netns.display()));
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                setns(namespace.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns");
                work()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// A release agent inside the board namespace, with its own state dir and cgroup
/// parent; on drop it is killed with every shim and container, its mounts and cgroups
/// removed.
struct Agent {
    berth: PathBuf,
    state: tempfile::TempDir,
    cgroup_parent: String,
    child: Child,
}

impl Agent {
    fn start(berth: &Path, board: &Netns, name: &str, args: &[&str], image: &Path) -> Agent {
        let state = tempfile::Builder::new()
            .prefix(&format!("berth-netbench-{name}"))
            .tempdir()
            .unwrap();
        let cgroup_parent = format!("berth-netbench-{}-{name}", std::process::id());
        let log = File::create(state.path().join("agent.log")).unwrap();
        let child = die_with_parent(
            Command::new("nsenter")
                .arg(format!("--net={}", board.path().display()))
                .arg("--")
                .arg(berth),
        )
        .args(["agent", "--state-dir"])
        .arg(state.path())
        .args(["--cgroup-parent", &cgroup_parent, "--node-name", name])
        .args(args)
        // The agent's own default (info), as in the other benches' figures.
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the agent");
        let agent = Agent {
            berth: berth.to_owned(),
            state,
            cgroup_parent,
            child,
        };
        let socket = agent.state.path().join("berth.sock");
        wait_for(Duration::from_secs(10), "the agent socket", || {
            std::os::unix::net::UnixStream::connect(&socket).ok()
        });
        agent.cli(&["image", "import", image.to_str().unwrap()]);
        agent
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(&self.berth)
            .arg("--server")
            .arg(format!(
                "unix://{}",
                self.state.path().join("berth.sock").display()
            ))
            .args(args)
            .output()
            .expect("run berth");
        assert!(
            out.status.success(),
            "berth {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.cli(&all)).expect("JSON output")
    }

    /// Writes the manifest first, so that only `berth apply` itself is timed.
    fn manifest(&self, name: &str, yaml: &str) -> PathBuf {
        let path = self.state.path().join(format!("{name}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        path
    }

    fn apply(&self, path: &Path) {
        self.cli(&["apply", "-f", path.to_str().unwrap()]);
    }

    fn entries(&self, dir: &str) -> Vec<PathBuf> {
        std::fs::read_dir(self.state.path().join(dir))
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    /// The init pid of a container whose process runs (its init.pid is written).
    fn running_pid(&self) -> Option<i32> {
        self.entries("containers").iter().find_map(|c| {
            std::fs::read_to_string(c.join("init.pid"))
                .ok()
                .and_then(|p| p.trim().parse().ok())
        })
    }

    /// No container and no pod sandbox left.
    fn idle(&self) -> bool {
        self.entries("containers").is_empty() && self.entries("pods").is_empty()
    }

    fn running_pods(&self) -> usize {
        self.cli(&["get", "pods"])
            .lines()
            .filter(|l| l.contains(" Running "))
            .count()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let state = self.state.path().to_string_lossy().into_owned();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut pids = shim_pids(&state);
            for cgroup in cgroup_dirs(&self.cgroup_parent) {
                for file in ["cgroup.procs", "tasks"] {
                    let text = std::fs::read_to_string(cgroup.join(file)).unwrap_or_default();
                    pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
                }
            }
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in pids {
                // SAFETY: kill(2) on this bench's own agent's shims and containers.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Pod namespaces and overlays under the state dir, deepest first.
        let mut mounts = mounts_under(self.state.path());
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mount in mounts {
            let _ = nix::mount::umount2(mount.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        remove_cgroups(&self.cgroup_parent);
    }
}

/// Live `berth shim` processes whose container dir is under `state`.
fn shim_pids(state: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        if !zombie
            && args.get(1) == Some(&&b"shim"[..])
            && args.get(2).is_some_and(|d| d.starts_with(state.as_bytes()))
        {
            pids.push(pid);
        }
    }
    pids
}

/// Polls `check` every millisecond (as benches/agent.rs does) until it returns Some.
fn wait_for<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until a TCP connect to `address` (from this thread's namespace) succeeds,
/// trying every 100 µs.
fn wait_connect(address: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_micros(100));
    }
}

// ---------------------------------------------------------------------------------------
// Pod start

/// apply → container running and apply → port reachable, per run.
#[derive(Default)]
struct Starts {
    running: Vec<Duration>,
    reachable: Vec<Duration>,
}

/// Alternates the two agents (which goes first alternates too); one pod at a time.
fn pod_start(plain: &Agent, net: &Agent, board: &Netns) -> (Starts, Starts) {
    in_ns(&board.path(), || {
        let (mut without, mut with) = (Starts::default(), Starts::default());
        for i in 0..START_RUNS {
            for networked in [i % 2 == 1, i % 2 == 0] {
                let (agent, samples) = if networked {
                    (net, &mut with)
                } else {
                    (plain, &mut without)
                };
                let (running, reachable) = start_one(agent, &format!("s{i}"), networked);
                samples.running.push(running);
                samples.reachable.push(reachable);
            }
        }
        (without, with)
    })
}

fn start_one(agent: &Agent, name: &str, networked: bool) -> (Duration, Duration) {
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n    - name: web\n      image: busybox:1.35\n      command: [httpd, -f, -p, \"80\"]\n"
    );
    let manifest = agent.manifest(name, &yaml);
    let start = Instant::now();
    agent.apply(&manifest);
    let pid = wait_for(Duration::from_secs(20), "container running", || {
        agent.running_pid()
    });
    let running = start.elapsed();
    let pod_netns = PathBuf::from(format!("/proc/{pid}/ns/net"));
    if networked {
        // From the board, as a client on the board (or a Service's DNAT) would.
        let ip = in_ns(&pod_netns, || {
            wait_for(Duration::from_secs(10), "eth0's address", eth0_address)
        });
        wait_connect(SocketAddr::from((ip, 80)), "the pod IP");
    } else {
        // Without a network the port is reachable only inside the pod.
        in_ns(&pod_netns, || {
            wait_connect(SocketAddr::from(([127, 0, 0, 1], 80)), "the pod's loopback")
        });
    }
    let reachable = start.elapsed();
    agent.cli(&["delete", "pod", name]);
    wait_for(Duration::from_secs(30), "the pod gone", || {
        agent.idle().then_some(())
    });
    (running, reachable)
}

/// The IPv4 address of `eth0` in this thread's namespace.
fn eth0_address() -> Option<Ipv4Addr> {
    nix::ifaddrs::getifaddrs()
        .ok()?
        .filter(|interface| interface.interface_name == "eth0")
        .find_map(|interface| interface.address?.as_sockaddr_in().map(|sin| sin.ip()))
}

/// `attach_pod` alone: a fresh namespace with a listener waiting; from the start of the
/// attach to the first TCP connect from the host namespace. Returns (attach returned,
/// connected) per run.
fn attach_alone(id: u32) -> Vec<(Duration, Duration)> {
    let host = Netns::new(&format!("bnb{id}h"));
    let gateway = Ipv4Addr::new(10, 201, 0, 1);
    in_ns(&host.path(), || {
        ensure_bridge(&Bridge {
            name: "berth0".to_owned(),
            gateway,
            prefix_len: 24,
            mtu: 1500,
        })
        .expect("bridge")
    });
    (0..START_RUNS)
        .map(|i| {
            let pod = Netns::new(&format!("bnb{id}p{i}"));
            let listener = in_ns(&pod.path(), || TcpListener::bind("0.0.0.0:8080").unwrap());
            let address = Ipv4Addr::new(10, 201, 0, 10 + i as u8);
            let link = PodLink {
                host_veth: format!("bnbveth{i}"),
                netns: pod.path(),
                address,
                prefix_len: 24,
                gateway,
                mtu: 1500,
                bridge: "berth0".to_owned(),
            };
            let sample = in_ns(&host.path(), || {
                let start = Instant::now();
                attach_pod(&link).expect("attach_pod");
                let attached = start.elapsed();
                wait_connect(SocketAddr::from((address, 8080)), "the attached pod");
                (attached, start.elapsed())
            });
            // The socket holds the namespace: closed first, the namespace (and the
            // veth with it) goes when deleted.
            drop(listener);
            sample
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// HTTP through a Service

// ---------------------------------------------------------------------------------------
// Footprint

/// What docs/benchmarks.md reports for issue 7, for one agent.
#[derive(Default)]
struct Footprint {
    rss_start: u64,
    rss: u64,
    anon: u64,
    file: u64,
    pss: u64,
    private: u64,
}

/// 10 busybox `sleep` pods and 10 Services on each agent, measured as benches/agent.rs
/// measures issue 7: RSS 2 s after the tenth pod runs, then after `idle` seconds.
fn footprint(plain: &Agent, net: &Agent, idle: u64) -> [Footprint; 2] {
    let mut yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ten\nspec:\n  replicas: 10\n  selector:\n    matchLabels: {app: ten}\n  template:\n    metadata:\n      labels: {app: ten}\n    spec:\n      terminationGracePeriodSeconds: 0\n      containers:\n        - name: main\n          image: busybox:1.35\n          command: [sleep, \"100000\"]\n".to_owned();
    for i in 0..10 {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: ten-{i}}}\nspec:\n  selector: {{app: ten}}\n  ports: [{{port: {}, targetPort: 8080}}]\n",
            8000 + i
        ));
    }
    for agent in [plain, net] {
        agent.apply(&agent.manifest("ten", &yaml));
    }
    wait_for(Duration::from_secs(120), "10 pods running on each", || {
        (plain.running_pods() == 10 && net.running_pods() == 10).then_some(())
    });
    // Every Service has its 10 endpoints, so the table holds them all.
    wait_for(Duration::from_secs(30), "10 × 10 endpoints", || {
        let endpoints = net.json(&["get", "endpoints"]);
        let full = endpoints["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["subsets"][0]["addresses"].as_array().map_or(0, Vec::len) == 10);
        (full.count() == 10).then_some(())
    });
    // Let the asynchronous work of the start-up settle before measuring.
    std::thread::sleep(Duration::from_secs(2));
    let rss_start = [plain, net].map(|agent| kib(agent.pid(), "status", "VmRSS:"));
    std::thread::sleep(Duration::from_secs(idle));
    let measure = |pid: u32, rss_start: u64| Footprint {
        rss_start,
        rss: kib(pid, "status", "VmRSS:"),
        anon: kib(pid, "status", "RssAnon:"),
        file: kib(pid, "status", "RssFile:"),
        pss: kib(pid, "smaps_rollup", "Pss:"),
        private: kib(pid, "smaps_rollup", "Private_Clean:")
            + kib(pid, "smaps_rollup", "Private_Dirty:"),
    };
    [
        measure(plain.pid(), rss_start[0]),
        measure(net.pid(), rss_start[1]),
    ]
}

/// A `kB` field of /proc/PID/FILE, in bytes.
fn kib(pid: u32, file: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

// ---------------------------------------------------------------------------------------
// Report

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / 1024.0 / 1024.0)
}

fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted
        .get(sorted.len().saturating_sub(1) * p / 100)
        .copied()
        .unwrap_or_default()
}

fn median_f64(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// Signed difference of two medians, in milliseconds.
fn added_ms(with: &[Duration], without: &[Duration]) -> f64 {
    (percentile(with, 50).as_secs_f64() - percentile(without, 50).as_secs_f64()) * 1000.0
}

fn report_start(plain: &Starts, net: &Starts, attach: &[(Duration, Duration)]) -> String {
    let attached: Vec<Duration> = attach.iter().map(|s| s.0).collect();
    let connected: Vec<Duration> = attach.iter().map(|s| s.1).collect();
    let slow = connected
        .iter()
        .filter(|d| **d > Duration::from_millis(100))
        .count();
    let med = |samples: &[Duration]| {
        let (p50, p90) = (percentile(samples, 50), percentile(samples, 90));
        format!("{} ({})", ms(p50), ms(p90))
    };
    format!(
        "### Pod start on the network\n\n\
{START_RUNS} pods (busybox `httpd -f -p 80`), one at a time, the two agents alternating; medians (p90). \
\"Reachable\": a TCP connect to port 80 succeeds, from the board to the pod IP on the network; without it, on \
the pod's own loopback (the same process, listening). \"Added\" is the difference of the medians.\n\n\
| what | no pod network | pod network | added | target |\n|---|---|---|---|---|\n\
| `berth apply` → container running (init.pid written) | {} | {} | {:+.2} ms | — |\n\
| `berth apply` → port 80 reachable | {} | {} | {:+.2} ms | ≤ 5 ms |\n\
| `net::link::attach_pod` alone, on a fresh namespace with a listener waiting: → attach returned | — | {} | | — |\n\
| the same: → first TCP connect from the host namespace succeeds ({slow} of {START_RUNS} over 100 ms) | — | {} | | ≤ 5 ms |\n\n",
        med(&plain.running),
        med(&net.running),
        added_ms(&net.running, &plain.running),
        med(&plain.reachable),
        med(&net.reachable),
        added_ms(&net.reachable, &plain.reachable),
        med(&attached),
        med(&connected),
    )
}

fn report_footprint([plain, net]: &[Footprint; 2], idle: u64) -> String {
    let both = |f: fn(&Footprint) -> String| format!("{} | {}", f(plain), f(net));
    format!(
        "### Footprint with 10 pods running, on the network\n\n\
The issue-7 measurement (\"Footprint with 10 pods running\" above): 10 busybox `sleep` pods (a Deployment) and \
10 ClusterIP Services each selecting all 10 (100 endpoints in the nftables table), applied to both agents; RSS \
2 s after the tenth pod runs, then after {idle} s. Two fresh agents, started for this measurement after the \
ones above were stopped.\n\n\
| what | no pod network | pod network, 10 Services | target |\n|---|---|---|---|\n\
| agent RSS after {idle} s with 10 pods | {} | ≤ 8 MiB |\n\
| of which anonymous / file pages | {} | — |\n\
| agent RSS 2 s after the tenth pod started | {} | — |\n\
| agent PSS / private | {} | — |\n",
        both(|f| mib(f.rss)),
        both(|f| format!("{} / {}", mib(f.anon), mib(f.file))),
        both(|f| mib(f.rss_start)),
        both(|f| format!("{} / {}", mib(f.pss), mib(f.private))),
    )
}
