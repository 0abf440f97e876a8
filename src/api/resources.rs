//! The resource API as both daemons serve it: path segments, what a resource path
//! names, label selectors, the bodies of lists and of successful deletes, watches, and
//! the routes on resource paths ([`serve_resources`]: get, list, watch, delete, a
//! Deployment's `scale`, merge patches of Deployments and DaemonSets, [`super::patch`];
//! a daemon's Events, [`super::events`]). What an object looks like when shown (its
//! observed status), which field selectors mean something and what a change wakes are
//! each daemon's own business: it says so by implementing [`Resources`].

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, MutexGuard};

use event_listener::EventListener;
use serde_json::{json, Value};

use super::apply::{delete_keys_in_store, AdmissionOptions};
use super::events::{serve_events, EventLog};
use super::http::{percent_decode, Request, Response};
use super::patch::{patch_object, patchable};
use super::refusal::{bad_request, invalid, method_not_allowed, not_found, Refusal};
use super::watch::{self, WatchParams};
use crate::model::{parse_selector, selector_matches, Kind, Pod};
use crate::store::{Key, Record, Store};

/// The segments of a request path, each percent-decoded. A malformed escape refuses the
/// request (400) rather than being routed as written.
pub fn path_segments(path: &str) -> Result<Vec<String>, Refusal> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s).map_err(|_| bad_request(format!("bad path {path:?}"))))
        .collect()
}

/// The JSON body of a request, or 400 with what is wrong with it.
pub fn request_body<T: serde::de::DeserializeOwned>(request: &Request) -> Result<T, Refusal> {
    serde_json::from_slice(&request.body)
        .map_err(|e| bad_request(format!("invalid request body: {e}")))
}

/// What a resource path names.
struct ResourceTarget<'a> {
    pub kind: Kind,
    /// The namespace in the path, if any (`None`: all namespaces).
    pub namespace: Option<&'a str>,
    /// The store's namespace key: the namespace for namespaced kinds, `""` otherwise.
    pub namespace_key: &'a str,
    pub name: Option<&'a str>,
}

/// Parses `namespaces/NS/PLURAL[/NAME]`, `PLURAL` (all namespaces) or
/// `namespaces[/NAME]` under API group `group`.
fn resource_target<'a>(
    request: &Request,
    group: &str,
    rest: &[&'a str],
) -> Result<ResourceTarget<'a>, Refusal> {
    let (kind_name, namespace, name) = match rest {
        ["namespaces"] => ("namespaces", None, None),
        ["namespaces", name] => ("namespaces", None, Some(*name)),
        ["namespaces", ns, plural] => (*plural, Some(*ns), None),
        ["namespaces", ns, plural, name] => (*plural, Some(*ns), Some(*name)),
        [plural] => (*plural, None, None),
        _ => return Err(not_found(format!("no such resource path {}", request.path))),
    };
    let kind = Kind::from_cli_name(kind_name)
        .filter(|k| k.plural() == kind_name && k.api_version() == group)
        .ok_or_else(|| {
            not_found(format!(
                "the server doesn't have a resource type {kind_name:?} in {group}"
            ))
        })?;
    let namespace_key = if kind.namespaced() {
        namespace.unwrap_or("")
    } else {
        ""
    };
    Ok(ResourceTarget {
        kind,
        namespace,
        namespace_key,
        name,
    })
}

/// The request's `labelSelector` (none: everything matches), or 400.
pub fn label_selector(request: &Request) -> Result<Vec<(String, String)>, Refusal> {
    match request.query_param("labelSelector") {
        Some(s) if !s.is_empty() => {
            parse_selector(s).map_err(|e| bad_request(format!("invalid labelSelector: {e}")))
        }
        _ => Ok(Vec::new()),
    }
}

/// Whether an object, as shown, carries the labels a selector asks for.
pub fn matches_labels(selector: &[(String, String)], item: &Value) -> bool {
    let labels: BTreeMap<String, String> = item
        .pointer("/metadata/labels")
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default();
    selector_matches(selector, &labels)
}

/// A `List` of objects.
pub fn list_response(items: Vec<Value>) -> Response {
    Response::json(
        200,
        &json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items}),
    )
}

/// The `Status` Success a delete answers with.
pub fn success_response(name: &str, plural: &str) -> Response {
    Response::json(
        200,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": name, "kind": plural}}),
    )
}

/// A daemon's objects as the resource routes ([`serve_resources`]) serve them: its
/// store, how it shows what is stored, and what a change wakes.
pub trait Resources: Send + Sync + 'static {
    /// The daemon's store, locked.
    fn store(&self) -> MutexGuard<'_, Store>;
    /// Stored objects as the API shows them, with the status the daemon observes or
    /// was told.
    fn show(&self, stored: Stored) -> Result<Vec<Value>, Refusal>;
    /// Whether an object as shown passes a non-empty `fieldSelector`. By default no
    /// field selector is understood and every object passes (the agent's case).
    fn field_matches(&self, _selector: &str, _item: &Value) -> Result<bool, Refusal> {
        Ok(true)
    }
    /// What admission judges a patched object by: the daemon's flags, as for apply.
    fn admission(&self) -> AdmissionOptions;
    /// Which of `pods` have ended (`Succeeded` or `Failed`), by uid: quotas stop
    /// counting them. By default, as their stored status says.
    fn ended_pods(&self, pods: &[Pod]) -> HashSet<String> {
        super::quota::ended_by_stored_status(pods)
    }
    /// Wakes what acts on stored objects, after the routes wrote.
    fn changed(&self);
    /// Fires when something may have changed; a watch then lists again.
    fn changes(&self) -> EventListener;
    /// The daemon's recent Events, served at `/api/v1/[namespaces/NS/]events`; by
    /// default it keeps none and those paths are not found.
    fn events(&self) -> Option<&EventLog> {
        None
    }
}

/// Stored objects of one kind to show, with what showing them needs.
pub struct Stored {
    pub records: Vec<Record>,
    /// When they are workloads (Deployments, ReplicaSets, ReplicationControllers,
    /// DaemonSets, StatefulSets), the pods of the namespace they were read from (of all
    /// namespaces for a list across them): their status is derived from the pods they
    /// own. Empty for other kinds.
    pub pods: Vec<Record>,
    /// When they are Deployments, the ReplicaSets of the same namespaces, through which
    /// they own their pods. Empty for other kinds.
    pub replica_sets: Vec<Record>,
}

impl Stored {
    /// Reads what showing `records` of `kind`, from `namespace` (`None`: all), needs.
    pub(super) fn read(
        store: &Store,
        kind: Kind,
        namespace: Option<&str>,
        records: Vec<Record>,
    ) -> Result<Stored, Refusal> {
        let pods = match kind {
            Kind::Deployment
            | Kind::ReplicaSet
            | Kind::ReplicationController
            | Kind::DaemonSet
            | Kind::StatefulSet => store.list("Pod", namespace)?,
            _ => Vec::new(),
        };
        let replica_sets = match kind {
            Kind::Deployment => store.list("ReplicaSet", namespace)?,
            _ => Vec::new(),
        };
        Ok(Stored {
            records,
            pods,
            replica_sets,
        })
    }
}

/// A collection a list or a watch asks for.
#[derive(Clone, Debug)]
struct ListQuery {
    kind: Kind,
    /// The namespace in the path, for a namespaced kind; `None`: all namespaces.
    namespace: Option<String>,
    /// The `labelSelector`; empty matches everything.
    labels: Vec<(String, String)>,
    /// A non-empty `fieldSelector`.
    fields: Option<String>,
}

/// Whether `/apis/{group}/{version}` holds a kind berth serves (`apps/v1`, `batch/v1`,
/// `autoscaling/v2`, ...).
pub fn served_api(group: &str, version: &str) -> bool {
    Kind::ALL.iter().any(|kind| {
        kind.api_version()
            .split_once('/')
            .is_some_and(|(g, v)| g == group && v == version)
    })
}

/// The routes under `/api/v1` and `/apis/apps/v1` (API group `group`, `rest` the
/// decoded segments after it): `namespaces/NS/PLURAL[/NAME]`, `PLURAL` (all
/// namespaces) and `namespaces[/NAME]` — GET one, list or watch, DELETE one, PATCH a
/// Deployment — and the `scale` subresource of Deployments, ReplicaSets, StatefulSets
/// and ReplicationControllers.
pub fn serve_resources<R: Resources>(
    resources: &Arc<R>,
    request: &Request,
    group: &str,
    rest: &[&str],
) -> Result<Response, Refusal> {
    if let ["namespaces", namespace, plural, name, "scale"] = rest {
        let kind = match (group, *plural) {
            ("apps/v1", "deployments") => Kind::Deployment,
            ("apps/v1", "replicasets") => Kind::ReplicaSet,
            ("apps/v1", "statefulsets") => Kind::StatefulSet,
            ("v1", "replicationcontrollers") => Kind::ReplicationController,
            _ => return Err(not_found(format!("{plural} have no scale subresource"))),
        };
        return scale(resources.as_ref(), request, kind, namespace, name);
    }
    // Events live in memory, not in the store: they have routes of their own.
    if let (Some(log), "v1") = (resources.events(), group) {
        if let Some(answer) = serve_events(log, request, rest) {
            return answer;
        }
    }
    let ResourceTarget {
        kind,
        namespace,
        namespace_key,
        name,
    } = resource_target(request, group, rest)?;
    let not_there = |name: &str| not_found(format!("{} \"{name}\" not found", kind.plural()));
    match (request.method.as_str(), name) {
        ("GET", Some(name)) => {
            let stored = {
                let store = resources.store();
                let record = store.get(kind.as_str(), namespace_key, name)?;
                let record = record.ok_or_else(|| not_there(name))?;
                Stored::read(&store, kind, Some(namespace_key), vec![record])?
            };
            let shown = with_usage(resources.as_ref(), kind, resources.show(stored)?)?;
            let object = shown.into_iter().next().ok_or_else(|| not_there(name))?;
            Ok(Response::json(200, &object))
        }
        ("GET", None) => {
            let query = ListQuery {
                kind,
                namespace: namespace.filter(|_| kind.namespaced()).map(str::to_owned),
                labels: label_selector(request)?,
                fields: request
                    .query_param("fieldSelector")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            };
            let Some(params) = WatchParams::from_request(request) else {
                return Ok(list_response(list(resources.as_ref(), &query)?));
            };
            let (lister, listener) = (Arc::clone(resources), Arc::clone(resources));
            Ok(watch_response(
                params.map_err(bad_request)?,
                (kind.as_str(), kind.api_version()),
                move || list(lister.as_ref(), &query),
                move || listener.changes(),
            ))
        }
        ("PATCH", Some(name)) if patchable(kind) => {
            patch_object(resources.as_ref(), request, kind, namespace_key, name)
        }
        ("DELETE", Some(name)) => {
            let key = Key::new(kind.as_str(), namespace_key, name);
            let result = delete_keys_in_store(&mut resources.store(), &[key])?;
            if result.items.is_empty() {
                return Err(not_there(name));
            }
            resources.changed();
            Ok(success_response(name, kind.plural()))
        }
        (method, _) => Err(method_not_allowed(method, &request.path)),
    }
}

/// The objects a query names, as the daemon shows them, filtered by its selectors.
fn list<R: Resources + ?Sized>(resources: &R, query: &ListQuery) -> Result<Vec<Value>, Refusal> {
    let namespace = query.namespace.as_deref();
    // The store is locked only to read: showing may lock it again.
    let stored = {
        let store = resources.store();
        let records = store.list(query.kind.as_str(), namespace)?;
        Stored::read(&store, query.kind, namespace, records)?
    };
    let mut items = Vec::new();
    for item in with_usage(resources, query.kind, resources.show(stored)?)? {
        let fields_match = match &query.fields {
            Some(selector) => resources.field_matches(selector, &item)?,
            None => true,
        };
        if fields_match && matches_labels(&query.labels, &item) {
            items.push(item);
        }
    }
    Ok(items)
}

/// Shown objects of `kind`; ResourceQuotas with what their namespaces use, computed
/// now: it is never stored, so an idle daemon writes nothing.
fn with_usage<R: Resources + ?Sized>(
    resources: &R,
    kind: Kind,
    shown: Vec<Value>,
) -> Result<Vec<Value>, Refusal> {
    if kind != Kind::ResourceQuota {
        return Ok(shown);
    }
    let ended = |pods: &[Pod]| resources.ended_pods(pods);
    super::quota::quotas_with_usage(&resources.store(), shown, &ended)
}

/// A watch of a collection of `(kind, apiVersion)` (`?watch=true`): `list` lists it
/// again after every change `changes` hints at.
pub fn watch_response(
    params: WatchParams,
    (kind, api_version): (&'static str, &'static str),
    list: impl Fn() -> Result<Vec<Value>, Refusal> + Send + Sync + 'static,
    changes: impl Fn() -> EventListener + Send + Sync + 'static,
) -> Response {
    let source = watch::Source {
        kind,
        api_version,
        list: Box::new(move || list().map_err(|refusal| refusal.message)),
        changes: Box::new(changes),
    };
    Response::stream(200, "application/json", watch::stream(source, params))
}

/// The `scale` subresource of the `kind` object `namespace/name`: GET reads it, PUT or
/// PATCH sets `spec.replicas` from the body's and wakes the daemon. Answers with the
/// `autoscaling/v1 Scale`.
fn scale<R: Resources + ?Sized>(
    resources: &R,
    request: &Request,
    kind: Kind,
    namespace: &str,
    name: &str,
) -> Result<Response, Refusal> {
    let mut store = resources.store();
    // `deployments.apps "web"`, or `replicationcontrollers "web"` for the core group.
    let resource = match kind.api_version().split_once('/') {
        Some((group, _)) => format!("{}.{group}", kind.plural()),
        None => kind.plural().to_owned(),
    };
    let record = store
        .get(kind.as_str(), namespace, name)?
        .ok_or_else(|| not_found(format!("{resource} \"{name}\" not found")))?;
    let mut object = record.object;
    match request.method.as_str() {
        "GET" => drop(store),
        "PUT" | "PATCH" => {
            let replicas = requested_replicas(request)?;
            if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("replicas".to_owned(), Value::from(replicas));
            }
            store.put_all(vec![object.clone()], record.source.as_deref())?;
            drop(store);
            log::info!("{kind} {namespace}/{name} scaled to {replicas}");
            resources.changed();
        }
        method => return Err(method_not_allowed(method, "scale")),
    }
    let replicas = object
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let scale = json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": replicas},
    });
    Ok(Response::json(200, &scale))
}

/// `spec.replicas` of a Scale body: a count a Deployment may have (an `int32`), or 422.
fn requested_replicas(request: &Request) -> Result<i64, Refusal> {
    let body: Value = request_body(request)?;
    body.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .filter(|n| (0..=i64::from(i32::MAX)).contains(n))
        .ok_or_else(|| invalid("spec.replicas: must be an integer between 0 and 2147483647"))
}

#[cfg(test)]
#[path = "resources_tests.rs"]
mod tests;
