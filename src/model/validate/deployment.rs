//! Validation of a Deployment spec, and of the specs that share its selector and
//! template: ReplicaSets', DaemonSets' and ReplicationControllers'.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::checker::{get, join, Checker};
use super::pod::check_pod_spec;

pub(super) fn check_deployment_spec(c: &mut Checker, value: Option<&Value>) {
    let Some(spec) = check_replicated_spec(
        c,
        value,
        &[
            "replicas",
            "selector",
            "template",
            "strategy",
            "minReadySeconds",
            "revisionHistoryLimit",
            "progressDeadlineSeconds",
            "paused",
        ],
        SelectorShape::MatchLabels,
    ) else {
        return;
    };
    if let Some(value) = get(spec, "strategy") {
        check_strategy(c, value);
    }
    if let Some(value) = get(spec, "revisionHistoryLimit") {
        c.integer_in(value, "spec.revisionHistoryLimit", 0, i64::from(i32::MAX));
    }
    if let Some(value) = get(spec, "paused") {
        c.boolean(value, "spec.paused");
    }
    if let Some(value) = get(spec, "progressDeadlineSeconds") {
        let deadline = c.integer_in(
            value,
            "spec.progressDeadlineSeconds",
            1,
            i64::from(i32::MAX),
        );
        let min_ready = get(spec, "minReadySeconds").and_then(Value::as_i64);
        if let (Some(deadline), Some(min_ready)) = (deadline, min_ready) {
            if deadline <= min_ready {
                c.error(
                    "spec.progressDeadlineSeconds",
                    "must be greater than minReadySeconds",
                );
            }
        }
    }
}

pub(super) fn check_replica_set_spec(c: &mut Checker, value: Option<&Value>) {
    check_replicated_spec(
        c,
        value,
        &["replicas", "selector", "template", "minReadySeconds"],
        SelectorShape::MatchLabels,
    );
}

/// A ReplicationController's spec: a ReplicaSet's fields, with a plain label map for a
/// selector.
pub(super) fn check_replication_controller_spec(c: &mut Checker, value: Option<&Value>) {
    check_replicated_spec(
        c,
        value,
        &["replicas", "selector", "template", "minReadySeconds"],
        SelectorShape::PlainMap,
    );
}

pub(super) fn check_daemon_set_spec(c: &mut Checker, value: Option<&Value>) {
    let Some(spec) = check_replicated_spec(
        c,
        value,
        &[
            "selector",
            "template",
            "updateStrategy",
            "minReadySeconds",
            "revisionHistoryLimit",
        ],
        SelectorShape::MatchLabels,
    ) else {
        return;
    };
    if let Some(value) = get(spec, "revisionHistoryLimit") {
        c.integer_in(value, "spec.revisionHistoryLimit", 0, i64::from(i32::MAX));
    }
    let Some(value) = get(spec, "updateStrategy") else {
        return;
    };
    let Some(strategy) = c.object(value, "spec.updateStrategy") else {
        return;
    };
    c.only_fields(strategy, "spec.updateStrategy", &["type", "rollingUpdate"]);
    let strategy_type = match get(strategy, "type") {
        None => Some("RollingUpdate"),
        Some(value) => c.one_of(
            value,
            "spec.updateStrategy.type",
            &["RollingUpdate", "OnDelete"],
        ),
    };
    let Some(value) = get(strategy, "rollingUpdate") else {
        return;
    };
    if strategy_type == Some("OnDelete") {
        c.error(
            "spec.updateStrategy.rollingUpdate",
            "may not be specified when strategy type is \"OnDelete\"",
        );
        return;
    }
    let path = "spec.updateStrategy.rollingUpdate";
    let Some(rolling) = c.object(value, path) else {
        return;
    };
    c.only_fields(rolling, path, &["maxUnavailable", "maxSurge"]);
    check_surge_and_unavailable(c, rolling, path);
}

/// How a spec writes its selector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SelectorShape {
    /// A `LabelSelector` whose `matchLabels` are required (the apps/v1 kinds).
    MatchLabels,
    /// A plain label map that, empty or absent, stands for the template's labels (a
    /// ReplicationController's, defaulted so when built).
    PlainMap,
}

/// What Deployments, ReplicaSets, DaemonSets, StatefulSets and ReplicationControllers
/// share: replicas (not DaemonSets), a selector of `shape` that matches the template's
/// labels, the template, `minReadySeconds`. Returns the spec to check further.
pub(super) fn check_replicated_spec<'a>(
    c: &mut Checker,
    value: Option<&'a Value>,
    fields: &[&str],
    shape: SelectorShape,
) -> Option<&'a Map<String, Value>> {
    // A missing spec is reported through the fields it lacks.
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    let spec = match value {
        None => EMPTY.get_or_init(Map::new),
        Some(value) => c.object(value, "spec")?,
    };
    c.only_fields(spec, "spec", fields);
    if let Some(value) = get(spec, "minReadySeconds") {
        c.integer_in(value, "spec.minReadySeconds", 0, i64::from(i32::MAX));
    }
    if let Some(value) = get(spec, "replicas") {
        c.integer_in(value, "spec.replicas", 0, i64::from(i32::MAX));
    }
    match shape {
        SelectorShape::MatchLabels => {
            let selector = check_selector(c, get(spec, "selector"));
            let template_labels = check_template(c, get(spec, "template"), "spec.template", true);
            if let (Some(selector), Some(labels)) = (selector, template_labels) {
                if !selects(&selector, &labels) {
                    c.error(
                        "spec.selector.matchLabels",
                        "does not match template labels",
                    );
                }
            }
        }
        SelectorShape::PlainMap => check_plain_selector(c, spec),
    }
    Some(spec)
}

/// Whether every pair of `selector` is among `labels`: equality selection.
fn selects(selector: &BTreeMap<&str, &str>, labels: &BTreeMap<&str, &str>) -> bool {
    selector
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
}

/// A ReplicationController's selector, a plain label map, and its template. An empty
/// or absent selector stands for the template's labels, so only a template without
/// labels leaves it empty, which would select every pod of the namespace.
fn check_plain_selector(c: &mut Checker, spec: &Map<String, Value>) {
    let selector = get(spec, "selector")
        .map(|value| c.labels(value, "spec.selector"))
        .filter(|selector| !selector.is_empty());
    let template_labels = check_template(c, get(spec, "template"), "spec.template", true);
    match (selector, template_labels) {
        (Some(selector), Some(labels)) if !selects(&selector, &labels) => {
            c.error(
                "spec.template.metadata.labels",
                "selector does not match labels in template",
            );
        }
        (None, labels) if labels.as_ref().is_none_or(BTreeMap::is_empty) => {
            c.required("spec.selector");
        }
        _ => {}
    }
}

/// Returns the selector's labels when it is well formed enough to compare.
fn check_selector<'a>(
    c: &mut Checker,
    value: Option<&'a Value>,
) -> Option<BTreeMap<&'a str, &'a str>> {
    let Some(value) = value else {
        c.required("spec.selector");
        return None;
    };
    let selector = c.object(value, "spec.selector")?;
    c.only_fields(selector, "spec.selector", &["matchLabels"]);
    let Some(value) = get(selector, "matchLabels") else {
        c.required("spec.selector.matchLabels");
        return None;
    };
    let labels = c.labels(value, "spec.selector.matchLabels");
    if labels.is_empty() && value.as_object().is_some_and(|m| m.is_empty()) {
        // An empty selector would select every pod in the namespace.
        c.required("spec.selector.matchLabels");
        return None;
    }
    Some(labels)
}

/// Returns the template's labels (possibly none) when the template is an object.
/// `path` is where it sits (`spec.template`, or deeper in a CronJob); `always_restarts`:
/// the pods must restart always (what keeps replicas running), which a Job's need not.
pub(super) fn check_template<'a>(
    c: &mut Checker,
    value: Option<&'a Value>,
    path: &str,
    always_restarts: bool,
) -> Option<BTreeMap<&'a str, &'a str>> {
    let Some(value) = value else {
        c.required(path);
        return None;
    };
    let template = c.object(value, path)?;
    c.only_fields(template, path, &["metadata", "spec"]);
    let mut labels = BTreeMap::new();
    let meta_path = format!("{path}.metadata");
    if let Some(value) = get(template, "metadata") {
        if let Some(meta) = c.object(value, &meta_path) {
            // `creationTimestamp: null` appears in kubectl-generated templates.
            c.only_fields(
                meta,
                &meta_path,
                // A name is ignored, as Kubernetes does: the controller names its pods.
                &["name", "labels", "annotations", "creationTimestamp"],
            );
            if let Some(value) = get(meta, "labels") {
                labels = c.labels(value, &format!("{meta_path}.labels"));
            }
            if let Some(value) = get(meta, "annotations") {
                c.annotations(value, &format!("{meta_path}.annotations"));
            }
        }
    }
    check_pod_spec(
        c,
        get(template, "spec"),
        &format!("{path}.spec"),
        always_restarts,
    );
    Some(labels)
}

fn check_strategy(c: &mut Checker, value: &Value) {
    let Some(strategy) = c.object(value, "spec.strategy") else {
        return;
    };
    c.only_fields(strategy, "spec.strategy", &["type", "rollingUpdate"]);
    let strategy_type = match get(strategy, "type") {
        None => Some("RollingUpdate"),
        Some(value) => c.one_of(value, "spec.strategy.type", &["RollingUpdate", "Recreate"]),
    };
    let Some(value) = get(strategy, "rollingUpdate") else {
        return;
    };
    if strategy_type == Some("Recreate") {
        c.error(
            "spec.strategy.rollingUpdate",
            "may not be specified when strategy type is \"Recreate\"",
        );
        return;
    }
    let Some(rolling) = c.object(value, "spec.strategy.rollingUpdate") else {
        return;
    };
    let path = "spec.strategy.rollingUpdate";
    c.only_fields(rolling, path, &["maxSurge", "maxUnavailable"]);
    check_surge_and_unavailable(c, rolling, path);
}

/// `maxSurge` and `maxUnavailable` of a rolling update at `path`: counts or percentages,
/// unavailability at most 100%, not both 0.
fn check_surge_and_unavailable(c: &mut Checker, rolling: &Map<String, Value>, path: &str) {
    let surge =
        get(rolling, "maxSurge").and_then(|v| int_or_percent(c, v, &join(path, "maxSurge")));
    let unavailable_path = join(path, "maxUnavailable");
    let unavailable =
        get(rolling, "maxUnavailable").and_then(|v| int_or_percent(c, v, &unavailable_path));
    if let Some(IntOrPercent {
        amount,
        percent: true,
    }) = unavailable
    {
        if amount > 100 {
            c.error(&unavailable_path, "must not be greater than 100%");
        }
    }
    // Both zero would let a rollout neither add nor remove a pod.
    if surge.map(|s| s.amount) == Some(0) && unavailable.map(|u| u.amount) == Some(0) {
        c.error(&unavailable_path, "may not be 0 when maxSurge is 0");
    }
}

#[derive(Clone, Copy)]
pub(super) struct IntOrPercent {
    pub(super) amount: i64,
    pub(super) percent: bool,
}

/// A non-negative integer or a percentage string such as `"25%"`.
pub(super) fn int_or_percent(c: &mut Checker, value: &Value, path: &str) -> Option<IntOrPercent> {
    match value {
        Value::Number(_) => c
            .integer_in(value, path, 0, i64::from(i32::MAX))
            .map(|amount| IntOrPercent {
                amount,
                percent: false,
            }),
        Value::String(text) => {
            let amount = text
                .strip_suffix('%')
                .filter(|digits| !digits.is_empty() && digits.chars().all(|ch| ch.is_ascii_digit()))
                .and_then(|digits| digits.parse::<i64>().ok());
            if amount.is_none() {
                c.error(
                    path,
                    format!(
                        "invalid value {text:?}: must be a non-negative integer or a percentage like \"25%\""
                    ),
                );
            }
            amount.map(|amount| IntOrPercent {
                amount,
                percent: true,
            })
        }
        _ => {
            c.error(path, "expected integer or string");
            None
        }
    }
}

#[cfg(test)]
#[path = "deployment_tests.rs"]
mod tests;
