//! Service (v1), Endpoints (v1) and EndpointSlice (discovery.k8s.io/v1): a stable name
//! and virtual address for a set of pods, and the addresses behind it.
//!
//! Only the shapes, defaults and the few facts others derive from them live here. What
//! is valid is `validate/service.rs`; handing out cluster IPs and node ports at admission
//! is `api::services`, since it needs the store. Berth's service network is IPv4 and
//! single-stack, so `ipFamilies`/`ipFamilyPolicy` are defaulted to what that means.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::model::{IntOrString, Ipv4Cidr, ObjectMeta};

/// The label that ties an EndpointSlice to the Service it serves.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// `spec.clusterIP` of a headless Service: no virtual address, DNS names the pods.
pub const CLUSTER_IP_NONE: &str = "None";
/// k3s' default service network (`--service-cidr`).
pub const DEFAULT_SERVICE_CIDR: Ipv4Addr = Ipv4Addr::new(10, 43, 0, 0);
pub const DEFAULT_SERVICE_CIDR_PREFIX: u8 = 16;
/// Kubernetes' default node port range (`--service-node-port-range`), inclusive.
pub const DEFAULT_NODE_PORT_RANGE: (u16, u16) = (30000, 32767);
/// Where in the service network Kubernetes puts the `kubernetes` Service (index 1) and
/// the cluster DNS (index 10); neither is handed out to a Service that asks for none.
pub const KUBERNETES_SERVICE_INDEX: u64 = 1;
pub const CLUSTER_DNS_INDEX: u64 = 10;

/// `10.43.0.0/16`.
pub fn default_service_cidr() -> Ipv4Cidr {
    Ipv4Cidr::containing(DEFAULT_SERVICE_CIDR, DEFAULT_SERVICE_CIDR_PREFIX)
        .expect("a /16 prefix is always in range")
}

/// The cluster DNS address of a service network (`10.43.0.10` by default), as k3s
/// derives `--cluster-dns` from `--service-cidr`.
pub fn cluster_dns_address(service_cidr: &Ipv4Cidr) -> Option<Ipv4Addr> {
    service_cidr.nth(CLUSTER_DNS_INDEX)
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Service {
    pub metadata: ObjectMeta,
    pub spec: ServiceSpec,
    /// Always `{loadBalancer: {}}`, as the API server shows a Service with no load
    /// balancer.
    pub status: ServiceStatus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
    /// A NodePort Service that asks for a load balancer in front. Berth, like a
    /// bare-metal cluster, has no load-balancer controller: the request stays pending,
    /// and the Service works as a NodePort one (node ports, unless
    /// `allocateLoadBalancerNodePorts: false`).
    LoadBalancer,
    ExternalName,
}

impl ServiceType {
    pub fn as_str(&self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
            ServiceType::ExternalName => "ExternalName",
        }
    }

    /// Whether Services of this type may hold node ports and are reached on them
    /// (Kubernetes' "externally accessible", berth having no external IPs).
    pub fn has_node_ports(&self) -> bool {
        match self {
            ServiceType::NodePort | ServiceType::LoadBalancer => true,
            ServiceType::ClusterIP | ServiceType::ExternalName => false,
        }
    }

    /// Whether Services of this type get a virtual address (unless headless).
    pub fn has_cluster_ip(&self) -> bool {
        match self {
            ServiceType::ClusterIP | ServiceType::NodePort | ServiceType::LoadBalancer => true,
            ServiceType::ExternalName => false,
        }
    }
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub enum Protocol {
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
}

impl Protocol {
    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceSpec {
    #[serde(rename = "type")]
    pub type_: ServiceType,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// An IPv4 address, `None` (headless) or empty until admission allocates one.
    #[serde(rename = "clusterIP", skip_serializing_if = "String::is_empty")]
    pub cluster_ip: String,
    /// `[clusterIP]` once set: single-stack.
    #[serde(rename = "clusterIPs", skip_serializing_if = "Vec::is_empty")]
    pub cluster_ips: Vec<String>,
    /// The DNS name an `ExternalName` Service is an alias (CNAME) for.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub external_name: String,
    /// Always `None`: connections are spread without affinity.
    pub session_affinity: String,
    #[serde(skip_serializing_if = "crate::model::is_default")]
    pub publish_not_ready_addresses: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ip_families: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_family_policy: Option<String>,
    /// `Cluster` (the default for Services with node ports, and all berth does): node-port
    /// traffic goes to endpoints on any board.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<String>,
    /// LoadBalancer Services: whether ports without a `nodePort` get one (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allocate_load_balancer_node_ports: Option<bool>,
    /// LoadBalancer Services: which load-balancer implementation is asked; no controller
    /// answers here, whatever the class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancer_class: Option<String>,
    /// The address asked of a load balancer; none is assigned here.
    #[serde(rename = "loadBalancerIP", skip_serializing_if = "String::is_empty")]
    pub load_balancer_ip: String,
    /// Client ranges a load balancer would admit. They concern load-balancer addresses
    /// only (as kube-proxy applies them), so they restrict nothing here.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub load_balancer_source_ranges: Vec<String>,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        ServiceSpec {
            type_: ServiceType::ClusterIP,
            selector: BTreeMap::new(),
            ports: Vec::new(),
            cluster_ip: String::new(),
            cluster_ips: Vec::new(),
            external_name: String::new(),
            session_affinity: "None".to_owned(),
            publish_not_ready_addresses: false,
            ip_families: Vec::new(),
            ip_family_policy: None,
            external_traffic_policy: None,
            allocate_load_balancer_node_ports: None,
            load_balancer_class: None,
            load_balancer_ip: String::new(),
            load_balancer_source_ranges: Vec::new(),
        }
    }
}

impl ServiceSpec {
    /// Defaults the API server fills in, so that what is stored and shown is what
    /// Kubernetes would show: `targetPort` is the port, `clusterIP` and `clusterIPs`
    /// agree, Services with an address family are single-stack IPv4, those with node
    /// ports have the `Cluster` traffic policy, and LoadBalancer ones allocate node ports.
    pub fn apply_defaults(&mut self) {
        for port in &mut self.ports {
            if port.target_port.is_none() {
                port.target_port = Some(IntOrString::Int(port.port));
            }
        }
        if self.cluster_ip.is_empty() {
            if let Some(first) = self.cluster_ips.first() {
                self.cluster_ip = first.clone();
            }
        }
        self.sync_cluster_ips();
        if self.type_.has_cluster_ip() {
            // A single-stack IPv4 network gives a Service that prefers dual stack its
            // one family, as Kubernetes does on such a cluster.
            self.ip_families.retain(|family| family == "IPv4");
            if self.ip_families.is_empty() {
                self.ip_families = vec!["IPv4".to_owned()];
            }
            self.ip_family_policy
                .get_or_insert_with(|| "SingleStack".to_owned());
        }
        // An empty policy is none, defaulted where it applies.
        if self.external_traffic_policy.as_deref() == Some("") {
            self.external_traffic_policy = None;
        }
        if self.type_.has_node_ports() {
            self.external_traffic_policy
                .get_or_insert_with(|| "Cluster".to_owned());
        }
        if self.type_ == ServiceType::LoadBalancer {
            self.allocate_load_balancer_node_ports.get_or_insert(true);
        }
    }

    /// Whether ports that name no `nodePort` get one at admission: always for NodePort
    /// Services, for LoadBalancer ones unless `allocateLoadBalancerNodePorts` is false.
    pub fn allocates_node_ports(&self) -> bool {
        match self.type_ {
            ServiceType::NodePort => true,
            ServiceType::LoadBalancer => self.allocate_load_balancer_node_ports != Some(false),
            ServiceType::ClusterIP | ServiceType::ExternalName => false,
        }
    }

    /// `clusterIPs` follows `clusterIP` (single-stack: one entry, or none).
    pub fn sync_cluster_ips(&mut self) {
        self.cluster_ips = if self.cluster_ip.is_empty() {
            Vec::new()
        } else {
            vec![self.cluster_ip.clone()]
        };
    }

    /// `clusterIP: None`.
    pub fn is_headless(&self) -> bool {
        self.cluster_ip == CLUSTER_IP_NONE
    }

    /// The virtual address, once allocated (`None` for headless and ExternalName).
    pub fn cluster_ipv4(&self) -> Option<Ipv4Addr> {
        self.cluster_ip.parse().ok()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServicePort {
    /// Required and unique when a Service has several ports; names SRV records and
    /// the matching `Endpoints` port.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub protocol: Protocol,
    pub port: i32,
    /// A number, or the name of a container port of the selected pods; defaults to
    /// `port`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_port: Option<IntOrString>,
    /// The port on every node (`NodePort` Services); 0 until allocated.
    #[serde(skip_serializing_if = "crate::model::is_default")]
    pub node_port: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceStatus {
    pub load_balancer: LoadBalancerStatus,
}

/// Empty: berth has no load-balancer controller to fill in `ingress`, so a LoadBalancer
/// Service shows `<pending>` as one does on a bare-metal cluster.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LoadBalancerStatus {}

/// The pod (or other object) an endpoint address belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectReference {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

/// Endpoints (v1): the addresses behind the Service of the same name, kept by the
/// endpoints controller for Services with a selector and written by hand for the others
/// (an external database at a fixed address).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Endpoints {
    pub metadata: ObjectMeta,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subsets: Vec<EndpointSubset>,
}

/// Addresses that all serve the same ports.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointSubset {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<EndpointAddress>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_ready_addresses: Vec<EndpointAddress>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<EndpointPort>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointAddress {
    pub ip: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<ObjectReference>,
}

/// A port of Endpoints or of an EndpointSlice; `name` matches the Service port's.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointPort {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub port: i32,
    pub protocol: Protocol,
}

/// EndpointSlice (discovery.k8s.io/v1): a share of a Service's endpoints, tied to it by
/// the [`SERVICE_NAME_LABEL`] label. IPv4 only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointSlice {
    pub metadata: ObjectMeta,
    pub address_type: String,
    /// Written even when empty, as Kubernetes does: a slice with no endpoints says
    /// something (nothing is ready).
    pub endpoints: Vec<Endpoint>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<EndpointPort>,
}

impl Default for EndpointSlice {
    fn default() -> Self {
        EndpointSlice {
            metadata: ObjectMeta::default(),
            address_type: "IPv4".to_owned(),
            endpoints: Vec::new(),
            ports: Vec::new(),
        }
    }
}

impl EndpointSlice {
    /// The Service this slice belongs to, from its [`SERVICE_NAME_LABEL`] label.
    pub fn service_name(&self) -> Option<&str> {
        self.metadata
            .labels
            .get(SERVICE_NAME_LABEL)
            .map(String::as_str)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Endpoint {
    pub addresses: Vec<String>,
    pub conditions: EndpointConditions,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<ObjectReference>,
}

/// Unset conditions mean "unknown", which consumers read as ready (Kubernetes'
/// rule for `ready`), so they stay optional rather than defaulting to false.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointConditions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serving: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminating: Option<bool>,
}

impl EndpointConditions {
    /// Whether traffic may go to the endpoint: `ready` unless it says otherwise.
    pub fn is_ready(&self) -> bool {
        self.ready != Some(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_what_the_api_server_fills_in() {
        let mut spec = ServiceSpec {
            ports: vec![ServicePort {
                port: 80,
                ..ServicePort::default()
            }],
            cluster_ips: vec!["10.43.0.7".into()],
            ..ServiceSpec::default()
        };
        spec.apply_defaults();
        assert_eq!(spec.ports[0].target_port, Some(IntOrString::Int(80)));
        assert_eq!(spec.ports[0].protocol, Protocol::Tcp);
        assert_eq!(spec.cluster_ip, "10.43.0.7");
        assert_eq!(spec.cluster_ipv4(), Some(Ipv4Addr::new(10, 43, 0, 7)));
        assert_eq!(spec.ip_families, ["IPv4"]);
        assert_eq!(spec.ip_family_policy.as_deref(), Some("SingleStack"));
        assert_eq!(spec.session_affinity, "None");

        let mut external = ServiceSpec {
            type_: ServiceType::ExternalName,
            external_name: "db.example.com".into(),
            ..ServiceSpec::default()
        };
        external.apply_defaults();
        assert!(external.ip_families.is_empty() && external.ip_family_policy.is_none());
        assert!(external.cluster_ips.is_empty());
    }

    #[test]
    fn the_json_form_is_kubernetes() {
        let service = Service {
            spec: ServiceSpec {
                type_: ServiceType::NodePort,
                cluster_ip: CLUSTER_IP_NONE.into(),
                ports: vec![ServicePort {
                    port: 53,
                    protocol: Protocol::Udp,
                    node_port: 30053,
                    target_port: Some(IntOrString::String("dns".into())),
                    ..ServicePort::default()
                }],
                ..ServiceSpec::default()
            },
            ..Service::default()
        };
        let json = serde_json::to_value(&service).unwrap();
        assert_eq!(json["spec"]["type"], "NodePort");
        assert_eq!(json["spec"]["clusterIP"], "None");
        assert_eq!(
            json["spec"]["ports"][0],
            serde_json::json!({"protocol": "UDP", "port": 53, "targetPort": "dns", "nodePort": 30053})
        );
        assert_eq!(json["status"], serde_json::json!({"loadBalancer": {}}));
        assert!(service.spec.is_headless());
        let back: Service = serde_json::from_value(json).unwrap();
        assert_eq!(back, service);
    }

    #[test]
    fn slices_name_their_service_and_unknown_means_ready() {
        let mut slice = EndpointSlice::default();
        assert_eq!(slice.service_name(), None);
        slice
            .metadata
            .labels
            .insert(SERVICE_NAME_LABEL.into(), "web".into());
        assert_eq!(slice.service_name(), Some("web"));
        assert_eq!(
            serde_json::to_value(&slice).unwrap()["endpoints"],
            serde_json::json!([])
        );
        assert!(EndpointConditions::default().is_ready());
        let not_ready = EndpointConditions {
            ready: Some(false),
            ..EndpointConditions::default()
        };
        assert!(!not_ready.is_ready());
    }

    #[test]
    fn the_default_service_network_is_k3s() {
        let cidr = default_service_cidr();
        assert_eq!(cidr.to_string(), "10.43.0.0/16");
        assert_eq!(
            cluster_dns_address(&cidr),
            Some(Ipv4Addr::new(10, 43, 0, 10))
        );
    }
}
