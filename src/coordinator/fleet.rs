//! Nodes as the coordinator knows them: leases renewed by each agent's poll, the
//! `Ready` condition derived from them, and every node's assignments (built by
//! [`super::assignments`]) kept until something changes.
//!
//! Leases live in memory only: a heartbeat must not write to disk. After a coordinator
//! restart every known node starts with a fresh lease, so nodes get the full grace
//! period to come back before anything is evicted.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::assignments::AllAssignments;
use crate::api::fleet::Assignments;
use crate::store::{Record, Store};

pub struct Fleet {
    leases: Mutex<HashMap<String, Instant>>,
    started: Instant,
    /// The nodes that polled their assignments here since this coordinator started.
    polled: Mutex<HashSet<String>>,
    /// The latest run a standby node reported of each CronJob (by uid, Unix seconds),
    /// kept so that a pass working from a read made before the report does not run it
    /// again.
    reported_runs: Mutex<HashMap<String, i64>>,
    /// Bumped on every change; long polls wait for it to move.
    changes: AtomicU64,
    event: event_listener::Event,
    /// Every node's assignments as of a change count: a change wakes every waiting
    /// poll, and they share one computation instead of each reading the whole store.
    cache: Mutex<Option<(u64, Arc<AllAssignments>)>>,
    /// Taken, asynchronously, by a poll that finds no assignments computed since the
    /// last change: the first computes them on a blocking thread while the others wait
    /// here, holding no thread, and find them computed.
    recompute: smol::lock::Mutex<()>,
    /// Set by a computation: it parsed every object at once, and glibc keeps those pages
    /// unless asked to give them back ([`Fleet::take_trim`]).
    trim: AtomicBool,
}

impl Fleet {
    pub fn new(_store: &Store) -> anyhow::Result<Fleet> {
        Ok(Fleet {
            leases: Mutex::new(HashMap::new()),
            started: Instant::now(),
            polled: Mutex::new(HashSet::new()),
            reported_runs: Mutex::new(HashMap::new()),
            changes: AtomicU64::new(0),
            event: event_listener::Event::new(),
            cache: Mutex::new(None),
            recompute: smol::lock::Mutex::new(()),
            trim: AtomicBool::new(false),
        })
    }

    pub fn notify(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        self.event.notify(usize::MAX);
    }

    /// Whether assignments were computed since the last call: the heap is then worth
    /// trimming, off the polls' path.
    pub fn take_trim(&self) -> bool {
        self.trim.swap(false, Ordering::Relaxed)
    }

    /// Waits for the turn to compute the assignments after a change (see `recompute`).
    pub async fn recompute_turn(&self) -> smol::lock::MutexGuard<'_, ()> {
        self.recompute.lock().await
    }

    /// A listener to register before re-checking, so no change slips in between.
    pub fn listen(&self) -> event_listener::EventListener {
        self.event.listen()
    }

    /// The assignments of `node`, computed with `compute` (all nodes at once) only when
    /// something changed since the last computation.
    pub fn assignments(
        &self,
        node: &str,
        compute: impl FnOnce() -> anyhow::Result<AllAssignments>,
    ) -> anyhow::Result<Assignments> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.changes.load(Ordering::SeqCst);
        let all = match &*cache {
            Some((at, all)) if *at == now => Arc::clone(all),
            _ => {
                let all = Arc::new(compute()?);
                *cache = Some((now, Arc::clone(&all)));
                self.trim.store(true, Ordering::Relaxed);
                all
            }
        };
        Ok(all.get(node))
    }

    /// Every node's assignments if nothing changed since they were computed: lets a
    /// woken poll whose set did not change go back to waiting without touching the
    /// store or a blocking thread.
    fn cached(&self) -> Option<Arc<AllAssignments>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match &*cache {
            Some((at, all)) if *at == self.changes.load(Ordering::SeqCst) => Some(Arc::clone(all)),
            _ => None,
        }
    }

    /// The version of `node`'s assignments, if known without computing them.
    pub fn cached_version(&self, node: &str) -> Option<String> {
        self.cached().map(|all| all.version(node).to_owned())
    }

    /// Whether `node` is known (without computing anything) to be a Node that has no
    /// pod CIDR yet.
    pub fn lacks_pod_cidr(&self, node: &str) -> bool {
        self.cached().is_some_and(|all| all.lacks_pod_cidr(node))
    }

    pub fn renew(&self, node: &str) {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        leases.insert(node.to_string(), Instant::now());
    }

    /// When the node's agent last polled (the coordinator's start if not since then).
    pub fn last_seen(&self, node: &str) -> Instant {
        let leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        leases.get(node).copied().unwrap_or(self.started)
    }

    /// A node polled its assignments here.
    pub fn polled(&self, node: &str) {
        let mut polled = self.polled.lock().unwrap_or_else(|p| p.into_inner());
        if !polled.contains(node) {
            polled.insert(node.to_owned());
        }
    }

    /// The nodes that polled here since this coordinator started, and how long ago it
    /// started.
    pub fn polled_since_start(&self) -> (HashSet<String>, Duration) {
        let polled = self.polled.lock().unwrap_or_else(|p| p.into_inner());
        (polled.clone(), self.started.elapsed())
    }

    /// Remembers a run a standby node reported, if later than the one remembered.
    pub fn record_run(&self, cron_job_uid: &str, at: i64) {
        let mut runs = self.reported_runs.lock().unwrap_or_else(|p| p.into_inner());
        let latest = runs.entry(cron_job_uid.to_owned()).or_insert(at);
        *latest = (*latest).max(at);
    }

    /// The runs standby nodes reported, by CronJob uid.
    pub fn reported_runs(&self) -> HashMap<String, i64> {
        self.reported_runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn forget(&self, node: &str) {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        leases.remove(node);
    }
}

/// `Ready` is `True` while the lease is younger than the grace period, then `Unknown`
/// (the agent stopped posting), as Kubernetes' node lifecycle controller does.
pub fn is_ready(last_seen: Instant, grace: Duration, now: Instant) -> bool {
    now.saturating_duration_since(last_seen) <= grace
}

/// A stored node as the API shows it: its object, reported status, and conditions.
pub fn node_view(record: Record, last_seen: Instant, grace: Duration, now: Instant) -> Value {
    let mut object = record.object;
    let mut status = record.status.unwrap_or_else(|| json!({}));
    let ready = is_ready(last_seen, grace, now);
    let heartbeat = std::time::SystemTime::now()
        .checked_sub(now.saturating_duration_since(last_seen))
        .map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .unwrap_or_default();
    let condition = if ready {
        json!({"type": "Ready", "status": "True", "reason": "BerthAgentReady",
               "message": "berth agent is posting ready status", "lastHeartbeatTime": heartbeat})
    } else {
        json!({"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
               "message": "berth agent stopped posting node status.", "lastHeartbeatTime": heartbeat})
    };
    if let Some(map) = status.as_object_mut() {
        map.insert("conditions".into(), json!([condition]));
    }
    if let Some(map) = object.as_object_mut() {
        map.insert("status".into(), status);
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::assignments::FleetObjects;

    fn record(kind: &str, namespace: &str, name: &str, uid: &str, object: Value) -> Record {
        Record {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
            generation: 1,
            resource_version: 1,
            creation_timestamp: String::new(),
            source: None,
            object,
            status: None,
        }
    }

    #[test]
    fn the_cache_recomputes_only_after_a_change() {
        let pod = record(
            "Pod",
            "team",
            "a",
            "uid-a",
            json!({"kind": "Pod", "metadata": {"name": "a", "namespace": "team"},
                   "spec": {"nodeName": "pi-1"}}),
        );
        let objects = FleetObjects {
            pods: vec![pod],
            ..FleetObjects::default()
        };
        let cidr: crate::model::Ipv4Cidr = "10.42.0.0/16".parse().unwrap();
        let store = Store::open_in_memory().unwrap();
        let fleet = Fleet::new(&store).unwrap();
        assert_eq!(fleet.cached_version("pi-1"), None);
        let computed = std::cell::Cell::new(0);
        let compute = || {
            computed.set(computed.get() + 1);
            Ok(AllAssignments::compute(&objects, &cidr))
        };
        let first = fleet.assignments("pi-1", compute).unwrap();
        assert_eq!(first.objects.len(), 1);
        assert_eq!(fleet.cached_version("pi-1"), Some(first.version.clone()));
        let compute = || {
            computed.set(computed.get() + 1);
            Ok(AllAssignments::compute(&objects, &cidr))
        };
        assert!(fleet
            .assignments("pi-9", compute)
            .unwrap()
            .objects
            .is_empty());
        assert_eq!(computed.get(), 1);
        fleet.notify();
        assert_eq!(fleet.cached_version("pi-1"), None);
        let compute = || {
            computed.set(computed.get() + 1);
            Ok(AllAssignments::compute(&FleetObjects::default(), &cidr))
        };
        assert!(fleet
            .assignments("pi-1", compute)
            .unwrap()
            .objects
            .is_empty());
        assert_eq!(computed.get(), 2);
    }

    #[test]
    fn readiness_follows_the_lease() {
        let now = Instant::now();
        let grace = Duration::from_secs(40);
        assert!(is_ready(now, grace, now));
        assert!(is_ready(now - Duration::from_secs(39), grace, now));
        assert!(!is_ready(now - Duration::from_secs(41), grace, now));
        let node = record(
            "Node",
            "",
            "pi-1",
            "u",
            json!({"kind": "Node", "metadata": {"name": "pi-1"}}),
        );
        let view = node_view(node, now - Duration::from_secs(60), grace, now);
        assert_eq!(view["status"]["conditions"][0]["status"], "Unknown");
    }
}
