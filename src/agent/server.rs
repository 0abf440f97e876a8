//! The agent's resource API: Kubernetes paths, JSON bodies, `Status` errors. The
//! request and response shapes it shares with the coordinator are
//! [`crate::api::resources`]; here are the agent's own routes (logs, exec, images) and
//! how it shows an object with what it observes of it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, MutexGuard};
use std::time::SystemTime;

use serde_json::{json, Value};

use super::apply;
use super::instance::Instance;
use super::logs::{self, LogQuery};
use super::reconcile::stored_pods;
use super::Agent;
use crate::api::apply::AdmissionOptions;
use crate::api::events::EventLog;
use crate::api::http::{Request, Response};
use crate::api::refusal::{
    bad_request, conflict, internal, method_not_allowed, not_found, Refusal,
};
use crate::api::resources::{
    path_segments, request_body, serve_resources, served_api, Resources, Stored,
};
use crate::api::types::ApplyRequest;
use crate::controllers::{driver, namespace, World};
use crate::model::Object;
use crate::store::{Record, Store};
use event_listener::EventListener;

pub async fn handle(agent: Arc<Agent>, request: Request) -> Response {
    smol::unblock(move || {
        let method = request.method.clone();
        let path = request.path.clone();
        match route(&agent, &request) {
            Ok(response) => response,
            Err(refusal) => {
                log::debug!("{method} {path}: {} {}", refusal.code, refusal.message);
                refusal.response()
            }
        }
    })
    .await
}

fn route(agent: &Arc<Agent>, request: &Request) -> Result<Response, Refusal> {
    let segments = path_segments(&request.path)?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = request.method.as_str();
    match (method, segments.as_slice()) {
        ("GET", ["version"]) => Ok(Response::json(200, &version())),
        ("GET", ["healthz"]) => Ok(Response::text(200, "ok")),
        ("POST", ["apis", "berth.dev", "v1", verb @ ("apply" | "delete")]) => {
            let body: ApplyRequest = request_body(request)?;
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
        (_, ["api", "v1", rest @ ..]) => serve_resources(agent, request, "v1", rest),
        (_, ["apis", group, version, rest @ ..]) if served_api(group, version) => {
            serve_resources(agent, request, &format!("{group}/{version}"), rest)
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

/// The resource routes ([`serve_resources`]) show the agent's objects with what it
/// observes of them, and wake it after a write.
impl Resources for Agent {
    fn store(&self) -> MutexGuard<'_, Store> {
        Agent::store(self)
    }

    fn show(&self, stored: Stored) -> Result<Vec<Value>, Refusal> {
        let observed = self.observe().map_err(internal)?;
        let mut world = driver::view_world(stored.replica_sets, stored.pods, SystemTime::now());
        self.observe_pods(&mut world, &observed);
        world.daemon_sets = daemon_sets(&stored.records);
        self.add_local_node(&mut world);
        let view = |record| view(self, record, &world, &observed);
        stored.records.into_iter().map(view).collect()
    }

    fn admission(&self) -> AdmissionOptions {
        apply::admission(&self.options)
    }

    fn ended_pods(&self, pods: &[crate::model::Pod]) -> std::collections::HashSet<String> {
        apply::ended_pods(self, pods)
    }

    fn changed(&self) {
        self.wake();
    }

    fn changes(&self) -> EventListener {
        self.listen_changes()
    }

    fn events(&self) -> Option<&EventLog> {
        Some(&self.events)
    }
}

/// The DaemonSets among `records`, whose status needs the nodes.
fn daemon_sets(records: &[Record]) -> Vec<crate::model::DaemonSet> {
    records
        .iter()
        .filter(|r| r.kind == "DaemonSet")
        .filter_map(|r| match Object::from_json(r.object.clone()) {
            Ok(Object::DaemonSet(ds)) => Some(ds),
            _ => None,
        })
        .collect()
}

fn view(
    agent: &Agent,
    record: Record,
    world: &World,
    observed: &BTreeMap<String, Vec<Instance>>,
) -> Result<Value, Refusal> {
    let what = format!("{} {}/{}", record.kind, record.namespace, record.name);
    let status = record.status;
    let object = Object::from_json(record.object)
        .map_err(|e| internal(format!("unreadable {what} in the store: {e}")))?;
    Ok(match object {
        Object::Pod(pod) => {
            let instances = observed.get(&pod.metadata.uid).cloned().unwrap_or_default();
            agent.pod_view(pod, &instances)
        }
        object @ (Object::Deployment(_)
        | Object::ReplicaSet(_)
        | Object::ReplicationController(_)
        | Object::DaemonSet(_)
        | Object::StatefulSet(_)) => agent.controller_view(object, world),
        Object::Namespace(ns) => Object::Namespace(namespace::with_status(ns)).to_json(),
        Object::PersistentVolumeClaim(claim) => {
            Object::PersistentVolumeClaim(claim.with_stored_status(status)).to_json()
        }
        // A Job's status is its controller's record, stored beside it.
        Object::Job(mut job) => {
            if let Some(status) = status {
                job.status = serde_json::from_value(status).unwrap_or_default();
            }
            Object::Job(job).to_json()
        }
        Object::CronJob(mut cron_job) => {
            if let Some(status) = status {
                cron_job.status = serde_json::from_value(status).unwrap_or_default();
            }
            Object::CronJob(cron_job).to_json()
        }
        // Nothing observed to add: what is stored is the whole object (a quota's usage
        // is added by the resource routes).
        object @ (Object::ControllerRevision(_)
        | Object::ConfigMap(_)
        | Object::Secret(_)
        | Object::Service(_)
        | Object::Endpoints(_)
        | Object::EndpointSlice(_)
        | Object::ResourceQuota(_)
        | Object::LimitRange(_)
        | Object::PriorityClass(_)
        | Object::Passive(_)) => object.to_json(),
    })
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
            let body: Import = request_body(request)?;
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
                .ok_or_else(|| bad_request("missing ref"))?;
            let used_by = images_in_use(agent)?;
            let in_use = |image: &crate::image::ImageInfo| used_by.contains(&image.digest);
            let removed = agent
                .images
                .remove(reference, &in_use)
                .map_err(|e| match e {
                    crate::image::ImageError::NotFound { .. } => not_found(e.to_string()),
                    other => conflict(other.to_string()),
                })?;
            log::info!("removed image {}", removed.reference);
            Ok(Response::json(200, &json!(removed)))
        }
        (method, _) => Err(method_not_allowed(method, &request.path)),
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
    let body: Pull = request_body(request)?;
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
        for container in pod.spec.all_containers() {
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
