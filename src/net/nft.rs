//! The board's NAT, Services and hostPorts as one nftables table, `table ip berth`,
//! rendered as `nft` text and replaced as a whole in one transaction (`add table`,
//! `delete table`, the new table), so a half-programmed table is never seen and the
//! host's own tables are never touched.
//!
//! The shape follows kube-proxy's nftables mode:
//!
//! - `nat-prerouting` and `nat-output` (DNAT hooks) jump to `services`, which looks up
//!   `ip daddr . meta l4proto . th dport` in the `service-ips` verdict map (ClusterIPs)
//!   and, for packets to this board's own addresses (`fib daddr type local`),
//!   `meta l4proto . th dport` in `service-nodeports`; then to `host-ports`.
//! - A Service port's chain (`svc-…`) picks an endpoint with
//!   `numgen random mod N vmap { 0 : goto ep-…, … }`; an endpoint's chain (`ep-…`) DNATs
//!   to its address and port. NodePorts go through `ext-…` first, which marks the packet
//!   with [`MASQUERADE_MARK`] so it leaves with this board's address and the reply of a
//!   pod on another board comes back through here to be un-NATed.
//! - A Service port without endpoints is rejected in the filter hooks (TCP reset,
//!   otherwise ICMP host-unreachable) through the `no-endpoint-services` and
//!   `no-endpoint-nodeports` maps, so clients fail at once instead of timing out.
//! - `nat-postrouting` masquerades marked packets, pods' traffic that leaves the cluster
//!   network, and "hairpin" traffic: a pod's connection DNATed back onto the bridge (to
//!   another pod, or itself), whose reply would otherwise go straight back on the bridge,
//!   skipping the un-NAT.
//! - `filter-output` drops ICMP redirects this board would send onto the bridge (see
//!   [`crate::net::link::ensure_bridge`] for why).
//!
//! There is no "accept the bridge's traffic" forward rule: an accept in this table ends
//! only this table's chain, and a host whose own forward chain drops (Docker's iptables
//! policy) still drops. Such a host needs its own rule (Docker's `DOCKER-USER` chain).
//!
//! `nft` is run in the calling thread's network namespace (a child inherits it).

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use super::NetError;
use crate::model::{hex, Ipv4Cidr};

/// The name of berth's table (family `ip`).
pub const TABLE: &str = "berth";

/// The packet mark (bit) of traffic that must leave masqueraded, as kube-proxy's.
pub const MASQUERADE_MARK: u32 = 0x4000;

/// The longest chain name rendered: short enough for any kernel and for `nft list`.
const MAX_CHAIN_NAME: usize = 31;

/// Everything the table holds for one board.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ruleset {
    /// This board's pod network.
    pub pod_cidr: Ipv4Cidr,
    /// The whole fleet's pod network: traffic to it is not masqueraded.
    pub cluster_cidr: Ipv4Cidr,
    /// The node bridge.
    pub bridge: String,
    pub services: Vec<ServicePort>,
    pub host_ports: Vec<HostPort>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// The protocol's name in `nft` text.
    pub fn nft_name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    /// The protocol's name in Kubernetes (`TCP`).
    pub fn kubernetes_name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

/// One port of a Service, with its ready endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// `namespace/name:portname`, for comments and chain names.
    pub id: String,
    /// `None` for a headless Service (nothing to program but a NodePort, if any).
    pub cluster_ip: Option<Ipv4Addr>,
    pub port: u16,
    pub node_port: Option<u16>,
    pub protocol: Protocol,
    pub endpoints: Vec<SocketAddrV4>,
}

/// A container port published on the board (`ports[].hostPort`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    pub host_port: u16,
    /// Only this local address; all of the board's addresses but loopback when `None`.
    pub host_ip: Option<Ipv4Addr>,
    pub protocol: Protocol,
    pub pod_ip: Ipv4Addr,
    pub container_port: u16,
}

/// The table as `nft` text (`table ip berth { … }`).
pub fn render(rules: &Ruleset) -> String {
    let plan = Plan::new(rules);
    let mut out = Text::default();
    out.line(0, &format!("table ip {TABLE} {{"));
    render_maps(&mut out, &plan);
    render_hooks(&mut out, rules);
    render_dispatch(&mut out, rules);
    for service in &plan.programmed {
        render_service(&mut out, service);
    }
    out.line(0, "}");
    out.0
}

/// Replaces berth's table with `rules` in one transaction.
pub fn apply(rules: &Ruleset) -> Result<(), NetError> {
    let script = format!(
        "add table ip {TABLE}\ndelete table ip {TABLE}\n{}",
        render(rules)
    );
    run_nft(&script, "the berth ruleset")
}

/// Removes berth's table; done already when there is none.
pub fn delete_table() -> Result<(), NetError> {
    // `add` first makes the `delete` succeed when the table is absent, in one
    // transaction (`destroy table` needs nft 1.0.8, newer than some boards have).
    run_nft(
        &format!("add table ip {TABLE}\ndelete table ip {TABLE}\n"),
        "deleting table ip berth",
    )
}

fn run_nft(script: &str, what: &'static str) -> Result<(), NetError> {
    run_program("nft", script, what)
}

/// Runs `program -f -` (nft, or a stand-in in tests) with `script` on its input.
fn run_program(program: &str, script: &str, what: &'static str) -> Result<(), NetError> {
    let mut child = Command::new(program)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => NetError::NftMissing { source },
            _ => NetError::Io {
                action: "run",
                path: program.into(),
                source,
            },
        })?;
    // A write error means nft exited early; its status and stderr below say why.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(script.as_bytes());
    }
    let output = child.wait_with_output().map_err(|source| NetError::Io {
        action: "wait for",
        path: program.into(),
        source,
    })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    Err(NetError::Nft {
        what,
        stderr: if stderr.is_empty() {
            output.status.to_string()
        } else {
            stderr
        },
    })
}

/// The Service ports sorted into what the maps and chains need, first one winning
/// where two claim the same address and port (the kernel would refuse the duplicate
/// key and with it the whole table).
struct Plan<'a> {
    /// Service ports with endpoints and something to program (a ClusterIP, a NodePort).
    programmed: Vec<Programmed<'a>>,
    /// `(cluster IP, protocol, port, service id)` of ports without endpoints.
    no_endpoint_ips: Vec<(Ipv4Addr, Protocol, u16, &'a str)>,
    /// `(protocol, node port, service id)` of ports without endpoints.
    no_endpoint_node_ports: Vec<(Protocol, u16, &'a str)>,
}

struct Programmed<'a> {
    service: &'a ServicePort,
    chain: String,
    /// The ClusterIP, unless another port claimed its address and port first.
    cluster_ip: Option<Ipv4Addr>,
    /// The NodePort's chain (`ext-…`) and port, unless claimed first.
    node_port: Option<(String, u16)>,
    /// Endpoint chains and addresses, duplicates dropped.
    endpoints: Vec<(String, SocketAddrV4)>,
}

impl<'a> Plan<'a> {
    fn new(rules: &'a Ruleset) -> Plan<'a> {
        let mut ips = BTreeSet::new();
        let mut node_ports = BTreeSet::new();
        let mut plan = Plan {
            programmed: Vec::new(),
            no_endpoint_ips: Vec::new(),
            no_endpoint_node_ports: Vec::new(),
        };
        for service in &rules.services {
            let protocol = service.protocol;
            let cluster_ip = service
                .cluster_ip
                .filter(|ip| ips.insert((*ip, protocol, service.port)));
            let node_port = service
                .node_port
                .filter(|port| node_ports.insert((protocol, *port)));
            if service.endpoints.is_empty() {
                if let Some(ip) = cluster_ip {
                    plan.no_endpoint_ips
                        .push((ip, protocol, service.port, &service.id));
                }
                if let Some(port) = node_port {
                    plan.no_endpoint_node_ports
                        .push((protocol, port, &service.id));
                }
                continue;
            }
            if cluster_ip.is_none() && node_port.is_none() {
                continue;
            }
            let suffix = chain_suffix(&[&service.id, protocol.nft_name()], &service.id);
            let mut seen = BTreeSet::new();
            let endpoints = service
                .endpoints
                .iter()
                .filter(|endpoint| seen.insert(**endpoint))
                .map(|endpoint| (endpoint_chain(service, endpoint), *endpoint))
                .collect();
            plan.programmed.push(Programmed {
                service,
                chain: chain_name("svc", &suffix),
                cluster_ip,
                node_port: node_port.map(|port| (chain_name("ext", &suffix), port)),
                endpoints,
            });
        }
        plan
    }
}

fn render_maps(out: &mut Text, plan: &Plan) {
    let key3 = "ipv4_addr . inet_proto . inet_service";
    let key2 = "inet_proto . inet_service";
    let service_ips: Vec<String> = plan
        .programmed
        .iter()
        .filter_map(|p| {
            let ip = p.cluster_ip?;
            let s = p.service;
            Some(format!(
                "{ip} . {} . {} : goto {}",
                s.protocol.nft_name(),
                s.port,
                p.chain
            ))
        })
        .collect();
    let service_node_ports: Vec<String> = plan
        .programmed
        .iter()
        .filter_map(|p| {
            let (chain, port) = p.node_port.as_ref()?;
            Some(format!(
                "{} . {port} : goto {chain}",
                p.service.protocol.nft_name()
            ))
        })
        .collect();
    let no_endpoint_ips: Vec<String> = plan
        .no_endpoint_ips
        .iter()
        .map(|(ip, protocol, port, _)| {
            format!(
                "{ip} . {} . {port} : goto reject-service",
                protocol.nft_name()
            )
        })
        .collect();
    let no_endpoint_node_ports: Vec<String> = plan
        .no_endpoint_node_ports
        .iter()
        .map(|(protocol, port, _)| {
            format!("{} . {port} : goto reject-service", protocol.nft_name())
        })
        .collect();
    map(out, "service-ips", key3, &service_ips);
    map(out, "service-nodeports", key2, &service_node_ports);
    map(out, "no-endpoint-services", key3, &no_endpoint_ips);
    map(out, "no-endpoint-nodeports", key2, &no_endpoint_node_ports);
}

fn map(out: &mut Text, name: &str, key: &str, elements: &[String]) {
    out.line(1, &format!("map {name} {{"));
    out.line(2, &format!("type {key} : verdict"));
    if !elements.is_empty() {
        out.line(2, "elements = {");
        for element in elements {
            out.line(3, &format!("{element},"));
        }
        out.line(2, "}");
    }
    out.line(1, "}");
}

/// The base chains, hooked into the kernel.
fn render_hooks(out: &mut Text, rules: &Ruleset) {
    let bridge = quoted(&rules.bridge);
    let pods = rules.pod_cidr;
    let mark = format!("0x{MASQUERADE_MARK:08x}");
    let local = "fib daddr type local ip daddr != 127.0.0.0/8";
    chain(
        out,
        "nat-prerouting",
        "type nat hook prerouting priority dstnat; policy accept;",
        &["jump services".into(), "jump host-ports".into()],
    );
    chain(
        out,
        "nat-output",
        // -100 is `dstnat`, a name older nft accepts only at prerouting.
        "type nat hook output priority -100; policy accept;",
        &["jump services".into(), "jump host-ports".into()],
    );
    chain(
        out,
        "nat-postrouting",
        "type nat hook postrouting priority srcnat; policy accept;",
        &[
            format!(
                "meta mark & {mark} == {mark} meta mark set meta mark ^ {mark} masquerade \
                 comment \"NodePort traffic: replies return through this board\""
            ),
            format!(
                "ct status dnat ip saddr {pods} oifname {bridge} masquerade \
                 comment \"pods reaching pods of this bridge through a Service\""
            ),
            format!(
                "ip saddr {pods} ip daddr != {} oifname != {bridge} masquerade \
                 comment \"pods reaching beyond the cluster network\"",
                rules.cluster_cidr
            ),
        ],
    );
    let services = "ct state new ip daddr . meta l4proto . th dport vmap @no-endpoint-services";
    let node_ports =
        format!("ct state new {local} meta l4proto . th dport vmap @no-endpoint-nodeports");
    chain(
        out,
        "filter-input",
        "type filter hook input priority filter; policy accept;",
        std::slice::from_ref(&node_ports),
    );
    chain(
        out,
        "filter-forward",
        "type filter hook forward priority filter; policy accept;",
        &[services.into()],
    );
    chain(
        out,
        "filter-output",
        "type filter hook output priority filter; policy accept;",
        &[
            services.into(),
            node_ports,
            format!(
                "oifname {bridge} icmp type redirect drop \
                 comment \"pods must keep sending Service traffic through the gateway\""
            ),
        ],
    );
}

/// The regular chains every table has: Service lookup, hostPorts, reject, mark.
fn render_dispatch(out: &mut Text, rules: &Ruleset) {
    let mark = format!("0x{MASQUERADE_MARK:08x}");
    chain(
        out,
        "services",
        "",
        &[
            "ip daddr . meta l4proto . th dport vmap @service-ips".into(),
            "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport \
             vmap @service-nodeports"
                .into(),
        ],
    );
    let host_ports: Vec<String> = rules.host_ports.iter().map(host_port_rule).collect();
    chain(out, "host-ports", "", &host_ports);
    chain(
        out,
        "reject-service",
        "",
        &[
            "meta l4proto tcp reject with tcp reset".into(),
            "reject with icmp type host-unreachable".into(),
        ],
    );
    chain(
        out,
        "mark-for-masquerade",
        "",
        &[format!("meta mark set meta mark | {mark}")],
    );
}

fn host_port_rule(port: &HostPort) -> String {
    let destination = match port.host_ip {
        Some(ip) => format!("ip daddr {ip}"),
        None => "fib daddr type local ip daddr != 127.0.0.0/8".to_owned(),
    };
    let protocol = port.protocol.nft_name();
    format!(
        "{destination} {protocol} dport {} dnat to {}:{} comment \"hostPort {}/{}\"",
        port.host_port,
        port.pod_ip,
        port.container_port,
        port.host_port,
        port.protocol.kubernetes_name()
    )
}

/// A Service port's chains: its NodePort entry, its load balancer, its endpoints.
fn render_service(out: &mut Text, service: &Programmed) {
    let comment = format!("comment {}", quoted(&service.service.id));
    if let Some((ext, _)) = &service.node_port {
        chain(
            out,
            ext,
            "",
            &[
                "jump mark-for-masquerade".into(),
                format!("goto {} {comment}", service.chain),
            ],
        );
    }
    let pick = match service.endpoints.as_slice() {
        [(only, _)] => format!("goto {only} {comment}"),
        endpoints => {
            let choices: Vec<String> = endpoints
                .iter()
                .enumerate()
                .map(|(index, (chain, _))| format!("{index} : goto {chain}"))
                .collect();
            format!(
                "numgen random mod {} vmap {{ {} }} {comment}",
                endpoints.len(),
                choices.join(", ")
            )
        }
    };
    chain(out, &service.chain, "", &[pick]);
    let protocol = service.service.protocol.nft_name();
    for (name, endpoint) in &service.endpoints {
        chain(
            out,
            name,
            "",
            &[format!(
                "meta l4proto {protocol} dnat to {endpoint} {comment}"
            )],
        );
    }
}

fn chain(out: &mut Text, name: &str, hook: &str, rules: &[String]) {
    out.line(1, &format!("chain {name} {{"));
    if !hook.is_empty() {
        out.line(2, hook);
    }
    for rule in rules {
        out.line(2, rule);
    }
    out.line(1, "}");
}

/// `<8 hex digits of the hash of parts>-<readable part>`: unique by the hash, readable
/// by the rest, which keeps only `a-z0-9` and `-`.
fn chain_suffix(parts: &[&str], readable: &str) -> String {
    let digest = Sha256::digest(parts.join("\n").as_bytes());
    let readable: String = readable
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("{}-{readable}", hex::encode(&digest[..4]))
}

/// `<kind>-<suffix>`, cut to [`MAX_CHAIN_NAME`] without a trailing `-`.
fn chain_name(kind: &str, suffix: &str) -> String {
    let mut name = format!("{kind}-{suffix}");
    name.truncate(MAX_CHAIN_NAME);
    while name.ends_with('-') {
        name.pop();
    }
    name
}

fn endpoint_chain(service: &ServicePort, endpoint: &SocketAddrV4) -> String {
    let address = endpoint.ip().to_string().replace('.', "-");
    let suffix = chain_suffix(
        &[
            &service.id,
            service.protocol.nft_name(),
            &endpoint.to_string(),
        ],
        &address,
    );
    chain_name("ep", &suffix)
}

/// A string literal for `nft`: printable ASCII without quotes or backslashes, at most
/// 100 bytes (the kernel keeps 128 of a comment).
fn quoted(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    format!("\"{clean}\"")
}

/// Lines of text, tab-indented as `nft list` prints.
#[derive(Default)]
struct Text(String);

impl Text {
    fn line(&mut self, indent: usize, text: &str) {
        for _ in 0..indent {
            self.0.push('\t');
        }
        self.0.push_str(text);
        self.0.push('\n');
    }
}

#[cfg(test)]
mod tests;
