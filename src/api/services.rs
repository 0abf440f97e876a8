//! Cluster IPs and node ports for Services, handed out at admission as the Kubernetes
//! API server does, by the agent and the coordinator alike.
//!
//! A Service of type ClusterIP, NodePort or LoadBalancer without `clusterIP` gets a free
//! address of the service network; NodePort Services get free node ports for the ports
//! that name none, and so do LoadBalancer ones unless `allocateLoadBalancerNodePorts`
//! is false (which keeps the node ports named or already held).
//! An address or port asked for explicitly must be inside the range and free. What a
//! Service already holds stays with it when it is applied again without those fields
//! (what `kubectl apply` of the same manifest gives), and its cluster IP cannot change.
//!
//! Uniqueness needs no table of its own: what is taken is read from the stored Services
//! and written with them, and [`admit_services`] runs with the store held exclusively
//! (`&mut Store`, the daemon's lock) from that read to the write of the request, so two
//! requests can never be handed the same address.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use super::refusal::{internal, invalid, refusal, Refusal};
use crate::model::{
    Ipv4Cidr, Object, Protocol, Service, ServiceType, CLUSTER_DNS_INDEX, CLUSTER_IP_NONE,
    KUBERNETES_SERVICE_INDEX,
};
use crate::store::Store;
use crate::support::random;

/// What Services hold: the addresses of the service network and the node ports. A node
/// port is one number on every node whatever its protocol, as in Kubernetes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allocated {
    pub cluster_ips: BTreeSet<Ipv4Addr>,
    pub node_ports: BTreeSet<u16>,
}

impl Allocated {
    /// Adds what `service` holds.
    pub fn add(&mut self, service: &Service) {
        if let Some(address) = service.spec.cluster_ipv4() {
            self.cluster_ips.insert(address);
        }
        for port in &service.spec.ports {
            if let Ok(number) = u16::try_from(port.node_port) {
                if number != 0 {
                    self.node_ports.insert(number);
                }
            }
        }
    }
}

/// Allocates for every Service among `objects` (a request, already parsed and with
/// namespaces), against the Services in `store`. Refuses with Kubernetes' messages: 422
/// for an address or port that is taken, outside its range or changed, 500 when a
/// range is full.
pub fn admit_services(
    store: &Store,
    objects: &mut [Object],
    service_cidr: &Ipv4Cidr,
    node_port_range: (u16, u16),
) -> Result<(), Refusal> {
    let mut services: Vec<&mut Service> = objects
        .iter_mut()
        .filter_map(|object| match object {
            Object::Service(service) => Some(service),
            _ => None,
        })
        .collect();
    if services.is_empty() {
        return Ok(());
    }
    let mut stored = Vec::new();
    for record in store.list("Service", None)? {
        let what = format!("Service {}/{}", record.namespace, record.name);
        match Object::from_json(record.object) {
            Ok(Object::Service(service)) => stored.push(service),
            // Its addresses cannot be known; admission carries on rather than refuse
            // every Service because of one bad row.
            Ok(_) | Err(_) => log::error!(
                "unreadable {what} in the store: its cluster IP and node ports are not counted"
            ),
        }
    }
    let seed = u64::from_le_bytes(random::bytes::<8>().map_err(internal)?);
    allocate(&mut services, &stored, service_cidr, node_port_range, seed)
}

/// The allocation itself, pure: fills in `services` (new versions, as applied) given
/// every stored Service (`stored`, including the previous versions of those applied,
/// found by namespace and name). Explicit and kept addresses and ports are reserved
/// before any is drawn, so that a Service asking for one is not beaten to it by another
/// of the same request. `seed` picks where the searches for free ones start.
pub fn allocate(
    services: &mut [&mut Service],
    stored: &[Service],
    service_cidr: &Ipv4Cidr,
    node_port_range: (u16, u16),
    seed: u64,
) -> Result<(), Refusal> {
    let previous: BTreeMap<(String, String), &Service> =
        stored.iter().map(|s| (key(s), s)).collect();
    // What the applied Services held before counts as taken too, so that another
    // Service of the request cannot take what one of them keeps; each may still ask for
    // its own again (see `reserve`).
    let mut taken = Allocated::default();
    for service in stored {
        taken.add(service);
    }
    let ranges = Ranges {
        cidr: *service_cidr,
        node_ports: node_port_range,
    };
    let mut problems = Vec::new();
    let mut wanted = Vec::new();
    for service in services.iter_mut() {
        let before = previous.get(&key(service)).copied();
        wanted.push(reserve(service, before, &mut taken, &ranges, &mut problems));
    }
    if !problems.is_empty() {
        return Err(invalid(problems.join("\n")));
    }
    let mut draw = Draw(seed);
    for (service, wanted) in services.iter_mut().zip(wanted) {
        assign(service, wanted, &mut taken, &ranges, &mut draw)?;
    }
    Ok(())
}

struct Ranges {
    cidr: Ipv4Cidr,
    node_ports: (u16, u16),
}

/// What a Service still needs once explicit and kept values are reserved.
struct Wanted {
    cluster_ip: bool,
    /// Indexes into `spec.ports`.
    node_ports: Vec<usize>,
}

fn key(service: &Service) -> (String, String) {
    let meta = &service.metadata;
    (meta.namespace_or_empty().to_owned(), meta.name.clone())
}

/// The Kubernetes line for one refused field.
fn refused(service: &Service, field: &str, value: impl std::fmt::Display, why: &str) -> String {
    format!(
        "Service {:?} is invalid: {field}: Invalid value: {value}: {why}",
        service.metadata.name
    )
}

/// Reserves what `service` asks for explicitly or keeps from `before`, recording
/// problems; returns what is left to draw.
fn reserve(
    service: &mut Service,
    before: Option<&Service>,
    taken: &mut Allocated,
    ranges: &Ranges,
    problems: &mut Vec<String>,
) -> Wanted {
    // An ExternalName Service before had no address or ports to keep.
    let before = before.filter(|b| b.spec.type_.has_cluster_ip());
    let mut wanted = Wanted {
        cluster_ip: false,
        node_ports: Vec::new(),
    };
    if service.spec.type_.has_cluster_ip() {
        let held = before.map(|b| b.spec.cluster_ip.as_str()).unwrap_or("");
        let asked = service.spec.cluster_ip.clone();
        if asked.is_empty() && !held.is_empty() {
            service.spec.cluster_ip = held.to_owned();
        } else if !asked.is_empty() && !held.is_empty() && asked != held {
            let quoted = format!("{asked:?}");
            let why = "field is immutable";
            problems.push(refused(service, "spec.clusterIP", quoted, why));
        } else if asked.is_empty() {
            wanted.cluster_ip = true;
        } else if asked != held && asked != CLUSTER_IP_NONE {
            reserve_cluster_ip(service, &asked, taken, ranges, problems);
        }
        service.spec.sync_cluster_ips();
    }
    if service.spec.type_.has_node_ports() {
        let missing = reserve_node_ports(service, before, taken, ranges, problems);
        if service.spec.allocates_node_ports() {
            wanted.node_ports = missing;
        }
    }
    check_load_balancer_class(service, before, problems);
    wanted
}

/// A LoadBalancer Service's class cannot change while it stays one, as in Kubernetes: a
/// load-balancer controller that took it on would not let it go.
fn check_load_balancer_class(
    service: &Service,
    before: Option<&Service>,
    problems: &mut Vec<String>,
) {
    let load_balancer = |s: &Service| s.spec.type_ == ServiceType::LoadBalancer;
    let Some(before) = before.filter(|b| load_balancer(b) && load_balancer(service)) else {
        return;
    };
    let class = &service.spec.load_balancer_class;
    if *class != before.spec.load_balancer_class {
        let shown = class
            .as_deref()
            .map_or("null".to_owned(), |c| format!("{c:?}"));
        let why = "may not change once set";
        problems.push(refused(service, "spec.loadBalancerClass", shown, why));
    }
}

/// The node ports of a NodePort or LoadBalancer Service: those it held for the same port and protocol
/// are kept, explicit ones checked; returns the indexes of the ports that need one.
fn reserve_node_ports(
    service: &mut Service,
    before: Option<&Service>,
    taken: &mut Allocated,
    ranges: &Ranges,
    problems: &mut Vec<String>,
) -> Vec<usize> {
    let held: Vec<(i32, Protocol, i32)> = before
        .map(|b| {
            b.spec
                .ports
                .iter()
                .filter(|p| p.node_port != 0)
                .map(|p| (p.port, p.protocol, p.node_port))
                .collect()
        })
        .unwrap_or_default();
    let mut wanted = Vec::new();
    let mut mine = BTreeSet::new();
    for i in 0..service.spec.ports.len() {
        let port = &service.spec.ports[i];
        if port.node_port == 0 {
            let kept = held
                .iter()
                .find(|(number, protocol, _)| *number == port.port && *protocol == port.protocol);
            match kept {
                Some((_, _, node_port)) => service.spec.ports[i].node_port = *node_port,
                None => wanted.push(i),
            }
        } else if !held.iter().any(|(_, _, n)| *n == port.node_port) {
            let number = port.node_port;
            let (low, high) = ranges.node_ports;
            let why = match u16::try_from(number) {
                Ok(n) if (low..=high).contains(&n) && !taken.node_ports.contains(&n) => None,
                Ok(n) if (low..=high).contains(&n) => {
                    Some("provided port is already allocated".to_owned())
                }
                Ok(_) | Err(_) => Some(format!(
                    "provided port is not in the valid range. The range of valid ports is \
                     {low}-{high}"
                )),
            };
            if let Some(why) = why {
                let field = format!("spec.ports[{i}].nodePort");
                problems.push(refused(service, &field, number, &why));
            }
        }
        if let Ok(number) = u16::try_from(service.spec.ports[i].node_port) {
            if number != 0 {
                mine.insert(number);
            }
        }
    }
    taken.node_ports.extend(mine);
    wanted
}

/// An address asked for by `clusterIP`: inside the network (not its first or last
/// address) and free.
fn reserve_cluster_ip(
    service: &Service,
    asked: &str,
    taken: &mut Allocated,
    ranges: &Ranges,
    problems: &mut Vec<String>,
) {
    let quoted = format!("{asked:?}");
    let Ok(address) = asked.parse::<Ipv4Addr>() else {
        // Validation let only IPv4 addresses and `None` through.
        problems.push(refused(
            service,
            "spec.clusterIP",
            quoted,
            "must be a valid IPv4 address",
        ));
        return;
    };
    let last = ranges.cidr.size().saturating_sub(1);
    let inside = ranges
        .cidr
        .index_of(address)
        .is_some_and(|index| index > 0 && index < last);
    if !inside {
        let why = format!(
            "provided IP is not in the valid range. The range of valid IPs is {}",
            ranges.cidr
        );
        problems.push(refused(service, "spec.clusterIP", quoted, &why));
    } else if !taken.cluster_ips.insert(address) {
        problems.push(refused(
            service,
            "spec.clusterIP",
            quoted,
            "provided IP is already allocated",
        ));
    }
}

/// Draws what [`reserve`] left: a cluster IP and node ports, each the first free one
/// from a random point of its range, as Kubernetes' allocators pick at random.
fn assign(
    service: &mut Service,
    wanted: Wanted,
    taken: &mut Allocated,
    ranges: &Ranges,
    draw: &mut Draw,
) -> Result<(), Refusal> {
    let full = |what: &str| {
        refusal(
            500,
            "InternalError",
            format!(
                "Internal error occurred: failed to allocate a {what} for Service {:?}: range is full",
                service.metadata.name
            ),
        )
    };
    if wanted.cluster_ip {
        let address = free_cluster_ip(&ranges.cidr, &taken.cluster_ips, draw.next())
            .ok_or_else(|| full("serviceIP"))?;
        taken.cluster_ips.insert(address);
        service.spec.cluster_ip = address.to_string();
        service.spec.sync_cluster_ips();
    }
    for i in wanted.node_ports {
        let port = free_node_port(ranges.node_ports, &taken.node_ports, draw.next())
            .ok_or_else(|| full("nodePort"))?;
        taken.node_ports.insert(port);
        service.spec.ports[i].node_port = i32::from(port);
    }
    Ok(())
}

/// A free address of `cidr` that may be handed out unasked: not the network address,
/// the `kubernetes` Service's (index 1), the cluster DNS's (index 10) or the broadcast
/// address. The search starts at `start` (modulo the candidates) and wraps.
pub fn free_cluster_ip(
    cidr: &Ipv4Cidr,
    taken: &BTreeSet<Ipv4Addr>,
    start: u64,
) -> Option<Ipv4Addr> {
    let first = KUBERNETES_SERVICE_INDEX + 1;
    let last = cidr.size().checked_sub(1)?;
    let count = last.checked_sub(first)?;
    if count == 0 {
        return None;
    }
    let offset = start % count;
    (0..count)
        .map(|i| first + (offset + i) % count)
        .filter(|index| *index != CLUSTER_DNS_INDEX)
        .filter_map(|index| cidr.nth(index))
        .find(|address| !taken.contains(address))
}

/// A free node port of `range` (inclusive), searched from `start` and wrapping.
pub fn free_node_port(range: (u16, u16), taken: &BTreeSet<u16>, start: u64) -> Option<u16> {
    let (low, high) = range;
    let count = u64::from(high.checked_sub(low)?) + 1;
    let offset = start % count;
    (0..count)
        .filter_map(|i| u16::try_from(u64::from(low) + (offset + i) % count).ok())
        .find(|port| !taken.contains(port))
}

/// Starting points for the searches, one per allocation, from one random seed
/// (splitmix64: cheap and well spread, and no new random draw per Service).
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
#[path = "services_tests.rs"]
mod tests;
