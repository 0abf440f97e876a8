//! The `Events:` section every `describe` ends with: what the server's event log tells
//! about the object, found by the `involvedObject` field selector `kubectl describe`
//! sends, laid out as kubectl does (`10s (x3 over 2m)` for a repeated one).

use std::time::SystemTime;

use serde_json::Value;

use super::field;
use crate::api::client::{ApiError, Client};
use crate::api::http::percent_encode;
use crate::cli::output::str_at;
use crate::cli::tables::event::{count, since};

/// The events about `object` (of `kind`, e.g. `Pod`), oldest first. A server that keeps
/// no events (it does not know the path) has none to tell.
pub(super) fn fetch(client: &Client, kind: &str, object: &Value) -> Result<Vec<Value>, ApiError> {
    let path = events_path(kind, object);
    let mut items = match client.request("GET", &path, None) {
        Ok((_, list)) => list
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        Err(ApiError::Status { code: 404, .. }) => Vec::new(),
        Err(err) => return Err(err),
    };
    crate::support::sort::sort_by(&mut items, |a, b| {
        str_at(a, &["lastTimestamp"]).cmp(str_at(b, &["lastTimestamp"]))
    });
    Ok(items)
}

/// Where the events of `object` are: in its namespace (across all for a cluster-scoped
/// object), those whose `involvedObject` is it.
fn events_path(kind: &str, object: &Value) -> String {
    let namespace = str_at(object, &["metadata", "namespace"]);
    let mut selector = vec![
        format!("involvedObject.kind={kind}"),
        format!(
            "involvedObject.name={}",
            str_at(object, &["metadata", "name"])
        ),
    ];
    if !namespace.is_empty() {
        selector.push(format!("involvedObject.namespace={namespace}"));
    }
    let uid = str_at(object, &["metadata", "uid"]);
    if !uid.is_empty() {
        selector.push(format!("involvedObject.uid={uid}"));
    }
    let collection = if namespace.is_empty() {
        "/api/v1/events".to_owned()
    } else {
        format!("/api/v1/namespaces/{}/events", percent_encode(namespace))
    };
    format!(
        "{collection}?fieldSelector={}",
        percent_encode(&selector.join(","))
    )
}

/// `Events:` then ` <none>`, or a table of type, reason, age, source and message.
pub(super) fn section(out: &mut String, events: &[Value], now: SystemTime) {
    if events.is_empty() {
        field(out, 0, "Events", "<none>");
        return;
    }
    let header = ["Type", "Reason", "Age", "From", "Message"];
    let rows: Vec<[String; 5]> = events.iter().map(|e| row(e, now)).collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    out.push_str("Events:\n");
    let mut line = |cells: [&str; 5]| {
        let mut text = String::from("  ");
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header);
    line(["----", "------", "----", "----", "-------"]);
    for row in &rows {
        line(row.each_ref().map(String::as_str));
    }
}

fn row(event: &Value, now: SystemTime) -> [String; 5] {
    let first = str_at(event, &["firstTimestamp"]);
    let last = match str_at(event, &["lastTimestamp"]) {
        "" => first,
        last => last,
    };
    let age = match count(event) {
        1 => since(last, now),
        n => format!("{} (x{n} over {})", since(last, now), since(first, now)),
    };
    let from = match str_at(event, &["source", "component"]) {
        "" => str_at(event, &["reportingComponent"]),
        component => component,
    };
    [
        str_at(event, &["type"]).to_owned(),
        str_at(event, &["reason"]).to_owned(),
        age,
        from.to_owned(),
        str_at(event, &["message"]).trim().to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        humantime::parse_rfc3339("2026-05-01T10:00:00Z").unwrap() + Duration::from_secs(secs)
    }

    #[test]
    fn no_events_read_none() {
        let mut out = String::new();
        section(&mut out, &[], at(0));
        assert_eq!(out, "Events:                 <none>\n");
    }

    #[test]
    fn events_are_a_table_with_repeats_counted() {
        let events = [
            json!({"type": "Normal", "reason": "Scheduled", "count": 1,
                "message": "Successfully assigned default/web to pi-1",
                "firstTimestamp": "2026-05-01T10:00:00Z", "lastTimestamp": "2026-05-01T10:00:00Z",
                "source": {"component": "default-scheduler"}}),
            json!({"type": "Warning", "reason": "Unhealthy", "count": 3,
                "message": "Readiness probe failed: exit code 1",
                "firstTimestamp": "2026-05-01T10:00:05Z", "lastTimestamp": "2026-05-01T10:02:00Z",
                "source": {"component": "kubelet", "host": "pi-1"}}),
        ];
        let mut out = String::new();
        section(&mut out, &events, at(130));
        let expected = "\
Events:
  Type     Reason     Age                 From               Message
  ----     ------     ----                ----               -------
  Normal   Scheduled  2m10s               default-scheduler  Successfully assigned default/web to pi-1
  Warning  Unhealthy  10s (x3 over 2m5s)  kubelet            Readiness probe failed: exit code 1
";
        assert_eq!(out, expected);
    }

    #[test]
    fn the_path_names_the_object_as_kubectl_describe_does() {
        let pod = json!({"metadata": {"name": "web", "namespace": "shop", "uid": "u-1"}});
        let path = events_path("Pod", &pod);
        let (collection, query) = path.split_once('?').unwrap();
        assert_eq!(collection, "/api/v1/namespaces/shop/events");
        let selector =
            crate::api::percent_decode(query.strip_prefix("fieldSelector=").unwrap()).unwrap();
        assert_eq!(
            selector,
            "involvedObject.kind=Pod,involvedObject.name=web,involvedObject.namespace=shop,\
             involvedObject.uid=u-1"
        );
        let node = json!({"metadata": {"name": "pi-1"}});
        assert!(events_path("Node", &node).starts_with("/api/v1/events?"));
    }
}
