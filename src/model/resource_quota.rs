//! The ResourceQuota kind: how much the objects of one namespace may use together.
//!
//! A quota's `spec.hard` names resources (`pods`, `requests.memory`, `count/secrets`,
//! ...) and their limits. What the namespace uses is never stored: an idle daemon must
//! not write, and the objects it would be counted from are all in the store anyway. So
//! `status.used` is computed when a quota is shown ([`ResourceQuota::with_usage`]), and
//! admission ([`super::admission`]) counts afresh before each creation.
//!
//! Amounts are exact integers in each resource's unit: millicores for CPU, bytes for
//! memory, objects for counts.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::model::quota_scope::{class_key, scoped_usage, ScopeSelector};
use crate::model::{
    parse_cpu_millis, parse_memory_bytes, Container, Kind, Object, ObjectMeta, Pod, ServiceType,
};

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResourceQuota {
    pub metadata: ObjectMeta,
    pub spec: ResourceQuotaSpec,
    #[serde(skip_serializing_if = "crate::model::is_default")]
    pub status: ResourceQuotaStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResourceQuotaSpec {
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "quantity_map"
    )]
    pub hard: BTreeMap<String, String>,
    /// Counts only the pods of the priority classes it selects ([`super::quota_scope`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope_selector: Option<ScopeSelector>,
}

/// What the API server reports: the limits in force and what the namespace uses of them.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResourceQuotaStatus {
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "quantity_map"
    )]
    pub hard: BTreeMap<String, String>,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "quantity_map"
    )]
    pub used: BTreeMap<String, String>,
}

/// YAML users write `pods: 10` or `cpu: 1` unquoted, as Kubernetes accepts, so a quantity
/// may arrive as a JSON number; it is kept as its decimal text.
pub(crate) fn quantity_map<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum QuantityInput {
        Text(String),
        Number(serde_json::Number),
    }
    let raw = BTreeMap::<String, QuantityInput>::deserialize(deserializer)?;
    Ok(raw
        .into_iter()
        .map(|(key, value)| {
            let text = match value {
                QuantityInput::Text(text) => text,
                QuantityInput::Number(number) => number.to_string(),
            };
            (key, text)
        })
        .collect())
}

/// The unit a quota resource is counted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Millicores.
    Cpu,
    /// Bytes.
    Memory,
    /// Objects.
    Count,
}

/// The compute resources a quota may limit, with their units. `cpu` and `memory` are
/// Kubernetes' older names of the requests.
pub const COMPUTE_RESOURCES: [(&str, Unit); 6] = [
    ("cpu", Unit::Cpu),
    ("memory", Unit::Memory),
    ("requests.cpu", Unit::Cpu),
    ("requests.memory", Unit::Memory),
    ("limits.cpu", Unit::Cpu),
    ("limits.memory", Unit::Memory),
];

/// The kinds whose objects a quota may count (`count/<plural>[.<group>]`): those a user
/// creates through apply, where admission sees them. Endpoints, EndpointSlices,
/// ReplicaSets and ControllerRevisions are also made by controllers, whose creations
/// are not counted, so a quota on them could not be kept.
pub const COUNTED_KINDS: [Kind; 9] = [
    Kind::Pod,
    Kind::PersistentVolumeClaim,
    Kind::ConfigMap,
    Kind::Secret,
    Kind::Service,
    Kind::ResourceQuota,
    Kind::LimitRange,
    Kind::Deployment,
    Kind::DaemonSet,
];

/// What Services use beside their count: LoadBalancers, and the node ports of NodePort
/// and LoadBalancer Services.
pub const SERVICE_COUNTS: [&str; 2] = ["services.loadbalancers", "services.nodeports"];

/// Older names of object counts: `services` counts what `count/services` does.
const STANDARD_COUNTS: [(&str, Kind); 5] = [
    ("configmaps", Kind::ConfigMap),
    ("persistentvolumeclaims", Kind::PersistentVolumeClaim),
    ("secrets", Kind::Secret),
    ("services", Kind::Service),
    ("resourcequotas", Kind::ResourceQuota),
];

/// `count/deployments.apps`, `count/secrets`: the object-count resource of `kind`.
pub fn count_resource(kind: Kind) -> String {
    match kind.api_version().split_once('/') {
        Some((group, _)) => format!("count/{}.{group}", kind.plural()),
        None => format!("count/{}", kind.plural()),
    }
}

/// The unit of a resource a quota may limit; `None` for one berth does not support.
pub fn quota_unit(resource: &str) -> Option<Unit> {
    if resource == "pods"
        || STANDARD_COUNTS.iter().any(|(name, _)| *name == resource)
        || SERVICE_COUNTS.contains(&resource)
    {
        return Some(Unit::Count);
    }
    if let Some((_, unit)) = COMPUTE_RESOURCES.iter().find(|(name, _)| *name == resource) {
        return Some(*unit);
    }
    COUNTED_KINDS
        .iter()
        .any(|kind| count_resource(*kind) == resource)
        .then_some(Unit::Count)
}

/// Every resource name a quota may limit, for messages.
pub fn quota_resources() -> Vec<String> {
    let mut names: Vec<String> = ["pods"]
        .into_iter()
        .chain(COMPUTE_RESOURCES.iter().map(|(name, _)| *name))
        .chain(STANDARD_COUNTS.iter().map(|(name, _)| *name))
        .chain(SERVICE_COUNTS)
        .map(str::to_owned)
        .collect();
    names.extend(COUNTED_KINDS.iter().map(|kind| count_resource(*kind)));
    names
}

/// A quantity of `unit` as an exact integer. Counts must be whole, as in Kubernetes.
pub fn parse_amount(unit: Unit, text: &str) -> Result<u64, String> {
    match unit {
        Unit::Cpu => parse_cpu_millis(text),
        Unit::Memory => parse_memory_bytes(text),
        Unit::Count => {
            let millis = parse_cpu_millis(text)?;
            if millis % 1000 == 0 {
                Ok(millis / 1000)
            } else {
                Err("must be an integer".to_owned())
            }
        }
    }
}

/// An amount the way Kubernetes prints a quantity: whole cores as `2`, else `500m`;
/// memory in the largest binary unit it is a whole number of (`512Mi`, `1Gi`), else in
/// the largest decimal one (`1G`, `64k`); counts as integers.
pub fn format_amount(unit: Unit, amount: u64) -> String {
    match unit {
        Unit::Count => amount.to_string(),
        Unit::Cpu if amount % 1000 == 0 => (amount / 1000).to_string(),
        Unit::Cpu => format!("{amount}m"),
        Unit::Memory => format_memory(amount),
    }
}

fn format_memory(bytes: u64) -> String {
    if bytes == 0 {
        return "0".to_owned();
    }
    const BINARY: [&str; 6] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    const DECIMAL: [&str; 6] = ["k", "M", "G", "T", "P", "E"];
    if bytes % 1024 == 0 {
        let (mut value, mut suffix) = (bytes, "");
        for unit in BINARY {
            if value % 1024 != 0 {
                break;
            }
            value /= 1024;
            suffix = unit;
        }
        return format!("{value}{suffix}");
    }
    let (mut value, mut suffix) = (bytes, "");
    for unit in DECIMAL {
        if value % 1000 != 0 {
            break;
        }
        value /= 1000;
        suffix = unit;
    }
    format!("{value}{suffix}")
}

/// The unit of a resource that is known to be supported; counts for anything else.
pub fn unit_of(resource: &str) -> Unit {
    quota_unit(resource).unwrap_or(Unit::Count)
}

/// Amounts by resource name, in each resource's unit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage(pub BTreeMap<String, u64>);

impl Usage {
    pub fn get(&self, resource: &str) -> u64 {
        self.0.get(resource).copied().unwrap_or(0)
    }

    /// Adds `other` to this usage, resource by resource.
    pub fn add(&mut self, other: &Usage) {
        for (resource, amount) in &other.0 {
            let total = self.0.entry(resource.clone()).or_insert(0);
            *total = total.saturating_add(*amount);
        }
    }

    /// Takes `before` out and puts `after` in: an object replaced by a new version.
    pub fn replace(&mut self, before: &Usage, after: &Usage) {
        for (resource, amount) in &before.0 {
            if let Some(total) = self.0.get_mut(resource) {
                *total = total.saturating_sub(*amount);
            }
        }
        self.add(after);
    }

    /// What `self` adds to `before`: each resource's increase, those that do not grow
    /// left out (Kubernetes charges an update only for what it adds).
    pub fn growth_over(&self, before: &Usage) -> Usage {
        Usage(
            self.0
                .iter()
                .filter_map(|(resource, amount)| {
                    let grown = amount.saturating_sub(before.get(resource));
                    (grown > 0).then(|| (resource.clone(), grown))
                })
                .collect(),
        )
    }

    /// `resource=amount` pairs joined by commas, in name order, for the resources in
    /// `names`: the way Kubernetes prints a resource list in quota messages.
    pub fn pretty(&self, names: &[&String]) -> String {
        names
            .iter()
            .map(|name| format!("{name}={}", format_amount(unit_of(name), self.get(name))))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Whether a pod in `phase` has ended (`Succeeded` or `Failed`): such a pod uses no
/// compute resources and counts as no `pods`, though it still counts as `count/pods`.
pub fn phase_ended(phase: &str) -> bool {
    matches!(phase, "Succeeded" | "Failed")
}

/// What one pod uses, as Kubernetes' quota counts it: `count/pods` always; for a pod that
/// has not `ended`, also `pods` and the sums of its containers' requests and limits
/// (`cpu` and `memory` being the requests), each only when some container sets it. Each
/// amount is counted a second time with the pod's priority class, for the quotas scoped
/// by class ([`class_key`]).
pub fn pod_usage(pod: &Pod, ended: bool) -> Usage {
    let usage = unscoped_pod_usage(pod, ended);
    let class = pod.spec.priority_class_name.as_deref().unwrap_or("");
    let by_class: Vec<(String, u64)> = usage
        .0
        .iter()
        .map(|(resource, amount)| (class_key(resource, class), *amount))
        .collect();
    let mut usage = usage;
    usage.0.extend(by_class);
    usage
}

fn unscoped_pod_usage(pod: &Pod, ended: bool) -> Usage {
    let mut usage = Usage::default();
    usage.0.insert(count_resource(Kind::Pod), 1);
    if ended {
        return usage;
    }
    usage.0.insert("pods".to_owned(), 1);
    for (prefix, unit, name) in [
        ("requests", Unit::Cpu, "cpu"),
        ("requests", Unit::Memory, "memory"),
        ("limits", Unit::Cpu, "cpu"),
        ("limits", Unit::Memory, "memory"),
    ] {
        fn list<'c>(c: &'c Container, prefix: &str, name: &str) -> Option<&'c String> {
            match prefix {
                "requests" => c.resources.requests.get(name),
                _ => c.resources.limits.get(name),
            }
        }
        // A pod-level amount (PodLevelResources) is the pod's, whatever its containers
        // say, as Kubernetes' quota counts it.
        let pod_level = pod.spec.resources.as_ref().and_then(|r| match prefix {
            "requests" => r.requests.get(name),
            _ => r.limits.get(name),
        });
        // Otherwise counted only when some container sets it, as Kubernetes does.
        if pod_level.is_none()
            && !pod
                .spec
                .all_containers()
                .any(|c| list(c, prefix, name).is_some())
        {
            continue;
        }
        // Stored pods passed validation: an unreadable amount counts as none. Init
        // containers count at the pod's peak, as Kubernetes' quota counts them.
        let amount = match pod_level {
            Some(text) => parse_amount(unit, text).unwrap_or(0),
            None => pod.spec.peak_amount(|c| {
                list(c, prefix, name)
                    .and_then(|text| parse_amount(unit, text).ok())
                    .unwrap_or(0)
            }),
        };
        let mut names = vec![format!("{prefix}.{name}")];
        if prefix == "requests" {
            names.push(name.to_owned());
        }
        for resource in names {
            usage.0.insert(resource, amount);
        }
    }
    usage
}

/// What one object of `kind` (not a pod) counts for: `count/<kind>`, and the older name
/// where there is one.
pub fn object_usage(kind: Kind) -> Usage {
    let mut usage = Usage::default();
    usage.0.insert(count_resource(kind), 1);
    if let Some((name, _)) = STANDARD_COUNTS.iter().find(|(_, k)| *k == kind) {
        usage.0.insert((*name).to_owned(), 1);
    }
    usage
}

/// What `object` (not a pod) counts for: its kind's counts and, for a Service, its load
/// balancer and the node ports it takes (one per port where they are allocated, else
/// those it names).
pub fn object_usage_of(object: &Object) -> Usage {
    let mut usage = object_usage(object.kind());
    if let Object::Service(service) = object {
        let spec = &service.spec;
        let node_ports = if spec.allocates_node_ports() {
            spec.ports.len()
        } else {
            spec.ports.iter().filter(|port| port.node_port != 0).count()
        };
        let balancers = usize::from(spec.type_ == ServiceType::LoadBalancer);
        for (name, amount) in SERVICE_COUNTS.iter().zip([balancers, node_ports]) {
            if amount > 0 {
                usage.0.insert((*name).to_owned(), amount as u64);
            }
        }
    }
    usage
}

impl ResourceQuota {
    /// Whether the quota counts `pod`: every pod, unless it has a scope selector.
    pub fn counts(&self, pod: &Pod) -> bool {
        let class = pod.spec.priority_class_name.as_deref().unwrap_or("");
        self.spec
            .scope_selector
            .as_ref()
            .is_none_or(|scope| scope.selects(class))
    }

    /// What of a namespace's `usage` this quota counts: all of it, or what the pods in
    /// its scope use.
    pub fn used_of(&self, usage: &Usage) -> Usage {
        match &self.spec.scope_selector {
            Some(scope) => scoped_usage(scope, usage),
            None => usage.clone(),
        }
    }

    /// The quota's limits as amounts; a limit that does not parse (the quota passed
    /// validation, so none should) is left out.
    pub fn hard_amounts(&self) -> BTreeMap<&String, u64> {
        self.spec
            .hard
            .iter()
            .filter_map(|(name, text)| {
                let unit = quota_unit(name)?;
                Some((name, parse_amount(unit, text).ok()?))
            })
            .collect()
    }

    /// The quota with the status the API server shows: `hard` as in the spec, and
    /// `used`, what the namespace's objects (`usage`) use of each limited resource.
    pub fn with_usage(mut self, usage: &Usage) -> ResourceQuota {
        let usage = &self.used_of(usage);
        let used = self
            .spec
            .hard
            .keys()
            .map(|name| {
                let amount = format_amount(unit_of(name), usage.get(name));
                (name.clone(), amount)
            })
            .collect();
        // Limits in their canonical form, as the API server shows quantities.
        let hard = self
            .spec
            .hard
            .iter()
            .map(|(name, text)| {
                let unit = unit_of(name);
                let shown = parse_amount(unit, text)
                    .map_or_else(|_| text.clone(), |a| format_amount(unit, a));
                (name.clone(), shown)
            })
            .collect();
        self.status = ResourceQuotaStatus { hard, used };
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_print_as_kubernetes_quantities() {
        assert_eq!(format_amount(Unit::Cpu, 2000), "2");
        assert_eq!(format_amount(Unit::Cpu, 250), "250m");
        assert_eq!(format_amount(Unit::Memory, 512 << 20), "512Mi");
        assert_eq!(format_amount(Unit::Memory, 1 << 30), "1Gi");
        assert_eq!(format_amount(Unit::Memory, 1536 << 20), "1536Mi");
        assert_eq!(format_amount(Unit::Memory, 1_000_000_000), "1G");
        assert_eq!(format_amount(Unit::Memory, 64_000), "64k");
        assert_eq!(format_amount(Unit::Memory, 1500), "1500");
        assert_eq!(format_amount(Unit::Memory, 0), "0");
        assert_eq!(format_amount(Unit::Count, 3), "3");
    }

    #[test]
    fn resource_names_and_units() {
        assert_eq!(count_resource(Kind::Deployment), "count/deployments.apps");
        assert_eq!(count_resource(Kind::Secret), "count/secrets");
        assert_eq!(quota_unit("requests.memory"), Some(Unit::Memory));
        assert_eq!(quota_unit("cpu"), Some(Unit::Cpu));
        assert_eq!(quota_unit("count/daemonsets.apps"), Some(Unit::Count));
        assert_eq!(quota_unit("services"), Some(Unit::Count));
        assert_eq!(quota_unit("count/replicasets.apps"), None);
        assert_eq!(quota_unit("requests.storage"), None);
        assert_eq!(parse_amount(Unit::Count, "10"), Ok(10));
        assert_eq!(parse_amount(Unit::Count, "1k"), Ok(1000));
        assert_eq!(
            parse_amount(Unit::Count, "1.5"),
            Err("must be an integer".to_owned())
        );
    }
}
