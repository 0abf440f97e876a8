//! Apply and delete on the agent: admission and the store writes are
//! [`crate::api::apply`], shared with the coordinator; here the agent's own store is
//! used and its reconcile loop woken after each change.
//!
//! Used by the API and by the manifests directory alike, so both take the same path
//! through validation.

use super::{Agent, AgentOptions};
use crate::api::apply::{
    apply_to_store, delete_keys_in_store, delete_manifests_in_store, AdmissionOptions,
};
use crate::api::refusal::Refusal;
use crate::api::types::{ApplyRequest, ApplyResult};
use crate::store::Key;

/// Applies a request: validates, checks namespaces exist (or come in the same request),
/// then writes every object in one transaction.
pub fn apply(
    agent: &Agent,
    request: &ApplyRequest,
    source: Option<&str>,
) -> Result<ApplyResult, Refusal> {
    let options = admission(&agent.options);
    let result = apply_to_store(&mut agent.store(), request, source, &options)?;
    agent.wake();
    Ok(result)
}

/// What admission judges by, from the agent's flags.
pub(super) fn admission(options: &AgentOptions) -> AdmissionOptions {
    AdmissionOptions {
        pod_security_level: options.pod_security_level,
        service_cidr: options.service_cidr,
        node_port_range: options.node_port_range,
    }
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
