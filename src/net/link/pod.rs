//! A pod on the bridge: a veth pair whose host end hangs off the bridge and whose other
//! end is the pod's `eth0`, with the pod's address and a default route via the gateway.
//!
//! The pair is created in one request with its pod end already inside the pod's
//! namespace and named `eth0` (the peer's own `IFLA_NET_NS_FD`), so there is no moment
//! when a stray peer sits in the host namespace under a temporary name. What remains to
//! be half-made (an agent killed between creating the pair and addressing `eth0`) is
//! found by [`attach_pod`]: it deletes the pair (deleting one end deletes both) and
//! makes it again.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use sha2::{Digest, Sha256};

use super::route::{is_main_table, route_message};
use super::{
    controller_of, delete_index, ensure_address, find_link, has_address, is_up, kind_of, mtu_of,
    require_link, set_link, NetError, Netlink,
};
use crate::model::hex;
use crate::net::netns::in_netns_file;

/// The name of a pod's interface inside its network namespace.
pub const POD_INTERFACE: &str = "eth0";

/// A pod's link: the host end's name, the pod's network namespace (a path such as the
/// sandbox's bind-mounted `ns/net`), its address, gateway and MTU, and the bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodLink {
    pub host_veth: String,
    pub netns: PathBuf,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    pub mtu: u32,
    pub bridge: String,
}

/// The prefix of every pod veth's host end: berth's own, so that cleaning up never
/// touches another program's veths (Docker's and CNI's are `veth…`).
pub const POD_VETH_PREFIX: &str = "bveth";

/// The host end's name for a pod: [`POD_VETH_PREFIX`] and 8 hex digits of the SHA-256 of
/// its UID, stable across agent restarts and within the kernel's 15 bytes.
pub fn host_veth_name(pod_uid: &str) -> String {
    let digest = Sha256::digest(pod_uid.as_bytes());
    format!("{POD_VETH_PREFIX}{}", hex::encode(&digest[..4]))
}

/// Puts the pod on the bridge: creates the veth pair, configures `eth0` inside the pod's
/// namespace and attaches the host end to the bridge. Returns at once when all of it is
/// there already, and repairs a pair that is half made.
pub fn attach_pod(pod: &PodLink) -> Result<(), NetError> {
    super::check_name(&pod.host_veth)?;
    super::check_name(&pod.bridge)?;
    let namespace = File::open(&pod.netns).map_err(|source| NetError::Io {
        action: "open network namespace",
        path: pod.netns.clone(),
        source,
    })?;
    let mut netlink = Netlink::open()?;
    let bridge = require_link(
        &mut netlink,
        &pod.bridge,
        &format!("attach {} to bridge {}", pod.host_veth, pod.bridge),
    )?
    .header
    .index;

    let host = find_link(&mut netlink, &pod.host_veth)?;
    let host_index = host
        .as_ref()
        .filter(|link| kind_of(link) == Some(&InfoKind::Veth))
        .map(|link| link.header.index);
    let inside = in_netns_file(&namespace, &pod.netns, || pod_side(pod, host_index))?;
    // Ready implies the host end is a veth and eth0's peer.
    if let (Some(host), PodSide::Ready) = (&host, inside) {
        return attach_host_end(&mut netlink, pod, host, bridge);
    }

    // Half made, or not made: remove what is there and make it again.
    if let Some(host) = &host {
        delete_index(
            &mut netlink,
            host.header.index,
            &format!("delete half-made veth {}", pod.host_veth),
        )?;
    }
    if inside != PodSide::Absent {
        // An `eth0` that was not the peer of the host end just deleted.
        in_netns_file(&namespace, &pod.netns, || {
            let mut netlink = Netlink::open()?;
            match find_link(&mut netlink, POD_INTERFACE)? {
                Some(link) => delete_index(
                    &mut netlink,
                    link.header.index,
                    &format!("delete stale {POD_INTERFACE} in {}", pod.netns.display()),
                ),
                None => Ok(()),
            }
        })?;
    }
    create_pair(&mut netlink, pod, &namespace, bridge)?;
    let configured = in_netns_file(&namespace, &pod.netns, || configure_pod_side(pod));
    if let Err(error) = configured {
        // Leave nothing half made behind; the next attempt starts clean either way.
        if let Ok(Some(host)) = find_link(&mut netlink, &pod.host_veth) {
            let _ = delete_index(&mut netlink, host.header.index, "delete veth");
        }
        return Err(error);
    }
    Ok(())
}

/// What is inside the pod's namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PodSide {
    /// No `eth0`.
    Absent,
    /// `eth0` is the host end's peer, up, with the MTU, the address and the route.
    Ready,
    /// An `eth0` that is not (all) that.
    Partial,
}

/// Looks at `eth0` in the pod's namespace (run inside it). `host_index` is the host
/// end's index, which the pod end names as its peer link.
fn pod_side(pod: &PodLink, host_index: Option<u32>) -> Result<PodSide, NetError> {
    let mut netlink = Netlink::open()?;
    let Some(eth0) = find_link(&mut netlink, POD_INTERFACE)? else {
        return Ok(PodSide::Absent);
    };
    let index = eth0.header.index;
    let peer = eth0
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::Link(peer) => Some(*peer),
            _ => None,
        });
    let ready = host_index.is_some()
        && peer == host_index
        && is_up(&eth0)
        && mtu_of(&eth0) == Some(pod.mtu)
        && has_address(
            &mut netlink,
            index,
            pod.address,
            pod.prefix_len,
            POD_INTERFACE,
        )?
        && has_default_route(&mut netlink, index, pod.gateway)?;
    Ok(if ready {
        PodSide::Ready
    } else {
        PodSide::Partial
    })
}

/// Creates the pair: the host end with its MTU, on the bridge and up; the pod end
/// already in the pod's namespace as `eth0`.
fn create_pair(
    netlink: &mut Netlink,
    pod: &PodLink,
    namespace: &File,
    bridge: u32,
) -> Result<(), NetError> {
    let mut peer = LinkMessage::default();
    peer.attributes = vec![
        LinkAttribute::IfName(POD_INTERFACE.to_owned()),
        LinkAttribute::Mtu(pod.mtu),
        LinkAttribute::NetNsFd(namespace.as_raw_fd()),
    ];
    let mut message = LinkMessage::default();
    message.header.flags = LinkFlags::Up;
    message.header.change_mask = LinkFlags::Up;
    message.attributes = vec![
        LinkAttribute::IfName(pod.host_veth.clone()),
        LinkAttribute::Mtu(pod.mtu),
        LinkAttribute::Controller(bridge),
        LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]),
    ];
    netlink.change(
        RouteNetlinkMessage::NewLink(message),
        NLM_F_CREATE | NLM_F_EXCL,
        &format!("create veth {}", pod.host_veth),
    )
}

/// Inside the pod's namespace: `eth0` up with the address and the default route.
fn configure_pod_side(pod: &PodLink) -> Result<(), NetError> {
    let mut netlink = Netlink::open()?;
    let operation = format!("configure {POD_INTERFACE} of {}", pod.host_veth);
    let eth0 = require_link(&mut netlink, POD_INTERFACE, &operation)?;
    let index = eth0.header.index;
    set_link(
        &mut netlink,
        index,
        vec![LinkAttribute::Mtu(pod.mtu)],
        &format!("bring up {POD_INTERFACE} of {}", pod.host_veth),
    )?;
    ensure_address(
        &mut netlink,
        index,
        pod.address,
        pod.prefix_len,
        POD_INTERFACE,
    )?;
    netlink.change(
        RouteNetlinkMessage::NewRoute(route_message(None, pod.gateway, Some(index), false)),
        NLM_F_CREATE | NLM_F_REPLACE,
        &format!(
            "add default route via {} in {}",
            pod.gateway,
            pod.netns.display()
        ),
    )
}

/// The host end on the bridge, with the MTU, up: set again when all is there, since the
/// bridge may have been recreated under it.
fn attach_host_end(
    netlink: &mut Netlink,
    pod: &PodLink,
    host: &LinkMessage,
    bridge: u32,
) -> Result<(), NetError> {
    if controller_of(host) == Some(bridge) && mtu_of(host) == Some(pod.mtu) && is_up(host) {
        return Ok(());
    }
    set_link(
        netlink,
        host.header.index,
        vec![
            LinkAttribute::Mtu(pod.mtu),
            LinkAttribute::Controller(bridge),
        ],
        &format!("attach {} to bridge {}", pod.host_veth, pod.bridge),
    )
}

/// Whether the main table has a default route via `gateway` out of link `index`.
fn has_default_route(
    netlink: &mut Netlink,
    index: u32,
    gateway: Ipv4Addr,
) -> Result<bool, NetError> {
    let mut request = RouteMessage::default();
    request.header.address_family = AddressFamily::Inet;
    let replies = netlink.dump(
        RouteNetlinkMessage::GetRoute(request),
        &format!("list routes of {POD_INTERFACE}"),
    )?;
    Ok(replies.iter().any(|reply| match reply {
        RouteNetlinkMessage::NewRoute(route) => {
            route.header.destination_prefix_length == 0
                && is_main_table(route)
                && route.attributes.contains(&RouteAttribute::Oif(index))
                && route
                    .attributes
                    .contains(&RouteAttribute::Gateway(RouteAddress::Inet(gateway)))
        }
        _ => false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::route::RouteHeader;

    #[test]
    fn host_veth_names_are_stable_short_and_distinct() {
        let name = host_veth_name("0b7c2f0e-9f7e-4d3a-8c1e-3f2a1b0c9d8e");
        assert_eq!(name, host_veth_name("0b7c2f0e-9f7e-4d3a-8c1e-3f2a1b0c9d8e"));
        assert_eq!(name.len(), 13);
        assert!(name.len() <= super::super::MAX_LINK_NAME);
        assert!(name.starts_with("bveth"));
        assert!(name[5..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(name, host_veth_name("another-uid"));
        // sha256("abc") begins ba7816bf.
        assert_eq!(host_veth_name("abc"), "bvethba7816bf");
    }

    #[test]
    fn the_pods_default_route_is_in_the_main_table() {
        let route = route_message(None, Ipv4Addr::new(10, 42, 0, 1), Some(7), false);
        assert_eq!(route.header.destination_prefix_length, 0);
        assert_eq!(route.header.table, RouteHeader::RT_TABLE_MAIN);
    }
}
