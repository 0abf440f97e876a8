//! The event log (folding, bound, names, selectors) and its routes, reached the way
//! both daemons reach them: through [`serve_resources`] of a daemon that keeps a log.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use event_listener::EventListener;
use serde_json::Value;

use super::*;
use crate::api::apply::AdmissionOptions;
use crate::api::http::Body;
use crate::api::resources::{path_segments, serve_resources, Resources, Stored};
use crate::api::test_support::request;
use crate::store::Store;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn pod(name: &str) -> Involved<'_> {
    Involved::new("Pod", "default", name, "uid-1")
}

const KUBELET: Reporter = Reporter {
    component: "kubelet",
    host: Some("pi-1"),
};

fn unhealthy(log: &EventLog, now: SystemTime, name: &str, message: &str) {
    let involved = pod(name).with_field_path("spec.containers{main}");
    log.record_at(
        now,
        involved,
        EventType::Warning,
        "Unhealthy",
        message,
        KUBELET,
    );
}

#[test]
fn the_same_event_again_counts_up_instead_of_adding() {
    let log = EventLog::new();
    unhealthy(&log, at(0), "web", "Readiness probe failed: exit code 1");
    unhealthy(&log, at(5), "web", "Readiness probe failed: exit code 1");
    unhealthy(&log, at(9), "web", "Readiness probe failed: exit code 1");
    let events = log.list(None, &FieldSelector::default());
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.count, 3);
    assert_eq!(event.first_timestamp, "2027-01-15T08:00:00Z");
    assert_eq!(event.last_timestamp, "2027-01-15T08:00:09Z");
    assert_eq!(event.type_, "Warning");
    assert_eq!(event.source.host.as_deref(), Some("pi-1"));
    assert_eq!(event.involved_object.api_version, "v1");
    assert_eq!(
        event.involved_object.field_path.as_deref(),
        Some("spec.containers{main}")
    );

    // Anything different is another event: message, object, uid, type, reporter.
    unhealthy(&log, at(10), "web", "Readiness probe failed: exit code 2");
    unhealthy(&log, at(10), "db", "Readiness probe failed: exit code 1");
    let other_uid =
        Involved::new("Pod", "default", "web", "uid-2").with_field_path("spec.containers{main}");
    let message = "Readiness probe failed: exit code 1";
    log.record_at(
        at(10),
        other_uid,
        EventType::Warning,
        "Unhealthy",
        message,
        KUBELET,
    );
    log.record_at(
        at(10),
        pod("web").with_field_path("spec.containers{main}"),
        EventType::Normal,
        "Unhealthy",
        message,
        KUBELET,
    );
    log.record_at(
        at(10),
        pod("web").with_field_path("spec.containers{main}"),
        EventType::Warning,
        "Unhealthy",
        message,
        "kubelet",
    );
    assert_eq!(log.len(), 6);
}

#[test]
fn a_full_log_drops_the_event_touched_longest_ago() {
    let log = EventLog::with_capacity(3);
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        unhealthy(&log, at(i as u64), name, "failed");
    }
    // `a` happens again: now `b` is the oldest.
    unhealthy(&log, at(3), "a", "failed");
    unhealthy(&log, at(4), "d", "failed");
    let names: Vec<String> = log
        .list(None, &FieldSelector::default())
        .into_iter()
        .map(|e| e.involved_object.name)
        .collect();
    assert_eq!(names, ["c", "a", "d"], "oldest first, b dropped");
    for i in 0..100 {
        unhealthy(&log, at(10 + i), &format!("p{i}"), "failed");
    }
    assert_eq!(log.len(), 3, "never more than the capacity");
}

#[test]
fn events_are_named_after_their_object_and_uniquely() {
    let log = EventLog::new();
    unhealthy(&log, at(0), "web", "one");
    unhealthy(&log, at(0), "web", "two");
    let events = log.list(None, &FieldSelector::default());
    let names: Vec<&str> = events.iter().map(|e| e.metadata.name.as_str()).collect();
    assert_eq!(names.len(), 2);
    for name in &names {
        let (object, suffix) = name.split_once('.').unwrap();
        assert_eq!(object, "web");
        assert_eq!(suffix.len(), 16, "{name}");
        assert!(suffix.chars().all(|c| c.is_ascii_hexdigit()), "{name}");
    }
    assert_ne!(names[0], names[1]);
    let got = log.get("default", names[1]).unwrap();
    assert_eq!(got.message, "two");
    assert!(log.get("prod", names[1]).is_none());
}

#[test]
fn events_of_cluster_scoped_objects_live_in_default() {
    let log = EventLog::new();
    let node = Involved::new("Node", "", "pi-1", "");
    log.record_at(
        at(0),
        node,
        EventType::Normal,
        "NodeReady",
        "Node pi-1 status is now: NodeReady",
        "node-controller",
    );
    let events = log.list(Some("default"), &FieldSelector::default());
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].involved_object.namespace, "");
    assert_eq!(events[0].involved_object.api_version, "v1");
    assert_eq!(events[0].source.host, None);
}

#[test]
fn field_selectors_pick_events_by_their_object() {
    let log = EventLog::new();
    unhealthy(&log, at(0), "web", "failed");
    unhealthy(&log, at(1), "db", "failed");
    let rs = Involved::new("ReplicaSet", "prod", "web-7d9f", "rs-1");
    let message = "Created pod: web-7d9f-abcde";
    log.record_at(
        at(2),
        rs,
        EventType::Normal,
        "SuccessfulCreate",
        message,
        "replicaset-controller",
    );
    let select = |namespace: Option<&str>, text: &str| -> Vec<String> {
        let selector = FieldSelector::parse(text).unwrap();
        log.list(namespace, &selector)
            .into_iter()
            .map(|e| e.involved_object.name)
            .collect()
    };
    assert_eq!(select(None, ""), ["web", "db", "web-7d9f"]);
    assert_eq!(select(Some("default"), ""), ["web", "db"]);
    assert_eq!(select(Some("prod"), ""), ["web-7d9f"]);
    let describe = "involvedObject.name=web,involvedObject.namespace=default,\
                    involvedObject.kind=Pod,involvedObject.uid=uid-1";
    assert_eq!(select(Some("default"), describe), ["web"]);
    assert!(select(None, "involvedObject.name=web,involvedObject.uid=other").is_empty());
    assert_eq!(
        select(None, "involvedObject.kind==ReplicaSet"),
        ["web-7d9f"]
    );
    assert_eq!(select(None, "involvedObject.kind!=Pod"), ["web-7d9f"]);
    assert_eq!(
        select(None, "type=Normal,source=replicaset-controller"),
        ["web-7d9f"]
    );
    assert_eq!(select(None, "reason=Unhealthy"), ["web", "db"]);
    assert_eq!(
        FieldSelector::parse("involvedObject.colour=red").unwrap_err(),
        "field label not supported: involvedObject.colour"
    );
    assert!(FieldSelector::parse("involvedObject.name").is_err());
}

/// A daemon that keeps an event log and nothing else.
struct Daemon {
    store: Mutex<Store>,
    changes: event_listener::Event,
    events: EventLog,
}

impl Resources for Daemon {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap()
    }

    fn show(&self, stored: Stored) -> Result<Vec<Value>, Refusal> {
        Ok(stored.records.into_iter().map(|r| r.object).collect())
    }

    fn admission(&self) -> AdmissionOptions {
        AdmissionOptions::default()
    }

    fn changed(&self) {}

    fn changes(&self) -> EventListener {
        self.changes.listen()
    }

    fn events(&self) -> Option<&EventLog> {
        Some(&self.events)
    }
}

fn daemon() -> Arc<Daemon> {
    let daemon = Daemon {
        store: Mutex::new(Store::open_in_memory().unwrap()),
        changes: event_listener::Event::new(),
        events: EventLog::new(),
    };
    unhealthy(
        &daemon.events,
        at(0),
        "web",
        "Readiness probe failed: exit code 1",
    );
    unhealthy(
        &daemon.events,
        at(1),
        "web",
        "Readiness probe failed: exit code 1",
    );
    let scheduled = Involved::new("Pod", "prod", "db", "uid-9");
    daemon.events.record_at(
        at(2),
        scheduled,
        EventType::Normal,
        "Scheduled",
        "Successfully assigned prod/db to pi-1",
        "default-scheduler",
    );
    Arc::new(daemon)
}

fn serve(daemon: &Arc<Daemon>, method: &str, target: &str) -> Result<(u16, Value), Refusal> {
    let request = request(method, target, None);
    let segments = path_segments(&request.path)?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let ["api", "v1", rest @ ..] = segments.as_slice() else {
        panic!("not under /api/v1: {target}");
    };
    let response = serve_resources(daemon, &request, "v1", rest)?;
    let Body::Bytes(bytes) = response.body else {
        panic!("expected a sized body");
    };
    Ok((response.status, serde_json::from_slice(&bytes).unwrap()))
}

fn reasons(list: &Value) -> Vec<&str> {
    assert_eq!(list["kind"], "List");
    assert_eq!(list["apiVersion"], "v1");
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect()
}

#[test]
fn the_routes_list_events_by_namespace_and_object() {
    let daemon = daemon();
    let (status, all) = serve(&daemon, "GET", "/api/v1/events").unwrap();
    assert_eq!(status, 200);
    assert_eq!(reasons(&all), ["Unhealthy", "Scheduled"]);
    let event = &all["items"][0];
    assert_eq!(event["kind"], "Event");
    assert_eq!(event["apiVersion"], "v1");
    assert_eq!(event["count"], 2);
    assert_eq!(event["involvedObject"]["name"], "web");

    let (_, prod) = serve(&daemon, "GET", "/api/v1/namespaces/prod/events").unwrap();
    assert_eq!(reasons(&prod), ["Scheduled"]);
    let describe = "/api/v1/namespaces/default/events?fieldSelector=\
        involvedObject.name=web,involvedObject.namespace=default,involvedObject.kind=Pod,\
        involvedObject.uid=uid-1";
    let (_, web) = serve(&daemon, "GET", describe).unwrap();
    assert_eq!(reasons(&web), ["Unhealthy"]);
    let (_, none) = serve(&daemon, "GET", "/api/v1/events?labelSelector=app=web").unwrap();
    assert!(reasons(&none).is_empty());

    let name = all["items"][1]["metadata"]["name"].as_str().unwrap();
    let (_, one) = serve(
        &daemon,
        "GET",
        &format!("/api/v1/namespaces/prod/events/{name}"),
    )
    .unwrap();
    assert_eq!(one["message"], "Successfully assigned prod/db to pi-1");
}

#[test]
fn the_routes_refuse_what_they_cannot_do() {
    let daemon = daemon();
    let refusal = |method: &str, target: &str| serve(&daemon, method, target).unwrap_err();
    let bad = refusal("GET", "/api/v1/events?fieldSelector=spec.nodeName=pi-1");
    assert_eq!(
        (bad.code, bad.message.as_str()),
        (400, "field label not supported: spec.nodeName")
    );
    let missing = refusal("GET", "/api/v1/namespaces/default/events/nope");
    assert_eq!(
        (missing.code, missing.message.as_str()),
        (404, "events \"nope\" not found")
    );
    assert_eq!(
        refusal("DELETE", "/api/v1/namespaces/default/events/x").code,
        405
    );
    assert_eq!(refusal("GET", "/api/v1/events?watch=true").code, 400);
    // Other paths still reach the store.
    let (_, pods) = serve(&daemon, "GET", "/api/v1/pods").unwrap();
    assert_eq!(pods["items"], Value::Array(Vec::new()));
}
