//! The `berth` command line: one file per verb, kubectl habits.
//!
//! Every verb but `agent`, `coordinator`, `shim` and `version` is a thin client of the
//! resource API served by an agent (unix socket) or a coordinator (HTTPS, `--config`). Errors surface here as one line on
//! stderr and a non-zero exit code.

mod agent;
mod apply;
mod config;
mod coordinator;
mod cordon;
mod delete;
mod describe;
mod drain;
mod exec;
mod get;
mod image;
mod label;
mod logs;
mod output;
mod resource;
mod rollout;
mod scale;
mod tables;
mod taint;
mod token;
mod version;
mod watch;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::api::client::Client;

/// Where the CLI talks to when neither `--server` nor `BERTH_SERVER` is set.
pub const DEFAULT_SERVER: &str = "unix:///var/lib/berth/berth.sock";

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    about = "A small container orchestrator for fleets of ARM boards"
)]
#[command(disable_version_flag = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOptions,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every verb accepts, before or after the verb (like kubectl).
#[derive(clap::Args, Debug, Clone)]
pub struct GlobalOptions {
    /// Agent or coordinator to talk to: unix:///path/berth.sock or https://host:port
    #[arg(long, global = true, env = "BERTH_SERVER")]
    pub server: Option<String>,
    /// Client config: a coordinator's admin.config (server, CA and token) and the
    /// current namespace [default: ~/.berth/config]
    #[arg(long, global = true, env = "BERTH_CONFIG", value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Namespace of the objects [default: the config's namespace, else default]
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// The config's current namespace, used when `-n` is not given.
    #[arg(skip)]
    pub context_namespace: Option<String>,
    /// List objects of every namespace
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,
    /// Output format: table, wide, json or yaml
    #[arg(short = 'o', long, global = true, default_value = "table")]
    pub output: String,
    /// Label selector, e.g. app=web,tier=front
    #[arg(short = 'l', long, global = true)]
    pub selector: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the agent of this board
    Agent(Box<agent::AgentArgs>),
    /// Run the fleet coordinator
    Coordinator(Box<coordinator::CoordinatorArgs>),
    /// Manage join tokens (coordinator)
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Mark a node unschedulable (coordinator)
    Cordon(cordon::CordonArgs),
    /// Mark a node schedulable again (coordinator)
    Uncordon(cordon::CordonArgs),
    /// Cordon a node and evict its pods (coordinator)
    Drain(drain::DrainArgs),
    /// Add or remove taints of a node (coordinator)
    Taint(taint::TaintArgs),
    /// Create or update objects from manifests
    Apply(apply::ApplyArgs),
    /// List objects
    Get(get::GetArgs),
    /// Show one object in detail
    Describe(describe::DescribeArgs),
    /// Delete objects by manifest or by kind and name
    Delete(delete::DeleteArgs),
    /// Run a command in a running container
    Exec(exec::ExecArgs),
    /// Print the logs of a container
    Logs(logs::LogsArgs),
    /// Set the number of replicas of a deployment
    Scale(scale::ScaleArgs),
    /// Set or remove the labels of a node
    Label(label::LabelArgs),
    /// Follow, pause, resume, restart or undo the rollout of a deployment
    #[command(subcommand)]
    Rollout(rollout::RolloutCommand),
    /// Manage the images on the board
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Set the current namespace or show the client config
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Print the version, target and git revision
    Version,
    /// Supervise one container (started by the agent; not for people)
    #[command(hide = true)]
    Shim { container_dir: std::path::PathBuf },
    /// Hold a pod's shared PID namespace (started by the agent; not for people)
    #[command(hide = true)]
    PidHolder { ns_dir: std::path::PathBuf },
    /// Run a process in a container (started by the agent; not for people)
    #[command(hide = true, disable_help_flag = true)]
    ExecHelper {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// The daemons parse on their own: they serve the resource API rather than call it, so
/// the client options (`--server`, `-n`, `-o`, ...) are not theirs and their `--help`
/// lists only what they use.
#[derive(Parser, Debug)]
#[command(name = "berth", disable_version_flag = true)]
struct DaemonCli {
    #[command(subcommand)]
    command: Daemon,
}

#[derive(Subcommand, Debug)]
enum Daemon {
    /// Run the agent of this board
    Agent(Box<agent::AgentArgs>),
    /// Run the fleet coordinator
    Coordinator(Box<coordinator::CoordinatorArgs>),
}

/// Parses the command line; clap's own errors and help are printed here, and their exit
/// code comes back as the error.
fn parse<P: Parser>() -> Result<P, i32> {
    P::try_parse().map_err(|err| {
        // clap prints help/version to stdout with exit 0 and usage errors to stderr.
        let _ = err.print();
        err.exit_code()
    })
}

/// Runs `berth agent` or `berth coordinator` in the foreground.
fn run_daemon() -> i32 {
    let daemon = match parse::<DaemonCli>() {
        Ok(cli) => cli.command,
        Err(code) => return code,
    };
    // Lifecycle lines at info by default; RUST_LOG overrides.
    // Milliseconds: the order of two coordinators' leadership changes is read from them.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let result = match daemon {
        Daemon::Agent(args) => agent::run(*args),
        Daemon::Coordinator(args) => coordinator::run(*args),
    };
    report(result)
}

/// Entry point of the binary: parse, dispatch, report errors as one line.
pub fn main() -> i32 {
    let verb = std::env::args_os().nth(1);
    if matches!(
        verb.as_ref().and_then(|v| v.to_str()),
        Some("agent" | "coordinator")
    ) {
        return run_daemon();
    }
    let mut cli = match parse::<Cli>() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    if let Err(err) = cli.global.namespace_from_config(&cli.command) {
        return report(Err(err));
    }
    let result = match cli.command {
        // Only reached with a client option before the verb (`berth -n x agent`).
        Command::Agent(_) | Command::Coordinator(_) => Err(anyhow::anyhow!(
            "--server, --config, -n, -A, -o and -l are not options of the agent or the coordinator"
        )),
        Command::Token(cmd) => token::run(&cli.global, cmd),
        Command::Cordon(args) => cordon::run(&cli.global, args, true),
        Command::Uncordon(args) => cordon::run(&cli.global, args, false),
        Command::Taint(args) => taint::run(&cli.global, args),
        Command::Drain(args) => drain::run(&cli.global, args),
        Command::Apply(args) => apply::run(&cli.global, args),
        Command::Get(args) => get::run(&cli.global, args),
        Command::Describe(args) => describe::run(&cli.global, args),
        Command::Delete(args) => delete::run(&cli.global, args),
        Command::Logs(args) => logs::run(&cli.global, args),
        Command::Exec(args) => match exec::run(&cli.global, args) {
            // The command's own exit code becomes ours.
            Ok(code) => return code,
            Err(err) => Err(err),
        },
        Command::Scale(args) => scale::run(&cli.global, args),
        Command::Label(args) => label::run(&cli.global, args),
        Command::Rollout(cmd) => rollout::run(&cli.global, cmd),
        Command::Image(cmd) => image::run(&cli.global, cmd),
        Command::Config(cmd) => config::run(&cli.global, cmd),
        Command::Version => version::run(),
        Command::Shim { container_dir } => {
            return crate::runtime::shim::shim_main(&container_dir);
        }
        Command::ExecHelper { args } => {
            return crate::runtime::exec::exec_helper_main(&args);
        }
        Command::PidHolder { ns_dir } => {
            return crate::runtime::pid_holder::pid_holder_main(&ns_dir);
        }
    };
    report(result)
}

/// The exit code of a verb's result; an error becomes one line on stderr.
fn report(result: anyhow::Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        // Each failure was printed as it happened (kubectl's `Error from server ...`).
        Err(err) if err.downcast_ref::<Reported>().is_some() => 1,
        Err(err) => {
            // One line: the chain of causes joined, as kubectl prints "error: ...".
            let mut line = format!("error: {err}");
            for cause in err.chain().skip(1) {
                line.push_str(&format!(": {cause}"));
            }
            eprintln!("{line}");
            1
        }
    }
}

/// A failure already reported on stderr, one line per object, as kubectl does when some
/// of several objects fail: the exit code is 1 and nothing more is printed.
#[derive(Debug)]
pub struct Reported;

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("some objects failed (reported above)")
    }
}

impl std::error::Error for Reported {}

impl GlobalOptions {
    /// The client for `--server` / `--config`: a coordinator config file (`--config`, or
    /// `~/.berth/config` when there is one) gives the server, CA and token (an explicit
    /// `--server https://...` overrides its URL); a `unix://` server is an agent.
    pub fn client(&self) -> anyhow::Result<Client> {
        let server = self.server.as_deref();
        let wants_agent = server.is_some_and(|s| !s.starts_with("https://"));
        // `--config` must exist; the default `~/.berth/config` is used if it does.
        let config = match (&self.config, wants_agent) {
            (_, true) => None,
            (Some(path), false) => Some(crate::api::config::ClientConfig::load(path)?),
            (None, false) => config::config_path(self)
                .map(|path| config::load(&path))
                .transpose()?
                .flatten(),
        };
        // A config that only sets a namespace names no coordinator.
        if let Some(config) = config.filter(|c| !c.server.is_empty() || server.is_some()) {
            return Ok(config.client(server, std::time::Duration::from_secs(30))?);
        }
        let url = server.unwrap_or(DEFAULT_SERVER);
        Client::from_server_url(url).with_context(|| format!("invalid --server {url:?}"))
    }

    /// Fills in `-n` from the config's current namespace when it is not given, as
    /// kubectl takes a context's namespace, for the verbs that talk to a server.
    /// A missing config file is no error; one that does not read is.
    fn namespace_from_config(&mut self, command: &Command) -> anyhow::Result<()> {
        let talks_to_server = !matches!(
            command,
            Command::Agent(_)
                | Command::Coordinator(_)
                | Command::Config(_)
                | Command::Version
                | Command::Shim { .. }
                | Command::ExecHelper { .. }
                | Command::PidHolder { .. }
        );
        if self.namespace.is_some() || !talks_to_server {
            return Ok(());
        }
        if let Some(path) = config::config_path(self) {
            if let Some(config) = config::load(&path)? {
                self.context_namespace = config.namespace;
            }
        }
        Ok(())
    }

    /// The request that sends manifest `files` (apply, delete -f). `-n` is enforced: an
    /// object naming another namespace is refused. The config's namespace only goes to
    /// the objects that name none, as a kubectl context's does.
    pub fn manifest_request(
        &self,
        files: Vec<crate::api::types::ManifestFile>,
    ) -> crate::api::types::ApplyRequest {
        let files = match (&self.namespace, &self.context_namespace) {
            (None, Some(namespace)) => config::default_namespace_into(files, namespace),
            _ => files,
        };
        crate::api::types::ApplyRequest {
            files,
            namespace: self.namespace.clone(),
        }
    }

    /// The namespace a namespaced request goes to: `-n`, else the config's, else
    /// `default`.
    pub fn namespace(&self) -> &str {
        self.namespace
            .as_deref()
            .or(self.context_namespace.as_deref())
            .unwrap_or("default")
    }

    pub fn output_format(&self) -> anyhow::Result<output::Format> {
        output::Format::parse(&self.output)
    }
}

/// Sends a JSON request and turns a non-2xx answer into an error carrying the server's
/// message (a Kubernetes `Status` object).
pub fn call(
    client: &Client,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    // The client turns non-2xx answers into errors carrying the server's message.
    let (_, value) = client.request(method, path, body)?;
    Ok(value)
}

/// Resource API paths, shared by the verbs (Kubernetes layout).
pub fn collection_path(kind: crate::model::Kind, namespace: Option<&str>) -> String {
    let group = match kind.api_version() {
        "v1" => "/api/v1".to_owned(),
        other => format!("/apis/{other}"),
    };
    match (kind.namespaced(), namespace) {
        (true, Some(ns)) => format!("{group}/namespaces/{ns}/{}", kind.plural()),
        _ => format!("{group}/{}", kind.plural()),
    }
}

pub fn object_path(kind: crate::model::Kind, namespace: &str, name: &str) -> String {
    let ns = if kind.namespaced() {
        Some(namespace)
    } else {
        None
    };
    format!(
        "{}/{}",
        collection_path(kind, ns),
        crate::api::http::percent_encode(name)
    )
}

/// `--pod-security-level`, on the agent and the coordinator.
pub fn pod_security_level_flag(text: &str) -> Result<crate::model::PodSecurityLevel, String> {
    crate::model::PodSecurityLevel::parse(text)
        .ok_or_else(|| format!("{text:?}: expected privileged, baseline or restricted"))
}

/// `--service-cidr` (k3s' flag): an IPv4 network from /12 (Kubernetes' largest service
/// range) to /28 (small enough to still hold the cluster DNS address, its 10th).
pub fn service_cidr_flag(text: &str) -> Result<crate::model::Ipv4Cidr, String> {
    let cidr: crate::model::Ipv4Cidr = text.parse().map_err(|e| format!("{e}"))?;
    match cidr.prefix() {
        12..=28 => Ok(cidr),
        prefix => Err(format!(
            "{text:?}: a service network must have a prefix from /12 to /28, not /{prefix}"
        )),
    }
}

/// `--service-node-port-range` (Kubernetes' and k3s' flag): `LOW-HIGH`, inclusive, or a
/// single port.
pub fn node_port_range_flag(text: &str) -> Result<(u16, u16), String> {
    let bad = || format!("invalid port range {text:?}: expected LOW-HIGH, e.g. 30000-32767");
    let port = |s: &str| s.trim().parse::<u16>().ok().filter(|p| *p > 0);
    let (low, high) = match text.split_once('-') {
        Some((low, high)) => (port(low).ok_or_else(bad)?, port(high).ok_or_else(bad)?),
        None => {
            let single = port(text).ok_or_else(bad)?;
            (single, single)
        }
    };
    if low > high {
        return Err(format!(
            "invalid port range {text:?}: {low} is above {high}"
        ));
    }
    Ok((low, high))
}

/// clap's parser for every duration flag: Go/Kubernetes durations, bare numbers in seconds.
pub fn duration_flag(text: &str) -> Result<std::time::Duration, String> {
    crate::model::parse_duration(text)
}
