//! `berth rollout status deployment|daemonset NAME [--watch=false] [--timeout D]
//! [--revision N]`: follows a rollout until it finishes, printing kubectl's progress
//! lines, each one once. A Deployment's rollout past its progress deadline fails the
//! command.
//!
//! As kubectl does, a paused rollout is simply not finished: the command keeps waiting
//! (until `--timeout`) for someone to resume it. `--revision` is for Deployments;
//! kubectl ignores it for DaemonSets, and so does this.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::Value;

use super::{daemonset, get, revision, wanted_replicas, Target, Workload};
use crate::cli::output::{at, int_at, str_at};
use crate::cli::{duration_flag, GlobalOptions};

/// How often the workload is read again while a rollout goes on.
const POLL: Duration = Duration::from_millis(200);

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: Target,
    /// Keep watching until the rollout finishes; `--watch=false` prints the state once
    #[arg(
        short = 'w',
        long,
        default_value_t = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub watch: bool,
    /// How long to watch before giving up (e.g. 10s, 5m); 0 watches forever
    #[arg(long, value_parser = duration_flag, default_value = "0s")]
    pub timeout: Duration,
    /// Fail unless this is the revision being rolled out (0: whichever it is)
    #[arg(long, default_value_t = 0)]
    pub revision: i64,
}

/// Where a rollout stands, from the Deployment as the server shows it: kubectl's line
/// and whether the rollout is done, or why it failed.
pub fn status_line(deployment: &Value, wanted_revision: i64) -> Result<(String, bool), String> {
    let name = str_at(deployment, &["metadata", "name"]);
    if wanted_revision > 0 && revision(deployment) != wanted_revision {
        return Err(format!(
            "desired revision ({wanted_revision}) is different from the running revision ({})",
            revision(deployment)
        ));
    }
    let generation = int_at(deployment, &["metadata", "generation"]);
    let observed = int_at(deployment, &["status", "observedGeneration"]);
    if generation > observed {
        return Ok((
            "Waiting for deployment spec update to be observed...".into(),
            false,
        ));
    }
    let timed_out = at(deployment, &["status", "conditions"])
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded");
    if timed_out {
        return Err(format!(
            "deployment \"{name}\" exceeded its progress deadline"
        ));
    }
    let count = |field: &str| int_at(deployment, &["status", field]);
    let (wanted, updated) = (wanted_replicas(deployment), count("updatedReplicas"));
    let (replicas, available) = (count("replicas"), count("availableReplicas"));
    let waiting =
        |what: String| format!("Waiting for deployment \"{name}\" rollout to finish: {what}");
    let line = if updated < wanted {
        waiting(format!(
            "{updated} out of {wanted} new replicas have been updated..."
        ))
    } else if replicas > updated {
        waiting(format!(
            "{} old replicas are pending termination...",
            replicas - updated
        ))
    } else if available < updated {
        waiting(format!(
            "{available} of {updated} updated replicas are available..."
        ))
    } else {
        return Ok((
            format!("deployment \"{name}\" successfully rolled out"),
            true,
        ));
    };
    Ok((line, false))
}

pub fn run(global: &GlobalOptions, args: StatusArgs) -> anyhow::Result<()> {
    let (workload, name) = args.target.resolve()?;
    if args.revision < 0 {
        bail!("revision must be a positive integer: {}", args.revision);
    }
    let client = global.client()?;
    let deadline = (!args.timeout.is_zero()).then(|| Instant::now() + args.timeout);
    let mut last = String::new();
    loop {
        let object = get(&client, workload, global.namespace(), name)?;
        let (line, done) = match workload {
            Workload::Deployment => status_line(&object, args.revision),
            Workload::DaemonSet => daemonset::status_line(&object),
        }
        .map_err(anyhow::Error::msg)?;
        if line != last {
            println!("{line}");
            last = line;
        }
        if done || !args.watch {
            return Ok(());
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            bail!("timed out waiting for the condition");
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::status_line;
    use serde_json::{json, Value};

    fn deployment(replicas: i64, status: Value) -> Value {
        json!({
            "metadata": {"name": "web", "generation": 2,
                         "annotations": {"deployment.kubernetes.io/revision": "3"}},
            "spec": {"replicas": replicas},
            "status": status,
        })
    }

    fn line(replicas: i64, status: Value) -> (String, bool) {
        status_line(&deployment(replicas, status), 0).unwrap()
    }

    #[test]
    fn lines_follow_the_rollout_as_kubectl_prints_them() {
        let waiting = |what: &str| {
            (
                format!("Waiting for deployment \"web\" rollout to finish: {what}"),
                false,
            )
        };
        assert_eq!(
            line(3, json!({"observedGeneration": 1, "updatedReplicas": 3})),
            (
                "Waiting for deployment spec update to be observed...".to_owned(),
                false
            )
        );
        assert_eq!(
            line(
                3,
                json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1})
            ),
            waiting("1 out of 3 new replicas have been updated...")
        );
        assert_eq!(
            line(
                3,
                json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3})
            ),
            waiting("1 old replicas are pending termination...")
        );
        let settling = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3,
                              "availableReplicas": 2});
        assert_eq!(
            line(3, settling),
            waiting("2 of 3 updated replicas are available...")
        );
        let done = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3,
                          "availableReplicas": 3});
        assert_eq!(
            line(3, done.clone()),
            (
                "deployment \"web\" successfully rolled out".to_owned(),
                true
            )
        );
        assert!(
            line(0, json!({"observedGeneration": 2})).1,
            "nothing to roll out"
        );
        // Fields the server leaves out are zero; replicas default to 1.
        let mut defaulted = deployment(1, json!({"observedGeneration": 2}));
        defaulted["spec"] = json!({});
        assert_eq!(
            status_line(&defaulted, 0).unwrap().0,
            "Waiting for deployment \"web\" rollout to finish: 0 out of 1 new replicas have been updated..."
        );
        assert!(status_line(&deployment(3, done.clone()), 3).unwrap().1);
        assert_eq!(
            status_line(&deployment(3, done), 2).unwrap_err(),
            "desired revision (2) is different from the running revision (3)"
        );
    }

    #[test]
    fn a_rollout_past_its_deadline_fails_and_a_paused_one_waits() {
        let conditions = |reason: &str, status: &str| {
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1,
                   "conditions": [{"type": "Available", "status": "True"},
                                  {"type": "Progressing", "status": status, "reason": reason}]})
        };
        let failed = deployment(3, conditions("ProgressDeadlineExceeded", "False"));
        assert_eq!(
            status_line(&failed, 0).unwrap_err(),
            "deployment \"web\" exceeded its progress deadline"
        );
        let paused = deployment(3, conditions("DeploymentPaused", "Unknown"));
        assert!(!status_line(&paused, 0).unwrap().1);
    }
}
