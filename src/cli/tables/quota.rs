//! The tables of ResourceQuotas and LimitRanges, with kubectl's columns. Pure.

use serde_json::Value;

use super::super::output::{age, at, str_at};

pub const RESOURCE_QUOTA_COLUMNS: [&str; 4] = ["NAME", "AGE", "REQUEST", "LIMIT"];
pub const LIMIT_RANGE_COLUMNS: [&str; 2] = ["NAME", "CREATED AT"];

/// `REQUEST` lists `resource: used/hard` for every limited resource but the `limits.*`
/// ones, which go to `LIMIT`, as kubectl prints a quota.
pub fn resource_quota_row(item: &Value) -> Vec<String> {
    let (mut requests, mut limits) = (Vec::new(), Vec::new());
    let used = at(item, &["status", "used"]);
    for (resource, hard) in at(item, &["status", "hard"])
        .as_object()
        .into_iter()
        .flatten()
    {
        let used = used.get(resource).and_then(Value::as_str).unwrap_or("0");
        let entry = format!("{resource}: {used}/{}", hard.as_str().unwrap_or(""));
        if resource.starts_with("limits.") {
            limits.push(entry);
        } else {
            requests.push(entry);
        }
    }
    vec![
        str_at(item, &["metadata", "name"]).to_owned(),
        age(str_at(item, &["metadata", "creationTimestamp"])),
        requests.join(", "),
        limits.join(", "),
    ]
}

pub fn limit_range_row(item: &Value) -> Vec<String> {
    vec![
        str_at(item, &["metadata", "name"]).to_owned(),
        str_at(item, &["metadata", "creationTimestamp"]).to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quota_row_splits_requests_and_limits() {
        let quota = json!({
            "metadata": {"name": "q"},
            "status": {
                "hard": {"limits.cpu": "2", "pods": "10", "requests.memory": "1Gi"},
                "used": {"limits.cpu": "500m", "pods": "1", "requests.memory": "512Mi"}
            }
        });
        let row = resource_quota_row(&quota);
        assert_eq!(row[2], "pods: 1/10, requests.memory: 512Mi/1Gi");
        assert_eq!(row[3], "limits.cpu: 500m/2");
    }
}
