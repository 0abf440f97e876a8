//! `berth rollout restart deployment|daemonset NAME`: stamps the pod template with the
//! time (`kubectl.kubernetes.io/restartedAt`, as kubectl does), which makes it a new
//! revision and so replaces every pod by the workload's update strategy.

use serde_json::{json, Value};

use super::{get, patch, paused, Target, Workload};
use crate::cli::GlobalOptions;

/// The template annotation kubectl sets to restart a workload.
pub const RESTARTED_AT_ANNOTATION: &str = "kubectl.kubernetes.io/restartedAt";

pub fn run(global: &GlobalOptions, target: &Target) -> anyhow::Result<()> {
    let (workload, name) = target.resolve()?;
    let client = global.client()?;
    let namespace = global.namespace();
    let object = get(&client, workload, namespace, name)?;
    if workload == Workload::Deployment && paused(&object) {
        return Err(workload.refused(
            name,
            "can't restart paused deployment (run rollout resume first)",
        ));
    }
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    patch(&client, workload, namespace, name, &restart_patch(&now))?;
    println!("{} restarted", workload.display(name));
    Ok(())
}

/// The merge patch that stamps the template with restart time `now` (RFC 3339).
fn restart_patch(now: &str) -> Value {
    json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: now}}}}})
}

#[cfg(test)]
mod tests {
    use super::restart_patch;
    use crate::api::patch::merge_patch;
    use serde_json::json;

    #[test]
    fn a_restart_stamps_only_the_template_annotation() {
        let mut deployment = json!({"spec": {"template": {
            "metadata": {"labels": {"app": "web"}, "annotations": {"team": "a"}}}}});
        merge_patch(&mut deployment, &restart_patch("2024-05-01T10:00:00Z"));
        assert_eq!(
            deployment["spec"]["template"]["metadata"],
            json!({"labels": {"app": "web"}, "annotations":
                   {"team": "a", "kubectl.kubernetes.io/restartedAt": "2024-05-01T10:00:00Z"}})
        );
    }
}
