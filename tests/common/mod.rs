//! Test harness: a real agent process with its own state dir and cgroup parent, driven
//! through the real CLI, and a cleanup that leaves nothing behind even when a test fails.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// The busybox OCI layout, built once per test binary by scripts/build-demo-image.
pub fn demo_image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| build_image("demo-image", &[]))
}

/// `target/NAME`, an OCI layout built by scripts/build-demo-image with `args` unless it
/// is there already. Test binaries may call this at the same time: the script builds in
/// a temp dir and renames the finished layout into place, so a layout is either whole or
/// missing, and the build that loses the race finds the winner's.
pub fn build_image(name: &str, args: &[&str]) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = root.join("target").join(name);
    // index.json is what the script writes last.
    let complete = |out: &Path| out.join("index.json").is_file();
    if complete(&out) {
        return out;
    }
    // Half a layout, left by an interrupted build from before the script staged its
    // output. No build's rename can replace a non-empty dir, so it stays half until
    // removed (an empty dir is replaced by the rename and is left alone).
    let non_empty = std::fs::read_dir(&out).is_ok_and(|mut d| d.next().is_some());
    if non_empty && !complete(&out) {
        let _ = std::fs::remove_dir_all(&out);
    }
    let output = Command::new(root.join("scripts/build-demo-image"))
        .arg(&out)
        .args(args)
        .stdout(Stdio::null())
        .output()
        .expect("run scripts/build-demo-image");
    // A failed rename with a complete layout in place: another build finished first.
    assert!(
        output.status.success() || complete(&out),
        "scripts/build-demo-image {} {args:?} failed: {}",
        out.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// Makes the child that `command` spawns get SIGKILL when the spawning thread ends, so
/// that a test process killed with SIGKILL (a CI timeout) takes its agents, coordinators
/// and registries along instead of leaving them running. The test thread owns each of
/// these daemons for its whole life and spawns its restarts itself, so the signal comes
/// only when the test is over.
pub fn die_with_parent(command: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec; it only calls prctl(2)
    // and getppid(2), which are async-signal-safe, and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before the prctl: no signal would come any more.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        })
    }
}

/// Whether process `pid` has a TCP socket listening on `port`: the process a test started,
/// not whoever else may have taken the port (a connect would not tell them apart).
pub fn listens_on(pid: u32, port: u16) -> bool {
    let mut listening = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            // sl local_address rem_address st ... inode: the port is hex after the
            // address, state 0A is LISTEN, the socket inode is the 10th field.
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields
                .get(1)
                .and_then(|a| a.rsplit_once(':'))
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) && fields.get(3) == Some(&"0A") {
                if let Some(inode) = fields.get(9) {
                    listening.push(format!("socket:[{inode}]"));
                }
            }
        }
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| listening.iter().any(|l| target.as_os_str() == l.as_str()))
    })
}

/// Polls `check` until it returns Some, or panics with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub struct TestAgent {
    pub state: tempfile::TempDir,
    pub manifests: PathBuf,
    pub cgroup_parent: String,
    pub extra_args: Vec<String>,
    pub node_name: String,
    /// Network namespace the agent runs in (`ip netns exec`), as a separate host would.
    pub netns: Option<String>,
    child: Option<Child>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TestAgent {
    /// Starts an agent with a fast crash-loop back-off and imports the test image.
    pub fn start() -> TestAgent {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> TestAgent {
        Self::start_as("test-node", None, extra)
    }

    /// An agent named `node_name`, inside network namespace `netns` when given.
    pub fn start_as(node_name: &str, netns: Option<&str>, extra: &[&str]) -> TestAgent {
        let state = tempfile::Builder::new()
            .prefix("berth-test")
            .tempdir()
            .expect("tempdir");
        let manifests = state.path().join("manifests");
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let mut agent = TestAgent {
            manifests,
            cgroup_parent: format!("berth-test-{}-{n}", std::process::id()),
            state,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            node_name: node_name.to_owned(),
            netns: netns.map(str::to_owned),
            child: None,
        };
        agent.spawn();
        let image = demo_image().to_str().expect("utf-8 path").to_owned();
        agent.ok(&["image", "import", &image]);
        agent
    }

    pub fn socket(&self) -> PathBuf {
        self.state.path().join("berth.sock")
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.state.path().join("agent.log"))
            .expect("agent log");
        let mut command = match &self.netns {
            Some(netns) => {
                // Only the network namespace: `ip netns exec` would also remount /sys,
                // hiding the cgroup hierarchy. nsenter execs berth in place, so the
                // child's pid is the agent's.
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{netns}"))
                    .arg("--")
                    .arg(BERTH);
                c
            }
            None => Command::new(BERTH),
        };
        let child = die_with_parent(&mut command)
            .args(["agent", "--state-dir"])
            .arg(self.state.path())
            .arg("--manifests")
            .arg(&self.manifests)
            .args([
                "--cgroup-parent",
                &self.cgroup_parent,
                "--node-name",
                &self.node_name,
            ])
            .args(
                if self
                    .extra_args
                    .iter()
                    .any(|a| a.starts_with("--restart-backoff"))
                {
                    &[][..]
                } else {
                    // Fast crash-loop back-off unless the test asks for its own.
                    &[
                        "--restart-backoff-base",
                        "0.2",
                        "--restart-backoff-max",
                        "1",
                    ][..]
                },
            )
            .args(
                if self
                    .extra_args
                    .iter()
                    .any(|a| a.starts_with("--network-backend"))
                {
                    &[][..]
                } else {
                    // No pod network unless the test asks for one: the network tests
                    // make their own namespaces for it (bridges, NAT and DNS never
                    // touch the host's network).
                    &["--network-backend=none"][..]
                },
            )
            .args(&self.extra_args)
            .env("RUST_LOG", "debug,rustls=info,ureq=info,ureq_proto=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the agent");
        self.child = Some(child);
        let socket = self.socket();
        wait_for(Duration::from_secs(10), "the agent socket", || {
            std::os::unix::net::UnixStream::connect(&socket).ok()
        });
    }

    /// SIGKILL, as a power cut or OOM kill of the agent would be.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, as systemd stops the unit; returns the agent's exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: kill(2) on our own child process.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        wait_for(Duration::from_secs(10), "the agent to exit", || {
            child.try_wait().ok().flatten()
        })
        .into()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        Command::new(BERTH)
            .arg("--server")
            .arg(format!("unix://{}", self.socket().display()))
            .args(args)
            .output()
            .expect("run berth")
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed: {}\n--- agent log tail:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a CLI command that may fail for now (a log asked for before the container
    /// started); its stdout when it succeeded. For use inside `wait_for`.
    pub fn try_ok(&self, args: &[&str]) -> Option<String> {
        let out = self.berth(args);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).expect("json output")
    }

    pub fn apply_yaml(&self, yaml: &str) -> Output {
        let path = self.state.path().join(format!(
            "manifest-{}.yaml",
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&path, yaml).expect("write manifest");
        self.berth(&["apply", "-f", path.to_str().expect("utf-8")])
    }

    pub fn pods(&self) -> Vec<Value> {
        self.json(&["get", "pods"])["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn pod(&self, name: &str) -> Value {
        self.json(&["get", "pod", name])
    }

    /// Waits until the pod's phase is `phase`, returning the pod.
    pub fn wait_phase(&self, name: &str, phase: &str, timeout: Duration) -> Value {
        wait_for(timeout, &format!("pod {name} to be {phase}"), || {
            let out = self.berth(&["get", "pod", name, "-o", "json"]);
            let pod: Value = serde_json::from_slice(&out.stdout).ok()?;
            (pod["status"]["phase"] == phase).then_some(pod)
        })
    }

    /// Waits until the pod's first container is running, returning the pod.
    pub fn wait_running(&self, name: &str) -> Value {
        wait_for(
            Duration::from_secs(20),
            &format!("pod {name} running"),
            || {
                let out = self.berth(&["get", "pod", name, "-o", "json"]);
                let pod: Value = serde_json::from_slice(&out.stdout).ok()?;
                let running = pod["status"]["containerStatuses"]
                    .as_array()
                    .is_some_and(|s| {
                        !s.is_empty() && s.iter().all(|c| c["state"]["running"].is_object())
                    });
                running.then_some(pod)
            },
        )
    }

    /// (pod name, init pid of its first container), sorted: to compare before and after
    /// an agent restart.
    pub fn init_pids(&self) -> Vec<(String, i64)> {
        let mut pids: Vec<(String, i64)> = self
            .pods()
            .iter()
            .map(|pod| {
                let path = self
                    .state
                    .path()
                    .join("containers")
                    .join(container_id(pod, 0))
                    .join("init.pid");
                let pid = std::fs::read_to_string(path)
                    .ok()
                    .and_then(|p| p.trim().parse().ok())
                    .unwrap_or(0);
                (
                    pod["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                    pid,
                )
            })
            .collect();
        pids.sort();
        pids
    }

    /// The whole agent log. Lossy: one stray byte (a container's output in a debug
    /// line) must not hide the whole log of a failing test.
    pub fn log(&self) -> String {
        let bytes = std::fs::read(self.state.path().join("agent.log")).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Container dirs the runtime still has.
    pub fn container_dirs(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.state.path().join("containers")) {
            Ok(entries) => entries.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Mounts under the state dir (overlays, namespace files).
    pub fn mounts(&self) -> Vec<String> {
        mounts_under(self.state.path())
    }

    /// Cgroup dirs under this agent's parent, in any hierarchy.
    pub fn cgroups(&self) -> Vec<PathBuf> {
        cgroup_dirs(&self.cgroup_parent)
    }
}

/// The status ("True"/"False") of a pod condition such as "Ready", if present.
/// The column names of a kubectl-style table: its first line, split where two or more
/// spaces separate (as column names such as `LAST SCHEDULE` hold one space).
pub fn table_header(table: &str) -> Vec<&str> {
    table
        .lines()
        .next()
        .unwrap_or("")
        .split("  ")
        .filter(|c| !c.is_empty())
        .map(str::trim)
        .collect()
}

pub fn condition(pod: &Value, kind: &str) -> Option<Value> {
    pod["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == kind))
        .map(|c| c["status"].clone())
}

/// Pids of live (not zombie) `berth VERB DIR` processes, for VERB one of `verbs`, whose
/// dir is under `state`: shims (`shim`) and PID namespace holders (`pid-holder`).
pub fn helper_pids(state: &str, verbs: &[&str]) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        if !zombie
            && args
                .get(1)
                .is_some_and(|verb| verbs.contains(&verb.as_str()))
            && args.get(2).is_some_and(|d| d.starts_with(state))
        {
            pids.push(pid);
        }
    }
    pids
}

/// The container id inside `containerID` ("berth://ID").
pub fn container_id(pod: &Value, index: usize) -> String {
    pod["status"]["containerStatuses"][index]["containerID"]
        .as_str()
        .and_then(|s| s.strip_prefix("berth://"))
        .unwrap_or("")
        .to_owned()
}

pub fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
        .filter(|m| m.starts_with(&dir))
        .collect()
}

pub fn cgroup_dirs(parent: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let root = Path::new("/sys/fs/cgroup");
    let mut candidates = vec![root.join(parent)];
    if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries.flatten() {
            candidates.push(entry.path().join(parent));
        }
    }
    for dir in candidates {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.path().is_dir() {
                    found.push(entry.path());
                }
            }
        }
    }
    found
}

impl Drop for TestAgent {
    /// Leaves nothing behind: kills the agent, every shim and container, unmounts,
    /// removes the cgroups; the TempDir then removes the files.
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            // Leave the evidence in the test output: the agent's log and every shim's.
            eprintln!("--- agent log (tail):\n{}", self.log_tail());
            for dir in self.container_dirs() {
                let shim_log = std::fs::read_to_string(dir.join("shim.log")).unwrap_or_default();
                let exit = std::fs::read_to_string(dir.join("exit.json")).unwrap_or_default();
                eprintln!(
                    "--- {}:\nshim.log: {shim_log}\nexit.json: {exit}",
                    dir.display()
                );
            }
        }
        // Every shim and PID namespace holder of this agent (found by its command line,
        // so one the agent spawned just before it died is found too), then whatever
        // still runs in our cgroups.
        let state = self.state.path().to_string_lossy().into_owned();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut pids = helper_pids(&state, &["shim", "pid-holder"]);
            for cgroup in self.cgroups() {
                for file in ["cgroup.procs", "tasks"] {
                    let text = std::fs::read_to_string(cgroup.join(file)).unwrap_or_default();
                    pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
                }
            }
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in pids {
                // SAFETY: kill(2) on processes of this test's own agent; at worst it
                // signals a process that just exited.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut mounts = self.mounts();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mount in mounts {
            let _ = nix::mount::umount2(mount.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        remove_cgroups(&self.cgroup_parent);
    }
}

/// Removes the (empty) cgroups under `parent` and `parent` itself, in every hierarchy.
pub fn remove_cgroups(parent: &str) {
    let mut cgroups = cgroup_dirs(parent);
    cgroups.sort_by_key(|c| std::cmp::Reverse(c.as_os_str().len()));
    for cgroup in cgroups {
        let _ = std::fs::remove_dir(&cgroup);
    }
    let root = Path::new("/sys/fs/cgroup");
    let _ = std::fs::remove_dir(root.join(parent));
    if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_dir(entry.path().join(parent));
        }
    }
}
