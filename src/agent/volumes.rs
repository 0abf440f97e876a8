//! Pod volumes on the board, as the kubelet sets them up: each volume is a directory
//! under the pod's sandbox directory (`volumes/<name>`), or a path of the host.
//!
//! - `configMap`, `secret`, `downwardAPI`, `projected`: a tmpfs (nothing of them touches
//!   the SD card) holding the atomic writer's files; rewritten when their source changes,
//!   checked every pass of the reconcile loop, so a running container sees an update
//!   within one resync period. Mounted read-only, as Kubernetes does.
//! - `emptyDir`: a directory on the state dir's disk, or a tmpfs of at most `sizeLimit`
//!   with `medium: Memory`; mode 0777 so any user of the pod may write.
//! - `hostPath`: checked (or created) after its `type`; a `CharDevice`/`BlockDevice` is
//!   also allowed in the container's device cgroup.
//! - `persistentVolumeClaim`: the claim's directory, provisioned before the first pod that
//!   uses it starts (`local_path`); it outlives the sandbox.
//!
//! All of it goes with the sandbox: the runtime unmounts everything below the pod's
//! directory before removing it.

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use super::env::{PodConfig, PodFacts};
use super::volume_payload::volume_payload;
use super::Agent;
use crate::model::{parse_memory_bytes, Container, HostPathVolumeSource, Pod, Volume};
use crate::runtime::{self, DeviceRule, VolumeBind};

/// How a volume could not be set up: the kubelet's `FailedMount` text.
#[derive(Debug)]
pub struct MountFailure {
    pub message: String,
}

fn failed(volume: &str, message: impl std::fmt::Display) -> MountFailure {
    MountFailure {
        message: format!("MountVolume.SetUp failed for volume {volume:?} : {message}"),
    }
}

/// The directory a volume of the pod lives in on the host.
fn volume_dir(sandbox: &Path, volume: &str) -> PathBuf {
    sandbox.join("volumes").join(volume)
}

/// What a container mounts, ready for the runtime.
#[derive(Default)]
pub struct ContainerVolumes {
    pub binds: Vec<VolumeBind>,
    pub devices: Vec<DeviceRule>,
}

impl Agent {
    /// Sets up every volume of the pod (again: each step is idempotent) and returns how
    /// `container` mounts them.
    pub(super) fn container_volumes(
        &self,
        pod: &Pod,
        container: &Container,
        config: &PodConfig,
        facts: &PodFacts,
        sandbox: &Path,
    ) -> Result<ContainerVolumes, MountFailure> {
        let mut volumes = ContainerVolumes {
            binds: Vec::new(),
            devices: Vec::new(),
        };
        // Before the mounts: a pod waits for its claims even where no container mounts them.
        let claims = self.claim_dirs(pod).map_err(|refused| MountFailure {
            message: refused.message,
        })?;
        if container.volume_mounts.is_empty() {
            return Ok(volumes);
        }
        for volume in &pod.spec.volumes {
            set_up(volume, pod, config, facts, sandbox)?;
        }
        for mount in &container.volume_mounts {
            let Some(volume) = pod.spec.volumes.iter().find(|v| v.name == mount.name) else {
                return Err(failed(&mount.name, "no such volume in the pod"));
            };
            let claim = volume.persistent_volume_claim.as_ref();
            let claim_dir = claim.and_then(|c| claims.get(&c.claim_name));
            let (base, writes_payload) = match (&volume.host_path, claim_dir) {
                (Some(host), _) => (PathBuf::from(&host.path), false),
                (None, Some(dir)) => (dir.clone(), false),
                (None, None) => (
                    volume_dir(sandbox, &volume.name),
                    volume_payload(volume, pod, config, facts).is_some(),
                ),
            };
            let source = sub_path(&base, &mount.sub_path, !writes_payload)
                .map_err(|message| failed(&volume.name, message))?;
            if let Some(host) = volume.host_path.as_ref().filter(|h| h.is_device()) {
                match runtime::device_rule(Path::new(&host.path)) {
                    Some(rule) => volumes.devices.push(rule),
                    None => return Err(failed(&volume.name, host_type_error(host))),
                }
            }
            volumes.binds.push(VolumeBind {
                source,
                destination: mount.mount_path.clone(),
                // Kubernetes mounts the files it writes read-only, whatever was asked.
                read_only: mount.read_only || writes_payload || claim.is_some_and(|c| c.read_only),
                host_to_container: mount.mount_propagation.as_deref() == Some("HostToContainer"),
            });
        }
        Ok(volumes)
    }

    /// Brings the written volumes of running pods up to date with their ConfigMaps,
    /// Secrets and pod fields; writes only what changed.
    pub(super) fn refresh_volumes(&self, pod: &Pod) {
        if !pod.spec.volumes.iter().any(writes_payload) {
            return;
        }
        let Some(sandbox) = self.runtime.sandbox_dir(&pod.metadata.uid) else {
            return;
        };
        let config = match PodConfig::load(&self.store(), pod) {
            Ok(config) => config,
            Err(err) => {
                log::warn!("pod {}: cannot read its config: {err:#}", pod.metadata.name);
                return;
            }
        };
        let facts = self.pod_facts(pod);
        for volume in pod.spec.volumes.iter().filter(|v| writes_payload(v)) {
            let dir = volume_dir(&sandbox, &volume.name);
            // Only volumes a container already mounts: setting up is the start's job.
            if !dir.exists() {
                continue;
            }
            if let Err(failure) = write_volume(volume, pod, &config, &facts, &dir) {
                log::warn!("pod {}: {}", pod.metadata.name, failure.message);
            }
        }
    }

    /// The downward API's facts about a pod on this board.
    pub(super) fn pod_facts(&self, pod: &Pod) -> PodFacts {
        let network = self.network();
        let host_ip = network.map(|n| n.node_ip.to_string());
        let pod_ip = if pod.spec.host_network {
            host_ip.clone()
        } else {
            network
                .and_then(|n| n.pod_ip(&pod.metadata.uid))
                .map(|ip| ip.to_string())
        };
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        PodFacts {
            pod_ip,
            host_ip,
            node_name: self.options.node_name.clone(),
            node_cpu_millis: u64::try_from(cpus).unwrap_or(1) * 1000,
            node_memory_bytes: super::container_config::machine_memory(),
        }
    }
}

fn writes_payload(volume: &Volume) -> bool {
    volume.config_map.is_some()
        || volume.secret.is_some()
        || volume.downward_api.is_some()
        || volume.projected.is_some()
}

/// Makes one volume ready on the host.
fn set_up(
    volume: &Volume,
    pod: &Pod,
    config: &PodConfig,
    facts: &PodFacts,
    sandbox: &Path,
) -> Result<(), MountFailure> {
    let dir = volume_dir(sandbox, &volume.name);
    if let Some(host) = &volume.host_path {
        return check_host_path(host).map_err(|message| failed(&volume.name, message));
    }
    if volume.persistent_volume_claim.is_some() {
        // Provisioned with the pod's other claims (`Agent::claim_dirs`), outside the sandbox.
        return Ok(());
    }
    if writes_payload(volume) {
        runtime::mount_tmpfs(&dir, None, 0o755).map_err(|e| failed(&volume.name, e))?;
        return write_volume(volume, pod, config, facts, &dir);
    }
    let empty_dir = volume.empty_dir.clone().unwrap_or_default();
    // Validated to 0..=0o1777: the sticky bit and the permission bits.
    let mode = empty_dir
        .mode
        .and_then(|mode| u32::try_from(mode).ok())
        .unwrap_or(0o777);
    if empty_dir.medium == "Memory" {
        // A zero limit is no limit, as tmpfs reads `size=0`.
        let size = match &empty_dir.size_limit {
            Some(limit) => Some(parse_memory_bytes(limit).map_err(|e| failed(&volume.name, e))?),
            None => None,
        }
        .filter(|size| *size > 0);
        runtime::mount_tmpfs(&dir, size, mode).map_err(|e| failed(&volume.name, e))
    } else {
        fs::create_dir_all(&dir)
            .and_then(|()| fs::set_permissions(&dir, fs::Permissions::from_mode(mode)))
            .map_err(|e| {
                failed(
                    &volume.name,
                    format!("cannot create {}: {e}", dir.display()),
                )
            })
    }
}

fn write_volume(
    volume: &Volume,
    pod: &Pod,
    config: &PodConfig,
    facts: &PodFacts,
    dir: &Path,
) -> Result<(), MountFailure> {
    let Some(payload) = volume_payload(volume, pod, config, facts) else {
        return Ok(());
    };
    let payload = payload.map_err(|message| failed(&volume.name, message))?;
    let gid = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.fs_group)
        .and_then(|g| u32::try_from(g).ok());
    match runtime::write_payload(dir, &payload, gid) {
        Ok(true) => {
            log::info!("pod {}: volume {} updated", pod.metadata.name, volume.name);
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => Err(failed(&volume.name, e)),
    }
}

/// `base/sub`, made (as a directory) when missing and `create` allows, and refused if it
/// resolves outside `base` through a symlink.
fn sub_path(base: &Path, sub: &str, create: bool) -> Result<PathBuf, String> {
    if sub.is_empty() {
        return Ok(base.to_path_buf());
    }
    if !Path::new(sub)
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(format!(
            "subPath {sub:?} must be a relative path inside the volume"
        ));
    }
    let path = base.join(sub);
    if create && fs::symlink_metadata(&path).is_err() {
        fs::create_dir_all(&path).map_err(|e| format!("cannot create subPath {sub:?}: {e}"))?;
    }
    let resolved = path
        .canonicalize()
        .map_err(|e| format!("subPath {sub:?}: {e}"))?;
    let root = base
        .canonicalize()
        .map_err(|e| format!("volume path {}: {e}", base.display()))?;
    if !resolved.starts_with(&root) {
        return Err(format!("subPath {sub:?} resolves outside the volume"));
    }
    Ok(resolved)
}

fn host_type_error(host: &HostPathVolumeSource) -> String {
    let what = match host.type_.as_deref().unwrap_or_default() {
        "Directory" | "DirectoryOrCreate" => "a directory",
        "File" | "FileOrCreate" => "a file",
        "Socket" => "a socket",
        "CharDevice" => "a character device",
        "BlockDevice" => "a block device",
        _ => "there",
    };
    format!("hostPath type check failed: {} is not {what}", host.path)
}

/// Kubernetes' `hostPath` type checks, creating what the `...OrCreate` types allow.
fn check_host_path(host: &HostPathVolumeSource) -> Result<(), String> {
    let path = Path::new(&host.path);
    let kind = host.type_.as_deref().unwrap_or_default();
    let meta = fs::metadata(path);
    let ok = match (kind, &meta) {
        ("", _) => true,
        ("DirectoryOrCreate", Err(_)) => {
            fs::create_dir_all(path).map_err(|e| format!("cannot create {}: {e}", host.path))?;
            fs::set_permissions(path, fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("cannot chmod {}: {e}", host.path))?;
            true
        }
        ("FileOrCreate", Err(_)) => {
            fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)
                .map_err(|e| format!("cannot create {}: {e}", host.path))?;
            fs::set_permissions(path, fs::Permissions::from_mode(0o644))
                .map_err(|e| format!("cannot chmod {}: {e}", host.path))?;
            true
        }
        (_, Err(_)) => false,
        ("Directory" | "DirectoryOrCreate", Ok(m)) => m.is_dir(),
        ("File" | "FileOrCreate", Ok(m)) => m.is_file(),
        ("Socket", Ok(m)) => m.file_type().is_socket(),
        ("CharDevice", Ok(m)) => m.file_type().is_char_device(),
        ("BlockDevice", Ok(m)) => m.file_type().is_block_device(),
        (_, Ok(_)) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(host_type_error(host))
    }
}
