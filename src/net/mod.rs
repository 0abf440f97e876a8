//! The pod network of a board: a bridge (`berth0`) with a veth pair per pod, addresses
//! from the store's IPAM, NAT and Service load balancing in a berth-owned nftables table,
//! cluster DNS on the bridge address, and routes to the other boards' pod CIDRs.
//!
//! This layer talks to the kernel (rtnetlink, `nft`) and to the network (DNS); it knows
//! plain addresses, ports and names, not manifests: the agent turns Pods, Services and
//! Endpoints into the plain tables here.
//!
//! - [`link`]: links, addresses, routes, neighbours and VXLAN over rtnetlink, synchronous
//!   and idempotent, in the calling thread's network namespace.
//! - [`nft`]: the `ip berth` nftables table (NAT, Services, hostPorts), rendered as text
//!   and replaced as a whole by the `nft` program.
//! - [`netns`]: running work inside another network namespace.
//! - [`dns`]: the cluster DNS server, its zone, and pods' resolv.conf and hosts files.

pub mod dns;
mod error;
pub mod link;
mod netlink;
pub mod netns;
pub mod nft;
pub mod peers;

pub use error::NetError;
