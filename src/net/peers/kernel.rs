//! What [`super::program`] asks of the kernel beyond src/net/link.rs: the link and
//! subnet holding the node address, the VXLAN device's settings (made by
//! [`link::ensure_vxlan`]) and its VTEP address, and listing the device's neighbour and
//! forwarding entries to remove stale ones.

use std::net::Ipv4Addr;

use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{vtep_mac, Local, Route, DEFAULT_MTU, VXLAN_DEVICE, VXLAN_PORT, VXLAN_VNI};
use crate::model::Ipv4Cidr;
use crate::net::link::{self, ensure_address, find_link, mtu_of, Vxlan};
use crate::net::netlink::Netlink;
use crate::net::NetError;

/// The subnet of the interface holding `node_ip` (`192.168.1.0/24`), `None` when no
/// interface of this network namespace has that address.
pub fn local_subnet(node_ip: Ipv4Addr) -> Result<Option<Ipv4Cidr>, NetError> {
    let address = address_holding(&mut Netlink::open()?, node_ip)?;
    Ok(address.and_then(|(_, prefix_len)| Ipv4Cidr::containing(node_ip, prefix_len)))
}

/// The MTU of the link holding `node_ip`, [`DEFAULT_MTU`] when there is no such link.
pub fn uplink_mtu(node_ip: Ipv4Addr) -> Result<u32, NetError> {
    let mut netlink = Netlink::open()?;
    let Some((index, _)) = address_holding(&mut netlink, node_ip)? else {
        return Ok(DEFAULT_MTU);
    };
    let link = link_by_index(
        &mut netlink,
        index,
        &format!("look up the link of {node_ip}"),
    )?;
    Ok(link.as_ref().and_then(mtu_of).unwrap_or(DEFAULT_MTU))
}

/// The link index and prefix length of the address `ip`, if a link has it.
fn address_holding(netlink: &mut Netlink, ip: Ipv4Addr) -> Result<Option<(u32, u8)>, NetError> {
    let mut request = AddressMessage::default();
    request.header.family = AddressFamily::Inet;
    let replies = netlink.dump(
        RouteNetlinkMessage::GetAddress(request),
        &format!("look up address {ip}"),
    )?;
    Ok(replies.iter().find_map(|reply| match reply {
        RouteNetlinkMessage::NewAddress(found)
            if found.attributes.iter().any(|attribute| {
                // IFA_LOCAL is the board's own address (IFA_ADDRESS the far end of a
                // point-to-point link).
                matches!(attribute, AddressAttribute::Local(local) if *local == ip)
            }) =>
        {
            Some((found.header.index, found.header.prefix_len))
        }
        _ => None,
    }))
}

fn link_by_index(
    netlink: &mut Netlink,
    index: u32,
    operation: &str,
) -> Result<Option<LinkMessage>, NetError> {
    let mut message = LinkMessage::default();
    message.header.index = index;
    let replies = match netlink.get(RouteNetlinkMessage::GetLink(message), operation) {
        Err(e) if e.errno() == Some(libc::ENODEV) => return Ok(None),
        result => result?,
    };
    Ok(replies.into_iter().find_map(|reply| match reply {
        RouteNetlinkMessage::NewLink(link) if link.header.index == index => Some(link),
        _ => None,
    }))
}

/// Makes sure [`VXLAN_DEVICE`] is up with `mtu`: VNI [`VXLAN_VNI`], UDP port
/// [`VXLAN_PORT`], no learning (peers are told, not learnt), the node address as its
/// source and its link as the underlay, the MAC [`vtep_mac`] of this board's pod CIDR
/// and the network address of the pod CIDR as a /32 (flannel's scheme: the source of
/// what the board itself sends to other boards' pods, and the VTEP address peers route
/// to). A device with other settings or another MAC (the pod CIDR changed) is made
/// again, its entries with it; [`super::program`] puts them back.
pub(super) fn ensure_device(local: &Local, mtu: u32) -> Result<(), NetError> {
    let mut netlink = Netlink::open()?;
    let underlay = address_holding(&mut netlink, local.node_ip)?.map(|(index, _)| index);
    let index = link::ensure_vxlan(&Vxlan {
        name: VXLAN_DEVICE,
        vni: VXLAN_VNI,
        local: local.node_ip,
        port: VXLAN_PORT,
        underlay,
        mac: vtep_mac(&local.pod_cidr),
        mtu,
    })?;
    ensure_address(
        &mut netlink,
        index,
        local.pod_cidr.network(),
        32,
        VXLAN_DEVICE,
    )
}

/// Deletes the neighbour entries of [`VXLAN_DEVICE`] for addresses no route in
/// `tunnelled` goes via, and its forwarding entries for a MAC and destination no route
/// has (a peer that left, or one whose node address changed).
pub(super) fn remove_stale_entries(tunnelled: &[&Route]) -> Result<(), NetError> {
    let mut netlink = Netlink::open()?;
    let Some(device) = find_link(&mut netlink, VXLAN_DEVICE)? else {
        return Ok(());
    };
    let mut vteps = Vec::new();
    let mut forwards = Vec::new();
    for route in tunnelled {
        if let Route::Vxlan {
            vtep_ip,
            vtep_mac,
            underlay,
            ..
        } = route
        {
            vteps.push(*vtep_ip);
            forwards.push((*vtep_mac, *underlay));
        }
    }
    let index = device.header.index;
    for (ip, _) in entries(&mut netlink, AddressFamily::Inet, index)? {
        if !vteps.contains(&ip) {
            link::delete_neighbour(VXLAN_DEVICE, ip)?;
        }
    }
    for (ip, mac) in entries(&mut netlink, AddressFamily::Bridge, index)? {
        if let Some(mac) = mac.filter(|mac| !forwards.contains(&(*mac, ip))) {
            link::delete_fdb(VXLAN_DEVICE, mac, ip)?;
        }
    }
    Ok(())
}

/// A neighbour or forwarding entry: its IPv4 destination and its MAC address.
type Entry = (Ipv4Addr, Option<[u8; 6]>);

/// The neighbour (`Inet`) or forwarding (`Bridge`) entries of link `index`: each
/// entry's IPv4 destination (the neighbour's address; the remote of a forwarding entry)
/// and MAC address. Entries without an IPv4 destination are left out.
fn entries(
    netlink: &mut Netlink,
    family: AddressFamily,
    index: u32,
) -> Result<Vec<Entry>, NetError> {
    let mut request = NeighbourMessage::default();
    request.header.family = family;
    let what = if family == AddressFamily::Bridge {
        "forwarding"
    } else {
        "neighbour"
    };
    let replies = netlink.dump(
        RouteNetlinkMessage::GetNeighbour(request),
        &format!("list the {what} entries of {VXLAN_DEVICE}"),
    )?;
    Ok(replies
        .iter()
        .filter_map(|reply| match reply {
            RouteNetlinkMessage::NewNeighbour(entry)
                if entry.header.ifindex == index && entry.header.family == family =>
            {
                entry_of(entry)
            }
            _ => None,
        })
        .collect())
}

fn entry_of(entry: &NeighbourMessage) -> Option<Entry> {
    let ip = entry
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(*ip),
            // The decoder knows no address family for bridge (forwarding) entries and
            // hands over the bytes: four of them are an IPv4 remote.
            NeighbourAttribute::Destination(NeighbourAddress::Other(bytes)) => {
                <[u8; 4]>::try_from(bytes.as_slice())
                    .ok()
                    .map(Ipv4Addr::from)
            }
            _ => None,
        })?;
    let mac = entry
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            NeighbourAttribute::LinkLayerAddress(bytes) => {
                <[u8; 6]>::try_from(bytes.as_slice()).ok()
            }
            _ => None,
        });
    Some((ip, mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_without_an_ipv4_destination_are_left_out() {
        let mac = [2, 0, 0, 0, 0, 1];
        let mut entry = NeighbourMessage::default();
        entry.attributes = vec![
            NeighbourAttribute::LinkLayerAddress(mac.to_vec()),
            NeighbourAttribute::Destination(NeighbourAddress::Inet(Ipv4Addr::new(10, 0, 0, 2))),
        ];
        assert_eq!(
            entry_of(&entry),
            Some((Ipv4Addr::new(10, 0, 0, 2), Some(mac)))
        );
        // A forwarding entry's remote, as the decoder gives it.
        entry.attributes[1] =
            NeighbourAttribute::Destination(NeighbourAddress::Other(vec![172, 20, 0, 5]));
        assert_eq!(
            entry_of(&entry),
            Some((Ipv4Addr::new(172, 20, 0, 5), Some(mac)))
        );
        entry.attributes[1] = NeighbourAttribute::Destination(NeighbourAddress::Other(vec![0; 16]));
        assert_eq!(entry_of(&entry), None, "an IPv6 remote is not ours");
        entry.attributes.remove(1);
        assert_eq!(entry_of(&entry), None);
    }
}
