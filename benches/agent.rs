//! `scripts/bench`: the agent's numbers beside runc's, measured in the same run on the
//! same machine, written to docs/benchmarks.md. Not a test: nothing here asserts a time.
//!
//! Measures: apply → container process running for one pod (median of N) beside
//! `runc run -d` of an equivalent bundle; agent and shim RSS with 10 pods running; bytes
//! the agent writes in 60 s of idling with 10 pods; the stripped binary size.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "agent/config.rs"]
mod config;
#[path = "support/release.rs"]
mod release;

const RUNS: usize = 20;
const IDLE_SECONDS: u64 = 60;
const PROBE_SECONDS: u64 = 30;
const PULLS: usize = 5;
const PULL_MB: u64 = 50;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let berth = release::release_berth();
    assert!(
        berth.exists(),
        "build the release binary first (scripts/bench does)"
    );
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("docs/benchmarks.md"));
    let idle = std::env::var("BENCH_IDLE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(IDLE_SECONDS);

    let bench = Bench::start(&berth, &root);
    if std::env::var("BENCH_ONLY").as_deref() == Ok("config") {
        // For working on these figures alone (not used by scripts/bench).
        let config = bench.config_in_pods(RUNS);
        let median = |d: &[Duration]| ms(percentile(d, 50));
        println!(
            "plain start {} / with config {} / propagation {}",
            median(&config.plain_start),
            median(&config.config_start),
            median(&config.propagation)
        );
        return;
    }
    // First, while the agent's peak memory is still its own: pulling a big image.
    let pull = bench.pull_beside_skopeo(&root, PULLS);
    let apply = bench.apply_to_running(RUNS);
    let (runc_start, runc_cycle) = bench.runc_run(RUNS);
    let footprint = bench.ten_pods(idle);
    let restart = bench.restart_latency(RUNS);
    let (scale_berth, scale_runc) = bench.scale_to_fifty();
    let probe_cpu = bench.probe_cpu(PROBE_SECONDS);
    let config = bench.config_in_pods(RUNS);
    drop(bench);

    let size = std::fs::metadata(&berth).map(|m| m.len()).unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cgroup = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "v2"
    } else {
        "v1 (hybrid)"
    };
    let report = format!(
        "# Benchmarks\n\n\
Produced by `scripts/bench` (which runs `cargo bench --bench agent`) on {date}, on this machine: \
{cpu}, {cores} cores, cgroup {cgroup}, release build. Medians of {RUNS} runs; the peer is measured \
in the same run. Nothing here is asserted by tests.\n\n\
## Starting a container (issue 2)\n\n\
| what | median | p90 | target |\n|---|---|---|---|\n\
| `berth apply` of one pod → its container process running (init.pid written) | {a50} | {a90} | ≤ 1.5 × runc |\n\
| `runc run -d` (create + start) of an equivalent bundle | {r50} | {r90} | peer |\n\
| `runc run -d` + `runc delete -f` (whole cycle) | {c50} | {c90} | peer |\n\n\
Ratio berth / runc create+start: **{ratio:.2}×**. The berth figure includes the CLI process, \
the HTTP request, validation, the SQLite transaction, the reconcile pass, the overlay mount, \
the pod sandbox (namespaces) and spawning the shim, which then does what runc does.\n\n\
## Footprint with 10 pods running (busybox `sleep`)\n\n\
| what | value | target |\n|---|---|---|\n\
| agent RSS, after {idle} s with 10 pods running | {agent_rss} | ≤ 8 MiB |\n\
| of which anonymous / file pages (binary and libraries) | {agent_anon} / {agent_file} | — |\n\
| agent RSS 2 s after the tenth pod started (start-up pages not yet released) | {agent_rss_start} | — |\n\
| agent PSS / private (RSS counts the binary's pages, which the shims share) | {agent_pss} / {agent_private} | — |\n\
| shim RSS / PSS / private (median per container) | {shim_rss} / {shim_pss} / {shim_private} | — |\n\
| bytes written by the agent in {idle} s idle (`/proc/PID/io` write_bytes) | {write_bytes} | 0 |\n\
| release binary, stripped (x86_64) | {size} | ≤ 10 MiB |\n\n\
RSS counts every page of the berth binary and libc that the agent has mapped, and every \
shim maps the same binary: those pages are in memory once. PSS shares them out; private \
is what the agent alone holds. Start-up (and any burst of work) maps far more of the binary \
than the agent keeps running, much of it through the kernel's 64 KiB fault-around; every \
30 s the agent drops its mappings of clean, read-only file pages (`agent::memory`), which \
stay in the page cache and come back on use, so RSS settles at the code it runs.\n\n\
## Self-healing (issue 3)\n\n\
| what | value | target |\n|---|---|---|\n\
| container killed (SIGKILL) → replacement process running, first restart (median of {RUNS}) | {r_50} (p90 {r_90}) | ≤ 30 ms |\n\
| scale 0 → 50 busybox `sleep` pods: until all 50 processes run | {scale_berth} | ≤ 1.5 × runc loop |\n\
| loop of 50 `runc run -d` of the same bundle | {scale_runc} | peer |\n\
| agent CPU with 20 pods, each with 1 s HTTP liveness + readiness probes ({PROBE_SECONDS} s) | {probe_cpu:.2}% of one core | ≤ 2% |\n\n\
Scale ratio berth / runc loop: **{scale_ratio:.2}×**.\n\n\
## Pulling images (issue 5)\n\n\
A {PULL_MB} MB single-layer image (busybox plus {PULL_MB} MB of random bytes) from Debian's \
`docker-registry` on 127.0.0.1, medians of {PULLS} pulls into an empty store.\n\n\
| what | value | target |\n|---|---|---|\n\
{pull_rows}\n\
berth's pull also unpacks the layer into the image's shared rootfs, ready to run; \
`skopeo copy` to an OCI layout only stores the blobs.\n\n\
## Configuration in pods (issue 15)\n\n\
| what | median | p90 |\n|---|---|---|\n\
| apply → container running, a plain pod | {plain50} | {plain90} |\n\
| apply → container running, the same pod with `envFrom` a ConfigMap, env from a Secret and both as volumes | {conf50} | {conf90} |\n\
| ConfigMap apply → the new value in a running pod's volume file (seen from the host) | {prop50} | {prop90} |\n\n\
The two volumes are tmpfs mounts filled by the atomic writer; a ConfigMap applied on the \
board wakes a reconcile pass, which rewrites the files that changed (without an apply, the \
10 s resync does).\n",
        date = humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        a50 = ms(percentile(&apply, 50)),
        a90 = ms(percentile(&apply, 90)),
        r50 = ms(percentile(&runc_start, 50)),
        r90 = ms(percentile(&runc_start, 90)),
        c50 = ms(percentile(&runc_cycle, 50)),
        c90 = ms(percentile(&runc_cycle, 90)),
        ratio = percentile(&apply, 50).as_secs_f64() / percentile(&runc_start, 50).as_secs_f64().max(1e-9),
        agent_rss = mib(footprint.agent_rss),
        agent_rss_start = mib(footprint.agent_rss_start),
        agent_anon = mib(footprint.agent_rss_anon),
        agent_file = mib(footprint.agent_rss_file),
        agent_pss = mib(footprint.agent_pss),
        agent_private = mib(footprint.agent_private),
        shim_rss = mib(footprint.shim_rss),
        shim_pss = mib(footprint.shim_pss),
        shim_private = mib(footprint.shim_private),
        write_bytes = footprint.idle_writes,
        size = mib(size),
        pull_rows = match &pull {
            Some((berth, skopeo, peak)) => format!(
                "| `berth image pull` through the agent | {} | ≤ 1.0 × skopeo |\n\
| `skopeo copy docker://… oci:…` of the same image | {} | peer |\n\
| ratio berth / skopeo | {:.2}× | ≤ 1.0 |\n\
| agent peak RSS (VmHWM) after the pulls | {} | ≤ 16 MiB |\n",
                ms(percentile(berth, 50)),
                ms(percentile(skopeo, 50)),
                percentile(berth, 50).as_secs_f64() / percentile(skopeo, 50).as_secs_f64().max(1e-9),
                mib(*peak),
            ),
            None => "| (docker-registry or skopeo missing: not measured) | | |\n".to_owned(),
        },
        r_50 = ms(percentile(&restart, 50)),
        r_90 = ms(percentile(&restart, 90)),
        scale_berth = ms(scale_berth),
        scale_runc = ms(scale_runc),
        scale_ratio = scale_berth.as_secs_f64() / scale_runc.as_secs_f64().max(1e-9),
        plain50 = ms(percentile(&config.plain_start, 50)),
        plain90 = ms(percentile(&config.plain_start, 90)),
        conf50 = ms(percentile(&config.config_start, 50)),
        conf90 = ms(percentile(&config.config_start, 90)),
        prop50 = ms(percentile(&config.propagation, 50)),
        prop90 = ms(percentile(&config.propagation, 90)),
    );
    std::fs::write(&out, &report).expect("write the report");
    print!("{report}");
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / 1024.0 / 1024.0)
}

fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted
        .get((sorted.len().saturating_sub(1)) * p / 100)
        .copied()
        .unwrap_or_default()
}

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

struct Footprint {
    /// RSS 2 s after the tenth pod runs, before the agent has released its start-up
    /// pages (agent::memory).
    agent_rss_start: u64,
    /// RSS at the end of the idle window: what the agent holds while it runs 10 pods.
    agent_rss: u64,
    agent_rss_anon: u64,
    agent_rss_file: u64,
    agent_pss: u64,
    agent_private: u64,
    shim_rss: u64,
    shim_pss: u64,
    shim_private: u64,
    idle_writes: u64,
}

struct Bench {
    berth: PathBuf,
    state: PathBuf,
    image: PathBuf,
    agent: Child,
}

const CGROUP_PARENT: &str = "berth-bench";

impl Bench {
    fn start(berth: &Path, root: &Path) -> Bench {
        let state = std::env::temp_dir().join(format!("berth-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state).expect("state dir");
        let image = root.join("target/demo-image");
        let agent = Command::new(berth)
            .args(["agent", "--state-dir"])
            .arg(&state)
            // Containers alone, as runc runs them: the pod network is measured on its own.
            .args(["--cgroup-parent", CGROUP_PARENT, "--network-backend=none"])
            .stderr(std::fs::File::create(state.join("../berth-bench-agent.log")).expect("log"))
            .spawn()
            .expect("start agent");
        let bench = Bench {
            berth: berth.to_owned(),
            state,
            image,
            agent,
        };
        let socket = bench.state.join("berth.sock");
        wait_for(Duration::from_secs(10), "agent socket", || {
            std::os::unix::net::UnixStream::connect(&socket).ok()
        });
        bench.cli(&["image", "import", bench.image.to_str().expect("utf-8")]);
        bench
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(&self.berth)
            .arg("--server")
            .arg(format!(
                "unix://{}",
                self.state.join("berth.sock").display()
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

    fn apply(&self, yaml: &str) {
        let path = self.state.join("bench.yaml");
        std::fs::write(&path, yaml).expect("manifest");
        self.cli(&["apply", "-f", path.to_str().expect("utf-8")]);
    }

    fn containers(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.state.join("containers"))
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    fn apply_to_running(&self, runs: usize) -> Vec<Duration> {
        let mut samples = Vec::new();
        for i in 0..runs {
            let yaml = format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: b{i}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n    - name: main\n      image: busybox:1.35\n      command: [sleep, \"1000\"]\n"
            );
            let start = Instant::now();
            self.apply(&yaml);
            wait_for(Duration::from_secs(20), "container running", || {
                self.containers()
                    .iter()
                    .any(|c| c.join("init.pid").exists())
                    .then_some(())
            });
            samples.push(start.elapsed());
            self.cli(&["delete", "pod", &format!("b{i}")]);
            wait_for(Duration::from_secs(20), "pod gone", || {
                self.containers().is_empty().then_some(())
            });
        }
        samples
    }

    /// `runc run -d` of a bundle with the same rootfs and command, then `runc delete -f`.
    fn runc_run(&self, runs: usize) -> (Vec<Duration>, Vec<Duration>) {
        let rootfs = std::fs::read_dir(self.state.join("images/rootfs"))
            .expect("image rootfs")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.is_dir() && !p.to_string_lossy().contains(".tmp"))
            .expect("an unpacked rootfs");
        let bundle = self.state.join("runc-bundle");
        let runc_root = self.state.join("runc-root");
        std::fs::create_dir_all(&bundle).expect("bundle");
        let status = Command::new("runc")
            .arg("spec")
            .current_dir(&bundle)
            .status()
            .expect("runc spec");
        assert!(status.success());
        let spec_path = bundle.join("config.json");
        let mut spec: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&spec_path).expect("spec"))
                .expect("json");
        spec["process"]["terminal"] = false.into();
        spec["process"]["args"] = serde_json::json!(["sleep", "1000"]);
        spec["root"]["path"] = rootfs.to_string_lossy().into_owned().into();
        spec["root"]["readonly"] = true.into();
        std::fs::write(&spec_path, spec.to_string()).expect("write spec");
        let (mut start, mut cycle) = (Vec::new(), Vec::new());
        for i in 0..runs {
            let id = format!("berth-bench-{}-{i}", std::process::id());
            let t0 = Instant::now();
            let status = Command::new("runc")
                .arg("--root")
                .arg(&runc_root)
                .args(["run", "-d", "--bundle"])
                .arg(&bundle)
                .arg(&id)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("runc run");
            start.push(t0.elapsed());
            assert!(status.success(), "runc run failed");
            let status = Command::new("runc")
                .arg("--root")
                .arg(&runc_root)
                .args(["delete", "-f", &id])
                .status()
                .expect("runc delete");
            cycle.push(t0.elapsed());
            assert!(status.success());
        }
        (start, cycle)
    }

    fn ten_pods(&self, idle: u64) -> Footprint {
        let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ten\nspec:\n  replicas: 10\n  selector:\n    matchLabels: {app: ten}\n  template:\n    metadata:\n      labels: {app: ten}\n    spec:\n      terminationGracePeriodSeconds: 0\n      containers:\n        - name: main\n          image: busybox:1.35\n          command: [sleep, \"100000\"]\n";
        self.apply(yaml);
        wait_for(Duration::from_secs(60), "10 running pods", || {
            let running = self
                .cli(&["get", "pods"])
                .lines()
                .filter(|l| l.contains(" Running "))
                .count();
            (running == 10).then_some(())
        });
        // Let the asynchronous work of the start-up settle before measuring.
        std::thread::sleep(Duration::from_secs(2));
        let pid = self.agent.id();
        let shim_pids: Vec<u32> = self
            .containers()
            .iter()
            .filter_map(|c| std::fs::read_to_string(c.join("shim.pid")).ok())
            // shim.pid holds "<pid> <start time>"
            .filter_map(|p| p.split_whitespace().next().and_then(|pid| pid.parse().ok()))
            .collect();
        let median = |f: fn(u32) -> u64| {
            let mut values: Vec<u64> = shim_pids.iter().map(|p| f(*p)).collect();
            values.sort();
            values.get(values.len() / 2).copied().unwrap_or(0)
        };
        let agent_rss_start = rss(pid);
        let before = write_bytes(pid);
        std::thread::sleep(Duration::from_secs(idle));
        let idle_writes = write_bytes(pid).saturating_sub(before);
        let footprint = Footprint {
            agent_rss_start,
            agent_rss: rss(pid),
            agent_rss_anon: status_kib(pid, "RssAnon:"),
            agent_rss_file: status_kib(pid, "RssFile:"),
            agent_pss: rollup(pid, "Pss:"),
            agent_private: private(pid),
            shim_rss: median(rss),
            shim_pss: median(|p| rollup(p, "Pss:")),
            shim_private: median(private),
            idle_writes,
        };
        self.cli(&["delete", "deployment", "ten", "--timeout", "60"]);
        wait_for(Duration::from_secs(60), "pods gone", || {
            self.containers().is_empty().then_some(())
        });
        footprint
    }
}

impl Bench {
    fn init_pid_files(&self) -> Vec<PathBuf> {
        self.containers()
            .into_iter()
            .map(|c| c.join("init.pid"))
            .filter(|p| p.exists())
            .collect()
    }

    /// Kills a running container's process and times until its replacement (the first
    /// restart, which Kubernetes does at once) has a process.
    fn restart_latency(&self, runs: usize) -> Vec<Duration> {
        let mut samples = Vec::new();
        for i in 0..runs {
            let name = format!("r{i}");
            let yaml = format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n    - name: main\n      image: busybox:1.35\n      command: [sleep, \"1000\"]\n");
            self.apply(&yaml);
            let first = wait_for(Duration::from_secs(20), "first container", || {
                self.init_pid_files().into_iter().next()
            });
            let pid: i32 = std::fs::read_to_string(&first)
                .ok()
                .and_then(|p| p.trim().parse().ok())
                .expect("init pid");
            let start = Instant::now();
            // SAFETY: kill(2) on the container process this benchmark just started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            wait_for(Duration::from_secs(20), "replacement", || {
                self.containers()
                    .iter()
                    .any(|c| c.to_string_lossy().ends_with("_1") && c.join("init.pid").exists())
                    .then_some(())
            });
            samples.push(start.elapsed());
            self.cli(&["delete", "pod", &name]);
            wait_for(Duration::from_secs(20), "pod gone", || {
                self.containers().is_empty().then_some(())
            });
        }
        samples
    }

    /// Scale 0 → 50 and time until 50 container processes run; then the same count of
    /// `runc run -d` in a loop.
    fn scale_to_fifty(&self) -> (Duration, Duration) {
        let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: fifty\nspec:\n  replicas: 0\n  selector:\n    matchLabels: {app: fifty}\n  template:\n    metadata:\n      labels: {app: fifty}\n    spec:\n      terminationGracePeriodSeconds: 0\n      containers:\n        - name: main\n          image: busybox:1.35\n          command: [sleep, \"100000\"]\n";
        self.apply(yaml);
        let start = Instant::now();
        self.cli(&["scale", "deployment", "fifty", "--replicas", "50"]);
        wait_for(Duration::from_secs(120), "50 running", || {
            (self.init_pid_files().len() == 50).then_some(())
        });
        let berth = start.elapsed();
        self.cli(&["delete", "deployment", "fifty"]);
        wait_for(Duration::from_secs(120), "pods gone", || {
            self.containers().is_empty().then_some(())
        });

        let bundle = self.state.join("runc-bundle");
        let runc_root = self.state.join("runc-root");
        let ids: Vec<String> = (0..50)
            .map(|i| format!("berth-bench-fifty-{}-{i}", std::process::id()))
            .collect();
        let start = Instant::now();
        for id in &ids {
            let status = Command::new("runc")
                .arg("--root")
                .arg(&runc_root)
                .args(["run", "-d", "--bundle"])
                .arg(&bundle)
                .arg(id)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("runc run");
            assert!(status.success());
        }
        let runc = start.elapsed();
        for id in &ids {
            let _ = Command::new("runc")
                .arg("--root")
                .arg(&runc_root)
                .args(["delete", "-f", id])
                .status();
        }
        (berth, runc)
    }

    /// Agent CPU (user + system) while 20 pods are probed every second.
    fn probe_cpu(&self, seconds: u64) -> f64 {
        let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: probed\nspec:\n  replicas: 20\n  selector:\n    matchLabels: {app: probed}\n  template:\n    metadata:\n      labels: {app: probed}\n    spec:\n      terminationGracePeriodSeconds: 0\n      containers:\n        - name: web\n          image: busybox:1.35\n          command: [httpd, -f, -p, \"8080\", -h, /var/www]\n          livenessProbe:\n            httpGet: {path: /index.html, port: 8080}\n            periodSeconds: 1\n          readinessProbe:\n            tcpSocket: {port: 8080}\n            periodSeconds: 1\n";
        self.apply(yaml);
        wait_for(Duration::from_secs(120), "20 ready pods", || {
            let ready = self
                .cli(&["get", "pods"])
                .lines()
                .filter(|l| l.contains(" 1/1 "))
                .count();
            (ready == 20).then_some(())
        });
        let pid = self.agent.id();
        let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| cpu_ticks(&s))
            .unwrap_or(0);
        let start = Instant::now();
        std::thread::sleep(Duration::from_secs(seconds));
        let used = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| cpu_ticks(&s))
            .unwrap_or(0)
            - ticks;
        let elapsed = start.elapsed().as_secs_f64();
        self.cli(&["delete", "deployment", "probed"]);
        wait_for(Duration::from_secs(120), "pods gone", || {
            self.containers().is_empty().then_some(())
        });
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        used as f64 / hz / elapsed * 100.0
    }
}

/// utime + stime from /proc/PID/stat, in clock ticks.
fn cpu_ticks(stat: &str) -> u64 {
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // After the command name: state is field 3, utime 14 and stime 15 (1-based).
    field(11) + field(12)
}

impl Bench {
    /// `berth image pull` of a big image beside `skopeo copy` of the same image from the
    /// same local registry; returns both timings and the agent's peak RSS.
    fn pull_beside_skopeo(
        &self,
        root: &Path,
        runs: usize,
    ) -> Option<(Vec<Duration>, Vec<Duration>, u64)> {
        let have = |p: &str| Path::new(p).exists();
        if !have("/usr/bin/docker-registry") || !have("/usr/bin/skopeo") {
            return None;
        }
        let work = self.state.join("pull-bench");
        let layout = work.join("big");
        std::fs::create_dir_all(&work).expect("work dir");
        let status = Command::new(root.join("scripts/build-demo-image"))
            .arg(&layout)
            .args(["--filler", &PULL_MB.to_string(), "--tag", "localhost/big:1"])
            .stdout(Stdio::null())
            .status()
            .expect("build the big image");
        assert!(status.success());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let config = work.join("registry.yml");
        std::fs::write(
            &config,
            format!("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n", work.join("storage").display()),
        )
        .expect("registry config");
        let mut registry = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        wait_for(Duration::from_secs(20), "registry port", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        let reference = format!("127.0.0.1:{port}/big:1");
        let pushed = Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
            ])
            .arg(format!("oci:{}", layout.display()))
            .arg(format!("docker://{reference}"))
            .status()
            .expect("skopeo push");
        assert!(pushed.success());
        let (mut berth, mut skopeo) = (Vec::new(), Vec::new());
        for i in 0..runs {
            let start = Instant::now();
            self.cli(&["image", "pull", &reference]);
            berth.push(start.elapsed());
            // Removing the image also removes its blobs (no other image uses them).
            self.cli(&["image", "rm", &reference]);

            let dest = work.join(format!("skopeo-{i}"));
            let start = Instant::now();
            let status = Command::new("skopeo")
                .args([
                    "--insecure-policy",
                    "copy",
                    "--quiet",
                    "--src-tls-verify=false",
                ])
                .arg(format!("docker://{reference}"))
                .arg(format!("oci:{}", dest.display()))
                .status()
                .expect("skopeo copy");
            skopeo.push(start.elapsed());
            assert!(status.success());
            let _ = std::fs::remove_dir_all(&dest);
        }
        let _ = registry.kill();
        let _ = registry.wait();
        let _ = std::fs::remove_dir_all(&work);
        let peak = std::fs::read_to_string(format!("/proc/{}/status", self.agent.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .map(str::to_owned)
            })
            .and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .map_or(0, |kb| kb * 1024);
        Some((berth, skopeo, peak))
    }
}

/// A field of /proc/PID/smaps_rollup (kB), in bytes.
fn rollup(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).map(str::to_owned))
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Memory only this process holds: private clean and dirty pages.
fn private(pid: u32) -> u64 {
    rollup(pid, "Private_Clean:") + rollup(pid, "Private_Dirty:")
}

/// A `kB` field of /proc/PID/status, in bytes.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field).map(str::to_owned))
        })
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_owned)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn write_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("write_bytes: ")
                    .and_then(|v| v.trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = self.agent.kill();
        let _ = self.agent.wait();
        // Whatever the agent had no time to tear down: mounts under the state dir
        // (pod namespaces, overlays), deepest first.
        let state = self.state.to_string_lossy().into_owned();
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
            .filter(|m| m.starts_with(&state))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mount in mounts {
            let _ = nix::mount::umount2(mount.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(&self.state);
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir(hierarchy.path().join(CGROUP_PARENT));
        }
        let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(CGROUP_PARENT));
    }
}
