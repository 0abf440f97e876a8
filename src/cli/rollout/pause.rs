//! `berth rollout pause|resume deployment NAME`: sets `spec.paused`. A paused
//! Deployment keeps its pods as they are and rolls out no template change until
//! resumed; then everything changed meanwhile goes out as one revision.

use serde_json::json;

use super::{display, get_deployment, patch_deployment, paused, refused, Target};
use crate::cli::GlobalOptions;

/// Pauses (`pause` true) or resumes the Deployment; asking for the state it is already
/// in is an error, as in kubectl.
pub fn run(global: &GlobalOptions, target: &Target, pause: bool) -> anyhow::Result<()> {
    let name = target.deployment_name()?;
    let client = global.client()?;
    let namespace = global.namespace();
    let deployment = get_deployment(&client, namespace, name)?;
    match (pause, paused(&deployment)) {
        (true, true) => return Err(refused(name, "is already paused")),
        (false, false) => return Err(refused(name, "is not paused")),
        (true, false) | (false, true) => {}
    }
    let patch = json!({"spec": {"paused": pause}});
    patch_deployment(&client, namespace, name, &patch)?;
    let done = if pause { "paused" } else { "resumed" };
    println!("{} {done}", display(name));
    Ok(())
}
