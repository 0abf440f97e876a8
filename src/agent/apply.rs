//! Apply and delete on the agent: admission and the store writes are
//! [`crate::api::apply`], shared with the coordinator; here the agent's own store is
//! used and its reconcile loop woken after each change.
//!
//! Used by the API and by the manifests directory alike, so both take the same path
//! through validation.

use std::collections::HashSet;

use super::{Agent, AgentOptions};
use crate::api::apply::{
    apply_observed, delete_keys_in_store, delete_manifests_in_store, AdmissionOptions,
};
use crate::api::refusal::Refusal;
use crate::api::types::{ApplyRequest, ApplyResult};
use crate::model::resource_quota::phase_ended;
use crate::model::Pod;
use crate::store::Key;

/// Applies a request: validates, checks namespaces exist (or come in the same request),
/// then writes every object in one transaction.
pub fn apply(
    agent: &Agent,
    request: &ApplyRequest,
    source: Option<&str>,
) -> Result<ApplyResult, Refusal> {
    let options = admission(&agent.options);
    let ended = |pods: &[Pod]| ended_pods(agent, pods);
    let result = apply_observed(&mut agent.store(), request, source, &options, &ended)?;
    agent.wake();
    Ok(result)
}

/// What admission judges by, from the agent's flags.
pub(super) fn admission(options: &AgentOptions) -> AdmissionOptions {
    AdmissionOptions {
        pod_security_level: options.pod_security_level,
        service_cidr: options.service_cidr,
        node_port_range: options.node_port_range,
        zoneinfo: crate::api::zoneinfo::system_root(),
    }
}

/// Which of `pods` have ended (`Succeeded` or `Failed`), as their containers show: the
/// agent stores no pod status. Only pods that do not always restart can end, so the
/// containers are looked at only when there is one.
pub(super) fn ended_pods(agent: &Agent, pods: &[Pod]) -> HashSet<String> {
    let mut may_end = pods
        .iter()
        .filter(|pod| pod.spec.restart_policy != "Always")
        .peekable();
    if may_end.peek().is_none() {
        return HashSet::new();
    }
    let observed = match agent.observe() {
        Ok(observed) => observed,
        Err(err) => {
            // Counting an ended pod is the safe mistake: a quota stays kept.
            log::warn!("cannot list containers to tell ended pods: {err}");
            return HashSet::new();
        }
    };
    may_end
        .filter(|pod| {
            let instances = observed.get(&pod.metadata.uid).map(Vec::as_slice);
            let status = agent.pod_status(pod, instances.unwrap_or_default(), false);
            phase_ended(&status.phase)
        })
        .map(|pod| pod.metadata.uid.clone())
        .collect()
}

/// Deletes the objects named in the manifests of a request.
pub fn delete_manifests(agent: &Agent, request: &ApplyRequest) -> Result<ApplyResult, Refusal> {
    let result = delete_manifests_in_store(&mut agent.store(), request)?;
    agent.wake();
    Ok(result)
}

/// Deletes objects the Kubernetes way ([`delete_keys_in_store`]) and wakes the agent to
/// stop what they ran.
pub fn delete_keys(agent: &Agent, keys: &[Key]) -> Result<ApplyResult, Refusal> {
    let result = delete_keys_in_store(&mut agent.store(), keys)?;
    agent.wake();
    Ok(result)
}
