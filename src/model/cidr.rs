//! IPv4 networks in CIDR notation (`10.42.0.0/16`), for the pod network (issue 13): the
//! cluster CIDR a fleet's pod CIDRs are carved from, a node's pod CIDR its pods' addresses
//! come from, and the service CIDR. Pure: parsing, membership, and carving.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network: its first address and prefix length, host bits always zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Cidr {
    network: Ipv4Addr,
    prefix: u8,
}

/// Why a CIDR text was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("invalid CIDR address {0:?}: expected an IPv4 network such as 10.42.0.0/16")]
    Syntax(String),
    #[error("invalid CIDR address {text:?}: the prefix length must be 0 to 32")]
    Prefix { text: String },
    #[error("invalid CIDR address {text:?}: host bits are set (did you mean {network}?)")]
    HostBits { text: String, network: Ipv4Cidr },
}

impl Ipv4Cidr {
    /// The network of `address` with `prefix` bits, host bits cleared.
    pub fn containing(address: Ipv4Addr, prefix: u8) -> Option<Ipv4Cidr> {
        (prefix <= 32).then(|| Ipv4Cidr {
            network: Ipv4Addr::from(u32::from(address) & mask(prefix)),
            prefix,
        })
    }

    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// How many addresses the network spans, network and broadcast included.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    pub fn contains(&self, address: Ipv4Addr) -> bool {
        u32::from(address) & mask(self.prefix) == u32::from(self.network)
    }

    /// Whether `other` lies wholly inside this network.
    pub fn covers(&self, other: &Ipv4Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.network)
    }

    /// The `index`-th address of the network (0 is the network address), if inside it.
    pub fn nth(&self, index: u64) -> Option<Ipv4Addr> {
        (index < self.size()).then(|| {
            // Inside the network, so it fits in 32 bits.
            Ipv4Addr::from(u32::from(self.network).wrapping_add(index as u32))
        })
    }

    /// Where `address` is in the network (0 for the network address), if inside it.
    pub fn index_of(&self, address: Ipv4Addr) -> Option<u64> {
        self.contains(address)
            .then(|| u64::from(u32::from(address) - u32::from(self.network)))
    }

    /// The `index`-th subnetwork with `prefix` bits (`10.42.0.0/16`, 24, 3 →
    /// `10.42.3.0/24`), if there is one.
    pub fn subnet(&self, prefix: u8, index: u64) -> Option<Ipv4Cidr> {
        if prefix < self.prefix || prefix > 32 {
            return None;
        }
        let count = 1u64 << (prefix - self.prefix);
        if index >= count {
            return None;
        }
        let step = 1u64 << (32 - u32::from(prefix));
        let start = u64::from(u32::from(self.network)) + index * step;
        // Below 2^32: the subnet lies inside this network.
        Ipv4Cidr::containing(Ipv4Addr::from(start as u32), prefix)
    }

    /// The addresses pods may take in a node's pod network: all but the network address,
    /// the first host (the node's bridge, the pods' gateway) and the broadcast address.
    pub fn pod_addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        let last = self.size().saturating_sub(1);
        (2..last).filter_map(|index| self.nth(index))
    }

    /// The node's own address in its pod network: the bridge, the pods' gateway.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        if self.size() >= 4 {
            self.nth(1)
        } else {
            None
        }
    }
}

/// The pod address to hand out next in `network`: the first free one after `last` (the
/// one handed out before), wrapping around, as the CNI host-local allocator does, so an
/// address just freed is not reused at once while connections to it may linger in
/// conntrack. `None` when every pod address is taken.
pub fn next_free_address(
    network: &Ipv4Cidr,
    used: &std::collections::BTreeSet<Ipv4Addr>,
    last: Option<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    let start = last
        .and_then(|last| network.index_of(last))
        .map_or(0, |index| index.saturating_sub(1));
    let candidates: Vec<Ipv4Addr> = network.pod_addresses().collect();
    let start = (start as usize).min(candidates.len());
    let (before, after) = candidates.split_at(start);
    after
        .iter()
        .chain(before)
        .find(|address| !used.contains(address))
        .copied()
}

fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Ipv4Cidr, CidrError> {
        let syntax = || CidrError::Syntax(text.to_owned());
        let (address, prefix) = text.split_once('/').ok_or_else(syntax)?;
        let address: Ipv4Addr = address.parse().map_err(|_| syntax())?;
        let digits =
            !prefix.is_empty() && prefix.len() <= 2 && prefix.bytes().all(|b| b.is_ascii_digit());
        if !digits {
            return Err(syntax());
        }
        let prefix: u8 = prefix.parse().map_err(|_| syntax())?;
        let network = Ipv4Cidr::containing(address, prefix).ok_or_else(|| CidrError::Prefix {
            text: text.to_owned(),
        })?;
        if network.network != address {
            return Err(CidrError::HostBits {
                text: text.to_owned(),
                network,
            });
        }
        Ok(network)
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl serde::Serialize for Ipv4Cidr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Ipv4Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Ipv4Cidr {
        text.parse().unwrap()
    }

    #[test]
    fn parses_and_prints_networks() {
        let net = cidr("10.42.0.0/16");
        assert_eq!(
            (net.network(), net.prefix()),
            (Ipv4Addr::new(10, 42, 0, 0), 16)
        );
        assert_eq!(net.to_string(), "10.42.0.0/16");
        assert_eq!(net.size(), 65536);
        assert_eq!(cidr("0.0.0.0/0").size(), 1 << 32);
        assert_eq!(cidr("192.168.1.7/32").size(), 1);
    }

    #[test]
    fn refuses_what_is_not_a_network_and_says_why() {
        for bad in [
            "10.42.0.0",
            "10.42.0/16",
            "10.42.0.0/",
            "10.42.0.0/+8",
            "x/8",
            "10.42.0.0/16/1",
            "",
        ] {
            assert!(
                matches!(bad.parse::<Ipv4Cidr>(), Err(CidrError::Syntax(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            "10.0.0.0/33".parse::<Ipv4Cidr>(),
            Err(CidrError::Prefix { .. })
        ));
        let err = "10.42.1.5/16".parse::<Ipv4Cidr>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid CIDR address \"10.42.1.5/16\": host bits are set (did you mean 10.42.0.0/16?)"
        );
    }

    #[test]
    fn carves_node_networks_from_the_cluster_network() {
        let cluster = cidr("10.42.0.0/16");
        assert_eq!(cluster.subnet(24, 0), Some(cidr("10.42.0.0/24")));
        assert_eq!(cluster.subnet(24, 3), Some(cidr("10.42.3.0/24")));
        assert_eq!(cluster.subnet(24, 255), Some(cidr("10.42.255.0/24")));
        assert_eq!(cluster.subnet(24, 256), None, "only 256 /24s in a /16");
        assert_eq!(cluster.subnet(8, 0), None, "wider than the network");
        assert!(cluster.covers(&cidr("10.42.7.0/24")));
        assert!(!cluster.covers(&cidr("10.43.0.0/24")));
        assert!(!cidr("10.42.7.0/24").covers(&cluster));
    }

    #[test]
    fn pods_take_neither_the_network_the_gateway_nor_the_broadcast_address() {
        let node = cidr("10.42.3.0/24");
        assert_eq!(node.gateway(), Some(Ipv4Addr::new(10, 42, 3, 1)));
        let pods: Vec<Ipv4Addr> = node.pod_addresses().collect();
        assert_eq!(pods.len(), 253);
        assert_eq!(pods[0], Ipv4Addr::new(10, 42, 3, 2));
        assert_eq!(pods[252], Ipv4Addr::new(10, 42, 3, 254));
        assert!(node.contains(pods[100]) && !node.contains(Ipv4Addr::new(10, 42, 4, 2)));
        assert_eq!(node.index_of(Ipv4Addr::new(10, 42, 3, 9)), Some(9));
        assert_eq!(cidr("10.0.0.0/31").pod_addresses().count(), 0);
        assert_eq!(cidr("10.0.0.0/31").gateway(), None);
    }

    #[test]
    fn the_next_address_follows_the_last_one_and_wraps() {
        let node = cidr("10.42.0.0/29"); // pods: .2 to .6
        let addr = |last: u8| Ipv4Addr::new(10, 42, 0, last);
        let used = |list: &[u8]| -> std::collections::BTreeSet<Ipv4Addr> {
            list.iter().map(|n| addr(*n)).collect()
        };
        assert_eq!(next_free_address(&node, &used(&[]), None), Some(addr(2)));
        assert_eq!(
            next_free_address(&node, &used(&[2]), Some(addr(2))),
            Some(addr(3))
        );
        // .3 was freed, but the next one is still after the last handed out.
        assert_eq!(
            next_free_address(&node, &used(&[2, 4]), Some(addr(4))),
            Some(addr(5))
        );
        assert_eq!(
            next_free_address(&node, &used(&[2, 5, 6]), Some(addr(6))),
            Some(addr(3))
        );
        assert_eq!(
            next_free_address(&node, &used(&[2, 3, 4, 5, 6]), Some(addr(4))),
            None
        );
        // A last address from another network does not matter.
        assert_eq!(
            next_free_address(&node, &used(&[]), Some(Ipv4Addr::new(10, 9, 0, 1))),
            Some(addr(2))
        );
    }
}
