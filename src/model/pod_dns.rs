//! A pod's names on the network: `dnsPolicy`, `dnsConfig`, `hostname`, `subdomain` and
//! `hostAliases`, with Kubernetes' meaning. The agent turns them into the pod's
//! `/etc/resolv.conf` and `/etc/hosts`.

use serde::{Deserialize, Serialize};

/// `spec.dnsPolicy` when the manifest leaves it out, as in Kubernetes.
pub const DEFAULT_DNS_POLICY: &str = "ClusterFirst";

/// The values `spec.dnsPolicy` may take.
pub const DNS_POLICIES: [&str; 4] = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];

/// `spec.dnsConfig`: resolver settings merged into what `dnsPolicy` gives.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodDnsConfig {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub searches: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<PodDnsConfigOption>,
}

/// One resolver option (`ndots`, `timeout`, `edns0`, ...), with or without a value.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodDnsConfigOption {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `spec.hostAliases[]`: extra lines of the pod's `/etc/hosts`.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HostAlias {
    pub ip: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
}
