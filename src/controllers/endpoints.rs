//! The endpoints controller: for every Service with a selector, an Endpoints object of
//! the same name listing the matching pods' addresses and ports, ready ones under
//! `addresses` and the others under `notReadyAddresses` (all under `addresses` with
//! `publishNotReadyAddresses`), as Kubernetes' endpoints controller keeps them.
//!
//! Services without a selector are left alone: their Endpoints are the user's (an
//! external database at a fixed address). Endpoints this controller made carry
//! [`MANAGED_BY_LABEL`], so that they, and only they, go when their Service goes.

use std::collections::BTreeMap;

use super::{key_of, Change, World};
use crate::model::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, IntOrString, Object, ObjectMeta,
    ObjectReference, Pod, Service, ServiceType,
};

/// Marks Endpoints kept by this controller (the key Kubernetes uses on the
/// EndpointSlices its controller keeps).
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpoints-controller.berth";

/// The Endpoints `service` should have, written when they differ from what is stored.
pub fn reconcile(service: &Service, world: &World) -> Vec<Change> {
    if service.spec.selector.is_empty() || service.spec.type_ == ServiceType::ExternalName {
        return Vec::new();
    }
    let wanted = endpoints_of(service, world);
    let stored = world.endpoints.iter().find(|e| {
        e.metadata.name == wanted.metadata.name
            && e.metadata.namespace_or_empty() == wanted.metadata.namespace_or_empty()
    });
    match stored {
        Some(stored) if same_endpoints(stored, &wanted) => Vec::new(),
        _ => vec![Change::Put(Box::new(Object::Endpoints(wanted)))],
    }
}

/// Endpoints this controller made whose Service is gone.
pub fn orphaned(world: &World) -> Vec<Change> {
    world
        .endpoints
        .iter()
        .filter(|e| e.metadata.labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY))
        .filter(|e| {
            !world.services.iter().any(|s| {
                s.metadata.name == e.metadata.name
                    && s.metadata.namespace_or_empty() == e.metadata.namespace_or_empty()
                    && !s.spec.selector.is_empty()
            })
        })
        .map(|e| Change::Delete(key_of("Endpoints", &e.metadata)))
        .collect()
}

/// What is compared: labels and subsets (not uid, times or versions).
fn same_endpoints(stored: &Endpoints, wanted: &Endpoints) -> bool {
    stored.metadata.labels == wanted.metadata.labels && stored.subsets == wanted.subsets
}

fn endpoints_of(service: &Service, world: &World) -> Endpoints {
    let namespace = service.metadata.namespace_or_empty();
    let mut labels = service.metadata.labels.clone();
    labels.insert(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned());
    // Pods that serve the same ports share a subset, as Kubernetes packs them.
    let mut by_ports: BTreeMap<Vec<EndpointPort>, EndpointSubset> = BTreeMap::new();
    for pod in world.pods.iter().filter(|pod| {
        pod.metadata.namespace_or_empty() == namespace
            && pod.metadata.deletion_timestamp.is_none()
            && service
                .spec
                .selector
                .iter()
                .all(|(key, value)| pod.metadata.labels.get(key) == Some(value))
    }) {
        let Some(ip) = world.pod_ips.get(&pod.metadata.uid) else {
            continue;
        };
        let ports = pod_ports(service, pod);
        if ports.is_empty() && !service.spec.ports.is_empty() {
            continue;
        }
        let address = endpoint_address(service, pod, ip);
        let subset = by_ports
            .entry(ports.clone())
            .or_insert_with(|| EndpointSubset {
                ports,
                ..EndpointSubset::default()
            });
        if world.ready_pods.contains(&pod.metadata.uid) || service.spec.publish_not_ready_addresses
        {
            subset.addresses.push(address);
        } else {
            subset.not_ready_addresses.push(address);
        }
    }
    let mut subsets: Vec<EndpointSubset> = by_ports.into_values().collect();
    for subset in &mut subsets {
        crate::support::sort::sort_by(&mut subset.addresses, |a, b| a.ip.cmp(&b.ip));
        crate::support::sort::sort_by(&mut subset.not_ready_addresses, |a, b| a.ip.cmp(&b.ip));
    }
    Endpoints {
        metadata: ObjectMeta {
            name: service.metadata.name.clone(),
            namespace: service.metadata.namespace.clone(),
            labels,
            ..ObjectMeta::default()
        },
        subsets,
    }
}

/// The service's ports as `pod` serves them; a port whose named target the pod lacks
/// is left out, as Kubernetes does.
fn pod_ports(service: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let mut ports: Vec<EndpointPort> = service
        .spec
        .ports
        .iter()
        .filter_map(|port| {
            let target = match &port.target_port {
                None => port.port,
                Some(IntOrString::Int(number)) => *number,
                Some(IntOrString::String(name)) => {
                    pod.spec
                        .long_running()
                        .flat_map(|c| &c.ports)
                        .find(|p| p.name.as_deref() == Some(name.as_str()))?
                        .container_port
                }
            };
            Some(EndpointPort {
                name: port.name.clone(),
                port: target,
                protocol: port.protocol,
            })
        })
        .collect();
    crate::support::sort::sort_by(&mut ports, |a, b| a.name.cmp(&b.name));
    ports
}

fn endpoint_address(service: &Service, pod: &Pod, ip: &str) -> EndpointAddress {
    // A pod with a hostname in the Service's subdomain gets a DNS name of its own.
    let hostname = match (&pod.spec.hostname, &pod.spec.subdomain) {
        (Some(hostname), Some(subdomain)) if *subdomain == service.metadata.name => {
            hostname.clone()
        }
        _ => String::new(),
    };
    EndpointAddress {
        ip: ip.to_owned(),
        hostname,
        node_name: pod.spec.node_name.clone(),
        target_ref: Some(ObjectReference {
            kind: "Pod".to_owned(),
            namespace: pod.metadata.namespace_or_empty().to_owned(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
        }),
    }
}
