//! `berth coordinator`: runs the fleet coordinator in the foreground.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::coordinator::CoordinatorOptions;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CoordinatorArgs {
    #[command(subcommand)]
    pub command: Option<CoordinatorCommand>,
    /// Address and port to serve HTTPS on
    #[arg(long, default_value = "0.0.0.0:6443")]
    pub listen: SocketAddr,
    /// Where the coordinator keeps its store, CA and admin.config
    #[arg(long, default_value = "/var/lib/berth-coordinator")]
    pub state_dir: PathBuf,
    /// Extra DNS name or IP address for the server certificate (repeatable)
    #[arg(long = "tls-san", value_name = "NAME")]
    pub tls_sans: Vec<String>,
    /// How long a node may go without a poll before it is Ready=Unknown, a duration
    /// (300ms, 10s, 5m; a bare number is seconds)
    #[arg(long, value_name = "DURATION", default_value = "40s", value_parser = super::duration_flag)]
    pub node_monitor_grace_period: Duration,
    /// How long a node may stay not ready before its pods are replaced elsewhere, a duration
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = super::duration_flag)]
    pub pod_eviction_timeout: Duration,
    /// Registry mirrors, credentials and TLS (k3s registries.yaml), to learn which
    /// platforms an image offers
    #[arg(long, value_name = "FILE", default_value = DEFAULT_REGISTRIES)]
    pub registries: PathBuf,
    /// Key file for Secrets at rest, created (0600) if missing (default: STATE_DIR/secrets.key)
    #[arg(long, value_name = "FILE")]
    pub encryption_key_file: Option<PathBuf>,
    /// Pod Security level (privileged, baseline, restricted) of namespaces without the
    /// pod-security.kubernetes.io/enforce label
    #[arg(long, value_name = "LEVEL", default_value = "baseline", value_parser = super::pod_security_level_flag)]
    pub pod_security_level: crate::model::PodSecurityLevel,
    /// IPv4 network the cluster IPs of Services come from
    #[arg(long, value_name = "CIDR", default_value = "10.43.0.0/16", value_parser = super::service_cidr_flag)]
    pub service_cidr: crate::model::Ipv4Cidr,
    /// IPv4 network the pods of the whole fleet take their addresses from; each node is
    /// given a /24 of it (a /16 holds 256 nodes)
    #[arg(long, value_name = "CIDR", default_value = crate::agent::network_options::DEFAULT_CLUSTER_CIDR, value_parser = cluster_cidr_flag)]
    pub cluster_cidr: crate::model::Ipv4Cidr,
    /// Ports NodePort Services may use on every board, LOW-HIGH
    #[arg(long, value_name = "RANGE", default_value = "30000-32767", value_parser = super::node_port_range_flag)]
    pub service_node_port_range: (u16, u16),
    /// Keep the fleet's objects in etcd instead of STATE_DIR/berth.db: the client URLs of
    /// its members, comma-separated (https://e1:2379,https://e2:2379; http:// on
    /// loopback only). Every coordinator given the same etcd serves the same fleet
    #[arg(long, value_name = "URLS", value_delimiter = ',')]
    pub datastore_endpoint: Vec<String>,
    #[command(flatten)]
    pub datastore_tls: DatastoreTlsArgs,
    /// With --datastore-endpoint: how long the leader's lease lasts unrenewed, so how
    /// soon another coordinator takes over from a lost leader, a duration
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = super::duration_flag)]
    pub leader_elect_lease_duration: Duration,
}

#[derive(clap::Subcommand, Debug)]
pub enum CoordinatorCommand {
    /// Move a fleet's state from a coordinator's SQLite store into etcd (or back), with
    /// pods, node credentials, join tokens, the CA and the admin credential kept
    Migrate(MigrateArgs),
}

#[derive(clap::Args, Debug)]
pub struct MigrateArgs {
    /// Where the state is: sqlite:PATH (a stopped coordinator's berth.db) or etcd:URLS
    #[arg(long, value_name = "LOCATION")]
    pub from: crate::coordinator::migrate::Location,
    /// Where it goes (must hold no objects yet): etcd:URL[,URL...] or sqlite:PATH
    #[arg(long, value_name = "LOCATION")]
    pub to: crate::coordinator::migrate::Location,
    /// Key file for Secrets at rest (default: secrets.key beside the SQLite database)
    #[arg(long, value_name = "FILE")]
    pub encryption_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub datastore_tls: DatastoreTlsArgs,
}

/// `--datastore-cafile/certfile/keyfile`: TLS to the etcd members, for the coordinator
/// and for `migrate`.
#[derive(clap::Args, Debug, Default)]
pub struct DatastoreTlsArgs {
    /// CA certificate (PEM) that signed the etcd members' certificates
    #[arg(long, value_name = "FILE")]
    pub datastore_cafile: Option<PathBuf>,
    /// Client certificate (PEM) for etcd members that require one
    #[arg(long, value_name = "FILE")]
    pub datastore_certfile: Option<PathBuf>,
    /// Private key (PEM) of --datastore-certfile
    #[arg(long, value_name = "FILE")]
    pub datastore_keyfile: Option<PathBuf>,
}

impl DatastoreTlsArgs {
    fn given(&self) -> bool {
        self.datastore_cafile.is_some()
            || self.datastore_certfile.is_some()
            || self.datastore_keyfile.is_some()
    }

    fn tls(&self) -> crate::store::etcd::EtcdTls {
        crate::store::etcd::EtcdTls {
            ca_file: self.datastore_cafile.clone(),
            cert_file: self.datastore_certfile.clone(),
            key_file: self.datastore_keyfile.clone(),
        }
    }
}

fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let options = crate::coordinator::migrate::MigrateOptions {
        from: args.from,
        to: args.to,
        key_file: args.encryption_key_file,
        etcd_tls: args.datastore_tls.tls(),
    };
    let count = crate::coordinator::migrate::migrate(&options)?;
    println!(
        "migrated {count} objects from {} to {}",
        options.from, options.to
    );
    Ok(())
}

/// `--datastore-*`: where the objects live when they are not in SQLite.
fn datastore(args: &CoordinatorArgs) -> anyhow::Result<Option<crate::store::RemoteOptions>> {
    if args.datastore_endpoint.is_empty() {
        if args.datastore_tls.given() {
            anyhow::bail!("--datastore-cafile/certfile/keyfile need --datastore-endpoint");
        }
        return Ok(None);
    }
    let mut etcd = crate::store::etcd::EtcdConfig::new(args.datastore_endpoint.iter().cloned());
    etcd.tls = args.datastore_tls.tls();
    Ok(Some(crate::store::RemoteOptions::new(etcd)))
}

/// Read when present; a missing default file means no settings.
const DEFAULT_REGISTRIES: &str = "/etc/berth/registries.yaml";

pub fn run(mut args: CoordinatorArgs) -> anyhow::Result<()> {
    if let Some(CoordinatorCommand::Migrate(migrate_args)) = args.command.take() {
        return migrate(migrate_args);
    }
    let datastore = datastore(&args)?;
    crate::coordinator::run(CoordinatorOptions {
        datastore,
        leader_lease: args.leader_elect_lease_duration,
        listen: args.listen,
        state_dir: args.state_dir,
        tls_sans: args.tls_sans,
        node_monitor_grace: args.node_monitor_grace_period,
        pod_eviction_timeout: args.pod_eviction_timeout,
        registries: if args.registries == std::path::Path::new(DEFAULT_REGISTRIES)
            && !args.registries.exists()
        {
            None
        } else {
            Some(args.registries)
        },
        encryption_key_file: args.encryption_key_file,
        pod_security_level: args.pod_security_level,
        service_cidr: args.service_cidr,
        node_port_range: args.service_node_port_range,
        cluster_cidr: args.cluster_cidr,
    })
}

/// `--cluster-cidr`: room for at least one node's /24.
fn cluster_cidr_flag(text: &str) -> Result<crate::model::Ipv4Cidr, String> {
    let cidr: crate::model::Ipv4Cidr = text.parse().map_err(|e| format!("{e}"))?;
    match cidr.prefix() {
        0..=crate::coordinator::pod_cidrs::NODE_PREFIX => Ok(cidr),
        prefix => Err(format!(
            "{text:?}: must be a /24 or larger (each node is given a /24 of it), not /{prefix}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_cidr_must_hold_a_node_s_24() {
        assert_eq!(
            cluster_cidr_flag("10.42.0.0/16").unwrap().to_string(),
            "10.42.0.0/16"
        );
        assert!(cluster_cidr_flag("10.42.0.0/24").is_ok());
        let err = cluster_cidr_flag("10.42.0.0/25").unwrap_err();
        assert!(err.contains("/24 or larger"), "{err}");
        assert!(cluster_cidr_flag("10.42.0.1/16").is_err());
    }
}
