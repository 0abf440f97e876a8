//! Resolver files: the upstream servers the agent forwards to, read from the host's
//! `resolv.conf`, and the `/etc/resolv.conf` and `/etc/hosts` a pod gets, as the kubelet
//! writes them.
//!
//! systemd-resolved's stub (`nameserver 127.0.0.53`) is fine for the agent, which runs
//! in the host's network namespace, but a pod cannot reach the host's loopback: when the
//! host file names only the stub, the upstreams and the `Default` policy use the file
//! resolved writes with the real servers, `/run/systemd/resolve/resolv.conf`, as
//! kubeadm points the kubelet at it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV6};
use std::path::Path;

/// Where systemd-resolved lists the servers it forwards to.
pub const SYSTEMD_RESOLVED_UPSTREAMS: &str = "/run/systemd/resolve/resolv.conf";

/// The most nameservers a resolver uses (glibc's MAXNS); Kubernetes allows as many.
pub const MAX_NAMESERVERS: usize = 3;

/// The most search domains Kubernetes writes, and the most characters of them.
pub const MAX_SEARCHES: usize = 32;
pub const MAX_SEARCH_CHARS: usize = 2048;

/// The longest search domain kept (a DNS-1123 subdomain's limit).
const MAX_DOMAIN_NAME: usize = 253;

/// The search depth Kubernetes sets for cluster DNS, so that `web`, `web.default` and
/// `web.default.svc` all go through the search list first.
const CLUSTER_NDOTS: &str = "ndots:5";

/// `spec.dnsPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsPolicy {
    /// Cluster DNS first, the host's upstreams behind it (through the agent's forwarding).
    ClusterFirst,
    /// ClusterFirst for `hostNetwork` pods too.
    ClusterFirstWithHostNet,
    /// The host's resolver configuration.
    Default,
    /// Only `dnsConfig`.
    None,
}

impl DnsPolicy {
    /// The policy a pod actually gets: in Kubernetes, `ClusterFirst` on a `hostNetwork`
    /// pod means `Default` (only `ClusterFirstWithHostNet` gives such a pod cluster DNS).
    pub fn effective(self, host_network: bool) -> DnsPolicy {
        match self {
            DnsPolicy::ClusterFirst if host_network => DnsPolicy::Default,
            other => other,
        }
    }
}

/// `spec.dnsConfig`, merged into what the policy gives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodDnsConfig {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    /// `options[]`: a name and an optional value (`ndots` and `2`).
    pub options: Vec<(String, Option<String>)>,
}

/// A resolv.conf's contents, in order, as glibc reads them.
#[derive(Debug, Default, PartialEq, Eq)]
struct ResolvConf {
    nameservers: Vec<String>,
    searches: Vec<String>,
    options: Vec<String>,
}

fn parse(text: &str) -> ResolvConf {
    let mut conf = ResolvConf::default();
    for line in text.lines() {
        let line = line.trim_start();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => conf.nameservers.extend(words.next().map(str::to_string)),
            // As in glibc, the last `search` or `domain` line wins; the root ("." ) adds
            // nothing, and trailing dots go (the kubelet does the same).
            Some("search") | Some("domain") => {
                conf.searches = words
                    .map(|w| w.trim_end_matches('.'))
                    .filter(|w| !w.is_empty())
                    .map(str::to_string)
                    .collect();
            }
            Some("options") => conf.options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    conf
}

/// A nameserver line's address on port 53; IPv6 link-local addresses need a numeric
/// scope (`fe80::1%2`), as names cannot be resolved to interfaces here.
fn nameserver_address(text: &str) -> Option<SocketAddr> {
    let (address, scope) = match text.split_once('%') {
        Some((address, scope)) => (address, Some(scope.parse::<u32>().ok()?)),
        None => (text, None),
    };
    match (address.parse::<IpAddr>().ok()?, scope) {
        (IpAddr::V6(ip), Some(scope)) => Some(SocketAddrV6::new(ip, 53, 0, scope).into()),
        (ip, None) => Some(SocketAddr::new(ip, 53)),
        (IpAddr::V4(_), Some(_)) => None,
    }
}

/// The upstream servers a resolv.conf names (the first [`MAX_NAMESERVERS`] usable ones,
/// as glibc), each on port 53.
pub fn upstreams_from(resolv_conf: &str) -> Vec<SocketAddr> {
    parse(resolv_conf)
        .nameservers
        .iter()
        .filter_map(|server| nameserver_address(server))
        .take(MAX_NAMESERVERS)
        .collect()
}

/// Whether `address` is systemd-resolved's stub (127.0.0.53) or proxy (127.0.0.54).
fn is_systemd_stub(address: &SocketAddr) -> bool {
    matches!(address.ip(), IpAddr::V4(ip) if ip == Ipv4Addr::new(127, 0, 0, 53) || ip == Ipv4Addr::new(127, 0, 0, 54))
}

/// The host's effective resolver configuration: the file at `path`, or resolved's list
/// of real servers when `path` names only its stub (and that list is readable and not
/// empty). Empty if nothing is readable.
pub fn host_resolv_conf(path: &Path) -> String {
    host_resolv_conf_with(path, Path::new(SYSTEMD_RESOLVED_UPSTREAMS))
}

fn host_resolv_conf_with(path: &Path, resolved: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let upstreams = upstreams_from(&text);
    if upstreams.is_empty() || !upstreams.iter().all(is_systemd_stub) {
        return text;
    }
    match std::fs::read_to_string(resolved) {
        Ok(real) if !upstreams_from(&real).is_empty() => real,
        _ => text,
    }
}

/// The servers the agent forwards to: those of [`host_resolv_conf`]. Loopback servers
/// stay (the agent runs in the host's network namespace).
pub fn host_upstreams(path: &Path) -> Vec<SocketAddr> {
    upstreams_from(&host_resolv_conf(path))
}

/// The `/etc/resolv.conf` of a pod in `namespace`, as the kubelet composes it:
/// - `ClusterFirst` (and `ClusterFirstWithHostNet`): the cluster DNS server, the search
///   list `<ns>.svc.<domain> svc.<domain> <domain>` followed by the host's, `ndots:5`;
/// - `Default`: the host's configuration (`host_resolv_conf`, which should come from
///   [`host_resolv_conf`] so that it never names systemd-resolved's stub);
/// - `None`: nothing but `dns_config`.
///
/// `dns_config` is then merged in: its nameservers and searches appended (duplicates
/// dropped), its options replacing same-named ones; at most [`MAX_NAMESERVERS`] servers
/// and [`MAX_SEARCHES`] search domains ([`MAX_SEARCH_CHARS`] characters) are kept.
/// Callers apply [`DnsPolicy::effective`] for `hostNetwork` pods first.
pub fn pod_resolv_conf(
    policy: DnsPolicy,
    namespace: &str,
    domain: &str,
    cluster_dns: Ipv4Addr,
    host_resolv_conf: &str,
    dns_config: Option<&PodDnsConfig>,
) -> String {
    let host = parse(host_resolv_conf);
    let domain = domain.trim_matches('.');
    let mut conf = match policy {
        DnsPolicy::ClusterFirst | DnsPolicy::ClusterFirstWithHostNet => ResolvConf {
            nameservers: vec![cluster_dns.to_string()],
            searches: [
                format!("{namespace}.svc.{domain}"),
                format!("svc.{domain}"),
                domain.to_string(),
            ]
            .into_iter()
            .chain(host.searches)
            .collect(),
            options: vec![CLUSTER_NDOTS.to_string()],
        },
        DnsPolicy::Default => host,
        DnsPolicy::None => ResolvConf::default(),
    };
    if let Some(config) = dns_config {
        conf.nameservers.extend(config.nameservers.iter().cloned());
        conf.searches.extend(config.searches.iter().cloned());
        conf.options = merge_options(&conf.options, &config.options);
    }
    dedup(&mut conf.nameservers);
    dedup(&mut conf.searches);
    conf.nameservers.truncate(MAX_NAMESERVERS);
    limit_searches(&mut conf.searches);
    render(&conf)
}

/// Removes later duplicates, keeping the first of each.
fn dedup(items: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    items.retain(|item| seen.insert(item.clone()));
}

/// Keeps the first [`MAX_SEARCHES`] search domains that fit in [`MAX_SEARCH_CHARS`]
/// characters (spaces between them counted), without any longer than a domain name may
/// be (some glibc versions abort on those), as the kubelet trims them.
fn limit_searches(searches: &mut Vec<String>) {
    searches.truncate(MAX_SEARCHES);
    searches.retain(|search| search.len() <= MAX_DOMAIN_NAME);
    let mut used = 0;
    let keep = searches
        .iter()
        .take_while(|search| {
            used += search.len() + usize::from(used > 0);
            used <= MAX_SEARCH_CHARS
        })
        .count();
    searches.truncate(keep);
}

/// Options `name` or `name:value`, with `overrides` replacing same-named ones in place
/// and the new ones appended (the kubelet's merge, in a stable order).
fn merge_options(existing: &[String], overrides: &[(String, Option<String>)]) -> Vec<String> {
    let name_of = |option: &str| option.split(':').next().unwrap_or_default().to_string();
    let render = |(name, value): &(String, Option<String>)| match value {
        Some(value) if !value.is_empty() => format!("{name}:{value}"),
        _ => name.clone(),
    };
    let mut merged: Vec<String> = existing.to_vec();
    for option in overrides {
        match merged.iter_mut().find(|o| name_of(o) == option.0) {
            Some(slot) => *slot = render(option),
            None => merged.push(render(option)),
        }
    }
    dedup(&mut merged);
    merged
}

/// The file's text, in containerd's order: search, nameservers, options.
fn render(conf: &ResolvConf) -> String {
    let mut text = String::new();
    if !conf.searches.is_empty() {
        text.push_str(&format!("search {}\n", conf.searches.join(" ")));
    }
    for server in &conf.nameservers {
        text.push_str(&format!("nameserver {server}\n"));
    }
    if !conf.options.is_empty() {
        text.push_str(&format!("options {}\n", conf.options.join(" ")));
    }
    text
}

/// The `/etc/hosts` of a pod, as the kubelet writes it: the managed-file header, the
/// loopback and IPv6 multicast names, the pod's address with its name, then
/// `hostAliases`. A `hostname` with dots is the pod's fully qualified name (a pod with
/// `subdomain`: `web-0.nginx.default.svc.cluster.local`): the line then has the FQDN
/// and the first label, as the kubelet writes it.
pub fn pod_hosts_file(
    pod_ip: Option<Ipv4Addr>,
    hostname: &str,
    host_aliases: &[(Ipv4Addr, Vec<String>)],
) -> String {
    let mut text = String::from("# Kubernetes-managed hosts file.\n");
    text.push_str("127.0.0.1\tlocalhost\n");
    text.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    text.push_str("fe00::0\tip6-localnet\n");
    text.push_str("fe00::0\tip6-mcastprefix\n");
    text.push_str("fe00::1\tip6-allnodes\n");
    text.push_str("fe00::2\tip6-allrouters\n");
    if let Some(ip) = pod_ip {
        match hostname.split_once('.') {
            Some((short, _)) => text.push_str(&format!("{ip}\t{hostname}\t{short}\n")),
            None => text.push_str(&format!("{ip}\t{hostname}\n")),
        }
    }
    if !host_aliases.is_empty() {
        text.push_str("\n# Entries added by HostAliases.\n");
        for (ip, names) in host_aliases {
            text.push_str(&format!("{ip}\t{}\n", names.join("\t")));
        }
    }
    text
}

#[cfg(test)]
#[path = "resolv_tests.rs"]
mod tests;
