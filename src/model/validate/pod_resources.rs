//! Pod-level `resources` (Kubernetes' PodLevelResources, KEP-2837, with the per-pod PID
//! limit of KEP-6063) and containers' `resizePolicy` (InPlacePodVerticalScaling,
//! KEP-1287), with Kubernetes' rules: only `cpu` and `memory` (and `pids` as a limit),
//! requests within limits, the pod's requests covering its containers' aggregate and no
//! container limited above the pod.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::checker::{get, index, join, Checker, JsonObject};
use crate::model::{parse_count, parse_cpu_millis, parse_memory_bytes, POD_LEVEL_RESOURCES};

/// The bounds Kubernetes puts on `spec.resources.limits.pids`.
const PIDS_RANGE: (u64, u64) = (128, 16384);

/// `spec.resources` of the pod spec at `path`.
pub(super) fn check_pod_resources(c: &mut Checker, spec: &JsonObject, spec_path: &str) {
    let Some(value) = get(spec, "resources") else {
        return;
    };
    let path = &join(spec_path, "resources");
    let Some(resources) = c.object(value, path) else {
        return;
    };
    c.only_fields(resources, path, &["requests", "limits"]);
    let requests = get(resources, "requests")
        .map(|v| check_list(c, v, &join(path, "requests"), false))
        .unwrap_or_default();
    let limits = get(resources, "limits")
        .map(|v| check_list(c, v, &join(path, "limits"), true))
        .unwrap_or_default();
    let containers = Containers::of(spec);
    for name in POD_LEVEL_RESOURCES {
        let request_path = join(&join(path, "requests"), name);
        let aggregate = containers.aggregate_request(name);
        if let Some(request) = requests.get(name) {
            if *request < aggregate {
                let of = format_amount(name, aggregate);
                c.error(
                    &request_path,
                    format!(
                        "must be greater than or equal to aggregate container requests of {of}"
                    ),
                );
            }
        }
        let Some(limit) = limits.get(name) else {
            continue;
        };
        // Kubernetes defaults a missing pod request (from the containers' aggregate when
        // one requests it, else from the limit) before it validates, so a defaulted
        // request above the limit is refused too.
        let (request, defaulted) = match requests.get(name) {
            Some(request) => (*request, false),
            None if containers.request_set(name) => (aggregate, true),
            None => continue,
        };
        if request > *limit {
            let limit = format_amount(name, *limit);
            let message = if defaulted {
                format!(
                    "defaulted to the aggregate container requests of {}, which must be less \
                     than or equal to {name} limit of {limit}",
                    format_amount(name, request)
                )
            } else {
                format!("must be less than or equal to {name} limit of {limit}")
            };
            c.error(&request_path, message);
        }
        containers.check_limits_within(c, spec_path, name, *limit);
    }
}

/// Checks a pod-level `requests` (`limits` when `limits`) map; returns the amounts by
/// name (millicores, bytes, a count of pids).
fn check_list<'a>(
    c: &mut Checker,
    value: &'a Value,
    path: &str,
    limits: bool,
) -> BTreeMap<&'a str, u64> {
    let mut amounts = BTreeMap::new();
    let Some(list) = c.object(value, path) else {
        return amounts;
    };
    for (name, item) in list {
        let item_path = join(path, name);
        let parse: fn(&str) -> Result<u64, String> = match name.as_str() {
            "cpu" => parse_cpu_millis,
            "memory" => parse_memory_bytes,
            "pids" if limits => parse_count,
            "pids" => {
                c.error(&item_path, "forbidden: pids may be set in limits only");
                continue;
            }
            huge if huge.starts_with("hugepages-") => {
                c.error(
                    &item_path,
                    format!("unsupported resource name {huge:?}: berth has no huge pages"),
                );
                continue;
            }
            other => {
                c.error(
                    &item_path,
                    format!(
                        "unsupported resource name {other:?}: supported values: \"cpu\", \
                         \"memory\", and \"pids\" in limits"
                    ),
                );
                continue;
            }
        };
        let Some(text) = quantity_text(item) else {
            c.error(&item_path, "expected string");
            continue;
        };
        match parse(&text) {
            Ok(amount) if name == "pids" && !(PIDS_RANGE.0..=PIDS_RANGE.1).contains(&amount) => {
                c.error(
                    &item_path,
                    format!(
                        "must be between {} and {}, inclusive",
                        PIDS_RANGE.0, PIDS_RANGE.1
                    ),
                );
            }
            Ok(amount) => {
                amounts.insert(name.as_str(), amount);
            }
            Err(message) => c.error(&item_path, message),
        }
    }
    amounts
}

/// A quantity as text; unquoted YAML numbers (`cpu: 1`) are quantities too.
fn quantity_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An amount as Kubernetes prints a quantity in its messages: `1500m` or `4` CPUs,
/// memory in the largest binary unit that divides it (`14Gi`).
fn format_amount(name: &str, amount: u64) -> String {
    if name == "cpu" {
        return if amount % 1000 == 0 {
            (amount / 1000).to_string()
        } else {
            format!("{amount}m")
        };
    }
    for (unit, size) in [
        ("Ti", 1u64 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if amount != 0 && amount % size == 0 {
            return format!("{}{unit}", amount / size);
        }
    }
    amount.to_string()
}

/// One container's CPU and memory as read from the manifest, before defaulting; what
/// does not parse is reported by the container's own checks and counts as absent here.
struct ContainerAmounts {
    requests: BTreeMap<String, u64>,
    limits: BTreeMap<String, u64>,
    sidecar: bool,
}

impl ContainerAmounts {
    fn of(container: &Value) -> Self {
        let list = |key: &str| -> BTreeMap<String, u64> {
            let entries = container
                .get("resources")
                .and_then(|r| r.get(key))
                .and_then(Value::as_object);
            let mut amounts = BTreeMap::new();
            for (name, item) in entries.into_iter().flatten() {
                let parsed = match name.as_str() {
                    "cpu" => quantity_text(item).and_then(|t| parse_cpu_millis(&t).ok()),
                    "memory" => quantity_text(item).and_then(|t| parse_memory_bytes(&t).ok()),
                    _ => None,
                };
                if let Some(amount) = parsed {
                    amounts.insert(name.clone(), amount);
                }
            }
            amounts
        };
        ContainerAmounts {
            requests: list("requests"),
            limits: list("limits"),
            sidecar: container.get("restartPolicy").and_then(Value::as_str) == Some("Always"),
        }
    }

    /// The request as Kubernetes defaults it: a limit without a request is the request.
    fn request(&self, name: &str) -> Option<u64> {
        self.requests
            .get(name)
            .or_else(|| self.limits.get(name))
            .copied()
    }
}

/// The pod's init and app containers, for the checks against the pod's amounts.
struct Containers {
    init: Vec<ContainerAmounts>,
    app: Vec<ContainerAmounts>,
}

impl Containers {
    fn of(spec: &JsonObject) -> Self {
        let read = |key: &str| -> Vec<ContainerAmounts> {
            get(spec, key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(ContainerAmounts::of)
                .collect()
        };
        Containers {
            init: read("initContainers"),
            app: read("containers"),
        }
    }

    /// Whether some container requests `name` (after defaulting).
    fn request_set(&self, name: &str) -> bool {
        self.init
            .iter()
            .chain(&self.app)
            .any(|c| c.request(name).is_some())
    }

    /// The containers' requests at the pod's peak, as `PodSpec::peak_amount` counts them.
    fn aggregate_request(&self, name: &str) -> u64 {
        let amount = |c: &ContainerAmounts| c.request(name).unwrap_or(0);
        let mut sidecars = 0u64;
        let mut init_peak = 0u64;
        for container in &self.init {
            if container.sidecar {
                sidecars = sidecars.saturating_add(amount(container));
            } else {
                init_peak = init_peak.max(sidecars.saturating_add(amount(container)));
            }
        }
        let running = self
            .app
            .iter()
            .fold(sidecars, |sum, c| sum.saturating_add(amount(c)));
        init_peak.max(running)
    }

    /// No app container may be limited above the pod (Kubernetes checks `containers`).
    fn check_limits_within(&self, c: &mut Checker, spec_path: &str, name: &str, pod_limit: u64) {
        for (i, container) in self.app.iter().enumerate() {
            if container.limits.get(name).is_some_and(|l| *l > pod_limit) {
                let container_path = index(&join(spec_path, "containers"), i);
                let path = join(&join(&join(&container_path, "resources"), "limits"), name);
                let limit = format_amount(name, pod_limit);
                c.error(
                    &path,
                    format!("must be less than or equal to pod limits of {limit}"),
                );
            }
        }
    }
}

/// A container's `resizePolicy`: each of `cpu` and `memory` at most once, with
/// `NotRequired` or `RestartContainer` (only `NotRequired` in a pod that never restarts).
pub(super) fn check_resize_policy(c: &mut Checker, value: &Value, path: &str, never: bool) {
    let Some(items) = c.list(value, path) else {
        return;
    };
    let mut seen = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = index(path, i);
        let Some(policy) = c.object(item, &item_path) else {
            continue;
        };
        c.only_fields(policy, &item_path, &["resourceName", "restartPolicy"]);
        let name_path = join(&item_path, "resourceName");
        if let Some(value) = c.required_field(policy, &item_path, "resourceName") {
            if let Some(name) = c.one_of(value, &name_path, &["cpu", "memory"]) {
                if !seen.insert(name) {
                    c.error(&name_path, format!("duplicate value {name:?}"));
                }
            }
        }
        let restart_path = join(&item_path, "restartPolicy");
        if let Some(value) = c.required_field(policy, &item_path, "restartPolicy") {
            let restart = c.one_of(value, &restart_path, &["NotRequired", "RestartContainer"]);
            if never && restart == Some("RestartContainer") {
                c.error(
                    &restart_path,
                    "must be 'NotRequired' when `restartPolicy` is 'Never'",
                );
            }
        }
    }
}

#[cfg(test)]
#[path = "pod_resources_tests.rs"]
mod tests;
