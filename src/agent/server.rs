//! The agent's resource API: Kubernetes paths, JSON bodies, `Status` errors.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};

use super::apply::{self, Refusal};
use super::instance::Instance;
use super::logs::{self, LogQuery};
use super::reconcile::stored_pods;
use super::Agent;
use crate::api::http::{percent_decode, Request, Response};
use crate::api::types::ApplyRequest;
use crate::api::watch::{self, WatchParams};
use crate::model::{parse_selector, selector_matches, Kind, Object};
use crate::store::{Key, Record};

pub async fn handle(agent: Arc<Agent>, request: Request) -> Response {
    smol::unblock(move || {
        let method = request.method.clone();
        let path = request.path.clone();
        match route(&agent, &request) {
            Ok(response) => response,
            Err(refusal) => {
                log::debug!("{method} {path}: {} {}", refusal.code, refusal.message);
                Response::status_error(refusal.code, refusal.reason, &refusal.message)
            }
        }
    })
    .await
}

fn not_found(what: String) -> Refusal {
    Refusal {
        code: 404,
        reason: "NotFound",
        message: what,
    }
}

fn bad_request(message: String) -> Refusal {
    Refusal {
        code: 400,
        reason: "BadRequest",
        message,
    }
}

fn internal(err: impl std::fmt::Display) -> Refusal {
    Refusal {
        code: 500,
        reason: "InternalError",
        message: err.to_string(),
    }
}

fn route(agent: &Arc<Agent>, request: &Request) -> Result<Response, Refusal> {
    let segments: Vec<String> = request
        .path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s).map_err(|_| bad_request(format!("bad path {:?}", request.path))))
        .collect::<Result<_, _>>()?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = request.method.as_str();
    match (method, segments.as_slice()) {
        ("GET", ["version"]) => Ok(Response::json(200, &version())),
        ("GET", ["healthz"]) => Ok(Response::text(200, "ok")),
        ("POST", ["apis", "berth.dev", "v1", verb @ ("apply" | "delete")]) => {
            let body: ApplyRequest = serde_json::from_slice(&request.body)
                .map_err(|e| bad_request(format!("invalid request body: {e}")))?;
            let result = if *verb == "apply" {
                apply::apply(agent, &body, None)?
            } else {
                apply::delete_manifests(agent, &body)?
            };
            Ok(Response::json(
                200,
                &serde_json::to_value(result).map_err(internal)?,
            ))
        }
        (_, ["apis", "berth.dev", "v1", "images", rest @ ..]) => images(agent, request, rest),
        ("GET", ["api", "v1", "namespaces", ns, "pods", name, "log"]) => {
            pod_log(agent, request, ns, name)
        }
        ("POST", ["api", "v1", "namespaces", ns, "pods", name, "exec"]) => {
            pod_exec(agent, request, ns, name)
        }
        (_, ["apis", "apps", "v1", "namespaces", ns, "deployments", name, "scale"]) => {
            scale(agent, request, ns, name)
        }
        (_, ["api", "v1", rest @ ..]) | (_, ["apis", "apps", "v1", rest @ ..]) => {
            let group = if segments[0] == "api" {
                "v1"
            } else {
                "apps/v1"
            };
            resources(agent, request, group, rest)
        }
        _ => Err(not_found(format!(
            "the server could not find the requested resource ({method} {})",
            request.path
        ))),
    }
}

fn version() -> Value {
    json!({
        "version": crate::VERSION,
        "gitRevision": crate::GIT_REVISION,
        "target": crate::TARGET,
    })
}

/// What a resource path names; shared with the coordinator, which serves the same API.
pub(crate) struct ResourceTarget<'a> {
    pub kind: Kind,
    /// The namespace in the path, if any (`None`: all namespaces).
    pub namespace: Option<&'a str>,
    /// The store's namespace key: the namespace for namespaced kinds, `""` otherwise.
    pub namespace_key: &'a str,
    pub name: Option<&'a str>,
}

/// Parses `namespaces/NS/PLURAL[/NAME]`, `PLURAL` (all namespaces) or
/// `namespaces[/NAME]` under API group `group`.
pub(crate) fn resource_target<'a>(
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

/// `namespaces/NS/PLURAL[/NAME]`, `PLURAL` (all namespaces) or `namespaces[/NAME]`.
fn resources(
    agent: &Arc<Agent>,
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
            let record = agent
                .store()
                .get(kind.as_str(), namespace_key, name)?
                .ok_or_else(|| not_found(format!("{} \"{name}\" not found", kind.plural())))?;
            let observed = agent.observe().map_err(internal)?;
            let pods = if kind == Kind::Deployment {
                stored_pods(agent).map_err(internal)?
            } else {
                Vec::new()
            };
            Ok(Response::json(200, &view(agent, record, &pods, &observed)?))
        }
        ("GET", None) => {
            let selector = match request.query_param("labelSelector") {
                Some(s) if !s.is_empty() => parse_selector(s)
                    .map_err(|e| bad_request(format!("invalid labelSelector: {e}")))?,
                _ => Vec::new(),
            };
            let ns_filter = if kind.namespaced() {
                namespace.map(str::to_owned)
            } else {
                None
            };
            if let Some(params) = WatchParams::from_request(request) {
                let params = params.map_err(bad_request)?;
                return Ok(watch_response(agent, kind, ns_filter, selector, params));
            }
            let items = list_items(agent, kind, ns_filter.as_deref(), &selector)?;
            Ok(Response::json(
                200,
                &json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items}),
            ))
        }
        ("DELETE", Some(name)) => {
            let key = Key {
                kind: kind.as_str().to_owned(),
                namespace: namespace_key.to_owned(),
                name: name.to_owned(),
            };
            let result = apply::delete_keys(agent, &[key])?;
            if result.items.is_empty() {
                return Err(not_found(format!("{} \"{name}\" not found", kind.plural())));
            }
            Ok(Response::json(
                200,
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": name, "kind": kind.plural()}}),
            ))
        }
        (method, _) => Err(Refusal {
            code: 405,
            reason: "MethodNotAllowed",
            message: format!("{method} is not supported on {}", request.path),
        }),
    }
}

/// `?watch=true` on a collection: the list again after every change the agent wakes up
/// for (or every second), as Kubernetes watch events.
fn watch_response(
    agent: &Arc<Agent>,
    kind: Kind,
    namespace: Option<String>,
    selector: Vec<(String, String)>,
    params: WatchParams,
) -> Response {
    let (list_agent, listen_agent) = (Arc::clone(agent), Arc::clone(agent));
    let source = watch::Source {
        kind: kind.as_str(),
        api_version: kind.api_version(),
        list: Box::new(move || {
            list_items(&list_agent, kind, namespace.as_deref(), &selector)
                .map_err(|refusal| refusal.message)
        }),
        changes: Box::new(move || listen_agent.listen_changes()),
    };
    Response::stream(200, "application/json", watch::stream(source, params))
}

/// The objects of `kind` (in `namespace`, or all) as the API shows them, filtered by a
/// label selector.
fn list_items(
    agent: &Agent,
    kind: Kind,
    namespace: Option<&str>,
    selector: &[(String, String)],
) -> Result<Vec<Value>, Refusal> {
    let records = agent.store().list(kind.as_str(), namespace)?;
    let observed = agent.observe().map_err(internal)?;
    let pods = if kind == Kind::Deployment {
        stored_pods(agent).map_err(internal)?
    } else {
        Vec::new()
    };
    let mut items = Vec::new();
    for record in records {
        let item = view(agent, record, &pods, &observed)?;
        let labels: BTreeMap<String, String> = item
            .pointer("/metadata/labels")
            .and_then(|l| serde_json::from_value(l.clone()).ok())
            .unwrap_or_default();
        if selector_matches(selector, &labels) {
            items.push(item);
        }
    }
    Ok(items)
}

fn view(
    agent: &Agent,
    record: Record,
    pods: &[crate::model::Pod],
    observed: &BTreeMap<String, Vec<Instance>>,
) -> Result<Value, Refusal> {
    let what = format!("{} {}/{}", record.kind, record.namespace, record.name);
    let object = Object::from_json(record.object)
        .map_err(|e| internal(format!("unreadable {what} in the store: {e}")))?;
    Ok(match object {
        Object::Pod(pod) => {
            let instances = observed.get(&pod.metadata.uid).cloned().unwrap_or_default();
            agent.pod_view(pod, &instances)
        }
        Object::Deployment(deploy) => agent.deployment_view(deploy, pods, observed),
        Object::Namespace(ns) => agent.namespace_view(ns),
        // Nothing observed to add: what is stored is the whole object.
        object @ (Object::ConfigMap(_) | Object::Secret(_)) => object.to_json(),
    })
}

/// The `scale` subresource of a Deployment: GET reads it, PUT or PATCH sets
/// `spec.replicas` (nothing is written when the count is already right).
fn scale(
    agent: &Arc<Agent>,
    request: &Request,
    namespace: &str,
    name: &str,
) -> Result<Response, Refusal> {
    let not_there = || not_found(format!("deployments.apps \"{name}\" not found"));
    let record = agent
        .store()
        .get("Deployment", namespace, name)?
        .ok_or_else(not_there)?;
    let mut object = record.object;
    match request.method.as_str() {
        "GET" => {}
        "PUT" | "PATCH" => {
            let body: Value = serde_json::from_slice(&request.body)
                .map_err(|e| bad_request(format!("invalid request body: {e}")))?;
            let replicas = body
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .filter(|n| (0..=i64::from(i32::MAX)).contains(n))
                .ok_or_else(|| Refusal {
                    code: 422,
                    reason: "Invalid",
                    message: "spec.replicas: must be an integer between 0 and 2147483647"
                        .to_owned(),
                })?;
            if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("replicas".to_owned(), Value::from(replicas));
            }
            agent
                .store()
                .put_all(vec![object.clone()], record.source.as_deref())?;
            log::info!("deployment {namespace}/{name} scaled to {replicas}");
            agent.wake();
        }
        method => {
            return Err(Refusal {
                code: 405,
                reason: "MethodNotAllowed",
                message: format!("{method} is not supported on scale"),
            })
        }
    }
    let replicas = object
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    Ok(Response::json(
        200,
        &json!({
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas},
        }),
    ))
}

fn pod_exec(
    agent: &Arc<Agent>,
    request: &Request,
    namespace: &str,
    name: &str,
) -> Result<Response, Refusal> {
    let (pod, instances) = pod_and_instances(agent, namespace, name)?;
    let command: Vec<String> = request
        .query
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    let container = request.query_param("container").filter(|c| !c.is_empty());
    super::exec::respond(
        agent,
        &pod,
        &instances,
        container,
        command,
        request.body.clone(),
    )
}

fn pod_and_instances(
    agent: &Agent,
    namespace: &str,
    name: &str,
) -> Result<(crate::model::Pod, Vec<Instance>), Refusal> {
    let record = agent
        .store()
        .get("Pod", namespace, name)?
        .ok_or_else(|| not_found(format!("pods \"{name}\" not found")))?;
    let Ok(Object::Pod(pod)) = Object::from_json(record.object) else {
        return Err(internal(format!(
            "unreadable pod {namespace}/{name} in the store"
        )));
    };
    let observed = agent.observe().map_err(internal)?;
    let instances = observed.get(&pod.metadata.uid).cloned().unwrap_or_default();
    Ok((pod, instances))
}

fn pod_log(
    agent: &Arc<Agent>,
    request: &Request,
    namespace: &str,
    name: &str,
) -> Result<Response, Refusal> {
    let (pod, instances) = pod_and_instances(agent, namespace, name)?;
    let flag = |name: &str| request.query_param(name) == Some("true");
    let tail = match request.query_param("tailLines") {
        Some(n) => Some(
            n.parse::<usize>()
                .map_err(|_| bad_request(format!("invalid tailLines {n:?}")))?,
        ),
        None => None,
    };
    let query = LogQuery {
        container: request
            .query_param("container")
            .filter(|c| !c.is_empty())
            .map(str::to_owned),
        follow: flag("follow"),
        previous: flag("previous"),
        tail,
    };
    logs::respond(agent, &pod, &instances, query)
}

fn images(agent: &Arc<Agent>, request: &Request, rest: &[&str]) -> Result<Response, Refusal> {
    let image_error = |e: crate::image::ImageError| bad_request(e.to_string());
    match (request.method.as_str(), rest) {
        ("GET", []) => {
            let items = agent.images.list().map_err(image_error)?;
            Ok(Response::json(
                200,
                &json!({"kind": "List", "items": items}),
            ))
        }
        ("POST", ["import"]) => {
            #[derive(serde::Deserialize)]
            struct Import {
                path: PathBuf,
                tag: Option<String>,
            }
            let body: Import = serde_json::from_slice(&request.body)
                .map_err(|e| bad_request(format!("invalid request body: {e}")))?;
            let imported = agent
                .images
                .import(&body.path, body.tag.as_deref())
                .map_err(image_error)?;
            for image in &imported {
                log::info!("imported image {} {}", image.reference, image.digest);
            }
            agent.wake();
            Ok(Response::json(
                200,
                &json!({"kind": "List", "items": imported}),
            ))
        }
        ("POST", ["pull"]) => pull_image(agent, request),
        ("POST", ["prune"]) => {
            let used_by = images_in_use(agent)?;
            let in_use = |image: &crate::image::ImageInfo| used_by.contains(&image.digest);
            let removed = agent.images.prune(&in_use).map_err(internal)?;
            Ok(Response::json(
                200,
                &json!({"kind": "List", "items": removed}),
            ))
        }
        ("DELETE", []) => {
            let reference = request
                .query_param("ref")
                .ok_or_else(|| bad_request("missing ref".to_owned()))?;
            let used_by = images_in_use(agent)?;
            let in_use = |image: &crate::image::ImageInfo| used_by.contains(&image.digest);
            let removed = agent
                .images
                .remove(reference, &in_use)
                .map_err(|e| match e {
                    crate::image::ImageError::NotFound { .. } => not_found(e.to_string()),
                    other => Refusal {
                        code: 409,
                        reason: "Conflict",
                        message: other.to_string(),
                    },
                })?;
            log::info!("removed image {}", removed.reference);
            Ok(Response::json(200, &json!(removed)))
        }
        (method, _) => Err(Refusal {
            code: 405,
            reason: "MethodNotAllowed",
            message: format!("{method} is not supported on {}", request.path),
        }),
    }
}

/// Pulls on a thread of its own and streams one JSON object per line: the pull's events,
/// then `{"event":"pulled","image":{..}}` or `{"event":"failed","message":".."}` (the status
/// line is sent before the pull ends, so failures travel in the body).
fn pull_image(agent: &Arc<Agent>, request: &Request) -> Result<Response, Refusal> {
    use smol::stream::StreamExt;
    #[derive(serde::Deserialize)]
    struct Pull {
        reference: String,
    }
    let body: Pull = serde_json::from_slice(&request.body)
        .map_err(|e| bad_request(format!("invalid request body: {e}")))?;
    crate::image::normalize_reference(&body.reference).map_err(|e| bad_request(e.to_string()))?;
    let (tx, rx) = smol::channel::unbounded::<Vec<u8>>();
    let agent = agent.clone();
    let line = |value: Value| format!("{value}\n").into_bytes();
    std::thread::Builder::new()
        .name("image-pull".to_owned())
        .spawn(move || {
            let options = crate::image::PullOptions::default();
            let progress = |event: crate::image::PullEvent| {
                let value = serde_json::to_value(event).unwrap_or(Value::Null);
                let _ = tx.send_blocking(line(value));
            };
            let outcome =
                agent
                    .images
                    .pull(&body.reference, &agent.registries, &options, &progress);
            let last = match outcome {
                Ok(image) => {
                    agent.wake();
                    json!({"event": "pulled", "image": image})
                }
                Err(e) => {
                    log::info!("pull of {} failed: {e}", body.reference);
                    json!({"event": "failed", "message": e.to_string()})
                }
            };
            let _ = tx.send_blocking(line(last));
        })
        .map_err(internal)?;
    Ok(Response::stream(
        200,
        "application/x-ndjson",
        Box::pin(rx.map(Ok)),
    ))
}

/// Digests of the images any stored pod refers to.
fn images_in_use(agent: &Agent) -> Result<Vec<String>, Refusal> {
    let mut digests = Vec::new();
    for pod in stored_pods(agent).map_err(internal)? {
        for container in &pod.spec.containers {
            if let Ok(Some(image)) = agent.images.resolve(&container.image) {
                digests.push(image.digest);
            }
        }
    }
    Ok(digests)
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod server_tests;
