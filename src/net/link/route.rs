//! Routes to other boards' pod CIDRs, in the main table and tagged as berth's own with
//! [`BERTH_ROUTE_PROTOCOL`], so berth lists, replaces and deletes only routes it made and
//! never one the host's own tools added.

use std::net::Ipv4Addr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
    RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{check_name, require_link, NetError, Netlink};
use crate::model::Ipv4Cidr;

/// The `rtm_protocol` of routes berth owns (`ip route` shows it as `proto 190`): 0xbe,
/// a number neither the kernel (`include/uapi/linux/rtnetlink.h`: 0–4 for the kernel's
/// own, 8–19, 42, 99 and 186–189, 192 for routing daemons) nor iproute2's
/// `rt_protos` gives out.
pub const BERTH_ROUTE_PROTOCOL: u8 = 0xbe;

/// `ESRCH`: no such route.
const ESRCH: i32 = libc::ESRCH;

/// Routes `dst` via `via` (out of `dev` when given; `onlink` when `via` is not on any of
/// this board's networks, as a VXLAN peer's address is not), replacing a route to `dst`
/// that is already there.
pub fn replace_route(
    dst: Ipv4Cidr,
    via: Ipv4Addr,
    dev: Option<&str>,
    onlink: bool,
) -> Result<(), NetError> {
    let mut netlink = Netlink::open()?;
    let operation = match dev {
        Some(dev) => format!("replace route {dst} via {via} dev {dev}"),
        None => format!("replace route {dst} via {via}"),
    };
    let index = match dev {
        Some(dev) => {
            check_name(dev)?;
            Some(require_link(&mut netlink, dev, &operation)?.header.index)
        }
        None => None,
    };
    netlink.change(
        RouteNetlinkMessage::NewRoute(route_message(Some(dst), via, index, onlink)),
        NLM_F_CREATE | NLM_F_REPLACE,
        &operation,
    )
}

/// Deletes berth's route to `dst`; done already when there is none (a route to `dst`
/// that berth did not make stays).
pub fn delete_route(dst: Ipv4Cidr) -> Result<(), NetError> {
    let mut message = RouteMessage::default();
    message.header.address_family = AddressFamily::Inet;
    message.header.destination_prefix_length = dst.prefix();
    message.header.table = RouteHeader::RT_TABLE_MAIN;
    message.header.protocol = RouteProtocol::from(BERTH_ROUTE_PROTOCOL);
    // "Any scope": the kernel matches the scope of the route only if one is given.
    message.header.scope = RouteScope::NoWhere;
    message.attributes = vec![RouteAttribute::Destination(RouteAddress::Inet(
        dst.network(),
    ))];
    match Netlink::open()?.change(
        RouteNetlinkMessage::DelRoute(message),
        0,
        &format!("delete route {dst}"),
    ) {
        Err(e) if e.errno() == Some(ESRCH) => Ok(()),
        result => result,
    }
}

/// Berth's routes in the main table: each destination with its gateway.
pub fn berth_routes() -> Result<Vec<(Ipv4Cidr, Ipv4Addr)>, NetError> {
    let mut request = RouteMessage::default();
    request.header.address_family = AddressFamily::Inet;
    let replies = Netlink::open()?.dump(RouteNetlinkMessage::GetRoute(request), "list routes")?;
    let mut routes: Vec<(Ipv4Cidr, Ipv4Addr)> = replies
        .iter()
        .filter_map(|reply| match reply {
            RouteNetlinkMessage::NewRoute(route) => berth_route(route),
            _ => None,
        })
        .collect();
    crate::support::sort::sort(&mut routes);
    Ok(routes)
}

fn berth_route(route: &RouteMessage) -> Option<(Ipv4Cidr, Ipv4Addr)> {
    if route.header.address_family != AddressFamily::Inet
        || u8::from(route.header.protocol) != BERTH_ROUTE_PROTOCOL
        || !is_main_table(route)
    {
        return None;
    }
    let destination = route
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            RouteAttribute::Destination(RouteAddress::Inet(address)) => Some(*address),
            _ => None,
        })
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    let gateway = route
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            RouteAttribute::Gateway(RouteAddress::Inet(address)) => Some(*address),
            _ => None,
        })?;
    let dst = Ipv4Cidr::containing(destination, route.header.destination_prefix_length)?;
    Some((dst, gateway))
}

/// Whether a route is in the main table (the header holds tables below 256; the
/// `RTA_TABLE` attribute, when present, is the authority).
pub(crate) fn is_main_table(route: &RouteMessage) -> bool {
    let table = route
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            RouteAttribute::Table(table) => Some(*table),
            _ => None,
        })
        .unwrap_or(u32::from(route.header.table));
    table == u32::from(RouteHeader::RT_TABLE_MAIN)
}

/// A unicast route of berth's in the main table: to `dst` (the default route when
/// `None`) via `via`, out of link `oif` when given.
pub(crate) fn route_message(
    dst: Option<Ipv4Cidr>,
    via: Ipv4Addr,
    oif: Option<u32>,
    onlink: bool,
) -> RouteMessage {
    let mut message = RouteMessage::default();
    message.header.address_family = AddressFamily::Inet;
    message.header.destination_prefix_length = dst.map_or(0, |dst| dst.prefix());
    message.header.table = RouteHeader::RT_TABLE_MAIN;
    message.header.protocol = RouteProtocol::from(BERTH_ROUTE_PROTOCOL);
    message.header.scope = RouteScope::Universe;
    message.header.kind = RouteType::Unicast;
    if onlink {
        message.header.flags = RouteFlags::Onlink;
    }
    if let Some(dst) = dst {
        message
            .attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(
                dst.network(),
            )));
    }
    message
        .attributes
        .push(RouteAttribute::Gateway(RouteAddress::Inet(via)));
    if let Some(oif) = oif {
        message.attributes.push(RouteAttribute::Oif(oif));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_berths_routes_in_the_main_table_are_listed() {
        let dst: Ipv4Cidr = "10.42.1.0/24".parse().unwrap();
        let via = Ipv4Addr::new(192, 168, 1, 11);
        let ours = route_message(Some(dst), via, Some(3), true);
        assert_eq!(berth_route(&ours), Some((dst, via)));
        assert_eq!(ours.header.flags, RouteFlags::Onlink);

        let mut static_route = ours.clone();
        static_route.header.protocol = RouteProtocol::Static;
        assert_eq!(berth_route(&static_route), None);

        let mut other_table = ours.clone();
        other_table.attributes.push(RouteAttribute::Table(100));
        assert_eq!(berth_route(&other_table), None);

        let mut no_gateway = ours;
        no_gateway
            .attributes
            .retain(|attribute| !matches!(attribute, RouteAttribute::Gateway(_)));
        assert_eq!(berth_route(&no_gateway), None);
    }
}
