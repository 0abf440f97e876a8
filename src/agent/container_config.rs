//! From a pod spec and an image to the runtime's [`ContainerConfig`]: the process
//! (command and args after Kubernetes' rules, env from the image, the pod and its
//! ConfigMaps and Secrets), resources, security, and the files and volumes it mounts.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::env::{PodConfig, PodFacts};
use super::instance::instance_id;
use super::status::StartFailure;
use super::{Agent, LOG_MAX_BYTES, LOG_MAX_FILES};
use crate::model::EventType::Warning;
use crate::model::{parse_cpu_millis, parse_memory_bytes, Container, Pod, PodSpec};
use crate::runtime::ContainerConfig;

/// Total memory of this machine, read once: the base of Burstable OOM scores.
pub(super) fn machine_memory() -> u64 {
    static TOTAL: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TOTAL.get_or_init(|| {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:").map(str::to_owned))
            })
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    })
}

/// The waiting reason of a container whose volumes cannot be set up (the kubelet leaves
/// it `ContainerCreating` and tells why in `FailedMount` events).
pub(super) const MOUNT_FAILURE: &str = "ContainerCreating";

/// The process of a container: `command` (else the image's entrypoint) then `args`
/// (else, without `command`, the image's cmd), with `$(VAR)` expanded in what the pod
/// spec gave, as in Kubernetes.
fn command_line(
    container: &crate::model::Container,
    image: &crate::image::ImageConfig,
    vars: &[(String, String)],
) -> Vec<String> {
    let expand = |list: &[String]| -> Vec<String> {
        list.iter().map(|a| super::env::expand(a, vars)).collect()
    };
    if !container.command.is_empty() {
        let mut args = expand(&container.command);
        args.extend(expand(&container.args));
        return args;
    }
    let cmd = if container.args.is_empty() {
        image.cmd.clone()
    } else {
        expand(&container.args)
    };
    image.entrypoint.iter().cloned().chain(cmd).collect()
}

/// Containers get this many PIDs at most unless said otherwise: a fork bomb in one pod
/// must not take the board down.
const DEFAULT_PIDS_LIMIT: i64 = 1024;

/// The environment of a container (`K=V`): the image's, then `HOSTNAME`, then the
/// container's own variables (`envFrom` and `env`, resolved), each replacing what came
/// before; `HOME` is the user's home dir unless one of them sets it (as runc does).
fn container_env(
    image_env: &[String],
    pod: &Pod,
    vars: &[(String, String)],
    home: &str,
) -> Vec<String> {
    let mut env: Vec<(String, String)> = image_env
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv.clone(), String::new()),
        })
        .collect();
    let mut set = |k: &str, v: &str| match env.iter_mut().find(|(name, _)| name == k) {
        Some(slot) => slot.1 = v.to_owned(),
        None => env.push((k.to_owned(), v.to_owned())),
    };
    set("HOSTNAME", &pod.metadata.name);
    for (name, value) in vars {
        set(name, value);
    }
    if !env.iter().any(|(name, _)| name == "HOME") {
        env.push(("HOME".to_owned(), home.to_owned()));
    }
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

fn failure(reason: &str, message: String) -> StartFailure {
    StartFailure {
        reason: reason.to_owned(),
        message,
        failures: 0,
        retry_at: SystemTime::UNIX_EPOCH,
    }
}

fn config_error(message: String) -> StartFailure {
    failure("CreateContainerConfigError", message)
}

/// What the container runs: its arguments, environment and working directory.
struct Process {
    args: Vec<String>,
    env: Vec<String>,
    cwd: String,
}

/// The limits of the pod's own cgroup, when the pod sets pod-level resources; its CPU
/// shares follow what it requests, pod-level or the containers' sum.
fn pod_limits(spec: &PodSpec) -> Option<crate::runtime::PodLimits> {
    let pod = spec.resources.as_ref()?;
    if pod.requests.is_empty() && pod.limits.is_empty() {
        return None;
    }
    let cpu_request = spec.effective_request("cpu");
    Some(crate::runtime::PodLimits {
        cpu_limit_millis: spec.pod_limit("cpu"),
        cpu_request_millis: (cpu_request > 0).then_some(cpu_request),
        memory_limit_bytes: spec.pod_limit("memory"),
        pids_limit: spec.pod_limit("pids").and_then(|p| i64::try_from(p).ok()),
    })
}

/// Where `container` writes why it ended, with Kubernetes' defaults.
fn termination_message(container: &Container) -> crate::runtime::TerminationMessage {
    crate::runtime::TerminationMessage {
        destination: container
            .termination_message_path
            .clone()
            .unwrap_or_else(|| crate::model::DEFAULT_TERMINATION_MESSAGE_PATH.to_owned()),
        fallback_to_logs: container.termination_message_policy.as_deref()
            == Some("FallbackToLogsOnError"),
    }
}

impl Agent {
    /// Everything the runtime needs to start one container, from the pod spec and the
    /// image (Kubernetes rules for command/args and env).
    pub(super) fn container_config(
        &self,
        pod: &Pod,
        name: &str,
        hash: &str,
        attempt: u32,
    ) -> Result<ContainerConfig, StartFailure> {
        let container = pod
            .spec
            .container(name)
            .ok_or_else(|| config_error(format!("no container {name:?} in the pod")))?;
        let image = super::pulls::ensure_image(
            self,
            pod,
            &container.image,
            container.image_pull_policy.as_deref(),
        )?;
        let rootfs = self
            .images
            .rootfs(&image)
            .map_err(|e| failure("CreateContainerError", e.to_string()))?;
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let level = self.pod_security_level(namespace).map_err(config_error)?;
        let seccomp_root = self.seccomp_root();
        let sources = super::security::Sources {
            rootfs: &rootfs,
            seccomp_root: &seccomp_root,
        };
        let security = super::security::container_security(
            pod,
            container,
            &image.config.user,
            &sources,
            level,
        )
        .map_err(|refusal| failure(refusal.reason, refusal.message))?;
        self.check_host_ports(pod, container)?;
        let config =
            PodConfig::load(&self.store(), pod).map_err(|e| config_error(format!("{e:#}")))?;
        let facts = self.pod_facts(pod);
        let process = self.process(
            pod,
            container,
            &image.config,
            &security.home,
            &config,
            &facts,
        )?;
        let (pod_files, volumes) = match self.runtime.sandbox_dir(&pod.metadata.uid) {
            Some(dir) => (
                self.pod_files(pod, &dir)
                    .map_err(|e| config_error(format!("{e:#}")))?,
                self.container_volumes(pod, container, &config, &facts, &dir)
                    .map_err(|mount| failure(MOUNT_FAILURE, mount.message))?,
            ),
            None => (Vec::new(), super::volumes::ContainerVolumes::default()),
        };
        let quantity =
            |map: &BTreeMap<String, String>, key: &str, parse: fn(&str) -> Result<u64, String>| {
                map.get(key).and_then(|q| parse(q).ok())
            };
        let resources = &container.resources;
        let cpu_limit = quantity(&resources.limits, "cpu", parse_cpu_millis);
        Ok(ContainerConfig {
            id: instance_id(&pod.metadata.uid, name, hash, attempt),
            pod_uid: pod.metadata.uid.clone(),
            pod_name: pod.metadata.name.clone(),
            container_name: name.to_owned(),
            rootfs_lower: rootfs,
            args: process.args,
            env: process.env,
            cwd: process.cwd,
            cpu_limit_millis: cpu_limit,
            cpu_request_millis: quantity(&resources.requests, "cpu", parse_cpu_millis)
                .or(cpu_limit),
            memory_limit_bytes: quantity(&resources.limits, "memory", parse_memory_bytes),
            pids_limit: Some(DEFAULT_PIDS_LIMIT),
            oom_score_adj: Some(super::qos::oom_score_adj(
                &pod.spec,
                container,
                machine_memory(),
            )),
            host_network: pod.spec.host_network,
            share_process_namespace: pod.spec.share_process_namespace == Some(true),
            log_path: self
                .logs_dir(namespace, &pod.metadata.name, &pod.metadata.uid)
                .join(name)
                .join(format!("{attempt}.log")),
            log_max_bytes: LOG_MAX_BYTES,
            log_max_files: LOG_MAX_FILES,
            user: security.user,
            capabilities: security.capabilities,
            readonly_rootfs: security.readonly_rootfs,
            seccomp_unconfined: security.seccomp_unconfined,
            seccomp_profile: security.seccomp_profile,
            privileged: security.privileged,
            pod_files,
            volume_mounts: volumes.binds,
            devices: volumes.devices,
            termination_message: Some(termination_message(container)),
            pod_limits: pod_limits(&pod.spec),
        })
    }

    /// A host port forwards to the pod's address: without a pod network there is none.
    fn check_host_ports(&self, pod: &Pod, container: &Container) -> Result<(), StartFailure> {
        if self.network().is_some() || pod.spec.host_network {
            return Ok(());
        }
        match container.ports.iter().find_map(|p| p.host_port) {
            Some(port) => Err(config_error(format!(
                "hostPort {port} needs the pod network, and this agent runs without one \
                 (--network-backend=none)"
            ))),
            None => Ok(()),
        }
    }

    /// The container's process: env resolved from the pod's config (keys `envFrom`
    /// skipped told in an event), `$(VAR)` expanded in command and args.
    fn process(
        &self,
        pod: &Pod,
        container: &Container,
        image: &crate::image::ImageConfig,
        home: &str,
        config: &PodConfig,
        facts: &PodFacts,
    ) -> Result<Process, StartFailure> {
        let (vars, skipped) =
            super::env::container_env_vars(pod, container, config, facts).map_err(config_error)?;
        if !skipped.is_empty() {
            let message = format!(
                "Keys [{}] from the EnvFrom were skipped since they are considered invalid \
                 environment variable names.",
                skipped.join(", ")
            );
            let reason = "InvalidEnvironmentVariableNames";
            self.pod_event(&pod.metadata, None, Warning, reason, &message);
        }
        let args = command_line(container, image, &vars);
        if args.is_empty() {
            return Err(config_error(
                "no command given and the image has none".to_owned(),
            ));
        }
        let cwd = container
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .or_else(|| Some(image.working_dir.clone()).filter(|w| !w.is_empty()))
            .unwrap_or_else(|| "/".to_owned());
        Ok(Process {
            args,
            env: container_env(&image.env, pod, &vars, home),
            cwd,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Container, EnvVar};

    #[test]
    fn environment_layers_and_home() {
        let mut pod = Pod::default();
        pod.metadata.name = "web".into();
        let container = Container {
            env: vec![EnvVar {
                name: "A".into(),
                value: "pod".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let vars: Vec<(String, String)> = container
            .env
            .iter()
            .map(|v| (v.name.clone(), v.value.clone()))
            .collect();
        let image = ["A=image".to_owned(), "B".to_owned()];
        assert_eq!(
            container_env(&image, &pod, &vars, "/home/app"),
            ["A=pod", "B=", "HOSTNAME=web", "HOME=/home/app"]
        );
        let image = ["HOME=/srv".to_owned()];
        assert_eq!(
            container_env(&image, &pod, &vars, "/home/app"),
            ["HOME=/srv", "HOSTNAME=web", "A=pod"]
        );
    }
}
