//! An in-memory [`Runtime`] for unit tests of the agent's pure logic, compiled only into
//! test builds. It runs nothing: containers are "running" from `start_container` until a
//! test calls [`FakeRuntime::exit`] or the agent stops them.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::files::now_rfc3339;
use super::{
    is_valid_container_id, ContainerConfig, ContainerInfo, ContainerState, ExecSpec, ExitInfo,
    Runtime, RuntimeError,
};

#[derive(Default)]
struct FakeState {
    sandboxes: BTreeSet<String>,
    containers: BTreeMap<String, ContainerInfo>,
    next_pid: i32,
    /// Start failures to simulate: container name → reason.
    start_failures: BTreeMap<String, String>,
    /// When set, execs exit with this code instead of running their command on the host.
    exec_exit_code: Option<i32>,
    /// Every call, in order, e.g. `start c1`, for assertions on what the agent did.
    calls: Vec<String>,
}

/// What runs once after the next `list_containers` (see [`FakeRuntime::after_next_list`]).
type ListHook = Box<dyn FnOnce() + Send>;

#[derive(Default)]
pub struct FakeRuntime {
    state: Mutex<FakeState>,
    /// While true, starts wait (outside `state`, so everything else goes on) until a
    /// test releases them: a step stays in flight for as long as the test needs.
    starts_held: Mutex<bool>,
    starts_released: Condvar,
    /// Runs once, after the next `list_containers` has taken its answer: a test's way
    /// of changing the runtime between a pass's observation and its plans.
    after_next_list: Mutex<Option<ListHook>>,
}

impl FakeRuntime {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        lock(&self.state)
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
            info.state = ContainerState::Lost {
                since: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            };
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

    /// Makes execs exit with `code` without running anything; `None` runs the command
    /// with `sh -c` on the host again.
    pub fn set_exec_exit_code(&self, code: Option<i32>) {
        self.lock().exec_exit_code = code;
    }

    /// Makes starts wait until [`FakeRuntime::release_starts`].
    pub fn hold_starts(&self) {
        *lock(&self.starts_held) = true;
    }

    /// Lets held starts, and those to come, go on.
    pub fn release_starts(&self) {
        *lock(&self.starts_held) = false;
        self.starts_released.notify_all();
    }

    /// Runs `hook` once, right after the next `list_containers` has read what it
    /// returns (and with no lock held, so the hook may use the runtime).
    pub fn after_next_list(&self, hook: impl FnOnce() + Send + 'static) {
        *lock(&self.after_next_list) = Some(Box::new(hook));
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
                ContainerState::Starting
                | ContainerState::Exited(_)
                | ContainerState::Lost { .. } => return,
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

/// A test that panicked while holding one of these left nothing half-changed that
/// matters to the other tests: the guard is still good to use.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Runtime for FakeRuntime {
    fn create_sandbox(
        &self,
        pod_uid: &str,
        _hostname: &str,
        _host_network: bool,
        share_pid: bool,
    ) -> Result<(), RuntimeError> {
        let mut state = self.lock();
        // A shared PID namespace is told apart, so tests can see the pod's flag arrive.
        let shared = if share_pid { " shared-pid" } else { "" };
        state
            .calls
            .push(format!("create_sandbox {pod_uid}{shared}"));
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
        let mut held = lock(&self.starts_held);
        while *held {
            held = self
                .starts_released
                .wait(held)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        drop(held);
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
            Some(ContainerState::Exited(_) | ContainerState::Lost { .. }) => {
                state.containers.remove(id);
                Ok(())
            }
        }
    }

    fn list_containers(&self) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let containers = self.lock().containers.values().cloned().collect();
        // Taken out first: the hook runs with no lock of ours held.
        let hook = lock(&self.after_next_list).take();
        if let Some(hook) = hook {
            hook();
        }
        Ok(containers)
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

    /// A host command: `sh -c '<args joined by spaces>'` with the spec's env added, under
    /// `timeout(1)` (which also exits with 124) when the spec has a timeout; or
    /// `sh -c 'exit <code>'` after [`FakeRuntime::set_exec_exit_code`].
    fn exec_command(&self, id: &str, spec: &ExecSpec) -> Result<Command, RuntimeError> {
        let mut state = self.lock();
        state
            .calls
            .push(format!("exec {id} {}", spec.args.join(" ")));
        match state.containers.get(id).map(|info| &info.state) {
            None => return Err(RuntimeError::NotFound { id: id.to_string() }),
            Some(ContainerState::Running { .. }) => {}
            Some(
                ContainerState::Starting | ContainerState::Exited(_) | ContainerState::Lost { .. },
            ) => {
                return Err(RuntimeError::NotRunning {
                    id: id.to_string(),
                    state: "not running".to_string(),
                })
            }
        }
        let script = match state.exec_exit_code {
            Some(code) => format!("exit {code}"),
            None => spec.args.join(" "),
        };
        let mut command = match spec.timeout {
            Some(timeout) => {
                let mut command = Command::new("timeout");
                command
                    .arg(format!("{:.3}", timeout.as_secs_f64()))
                    .arg("sh");
                command
            }
            None => Command::new("sh"),
        };
        command.arg("-c").arg(script);
        for entry in &spec.env {
            if let Some((key, value)) = entry.split_once('=') {
                command.env(key, value);
            }
        }
        if let Some(cwd) = &spec.cwd {
            command.current_dir(cwd);
        }
        Ok(command)
    }

    fn sandbox_netns(&self, _pod_uid: &str) -> Option<PathBuf> {
        None
    }

    fn sandbox_dir(&self, _pod_uid: &str) -> Option<PathBuf> {
        None
    }
}

/// A minimal container config for unit tests.
pub fn test_config(id: &str) -> ContainerConfig {
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
        oom_score_adj: None,
        host_network: false,
        share_process_namespace: false,
        log_path: "/l".into(),
        log_max_bytes: 1,
        log_max_files: 1,
        user: super::ProcessUser::default(),
        capabilities: super::default_capabilities(),
        readonly_rootfs: false,
        seccomp_unconfined: false,
        seccomp_profile: None,
        privileged: false,
        pod_files: Vec::new(),
        volume_mounts: Vec::new(),
        devices: Vec::new(),
        termination_message: None,
        pod_limits: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_start_exit_remove() {
        let rt = FakeRuntime::new();
        assert!(matches!(
            rt.start_container(&test_config("c1")),
            Err(RuntimeError::SandboxNotFound { .. })
        ));
        rt.create_sandbox("u1", "p", false, false).unwrap();
        let info = rt.start_container(&test_config("c1")).unwrap();
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
        rt.create_sandbox("u1", "p", false, false).unwrap();
        rt.fail_starts_of("web", "exec format error");
        assert!(matches!(
            rt.start_container(&test_config("c1")),
            Err(RuntimeError::StartFailed { .. })
        ));
        rt.clear_start_failures();
        rt.start_container(&test_config("c1")).unwrap();
        rt.oom_kill("c1");
        match rt.inspect("c1").unwrap().unwrap().state {
            ContainerState::Exited(exit) => assert!(exit.oom_killed),
            other => panic!("unexpected state {other:?}"),
        }
        rt.stop_container("c1", Duration::from_secs(1)).unwrap();
        assert!(rt.remove_container("c1").is_ok());
    }

    #[test]
    fn exec_runs_on_the_host_or_returns_the_set_code() {
        let rt = FakeRuntime::new();
        rt.create_sandbox("u1", "p", false, false).unwrap();
        rt.start_container(&test_config("c1")).unwrap();
        let spec = ExecSpec {
            args: vec!["echo".into(), "$X".into()],
            env: vec!["X=hi".into()],
            cwd: None,
            timeout: None,
        };
        let output = rt.exec_command("c1", &spec).unwrap().output().unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout), "hi\n");
        rt.set_exec_exit_code(Some(3));
        let status = rt.exec_command("c1", &spec).unwrap().status().unwrap();
        assert_eq!(status.code(), Some(3));
        rt.exit("c1", 0);
        assert!(matches!(
            rt.exec_command("c1", &spec),
            Err(RuntimeError::NotRunning { .. })
        ));
        assert_eq!(rt.sandbox_netns("u1"), None);
    }
}
