//! `berth rollout status|history|undo|restart|pause|resume deployment|daemonset NAME`:
//! kubectl's rollout verbs, one file each. A Deployment's revisions are its ReplicaSets
//! (one per pod template); a DaemonSet's are its ControllerRevisions ([`daemonset`]).
//! The verbs read those and change the workload with a JSON merge patch; the rollout
//! itself is its controller's work.
//!
//! Every verb first resolves what it acts on ([`Target::resolve`]) to a [`Workload`],
//! and each does for a kind what kubectl does for it, refusals included (a DaemonSet
//! cannot be paused).

mod daemonset;
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
    /// Stop rolling out template changes until resumed (deployments)
    Pause(Target),
    /// Roll out the template changes made while paused (deployments)
    Resume(Target),
}

/// What a rollout verb acts on: `deployment NAME`, `daemonset/NAME`, ...
#[derive(clap::Args, Debug)]
pub struct Target {
    /// `deployment` (`deploy`, `deployment.apps`), `daemonset` (`ds`,
    /// `daemonset.apps`), or `TYPE/NAME`
    pub resource: String,
    /// Name of the deployment or daemon set
    pub name: Option<String>,
}

/// The kinds that have rollouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Deployment,
    DaemonSet,
}

impl Workload {
    fn kind(self) -> Kind {
        match self {
            Workload::Deployment => Kind::Deployment,
            Workload::DaemonSet => Kind::DaemonSet,
        }
    }

    /// `deployment.apps/NAME`, as kubectl names the object in what it prints.
    fn display(self, name: &str) -> String {
        format!("{}.apps/{name}", self.kind().as_str().to_ascii_lowercase())
    }

    /// A refusal about object `name`, worded as kubectl's: `deployments.apps "web" ...`.
    fn refused(self, name: &str, what: &str) -> anyhow::Error {
        anyhow::anyhow!("{}.apps \"{name}\" {what}", self.kind().plural())
    }
}

impl Target {
    /// The workload and its name, or why the arguments do not name one.
    pub fn resolve(&self) -> anyhow::Result<(Workload, &str)> {
        let (kind, name) = match (self.resource.split_once('/'), &self.name) {
            (Some(_), Some(_)) => bail!(
                "there is no need to specify a resource type as a separate argument when \
                 passing arguments in resource/name form (e.g. 'berth rollout status \
                 deployment/web' instead of 'berth rollout status deployment deployment/web')"
            ),
            (Some((kind, name)), None) => (kind, name),
            (None, name) => (self.resource.as_str(), name.as_deref().unwrap_or_default()),
        };
        let workload = workload_of(kind)?;
        if name.is_empty() {
            let kind = workload.kind().as_str().to_ascii_lowercase();
            bail!("a {kind} name is required, e.g. 'berth rollout status {kind} web'");
        }
        Ok((workload, name))
    }
}

/// The workload a kind name on the command line names; other kinds are refused with
/// the reason.
fn workload_of(kind: &str) -> anyhow::Result<Workload> {
    match Kind::from_cli_name(kind) {
        Some(Kind::Deployment) => Ok(Workload::Deployment),
        Some(Kind::DaemonSet) => Ok(Workload::DaemonSet),
        Some(other) => bail!(
            "{} have no rollout: only deployments and daemonsets can be rolled out",
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

/// Workload `name` as the server shows it, status included.
fn get(client: &Client, workload: Workload, namespace: &str, name: &str) -> anyhow::Result<Value> {
    let path = object_path(workload.kind(), namespace, name);
    answer(client.request("GET", &path, None))
}

/// Sends merge patch `patch` to workload `name`; answers the patched object.
fn patch(
    client: &Client,
    workload: Workload,
    namespace: &str,
    name: &str,
    patch: &Value,
) -> anyhow::Result<Value> {
    let path = object_path(workload.kind(), namespace, name);
    answer(client.request("PATCH", &path, Some(patch)))
}

/// The objects of `kind` that `owner` controls, in its namespace, ordered by
/// `revision`, oldest first.
fn controlled(
    client: &Client,
    owner: &Value,
    kind: Kind,
    revision: fn(&Value) -> i64,
) -> anyhow::Result<Vec<Value>> {
    let namespace = str_at(owner, &["metadata", "namespace"]);
    let path = collection_path(kind, Some(namespace));
    let list = answer(client.request("GET", &path, None))?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    Ok(owned_by(owner, items, revision))
}

/// The ReplicaSets `deployment` controls, by revision, oldest first.
fn replica_sets_of(client: &Client, deployment: &Value) -> anyhow::Result<Vec<Value>> {
    controlled(client, deployment, Kind::ReplicaSet, revision)
}

/// Those of `objects` that `owner` controls, ordered by `revision`, oldest first.
fn owned_by(owner: &Value, objects: Vec<Value>, revision: fn(&Value) -> i64) -> Vec<Value> {
    let uid = str_at(owner, &["metadata", "uid"]);
    let mut owned: Vec<Value> = objects
        .into_iter()
        .filter(|object| {
            at(object, &["metadata", "ownerReferences"])
                .as_array()
                .into_iter()
                .flatten()
                .any(|owner| owner["controller"] == true && str_at(owner, &["uid"]) == uid)
        })
        .collect();
    crate::support::sort::sort_by_key(&mut owned, revision);
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
    use super::{owned_by, revision, Target, Workload};
    use serde_json::json;

    fn target(resource: &str, name: Option<&str>) -> anyhow::Result<(Workload, String)> {
        let target = Target {
            resource: resource.to_owned(),
            name: name.map(str::to_owned),
        };
        target
            .resolve()
            .map(|(workload, name)| (workload, name.to_owned()))
    }

    #[test]
    fn targets_name_a_workload_as_kubectl_accepts_it() {
        let deployment = (Workload::Deployment, "web".to_owned());
        let daemon_set = (Workload::DaemonSet, "web".to_owned());
        for (resource, name, expected) in [
            ("deployment", Some("web"), &deployment),
            ("deploy", Some("web"), &deployment),
            ("deployments.apps", Some("web"), &deployment),
            ("Deployment.apps/web", None, &deployment),
            ("deploy/web", None, &deployment),
            ("daemonset", Some("web"), &daemon_set),
            ("ds", Some("web"), &daemon_set),
            ("daemonset.apps", Some("web"), &daemon_set),
            ("daemonsets/web", None, &daemon_set),
            ("DS/web", None, &daemon_set),
        ] {
            assert_eq!(
                &target(resource, name).unwrap(),
                expected,
                "{resource} {name:?}"
            );
        }
        let error = |resource, name| target(resource, name).unwrap_err().to_string();
        assert_eq!(
            error("pods", Some("web")),
            "pods have no rollout: only deployments and daemonsets can be rolled out"
        );
        assert_eq!(
            error("rs/web", None),
            "replicasets have no rollout: only deployments and daemonsets can be rolled out"
        );
        assert!(error("deployment/web", Some("web")).starts_with("there is no need"));
        assert!(error("deployment", None).starts_with("a deployment name is required"));
        assert!(error("deployment/", None).starts_with("a deployment name is required"));
        assert!(error("ds/", None).starts_with("a daemonset name is required"));
        assert_eq!(
            error("widgets", Some("w")),
            "the server doesn't have a resource type \"widgets\""
        );
    }

    #[test]
    fn workloads_are_named_as_kubectl_names_them() {
        assert_eq!(Workload::Deployment.display("web"), "deployment.apps/web");
        assert_eq!(Workload::DaemonSet.display("log"), "daemonset.apps/log");
        assert_eq!(
            Workload::DaemonSet
                .refused("log", "pausing is not supported")
                .to_string(),
            "daemonsets.apps \"log\" pausing is not supported"
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
            revision,
        );
        let names: Vec<&str> = owned
            .iter()
            .map(|rs| rs["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["web-a", "web-b"], "numeric order, controlled only");
    }
}
