//! The real runtime: prepares container dirs, spawns shims, and reads container state back
//! from the state dir and the kernel.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::bundle::{self, HostFacts};
use super::files::{self, Layout, ShimSettings};
use super::rootfs::{mount_overlay, unmount_rootfs};
use super::termination::with_termination_log;
use super::{
    container_cgroup_path, exec, is_valid_container_id, orphans, pid_holder, pod_cgroup, procfs,
    sandbox, ContainerConfig, ContainerInfo, ContainerState, ExecSpec, ExitInfo, Runtime,
    RuntimeConfig, RuntimeError,
};

/// How long `start_container` waits for the shim to report the container running.
const START_DEADLINE: Duration = Duration::from_secs(10);
/// How long to wait for an exit record after SIGKILL, or for a shim to finish its cleanup.
const KILL_DEADLINE: Duration = Duration::from_secs(10);
/// Polling interval while waiting for the shim's files to appear during start.
const START_POLL_INTERVAL: Duration = Duration::from_millis(5);
/// Where the cgroup hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// How much of `shim.log` goes into an error when a shim dies without a record.
const SHIM_LOG_TAIL_BYTES: usize = 2000;

/// Runs containers with `libcontainer` through one shim process per container.
pub struct LibcontainerRuntime {
    config: RuntimeConfig,
    layout: Layout,
    host: HostFacts,
    /// Shims this process spawned (id → pid): only those can be reaped by us.
    children: Mutex<HashMap<String, i32>>,
    /// Containers this process is preparing (dir made, shim not yet recorded).
    preparing: Mutex<HashSet<String>>,
}

impl LibcontainerRuntime {
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let layout = Layout::new(&config.state_dir);
        for dir in [
            layout.containers_dir(),
            layout.pods_dir(),
            layout.libcontainer_root(),
        ] {
            fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("create", &dir, e))?;
        }
        let host = HostFacts::detect();
        let runtime = LibcontainerRuntime {
            config,
            layout,
            host,
            children: Mutex::new(HashMap::new()),
            preparing: Mutex::new(HashSet::new()),
        };
        runtime.discard_unfinished_dirs();
        runtime.remove_orphaned_cgroups();
        pid_holder::kill_orphans(&runtime.layout.pods_dir());
        Ok(runtime)
    }

    /// A container dir without `config.json` is what a crash right after `mkdir` leaves; it
    /// cannot be described to the agent, so it is removed here.
    fn discard_unfinished_dirs(&self) {
        let Ok(entries) = fs::read_dir(self.layout.containers_dir()) else {
            return;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let dir = entry.path();
            if dir.join(files::CONFIG_FILE).exists() {
                continue;
            }
            log::info!("removing unfinished container dir {}", dir.display());
            unmount_rootfs(&dir);
            if let Err(err) = fs::remove_dir_all(&dir) {
                log::warn!("cannot remove {}: {err}", dir.display());
            }
        }
    }

    /// Kills and removes container cgroups under our parent that no container dir names
    /// (the state dir was wiped while they ran): nothing else would ever stop them.
    fn remove_orphaned_cgroups(&self) {
        let known = |id: &str| self.layout.container_dir(id).exists();
        orphans::remove_orphaned_cgroups(
            Path::new(CGROUP_ROOT),
            &self.config.cgroup_parent,
            &known,
        );
    }

    /// The cgroup of a prepared container, as its `shim.json` records it (inside its
    /// pod's cgroup or directly under the parent); the parent's when none is recorded.
    fn cgroup_path(&self, id: &str) -> String {
        let settings = self
            .layout
            .container_dir(id)
            .join(files::SHIM_SETTINGS_FILE);
        match files::read_json::<ShimSettings>(&settings) {
            Ok(Some(settings)) => settings.cgroup_path,
            Ok(None) | Err(_) => container_cgroup_path(&self.config.cgroup_parent, id),
        }
    }

    /// Where a new container's cgroup goes: in its pod's cgroup when the pod has
    /// pod-level limits, directly under the parent otherwise.
    fn new_cgroup_path(&self, cfg: &ContainerConfig) -> String {
        match &cfg.pod_limits {
            Some(_) => {
                let pod = pod_cgroup::path(&self.config.cgroup_parent, &cfg.pod_uid);
                format!("{pod}/{}", cfg.id)
            }
            None => container_cgroup_path(&self.config.cgroup_parent, &cfg.id),
        }
    }

    /// Creates the pod's cgroup with its limits (again, for each container: a changed
    /// pod's new containers bring its new limits).
    fn apply_pod_limits(&self, cfg: &ContainerConfig) -> Result<(), RuntimeError> {
        let Some(limits) = &cfg.pod_limits else {
            return Ok(());
        };
        sandbox::check_pod_uid(&cfg.pod_uid)?;
        let path = pod_cgroup::path(&self.config.cgroup_parent, &cfg.pod_uid);
        pod_cgroup::apply(
            Path::new(CGROUP_ROOT),
            &path,
            limits,
            self.host.cgroup_version,
            self.host.v1_swap_accounting,
        )
    }

    fn check_id(id: &str) -> Result<(), RuntimeError> {
        if is_valid_container_id(id) {
            Ok(())
        } else {
            Err(RuntimeError::InvalidId { id: id.to_string() })
        }
    }

    /// Creates the container dir, overlay rootfs and bundle; the caller discards the dir
    /// if this fails.
    fn prepare(&self, cfg: &ContainerConfig, dir: &Path) -> Result<(), RuntimeError> {
        let cgroup_path = self.new_cgroup_path(cfg);
        files::write_json(&dir.join(files::CONFIG_FILE), cfg)?;
        files::write_json(
            &dir.join(files::SHIM_SETTINGS_FILE),
            &ShimSettings {
                libcontainer_root: self.layout.libcontainer_root(),
                cgroup_path: cgroup_path.clone(),
            },
        )?;
        self.apply_pod_limits(cfg)?;
        let sandbox = sandbox::namespaces_for(
            &self.layout,
            &cfg.pod_uid,
            cfg.host_network,
            cfg.share_process_namespace,
        )?;
        for sub in [
            files::UPPER_DIR,
            files::WORK_DIR,
            files::ROOTFS_DIR,
            files::BUNDLE_DIR,
        ] {
            let path = dir.join(sub);
            fs::create_dir_all(&path).map_err(|e| RuntimeError::io("create", &path, e))?;
        }
        let rootfs = dir.join(files::ROOTFS_DIR);
        mount_overlay(&cfg.id, &cfg.rootfs_lower, dir, &rootfs)?;
        let cfg = &with_termination_log(cfg, dir)?;
        let spec = bundle::build_spec(cfg, &rootfs, &sandbox, &cgroup_path, self.host).map_err(
            |reason| RuntimeError::Spec {
                id: cfg.id.clone(),
                reason,
            },
        )?;
        let spec_path = dir.join(files::BUNDLE_DIR).join(files::CONFIG_FILE);
        files::write_json(&spec_path, &spec)
    }

    fn spawn_shim(&self, id: &str, dir: &Path) -> Result<i32, RuntimeError> {
        let log_path = dir.join(files::SHIM_LOG_FILE);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| RuntimeError::io("open", &log_path, e))?;
        let log_for_stderr = log
            .try_clone()
            .map_err(|e| RuntimeError::io("duplicate", &log_path, e))?;
        let child = Command::new(&self.config.shim_exe)
            .arg("shim")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_for_stderr)
            .spawn()
            .map_err(|e| RuntimeError::io("spawn shim", &self.config.shim_exe, e))?;
        let pid = child.id() as i32;
        // Dropping `Child` neither kills nor waits; `reap` collects the exit status later.
        drop(child);
        self.lock_children().insert(id.to_string(), pid);
        // The shim writes this too; writing it here as well closes the window in which an
        // agent crash would leave a live shim without a pid file.
        if let Err(err) = procfs::record_shim(dir, pid) {
            log::warn!("cannot record the shim pid of {id} (the shim records it too): {err}");
        }
        Ok(pid)
    }

    fn lock_preparing(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // Single insert/remove calls: a poisoned lock is still consistent.
        self.preparing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_children(&self) -> std::sync::MutexGuard<'_, HashMap<String, i32>> {
        // A panic while holding this lock cannot leave the map inconsistent (single
        // insert/remove calls), so a poisoned lock is still usable.
        self.children
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until the shim reports the container running or exited.
    fn wait_until_started(&self, id: &str, shim_pid: i32) -> Result<ContainerInfo, RuntimeError> {
        let dir = self.layout.container_dir(id);
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let info = self
                .inspect(id)?
                .ok_or_else(|| RuntimeError::NotFound { id: id.to_string() })?;
            match &info.state {
                ContainerState::Running { .. } => return Ok(info),
                // A container that ran and left a termination message has a start time;
                // one that never started has only the reason.
                ContainerState::Exited(exit) => match (&exit.message, &exit.started_at) {
                    (Some(reason), None) => return Err(self.fail_start(id, reason.clone())),
                    _ => return Ok(info),
                },
                ContainerState::Lost { .. } => {
                    let reason = format!(
                        "the shim (pid {shim_pid}) exited without a record: {}",
                        shim_log_tail(&dir)
                    );
                    return Err(self.fail_start(id, reason));
                }
                ContainerState::Starting => {}
            }
            if Instant::now() >= deadline {
                return Err(RuntimeError::Timeout {
                    id: id.to_string(),
                    what: "start",
                    seconds: START_DEADLINE.as_secs(),
                });
            }
            std::thread::sleep(START_POLL_INTERVAL);
        }
    }

    /// Cleans up after a failed start and builds the error for it.
    fn fail_start(&self, id: &str, reason: String) -> RuntimeError {
        log::info!("container {id} failed to start: {reason}");
        if let Some(fd) = self.exit_notifier(id).ok().flatten() {
            wait_readable(&fd, KILL_DEADLINE);
        }
        self.reap(id);
        if let Err(err) = self.remove_container(id) {
            log::warn!("cannot clean up container {id} after its failed start: {err}");
        }
        RuntimeError::StartFailed {
            id: id.to_string(),
            reason,
        }
    }

    /// Best-effort removal of a container dir whose shim never ran.
    fn discard(&self, id: &str, dir: &Path) {
        unmount_rootfs(dir);
        if let Err(err) = fs::remove_dir_all(dir) {
            log::warn!("cannot remove {}: {err}", dir.display());
        }
        self.lock_children().remove(id);
    }

    /// Sends `signal` to the container's init, if that pid still belongs to the container.
    fn signal_init(&self, id: &str, pid: i32, signal: Signal) -> Result<(), RuntimeError> {
        if !procfs::is_in_cgroup(pid, &self.cgroup_path(id)) {
            return Ok(());
        }
        match nix::sys::signal::kill(Pid::from_raw(pid), signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(e) => Err(RuntimeError::syscall(
                format!("send {signal} to container {id} (pid {pid})"),
                e,
            )),
        }
    }

    /// Waits up to `timeout` for the container to leave the running states; returns the
    /// state it reached.
    fn wait_for_exit(&self, id: &str, timeout: Duration) -> Result<ContainerState, RuntimeError> {
        // The timeout is a pod's grace period, up to i64::MAX seconds: past what an
        // Instant can hold, there is no deadline in practice.
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let state = self
                .inspect(id)?
                .map(|info| info.state)
                .ok_or_else(|| RuntimeError::NotFound { id: id.to_string() })?;
            match state {
                ContainerState::Exited(_) | ContainerState::Lost { .. } => return Ok(state),
                ContainerState::Starting | ContainerState::Running { .. } => {}
            }
            let left = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            });
            if left.is_zero() {
                return Ok(state);
            }
            // The shim exits right after recording the exit, so its pidfd wakes us up.
            match self.exit_notifier(id)? {
                Some(fd) => wait_readable(&fd, left),
                None => std::thread::sleep(START_POLL_INTERVAL),
            }
        }
    }

    /// SIGKILLs whatever is left of a container whose shim is gone, and waits for it.
    fn kill_orphaned_init(&self, id: &str) -> Result<(), RuntimeError> {
        let dir = self.layout.container_dir(id);
        let Some(pid) = files::read_pid(&dir.join(files::INIT_PID_FILE))? else {
            return Ok(());
        };
        self.signal_init(id, pid, Signal::SIGKILL)?;
        let deadline = Instant::now() + KILL_DEADLINE;
        while procfs::is_in_cgroup(pid, &self.cgroup_path(id)) {
            if Instant::now() >= deadline {
                return Err(RuntimeError::Timeout {
                    id: id.to_string(),
                    what: "die after SIGKILL",
                    seconds: KILL_DEADLINE.as_secs(),
                });
            }
            std::thread::sleep(START_POLL_INTERVAL);
        }
        Ok(())
    }

    fn init_alive(&self, id: &str) -> Result<bool, RuntimeError> {
        let dir = self.layout.container_dir(id);
        Ok(files::read_pid(&dir.join(files::INIT_PID_FILE))?
            .is_some_and(|pid| procfs::is_in_cgroup(pid, &self.cgroup_path(id))))
    }

    /// Deletes `libcontainer`'s state and the container's cgroup if the shim did not.
    fn delete_libcontainer_state(&self, id: &str) -> Result<(), RuntimeError> {
        let root = self.layout.libcontainer_root().join(id);
        if !root.exists() {
            return Ok(());
        }
        // Delete kills and removes through the cgroup and never forks, so it is safe here.
        let deleted = libcontainer::container::Container::load(root.clone())
            .and_then(|mut container| container.delete(true));
        if let Err(err) = deleted {
            log::warn!("libcontainer delete of {id} failed, removing its state by hand: {err}");
            fs::remove_dir_all(&root).map_err(|e| RuntimeError::io("remove", &root, e))?;
        }
        Ok(())
    }
}

impl Runtime for LibcontainerRuntime {
    fn create_sandbox(
        &self,
        pod_uid: &str,
        hostname: &str,
        host_network: bool,
        share_pid: bool,
    ) -> Result<(), RuntimeError> {
        sandbox::create(&self.layout, pod_uid, hostname, host_network)?;
        if share_pid {
            sandbox::ensure_pid_namespace(&self.layout, pod_uid, &self.config.shim_exe)?;
        }
        Ok(())
    }

    fn remove_sandbox(&self, pod_uid: &str) -> Result<(), RuntimeError> {
        sandbox::remove(&self.layout, pod_uid)?;
        // The pod's containers are gone by now; so can its cgroup, if it had one. A uid
        // that could not have made one names no path to remove (`sandbox::remove`
        // ignores it too).
        if sandbox::check_pod_uid(pod_uid).is_ok() {
            let path = pod_cgroup::path(&self.config.cgroup_parent, pod_uid);
            pod_cgroup::remove(Path::new(CGROUP_ROOT), &path);
        }
        Ok(())
    }

    fn list_sandboxes(&self) -> Result<Vec<String>, RuntimeError> {
        sandbox::list(&self.layout)
    }

    fn start_container(&self, cfg: &ContainerConfig) -> Result<ContainerInfo, RuntimeError> {
        Self::check_id(&cfg.id)?;
        let id = cfg.id.as_str();
        let dir = self.layout.container_dir(id);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(RuntimeError::AlreadyExists { id: id.to_string() })
            }
            Err(e) => return Err(RuntimeError::io("create", &dir, e)),
        }
        self.lock_preparing().insert(id.to_string());
        let spawned = self
            .prepare(cfg, &dir)
            .and_then(|()| self.spawn_shim(id, &dir));
        self.lock_preparing().remove(id);
        let shim_pid = match spawned {
            Ok(pid) => pid,
            Err(err) => {
                self.discard(id, &dir);
                return Err(err);
            }
        };
        log::debug!("container {id}: shim started as pid {shim_pid}");
        let info = self.wait_until_started(id, shim_pid)?;
        match &info.state {
            ContainerState::Running { pid, .. } => {
                log::info!("container {id} started (pid {pid})")
            }
            ContainerState::Exited(exit) => {
                log::info!(
                    "container {id} started and exited with code {}",
                    exit.exit_code
                )
            }
            ContainerState::Starting | ContainerState::Lost { .. } => {}
        }
        Ok(info)
    }

    fn stop_container(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        Self::check_id(id)?;
        let info = self
            .inspect(id)?
            .ok_or_else(|| RuntimeError::NotFound { id: id.to_string() })?;
        let state = match info.state {
            ContainerState::Starting => self.wait_for_running(id)?,
            other => other,
        };
        match state {
            ContainerState::Exited(_) => Ok(()),
            ContainerState::Lost { .. } => self.kill_orphaned_init(id),
            ContainerState::Starting => Err(RuntimeError::Timeout {
                id: id.to_string(),
                what: "start",
                seconds: START_DEADLINE.as_secs(),
            }),
            ContainerState::Running { pid, .. } => {
                log::info!("stopping container {id} (grace {} s)", grace.as_secs_f32());
                self.signal_init(id, pid, Signal::SIGTERM)?;
                let state = match self.wait_for_exit(id, grace)? {
                    ContainerState::Starting | ContainerState::Running { .. } => {
                        log::info!("container {id} did not stop in time, killing it");
                        self.signal_init(id, pid, Signal::SIGKILL)?;
                        self.wait_for_exit(id, KILL_DEADLINE)?
                    }
                    done @ (ContainerState::Exited(_) | ContainerState::Lost { .. }) => done,
                };
                match state {
                    ContainerState::Exited(_) => Ok(()),
                    ContainerState::Lost { .. } => self.kill_orphaned_init(id),
                    ContainerState::Starting | ContainerState::Running { .. } => {
                        Err(RuntimeError::Timeout {
                            id: id.to_string(),
                            what: "exit after SIGKILL",
                            seconds: KILL_DEADLINE.as_secs(),
                        })
                    }
                }
            }
        }
    }

    fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        Self::check_id(id)?;
        let dir = self.layout.container_dir(id);
        if !dir.exists() {
            return Ok(());
        }
        if let Some(info) = self.inspect(id)? {
            match info.state {
                ContainerState::Starting | ContainerState::Running { .. } => {
                    return Err(RuntimeError::StillRunning { id: id.to_string() })
                }
                ContainerState::Lost { .. } => {
                    if self.init_alive(id)? {
                        return Err(RuntimeError::StillRunning { id: id.to_string() });
                    }
                }
                ContainerState::Exited(_) => {
                    // The shim deletes the libcontainer container right after recording
                    // the exit; let it finish instead of racing it.
                    if let Some(fd) = self.exit_notifier(id)? {
                        wait_readable(&fd, KILL_DEADLINE);
                    }
                }
            }
        }
        self.delete_libcontainer_state(id)?;
        unmount_rootfs(&dir);
        self.reap(id);
        fs::remove_dir_all(&dir).map_err(|e| RuntimeError::io("remove", &dir, e))?;
        self.lock_children().remove(id);
        log::info!("removed container {id}");
        Ok(())
    }

    fn list_containers(&self) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let dir = self.layout.containers_dir();
        let entries = fs::read_dir(&dir).map_err(|e| RuntimeError::io("read", &dir, e))?;
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| is_valid_container_id(name))
            .collect();
        crate::support::sort::sort(&mut ids);
        let mut containers = Vec::with_capacity(ids.len());
        for id in ids {
            match self.inspect(&id) {
                Ok(Some(info)) => containers.push(info),
                Ok(None) => {}
                Err(err) => log::warn!("cannot read container {id}: {err}"),
            }
        }
        Ok(containers)
    }

    fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>, RuntimeError> {
        Self::check_id(id)?;
        let dir = self.layout.container_dir(id);
        let Some(config) = files::read_json::<ContainerConfig>(&dir.join(files::CONFIG_FILE))?
        else {
            return Ok(None);
        };
        let shim = procfs::read_shim(&dir)?;
        let being_prepared = self.lock_preparing().contains(id);
        let state = read_state(&dir, shim.as_ref(), being_prepared)?;
        Ok(Some(ContainerInfo {
            config,
            shim_pid: shim.map(|s| s.pid),
            state,
        }))
    }

    fn exit_notifier(&self, id: &str) -> Result<Option<OwnedFd>, RuntimeError> {
        Self::check_id(id)?;
        let dir = self.layout.container_dir(id);
        if !dir.exists() {
            return Err(RuntimeError::NotFound { id: id.to_string() });
        }
        let Some(shim) = procfs::read_shim(&dir)? else {
            return Ok(None);
        };
        let Ok(fd) = procfs::pidfd_open(shim.pid) else {
            return Ok(None);
        };
        // Checked after opening: if the pid still names our shim now, the pidfd refers to it
        // and not to a process that reused the pid.
        if procfs::is_shim_alive(&shim, &dir) {
            Ok(Some(fd))
        } else {
            Ok(None)
        }
    }

    fn reap(&self, id: &str) {
        let Some(pid) = self.lock_children().get(id).copied() else {
            return;
        };
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(status) => {
                log::debug!("shim of {id} reaped: {status:?}");
                self.lock_children().remove(id);
            }
            Err(_) => {
                self.lock_children().remove(id);
            }
        }
    }

    fn exec_command(&self, id: &str, spec: &ExecSpec) -> Result<Command, RuntimeError> {
        Self::check_id(id)?;
        let info = self
            .inspect(id)?
            .ok_or_else(|| RuntimeError::NotFound { id: id.to_string() })?;
        let dir = self.layout.container_dir(id);
        exec::helper_command(&self.config.shim_exe, &dir, id, &info.state, spec)
    }

    fn sandbox_netns(&self, pod_uid: &str) -> Option<PathBuf> {
        sandbox::network_namespace(&self.layout, pod_uid)
    }

    fn sandbox_dir(&self, pod_uid: &str) -> Option<PathBuf> {
        sandbox::is_valid_pod_uid(pod_uid).then(|| self.layout.pods_dir().join(pod_uid))
    }
}

impl LibcontainerRuntime {
    /// Waits for a starting container to become running or exit.
    fn wait_for_running(&self, id: &str) -> Result<ContainerState, RuntimeError> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let state = self
                .inspect(id)?
                .map(|info| info.state)
                .ok_or_else(|| RuntimeError::NotFound { id: id.to_string() })?;
            if state != ContainerState::Starting || Instant::now() >= deadline {
                return Ok(state);
            }
            std::thread::sleep(START_POLL_INTERVAL);
        }
    }
}

/// The container's state from its files and the kernel. `being_prepared`: this process is
/// preparing the container right now, so a missing shim is still to come.
fn read_state(
    dir: &Path,
    shim: Option<&procfs::ShimIdentity>,
    being_prepared: bool,
) -> Result<ContainerState, RuntimeError> {
    let exit_path = dir.join(files::EXIT_FILE);
    if let Some(exit) = files::read_json::<ExitInfo>(&exit_path)? {
        return Ok(ContainerState::Exited(exit));
    }
    let Some(shim) = shim else {
        // No shim recorded: either we are preparing the container, or a shim spawned by an
        // agent that died at that moment has not recorded itself yet, or nothing will ever
        // run it (the agent died before spawning one).
        if being_prepared || procfs::find_shim(dir).is_some() {
            return Ok(ContainerState::Starting);
        }
        return Ok(match files::read_json::<ExitInfo>(&exit_path)? {
            Some(exit) => ContainerState::Exited(exit),
            None => lost(dir),
        });
    };
    if !procfs::is_shim_alive(shim, dir) {
        // The shim may have written its record and exited since the first look.
        return Ok(match files::read_json::<ExitInfo>(&exit_path)? {
            Some(exit) => ContainerState::Exited(exit),
            None => lost(dir),
        });
    }
    let init_pid = files::read_pid(&dir.join(files::INIT_PID_FILE))?;
    let started_at = files::read_text(&dir.join(files::STARTED_AT_FILE))?;
    Ok(match (init_pid, started_at) {
        (Some(pid), Some(started_at)) => ContainerState::Running { pid, started_at },
        _ => ContainerState::Starting,
    })
}

/// A lost container, dated by its newest record file (the last sign of life on disk).
fn lost(dir: &Path) -> ContainerState {
    let newest = [
        files::CONFIG_FILE,
        files::SHIM_PID_FILE,
        files::STARTED_AT_FILE,
        files::INIT_PID_FILE,
        files::SHIM_LOG_FILE,
    ]
    .iter()
    .filter_map(|name| fs::metadata(dir.join(name)).and_then(|m| m.modified()).ok())
    .max()
    .unwrap_or_else(SystemTime::now);
    ContainerState::Lost {
        since: humantime::format_rfc3339_seconds(newest).to_string(),
    }
}

/// Blocks until `fd` is readable or `timeout` passed.
fn wait_readable(fd: &OwnedFd, timeout: Duration) {
    let millis = timeout.as_millis().min(i32::MAX as u128) as i32;
    let mut poll_fds = [nix::poll::PollFd::new(
        fd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    let timeout = nix::poll::PollTimeout::try_from(millis).unwrap_or(nix::poll::PollTimeout::MAX);
    if let Err(err) = nix::poll::poll(&mut poll_fds, timeout) {
        log::debug!("poll on a shim pidfd failed: {err}");
    }
}

/// The end of `shim.log`, for errors about a shim that died.
fn shim_log_tail(dir: &Path) -> String {
    let text = fs::read_to_string(dir.join(files::SHIM_LOG_FILE)).unwrap_or_default();
    let text = text.trim();
    let start = text.len().saturating_sub(SHIM_LOG_TAIL_BYTES);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    if text.is_empty() {
        "shim.log is empty".to_string()
    } else {
        text[start..].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_nobody_runs_is_lost_at_one_fixed_time() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join(files::CONFIG_FILE), "{}").expect("config");
        let prepared = fs::metadata(dir.path().join(files::CONFIG_FILE))
            .and_then(|m| m.modified())
            .expect("mtime");
        let first = read_state(dir.path(), None, false).expect("state");
        let again = read_state(dir.path(), None, false).expect("state");
        let expected = humantime::format_rfc3339_seconds(prepared).to_string();
        assert_eq!(first, ContainerState::Lost { since: expected });
        assert_eq!(first, again, "the date of a lost container does not move");
    }

    #[test]
    fn a_container_being_prepared_is_starting() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join(files::CONFIG_FILE), "{}").expect("config");
        assert_eq!(
            read_state(dir.path(), None, true).expect("state"),
            ContainerState::Starting
        );
    }
}
