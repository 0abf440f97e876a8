//! The pod's own cgroup, for pods with pod-level `resources` (Kubernetes'
//! PodLevelResources): `/<cgroup-parent>/pod_<uid>`, which holds the cgroups of all the
//! pod's containers and the pod's CPU quota and shares, memory limit and pids limit, so
//! that the kernel bounds the containers together, as the kubelet's pod cgroup does.
//! Pods without pod-level resources keep their containers directly under the parent.
//!
//! The name cannot be a container id's: those start with the pod's namespace, a DNS
//! label, which has no `_`.
//!
//! The limits are written here, by hand, before the first container is created in it:
//! `libcontainer` then creates the container's cgroup below, in every hierarchy (v1) or
//! with the controllers enabled down the path (v2).

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::bundle::{cpu_quota, cpu_shares, CPU_PERIOD_US};
use super::{CgroupVersion, PodLimits, RuntimeError};

/// What starts the name of a pod cgroup under the parent.
pub(crate) const PREFIX: &str = "pod_";

/// The pod cgroup's path relative to each hierarchy's root: `/<parent>/pod_<uid>`.
pub(crate) fn path(cgroup_parent: &str, pod_uid: &str) -> String {
    format!("/{}/{PREFIX}{pod_uid}", cgroup_parent.trim_matches('/'))
}

/// One cgroup file and the value written to it, in order.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Setting {
    /// The v1 controller whose hierarchy holds the file; `None` on v2.
    pub(crate) controller: Option<&'static str>,
    pub(crate) file: &'static str,
    pub(crate) value: String,
}

/// The files that give a pod cgroup `limits`, in the order they must be written; a
/// limit not set is written as unlimited, so that a pod that dropped one loses it.
pub(crate) fn settings(
    limits: &PodLimits,
    version: CgroupVersion,
    v1_swap_accounting: bool,
) -> Result<Vec<Setting>, RuntimeError> {
    let quota = limits
        .cpu_limit_millis
        .map(cpu_quota)
        .transpose()
        .map_err(|reason| RuntimeError::Cgroup { reason })?;
    let shares = limits.cpu_request_millis.map(cpu_shares);
    let memory = limits.memory_limit_bytes;
    let pids = limits.pids_limit;
    let v1 = |controller, file, value: String| Setting {
        controller: Some(controller),
        file,
        value,
    };
    let v2 = |file, value: String| Setting {
        controller: None,
        file,
        value,
    };
    let mut out = Vec::new();
    match version {
        CgroupVersion::V1 => {
            out.push(v1("cpu", "cpu.cfs_period_us", CPU_PERIOD_US.to_string()));
            out.push(v1(
                "cpu",
                "cpu.cfs_quota_us",
                quota.unwrap_or(-1).to_string(),
            ));
            if let Some(shares) = shares {
                out.push(v1("cpu", "cpu.shares", shares.to_string()));
            }
            let memory = memory.map_or_else(|| "-1".to_owned(), |m| m.to_string());
            // memory+swap may never be below the memory limit: lifted first, then set
            // to the limit (no swap), as the containers' are.
            if v1_swap_accounting {
                out.push(v1("memory", "memory.memsw.limit_in_bytes", "-1".to_owned()));
            }
            out.push(v1("memory", "memory.limit_in_bytes", memory.clone()));
            if v1_swap_accounting {
                out.push(v1("memory", "memory.memsw.limit_in_bytes", memory));
            }
            let pids = pids.map_or_else(|| "max".to_owned(), |p| p.to_string());
            out.push(v1("pids", "pids.max", pids));
        }
        CgroupVersion::V2 => {
            let quota = quota.map_or_else(|| "max".to_owned(), |q| q.to_string());
            out.push(v2("cpu.max", format!("{quota} {CPU_PERIOD_US}")));
            if let Some(shares) = shares {
                out.push(v2("cpu.weight", shares_to_weight(shares).to_string()));
            }
            let memory = memory.map_or_else(|| "max".to_owned(), |m| m.to_string());
            out.push(v2("memory.max", memory));
            let pids = pids.map_or_else(|| "max".to_owned(), |p| p.to_string());
            out.push(v2("pids.max", pids));
        }
    }
    Ok(out)
}

/// `cpu.shares` as a v2 `cpu.weight`, the conversion runc and libcgroups use.
fn shares_to_weight(shares: u64) -> u64 {
    1 + (shares.saturating_sub(2) * 9999) / 262_142
}

/// Creates the pod cgroup at `path` under `root` (normally `/sys/fs/cgroup`) and writes
/// its limits; idempotent, so every container start of the pod may call it.
pub(crate) fn apply(
    root: &Path,
    path: &str,
    limits: &PodLimits,
    version: CgroupVersion,
    v1_swap_accounting: bool,
) -> Result<(), RuntimeError> {
    let relative = path.trim_start_matches('/');
    let settings = settings(limits, version, v1_swap_accounting)?;
    if version == CgroupVersion::V2 {
        enable_v2_controllers(root, relative)?;
    }
    for setting in settings {
        let dir = match setting.controller {
            Some(controller) => root.join(controller).join(relative),
            None => root.join(relative),
        };
        fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("create", &dir, e))?;
        let file = dir.join(setting.file);
        fs::write(&file, &setting.value).map_err(|e| RuntimeError::io("write", &file, e))?;
    }
    Ok(())
}

/// On v2 a controller's files exist in a cgroup only when its parent enables it: the
/// root and every directory down to the pod cgroup's parent enable cpu, memory and pids.
fn enable_v2_controllers(root: &Path, relative: &str) -> Result<(), RuntimeError> {
    let mut dir = root.to_path_buf();
    let mut parts: Vec<&str> = relative.split('/').filter(|p| !p.is_empty()).collect();
    parts.pop();
    for part in std::iter::once(None).chain(parts.into_iter().map(Some)) {
        if let Some(part) = part {
            dir.push(part);
            fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("create", &dir, e))?;
        }
        // Best effort: a delegated subtree may already enable them and refuse the
        // write; a controller really missing shows as a limit file that is not there.
        let file = dir.join("cgroup.subtree_control");
        if let Err(err) = fs::write(&file, "+cpu +memory +pids") {
            log::debug!("cannot enable controllers in {}: {err}", file.display());
        }
    }
    Ok(())
}

/// Every directory of the pod cgroup at `path`: one per v1 hierarchy, or the v2 one.
pub(crate) fn dirs(root: &Path, path: &str) -> Vec<PathBuf> {
    let relative = path.trim_start_matches('/');
    let mut out = vec![root.join(relative)];
    if let Ok(entries) = fs::read_dir(root) {
        out.extend(entries.flatten().map(|e| e.path().join(relative)));
    }
    out.retain(|dir| dir.is_dir());
    out
}

/// Removes the pod cgroup at `path` in every hierarchy, once its containers' cgroups
/// are gone; best effort, a cgroup still busy is left for the next removal.
pub(crate) fn remove(root: &Path, path: &str) {
    for dir in dirs(root, path) {
        match fs::remove_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => log::warn!("cannot remove pod cgroup {}: {e}", dir.display()),
        }
    }
}

/// Whether `name` (a directory under the cgroup parent) is a pod cgroup.
pub(crate) fn is_pod_cgroup(name: &str) -> bool {
    name.strip_prefix(PREFIX)
        .is_some_and(super::sandbox::is_valid_pod_uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> PodLimits {
        PodLimits {
            cpu_limit_millis: Some(1500),
            cpu_request_millis: Some(500),
            memory_limit_bytes: Some(200 << 20),
            pids_limit: None,
        }
    }

    fn values(settings: &[Setting]) -> Vec<(Option<&str>, &str, &str)> {
        settings
            .iter()
            .map(|s| (s.controller, s.file, s.value.as_str()))
            .collect()
    }

    #[test]
    fn v1_limits_in_each_hierarchy_with_swap_lifted_before_the_limit() {
        let written = settings(&limits(), CgroupVersion::V1, true).unwrap();
        assert_eq!(
            values(&written),
            [
                (Some("cpu"), "cpu.cfs_period_us", "100000"),
                (Some("cpu"), "cpu.cfs_quota_us", "150000"),
                (Some("cpu"), "cpu.shares", "512"),
                (Some("memory"), "memory.memsw.limit_in_bytes", "-1"),
                (Some("memory"), "memory.limit_in_bytes", "209715200"),
                (Some("memory"), "memory.memsw.limit_in_bytes", "209715200"),
                (Some("pids"), "pids.max", "max"),
            ]
        );
        let no_swap = settings(&limits(), CgroupVersion::V1, false).unwrap();
        assert!(no_swap.iter().all(|s| !s.file.contains("memsw")));
        let hierarchies = ["cpu", "memory", "pids"];
        assert!(no_swap
            .iter()
            .all(|s| hierarchies.contains(&s.controller.unwrap())));
    }

    #[test]
    fn v2_limits_in_the_unified_hierarchy() {
        let only_memory_and_pids = PodLimits {
            cpu_limit_millis: None,
            cpu_request_millis: None,
            memory_limit_bytes: Some(64 << 20),
            pids_limit: Some(2048),
        };
        assert_eq!(
            values(&settings(&only_memory_and_pids, CgroupVersion::V2, false).unwrap()),
            [
                (None, "cpu.max", "max 100000"),
                (None, "memory.max", "67108864"),
                (None, "pids.max", "2048"),
            ]
        );
        let written = settings(&limits(), CgroupVersion::V2, false).unwrap();
        assert_eq!(written[0].value, "150000 100000");
        assert_eq!(
            written[1],
            Setting {
                controller: None,
                file: "cpu.weight",
                value: "20".to_owned(),
            }
        );
    }

    #[test]
    fn pod_cgroups_are_named_apart_from_containers() {
        let uid = "0f8fad5b-d9cb-469f-a165-70867728950e";
        assert_eq!(path("/berth/", uid), format!("/berth/pod_{uid}"));
        assert!(is_pod_cgroup(&format!("pod_{uid}")));
        assert!(!is_pod_cgroup(
            "pod-resources-example.cpu-demo.c.0123456789.0"
        ));
        assert!(!is_pod_cgroup("pod_"));
    }

    #[test]
    fn apply_writes_the_files_and_remove_takes_the_dirs() {
        let root = tempfile::tempdir().unwrap();
        let path = path("berth-t", "u1");
        apply(root.path(), &path, &limits(), CgroupVersion::V1, false).unwrap();
        let quota = fs::read_to_string(root.path().join("cpu/berth-t/pod_u1/cpu.cfs_quota_us"));
        assert_eq!(quota.unwrap(), "150000");
        let memory = root
            .path()
            .join("memory/berth-t/pod_u1/memory.limit_in_bytes");
        assert_eq!(fs::read_to_string(memory).unwrap(), "209715200");
        assert_eq!(dirs(root.path(), &path).len(), 3);
        // Plain directories stand in for cgroups here: the written files keep them full.
        for dir in dirs(root.path(), &path) {
            for entry in fs::read_dir(&dir).unwrap().flatten() {
                fs::remove_file(entry.path()).unwrap();
            }
        }
        remove(root.path(), &path);
        assert!(dirs(root.path(), &path).is_empty());
    }
}
