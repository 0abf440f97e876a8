//! What a user names on the command line: resource types (`pods`, `deploy`,
//! `pods,deployments`, `all`, `nodes`, `events`), `TYPE/NAME` arguments, and how kubectl writes
//! them back (`pod/web`, `deployment.apps "web" deleted`). Pure, apart from the
//! requests in [`Resource::list`].

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use serde_json::Value;

use super::{collection_path, object_path, GlobalOptions};
use crate::api::client::{ApiError, Client};
use crate::api::http::percent_encode;
use crate::model::Kind;

/// A type of object the API serves: a manifest kind, nodes (coordinator only), or
/// the events a daemon keeps in memory (never applied).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    Kind(Kind),
    Node,
    Event,
    /// The coordinators of a fleet (`berth get coordinators`).
    Coordinator,
}

/// What `all` means, in kubectl's order (pods, replicationcontrollers, services,
/// daemonsets, deployments, replicasets, ...) restricted to the kinds berth has.
pub const ALL: [Resource; 9] = [
    Resource::Kind(Kind::Pod),
    Resource::Kind(Kind::ReplicationController),
    Resource::Kind(Kind::Service),
    Resource::Kind(Kind::DaemonSet),
    Resource::Kind(Kind::Deployment),
    Resource::Kind(Kind::ReplicaSet),
    Resource::Kind(Kind::StatefulSet),
    Resource::Kind(Kind::CronJob),
    Resource::Kind(Kind::Job),
];

impl Resource {
    /// One type name as typed (`po`, `deployment.apps`, `Nodes`, ...).
    pub fn parse(s: &str) -> anyhow::Result<Resource> {
        match s.to_ascii_lowercase().as_str() {
            "node" | "nodes" | "no" => return Ok(Resource::Node),
            "event" | "events" | "ev" => return Ok(Resource::Event),
            "coordinator" | "coordinators" => return Ok(Resource::Coordinator),
            _ => {}
        }
        Kind::from_cli_name(s).map(Resource::Kind).ok_or_else(|| {
            anyhow!(
                "the server doesn't have a resource type {s:?} (known: pods, deployments, \
                 replicasets, replicationcontrollers, daemonsets, statefulsets, jobs, cronjobs, services, endpoints, endpointslices, namespaces, configmaps, secrets, priorityclasses, nodes, \
                 events, coordinators, all)"
            )
        })
    }

    /// A comma-separated list such as `pods,deployments` or `all`, without repeats.
    pub fn parse_list(s: &str) -> anyhow::Result<Vec<Resource>> {
        let mut resources = Vec::new();
        for part in s.split(',') {
            if part.is_empty() {
                bail!("invalid resource type list {s:?}: empty entry");
            }
            let parsed = if part.eq_ignore_ascii_case("all") {
                ALL.to_vec()
            } else {
                vec![Resource::parse(part)?]
            };
            for resource in parsed {
                if !resources.contains(&resource) {
                    resources.push(resource);
                }
            }
        }
        Ok(resources)
    }

    pub fn namespaced(self) -> bool {
        match self {
            Resource::Kind(kind) => kind.namespaced(),
            Resource::Node | Resource::Coordinator => false,
            Resource::Event => true,
        }
    }

    /// kubectl's name of the type in output: `pod`, `deployment.apps`, `node`.
    pub fn display(self) -> &'static str {
        match self {
            Resource::Kind(Kind::Pod) => "pod",
            Resource::Kind(Kind::Deployment) => "deployment.apps",
            Resource::Kind(Kind::ReplicaSet) => "replicaset.apps",
            Resource::Kind(Kind::ReplicationController) => "replicationcontroller",
            Resource::Kind(Kind::DaemonSet) => "daemonset.apps",
            Resource::Kind(Kind::StatefulSet) => "statefulset.apps",
            Resource::Kind(Kind::ServiceAccount) => "serviceaccount",
            Resource::Kind(Kind::Ingress) => "ingress.networking.k8s.io",
            Resource::Kind(Kind::IngressClass) => "ingressclass.networking.k8s.io",
            Resource::Kind(Kind::NetworkPolicy) => "networkpolicy.networking.k8s.io",
            Resource::Kind(Kind::HorizontalPodAutoscaler) => "horizontalpodautoscaler.autoscaling",
            Resource::Kind(Kind::PodDisruptionBudget) => "poddisruptionbudget.policy",
            Resource::Kind(Kind::ControllerRevision) => "controllerrevision.apps",
            Resource::Kind(Kind::Namespace) => "namespace",
            Resource::Kind(Kind::PriorityClass) => "priorityclass.scheduling.k8s.io",
            Resource::Kind(Kind::ConfigMap) => "configmap",
            Resource::Kind(Kind::Secret) => "secret",
            Resource::Kind(Kind::PersistentVolumeClaim) => "persistentvolumeclaim",
            Resource::Kind(Kind::Service) => "service",
            Resource::Kind(Kind::Endpoints) => "endpoints",
            Resource::Kind(Kind::EndpointSlice) => "endpointslice.discovery.k8s.io",
            Resource::Kind(Kind::ResourceQuota) => "resourcequota",
            Resource::Kind(Kind::LimitRange) => "limitrange",
            Resource::Kind(Kind::Job) => "job.batch",
            Resource::Kind(Kind::CronJob) => "cronjob.batch",
            Resource::Node => "node",
            Resource::Event => "event",
            Resource::Coordinator => "coordinator",
        }
    }

    /// The collection path, in `namespace` or across all (`None`).
    pub fn collection_path(self, namespace: Option<&str>) -> String {
        match self {
            Resource::Kind(kind) => collection_path(kind, namespace),
            Resource::Node => "/api/v1/nodes".to_owned(),
            Resource::Coordinator => "/apis/berth.dev/v1/coordinators".to_owned(),
            Resource::Event => match namespace {
                Some(ns) => format!("/api/v1/namespaces/{}/events", percent_encode(ns)),
                None => "/api/v1/events".to_owned(),
            },
        }
    }

    pub fn object_path(self, namespace: &str, name: &str) -> String {
        match self {
            Resource::Kind(kind) => object_path(kind, namespace, name),
            Resource::Node => format!("/api/v1/nodes/{}", percent_encode(name)),
            Resource::Coordinator => {
                format!("{}/{}", self.collection_path(None), percent_encode(name))
            }
            Resource::Event => format!(
                "{}/{}",
                self.collection_path(Some(namespace)),
                percent_encode(name)
            ),
        }
    }

    /// Lists the objects of this type the options name (namespace or `-A`, `-l`).
    pub fn list(self, client: &Client, global: &GlobalOptions) -> Result<Vec<Value>, ApiError> {
        let namespace = (!global.all_namespaces).then(|| global.namespace());
        let mut path = self.collection_path(namespace);
        if let Some(selector) = global.selector.as_deref().filter(|s| !s.is_empty()) {
            path.push_str(&format!("?labelSelector={}", percent_encode(selector)));
        }
        let (_, value) = client.request("GET", &path, None)?;
        Ok(value
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }
}

/// The objects named on a command line: types with the names given for them, in order.
#[derive(Debug, PartialEq, Eq)]
pub struct Targets {
    /// Each type once, in the order given, with its names (none: the whole collection).
    pub by_type: Vec<(Resource, Vec<String>)>,
    /// Several types were asked for (a list, `all`, or `TYPE/NAME`s of different types):
    /// kubectl then prefixes names with their type.
    pub several_types: bool,
}

impl Targets {
    /// `TYPE[,TYPE...] [NAME...]` or `TYPE/NAME...`, as kubectl reads them.
    pub fn parse(args: &[String]) -> anyhow::Result<Targets> {
        let Some(first) = args.first() else {
            bail!("you must specify the type of resource, e.g. pods, deployments, all");
        };
        if first.contains('/') {
            let mut by_type: Vec<(Resource, Vec<String>)> = Vec::new();
            for arg in args {
                let Some((kind, name)) = arg.split_once('/') else {
                    bail!(
                        "there is no need to specify a resource type as a separate argument \
                         when passing arguments in resource/name form (e.g. 'berth get \
                         resource/<resource_name>' instead of 'berth get resource \
                         resource/<resource_name>')"
                    );
                };
                if name.is_empty() || name.contains('/') {
                    bail!("invalid resource name {arg:?}: expected TYPE/NAME");
                }
                if kind.contains(',') || kind.eq_ignore_ascii_case("all") {
                    bail!("{arg:?}: TYPE/NAME takes a single type");
                }
                let resource = Resource::parse(kind)?;
                match by_type.iter_mut().find(|(r, _)| *r == resource) {
                    Some((_, names)) => names.push(name.to_owned()),
                    None => by_type.push((resource, vec![name.to_owned()])),
                }
            }
            let several_types = by_type.len() > 1;
            return Ok(Targets {
                by_type,
                several_types,
            });
        }
        let names = &args[1..];
        if let Some(bad) = names.iter().find(|n| n.contains('/')) {
            bail!(
                "there is no need to specify a resource type as a separate argument when \
                 passing arguments in resource/name form: {bad:?}"
            );
        }
        let resources = Resource::parse_list(first)?;
        let several_types = first.contains(',') || first.eq_ignore_ascii_case("all");
        let mut unique: Vec<String> = Vec::new();
        for name in names {
            if !unique.contains(name) {
                unique.push(name.clone());
            }
        }
        Ok(Targets {
            by_type: resources.into_iter().map(|r| (r, unique.clone())).collect(),
            several_types,
        })
    }

    pub fn has_names(&self) -> bool {
        self.by_type.iter().any(|(_, names)| !names.is_empty())
    }
}

/// kubectl's one-line form of a failed request: `Error from server (NotFound): ...`.
pub fn server_error_line(err: &ApiError) -> String {
    match err {
        ApiError::Status { code, message } => {
            format!("Error from server ({}): {message}", reason_for(*code))
        }
        other => format!("error: {other}"),
    }
}

/// The Kubernetes reason of an HTTP status, as kubectl shows it.
pub fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Gone",
        413 => "RequestEntityTooLarge",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

/// The `NAME` cell of a table: `web`, or `pod/web` when several types are shown.
pub fn name_cell(resource: Resource, name: &str, show_kind: bool) -> String {
    if show_kind {
        format!("{}/{name}", resource.display())
    } else {
        name.to_owned()
    }
}

/// Items grouped by type, each type in the order of `order`.
pub fn group_items(
    order: &[Resource],
    items: Vec<(Resource, Value)>,
) -> Vec<(Resource, Vec<Value>)> {
    let mut groups: BTreeMap<Resource, Vec<Value>> = BTreeMap::new();
    for (resource, item) in items {
        groups.entry(resource).or_default().push(item);
    }
    order
        .iter()
        .filter_map(|r| Some((*r, groups.remove(r)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn types_lists_and_all() {
        assert_eq!(
            Resource::parse_list("po,deploy").unwrap(),
            [Resource::Kind(Kind::Pod), Resource::Kind(Kind::Deployment)]
        );
        assert_eq!(Resource::parse_list("all").unwrap(), ALL);
        assert_eq!(
            Resource::parse_list("all,cm,pods,svc").unwrap(),
            [
                Resource::Kind(Kind::Pod),
                Resource::Kind(Kind::ReplicationController),
                Resource::Kind(Kind::Service),
                Resource::Kind(Kind::DaemonSet),
                Resource::Kind(Kind::Deployment),
                Resource::Kind(Kind::ReplicaSet),
                Resource::Kind(Kind::StatefulSet),
                Resource::Kind(Kind::CronJob),
                Resource::Kind(Kind::Job),
                Resource::Kind(Kind::ConfigMap)
            ]
        );
        assert_eq!(
            Resource::parse_list("ep,endpointslices").unwrap(),
            [
                Resource::Kind(Kind::Endpoints),
                Resource::Kind(Kind::EndpointSlice)
            ]
        );
        assert_eq!(
            Resource::parse_list("rs,replicaset.apps").unwrap(),
            [Resource::Kind(Kind::ReplicaSet)]
        );
        assert_eq!(
            Resource::parse_list("rc,replicationcontrollers").unwrap(),
            [Resource::Kind(Kind::ReplicationController)]
        );
        assert!(Resource::parse("replicationcontroller.apps").is_err());
        assert_eq!(Resource::parse_list("nodes").unwrap(), [Resource::Node]);
        assert_eq!(
            Resource::parse_list("ev,event,Events").unwrap(),
            [Resource::Event]
        );
        assert!(
            !Resource::parse_list("all")
                .unwrap()
                .contains(&Resource::Event),
            "events are not part of all"
        );
        assert_eq!(
            Resource::Event.collection_path(Some("prod")),
            "/api/v1/namespaces/prod/events"
        );
        assert_eq!(Resource::Event.collection_path(None), "/api/v1/events");
        assert_eq!(
            Resource::Event.object_path("prod", "web.17a"),
            "/api/v1/namespaces/prod/events/web.17a"
        );
        let err = Resource::parse_list("pods,frobs").unwrap_err().to_string();
        assert!(
            err.contains("doesn't have a resource type \"frobs\""),
            "{err}"
        );
        assert!(Resource::parse_list("pods,").is_err());
    }

    #[test]
    fn targets_by_type_and_name() {
        let t = Targets::parse(&args(&["pods", "a", "b", "a"])).unwrap();
        assert_eq!(t.by_type, [(Resource::Kind(Kind::Pod), args(&["a", "b"]))]);
        assert!(!t.several_types && t.has_names());

        let t = Targets::parse(&args(&["deployment,pod"])).unwrap();
        assert_eq!(t.by_type.len(), 2);
        assert!(t.several_types && !t.has_names());
        assert!(Targets::parse(&args(&["all"])).unwrap().several_types);

        let t = Targets::parse(&args(&["pod/a", "deploy/web", "po/b"])).unwrap();
        assert_eq!(
            t.by_type,
            [
                (Resource::Kind(Kind::Pod), args(&["a", "b"])),
                (Resource::Kind(Kind::Deployment), args(&["web"]))
            ]
        );
        assert!(t.several_types);
        assert!(!Targets::parse(&args(&["pod/a"])).unwrap().several_types);

        assert!(Targets::parse(&[]).is_err());
        assert!(Targets::parse(&args(&["pod/a", "b"])).is_err());
        assert!(Targets::parse(&args(&["pods", "pod/a"])).is_err());
        assert!(Targets::parse(&args(&["pod/"])).is_err());
        assert!(Targets::parse(&args(&["all/x"])).is_err());
    }

    #[test]
    fn kubectl_display_names_and_errors() {
        assert_eq!(
            name_cell(Resource::Kind(Kind::Deployment), "web", true),
            "deployment.apps/web"
        );
        assert_eq!(name_cell(Resource::Kind(Kind::Pod), "web", false), "web");
        assert_eq!(
            crate::cli::apply::display_name("EndpointSlice", "web-1"),
            "endpointslice.discovery.k8s.io/web-1"
        );
        assert_eq!(
            crate::cli::apply::display_name("Service", "web"),
            "service/web"
        );
        let err = ApiError::Status {
            code: 404,
            message: "pods \"x\" not found".into(),
        };
        assert_eq!(
            server_error_line(&err),
            "Error from server (NotFound): pods \"x\" not found"
        );
    }

    #[test]
    fn groups_follow_the_requested_order() {
        let pod = Resource::Kind(Kind::Pod);
        let deploy = Resource::Kind(Kind::Deployment);
        let groups = group_items(
            &[pod, deploy, Resource::Node],
            vec![
                (deploy, Value::from(1)),
                (pod, Value::from(2)),
                (deploy, Value::from(3)),
            ],
        );
        assert_eq!(
            groups,
            [
                (pod, vec![Value::from(2)]),
                (deploy, vec![Value::from(1), Value::from(3)])
            ]
        );
    }
}
