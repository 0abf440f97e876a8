//! The fleet coordinator: owns fleet-wide objects, schedules pods onto boards and pushes
//! each agent only what is bound to it (see design.md and docs/architecture.md).
//!
//! - [`pki`], [`tls`]: its CA and server certificate, its TLS server configuration. The
//!   text forms of join tokens and credentials and the client side of TLS are in
//!   [`crate::api::tokens`] and [`crate::api::tls`].
//! - [`join_tokens`]: a join token's TTL, uses and node binding; `join`: the join route,
//!   NodeRestriction of a node's own labels, and the admin's token routes.
//! - [`auth`]: who is asking (admin, a node, nobody) and the admin config file.
//! - [`server`]: the resource API over HTTPS (the agent's API shape) plus the routes
//!   agents use ([`crate::api::fleet`]).
//! - [`fleet`]: nodes, leases (heartbeats), every node's assignments until a change;
//!   [`assignments`]: what each node is given (its pods and what they need, every
//!   Service, the pod network from its point of view); [`pod_cidrs`]: each node's /24
//!   of the cluster CIDR.
//! - [`controllers`]: Deployments (the agent's pure controller code), scheduling with the
//!   pure `controllers::scheduler`, node lifecycle and eviction, deletions.
//!
//! Threads: the smol executor serves HTTPS (long polls wait on an event, not a thread);
//! store work runs on smol's blocking pool; the controllers run a pass on one thread
//! whenever something changed, and at least every second for leases.

pub mod assignments;
pub mod auth;
mod controllers;
mod coordinators;
mod cron_standby;
pub mod fleet;
mod join;
pub mod join_tokens;
pub mod migrate;
mod node_taints;
pub mod peers;
pub mod pki;
pub mod pod_cidrs;
mod scheduling;
mod server;
mod shared;
pub mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::api::events::EventLog;
use crate::api::zoneinfo::ZoneInfo;
use crate::store::Store;

pub use crate::controllers::scheduler::{
    pod_request_from_spec, schedule, Decision, NodeInfo, NodeSelectorOperator, NodeSelectorTerm,
    PlacedPod, PodRequest, Requirement, SchedulerError, Taint, Toleration, TolerationOperator,
};

#[derive(Clone, Debug)]
pub struct CoordinatorOptions {
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    /// Extra names or addresses the server certificate must cover.
    pub tls_sans: Vec<String>,
    /// A node whose agent has not polled for this long is `Ready=Unknown`
    /// (Kubernetes' `--node-monitor-grace-period`, 40 s).
    pub node_monitor_grace: Duration,
    /// Pods of a node that stays not ready this long are replaced elsewhere
    /// (Kubernetes' default toleration of `unreachable`, 5 min).
    pub pod_eviction_timeout: Duration,
    /// Registry settings (k3s `registries.yaml`) for asking which platforms an image
    /// offers; `None`: defaults.
    pub registries: Option<PathBuf>,
    /// `--encryption-key-file`: the key of Secrets at rest; `None`: `<state dir>/secrets.key`.
    pub encryption_key_file: Option<PathBuf>,
    /// `--pod-security-level`: the Pod Security level of a namespace without the
    /// `pod-security.kubernetes.io/enforce` label, at apply.
    pub pod_security_level: crate::model::PodSecurityLevel,
    /// `--service-cidr`: where Services' cluster IPs come from.
    pub service_cidr: crate::model::Ipv4Cidr,
    /// `--service-node-port-range`: NodePort Services' ports, inclusive.
    pub node_port_range: (u16, u16),
    /// `--cluster-cidr`: every pod address of the fleet; each node gets a /24 of it.
    pub cluster_cidr: crate::model::Ipv4Cidr,
    /// `--datastore-endpoint` and its TLS files: the objects live in etcd; `None`: in
    /// `<state dir>/berth.db`.
    pub datastore: Option<crate::store::RemoteOptions>,
    /// `--leader-elect-lease-duration`: with a datastore, how long the leader's etcd
    /// lease lasts without renewal, so how soon another coordinator takes over.
    pub leader_lease: Duration,
}

pub struct Coordinator {
    pub options: CoordinatorOptions,
    store: Mutex<Store>,
    pub auth: auth::Auth,
    pub fleet: fleet::Fleet,
    /// sha256 of the CA certificate, for join tokens.
    pub ca_hash: String,
    registries: crate::image::RegistryConfig,
    /// Image reference → the platforms its registry offers (`None`: unknown), and when
    /// that was learnt.
    image_platforms: Mutex<HashMap<String, (Instant, ImagePlatforms)>>,
    /// Wakes the controller thread; wake-ups coalesce.
    wake_tx: smol::channel::Sender<()>,
    /// What happened to the fleet's objects lately (scheduling), in memory only.
    pub events: EventLog,
    /// The other coordinators on the same etcd: `None` for a lone coordinator on SQLite.
    pub peers: Option<peers::Peers>,
    /// This coordinator's name among its peers, its URL, and when it started (RFC 3339).
    pub name: String,
    pub url: String,
    pub started: String,
    /// When the join tokens were last read again on a miss ([`Coordinator::check_join_token`]).
    auth_reloaded: Mutex<Option<Instant>>,
    /// The time zones the fleet's CronJobs name, from this machine's zoneinfo directory.
    pub zones: ZoneInfo,
}

/// The platforms an image's registry offers (`None`: unknown).
type ImagePlatforms = Option<Vec<String>>;

impl Coordinator {
    pub fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll
        // back), so the guard is still good to use.
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The platforms `image` offers, from its registry's index, remembered for a while;
    /// `None` when unknown (a single-platform image, or the registry cannot be asked),
    /// which lets every board pass the scheduler's platform filter.
    pub fn image_platforms(&self, image: &str) -> Option<Vec<String>> {
        const KNOWN_FOR: Duration = Duration::from_secs(300);
        const UNKNOWN_FOR: Duration = Duration::from_secs(60);
        let cached = self
            .image_platforms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(image)
            .cloned();
        if let Some((at, platforms)) = cached {
            let fresh_for = if platforms.is_some() {
                KNOWN_FOR
            } else {
                UNKNOWN_FOR
            };
            if at.elapsed() < fresh_for {
                return platforms;
            }
        }
        let platforms =
            match crate::image::image_platforms(image, &self.registries, Duration::from_secs(3)) {
                Ok(platforms) => platforms,
                Err(err) => {
                    log::debug!("platforms of {image}: {err}");
                    None
                }
            };
        self.image_platforms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(image.to_string(), (Instant::now(), platforms.clone()));
        platforms
    }

    /// Whether this coordinator runs the controllers: always when alone, while it holds
    /// the leader lease when it shares etcd with others.
    pub fn is_leader(&self) -> bool {
        self.peers.as_ref().is_none_or(peers::Peers::is_leader)
    }

    /// The join token of `bearer`, as [`auth::Auth::check_join_token`] finds it. A token
    /// this coordinator does not know may have been made through another one a moment
    /// ago, before the watch brought it here: with peers, read the tokens again once (at
    /// most once a second, so that guessing tokens costs the datastore little).
    pub fn check_join_token(
        &self,
        bearer: &str,
        store: &mut Store,
    ) -> Result<join_tokens::TokenRecord, join_tokens::JoinDenied> {
        let now = std::time::SystemTime::now();
        match self.auth.check_join_token(bearer, now) {
            Err(join_tokens::JoinDenied::NotFound { .. }) if self.may_reload_auth() => {
                if let Err(err) = self.auth.reload(store) {
                    log::warn!("cannot reload join tokens: {err:#}");
                }
                self.auth.check_join_token(bearer, now)
            }
            checked => checked,
        }
    }

    fn may_reload_auth(&self) -> bool {
        if self.peers.is_none() {
            return false;
        }
        let mut last = self.auth_reloaded.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    /// A node polled: renew its lease here, and in etcd for the other coordinators.
    pub fn renew_node(&self, node: &str) {
        self.fleet.renew(node);
        if let Some(peers) = &self.peers {
            peers.renewed(node, self.options.node_monitor_grace);
        }
    }

    /// Something changed: run the controllers soon and let long polls re-check.
    pub fn changed(&self) {
        let _ = self.wake_tx.try_send(());
        self.fleet.notify();
    }
}

/// Every agent holds one connection (its long poll): a fleet of a thousand boards needs
/// more descriptors than the usual soft limit of 1024, so take the hard limit.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            let wanted = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
                log::warn!("cannot raise the open files limit above {}", limit.rlim_cur);
            }
        }
    }
}

/// Gives the nodes that joined before pod CIDRs were handed out theirs, and warns about
/// those that cannot get one or whose pod CIDR lies outside `--cluster-cidr` (kept: a
/// node's pod CIDR never changes while it exists).
fn give_pod_cidrs(store: &mut Store, cluster: &crate::model::Ipv4Cidr) -> anyhow::Result<()> {
    for (name, outcome) in pod_cidrs::assign_missing(store, cluster, None)? {
        match outcome {
            Ok(cidr) => log::info!("node {name} was given pod CIDR {cidr}"),
            Err(err) => log::warn!("node {name} has no pod CIDR: {err}"),
        }
    }
    for record in store.list("Node", None)? {
        if let Some(cidr) = pod_cidrs::of_node(&record.object) {
            if !cluster.covers(&cidr) {
                log::warn!(
                    "node {} keeps pod CIDR {cidr}, outside the cluster CIDR {cluster}",
                    record.name
                );
            }
        }
    }
    Ok(())
}

/// The coordinator's store: etcd with `--datastore-endpoint`, SQLite otherwise.
fn open_store(options: &CoordinatorOptions) -> anyhow::Result<Store> {
    let dir = &options.state_dir;
    let key_file = options
        .encryption_key_file
        .clone()
        .unwrap_or_else(|| crate::store::default_key_file(dir));
    let sealer = crate::store::Sealer::load_or_create(&key_file)?;
    if let Some(remote) = &options.datastore {
        let endpoints = remote.etcd.endpoints.join(",");
        let store = Store::open_etcd(remote.clone(), sealer)
            .with_context(|| format!("cannot open the datastore at {endpoints}"))?;
        log::info!("objects are kept in etcd at {endpoints}");
        return Ok(store);
    }
    let store_path = dir.join("berth.db");
    Store::open_sealed(&store_path, sealer)
        .with_context(|| format!("cannot open the store {}", store_path.display()))
}

/// This coordinator's name among its peers: the host's name and the port it serves.
fn coordinator_name(listen: &SocketAddr) -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "coordinator".to_string());
    format!("{host}-{}", listen.port())
}

/// Runs the coordinator in the foreground until it is killed.
pub fn run(options: CoordinatorOptions) -> anyhow::Result<()> {
    raise_open_files_limit();
    crate::support::memory::limit_malloc_arenas(2);
    let dir = &options.state_dir;
    crate::store::ensure_private_dir(dir).map_err(anyhow::Error::msg)?;
    let mut store = open_store(&options)?;
    if options.datastore.is_some() {
        shared::share_ca(&mut store, &dir.join("tls"))?;
    }
    let pki = pki::Pki::load_or_create(&dir.join("tls"), &options.tls_sans)
        .context("cannot set up the coordinator's certificates")?;
    crate::controllers::namespace::ensure_default(&mut store)?;
    give_pod_cidrs(&mut store, &options.cluster_cidr)?;
    let auth = auth::Auth::load(&mut store)?;
    let url = auth::server_url(&options.listen);
    let shared = options.datastore.is_some();
    auth::ensure_admin_config(
        &auth,
        &mut store,
        &dir.join("admin.config"),
        &url,
        &pki,
        shared,
    )?;
    let fleet = fleet::Fleet::new(&store)?;
    let registries = match &options.registries {
        Some(path) => crate::image::RegistryConfig::load(path)?,
        None => crate::image::RegistryConfig::empty(),
    };

    let server_config = tls::server_config(&pki)?;
    let name = coordinator_name(&options.listen);
    let peers = match &options.datastore {
        Some(remote) => Some(peers::Peers::new(
            remote,
            name.clone(),
            url.clone(),
            options.leader_lease,
        )?),
        None => None,
    };
    let (wake_tx, wake_rx) = smol::channel::bounded(1);
    let coordinator = Arc::new(Coordinator {
        options: options.clone(),
        store: Mutex::new(store),
        auth,
        fleet,
        ca_hash: pki.ca_hash().to_string(),
        registries,
        image_platforms: Mutex::new(HashMap::new()),
        wake_tx,
        events: EventLog::new(),
        peers,
        name,
        url: url.clone(),
        started: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        auth_reloaded: Mutex::new(None),
        zones: ZoneInfo::system(),
    });
    peers::spawn(&coordinator)?;
    controllers::spawn(Arc::clone(&coordinator), wake_rx)?;

    smol::block_on(async {
        let listener = smol::net::TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("cannot listen on {}", options.listen))?;
        log::info!(
            "coordinator serving on {url} (state {}, CA sha256 {})",
            dir.display(),
            pki.ca_hash()
        );
        let acceptor = futures_rustls::TlsAcceptor::from(server_config);
        let limits = crate::api::ServerConfig {
            // Manifests are small; a fleet apply of many files stays far below this.
            max_body: 4 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(10),
            // Agents poll again at once: keep their connection (and TLS session) open
            // for the next poll instead of a new handshake every heartbeat.
            keep_alive: Some(Duration::from_secs(120)),
            // Every agent holds one kept connection (its long poll), so this is the
            // fleet size; an idle kept TLS connection costs tens of KiB.
            max_connections: 1024,
            // Strangers get few slots, and the oldest gives way to the next: memory
            // stays bounded, and the admin still gets in during a flood.
            max_unauthenticated: 64,
        };
        let admit_coordinator = Arc::clone(&coordinator);
        let authorizer: crate::api::Authorizer =
            Arc::new(move |request| server::admit(&admit_coordinator, request));
        let handler_coordinator = Arc::clone(&coordinator);
        crate::api::http::serve_tls(listener, acceptor, limits, authorizer, move |request| {
            server::handle(Arc::clone(&handler_coordinator), request)
        })
        .await
        .context("serving the API")
    })
}
