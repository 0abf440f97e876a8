//! The fleet's controller loop, one pass at a time on its own thread: the node lifecycle
//! controller, then the controllers every scope shares ([`crate::controllers`]:
//! namespace cascade, Deployments, garbage collection, Endpoints) on the fleet's store,
//! with pod readiness and addresses as the agents report them; then the scheduler binds
//! pending pods ([`super::scheduling`]). A pass that wrote anything (new Endpoints
//! among it) wakes every agent's poll, so every board learns the fleet's endpoints.
//!
//! Node loss: a node whose agent has not polled for `node_monitor_grace` is
//! `Ready=Unknown`; after a further `pod_eviction_timeout` its pods are removed
//! ([`crate::controllers::node_lifecycle`]), the Deployment controller replaces them and
//! the scheduler places the replacements on other nodes. The lost node learns from its
//! next assignments that those pods are no longer its own and stops them — duplicates
//! can exist only while it is cut off.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;

use super::cron_standby;
use super::fleet::is_ready;
use super::scheduling::schedule_pending;
use super::Coordinator;
use crate::controllers::daemon_set::NodeView;
use crate::controllers::node_lifecycle::{self, NodeFacts};
use crate::controllers::{deployment_status, driver, reconcile_all, Change, World};
use crate::store::Record;

/// A pass runs at least this often: leases expire without any request arriving.
const PERIOD: Duration = Duration::from_secs(1);

pub fn spawn(
    coordinator: Arc<Coordinator>,
    wake: smol::channel::Receiver<()>,
) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("controllers".into())
        .spawn(move || loop {
            smol::block_on(smol::future::or(
                async {
                    let _ = wake.recv().await;
                },
                async {
                    smol::Timer::after(PERIOD).await;
                },
            ));
            observe_peer_leases(&coordinator);
            // A computation of every node's assignments parsed every object at once;
            // without a trim glibc keeps those pages (a fleet of a thousand boards went
            // from 64 to 48 MiB with it). Done here, not in the poll that computed.
            if coordinator.fleet.take_trim() {
                crate::support::memory::trim_heap();
            }
            // Only the leader acts; the others serve the API from the shared store.
            if !coordinator.is_leader() {
                continue;
            }
            match pass(&coordinator) {
                Ok(true) => coordinator.fleet.notify(),
                Ok(false) => {}
                Err(err) => log::error!("controllers: {err:#}"),
            }
        })
        .context("cannot start the controller thread")?;
    Ok(())
}

/// Renews, in this coordinator's memory, the lease of every node whose lease key
/// another coordinator (or this one) wrote since the last look.
fn observe_peer_leases(c: &Coordinator) {
    let Some(peers) = &c.peers else {
        return;
    };
    match peers.changed_leases() {
        Ok(nodes) => {
            for node in nodes {
                c.fleet.renew(&node);
            }
        }
        Err(err) => log::warn!("cannot read node leases from etcd: {err}"),
    }
}

/// Adds to `world` the readiness the agents report of their pods, and since when each
/// has been ready (the `Ready` condition's `lastTransitionTime`).
fn observe_reported(world: &mut World) {
    world.observe_statuses(|pod| pod.status.clone());
    world.ready_since = world
        .pods
        .iter()
        .filter(|pod| world.ready_pods.contains(&pod.metadata.uid))
        .filter_map(|pod| {
            let ready = pod.status.conditions.iter().find(|c| c.type_ == "Ready")?;
            let since = deployment_status::seconds(ready.last_transition_time.as_deref())?;
            Some((pod.metadata.uid.clone(), since))
        })
        .collect();
}

/// A world for showing Deployments, ReplicaSets and DaemonSets, with readiness as
/// reported (and the nodes, when `with_nodes`).
pub fn view_world(
    c: &Coordinator,
    replica_sets: Vec<Record>,
    pods: Vec<Record>,
    with_nodes: bool,
) -> anyhow::Result<World> {
    let mut world = driver::view_world(replica_sets, pods, SystemTime::now());
    observe_reported(&mut world);
    if with_nodes {
        world.nodes = node_views(c, Instant::now())?;
    }
    Ok(world)
}

/// Every node as the DaemonSet controller sees it.
fn node_views(c: &Coordinator, now: Instant) -> anyhow::Result<Vec<NodeView>> {
    let grace = c.options.node_monitor_grace;
    let records = c.store().list("Node", None)?;
    Ok(records
        .into_iter()
        .map(|node| {
            let labels = node
                .object
                .pointer("/metadata/labels")
                .and_then(|l| serde_json::from_value(l.clone()).ok())
                .unwrap_or_default();
            let taints = node
                .object
                .pointer("/spec/taints")
                .and_then(|t| serde_json::from_value(t.clone()).ok())
                .unwrap_or_default();
            NodeView {
                unreachable: !is_ready(c.fleet.last_seen(&node.name), grace, now),
                name: node.name,
                labels,
                taints,
            }
        })
        .collect())
}

/// One pass; returns whether anything changed.
fn pass(c: &Coordinator) -> anyhow::Result<bool> {
    let now = Instant::now();
    let grace = c.options.node_monitor_grace;
    // Taken before the read: a node heard from by then had reported its runs before it.
    let polled = c.fleet.polled_since_start();
    let mut world = {
        let store = c.store();
        let mut world = driver::load(&store, SystemTime::now())?;
        driver::add_time_zones(&mut world, &c.zones);
        observe_reported(&mut world);
        world.pod_ips = reported_pod_ips(&world.pods);
        world
    };
    if !world.daemon_sets.is_empty() {
        world.nodes = node_views(c, now)?;
    }
    let nodes = node_facts(c, &world.pods, now)?;
    node_lifecycle::unready_unreachable(&mut world, &nodes);
    let evictions: Vec<Change> = world
        .pods
        .iter()
        .filter_map(|pod| node_lifecycle::reconcile(pod, &nodes))
        .collect();
    world.apply(&evictions);
    let mut changes = evictions;
    let node_ready = |name: &str| is_ready(c.fleet.last_seen(name), grace, now);
    let mut changed = cron_standby::pick_standby_nodes(c, &world.cron_jobs, &node_ready)?;
    cron_standby::hold_until_heard(c, &polled, &mut world);
    changes.extend(reconcile_all(&mut world));
    changed |=
        !changes.is_empty() && driver::write(&mut c.store(), changes, &world.now, &c.events)?;
    changed |= schedule_pending(c, &node_ready)?;
    Ok(changed)
}

/// Pod addresses as the agents report them (`status.podIP`), by pod uid: the endpoints
/// controller lists them fleet-wide, whichever board each pod runs on.
fn reported_pod_ips(pods: &[crate::model::Pod]) -> HashMap<String, String> {
    pods.iter()
        .filter_map(|pod| {
            let ip = pod.status.pod_ip.as_ref().filter(|ip| !ip.is_empty())?;
            Some((pod.metadata.uid.clone(), ip.clone()))
        })
        .collect()
}

/// The nodes pods are bound to that exist, those unreachable and those lost for longer
/// than the eviction timeout. Nodes are read only when a pod names them: this runs every second, and a
/// thousand idle boards must not cost a thousand rows each time.
fn node_facts(
    c: &Coordinator,
    pods: &[crate::model::Pod],
    now: Instant,
) -> anyhow::Result<NodeFacts> {
    let evict_after = c.options.node_monitor_grace + c.options.pod_eviction_timeout;
    let bound: HashSet<&str> = pods
        .iter()
        .filter_map(|p| p.spec.node_name.as_deref())
        .collect();
    let mut facts = NodeFacts::default();
    let store = c.store();
    facts.now = Some(SystemTime::now());
    for node in bound {
        if let Some(record) = store.get("Node", "", node)? {
            facts.known.insert(node.to_string());
            let taints: Vec<crate::model::Taint> = record
                .object
                .pointer("/spec/taints")
                .and_then(|t| serde_json::from_value(t.clone()).ok())
                .unwrap_or_default();
            let no_execute: Vec<_> = taints
                .into_iter()
                .filter(|t| t.effect == "NoExecute")
                .collect();
            if !no_execute.is_empty() {
                facts.no_execute.insert(node.to_string(), no_execute);
            }
        }
        let silent = now.saturating_duration_since(c.fleet.last_seen(node));
        if silent > evict_after {
            facts.lost.insert(node.to_string());
        }
        if silent > c.options.node_monitor_grace {
            facts.unreachable.insert(node.to_string());
        }
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Pod;

    #[test]
    fn pod_addresses_come_from_the_reported_status() {
        let pod = |uid: &str, status: serde_json::Value| -> Pod {
            let mut pod: Pod = serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": uid, "namespace": "default", "uid": uid},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}))
            .unwrap();
            pod.status = serde_json::from_value(status).unwrap();
            pod
        };
        let pods = [
            pod(
                "a",
                serde_json::json!({"phase": "Running", "podIP": "10.42.1.5"}),
            ),
            pod("b", serde_json::json!({"phase": "Pending"})),
            pod("c", serde_json::json!({"podIP": ""})),
        ];
        let ips = reported_pod_ips(&pods);
        assert_eq!(ips.len(), 1);
        assert_eq!(ips["a"], "10.42.1.5");
    }
}
