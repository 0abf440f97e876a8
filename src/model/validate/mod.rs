//! Validation of one untyped manifest document against the fields berth supports.
//!
//! A hand-written walk over `serde_json::Value` rather than serde's
//! `deny_unknown_fields`: serde stops at the first problem, while a user fixing a
//! manifest wants every problem, each with its Kubernetes field path.

mod autoscaler;
pub(in crate::model) mod checker;
mod claim;
mod config;
mod deployment;
mod disruption_budget;
mod env;
mod job;
mod node_affinity;
mod passive;
mod pod;
mod pod_affinity;
mod pod_dns;
mod pod_resources;
mod priority_class;
mod probe;
mod quota;
mod security;
mod service;
mod stateful_set;
mod volume;

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::model::names::{DNS1035_LABEL_RULE, DNS1123_LABEL_RULE, DNS1123_SUBDOMAIN_RULE};
use crate::model::pod_security::{PodSecurityLevel, LEVEL_LABELS};
use crate::model::{is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, FieldError, Kind};
use checker::{get, join, Checker, JsonObject};

/// Metadata fields the API server sets; accepted in manifests (they appear in `get -o
/// yaml` output that users re-apply) and dropped before the object is built.
pub(crate) const SERVER_SET_METADATA: [&str; 4] =
    ["uid", "resourceVersion", "generation", "creationTimestamp"];

/// Kubernetes keeps namespaces named `kube-*` for its own system. berth has the three
/// every cluster has ([`crate::model::SYSTEM_NAMESPACES`]), which manifests use (a
/// DaemonSet in `kube-system`), and refuses other such names.
const RESERVED_NAMESPACE_PREFIX: &str = "kube-";
const RESERVED_NAMESPACE: &str =
    "forbidden: names beginning with \"kube-\" are reserved for Kubernetes system namespaces";

fn reserved_namespace(name: &str) -> bool {
    name.starts_with(RESERVED_NAMESPACE_PREFIX) && !crate::model::SYSTEM_NAMESPACES.contains(&name)
}

/// The outcome of validating one document.
pub(crate) struct Checked {
    /// The kind, when the document names a supported one.
    pub(crate) kind: Option<Kind>,
    pub(crate) errors: Vec<FieldError>,
}

/// Checks one document (not a `List`) and returns every problem found.
pub(crate) fn validate_document(doc: &Value) -> Checked {
    let mut c = Checker::default();
    let kind = check_document(&mut c, doc);
    Checked {
        kind,
        errors: c.errors,
    }
}

fn check_document(c: &mut Checker, doc: &Value) -> Option<Kind> {
    let top = c.object(doc, "")?;

    let kind = match get(top, "kind") {
        None => {
            c.required("kind");
            None
        }
        Some(value) => {
            let name = c.string(value, "kind")?;
            let kind = Kind::from_kind_name(name);
            if kind.is_none() {
                // Without a known kind there is no schema to check the rest against.
                c.error("kind", format!("unsupported kind {name:?}"));
                return None;
            }
            kind
        }
    };

    let mut autoscaler_v1 = false;
    match get(top, "apiVersion") {
        None => c.required("apiVersion"),
        Some(value) => {
            if let (Some(version), Some(kind)) = (c.string(value, "apiVersion"), kind) {
                autoscaler_v1 =
                    kind == Kind::HorizontalPodAutoscaler && version == "autoscaling/v1";
                if version != kind.api_version() && !autoscaler_v1 {
                    c.error(
                        "apiVersion",
                        format!("unsupported apiVersion {version:?} for {kind}"),
                    );
                }
            }
        }
    }

    // `status` is accepted and ignored, as `kubectl apply` does. ConfigMaps, Secrets,
    // Endpoints and EndpointSlices carry their payload at the top level instead of a spec.
    let allowed: &[&str] = match kind {
        Some(Kind::ConfigMap) => &config::CONFIG_MAP_FIELDS,
        Some(Kind::Secret) => &config::SECRET_FIELDS,
        Some(Kind::Endpoints) => &service::ENDPOINTS_FIELDS,
        Some(Kind::EndpointSlice) => &service::ENDPOINT_SLICE_FIELDS,
        Some(Kind::ControllerRevision) => &["apiVersion", "kind", "metadata", "data", "revision"],
        Some(Kind::ServiceAccount) => &passive::SERVICE_ACCOUNT_FIELDS,
        Some(Kind::PriorityClass) => &priority_class::PRIORITY_CLASS_FIELDS,
        Some(
            Kind::Namespace
            | Kind::Pod
            | Kind::Deployment
            | Kind::ReplicaSet
            | Kind::ReplicationController
            | Kind::DaemonSet
            | Kind::StatefulSet
            | Kind::PersistentVolumeClaim
            | Kind::Service
            | Kind::ResourceQuota
            | Kind::LimitRange
            | Kind::Job
            | Kind::CronJob
            | Kind::Ingress
            | Kind::IngressClass
            | Kind::NetworkPolicy
            | Kind::HorizontalPodAutoscaler
            | Kind::PodDisruptionBudget,
        )
        | None => &["apiVersion", "kind", "metadata", "spec", "status"],
    };
    c.only_fields(top, "", allowed);
    let kind = kind?;
    check_metadata(c, top, kind);
    match kind {
        Kind::Namespace => check_namespace_spec(c, top),
        Kind::Pod => pod::check_pod_spec(c, get(top, "spec"), "spec", false),
        Kind::Deployment => deployment::check_deployment_spec(c, get(top, "spec")),
        Kind::ReplicaSet => deployment::check_replica_set_spec(c, get(top, "spec")),
        Kind::ReplicationController => {
            deployment::check_replication_controller_spec(c, get(top, "spec"))
        }
        Kind::DaemonSet => deployment::check_daemon_set_spec(c, get(top, "spec")),
        Kind::StatefulSet => stateful_set::check_stateful_set_spec(c, get(top, "spec")),
        // Revisions are the DaemonSet controller's record, not something to apply.
        Kind::ControllerRevision => c.error(
            "kind",
            "ControllerRevisions are made by the DaemonSet controller and cannot be applied",
        ),
        Kind::ConfigMap => config::check_config_map(c, top),
        Kind::Secret => config::check_secret(c, top),
        Kind::PersistentVolumeClaim => claim::check_claim_spec(c, get(top, "spec"), "spec"),
        Kind::Service => service::check_service_spec(c, get(top, "spec")),
        Kind::Endpoints => service::check_endpoints(c, top),
        Kind::EndpointSlice => service::check_endpoint_slice(c, top),
        Kind::ResourceQuota => quota::check_resource_quota_spec(c, get(top, "spec")),
        Kind::LimitRange => quota::check_limit_range_spec(c, get(top, "spec")),
        Kind::Job => job::check_job_spec(c, get(top, "spec"), "spec"),
        Kind::CronJob => job::check_cron_job_spec(c, get(top, "spec")),
        Kind::ServiceAccount => passive::check_service_account(c, top),
        Kind::Ingress => passive::check_ingress_spec(c, get(top, "spec")),
        Kind::IngressClass => passive::check_ingress_class_spec(c, get(top, "spec")),
        Kind::NetworkPolicy => passive::check_network_policy_spec(c, get(top, "spec")),
        Kind::PriorityClass => priority_class::check_priority_class(c, top),
        Kind::HorizontalPodAutoscaler => {
            autoscaler::check_autoscaler_spec(c, get(top, "spec"), autoscaler_v1)
        }
        Kind::PodDisruptionBudget => {
            disruption_budget::check_disruption_budget_spec(c, get(top, "spec"))
        }
    }
    Some(kind)
}

fn check_metadata(c: &mut Checker, top: &JsonObject, kind: Kind) {
    let empty = Map::new();
    let meta = match get(top, "metadata") {
        None => &empty,
        Some(value) => match c.object(value, "metadata") {
            Some(meta) => meta,
            None => return,
        },
    };
    let mut allowed = vec!["name", "namespace", "labels", "annotations"];
    allowed.extend(SERVER_SET_METADATA);
    c.only_fields(meta, "metadata", &allowed);

    match get(meta, "name").map(|v| c.string(v, "metadata.name")) {
        None | Some(Some("")) => c.required("metadata.name"),
        Some(None) => {}
        Some(Some(name)) => {
            // Namespace names become DNS labels, Service names DNS labels that start with
            // a letter (they also prefix environment variables); other names may be
            // subdomains.
            let (valid, rule) = match kind {
                Kind::Namespace => (is_dns1123_label(name), DNS1123_LABEL_RULE),
                Kind::Service => (is_dns1035_label(name), DNS1035_LABEL_RULE),
                Kind::Pod
                | Kind::Deployment
                | Kind::ReplicaSet
                | Kind::ReplicationController
                | Kind::DaemonSet
                | Kind::ControllerRevision
                | Kind::ConfigMap
                | Kind::Secret
                | Kind::PersistentVolumeClaim
                | Kind::Endpoints
                | Kind::EndpointSlice
                | Kind::ResourceQuota
                | Kind::LimitRange
                | Kind::Job
                | Kind::ServiceAccount
                | Kind::Ingress
                | Kind::IngressClass
                | Kind::NetworkPolicy
                | Kind::PriorityClass
                | Kind::HorizontalPodAutoscaler
                | Kind::PodDisruptionBudget => (is_dns1123_subdomain(name), DNS1123_SUBDOMAIN_RULE),
                // Its pods' names, with their ordinals, are their hostnames (DNS labels),
                // and its revisions' names must stay valid label values.
                Kind::StatefulSet => (
                    is_dns1123_label(name) && name.len() <= 52,
                    "a lowercase RFC 1123 label of at most 52 characters",
                ),
                // Its Jobs add 11 characters and must stay valid labels (job-name).
                Kind::CronJob => (
                    is_dns1123_subdomain(name) && name.len() <= 52,
                    "a lowercase RFC 1123 subdomain of at most 52 characters",
                ),
            };
            if !valid {
                c.error("metadata.name", format!("invalid name {name:?}: {rule}"));
            } else if kind == Kind::Namespace && reserved_namespace(name) {
                c.error("metadata.name", RESERVED_NAMESPACE);
            }
        }
    }
    if let Some(value) = get(meta, "namespace") {
        if let Some(namespace) = c.string(value, "metadata.namespace") {
            if !is_dns1123_label(namespace) {
                c.error(
                    "metadata.namespace",
                    format!("invalid name {namespace:?}: {DNS1123_LABEL_RULE}"),
                );
            } else if kind.namespaced() && reserved_namespace(namespace) {
                c.error("metadata.namespace", RESERVED_NAMESPACE);
            }
        }
    }
    if let Some(value) = get(meta, "labels") {
        let labels = c.labels(value, "metadata.labels");
        if kind == Kind::Namespace {
            check_pod_security_labels(c, &labels);
        }
    }
    if let Some(value) = get(meta, "annotations") {
        c.annotations(value, "metadata.annotations");
    }
}

/// A Namespace's Pod Security labels name levels; anything else would leave the
/// namespace's pods to a level nobody chose.
fn check_pod_security_labels(c: &mut Checker, labels: &BTreeMap<&str, &str>) {
    for key in LEVEL_LABELS {
        let Some(value) = labels.get(key) else {
            continue;
        };
        if PodSecurityLevel::parse(value).is_none() {
            let supported: Vec<String> = PodSecurityLevel::ALL
                .iter()
                .map(|level| format!("{:?}", level.as_str()))
                .collect();
            c.error(
                &join("metadata.labels", key),
                format!(
                    "unsupported value {value:?}: supported values: {}",
                    supported.join(", ")
                ),
            );
        }
    }
}

/// A Namespace has no spec berth uses; an empty one is tolerated.
fn check_namespace_spec(c: &mut Checker, top: &JsonObject) {
    if let Some(value) = get(top, "spec") {
        if let Some(spec) = c.object(value, "spec") {
            c.only_fields(spec, "spec", &[]);
        }
    }
}

/// Checks a `kind: List` wrapper (not its items) and returns the items.
pub(crate) fn check_list_wrapper(doc: &JsonObject) -> (Option<&[Value]>, Vec<FieldError>) {
    let mut c = Checker::default();
    c.only_fields(doc, "", &["apiVersion", "kind", "metadata", "items"]);
    match get(doc, "apiVersion") {
        None => c.required("apiVersion"),
        Some(value) => {
            if let Some(version) = c.string(value, "apiVersion") {
                if version != "v1" {
                    c.error(
                        "apiVersion",
                        format!("unsupported apiVersion {version:?} for List"),
                    );
                }
            }
        }
    }
    let items = match get(doc, "items") {
        None => Some(&[][..]),
        Some(value) => c.list(value, "items"),
    };
    (items, c.errors)
}

/// `items[3]` style path for an element of a `List`.
pub(crate) fn item_path(prefix: &str, i: usize) -> String {
    checker::index(&join(prefix, "items"), i)
}

#[cfg(test)]
mod tests;
