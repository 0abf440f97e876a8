//! The exec helper (`berth exec-helper <container-dir> <exec-spec-json>`): runs one process
//! inside a running container with `libcontainer`'s tenant builder; see the module docs of
//! [`crate::runtime`] for why it is a process of its own.
//!
//! Its exit code is the process's exit code (128 + signal when the process was killed by a
//! signal), [`EXEC_TIMED_OUT`] when the spec's timeout expired, or [`EXEC_FAILED`] when the
//! process could not be started at all (the reason is written to stderr).

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::oci_spec::runtime::{LinuxSeccomp, Process, Spec};
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::files::{self, ShimSettings};
use super::{procfs, ContainerConfig, ContainerState, ExecSpec, RuntimeError};

/// The hidden subcommand that runs [`exec_helper_main`].
pub const EXEC_HELPER_SUBCOMMAND: &str = "exec-helper";
/// Exit code of the helper when the spec's timeout expired and the process was killed
/// (the code `timeout(1)` uses).
pub const EXEC_TIMED_OUT: i32 = 124;
/// Exit code of the helper when the process could not be started (bad spec, container not
/// running, program not found); the reason is on stderr.
pub const EXEC_FAILED: i32 = 125;

/// The command that runs `spec` in the container `id` (in `container_dir`) through the exec
/// helper of `helper_exe`; errors unless the container is running.
pub(crate) fn helper_command(
    helper_exe: &Path,
    container_dir: &Path,
    id: &str,
    state: &ContainerState,
    spec: &ExecSpec,
) -> Result<Command, RuntimeError> {
    if spec.args.is_empty() {
        return Err(RuntimeError::InvalidExecSpec {
            reason: "no command given".to_string(),
        });
    }
    let not_running = |state: String| RuntimeError::NotRunning {
        id: id.to_string(),
        state,
    };
    match state {
        ContainerState::Running { .. } => {}
        ContainerState::Starting => return Err(not_running("starting".to_string())),
        ContainerState::Exited(exit) => {
            return Err(not_running(format!("exited with code {}", exit.exit_code)))
        }
        ContainerState::Lost { .. } => return Err(not_running("lost".to_string())),
    }
    let spec_json = serde_json::to_string(spec).map_err(|e| RuntimeError::InvalidExecSpec {
        reason: e.to_string(),
    })?;
    log::debug!("exec in container {id}: {:?}", spec.args);
    let mut command = Command::new(helper_exe);
    command
        .arg(EXEC_HELPER_SUBCOMMAND)
        .arg(container_dir)
        .arg(spec_json);
    Ok(command)
}

/// Runs the exec helper; `args` are the arguments after the subcommand:
/// `<container-dir> <exec-spec-json>`. Returns the helper's exit code.
///
/// Must run in a single-threaded process (`libcontainer` forks). The helper stays in its
/// caller's session and process group, so a Ctrl-C or a kill of the caller's group reaches
/// it; the process it starts dies with it (parent-death signal).
pub fn exec_helper_main(args: &[String]) -> i32 {
    for problem in super::signals::reset_signal_handling() {
        report(&problem);
    }
    let [container_dir, spec_json] = args else {
        report("usage: exec-helper <container-dir> <exec-spec-json>");
        return EXEC_FAILED;
    };
    let spec: ExecSpec = match serde_json::from_str(spec_json) {
        Ok(spec) => spec,
        Err(err) => {
            report(&format!("invalid exec spec: {err}"));
            return EXEC_FAILED;
        }
    };
    let container_dir = Path::new(container_dir);
    let pid = match start_tenant(container_dir, &spec) {
        Ok(pid) => pid,
        Err(reason) => {
            report(&reason);
            return EXEC_FAILED;
        }
    };
    match spec.timeout {
        Some(timeout) => wait_with_timeout(pid, timeout),
        None => wait_for_exit(pid),
    }
}

/// Starts the process inside the container; returns its pid (our child).
fn start_tenant(container_dir: &Path, spec: &ExecSpec) -> Result<Pid, String> {
    if spec.args.is_empty() {
        return Err("the exec spec has no command".to_string());
    }
    let cfg: ContainerConfig = files::read_json(&container_dir.join(files::CONFIG_FILE))
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no container in {}", container_dir.display()))?;
    let settings: ShimSettings = files::read_json(&container_dir.join(files::SHIM_SETTINGS_FILE))
        .map_err(|e| e.to_string())?
        .ok_or("shim.json is missing")?;
    let bundle_spec_path = container_dir
        .join(files::BUNDLE_DIR)
        .join(files::CONFIG_FILE);
    let container_spec = Spec::load(&bundle_spec_path)
        .map_err(|e| format!("read {}: {e}", bundle_spec_path.display()))?;
    let process = tenant_process(&container_spec, spec)?;
    // The tenant builder takes a full process only from a file. Our pid makes the name
    // unique among concurrent execs into the same container.
    let process_path = container_dir.join(format!("exec-{}.json", std::process::id()));
    files::write_json(&process_path, &process).map_err(|e| e.to_string())?;
    let result = build_tenant(&cfg.id, &settings, &process_path, &container_spec);
    if let Err(err) = std::fs::remove_file(&process_path) {
        report(&format!("cannot remove {}: {err}", process_path.display()));
    }
    result
}

fn build_tenant(
    id: &str,
    settings: &ShimSettings,
    process_path: &Path,
    container_spec: &Spec,
) -> Result<Pid, String> {
    let dup = |fd: std::io::Result<OwnedFd>, name: &str| {
        fd.map_err(|e| format!("duplicate our {name}: {e}"))
    };
    let stdin = dup(std::io::stdin().as_fd().try_clone_to_owned(), "stdin")?;
    let stdout = dup(std::io::stdout().as_fd().try_clone_to_owned(), "stdout")?;
    let stderr = dup(std::io::stderr().as_fd().try_clone_to_owned(), "stderr")?;
    if let Some(process) = container_spec.process() {
        let (uid, gid) = (process.user().uid(), process.user().gid());
        let stdio = [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()];
        if let Err(err) = super::shim::give_pipes_to_user(uid, gid, &stdio) {
            report(&err);
        }
    }
    let executor = ConfinedExecutor {
        seccomp: container_spec
            .linux()
            .as_ref()
            .and_then(|linux| linux.seccomp().clone()),
    };
    ContainerBuilder::new(id.to_string(), SyscallType::default())
        .with_root_path(&settings.libcontainer_root)
        .map_err(|e| e.to_string())?
        .with_executor(executor)
        .with_stdin(stdin)
        .with_stdout(stdout)
        .with_stderr(stderr)
        .as_tenant()
        .with_process(Some(process_path))
        .with_detach(false)
        .build()
        .map_err(|e| {
            format!(
                "cannot exec in container {id}: {}",
                super::shim::describe_error(&e)
            )
        })
}

/// The container's own process section with the command, environment and working dir of
/// the exec: so the process gets the container's user, capabilities, no_new_privs and
/// rlimits (the tenant builder would otherwise build a process without rlimits).
fn tenant_process(container_spec: &Spec, spec: &ExecSpec) -> Result<Process, String> {
    let mut process = container_spec
        .process()
        .clone()
        .ok_or("the container's oci spec has no process")?;
    let container_env = process.env().clone().unwrap_or_default();
    let cwd = spec
        .cwd
        .as_ref()
        .map(PathBuf::from)
        .unwrap_or_else(|| process.cwd().clone());
    if !cwd.is_absolute() {
        return Err(format!("working dir {} is not absolute", cwd.display()));
    }
    process
        .set_args(Some(spec.args.clone()))
        .set_env(Some(merge_env(&container_env, &spec.env)))
        .set_cwd(cwd)
        .set_terminal(Some(false))
        .set_console_size(None);
    Ok(process)
}

/// The container's environment with `extra` on top: an extra `K=V` replaces the
/// container's `K` in place; new keys are appended in order.
fn merge_env(container_env: &[String], extra: &[String]) -> Vec<String> {
    let key = |entry: &str| entry.split('=').next().unwrap_or("").to_string();
    let mut merged: Vec<String> = container_env.to_vec();
    let mut index_of: HashMap<String, usize> = merged
        .iter()
        .enumerate()
        .map(|(i, entry)| (key(entry), i))
        .collect();
    for entry in extra {
        match index_of.get(&key(entry)) {
            Some(&i) => merged[i] = entry.clone(),
            None => {
                index_of.insert(key(entry), merged.len());
                merged.push(entry.clone());
            }
        }
    }
    merged
}

/// Runs inside the tenant right before `execve`, after `libcontainer` has joined the
/// container's namespaces and cgroup and dropped privileges. `libcontainer` has also made
/// the process a session and process group leader, so a timeout kills the whole command (a
/// shell and its children) with one signal to the group.
#[derive(Clone)]
struct ConfinedExecutor {
    /// The container's seccomp profile: the tenant builder keeps only namespaces and the
    /// cgroup of the container's `linux` section, so the filter is installed here.
    seccomp: Option<LinuxSeccomp>,
}

impl Executor for ConfinedExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        // The process must not outlive the helper: whoever kills the helper ends the exec.
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
            .map_err(|e| ExecutorError::Other(format!("set the parent-death signal: {e}")))?;
        if let Some(seccomp) = &self.seccomp {
            libcontainer::seccomp::initialize_seccomp(seccomp)
                .map_err(|e| ExecutorError::Other(format!("install seccomp filter: {e}")))?;
        }
        DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }
}

/// Waits for the process; its exit code, or 128 + signal if a signal killed it.
fn wait_for_exit(pid: Pid) -> i32 {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, signal, _)) => return 128 + signal as i32,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(err) => {
                report(&format!("cannot wait for the exec'd process: {err}"));
                return EXEC_FAILED;
            }
        }
    }
}

/// Waits up to `timeout`; then SIGKILLs the process's group and returns [`EXEC_TIMED_OUT`].
fn wait_with_timeout(pid: Pid, timeout: Duration) -> i32 {
    let pidfd = match procfs::pidfd_open(pid.as_raw()) {
        Ok(fd) => fd,
        Err(err) => {
            report(&format!("cannot watch the exec'd process: {err}"));
            return wait_for_exit(pid);
        }
    };
    // A preStop hook's timeout is the pod's grace period, up to i64::MAX seconds: past
    // what an Instant can hold, there is no deadline in practice.
    let deadline = Instant::now().checked_add(timeout);
    loop {
        let left = deadline.map_or(Duration::MAX, |d| {
            d.saturating_duration_since(Instant::now())
        });
        if left.is_zero() {
            break;
        }
        let millis = i32::try_from(left.as_millis().max(1)).unwrap_or(i32::MAX);
        let mut poll_fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(
            &mut poll_fds,
            PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => return wait_for_exit(pid),
            Err(err) => {
                report(&format!("poll on the exec'd process failed: {err}"));
                return wait_for_exit(pid);
            }
        }
    }
    // The process is our unreaped child, so its pid (and group id) cannot be reused yet.
    for target in [Pid::from_raw(-pid.as_raw()), pid] {
        if let Err(err) = kill(target, Signal::SIGKILL) {
            if err != nix::errno::Errno::ESRCH {
                report(&format!("cannot kill the exec'd process: {err}"));
            }
        }
    }
    wait_for_exit(pid);
    EXEC_TIMED_OUT
}

/// One line on stderr, which is the exec's own stderr: prefixed so a user can tell it
/// from the command's output.
fn report(message: &str) {
    eprintln!("berth exec: {message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_env_overrides_in_place_and_appends() {
        let container = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        let extra = vec!["A=2".to_string(), "B=x=y".to_string()];
        assert_eq!(
            merge_env(&container, &extra),
            vec!["PATH=/bin", "A=2", "B=x=y"]
        );
        assert_eq!(merge_env(&container, &[]), container);
    }
}
