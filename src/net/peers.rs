//! Routes to the other boards' pods: every board of a fleet has a pod CIDR, and a pod
//! reaches a pod on another board by its pod IP, without NAT.
//!
//! Per peer board, [`plan`] picks one of two ways, as flannel's backends do:
//!
//! - **Direct** (host-gw): the peer's node address is on this board's own subnet, so a
//!   plain route `peerPodCIDR via peerNodeIP` is enough and costs nothing per packet.
//! - **VXLAN**: the peer is behind a router that knows nothing of pod CIDRs, so pod
//!   traffic is wrapped in UDP (port 8472, VNI 1) by the kernel's VXLAN device
//!   [`VXLAN_DEVICE`]. For each peer: a route `peerPodCIDR via peerVTEP dev berth.1
//!   onlink`, a permanent neighbour entry `peerVTEP → peer VTEP MAC` and a forwarding
//!   entry `peer VTEP MAC → peer node address` (src/net/link/vxlan.rs tells the scheme).
//!   The peer's VTEP address is the network address of its pod CIDR and its MAC is
//!   [`vtep_mac`] of that CIDR, so boards need to exchange nothing beyond what the
//!   coordinator already tells them (pod CIDR and node address).
//!
//! `Auto` decides per peer; `HostGw` and `Vxlan` force one way. A tunnelled packet is
//! [`VXLAN_OVERHEAD`] bytes longer, so pods get a smaller MTU ([`pod_mtu`]) when any
//! peer is behind VXLAN.
//!
//! [`program`] makes the kernel match a plan, idempotently, and takes away what an
//! earlier plan made and this one no longer has: routes are found by berth's route
//! protocol (src/net/link/route.rs), neighbour and forwarding entries by the device.

mod kernel;

use std::collections::HashSet;
use std::net::Ipv4Addr;

use super::link::{self, stable_mac};
use super::NetError;
use crate::model::Ipv4Cidr;

pub use kernel::{local_subnet, uplink_mtu};

/// The VXLAN device of a board (flannel's is `flannel.1`: the VNI after the dot).
pub const VXLAN_DEVICE: &str = "berth.1";
/// The VXLAN network identifier of the pod network.
pub const VXLAN_VNI: u32 = 1;
/// The UDP port of the tunnel: flannel's (and the Linux kernel's historical default),
/// not IANA's 4789, so a firewall rule written for flannel fits berth too.
pub const VXLAN_PORT: u16 = 8472;
/// What VXLAN adds to every packet: outer IPv4 (20), UDP (8), VXLAN (8) and inner
/// Ethernet (14) headers.
pub const VXLAN_OVERHEAD: u32 = 50;
/// The MTU assumed when the link holding the node address cannot be found.
pub const DEFAULT_MTU: u32 = 1500;

/// How pod traffic reaches the other boards (the agent's `--network-backend` without
/// `none`, which means no pod network at all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Direct to peers on this board's subnet, VXLAN to the others.
    Auto,
    /// Direct routes only: peers off this board's subnet are not reachable.
    HostGw,
    /// VXLAN to every peer.
    Vxlan,
}

/// Another board of the fleet, as the coordinator describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The node's name, for log messages.
    pub name: String,
    pub pod_cidr: Ipv4Cidr,
    /// The node's address (its `InternalIP`).
    pub address: Ipv4Addr,
}

/// This board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Local {
    pub node_ip: Ipv4Addr,
    pub pod_cidr: Ipv4Cidr,
}

/// How one peer's pod CIDR is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// `pod_cidr via via`: the peer's node address, on this board's subnet.
    Direct { pod_cidr: Ipv4Cidr, via: Ipv4Addr },
    /// Through [`VXLAN_DEVICE`] to the peer's VTEP (`vtep_ip`, `vtep_mac`), whose
    /// frames go in UDP to its node address `underlay`.
    Vxlan {
        pod_cidr: Ipv4Cidr,
        vtep_ip: Ipv4Addr,
        vtep_mac: [u8; 6],
        underlay: Ipv4Addr,
    },
}

impl Route {
    pub fn pod_cidr(&self) -> Ipv4Cidr {
        match self {
            Route::Direct { pod_cidr, .. } | Route::Vxlan { pod_cidr, .. } => *pod_cidr,
        }
    }

    pub fn is_vxlan(&self) -> bool {
        matches!(self, Route::Vxlan { .. })
    }
}

/// The routes to `peers` (sorted by pod CIDR). `local_subnet` is the subnet of this
/// board's interface holding its node address, `None` when unknown (then `Auto` takes
/// VXLAN, which works across any network, and `HostGw` trusts the operator).
///
/// A peer that would take this board's own pod addresses away (the same node address,
/// a pod CIDR overlapping ours or that of a peer already planned) is left out with a
/// warning, and so is a peer that `HostGw` cannot reach. Peers are taken in name order,
/// so which of two clashing peers wins does not depend on the order they came in. The
/// warnings come with every call: plan when the peers change, not on every pass.
pub fn plan(
    backend: Backend,
    local: &Local,
    local_subnet: Option<Ipv4Cidr>,
    peers: &[Peer],
) -> Vec<Route> {
    let mut sorted: Vec<&Peer> = peers.iter().collect();
    crate::support::sort::sort_by(&mut sorted, |a, b| {
        (&a.name, a.pod_cidr).cmp(&(&b.name, b.pod_cidr))
    });
    let mut routes: Vec<Route> = Vec::new();
    for peer in sorted {
        if let Some(reason) = refusal(local, &routes, peer) {
            log::warn!(
                "not routing to the pods of node {} ({} at {}): {reason}",
                peer.name,
                peer.pod_cidr,
                peer.address
            );
            continue;
        }
        let on_subnet = local_subnet.map(|subnet| subnet.contains(peer.address));
        let direct = match backend {
            Backend::Vxlan => false,
            Backend::Auto => on_subnet == Some(true),
            Backend::HostGw if on_subnet == Some(false) => {
                log::warn!(
                    "not routing to the pods of node {} ({}): its address {} is not on this \
                     board's subnet, which the host-gw backend needs (the auto or vxlan \
                     backend reaches it)",
                    peer.name,
                    peer.pod_cidr,
                    peer.address
                );
                continue;
            }
            Backend::HostGw => true,
        };
        routes.push(if direct {
            Route::Direct {
                pod_cidr: peer.pod_cidr,
                via: peer.address,
            }
        } else {
            Route::Vxlan {
                pod_cidr: peer.pod_cidr,
                vtep_ip: peer.pod_cidr.network(),
                vtep_mac: vtep_mac(&peer.pod_cidr),
                underlay: peer.address,
            }
        });
    }
    crate::support::sort::sort_by_key(&mut routes, Route::pod_cidr);
    routes
}

/// Why a peer gets no route, if it gets none.
fn refusal(local: &Local, planned: &[Route], peer: &Peer) -> Option<String> {
    let overlaps = |a: &Ipv4Cidr, b: &Ipv4Cidr| a.covers(b) || b.covers(a);
    let address = peer.address;
    if address == local.node_ip {
        Some("it has this board's node address".to_owned())
    } else if address.is_unspecified()
        || address.is_loopback()
        || address.is_multicast()
        || address.is_broadcast()
    {
        Some("its node address is not one another board can be reached at".to_owned())
    } else if overlaps(&peer.pod_cidr, &local.pod_cidr) {
        Some(format!(
            "its pod CIDR overlaps this board's {}",
            local.pod_cidr
        ))
    } else if peer.pod_cidr.contains(address) || local.pod_cidr.contains(address) {
        Some("its node address is inside a pod CIDR".to_owned())
    } else {
        planned
            .iter()
            .map(Route::pod_cidr)
            .find(|other| overlaps(&peer.pod_cidr, other))
            .map(|other| format!("its pod CIDR overlaps {other} of another node"))
    }
}

/// The MAC address of the VTEP of the board with `pod_cidr`: locally administered,
/// unicast, and the same on every board that computes it, so a peer's MAC is known
/// without asking the peer.
pub fn vtep_mac(pod_cidr: &Ipv4Cidr) -> [u8; 6] {
    stable_mac(&format!("vtep {pod_cidr}"))
}

/// The MTU pods get: the uplink's, less [`VXLAN_OVERHEAD`] when any peer is reached
/// through VXLAN or the backend is VXLAN (so that a peer joining later behind VXLAN
/// does not need every pod's MTU changed).
pub fn pod_mtu(uplink_mtu: u32, routes: &[Route], backend: Backend) -> u32 {
    if backend == Backend::Vxlan || routes.iter().any(Route::is_vxlan) {
        uplink_mtu.saturating_sub(VXLAN_OVERHEAD)
    } else {
        uplink_mtu
    }
}

/// Makes this network namespace route to the peers as `routes` say, and removes what an
/// earlier call made that `routes` no longer have: berth's routes to other CIDRs, the
/// VXLAN device's other neighbour and forwarding entries, and the device itself when no
/// route needs it. Calling it again with the same routes changes nothing. Every route
/// of berth's protocol in the main table is taken for a route to a peer: one to a CIDR
/// not in `routes` is deleted.
///
/// A route the kernel refuses does not stop the others (one unreachable peer must not
/// cut the board off from the rest): the first refusal is returned after all were
/// tried, the others are logged.
pub fn program(local: &Local, routes: &[Route]) -> Result<(), NetError> {
    let mut errors = Errors::default();
    let tunnelled: Vec<&Route> = routes.iter().filter(|route| route.is_vxlan()).collect();
    let mut device_ready = false;
    if !tunnelled.is_empty() {
        let ensured = uplink_mtu(local.node_ip)
            .and_then(|uplink| kernel::ensure_device(local, uplink.saturating_sub(VXLAN_OVERHEAD)));
        device_ready = ensured.is_ok();
        errors.note(ensured);
    }
    // Without the device the tunnelled routes cannot be made; the direct ones can.
    for route in routes
        .iter()
        .filter(|route| device_ready || !route.is_vxlan())
    {
        errors.note(replace(route));
    }
    let planned: HashSet<Ipv4Cidr> = routes.iter().map(Route::pod_cidr).collect();
    for (destination, _) in link::berth_routes()? {
        if !planned.contains(&destination) {
            errors.note(link::delete_route(destination));
        }
    }
    if tunnelled.is_empty() {
        errors.note(link::delete_link(VXLAN_DEVICE));
    } else if device_ready {
        errors.note(kernel::remove_stale_entries(&tunnelled));
    }
    errors.into_result()
}

/// Puts one route in place; for VXLAN the neighbour and forwarding entries first, so no
/// packet takes the route before the tunnel knows where to send it.
fn replace(route: &Route) -> Result<(), NetError> {
    match *route {
        Route::Direct { pod_cidr, via } => link::replace_route(pod_cidr, via, None, false),
        Route::Vxlan {
            pod_cidr,
            vtep_ip,
            vtep_mac,
            underlay,
        } => {
            link::replace_neighbour(VXLAN_DEVICE, vtep_ip, vtep_mac)?;
            link::replace_fdb(VXLAN_DEVICE, vtep_mac, underlay)?;
            link::replace_route(pod_cidr, vtep_ip, Some(VXLAN_DEVICE), true)
        }
    }
}

/// Removes every route to a peer and the VXLAN device (`berth agent
/// --cleanup-network`).
pub fn remove_all() -> Result<(), NetError> {
    link::delete_link(VXLAN_DEVICE)?;
    for (destination, _) in link::berth_routes()? {
        link::delete_route(destination)?;
    }
    Ok(())
}

/// The first error of several independent steps; the later ones are logged.
#[derive(Default)]
struct Errors {
    first: Option<NetError>,
}

impl Errors {
    fn note(&mut self, result: Result<(), NetError>) {
        if let Err(error) = result {
            if self.first.is_none() {
                self.first = Some(error);
            } else {
                log::warn!("programming the routes to other boards: {error}");
            }
        }
    }

    fn into_result(self) -> Result<(), NetError> {
        self.first.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Ipv4Cidr {
        text.parse().unwrap()
    }

    fn peer(name: &str, pod_cidr: &str, address: [u8; 4]) -> Peer {
        Peer {
            name: name.to_owned(),
            pod_cidr: cidr(pod_cidr),
            address: Ipv4Addr::from(address),
        }
    }

    fn local() -> Local {
        Local {
            node_ip: Ipv4Addr::new(192, 168, 1, 10),
            pod_cidr: cidr("10.42.0.0/24"),
        }
    }

    fn lan() -> Option<Ipv4Cidr> {
        Some(cidr("192.168.1.0/24"))
    }

    fn direct(pod_cidr: &str, via: [u8; 4]) -> Route {
        Route::Direct {
            pod_cidr: cidr(pod_cidr),
            via: Ipv4Addr::from(via),
        }
    }

    fn tunnel(pod_cidr: &str, underlay: [u8; 4]) -> Route {
        let pod_cidr = cidr(pod_cidr);
        Route::Vxlan {
            pod_cidr,
            vtep_ip: pod_cidr.network(),
            vtep_mac: vtep_mac(&pod_cidr),
            underlay: Ipv4Addr::from(underlay),
        }
    }

    #[test]
    fn auto_routes_directly_on_the_subnet_and_tunnels_beyond_it() {
        let peers = [
            peer("far", "10.42.2.0/24", [10, 0, 5, 7]),
            peer("near", "10.42.1.0/24", [192, 168, 1, 11]),
        ];
        let routes = plan(Backend::Auto, &local(), lan(), &peers);
        assert_eq!(
            routes,
            [
                direct("10.42.1.0/24", [192, 168, 1, 11]),
                tunnel("10.42.2.0/24", [10, 0, 5, 7]),
            ]
        );
        let Route::Vxlan {
            vtep_ip, vtep_mac, ..
        } = routes[1]
        else {
            panic!("{routes:?}")
        };
        assert_eq!(vtep_ip, Ipv4Addr::new(10, 42, 2, 0), "flannel-style VTEP");
        assert_eq!(vtep_mac, super::vtep_mac(&cidr("10.42.2.0/24")));

        // Subnet unknown: VXLAN works across any network.
        assert!(plan(Backend::Auto, &local(), None, &peers)
            .iter()
            .all(Route::is_vxlan));
    }

    #[test]
    fn a_forced_backend_applies_to_every_peer_it_can_reach() {
        let peers = [
            peer("near", "10.42.1.0/24", [192, 168, 1, 11]),
            peer("far", "10.42.2.0/24", [10, 0, 5, 7]),
        ];
        assert_eq!(
            plan(Backend::Vxlan, &local(), lan(), &peers),
            [
                tunnel("10.42.1.0/24", [192, 168, 1, 11]),
                tunnel("10.42.2.0/24", [10, 0, 5, 7]),
            ]
        );
        // host-gw cannot reach the far peer: a route via it would be refused.
        assert_eq!(
            plan(Backend::HostGw, &local(), lan(), &peers),
            [direct("10.42.1.0/24", [192, 168, 1, 11])]
        );
        // Without a known subnet the operator's choice stands.
        assert_eq!(
            plan(Backend::HostGw, &local(), None, &peers),
            [
                direct("10.42.1.0/24", [192, 168, 1, 11]),
                direct("10.42.2.0/24", [10, 0, 5, 7]),
            ]
        );
    }

    #[test]
    fn peers_that_would_take_our_own_pods_away_are_left_out() {
        let peers = [
            peer("me-again", "10.42.9.0/24", [192, 168, 1, 10]),
            peer("same-cidr", "10.42.0.0/24", [192, 168, 1, 12]),
            peer("wider", "10.42.0.0/16", [192, 168, 1, 13]),
            peer("inside", "10.42.0.128/25", [192, 168, 1, 14]),
            peer("unspecified", "10.42.5.0/24", [0, 0, 0, 0]),
            peer("loopback", "10.42.6.0/24", [127, 0, 0, 1]),
            peer("in-pods", "10.42.7.0/24", [10, 42, 7, 1]),
            peer("b-good", "10.42.1.0/24", [192, 168, 1, 11]),
            // Clashes with b-good, which comes first by name.
            peer("c-clash", "10.42.1.0/25", [192, 168, 1, 15]),
        ];
        assert_eq!(
            plan(Backend::Auto, &local(), lan(), &peers),
            [direct("10.42.1.0/24", [192, 168, 1, 11])]
        );
        let mut reversed = peers.to_vec();
        reversed.reverse();
        assert_eq!(
            plan(Backend::Auto, &local(), lan(), &reversed),
            [direct("10.42.1.0/24", [192, 168, 1, 11])],
            "the input order does not decide which clashing peer wins"
        );
        assert_eq!(plan(Backend::Auto, &local(), lan(), &[]), []);
    }

    #[test]
    fn vtep_macs_are_local_unicast_and_follow_the_pod_cidr() {
        let a = vtep_mac(&cidr("10.42.1.0/24"));
        assert_eq!(a, vtep_mac(&cidr("10.42.1.0/24")));
        assert_ne!(a, vtep_mac(&cidr("10.42.2.0/24")));
        assert_ne!(a, vtep_mac(&cidr("10.42.1.0/25")));
        assert_eq!(a[0] & 0x03, 0x02, "locally administered unicast");
    }

    #[test]
    fn pods_lose_the_vxlan_overhead_only_when_a_tunnel_may_carry_them() {
        let near = [direct("10.42.1.0/24", [192, 168, 1, 11])];
        let far = [tunnel("10.42.2.0/24", [10, 0, 5, 7]), near[0]];
        assert_eq!(pod_mtu(1500, &near, Backend::Auto), 1500);
        assert_eq!(pod_mtu(1500, &[], Backend::HostGw), 1500);
        assert_eq!(pod_mtu(1500, &far, Backend::Auto), 1450);
        assert_eq!(pod_mtu(9000, &[], Backend::Vxlan), 8950);
        assert_eq!(pod_mtu(40, &far, Backend::Auto), 0, "no underflow");
    }
}
