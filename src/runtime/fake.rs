//! An in-memory [`Runtime`] for unit tests of the agent's pure logic. It runs nothing:
//! containers are "running" from `start_container` until a test calls [`FakeRuntime::exit`]
//! or the agent stops them.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::OwnedFd;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::files::now_rfc3339;
use super::{
    is_valid_container_id, ContainerConfig, ContainerInfo, ContainerState, ExitInfo, Runtime,
    RuntimeError,
};

#[derive(Default)]
struct FakeState {
    sandboxes: BTreeSet<String>,
    containers: BTreeMap<String, ContainerInfo>,
    next_pid: i32,
    /// Start failures to simulate: container name → reason.
    start_failures: BTreeMap<String, String>,
    /// Every call, in order, e.g. `start c1`, for assertions on what the agent did.
    calls: Vec<String>,
}

#[derive(Default)]
pub struct FakeRuntime {
    state: Mutex<FakeState>,
}

impl FakeRuntime {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Simulates the container's process exiting with `code`.
    pub fn exit(&self, id: &str, code: i32) {
        self.finish(id, code, None, false);
    }

    /// Simulates the kernel OOM-killing the container.
    pub fn oom_kill(&self, id: &str) {
        self.finish(id, 128 + libc::SIGKILL, Some(libc::SIGKILL), true);
    }

    /// Simulates a shim that vanished without an exit record.
    pub fn lose(&self, id: &str) {
        if let Some(info) = self.lock().containers.get_mut(id) {
            info.state = ContainerState::Lost;
            info.shim_pid = None;
        }
    }

    /// Makes the next starts of containers with this `container_name` fail with `reason`.
    pub fn fail_starts_of(&self, container_name: &str, reason: &str) {
        self.lock()
            .start_failures
            .insert(container_name.to_string(), reason.to_string());
    }

    pub fn clear_start_failures(&self) {
        self.lock().start_failures.clear();
    }

    /// The calls made so far (`create_sandbox <uid>`, `start <id>`, `stop <id>`, ...).
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    fn finish(&self, id: &str, code: i32, signal: Option<i32>, oom_killed: bool) {
        let mut state = self.lock();
        if let Some(info) = state.containers.get_mut(id) {
            let started_at = match &info.state {
                ContainerState::Running { started_at, .. } => Some(started_at.clone()),
                ContainerState::Starting | ContainerState::Exited(_) | ContainerState::Lost => {
                    return
                }
            };
            info.state = ContainerState::Exited(ExitInfo {
                exit_code: code,
                signal,
                oom_killed,
                started_at,
                finished_at: now_rfc3339(),
                message: None,
            });
        }
    }
}

impl Runtime for FakeRuntime {
    fn create_sandbox(
        &self,
        pod_uid: &str,
        _hostname: &str,
        _host_network: bool,
    ) -> Result<(), RuntimeError> {
        let mut state = self.lock();
        state.calls.push(format!("create_sandbox {pod_uid}"));
        state.sandboxes.insert(pod_uid.to_string());
        Ok(())
    }

    fn remove_sandbox(&self, pod_uid: &str) -> Result<(), RuntimeError> {
        let mut state = self.lock();
        state.calls.push(format!("remove_sandbox {pod_uid}"));
        state.sandboxes.remove(pod_uid);
        Ok(())
    }

    fn list_sandboxes(&self) -> Result<Vec<String>, RuntimeError> {
        Ok(self.lock().sandboxes.iter().cloned().collect())
    }

    fn start_container(&self, cfg: &ContainerConfig) -> Result<ContainerInfo, RuntimeError> {
        let mut state = self.lock();
        state.calls.push(format!("start {}", cfg.id));
        if !is_valid_container_id(&cfg.id) {
            return Err(RuntimeError::InvalidId { id: cfg.id.clone() });
        }
        if state.containers.contains_key(&cfg.id) {
            return Err(RuntimeError::AlreadyExists { id: cfg.id.clone() });
        }
        if !state.sandboxes.contains(&cfg.pod_uid) {
            return Err(RuntimeError::SandboxNotFound {
                pod_uid: cfg.pod_uid.clone(),
            });
        }
        if let Some(reason) = state.start_failures.get(&cfg.container_name) {
            return Err(RuntimeError::StartFailed {
                id: cfg.id.clone(),
                reason: reason.clone(),
            });
        }
        state.next_pid += 1;
        let pid = 1000 + state.next_pid;
        let info = ContainerInfo {
            config: cfg.clone(),
            shim_pid: Some(pid - 1),
            state: ContainerState::Running {
                pid,
                started_at: now_rfc3339(),
            },
        };
        state.containers.insert(cfg.id.clone(), info.clone());
        Ok(info)
    }

    fn stop_container(&self, id: &str, _grace: Duration) -> Result<(), RuntimeError> {
        self.lock().calls.push(format!("stop {id}"));
        if !self.lock().containers.contains_key(id) {
            return Err(RuntimeError::NotFound { id: id.to_string() });
        }
        // A stopped container ends like a SIGTERM'd process that handled the signal.
        self.finish(id, 128 + libc::SIGTERM, Some(libc::SIGTERM), false);
        Ok(())
    }

    fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        let mut state = self.lock();
        state.calls.push(format!("remove {id}"));
        match state.containers.get(id).map(|info| &info.state) {
            None => Ok(()),
            Some(ContainerState::Running { .. } | ContainerState::Starting) => {
                Err(RuntimeError::StillRunning { id: id.to_string() })
            }
            Some(ContainerState::Exited(_) | ContainerState::Lost) => {
                state.containers.remove(id);
                Ok(())
            }
        }
    }

    fn list_containers(&self) -> Result<Vec<ContainerInfo>, RuntimeError> {
        Ok(self.lock().containers.values().cloned().collect())
    }

    fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>, RuntimeError> {
        Ok(self.lock().containers.get(id).cloned())
    }

    /// The fake has no processes to watch; the agent's tests drive exits explicitly.
    fn exit_notifier(&self, id: &str) -> Result<Option<OwnedFd>, RuntimeError> {
        if self.lock().containers.contains_key(id) {
            Ok(None)
        } else {
            Err(RuntimeError::NotFound { id: id.to_string() })
        }
    }

    fn reap(&self, _id: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(id: &str) -> ContainerConfig {
        ContainerConfig {
            id: id.into(),
            pod_uid: "u1".into(),
            pod_name: "p".into(),
            container_name: "web".into(),
            rootfs_lower: "/r".into(),
            args: vec!["true".into()],
            env: vec![],
            cwd: "/".into(),
            cpu_limit_millis: None,
            cpu_request_millis: None,
            memory_limit_bytes: None,
            pids_limit: None,
            host_network: false,
            log_path: "/l".into(),
            log_max_bytes: 1,
            log_max_files: 1,
        }
    }

    #[test]
    fn lifecycle_start_exit_remove() {
        let rt = FakeRuntime::new();
        assert!(matches!(
            rt.start_container(&config("c1")),
            Err(RuntimeError::SandboxNotFound { .. })
        ));
        rt.create_sandbox("u1", "p", false).unwrap();
        let info = rt.start_container(&config("c1")).unwrap();
        assert!(matches!(info.state, ContainerState::Running { .. }));
        assert!(matches!(
            rt.remove_container("c1"),
            Err(RuntimeError::StillRunning { .. })
        ));
        rt.exit("c1", 3);
        match rt.inspect("c1").unwrap().unwrap().state {
            ContainerState::Exited(exit) => assert_eq!(exit.exit_code, 3),
            other => panic!("unexpected state {other:?}"),
        }
        rt.remove_container("c1").unwrap();
        assert!(rt.list_containers().unwrap().is_empty());
        assert_eq!(rt.calls()[0], "start c1");
    }

    #[test]
    fn simulated_failures_and_oom() {
        let rt = FakeRuntime::new();
        rt.create_sandbox("u1", "p", false).unwrap();
        rt.fail_starts_of("web", "exec format error");
        assert!(matches!(
            rt.start_container(&config("c1")),
            Err(RuntimeError::StartFailed { .. })
        ));
        rt.clear_start_failures();
        rt.start_container(&config("c1")).unwrap();
        rt.oom_kill("c1");
        match rt.inspect("c1").unwrap().unwrap().state {
            ContainerState::Exited(exit) => assert!(exit.oom_killed),
            other => panic!("unexpected state {other:?}"),
        }
        rt.stop_container("c1", Duration::from_secs(1)).unwrap();
        assert!(rt.remove_container("c1").is_ok());
    }
}
