use std::path::PathBuf;

/// Errors of the container runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{action}: {source}")]
    Syscall {
        action: String,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("invalid json in {path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid container id {id:?}: only a-z, 0-9, '.', '_' and '-' are allowed")]
    InvalidId { id: String },
    #[error("container {id} already exists")]
    AlreadyExists { id: String },
    #[error("container {id} not found")]
    NotFound { id: String },
    #[error("sandbox of pod {pod_uid} not found")]
    SandboxNotFound { pod_uid: String },
    #[error("the process namespace of pod {pod_uid}: {reason}")]
    ProcessNamespace { pod_uid: String, reason: String },
    #[error("container {id} is still running")]
    StillRunning { id: String },
    #[error("container {id} is not running ({state})")]
    NotRunning { id: String, state: String },
    #[error("invalid exec spec: {reason}")]
    InvalidExecSpec { reason: String },
    #[error("container {id} failed to start: {reason}")]
    StartFailed { id: String, reason: String },
    #[error("container {id} did not {what} within {seconds} s")]
    Timeout {
        id: String,
        what: &'static str,
        seconds: u64,
    },
    #[error("cannot build the oci spec of container {id}: {reason}")]
    Spec { id: String, reason: String },
    #[error("pod cgroup: {reason}")]
    Cgroup { reason: String },
    #[error("libcontainer failed on container {id}: {reason}")]
    Libcontainer { id: String, reason: String },
}

impl RuntimeError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        RuntimeError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn syscall(action: impl Into<String>, source: nix::errno::Errno) -> Self {
        RuntimeError::Syscall {
            action: action.into(),
            source,
        }
    }
}
