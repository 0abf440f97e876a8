//! A node's taints, as `berth taint` (kubectl's verb) sets them with a PATCH of
//! `spec.taints`: the whole list, checked as Kubernetes checks it, with `timeAdded`
//! stamped on each `NoExecute` taint that lacks one (as Kubernetes' API server does), so
//! that `tolerationSeconds` count from when the taint came. A taint kept from before keeps
//! its time.

use serde_json::Value;

use crate::api::refusal::{invalid, Refusal};
use crate::model::{validate_label_key, validate_label_value, Taint};

const EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// The taints of `patch` (a JSON list) to store on a node whose taints were `before`.
pub(super) fn patched_taints(
    patch: &Value,
    before: &[Taint],
    now: std::time::SystemTime,
) -> Result<Vec<Taint>, Refusal> {
    let items = match patch {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => return Err(invalid("spec.taints: expected list")),
    };
    let mut taints: Vec<Taint> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("spec.taints[{i}]");
        let mut taint: Taint = serde_json::from_value(item.clone())
            .map_err(|err| invalid(format!("{path}: {err}")))?;
        validate_label_key(&taint.key)
            .map_err(|err| invalid(format!("{path}.key: invalid value {:?}: {err}", taint.key)))?;
        if let Some(value) = &taint.value {
            validate_label_value(value)
                .map_err(|err| invalid(format!("{path}.value: invalid value {value:?}: {err}")))?;
        }
        if !EFFECTS.contains(&taint.effect.as_str()) {
            return Err(invalid(format!(
                "{path}.effect: unsupported value {:?}: supported values: \"NoSchedule\", \
                 \"PreferNoSchedule\", \"NoExecute\"",
                taint.effect
            )));
        }
        if taints
            .iter()
            .any(|t| t.key == taint.key && t.effect == taint.effect)
        {
            return Err(invalid(format!(
                "{path}: duplicate value {:?}: taints must be unique by key and effect pair",
                format!("{}:{}", taint.key, taint.effect)
            )));
        }
        if taint.effect == "NoExecute" {
            let kept = before
                .iter()
                .find(|t| t.key == taint.key && t.effect == taint.effect && t.value == taint.value);
            taint.time_added = match kept.and_then(|t| t.time_added.clone()) {
                Some(time) => Some(time),
                None => taint
                    .time_added
                    .or_else(|| Some(humantime::format_rfc3339_seconds(now).to_string())),
            };
        } else {
            taint.time_added = None;
        }
        taints.push(taint);
    }
    Ok(taints)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::{Duration, SystemTime};

    #[test]
    fn no_execute_taints_get_their_time_once() {
        let first = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let patch = json!([{"key": "dedicated", "value": "maint", "effect": "NoExecute"},
                           {"key": "slow", "effect": "PreferNoSchedule"}]);
        let taints = patched_taints(&patch, &[], first).unwrap();
        assert_eq!(
            taints[0].time_added.as_deref(),
            Some("2027-01-15T08:00:00Z")
        );
        assert_eq!(taints[1].time_added, None);
        let later = first + Duration::from_secs(60);
        let again = patched_taints(&patch, &taints, later).unwrap();
        assert_eq!(again[0].time_added, taints[0].time_added, "kept");
    }

    #[test]
    fn bad_taints_are_refused_with_their_field() {
        let refused = |patch: Value| patched_taints(&patch, &[], SystemTime::UNIX_EPOCH).is_err();
        assert!(refused(json!([{"key": "a", "effect": "Sometimes"}])));
        assert!(refused(json!([{"key": "bad key", "effect": "NoSchedule"}])));
        assert!(refused(json!([{"key": "a", "effect": "NoSchedule"},
                               {"key": "a", "value": "b", "effect": "NoSchedule"}])));
        assert!(refused(json!({"key": "a"})));
        assert!(!refused(json!(null)));
    }
}
