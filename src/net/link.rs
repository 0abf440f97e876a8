//! Links of the pod network over rtnetlink: the node bridge, a veth pair per pod, routes
//! to other boards' pod CIDRs, and the VXLAN device with its neighbour and forwarding
//! entries. Everything is synchronous and idempotent (calling twice does what calling
//! once did) and works in the calling thread's network namespace, unless a namespace
//! path is given ([`PodLink::netns`]).
//!
//! Every request asks the kernel for an answer and every refusal becomes a [`NetError`]
//! naming the operation and the link (`create veth veth1a2b3c4d: File exists (os error
//! 17)`).

mod pod;
mod route;
mod vxlan;

use std::net::Ipv4Addr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use sha2::{Digest, Sha256};

use super::netlink::Netlink;
use super::netns::write_net_sysctl;
use super::NetError;

pub use pod::{attach_pod, host_veth_name, PodLink, POD_INTERFACE, POD_VETH_PREFIX};
pub use route::{berth_routes, delete_route, replace_route, BERTH_ROUTE_PROTOCOL};
pub use vxlan::{
    delete_fdb, delete_neighbour, ensure_vxlan, replace_fdb, replace_neighbour, Vxlan,
};

/// The longest link name the kernel takes (`IFNAMSIZ` less the terminating NUL).
pub const MAX_LINK_NAME: usize = 15;

/// `ENODEV`: no such link.
const ENODEV: i32 = libc::ENODEV;
/// `EEXIST`: already there.
const EEXIST: i32 = libc::EEXIST;

/// The node bridge every pod's veth hangs off, with the pods' gateway address on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bridge {
    pub name: String,
    pub gateway: Ipv4Addr,
    pub prefix_len: u8,
    pub mtu: u32,
}

/// Makes sure the bridge exists, is up with `mtu`, a fixed MAC address and the gateway
/// address (other addresses on it are left alone), and that this network namespace
/// forwards IPv4 and sends no ICMP redirects out of the bridge.
///
/// The MAC address is derived from the name and set explicitly: left to the kernel, a
/// bridge takes the lowest MAC among its ports and changes it as pods come and go, and a
/// pod that cached the old one loses its gateway until its ARP entry expires (tens of
/// seconds; tests/test_network.rs tells the story on the test network).
pub fn ensure_bridge(bridge: &Bridge) -> Result<(), NetError> {
    check_name(&bridge.name)?;
    let mut netlink = Netlink::open()?;
    // Per board (the gateway differs), though a bridge's MAC never leaves its board.
    let mac = stable_mac(&format!("bridge {} {}", bridge.name, bridge.gateway));
    let link = match find_link(&mut netlink, &bridge.name)? {
        Some(link) => link,
        None => create_bridge(&mut netlink, bridge, mac)?,
    };
    expect_kind(&link, &bridge.name, &InfoKind::Bridge, "bridge")?;
    set_link(
        &mut netlink,
        link.header.index,
        with_mac(&link, mac, vec![LinkAttribute::Mtu(bridge.mtu)]),
        &format!("set up bridge {}", bridge.name),
    )?;
    ensure_address(
        &mut netlink,
        link.header.index,
        bridge.gateway,
        bridge.prefix_len,
        &bridge.name,
    )?;
    // Both are per network namespace. Pods reach a Service on a pod of the same bridge
    // through the gateway; a redirect ("go straight to that pod") would teach them a
    // path that skips the NAT. The `all` switch is ORed in by the kernel and left to
    // the host: the nft table drops redirects to the bridge as well (nft.rs).
    write_net_sysctl("ipv4/ip_forward", "1")?;
    write_net_sysctl(&format!("ipv4/conf/{}/send_redirects", bridge.name), "0")?;
    Ok(())
}

/// `attributes` and the MAC address `mac` unless the link has it already: setting even
/// the same address tells the kernel the address changed, and it flushes the link's
/// neighbour entries, permanent ones included (a VXLAN device's peers).
pub(crate) fn with_mac(
    link: &LinkMessage,
    mac: [u8; 6],
    mut attributes: Vec<LinkAttribute>,
) -> Vec<LinkAttribute> {
    if mac_of(link) != Some(mac) {
        attributes.push(LinkAttribute::Address(mac.to_vec()));
    }
    attributes
}

fn create_bridge(
    netlink: &mut Netlink,
    bridge: &Bridge,
    mac: [u8; 6],
) -> Result<LinkMessage, NetError> {
    let mut message = LinkMessage::default();
    message.attributes = vec![
        LinkAttribute::IfName(bridge.name.clone()),
        LinkAttribute::Mtu(bridge.mtu),
        LinkAttribute::Address(mac.to_vec()),
        LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]),
    ];
    let operation = format!("create bridge {}", bridge.name);
    match netlink.change(
        RouteNetlinkMessage::NewLink(message),
        NLM_F_CREATE | NLM_F_EXCL,
        &operation,
    ) {
        // Created meanwhile by someone else: checked below like any existing link.
        Err(e) if e.errno() == Some(EEXIST) => {}
        result => result?,
    }
    require_link(netlink, &bridge.name, &operation)
}

/// Whether a link of that name exists.
pub fn link_exists(name: &str) -> Result<bool, NetError> {
    check_name(name)?;
    Ok(find_link(&mut Netlink::open()?, name)?.is_some())
}

/// The MAC address of a link, `None` when there is no such link (or it has none).
pub fn link_mac(name: &str) -> Result<Option<[u8; 6]>, NetError> {
    check_name(name)?;
    let link = find_link(&mut Netlink::open()?, name)?;
    Ok(link.as_ref().and_then(mac_of))
}

/// Deletes a link (both ends, for a veth); done already when it is not there.
pub fn delete_link(name: &str) -> Result<(), NetError> {
    check_name(name)?;
    let mut message = LinkMessage::default();
    message.attributes = vec![LinkAttribute::IfName(name.to_owned())];
    let operation = format!("delete link {name}");
    match Netlink::open()?.change(RouteNetlinkMessage::DelLink(message), 0, &operation) {
        Err(e) if e.errno() == Some(ENODEV) => Ok(()),
        result => result,
    }
}

/// The names of the links that start with `prefix` (`veth`: the pods' host ends), to
/// find leftovers of pods that are gone.
pub fn links_with_prefix(prefix: &str) -> Result<Vec<String>, NetError> {
    let links = Netlink::open()?.dump(
        RouteNetlinkMessage::GetLink(LinkMessage::default()),
        "list links",
    )?;
    let mut names: Vec<String> = links
        .iter()
        .filter_map(|reply| match reply {
            RouteNetlinkMessage::NewLink(link) => name_of(link),
            _ => None,
        })
        .filter(|name| name.starts_with(prefix))
        .map(str::to_owned)
        .collect();
    crate::support::sort::sort(&mut names);
    Ok(names)
}

/// Refuses names the kernel would refuse, with a reason a person can act on.
pub(crate) fn check_name(name: &str) -> Result<(), NetError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_LINK_NAME {
        Some("link names have at most 15 bytes")
    } else if name == "." || name == ".." {
        Some("it is reserved")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        Some("link names have no '/', ':' or blanks")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(NetError::InvalidName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A locally administered unicast MAC address that depends only on `seed`.
pub(crate) fn stable_mac(seed: &str) -> [u8; 6] {
    let digest = Sha256::digest(format!("berth {seed}").as_bytes());
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&digest[..6]);
    // Locally administered (bit 1 set), unicast (bit 0 clear).
    mac[0] = (mac[0] & 0xfc) | 0x02;
    mac
}

/// The link of that name, `None` when there is none.
pub(crate) fn find_link(
    netlink: &mut Netlink,
    name: &str,
) -> Result<Option<LinkMessage>, NetError> {
    let mut message = LinkMessage::default();
    message.attributes = vec![LinkAttribute::IfName(name.to_owned())];
    let replies = match netlink.get(
        RouteNetlinkMessage::GetLink(message),
        &format!("look up link {name}"),
    ) {
        Err(e) if e.errno() == Some(ENODEV) => return Ok(None),
        result => result?,
    };
    Ok(replies.into_iter().find_map(|reply| match reply {
        RouteNetlinkMessage::NewLink(link) if name_of(&link) == Some(name) => Some(link),
        _ => None,
    }))
}

/// The link of that name, or an error saying that `operation` needs it.
pub(crate) fn require_link(
    netlink: &mut Netlink,
    name: &str,
    operation: &str,
) -> Result<LinkMessage, NetError> {
    find_link(netlink, name)?.ok_or_else(|| NetError::NoSuchLink {
        operation: operation.to_owned(),
        name: name.to_owned(),
    })
}

/// Sets `attributes` on the link with `index` and brings it up.
pub(crate) fn set_link(
    netlink: &mut Netlink,
    index: u32,
    attributes: Vec<LinkAttribute>,
    operation: &str,
) -> Result<(), NetError> {
    let mut message = LinkMessage::default();
    message.header.index = index;
    message.header.flags = LinkFlags::Up;
    message.header.change_mask = LinkFlags::Up;
    message.attributes = attributes;
    netlink.change(RouteNetlinkMessage::SetLink(message), 0, operation)
}

/// Deletes the link with `index`; done already when it is gone.
pub(crate) fn delete_index(
    netlink: &mut Netlink,
    index: u32,
    operation: &str,
) -> Result<(), NetError> {
    let mut message = LinkMessage::default();
    message.header.index = index;
    match netlink.change(RouteNetlinkMessage::DelLink(message), 0, operation) {
        Err(e) if e.errno() == Some(ENODEV) => Ok(()),
        result => result,
    }
}

/// Adds `address/prefix_len` to the link unless it is there already.
pub(crate) fn ensure_address(
    netlink: &mut Netlink,
    index: u32,
    address: Ipv4Addr,
    prefix_len: u8,
    link_name: &str,
) -> Result<(), NetError> {
    if has_address(netlink, index, address, prefix_len, link_name)? {
        return Ok(());
    }
    let mut message = AddressMessage::default();
    message.header.family = AddressFamily::Inet;
    message.header.prefix_len = prefix_len;
    message.header.index = index;
    message.attributes = vec![
        AddressAttribute::Local(address.into()),
        AddressAttribute::Address(address.into()),
    ];
    netlink.change(
        RouteNetlinkMessage::NewAddress(message),
        NLM_F_CREATE | NLM_F_REPLACE,
        &format!("add address {address}/{prefix_len} to {link_name}"),
    )
}

/// Whether the link has `address/prefix_len`.
pub(crate) fn has_address(
    netlink: &mut Netlink,
    index: u32,
    address: Ipv4Addr,
    prefix_len: u8,
    link_name: &str,
) -> Result<bool, NetError> {
    let mut request = AddressMessage::default();
    request.header.family = AddressFamily::Inet;
    let replies = netlink.dump(
        RouteNetlinkMessage::GetAddress(request),
        &format!("list addresses of {link_name}"),
    )?;
    Ok(replies.iter().any(|reply| {
        match reply {
        RouteNetlinkMessage::NewAddress(found) => {
            found.header.index == index
                && found.header.prefix_len == prefix_len
                && found.attributes.iter().any(|attribute| {
                    matches!(attribute, AddressAttribute::Local(local) if *local == address)
                })
        }
        _ => false,
    }
    }))
}

/// Fails unless the link is of `kind`.
pub(crate) fn expect_kind(
    link: &LinkMessage,
    name: &str,
    kind: &InfoKind,
    wanted: &'static str,
) -> Result<(), NetError> {
    match kind_of(link) {
        Some(found) if found == kind => Ok(()),
        found => Err(NetError::WrongKind {
            name: name.to_owned(),
            found: found.map_or_else(|| "plain link".to_owned(), |kind| kind.to_string()),
            wanted,
        }),
    }
}

pub(crate) fn name_of(link: &LinkMessage) -> Option<&str> {
    link.attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::IfName(name) => Some(name.as_str()),
            _ => None,
        })
}

pub(crate) fn kind_of(link: &LinkMessage) -> Option<&InfoKind> {
    link.attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|info| match info {
                LinkInfo::Kind(kind) => Some(kind),
                _ => None,
            }),
            _ => None,
        })
}

pub(crate) fn mtu_of(link: &LinkMessage) -> Option<u32> {
    link.attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::Mtu(mtu) => Some(*mtu),
            _ => None,
        })
}

pub(crate) fn controller_of(link: &LinkMessage) -> Option<u32> {
    link.attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::Controller(index) => Some(*index),
            _ => None,
        })
}

pub(crate) fn mac_of(link: &LinkMessage) -> Option<[u8; 6]> {
    link.attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::Address(bytes) => <[u8; 6]>::try_from(bytes.as_slice()).ok(),
            _ => None,
        })
}

pub(crate) fn is_up(link: &LinkMessage) -> bool {
    link.header.flags.contains(LinkFlags::Up)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names_the_kernel_would_refuse_are_refused_first() {
        for good in ["berth0", "veth1a2b3c4d", "berth.1", "a23456789012345"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a234567890123456", "a/b", "a b", "a:b", ".", ".."] {
            assert!(
                matches!(check_name(bad), Err(NetError::InvalidName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn stable_macs_are_local_unicast_and_depend_on_the_seed() {
        let mac = stable_mac("bridge berth0");
        assert_eq!(mac, stable_mac("bridge berth0"));
        assert_ne!(mac, stable_mac("bridge berth1"));
        assert_eq!(mac[0] & 0x03, 0x02, "locally administered unicast");
    }
}
