//! The board's controller loop, one pass per reconcile: the shared controllers
//! ([`crate::controllers`]) on this board's store, with readiness as this board's
//! containers and probes show it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::fleet::StandIn;
use super::instance::Instance;
use super::Agent;
use crate::api::fleet::FLEET_UID_ANNOTATION;
use crate::controllers::{cron_job, deployment_status, driver, job, reconcile_all, World};

/// One pass; returns when the controllers next have something to do with time alone.
///
/// A pass whose inputs are those of the last complete pass (nothing stored changed,
/// the same containers in the same states, the same probe results, start failures and
/// pod addresses) and whose due time has not come would decide nothing new: it is
/// skipped. An idle board's 10 s resync then reads no object and runs no controller,
/// which keeps their code out of its resident memory.
pub fn run(
    agent: &Arc<Agent>,
    observed: &BTreeMap<String, Vec<Instance>>,
    now: SystemTime,
) -> anyhow::Result<Option<SystemTime>> {
    let stand_in = agent
        .fleet_link
        .get()
        .map_or(StandIn::No, |link| link.stand_in(now));
    let inputs = agent.controller_inputs(observed) ^ stand_in_digest(stand_in);
    if let Some(due) = agent.controllers_settled(inputs, now) {
        return Ok(due);
    }
    let mut world = driver::load(&agent.store(), now)?;
    driver::add_time_zones(&mut world, &agent.zones);
    let stand_in_due = keep_standby_cron_jobs(&mut world, stand_in);
    if agent.readiness_unknown(&world.pods, observed) {
        // The first probe results wake the agent; this is only a fallback.
        return Ok(Some(now + Duration::from_secs(1)));
    }
    // The coordinator's Services come with their Endpoints, made from the whole fleet's
    // pods: this board keeps only the Endpoints of Services applied to it directly.
    let pushed =
        |meta: &crate::model::ObjectMeta| meta.annotations.contains_key(FLEET_UID_ANNOTATION);
    world.services.retain(|s| !pushed(&s.metadata));
    world.endpoints.retain(|e| !pushed(&e.metadata));
    agent.observe_pods(&mut world, observed);
    agent.add_local_node(&mut world);
    if let Some(network) = agent.network() {
        world.pod_ips = network
            .pod_ips()
            .into_iter()
            .map(|(uid, ip)| (uid, ip.to_string()))
            .collect();
    }
    let due = world
        .deployments
        .iter()
        .filter_map(|deploy| deployment_status::next_change(deploy, &world))
        .chain(
            world
                .jobs
                .iter()
                .filter_map(|j| job::next_change(j, &world)),
        )
        .chain(
            world
                .cron_jobs
                .iter()
                .filter_map(|cj| cron_job::next_change(cj, &world)),
        )
        .min()
        .and_then(|secs| u64::try_from(secs).ok())
        .map(|secs| UNIX_EPOCH + Duration::from_secs(secs));
    let due = match (due, stand_in_due) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let changes = reconcile_all(&mut world);
    if !changes.is_empty() && driver::write(&mut agent.store(), changes, &world.now, &agent.events)?
    {
        agent.wake();
    }
    // Programmed from the store, also when the controllers changed nothing: a pod that
    // got its address or a Service applied since the last pass.
    super::services::sync(agent, &world.pods)?;
    // Claims' directories go with their claims, once no pod here may use them.
    let mut with_containers: std::collections::HashSet<String> = observed.keys().cloned().collect();
    with_containers.extend(agent.runtime.list_sandboxes()?);
    agent.sweep_claims(&world.pods, &with_containers);
    // What this pass saw, read before it wrote: a pass that wrote runs again next time.
    agent.controllers_ran(inputs, due);
    Ok(due)
}

/// The CronJobs the coordinator pushed here are this board's to keep as their standby:
/// while the coordinator answers (or has been out of reach for less than
/// [`super::fleet::STAND_IN_AFTER`]) they are as if suspended here, since the coordinator
/// runs them; after that this board fires them itself, but only the times after the
/// last answer it had from the coordinator. Returns when to look again, while waiting
/// to stand in.
fn keep_standby_cron_jobs(world: &mut World, stand_in: StandIn) -> Option<SystemTime> {
    let pushed =
        |meta: &crate::model::ObjectMeta| meta.annotations.contains_key(FLEET_UID_ANNOTATION);
    for cron_job in world.cron_jobs.iter_mut().filter(|cj| pushed(&cj.metadata)) {
        match stand_in {
            StandIn::No | StandIn::Soon(_) => cron_job.spec.suspend = true,
            StandIn::Yes { covered_until } => {
                world.cron_covered_until.insert(
                    cron_job.metadata.uid.clone(),
                    driver::unix_seconds(covered_until),
                );
            }
        }
    }
    match stand_in {
        StandIn::Soon(at) if world.cron_jobs.iter().any(|cj| pushed(&cj.metadata)) => Some(at),
        _ => None,
    }
}

/// A different value for each stand-in state, so a pass runs when it changes.
fn stand_in_digest(stand_in: StandIn) -> u64 {
    match stand_in {
        StandIn::No => 0,
        StandIn::Soon(_) => 0x5afe_0001,
        StandIn::Yes { .. } => 0x5afe_0002,
    }
}
