//! The pod network of a board: a bridge (`berth0`) with a veth pair per pod, addresses
//! from the store's IPAM, NAT and Service load balancing in a berth-owned nftables table,
//! cluster DNS on the bridge address, and routes to the other boards' pod CIDRs.
//!
//! This layer talks to the kernel (rtnetlink, `nft`) and to the network (DNS); it knows
//! plain addresses, ports and names, not manifests: the agent turns Pods, Services and
//! Endpoints into the plain tables here.
pub mod dns;
