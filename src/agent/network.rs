//! The board's pod network as the agent drives it: the bridge at start, a veth and an
//! address for each pod sandbox, the nftables table and the DNS zone after each pass.
//!
//! The kernel holds the links (a pod's veth lives as long as its pinned network
//! namespace, so a killed agent leaves them working); the store holds the addresses
//! (`store::addresses`), so a restarted agent gives every pod the address it had. What
//! the agent keeps in memory — the ruleset and zone it last programmed — only saves it
//! from programming the same thing twice.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context;

use super::NetworkBackend;
use super::NetworkOptions;
use crate::api::fleet::FleetNetwork;
use crate::model::Ipv4Cidr;
use crate::net::dns::{DnsServer, Zone, ZoneCell};
use crate::net::{link, nft, peers};
use crate::store::Store;

/// The node bridge every pod's veth is a port of.
pub const BRIDGE: &str = "berth0";
/// The MTU of the bridge and veths when the board's uplink does not say otherwise.
const DEFAULT_MTU: u32 = 1500;
/// Where pods reach the cluster DNS: the bridge address, port 53.
const DNS_PORT: u16 = 53;

pub struct PodNetwork {
    pub pod_cidr: Ipv4Cidr,
    pub cluster_cidr: Ipv4Cidr,
    /// The bridge's address: pods' default gateway and their DNS server.
    pub gateway: Ipv4Addr,
    /// `status.hostIP` of every pod here.
    pub node_ip: Ipv4Addr,
    pub domain: String,
    backend: NetworkBackend,
    mtu: u32,
    zone: Arc<ZoneCell>,
    state: Mutex<NetState>,
}

#[derive(Default)]
struct NetState {
    /// Pod addresses by uid, as the store holds them.
    addresses: HashMap<String, Ipv4Addr>,
    /// The ruleset last given to nft: the same one is not given again.
    rules: Option<nft::Ruleset>,
    /// The peers last programmed: the same ones are not programmed again.
    peers: Option<Vec<peers::Peer>>,
    /// The store's change count and the pod addresses that the rules and the zone were
    /// last made from: an idle pass need not load and compare them again.
    synced_from: Option<(u64, HashMap<String, Ipv4Addr>)>,
    dns: Option<DnsServer>,
}

impl PodNetwork {
    /// Makes the bridge, programs an empty table (which also checks that nft is there)
    /// and starts the DNS server. A board in a fleet leaves room in its MTU for VXLAN
    /// unless it only ever routes directly (`host-gw`).
    pub fn start(options: &NetworkOptions, in_fleet: bool) -> anyhow::Result<PodNetwork> {
        let pod_cidr = options
            .board_pod_cidr()
            .context("the cluster CIDR has no /24 for this board")?;
        let gateway = pod_cidr
            .gateway()
            .with_context(|| format!("pod CIDR {pod_cidr} is too small for a gateway"))?;
        let node_ip = match options.node_ip {
            Some(ip) => ip,
            None => detect_node_ip().context(
                "cannot tell this board's address (no IPv4 address outside loopback); give --node-ip",
            )?,
        };
        let uplink_mtu = peers::uplink_mtu(node_ip).unwrap_or(DEFAULT_MTU);
        let mtu = if in_fleet && options.backend != NetworkBackend::HostGw {
            uplink_mtu.saturating_sub(peers::VXLAN_OVERHEAD)
        } else {
            uplink_mtu
        };
        link::ensure_bridge(&link::Bridge {
            name: BRIDGE.to_owned(),
            gateway,
            prefix_len: pod_cidr.prefix(),
            mtu,
        })
        .with_context(|| format!("cannot set up the pod bridge {BRIDGE}"))?;
        let network = PodNetwork {
            pod_cidr,
            cluster_cidr: options.cluster_cidr,
            gateway,
            node_ip,
            domain: options.cluster_domain.clone(),
            backend: options.backend,
            mtu,
            zone: Arc::new(ZoneCell::new(Zone {
                domain: options.cluster_domain.clone(),
                ..Default::default()
            })),
            state: Mutex::new(NetState::default()),
        };
        network.program(network.ruleset(Vec::new(), Vec::new()))?;
        let upstreams = crate::net::dns::resolv::host_upstreams(&options.resolv_conf);
        let dns = DnsServer::start(
            SocketAddrV4::new(gateway, DNS_PORT),
            network.zone.clone(),
            upstreams,
        )
        .with_context(|| format!("cannot serve DNS on {gateway}:{DNS_PORT}"))?;
        network.state().dns = Some(dns);
        log::info!(
            "pod network {pod_cidr} on {BRIDGE} (gateway and DNS {gateway}, node {node_ip})"
        );
        Ok(network)
    }

    /// Reads the addresses the store holds for pods into memory.
    pub fn load_addresses(&self, store: &Store) -> anyhow::Result<()> {
        self.state().addresses = store.pod_addresses()?.into_iter().collect();
        Ok(())
    }

    fn state(&self) -> MutexGuard<'_, NetState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The address of a pod that has one.
    pub fn pod_ip(&self, pod_uid: &str) -> Option<Ipv4Addr> {
        self.state().addresses.get(pod_uid).copied()
    }

    /// Every pod address held, by pod uid.
    pub fn pod_ips(&self) -> HashMap<String, Ipv4Addr> {
        self.state().addresses.clone()
    }

    /// Gives the pod its address and plugs its network namespace into the bridge;
    /// idempotent, and repairs a half-made veth pair.
    pub fn attach(
        &self,
        store: &Mutex<Store>,
        pod_uid: &str,
        netns: &Path,
    ) -> anyhow::Result<Ipv4Addr> {
        let address = {
            let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
            store.pod_address(pod_uid, &self.pod_cidr)?
        };
        self.state().addresses.insert(pod_uid.to_owned(), address);
        link::attach_pod(&link::PodLink {
            host_veth: link::host_veth_name(pod_uid),
            netns: netns.to_owned(),
            address,
            prefix_len: self.pod_cidr.prefix(),
            gateway: self.gateway,
            mtu: self.mtu,
            bridge: BRIDGE.to_owned(),
        })
        .with_context(|| format!("cannot connect pod {pod_uid} to {BRIDGE}"))?;
        Ok(address)
    }

    /// Unplugs the pod and frees its address; idempotent.
    pub fn detach(&self, store: &Mutex<Store>, pod_uid: &str) -> anyhow::Result<()> {
        link::delete_link(&link::host_veth_name(pod_uid))?;
        let freed = store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .release_pod_address(pod_uid)?;
        self.state().addresses.remove(pod_uid);
        if let Some(address) = freed {
            log::info!("pod {pod_uid} gave up address {address}");
        }
        Ok(())
    }

    /// Removes veths and addresses of pods that are gone (deleted while the agent was
    /// down): `live` holds the uids of stored pods and of sandboxes still there.
    pub fn remove_strays(
        &self,
        store: &Mutex<Store>,
        live: &HashSet<String>,
    ) -> anyhow::Result<()> {
        let wanted: HashSet<String> = live.iter().map(|uid| link::host_veth_name(uid)).collect();
        for name in link::links_with_prefix(link::POD_VETH_PREFIX)? {
            if !wanted.contains(&name) {
                log::info!("removing stray pod link {name}");
                link::delete_link(&name)?;
            }
        }
        let held: Vec<String> = self.state().addresses.keys().cloned().collect();
        for uid in held.iter().filter(|uid| !live.contains(*uid)) {
            self.detach(store, uid)?;
        }
        Ok(())
    }

    /// Programs `services` and `host_ports`, unless they are what was programmed last.
    pub fn sync_rules(
        &self,
        services: Vec<nft::ServicePort>,
        host_ports: Vec<nft::HostPort>,
    ) -> anyhow::Result<()> {
        self.program(self.ruleset(services, host_ports))
    }

    fn ruleset(
        &self,
        services: Vec<nft::ServicePort>,
        host_ports: Vec<nft::HostPort>,
    ) -> nft::Ruleset {
        nft::Ruleset {
            pod_cidr: self.pod_cidr,
            cluster_cidr: self.cluster_cidr,
            bridge: BRIDGE.to_owned(),
            services,
            host_ports,
        }
    }

    /// Whether the rules and the zone were made from this store state and these pod
    /// addresses.
    pub fn synced_from(&self, changes: u64, pod_ips: &HashMap<String, Ipv4Addr>) -> bool {
        self.state()
            .synced_from
            .as_ref()
            .is_some_and(|(count, ips)| *count == changes && ips == pod_ips)
    }

    pub fn set_synced_from(&self, changes: u64, pod_ips: HashMap<String, Ipv4Addr>) {
        self.state().synced_from = Some((changes, pod_ips));
    }

    fn program(&self, rules: nft::Ruleset) -> anyhow::Result<()> {
        let mut state = self.state();
        if state.rules.as_ref() == Some(&rules) {
            return Ok(());
        }
        nft::apply(&rules).context("cannot program the pod network's nftables table")?;
        log::debug!(
            "programmed {} service ports and {} host ports",
            rules.services.len(),
            rules.host_ports.len()
        );
        state.rules = Some(rules);
        Ok(())
    }

    /// Routes (or tunnels) to the pod CIDRs of the fleet's other boards, unless they are
    /// what was programmed last.
    pub fn sync_peers(&self, fleet: &FleetNetwork) -> anyhow::Result<()> {
        let wanted: Vec<peers::Peer> = fleet
            .peers
            .iter()
            .filter_map(|peer| {
                let parsed = (peer.pod_cidr.parse(), peer.address.parse());
                match parsed {
                    (Ok(pod_cidr), Ok(address)) => Some(peers::Peer {
                        name: peer.name.clone(),
                        pod_cidr,
                        address,
                    }),
                    _ => {
                        log::warn!(
                            "ignoring peer {} with pod CIDR {:?} and address {:?}",
                            peer.name,
                            peer.pod_cidr,
                            peer.address
                        );
                        None
                    }
                }
            })
            .collect();
        let mut state = self.state();
        if state.peers.as_ref() == Some(&wanted) {
            return Ok(());
        }
        let local = peers::Local {
            node_ip: self.node_ip,
            pod_cidr: self.pod_cidr,
        };
        let backend = match self.backend {
            NetworkBackend::HostGw => peers::Backend::HostGw,
            NetworkBackend::Vxlan => peers::Backend::Vxlan,
            NetworkBackend::Auto | NetworkBackend::None => peers::Backend::Auto,
        };
        let subnet = peers::local_subnet(self.node_ip)?;
        let routes = peers::plan(backend, &local, subnet, &wanted);
        peers::program(&local, &routes).context("cannot route to the other boards' pods")?;
        log::info!("routes to {} other boards' pods", routes.len());
        state.peers = Some(wanted);
        Ok(())
    }

    /// Serves `zone` from now on, unless it is the one served.
    pub fn sync_zone(&self, zone: Zone) {
        if *self.zone.current() != zone {
            self.zone.replace(zone);
        }
    }
}

/// The board's address: the source address the kernel picks for the default route
/// (a UDP `connect` sends nothing), else the first global IPv4 address.
pub fn detect_node_ip() -> Option<Ipv4Addr> {
    let by_route = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|socket| {
            socket.connect("192.0.2.1:9")?;
            socket.local_addr()
        })
        .ok()
        .and_then(|address| match address.ip() {
            std::net::IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
            _ => None,
        });
    by_route.or_else(|| {
        nix::ifaddrs::getifaddrs()
            .ok()?
            .filter_map(|interface| interface.address)
            .filter_map(|address| address.as_sockaddr_in().map(|sin| sin.ip()))
            .find(|ip| !ip.is_loopback() && !ip.is_link_local())
    })
}

/// `berth agent --cleanup-network`: everything the pod network made, gone.
pub fn cleanup(options: &NetworkOptions) -> anyhow::Result<()> {
    nft::delete_table().context("cannot delete the nftables table")?;
    for name in link::links_with_prefix(link::POD_VETH_PREFIX)? {
        link::delete_link(&name)?;
    }
    peers::remove_all()?;
    link::delete_link(BRIDGE)?;
    log::info!(
        "removed the pod network of {} ({BRIDGE}, pod links, routes, nftables table)",
        options.cluster_cidr
    );
    Ok(())
}
