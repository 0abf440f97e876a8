//! VXLAN between boards that share no subnet, in flannel's scheme: one VXLAN device per
//! board (`berth.1`, no learning, no multicast), and for each peer board
//!
//! - a route `peerPodCIDR via peerVtepIP dev berth.1 onlink` ([`super::replace_route`]),
//! - a permanent neighbour entry `peerVtepIP → peer VTEP MAC` ([`replace_neighbour`]), so
//!   the kernel never has to ARP across the tunnel, and
//! - a forwarding entry `peer VTEP MAC → peer underlay IP` ([`replace_fdb`]), which tells
//!   the device where to send the encapsulated frame.
//!
//! The peer's VTEP address is the network address of its pod CIDR (`10.42.3.0`), which
//! is nobody's pod address; the VTEP MAC is each device's own fixed one.

use std::net::Ipv4Addr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{
    check_name, delete_index, find_link, kind_of, require_link, set_link, stable_mac, with_mac,
    NetError, Netlink,
};

/// `ENOENT`: no such neighbour or forwarding entry.
const ENOENT: i32 = libc::ENOENT;

/// Makes sure the VXLAN device exists with this VNI, local address, UDP port and
/// underlay link, without learning, up with `mtu`; a device of that name with other
/// settings is replaced. Its MAC address is fixed (derived from the name and the local
/// address), so the neighbour entries peers hold for it survive a re-creation.
pub fn ensure_vxlan(
    name: &str,
    vni: u32,
    local: Ipv4Addr,
    port: u16,
    mtu: u32,
    underlay_dev: Option<&str>,
) -> Result<(), NetError> {
    check_name(name)?;
    let mut netlink = Netlink::open()?;
    let operation = format!("create vxlan {name}");
    let underlay = match underlay_dev {
        Some(dev) => {
            check_name(dev)?;
            Some(require_link(&mut netlink, dev, &operation)?.header.index)
        }
        None => None,
    };
    let mut wanted = vec![
        InfoVxlan::Id(vni),
        InfoVxlan::Local(local),
        InfoVxlan::Port(port),
        InfoVxlan::Learning(false),
    ];
    if let Some(index) = underlay {
        wanted.push(InfoVxlan::Link(index));
    }
    let mac = stable_mac(&format!("vxlan {name} {local}"));
    if let Some(existing) = find_link(&mut netlink, name)? {
        if kind_of(&existing) == Some(&InfoKind::Vxlan) && has_settings(&existing, &wanted) {
            return set_link(
                &mut netlink,
                existing.header.index,
                with_mac(&existing, mac, vec![LinkAttribute::Mtu(mtu)]),
                &format!("set up vxlan {name}"),
            );
        }
        // VXLAN settings cannot be changed on a live device: make it again.
        delete_index(
            &mut netlink,
            existing.header.index,
            &format!("delete outdated vxlan {name}"),
        )?;
    }
    let mut message = LinkMessage::default();
    message.header.flags = LinkFlags::Up;
    message.header.change_mask = LinkFlags::Up;
    message.attributes = vec![
        LinkAttribute::IfName(name.to_owned()),
        LinkAttribute::Mtu(mtu),
        LinkAttribute::Address(mac.to_vec()),
        LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vxlan),
            LinkInfo::Data(InfoData::Vxlan(wanted)),
        ]),
    ];
    netlink.change(
        RouteNetlinkMessage::NewLink(message),
        NLM_F_CREATE | NLM_F_EXCL,
        &operation,
    )
}

/// Whether the device's VXLAN settings include all of `wanted`.
fn has_settings(link: &LinkMessage, wanted: &[InfoVxlan]) -> bool {
    let settings = link
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|info| match info {
                LinkInfo::Data(InfoData::Vxlan(settings)) => Some(settings),
                _ => None,
            }),
            _ => None,
        });
    settings.is_some_and(|settings| wanted.iter().all(|setting| settings.contains(setting)))
}

/// Sends frames for `mac` on VXLAN device `dev` to the board at underlay address `dst`
/// (a permanent forwarding entry, replacing one for `mac` that is there).
pub fn replace_fdb(dev: &str, mac: [u8; 6], dst: Ipv4Addr) -> Result<(), NetError> {
    let operation = format!("replace fdb entry {} dst {dst} on {dev}", format_mac(mac));
    neighbour_request(
        dev,
        fdb_message(mac, dst),
        RouteNetlinkMessage::NewNeighbour,
        NLM_F_CREATE | NLM_F_REPLACE,
        &operation,
    )
}

/// Removes the forwarding entry for `mac` to `dst`; done already when it is not there.
pub fn delete_fdb(dev: &str, mac: [u8; 6], dst: Ipv4Addr) -> Result<(), NetError> {
    let operation = format!("delete fdb entry {} dst {dst} on {dev}", format_mac(mac));
    absent_is_done(neighbour_request(
        dev,
        fdb_message(mac, dst),
        RouteNetlinkMessage::DelNeighbour,
        0,
        &operation,
    ))
}

/// Makes `ip` on `dev` resolve to `mac` for good (a permanent neighbour entry,
/// replacing one that is there).
pub fn replace_neighbour(dev: &str, ip: Ipv4Addr, mac: [u8; 6]) -> Result<(), NetError> {
    let operation = format!("replace neighbour {ip} lladdr {} on {dev}", format_mac(mac));
    neighbour_request(
        dev,
        neighbour_message(ip, Some(mac)),
        RouteNetlinkMessage::NewNeighbour,
        NLM_F_CREATE | NLM_F_REPLACE,
        &operation,
    )
}

/// Removes the neighbour entry for `ip` on `dev`; done already when it is not there.
pub fn delete_neighbour(dev: &str, ip: Ipv4Addr) -> Result<(), NetError> {
    let operation = format!("delete neighbour {ip} on {dev}");
    absent_is_done(neighbour_request(
        dev,
        neighbour_message(ip, None),
        RouteNetlinkMessage::DelNeighbour,
        0,
        &operation,
    ))
}

fn absent_is_done(result: Result<(), NetError>) -> Result<(), NetError> {
    match result {
        Err(e) if e.errno() == Some(ENOENT) => Ok(()),
        result => result,
    }
}

/// Sends a neighbour request for link `dev`, its index filled in.
fn neighbour_request(
    dev: &str,
    mut message: NeighbourMessage,
    request: fn(NeighbourMessage) -> RouteNetlinkMessage,
    flags: u16,
    operation: &str,
) -> Result<(), NetError> {
    check_name(dev)?;
    let mut netlink = Netlink::open()?;
    message.header.ifindex = require_link(&mut netlink, dev, operation)?.header.index;
    netlink.change(request(message), flags, operation)
}

/// A bridge-family forwarding entry on the device itself (`NTF_SELF`), as
/// `bridge fdb append <mac> dev <dev> dst <dst>` makes.
fn fdb_message(mac: [u8; 6], dst: Ipv4Addr) -> NeighbourMessage {
    let mut message = NeighbourMessage::default();
    message.header.family = AddressFamily::Bridge;
    message.header.state = NeighbourState::Permanent;
    message.header.flags = NeighbourFlags::Own;
    message.attributes = vec![
        NeighbourAttribute::LinkLayerAddress(mac.to_vec()),
        NeighbourAttribute::Destination(NeighbourAddress::Inet(dst)),
    ];
    message
}

fn neighbour_message(ip: Ipv4Addr, mac: Option<[u8; 6]>) -> NeighbourMessage {
    let mut message = NeighbourMessage::default();
    message.header.family = AddressFamily::Inet;
    message.header.state = NeighbourState::Permanent;
    message.attributes = vec![NeighbourAttribute::Destination(NeighbourAddress::Inet(ip))];
    if let Some(mac) = mac {
        message
            .attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    }
    message
}

/// `02:ab:…` as `ip` prints it.
pub(crate) fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_print_as_ip_prints_them() {
        assert_eq!(
            format_mac([0x02, 0xab, 0, 1, 0x10, 0xff]),
            "02:ab:00:01:10:ff"
        );
    }

    #[test]
    fn a_device_with_other_settings_is_not_taken_for_ours() {
        let wanted = [InfoVxlan::Id(1), InfoVxlan::Port(8472)];
        let mut link = LinkMessage::default();
        link.attributes = vec![LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vxlan),
            LinkInfo::Data(InfoData::Vxlan(vec![
                InfoVxlan::Id(1),
                InfoVxlan::Port(4789),
                InfoVxlan::Learning(false),
            ])),
        ])];
        assert!(!has_settings(&link, &wanted));
        assert!(has_settings(&link, &[InfoVxlan::Id(1)]));
        assert!(!has_settings(&LinkMessage::default(), &[InfoVxlan::Id(1)]));
    }
}
