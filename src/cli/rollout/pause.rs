//! `berth rollout pause|resume deployment NAME`: sets `spec.paused`. A paused
//! Deployment keeps its pods as they are and rolls out no template change until
//! resumed; then everything changed meanwhile goes out as one revision. DaemonSets
//! cannot be paused, and are refused as kubectl refuses them.

use serde_json::json;

use super::{get, patch, paused, Target, Workload};
use crate::cli::GlobalOptions;

/// Pauses (`pause` true) or resumes the Deployment; asking for the state it is already
/// in is an error, as in kubectl.
pub fn run(global: &GlobalOptions, target: &Target, pause: bool) -> anyhow::Result<()> {
    let (workload, name) = target.resolve()?;
    let client = global.client()?;
    let namespace = global.namespace();
    // Read first, as kubectl does: a missing object is reported as not found.
    let object = get(&client, workload, namespace, name)?;
    match workload {
        Workload::Deployment => {}
        Workload::DaemonSet if pause => {
            return Err(workload.refused(name, "pausing is not supported"))
        }
        Workload::DaemonSet => return Err(workload.refused(name, "resuming is not supported")),
    }
    match (pause, paused(&object)) {
        (true, true) => return Err(workload.refused(name, "is already paused")),
        (false, false) => return Err(workload.refused(name, "is not paused")),
        (true, false) | (false, true) => {}
    }
    let body = json!({"spec": {"paused": pause}});
    patch(&client, workload, namespace, name, &body)?;
    let done = if pause { "paused" } else { "resumed" };
    println!("{} {done}", workload.display(name));
    Ok(())
}
