//! The coordinator's API over HTTPS: the agent's resource API shape (Kubernetes paths,
//! JSON, `Status` errors) for the admin, plus the routes agents use
//! ([`crate::api::fleet`]). Every request is authenticated first, from its head before
//! its body is read ([`admit`]), and again with the body when it is routed; a node
//! credential may use only its own node's routes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::auth::{Denied, Subject};
use super::fleet::{all_assignments, node_view};
use super::{join, Coordinator};
use crate::agent::apply::{self, Refusal};
use crate::agent::server::{resource_target, ResourceTarget};
use crate::api::fleet::{Assignments, PodStatusAck, PodStatusReport};
use crate::api::http::{Admission, Request, Response};
use crate::api::types::{ApplyRequest, Version};
use crate::api::watch::{self, WatchParams};
use crate::controllers::deployment::{deployment_status, OwnedPod, TEMPLATE_HASH_LABEL};
use crate::model::{parse_selector, pod_template_hash, selector_matches, Kind, Object};
use crate::store::{Key, Record};

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
        Response::status_error(refusal.code, refusal.reason, &refusal.message)
    })
}

/// Lets a request in from its head alone: the version for anyone, a join with a valid
/// join token, anything else with a valid credential (what each may do is decided by
/// [`route`]). Everything else gets the 401 that routing would give, without its body
/// ever being read.
pub fn admit(coordinator: &Coordinator, request: &Request) -> Admission {
    let parts = segments(&request.path);
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let denied = |refusal: Refusal| {
        Admission::Denied(Response::status_error(
            refusal.code,
            refusal.reason,
            &refusal.message,
        ))
    };
    match (request.method.as_str(), &parts[..]) {
        ("GET", ["version"]) => Admission::Anonymous,
        ("POST", ["apis", "berth.dev", "v1", "join"]) => {
            match coordinator
                .auth
                .check_join_token(join_bearer(request), std::time::SystemTime::now())
            {
                Ok(_) => Admission::Authenticated,
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

pub(super) fn refusal(code: u16, reason: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        reason,
        message: message.into(),
    }
}

pub(super) fn not_found(message: String) -> Refusal {
    refusal(404, "NotFound", message)
}

pub(super) fn internal(err: impl std::fmt::Display) -> Refusal {
    refusal(500, "InternalError", err.to_string())
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

pub(super) fn body<T: serde::de::DeserializeOwned>(request: &Request) -> Result<T, Refusal> {
    serde_json::from_slice(&request.body)
        .map_err(|e| refusal(400, "BadRequest", format!("invalid request body: {e}")))
}

fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| crate::api::http::percent_decode(s).unwrap_or_else(|_| s.to_string()))
        .collect()
}

/// The node of an assignments long poll, if the request is one.
fn poll_target(request: &Request) -> Option<String> {
    let parts = segments(&request.path);
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
    coordinator.fleet.renew(&node);
    loop {
        // A node deleted meanwhile has lost its credential: end its poll now rather
        // than at the timeout (the deletion itself wakes the poll).
        authenticate(coordinator, request)?;
        // Listen before computing, so a change during the computation still wakes us.
        let listener = coordinator.fleet.listen();
        let current = match coordinator.fleet.cached(&node) {
            Some(current) => current,
            None => {
                let (coordinator, node) = (Arc::clone(coordinator), node.clone());
                smol::unblock(move || assignments(&coordinator, &node)).await?
            }
        };
        if current.version != known {
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
    };
    Ok(Response::json(200, &to_json(&unchanged)))
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

pub fn assignments(coordinator: &Coordinator, node: &str) -> Result<Assignments, Refusal> {
    coordinator
        .fleet
        .assignments(node, || {
            let store = coordinator.store();
            let namespaces = store.list("Namespace", None)?;
            let secrets = store.list("Secret", None)?;
            let pods = store.list("Pod", None)?;
            Ok(all_assignments(&namespaces, &secrets, &pods))
        })
        .map_err(internal)
}

fn route(coordinator: &Arc<Coordinator>, request: &Request) -> Result<Response, Refusal> {
    let parts = segments(&request.path);
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
        ("POST", ["apis", "berth.dev", "v1", "apply"]) => {
            let apply_request: ApplyRequest = body(request)?;
            let level = coordinator.options.pod_security_level;
            let result =
                apply::apply_to_store(&mut coordinator.store(), &apply_request, None, level)?;
            coordinator.changed();
            Ok(Response::json(200, &to_json(&result)))
        }
        ("POST", ["apis", "berth.dev", "v1", "delete"]) => {
            let apply_request: ApplyRequest = body(request)?;
            let objects = apply::parse_request(&apply_request)?;
            let keys: Vec<Key> = objects
                .iter()
                .map(|o| {
                    Key::new(
                        o.kind().as_str(),
                        o.meta().namespace_or_empty(),
                        &o.meta().name,
                    )
                })
                .collect();
            let result = apply::delete_keys_in_store(&mut coordinator.store(), &keys)?;
            coordinator.changed();
            Ok(Response::json(200, &to_json(&result)))
        }
        (_, ["api", "v1", "nodes", rest @ ..]) => nodes(coordinator, request, rest),
        (_, ["apis", "apps", "v1", "namespaces", ns, "deployments", name, "scale"]) => {
            scale(coordinator, request, ns, name)
        }
        (_, ["api", "v1", rest @ ..]) => resources(coordinator, request, "v1", rest),
        (_, ["apis", "apps", "v1", rest @ ..]) => resources(coordinator, request, "apps/v1", rest),
        _ => Err(not_found(format!("no such resource path {}", request.path))),
    }
}

fn pod_statuses(
    coordinator: &Arc<Coordinator>,
    request: &Request,
    node: &str,
) -> Result<Response, Refusal> {
    let report: PodStatusReport = body(request)?;
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

/// `/api/v1/nodes[/NAME]`: list, get, patch (`spec.unschedulable`, labels), delete.
fn nodes(
    coordinator: &Arc<Coordinator>,
    request: &Request,
    rest: &[&str],
) -> Result<Response, Refusal> {
    match (request.method.as_str(), rest) {
        ("GET", []) => {
            let selector = label_selector(request)?;
            if let Some(params) = WatchParams::from_request(request) {
                let list = move |c: &Coordinator| list_nodes(c, &selector);
                return watch_response(coordinator, params, "Node", "v1", list);
            }
            Ok(list(list_nodes(coordinator, &selector)?))
        }
        ("GET", [name]) => get_node(coordinator, name),
        ("PATCH", [name]) => {
            let patch: Value = body(request)?;
            let mut store = coordinator.store();
            let record = store
                .get("Node", "", name)?
                .ok_or_else(|| not_found(format!("nodes \"{name}\" not found")))?;
            let mut object = record.object;
            if let Some(unschedulable) = patch.pointer("/spec/unschedulable") {
                let Some(flag) = unschedulable.as_bool() else {
                    return Err(refusal(
                        422,
                        "Invalid",
                        "spec.unschedulable: expected boolean",
                    ));
                };
                object["spec"]["unschedulable"] = Value::Bool(flag);
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
                        _ => {
                            return Err(refusal(
                                422,
                                "Invalid",
                                format!("metadata.labels.{key}: expected string"),
                            ))
                        }
                    }
                }
            }
            store.put_all(vec![object], None)?;
            drop(store);
            coordinator.changed();
            get_node(coordinator, name)
        }
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
            coordinator.changed();
            log::info!("node {name} deleted");
            Ok(success(name, "nodes"))
        }
        (method, _) => Err(refusal(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported on {}", request.path),
        )),
    }
}

pub(super) fn list(items: Vec<Value>) -> Response {
    Response::json(
        200,
        &json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items}),
    )
}

pub(super) fn success(name: &str, plural: &str) -> Response {
    Response::json(
        200,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": name, "kind": plural}}),
    )
}

fn label_selector(request: &Request) -> Result<Vec<(String, String)>, Refusal> {
    match request.query_param("labelSelector") {
        Some(s) if !s.is_empty() => parse_selector(s)
            .map_err(|e| refusal(400, "BadRequest", format!("invalid labelSelector: {e}"))),
        _ => Ok(Vec::new()),
    }
}

fn matches_labels(selector: &[(String, String)], item: &Value) -> bool {
    let labels: BTreeMap<String, String> = item
        .pointer("/metadata/labels")
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default();
    selector_matches(selector, &labels)
}

/// `fieldSelector=spec.nodeName=NAME`, the one field selector kubectl drain needs.
fn field_matches(selector: Option<&str>, item: &Value) -> Result<bool, Refusal> {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        return Ok(true);
    };
    match selector.split_once('=') {
        Some(("spec.nodeName", node)) => Ok(item
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("")
            == node),
        _ => Err(refusal(
            400,
            "BadRequest",
            format!("unsupported fieldSelector {selector:?} (only spec.nodeName=NAME)"),
        )),
    }
}

/// A watch of a collection (`?watch=true`): `list` lists it again after every change.
fn watch_response(
    coordinator: &Arc<Coordinator>,
    params: Result<WatchParams, String>,
    kind: &'static str,
    api_version: &'static str,
    list: impl Fn(&Coordinator) -> Result<Vec<Value>, Refusal> + Send + Sync + 'static,
) -> Result<Response, Refusal> {
    let params = params.map_err(|message| refusal(400, "BadRequest", message))?;
    let (list_coordinator, listen_coordinator) = (Arc::clone(coordinator), Arc::clone(coordinator));
    let source = watch::Source {
        kind,
        api_version,
        list: Box::new(move || list(&list_coordinator).map_err(|refusal| refusal.message)),
        changes: Box::new(move || listen_coordinator.fleet.listen()),
    };
    Ok(Response::stream(
        200,
        "application/json",
        watch::stream(source, params),
    ))
}

/// The objects of `kind` in `namespace` (or all) as the API shows them, filtered.
fn list_items(
    coordinator: &Coordinator,
    kind: Kind,
    namespace: Option<&str>,
    selector: &[(String, String)],
    field_selector: Option<&str>,
) -> Result<Vec<Value>, Refusal> {
    let records = coordinator.store().list(kind.as_str(), namespace)?;
    let pods = if kind == Kind::Deployment {
        pod_records(coordinator, namespace)?
    } else {
        Vec::new()
    };
    let mut items = Vec::new();
    for record in records {
        let item = view(record, &pods);
        if matches_labels(selector, &item) && field_matches(field_selector, &item)? {
            items.push(item);
        }
    }
    Ok(items)
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

fn resources(
    coordinator: &Arc<Coordinator>,
    request: &Request,
    group: &str,
    rest: &[&str],
) -> Result<Response, Refusal> {
    let ResourceTarget {
        kind,
        namespace,
        namespace_key,
        name,
    } = resource_target(request, group, rest)?;
    match (request.method.as_str(), name) {
        ("GET", Some(name)) => {
            let record = coordinator
                .store()
                .get(kind.as_str(), namespace_key, name)?
                .ok_or_else(|| not_found(format!("{} \"{name}\" not found", kind.plural())))?;
            let pods = if kind == Kind::Deployment {
                pod_records(coordinator, Some(namespace_key))?
            } else {
                Vec::new()
            };
            Ok(Response::json(200, &view(record, &pods)))
        }
        ("GET", None) => {
            let selector = label_selector(request)?;
            let ns_filter = if kind.namespaced() {
                namespace.map(str::to_owned)
            } else {
                None
            };
            let field_selector = request.query_param("fieldSelector").map(str::to_owned);
            if let Some(params) = WatchParams::from_request(request) {
                let list = move |c: &Coordinator| {
                    list_items(
                        c,
                        kind,
                        ns_filter.as_deref(),
                        &selector,
                        field_selector.as_deref(),
                    )
                };
                return watch_response(
                    coordinator,
                    params,
                    kind.as_str(),
                    kind.api_version(),
                    list,
                );
            }
            let items = list_items(
                coordinator,
                kind,
                ns_filter.as_deref(),
                &selector,
                field_selector.as_deref(),
            )?;
            Ok(list(items))
        }
        ("DELETE", Some(name)) => {
            let key = Key::new(kind.as_str(), namespace_key, name);
            let result = apply::delete_keys_in_store(&mut coordinator.store(), &[key])?;
            if result.items.is_empty() {
                return Err(not_found(format!("{} \"{name}\" not found", kind.plural())));
            }
            coordinator.changed();
            Ok(success(name, kind.plural()))
        }
        (method, _) => Err(refusal(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported on {}", request.path),
        )),
    }
}

fn pod_records(coordinator: &Coordinator, namespace: Option<&str>) -> Result<Vec<Record>, Refusal> {
    Ok(coordinator.store().list("Pod", namespace)?)
}

/// An object as the API shows it: stored object plus stored (reported) status; a
/// Deployment's status is derived from its pods' reported readiness.
fn view(record: Record, pods: &[Record]) -> Value {
    let status = record.status.clone();
    let mut object = record.object;
    if record.kind == "Deployment" {
        if let Ok(Object::Deployment(deploy)) = Object::from_json(object.clone()) {
            let hash = pod_template_hash(&deploy.spec.template);
            let owned = owned_pods(&deploy.metadata.uid, pods);
            let status = deployment_status(&deploy, &hash, &owned);
            object["status"] = to_json(&status);
        }
        return object;
    }
    if record.kind == "Namespace" {
        let phase = if object.pointer("/metadata/deletionTimestamp").is_some() {
            "Terminating"
        } else {
            "Active"
        };
        object["status"] = json!({"phase": phase});
        return object;
    }
    if let Some(status) = status {
        object["status"] = status;
    } else if record.kind == "Pod" {
        object["status"] = json!({"phase": "Pending"});
    }
    object
}

/// The pods a Deployment owns, as its controller sees them; readiness is the `Ready`
/// condition the pod's agent reported.
pub fn owned_pods(owner_uid: &str, pods: &[Record]) -> Vec<OwnedPod> {
    pods.iter()
        .filter(|p| {
            p.object
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| {
                    refs.iter()
                        .any(|o| o.get("uid").and_then(Value::as_str) == Some(owner_uid))
                })
        })
        .map(|p| OwnedPod {
            name: p.name.clone(),
            template_hash: p
                .object
                .pointer(&format!("/metadata/labels/{TEMPLATE_HASH_LABEL}"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            creation_timestamp: p.creation_timestamp.clone(),
            ready: pod_ready(p),
            terminating: p.object.pointer("/metadata/deletionTimestamp").is_some(),
        })
        .collect()
}

pub fn pod_ready(pod: &Record) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .is_some_and(|conditions| {
            conditions.iter().any(|c| {
                c.get("type") == Some(&json!("Ready")) && c.get("status") == Some(&json!("True"))
            })
        })
}

fn scale(
    coordinator: &Arc<Coordinator>,
    request: &Request,
    namespace: &str,
    name: &str,
) -> Result<Response, Refusal> {
    let mut store = coordinator.store();
    let record = store
        .get("Deployment", namespace, name)?
        .ok_or_else(|| not_found(format!("deployments.apps \"{name}\" not found")))?;
    let mut object = record.object;
    if matches!(request.method.as_str(), "PUT" | "PATCH") {
        let patch: Value = body(request)?;
        let replicas = patch
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .filter(|n| (0..=i64::from(i32::MAX)).contains(n))
            .ok_or_else(|| {
                refusal(
                    422,
                    "Invalid",
                    "spec.replicas: must be an integer between 0 and 2147483647",
                )
            })?;
        object["spec"]["replicas"] = Value::from(replicas);
        store.put_all(vec![object.clone()], record.source.as_deref())?;
        drop(store);
        coordinator.changed();
    }
    let replicas = object
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    Ok(Response::json(
        200,
        &json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {"name": name, "namespace": namespace}, "spec": {"replicas": replicas}}),
    ))
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod server_tests;
