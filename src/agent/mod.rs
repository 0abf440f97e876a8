//! The agent: a complete single-board orchestrator.
//!
//! Desired state lives in SQLite (`store`); what runs is asked of the runtime (the
//! kernel and the shims' files are the truth); the reconciler compares the two with pure
//! plans (`plan`) and carries out the steps, one pod at a time, on blocking threads; the
//! shared controllers ([`crate::controllers`]: namespaces, Deployments, garbage) run
//! before each pass (`controllers`). Status is derived on demand (`status`) and never written, so an
//! idle agent writes nothing to the SD card; what happened lately (`events`: probe
//! failures, starts, back-offs) is kept in memory only.
//!
//! Threads: the smol executor serves the API and waits on exit notifiers (pidfds of the
//! shims); reconcile passes and their steps run on smol's blocking pool. Nothing in this
//! process forks without exec: containers are started by `berth shim` processes.
//! A board in a fleet (`--join`, or a saved `fleet.json`) has two more plain threads
//! with blocking clients towards its coordinator (`fleet`).

mod apply;
mod board;
mod container_config;
mod controllers;
mod env;
mod exec;
pub(crate) mod fleet;
mod instance;
mod local_path;
mod logs;
mod manifests;
mod memory;
mod network;
pub mod network_options;
pub(crate) mod network_start;
mod placement;
mod plan;
mod pod_files;
mod probes;
mod pulls;
mod qos;
mod reconcile;
mod security;
mod server;
mod services;
mod status;
mod views;
mod volume_payload;
mod volumes;

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::api::events::{EventLog, Involved, Reporter};
use crate::api::zoneinfo::ZoneInfo;
use crate::image::{ImageStore, RegistryConfig};
use crate::model::EventType;
use crate::runtime::{LibcontainerRuntime, Runtime, RuntimeConfig};
use crate::store::Store;

pub use fleet::FleetJoin;
pub use network_options::{NetworkBackend, NetworkOptions};
pub use plan::Backoff;
pub use status::StartFailure;

#[derive(Clone, Debug)]
pub struct AgentOptions {
    pub state_dir: PathBuf,
    pub manifests_dir: Option<PathBuf>,
    pub node_name: String,
    pub cgroup_parent: String,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Board profile (`--board`), checked against this machine at start.
    pub board: Option<PathBuf>,
    /// Registry settings (`--registries`, k3s `registries.yaml`); `None`: no settings.
    pub registries: Option<PathBuf>,
    /// `--join URL --token TOKEN`: join this coordinator unless `fleet.json` says this
    /// board already has.
    pub join: Option<FleetJoin>,
    /// `--node-labels`: extra labels the node registers with at the coordinator.
    pub node_labels: std::collections::BTreeMap<String, String>,
    /// `--extended-resources`: devices the board has, by extended resource name.
    pub extended_resources: std::collections::BTreeMap<String, u64>,
    /// `--max-unpacked-image-size`, `--max-image-files`: what one image may unpack to.
    pub unpack_limits: crate::image::UnpackLimits,
    /// `--encryption-key-file`: the key of Secrets at rest; `None`: `<state dir>/secrets.key`.
    pub encryption_key_file: Option<PathBuf>,
    /// `--local-path`: where PersistentVolumeClaims' directories are made; `None`:
    /// `<state dir>/storage`.
    pub local_path: Option<PathBuf>,
    /// `--pod-security-level`: the Pod Security level of a namespace without the
    /// `pod-security.kubernetes.io/enforce` label, at apply and before every start.
    pub pod_security_level: crate::model::PodSecurityLevel,
    /// The pod network (bridge, addresses, Services, DNS) and how it reaches the fleet.
    pub network: NetworkOptions,
    /// `--service-cidr`: where the cluster IPs of Services applied here come from.
    pub service_cidr: crate::model::Ipv4Cidr,
    /// `--service-node-port-range`: NodePort Services' ports, inclusive.
    pub node_port_range: (u16, u16),
}

/// Log files of one container instance are capped at this size, and this many files are
/// kept (the current one and rotated ones): small, for SD cards.
pub const LOG_MAX_BYTES: u64 = 1024 * 1024;
pub const LOG_MAX_FILES: u32 = 3;

/// A reconcile pass runs at least this often even when nothing woke it: the periodic
/// requeue that makes the agent eventually consistent with whatever it missed. A pass
/// only reads.
pub const RESYNC_PERIOD: Duration = Duration::from_secs(10);

pub struct Agent {
    pub options: AgentOptions,
    pub store: Mutex<Store>,
    pub images: ImageStore,
    /// Mirrors, credentials and TLS settings for image pulls, loaded at start.
    pub registries: RegistryConfig,
    pub runtime: Arc<dyn Runtime>,
    pub backoff: Backoff,
    memory: Mutex<Memory>,
    wake_tx: smol::channel::Sender<()>,
    /// Fired with every wake-up: something may have changed (watches list again).
    changes: event_listener::Event,
    /// The pod network, once started (never with `--network-backend=none`).
    network: std::sync::OnceLock<network::PodNetwork>,
    /// When this agent process started: readiness found running is unknown for a while.
    started: std::time::Instant,
    /// This board's node labels, as it registers them with a coordinator (architecture,
    /// OS, hostname, board profile, `--node-labels`): what a DaemonSet's nodeSelector
    /// matches on a lone board. Set once at start.
    node_labels: std::sync::OnceLock<std::collections::BTreeMap<String, String>>,
    /// Whether the coordinator answers, once this board is in a fleet: what decides
    /// whether it fires the CronJobs it keeps as their standby.
    pub(crate) fleet_link: std::sync::OnceLock<Arc<fleet::Link>>,
    /// What happened to this board's objects lately (probes, back-offs, starts), in
    /// memory only.
    pub events: EventLog,
    /// The time zones this board's CronJobs name, from its zoneinfo directory.
    pub zones: ZoneInfo,
}

/// What the agent keeps only in memory.
#[derive(Default)]
struct Memory {
    /// Pods with steps in flight: one pod is never worked on twice at once.
    busy: HashSet<String>,
    /// Pods this board cannot run (yet), by UID, with the scheduler's message.
    unschedulable: HashMap<String, String>,
    /// Why a container could not start, by (pod UID, container name).
    failures: HashMap<(String, String), StartFailure>,
    /// Instances with an exit notifier registered.
    watched: HashSet<String>,
    /// Latest probe results by instance id, written by the probe tasks.
    probes: HashMap<String, probes::ProbeResults>,
    /// Instances with a probe task running.
    probed: HashSet<String>,
    /// Since when (Unix seconds) each pod has been seen ready, by pod UID: what
    /// `minReadySeconds` counts from.
    ready_since: HashMap<String, i64>,
    /// The inputs of the last complete controller pass, and when it said to look again.
    controllers_seen: Option<(u64, Option<std::time::SystemTime>)>,
    /// Exited instances whose crash-loop back-off has been told as an event: each
    /// crash is told once, however many passes wait out its back-off.
    backed_off: HashSet<String>,
}

impl Agent {
    pub fn new(
        options: AgentOptions,
        runtime: Arc<dyn Runtime>,
    ) -> anyhow::Result<(Arc<Agent>, smol::channel::Receiver<()>)> {
        let store_path = options.state_dir.join("berth.db");
        let key_file = options
            .encryption_key_file
            .clone()
            .unwrap_or_else(|| crate::store::default_key_file(&options.state_dir));
        let sealer = crate::store::Sealer::load_or_create(&key_file)?;
        let store = Store::open_sealed(&store_path, sealer)
            .with_context(|| format!("cannot open the store {}", store_path.display()))?;
        let images = ImageStore::open(&options.state_dir.join("images"))?
            .with_unpack_limits(options.unpack_limits);
        let registries = match &options.registries {
            Some(path) => RegistryConfig::load(path)?,
            None => RegistryConfig::empty(),
        };
        let (wake_tx, wake_rx) = smol::channel::bounded(1);
        let backoff = Backoff {
            base: options.backoff_base,
            max: options.backoff_max,
        };
        let agent = Agent {
            options,
            store: Mutex::new(store),
            images,
            registries,
            runtime,
            backoff,
            memory: Mutex::new(Memory::default()),
            wake_tx,
            changes: event_listener::Event::new(),
            network: std::sync::OnceLock::new(),
            started: std::time::Instant::now(),
            node_labels: std::sync::OnceLock::new(),
            fleet_link: std::sync::OnceLock::new(),
            events: EventLog::new(),
            zones: ZoneInfo::system(),
        };
        Ok((Arc::new(agent), wake_rx))
    }

    /// Asks for a reconcile pass soon; wake-ups coalesce.
    pub fn wake(&self) {
        let _ = self.wake_tx.try_send(());
        self.changes.notify(usize::MAX);
    }

    /// Fires at the next wake-up: desired or observed state may have changed.
    pub fn listen_changes(&self) -> event_listener::EventListener {
        self.changes.listen()
    }

    pub fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll
        // back), so the guard is still good to use.
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn memory(&self) -> MutexGuard<'_, Memory> {
        self.memory
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The pod network, unless this board runs without one.
    pub fn network(&self) -> Option<&network::PodNetwork> {
        self.network.get()
    }

    /// The address the fleet reaches this board's pods through (`InternalIP`), known
    /// before the pod network starts: `--node-ip`, else the default route's source.
    pub fn node_address(&self) -> Option<std::net::Ipv4Addr> {
        if !self.options.network.enabled() {
            return None;
        }
        self.network()
            .map(|n| n.node_ip)
            .or(self.options.network.node_ip)
            .or_else(network::detect_node_ip)
    }

    /// Records the scheduler's `FailedScheduling` warning about a pod.
    fn scheduler_event(&self, pod: &crate::model::ObjectMeta, message: &str) {
        let involved = Involved::new("Pod", pod.namespace_or_empty(), &pod.name, &pod.uid);
        let scheduler = Reporter {
            component: "default-scheduler",
            host: None,
        };
        self.events.record(
            involved,
            EventType::Warning,
            "FailedScheduling",
            message,
            scheduler,
        );
    }

    /// Records what the kubelet would tell about a pod, or about one of its containers
    /// when `container` is given.
    fn pod_event(
        &self,
        pod: &crate::model::ObjectMeta,
        container: Option<&str>,
        type_: EventType,
        reason: &str,
        message: &str,
    ) {
        let involved = Involved::new("Pod", pod.namespace_or_empty(), &pod.name, &pod.uid);
        let field_path = container.map(|name| format!("spec.containers{{{name}}}"));
        let involved = match &field_path {
            Some(path) => involved.with_field_path(path),
            None => involved,
        };
        let kubelet = Reporter {
            component: "kubelet",
            host: Some(&self.options.node_name),
        };
        self.events
            .record(involved, type_, reason, message, kubelet);
    }

    pub fn logs_dir(&self, namespace: &str, pod: &str, uid: &str) -> PathBuf {
        self.options
            .state_dir
            .join("logs")
            .join(format!("{namespace}_{pod}_{uid}"))
    }

    /// Where `Localhost` seccomp profiles are, as the kubelet's `/var/lib/kubelet/seccomp`:
    /// `seccompProfile.localhostProfile` is a path relative to it. The operator puts
    /// profiles there; the agent only reads them.
    pub fn seccomp_root(&self) -> PathBuf {
        self.options.state_dir.join("seccomp")
    }
}

/// Runs the agent until SIGTERM or SIGINT. Containers keep running when it stops.
pub fn run(mut options: AgentOptions) -> anyhow::Result<()> {
    let mut profile = None;
    if let Some(path) = &options.board {
        let (loaded, warnings) = board::load_and_check(path)?;
        log::info!("board profile {} ({})", loaded.name, loaded.model);
        for warning in warnings {
            log::warn!("{warning}");
        }
        profile = Some(loaded);
    }
    // Before anything else uses the node name: a joined board keeps the name it joined as.
    let fleet_setup = fleet::prepare(&mut options)?;
    // Block the shutdown signals before any thread starts, so that only the signal
    // thread receives them (children get a clean mask from std's spawn).
    let mut signals = nix::sys::signal::SigSet::empty();
    signals.add(nix::sys::signal::Signal::SIGTERM);
    signals.add(nix::sys::signal::Signal::SIGINT);
    signals.thread_block().context("cannot block signals")?;

    crate::support::memory::limit_malloc_arenas(1);
    crate::store::ensure_private_dir(&options.state_dir).map_err(anyhow::Error::msg)?;
    let shim_exe = std::env::current_exe().context("cannot find the berth binary for the shims")?;
    let runtime = LibcontainerRuntime::new(RuntimeConfig {
        state_dir: options.state_dir.clone(),
        cgroup_parent: options.cgroup_parent.clone(),
        shim_exe,
    })?;
    let (agent, wake_rx) = Agent::new(options, Arc::new(runtime))?;
    let _ = agent.node_labels.set(fleet::node::labels(
        &agent.options.node_name,
        profile.as_ref(),
        &agent.options.node_labels,
    ));
    crate::controllers::namespace::ensure_default(&mut agent.store())?;
    if agent.options.network.enabled() {
        network_start::at_boot(&agent, fleet_setup.is_some())?;
    }

    let socket_path = agent.options.state_dir.join("berth.sock");
    let listener = bind_socket(&socket_path)?;
    log::info!(
        "agent {} serving on {} (state {})",
        agent.options.node_name,
        socket_path.display(),
        agent.options.state_dir.display()
    );

    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let fleet_stop = stop_tx.clone();
    std::thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || {
            if let Ok(signal) = signals.wait() {
                log::info!("received {signal:?}, stopping the agent (containers keep running)");
            }
            let _ = stop_tx.try_send(());
        })
        .context("cannot start the signal thread")?;

    if let Some(dir) = agent.options.manifests_dir.clone() {
        manifests::start(&agent, dir)?;
    }

    let server_agent = agent.clone();
    smol::spawn(async move {
        let handler = move |request| server::handle(server_agent.clone(), request);
        if let Err(err) = crate::api::http::serve(listener, handler).await {
            log::error!("api server stopped: {err}");
        }
    })
    .detach();

    // Start-up and bursts of work leave code pages mapped that the agent no longer runs,
    // and free heap pages glibc keeps.
    smol::spawn(async {
        loop {
            smol::Timer::after(memory::RELEASE_PERIOD).await;
            let released = smol::unblock(|| {
                crate::support::memory::trim_heap();
                memory::release_file_pages()
            });
            match released.await {
                Ok(kib) => log::debug!("released {kib} KiB of clean file pages from RSS"),
                Err(err) => log::debug!("cannot release clean file pages: {err}"),
            }
        }
    })
    .detach();

    let fleet = match fleet_setup {
        Some(setup) => Some(fleet::start(&agent, setup, profile, fleet_stop)?),
        None => None,
    };

    smol::block_on(reconcile::run_loop(agent.clone(), wake_rx, stop_rx));
    let _ = std::fs::remove_file(&socket_path);
    if let Some(reason) = fleet.and_then(|fleet| fleet.failure()) {
        bail!("{reason}");
    }
    log::info!("agent stopped");
    Ok(())
}

/// `berth agent --cleanup-network`: removes the bridge, veths, routes and nftables table
/// of the pod network, for uninstalling.
pub fn cleanup_network(options: &AgentOptions) -> anyhow::Result<()> {
    network::cleanup(&options.network)
}

fn bind_socket(path: &std::path::Path) -> anyhow::Result<smol::net::unix::UnixListener> {
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        bail!("another agent is already serving on {}", path.display());
    }
    // A socket file left by an agent that was killed: nobody listens on it.
    let _ = std::fs::remove_file(path);
    let listener = smol::net::unix::UnixListener::bind(path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", path.display()))?;
    Ok(listener)
}

#[cfg(test)]
mod events_tests;
#[cfg(test)]
mod test_support;
