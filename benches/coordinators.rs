//! `scripts/bench`, issue 16: redundant coordinators over etcd, appended to
//! docs/benchmarks.md. Not a test: nothing here asserts a time.
//!
//! Measures, with release binaries, one etcd member (Debian's etcd-server) and three
//! coordinators on loopback:
//! - leader failover: SIGKILL of the leader → the first scheduling decision of the new
//!   leader (a pod applied through a survivor right after the kill gets its
//!   `PodScheduled` condition), median of 10;
//! - apply latency at a coordinator on etcd and at one on SQLite, same run, median of 50.

#![allow(clippy::unwrap_used)] // benches may unwrap

#[path = "support/etcd.rs"]
mod etcd;
#[path = "support/release.rs"]
mod release;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth::api::config::ClientConfig;
use berth::api::types::{ApplyRequest, ManifestFile};
use berth::api::Client;

const FAILOVERS: usize = 10;
const APPLIES: usize = 50;

struct Coordinator {
    dir: PathBuf,
    listen: String,
    args: Vec<String>,
    child: Option<Child>,
}

impl Coordinator {
    fn start(berth: &Path, dir: PathBuf, args: &[String]) -> Coordinator {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let mut coordinator = Coordinator {
            dir,
            listen: format!("127.0.0.1:{port}"),
            args: args.to_vec(),
            child: None,
        };
        coordinator.spawn(berth);
        coordinator
    }

    fn url(&self) -> String {
        format!("https://{}", self.listen)
    }

    fn spawn(&mut self, berth: &Path) {
        let child = Command::new(berth)
            .args(["coordinator", "--listen", &self.listen, "--state-dir"])
            .arg(&self.dir)
            .args(&self.args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.dir.join("admin.config").exists()
            || std::net::TcpStream::connect(&self.listen).is_err()
        {
            assert!(Instant::now() < deadline, "a coordinator did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.kill();
    }
}

fn admin(config: &Path, servers: &str) -> Client {
    let mut config = ClientConfig::load(config).unwrap();
    config.server = servers.to_owned();
    config.client(None, Duration::from_secs(10)).unwrap()
}

fn apply(client: &Client, yaml: String) -> Result<(), berth::api::ApiError> {
    let request = ApplyRequest {
        files: vec![ManifestFile {
            name: "bench.yaml".into(),
            content: yaml,
        }],
        namespace: None,
    };
    let body = serde_json::to_value(&request).unwrap();
    client
        .request("POST", "/apis/berth.dev/v1/apply", Some(&body))
        .map(|_| ())
}

/// The URL of the leader, as the coordinators list it.
fn leader(client: &Client) -> Option<String> {
    let (_, list) = client
        .request("GET", "/apis/berth.dev/v1/coordinators", None)
        .ok()?;
    list["items"]
        .as_array()?
        .iter()
        .find(|c| c["status"]["leader"] == true)
        .and_then(|c| c["spec"]["url"].as_str().map(str::to_owned))
}

fn scheduled(client: &Client, name: &str) -> bool {
    let path = format!("/api/v1/namespaces/default/pods/{name}");
    let Ok((_, pod)) = client.request("GET", &path, None) else {
        return false;
    };
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "PodScheduled"))
}

fn failovers(berth: &Path, coordinators: &mut [Coordinator], client: &Client) -> Vec<Duration> {
    let mut took = Vec::new();
    for run in 0..FAILOVERS {
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            if let Some(url) = leader(client) {
                break url;
            }
            assert!(Instant::now() < deadline, "no leader");
            std::thread::sleep(Duration::from_millis(50));
        };
        let index = coordinators.iter().position(|c| c.url() == url).unwrap();
        coordinators[index].kill();
        let killed = Instant::now();
        let name = format!("failover-{run}");
        let pod = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers: [{{name: c, image: busybox:1.35}}]\n"
        );
        // Through a survivor (the client moves on from the dead one).
        while apply(client, pod.clone()).is_err() {
            assert!(killed.elapsed() < Duration::from_secs(30), "apply failed");
        }
        while !scheduled(client, &name) {
            assert!(
                killed.elapsed() < Duration::from_secs(60),
                "never scheduled"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        took.push(killed.elapsed());
        coordinators[index].spawn(berth);
        // Its registration is back before the next round.
        std::thread::sleep(Duration::from_secs(1));
    }
    took.sort();
    took
}

fn apply_latency(client: &Client, prefix: &str) -> Vec<Duration> {
    let mut took = Vec::new();
    for i in 0..APPLIES {
        let yaml = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {prefix}-latency\ndata:\n  n: \"{i}\"\n"
        );
        let start = Instant::now();
        apply(client, yaml).unwrap();
        took.push(start.elapsed());
    }
    took.sort();
    took
}

fn main() {
    let out = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let berth = release::release_berth();
    if !berth.exists() {
        eprintln!("release binary missing: scripts/bench builds it");
        return;
    }
    let etcd = etcd::Etcd::start();
    let key = etcd.dir.path().join("secrets.key");
    let args: Vec<String> = [
        "--datastore-endpoint",
        etcd.url.as_str(),
        "--encryption-key-file",
        key.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut coordinators: Vec<Coordinator> = (0..3)
        .map(|i| Coordinator::start(&berth, etcd.dir.path().join(format!("c{i}")), &args))
        .collect();
    let urls: Vec<String> = coordinators.iter().map(Coordinator::url).collect();
    let client = admin(&coordinators[0].dir.join("admin.config"), &urls.join(","));
    let failover = failovers(&berth, &mut coordinators, &client);
    let on_etcd = apply_latency(&client, "etcd");
    drop(coordinators);

    let sqlite_dir = tempfile::Builder::new()
        .prefix("berth-sqlite-bench")
        .tempdir()
        .unwrap();
    let lone = Coordinator::start(&berth, sqlite_dir.path().join("c"), &[]);
    let lone_client = admin(&lone.dir.join("admin.config"), &lone.url());
    let on_sqlite = apply_latency(&lone_client, "sqlite");
    drop(lone);

    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    let median = |v: &[Duration]| ms(v[v.len() / 2]);
    let p90 = |v: &[Duration]| ms(v[v.len() * 9 / 10]);
    let report = format!(
        "\n## Redundant coordinators (issue 16)\n\n\
Release binaries on loopback: three coordinators (`--datastore-endpoint`, default \
`--leader-elect-lease-duration 2s`) on one etcd 3.4 member (Debian's etcd-server, default \
settings), produced by `cargo bench --bench coordinators` (run by `scripts/bench`).\n\n\
| what | value | target |\n|---|---|---|\n\
| SIGKILL of the leader → first scheduling decision of the new leader, median of {FAILOVERS} (p90) | {} ({}) | ≤ 3 s |\n\
| anchor: Kubernetes' default leader election (15 s lease) | up to 15 s | — |\n\
| apply of a ConfigMap at a coordinator on etcd, median of {APPLIES} (p90) | {} ({}) | — |\n\
| the same at a lone coordinator on SQLite, same run | {} ({}) | — |\n",
        median(&failover),
        p90(&failover),
        median(&on_etcd),
        p90(&on_etcd),
        median(&on_sqlite),
        p90(&on_sqlite),
    );
    print!("{report}");
    if let Some(path) = out {
        let mut existing = std::fs::read_to_string(&path).unwrap_or_default();
        existing.push_str(&report);
        std::fs::write(&path, existing).expect("write the report");
    }
}
