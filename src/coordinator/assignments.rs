//! What each node is given (its assignments, [`crate::api::fleet::Assignments`]), built
//! for every node at once from one read of the store:
//!
//! - its own objects: the pods bound to it and what they need (their namespaces, the
//!   secrets they pull with), and the PersistentVolumeClaims whose data it keeps (their
//!   `volume.kubernetes.io/selected-node`), with or without pods, so it keeps their
//!   directories until they are deleted — a claim being deleted is left out, and the node
//!   removes its copy once its own pods no longer use it;
//! - what every node gets: all Services, Endpoints and EndpointSlices with their
//!   namespaces, since every board programs every Service (the endpoints behind one may
//!   be on any board) and every board's DNS answers for the whole fleet;
//! - the pod network from its point of view: the cluster CIDR, its own pod CIDR, and
//!   every other node's pod CIDR and `InternalIP`.
//!
//! Objects are in apply order (namespaces, secrets, claims, Services and endpoints, pods),
//! each with its coordinator uid in [`FLEET_UID_ANNOTATION`] and without status or
//! server-set fields, so the version — a digest of everything above — changes only when what the
//! agent must do changes, and idle polls stay `unchanged`.
//!
//! What every node gets is held once and shared, not copied per node: a fleet of a
//! thousand boards must not keep a thousand copies of every Service and of the node list.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::pod_cidrs;
use crate::api::fleet::{
    Assignments, FleetNetwork, PeerNode, FLEET_UID_ANNOTATION, STANDBY_NODE_ANNOTATION,
};
use crate::model::{Ipv4Cidr, SELECTED_NODE_ANNOTATION};
use crate::store::{Record, Store, StoreError};

/// The kinds every node gets, in apply order.
const SERVICE_KINDS: [&str; 3] = ["Service", "Endpoints", "EndpointSlice"];

/// What every node's assignments are made of, as read from the store.
#[derive(Clone, Debug, Default)]
pub struct FleetObjects {
    /// With the status their agents reported (`status.addresses`).
    pub nodes: Vec<Record>,
    pub namespaces: Vec<Record>,
    pub config_maps: Vec<Record>,
    pub secrets: Vec<Record>,
    /// PersistentVolumeClaims placed on a node and not being deleted.
    pub claims: Vec<Record>,
    pub pods: Vec<Record>,
    /// Services, Endpoints and EndpointSlices.
    pub services: Vec<Record>,
    /// CronJobs with a standby node ([`super::cron_standby`]).
    pub cron_jobs: Vec<Record>,
}

impl FleetObjects {
    pub fn load(store: &Store) -> Result<FleetObjects, StoreError> {
        let mut services = Vec::new();
        for kind in SERVICE_KINDS {
            services.extend(store.list(kind, None)?);
        }
        Ok(FleetObjects {
            nodes: store.list("Node", None)?,
            namespaces: store.list("Namespace", None)?,
            config_maps: store.list("ConfigMap", None)?,
            secrets: store.list("Secret", None)?,
            claims: placed_claims(store.list("PersistentVolumeClaim", None)?),
            pods: store.list("Pod", None)?,
            services,
            cron_jobs: store
                .list("CronJob", None)?
                .into_iter()
                .filter(|r| standby_of(r).is_some())
                .collect(),
        })
    }
}

/// Every node's assignments, computed together.
#[derive(Clone, Debug)]
pub struct AllAssignments {
    by_node: HashMap<String, NodeSet>,
    /// The set of a node that has neither a Node object nor pods.
    other: NodeSet,
    /// Services, Endpoints and EndpointSlices as pushed, for every node.
    services: Vec<Value>,
    /// Every node with a pod CIDR and an address, sorted by name.
    peers: Vec<PeerNode>,
    cluster_cidr: String,
    /// Nodes that have no pod CIDR yet.
    without_pod_cidr: BTreeSet<String>,
}

/// One node's own part of its assignments.
#[derive(Clone, Debug)]
struct NodeSet {
    version: String,
    /// Namespaces (its pods', its claims' and the Services'), then its pods' secrets, then
    /// its claims.
    head: Vec<Value>,
    pods: Vec<Value>,
    pod_cidr: Option<Ipv4Cidr>,
}

impl AllAssignments {
    pub fn compute(objects: &FleetObjects, cluster_cidr: &Ipv4Cidr) -> AllAssignments {
        let services: Vec<Value> = objects.services.iter().map(pushed).collect();
        let service_namespaces: BTreeSet<&str> = objects
            .services
            .iter()
            .map(|s| s.namespace.as_str())
            .collect();
        let peers = peers(&objects.nodes);
        // Digested once: every node's version covers them.
        let shared = Sha256::new()
            .chain_update(to_bytes(&services))
            .chain_update(cluster_cidr.to_string())
            .finalize();
        let peer_digests = PeerDigests::of(&peers);
        let mut pods_by_node: HashMap<&str, Vec<&Record>> = HashMap::new();
        for pod in &objects.pods {
            if let Some(node) = pod.object.pointer("/spec/nodeName").and_then(Value::as_str) {
                pods_by_node.entry(node).or_default().push(pod);
            }
        }
        let pod_cidrs: HashMap<&str, Ipv4Cidr> = objects
            .nodes
            .iter()
            .filter_map(|n| Some((n.name.as_str(), pod_cidrs::of_node(&n.object)?)))
            .collect();
        let set_of = |node: &str| {
            let pods = pods_by_node.get(node).map_or(&[][..], Vec::as_slice);
            let network = pod_cidrs
                .get(node)
                .map(|cidr| (*cidr, peer_digests.without(node)));
            node_set(objects, node, &service_namespaces, pods, network, &shared)
        };
        let names: BTreeSet<&str> = objects
            .nodes
            .iter()
            .map(|n| n.name.as_str())
            .chain(pods_by_node.keys().copied())
            .chain(objects.claims.iter().filter_map(claim_node))
            .chain(objects.cron_jobs.iter().filter_map(standby_of))
            .collect();
        AllAssignments {
            by_node: names
                .into_iter()
                .map(|node| (node.to_owned(), set_of(node)))
                .collect(),
            other: set_of(""),
            services,
            peers,
            cluster_cidr: cluster_cidr.to_string(),
            without_pod_cidr: objects
                .nodes
                .iter()
                .filter(|n| !pod_cidrs.contains_key(n.name.as_str()))
                .map(|n| n.name.clone())
                .collect(),
        }
    }

    fn set(&self, node: &str) -> &NodeSet {
        self.by_node.get(node).unwrap_or(&self.other)
    }

    pub fn version(&self, node: &str) -> &str {
        &self.set(node).version
    }

    /// Whether `node` is a Node still waiting for its pod CIDR.
    pub fn lacks_pod_cidr(&self, node: &str) -> bool {
        self.without_pod_cidr.contains(node)
    }

    /// The assignments of `node`, put together from its own part and the shared ones.
    pub fn get(&self, node: &str) -> Assignments {
        let set = self.set(node);
        let mut objects = Vec::with_capacity(set.head.len() + self.services.len() + set.pods.len());
        objects.extend(set.head.iter().cloned());
        objects.extend(self.services.iter().cloned());
        objects.extend(set.pods.iter().cloned());
        let network = set.pod_cidr.map(|pod_cidr| FleetNetwork {
            cluster_cidr: self.cluster_cidr.clone(),
            pod_cidr: pod_cidr.to_string(),
            peers: self
                .peers
                .iter()
                .filter(|peer| peer.name != node)
                .cloned()
                .collect(),
        });
        Assignments {
            version: set.version.clone(),
            unchanged: false,
            objects,
            network,
        }
    }
}

/// A digest of every peer, so each node's version covers its peers without digesting
/// the whole list once per node: digests of single peers combined by XOR, from which
/// one node's own is taken out again in constant time (names are unique, so no peer
/// cancels another).
struct PeerDigests {
    each: HashMap<String, [u8; 32]>,
    all: [u8; 32],
}

impl PeerDigests {
    fn of(peers: &[PeerNode]) -> PeerDigests {
        let mut all = [0u8; 32];
        let mut each = HashMap::new();
        for peer in peers {
            let digest: [u8; 32] = Sha256::digest(to_bytes(peer)).into();
            xor_into(&mut all, &digest);
            each.insert(peer.name.clone(), digest);
        }
        PeerDigests { each, all }
    }

    /// The digest of every peer but `node`.
    fn without(&self, node: &str) -> [u8; 32] {
        let mut digest = self.all;
        if let Some(own) = self.each.get(node) {
            xor_into(&mut digest, own);
        }
        digest
    }
}

fn xor_into(into: &mut [u8; 32], other: &[u8; 32]) {
    for (a, b) in into.iter_mut().zip(other) {
        *a ^= b;
    }
}

/// One node's own part: the namespaces of its pods, its claims and the Services, the
/// ConfigMaps and Secrets its pods read or pull with, the claims it keeps (in apply order:
/// before the pods), its pods; its version digests them with `shared` (the digest of what
/// every node gets) and, for a node with a pod CIDR, that CIDR and its peers' digest.
fn node_set(
    objects: &FleetObjects,
    node: &str,
    service_namespaces: &BTreeSet<&str>,
    pods: &[&Record],
    network: Option<(Ipv4Cidr, [u8; 32])>,
    shared: &[u8],
) -> NodeSet {
    let claims: Vec<&Record> = objects
        .claims
        .iter()
        .filter(|c| !node.is_empty() && claim_node(c) == Some(node))
        .collect();
    let cron_jobs: Vec<&Record> = objects
        .cron_jobs
        .iter()
        .filter(|c| !node.is_empty() && standby_of(c) == Some(node))
        .collect();
    let mut wanted_namespaces = service_namespaces.clone();
    wanted_namespaces.extend(pods.iter().map(|p| p.namespace.as_str()));
    wanted_namespaces.extend(claims.iter().map(|c| c.namespace.as_str()));
    wanted_namespaces.extend(cron_jobs.iter().map(|c| c.namespace.as_str()));
    let mut wanted_secrets: BTreeSet<(&str, String)> = BTreeSet::new();
    let mut wanted_config_maps: BTreeSet<(&str, String)> = BTreeSet::new();
    // What the pods read, and what a standby CronJob's pods will.
    let specs = pods.iter().map(|pod| (pod, "/spec")).chain(
        cron_jobs
            .iter()
            .map(|cj| (cj, "/spec/jobTemplate/spec/template/spec")),
    );
    for (record, pointer) in specs {
        let namespace = record.namespace.as_str();
        let spec = record.object.pointer(pointer).cloned().unwrap_or_default();
        let Ok(spec) = serde_json::from_value::<crate::model::PodSpec>(spec) else {
            continue;
        };
        let (config_maps, secrets) = spec.config_references();
        let pull_secrets = spec.image_pull_secrets.into_iter().map(|r| r.name);
        wanted_secrets.extend(
            secrets
                .into_iter()
                .chain(pull_secrets)
                .map(|s| (namespace, s)),
        );
        wanted_config_maps.extend(config_maps.into_iter().map(|c| (namespace, c)));
    }
    let wanted = |set: &BTreeSet<(&str, String)>, record: &Record| {
        set.contains(&(record.namespace.as_str(), record.name.clone()))
    };
    let mut head = Vec::new();
    for ns in objects
        .namespaces
        .iter()
        .filter(|n| wanted_namespaces.contains(n.name.as_str()))
    {
        head.push(pushed(ns));
    }
    for config_map in objects
        .config_maps
        .iter()
        .filter(|c| wanted(&wanted_config_maps, c))
    {
        head.push(pushed(config_map));
    }
    for secret in objects
        .secrets
        .iter()
        .filter(|s| wanted(&wanted_secrets, s))
    {
        head.push(pushed(secret));
    }
    head.extend(claims.into_iter().map(pushed));
    head.extend(cron_jobs.into_iter().map(pushed));
    let pods: Vec<Value> = pods.iter().map(|pod| pushed(pod)).collect();
    let digest = Sha256::new()
        .chain_update(to_bytes(&head))
        .chain_update(to_bytes(&pods))
        .chain_update(shared)
        .chain_update(
            network
                .map(|(cidr, _)| cidr.to_string())
                .unwrap_or_default(),
        )
        .chain_update(network.map(|(_, peers)| peers).unwrap_or_default())
        .finalize();
    NodeSet {
        version: crate::model::hex::encode(&digest[..12]),
        head,
        pods,
        pod_cidr: network.map(|(cidr, _)| cidr),
    }
}

/// The standby node of a CronJob not being deleted.
fn standby_of(cron_job: &Record) -> Option<&str> {
    if cron_job
        .object
        .pointer("/metadata/deletionTimestamp")
        .is_some()
    {
        return None;
    }
    cron_job
        .object
        .pointer("/metadata/annotations")?
        .get(STANDBY_NODE_ANNOTATION)?
        .as_str()
        .filter(|node| !node.is_empty())
}

/// The claims placed on a node and not being deleted: those some node keeps.
fn placed_claims(records: Vec<Record>) -> Vec<Record> {
    records
        .into_iter()
        .filter(|r| claim_node(r).is_some())
        .filter(|r| r.object.pointer("/metadata/deletionTimestamp").is_none())
        .collect()
}

/// The node a claim keeps its data on (`volume.kubernetes.io/selected-node`).
fn claim_node(claim: &Record) -> Option<&str> {
    claim
        .object
        .pointer("/metadata/annotations")?
        .get(SELECTED_NODE_ANNOTATION)?
        .as_str()
        .filter(|node| !node.is_empty())
}

fn to_bytes<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Every node with a pod CIDR and an `InternalIP` (an IPv4 address: what peers route
/// and tunnel to), sorted by name.
fn peers(nodes: &[Record]) -> Vec<PeerNode> {
    let mut peers: Vec<PeerNode> = nodes
        .iter()
        .filter_map(|node| {
            Some(PeerNode {
                name: node.name.clone(),
                pod_cidr: pod_cidrs::of_node(&node.object)?.to_string(),
                address: internal_ip(node.status.as_ref()?)?.to_string(),
            })
        })
        .collect();
    crate::support::sort::sort_by(&mut peers, |a, b| a.name.cmp(&b.name));
    peers
}

/// The first `InternalIP` of a node's `status.addresses`.
pub fn internal_ip(status: &Value) -> Option<Ipv4Addr> {
    status
        .get("addresses")?
        .as_array()?
        .iter()
        .filter(|a| a.get("type").and_then(Value::as_str) == Some("InternalIP"))
        .find_map(|a| a.get("address")?.as_str()?.parse().ok())
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
#[path = "assignments_tests.rs"]
mod tests;
