//! Kubernetes `core/v1` Events: what happened to an object (a probe failed, a container
//! backs off, a pod was scheduled), told once and counted when it happens again.
//!
//! Events are not a manifest kind: nobody applies them and no store keeps them. The
//! daemons hold the recent ones in memory, in the resource API's event log, and show
//! them in this shape, the one `kubectl get events -o json` prints.

use serde::{Deserialize, Serialize};

use super::ObjectMeta;

/// `type` of an Event: Kubernetes knows these two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// The object an Event is about (`involvedObject`), with the part of it when the event
/// concerns one container (`fieldPath: spec.containers{web}`).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EventObjectReference {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_path: Option<String>,
}

/// Who reported an Event: a component (`kubelet`, `default-scheduler`) and, for the
/// kubelet, its node.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EventSource {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub component: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// A `core/v1` Event.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Event {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub involved_object: EventObjectReference,
    pub reason: String,
    pub message: String,
    #[serde(rename = "type")]
    pub type_: String,
    /// How many times this event happened, between `firstTimestamp` and `lastTimestamp`.
    pub count: u32,
    pub first_timestamp: String,
    pub last_timestamp: String,
    pub source: EventSource,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reporting_component: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reporting_instance: String,
}

impl Event {
    pub const API_VERSION: &'static str = "v1";
    pub const KIND: &'static str = "Event";
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serializes_as_kubectl_shows_an_event() {
        let event = Event {
            api_version: Event::API_VERSION.into(),
            kind: Event::KIND.into(),
            metadata: ObjectMeta {
                name: "web.17a0c1d2e3f40506".into(),
                namespace: Some("default".into()),
                creation_timestamp: Some("2026-01-02T03:04:05Z".into()),
                ..Default::default()
            },
            involved_object: EventObjectReference {
                kind: "Pod".into(),
                namespace: "default".into(),
                name: "web".into(),
                uid: "u-1".into(),
                api_version: "v1".into(),
                field_path: Some("spec.containers{main}".into()),
            },
            reason: "Unhealthy".into(),
            message: "Readiness probe failed: exit code 1".into(),
            type_: EventType::Warning.as_str().into(),
            count: 3,
            first_timestamp: "2026-01-02T03:04:05Z".into(),
            last_timestamp: "2026-01-02T03:04:07Z".into(),
            source: EventSource {
                component: "kubelet".into(),
                host: Some("pi-1".into()),
            },
            reporting_component: "kubelet".into(),
            reporting_instance: "pi-1".into(),
        };
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(
            value,
            json!({
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": "web.17a0c1d2e3f40506", "namespace": "default",
                             "creationTimestamp": "2026-01-02T03:04:05Z"},
                "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web",
                    "uid": "u-1", "apiVersion": "v1", "fieldPath": "spec.containers{main}"},
                "reason": "Unhealthy", "message": "Readiness probe failed: exit code 1",
                "type": "Warning", "count": 3,
                "firstTimestamp": "2026-01-02T03:04:05Z",
                "lastTimestamp": "2026-01-02T03:04:07Z",
                "source": {"component": "kubelet", "host": "pi-1"},
                "reportingComponent": "kubelet", "reportingInstance": "pi-1",
            })
        );
        let back: Event = serde_json::from_value(value).unwrap();
        assert_eq!(back, event);
    }
}
