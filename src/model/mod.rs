//! Kubernetes-shaped manifest types and everything that can be decided about them without
//! touching the outside world: parsing (YAML or JSON, multi-document, `kind: List`),
//! validation that reports every problem with its field path, resource quantities,
//! DNS-1123 names, equality label selectors and a stable spec hash.
//!
//! This module is pure: no file, network or clock access. Callers read the bytes, and
//! callers decide the namespace default (`default` or the CLI's `-n`).
//!
//! Field names and defaults follow Kubernetes so that manifests written for a cluster
//! work here unchanged, and a field berth does not implement is rejected by name rather
//! than silently ignored.

pub mod admission;
pub mod base64;
mod board;
mod cidr;
mod claim;
mod config;
mod controller_revision;
mod cron;
mod cron_job;
mod daemon_set;
mod deployment;
mod duration;
mod env;
mod event;
mod hash;
pub mod hex;
mod job;
mod kind;
pub mod limit_range;
mod meta;
mod names;
mod namespace;
pub mod node_affinity;
mod node_labels;
mod parse;
mod passive;
mod platform;
mod pod;
mod pod_affinity;
mod pod_dns;
pub mod pod_security;
mod pod_template;
pub mod priority_class;
mod probe;
mod quantity;
pub mod quota_scope;
mod replica_set;
mod replication_controller;
pub mod resource_quota;
mod security;
mod selector;
mod service;
pub mod stateful_set;
mod validate;
mod volume;
mod warnings;
pub mod zone;

pub use board::{
    parse_board_profile, BoardProfile, BoardProfileError, CgroupNotes, DeviceHint, Platform,
    BOARD_PROFILE_API_VERSION, BOARD_PROFILE_KIND,
};
pub use cidr::{next_free_address, CidrError, Ipv4Cidr};
pub use claim::{
    claims_of, volume_name_for, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimStatus, VolumeResourceRequirements, ACCESS_MODES, LOCAL_PATH_CLASS,
    PHASE_BOUND, PHASE_PENDING, SELECTED_NODE_ANNOTATION, SHARED_ACCESS_MODES, STORAGE,
    UNBOUND_CLAIMS_MESSAGE,
};
pub use config::{
    docker_auths, docker_login, is_config_key, ConfigMap, RegistryLogin, Secret, DOCKER_CFG_KEY,
    DOCKER_CFG_TYPE, DOCKER_CONFIG_JSON_KEY, DOCKER_CONFIG_JSON_TYPE,
};
pub use controller_revision::{ControllerRevision, RevisionData, RevisionSpec};
pub use cron::{Schedule, ScheduleError};
pub use cron_job::{
    CronJob, CronJobSpec, CronJobStatus, JobTemplateSpec, DEFAULT_FAILED_HISTORY,
    DEFAULT_SUCCESSFUL_HISTORY,
};
pub use daemon_set::{
    DaemonSet, DaemonSetRollingUpdate, DaemonSetSpec, DaemonSetStatus, DaemonSetUpdateStrategy,
};
pub use deployment::{
    Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus, DeploymentStrategy,
    IntOrString, LabelSelector, PodTemplateSpec, RollingUpdate, DEFAULT_PROGRESS_DEADLINE_SECONDS,
    DEFAULT_REVISION_HISTORY_LIMIT,
};
pub use duration::{format_duration, parse_duration};
pub use env::{
    is_env_var_name, subscripted_field, EnvFromSource, EnvVarSource, KeySelector, NameSelector,
    ObjectFieldSelector, ResourceFieldSelector, ENV_FIELD_PATHS, RESOURCE_FIELDS,
    VOLUME_FIELD_PATHS,
};
pub use event::{Event, EventObjectReference, EventSource, EventType};
pub use hash::{pod_template_hash, spec_hash};
pub use job::{
    ExitCodeOperator, Job, JobCondition, JobSpec, JobStatus, OnExitCodes, OnPodCondition,
    PodFailurePolicy, PodFailurePolicyAction, PodFailurePolicyRule, SuccessPolicy,
    SuccessPolicyRule, DEFAULT_BACKOFF_LIMIT,
};
pub use kind::Kind;
pub use limit_range::{LimitRange, LimitRangeItem, LimitRangeSpec};
pub use meta::{ObjectMeta, OwnerReference};
pub use names::{
    is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, is_iana_svc_name, validate_label_key,
    validate_label_value, validate_qualified_name,
};
pub use namespace::{Namespace, NamespaceStatus, SYSTEM_NAMESPACES};
pub use node_affinity::{
    affinity_matches, node_fits, preference_score, tolerated_by_any, tolerates, Affinity,
    NodeAffinity, NodeSelector, NodeSelectorOperator, NodeSelectorTerm, PreferredSchedulingTerm,
    Requirement, Taint, Toleration, TolerationOperator,
};
pub use node_labels::{labels_forbidden_to_nodes, node_may_set_label, NODE_RESTRICTION_PREFIX};
pub use parse::{parse_manifests, DocumentErrors, FieldError, ManifestError};
pub use passive::Passive;
pub use platform::{build_platform, target_platform, ARCH_VARIANT_LABEL};
pub use pod::{
    Container, ContainerPort, ContainerResizePolicy, ContainerState, ContainerStatus, EnvVar,
    LocalObjectReference, Pod, PodCondition, PodIp, PodSchedulingGate, PodSpec, PodStatus,
    ResourceRequirements, StateRunning, StateTerminated, StateWaiting,
    DEFAULT_TERMINATION_MESSAGE_PATH, POD_LEVEL_RESOURCES, SCHEDULING_GATED_MESSAGE,
};
pub use pod_affinity::{
    PodAffinity, PodAffinityTerm, PodSelector, TopologySpreadConstraint, WeightedPodAffinityTerm,
};
pub use pod_dns::{HostAlias, PodDnsConfig, PodDnsConfigOption, DEFAULT_DNS_POLICY, DNS_POLICIES};
pub use pod_security::{
    check_pod_spec, forbidden_message, violations_summary, PodSecurityLevel, Violation,
    ENFORCE_LABEL,
};
pub use pod_template::PodTemplateRef;
pub use priority_class::PriorityClass;
pub use probe::{
    resolve_port, ExecAction, HttpGetAction, HttpHeader, Lifecycle, LifecycleHandler, Probe,
    TcpSocketAction,
};
pub use quantity::{
    is_extended_resource, is_quantity, parse_count, parse_cpu_millis, parse_memory_bytes,
    same_quantity, MAX_CPU_MILLIS, MAX_MEMORY_BYTES,
};
pub use replica_set::{ReplicaSet, ReplicaSetSpec, ReplicaSetStatus};
pub use replication_controller::{ReplicationController, ReplicationControllerSpec};
pub use resource_quota::{ResourceQuota, ResourceQuotaSpec, ResourceQuotaStatus};
pub use security::{
    capability_name, effective_capabilities, effective_security_context, AppArmorProfile,
    Capabilities, PodSecurityContext, SeccompProfile, SecurityContext, ALL_CAPABILITIES,
    DEFAULT_CAPABILITIES, SECCOMP_LOCALHOST, SECCOMP_RUNTIME_DEFAULT, SUPPLEMENTAL_GROUPS_STRICT,
};
pub use selector::{parse_selector, selector_matches};
pub use service::{
    cluster_dns_address, default_service_cidr, Endpoint, EndpointAddress, EndpointConditions,
    EndpointPort, EndpointSlice, EndpointSubset, Endpoints, LoadBalancerStatus, ObjectReference,
    Protocol, Service, ServicePort, ServiceSpec, ServiceStatus, ServiceType, CLUSTER_DNS_INDEX,
    CLUSTER_IP_NONE, DEFAULT_NODE_PORT_RANGE, DEFAULT_SERVICE_CIDR, DEFAULT_SERVICE_CIDR_PREFIX,
    KUBERNETES_SERVICE_INDEX, SERVICE_NAME_LABEL,
};
pub use stateful_set::{
    Ordinals, RetentionPolicy, StatefulSet, StatefulSetRollingUpdate, StatefulSetSpec,
    StatefulSetStatus, StatefulSetUpdateStrategy,
};
pub use warnings::warnings;
pub use zone::Zone;

pub use volume::{
    octal_mode, ConfigMapProjection, ConfigMapVolumeSource, DownwardApiProjection,
    DownwardApiVolumeFile, DownwardApiVolumeSource, EmptyDirVolumeSource, HostPathVolumeSource,
    KeyToPath, PersistentVolumeClaimVolumeSource, ProjectedVolumeSource, SecretVolumeSource,
    Volume, VolumeMount, VolumeProjection, DEFAULT_FILE_MODE, HOST_PATH_TYPES, MOUNT_PROPAGATIONS,
};

use serde::Serialize;
use serde_json::Value;

/// One object of any supported kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    Namespace(Namespace),
    Pod(Pod),
    Deployment(Deployment),
    ReplicaSet(ReplicaSet),
    ReplicationController(ReplicationController),
    DaemonSet(DaemonSet),
    StatefulSet(StatefulSet),
    ControllerRevision(ControllerRevision),
    ConfigMap(ConfigMap),
    Secret(Secret),
    PersistentVolumeClaim(PersistentVolumeClaim),
    Service(Service),
    Endpoints(Endpoints),
    EndpointSlice(EndpointSlice),
    ResourceQuota(ResourceQuota),
    LimitRange(LimitRange),
    Job(Job),
    /// Boxed: the largest kind by far (a Job spec inside its own).
    CronJob(Box<CronJob>),
    PriorityClass(PriorityClass),
    /// A kind berth stores and shows but does not act on (`model::passive`).
    Passive(Box<Passive>),
}

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::Namespace(_) => Kind::Namespace,
            Object::Pod(_) => Kind::Pod,
            Object::Deployment(_) => Kind::Deployment,
            Object::ReplicaSet(_) => Kind::ReplicaSet,
            Object::ReplicationController(_) => Kind::ReplicationController,
            Object::DaemonSet(_) => Kind::DaemonSet,
            Object::StatefulSet(_) => Kind::StatefulSet,
            Object::ControllerRevision(_) => Kind::ControllerRevision,
            Object::ConfigMap(_) => Kind::ConfigMap,
            Object::Secret(_) => Kind::Secret,
            Object::PersistentVolumeClaim(_) => Kind::PersistentVolumeClaim,
            Object::Service(_) => Kind::Service,
            Object::Endpoints(_) => Kind::Endpoints,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
            Object::ResourceQuota(_) => Kind::ResourceQuota,
            Object::LimitRange(_) => Kind::LimitRange,
            Object::Job(_) => Kind::Job,
            Object::CronJob(_) => Kind::CronJob,
            Object::PriorityClass(_) => Kind::PriorityClass,
            Object::Passive(o) => o.kind,
        }
    }

    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Object::Namespace(o) => &o.metadata,
            Object::Pod(o) => &o.metadata,
            Object::Deployment(o) => &o.metadata,
            Object::ReplicaSet(o) => &o.metadata,
            Object::ReplicationController(o) => &o.metadata,
            Object::DaemonSet(o) => &o.metadata,
            Object::StatefulSet(o) => &o.metadata,
            Object::ControllerRevision(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::PersistentVolumeClaim(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::Endpoints(o) => &o.metadata,
            Object::EndpointSlice(o) => &o.metadata,
            Object::ResourceQuota(o) => &o.metadata,
            Object::LimitRange(o) => &o.metadata,
            Object::Job(o) => &o.metadata,
            Object::CronJob(o) => &o.metadata,
            Object::PriorityClass(o) => &o.metadata,
            Object::Passive(o) => &o.metadata,
        }
    }

    pub fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Object::Namespace(o) => &mut o.metadata,
            Object::Pod(o) => &mut o.metadata,
            Object::Deployment(o) => &mut o.metadata,
            Object::ReplicaSet(o) => &mut o.metadata,
            Object::ReplicationController(o) => &mut o.metadata,
            Object::DaemonSet(o) => &mut o.metadata,
            Object::StatefulSet(o) => &mut o.metadata,
            Object::ControllerRevision(o) => &mut o.metadata,
            Object::ConfigMap(o) => &mut o.metadata,
            Object::Secret(o) => &mut o.metadata,
            Object::PersistentVolumeClaim(o) => &mut o.metadata,
            Object::Service(o) => &mut o.metadata,
            Object::Endpoints(o) => &mut o.metadata,
            Object::EndpointSlice(o) => &mut o.metadata,
            Object::ResourceQuota(o) => &mut o.metadata,
            Object::LimitRange(o) => &mut o.metadata,
            Object::Job(o) => &mut o.metadata,
            Object::CronJob(o) => &mut o.metadata,
            Object::PriorityClass(o) => &mut o.metadata,
            Object::Passive(o) => &mut o.metadata,
        }
    }

    /// `Kind/name`, the way kubectl names an object in messages.
    pub fn display_name(&self) -> String {
        format!("{}/{}", self.kind().as_str(), self.meta().name)
    }

    /// The full Kubernetes JSON form, with `apiVersion` and `kind`; `status` appears only
    /// when it holds something.
    pub fn to_json(&self) -> Value {
        let mut value = match self {
            Object::Namespace(o) => to_value(o),
            Object::Pod(o) => to_value(o),
            Object::Deployment(o) => to_value(o),
            Object::ReplicaSet(o) => to_value(o),
            Object::ReplicationController(o) => to_value(o),
            Object::DaemonSet(o) => to_value(o),
            Object::StatefulSet(o) => to_value(o),
            Object::ControllerRevision(o) => to_value(o),
            Object::ConfigMap(o) => to_value(o),
            Object::Secret(o) => to_value(o),
            Object::PersistentVolumeClaim(o) => to_value(o),
            Object::Service(o) => to_value(o),
            Object::Endpoints(o) => to_value(o),
            Object::EndpointSlice(o) => to_value(o),
            Object::ResourceQuota(o) => to_value(o),
            Object::LimitRange(o) => to_value(o),
            Object::Job(o) => to_value(o),
            Object::CronJob(o) => to_value(o),
            Object::PriorityClass(o) => to_value(o),
            Object::Passive(o) => o.to_value(),
        };
        if let Value::Object(map) = &mut value {
            let kind = self.kind();
            map.insert("apiVersion".into(), Value::from(kind.api_version()));
            map.insert("kind".into(), Value::from(kind.as_str()));
        }
        value
    }

    /// Rebuilds an object from JSON that berth wrote itself (e.g. read back from the
    /// store). Untrusted manifests go through [`parse_manifests`] instead, which
    /// validates every field.
    pub fn from_json(value: Value) -> Result<Object, String> {
        let kind_name = value
            .get("kind")
            .and_then(Value::as_str)
            .ok_or_else(|| "object has no kind".to_string())?;
        let kind = Kind::from_kind_name(kind_name)
            .ok_or_else(|| format!("unsupported kind {kind_name:?}"))?;
        let result = match kind {
            Kind::Namespace => serde_json::from_value(value).map(Object::Namespace),
            Kind::Pod => serde_json::from_value(value).map(Object::Pod),
            Kind::Deployment => serde_json::from_value(value).map(Object::Deployment),
            Kind::ReplicaSet => serde_json::from_value(value).map(Object::ReplicaSet),
            Kind::ReplicationController => {
                serde_json::from_value(value).map(Object::ReplicationController)
            }
            Kind::DaemonSet => serde_json::from_value(value).map(Object::DaemonSet),
            Kind::StatefulSet => serde_json::from_value(value).map(Object::StatefulSet),
            Kind::ControllerRevision => {
                serde_json::from_value(value).map(Object::ControllerRevision)
            }
            Kind::ConfigMap => serde_json::from_value(value).map(Object::ConfigMap),
            Kind::Secret => serde_json::from_value(value).map(Object::Secret),
            Kind::PersistentVolumeClaim => {
                serde_json::from_value(value).map(Object::PersistentVolumeClaim)
            }
            Kind::Service => serde_json::from_value(value).map(Object::Service),
            Kind::Endpoints => serde_json::from_value(value).map(Object::Endpoints),
            Kind::EndpointSlice => serde_json::from_value(value).map(Object::EndpointSlice),
            Kind::ResourceQuota => serde_json::from_value(value).map(Object::ResourceQuota),
            Kind::LimitRange => serde_json::from_value(value).map(Object::LimitRange),
            Kind::Job => serde_json::from_value(value).map(Object::Job),
            Kind::CronJob => serde_json::from_value(value).map(|c| Object::CronJob(Box::new(c))),
            Kind::PriorityClass => serde_json::from_value(value).map(Object::PriorityClass),
            Kind::ServiceAccount
            | Kind::Ingress
            | Kind::IngressClass
            | Kind::NetworkPolicy
            | Kind::HorizontalPodAutoscaler
            | Kind::PodDisruptionBudget => {
                return Passive::from_json(kind, value)
                    .map(|o| Object::Passive(Box::new(o)))
                    .map_err(|e| format!("invalid {} object: {e}", kind.as_str()));
            }
        };
        result.map_err(|e| format!("invalid {} object: {e}", kind.as_str()))
    }
}

/// Serializes one of our own types. They contain only strings, numbers and maps with
/// string keys, which serde_json always accepts, so there is no error to report.
fn to_value<T: Serialize>(item: &T) -> Value {
    serde_json::to_value(item).expect("model types always serialize to JSON")
}

/// A label map from pairs, for tests.
#[cfg(test)]
pub(crate) fn test_labels(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Used by `skip_serializing_if` so that empty status blocks and zero values stay out of
/// the JSON, as the Kubernetes API server does.
pub(crate) fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped examples must always validate (this also runs under qemu for aarch64).
    #[test]
    fn shipped_examples_validate() {
        let objects = parse_manifests(include_str!("../../examples/hello.yaml"))
            .unwrap_or_else(|e| panic!("examples/hello.yaml: {e}"));
        let kinds: Vec<Kind> = objects.iter().map(Object::kind).collect();
        assert_eq!(kinds, [Kind::Deployment, Kind::Service]);
    }

    #[test]
    fn cli_names_resolve_like_kubectl() {
        assert_eq!(Kind::from_cli_name("po"), Some(Kind::Pod));
        assert_eq!(Kind::from_cli_name("Pods"), Some(Kind::Pod));
        assert_eq!(Kind::from_cli_name("deploy"), Some(Kind::Deployment));
        assert_eq!(
            Kind::from_cli_name("deployment.apps"),
            Some(Kind::Deployment)
        );
        assert_eq!(Kind::from_cli_name("NS"), Some(Kind::Namespace));
        assert_eq!(Kind::from_cli_name("pod.apps"), None);
        assert_eq!(Kind::from_cli_name("svc"), Some(Kind::Service));
        assert_eq!(Kind::from_cli_name("Services"), Some(Kind::Service));
        assert_eq!(Kind::from_cli_name("ep"), Some(Kind::Endpoints));
        assert_eq!(
            Kind::from_cli_name("endpointslices"),
            Some(Kind::EndpointSlice)
        );
        assert_eq!(
            Kind::from_cli_name("endpointslice.discovery.k8s.io"),
            Some(Kind::EndpointSlice)
        );
        assert_eq!(Kind::from_cli_name("svc.apps"), None);
        assert_eq!(Kind::EndpointSlice.api_version(), "discovery.k8s.io/v1");
        assert_eq!(Kind::Endpoints.plural(), "endpoints");
        assert_eq!(Kind::from_cli_name("cm"), Some(Kind::ConfigMap));
        assert_eq!(Kind::from_cli_name("Secrets"), Some(Kind::Secret));
        assert_eq!(
            Kind::from_cli_name("pvc"),
            Some(Kind::PersistentVolumeClaim)
        );
        assert_eq!(
            Kind::PersistentVolumeClaim.plural(),
            "persistentvolumeclaims"
        );
        assert_eq!(Kind::from_kind_name("Deployment"), Some(Kind::Deployment));
        assert_eq!(Kind::from_kind_name("deployment"), None);
        assert_eq!(Kind::Deployment.api_version(), "apps/v1");
        assert_eq!(Kind::Namespace.plural(), "namespaces");
        assert!(!Kind::Namespace.namespaced());
        assert!(Kind::Pod.namespaced());
        assert_eq!(Kind::from_cli_name("quota"), Some(Kind::ResourceQuota));
        assert_eq!(Kind::from_cli_name("limits"), Some(Kind::LimitRange));
        assert_eq!(Kind::LimitRange.plural(), "limitranges");
        assert_eq!(Kind::ResourceQuota.api_version(), "v1");
        assert_eq!(Kind::from_cli_name("rc"), Some(Kind::ReplicationController));
        assert_eq!(Kind::from_cli_name("rc.apps"), None);
        assert_eq!(Kind::ReplicationController.api_version(), "v1");
        assert_eq!(
            Kind::ReplicationController.plural(),
            "replicationcontrollers"
        );
        assert_eq!(Kind::from_cli_name("pc"), Some(Kind::PriorityClass));
        assert_eq!(
            Kind::from_cli_name("priorityclasses.scheduling.k8s.io"),
            Some(Kind::PriorityClass)
        );
        assert_eq!(Kind::PriorityClass.api_version(), "scheduling.k8s.io/v1");
        assert!(!Kind::PriorityClass.namespaced());
    }

    #[test]
    fn from_json_rejects_unknown_kind() {
        let err = Object::from_json(serde_json::json!({"kind": "Gateway"})).unwrap_err();
        assert!(err.contains("Gateway"), "{err}");
        assert!(Object::from_json(serde_json::json!({})).is_err());
    }
}
