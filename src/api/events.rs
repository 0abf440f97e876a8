//! The recent Events of a daemon, kept in memory only (an idle board writes nothing,
//! and an event is not worth an SD card write), bounded, and folded together the way
//! Kubernetes' event correlator folds them: the same thing happening again to the same
//! object bumps `count` and `lastTimestamp` instead of adding a line.
//!
//! Both daemons own one [`EventLog`]; the resource routes serve it at
//! `/api/v1/namespaces/NS/events` and `/api/v1/events` ([`serve_events`]), with the
//! `fieldSelector`s `kubectl describe` sends (`involvedObject.name=...`).

use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use super::http::{Request, Response};
use super::refusal::{bad_request, method_not_allowed, not_found, Refusal};
use super::resources::{label_selector, list_response};
use crate::model::{Event, EventObjectReference, EventSource, EventType, Kind, ObjectMeta};

/// How many events a log keeps at most: enough for the story of a small board's last
/// minutes, small enough for a Pi Zero (a few hundred bytes each).
pub const DEFAULT_CAPACITY: usize = 256;

/// The object an event is about: `kind`, `namespace` (empty for cluster-scoped
/// objects), `name` and `uid`, and the container it concerns, if one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Involved<'a> {
    pub kind: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
    /// Kubernetes' `fieldPath`, e.g. `spec.containers{web}`.
    pub field_path: Option<&'a str>,
}

impl<'a> Involved<'a> {
    pub fn new(kind: &'a str, namespace: &'a str, name: &'a str, uid: &'a str) -> Involved<'a> {
        Involved {
            kind,
            namespace,
            name,
            uid,
            field_path: None,
        }
    }

    /// The same object, narrowed to one of its parts (`spec.containers{web}`).
    pub fn with_field_path(self, field_path: &'a str) -> Involved<'a> {
        Involved {
            field_path: Some(field_path),
            ..self
        }
    }
}

/// Who reports an event: a component, and the node it runs on for the kubelet's. A bare
/// `&str` is a component on no particular node (`"deployment-controller"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reporter<'a> {
    pub component: &'a str,
    pub host: Option<&'a str>,
}

impl<'a> From<&'a str> for Reporter<'a> {
    fn from(component: &'a str) -> Reporter<'a> {
        Reporter {
            component,
            host: None,
        }
    }
}

/// A daemon's recent events; cheap to share (`&EventLog` from any thread).
#[derive(Debug)]
pub struct EventLog {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// In no particular order; `seq` tells which was touched last.
    entries: Vec<Entry>,
    next_seq: u64,
}

#[derive(Debug)]
struct Entry {
    /// When the event was last recorded, as a counter: the oldest goes first when the
    /// log is full, and lists are in this order (that of `lastTimestamp`).
    seq: u64,
    event: Event,
}

impl Default for EventLog {
    fn default() -> EventLog {
        EventLog::with_capacity(DEFAULT_CAPACITY)
    }
}

impl EventLog {
    pub fn new() -> EventLog {
        EventLog::default()
    }

    /// A log that keeps at most `capacity` events (at least one).
    pub fn with_capacity(capacity: usize) -> EventLog {
        EventLog {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Every change to the log is one push or one field update: a panic elsewhere
        // cannot leave it half-written.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `reason` (`message`) happened to `involved` now, as `reporter` saw
    /// it. The same event again (same object, type, reason, message and reporter) only
    /// counts up.
    pub fn record<'a>(
        &self,
        involved: Involved<'_>,
        type_: EventType,
        reason: &str,
        message: &str,
        reporter: impl Into<Reporter<'a>>,
    ) {
        self.record_at(
            SystemTime::now(),
            involved,
            type_,
            reason,
            message,
            reporter,
        );
    }

    /// [`EventLog::record`] at a given time.
    pub fn record_at<'a>(
        &self,
        now: SystemTime,
        involved: Involved<'_>,
        type_: EventType,
        reason: &str,
        message: &str,
        reporter: impl Into<Reporter<'a>>,
    ) {
        let reporter = reporter.into();
        let stamp = humantime::format_rfc3339_seconds(now).to_string();
        let mut inner = self.inner();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let same = |e: &Event| {
            same_object(&e.involved_object, &involved)
                && e.type_ == type_.as_str()
                && e.reason == reason
                && e.message == message
                && e.source.component == reporter.component
                && e.source.host.as_deref() == reporter.host
        };
        if let Some(entry) = inner.entries.iter_mut().find(|e| same(&e.event)) {
            entry.seq = seq;
            entry.event.count = entry.event.count.saturating_add(1);
            entry.event.last_timestamp = stamp;
            return;
        }
        if inner.entries.len() >= self.capacity {
            let oldest = inner
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.seq)
                .map(|(i, _)| i);
            if let Some(i) = oldest {
                inner.entries.swap_remove(i);
            }
        }
        let name = unique_name(&inner.entries, involved.name, now);
        let event = new_event(name, stamp, involved, type_, reason, message, reporter);
        inner.entries.push(Entry { seq, event });
    }

    /// Events in `namespace` (`None`: all) that pass `selector`, oldest first.
    pub fn list(&self, namespace: Option<&str>, selector: &FieldSelector) -> Vec<Event> {
        let inner = self.inner();
        let mut found: Vec<&Entry> = inner
            .entries
            .iter()
            .filter(|e| namespace.is_none_or(|ns| e.event.metadata.namespace_or_empty() == ns))
            .filter(|e| selector.matches(&e.event))
            .collect();
        crate::support::sort::sort_by_key(&mut found, |e| e.seq);
        found.into_iter().map(|e| e.event.clone()).collect()
    }

    /// The event named `name` in `namespace`.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Event> {
        self.inner()
            .entries
            .iter()
            .map(|e| &e.event)
            .find(|e| e.metadata.namespace_or_empty() == namespace && e.metadata.name == name)
            .cloned()
    }

    /// How many events the log holds.
    pub fn len(&self) -> usize {
        self.inner().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn same_object(reference: &EventObjectReference, involved: &Involved) -> bool {
    reference.kind == involved.kind
        && reference.namespace == involved.namespace
        && reference.name == involved.name
        && reference.uid == involved.uid
        && reference.field_path.as_deref() == involved.field_path
}

/// `<object name>.<16 hex digits>` from the time, as Kubernetes names events; a name
/// already in the log is moved on by one until it is free.
fn unique_name(entries: &[Entry], object: &str, now: SystemTime) -> String {
    let nanos = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut suffix = nanos;
    loop {
        let name = format!("{object}.{suffix:016x}");
        if !entries.iter().any(|e| e.event.metadata.name == name) {
            return name;
        }
        suffix = suffix.wrapping_add(1);
    }
}

fn new_event(
    name: String,
    stamp: String,
    involved: Involved,
    type_: EventType,
    reason: &str,
    message: &str,
    reporter: Reporter,
) -> Event {
    // Events about cluster-scoped objects (nodes, namespaces) live in `default`, as in
    // Kubernetes.
    let namespace = if involved.namespace.is_empty() {
        "default"
    } else {
        involved.namespace
    };
    Event {
        api_version: Event::API_VERSION.to_owned(),
        kind: Event::KIND.to_owned(),
        metadata: ObjectMeta {
            name,
            namespace: Some(namespace.to_owned()),
            creation_timestamp: Some(stamp.clone()),
            ..ObjectMeta::default()
        },
        involved_object: EventObjectReference {
            kind: involved.kind.to_owned(),
            namespace: involved.namespace.to_owned(),
            name: involved.name.to_owned(),
            uid: involved.uid.to_owned(),
            api_version: api_version_of(involved.kind).to_owned(),
            field_path: involved.field_path.map(str::to_owned),
        },
        reason: reason.to_owned(),
        message: message.to_owned(),
        type_: type_.as_str().to_owned(),
        count: 1,
        first_timestamp: stamp.clone(),
        last_timestamp: stamp,
        source: EventSource {
            component: reporter.component.to_owned(),
            host: reporter.host.map(str::to_owned),
        },
        reporting_component: reporter.component.to_owned(),
        reporting_instance: reporter.host.unwrap_or_default().to_owned(),
    }
}

/// The `apiVersion` of an involved object's kind, where berth knows it.
fn api_version_of(kind: &str) -> &'static str {
    match Kind::from_kind_name(kind) {
        Some(kind) => kind.api_version(),
        None if kind == "Node" => "v1",
        None => "",
    }
}

/// A `fieldSelector` on events: `field=value`, `field==value` or `field!=value`
/// requirements, comma-separated, all of which must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<(EventField, bool, String)>,
}

/// The fields of an event a selector may name (Kubernetes' field labels for events).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EventField {
    Name,
    Namespace,
    Kind,
    ObjectNamespace,
    ObjectName,
    ObjectUid,
    ObjectApiVersion,
    ObjectFieldPath,
    Reason,
    ReportingComponent,
    Source,
    Type,
}

impl EventField {
    fn parse(label: &str) -> Option<EventField> {
        Some(match label {
            "metadata.name" => EventField::Name,
            "metadata.namespace" => EventField::Namespace,
            "involvedObject.kind" => EventField::Kind,
            "involvedObject.namespace" => EventField::ObjectNamespace,
            "involvedObject.name" => EventField::ObjectName,
            "involvedObject.uid" => EventField::ObjectUid,
            "involvedObject.apiVersion" => EventField::ObjectApiVersion,
            "involvedObject.fieldPath" => EventField::ObjectFieldPath,
            "reason" => EventField::Reason,
            "reportingComponent" => EventField::ReportingComponent,
            "source" => EventField::Source,
            "type" => EventField::Type,
            _ => return None,
        })
    }

    fn value(self, event: &Event) -> &str {
        let object = &event.involved_object;
        match self {
            EventField::Name => &event.metadata.name,
            EventField::Namespace => event.metadata.namespace_or_empty(),
            EventField::Kind => &object.kind,
            EventField::ObjectNamespace => &object.namespace,
            EventField::ObjectName => &object.name,
            EventField::ObjectUid => &object.uid,
            EventField::ObjectApiVersion => &object.api_version,
            EventField::ObjectFieldPath => object.field_path.as_deref().unwrap_or(""),
            EventField::Reason => &event.reason,
            EventField::ReportingComponent => &event.reporting_component,
            EventField::Source => &event.source.component,
            EventField::Type => &event.type_,
        }
    }
}

impl FieldSelector {
    /// Parses a `fieldSelector`; an empty one selects everything.
    pub fn parse(text: &str) -> Result<FieldSelector, String> {
        let mut requirements = Vec::new();
        for part in text.split(',').filter(|p| !p.is_empty()) {
            let (label, equal, value) = if let Some((l, v)) = part.split_once("!=") {
                (l, false, v)
            } else if let Some((l, v)) = part.split_once("==") {
                (l, true, v)
            } else if let Some((l, v)) = part.split_once('=') {
                (l, true, v)
            } else {
                return Err(format!("invalid selector: {part:?}: expected FIELD=VALUE"));
            };
            let field = EventField::parse(label.trim())
                .ok_or_else(|| format!("field label not supported: {}", label.trim()))?;
            requirements.push((field, equal, value.trim().to_owned()));
        }
        Ok(FieldSelector { requirements })
    }

    pub fn matches(&self, event: &Event) -> bool {
        self.requirements
            .iter()
            .all(|(field, equal, value)| (field.value(event) == value) == *equal)
    }
}

/// The event routes under `/api/v1` (`rest` after it): `namespaces/NS/events[/NAME]`
/// and `events`, GET only; `None` when the path is not about events.
pub fn serve_events(
    log: &EventLog,
    request: &Request,
    rest: &[&str],
) -> Option<Result<Response, Refusal>> {
    let (namespace, name) = match rest {
        ["namespaces", ns, "events"] => (Some(*ns), None),
        ["namespaces", ns, "events", name] => (Some(*ns), Some(*name)),
        ["events"] => (None, None),
        _ => return None,
    };
    Some(answer(log, request, namespace, name))
}

fn answer(
    log: &EventLog,
    request: &Request,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<Response, Refusal> {
    if request.method != "GET" {
        return Err(method_not_allowed(&request.method, &request.path));
    }
    if let (Some(namespace), Some(name)) = (namespace, name) {
        let event = log
            .get(namespace, name)
            .ok_or_else(|| not_found(format!("events \"{name}\" not found")))?;
        return Ok(Response::json(200, &to_value(&event)?));
    }
    if super::watch::WatchParams::from_request(request).is_some() {
        return Err(bad_request("berth does not watch events"));
    }
    let selector = FieldSelector::parse(request.query_param("fieldSelector").unwrap_or(""))
        .map_err(bad_request)?;
    // Events carry no labels: a label selector asking for any selects none.
    if !label_selector(request)?.is_empty() {
        return Ok(list_response(Vec::new()));
    }
    let items = log
        .list(namespace, &selector)
        .iter()
        .map(to_value)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(list_response(items))
}

fn to_value(event: &Event) -> Result<serde_json::Value, Refusal> {
    serde_json::to_value(event).map_err(super::refusal::internal)
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
