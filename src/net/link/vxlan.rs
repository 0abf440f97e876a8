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
//! is nobody's pod address; the VTEP MAC is a fixed one the caller chooses ([`Vxlan::mac`];
//! berth derives it from the pod CIDR, so peers compute it without asking).

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
    check_name, delete_index, find_link, kind_of, mac_of, require_link, set_link, NetError, Netlink,
};

/// `ENOENT`: no such neighbour or forwarding entry.
const ENOENT: i32 = libc::ENOENT;

/// A VXLAN device as [`ensure_vxlan`] makes it: no learning (peers are told, not
/// learnt), no multicast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vxlan<'a> {
    pub name: &'a str,
    pub vni: u32,
    /// The source address of the encapsulated packets.
    pub local: Ipv4Addr,
    /// The UDP port the encapsulated packets go to and come in on.
    pub port: u16,
    /// The index of the link the encapsulated packets leave by; `None` leaves the
    /// choice to the routing table.
    pub underlay: Option<u32>,
    /// The device's MAC address, the one its peers hold in their neighbour entries.
    pub mac: [u8; 6],
    pub mtu: u32,
}

/// Makes sure the VXLAN device exists with these settings, is up and has `mtu`, and
/// returns its link index. A link of that name with other settings or another MAC
/// address is deleted and made again, its neighbour and forwarding entries (and
/// addresses) with it: VXLAN settings cannot be changed on a live device, and setting
/// the MAC would flush the neighbour entries anyway.
pub fn ensure_vxlan(device: &Vxlan<'_>) -> Result<u32, NetError> {
    let name = device.name;
    check_name(name)?;
    let mut netlink = Netlink::open()?;
    let wanted = settings(device);
    if let Some(existing) = find_link(&mut netlink, name)? {
        if is_ours(&existing, &wanted, device.mac) {
            // Only the MTU: the MAC matched, and setting it again would flush the
            // device's neighbour entries.
            set_link(
                &mut netlink,
                existing.header.index,
                vec![LinkAttribute::Mtu(device.mtu)],
                &format!("set up vxlan {name}"),
            )?;
            return Ok(existing.header.index);
        }
        delete_index(
            &mut netlink,
            existing.header.index,
            &format!("delete outdated vxlan {name}"),
        )?;
    }
    let operation = format!("create vxlan {name}");
    let mut message = LinkMessage::default();
    message.header.flags = LinkFlags::Up;
    message.header.change_mask = LinkFlags::Up;
    message.attributes = vec![
        LinkAttribute::IfName(name.to_owned()),
        LinkAttribute::Mtu(device.mtu),
        LinkAttribute::Address(device.mac.to_vec()),
        LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vxlan),
            LinkInfo::Data(InfoData::Vxlan(wanted)),
        ]),
    ];
    netlink.change(
        RouteNetlinkMessage::NewLink(message),
        NLM_F_CREATE | NLM_F_EXCL,
        &operation,
    )?;
    Ok(require_link(&mut netlink, name, &operation)?.header.index)
}

/// The VXLAN settings of `device` as the kernel reports them back.
fn settings(device: &Vxlan<'_>) -> Vec<InfoVxlan> {
    let mut settings = vec![
        InfoVxlan::Id(device.vni),
        InfoVxlan::Local(device.local),
        InfoVxlan::Port(device.port),
        InfoVxlan::Learning(false),
    ];
    if let Some(index) = device.underlay {
        settings.push(InfoVxlan::Link(index));
    }
    settings
}

/// Whether `link` is a VXLAN device with MAC `mac` whose settings include all of
/// `wanted`.
fn is_ours(link: &LinkMessage, wanted: &[InfoVxlan], mac: [u8; 6]) -> bool {
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
    kind_of(link) == Some(&InfoKind::Vxlan)
        && mac_of(link) == Some(mac)
        && settings.is_some_and(|settings| wanted.iter().all(|setting| settings.contains(setting)))
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
    fn a_device_with_other_settings_or_another_mac_is_not_taken_for_ours() {
        let mac = [0x02, 0, 0, 0, 0, 1];
        let wanted = [InfoVxlan::Id(1), InfoVxlan::Port(8472)];
        let mut link = LinkMessage::default();
        link.attributes = vec![
            LinkAttribute::Address(mac.to_vec()),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Vxlan),
                LinkInfo::Data(InfoData::Vxlan(vec![
                    InfoVxlan::Id(1),
                    InfoVxlan::Port(4789),
                    InfoVxlan::Learning(false),
                ])),
            ]),
        ];
        assert!(!is_ours(&link, &wanted, mac), "another port");
        assert!(is_ours(&link, &[InfoVxlan::Id(1)], mac));
        assert!(
            !is_ours(&link, &[InfoVxlan::Id(1)], [0x02, 0, 0, 0, 0, 2]),
            "another MAC"
        );
        // The same settings on a link of another kind.
        link.attributes[1] = LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Vxlan(vec![InfoVxlan::Id(1)])),
        ]);
        assert!(
            !is_ours(&link, &[InfoVxlan::Id(1)], mac),
            "not a VXLAN device"
        );
        let mut bare = LinkMessage::default();
        bare.attributes = vec![LinkAttribute::Address(mac.to_vec())];
        assert!(!is_ours(&bare, &[InfoVxlan::Id(1)], mac), "no settings");
    }
}
