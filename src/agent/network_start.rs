//! When the pod network starts, and with which pod CIDR.
//!
//! A lone board starts it at once with the first /24 of its cluster CIDR (or
//! `--pod-cidr`). A board in a fleet uses the pod CIDR its coordinator handed it: the
//! last one it was given is kept in the store, so a board that restarts while the
//! coordinator is away comes back with the same network, routes and all. A board that
//! joined but has not heard from its coordinator yet starts the network with the first
//! assignments; until then pods that need it wait (see `ensure_sandbox`).

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::Context;

use super::network::PodNetwork;
use super::{reconcile, Agent};
use crate::api::fleet::FleetNetwork;
use crate::model::Ipv4Cidr;

/// The store meta key holding the last [`FleetNetwork`] from the coordinator.
const FLEET_NETWORK_KEY: &str = "fleet-network";

/// Starts the pod network at agent start when its pod CIDR is known by then.
pub fn at_boot(agent: &Arc<Agent>, in_fleet: bool) -> anyhow::Result<()> {
    if !in_fleet {
        let pod_cidr = agent
            .options
            .network
            .board_pod_cidr()
            .context("the cluster CIDR has no /24 for this board")?;
        return start(agent, pod_cidr, None);
    }
    match saved(agent)? {
        Some(fleet) => {
            let pod_cidr = parse_cidr(&fleet.pod_cidr, "pod CIDR")?;
            start(agent, pod_cidr, Some(&fleet))
        }
        None => {
            log::info!("the pod network starts once the coordinator names this board's pod CIDR");
            Ok(())
        }
    }
}

/// What a new set of assignments says of the network: kept, and programmed.
pub fn on_assignments(agent: &Arc<Agent>, fleet: Option<&FleetNetwork>) -> anyhow::Result<()> {
    if !agent.options.network.enabled() {
        return Ok(());
    }
    let Some(fleet) = fleet else {
        // A coordinator without a pod network: this board runs its own, alone.
        if agent.network().is_none() {
            let pod_cidr = agent
                .options
                .network
                .board_pod_cidr()
                .context("the cluster CIDR has no /24 for this board")?;
            start(agent, pod_cidr, None)?;
        }
        return Ok(());
    };
    let text = serde_json::to_string(fleet)?;
    agent.store().set_meta(FLEET_NETWORK_KEY, &text)?;
    let pod_cidr = parse_cidr(&fleet.pod_cidr, "pod CIDR")?;
    match agent.network() {
        None => start(agent, pod_cidr, Some(fleet)),
        Some(network) => {
            if network.pod_cidr != pod_cidr {
                log::error!(
                    "the coordinator now gives this board pod CIDR {pod_cidr}, but its pods use \
                     {}; restart the agent to move them",
                    network.pod_cidr
                );
            }
            network.sync_peers(fleet)
        }
    }
}

fn saved(agent: &Agent) -> anyhow::Result<Option<FleetNetwork>> {
    let Some(text) = agent.store().get_meta(FLEET_NETWORK_KEY)? else {
        return Ok(None);
    };
    match serde_json::from_str(&text) {
        Ok(fleet) => Ok(Some(fleet)),
        Err(err) => {
            log::warn!("ignoring the saved fleet network: {err}");
            Ok(None)
        }
    }
}

fn parse_cidr(text: &str, what: &str) -> anyhow::Result<Ipv4Cidr> {
    text.parse()
        .map_err(|e| anyhow::anyhow!("the coordinator's {what} {text:?}: {e}"))
}

/// Starts the network with `pod_cidr`, removes what pods deleted while the agent was down
/// left in it, and routes to the fleet's other boards.
fn start(
    agent: &Arc<Agent>,
    pod_cidr: Ipv4Cidr,
    fleet: Option<&FleetNetwork>,
) -> anyhow::Result<()> {
    let mut options = agent.options.network.clone();
    options.pod_cidr = Some(pod_cidr);
    if let Some(fleet) = fleet {
        options.cluster_cidr = parse_cidr(&fleet.cluster_cidr, "cluster CIDR")?;
    }
    let network = PodNetwork::start(&options, fleet.is_some())?;
    network.load_addresses(&agent.store())?;
    let mut live: HashSet<String> = reconcile::stored_pods(agent)?
        .into_iter()
        .map(|pod| pod.metadata.uid)
        .collect();
    live.extend(agent.runtime.list_sandboxes()?);
    network.remove_strays(&agent.store, &live)?;
    if let Some(fleet) = fleet {
        network.sync_peers(fleet)?;
    }
    if agent.network.set(network).is_err() {
        log::warn!("the pod network was started twice; keeping the first");
    }
    // Services as the store has them, before any pod starts: an agent restarted under
    // running pods leaves them without their Services only for this moment.
    super::services::sync(agent, &reconcile::stored_pods(agent)?)?;
    agent.wake();
    Ok(())
}
