//! The pod network settings of a board, from `berth agent`'s flags (k3s' names where k3s
//! has one).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::model::Ipv4Cidr;

/// How pod traffic reaches the other boards of a fleet; `None` turns the pod network
/// off (pods get only loopback, as before berth had one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkBackend {
    /// Direct routes to boards on the same subnet, VXLAN to the others.
    Auto,
    HostGw,
    Vxlan,
    None,
}

impl NetworkBackend {
    pub fn parse(text: &str) -> Result<NetworkBackend, String> {
        match text {
            "auto" => Ok(NetworkBackend::Auto),
            "host-gw" => Ok(NetworkBackend::HostGw),
            "vxlan" => Ok(NetworkBackend::Vxlan),
            "none" => Ok(NetworkBackend::None),
            other => Err(format!(
                "unsupported value {other:?}: supported values: \"auto\", \"host-gw\", \"vxlan\", \"none\""
            )),
        }
    }
}

#[derive(Clone, Debug)]
pub struct NetworkOptions {
    pub backend: NetworkBackend,
    /// Every pod address of the fleet (`--cluster-cidr`, k3s' default 10.42.0.0/16).
    pub cluster_cidr: Ipv4Cidr,
    /// This board's pod addresses (`--pod-cidr`); a lone agent takes the first /24 of
    /// the cluster CIDR, a board in a fleet the one its coordinator hands it.
    pub pod_cidr: Option<Ipv4Cidr>,
    /// `--cluster-domain`, the DNS suffix of Services (`cluster.local`).
    pub cluster_domain: String,
    /// `--node-ip`: the board's address for `status.hostIP` and for the other boards;
    /// by default the source address of its default route.
    pub node_ip: Option<Ipv4Addr>,
    /// `--resolv-conf` (the kubelet's flag): the resolver file whose nameservers the
    /// cluster DNS forwards other names to, and that `dnsPolicy: Default` pods get.
    pub resolv_conf: PathBuf,
}

/// k3s' defaults.
pub const DEFAULT_CLUSTER_CIDR: &str = "10.42.0.0/16";
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
pub const DEFAULT_RESOLV_CONF: &str = "/etc/resolv.conf";

impl Default for NetworkOptions {
    fn default() -> Self {
        NetworkOptions {
            backend: NetworkBackend::Auto,
            cluster_cidr: default_cluster_cidr(),
            pod_cidr: None,
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_owned(),
            node_ip: None,
            resolv_conf: PathBuf::from(DEFAULT_RESOLV_CONF),
        }
    }
}

impl NetworkOptions {
    pub fn enabled(&self) -> bool {
        self.backend != NetworkBackend::None
    }

    /// The pod CIDR of this board: the flag's, else the first /24 of the cluster CIDR.
    pub fn board_pod_cidr(&self) -> Option<Ipv4Cidr> {
        self.pod_cidr.or_else(|| self.cluster_cidr.subnet(24, 0))
    }
}

/// 10.42.0.0/16.
pub fn default_cluster_cidr() -> Ipv4Cidr {
    Ipv4Cidr::containing(Ipv4Addr::new(10, 42, 0, 0), 16).expect("16 is a valid prefix length")
}
