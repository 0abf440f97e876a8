//! The Pod kind: spec (what to run) and status (what the agent observed).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize};

use crate::model::{
    HostAlias, Lifecycle, ObjectMeta, PodDnsConfig, PodSecurityContext, Probe, SecurityContext,
    DEFAULT_DNS_POLICY,
};

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Pod {
    pub metadata: ObjectMeta,
    pub spec: PodSpec,
    #[serde(skip_serializing_if = "crate::model::is_default")]
    pub status: PodStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSpec {
    /// Run in order, each to completion, before `containers` start; one with
    /// `restartPolicy: Always` is a sidecar that starts in its turn and keeps running.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<Container>,
    pub containers: Vec<Container>,
    /// `Always`, `OnFailure` or `Never`.
    pub restart_policy: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "crate::model::is_default")]
    pub host_network: bool,
    /// All containers of the pod in one PID namespace, whose PID 1 is the sandbox's
    /// holder: they see and may signal each other's processes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share_process_namespace: Option<bool>,
    pub termination_grace_period_seconds: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Secrets of type `kubernetes.io/dockerconfigjson` in the pod's namespace whose
    /// registry credentials are used to pull its images.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,
    /// `ClusterFirst` when absent (see [`PodSpec::dns_policy`]). Fields added after the
    /// first release are left out of the serialized spec when unset, so that the spec
    /// hash of an existing pod (in its container names) does not change on upgrade.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_config: Option<PodDnsConfig>,
    /// The pod's hostname; the pod's name when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// With `hostname`, makes the pod `<hostname>.<subdomain>.<namespace>.svc.<domain>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subdomain: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub host_aliases: Vec<HostAlias>,
    /// Required node affinity (where the scheduler and DaemonSets may place the pod).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affinity: Option<crate::model::Affinity>,
    /// Taints of nodes the pod may run on anyway.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<crate::model::Toleration>,
    /// How the pods a selector picks spread over nodes or zones.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<crate::model::TopologySpreadConstraint>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<crate::model::Volume>,
    /// Accepted so that manifests run unchanged; berth mounts no API token (an apply
    /// that names one says so with a warning).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// While any is listed, no scheduler places the pod (`SchedulingGated`); removing the
    /// last lets it be scheduled.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scheduling_gates: Vec<PodSchedulingGate>,
    /// The deprecated spelling of `serviceAccountName`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automount_service_account_token: Option<bool>,
    /// The PriorityClass whose value admission gives the pod (`model::priority_class`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Set by admission from the class; pending pods are placed highest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// `PreemptLowerPriority` or `Never`, from the class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preemption_policy: Option<String>,
    /// Pod-level requests and limits (Kubernetes' PodLevelResources): `cpu` and `memory`
    /// bound the pod's containers together, in the pod's own cgroup, and the requests
    /// replace the containers' sum for scheduling and quotas; `pids` (limits only) caps
    /// the processes of the whole pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// A reference by name to an object in the same namespace.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LocalObjectReference {
    pub name: String,
}

impl Default for PodSpec {
    fn default() -> Self {
        PodSpec {
            init_containers: Vec::new(),
            containers: Vec::new(),
            restart_policy: "Always".into(),
            node_selector: BTreeMap::new(),
            host_network: false,
            share_process_namespace: None,
            termination_grace_period_seconds: 30,
            node_name: None,
            image_pull_secrets: Vec::new(),
            security_context: None,
            dns_policy: None,
            dns_config: None,
            hostname: None,
            subdomain: None,
            host_aliases: Vec::new(),
            affinity: None,
            tolerations: Vec::new(),
            topology_spread_constraints: Vec::new(),
            volumes: Vec::new(),
            service_account_name: None,
            scheduling_gates: Vec::new(),
            service_account: None,
            automount_service_account_token: None,
            priority_class_name: None,
            priority: None,
            preemption_policy: None,
            resources: None,
        }
    }
}

impl PodSpec {
    /// The names of the ConfigMaps and Secrets the containers read through `env`,
    /// `envFrom` and volumes (not `imagePullSecrets`), each once.
    pub fn config_references(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut config_maps = BTreeSet::new();
        let mut secrets = BTreeSet::new();
        for container in self.all_containers() {
            for from in &container.env_from {
                config_maps.extend(from.config_map_ref.iter().map(|r| r.name.clone()));
                secrets.extend(from.secret_ref.iter().map(|r| r.name.clone()));
            }
            for source in container.env.iter().filter_map(|e| e.value_from.as_ref()) {
                config_maps.extend(source.config_map_key_ref.iter().map(|r| r.name.clone()));
                secrets.extend(source.secret_key_ref.iter().map(|r| r.name.clone()));
            }
        }
        for volume in &self.volumes {
            config_maps.extend(volume.config_map.iter().map(|s| s.name.clone()));
            secrets.extend(volume.secret.iter().map(|s| s.secret_name.clone()));
            for source in volume.projected.iter().flat_map(|p| &p.sources) {
                config_maps.extend(source.config_map.iter().map(|s| s.name.clone()));
                secrets.extend(source.secret.iter().map(|s| s.name.clone()));
            }
        }
        (config_maps, secrets)
    }

    /// Every container of the pod, init containers first, in the order they start.
    pub fn all_containers(&self) -> impl Iterator<Item = &Container> + Clone {
        self.init_containers.iter().chain(&self.containers)
    }

    /// The container named `name`, init or app.
    pub fn container(&self, name: &str) -> Option<&Container> {
        self.all_containers().find(|c| c.name == name)
    }

    /// The containers that run beside the app containers: the app containers and the
    /// sidecars (init containers with `restartPolicy: Always`).
    pub fn long_running(&self) -> impl Iterator<Item = &Container> {
        self.init_containers
            .iter()
            .filter(|c| c.is_sidecar())
            .chain(&self.containers)
    }

    /// What the pod needs of one resource at its peak, as Kubernetes counts it: the app
    /// containers and sidecars together, or an init container with the sidecars started
    /// before it, whichever is more. `amount` is one container's share.
    pub fn peak_amount(&self, mut amount: impl FnMut(&Container) -> u64) -> u64 {
        let mut sidecars = 0u64;
        let mut init_peak = 0u64;
        for container in &self.init_containers {
            if container.is_sidecar() {
                sidecars = sidecars.saturating_add(amount(container));
            } else {
                init_peak = init_peak.max(sidecars.saturating_add(amount(container)));
            }
        }
        let running = self
            .containers
            .iter()
            .fold(sidecars, |sum, c| sum.saturating_add(amount(c)));
        init_peak.max(running)
    }

    /// `spec.dnsPolicy`, defaulted as Kubernetes does.
    pub fn dns_policy(&self) -> &str {
        self.dns_policy.as_deref().unwrap_or(DEFAULT_DNS_POLICY)
    }

    /// Defaults that serde's field defaults cannot express. Like the Kubernetes API
    /// server, a resource with only a limit gets a request equal to that limit, so the
    /// scheduler reserves what the container may use. An empty probe `httpGet.path`
    /// becomes `/`.
    pub fn apply_defaults(&mut self) {
        for container in self.init_containers.iter_mut().chain(&mut self.containers) {
            let resources = &mut container.resources;
            for (name, limit) in &resources.limits {
                resources
                    .requests
                    .entry(name.clone())
                    .or_insert_with(|| limit.clone());
            }
            crate::model::probe::apply_probe_defaults(container);
        }
        self.default_pod_requests();
    }

    /// Kubernetes' defaulting of pod-level requests, once the containers' are defaulted:
    /// only when pod-level limits are set, a missing CPU or memory request becomes the
    /// containers' aggregate request if some container requests it, else the pod's
    /// limit. `pids` is a limit only and never becomes a request.
    fn default_pod_requests(&mut self) {
        let Some(pod) = &self.resources else {
            return;
        };
        if pod.limits.is_empty() {
            return;
        }
        let mut requests = pod.requests.clone();
        for name in POD_LEVEL_RESOURCES {
            if requests.contains_key(name) {
                continue;
            }
            let requested = self
                .all_containers()
                .any(|c| c.resources.requests.contains_key(name));
            let default = if requested {
                self.aggregate_request(name)
                    .map(|amount| format_amount(name, amount))
            } else {
                pod.limits.get(name).cloned()
            };
            if let Some(default) = default {
                requests.insert(name.to_owned(), default);
            }
        }
        if let Some(pod) = &mut self.resources {
            pod.requests = requests;
        }
    }

    /// The containers' aggregate request of `cpu` (millicores) or `memory` (bytes) at
    /// the pod's peak; `None` if a container's request cannot be read.
    pub fn aggregate_request(&self, name: &str) -> Option<u64> {
        let parse = amount_parser(name)?;
        let mut unreadable = false;
        let amount = self.peak_amount(|c| match c.resources.requests.get(name) {
            None => 0,
            Some(text) => parse(text).unwrap_or_else(|_| {
                unreadable = true;
                0
            }),
        });
        (!unreadable).then_some(amount)
    }

    /// The pod-level request of `cpu` (millicores) or `memory` (bytes), if set.
    pub fn pod_request(&self, name: &str) -> Option<u64> {
        let text = self.resources.as_ref()?.requests.get(name)?;
        amount_parser(name)?(text).ok()
    }

    /// The pod-level limit of `cpu` (millicores), `memory` (bytes) or `pids`, if set.
    pub fn pod_limit(&self, name: &str) -> Option<u64> {
        let text = self.resources.as_ref()?.limits.get(name)?;
        match name {
            "pids" => crate::model::parse_count(text).ok(),
            _ => amount_parser(name)?(text).ok(),
        }
    }

    /// What the pod requests of `cpu` or `memory`: its pod-level request when set (it
    /// replaces the containers' sum, as in Kubernetes), else the containers' peak.
    pub fn effective_request(&self, name: &str) -> u64 {
        self.pod_request(name)
            .or_else(|| self.aggregate_request(name))
            .unwrap_or(0)
    }
}

/// The resources a pod may set for itself besides `pids`: CPU and memory.
pub const POD_LEVEL_RESOURCES: [&str; 2] = ["cpu", "memory"];

/// Reads a quantity into its unit.
type Parser = fn(&str) -> Result<u64, String>;

/// How a CPU or memory quantity is read: millicores or bytes.
fn amount_parser(name: &str) -> Option<Parser> {
    match name {
        "cpu" => Some(crate::model::parse_cpu_millis),
        "memory" => Some(crate::model::parse_memory_bytes),
        _ => None,
    }
}

/// An amount as a quantity string: millicores as `250m`, bytes as a plain number.
fn format_amount(name: &str, amount: u64) -> String {
    match name {
        "cpu" => format!("{amount}m"),
        _ => amount.to_string(),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Container {
    pub name: String,
    pub image: String,
    /// `Always`, `IfNotPresent` or `Never`; `None` leaves the choice to the image puller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<crate::model::EnvFromSource>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<crate::model::VolumeMount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    #[serde(skip_serializing_if = "crate::model::is_default")]
    pub resources: ResourceRequirements,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub startup_probe: Option<Probe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    /// Only on init containers, and only `Always`: a sidecar.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
    /// How the container would take a change of its CPU or memory in place (Kubernetes'
    /// InPlacePodVerticalScaling). Validated and kept; berth does not resize in place: a
    /// changed spec restarts the pod's containers (`model::warnings` says so at apply).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resize_policy: Vec<ContainerResizePolicy>,
    /// Where the container may write why it ended; `/dev/termination-log` when absent.
    /// Left out when unset (not defaulted into the spec), so the spec hashes of pods
    /// made before berth had it do not change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_message_path: Option<String>,
    /// `File` (the default) or `FallbackToLogsOnError`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_message_policy: Option<String>,
}

/// One entry of a container's `resizePolicy`.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerResizePolicy {
    /// `cpu` or `memory`.
    pub resource_name: String,
    /// `NotRequired` or `RestartContainer`.
    pub restart_policy: String,
}

/// Kubernetes' default `terminationMessagePath`.
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";

impl Container {
    /// An init container that keeps running beside the app containers (Kubernetes'
    /// sidecar containers, `restartPolicy: Always`).
    pub fn is_sidecar(&self) -> bool {
        self.restart_policy.as_deref() == Some("Always")
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvVar {
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_from: Option<crate::model::EnvVarSource>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerPort {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub container_port: i32,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_port: Option<i32>,
    /// The host address a `hostPort` is published on; every address when absent.
    #[serde(rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

impl Default for ContainerPort {
    fn default() -> Self {
        ContainerPort {
            name: None,
            container_port: 0,
            protocol: "TCP".into(),
            host_port: None,
            host_ip: None,
        }
    }
}

/// Requests and limits keyed by resource name (`cpu`, `memory`), values kept as the
/// quantity strings the user wrote; see [`crate::model::parse_cpu_millis`].
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResourceRequirements {
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "quantity_map"
    )]
    pub requests: BTreeMap<String, String>,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "quantity_map"
    )]
    pub limits: BTreeMap<String, String>,
}

/// YAML users write `cpu: 1` or `cpu: 0.5` unquoted, and Kubernetes accepts that, so a
/// quantity may arrive as a JSON number; it is kept as its decimal text.
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
        .map(|(name, value)| {
            let text = match value {
                QuantityInput::Text(s) => s,
                QuantityInput::Number(n) => n.to_string(),
            };
            (name, text)
        })
        .collect())
}

/// One entry of `status.podIPs` / `status.hostIPs`.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PodIp {
    pub ip: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodStatus {
    /// `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub phase: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<PodCondition>,
    #[serde(rename = "podIP", skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
    /// Every address of the pod (one: berth is IPv4 only), as Kubernetes lists them.
    #[serde(rename = "podIPs", skip_serializing_if = "Vec::is_empty")]
    pub pod_ips: Vec<PodIp>,
    #[serde(rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    #[serde(rename = "hostIPs", skip_serializing_if = "Vec::is_empty")]
    pub host_ips: Vec<PodIp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub init_container_statuses: Vec<ContainerStatus>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub container_statuses: Vec<ContainerStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The node the scheduler preempted pods on for this pending pod: it goes there
    /// once they are gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nominated_node_name: Option<String>,
}

impl PodStatus {
    /// Whether the pod's `Ready` condition is `True`: it may serve.
    pub fn is_ready(&self) -> bool {
        self.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    }

    /// Whether a container waits in `CrashLoopBackOff`: it keeps failing and is being
    /// restarted with back-off.
    pub fn is_crash_looping(&self) -> bool {
        self.container_statuses.iter().any(|c| {
            c.state.waiting.as_ref().and_then(|w| w.reason.as_deref()) == Some("CrashLoopBackOff")
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodCondition {
    /// `Ready`, `ContainersReady`, `Initialized`, `PodScheduled`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True` or `False`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerStatus {
    pub name: String,
    pub ready: bool,
    pub restart_count: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<bool>,
    pub state: ContainerState,
    pub last_state: ContainerState,
    pub image: String,
    #[serde(rename = "imageID")]
    pub image_id: String,
    #[serde(rename = "containerID", skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
}

/// At most one of the three is set, as in Kubernetes.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerState {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<StateWaiting>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running: Option<StateRunning>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminated: Option<StateTerminated>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StateWaiting {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StateRunning {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StateTerminated {
    pub exit_code: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// `Completed`, `Error` or `OOMKilled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(rename = "containerID", skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
}
/// One of `spec.schedulingGates`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PodSchedulingGate {
    pub name: String,
}

/// `PodScheduled`'s message for a pod that waits on its gates, as Kubernetes writes it.
pub const SCHEDULING_GATED_MESSAGE: &str =
    "Scheduling is blocked due to non-empty scheduling gates";

impl PodSpec {
    /// `SchedulingGated` while the pod lists gates, else `Unschedulable`: the reason of
    /// its `PodScheduled=False` condition.
    pub fn unscheduled_reason(&self) -> &'static str {
        if self.scheduling_gates.is_empty() {
            "Unschedulable"
        } else {
            "SchedulingGated"
        }
    }
}
