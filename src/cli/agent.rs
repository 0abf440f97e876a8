//! `berth agent`: runs the single-board orchestrator in the foreground.

use std::path::PathBuf;
use std::time::Duration;

use super::GlobalOptions;
use crate::agent::AgentOptions;

#[derive(clap::Args, Debug)]
pub struct AgentArgs {
    /// Where the agent keeps everything: store, images, containers, logs, socket
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
    /// First delay of the crash-loop back-off, in seconds
    #[arg(long, default_value_t = 10.0)]
    pub restart_backoff_base: f64,
    /// Longest crash-loop back-off, in seconds
    #[arg(long, default_value_t = 300.0)]
    pub restart_backoff_max: f64,
    /// Board profile (board-configs/*.yaml) to check this machine against
    #[arg(long, value_name = "FILE")]
    pub board: Option<PathBuf>,
    /// Registry mirrors, credentials and TLS (k3s registries.yaml format)
    #[arg(long, value_name = "FILE", default_value = DEFAULT_REGISTRIES)]
    pub registries: PathBuf,
}

/// The registries file read when `--registries` is not given; it may be absent.
const DEFAULT_REGISTRIES: &str = "/etc/berth/registries.yaml";

pub fn run(_global: &GlobalOptions, args: AgentArgs) -> anyhow::Result<()> {
    let node_name = match args.node_name {
        Some(name) => name,
        None => nix::unistd::gethostname()?.to_string_lossy().into_owned(),
    };
    let seconds = |s: f64, what: &str| -> anyhow::Result<Duration> {
        Duration::try_from_secs_f64(s).map_err(|_| anyhow::anyhow!("invalid {what} {s}"))
    };
    let options = AgentOptions {
        state_dir: args.state_dir,
        manifests_dir: args.manifests,
        node_name,
        cgroup_parent: args.cgroup_parent,
        backoff_base: seconds(args.restart_backoff_base, "--restart-backoff-base")?,
        backoff_max: seconds(args.restart_backoff_max, "--restart-backoff-max")?,
        board: args.board,
        // A missing default file means no settings; a missing named file is an error.
        registries: if args.registries == std::path::Path::new(DEFAULT_REGISTRIES)
            && !args.registries.exists()
        {
            None
        } else {
            Some(args.registries)
        },
    };
    crate::agent::run(options)
}
