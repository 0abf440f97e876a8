//! The LimitRange kind: defaults and bounds for the compute resources of each container
//! (`type: Container`) or each pod (`type: Pod`) of a namespace, as Kubernetes'
//! LimitRanger admission applies them when a pod is created.
//!
//! Only `cpu` and `memory` exist on a board; `PersistentVolumeClaim` limits are refused
//! at validation, there being no claims to bound.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::resource_quota::{format_amount, parse_amount, quantity_map, Unit};
use crate::model::{Container, ObjectMeta, Pod};

/// The annotation Kubernetes' LimitRanger leaves on a pod it gave defaults to.
pub const LIMIT_RANGER_ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// The limit types berth supports.
pub const LIMIT_TYPES: [&str; 2] = ["Container", "Pod"];

/// The resources a limit may name.
pub const LIMIT_RESOURCES: [&str; 2] = ["cpu", "memory"];

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LimitRange {
    pub metadata: ObjectMeta,
    pub spec: LimitRangeSpec,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LimitRangeSpec {
    pub limits: Vec<LimitRangeItem>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LimitRangeItem {
    /// `Container` or `Pod`.
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "quantity_map"
    )]
    pub max: BTreeMap<String, String>,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "quantity_map"
    )]
    pub min: BTreeMap<String, String>,
    /// Limits given to containers that set none.
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "quantity_map"
    )]
    pub default: BTreeMap<String, String>,
    /// Requests given to containers that set none.
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "quantity_map"
    )]
    pub default_request: BTreeMap<String, String>,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "quantity_map"
    )]
    pub max_limit_request_ratio: BTreeMap<String, String>,
}

/// The unit of `cpu` or `memory`.
fn unit(resource: &str) -> Unit {
    if resource == "cpu" {
        Unit::Cpu
    } else {
        Unit::Memory
    }
}

/// A quantity of `resource`; an unreadable one (limit ranges and pods passed
/// validation, so none should be) reads as absent.
fn amount(resource: &str, text: &str) -> Option<u64> {
    parse_amount(unit(resource), text).ok()
}

/// `cpu`/`memory` amounts of a requests or limits map.
fn amounts(list: &BTreeMap<String, String>) -> BTreeMap<&str, u64> {
    list.iter()
        .filter_map(|(name, text)| Some((name.as_str(), amount(name, text)?)))
        .collect()
}

impl LimitRangeItem {
    /// Kubernetes' defaults for a `Container` limit, applied when the object is made: a
    /// `max` without a `default` makes the default limit; a `default` without a
    /// `defaultRequest` makes the default request, and so does a `min` without either.
    pub fn apply_defaults(&mut self) {
        if self.type_ != "Container" {
            return;
        }
        for (name, value) in &self.max {
            self.default
                .entry(name.clone())
                .or_insert_with(|| value.clone());
        }
        for (name, value) in self.default.iter().chain(&self.min) {
            self.default_request
                .entry(name.clone())
                .or_insert_with(|| value.clone());
        }
    }
}

impl LimitRange {
    pub fn apply_defaults(&mut self) {
        self.spec
            .limits
            .iter_mut()
            .for_each(LimitRangeItem::apply_defaults);
    }
}

/// Gives every container of `pod` the default limits and requests of the first of
/// `ranges` (in order) that has one for a resource it does not set, and notes what was
/// set in the [`LIMIT_RANGER_ANNOTATION`], as Kubernetes' LimitRanger does.
pub fn apply_limit_defaults(ranges: &[&LimitRange], pod: &mut Pod) {
    let mut notes = Vec::new();
    for range in ranges {
        let containers = range.spec.limits.iter().filter(|l| l.type_ == "Container");
        let (mut limits, mut requests) = (BTreeMap::new(), BTreeMap::new());
        for item in containers {
            limits.extend(item.default.clone());
            requests.extend(item.default_request.clone());
        }
        let spec = &mut pod.spec;
        for container in spec.init_containers.iter_mut().chain(&mut spec.containers) {
            let set_limits = fill(&mut container.resources.limits, &limits);
            let set_requests = fill(&mut container.resources.requests, &requests);
            if !set_requests.is_empty() {
                notes.push(format!(
                    "{} request for container {}",
                    set_requests.join(", "),
                    container.name
                ));
            }
            if !set_limits.is_empty() {
                notes.push(format!(
                    "{} limit for container {}",
                    set_limits.join(", "),
                    container.name
                ));
            }
        }
    }
    if !notes.is_empty() {
        pod.metadata.annotations.insert(
            LIMIT_RANGER_ANNOTATION.to_owned(),
            format!("LimitRanger plugin set: {}", notes.join("; ")),
        );
    }
}

/// Adds the entries of `defaults` that `list` lacks; returns their names, sorted.
fn fill(list: &mut BTreeMap<String, String>, defaults: &BTreeMap<String, String>) -> Vec<String> {
    let mut set = Vec::new();
    for (name, value) in defaults {
        if !list.contains_key(name) {
            list.insert(name.clone(), value.clone());
            set.push(name.clone());
        }
    }
    set
}

/// Checks `pod` (its defaults already given) against one range's `min`, `max` and
/// `maxLimitRequestRatio`; `Err` holds Kubernetes' message, every violation listed.
pub fn check_limits(range: &LimitRange, pod: &Pod) -> Result<(), String> {
    let mut errors: Vec<String> = Vec::new();
    for item in &range.spec.limits {
        match item.type_.as_str() {
            "Container" => {
                for container in pod.spec.all_containers() {
                    let requests = amounts(&container.resources.requests);
                    let limits = amounts(&container.resources.limits);
                    check_item(item, "Container", &requests, &limits, &mut errors);
                }
            }
            "Pod" => {
                let (mut requests, mut limits) = pod_totals(&pod.spec.containers);
                // Pod-level amounts replace the containers' sums, as in Kubernetes'
                // LimitRanger.
                if let Some(pod_level) = &pod.spec.resources {
                    let limited = |(name, _): &(&str, u64)| LIMIT_RESOURCES.contains(name);
                    requests.extend(amounts(&pod_level.requests).into_iter().filter(limited));
                    limits.extend(amounts(&pod_level.limits).into_iter().filter(limited));
                }
                check_item(item, "Pod", &requests, &limits, &mut errors);
            }
            _ => {}
        }
    }
    aggregate(errors)
}

/// A pod's requests and limits: per resource, the sum over its containers, for the
/// resources every container sets (as Kubernetes sums them for `type: Pod`).
fn pod_totals(containers: &[Container]) -> (BTreeMap<&str, u64>, BTreeMap<&str, u64>) {
    let sum = |lists: Vec<BTreeMap<&'static str, u64>>| {
        let mut totals = BTreeMap::new();
        for resource in LIMIT_RESOURCES {
            let each: Option<Vec<u64>> = lists.iter().map(|l| l.get(resource).copied()).collect();
            if let Some(each) = each.filter(|e| !e.is_empty()) {
                totals.insert(
                    resource,
                    each.iter().fold(0u64, |a, b| a.saturating_add(*b)),
                );
            }
        }
        totals
    };
    let of = |pick: fn(&Container) -> &BTreeMap<String, String>| {
        containers
            .iter()
            .map(|c| {
                LIMIT_RESOURCES
                    .into_iter()
                    .filter_map(|r| Some((r, amount(r, pick(c).get(r)?)?)))
                    .collect()
            })
            .collect()
    };
    (
        sum(of(|c| &c.resources.requests)),
        sum(of(|c| &c.resources.limits)),
    )
}

/// One item's bounds on one container's (or one pod's) requests and limits.
fn check_item(
    item: &LimitRangeItem,
    per: &str,
    requests: &BTreeMap<&str, u64>,
    limits: &BTreeMap<&str, u64>,
    errors: &mut Vec<String>,
) {
    let show = |resource: &str, value: u64| format_amount(unit(resource), value);
    for (resource, text) in &item.min {
        let Some(min) = amount(resource, text) else {
            continue;
        };
        let (min_text, r) = (show(resource, min), resource.as_str());
        match (requests.get(r), limits.get(r)) {
            (None, _) => errors.push(format!(
                "minimum {r} usage per {per} is {min_text}.  No request is specified"
            )),
            (Some(request), _) if *request < min => errors.push(format!(
                "minimum {r} usage per {per} is {min_text}, but request is {}",
                show(r, *request)
            )),
            (_, Some(limit)) if *limit < min => errors.push(format!(
                "minimum {r} usage per {per} is {min_text}, but limit is {}",
                show(r, *limit)
            )),
            _ => {}
        }
    }
    for (resource, text) in &item.max {
        let Some(max) = amount(resource, text) else {
            continue;
        };
        let (max_text, r) = (show(resource, max), resource.as_str());
        match (limits.get(r), requests.get(r)) {
            (None, _) => errors.push(format!(
                "maximum {r} usage per {per} is {max_text}.  No limit is specified"
            )),
            (Some(limit), _) if *limit > max => errors.push(format!(
                "maximum {r} usage per {per} is {max_text}, but limit is {}",
                show(r, *limit)
            )),
            (_, Some(request)) if *request > max => errors.push(format!(
                "maximum {r} usage per {per} is {max_text}, but request is {}",
                show(r, *request)
            )),
            _ => {}
        }
    }
    check_ratios(item, per, requests, limits, errors);
}

/// One item's `maxLimitRequestRatio` on one container's (or one pod's) resources.
fn check_ratios(
    item: &LimitRangeItem,
    per: &str,
    requests: &BTreeMap<&str, u64>,
    limits: &BTreeMap<&str, u64>,
    errors: &mut Vec<String>,
) {
    for (resource, text) in &item.max_limit_request_ratio {
        // A ratio is a plain quantity: in thousandths, like CPU.
        let Ok(ratio) = parse_amount(Unit::Cpu, text) else {
            continue;
        };
        let (ratio_text, r) = (format_amount(Unit::Cpu, ratio), resource.as_str());
        let request = requests.get(r).copied().filter(|v| *v > 0);
        let limit = limits.get(r).copied().filter(|v| *v > 0);
        match (request, limit) {
            (None, _) => errors.push(format!(
                "{r} max limit to request ratio per {per} is {ratio_text}, but no request is \
                 specified or request is 0"
            )),
            (_, None) => errors.push(format!(
                "{r} max limit to request ratio per {per} is {ratio_text}, but no limit is \
                 specified or limit is 0"
            )),
            // limit / request > ratio / 1000, exactly.
            (Some(request), Some(limit))
                if u128::from(limit) * 1000 > u128::from(ratio) * u128::from(request) =>
            {
                errors.push(format!(
                    "{r} max limit to request ratio per {per} is {ratio_text}, but provided \
                     ratio is {:.6}",
                    limit as f64 / request as f64
                ));
            }
            _ => {}
        }
    }
}

/// Several errors as one, the way Kubernetes aggregates them: one as itself, more in
/// brackets, each message once.
fn aggregate(errors: Vec<String>) -> Result<(), String> {
    let mut unique: Vec<String> = Vec::new();
    for error in errors {
        if !unique.contains(&error) {
            unique.push(error);
        }
    }
    match unique.len() {
        0 => Ok(()),
        1 => Err(unique.remove(0)),
        _ => Err(format!("[{}]", unique.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(type_: &str) -> LimitRangeItem {
        LimitRangeItem {
            type_: type_.to_owned(),
            ..LimitRangeItem::default()
        }
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_follow_kubernetes() {
        let mut container = item("Container");
        container.max = map(&[("cpu", "2"), ("memory", "1Gi")]);
        container.default = map(&[("memory", "512Mi")]);
        container.min = map(&[("cpu", "100m")]);
        container.apply_defaults();
        assert_eq!(container.default, map(&[("cpu", "2"), ("memory", "512Mi")]));
        assert_eq!(
            container.default_request,
            map(&[("cpu", "2"), ("memory", "512Mi")])
        );
        let mut only_min = item("Container");
        only_min.min = map(&[("memory", "64Mi")]);
        only_min.apply_defaults();
        assert_eq!(only_min.default_request, map(&[("memory", "64Mi")]));
        assert!(only_min.default.is_empty());
        let mut pod = item("Pod");
        pod.max = map(&[("cpu", "2")]);
        pod.apply_defaults();
        assert!(pod.default.is_empty(), "Pod limits have no defaults");
    }

    #[test]
    fn ratio_is_compared_exactly() {
        let mut ratio = item("Container");
        ratio.max_limit_request_ratio = map(&[("cpu", "2")]);
        let range = LimitRange {
            spec: LimitRangeSpec {
                limits: vec![ratio],
            },
            ..LimitRange::default()
        };
        let mut pod = Pod::default();
        let mut container = Container {
            name: "app".into(),
            ..Container::default()
        };
        container.resources.requests = map(&[("cpu", "100m")]);
        container.resources.limits = map(&[("cpu", "200m")]);
        pod.spec.containers.push(container);
        assert_eq!(check_limits(&range, &pod), Ok(()));
        pod.spec.containers[0].resources.limits = map(&[("cpu", "201m")]);
        assert_eq!(
            check_limits(&range, &pod),
            Err(
                "cpu max limit to request ratio per Container is 2, but provided ratio is \
                 2.010000"
                    .to_owned()
            )
        );
    }
}
