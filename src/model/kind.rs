//! The kinds of object berth understands and their names in manifests, API paths and
//! on the command line.

/// The kinds of object berth understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Namespace,
    Pod,
    Deployment,
    ReplicaSet,
    ReplicationController,
    DaemonSet,
    StatefulSet,
    ControllerRevision,
    ConfigMap,
    Secret,
    PersistentVolumeClaim,
    Service,
    Endpoints,
    EndpointSlice,
    ResourceQuota,
    LimitRange,
    Job,
    CronJob,
    ServiceAccount,
    Ingress,
    IngressClass,
    NetworkPolicy,
    PriorityClass,
    HorizontalPodAutoscaler,
    PodDisruptionBudget,
}

impl Kind {
    /// Every supported kind, in the order objects should be applied: namespaces first,
    /// then what governs what may be created in them, then what pods consume, then
    /// Services and their endpoints, then what creates pods.
    pub const ALL: [Kind; 25] = [
        Kind::Namespace,
        Kind::PriorityClass,
        Kind::IngressClass,
        Kind::ResourceQuota,
        Kind::LimitRange,
        Kind::ServiceAccount,
        Kind::ConfigMap,
        Kind::Secret,
        Kind::PersistentVolumeClaim,
        Kind::Service,
        Kind::Endpoints,
        Kind::EndpointSlice,
        Kind::Ingress,
        Kind::NetworkPolicy,
        Kind::Deployment,
        Kind::ReplicaSet,
        Kind::ReplicationController,
        Kind::DaemonSet,
        Kind::StatefulSet,
        Kind::ControllerRevision,
        Kind::HorizontalPodAutoscaler,
        Kind::PodDisruptionBudget,
        Kind::CronJob,
        Kind::Job,
        Kind::Pod,
    ];

    /// The Kubernetes `kind` string.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Pod => "Pod",
            Kind::Deployment => "Deployment",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::ReplicationController => "ReplicationController",
            Kind::DaemonSet => "DaemonSet",
            Kind::StatefulSet => "StatefulSet",
            Kind::ControllerRevision => "ControllerRevision",
            Kind::ConfigMap => "ConfigMap",
            Kind::Secret => "Secret",
            Kind::PersistentVolumeClaim => "PersistentVolumeClaim",
            Kind::Service => "Service",
            Kind::Endpoints => "Endpoints",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::ResourceQuota => "ResourceQuota",
            Kind::LimitRange => "LimitRange",
            Kind::Job => "Job",
            Kind::CronJob => "CronJob",
            Kind::ServiceAccount => "ServiceAccount",
            Kind::Ingress => "Ingress",
            Kind::IngressClass => "IngressClass",
            Kind::NetworkPolicy => "NetworkPolicy",
            Kind::PriorityClass => "PriorityClass",
            Kind::HorizontalPodAutoscaler => "HorizontalPodAutoscaler",
            Kind::PodDisruptionBudget => "PodDisruptionBudget",
        }
    }

    /// The `apiVersion` objects of this kind are stored and served in (a
    /// HorizontalPodAutoscaler is also accepted as `autoscaling/v1` and converted).
    pub fn api_version(&self) -> &'static str {
        match self {
            Kind::Namespace
            | Kind::Pod
            | Kind::ConfigMap
            | Kind::Secret
            | Kind::PersistentVolumeClaim
            | Kind::Service
            | Kind::Endpoints
            | Kind::ResourceQuota
            | Kind::LimitRange
            | Kind::ReplicationController
            | Kind::ServiceAccount => "v1",
            Kind::Deployment
            | Kind::ReplicaSet
            | Kind::DaemonSet
            | Kind::StatefulSet
            | Kind::ControllerRevision => "apps/v1",
            Kind::EndpointSlice => "discovery.k8s.io/v1",
            Kind::Job | Kind::CronJob => "batch/v1",
            Kind::Ingress | Kind::IngressClass | Kind::NetworkPolicy => "networking.k8s.io/v1",
            Kind::PriorityClass => "scheduling.k8s.io/v1",
            Kind::HorizontalPodAutoscaler => "autoscaling/v2",
            Kind::PodDisruptionBudget => "policy/v1",
        }
    }

    /// The lowercase plural used in API paths and by `kubectl get`.
    pub fn plural(&self) -> &'static str {
        match self {
            Kind::Namespace => "namespaces",
            Kind::Pod => "pods",
            Kind::Deployment => "deployments",
            Kind::ReplicaSet => "replicasets",
            Kind::ReplicationController => "replicationcontrollers",
            Kind::DaemonSet => "daemonsets",
            Kind::StatefulSet => "statefulsets",
            Kind::ControllerRevision => "controllerrevisions",
            Kind::ConfigMap => "configmaps",
            Kind::Secret => "secrets",
            Kind::PersistentVolumeClaim => "persistentvolumeclaims",
            Kind::Service => "services",
            Kind::Endpoints => "endpoints",
            Kind::EndpointSlice => "endpointslices",
            Kind::ResourceQuota => "resourcequotas",
            Kind::LimitRange => "limitranges",
            Kind::Job => "jobs",
            Kind::CronJob => "cronjobs",
            Kind::ServiceAccount => "serviceaccounts",
            Kind::Ingress => "ingresses",
            Kind::IngressClass => "ingressclasses",
            Kind::NetworkPolicy => "networkpolicies",
            Kind::PriorityClass => "priorityclasses",
            Kind::HorizontalPodAutoscaler => "horizontalpodautoscalers",
            Kind::PodDisruptionBudget => "poddisruptionbudgets",
        }
    }

    /// Whether objects of this kind live inside a namespace.
    pub fn namespaced(&self) -> bool {
        match self {
            Kind::Namespace | Kind::IngressClass | Kind::PriorityClass => false,
            Kind::Pod
            | Kind::Deployment
            | Kind::ReplicaSet
            | Kind::ReplicationController
            | Kind::DaemonSet
            | Kind::StatefulSet
            | Kind::ControllerRevision
            | Kind::ConfigMap
            | Kind::Secret
            | Kind::PersistentVolumeClaim
            | Kind::Service
            | Kind::Endpoints
            | Kind::EndpointSlice
            | Kind::ResourceQuota
            | Kind::LimitRange
            | Kind::Job
            | Kind::CronJob
            | Kind::ServiceAccount
            | Kind::Ingress
            | Kind::NetworkPolicy
            | Kind::HorizontalPodAutoscaler
            | Kind::PodDisruptionBudget => true,
        }
    }

    /// Resolves what a user types on the command line (`po`, `deploy`,
    /// `deployment.apps`, `Namespaces`, ...), case-insensitively.
    pub fn from_cli_name(s: &str) -> Option<Kind> {
        let lower = s.to_ascii_lowercase();
        // `deployment.apps` names the API group explicitly, as kubectl allows.
        if let Some(base) = lower.strip_suffix(".apps") {
            return match base {
                "deployment" | "deployments" | "deploy" => Some(Kind::Deployment),
                "replicaset" | "replicasets" | "rs" => Some(Kind::ReplicaSet),
                "daemonset" | "daemonsets" | "ds" => Some(Kind::DaemonSet),
                "statefulset" | "statefulsets" | "sts" => Some(Kind::StatefulSet),
                "controllerrevision" | "controllerrevisions" => Some(Kind::ControllerRevision),
                _ => None,
            };
        }
        if let Some(base) = lower.strip_suffix(".batch") {
            return match base {
                "job" | "jobs" => Some(Kind::Job),
                "cronjob" | "cronjobs" | "cj" => Some(Kind::CronJob),
                _ => None,
            };
        }
        if let Some(base) = lower.strip_suffix(".networking.k8s.io") {
            return match base {
                "ingress" | "ingresses" | "ing" => Some(Kind::Ingress),
                "ingressclass" | "ingressclasses" => Some(Kind::IngressClass),
                "networkpolicy" | "networkpolicies" | "netpol" => Some(Kind::NetworkPolicy),
                _ => None,
            };
        }
        if let Some(base) = lower.strip_suffix(".scheduling.k8s.io") {
            return match base {
                "priorityclass" | "priorityclasses" | "pc" => Some(Kind::PriorityClass),
                _ => None,
            };
        }
        if let Some(base) = lower.strip_suffix(".autoscaling") {
            return match base {
                "horizontalpodautoscaler" | "horizontalpodautoscalers" | "hpa" => {
                    Some(Kind::HorizontalPodAutoscaler)
                }
                _ => None,
            };
        }
        if let Some(base) = lower.strip_suffix(".policy") {
            return match base {
                "poddisruptionbudget" | "poddisruptionbudgets" | "pdb" => {
                    Some(Kind::PodDisruptionBudget)
                }
                _ => None,
            };
        }
        if let Some(base) = lower.strip_suffix(".discovery.k8s.io") {
            return match base {
                "endpointslice" | "endpointslices" => Some(Kind::EndpointSlice),
                _ => None,
            };
        }
        match lower.as_str() {
            "pod" | "pods" | "po" => Some(Kind::Pod),
            "deployment" | "deployments" | "deploy" => Some(Kind::Deployment),
            "replicaset" | "replicasets" | "rs" => Some(Kind::ReplicaSet),
            "daemonset" | "daemonsets" | "ds" => Some(Kind::DaemonSet),
            "statefulset" | "statefulsets" | "sts" => Some(Kind::StatefulSet),
            "controllerrevision" | "controllerrevisions" => Some(Kind::ControllerRevision),
            "replicationcontroller" | "replicationcontrollers" | "rc" => {
                Some(Kind::ReplicationController)
            }
            "namespace" | "namespaces" | "ns" => Some(Kind::Namespace),
            "configmap" | "configmaps" | "cm" => Some(Kind::ConfigMap),
            "secret" | "secrets" => Some(Kind::Secret),
            "persistentvolumeclaim" | "persistentvolumeclaims" | "pvc" => {
                Some(Kind::PersistentVolumeClaim)
            }
            "service" | "services" | "svc" => Some(Kind::Service),
            "endpoints" | "ep" => Some(Kind::Endpoints),
            "endpointslice" | "endpointslices" => Some(Kind::EndpointSlice),
            "resourcequota" | "resourcequotas" | "quota" => Some(Kind::ResourceQuota),
            "limitrange" | "limitranges" | "limits" => Some(Kind::LimitRange),
            "job" | "jobs" => Some(Kind::Job),
            "cronjob" | "cronjobs" | "cj" => Some(Kind::CronJob),
            "serviceaccount" | "serviceaccounts" | "sa" => Some(Kind::ServiceAccount),
            "ingress" | "ingresses" | "ing" => Some(Kind::Ingress),
            "ingressclass" | "ingressclasses" => Some(Kind::IngressClass),
            "networkpolicy" | "networkpolicies" | "netpol" => Some(Kind::NetworkPolicy),
            "priorityclass" | "priorityclasses" | "pc" => Some(Kind::PriorityClass),
            "horizontalpodautoscaler" | "horizontalpodautoscalers" | "hpa" => {
                Some(Kind::HorizontalPodAutoscaler)
            }
            "poddisruptionbudget" | "poddisruptionbudgets" | "pdb" => {
                Some(Kind::PodDisruptionBudget)
            }
            _ => None,
        }
    }

    /// Resolves the exact Kubernetes `kind` string found in a manifest.
    pub fn from_kind_name(s: &str) -> Option<Kind> {
        match s {
            "Namespace" => Some(Kind::Namespace),
            "Pod" => Some(Kind::Pod),
            "Deployment" => Some(Kind::Deployment),
            "ReplicaSet" => Some(Kind::ReplicaSet),
            "ReplicationController" => Some(Kind::ReplicationController),
            "DaemonSet" => Some(Kind::DaemonSet),
            "StatefulSet" => Some(Kind::StatefulSet),
            "ControllerRevision" => Some(Kind::ControllerRevision),
            "ConfigMap" => Some(Kind::ConfigMap),
            "Secret" => Some(Kind::Secret),
            "PersistentVolumeClaim" => Some(Kind::PersistentVolumeClaim),
            "Service" => Some(Kind::Service),
            "Endpoints" => Some(Kind::Endpoints),
            "EndpointSlice" => Some(Kind::EndpointSlice),
            "ResourceQuota" => Some(Kind::ResourceQuota),
            "LimitRange" => Some(Kind::LimitRange),
            "Job" => Some(Kind::Job),
            "CronJob" => Some(Kind::CronJob),
            "ServiceAccount" => Some(Kind::ServiceAccount),
            "Ingress" => Some(Kind::Ingress),
            "IngressClass" => Some(Kind::IngressClass),
            "NetworkPolicy" => Some(Kind::NetworkPolicy),
            "PriorityClass" => Some(Kind::PriorityClass),
            "HorizontalPodAutoscaler" => Some(Kind::HorizontalPodAutoscaler),
            "PodDisruptionBudget" => Some(Kind::PodDisruptionBudget),
            _ => None,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
