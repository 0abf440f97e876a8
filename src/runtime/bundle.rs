//! Builds the OCI runtime spec (`bundle/config.json`) of a container. Pure: no I/O.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    get_default_mounts, get_default_readonly_paths, Capability, LinuxBuilder,
    LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder,
    LinuxDeviceType, LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder, LinuxSeccomp, Mount,
    PosixRlimitBuilder, PosixRlimitType, Process, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};

use super::{CgroupVersion, ContainerConfig};

/// PATH given to containers whose environment has none (Docker's default).
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// CFS period for CPU limits: 100 ms, as Kubernetes and Docker use.
pub(super) const CPU_PERIOD_US: u64 = 100_000;
/// Default maximum number of processes per container, against fork bombs.
const DEFAULT_PIDS_LIMIT: i64 = 1024;
/// Open-file limit of container processes, unless the agent's own hard limit is lower
/// (then raising it would need CAP_SYS_RESOURCE, which the agent may not have).
const NOFILE_LIMIT: u64 = 65_536;

/// Paths of the pod's shared namespaces. `None` means "the host's" (host network pods share
/// the host's network and UTS namespaces), except for `pid`: there it means a new one of
/// the container's own, unless the pod shares its process namespace.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SandboxNamespaces {
    pub(crate) net: Option<PathBuf>,
    pub(crate) ipc: PathBuf,
    pub(crate) uts: Option<PathBuf>,
    pub(crate) pid: Option<PathBuf>,
}

/// Host facts the spec depends on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HostFacts {
    pub(crate) cgroup_version: CgroupVersion,
    /// cgroup v1 with `memory.memsw.*`: swap can be limited together with memory.
    pub(crate) v1_swap_accounting: bool,
    /// The agent's hard `RLIMIT_NOFILE`.
    pub(crate) nofile_hard_limit: u64,
    /// The agent's capability bounding set (bit n: capability n), the most a container
    /// can get: a kernel older than a capability, or a service manager, may withhold some.
    pub(crate) capability_bounding: u64,
}

/// `CapBnd` of `/proc/self/status`; every bit set when it cannot be read.
fn capability_bounding() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("CapBnd:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX)
}

impl HostFacts {
    /// Reads the facts of the running host.
    pub(crate) fn detect() -> HostFacts {
        let cgroup_version = super::cgroup_version();
        // The 64-bit call: `rlimit` has 32-bit fields on 32-bit targets (armhf).
        let mut limit = libc::rlimit64 {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit64 writes one rlimit64 struct into the valid `limit` we pass.
        let nofile_hard_limit =
            if unsafe { libc::getrlimit64(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
                limit.rlim_max
            } else {
                NOFILE_LIMIT
            };
        HostFacts {
            cgroup_version,
            v1_swap_accounting: cgroup_version == CgroupVersion::V1
                && Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists(),
            nofile_hard_limit,
            capability_bounding: capability_bounding(),
        }
    }

    /// Whether the agent's bounding set holds `capability`.
    fn holds(&self, capability: Capability) -> bool {
        use libcontainer::capabilities::CapabilityExt;
        let bit = capability.to_cap().index();
        self.capability_bounding
            .checked_shr(u32::from(bit))
            .unwrap_or(0)
            & 1
            == 1
    }
}

/// runc's default masked paths: kernel interfaces that leak host data or are dangerous.
fn masked_paths() -> Vec<String> {
    [
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect()
}

/// The usual runc mounts (proc, dev, devpts, shm, mqueue, read-only sysfs), without the
/// cgroup filesystem: containers do not need to see the host's cgroup tree.
fn mounts() -> Vec<Mount> {
    get_default_mounts()
        .into_iter()
        .filter(|m| m.destination() != Path::new("/sys/fs/cgroup"))
        .collect()
}

/// The default mounts, a bind mount of each of the pod's files (not read-only, as the
/// kubelet mounts `/etc/hosts`: some programs rewrite it), then the container's volumes,
/// parents before what is mounted inside them.
fn all_mounts(cfg: &ContainerConfig) -> Result<Vec<Mount>, String> {
    let mut all = mounts();
    let bind = |source: &Path, destination: &str, options: Vec<&str>| {
        oci_spec::runtime::MountBuilder::default()
            .destination(PathBuf::from(destination))
            .typ("bind")
            .source(source.to_path_buf())
            .options(options.into_iter().map(str::to_owned).collect::<Vec<_>>())
            .build()
            .map_err(|e| e.to_string())
    };
    for file in &cfg.pod_files {
        all.push(bind(
            &file.source,
            &file.destination,
            vec!["rbind", "rprivate"],
        )?);
    }
    let mut volumes: Vec<&super::VolumeBind> = cfg.volume_mounts.iter().collect();
    crate::support::sort::sort_by_key(&mut volumes, |v| {
        Path::new(&v.destination).components().count()
    });
    for volume in volumes {
        let propagation = if volume.host_to_container {
            "rslave"
        } else {
            "rprivate"
        };
        let mut options = vec!["rbind", propagation];
        if volume.read_only {
            options.push("ro");
        }
        all.push(bind(&volume.source, &volume.destination, options)?);
    }
    Ok(all)
}

/// Deny every device, then allow the ones the container's hostPath volumes name
/// (libcgroups adds the default set: null, zero, full, random, urandom, tty, console,
/// ptmx, pts).
fn device_rules(devices: &[super::DeviceRule]) -> Result<Vec<LinuxDeviceCgroup>, String> {
    let mut rules = vec![LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .map_err(|e| e.to_string())?];
    for device in devices {
        let typ = if device.block {
            LinuxDeviceType::B
        } else {
            LinuxDeviceType::C
        };
        rules.push(
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(typ)
                .major(device.major)
                .minor(device.minor)
                .access("rwm")
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    Ok(rules)
}

/// CPU shares from a request in millicores, as the kubelet computes them (within 2 and
/// 262144, the kernel's range).
pub(crate) fn cpu_shares(request_millis: u64) -> u64 {
    (request_millis.saturating_mul(1024) / 1000).clamp(2, MAX_SHARES)
}

/// The largest `cpu.shares` the kernel takes (the kubelet's `MaxShares`).
const MAX_SHARES: u64 = 262_144;

/// The CFS quota for a limit in millicores (at least 1 ms, as the kubelet sets it).
pub(super) fn cpu_quota(limit_millis: u64) -> Result<i64, String> {
    limit_millis
        .checked_mul(CPU_PERIOD_US / 1000)
        .and_then(|quota| i64::try_from(quota.max(1000)).ok())
        .ok_or_else(|| format!("cpu limit {limit_millis}m is too large"))
}

fn namespace(typ: LinuxNamespaceType, path: Option<&Path>) -> Result<LinuxNamespace, String> {
    let mut builder = LinuxNamespaceBuilder::default().typ(typ);
    if let Some(path) = path {
        builder = builder.path(path.to_path_buf());
    }
    builder.build().map_err(|e| e.to_string())
}

fn namespaces(sandbox: &SandboxNamespaces) -> Result<Vec<LinuxNamespace>, String> {
    let mut list = vec![
        namespace(LinuxNamespaceType::Pid, sandbox.pid.as_deref())?,
        namespace(LinuxNamespaceType::Mount, None)?,
        namespace(LinuxNamespaceType::Ipc, Some(&sandbox.ipc))?,
    ];
    if let Some(net) = &sandbox.net {
        list.push(namespace(LinuxNamespaceType::Network, Some(net))?);
    }
    if let Some(uts) = &sandbox.uts {
        list.push(namespace(LinuxNamespaceType::Uts, Some(uts))?);
    }
    Ok(list)
}

fn environment(cfg: &ContainerConfig) -> Vec<String> {
    let mut env = cfg.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    env
}

/// The OCI spec of one container.
pub(crate) fn build_spec(
    cfg: &ContainerConfig,
    rootfs: &Path,
    sandbox: &SandboxNamespaces,
    cgroup_path: &str,
    host: HostFacts,
) -> Result<Spec, String> {
    let (process, seccomp) = process_and_seccomp(cfg, host)?;
    let resources = resources(cfg, host)?;
    // Privileged: /proc and /sys as the host shows them (the device cgroup and the
    // read-only sysfs mount stay: a privileged container gets no host devices).
    let (masked, readonly) = if cfg.privileged {
        (Vec::new(), Vec::new())
    } else {
        (masked_paths(), get_default_readonly_paths())
    };
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces(sandbox)?)
        .cgroups_path(PathBuf::from(cgroup_path))
        .resources(resources)
        .masked_paths(masked)
        .readonly_paths(readonly);
    if let Some(seccomp) = seccomp {
        linux = linux.seccomp(seccomp);
    }
    let linux = linux.build().map_err(|e| e.to_string())?;

    let mut spec = SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(rootfs.to_path_buf())
                .readonly(cfg.readonly_rootfs)
                .build()
                .map_err(|e| e.to_string())?,
        )
        .process(process)
        .mounts(all_mounts(cfg)?)
        .linux(linux)
        .build()
        .map_err(|e| e.to_string())?;
    // The builder starts from oci-spec's defaults, which name the host "youki". The
    // hostname belongs to the pod sandbox (set when its UTS namespace is made), and host
    // network pods keep the host's, so the container spec sets none.
    spec.set_hostname(None);
    Ok(spec)
}

/// The container's process, and its seccomp profile: the pod's `Localhost` profile, else
/// the default profile that goes with its capabilities.
fn process_and_seccomp(
    cfg: &ContainerConfig,
    host: HostFacts,
) -> Result<(Process, Option<LinuxSeccomp>), String> {
    // Kept in the permitted and effective sets for every user, as containerd does: the
    // kernel clears them at `execve` for a non-root user, unless the program has file
    // capabilities (which no_new_privs still honours up to the permitted set).
    // A privileged container gets every capability the agent has, as with Docker; a
    // capability asked for by name stays, so a start that cannot grant it fails loudly.
    let capabilities: HashSet<Capability> = cfg
        .capabilities
        .iter()
        .copied()
        .filter(|capability| !cfg.privileged || host.holds(*capability))
        .collect();
    // The seccomp profile follows the capabilities: a capability that unlocks calls in
    // the kernel unlocks them in the filter too.
    let seccomp = if cfg.seccomp_unconfined {
        None
    } else if let Some(profile) = &cfg.seccomp_profile {
        Some(profile.clone())
    } else {
        Some(super::seccomp::default_profile(&capabilities).map_err(|e| e.to_string())?)
    };
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(
            UserBuilder::default()
                .uid(cfg.user.uid)
                .gid(cfg.user.gid)
                .additional_gids(cfg.user.additional_gids.clone())
                .build()
                .map_err(|e| e.to_string())?,
        )
        .args(cfg.args.clone())
        .env(environment(cfg))
        .cwd(if cfg.cwd.is_empty() {
            "/"
        } else {
            cfg.cwd.as_str()
        })
        // Always, also where Kubernetes would allow escalation by default (and for
        // privileged containers): setuid programs in an image never gain privileges, and
        // the exec helper relies on it (validation refuses `allowPrivilegeEscalation:
        // true`, so nothing asked for is ignored).
        .no_new_privileges(true)
        .oom_score_adj(cfg.oom_score_adj.unwrap_or(0))
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(capabilities.clone())
                .effective(capabilities.clone())
                .permitted(capabilities)
                .inheritable(HashSet::new())
                .ambient(HashSet::new())
                .build()
                .map_err(|e| e.to_string())?,
        )
        .rlimits(vec![PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .soft(NOFILE_LIMIT.min(host.nofile_hard_limit))
            .hard(NOFILE_LIMIT.min(host.nofile_hard_limit))
            .build()
            .map_err(|e| e.to_string())?])
        .build()
        .map_err(|e| e.to_string())?;
    Ok((process, seccomp))
}

/// The cgroup limits: devices, CPU shares and quota, memory, pids.
fn resources(cfg: &ContainerConfig, host: HostFacts) -> Result<LinuxResources, String> {
    let mut resources = LinuxResourcesBuilder::default().devices(device_rules(&cfg.devices)?);
    // Like Kubernetes: a limit without a request requests the limit.
    let request = cfg.cpu_request_millis.or(cfg.cpu_limit_millis);
    if request.is_some() || cfg.cpu_limit_millis.is_some() {
        let mut cpu = LinuxCpuBuilder::default();
        if let Some(request) = request {
            cpu = cpu.shares(cpu_shares(request));
        }
        if let Some(limit) = cfg.cpu_limit_millis {
            cpu = cpu.quota(cpu_quota(limit)?).period(CPU_PERIOD_US);
        }
        resources = resources.cpu(cpu.build().map_err(|e| e.to_string())?);
    }
    if let Some(limit) = cfg.memory_limit_bytes {
        let limit =
            i64::try_from(limit).map_err(|_| format!("memory limit {limit} is too large"))?;
        let mut memory = LinuxMemoryBuilder::default().limit(limit);
        if host.cgroup_version == CgroupVersion::V1 && host.v1_swap_accounting {
            // v1 swap is memory+swap: equal to the limit means no swap at all.
            memory = memory.swap(limit);
        }
        resources = resources.memory(memory.build().map_err(|e| e.to_string())?);
    }
    resources = resources.pids(
        LinuxPidsBuilder::default()
            .limit(cfg.pids_limit.unwrap_or(DEFAULT_PIDS_LIMIT))
            .build()
            .map_err(|e| e.to_string())?,
    );
    resources.build().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ContainerConfig {
        ContainerConfig {
            id: "c1".into(),
            pod_uid: "u1".into(),
            pod_name: "p".into(),
            container_name: "web".into(),
            rootfs_lower: "/images/x".into(),
            args: vec!["sh".into(), "-c".into(), "true".into()],
            env: vec!["A=1".into()],
            cwd: String::new(),
            cpu_limit_millis: Some(500),
            cpu_request_millis: None,
            memory_limit_bytes: Some(16 << 20),
            pids_limit: None,
            oom_score_adj: None,
            host_network: false,
            share_process_namespace: false,
            log_path: "/logs/c1.log".into(),
            log_max_bytes: 1 << 20,
            log_max_files: 2,
            user: super::super::ProcessUser::default(),
            capabilities: super::super::default_capabilities(),
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

    fn sandbox() -> SandboxNamespaces {
        SandboxNamespaces {
            net: Some("/s/ns/net".into()),
            ipc: "/s/ns/ipc".into(),
            uts: Some("/s/ns/uts".into()),
            pid: None,
        }
    }

    const V1: HostFacts = HostFacts {
        cgroup_version: CgroupVersion::V1,
        v1_swap_accounting: true,
        nofile_hard_limit: 4096,
        capability_bounding: u64::MAX,
    };

    #[test]
    fn limits_become_cgroup_resources() {
        let spec = build_spec(&config(), Path::new("/r"), &sandbox(), "/berth/c1", V1).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        let resources = linux.resources().as_ref().unwrap();
        let cpu = resources.cpu().as_ref().unwrap();
        assert_eq!(cpu.quota(), Some(50_000));
        assert_eq!(cpu.period(), Some(100_000));
        assert_eq!(cpu.shares(), Some(512), "request defaults to the limit");
        let memory = resources.memory().as_ref().unwrap();
        assert_eq!(memory.limit(), Some(16 << 20));
        assert_eq!(memory.swap(), Some(16 << 20));
        assert_eq!(resources.pids().as_ref().unwrap().limit(), 1024);
        assert_eq!(
            linux.cgroups_path().as_deref(),
            Some(Path::new("/berth/c1"))
        );
    }

    #[test]
    fn no_limits_means_no_cpu_or_memory_section() {
        let mut cfg = config();
        cfg.cpu_limit_millis = None;
        cfg.memory_limit_bytes = None;
        cfg.pids_limit = Some(10);
        let v2 = HostFacts {
            cgroup_version: CgroupVersion::V2,
            v1_swap_accounting: false,
            nofile_hard_limit: 1 << 20,
            capability_bounding: u64::MAX,
        };
        let spec = build_spec(&cfg, Path::new("/r"), &sandbox(), "/b/c1", v2).unwrap();
        let resources = spec.linux().as_ref().unwrap().resources().clone().unwrap();
        assert!(resources.cpu().is_none());
        assert!(resources.memory().is_none());
        assert_eq!(resources.pids().as_ref().unwrap().limit(), 10);
    }

    #[test]
    fn shares_follow_the_kubelet_formula() {
        assert_eq!(cpu_shares(1000), 1024);
        assert_eq!(cpu_shares(250), 256);
        assert_eq!(cpu_shares(1), 2);
        assert_eq!(cpu_shares(256_000), 262_144, "the kernel's largest value");
        assert_eq!(cpu_shares(u64::MAX), 262_144, "saturates, never wraps");
    }

    #[test]
    fn quota_is_checked() {
        assert_eq!(cpu_quota(500), Ok(50_000));
        assert_eq!(cpu_quota(1), Ok(1000), "at least 1 ms");
        let largest = crate::model::MAX_CPU_MILLIS;
        assert_eq!(cpu_quota(largest), Ok(10_000_000_000_000));
        assert!(
            cpu_quota(largest) < Ok(1 << 44),
            "the kernel's largest quota"
        );
        assert_eq!(
            cpu_quota(u64::MAX / 10),
            Err(format!("cpu limit {}m is too large", u64::MAX / 10))
        );
    }

    #[test]
    fn pod_namespaces_are_joined_by_path() {
        let spec = build_spec(&config(), Path::new("/r"), &sandbox(), "/b/c1", V1).unwrap();
        let namespaces = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
        let find = |t| namespaces.iter().find(|n| n.typ() == t).cloned();
        assert_eq!(find(LinuxNamespaceType::Pid).unwrap().path(), &None);
        assert_eq!(find(LinuxNamespaceType::Mount).unwrap().path(), &None);
        assert_eq!(
            find(LinuxNamespaceType::Network).unwrap().path().as_deref(),
            Some(Path::new("/s/ns/net"))
        );
        assert!(find(LinuxNamespaceType::Uts).is_some());

        let host = SandboxNamespaces {
            net: None,
            ipc: "/s/ns/ipc".into(),
            uts: None,
            pid: None,
        };
        let spec = build_spec(&config(), Path::new("/r"), &host, "/b/c1", V1).unwrap();
        let namespaces = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
        assert!(!namespaces
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::Network));
        assert!(!namespaces
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::Uts));
    }

    #[test]
    fn a_shared_process_namespace_is_joined_by_path() {
        let shared = SandboxNamespaces {
            pid: Some("/s/ns/pid".into()),
            ..sandbox()
        };
        let spec = build_spec(&config(), Path::new("/r"), &shared, "/b/c1", V1).unwrap();
        let namespaces = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
        let pid: Vec<_> = namespaces
            .iter()
            .filter(|n| n.typ() == LinuxNamespaceType::Pid)
            .collect();
        assert_eq!(pid.len(), 1, "one pid namespace entry: {namespaces:?}");
        assert_eq!(pid[0].path().as_deref(), Some(Path::new("/s/ns/pid")));
    }

    #[test]
    fn process_gets_defaults_and_restrictions() {
        let spec = build_spec(&config(), Path::new("/r"), &sandbox(), "/b/c1", V1).unwrap();
        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.cwd(), Path::new("/"));
        let env = process.env().clone().unwrap();
        assert!(env[0].starts_with("PATH="));
        assert!(env.contains(&"A=1".to_string()));
        assert_eq!(process.no_new_privileges(), Some(true));
        let nofile = &process.rlimits().as_ref().unwrap()[0];
        assert_eq!(
            (nofile.soft(), nofile.hard()),
            (4096, 4096),
            "capped at the host limit"
        );
        let caps = process.capabilities().as_ref().unwrap();
        assert!(caps
            .bounding()
            .as_ref()
            .unwrap()
            .contains(&Capability::NetBindService));
        assert!(!caps
            .bounding()
            .as_ref()
            .unwrap()
            .contains(&Capability::SysAdmin));
        assert_eq!(spec.hostname(), &None);
        let mounts = spec.mounts().clone().unwrap();
        assert!(mounts.iter().any(|m| m.destination() == Path::new("/proc")));
        assert!(!mounts
            .iter()
            .any(|m| m.destination() == Path::new("/sys/fs/cgroup")));
    }

    #[test]
    fn unconfined_has_no_filter_and_privileged_no_masks() {
        let confined = build_spec(&config(), Path::new("/r"), &sandbox(), "/b/c1", V1).unwrap();
        let linux = confined.linux().as_ref().unwrap();
        assert!(linux.seccomp().is_some());
        assert!(linux
            .masked_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/kcore".to_owned()));
        assert!(!linux.readonly_paths().as_ref().unwrap().is_empty());

        // A Localhost profile replaces the default one, and Unconfined wins over it.
        let mut cfg = config();
        let localhost = oci_spec::runtime::LinuxSeccompBuilder::default()
            .default_action(oci_spec::runtime::LinuxSeccompAction::ScmpActLog)
            .build()
            .unwrap();
        cfg.seccomp_profile = Some(localhost.clone());
        let spec = build_spec(&cfg, Path::new("/r"), &sandbox(), "/b/c1", V1).unwrap();
        assert_eq!(spec.linux().as_ref().unwrap().seccomp(), &Some(localhost));

        cfg.seccomp_unconfined = true;
        let spec = build_spec(&cfg, Path::new("/r"), &sandbox(), "/b/c1", V1).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        assert!(linux.seccomp().is_none());
        assert!(
            !linux.masked_paths().as_ref().unwrap().is_empty(),
            "still masked"
        );

        cfg.privileged = true;
        cfg.capabilities = crate::runtime::capabilities_from_names(&crate::model::ALL_CAPABILITIES);
        // An agent without CAP_SYS_RESOURCE (bit 24) cannot hand it on.
        let host = HostFacts {
            capability_bounding: !(1 << 24),
            ..V1
        };
        let spec = build_spec(&cfg, Path::new("/r"), &sandbox(), "/b/c1", host).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        assert!(linux.seccomp().is_none());
        assert_eq!(linux.masked_paths().as_deref(), Some(&[][..]));
        assert_eq!(linux.readonly_paths().as_deref(), Some(&[][..]));
        let process = spec.process().as_ref().unwrap();
        assert_eq!(
            process.no_new_privileges(),
            Some(true),
            "kept for the exec helper"
        );
        let bounding = process
            .capabilities()
            .clone()
            .unwrap()
            .bounding()
            .clone()
            .unwrap();
        assert_eq!(bounding.len(), crate::model::ALL_CAPABILITIES.len() - 1);
        assert!(bounding.contains(&Capability::SysAdmin));
        assert!(!bounding.contains(&Capability::SysResource));

        // Asked for by name, a capability is passed on even if the agent lacks it: the
        // start fails rather than running without it.
        cfg.privileged = false;
        cfg.capabilities = vec![Capability::SysResource];
        let spec = build_spec(&cfg, Path::new("/r"), &sandbox(), "/b/c1", host).unwrap();
        let process = spec.process().as_ref().unwrap();
        let bounding = process
            .capabilities()
            .clone()
            .unwrap()
            .bounding()
            .clone()
            .unwrap();
        assert_eq!(bounding, HashSet::from([Capability::SysResource]));
    }

    #[test]
    fn the_bounding_set_is_read_from_proc() {
        let own = capability_bounding();
        assert_ne!(own, 0, "a test process has some bounding set");
        let facts = HostFacts {
            capability_bounding: own,
            ..V1
        };
        // CAP_CHOWN is bit 0.
        assert_eq!(facts.holds(Capability::Chown), own & 1 == 1);
    }

    #[test]
    fn user_capabilities_and_readonly_root_come_from_the_config() {
        let spec = build_spec(&config(), Path::new("/r"), &sandbox(), "/b/c1", V1).unwrap();
        let process = spec.process().as_ref().unwrap();
        assert_eq!((process.user().uid(), process.user().gid()), (0, 0));
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(false));

        let mut cfg = config();
        cfg.user = super::super::ProcessUser {
            uid: 1000,
            gid: 3000,
            additional_gids: vec![3000, 4000],
        };
        cfg.capabilities = vec![Capability::NetBindService];
        cfg.readonly_rootfs = true;
        let spec = build_spec(&cfg, Path::new("/r"), &sandbox(), "/b/c1", V1).unwrap();
        let process = spec.process().as_ref().unwrap();
        let user = process.user();
        assert_eq!((user.uid(), user.gid()), (1000, 3000));
        assert_eq!(user.additional_gids().as_deref(), Some(&[3000, 4000][..]));
        let caps = process.capabilities().as_ref().unwrap();
        let only = HashSet::from([Capability::NetBindService]);
        for set in [caps.bounding(), caps.permitted(), caps.effective()] {
            assert_eq!(set.as_ref(), Some(&only));
        }
        assert_eq!(caps.inheritable().as_ref(), Some(&HashSet::new()));
        assert_eq!(caps.ambient().as_ref(), Some(&HashSet::new()));
        assert_eq!(process.no_new_privileges(), Some(true));
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));

        cfg.capabilities.clear();
        let spec = build_spec(&cfg, Path::new("/r"), &sandbox(), "/b/c1", V1).unwrap();
        let caps = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .clone()
            .unwrap();
        assert_eq!(caps.bounding().as_ref(), Some(&HashSet::new()), "drop ALL");
    }
}
