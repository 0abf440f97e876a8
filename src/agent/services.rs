//! Services as this board programs them: the stored Services, Endpoints and
//! EndpointSlices turned into the plain tables of the pod network — kernel load
//! balancing rules (`net::nft`) and the cluster DNS zone (`net::dns`) — after every pass.
//!
//! Everything is read from the store, so a board cut off from its coordinator keeps
//! serving the last Services it was given, across restarts too.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use super::Agent;
use crate::model::{EndpointSlice, Endpoints, Object, Pod, Protocol, Service, ServiceType};
use crate::net::dns::{HeadlessEndpoint, NamedPort, ServiceEntry, ServiceKind, Zone};
use crate::net::nft;

/// The stored objects a board's Services are made of.
#[derive(Default)]
pub struct ServiceObjects {
    pub services: Vec<Service>,
    pub endpoints: Vec<Endpoints>,
    pub slices: Vec<EndpointSlice>,
}

impl ServiceObjects {
    pub fn load(agent: &Agent) -> anyhow::Result<ServiceObjects> {
        let store = agent.store();
        let mut objects = ServiceObjects::default();
        for kind in ["Service", "Endpoints", "EndpointSlice"] {
            for record in store.list(kind, None)? {
                match Object::from_json(record.object) {
                    Ok(Object::Service(service)) => objects.services.push(service),
                    Ok(Object::Endpoints(endpoints)) => objects.endpoints.push(endpoints),
                    Ok(Object::EndpointSlice(slice)) => objects.slices.push(slice),
                    Ok(_) | Err(_) => log::error!(
                        "skipping unreadable {kind} {}/{} in the store",
                        record.namespace,
                        record.name
                    ),
                }
            }
        }
        Ok(objects)
    }

    /// The ready addresses behind port `port_name` of `service`: from its Endpoints,
    /// and from EndpointSlices labelled with its name.
    fn ready_endpoints(&self, service: &Service, port_name: &str) -> Vec<(Ipv4Addr, u16)> {
        let namespace = service.metadata.namespace_or_empty();
        let name = &service.metadata.name;
        let mut found = Vec::new();
        for endpoints in self
            .endpoints
            .iter()
            .filter(|e| e.metadata.name == *name && e.metadata.namespace_or_empty() == namespace)
        {
            for subset in &endpoints.subsets {
                let Some(port) = subset.ports.iter().find(|p| p.name == port_name) else {
                    continue;
                };
                for address in &subset.addresses {
                    if let (Ok(ip), Ok(port)) = (address.ip.parse(), u16::try_from(port.port)) {
                        found.push((ip, port));
                    }
                }
            }
        }
        for slice in self.slices.iter().filter(|s| {
            s.service_name() == Some(name.as_str()) && s.metadata.namespace_or_empty() == namespace
        }) {
            let Some(port) = slice.ports.iter().find(|p| p.name == port_name) else {
                continue;
            };
            let Ok(port) = u16::try_from(port.port) else {
                continue;
            };
            for endpoint in slice.endpoints.iter().filter(|e| e.conditions.is_ready()) {
                found.extend(
                    endpoint
                        .addresses
                        .iter()
                        .filter_map(|a| a.parse().ok())
                        .map(|ip| (ip, port)),
                );
            }
        }
        crate::support::sort::sort(&mut found);
        found.dedup();
        found
    }

    /// One kernel rule set per Service port with a cluster IP.
    pub fn service_ports(&self) -> Vec<nft::ServicePort> {
        let mut ports = Vec::new();
        for service in &self.services {
            let Some(cluster_ip) = service.spec.cluster_ipv4() else {
                continue;
            };
            for port in &service.spec.ports {
                let Ok(number) = u16::try_from(port.port) else {
                    continue;
                };
                // LoadBalancer Services are reached on their node ports, as on a cluster
                // with no load-balancer controller.
                let node_port = service
                    .spec
                    .type_
                    .has_node_ports()
                    .then(|| u16::try_from(port.node_port).ok())
                    .flatten()
                    .filter(|p| *p != 0);
                ports.push(nft::ServicePort {
                    id: format!(
                        "{}/{}:{}",
                        service.metadata.namespace_or_empty(),
                        service.metadata.name,
                        if port.name.is_empty() {
                            number.to_string()
                        } else {
                            port.name.clone()
                        }
                    ),
                    cluster_ip: Some(cluster_ip),
                    port: number,
                    node_port,
                    protocol: nft_protocol(port.protocol),
                    endpoints: self
                        .ready_endpoints(service, &port.name)
                        .into_iter()
                        .map(|(ip, port)| SocketAddrV4::new(ip, port))
                        .collect(),
                });
            }
        }
        ports
    }

    /// The DNS zone of these Services and of the pods' addresses.
    pub fn zone(&self, domain: &str, pod_ips: Vec<Ipv4Addr>) -> Zone {
        let services = self
            .services
            .iter()
            .filter_map(|service| {
                let kind = match service.spec.type_ {
                    ServiceType::ExternalName => {
                        ServiceKind::ExternalName(service.spec.external_name.clone())
                    }
                    _ if service.spec.is_headless() => {
                        ServiceKind::Headless(self.headless_endpoints(service))
                    }
                    _ => ServiceKind::ClusterIp(service.spec.cluster_ipv4()?),
                };
                let ports = service
                    .spec
                    .ports
                    .iter()
                    .filter(|p| !p.name.is_empty())
                    .filter_map(|p| {
                        Some(NamedPort {
                            name: p.name.clone(),
                            protocol: match p.protocol {
                                Protocol::Tcp => "tcp",
                                Protocol::Udp => "udp",
                            },
                            port: u16::try_from(p.port).ok()?,
                        })
                    })
                    .collect();
                Some(ServiceEntry {
                    name: service.metadata.name.clone(),
                    namespace: service.metadata.namespace_or_empty().to_owned(),
                    kind,
                    ports,
                })
            })
            .collect();
        Zone {
            domain: domain.to_owned(),
            services,
            pods: pod_ips,
        }
    }

    /// The ready addresses of a headless Service, with their hostnames.
    fn headless_endpoints(&self, service: &Service) -> Vec<HeadlessEndpoint> {
        let namespace = service.metadata.namespace_or_empty();
        let mut found: Vec<HeadlessEndpoint> = self
            .endpoints
            .iter()
            .filter(|e| {
                e.metadata.name == service.metadata.name
                    && e.metadata.namespace_or_empty() == namespace
            })
            .flat_map(|e| &e.subsets)
            .flat_map(|subset| &subset.addresses)
            .filter_map(|address| {
                Some(HeadlessEndpoint {
                    ip: address.ip.parse().ok()?,
                    hostname: Some(address.hostname.clone()).filter(|h| !h.is_empty()),
                })
            })
            .collect();
        crate::support::sort::sort_by_key(&mut found, |e| e.ip);
        found.dedup_by_key(|e| e.ip);
        found
    }
}

fn nft_protocol(protocol: Protocol) -> nft::Protocol {
    match protocol {
        Protocol::Tcp => nft::Protocol::Tcp,
        Protocol::Udp => nft::Protocol::Udp,
    }
}

/// The hostPorts of this board's pods that have an address.
pub fn host_ports(pods: &[Pod], pod_ips: &HashMap<String, Ipv4Addr>) -> Vec<nft::HostPort> {
    let mut ports = Vec::new();
    for pod in pods
        .iter()
        .filter(|p| !p.spec.host_network && p.metadata.deletion_timestamp.is_none())
    {
        let Some(pod_ip) = pod_ips.get(&pod.metadata.uid) else {
            continue;
        };
        for port in pod.spec.containers.iter().flat_map(|c| &c.ports) {
            let (Some(host_port), Ok(container_port)) =
                (port.host_port, u16::try_from(port.container_port))
            else {
                continue;
            };
            let (Ok(host_port), Some(protocol)) = (
                u16::try_from(host_port),
                match port.protocol.as_str() {
                    "TCP" => Some(nft::Protocol::Tcp),
                    "UDP" => Some(nft::Protocol::Udp),
                    _ => None,
                },
            ) else {
                continue;
            };
            ports.push(nft::HostPort {
                host_port,
                host_ip: port.host_ip.as_deref().and_then(|ip| ip.parse().ok()),
                protocol,
                pod_ip: *pod_ip,
                container_port,
            });
        }
    }
    ports
}

/// Programs this board's Services, host ports and DNS zone from the store; a no-op
/// when they are what is programmed already. Nothing is loaded when neither the store
/// nor a pod address changed since the last sync: every resync of an idle board would
/// otherwise parse every Service and Endpoints again (and fault their code back in).
pub fn sync(agent: &Arc<Agent>, pods: &[Pod]) -> anyhow::Result<()> {
    let Some(network) = agent.network() else {
        return Ok(());
    };
    // Read before loading: a write after this point makes the next pass sync again.
    let changes = agent.store().change_count();
    let pod_ips = network.pod_ips();
    if network.synced_from(changes, &pod_ips) {
        return Ok(());
    }
    let objects = ServiceObjects::load(agent)?;
    network.sync_rules(objects.service_ports(), host_ports(pods, &pod_ips))?;
    let mut ips: Vec<Ipv4Addr> = pod_ips.values().copied().collect();
    crate::support::sort::sort(&mut ips);
    network.sync_zone(objects.zone(&network.domain, ips));
    network.set_synced_from(changes, pod_ips);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        Container, ContainerPort, Endpoint, EndpointAddress, EndpointConditions, EndpointPort,
        EndpointSubset, ServicePort, CLUSTER_IP_NONE, SERVICE_NAME_LABEL,
    };

    fn service(name: &str, cluster_ip: &str, type_: ServiceType) -> Service {
        let mut service = Service::default();
        service.metadata.name = name.into();
        service.metadata.namespace = Some("default".into());
        service.spec.type_ = type_;
        service.spec.cluster_ip = cluster_ip.into();
        service.spec.ports = vec![ServicePort {
            name: "http".into(),
            port: 80,
            node_port: 30080,
            ..ServicePort::default()
        }];
        service
    }

    fn endpoints(name: &str, ips: &[&str], port: i32) -> Endpoints {
        let mut endpoints = Endpoints::default();
        endpoints.metadata.name = name.into();
        endpoints.metadata.namespace = Some("default".into());
        endpoints.subsets = vec![EndpointSubset {
            addresses: ips
                .iter()
                .map(|ip| EndpointAddress {
                    ip: ip.to_string(),
                    ..EndpointAddress::default()
                })
                .collect(),
            ports: vec![EndpointPort {
                name: "http".into(),
                port,
                protocol: Protocol::Tcp,
            }],
            ..EndpointSubset::default()
        }];
        endpoints
    }

    #[test]
    fn service_ports_take_endpoints_and_slices_and_node_ports_only_where_services_hold_them() {
        let mut slice = EndpointSlice::default();
        slice.metadata.namespace = Some("default".into());
        slice
            .metadata
            .labels
            .insert(SERVICE_NAME_LABEL.into(), "api".into());
        slice.ports = vec![EndpointPort {
            name: "http".into(),
            port: 9000,
            protocol: Protocol::Tcp,
        }];
        slice.endpoints = vec![
            Endpoint {
                addresses: vec!["10.0.0.7".into()],
                ..Endpoint::default()
            },
            Endpoint {
                addresses: vec!["10.0.0.8".into()],
                conditions: EndpointConditions {
                    ready: Some(false),
                    ..EndpointConditions::default()
                },
                ..Endpoint::default()
            },
        ];
        let objects = ServiceObjects {
            services: vec![
                service("web", "10.43.0.5", ServiceType::NodePort),
                service("api", "10.43.0.6", ServiceType::ClusterIP),
                service("headless", CLUSTER_IP_NONE, ServiceType::ClusterIP),
                service("edge", "10.43.0.7", ServiceType::LoadBalancer),
            ],
            endpoints: vec![endpoints("web", &["10.42.0.3", "10.42.0.2"], 8080)],
            slices: vec![slice],
        };
        let ports = objects.service_ports();
        assert_eq!(ports.len(), 3, "a headless Service has no rules");
        assert_eq!(ports[0].id, "default/web:http");
        assert_eq!(ports[0].node_port, Some(30080));
        assert_eq!(
            ports[0].endpoints,
            [
                "10.42.0.2:8080".parse().unwrap(),
                "10.42.0.3:8080".parse().unwrap()
            ]
        );
        assert_eq!(ports[1].node_port, None);
        assert_eq!(ports[1].endpoints, ["10.0.0.7:9000".parse().unwrap()]);
        // A LoadBalancer Service is reached on its node port, as a NodePort one.
        assert_eq!(ports[2].id, "default/edge:http");
        assert_eq!(ports[2].node_port, Some(30080));
    }

    #[test]
    fn the_zone_names_cluster_ips_headless_endpoints_and_external_names() {
        let mut external = service("db", "", ServiceType::ExternalName);
        external.spec.external_name = "db.example.com".into();
        let objects = ServiceObjects {
            services: vec![
                service("web", "10.43.0.5", ServiceType::ClusterIP),
                service("peers", CLUSTER_IP_NONE, ServiceType::ClusterIP),
                external,
            ],
            endpoints: vec![endpoints("peers", &["10.42.0.9"], 80)],
            slices: Vec::new(),
        };
        let zone = objects.zone("cluster.local", vec![Ipv4Addr::new(10, 42, 0, 9)]);
        let kinds: Vec<&ServiceKind> = zone.services.iter().map(|s| &s.kind).collect();
        assert_eq!(
            kinds,
            [
                &ServiceKind::ClusterIp(Ipv4Addr::new(10, 43, 0, 5)),
                &ServiceKind::Headless(vec![HeadlessEndpoint {
                    ip: Ipv4Addr::new(10, 42, 0, 9),
                    hostname: None
                }]),
                &ServiceKind::ExternalName("db.example.com".into()),
            ]
        );
        assert_eq!(zone.services[0].ports[0].protocol, "tcp");
        assert_eq!(zone.pods, [Ipv4Addr::new(10, 42, 0, 9)]);
    }

    #[test]
    fn host_ports_of_addressed_running_pods() {
        let mut pod = Pod::default();
        pod.metadata.uid = "u".into();
        pod.spec.containers = vec![Container {
            ports: vec![
                ContainerPort {
                    container_port: 80,
                    host_port: Some(8080),
                    host_ip: Some("192.0.2.1".into()),
                    ..ContainerPort::default()
                },
                ContainerPort {
                    container_port: 53,
                    host_port: Some(53),
                    protocol: "UDP".into(),
                    ..ContainerPort::default()
                },
                ContainerPort {
                    container_port: 81,
                    ..ContainerPort::default()
                },
            ],
            ..Container::default()
        }];
        let ips = HashMap::from([("u".to_owned(), Ipv4Addr::new(10, 42, 0, 4))]);
        let ports = host_ports(std::slice::from_ref(&pod), &ips);
        assert_eq!(ports.len(), 2);
        assert_eq!(ports[0].host_ip, Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(ports[1].protocol, nft::Protocol::Udp);
        assert!(
            host_ports(&[pod], &HashMap::new()).is_empty(),
            "no address yet"
        );
    }
}
