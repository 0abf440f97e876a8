//! Several coordinators over one etcd (issue 16): who leads, what the others learn from
//! etcd, and node leases that survive a change of leader.
//!
//! - **Election.** Each coordinator campaigns for the key `<prefix>leader`, created in a
//!   transaction only while it does not exist, attached to an etcd lease of `ttl`. The
//!   winner runs the controllers, the scheduler and node lifecycle; the others only
//!   serve the API. The leader renews its lease every `ttl / 4` and leads only until
//!   `sent + ttl - margin`, where `sent` is when it sent the last renewal etcd accepted:
//!   etcd cannot expire the lease (and let another coordinator win) before `sent + ttl`,
//!   so an old leader cut off from etcd stops acting before a new one can start.
//! - **Watch.** Every coordinator follows the prefix ([`crate::store::Follower`]), which
//!   keeps its store's copy of the objects current, so that reads cost no round trip: a
//!   change written through any of them wakes its controllers (if it leads) and its
//!   agents' long polls, and a change to credentials or join tokens reloads its
//!   [`super::auth::Auth`].
//! - **Node leases.** The coordinator that receives a node's poll writes
//!   `<prefix>leases/<node>` at most every `grace / 4`; every coordinator reads those
//!   keys each second and counts a node as seen *when it sees the key change*, on its
//!   own clock (as Kubernetes' node lifecycle controller does with Lease objects), so
//!   clocks need not agree and a new leader already knows every node's lease.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::Coordinator;
use crate::store::etcd::{
    Compare, CompareOp, EtcdClient, EtcdError, KeyRange, PutOptions, RangeOptions, Txn, TxnOp,
    TxnOpResponse,
};
use crate::store::{Change, RemoteOptions};

/// Kinds whose change means the credentials a coordinator holds in memory are stale.
const AUTH_KINDS: [&str; 2] = ["BerthCredential", super::join_tokens::JOIN_TOKEN_KIND];

/// What the leader key holds, shown by `berth get coordinators`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderRecord {
    pub name: String,
    pub url: String,
    /// RFC 3339, when it won the election.
    pub since: String,
}

/// What each running coordinator writes under `<prefix>coordinators/<name>`, attached
/// to a lease of its own: it disappears soon after the coordinator stops.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub name: String,
    pub url: String,
    /// RFC 3339, when the coordinator started.
    pub started: String,
}

/// How long a registration outlives its coordinator.
const REGISTRATION_TTL: i64 = 10;

/// This coordinator's view of the election.
#[derive(Clone, Debug, Default)]
struct Election {
    /// While `Some` and in the future, this coordinator leads.
    leading_until: Option<Instant>,
    /// The leader as last read from etcd (this coordinator or another).
    leader: Option<LeaderRecord>,
}

pub struct Peers {
    client: EtcdClient,
    /// To open clients of their own for the lease writer.
    etcd: crate::store::etcd::EtcdConfig,
    prefix: String,
    pub name: String,
    url: String,
    ttl: Duration,
    election: Mutex<Election>,
    /// Nodes whose lease key is due to be written, for the lease writer.
    lease_tx: smol::channel::Sender<String>,
    lease_rx: smol::channel::Receiver<String>,
    /// When each node's lease key was last written by this coordinator.
    lease_written: Mutex<HashMap<String, Instant>>,
    /// The `mod_revision` of each node's lease key when last read.
    lease_seen: Mutex<HashMap<String, i64>>,
    /// Whether the last read of the leases reached etcd: a coordinator cut off from etcd
    /// turns agents' polls away, so that they move to one that is not.
    reachable: std::sync::atomic::AtomicBool,
}

impl Peers {
    pub fn new(
        remote: &RemoteOptions,
        name: String,
        url: String,
        ttl: Duration,
    ) -> anyhow::Result<Peers> {
        // Election calls must fail within the lease, not after it: a renewal that hangs
        // on a dead member must give way to the next member (or to stepping down) while
        // the lease still holds.
        let mut election = remote.etcd.clone();
        election.connect_timeout = election.connect_timeout.min(ttl / 8);
        election.request_timeout = election.request_timeout.min(ttl / 4);
        let client = EtcdClient::new(election)?;
        let (lease_tx, lease_rx) = smol::channel::bounded(4096);
        Ok(Peers {
            client,
            etcd: remote.etcd.clone(),
            prefix: remote.prefix.clone(),
            name,
            url,
            ttl,
            election: Mutex::new(Election::default()),
            lease_tx,
            lease_rx,
            lease_written: Mutex::new(HashMap::new()),
            lease_seen: Mutex::new(HashMap::new()),
            reachable: std::sync::atomic::AtomicBool::new(true),
        })
    }

    fn leader_key(&self) -> Vec<u8> {
        format!("{}leader", self.prefix).into_bytes()
    }

    fn lease_prefix(&self) -> String {
        format!("{}leases/", self.prefix)
    }

    /// Whether etcd answered this coordinator's last look at the node leases (a second
    /// ago at most).
    pub fn reaches_store(&self) -> bool {
        self.reachable.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether this coordinator leads now.
    pub fn is_leader(&self) -> bool {
        lock(&self.election)
            .leading_until
            .is_some_and(|until| Instant::now() < until)
    }

    /// The leader as last read from etcd.
    pub fn leader(&self) -> Option<LeaderRecord> {
        lock(&self.election).leader.clone()
    }

    /// A node polled this coordinator: queue its lease key for writing if it is due.
    pub fn renewed(&self, node: &str, grace: Duration) {
        let now = Instant::now();
        let mut written = lock(&self.lease_written);
        let due = written
            .get(node)
            .is_none_or(|at| now.saturating_duration_since(*at) >= grace / 4);
        if due && self.lease_tx.try_send(node.to_string()).is_ok() {
            written.insert(node.to_string(), now);
        }
    }

    /// Reads every node's lease key and returns the nodes whose key changed since the
    /// last read (or appeared): they were seen just now.
    pub fn changed_leases(&self) -> Result<Vec<String>, EtcdError> {
        let prefix = self.lease_prefix();
        let options = RangeOptions {
            keys_only: true,
            ..RangeOptions::default()
        };
        let answer = self
            .client
            .range(&KeyRange::prefix(prefix.as_bytes()), &options);
        self.reachable
            .store(answer.is_ok(), std::sync::atomic::Ordering::Relaxed);
        let answer = answer?;
        let mut seen = lock(&self.lease_seen);
        let mut changed = Vec::new();
        for kv in answer.kvs {
            let Some(node) = std::str::from_utf8(&kv.key)
                .ok()
                .and_then(|k| k.strip_prefix(&prefix))
            else {
                continue;
            };
            if seen.insert(node.to_string(), kv.mod_revision) != Some(kv.mod_revision) {
                changed.push(node.to_string());
            }
        }
        Ok(changed)
    }

    /// Every coordinator registered now, by name.
    pub fn registered(&self) -> Result<Vec<Registration>, EtcdError> {
        let prefix = format!("{}coordinators/", self.prefix);
        let answer = self.client.range(
            &KeyRange::prefix(prefix.as_bytes()),
            &RangeOptions::default(),
        )?;
        let mut all: Vec<Registration> = answer
            .kvs
            .iter()
            .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    /// The leader as etcd has it now.
    pub fn current_leader(&self) -> Result<Option<LeaderRecord>, EtcdError> {
        Ok(self
            .client
            .get(&self.leader_key())?
            .and_then(|kv| serde_json::from_slice(&kv.value).ok()))
    }

    /// Each etcd member's health as this coordinator sees it: (endpoint, Ok(version) or
    /// Err(reason)).
    pub fn store_health(&self) -> Vec<(String, Result<String, String>)> {
        self.etcd
            .endpoints
            .iter()
            .map(|endpoint| {
                let mut one = crate::store::etcd::EtcdConfig::new([endpoint.clone()]);
                one.tls = self.etcd.tls.clone();
                one.connect_timeout = Duration::from_secs(1);
                one.request_timeout = Duration::from_secs(2);
                let status = EtcdClient::new(one).and_then(|client| client.status());
                let health = match status {
                    Ok(status) if status.errors.is_empty() => Ok(status.version),
                    Ok(status) => Err(status.errors.join("; ")),
                    Err(err) => Err(err.to_string()),
                };
                (endpoint.clone(), health)
            })
            .collect()
    }

    /// Registers this coordinator and keeps the registration alive, for ever.
    fn register_forever(&self, started: &str) {
        let key = format!("{}coordinators/{}", self.prefix, self.name);
        let record = Registration {
            name: self.name.clone(),
            url: self.url.clone(),
            started: started.to_string(),
        };
        let value = serde_json::to_vec(&record).unwrap_or_default();
        loop {
            let registered = self.client.grant(REGISTRATION_TTL).and_then(|grant| {
                let options = PutOptions {
                    lease: grant.id,
                    prev_kv: false,
                };
                self.client.put(key.as_bytes(), &value, &options)?;
                Ok(grant.id)
            });
            match registered {
                Ok(lease) => loop {
                    std::thread::sleep(Duration::from_secs(3));
                    match self.client.keepalive_once(lease) {
                        Ok(_) => {}
                        Err(EtcdError::LeaseNotFound { .. }) => break,
                        Err(err) => {
                            log::debug!("cannot renew this coordinator's registration: {err}")
                        }
                    }
                },
                Err(err) => {
                    log::warn!("cannot register this coordinator in etcd: {err}");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }

    /// Forgets a deleted node's lease key.
    pub fn forget(&self, node: &str) {
        let key = format!("{}{node}", self.lease_prefix());
        if let Err(err) = self.client.delete(&KeyRange::key(key.as_bytes()), false) {
            log::warn!("cannot delete the lease of node {node}: {err}");
        }
        lock(&self.lease_written).remove(node);
        lock(&self.lease_seen).remove(node);
    }
}

/// Starts the election, the watch and the lease writer of `coordinator`.
pub fn spawn(coordinator: &Arc<Coordinator>) -> anyhow::Result<()> {
    let Some(peers) = coordinator.peers.as_ref() else {
        return Ok(());
    };
    let start = |name: &str, body: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(body)
            .with_context(|| format!("cannot start the {name} thread"))
    };
    let c = Arc::clone(coordinator);
    start("election", Box::new(move || campaign_forever(&c)))?;
    let c = Arc::clone(coordinator);
    let follower = coordinator
        .store()
        .follower()?
        .context("a coordinator with peers keeps its objects in etcd")?;
    start("watch", Box::new(move || watch_forever(&c, follower)))?;
    let c = Arc::clone(coordinator);
    let started = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    start(
        "registration",
        Box::new(move || {
            if let Some(peers) = &c.peers {
                peers.register_forever(&started);
            }
        }),
    )?;
    let client = EtcdClient::new(peers.etcd.clone())?;
    let (rx, prefix) = (peers.lease_rx.clone(), peers.lease_prefix());
    start(
        "leases",
        Box::new(move || {
            while let Ok(node) = rx.recv_blocking() {
                let key = format!("{prefix}{node}");
                let stamp = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
                if let Err(err) =
                    client.put(key.as_bytes(), stamp.as_bytes(), &PutOptions::default())
                {
                    log::warn!("cannot renew the lease of node {node} in etcd: {err}");
                }
            }
        }),
    )?;
    Ok(())
}

/// Campaigns, leads while the lease holds, and campaigns again after losing it.
fn campaign_forever(c: &Arc<Coordinator>) {
    let Some(peers) = c.peers.as_ref() else {
        return;
    };
    loop {
        match campaign(peers) {
            Ok(Some(lease)) => {
                log::info!("became the leader (lease {lease:x})");
                c.changed();
                lead(peers, lease);
                log::warn!("stopped leading");
                // Best effort: lets another coordinator win now rather than at expiry.
                let _ = peers.client.revoke(lease);
                c.changed();
            }
            Ok(None) => {}
            Err(err) => log::warn!("election: {err}"),
        }
        std::thread::sleep(peers.ttl / 8);
    }
}

/// One attempt: Some(lease) when this coordinator won.
fn campaign(peers: &Peers) -> Result<Option<i64>, EtcdError> {
    let key = peers.leader_key();
    if let Some(current) = peers.client.get(&key)? {
        let leader = serde_json::from_slice::<LeaderRecord>(&current.value).ok();
        lock(&peers.election).leader = leader;
        return Ok(None);
    }
    let ttl_seconds = i64::try_from(peers.ttl.as_secs().max(1)).unwrap_or(i64::MAX);
    let sent = Instant::now();
    let grant = peers.client.grant(ttl_seconds)?;
    let record = LeaderRecord {
        name: peers.name.clone(),
        url: peers.url.clone(),
        since: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
    };
    let value = serde_json::to_vec(&record).unwrap_or_default();
    let txn = Txn {
        compare: vec![Compare::create_revision(&key, CompareOp::Equal, 0)],
        success: vec![TxnOp::put(
            &key,
            &value,
            PutOptions {
                lease: grant.id,
                prev_kv: false,
            },
        )],
        failure: vec![TxnOp::get(&key)],
    };
    let answer = peers.client.txn(&txn)?;
    if !answer.succeeded {
        let _ = peers.client.revoke(grant.id);
        let leader = answer.responses.into_iter().find_map(|r| match r {
            TxnOpResponse::Range(mut range) => range.kvs.pop(),
            _ => None,
        });
        lock(&peers.election).leader = leader.and_then(|kv| serde_json::from_slice(&kv.value).ok());
        return Ok(None);
    }
    let mut election = lock(&peers.election);
    election.leading_until = Some(sent + lease_margin(Duration::from_secs(grant.ttl as u64)));
    election.leader = Some(record);
    Ok(Some(grant.id))
}

/// How long after sending a renewal this coordinator may still act on it: the lease's
/// TTL less a quarter, for clock drift and a pass already under way.
fn lease_margin(ttl: Duration) -> Duration {
    ttl - ttl / 4
}

/// Renews the lease until a renewal fails for good or comes too late. Returns as soon
/// as this coordinator may no longer act as leader.
fn lead(peers: &Peers, lease: i64) {
    loop {
        let until = lock(&peers.election).leading_until;
        let Some(until) = until else {
            return;
        };
        let left = until.saturating_duration_since(Instant::now());
        std::thread::sleep(left.min(peers.ttl / 4));
        if !peers.is_leader() {
            lock(&peers.election).leading_until = None;
            return;
        }
        let sent = Instant::now();
        match peers.client.keepalive_once(lease) {
            Ok(kept) => {
                let until = sent + lease_margin(Duration::from_secs(kept.ttl.max(0) as u64));
                lock(&peers.election).leading_until = Some(until);
            }
            Err(EtcdError::LeaseNotFound { .. }) => {
                lock(&peers.election).leading_until = None;
                return;
            }
            Err(err) => log::warn!("cannot renew the leader lease: {err}"),
        }
    }
}

/// Follows the store's etcd for ever (its cache stays current) and wakes what depends on
/// a change: the controllers and long polls, and the [`Refresher`].
fn watch_forever(c: &Arc<Coordinator>, follower: crate::store::Follower) {
    let objects = format!("{}objects/", follower.prefix());
    let status = format!("{}status/", follower.prefix());
    let coordinators = format!("{}coordinators/", follower.prefix());
    let auth_prefixes: Vec<String> = AUTH_KINDS
        .iter()
        .map(|kind| format!("{objects}{kind}/"))
        .collect();
    let refresher = Refresher::spawn(c);
    follower.run(|change| {
        let keys = match change {
            Change::Everything => {
                refresher.request(true, true);
                c.changed();
                return;
            }
            Change::Keys(keys) => keys,
        };
        let starts = |prefix: &str| keys.iter().any(|k| k.starts_with(prefix.as_bytes()));
        refresher.request(
            auth_prefixes.iter().any(|p| starts(p)),
            starts(&coordinators),
        );
        if starts(&objects) || starts(&status) {
            c.changed();
        }
    })
}

/// What a change seen by the watch asks for besides waking the controllers, done on a
/// thread of its own: reading the credentials again takes the store, which a reader may
/// hold while it waits for the watch to bring its own last write.
struct Refresher {
    wake: std::sync::mpsc::SyncSender<()>,
    auth: Arc<AtomicBool>,
    admin_config: Arc<AtomicBool>,
}

impl Refresher {
    fn spawn(c: &Arc<Coordinator>) -> Refresher {
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        let refresher = Refresher {
            wake,
            auth: Arc::new(AtomicBool::new(false)),
            admin_config: Arc::new(AtomicBool::new(false)),
        };
        let (c, auth, admin_config) = (
            Arc::clone(c),
            Arc::clone(&refresher.auth),
            Arc::clone(&refresher.admin_config),
        );
        let spawned = std::thread::Builder::new()
            .name("refresh".into())
            .spawn(move || {
                while woken.recv().is_ok() {
                    if auth.swap(false, Ordering::SeqCst) {
                        if let Err(err) = c.auth.reload(&mut c.store()) {
                            log::warn!("cannot reload credentials: {err:#}");
                        }
                    }
                    if admin_config.swap(false, Ordering::SeqCst) {
                        list_coordinators(&c);
                    }
                }
            });
        if let Err(err) = spawned {
            log::error!("cannot start the refresh thread: {err}");
        }
        refresher
    }

    /// Asks for the credentials and/or the admin config's servers to be read again.
    fn request(&self, auth: bool, admin_config: bool) {
        if auth {
            self.auth.store(true, Ordering::SeqCst);
        }
        if admin_config {
            self.admin_config.store(true, Ordering::SeqCst);
        }
        if auth || admin_config {
            // A full channel already holds a wake-up that will see the flags.
            let _ = self.wake.try_send(());
        }
    }
}

/// Lists every registered coordinator in this coordinator's admin config.
fn list_coordinators(c: &Coordinator) {
    let Some(peers) = c.peers.as_ref() else {
        return;
    };
    let registered = match peers.registered() {
        Ok(registered) => registered,
        Err(err) => {
            log::warn!("cannot read the registered coordinators: {err}");
            return;
        }
    };
    let urls: Vec<String> = registered.into_iter().map(|r| r.url).collect();
    let path = c.options.state_dir.join("admin.config");
    if let Err(err) = super::auth::list_coordinators_in_admin_config(&path, &c.url, &urls) {
        log::warn!(
            "cannot list the coordinators in {}: {err:#}",
            path.display()
        );
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
