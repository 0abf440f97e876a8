//! Container health probes and the preStop hook, in Kubernetes shape. The agent runs
//! them; this module only describes them and resolves named ports.

use serde::{Deserialize, Serialize};

use crate::model::{Container, IntOrString};

/// How and how often the agent checks a container. Exactly one handler is set
/// (validation guarantees it for parsed manifests).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Probe {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpSocketAction>,
    pub initial_delay_seconds: i32,
    pub period_seconds: i32,
    pub timeout_seconds: i32,
    /// Consecutive successes that make a failed probe pass again; always 1 for liveness
    /// and startup probes.
    pub success_threshold: i32,
    /// Consecutive failures that make the probe fail.
    pub failure_threshold: i32,
}

/// The Kubernetes defaults, which serde uses for every absent field.
impl Default for Probe {
    fn default() -> Self {
        Probe {
            exec: None,
            http_get: None,
            tcp_socket: None,
            initial_delay_seconds: 0,
            period_seconds: 10,
            timeout_seconds: 1,
            success_threshold: 1,
            failure_threshold: 3,
        }
    }
}

/// A command run inside the container; exit status 0 means success.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExecAction {
    pub command: Vec<String>,
}

/// An HTTP GET against the pod; a status from 200 to 399 means success.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpGetAction {
    pub path: String,
    /// A port number or the name of one of the container's ports; see [`resolve_port`].
    pub port: IntOrString,
    /// Defaults to the pod's address when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Only `HTTP` is supported.
    pub scheme: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub http_headers: Vec<HttpHeader>,
}

impl Default for HttpGetAction {
    fn default() -> Self {
        HttpGetAction {
            path: "/".into(),
            port: IntOrString::Int(0),
            host: None,
            scheme: "HTTP".into(),
            http_headers: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpHeader {
    pub name: String,
    pub value: String,
}

/// A TCP connect to the pod; an accepted connection means success.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TcpSocketAction {
    /// A port number or the name of one of the container's ports; see [`resolve_port`].
    pub port: IntOrString,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl Default for TcpSocketAction {
    fn default() -> Self {
        TcpSocketAction {
            port: IntOrString::Int(0),
            host: None,
        }
    }
}

/// Hooks around a container's life. berth supports only `preStop`.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Lifecycle {
    /// Run in the container right after it starts; if it fails, the container is
    /// killed (and restarted as its pod's policy says).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_start: Option<LifecycleHandler>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<LifecycleHandler>,
}

/// What a hook runs. berth supports only `exec`.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LifecycleHandler {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecAction>,
}

/// The port number a probe targets: the number itself, or the `containerPort` of the
/// container's port with that name. `None` when the number is out of range or no port
/// has the name.
pub fn resolve_port(container: &Container, port: &IntOrString) -> Option<u16> {
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => {
            container
                .ports
                .iter()
                .find(|p| p.name.as_deref() == Some(name.as_str()))?
                .container_port
        }
    };
    u16::try_from(number).ok().filter(|n| *n != 0)
}

/// Fills defaults that depend on a value being present but empty: Kubernetes treats an
/// empty `httpGet.path` as `/`.
pub(crate) fn apply_probe_defaults(container: &mut Container) {
    let probes = [
        &mut container.liveness_probe,
        &mut container.readiness_probe,
        &mut container.startup_probe,
    ];
    for http_get in probes
        .into_iter()
        .filter_map(|probe| probe.as_mut()?.http_get.as_mut())
    {
        if http_get.path.is_empty() {
            http_get.path = "/".into();
        }
    }
}

#[cfg(test)]
mod tests;
