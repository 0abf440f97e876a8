//! `berth rollout status|history|undo|restart|pause|resume deployment NAME`: kubectl's
//! rollout verbs, one file each. They read the Deployment and its ReplicaSets (one per
//! revision of the pod template) and change the Deployment with a JSON merge patch;
//! the rollout itself is the Deployment controller's work.
//!
//! Only Deployments have rollouts so far: DaemonSets are named, and refused, so that a
//! script written for kubectl gets a clear reason rather than "unknown resource".

mod history;
mod pause;
mod restart;
mod status;
mod undo;

use anyhow::bail;
use serde_json::Value;

use super::output::{at, int_at, str_at};
use super::resource::server_error_line;
use super::{collection_path, object_path, GlobalOptions, Reported};
use crate::api::client::{ApiError, Client};
use crate::controllers::deployment::REVISION_ANNOTATION;
use crate::model::Kind;

#[derive(clap::Subcommand, Debug)]
pub enum RolloutCommand {
    /// Watch a rollout until it finishes
    Status(status::StatusArgs),
    /// Show the revisions of a rollout
    History(history::HistoryArgs),
    /// Roll back to an earlier revision
    Undo(undo::UndoArgs),
    /// Roll out the same template again, replacing every pod
    Restart(Target),
    /// Stop rolling out template changes until resumed
    Pause(Target),
    /// Roll out the template changes made while paused
    Resume(Target),
}

/// What a rollout verb acts on: `deployment NAME` or `deployment/NAME`.
#[derive(clap::Args, Debug)]
pub struct Target {
    /// `deployment` (`deploy`, `deployment.apps`), or `TYPE/NAME`
    pub resource: String,
    /// Name of the deployment
    pub name: Option<String>,
}

impl Target {
    /// The Deployment's name, or why the arguments do not name one.
    pub fn deployment_name(&self) -> anyhow::Result<&str> {
        let (kind, name) = match (self.resource.split_once('/'), &self.name) {
            (Some(_), Some(_)) => bail!(
                "there is no need to specify a resource type as a separate argument when \
                 passing arguments in resource/name form (e.g. 'berth rollout status \
                 deployment/web' instead of 'berth rollout status deployment deployment/web')"
            ),
            (Some((kind, name)), None) => (kind, name),
            (None, name) => (self.resource.as_str(), name.as_deref().unwrap_or_default()),
        };
        deployment_kind(kind)?;
        if name.is_empty() {
            bail!("a deployment name is required, e.g. 'berth rollout status deployment web'");
        }
        Ok(name)
    }
}

/// Accepts the names of the Deployment kind; DaemonSets and other kinds are refused
/// with the reason.
fn deployment_kind(kind: &str) -> anyhow::Result<()> {
    let lower = kind.to_ascii_lowercase();
    let base = lower.strip_suffix(".apps").unwrap_or(&lower);
    if matches!(base, "daemonset" | "daemonsets" | "ds") {
        bail!("DaemonSets are not supported yet: only deployments can be rolled out");
    }
    match Kind::from_cli_name(kind) {
        Some(Kind::Deployment) => Ok(()),
        Some(other) => bail!(
            "{} have no rollout: only deployments can be rolled out",
            other.plural()
        ),
        None => bail!("the server doesn't have a resource type {kind:?}"),
    }
}

pub fn run(global: &GlobalOptions, command: RolloutCommand) -> anyhow::Result<()> {
    match command {
        RolloutCommand::Status(args) => status::run(global, args),
        RolloutCommand::History(args) => history::run(global, args),
        RolloutCommand::Undo(args) => undo::run(global, args),
        RolloutCommand::Restart(target) => restart::run(global, &target),
        RolloutCommand::Pause(target) => pause::run(global, &target, true),
        RolloutCommand::Resume(target) => pause::run(global, &target, false),
    }
}

/// `deployment.apps/NAME`, as kubectl names the object in what it prints.
fn display(name: &str) -> String {
    format!("deployment.apps/{name}")
}

/// A refusal about Deployment `name`, worded as kubectl's: `deployments.apps "web" ...`.
fn refused(name: &str, what: &str) -> anyhow::Error {
    anyhow::anyhow!("deployments.apps \"{name}\" {what}")
}

/// The answer to a request; an error the server sent is printed as kubectl prints it
/// (`Error from server (NotFound): ...`).
fn answer(result: Result<(u16, Value), ApiError>) -> anyhow::Result<Value> {
    match result {
        Ok((_, value)) => Ok(value),
        Err(err @ ApiError::Status { .. }) => {
            eprintln!("{}", server_error_line(&err));
            Err(Reported.into())
        }
        Err(err) => Err(err.into()),
    }
}

/// Deployment `name` as the server shows it, status included.
fn get_deployment(client: &Client, namespace: &str, name: &str) -> anyhow::Result<Value> {
    let path = object_path(Kind::Deployment, namespace, name);
    answer(client.request("GET", &path, None))
}

/// Sends merge patch `patch` to Deployment `name`; answers the patched Deployment.
fn patch_deployment(
    client: &Client,
    namespace: &str,
    name: &str,
    patch: &Value,
) -> anyhow::Result<Value> {
    let path = object_path(Kind::Deployment, namespace, name);
    answer(client.request("PATCH", &path, Some(patch)))
}

/// The ReplicaSets `deployment` controls, by revision, oldest first.
fn replica_sets_of(client: &Client, deployment: &Value) -> anyhow::Result<Vec<Value>> {
    let namespace = str_at(deployment, &["metadata", "namespace"]);
    let path = collection_path(Kind::ReplicaSet, Some(namespace));
    let list = answer(client.request("GET", &path, None))?;
    Ok(owned_by(
        deployment,
        list["items"].as_array().cloned().unwrap_or_default(),
    ))
}

/// Those of `replica_sets` that `deployment` controls, by revision, oldest first.
fn owned_by(deployment: &Value, replica_sets: Vec<Value>) -> Vec<Value> {
    let uid = str_at(deployment, &["metadata", "uid"]);
    let mut owned: Vec<Value> = replica_sets
        .into_iter()
        .filter(|rs| {
            at(rs, &["metadata", "ownerReferences"])
                .as_array()
                .into_iter()
                .flatten()
                .any(|owner| owner["controller"] == true && str_at(owner, &["uid"]) == uid)
        })
        .collect();
    owned.sort_by_key(revision);
    owned
}

/// The revision a ReplicaSet (or a Deployment as shown) carries; 0 when none.
fn revision(object: &Value) -> i64 {
    str_at(object, &["metadata", "annotations", REVISION_ANNOTATION])
        .parse()
        .unwrap_or(0)
}

/// Whether the Deployment is paused.
fn paused(deployment: &Value) -> bool {
    at(deployment, &["spec", "paused"]).as_bool() == Some(true)
}

/// `spec.replicas`, which Kubernetes defaults to 1.
fn wanted_replicas(deployment: &Value) -> i64 {
    match at(deployment, &["spec", "replicas"]) {
        Value::Null => 1,
        _ => int_at(deployment, &["spec", "replicas"]),
    }
}

#[cfg(test)]
mod tests {
    use super::{owned_by, Target};
    use serde_json::json;

    fn target(resource: &str, name: Option<&str>) -> anyhow::Result<String> {
        let target = Target {
            resource: resource.to_owned(),
            name: name.map(str::to_owned),
        };
        target.deployment_name().map(str::to_owned)
    }

    #[test]
    fn targets_name_a_deployment_as_kubectl_accepts_it() {
        for (resource, name) in [
            ("deployment", Some("web")),
            ("deploy", Some("web")),
            ("deployments.apps", Some("web")),
            ("Deployment.apps/web", None),
            ("deploy/web", None),
        ] {
            assert_eq!(
                target(resource, name).unwrap(),
                "web",
                "{resource} {name:?}"
            );
        }
        let error = |resource, name| target(resource, name).unwrap_err().to_string();
        assert_eq!(
            error("daemonset", Some("agent")),
            "DaemonSets are not supported yet: only deployments can be rolled out"
        );
        assert_eq!(error("ds/agent", None), error("daemonset.apps", Some("a")));
        assert_eq!(
            error("pods", Some("web")),
            "pods have no rollout: only deployments can be rolled out"
        );
        assert!(error("deployment/web", Some("web")).starts_with("there is no need"));
        assert!(error("deployment", None).starts_with("a deployment name is required"));
        assert!(error("deployment/", None).starts_with("a deployment name is required"));
        assert_eq!(
            error("widgets", Some("w")),
            "the server doesn't have a resource type \"widgets\""
        );
    }

    #[test]
    fn only_the_controlled_replica_sets_count_in_revision_order() {
        let deployment = json!({"metadata": {"name": "web", "uid": "d1"}});
        let rs = |name: &str, uid: &str, controller: bool, revision: &str| {
            json!({"metadata": {"name": name,
                "annotations": {"deployment.kubernetes.io/revision": revision},
                "ownerReferences": [{"kind": "Deployment", "uid": uid, "controller": controller}]}})
        };
        let owned = owned_by(
            &deployment,
            vec![
                rs("web-b", "d1", true, "10"),
                rs("other", "d2", true, "1"),
                rs("web-a", "d1", true, "2"),
                rs("adopted", "d1", false, "3"),
            ],
        );
        let names: Vec<&str> = owned
            .iter()
            .map(|rs| rs["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["web-a", "web-b"], "numeric order, controlled only");
    }
}
