//! The container runtime: runs OCI containers through youki's `libcontainer`.
//!
//! # Why a shim process per container
//!
//! `libcontainer` creates a container by `clone(2)`-ing helper processes that keep running
//! Rust code after the fork. That is only safe in a single-threaded process: in the
//! multi-threaded agent another thread may hold the allocator lock (or any other lock) at the
//! moment of the fork and the child would deadlock. So the agent never calls `libcontainer`'s
//! create path itself. Instead, for every container it spawns a small **shim** process with
//! `fork+exec` (`/proc/self/exe shim <container-dir>`, which is safe from any thread), and
//! the shim, single-threaded, does the work:
//!
//! 1. `setsid()` so it leaves the agent's session and process group: a `kill -9` of the
//!    agent, or a signal to its process group, never reaches the shim or the container;
//!    `PR_SET_CHILD_SUBREAPER` so stray grandchildren are reaped by the shim and not left
//!    as zombies;
//! 2. creates and starts the container with `libcontainer`, so the container's init process
//!    is the shim's own child and the shim can `waitpid` it: this is the only way to learn
//!    the real exit code and signal of a process, and the shim writes them to `exit.json`
//!    even when no agent is running at that moment (like `conmon` next to CRI-O);
//! 3. pumps the container's stdout and stderr (two pipes, owned by the container's user so
//!    that a non-root process can reopen `/dev/stdout`) into a size-capped, rotated log
//!    file, so logs keep flowing while the agent is down or restarting;
//! 4. after the exit, reads the OOM-kill counter of the container's cgroup, deletes the
//!    `libcontainer` container (cgroup and state), records the exit and exits itself.
//!
//! The agent learns about exits from a pidfd of the shim (see [`Runtime::exit_notifier`])
//! and reads the record from `exit.json`. Everything is kept in files under the state dir and
//! the kernel is the source of truth for liveness (is the shim's pid still the shim, see
//! below), so a restarted agent re-finds running
//! containers with their original PIDs and still gets correct exit codes for containers it
//! adopted, because it is the shim, not the agent, that waits for them.
//!
//! # Pod sandboxes
//!
//! The containers of one pod share the network, IPC and UTS namespaces. Those are held
//! without any process (no "pause" container): a short-lived thread unshares them, sets the
//! hostname, brings up loopback, and bind-mounts its `/proc/thread-self/ns/*` files onto
//! files under `<state>/pods/<pod_uid>/ns/` (like `ip netns add`). Containers join them by
//! path in their OCI spec; each container gets its own mount and PID namespace and cgroup.
//! A pod with `shareProcessNamespace` also gets a PID namespace, which needs a process as
//! its PID 1: a small holder, cloned by `berth pid-holder` (see [`pid_holder`]), plays
//! the pause container's part there, and the containers join it by path too.
//!
//! # Exec
//!
//! [`Runtime::exec_command`] (`berth exec`, exec probes, preStop hooks) returns a command
//! for `/proc/self/exe exec-helper <container-dir> <ExecSpec json>`, for the same reason the
//! shim exists: `libcontainer`'s tenant builder forks, so it runs in a fresh single-threaded
//! process ([`exec::exec_helper_main`]). The helper clears the signal state it inherited,
//! hands its own stdin/stdout/stderr to the new process and joins it to the container's
//! namespaces and cgroup with the container's own process section (user, capabilities,
//! no_new_privs, rlimits; args, env and cwd from the spec). The tenant builder drops the
//! container's seccomp filter, so the helper installs it itself right before `execve`. The
//! process is the helper's child: the helper waits for it and exits with its exit code
//! (128 + signal when killed), so the caller only needs the helper's status. On a timeout it
//! SIGKILLs the process's group (`libcontainer` makes it a session leader) and exits with
//! [`EXEC_TIMED_OUT`]; [`EXEC_FAILED`] means nothing was started (reason on stderr). The
//! process gets SIGKILL when the helper dies, so killing the command ends the exec.
//! TCP/HTTP probes do not need a helper: [`Runtime::sandbox_netns`] names the pod's network
//! namespace file, which a dedicated thread can `setns` into.
//!
//! # Exit records
//!
//! `exit.json` holds the exit code (128 + signal for a killed process, as shells and
//! Kubernetes report it), the signal, and `oom_killed`: the container's cgroup counted an
//! OOM kill (read before the cgroup is deleted) and the init died of SIGKILL or exited
//! with 137, so a shell whose child was OOM-killed also reads as OOM-killed, as with
//! containerd. A container that never ran gets exit code 128 and a `message`;
//! [`Runtime::start_container`] then returns that message as an error and removes the
//! container. A shim that vanished without a record (killed, or the board rebooted) reads
//! as [`ContainerState::Lost`]; stopping it SIGKILLs whatever is left in its cgroup.
//!
//! # Liveness without PID confusion
//!
//! `shim.pid` holds the shim's pid and its start time from `/proc/<pid>/stat`; the shim is
//! alive if a non-zombie process with that pid and start time exists (and its command line,
//! when readable, names the container dir). The container's init pid is only signalled
//! after checking `/proc/<pid>/cgroup` places it in the container's cgroup.
//!
//! # Files
//!
//! `<state>/containers/<id>/`: `config.json` ([`ContainerConfig`]), `shim.json` (cgroup path
//! and `libcontainer` root for the shim), `bundle/config.json` (OCI spec), `rootfs/`
//! (overlay of the read-only image rootfs with `upper/` and `work/`), `shim.pid`,
//! `started_at`, `init.pid`, `exit.json` ([`ExitInfo`]), `shim.log` (the shim's own
//! messages), `exec-<helper pid>.json` (an exec helper's process spec while it starts).
//! `libcontainer` keeps its state under `<state>/runtime/`, sandboxes live in
//! `<state>/pods/<pod_uid>/ns/{net,ipc,uts}` (and `pid` with `pid-holder.pid` for a
//! shared process namespace). All our files are written atomically
//! (temporary file + rename) so a crash never leaves a half-written record.

mod bundle;
mod error;
pub mod exec;
/// Only in test builds: release binaries carry no fake runtime (issue 12).
#[cfg(test)]
pub mod fake;
mod files;
mod libcontainer_runtime;
mod logfile;
mod orphans;
pub mod pid_holder;
mod pod_cgroup;
mod procfs;
mod rootfs;
mod sandbox;
mod seccomp;
pub mod shim;
mod signals;
mod termination;
pub mod user;
#[cfg(test)]
mod vendored_checks;
mod volumes;

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub use error::RuntimeError;
pub use exec::{exec_helper_main, EXEC_FAILED, EXEC_TIMED_OUT};
pub use libcontainer_runtime::LibcontainerRuntime;
pub use oci_spec::runtime::{Capability, LinuxSeccomp};
pub use seccomp::localhost::{load_localhost_profile, profile_path, MAX_PROFILE_BYTES};
pub use user::ProcessUser;
pub use volumes::{
    device_rule, mount_tmpfs, unmount_below, write_payload, DeviceRule, PayloadFile,
};

/// Where the runtime keeps its files and cgroups.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// The agent's state dir; the runtime uses `containers/`, `pods/` and `runtime/` in it.
    pub state_dir: PathBuf,
    /// Parent cgroup of all containers, e.g. `berth`.
    pub cgroup_parent: String,
    /// Executable started as `<shim_exe> shim <container-dir>`; normally the agent's own
    /// binary (`/proc/self/exe` resolved at start).
    pub shim_exe: PathBuf,
}

/// Everything needed to run one container instance.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ContainerConfig {
    /// Unique instance id chosen by the agent, `[a-z0-9._-]`.
    pub id: String,
    pub pod_uid: String,
    pub pod_name: String,
    pub container_name: String,
    /// Shared read-only unpacked image rootfs; never written.
    pub rootfs_lower: PathBuf,
    pub args: Vec<String>,
    /// `K=V` entries.
    pub env: Vec<String>,
    pub cwd: String,
    pub cpu_limit_millis: Option<u64>,
    pub cpu_request_millis: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub pids_limit: Option<i64>,
    /// The container's `oom_score_adj` (Kubernetes sets it by QoS class); without it the
    /// container would inherit the agent's, which is lowered so pods die before it.
    #[serde(default)]
    pub oom_score_adj: Option<i32>,
    pub host_network: bool,
    /// The pod's `shareProcessNamespace`: the container joins the pod's PID namespace
    /// (held by the sandbox's holder process) instead of getting one of its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub share_process_namespace: bool,
    pub log_path: PathBuf,
    pub log_max_bytes: u64,
    pub log_max_files: u32,
    /// Who the processes run as. Configs written before berth honoured users read as root.
    #[serde(default)]
    pub user: ProcessUser,
    /// The processes' capabilities (bounding, permitted and effective sets; the kernel
    /// clears the last two at `execve` for a non-root user). Also what the seccomp profile
    /// allows capability-gated calls by. Older configs read as the default set.
    #[serde(default = "default_capabilities")]
    pub capabilities: Vec<Capability>,
    /// `readOnlyRootFilesystem`: the root filesystem is mounted read-only.
    #[serde(default)]
    pub readonly_rootfs: bool,
    /// No seccomp filter at all (`seccompProfile: Unconfined`, or a privileged container);
    /// only a Pod Security level of `privileged` lets a pod ask for it.
    #[serde(default)]
    pub seccomp_unconfined: bool,
    /// A `Localhost` seccomp profile, read and translated when the container was created
    /// (the kubelet reads the file at each container creation too); it replaces the
    /// default profile. Unused when `seccomp_unconfined`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<LinuxSeccomp>,
    /// A privileged container: nothing in /proc and /sys masked or read-only. Its
    /// capabilities (all) and `seccomp_unconfined` are set by the caller like any other.
    #[serde(default)]
    pub privileged: bool,
    /// Files of the pod bind-mounted over paths in the container (`/etc/hosts`,
    /// `/etc/resolv.conf`, `/etc/hostname`), as the kubelet does: one copy per pod, kept
    /// in the pod's sandbox directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pod_files: Vec<PodFile>,
    /// The pod's volumes as this container mounts them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeBind>,
    /// Devices (from `hostPath` volumes of type CharDevice/BlockDevice) the device cgroup
    /// allows besides the default set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceRule>,
    /// The file the container may write why it ended into, read when it exits
    /// (`terminationMessagePath`); none for configs written before berth had it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_message: Option<TerminationMessage>,
    /// The limits of the pod as a whole (pod-level `resources`): with them the container's
    /// cgroup sits in the pod's own cgroup, which holds them for all its containers.
    /// Configs of pods without them (and from before berth had them) have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_limits: Option<PodLimits>,
}

/// The cgroup limits of a pod's own cgroup; a limit not set is unlimited there.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PodLimits {
    pub cpu_limit_millis: Option<u64>,
    /// Gives the pod's cgroup its CPU shares (weight on v2) against other pods.
    pub cpu_request_millis: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub pids_limit: Option<i64>,
}

/// Where a container writes its termination message, and whether its log stands in
/// for an empty one when it fails (`FallbackToLogsOnError`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TerminationMessage {
    /// Absolute path inside the container.
    pub destination: String,
    pub fallback_to_logs: bool,
}

/// A host directory or file bind-mounted into the container.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VolumeBind {
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub destination: String,
    pub read_only: bool,
    /// `HostToContainer`: mounts made later below the source on the host show inside.
    pub host_to_container: bool,
}

/// A file of the pod seen at `destination` in its containers.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PodFile {
    /// Absolute path inside the container.
    pub destination: String,
    pub source: PathBuf,
}

/// The capabilities named (Kubernetes spelling, `NET_ADMIN`); unknown names are skipped.
pub fn capabilities_from_names(names: &[&str]) -> Vec<Capability> {
    names
        .iter()
        .filter_map(|name| name.parse::<Capability>().ok())
        .collect()
}

/// Docker's default capability set, which containers get unless their securityContext
/// says otherwise.
pub fn default_capabilities() -> Vec<Capability> {
    capabilities_from_names(&crate::model::DEFAULT_CAPABILITIES)
}

/// How a container ended.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExitInfo {
    /// Exit code, or 128 + signal number when killed by a signal.
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub oom_killed: bool,
    pub started_at: Option<String>,
    /// RFC 3339, UTC.
    pub finished_at: String,
    /// Why the container could not be started, if it never ran (then `started_at` is
    /// none); else the termination message it left, if any.
    pub message: Option<String>,
}

/// A process to run inside a running container (`berth exec`, exec probes, preStop hooks).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExecSpec {
    pub args: Vec<String>,
    /// Extra `K=V` entries on top of the container's environment (same key: this wins).
    pub env: Vec<String>,
    /// Absolute working dir inside the container; the container's own when `None`.
    pub cwd: Option<String>,
    /// When set, the process (and its process group) is SIGKILLed after this long and the
    /// exec ends with [`EXEC_TIMED_OUT`].
    pub timeout: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ContainerState {
    /// The shim runs but the container's init process is not running yet.
    Starting,
    Running {
        pid: i32,
        started_at: String,
    },
    Exited(ExitInfo),
    /// The shim is gone without an exit record (killed, or the machine rebooted), or the
    /// agent that prepared the container died before a shim ran.
    Lost {
        /// RFC 3339 (UTC) time of the container's newest file: the last sign of life on
        /// record. It reads the same on every look, so a restart back-off counted from it
        /// ends (a "now" would push the back-off forward on every pass).
        since: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct ContainerInfo {
    pub config: ContainerConfig,
    pub shim_pid: Option<i32>,
    pub state: ContainerState,
}

/// The container runtime as the agent sees it. All methods block; call them off the async
/// executor's threads.
pub trait Runtime: Send + Sync {
    /// Creates the pod's shared namespaces; idempotent. With `share_pid` also a PID
    /// namespace, and its holder process; one whose holder has died is made anew (every
    /// process in it died with the holder).
    fn create_sandbox(
        &self,
        pod_uid: &str,
        hostname: &str,
        host_network: bool,
        share_pid: bool,
    ) -> Result<(), RuntimeError>;
    /// Releases the pod's namespaces (killing the PID namespace's holder, and anything
    /// left in that namespace) and removes its directory; idempotent.
    fn remove_sandbox(&self, pod_uid: &str) -> Result<(), RuntimeError>;
    fn list_sandboxes(&self) -> Result<Vec<String>, RuntimeError>;
    /// Prepares and starts a container; returns once it runs or has already exited.
    /// A container that could not be started is cleaned up and reported as
    /// [`RuntimeError::StartFailed`] with the reason.
    fn start_container(&self, cfg: &ContainerConfig) -> Result<ContainerInfo, RuntimeError>;
    /// SIGTERM, then SIGKILL after `grace`; returns once the exit is recorded.
    fn stop_container(&self, id: &str, grace: Duration) -> Result<(), RuntimeError>;
    /// Removes an exited container and everything it left; idempotent.
    fn remove_container(&self, id: &str) -> Result<(), RuntimeError>;
    fn list_containers(&self) -> Result<Vec<ContainerInfo>, RuntimeError>;
    fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>, RuntimeError>;
    /// A pidfd of the container's shim: readable once the shim exited (and so the exit is
    /// recorded). `None` if the shim is already gone.
    fn exit_notifier(&self, id: &str) -> Result<Option<OwnedFd>, RuntimeError>;
    /// Reaps the shim if it is our child, so exited shims do not stay zombies.
    fn reap(&self, id: &str);
    /// A ready-to-spawn command that runs `spec` inside the running container `id`. The
    /// caller sets stdin/stdout/stderr and spawns it. Its exit code is the process's (128 +
    /// signal if a signal killed it), [`EXEC_TIMED_OUT`] after a timeout (the process is
    /// already killed then), or [`EXEC_FAILED`] if it could not be started (reason on
    /// stderr). Killing the command kills the process inside the container too.
    /// Errors if the container is not running.
    fn exec_command(&self, id: &str, spec: &ExecSpec) -> Result<Command, RuntimeError>;
    /// The pod's network namespace file, to `setns` into on a dedicated thread (TCP/HTTP
    /// probes); `None` for host-network pods and unknown pods.
    fn sandbox_netns(&self, pod_uid: &str) -> Option<PathBuf>;
    /// A directory that lives and goes with the pod's sandbox, for the pod's own files
    /// (`/etc/hosts`, `/etc/resolv.conf`); `None` when the runtime keeps no files.
    fn sandbox_dir(&self, pod_uid: &str) -> Option<PathBuf>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// Detects the cgroup setup the way `libcgroups` does: hybrid hosts are driven as v1.
pub fn cgroup_version() -> CgroupVersion {
    match libcgroups::common::get_cgroup_setup() {
        Ok(libcgroups::common::CgroupSetup::Unified) => CgroupVersion::V2,
        Ok(libcgroups::common::CgroupSetup::Legacy | libcgroups::common::CgroupSetup::Hybrid) => {
            CgroupVersion::V1
        }
        Err(err) => {
            log::debug!("cannot detect the cgroup setup, assuming v2: {err}");
            CgroupVersion::V2
        }
    }
}

/// The cgroup path of a container (relative to each hierarchy's root): `/<parent>/<id>`.
pub fn container_cgroup_path(cgroup_parent: &str, id: &str) -> String {
    format!("/{}/{}", cgroup_parent.trim_matches('/'), id)
}

/// Container ids become directory, cgroup and `libcontainer` names, so only a safe subset
/// of characters is accepted.
pub fn is_valid_container_id(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 200
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_path_joins_parent_and_id() {
        assert_eq!(container_cgroup_path("berth", "a.b"), "/berth/a.b");
        assert_eq!(container_cgroup_path("/x/y/", "c"), "/x/y/c");
    }

    #[test]
    fn every_capability_name_is_known_to_oci_spec() {
        let all = capabilities_from_names(&crate::model::ALL_CAPABILITIES);
        assert_eq!(all.len(), crate::model::ALL_CAPABILITIES.len());
        assert_eq!(default_capabilities().len(), 14);
        assert!(default_capabilities().contains(&Capability::NetBindService));
        let json = serde_json::to_string(&capabilities_from_names(&["SYS_ADMIN"])).unwrap();
        assert_eq!(json, r#"["CAP_SYS_ADMIN"]"#);
    }

    #[test]
    fn configs_from_before_users_read_as_root_with_default_capabilities() {
        let mut value = serde_json::to_value(fake::test_config("a")).unwrap();
        let object = value.as_object_mut().unwrap();
        for field in [
            "user",
            "capabilities",
            "readonly_rootfs",
            "seccomp_unconfined",
            "privileged",
        ] {
            object.remove(field);
        }
        let old: ContainerConfig = serde_json::from_value(value).unwrap();
        assert_eq!(old.user, ProcessUser::default());
        assert_eq!(old.capabilities, default_capabilities());
        assert!(!old.readonly_rootfs);
        assert!(
            !old.seccomp_unconfined && !old.privileged,
            "confined as before"
        );
    }

    #[test]
    fn container_ids_are_restricted() {
        assert!(is_valid_container_id(
            "default.hello-7d9f-abcde.web.3f2a1b9c0d.0"
        ));
        assert!(!is_valid_container_id(""));
        assert!(!is_valid_container_id(".."));
        assert!(!is_valid_container_id("a/b"));
        assert!(!is_valid_container_id("Upper"));
    }
}
