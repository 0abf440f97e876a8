//! The board's controller loop, one pass per reconcile: the shared controllers
//! ([`crate::controllers`]) on this board's store, with readiness as this board's
//! containers and probes show it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use super::instance::Instance;
use super::Agent;
use crate::api::fleet::FLEET_UID_ANNOTATION;
use crate::controllers::{driver, reconcile_all};

pub fn run(
    agent: &Arc<Agent>,
    observed: &BTreeMap<String, Vec<Instance>>,
    now: SystemTime,
) -> anyhow::Result<()> {
    let mut world = driver::load(&agent.store(), now)?;
    // The coordinator's Services come with their Endpoints, made from the whole fleet's
    // pods: this board keeps only the Endpoints of Services applied to it directly.
    let pushed =
        |meta: &crate::model::ObjectMeta| meta.annotations.contains_key(FLEET_UID_ANNOTATION);
    world.services.retain(|s| !pushed(&s.metadata));
    world.endpoints.retain(|e| !pushed(&e.metadata));
    world.observe_readiness(|pod| agent.pod_ready(pod, observed));
    if let Some(network) = agent.network() {
        world.pod_ips = network
            .pod_ips()
            .into_iter()
            .map(|(uid, ip)| (uid, ip.to_string()))
            .collect();
    }
    let changes = reconcile_all(&mut world);
    if !changes.is_empty() && driver::write(&mut agent.store(), changes, &world.now)? {
        agent.wake();
    }
    // Programmed from the store, also when the controllers changed nothing: a pod that
    // got its address or a Service applied since the last pass.
    super::services::sync(agent, &world.pods)
}
