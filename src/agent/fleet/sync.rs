//! Assignments: the long poll that brings this node's objects from the coordinator, and
//! how a new set lands in the local store.
//!
//! A set is written with one `put_all` under the source [`FLEET_SOURCE`], so an unchanged
//! set writes nothing; fleet objects missing from a new set are deleted the Kubernetes
//! way (pods stop gracefully). The version lives in memory only: after a restart the
//! first poll asks for everything, and until it is answered the agent runs what its
//! store holds, which is what keeps a board working with no coordinator.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::standby::ReportedRuns;
use super::{reconnect_retries, FleetError, Link};
use crate::agent::apply::delete_keys;
use crate::agent::Agent;
use crate::api::fleet::{Assignments, FLEET_SOURCE, FLEET_UID_ANNOTATION};
use crate::api::{percent_encode, ApiError, Client};
use crate::model::{Kind, Object};
use crate::store::{Key, PutOutcome, Record};

/// How long the coordinator may hold a poll open (it may hold it for less).
const POLL_SECONDS: u64 = 10;
/// Read timeout of a poll: the longest hold we asked for plus room for a slow link and
/// a busy coordinator. A poll that gets no answer in that time went astray (its
/// connection is dead in a way TCP has not noticed yet); it is sent again on a new one,
/// so one lost request costs seconds, not a grace period.
pub const POLL_READ_TIMEOUT: Duration = Duration::from_secs(POLL_SECONDS + 5);
/// A poll that comes back with nothing new sooner than this means the coordinator is not
/// holding it; pausing keeps the loop from spinning.
const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// One object of a set, checked and in the form the local model writes.
#[derive(Clone, Debug, PartialEq)]
pub struct Incoming {
    pub key: Key,
    pub object: Value,
    pub fleet_uid: Option<String>,
    pub terminating: bool,
}

/// What the local store holds under a key the plan looks at.
#[derive(Clone, Debug, PartialEq)]
pub struct Local {
    pub source: Option<String>,
    pub fleet_uid: Option<String>,
    pub terminating: bool,
}

impl Local {
    /// Came from a coordinator (a pod marked for deletion locally loses its source, not
    /// its annotation).
    fn came_from_fleet(&self) -> bool {
        self.source.as_deref() == Some(FLEET_SOURCE) || self.fleet_uid.is_some()
    }

    fn from_record(record: &Record) -> Local {
        Local {
            source: record.source.clone(),
            fleet_uid: fleet_uid_of(&record.object),
            terminating: record
                .object
                .pointer("/metadata/deletionTimestamp")
                .is_some(),
        }
    }
}

/// What to do with a set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SetPlan {
    /// Objects to write, in the set's order.
    pub put: Vec<Value>,
    /// Objects that must wait until the local object of the same name (a previous
    /// incarnation, still stopping) is gone: writing now would keep its deletion.
    pub deferred: Vec<Key>,
    /// Fleet objects no longer in the set.
    pub delete: Vec<Key>,
    /// Namespaces the set names that exist locally from another source: left as they are.
    pub kept_local: Vec<Key>,
}

/// Decides how a set meets the store. `local` holds what the store has under the set's
/// keys and under `fleet_owned` (the keys stored with the fleet source);
/// `namespaces_in_local_use` are namespaces holding objects that did not come from the
/// fleet, which therefore are never deleted with the fleet's set.
pub fn plan_set(
    incoming: &[Incoming],
    local: &BTreeMap<Key, Local>,
    fleet_owned: &[Key],
    namespaces_in_local_use: &HashSet<String>,
) -> SetPlan {
    let mut plan = SetPlan::default();
    // Another incarnation of a namespace still stopping: what goes in it waits too.
    let waiting_namespaces: HashSet<&str> = incoming
        .iter()
        .filter(|item| item.key.kind == "Namespace" && must_wait(item, local.get(&item.key)))
        .map(|item| item.key.name.as_str())
        .collect();
    for item in incoming {
        let existing = local.get(&item.key);
        if item.key.kind == "Namespace" && existing.is_some_and(|l| !l.came_from_fleet()) {
            plan.kept_local.push(item.key.clone());
        } else if must_wait(item, existing)
            || waiting_namespaces.contains(item.key.namespace.as_str())
        {
            plan.deferred.push(item.key.clone());
        } else {
            plan.put.push(item.object.clone());
        }
    }
    let wanted: HashSet<&Key> = incoming.iter().map(|item| &item.key).collect();
    for key in fleet_owned {
        let shared_namespace = key.kind == "Namespace"
            && (key.name == "default" || namespaces_in_local_use.contains(&key.name));
        if !wanted.contains(key) && !shared_namespace {
            plan.delete.push(key.clone());
        }
    }
    plan
}

/// The local object is another incarnation that is stopping, and the new one is not.
fn must_wait(item: &Incoming, existing: Option<&Local>) -> bool {
    existing.is_some_and(|l| l.terminating && !item.terminating && l.fleet_uid != item.fleet_uid)
}

fn fleet_uid_of(object: &Value) -> Option<String> {
    object
        .pointer("/metadata/annotations")
        .and_then(|annotations| annotations.get(FLEET_UID_ANNOTATION))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Checks one pushed object with the local model. Kinds a coordinator never pushes
/// (Deployments, ReplicaSets, ReplicationControllers, DaemonSets, ...: their controllers
/// run at the coordinator) are refused too, since a local one would start making pods of
/// its own.
pub fn check_incoming(value: &Value) -> Result<Incoming, String> {
    let object = Object::from_json(value.clone())?;
    let kind = object.kind();
    match kind {
        Kind::Namespace
        | Kind::Pod
        | Kind::ConfigMap
        | Kind::Secret
        | Kind::PersistentVolumeClaim
        | Kind::Service
        | Kind::Endpoints
        | Kind::EndpointSlice
        // Kept as its standby node: fired only while cut off from the coordinator.
        | Kind::CronJob => {}
        Kind::Deployment
        | Kind::ReplicaSet
        | Kind::ReplicationController
        | Kind::DaemonSet
        | Kind::StatefulSet
        | Kind::ControllerRevision
        | Kind::Job
        // Stored for the API only: a board has nothing to do with them.
        | Kind::ServiceAccount
        | Kind::Ingress
        | Kind::IngressClass
        | Kind::NetworkPolicy
        | Kind::HorizontalPodAutoscaler
        | Kind::PodDisruptionBudget
        // Pods come admitted, their priority given: a board has no use for classes.
        | Kind::PriorityClass => return Err(format!("a coordinator does not push {}s", kind.as_str())),
        // Quotas and limit ranges are enforced where objects are created: the
        // coordinator admits the fleet's pods (their defaults filled in) before it binds
        // them, as Kubernetes' API server does; a board enforces only its own.
        Kind::ResourceQuota | Kind::LimitRange => {
            return Err(format!(
                "a coordinator does not push {}s: it enforces them itself",
                kind.as_str()
            ))
        }
    }
    let meta = object.meta();
    if meta.name.is_empty() {
        return Err(format!("{kind} without a name"));
    }
    if kind.namespaced() && meta.namespace_or_empty().is_empty() {
        return Err(format!("{kind} {} without a namespace", meta.name));
    }
    let key = Key::new(
        kind.as_str(),
        if kind.namespaced() {
            meta.namespace_or_empty()
        } else {
            ""
        },
        &meta.name,
    );
    Ok(Incoming {
        key,
        fleet_uid: meta.annotations.get(FLEET_UID_ANNOTATION).cloned(),
        terminating: meta.deletion_timestamp.is_some(),
        object: object.to_json(),
    })
}

/// What applying a set did.
#[derive(Debug, Default)]
pub struct Applied {
    pub created: usize,
    pub configured: usize,
    pub deleted: usize,
    pub deferred: Vec<Key>,
}

/// Writes a set into the store: one `put_all` for what is new or changed, then graceful
/// deletion of the fleet objects that left the set.
pub fn apply_set(agent: &Agent, objects: &[Value]) -> Result<Applied, FleetError> {
    let mut incoming = Vec::with_capacity(objects.len());
    for value in objects {
        match check_incoming(value) {
            Ok(item) => incoming.push(item),
            Err(reason) => log::warn!("skipping a pushed object: {reason}"),
        }
    }
    let store_error = |err: crate::store::StoreError| FleetError::Store {
        reason: err.to_string(),
    };
    let mut store = agent.store();
    let fleet_owned: Vec<Key> = store
        .list_by_source(FLEET_SOURCE)
        .map_err(store_error)?
        .iter()
        .map(Record::key)
        .collect();
    let mut local = BTreeMap::new();
    for key in incoming.iter().map(|item| &item.key).chain(&fleet_owned) {
        if let Some(record) = store
            .get(&key.kind, &key.namespace, &key.name)
            .map_err(store_error)?
        {
            local.insert(key.clone(), Local::from_record(&record));
        }
    }
    let mut namespaces_in_local_use = HashSet::new();
    for key in fleet_owned.iter().filter(|k| k.kind == "Namespace") {
        for kind in [
            "Pod",
            "Deployment",
            "ConfigMap",
            "Secret",
            "PersistentVolumeClaim",
            "Service",
            "Endpoints",
            "EndpointSlice",
        ] {
            let records = store.list(kind, Some(&key.name)).map_err(store_error)?;
            if records
                .iter()
                .any(|r| !Local::from_record(r).came_from_fleet())
            {
                namespaces_in_local_use.insert(key.name.clone());
            }
        }
    }
    for item in &incoming {
        let taken = local.get(&item.key).is_some_and(|l| !l.came_from_fleet());
        if taken && item.key.kind != "Namespace" {
            log::warn!(
                "{} {}/{} applied locally is replaced by the coordinator's",
                item.key.kind,
                item.key.namespace,
                item.key.name
            );
        }
    }
    let plan = plan_set(&incoming, &local, &fleet_owned, &namespaces_in_local_use);
    let mut applied = Applied {
        deferred: plan.deferred,
        ..Applied::default()
    };
    if !plan.put.is_empty() {
        for (_, outcome) in store
            .put_all(plan.put, Some(FLEET_SOURCE))
            .map_err(store_error)?
        {
            match outcome {
                PutOutcome::Created => applied.created += 1,
                PutOutcome::Configured => applied.configured += 1,
                PutOutcome::Unchanged => {}
            }
        }
    }
    drop(store);
    if !plan.delete.is_empty() {
        let result = delete_keys(agent, &plan.delete).map_err(|refusal| FleetError::Store {
            reason: refusal.message,
        })?;
        applied.deleted = result.items.len();
    }
    if applied.created + applied.configured > 0 {
        agent.wake();
    }
    Ok(applied)
}

/// Whether a deferred object's way is clear now: its old incarnation is gone. (What waits
/// for a namespace waits with it, and the namespace is itself in the list.)
fn any_cleared(agent: &Agent, deferred: &[Key]) -> bool {
    let store = agent.store();
    // A read error leaves it for the next round.
    deferred
        .iter()
        .any(|key| matches!(store.get(&key.kind, &key.namespace, &key.name), Ok(None)))
}

/// Long-polls the assignments of `node` for ever and applies each new set.
pub fn run(agent: &Arc<Agent>, client: &Client, node: &str, link: &Link) {
    let client = client.clone().with_timeout(POLL_READ_TIMEOUT);
    let mut version = String::new();
    let mut current: Vec<Value> = Vec::new();
    let mut deferred: Vec<Key> = Vec::new();
    let mut delay = reconnect_retries();
    let mut reported_runs = ReportedRuns::default();
    loop {
        // Before a poll renews the lease: a coordinator that just started waits for it.
        if let Err(err) = reported_runs.send(agent, &client, node) {
            log::debug!("cannot report the CronJob runs of this board yet: {err}");
        }
        if !deferred.is_empty() && any_cleared(agent, &deferred) {
            match apply_set(agent, &current) {
                Ok(applied) => {
                    log_applied(&version, &applied);
                    deferred = applied.deferred;
                }
                Err(err) => log::error!("{err}"),
            }
        }
        let path = format!(
            "/apis/berth.dev/v1/nodes/{}/assignments?version={}&timeoutSeconds={POLL_SECONDS}",
            percent_encode(node),
            percent_encode(&version)
        );
        let started = Instant::now();
        let body = match client.request("GET", &path, None) {
            Ok((_, body)) => body,
            Err(err) => {
                let refused = matches!(
                    err,
                    ApiError::Status {
                        code: 401 | 403,
                        ..
                    }
                );
                if refused && delay.is_fresh() {
                    // Not an outage: the coordinator no longer accepts this node. It keeps
                    // running what it has; an operator decides (remove fleet.json, join again).
                    log::warn!(
                        "the coordinator refuses this node's credential: {err}; remove {} to join again",
                        super::FLEET_FILE
                    );
                }
                if refused {
                    link.refused();
                } else {
                    link.down(&err);
                }
                std::thread::sleep(delay.after_failure());
                continue;
            }
        };
        link.up();
        let assignments: Assignments = match serde_json::from_value(body) {
            Ok(assignments) => assignments,
            Err(err) => {
                log::warn!("invalid assignments from the coordinator: {err}");
                std::thread::sleep(delay.after_failure());
                continue;
            }
        };
        if assignments.unchanged || assignments.version == version {
            delay.reset();
            if let Some(rest) = MIN_POLL_INTERVAL.checked_sub(started.elapsed()) {
                std::thread::sleep(rest);
            }
            continue;
        }
        if let Err(err) =
            crate::agent::network_start::on_assignments(agent, assignments.network.as_ref())
        {
            log::error!("cannot set up the pod network from the assignments: {err:#}");
        }
        match apply_set(agent, &assignments.objects) {
            Ok(applied) => {
                log_applied(&assignments.version, &applied);
                version = assignments.version;
                current = assignments.objects;
                deferred = applied.deferred;
                delay.reset();
            }
            Err(err) => {
                // The version stays old, so the next poll brings the set again.
                log::error!("cannot apply assignments: {err}");
                std::thread::sleep(delay.after_failure());
            }
        }
    }
}

/// One line when a set changed something; an unchanged set is not news.
fn log_applied(version: &str, applied: &Applied) {
    if applied.created + applied.configured + applied.deleted == 0 && applied.deferred.is_empty() {
        log::debug!("assignments {version} already in place");
        return;
    }
    log::info!(
        "assignments {version}: {} created, {} configured, {} deleted, {} waiting for their previous incarnation to stop",
        applied.created,
        applied.configured,
        applied.deleted,
        applied.deferred.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, uid: &str, deleting: bool) -> Value {
        let mut pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": "web",
                "uid": "coordinator-uid",
                "resourceVersion": "42",
                "annotations": {FLEET_UID_ANNOTATION: uid},
            },
            "spec": {"containers": [{"name": "c", "image": "busybox"}], "nodeName": "pi-1"},
            "status": {"phase": "Running"},
        });
        if deleting {
            pod["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        pod
    }

    fn namespace(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name,
            "annotations": {FLEET_UID_ANNOTATION: format!("ns-{name}")}}})
    }

    fn incoming(values: &[Value]) -> Vec<Incoming> {
        values.iter().map(|v| check_incoming(v).unwrap()).collect()
    }

    fn fleet_local(uid: &str, terminating: bool) -> Local {
        Local {
            source: Some(FLEET_SOURCE.into()),
            fleet_uid: Some(uid.into()),
            terminating,
        }
    }

    #[test]
    fn pushed_objects_are_checked_and_normalised() {
        let item = check_incoming(&pod("a", "u1", false)).unwrap();
        assert_eq!(item.key, Key::new("Pod", "web", "a"));
        assert_eq!(item.fleet_uid.as_deref(), Some("u1"));
        assert!(!item.terminating);
        assert!(check_incoming(&pod("a", "u1", true)).unwrap().terminating);
        let ns = check_incoming(&namespace("web")).unwrap();
        assert_eq!(ns.key, Key::new("Namespace", "", "web"));
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "web"}, "spec": {}});
        assert!(check_incoming(&deploy).is_err());
        let rc = json!({"apiVersion": "v1", "kind": "ReplicationController",
            "metadata": {"name": "r", "namespace": "web"}, "spec": {}});
        assert_eq!(
            check_incoming(&rc).err().as_deref(),
            Some("a coordinator does not push ReplicationControllers")
        );
        assert!(check_incoming(&json!({"kind": "Service", "metadata": {"name": "s"}})).is_err());
        let unnamespaced =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        assert!(check_incoming(&unnamespaced).is_err());
    }

    #[test]
    fn a_new_set_puts_everything_and_deletes_what_left() {
        let set = incoming(&[namespace("web"), pod("a", "u1", false)]);
        let owned = vec![
            Key::new("Namespace", "", "web"),
            Key::new("Pod", "web", "a"),
            Key::new("Pod", "web", "old"),
            Key::new("ConfigMap", "web", "gone"),
        ];
        let plan = plan_set(&set, &BTreeMap::new(), &owned, &HashSet::new());
        assert_eq!(plan.put.len(), 2);
        assert_eq!(
            plan.delete,
            vec![
                Key::new("Pod", "web", "old"),
                Key::new("ConfigMap", "web", "gone")
            ]
        );
        assert!(plan.deferred.is_empty() && plan.kept_local.is_empty());
        // An empty set deletes every fleet object.
        let plan = plan_set(&[], &BTreeMap::new(), &owned, &HashSet::new());
        assert_eq!(plan.delete, owned);
    }

    #[test]
    fn shared_namespaces_are_never_deleted_or_taken() {
        let owned = vec![
            Key::new("Namespace", "", "default"),
            Key::new("Namespace", "", "mixed"),
            Key::new("Namespace", "", "ours"),
        ];
        let in_use: HashSet<String> = ["mixed".to_string()].into();
        let plan = plan_set(&[], &BTreeMap::new(), &owned, &in_use);
        assert_eq!(plan.delete, vec![Key::new("Namespace", "", "ours")]);

        let set = incoming(&[namespace("default")]);
        let local: BTreeMap<Key, Local> = [(
            Key::new("Namespace", "", "default"),
            Local {
                source: None,
                fleet_uid: None,
                terminating: false,
            },
        )]
        .into();
        let plan = plan_set(&set, &local, &[], &HashSet::new());
        assert!(plan.put.is_empty());
        assert_eq!(plan.kept_local, vec![Key::new("Namespace", "", "default")]);
    }

    #[test]
    fn a_stopping_previous_incarnation_defers_the_new_one() {
        let set = incoming(&[pod("a", "u2", false), pod("b", "u3", false)]);
        let local: BTreeMap<Key, Local> = [
            (Key::new("Pod", "web", "a"), fleet_local("u1", true)),
            // The same incarnation, stopping because it was deleted here: not deferred.
            (Key::new("Pod", "web", "b"), fleet_local("u3", true)),
        ]
        .into();
        let plan = plan_set(&set, &local, &[], &HashSet::new());
        assert_eq!(plan.deferred, vec![Key::new("Pod", "web", "a")]);
        assert_eq!(plan.put.len(), 1);
        assert_eq!(plan.put[0]["metadata"]["name"], "b");
        // A pod that is being deleted at the coordinator too is simply written.
        let set = incoming(&[pod("a", "u2", true)]);
        let plan = plan_set(&set, &local, &[], &HashSet::new());
        assert!(plan.deferred.is_empty());
        assert_eq!(plan.put.len(), 1);
    }

    #[test]
    fn a_stopping_namespace_defers_what_goes_in_it() {
        let set = incoming(&[namespace("web"), pod("a", "u1", false)]);
        let local: BTreeMap<Key, Local> = [(
            Key::new("Namespace", "", "web"),
            fleet_local("ns-old", true),
        )]
        .into();
        let plan = plan_set(&set, &local, &[], &HashSet::new());
        assert!(plan.put.is_empty());
        assert_eq!(
            plan.deferred,
            vec![
                Key::new("Namespace", "", "web"),
                Key::new("Pod", "web", "a")
            ]
        );
    }

    #[test]
    fn normalised_objects_keep_the_fleet_annotation_and_deletion() {
        let item = check_incoming(&pod("a", "u1", true)).unwrap();
        assert_eq!(
            item.object["metadata"]["annotations"][FLEET_UID_ANNOTATION],
            "u1"
        );
        assert!(item.object["metadata"]["deletionTimestamp"].is_string());
        assert_eq!(item.object["spec"]["containers"][0]["image"], "busybox");
    }
}
