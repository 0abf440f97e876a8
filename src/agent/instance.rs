//! Container instance names and the agent's view of what runs.
//!
//! Every container the agent starts gets an instance id that carries the pod UID, the
//! container name, the pod spec hash and the attempt number (Ankaios-style). From names
//! alone a restarted agent can tell "adopt" (same hash), "replace" (other hash) and
//! "delete" (unknown pod) apart, and the attempt number *is* the restart count, so no
//! status needs to be written anywhere for it to survive an agent restart.

use crate::runtime::{ContainerInfo, ContainerState, ExitInfo};

/// Characters of the pod UID kept in instance ids: enough to be unique on one board
/// while keeping ids short (libcontainer puts a unix socket path under the id, and
/// those are limited to 108 bytes).
const UID_PREFIX: usize = 12;

pub fn instance_id(pod_uid: &str, container: &str, hash: &str, attempt: u32) -> String {
    let uid: String = pod_uid
        .chars()
        .filter(|c| *c != '-')
        .take(UID_PREFIX)
        .collect();
    format!("{uid}_{container}_{hash}_{attempt}")
}

/// The container name inside an instance id.
pub fn container_of(id: &str) -> Option<&str> {
    id.split('_').nth(1)
}

/// What the agent knows of one container instance, from the runtime.
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    pub id: String,
    pub pod_uid: String,
    pub container: String,
    pub hash: String,
    pub attempt: u32,
    pub state: InstanceState,
}

#[derive(Clone, Debug, PartialEq)]
pub enum InstanceState {
    Starting,
    Running { pid: i32, started_at: String },
    Exited(ExitInfo),
}

impl Instance {
    /// Builds the view from the runtime's record; ids the agent did not make are skipped.
    pub fn from_runtime(info: &ContainerInfo) -> Option<Instance> {
        let parts: Vec<&str> = info.config.id.split('_').collect();
        let [_, container, hash, attempt] = parts.as_slice() else {
            return None;
        };
        let attempt = attempt.parse().ok()?;
        let state = match &info.state {
            ContainerState::Starting => InstanceState::Starting,
            ContainerState::Running { pid, started_at } => InstanceState::Running {
                pid: *pid,
                started_at: started_at.clone(),
            },
            ContainerState::Exited(exit) => InstanceState::Exited(exit.clone()),
            // The shim died without recording an exit (killed by hand, or the board lost
            // power): treat it as a failed run so the restart policy decides.
            ContainerState::Lost { since } => InstanceState::Exited(ExitInfo {
                exit_code: 255,
                signal: None,
                oom_killed: false,
                started_at: None,
                finished_at: since.clone(),
                message: Some("the container's supervisor vanished".to_owned()),
            }),
        };
        Some(Instance {
            id: info.config.id.clone(),
            pod_uid: info.config.pod_uid.clone(),
            container: container.to_string(),
            hash: hash.to_string(),
            attempt,
            state,
        })
    }

    pub fn is_running(&self) -> bool {
        matches!(
            self.state,
            InstanceState::Running { .. } | InstanceState::Starting
        )
    }

    pub fn exit(&self) -> Option<&ExitInfo> {
        match &self.state {
            InstanceState::Exited(exit) => Some(exit),
            InstanceState::Starting | InstanceState::Running { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_and_carry_the_attempt() {
        let id = instance_id(
            "0f8e2a4c-1d2b-4c3d-8e9f-a0b1c2d3e4f5",
            "web",
            "3f2a1b9c0d",
            7,
        );
        assert_eq!(id, "0f8e2a4c1d2b_web_3f2a1b9c0d_7");
    }

    #[test]
    fn a_lost_container_reads_as_failed_when_it_was_last_seen() {
        let info = ContainerInfo {
            config: crate::runtime::fake::test_config("0f8e2a4c1d2b_web_3f2a1b9c0d_3"),
            shim_pid: None,
            state: ContainerState::Lost {
                since: "2026-12-01T08:19:12Z".to_owned(),
            },
        };
        let instance = Instance::from_runtime(&info).expect("an agent-made id");
        assert_eq!(instance.attempt, 3);
        let exit = instance.exit().expect("reads as exited");
        assert_eq!(exit.exit_code, 255);
        assert_eq!(
            exit.finished_at, "2026-12-01T08:19:12Z",
            "the back-off counts from the last sign of life, not from each look"
        );
    }
}
