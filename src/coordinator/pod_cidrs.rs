//! Pod CIDRs: every Node's share of the cluster CIDR (`spec.podCIDR`, and
//! `spec.podCIDRs` with the same one network), a /24 handed out when the node joins, as
//! Kubernetes' node IPAM controller does with its range allocator. Pod addresses are then
//! unique across the fleet, and every board can route a peer's pods to that peer.
//!
//! The stored Nodes are the one record of what is taken: a /24 is used while a Node
//! names it and free again once that Node is deleted, so nothing can drift out of step.
//! Once given, a node's pod CIDR never changes (its pods' addresses and every peer's
//! routes depend on it): joining again keeps it, and no route writes it but a join and
//! [`assign_missing`]. Nodes that joined before pod CIDRs were handed out get theirs at
//! the coordinator's start or at their next poll.

use serde_json::{json, Value};

use crate::model::Ipv4Cidr;
use crate::store::{Store, StoreError};

/// Every node's share of the cluster CIDR is a /24 (254 pods; the kubelet allows 110).
pub const NODE_PREFIX: u8 = 24;

#[derive(Debug, thiserror::Error)]
pub enum PodCidrError {
    #[error(
        "no /24 of the cluster CIDR {cluster_cidr} is free: all {count} are nodes' pod CIDRs; \
         delete a node, or start the coordinator with a larger --cluster-cidr"
    )]
    Exhausted { cluster_cidr: Ipv4Cidr, count: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The lowest /24 of `cluster` that overlaps none of `used` (pod CIDRs outside the
/// cluster CIDR, from before a change of `--cluster-cidr`, take nothing from it).
pub fn lowest_free(cluster: &Ipv4Cidr, used: &[Ipv4Cidr]) -> Result<Ipv4Cidr, PodCidrError> {
    let count = match cluster.prefix() {
        prefix @ 0..=NODE_PREFIX => 1u64 << (NODE_PREFIX - prefix),
        _ => 0,
    };
    let per_subnet = 1u64 << (32 - NODE_PREFIX);
    // The /24s each used network blocks, as index ranges [start, end).
    let mut blocked: Vec<(u64, u64)> = used
        .iter()
        .filter_map(|taken| {
            if taken.covers(cluster) {
                Some((0, count))
            } else if cluster.covers(taken) {
                let start = cluster.index_of(taken.network())? / per_subnet;
                Some((start, start + taken.size().div_ceil(per_subnet)))
            } else {
                None
            }
        })
        .collect();
    blocked.sort_unstable();
    let mut candidate = 0;
    for (start, end) in blocked {
        if start > candidate {
            break;
        }
        candidate = candidate.max(end);
    }
    match cluster.subnet(NODE_PREFIX, candidate) {
        Some(free) if candidate < count => Ok(free),
        _ => Err(PodCidrError::Exhausted {
            cluster_cidr: *cluster,
            count,
        }),
    }
}

/// The pod CIDR a Node object names (`spec.podCIDR`), if it names a valid one.
pub fn of_node(node: &Value) -> Option<Ipv4Cidr> {
    node.pointer("/spec/podCIDR")?.as_str()?.parse().ok()
}

/// Gives a Node object `cidr` as `spec.podCIDR` and `spec.podCIDRs`.
pub fn set_on_node(node: &mut Value, cidr: Ipv4Cidr) {
    if !node.get("spec").is_some_and(Value::is_object) {
        node["spec"] = json!({});
    }
    node["spec"]["podCIDR"] = json!(cidr.to_string());
    node["spec"]["podCIDRs"] = json!([cidr.to_string()]);
}

/// The pod CIDRs the stored Nodes hold.
fn used(store: &Store) -> Result<Vec<Ipv4Cidr>, StoreError> {
    Ok(store
        .list("Node", None)?
        .iter()
        .filter_map(|record| of_node(&record.object))
        .collect())
}

/// For a Node about to be stored at its join: gives it the lowest free /24 unless it
/// has a pod CIDR already (a node joining again keeps its own). The caller holds the
/// store from here to the write, so no other join can take the same one.
pub fn assign_at_join(
    store: &Store,
    cluster: &Ipv4Cidr,
    node: &mut Value,
) -> Result<Option<Ipv4Cidr>, PodCidrError> {
    if of_node(node).is_some() {
        return Ok(None);
    }
    let cidr = lowest_free(cluster, &used(store)?)?;
    set_on_node(node, cidr);
    Ok(Some(cidr))
}

/// A node that had no pod CIDR, and what it got or why it got none.
pub type Outcome = (String, Result<Ipv4Cidr, PodCidrError>);

/// Gives every stored Node without a pod CIDR (or only `only`, when given) the lowest
/// free /24, in name order, in one write.
pub fn assign_missing(
    store: &mut Store,
    cluster: &Ipv4Cidr,
    only: Option<&str>,
) -> Result<Vec<Outcome>, StoreError> {
    let records = store.list("Node", None)?;
    let mut taken: Vec<Ipv4Cidr> = records
        .iter()
        .filter_map(|record| of_node(&record.object))
        .collect();
    let mut outcomes = Vec::new();
    let mut writes = Vec::new();
    for record in records {
        if of_node(&record.object).is_some() || only.is_some_and(|name| name != record.name) {
            continue;
        }
        let outcome = lowest_free(cluster, &taken);
        if let Ok(cidr) = &outcome {
            taken.push(*cidr);
            let mut object = record.object;
            set_on_node(&mut object, *cidr);
            writes.push(object);
        }
        outcomes.push((record.name, outcome));
    }
    if !writes.is_empty() {
        store.put_all(writes, None)?;
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Ipv4Cidr {
        text.parse().unwrap()
    }

    #[test]
    fn the_lowest_free_24_is_chosen() {
        let cluster = cidr("10.42.0.0/16");
        assert_eq!(lowest_free(&cluster, &[]).unwrap(), cidr("10.42.0.0/24"));
        let used = [cidr("10.42.0.0/24"), cidr("10.42.2.0/24")];
        assert_eq!(lowest_free(&cluster, &used).unwrap(), cidr("10.42.1.0/24"));
        let used = [
            cidr("10.42.1.0/24"),
            cidr("10.42.0.0/24"),
            cidr("10.42.2.0/24"),
        ];
        assert_eq!(lowest_free(&cluster, &used).unwrap(), cidr("10.42.3.0/24"));
        // A freed one (its node deleted) is the next one handed out.
        let used = [cidr("10.42.0.0/24"), cidr("10.42.2.0/24")];
        assert_eq!(lowest_free(&cluster, &used).unwrap(), cidr("10.42.1.0/24"));
    }

    #[test]
    fn overlapping_and_foreign_networks_are_respected() {
        let cluster = cidr("10.42.0.0/16");
        // A wider network (a node's --pod-cidr from before) blocks every /24 in it.
        let used = [cidr("10.42.0.0/23")];
        assert_eq!(lowest_free(&cluster, &used).unwrap(), cidr("10.42.2.0/24"));
        // A narrower one blocks its /24.
        let used = [cidr("10.42.0.128/25")];
        assert_eq!(lowest_free(&cluster, &used).unwrap(), cidr("10.42.1.0/24"));
        // Pod CIDRs from another cluster CIDR take nothing from this one.
        let used = [cidr("10.99.0.0/24")];
        assert_eq!(lowest_free(&cluster, &used).unwrap(), cidr("10.42.0.0/24"));
    }

    #[test]
    fn exhaustion_names_the_cluster_cidr() {
        let cluster = cidr("10.42.0.0/23");
        let used = [cidr("10.42.0.0/24"), cidr("10.42.1.0/24")];
        let err = lowest_free(&cluster, &used).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("cluster CIDR 10.42.0.0/23"), "{message}");
        assert!(message.contains("all 2 are"), "{message}");
        assert!(message.contains("--cluster-cidr"), "{message}");
        assert!(lowest_free(&cluster, &[cidr("10.0.0.0/8")]).is_err());
    }

    fn node(name: &str, pod_cidr: Option<&str>) -> Value {
        let mut node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
        if let Some(pod_cidr) = pod_cidr {
            set_on_node(&mut node, cidr(pod_cidr));
        }
        node
    }

    fn stored(store: &Store, name: &str) -> Option<Ipv4Cidr> {
        of_node(&store.get("Node", "", name).unwrap().unwrap().object)
    }

    #[test]
    fn nodes_without_one_get_unique_ones_and_keep_them() {
        let mut store = Store::open_in_memory().unwrap();
        let nodes = vec![
            node("pi-1", None),
            node("pi-2", Some("10.42.0.0/24")),
            node("pi-3", None),
        ];
        store.put_all(nodes, None).unwrap();
        let cluster = cidr("10.42.0.0/16");
        let outcomes = assign_missing(&mut store, &cluster, None).unwrap();
        let given: Vec<(&str, Ipv4Cidr)> = outcomes
            .iter()
            .map(|(name, outcome)| (name.as_str(), *outcome.as_ref().unwrap()))
            .collect();
        assert_eq!(
            given,
            [
                ("pi-1", cidr("10.42.1.0/24")),
                ("pi-3", cidr("10.42.2.0/24"))
            ]
        );
        assert_eq!(stored(&store, "pi-2"), Some(cidr("10.42.0.0/24")));
        let record = store.get("Node", "", "pi-3").unwrap().unwrap();
        assert_eq!(record.object["spec"]["podCIDRs"], json!(["10.42.2.0/24"]));
        // Stable: nothing more to do, and nothing moves.
        assert!(assign_missing(&mut store, &cluster, None)
            .unwrap()
            .is_empty());
        assert_eq!(stored(&store, "pi-1"), Some(cidr("10.42.1.0/24")));

        // A joining node gets the lowest free one; a deleted node's is free again.
        store
            .delete_all(&[crate::store::Key::new("Node", "", "pi-1")])
            .unwrap();
        let mut joining = node("pi-4", None);
        let given = assign_at_join(&store, &cluster, &mut joining).unwrap();
        assert_eq!(given, Some(cidr("10.42.1.0/24")));
        assert_eq!(of_node(&joining), given);
        // One that has a pod CIDR keeps it.
        let mut again = node("pi-2", Some("10.42.0.0/24"));
        assert_eq!(assign_at_join(&store, &cluster, &mut again).unwrap(), None);
        assert_eq!(of_node(&again), Some(cidr("10.42.0.0/24")));
    }

    #[test]
    fn only_the_named_node_is_given_one_and_exhaustion_is_reported() {
        let mut store = Store::open_in_memory().unwrap();
        store
            .put_all(vec![node("a", None), node("b", None)], None)
            .unwrap();
        let cluster = cidr("10.42.0.0/24");
        let outcomes = assign_missing(&mut store, &cluster, Some("b")).unwrap();
        assert_eq!(outcomes.len(), 1);
        assert_eq!(outcomes[0].0, "b");
        assert_eq!(stored(&store, "b"), Some(cidr("10.42.0.0/24")));
        assert_eq!(stored(&store, "a"), None);
        let outcomes = assign_missing(&mut store, &cluster, None).unwrap();
        assert_eq!(outcomes.len(), 1);
        let Err(PodCidrError::Exhausted { cluster_cidr, .. }) = &outcomes[0].1 else {
            panic!("{outcomes:?}");
        };
        assert_eq!(*cluster_cidr, cluster);
        assert_eq!(stored(&store, "a"), None);
    }
}
