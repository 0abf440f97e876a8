//! Nodes as the coordinator knows them: leases renewed by each agent's poll, the
//! `Ready` condition derived from them, what is bound to each node (its assignments),
//! and status reports coming back.
//!
//! Leases live in memory only: a heartbeat must not write to disk. After a coordinator
//! restart every known node starts with a fresh lease, so nodes get the full grace
//! period to come back before anything is evicted.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::api::fleet::{Assignments, FLEET_UID_ANNOTATION};
use crate::store::{Record, Store};

pub struct Fleet {
    leases: Mutex<HashMap<String, Instant>>,
    started: Instant,
    /// Bumped on every change; long polls wait for it to move.
    changes: AtomicU64,
    event: event_listener::Event,
    /// Every node's assignments as of a change count: a change wakes every waiting
    /// poll, and they share one computation instead of each reading the whole store.
    cache: Mutex<Option<(u64, Arc<AssignmentsByNode>)>>,
}

/// Every node's assignments, by node name.
type AssignmentsByNode = HashMap<String, Assignments>;

impl Fleet {
    pub fn new(_store: &Store) -> anyhow::Result<Fleet> {
        Ok(Fleet {
            leases: Mutex::new(HashMap::new()),
            started: Instant::now(),
            changes: AtomicU64::new(0),
            event: event_listener::Event::new(),
            cache: Mutex::new(None),
        })
    }

    pub fn notify(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        self.event.notify(usize::MAX);
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
        compute: impl FnOnce() -> anyhow::Result<HashMap<String, Assignments>>,
    ) -> anyhow::Result<Assignments> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.changes.load(Ordering::SeqCst);
        let all = match &*cache {
            Some((at, all)) if *at == now => Arc::clone(all),
            _ => {
                let all = Arc::new(compute()?);
                *cache = Some((now, Arc::clone(&all)));
                all
            }
        };
        Ok(all
            .get(node)
            .cloned()
            .unwrap_or_else(|| assignments_for(node, &[], &[], &[])))
    }

    /// The assignments of `node` if nothing changed since they were computed: lets a
    /// woken poll whose set did not change go back to waiting without touching the
    /// store or a blocking thread.
    pub fn cached(&self, node: &str) -> Option<Assignments> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match &*cache {
            Some((at, all)) if *at == self.changes.load(Ordering::SeqCst) => Some(
                all.get(node)
                    .cloned()
                    .unwrap_or_else(|| assignments_for(node, &[], &[], &[])),
            ),
            _ => None,
        }
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

/// Everything bound to `node`, in apply order: the namespaces of its pods, the secrets
/// they pull with, then the pods. Each object carries its coordinator uid in
/// [`FLEET_UID_ANNOTATION`]; server-set fields and status are left out, so the version
/// changes only when what the agent must run changes.
pub fn assignments_for(
    node: &str,
    namespaces: &[Record],
    secrets: &[Record],
    pods: &[Record],
) -> Assignments {
    let bound: Vec<&Record> = pods
        .iter()
        .filter(|p| p.object.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node))
        .collect();
    let wanted_namespaces: BTreeSet<&str> = bound.iter().map(|p| p.namespace.as_str()).collect();
    let mut wanted_secrets: BTreeSet<(&str, &str)> = BTreeSet::new();
    for pod in &bound {
        let refs = pod
            .object
            .pointer("/spec/imagePullSecrets")
            .and_then(Value::as_array);
        for name in refs
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("name")?.as_str())
        {
            wanted_secrets.insert((pod.namespace.as_str(), name));
        }
    }
    let mut objects = Vec::new();
    for ns in namespaces
        .iter()
        .filter(|n| wanted_namespaces.contains(n.name.as_str()))
    {
        objects.push(pushed(ns));
    }
    for secret in secrets
        .iter()
        .filter(|s| wanted_secrets.contains(&(s.namespace.as_str(), s.name.as_str())))
    {
        objects.push(pushed(secret));
    }
    for pod in bound {
        objects.push(pushed(pod));
    }
    let bytes = serde_json::to_vec(&objects).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    let version = crate::model::hex::encode(&digest[..12]);
    Assignments {
        version,
        unchanged: false,
        objects,
        network: None,
    }
}

/// Every node's assignments in one pass over the store's objects.
pub fn all_assignments(
    namespaces: &[Record],
    secrets: &[Record],
    pods: &[Record],
) -> HashMap<String, Assignments> {
    let mut by_node: HashMap<&str, Vec<Record>> = HashMap::new();
    for pod in pods {
        if let Some(node) = pod.object.pointer("/spec/nodeName").and_then(Value::as_str) {
            by_node.entry(node).or_default().push(pod.clone());
        }
    }
    by_node
        .into_iter()
        .map(|(node, pods)| {
            let set = assignments_for(node, namespaces, secrets, &pods);
            (node.to_string(), set)
        })
        .collect()
}

/// The object as pushed to an agent.
fn pushed(record: &Record) -> Value {
    let mut object = record.object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in ["uid", "resourceVersion", "generation", "creationTimestamp"] {
            meta.remove(field);
        }
        let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.insert(FLEET_UID_ANNOTATION.into(), Value::from(record.uid.clone()));
        }
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn pod(name: &str, node: Option<&str>, secret: Option<&str>) -> Record {
        let mut spec = json!({"containers": [{"name": "c", "image": "i"}]});
        if let Some(node) = node {
            spec["nodeName"] = json!(node);
        }
        if let Some(secret) = secret {
            spec["imagePullSecrets"] = json!([{"name": secret}]);
        }
        record(
            "Pod",
            "team",
            name,
            &format!("uid-{name}"),
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": name, "namespace": "team", "uid": format!("uid-{name}"), "resourceVersion": "7"},
                   "spec": spec}),
        )
    }

    #[test]
    fn a_node_gets_its_pods_and_what_they_need() {
        let namespaces = vec![
            record(
                "Namespace",
                "",
                "team",
                "n1",
                json!({"kind": "Namespace", "metadata": {"name": "team"}}),
            ),
            record(
                "Namespace",
                "",
                "other",
                "n2",
                json!({"kind": "Namespace", "metadata": {"name": "other"}}),
            ),
        ];
        let secrets = vec![
            record(
                "Secret",
                "team",
                "regcred",
                "s1",
                json!({"kind": "Secret", "metadata": {"name": "regcred", "namespace": "team"}}),
            ),
            record(
                "Secret",
                "team",
                "unrelated",
                "s2",
                json!({"kind": "Secret", "metadata": {"name": "unrelated", "namespace": "team"}}),
            ),
        ];
        let pods = vec![
            pod("a", Some("pi-1"), Some("regcred")),
            pod("b", Some("pi-2"), None),
            pod("c", None, None),
        ];
        let set = assignments_for("pi-1", &namespaces, &secrets, &pods);
        let names: Vec<(&str, &str)> = set
            .objects
            .iter()
            .map(|o| {
                (
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [("Namespace", "team"), ("Secret", "regcred"), ("Pod", "a")]
        );
        let pod = &set.objects[2];
        assert_eq!(
            pod["metadata"]["annotations"][FLEET_UID_ANNOTATION],
            "uid-a"
        );
        assert!(pod["metadata"].get("resourceVersion").is_none());

        // The version follows the content: same set, same version; a change moves it.
        let again = assignments_for("pi-1", &namespaces, &secrets, &pods);
        assert_eq!(again.version, set.version);
        let mut moved = pods.clone();
        moved[1].object["spec"]["nodeName"] = json!("pi-1");
        assert_ne!(
            assignments_for("pi-1", &namespaces, &secrets, &moved).version,
            set.version
        );
        assert!(assignments_for("pi-3", &namespaces, &secrets, &pods)
            .objects
            .is_empty());
    }

    #[test]
    fn all_nodes_at_once_match_one_at_a_time() {
        let pods = vec![
            pod("a", Some("pi-1"), None),
            pod("b", Some("pi-2"), None),
            pod("c", None, None),
        ];
        let all = all_assignments(&[], &[], &pods);
        assert_eq!(all.len(), 2);
        assert_eq!(all["pi-1"], assignments_for("pi-1", &[], &[], &pods));
        assert_eq!(all["pi-2"], assignments_for("pi-2", &[], &[], &pods));

        // The cache recomputes only after a change.
        let store = Store::open_in_memory().unwrap();
        let fleet = Fleet::new(&store).unwrap();
        let computed = std::cell::Cell::new(0);
        let compute = || {
            computed.set(computed.get() + 1);
            Ok(all_assignments(&[], &[], &pods))
        };
        assert_eq!(fleet.assignments("pi-1", compute).unwrap().objects.len(), 1);
        let compute = || {
            computed.set(computed.get() + 1);
            Ok(all_assignments(&[], &[], &pods))
        };
        assert!(fleet
            .assignments("pi-9", compute)
            .unwrap()
            .objects
            .is_empty());
        assert_eq!(computed.get(), 1);
        fleet.notify();
        let compute = || {
            computed.set(computed.get() + 1);
            Ok(HashMap::new())
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
