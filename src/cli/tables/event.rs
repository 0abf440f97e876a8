//! `get events`: kubectl's columns — when it was last seen, its type and reason, the
//! object (`pod/web-abc`) and the message; `-o wide` adds the part of the object, the
//! source, when it was first seen, how often and the event's name. Pure: the time to
//! count ages from comes in.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::cli::output::{human_duration, int_at, str_at};

pub fn event_columns(wide: bool) -> &'static [&'static str] {
    if wide {
        &[
            "LAST SEEN",
            "TYPE",
            "REASON",
            "OBJECT",
            "SUBOBJECT",
            "SOURCE",
            "MESSAGE",
            "FIRST SEEN",
            "COUNT",
            "NAME",
        ]
    } else {
        &["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    }
}

pub fn event_row(event: &Value, wide: bool, now: SystemTime) -> Vec<String> {
    let first = since(str_at(event, &["firstTimestamp"]), now);
    let last = match str_at(event, &["lastTimestamp"]) {
        "" => first.clone(),
        stamp => since(stamp, now),
    };
    let message = str_at(event, &["message"]).trim().to_owned();
    let mut row = vec![
        last,
        str_at(event, &["type"]).to_owned(),
        str_at(event, &["reason"]).to_owned(),
        object_cell(event),
    ];
    if wide {
        row.push(str_at(event, &["involvedObject", "fieldPath"]).to_owned());
        row.push(source_cell(event));
        row.push(message);
        row.push(first);
        row.push(count(event).to_string());
        row.push(str_at(event, &["metadata", "name"]).to_owned());
    } else {
        row.push(message);
    }
    row
}

/// `pod/web-abc`: the involved object's kind in lower case and its name.
pub fn object_cell(event: &Value) -> String {
    let kind = str_at(event, &["involvedObject", "kind"]).to_ascii_lowercase();
    match str_at(event, &["involvedObject", "name"]) {
        "" => kind,
        name => format!("{kind}/{name}"),
    }
}

/// `kubelet, pi-1`, or the component alone when it names no node.
fn source_cell(event: &Value) -> String {
    let component = match str_at(event, &["source", "component"]) {
        "" => str_at(event, &["reportingComponent"]),
        component => component,
    };
    match str_at(event, &["source", "host"]) {
        "" => component.to_owned(),
        host => format!("{component}, {host}"),
    }
}

/// How many times the event happened (an old event without a count happened once).
pub fn count(event: &Value) -> i64 {
    int_at(event, &["count"]).max(1)
}

/// The age of an RFC 3339 `timestamp` at `now`, kubectl's way (`45s`, `3m12s`, `5h`).
pub fn since(timestamp: &str, now: SystemTime) -> String {
    let Ok(then) = humantime::parse_rfc3339(timestamp) else {
        return "<unknown>".to_owned();
    };
    human_duration(now.duration_since(then).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(secs: u64) -> SystemTime {
        humantime::parse_rfc3339("2026-05-01T10:00:00Z").unwrap() + Duration::from_secs(secs)
    }

    fn event() -> Value {
        json!({
            "metadata": {"name": "web-7d9f.17a0c1d2e3f40506", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web-7d9f-abcde",
                               "fieldPath": "spec.containers{app}"},
            "type": "Warning", "reason": "Unhealthy",
            "message": "Readiness probe failed: exit code 1\n",
            "count": 4,
            "firstTimestamp": "2026-05-01T10:00:00Z",
            "lastTimestamp": "2026-05-01T10:02:00Z",
            "source": {"component": "kubelet", "host": "pi-1"},
        })
    }

    #[test]
    fn a_row_reads_as_kubectl_s() {
        assert_eq!(
            event_row(&event(), false, at(125)),
            [
                "5s",
                "Warning",
                "Unhealthy",
                "pod/web-7d9f-abcde",
                "Readiness probe failed: exit code 1"
            ]
        );
        assert_eq!(
            event_row(&event(), true, at(125)),
            [
                "5s",
                "Warning",
                "Unhealthy",
                "pod/web-7d9f-abcde",
                "spec.containers{app}",
                "kubelet, pi-1",
                "Readiness probe failed: exit code 1",
                "2m5s",
                "4",
                "web-7d9f.17a0c1d2e3f40506"
            ]
        );
        assert_eq!(event_columns(false).len(), 5);
        assert_eq!(event_columns(true).len(), 10);
    }

    #[test]
    fn missing_fields_fall_back_as_kubectl_s_do() {
        let bare = json!({"involvedObject": {"kind": "ReplicaSet", "name": "web-7d9f"},
            "type": "Normal", "reason": "SuccessfulCreate", "message": "Created pod: x",
            "firstTimestamp": "2026-05-01T10:00:00Z",
            "source": {"component": "replicaset-controller"}});
        let row = event_row(&bare, true, at(30));
        assert_eq!(row[0], "30s", "no lastTimestamp: the first");
        assert_eq!(row[3], "replicaset/web-7d9f");
        assert_eq!(row[5], "replicaset-controller");
        assert_eq!(row[8], "1");
        assert_eq!(since("not a time", at(0)), "<unknown>");
        assert_eq!(
            object_cell(&json!({"involvedObject": {"kind": "Node"}})),
            "node"
        );
    }
}
