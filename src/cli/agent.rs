//! `berth agent`: runs the single-board orchestrator in the foreground.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::agent::{AgentOptions, FleetJoin, NetworkBackend, NetworkOptions};
use crate::api::tokens::JoinToken;
use crate::model::{is_dns1123_subdomain, validate_label_key, validate_label_value, Ipv4Cidr};

#[derive(clap::Args, Debug)]
pub struct AgentArgs {
    /// Where the agent keeps everything: store, images, containers, logs, socket. Localhost
    /// seccomp profiles go in its seccomp/ dir (the kubelet's /var/lib/kubelet/seccomp)
    #[arg(long, default_value = "/var/lib/berth")]
    pub state_dir: PathBuf,
    /// Directory of manifests applied at start and whenever its files change
    #[arg(long)]
    pub manifests: Option<PathBuf>,
    /// Name of this node (default: the hostname)
    #[arg(long)]
    pub node_name: Option<String>,
    /// Parent cgroup of every container of this agent
    #[arg(long, default_value = "berth")]
    pub cgroup_parent: String,
    /// First delay of the crash-loop back-off, a duration (300ms, 10s, 5m; a bare number is seconds)
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = super::duration_flag)]
    pub restart_backoff_base: Duration,
    /// Longest crash-loop back-off, a duration
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = super::duration_flag)]
    pub restart_backoff_max: Duration,
    /// Board profile (board-configs/*.yaml) to check this machine against
    #[arg(long, value_name = "FILE")]
    pub board: Option<PathBuf>,
    /// Registry mirrors, credentials and TLS (k3s registries.yaml format)
    #[arg(long, value_name = "FILE", default_value = DEFAULT_REGISTRIES)]
    pub registries: PathBuf,
    /// Join the coordinator at this address (https://host:port); needs --token. Several
    /// coordinators of one fleet, comma-separated, give failover
    #[arg(long, value_name = "URLS")]
    pub join: Option<String>,
    /// Join token from `berth token create` (or env BERTH_TOKEN); used with --join
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Labels this node registers with, like the kubelet's: key=value,key2=value2
    #[arg(long, value_name = "K=V,...")]
    pub node_labels: Option<String>,
    /// Devices this board has, as extended resources pods request in their limits:
    /// example.com/dongle=1,berth.dev/camera=1
    #[arg(long, value_name = "NAME=COUNT,...")]
    pub extended_resources: Option<String>,
    /// Most bytes one image may unpack to, all layers together: a quantity (16Gi, 500Mi)
    #[arg(long, value_name = "QUANTITY", default_value = "16Gi", value_parser = quantity_flag)]
    pub max_unpacked_image_size: u64,
    /// Most files (tar entries) one image may unpack to, all layers together
    #[arg(long, value_name = "N", default_value_t = crate::image::UnpackLimits::default().max_entries)]
    pub max_image_files: u64,
    /// Key file for Secrets at rest, created (0600) if missing (default: STATE_DIR/secrets.key)
    #[arg(long, value_name = "FILE")]
    pub encryption_key_file: Option<PathBuf>,
    /// Directory the local-path storage class makes PersistentVolumeClaims' directories in
    /// (default: STATE_DIR/storage)
    #[arg(long, value_name = "DIR")]
    pub local_path: Option<PathBuf>,
    /// Pod Security level (privileged, baseline, restricted) of namespaces without the
    /// pod-security.kubernetes.io/enforce label
    #[arg(long, value_name = "LEVEL", default_value = "baseline", value_parser = super::pod_security_level_flag)]
    pub pod_security_level: crate::model::PodSecurityLevel,
    /// How pods reach the other boards: auto (host-gw on a shared subnet, else vxlan),
    /// host-gw, vxlan, or none (no pod network: pods get only loopback)
    #[arg(long, value_name = "BACKEND", default_value = "auto", value_parser = NetworkBackend::parse)]
    pub network_backend: NetworkBackend,
    /// The pod addresses of the whole fleet
    #[arg(long, value_name = "CIDR", default_value = crate::agent::network_options::DEFAULT_CLUSTER_CIDR)]
    pub cluster_cidr: Ipv4Cidr,
    /// This board's pod addresses (default: the first /24 of --cluster-cidr; a board in a
    /// fleet gets its own from the coordinator)
    #[arg(long, value_name = "CIDR")]
    pub pod_cidr: Option<Ipv4Cidr>,
    /// DNS domain of Services and pods
    #[arg(long, value_name = "DOMAIN", default_value = crate::agent::network_options::DEFAULT_CLUSTER_DOMAIN)]
    pub cluster_domain: String,
    /// This board's address (default: the source address of its default route)
    #[arg(long, value_name = "IP")]
    pub node_ip: Option<std::net::Ipv4Addr>,
    /// Resolver file whose nameservers the cluster DNS forwards other names to (a
    /// systemd-resolved stub is followed to its upstreams)
    #[arg(long, value_name = "FILE", default_value = crate::agent::network_options::DEFAULT_RESOLV_CONF)]
    pub resolv_conf: PathBuf,
    /// Remove everything the pod network made on this machine (bridge, veths, routes,
    /// nftables table) and exit: for uninstalling
    #[arg(long)]
    pub cleanup_network: bool,
    /// IPv4 network the cluster IPs of Services come from
    #[arg(long, value_name = "CIDR", default_value = "10.43.0.0/16", value_parser = super::service_cidr_flag)]
    pub service_cidr: crate::model::Ipv4Cidr,
    /// Ports NodePort Services may use on this board, LOW-HIGH
    #[arg(long, value_name = "RANGE", default_value = "30000-32767", value_parser = super::node_port_range_flag)]
    pub service_node_port_range: (u16, u16),
}

/// A byte quantity flag, as in manifests: `16Gi`, `512Mi`, `1G`.
fn quantity_flag(text: &str) -> Result<u64, String> {
    crate::model::parse_memory_bytes(text)
}

/// `--node-labels`: label rules of Kubernetes; in the `kubernetes.io/` and `k8s.io/`
/// namespaces only what a node may set (`topology.kubernetes.io/zone`, ...), and not
/// arch, os and hostname, which the agent sets.
fn parse_node_labels(text: Option<&str>) -> anyhow::Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(labels);
    };
    for term in text.split(',') {
        let (key, value) = term
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--node-labels {term:?}: expected key=value"))?;
        let (key, value) = (key.trim(), value.trim());
        validate_label_key(key).map_err(|e| anyhow::anyhow!("--node-labels {key:?}: {e}"))?;
        validate_label_value(value)
            .map_err(|e| anyhow::anyhow!("--node-labels {key}={value:?}: {e}"))?;
        // As the kubelet's flag: Kubernetes' own labels only where a node may set them
        // (zone, region, instance type), and not those the agent sets itself.
        if AGENT_SET_LABELS.contains(&key) {
            anyhow::bail!("--node-labels {key:?}: this label is set by the agent");
        }
        if !crate::model::node_may_set_label(key) {
            anyhow::bail!(
                "--node-labels {key:?}: a node may not set this label (Kubernetes' NodeRestriction)"
            );
        }
        labels.insert(key.to_owned(), value.to_owned());
    }
    Ok(labels)
}

/// `--extended-resources`: `name=count` pairs; names as Kubernetes' extended resources
/// (a domain outside kubernetes.io), counts whole numbers.
fn parse_extended_resources(text: Option<&str>) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut resources = BTreeMap::new();
    for term in text
        .unwrap_or("")
        .split(',')
        .filter(|t| !t.trim().is_empty())
    {
        let (name, count) = term
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--extended-resources {term:?}: expected name=count"))?;
        let (name, count) = (name.trim(), count.trim());
        if !crate::model::is_extended_resource(name) {
            anyhow::bail!(
                "--extended-resources {name:?}: not an extended resource name (a domain outside \
                 kubernetes.io, then /name: example.com/dongle)"
            );
        }
        let count = crate::model::parse_count(count)
            .map_err(|e| anyhow::anyhow!("--extended-resources {name}={count:?}: {e}"))?;
        resources.insert(name.to_owned(), count);
    }
    Ok(resources)
}

/// The labels the agent gives its node from what it finds.
const AGENT_SET_LABELS: [&str; 5] = [
    "kubernetes.io/hostname",
    "kubernetes.io/arch",
    "kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/os",
];

/// Where the join token may come from instead of the command line, which other users of
/// the machine can read in the process list.
const TOKEN_ENV: &str = "BERTH_TOKEN";

/// The registries file read when `--registries` is not given; it may be absent.
const DEFAULT_REGISTRIES: &str = "/etc/berth/registries.yaml";

pub fn run(args: AgentArgs) -> anyhow::Result<()> {
    if !args.cleanup_network {
        with_malloc_tunables();
    }
    let node_name = match args.node_name {
        Some(name) => name,
        None => nix::unistd::gethostname()?.to_string_lossy().into_owned(),
    };
    let join = join_options(args.join, args.token, std::env::var(TOKEN_ENV).ok())?;
    let options = AgentOptions {
        state_dir: args.state_dir,
        manifests_dir: args.manifests,
        node_name,
        cgroup_parent: args.cgroup_parent,
        backoff_base: args.restart_backoff_base,
        backoff_max: args.restart_backoff_max,
        board: args.board,
        // A missing default file means no settings; a missing named file is an error.
        registries: if args.registries == std::path::Path::new(DEFAULT_REGISTRIES)
            && !args.registries.exists()
        {
            None
        } else {
            Some(args.registries)
        },
        join,
        node_labels: parse_node_labels(args.node_labels.as_deref())?,
        extended_resources: parse_extended_resources(args.extended_resources.as_deref())?,
        unpack_limits: crate::image::UnpackLimits {
            max_bytes: args.max_unpacked_image_size,
            max_entries: args.max_image_files,
        },
        encryption_key_file: args.encryption_key_file,
        local_path: args.local_path,
        pod_security_level: args.pod_security_level,
        network: network_options(
            args.network_backend,
            args.cluster_cidr,
            args.pod_cidr,
            args.cluster_domain,
            args.node_ip,
            args.resolv_conf,
        )?,
        service_cidr: args.service_cidr,
        node_port_range: args.service_node_port_range,
    };
    if args.cleanup_network {
        return crate::agent::cleanup_network(&options);
    }
    crate::agent::run(options)
}

/// glibc's malloc keeps up to seven freed chunks of every small size per thread (its
/// tcache), out of reach of `malloc_trim`: in an agent that parses its Services and pods
/// on every pass that held 0.8 MiB of a 3 MiB heap. glibc reads that limit only from
/// `GLIBC_TUNABLES` when a process starts, so the agent starts itself again once with it
/// set (before any thread exists); its shims inherit it. Containers get their own
/// environment. When the re-execution fails the agent runs as it is.
fn with_malloc_tunables() {
    #[cfg(target_env = "gnu")]
    {
        use std::os::unix::process::CommandExt;
        const VARIABLE: &str = "GLIBC_TUNABLES";
        const TCACHE: &str = "glibc.malloc.tcache_count=0";
        let current = std::env::var(VARIABLE).unwrap_or_default();
        if current.contains("glibc.malloc.tcache_count") {
            return;
        }
        let value = if current.is_empty() {
            TCACHE.to_owned()
        } else {
            format!("{current}:{TCACHE}")
        };
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let err = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(VARIABLE, value)
            .exec();
        log::warn!("cannot restart the agent with its malloc settings: {err}");
    }
}

/// The pod network flags, checked against each other.
fn network_options(
    backend: NetworkBackend,
    cluster_cidr: Ipv4Cidr,
    pod_cidr: Option<Ipv4Cidr>,
    cluster_domain: String,
    node_ip: Option<std::net::Ipv4Addr>,
    resolv_conf: PathBuf,
) -> anyhow::Result<NetworkOptions> {
    if let Some(pod_cidr) = pod_cidr {
        if !cluster_cidr.covers(&pod_cidr) {
            anyhow::bail!("--pod-cidr {pod_cidr} is not inside --cluster-cidr {cluster_cidr}");
        }
    }
    let domain = cluster_domain.trim_end_matches('.').to_owned();
    if !is_dns1123_subdomain(&domain) {
        anyhow::bail!("--cluster-domain {cluster_domain:?}: must be a lowercase DNS name such as cluster.local");
    }
    if cluster_cidr.prefix() > 24 && pod_cidr.is_none() {
        anyhow::bail!(
            "--cluster-cidr {cluster_cidr}: must be a /24 or larger (each board takes a /24 of it)"
        );
    }
    Ok(NetworkOptions {
        backend,
        cluster_cidr,
        pod_cidr,
        cluster_domain: domain,
        node_ip,
        resolv_conf,
    })
}

/// `--join` and `--token` go together; the token may also come from the environment
/// (only when `--join` is given, so a stray variable never makes a standalone agent fail).
fn join_options(
    server: Option<String>,
    token: Option<String>,
    token_from_env: Option<String>,
) -> anyhow::Result<Option<FleetJoin>> {
    let (server, token) = match (server, token) {
        (None, None) => return Ok(None),
        (None, Some(_)) => anyhow::bail!("--token needs --join URL"),
        (Some(server), Some(token)) => (server, token),
        (Some(server), None) => match token_from_env.filter(|t| !t.trim().is_empty()) {
            Some(token) => (server, token),
            None => anyhow::bail!("--join needs --token TOKEN (or {TOKEN_ENV} in the environment)"),
        },
    };
    // Several coordinators of one fleet, comma-separated: the agent moves to the next
    // when the one it talks to stops answering.
    let urls: Vec<&str> = server.split(',').map(str::trim).collect();
    if let Some(bad) = urls.iter().find(|url| !url.starts_with("https://")) {
        anyhow::bail!("--join {bad:?}: a coordinator address starts with https://");
    }
    let server = urls.join(",");
    let token =
        JoinToken::parse(&token).map_err(|err| anyhow::anyhow!("invalid join token: {err}"))?;
    Ok(Some(FleetJoin { server, token }))
}

#[cfg(test)]
mod tests {

    #[test]
    fn extended_resources_are_named_counts() {
        let resources =
            super::parse_extended_resources(Some("example.com/dongle=1, berth.dev/camera=2"))
                .unwrap();
        assert_eq!(resources["example.com/dongle"], 1);
        assert_eq!(resources["berth.dev/camera"], 2);
        for bad in [
            "dongle=1",
            "kubernetes.io/x=1",
            "example.com/dongle=0.5",
            "example.com/d",
        ] {
            assert!(super::parse_extended_resources(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn node_labels_follow_the_kubelets_rules() {
        let labels = super::parse_node_labels(Some(
            "zone=greenhouse-2, berth.dev/row=3, topology.kubernetes.io/zone=north",
        ))
        .unwrap();
        assert_eq!(labels["zone"], "greenhouse-2");
        assert_eq!(labels["topology.kubernetes.io/zone"], "north");
        assert_eq!(labels["berth.dev/row"], "3");
        assert!(super::parse_node_labels(None).unwrap().is_empty());
        for bad in [
            "zone",
            "bad key=x",
            "zone=bad value",
            "kubernetes.io/arch=arm64",
            "node-restriction.kubernetes.io/x=y",
            "example.kubernetes.io/x=y",
        ] {
            assert!(super::parse_node_labels(Some(bad)).is_err(), "{bad}");
        }
    }

    use super::*;

    #[test]
    fn service_network_flags_take_k3s_forms() {
        use crate::cli::{node_port_range_flag, service_cidr_flag};
        assert_eq!(
            service_cidr_flag("10.96.0.0/12").unwrap().to_string(),
            "10.96.0.0/12"
        );
        for bad in ["10.0.0.0/8", "10.43.0.0/29", "10.43.0.1/16", "fd00::/108"] {
            assert!(service_cidr_flag(bad).is_err(), "{bad}");
        }
        assert_eq!(node_port_range_flag("30000-32767"), Ok((30000, 32767)));
        assert_eq!(node_port_range_flag("31000"), Ok((31000, 31000)));
        for bad in ["32767-30000", "30000-", "0-100", "30000-70000", "a-b", ""] {
            assert!(node_port_range_flag(bad).is_err(), "{bad}");
        }
    }

    const TOKEN: &str =
        "K10aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa::abc123.secret";

    #[test]
    fn join_and_token_go_together() {
        assert!(join_options(None, None, Some(TOKEN.into()))
            .unwrap()
            .is_none());
        let join = join_options(Some("https://coord:6443".into()), Some(TOKEN.into()), None)
            .unwrap()
            .unwrap();
        assert_eq!(join.server, "https://coord:6443");
        assert_eq!(join.token.id, "abc123");
        let from_env = join_options(Some("https://coord".into()), None, Some(TOKEN.into()));
        assert_eq!(from_env.unwrap().unwrap().token.secret, "secret");
        let err = join_options(Some("https://coord".into()), None, None).unwrap_err();
        assert!(err.to_string().contains("--join needs --token"), "{err}");
        let err = join_options(None, Some(TOKEN.into()), None).unwrap_err();
        assert!(err.to_string().contains("--token needs --join"), "{err}");
        let err = join_options(Some("coord:6443".into()), Some(TOKEN.into()), None).unwrap_err();
        assert!(err.to_string().contains("https://"), "{err}");
        let bad = "K10xyz::abc.s3cr3tvalue";
        let err = join_options(Some("https://coord".into()), Some(bad.into()), None).unwrap_err();
        assert!(err.to_string().starts_with("invalid join token"), "{err}");
        assert!(!err.to_string().contains("s3cr3tvalue"), "{err}");
    }
}
