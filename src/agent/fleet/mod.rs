//! The agent's side of a fleet: join a coordinator once, then receive this node's
//! assignments and report what became of them (the protocol is in `api::fleet`).
//!
//! Two plain threads with blocking clients, so a slow or absent coordinator never holds
//! up the smol executor that serves the local API and runs the reconciler:
//! - `fleet-sync` joins if needed (retrying while the coordinator is unreachable), then
//!   long-polls the assignments and writes each new set into the store (`sync`);
//! - `fleet-status` sends pod status deltas and the Node object (`report`).
//!
//! The coordinator is never needed to keep running: everything it assigned is in SQLite
//! and the reconciler runs from there, online or not, across restarts too.

pub(super) mod node;
mod report;
mod standby;
mod state;
mod sync;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::{Agent, AgentOptions};
use crate::api::tokens::{check_node_name, JoinToken};
use crate::model::BoardProfile;
use crate::support::backoff::{Backoff, Retries};

use node::{node_object, read_facts};
pub use state::{FleetState, FLEET_FILE};

/// Timeout of the join and of plain requests (connect, and each read).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Bounds of the retry delays after a failure: from the first to the longest, doubling.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LONGEST_RETRY: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("cannot read {}: {reason} (remove it to join again)", path.display())]
    ReadState { path: PathBuf, reason: String },
    #[error("cannot write {}: {reason}", path.display())]
    WriteState { path: PathBuf, reason: String },
    #[error("the saved coordinator CA is unusable: {reason}")]
    Ca { reason: String },
    #[error("invalid coordinator address {server:?}: {reason}")]
    Server { server: String, reason: String },
    #[error("node name {name:?} cannot join a fleet: {reason}; pass --node-name")]
    NodeName { name: String, reason: String },
    #[error("store: {reason}")]
    Store { reason: String },
    #[error("cannot start the {name} thread: {source}")]
    Thread {
        name: &'static str,
        source: std::io::Error,
    },
}

/// `--join URL --token TOKEN`, checked by the CLI.
#[derive(Clone, Debug)]
pub struct FleetJoin {
    pub server: String,
    /// Its `Debug` hides the secret.
    pub token: JoinToken,
}

/// How the agent belongs to a fleet at start.
#[derive(Debug)]
pub enum Setup {
    /// `fleet.json` exists: already a member.
    Joined(FleetState),
    /// Join with the token from the command line.
    Joining(FleetJoin),
}

/// Decides fleet membership before the agent starts. With a `fleet.json` the agent uses
/// it and ignores `--join`/`--token` (as k3s does), and takes the node name it joined
/// under, since its credential is bound to that name.
pub fn prepare(options: &mut AgentOptions) -> Result<Option<Setup>, FleetError> {
    let path = options.state_dir.join(FLEET_FILE);
    if let Some(saved) = state::load(&path)? {
        log::info!(
            "member of the fleet at {} as node {} ({})",
            saved.server,
            saved.node_name,
            path.display()
        );
        if let Some(join) = &options.join {
            log::info!(
                "already joined to {} ({}): ignoring --join {} and --token",
                saved.server,
                path.display(),
                join.server
            );
        }
        if saved.node_name != options.node_name {
            log::warn!(
                "this board joined the fleet as node {:?}; using that name, not {:?}",
                saved.node_name,
                options.node_name
            );
            options.node_name = saved.node_name.clone();
        }
        return Ok(Some(Setup::Joined(saved)));
    }
    let Some(join) = options.join.clone() else {
        return Ok(None);
    };
    check_node_name(&options.node_name).map_err(|err| FleetError::NodeName {
        name: options.node_name.clone(),
        reason: err.to_string(),
    })?;
    Ok(Some(Setup::Joining(join)))
}

/// The running fleet threads, as seen from `agent::run`.
pub struct FleetHandle {
    failure: Arc<Mutex<Option<String>>>,
}

impl FleetHandle {
    /// Why the fleet side gave up and stopped the agent (a refused join), if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// Starts the fleet threads. A join the coordinator refuses stops the agent through
/// `stop`, with the reason in [`FleetHandle::failure`]: the agent is misconfigured.
pub fn start(
    agent: &Arc<Agent>,
    setup: Setup,
    profile: Option<BoardProfile>,
    stop: smol::channel::Sender<()>,
) -> Result<FleetHandle, FleetError> {
    let failure = Arc::new(Mutex::new(None));
    let handle = FleetHandle {
        failure: failure.clone(),
    };
    let agent = agent.clone();
    std::thread::Builder::new()
        .name("fleet-sync".to_owned())
        .spawn(move || {
            if let Err(reason) = run(&agent, setup, profile) {
                // `agent::run` returns it as the agent's error once it has stopped.
                log::info!("stopping the agent: the fleet side cannot go on");
                *failure
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(reason);
                let _ = stop.try_send(());
            }
        })
        .map_err(|source| FleetError::Thread {
            name: "fleet-sync",
            source,
        })?;
    Ok(handle)
}

/// The body of `fleet-sync`; returns only when the agent must stop.
fn run(agent: &Arc<Agent>, setup: Setup, profile: Option<BoardProfile>) -> Result<(), String> {
    let server = match &setup {
        Setup::Joined(state) => state.server.clone(),
        Setup::Joining(join) => join.server.clone(),
    };
    let link = Arc::new(Link::new(server));
    // The controllers ask it whether to fire the CronJobs this board keeps as standby.
    let _ = agent.fleet_link.set(Arc::clone(&link));
    let state = match setup {
        Setup::Joined(state) => state,
        Setup::Joining(join) => join_until_done(agent, &join, profile.as_ref(), &link)?,
    };
    let client = state
        .client(REQUEST_TIMEOUT)
        .map_err(|err| err.to_string())?;
    let node = state.node_name.clone();
    let reporter_agent = agent.clone();
    let reporter_client = client.clone();
    let reporter_node = node.clone();
    std::thread::Builder::new()
        .name("fleet-status".to_owned())
        .spawn(move || {
            report::run(
                &reporter_agent,
                &reporter_client,
                &reporter_node,
                profile.as_ref(),
            )
        })
        .map_err(|err| format!("cannot start the fleet-status thread: {err}"))?;
    sync::run(agent, &client, &node, &link);
    Ok(())
}

/// Joins, retrying while the coordinator is unreachable; a refusal is final.
fn join_until_done(
    agent: &Agent,
    join: &FleetJoin,
    profile: Option<&BoardProfile>,
    link: &Link,
) -> Result<FleetState, String> {
    let name = &agent.options.node_name;
    let path = agent.options.state_dir.join(FLEET_FILE);
    log::info!("joining the fleet at {} as node {name}", join.server);
    let mut delay = reconnect_retries();
    // One credential for every attempt: if an answer is lost, the next attempt (to this
    // coordinator or another) is recognised as the same board.
    let credential = crate::api::tokens::Credential::generate_node(name)
        .map_err(|err| format!("cannot draw a node credential: {err}"))?;
    loop {
        let node_ip = agent.node_address();
        let mut facts = read_facts(name, node_ip);
        facts.extended_resources = agent.options.extended_resources.clone();
        let mut node = node_object(&facts, profile);
        for (key, value) in &agent.options.node_labels {
            node["metadata"]["labels"][key] = serde_json::Value::from(value.as_str());
        }
        let asked = state::Joining {
            node_name: name,
            node,
            credential: &credential,
        };
        match state::join(&join.server, &join.token, asked, REQUEST_TIMEOUT) {
            Ok(joined) => {
                state::save(&path, &joined).map_err(|err| err.to_string())?;
                log::info!(
                    "joined the fleet at {} as node {name} (saved in {})",
                    joined.server,
                    path.display()
                );
                return Ok(joined);
            }
            Err(state::JoinFailure::Refused(reason)) => {
                return Err(format!(
                    "cannot join the fleet at {}: {reason}",
                    join.server
                ))
            }
            Err(state::JoinFailure::Unavailable(err)) => {
                link.down(&err);
                std::thread::sleep(delay.after_failure());
            }
        }
    }
}

/// How long the coordinator must stay out of reach before this board stands in for it
/// and fires the CronJobs it keeps as their standby: longer than one lost poll (its read
/// timeout, 15 s), so a coordinator that restarts or fails over to a peer is waited for.
pub const STAND_IN_AFTER: Duration = Duration::from_secs(20);

/// Whether the coordinator answers, as last seen; logs each change once.
pub struct Link {
    server: String,
    state: Mutex<LinkMemory>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LinkState {
    Unknown,
    Online,
    Offline,
    /// The coordinator answers but no longer accepts this node (deleted, revoked): it
    /// is not out of reach, and another node keeps this node's CronJobs now.
    Refused,
}

#[derive(Clone, Copy, Debug)]
struct LinkMemory {
    state: LinkState,
    /// The last answer from the coordinator, in this process.
    last_contact: Option<SystemTime>,
    /// The first failure since the last answer.
    offline_since: Option<SystemTime>,
}

/// What the link says about CronJobs this board keeps as standby.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StandIn {
    /// The coordinator runs them (or has not been asked yet).
    No,
    /// Out of reach, not yet for long enough: look again at this time.
    Soon(SystemTime),
    /// Out of reach for [`STAND_IN_AFTER`]: this board runs the times after the last
    /// answer from the coordinator, or, if this process had none (it started while cut
    /// off), after its first failure to reach it: what came before may have run there.
    Yes { covered_until: SystemTime },
}

impl Link {
    pub fn new(server: String) -> Link {
        Link {
            server,
            state: Mutex::new(LinkMemory {
                state: LinkState::Unknown,
                last_contact: None,
                offline_since: None,
            }),
        }
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, LinkMemory> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A request went through.
    pub fn up(&self) {
        let old = {
            let mut memory = self.memory();
            memory.last_contact = Some(SystemTime::now());
            memory.offline_since = None;
            std::mem::replace(&mut memory.state, LinkState::Online)
        };
        match old {
            LinkState::Unknown => {
                log::info!("connected to the coordinator at {}", self.server)
            }
            LinkState::Offline => log::info!(
                "the coordinator at {} answers again, back online",
                self.server
            ),
            LinkState::Online => {}
            LinkState::Refused => {
                log::info!("the coordinator at {} accepts this node again", self.server)
            }
        }
    }

    /// The coordinator refused this node's credential.
    pub fn refused(&self) {
        let mut memory = self.memory();
        memory.state = LinkState::Refused;
        memory.offline_since = None;
    }

    /// A request failed for a reason worth retrying.
    pub fn down(&self, err: &dyn std::fmt::Display) {
        let old = {
            let mut memory = self.memory();
            memory.offline_since.get_or_insert_with(SystemTime::now);
            std::mem::replace(&mut memory.state, LinkState::Offline)
        };
        match old {
            LinkState::Unknown | LinkState::Online | LinkState::Refused => log::info!(
                "cannot reach the coordinator at {}, running offline from the local store: {err}",
                self.server
            ),
            LinkState::Offline => log::debug!("still offline: {err}"),
        }
    }

    /// Whether this board stands in for the coordinator at `now`.
    pub fn stand_in(&self, now: SystemTime) -> StandIn {
        let memory = *self.memory();
        match (memory.state, memory.offline_since) {
            (LinkState::Offline, Some(since)) => {
                let from = since + STAND_IN_AFTER;
                if now < from {
                    StandIn::Soon(from)
                } else {
                    StandIn::Yes {
                        covered_until: memory.last_contact.unwrap_or(since),
                    }
                }
            }
            _ => StandIn::No,
        }
    }
}

/// Waits between attempts to reach the coordinator: a random time up to 1 s, then up to
/// 2 s, 4 s, … at most 30 s; back to 1 s after a success. The randomness keeps a fleet
/// whose coordinator restarted from reconnecting in lockstep.
pub fn reconnect_retries() -> Retries {
    Retries::new(Backoff {
        base: FIRST_RETRY,
        max: LONGEST_RETRY,
    })
}

#[cfg(test)]
mod tests;
