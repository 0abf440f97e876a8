//! The coordinator's API over HTTPS: the resource API both daemons serve
//! ([`crate::api::resources`]: Kubernetes paths, JSON, `Status` errors) for the admin,
//! plus the routes agents use ([`crate::api::fleet`]). Every request is authenticated
//! first, from its head before its body is read ([`admit`]), and again with the body
//! when it is routed; a node credential may use only its own node's routes.

use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::assignments::{AllAssignments, FleetObjects};
use super::auth::{Denied, Subject};
use super::fleet::node_view;
use super::join_tokens::JoinDenied;
use super::{join, pod_cidrs, Coordinator};
use crate::api::apply::{apply_to_store, delete_manifests_in_store, AdmissionOptions};
use crate::api::fleet::{Assignments, PodStatusAck, PodStatusReport};
use crate::api::http::{Admission, Request, Response};
use crate::api::refusal::{
    bad_request, internal, invalid, method_not_allowed, not_found, refusal, Refusal,
};
use crate::api::resources::{
    label_selector, list_response, matches_labels, path_segments, request_body, serve_resources,
    served_api, success_response, watch_response, Resources, Stored,
};
use crate::api::types::{ApplyRequest, Version};
use crate::api::watch::WatchParams;
use crate::controllers::{
    daemon_set, deployment_status, namespace, replica_set, stateful_set, World,
};
use crate::model::Object;
use crate::store::{Key, Record, Store};
use event_listener::EventListener;

/// Longest long poll an agent may ask for.
const MAX_POLL: Duration = Duration::from_secs(60);

pub async fn handle(coordinator: Arc<Coordinator>, request: Request) -> Response {
    let (method, path) = (request.method.clone(), request.path.clone());
    let result = match poll_target(&request) {
        Some(node) => poll(&coordinator, &request, node).await,
        None => {
            let coordinator = Arc::clone(&coordinator);
            smol::unblock(move || route(&coordinator, &request)).await
        }
    };
    result.unwrap_or_else(|refusal| {
        log::debug!("{method} {path}: {} {}", refusal.code, refusal.message);
        refusal.response()
    })
}

/// Lets a request in from its head alone: the version for anyone, a join with a valid
/// join token, anything else with a valid credential (what each may do is decided by
/// [`route`]). Everything else gets the 401 that routing would give, and a malformed
/// path its 400, without its body ever being read.
pub fn admit(coordinator: &Coordinator, request: &Request) -> Admission {
    let denied = |refusal: Refusal| Admission::Denied(refusal.response());
    let parts = match path_segments(&request.path) {
        Ok(parts) => parts,
        Err(refusal) => return denied(refusal),
    };
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    match (request.method.as_str(), &parts[..]) {
        ("GET", ["version"]) => Admission::Anonymous,
        ("POST", ["apis", "berth.dev", "v1", "join"]) => {
            let checked = if coordinator.peers.is_some() {
                coordinator.check_join_token(join_bearer(request), &mut coordinator.store())
            } else {
                coordinator
                    .auth
                    .check_join_token(join_bearer(request), std::time::SystemTime::now())
            };
            match checked {
                // A spent or expired token was still presented with its secret: the join
                // decides, since a board repeating a join whose answer it lost may pass.
                Ok(_) | Err(JoinDenied::UsedUp { .. } | JoinDenied::Expired { .. }) => {
                    Admission::Authenticated
                }
                Err(refused) => denied(join::denied(refused)),
            }
        }
        _ => match authenticate(coordinator, request) {
            Ok(_) => Admission::Authenticated,
            Err(refusal) => denied(refusal),
        },
    }
}

fn join_bearer(request: &Request) -> &str {
    request
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("")
}

fn forbidden(subject: &Subject, what: &str) -> Refusal {
    let who = match subject {
        Subject::Admin => "admin".to_string(),
        Subject::Node(name) => format!("node {name:?}"),
    };
    refusal(403, "Forbidden", format!("{who} may not {what}"))
}

fn authenticate(coordinator: &Coordinator, request: &Request) -> Result<Subject, Refusal> {
    coordinator
        .auth
        .authenticate(request)
        .map_err(|Denied::Unauthenticated(why)| refusal(401, "Unauthorized", why))
}

/// The node of an assignments long poll, if the request is one (a malformed path is
/// not, and [`route`] refuses it).
fn poll_target(request: &Request) -> Option<String> {
    let parts = path_segments(&request.path).ok()?;
    match parts.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["apis", "berth.dev", "v1", "nodes", node, "assignments"] if request.method == "GET" => {
            Some(node.to_string())
        }
        _ => None,
    }
}

/// The long poll: renews the node's lease, answers at once when its assignments differ
/// from the version it has, otherwise waits for a change or the timeout.
async fn poll(
    coordinator: &Arc<Coordinator>,
    request: &Request,
    node: String,
) -> Result<Response, Refusal> {
    match authenticate(coordinator, request)? {
        Subject::Node(name) if name == node => {}
        subject => {
            return Err(forbidden(
                &subject,
                &format!("read the assignments of {node:?}"),
            ))
        }
    }
    // Cut off from etcd, this coordinator would answer "unchanged" for ever: send the
    // agent to another one.
    if coordinator
        .peers
        .as_ref()
        .is_some_and(|p| !p.reaches_store())
    {
        return Err(crate::api::refusal::refusal(
            503,
            "ServiceUnavailable",
            "this coordinator cannot reach its datastore",
        ));
    }
    let known = request.query_param("version").unwrap_or("").to_string();
    // The poll is the heartbeat: hold it at most a quarter of the grace period so a
    // healthy node renews its lease several times before it could be judged lost.
    let timeout = request
        .query_param("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(Duration::from_secs(10), Duration::from_secs)
        .min(MAX_POLL)
        .min(coordinator.options.node_monitor_grace / 4);
    let deadline = Instant::now() + timeout;
    coordinator.renew_node(&node);
    // A board reports the CronJob runs it made while cut off before it polls.
    coordinator.fleet.polled(&node);
    let mut asked_for_pod_cidr = false;
    loop {
        // A node deleted meanwhile has lost its credential: end its poll now rather
        // than at the timeout (the deletion itself wakes the poll).
        authenticate(coordinator, request)?;
        // Listen before computing, so a change during the computation still wakes us.
        let listener = coordinator.fleet.listen();
        let current = changed_assignments(coordinator, &node, &known).await?;
        // A node that joined before pod CIDRs were handed out, or while none was free,
        // asks again once per poll (what is cached tells, without reading the store).
        if !asked_for_pod_cidr && coordinator.fleet.lacks_pod_cidr(&node) {
            asked_for_pod_cidr = true;
            let (coordinator, node) = (Arc::clone(coordinator), node.clone());
            if smol::unblock(move || give_pod_cidr(&coordinator, &node)).await? {
                continue;
            }
        }
        if let Some(current) = current.filter(|current| current.version != known) {
            return Ok(Response::json(200, &to_json(&current)));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let woke = smol::future::or(
            async {
                listener.await;
                true
            },
            async {
                smol::Timer::after(left).await;
                false
            },
        )
        .await;
        if !woke {
            break;
        }
    }
    let unchanged = Assignments {
        version: known,
        unchanged: true,
        objects: Vec::new(),
        network: None,
    };
    Ok(Response::json(200, &to_json(&unchanged)))
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// `node`'s assignments if they differ from version `known`. After a change every
/// waiting poll wakes at once: they take turns so that one computes everyone's
/// assignments on a blocking thread while the others wait without holding one, then
/// find them computed (and most find their own unchanged).
async fn changed_assignments(
    coordinator: &Arc<Coordinator>,
    node: &str,
    known: &str,
) -> Result<Option<Assignments>, Refusal> {
    let fetch = || {
        let (coordinator, node) = (Arc::clone(coordinator), node.to_owned());
        smol::unblock(move || assignments(&coordinator, &node))
    };
    if coordinator.fleet.cached_version(node).is_none() {
        let _turn = coordinator.fleet.recompute_turn().await;
        if coordinator.fleet.cached_version(node).is_none() {
            let current = fetch().await?;
            return Ok((current.version != known).then_some(current));
        }
    }
    if coordinator.fleet.cached_version(node).as_deref() == Some(known) {
        return Ok(None);
    }
    Ok(Some(fetch().await?))
}

pub fn assignments(coordinator: &Coordinator, node: &str) -> Result<Assignments, Refusal> {
    coordinator
        .fleet
        .assignments(node, || {
            let objects = FleetObjects::load(&coordinator.store())?;
            Ok(AllAssignments::compute(
                &objects,
                &coordinator.options.cluster_cidr,
            ))
        })
        .map_err(internal)
}

/// Gives `node` a pod CIDR if it has none and one is free; returns whether it did.
fn give_pod_cidr(coordinator: &Coordinator, node: &str) -> Result<bool, Refusal> {
    let cluster = &coordinator.options.cluster_cidr;
    let outcomes = pod_cidrs::assign_missing(&mut coordinator.store(), cluster, Some(node))?;
    let mut given = false;
    for (name, outcome) in outcomes {
        match outcome {
            Ok(cidr) => {
                log::info!("node {name} was given pod CIDR {cidr}");
                given = true;
            }
            Err(err) => log::debug!("node {name} has no pod CIDR: {err}"),
        }
    }
    if given {
        coordinator.changed();
    }
    Ok(given)
}

fn route(coordinator: &Arc<Coordinator>, request: &Request) -> Result<Response, Refusal> {
    let parts = path_segments(&request.path)?;
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let method = request.method.as_str();
    match (method, &parts[..]) {
        ("GET", ["version"]) => {
            let version = Version {
                version: crate::VERSION.to_string(),
                git_revision: crate::GIT_REVISION.to_string(),
                target: crate::TARGET.to_string(),
            };
            return Ok(Response::json(200, &to_json(&version)));
        }
        ("POST", ["apis", "berth.dev", "v1", "join"]) => return join::join(coordinator, request),
        _ => {}
    }
    let subject = authenticate(coordinator, request)?;
    match (&subject, method, &parts[..]) {
        (Subject::Node(me), "PUT", ["api", "v1", "nodes", node, "status"]) if me == node => {
            join::node_status(coordinator, request, node)
        }
        (Subject::Node(me), "PUT", ["apis", "berth.dev", "v1", "nodes", node, "podstatuses"])
            if me == node =>
        {
            pod_statuses(coordinator, request, node)
        }
        (Subject::Node(me), "GET", ["api", "v1", "nodes", node]) if me == node => {
            get_node(coordinator, node)
        }
        (Subject::Node(_), _, _) => Err(forbidden(&subject, &format!("{method} {}", request.path))),
        (Subject::Admin, _, _) => admin_route(coordinator, request, &parts),
    }
}

fn admin_route(
    coordinator: &Arc<Coordinator>,
    request: &Request,
    parts: &[&str],
) -> Result<Response, Refusal> {
    let method = request.method.as_str();
    match (method, parts) {
        (_, ["apis", "berth.dev", "v1", "tokens", rest @ ..]) => {
            join::tokens(coordinator, request, rest)
        }
        ("GET", ["apis", "berth.dev", "v1", "coordinators"]) => {
            super::coordinators::list(coordinator)
        }
        ("POST", ["apis", "berth.dev", "v1", "apply"]) => {
            let apply_request: ApplyRequest = request_body(request)?;
            let admission = coordinator.admission();
            let result =
                apply_to_store(&mut coordinator.store(), &apply_request, None, &admission)?;
            coordinator.changed();
            Ok(Response::json(200, &to_json(&result)))
        }
        ("POST", ["apis", "berth.dev", "v1", "delete"]) => {
            let apply_request: ApplyRequest = request_body(request)?;
            let result = delete_manifests_in_store(&mut coordinator.store(), &apply_request)?;
            coordinator.changed();
            Ok(Response::json(200, &to_json(&result)))
        }
        (_, ["api", "v1", "nodes", rest @ ..]) => nodes(coordinator, request, rest),
        (_, ["api", "v1", rest @ ..]) => serve_resources(coordinator, request, "v1", rest),
        (_, ["apis", group, version, rest @ ..]) if served_api(group, version) => {
            serve_resources(coordinator, request, &format!("{group}/{version}"), rest)
        }
        _ => Err(not_found(format!("no such resource path {}", request.path))),
    }
}

fn pod_statuses(
    coordinator: &Arc<Coordinator>,
    request: &Request,
    node: &str,
) -> Result<Response, Refusal> {
    let report: PodStatusReport = request_body(request)?;
    let mut ack = PodStatusAck::default();
    let mut changed = false;
    let mut store = coordinator.store();
    for pod in report.pods {
        let record = store.get("Pod", &pod.namespace, &pod.name)?;
        let bound_here = record.as_ref().is_some_and(|r| {
            r.uid == pod.fleet_uid
                && r.object.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node)
        });
        let Some(record) = record.filter(|_| bound_here) else {
            // Replaced or moved while the node was away: its word no longer counts.
            ack.stale.push(format!("{}/{}", pod.namespace, pod.name));
            continue;
        };
        ack.accepted += 1;
        if pod.gone {
            if record
                .object
                .pointer("/metadata/deletionTimestamp")
                .is_some()
            {
                store.delete_all(&[record.key()])?;
                changed = true;
            }
            continue;
        }
        changed |= store.set_status("Pod", &pod.namespace, &pod.name, &pod.status)?;
    }
    if !report.cron_jobs.is_empty() {
        changed |= super::cron_standby::take_reported_runs(
            &mut store,
            &coordinator.fleet,
            node,
            &report.cron_jobs,
        )
        .map_err(|err| internal(format!("{err:#}")))?;
    }
    drop(store);
    if changed {
        coordinator.changed();
    }
    Ok(Response::json(200, &to_json(&ack)))
}

pub(super) fn get_node(coordinator: &Coordinator, node: &str) -> Result<Response, Refusal> {
    let record = coordinator
        .store()
        .get("Node", "", node)?
        .ok_or_else(|| not_found(format!("nodes \"{node}\" not found")))?;
    Ok(Response::json(200, &view_node(coordinator, record)))
}

fn view_node(coordinator: &Coordinator, record: Record) -> Value {
    let last_seen = coordinator.fleet.last_seen(&record.name);
    node_view(
        record,
        last_seen,
        coordinator.options.node_monitor_grace,
        Instant::now(),
    )
}

/// `/api/v1/nodes[/NAME]`: list, get, patch (`spec.unschedulable`, `spec.taints`,
/// labels), delete.
fn nodes(
    coordinator: &Arc<Coordinator>,
    request: &Request,
    rest: &[&str],
) -> Result<Response, Refusal> {
    match (request.method.as_str(), rest) {
        ("GET", []) => {
            let selector = label_selector(request)?;
            if let Some(params) = WatchParams::from_request(request) {
                let (lister, listener) = (Arc::clone(coordinator), Arc::clone(coordinator));
                return Ok(watch_response(
                    params.map_err(bad_request)?,
                    ("Node", "v1"),
                    move || list_nodes(&lister, &selector),
                    move || listener.fleet.listen(),
                ));
            }
            Ok(list_response(list_nodes(coordinator, &selector)?))
        }
        ("GET", [name]) => get_node(coordinator, name),
        ("PATCH", [name]) => patch_node(coordinator, request, name),
        ("DELETE", [name]) => {
            let mut store = coordinator.store();
            if store.delete_all(&[Key::new("Node", "", name)])?.is_empty() {
                return Err(not_found(format!("nodes \"{name}\" not found")));
            }
            coordinator
                .auth
                .remove_node_credential(&mut store, name)
                .map_err(internal)?;
            drop(store);
            coordinator.fleet.forget(name);
            if let Some(peers) = &coordinator.peers {
                peers.forget(name);
            }
            coordinator.changed();
            log::info!("node {name} deleted");
            Ok(success_response(name, "nodes"))
        }
        (method, _) => Err(method_not_allowed(method, &request.path)),
    }
}

/// `PATCH /api/v1/nodes/NAME`: `spec.unschedulable`, `spec.taints` and labels.
fn patch_node(
    coordinator: &Arc<Coordinator>,
    request: &Request,
    name: &str,
) -> Result<Response, Refusal> {
    let patch: Value = request_body(request)?;
    let mut store = coordinator.store();
    let record = store
        .get("Node", "", name)?
        .ok_or_else(|| not_found(format!("nodes \"{name}\" not found")))?;
    let mut object = record.object;
    if let Some(unschedulable) = patch.pointer("/spec/unschedulable") {
        let Some(flag) = unschedulable.as_bool() else {
            return Err(invalid("spec.unschedulable: expected boolean"));
        };
        object["spec"]["unschedulable"] = Value::Bool(flag);
    }
    if let Some(taints) = patch.pointer("/spec/taints") {
        let before: Vec<crate::model::Taint> = object
            .pointer("/spec/taints")
            .and_then(|t| serde_json::from_value(t.clone()).ok())
            .unwrap_or_default();
        let now = std::time::SystemTime::now();
        let taints = super::node_taints::patched_taints(taints, &before, now)?;
        object["spec"]["taints"] = serde_json::to_value(taints).map_err(internal)?;
    }
    if let Some(labels) = patch.pointer("/metadata/labels").and_then(Value::as_object) {
        for (key, value) in labels {
            match value {
                Value::Null => {
                    if let Some(map) = object["metadata"]["labels"].as_object_mut() {
                        map.remove(key);
                    }
                }
                Value::String(_) => object["metadata"]["labels"][key] = value.clone(),
                _ => return Err(invalid(format!("metadata.labels.{key}: expected string"))),
            }
        }
    }
    store.put_all(vec![object], None)?;
    drop(store);
    coordinator.changed();
    get_node(coordinator, name)
}

/// `fieldSelector=spec.nodeName=NAME`, the one field selector kubectl drain needs.
fn field_matches(selector: &str, item: &Value) -> Result<bool, Refusal> {
    match selector.split_once('=') {
        Some(("spec.nodeName", node)) => Ok(item
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("")
            == node),
        _ => Err(bad_request(format!(
            "unsupported fieldSelector {selector:?} (only spec.nodeName=NAME)"
        ))),
    }
}

/// The resource routes ([`serve_resources`]) show stored objects with the status agents
/// reported, understand `fieldSelector=spec.nodeName=NAME`, and wake the controllers
/// after a write.
impl Resources for Coordinator {
    fn store(&self) -> MutexGuard<'_, Store> {
        Coordinator::store(self)
    }

    fn show(&self, stored: Stored) -> Result<Vec<Value>, Refusal> {
        // Pods, ReplicaSets and nodes only for the workloads, whose status reads their
        // pods' reported readiness.
        let with_nodes = stored.records.iter().any(|r| r.kind == "DaemonSet");
        let world =
            super::controllers::view_world(self, stored.replica_sets, stored.pods, with_nodes)
                .map_err(internal)?;
        Ok(stored
            .records
            .into_iter()
            .map(|r| view(r, &world))
            .collect())
    }

    fn field_matches(&self, selector: &str, item: &Value) -> Result<bool, Refusal> {
        field_matches(selector, item)
    }

    /// What admission judges by, from the coordinator's flags.
    fn admission(&self) -> AdmissionOptions {
        let options = &self.options;
        AdmissionOptions {
            pod_security_level: options.pod_security_level,
            service_cidr: options.service_cidr,
            node_port_range: options.node_port_range,
            zoneinfo: crate::api::zoneinfo::system_root(),
        }
    }

    fn changed(&self) {
        Coordinator::changed(self);
    }

    fn changes(&self) -> EventListener {
        self.fleet.listen()
    }

    fn events(&self) -> Option<&crate::api::events::EventLog> {
        Some(&self.events)
    }
}

fn list_nodes(
    coordinator: &Coordinator,
    selector: &[(String, String)],
) -> Result<Vec<Value>, Refusal> {
    let records = coordinator.store().list("Node", None)?;
    Ok(records
        .into_iter()
        .map(|r| view_node(coordinator, r))
        .filter(|item| matches_labels(selector, item))
        .collect())
}

/// An object as the API shows it: the stored object with the status its agent
/// reported; a workload's status (a Deployment's, a ReplicaSet's, a
/// ReplicationController's, ...) is derived from its pods' reported readiness
/// (`world`), a Namespace's from whether it is being deleted; a Service's is always the
/// empty load balancer status.
fn view(record: Record, world: &World) -> Value {
    let status = record.status;
    let object = record.object;
    match record.kind.as_str() {
        "Deployment"
        | "ReplicaSet"
        | "ReplicationController"
        | "DaemonSet"
        | "StatefulSet"
        | "Namespace"
        | "Service" => match Object::from_json(object.clone()) {
            Ok(Object::Deployment(deploy)) => {
                Object::Deployment(deployment_status::with_status(deploy, world)).to_json()
            }
            Ok(Object::ReplicaSet(rs)) => {
                Object::ReplicaSet(replica_set::with_status(rs, world)).to_json()
            }
            Ok(Object::ReplicationController(rc)) => Object::ReplicationController(
                replica_set::replication_controller_with_status(rc, world),
            )
            .to_json(),
            Ok(Object::DaemonSet(ds)) => {
                Object::DaemonSet(daemon_set::with_status(ds, world)).to_json()
            }
            Ok(Object::StatefulSet(set)) => {
                Object::StatefulSet(stateful_set::with_status(set, world)).to_json()
            }
            Ok(Object::Namespace(ns)) => Object::Namespace(namespace::with_status(ns)).to_json(),
            Ok(service @ Object::Service(_)) => service.to_json(),
            _ => object,
        },
        kind => {
            let mut object = object;
            match status {
                Some(status) => object["status"] = status,
                None if matches!(kind, "Pod" | "PersistentVolumeClaim") => {
                    object["status"] = json!({"phase": "Pending"})
                }
                None => {}
            }
            object
        }
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod server_tests;
