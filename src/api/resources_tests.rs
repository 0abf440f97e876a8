//! The resource routes both daemons serve, on an in-memory store behind a fake daemon
//! that marks what it shows and counts what it is told changed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use event_listener::{Event, EventListener};
use serde_json::{json, Value};

use super::{path_segments, serve_resources, Resources, Stored};
use crate::api::apply::{apply_to_store, AdmissionOptions};
use crate::api::http::{Body, Response};
use crate::api::refusal::{bad_request, Refusal};
use crate::api::test_support::request;
use crate::api::types::{ApplyRequest, ManifestFile};
use crate::model::PodSecurityLevel;
use crate::store::{Record, Store};

struct Fake {
    store: Mutex<Store>,
    changed: AtomicUsize,
    event: Event,
}

impl Resources for Fake {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap()
    }

    fn show(&self, stored: Stored) -> Result<Vec<Value>, Refusal> {
        let pods_read = stored.pods.len();
        let show = |record: Record| {
            let mut object = record.object;
            object["status"] = json!({"shownBy": "fake", "podsRead": pods_read});
            object
        };
        Ok(stored.records.into_iter().map(show).collect())
    }

    /// Understands `metadata.name=NAME` only, to see that the selector reaches it.
    fn field_matches(&self, selector: &str, item: &Value) -> Result<bool, Refusal> {
        match selector.strip_prefix("metadata.name=") {
            Some(name) => Ok(item["metadata"]["name"] == name),
            None => Err(bad_request(format!(
                "unsupported fieldSelector {selector:?}"
            ))),
        }
    }

    /// Baseline Pod Security (the objects above were applied as privileged).
    fn admission(&self) -> AdmissionOptions {
        AdmissionOptions::default()
    }

    fn changed(&self) {
        self.changed.fetch_add(1, Ordering::SeqCst);
    }

    fn changes(&self) -> EventListener {
        self.event.listen()
    }
}

const OBJECTS: &str = "\
apiVersion: v1\nkind: Namespace\nmetadata: {name: default}\n---
apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n---
apiVersion: v1\nkind: Pod\nmetadata: {name: web, labels: {app: web}}
spec: {containers: [{name: c, image: busybox}]}\n---
apiVersion: v1\nkind: Pod\nmetadata: {name: db, namespace: prod, labels: {app: db}}
spec: {containers: [{name: c, image: busybox}]}\n---
apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: c, image: busybox}]}
";

fn fake() -> Arc<Fake> {
    let mut store = Store::open_in_memory().unwrap();
    let request = ApplyRequest {
        files: vec![ManifestFile {
            name: "objects.yaml".into(),
            content: OBJECTS.into(),
        }],
        namespace: None,
    };
    let options = AdmissionOptions {
        pod_security_level: PodSecurityLevel::Privileged,
        ..AdmissionOptions::default()
    };
    apply_to_store(&mut store, &request, None, &options).unwrap();
    Arc::new(Fake {
        store: Mutex::new(store),
        changed: AtomicUsize::new(0),
        event: Event::new(),
    })
}

/// Routes as both servers do: decoded segments, then the API group.
fn serve(fake: &Arc<Fake>, method: &str, target: &str, body: Value) -> Result<Response, Refusal> {
    let body = (!body.is_null()).then_some(&body);
    let request = request(method, target, body);
    let segments = path_segments(&request.path)?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        ["api", "v1", rest @ ..] => serve_resources(fake, &request, "v1", rest),
        ["apis", "apps", "v1", rest @ ..] => serve_resources(fake, &request, "apps/v1", rest),
        _ => panic!("not a resource path: {target}"),
    }
}

fn json_of(response: Response) -> (u16, Value) {
    let Body::Bytes(bytes) = response.body else {
        panic!("expected a sized body");
    };
    (response.status, serde_json::from_slice(&bytes).unwrap())
}

fn ok(fake: &Arc<Fake>, method: &str, target: &str, body: Value) -> Value {
    match serve(fake, method, target, body) {
        Ok(response) => {
            let (status, value) = json_of(response);
            assert_eq!(status, 200, "{method} {target}: {value}");
            value
        }
        Err(refusal) => panic!("{method} {target}: {refusal:?}"),
    }
}

fn refused(fake: &Arc<Fake>, method: &str, target: &str, body: Value) -> Refusal {
    match serve(fake, method, target, body) {
        Ok(response) => panic!("{method} {target} answered {}", response.status),
        Err(refusal) => refusal,
    }
}

fn names(list: &Value) -> Vec<&str> {
    assert_eq!(list["kind"], "List");
    let items = list["items"].as_array().unwrap();
    items
        .iter()
        .map(|item| item["metadata"]["name"].as_str().unwrap())
        .collect()
}

#[test]
fn path_segments_decode_strictly() {
    assert_eq!(
        path_segments("/api/v1/namespaces/a%2Db/pods/").unwrap(),
        ["api", "v1", "namespaces", "a-b", "pods"]
    );
    for malformed in ["/api/v1/pods/%zz", "/api/v1/pods/web%", "/api/v1/pods/%2"] {
        let refusal = path_segments(malformed).unwrap_err();
        assert_eq!((refusal.code, refusal.reason), (400, "BadRequest"));
        assert_eq!(refusal.message, format!("bad path {malformed:?}"));
    }
}

#[test]
fn objects_are_read_as_the_daemon_shows_them() {
    let fake = fake();
    let pod = ok(
        &fake,
        "GET",
        "/api/v1/namespaces/default/pods/web",
        Value::Null,
    );
    assert_eq!(pod["metadata"]["name"], "web");
    assert_eq!(pod["status"]["shownBy"], "fake");
    assert_eq!(
        pod["status"]["podsRead"], 0,
        "only a Deployment needs the pods"
    );
    // A Deployment is shown with the pods of its namespace (default holds one pod).
    let deploy = ok(
        &fake,
        "GET",
        "/apis/apps/v1/namespaces/default/deployments/api",
        Value::Null,
    );
    assert_eq!(deploy["status"]["podsRead"], 1);
    let all = ok(&fake, "GET", "/apis/apps/v1/deployments", Value::Null);
    assert_eq!(
        all["items"][0]["status"]["podsRead"], 2,
        "across namespaces: all pods"
    );
    let namespace = ok(&fake, "GET", "/api/v1/namespaces/prod", Value::Null);
    assert_eq!(namespace["kind"], "Namespace");

    let missing = refused(
        &fake,
        "GET",
        "/api/v1/namespaces/prod/pods/web",
        Value::Null,
    );
    assert_eq!((missing.code, missing.reason), (404, "NotFound"));
    assert_eq!(missing.message, "pods \"web\" not found");
    let unknown = refused(&fake, "GET", "/apis/apps/v1/pods", Value::Null);
    assert_eq!(
        unknown.message,
        "the server doesn't have a resource type \"pods\" in apps/v1"
    );
    let odd = refused(&fake, "GET", "/api/v1/namespaces/a/pods/b/c", Value::Null);
    assert_eq!(
        odd.message,
        "no such resource path /api/v1/namespaces/a/pods/b/c"
    );
    let put = refused(
        &fake,
        "PUT",
        "/api/v1/namespaces/default/pods/web",
        Value::Null,
    );
    assert_eq!((put.code, put.reason), (405, "MethodNotAllowed"));
    assert_eq!(
        put.message,
        "PUT is not supported on /api/v1/namespaces/default/pods/web"
    );
}

#[test]
fn lists_filter_by_namespace_and_selectors() {
    let fake = fake();
    let all = ok(&fake, "GET", "/api/v1/pods", Value::Null);
    assert_eq!(names(&all), ["web", "db"]);
    assert_eq!(all["items"][0]["status"]["shownBy"], "fake");
    let prod = ok(&fake, "GET", "/api/v1/namespaces/prod/pods", Value::Null);
    assert_eq!(names(&prod), ["db"]);
    let labelled = ok(
        &fake,
        "GET",
        "/api/v1/pods?labelSelector=app=web",
        Value::Null,
    );
    assert_eq!(names(&labelled), ["web"]);
    let by_name = ok(
        &fake,
        "GET",
        "/api/v1/pods?fieldSelector=metadata.name=db",
        Value::Null,
    );
    assert_eq!(names(&by_name), ["db"]);
    // An empty field selector selects everything without asking the daemon.
    let empty = ok(&fake, "GET", "/api/v1/pods?fieldSelector=", Value::Null);
    assert_eq!(names(&empty), ["web", "db"]);

    let bad = refused(
        &fake,
        "GET",
        "/api/v1/pods?labelSelector=a=b=c",
        Value::Null,
    );
    assert_eq!((bad.code, bad.reason), (400, "BadRequest"));
    assert!(
        bad.message.starts_with("invalid labelSelector: "),
        "{bad:?}"
    );
    let unsupported = refused(&fake, "GET", "/api/v1/pods?fieldSelector=x=y", Value::Null);
    assert_eq!(unsupported.message, "unsupported fieldSelector \"x=y\"");

    let watch = serve(&fake, "GET", "/api/v1/pods?watch=true", Value::Null).unwrap();
    assert!(matches!(watch.body, Body::Stream(_)));
    assert_eq!(watch.content_type, "application/json");
    let bad_timeout = "/api/v1/pods?watch=true&timeoutSeconds=soon";
    let refusal = refused(&fake, "GET", bad_timeout, Value::Null);
    assert_eq!(refusal.message, "invalid timeoutSeconds \"soon\"");
}

#[test]
fn deletes_answer_success_and_wake_the_daemon() {
    let fake = fake();
    let path = "/api/v1/namespaces/default/pods/web";
    let status = ok(&fake, "DELETE", path, Value::Null);
    assert_eq!(
        status,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Success",
               "details": {"name": "web", "kind": "pods"}})
    );
    assert_eq!(fake.changed.load(Ordering::SeqCst), 1);
    // A pod is marked and goes once its containers have stopped.
    let marked = ok(&fake, "GET", path, Value::Null);
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{marked}"
    );

    let deployment = "/apis/apps/v1/namespaces/default/deployments/api";
    ok(&fake, "DELETE", deployment, Value::Null);
    let gone = refused(&fake, "DELETE", deployment, Value::Null);
    assert_eq!(
        (gone.code, gone.message.as_str()),
        (404, "deployments \"api\" not found")
    );
    assert_eq!(
        fake.changed.load(Ordering::SeqCst),
        2,
        "a miss changes nothing"
    );
}

#[test]
fn the_scale_subresource_reads_and_sets_replicas() {
    let fake = fake();
    let scale = "/apis/apps/v1/namespaces/default/deployments/api/scale";
    let read = ok(&fake, "GET", scale, Value::Null);
    assert_eq!(
        read,
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
               "metadata": {"name": "api", "namespace": "default"}, "spec": {"replicas": 2}})
    );
    assert_eq!(fake.changed.load(Ordering::SeqCst), 0);

    let set = ok(&fake, "PUT", scale, json!({"spec": {"replicas": 5}}));
    assert_eq!(set["spec"]["replicas"], 5);
    assert_eq!(fake.changed.load(Ordering::SeqCst), 1);
    let stored = fake
        .store()
        .get("Deployment", "default", "api")
        .unwrap()
        .unwrap();
    assert_eq!(stored.object["spec"]["replicas"], 5);
    let patched = ok(&fake, "PATCH", scale, json!({"spec": {"replicas": 0}}));
    assert_eq!(patched["spec"]["replicas"], 0);

    for body in [
        json!({"spec": {"replicas": -1}}),
        json!({"spec": {"replicas": "3"}}),
    ] {
        let invalid = refused(&fake, "PATCH", scale, body);
        assert_eq!((invalid.code, invalid.reason), (422, "Invalid"));
        assert_eq!(
            invalid.message,
            "spec.replicas: must be an integer between 0 and 2147483647"
        );
    }
    let delete = refused(&fake, "DELETE", scale, Value::Null);
    assert_eq!(delete.message, "DELETE is not supported on scale");
    let other = "/apis/apps/v1/namespaces/prod/deployments/api/scale";
    let missing = refused(&fake, "GET", other, Value::Null);
    assert_eq!(missing.message, "deployments.apps \"api\" not found");
    assert_eq!(fake.changed.load(Ordering::SeqCst), 2);
}

/// A ReplicationController's scale lives in the core group, and its selector was
/// defaulted from the template when applied.
#[test]
fn replication_controllers_scale_through_the_core_group() {
    let fake = fake();
    let request = ApplyRequest {
        files: vec![ManifestFile {
            name: "rc.yaml".into(),
            content: "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: web}\n\
                      spec:\n  template:\n    metadata: {labels: {app: web}}\n    \
                      spec: {containers: [{name: c, image: busybox}]}\n"
                .into(),
        }],
        namespace: None,
    };
    let options = AdmissionOptions {
        pod_security_level: PodSecurityLevel::Privileged,
        ..AdmissionOptions::default()
    };
    apply_to_store(&mut fake.store(), &request, None, &options).unwrap();
    let scale = "/api/v1/namespaces/default/replicationcontrollers/web/scale";
    assert_eq!(ok(&fake, "GET", scale, Value::Null)["spec"]["replicas"], 1);
    let set = ok(&fake, "PUT", scale, json!({"spec": {"replicas": 3}}));
    assert_eq!(set["spec"]["replicas"], 3);
    let stored = fake
        .store()
        .get("ReplicationController", "default", "web")
        .unwrap()
        .unwrap();
    assert_eq!(stored.object["spec"]["replicas"], 3);
    assert_eq!(stored.object["spec"]["selector"], json!({"app": "web"}));
    let missing = "/api/v1/namespaces/prod/replicationcontrollers/web/scale";
    let missing = refused(&fake, "GET", missing, Value::Null);
    assert_eq!(missing.message, "replicationcontrollers \"web\" not found");
    let wrong_group = "/apis/apps/v1/namespaces/default/replicationcontrollers/web/scale";
    let wrong_group = refused(&fake, "GET", wrong_group, Value::Null);
    assert_eq!(wrong_group.code, 404);
}

/// A PATCH of `target` with `body` sent as `media_type`, routed as the servers do.
fn patch(fake: &Arc<Fake>, target: &str, media_type: &str, body: Value) -> Result<Value, Refusal> {
    let mut request = request("PATCH", target, Some(&body));
    request
        .headers
        .push(("content-type".to_owned(), media_type.to_owned()));
    let segments = path_segments(&request.path)?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let ["apis", "apps", "v1", rest @ ..] = segments.as_slice() else {
        panic!("not an apps/v1 path: {target}");
    };
    let (status, value) = json_of(serve_resources(fake, &request, "apps/v1", rest)?);
    assert_eq!(status, 200, "PATCH {target}: {value}");
    Ok(value)
}

const API: &str = "/apis/apps/v1/namespaces/default/deployments/api";
const MERGE: &str = "application/merge-patch+json";

fn stored_api(fake: &Arc<Fake>) -> Value {
    let store = fake.store();
    store
        .get("Deployment", "default", "api")
        .unwrap()
        .unwrap()
        .object
}

#[test]
fn a_merge_patch_changes_a_deployment_and_answers_it_as_shown() {
    let fake = fake();
    let before = stored_api(&fake);
    let body = json!({"spec": {"paused": true, "template": {"metadata": {"annotations":
        {"kubectl.kubernetes.io/restartedAt": "2024-01-01T00:00:00Z"}}}}});
    let shown = patch(&fake, API, MERGE, body).unwrap();
    assert_eq!(
        shown["status"]["shownBy"], "fake",
        "answered as GET shows it"
    );
    assert_eq!(shown["spec"]["paused"], true);
    let stored = stored_api(&fake);
    assert_eq!(stored["spec"]["paused"], true);
    assert_eq!(
        stored["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
        "2024-01-01T00:00:00Z"
    );
    assert_eq!(
        stored["spec"]["template"]["metadata"]["labels"]["app"],
        "api"
    );
    assert_eq!(stored["metadata"]["uid"], before["metadata"]["uid"]);
    assert_eq!(stored["metadata"]["generation"], 2);
    assert_eq!(fake.changed.load(Ordering::SeqCst), 1);

    // `null` removes; the strategic type is taken as a merge patch; an equal result
    // writes nothing and wakes nobody.
    let strategic = "application/strategic-merge-patch+json; charset=utf-8";
    patch(&fake, API, strategic, json!({"spec": {"paused": null}})).unwrap();
    assert_eq!(stored_api(&fake).get("spec").unwrap().get("paused"), None);
    assert_eq!(fake.changed.load(Ordering::SeqCst), 2);
    let resource_version = stored_api(&fake)["metadata"]["resourceVersion"].clone();
    patch(&fake, API, MERGE, json!({"spec": {"replicas": 2}})).unwrap();
    assert_eq!(
        stored_api(&fake)["metadata"]["resourceVersion"],
        resource_version
    );
    assert_eq!(fake.changed.load(Ordering::SeqCst), 2);
}

#[test]
fn a_refused_patch_changes_nothing() {
    let fake = fake();
    let before = stored_api(&fake);
    let refusal = |body: Value| patch(&fake, API, MERGE, body).unwrap_err();

    let bad = refusal(json!({"spec": {"replicas": "three"}}));
    assert_eq!((bad.code, bad.reason), (422, "Invalid"));
    assert!(
        bad.message
            .starts_with("Deployment.apps \"api\" is invalid: spec.replicas: "),
        "{}",
        bad.message
    );
    let unknown = refusal(json!({"spec": {"template": {"spec": {"hostPID": true, "bogus": 1}}}}));
    assert_eq!(unknown.code, 422, "{}", unknown.message);
    assert!(unknown.message.contains("bogus"), "{}", unknown.message);

    let privileged = json!({"spec": {"template": {"spec": {"containers":
        [{"name": "c", "image": "busybox", "securityContext": {"privileged": true}}]}}}});
    let forbidden = refusal(privileged);
    assert_eq!((forbidden.code, forbidden.reason), (403, "Forbidden"));
    assert!(
        forbidden
            .message
            .starts_with("deployments.apps \"api\" is forbidden: violates PodSecurity"),
        "{}",
        forbidden.message
    );

    let renamed = refusal(json!({"metadata": {"name": "other"}}));
    assert_eq!(renamed.code, 400);
    assert_eq!(
        renamed.message,
        "the name of the object (other) does not match the name on the URL (api)"
    );
    let json_body = patch(&fake, API, "application/json", json!({})).unwrap_err();
    assert_eq!(
        (json_body.code, json_body.reason),
        (415, "UnsupportedMediaType")
    );
    let missing = "/apis/apps/v1/namespaces/prod/deployments/api";
    let missing = patch(&fake, missing, MERGE, json!({})).unwrap_err();
    assert_eq!(
        (missing.code, missing.message.as_str()),
        (404, "deployments.apps \"api\" not found")
    );

    assert_eq!(stored_api(&fake), before);
    assert_eq!(fake.changed.load(Ordering::SeqCst), 0);
    // Other kinds are not patched here.
    let pod = refused(
        &fake,
        "PATCH",
        "/api/v1/namespaces/default/pods/web",
        json!({}),
    );
    assert_eq!((pod.code, pod.reason), (405, "MethodNotAllowed"));
}

#[test]
fn a_daemon_set_is_patched_as_a_deployment_is() {
    let fake = fake();
    let daemon_set = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: logger}
spec:
  selector: {matchLabels: {app: logger}}
  template:
    metadata: {labels: {app: logger}}
    spec: {containers: [{name: c, image: busybox}]}
";
    let request = ApplyRequest {
        files: vec![ManifestFile {
            name: "ds.yaml".into(),
            content: daemon_set.into(),
        }],
        namespace: None,
    };
    apply_to_store(
        &mut fake.store(),
        &request,
        None,
        &AdmissionOptions::default(),
    )
    .unwrap();
    let target = "/apis/apps/v1/namespaces/default/daemonsets/logger";
    let body = json!({"spec": {"template": {"metadata": {"annotations":
        {"kubectl.kubernetes.io/restartedAt": "2024-01-01T00:00:00Z"}}}}});
    let shown = patch(&fake, target, MERGE, body).unwrap();
    assert_eq!(shown["kind"], "DaemonSet");
    let stored = fake
        .store()
        .get("DaemonSet", "default", "logger")
        .unwrap()
        .unwrap()
        .object;
    let template = &stored["spec"]["template"];
    assert_eq!(
        template["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
        "2024-01-01T00:00:00Z"
    );
    assert_eq!(template["metadata"]["labels"]["app"], "logger");
    assert_eq!(fake.changed.load(Ordering::SeqCst), 1);

    let bad = patch(
        &fake,
        target,
        MERGE,
        json!({"spec": {"minReadySeconds": "x"}}),
    );
    let bad = bad.unwrap_err();
    assert_eq!(bad.code, 422);
    assert!(
        bad.message
            .starts_with("DaemonSet.apps \"logger\" is invalid: spec.minReadySeconds"),
        "{}",
        bad.message
    );
    let missing = "/apis/apps/v1/namespaces/default/daemonsets/other";
    let missing = patch(&fake, missing, MERGE, json!({})).unwrap_err();
    assert_eq!(
        (missing.code, missing.message.as_str()),
        (404, "daemonsets.apps \"other\" not found")
    );
    assert_eq!(fake.changed.load(Ordering::SeqCst), 1);
}
