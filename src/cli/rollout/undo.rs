//! `berth rollout undo deployment|daemonset NAME [--to-revision N]`: puts the pod
//! template of an earlier revision (the one before the newest by default) back into the
//! workload. The controller then makes that revision current again, under a new
//! revision number. A Deployment also gets back the change cause the revision was
//! rolled out with; a DaemonSet's revisions hold only the template.
//!
//! The template is sent as a merge patch that turns the current template into the old
//! one (nulls for what the old one lacks), since a merge patch cannot replace an object
//! whole.

use anyhow::bail;
use serde_json::{json, Value};

use super::{daemonset, get, patch, paused, replica_sets_of, revision, Target, Workload};
use crate::api::client::Client;
use crate::api::patch::diff;
use crate::cli::output::{at, str_at};
use crate::cli::GlobalOptions;
use crate::controllers::deployment::{CHANGE_CAUSE_ANNOTATION, TEMPLATE_HASH_LABEL};

#[derive(clap::Args, Debug)]
pub struct UndoArgs {
    #[command(flatten)]
    pub target: Target,
    /// The revision to roll back to (0: the one before the newest)
    #[arg(long, default_value_t = 0)]
    pub to_revision: i64,
}

/// What rolling back comes to: nothing when the template already is the revision's,
/// otherwise a merge patch for the workload.
enum Rollback {
    Skipped { revision: i64 },
    Patch(Value),
}

pub fn run(global: &GlobalOptions, args: UndoArgs) -> anyhow::Result<()> {
    let (workload, name) = args.target.resolve()?;
    if args.to_revision < 0 {
        bail!("revision must be a positive integer: {}", args.to_revision);
    }
    let client = global.client()?;
    let namespace = global.namespace();
    let object = get(&client, workload, namespace, name)?;
    let rollback = match workload {
        Workload::Deployment => deployment_rollback(&client, &object, args.to_revision)?,
        Workload::DaemonSet => daemon_set_rollback(&client, &object, args.to_revision)?,
    };
    match rollback {
        Rollback::Skipped { revision } => println!(
            "{} skipped rollback (current template already matches revision {revision})",
            workload.display(name)
        ),
        Rollback::Patch(body) => {
            patch(&client, workload, namespace, name, &body)?;
            println!("{} rolled back", workload.display(name));
        }
    }
    Ok(())
}

/// Rolling Deployment `deployment` back to its revision `to_revision` (0: the newest
/// but one), its template and change cause; a paused Deployment is refused, as kubectl
/// refuses it.
fn deployment_rollback(
    client: &Client,
    deployment: &Value,
    to_revision: i64,
) -> anyhow::Result<Rollback> {
    if paused(deployment) {
        bail!(
            "you cannot rollback a paused deployment; resume it first with 'berth rollout \
             resume' and try again"
        );
    }
    let name = str_at(deployment, &["metadata", "name"]);
    let replica_sets = replica_sets_of(client, deployment)?;
    let rs = pick_revision(&replica_sets, to_revision, name).map_err(anyhow::Error::msg)?;
    let current = at(deployment, &["spec", "template"]);
    let template = without_hash_label(at(rs, &["spec", "template"]));
    if &template == current {
        return Ok(Rollback::Skipped {
            revision: revision(rs),
        });
    }
    Ok(Rollback::Patch(rollback_patch(current, &template, rs)))
}

/// Rolling DaemonSet `ds` back to the template of its revision `to_revision` (0: the
/// newest but one), which the ControllerRevision holds exactly.
fn daemon_set_rollback(client: &Client, ds: &Value, to_revision: i64) -> anyhow::Result<Rollback> {
    let revisions = daemonset::revisions_of(client, ds)?;
    let cr = daemonset::pick_revision(&revisions, to_revision).map_err(anyhow::Error::msg)?;
    let current = at(ds, &["spec", "template"]);
    let template = daemonset::template(cr);
    if template == current {
        return Ok(Rollback::Skipped {
            revision: daemonset::revision(cr),
        });
    }
    Ok(Rollback::Patch(
        json!({"spec": {"template": diff(current, template)}}),
    ))
}

/// The ReplicaSet of revision `to_revision`, or with 0 the newest but one, as kubectl
/// picks it (`replica_sets` in any order).
pub fn pick_revision<'a>(
    replica_sets: &'a [Value],
    to_revision: i64,
    name: &str,
) -> Result<&'a Value, String> {
    let mut numbered: Vec<&Value> = replica_sets.iter().filter(|rs| revision(rs) > 0).collect();
    if to_revision > 0 {
        return numbered
            .into_iter()
            .find(|rs| revision(rs) == to_revision)
            .ok_or_else(|| format!("unable to find specified revision {to_revision} in history"));
    }
    crate::support::sort::sort_by_key(&mut numbered, |rs| std::cmp::Reverse(revision(rs)));
    numbered
        .get(1)
        .copied()
        .ok_or_else(|| format!("no rollout history found for deployment \"{name}\""))
}

/// A ReplicaSet's template as the Deployment held it: without the `pod-template-hash`
/// label the controller added.
fn without_hash_label(template: &Value) -> Value {
    let mut template = template.clone();
    if let Some(labels) = template
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(TEMPLATE_HASH_LABEL);
    }
    template
}

/// The merge patch that rolls the Deployment back to `template`, and to the change
/// cause `rs` was made with (none if it had none), as kubectl copies it.
fn rollback_patch(current: &Value, template: &Value, rs: &Value) -> Value {
    let cause = str_at(rs, &["metadata", "annotations", CHANGE_CAUSE_ANNOTATION]);
    let cause = if cause.is_empty() {
        Value::Null
    } else {
        json!(cause)
    };
    json!({
        "metadata": {"annotations": {CHANGE_CAUSE_ANNOTATION: cause}},
        "spec": {"template": diff(current, template)},
    })
}

#[cfg(test)]
mod tests {
    use super::{pick_revision, rollback_patch, without_hash_label};
    use crate::api::patch::merge_patch;
    use serde_json::{json, Value};

    fn rs(revision: i64, image: &str) -> Value {
        json!({
            "metadata": {"name": format!("web-{revision}"),
                         "annotations": {"deployment.kubernetes.io/revision": revision.to_string()}},
            "spec": {"template": {
                "metadata": {"labels": {"app": "web", "pod-template-hash": format!("h{revision}")}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            }},
        })
    }

    #[test]
    fn the_revision_is_picked_as_kubectl_does() {
        let all = [rs(3, "c"), rs(1, "a"), rs(5, "e")];
        let name = |found: Result<&Value, String>| found.unwrap()["metadata"]["name"].clone();
        assert_eq!(
            name(pick_revision(&all, 0, "web")),
            "web-3",
            "the newest but one"
        );
        assert_eq!(name(pick_revision(&all, 1, "web")), "web-1");
        assert_eq!(name(pick_revision(&all, 5, "web")), "web-5");
        assert_eq!(
            pick_revision(&all, 4, "web").unwrap_err(),
            "unable to find specified revision 4 in history"
        );
        assert_eq!(
            pick_revision(&all[..1], 0, "web").unwrap_err(),
            "no rollout history found for deployment \"web\""
        );
    }

    #[test]
    fn the_patch_restores_the_old_template_and_its_cause() {
        let mut old = rs(1, "busybox:1.35");
        old["metadata"]["annotations"]["kubernetes.io/change-cause"] = json!("first");
        let template = without_hash_label(&old["spec"]["template"]);
        assert_eq!(template["metadata"]["labels"], json!({"app": "web"}));
        let mut deployment = json!({
            "metadata": {"name": "web", "annotations": {"kubernetes.io/change-cause": "second"}},
            "spec": {"replicas": 2, "template": {
                "metadata": {"labels": {"app": "web"},
                             "annotations": {"kubectl.kubernetes.io/restartedAt": "t"}},
                "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]},
            }},
        });
        let patch = rollback_patch(&deployment["spec"]["template"], &template, &old);
        merge_patch(&mut deployment, &patch);
        assert_eq!(deployment["spec"]["template"], template);
        assert_eq!(deployment["spec"]["replicas"], 2);
        assert_eq!(
            deployment["metadata"]["annotations"]["kubernetes.io/change-cause"],
            "first"
        );
        // A revision without a cause takes the current one away.
        let patch = rollback_patch(&template, &template, &rs(2, "x"));
        merge_patch(&mut deployment, &patch);
        assert_eq!(deployment["metadata"]["annotations"], json!({}));
    }
}
