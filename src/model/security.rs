//! Pod and container `securityContext`: who a container's processes run as and what they
//! may do. Field names and precedence are Kubernetes': a container's own setting wins
//! over the pod's for the fields both have.
//!
//! Only the fields below exist; every other Kubernetes securityContext field is refused
//! by validation, as is privilege escalation, which berth cannot honour. `appArmorProfile`
//! is accepted and validated but not applied (apply warns about it). What the rest may ask
//! for (privileged, added capabilities, no seccomp filter, an unconfined AppArmor profile)
//! is for the namespace's Pod Security level to allow ([`crate::model::pod_security`]).

use serde::{Deserialize, Serialize};

use crate::model::{Container, PodSpec};

/// `spec.securityContext`.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSecurityContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<bool>,
    /// A supplementary group of every container (berth has no volumes to chown to it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_group: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub supplemental_groups: Vec<i64>,
    /// `Merge` (the default: the image's groups of the user are added too) or `Strict`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supplemental_groups_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<SeccompProfile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_armor_profile: Option<AppArmorProfile>,
}

/// `supplementalGroupsPolicy: Strict`: only `fsGroup`, `supplementalGroups` and the primary
/// group, none of the groups the image's `/etc/group` gives the user.
pub const SUPPLEMENTAL_GROUPS_STRICT: &str = "Strict";

/// `spec.containers[*].securityContext`.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SecurityContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_privilege_escalation: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<SeccompProfile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_armor_profile: Option<AppArmorProfile>,
}

/// Capabilities added to and dropped from the default set, named as Kubernetes names
/// them (`NET_ADMIN`; `ALL` for every one).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Capabilities {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SeccompProfile {
    /// `RuntimeDefault`, `Unconfined` or `Localhost`.
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub localhost_profile: Option<String>,
}

/// `appArmorProfile` (Kubernetes 1.30+): validated and kept, not applied, since berth
/// loads no AppArmor profiles.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AppArmorProfile {
    /// `RuntimeDefault`, `Unconfined` or `Localhost`.
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub localhost_profile: Option<String>,
}

/// The seccomp profile type that reads a profile file from the node.
pub const SECCOMP_LOCALHOST: &str = "Localhost";

/// The seccomp profile type every container gets unless it asks otherwise.
pub const SECCOMP_RUNTIME_DEFAULT: &str = "RuntimeDefault";

/// Docker's (and containerd's) default capability set, which every container starts from.
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Every Linux capability (as of Linux 5.9), without the `CAP_` prefix.
pub const ALL_CAPABILITIES: [&str; 41] = [
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "SYSLOG",
    "WAKE_ALARM",
];

/// The canonical name of a capability as a manifest may write it: upper case, without
/// the `CAP_` prefix (`net_admin` and `CAP_NET_ADMIN` are `NET_ADMIN`, as containerd and
/// CRI-O read them). `ALL` stays `ALL`; `None` for a name that is not a capability.
pub fn capability_name(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if bare == "ALL" {
        return Some("ALL");
    }
    ALL_CAPABILITIES.iter().copied().find(|c| *c == bare)
}

/// The capabilities a container gets: the default set, with `add` and `drop` applied in
/// containerd's order (add `ALL`, drop `ALL`, then the single adds, then the single drops,
/// so `drop` wins over `add` for the same name). Sorted as [`ALL_CAPABILITIES`]; unknown
/// names (validation refuses them) are skipped.
pub fn effective_capabilities(capabilities: Option<&Capabilities>) -> Vec<&'static str> {
    let mut set: Vec<&'static str> = DEFAULT_CAPABILITIES.to_vec();
    if let Some(caps) = capabilities {
        let add: Vec<&'static str> = caps.add.iter().filter_map(|c| capability_name(c)).collect();
        let drop: Vec<&'static str> = caps
            .drop
            .iter()
            .filter_map(|c| capability_name(c))
            .collect();
        if add.contains(&"ALL") {
            set = ALL_CAPABILITIES.to_vec();
        }
        if drop.contains(&"ALL") {
            set.clear();
        }
        set.extend(add.iter().filter(|c| **c != "ALL"));
        set.retain(|c| !drop.contains(c));
    }
    ALL_CAPABILITIES
        .iter()
        .copied()
        .filter(|c| set.contains(c))
        .collect()
}

/// The security context that applies to `container`: its own, with the pod's
/// `runAsUser`, `runAsGroup`, `runAsNonRoot`, `seccompProfile` and `appArmorProfile` where
/// it sets none (as Kubernetes' `DetermineEffectiveSecurityContext`). The pod-only fields
/// (`fsGroup`, `supplementalGroups`, `supplementalGroupsPolicy`) stay in the pod's.
pub fn effective_security_context(pod: &PodSpec, container: &Container) -> SecurityContext {
    let mut effective = container.security_context.clone().unwrap_or_default();
    if let Some(pod_context) = &pod.security_context {
        effective.run_as_user = effective.run_as_user.or(pod_context.run_as_user);
        effective.run_as_group = effective.run_as_group.or(pod_context.run_as_group);
        effective.run_as_non_root = effective.run_as_non_root.or(pod_context.run_as_non_root);
        if effective.seccomp_profile.is_none() {
            effective.seccomp_profile = pod_context.seccomp_profile.clone();
        }
        if effective.app_armor_profile.is_none() {
            effective.app_armor_profile = pod_context.app_armor_profile.clone();
        }
    }
    effective
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(add: &[&str], drop: &[&str]) -> Capabilities {
        Capabilities {
            add: add.iter().map(|s| s.to_string()).collect(),
            drop: drop.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn default_set_without_a_capabilities_field() {
        let effective = effective_capabilities(None);
        assert_eq!(effective.len(), 14);
        assert!(effective.contains(&"NET_BIND_SERVICE"));
        assert!(!effective.contains(&"SYS_ADMIN"));
        assert!(DEFAULT_CAPABILITIES
            .iter()
            .all(|c| ALL_CAPABILITIES.contains(c)));
    }

    #[test]
    fn drop_all_then_add_back_one() {
        let c = caps(&["NET_BIND_SERVICE"], &["ALL"]);
        assert_eq!(effective_capabilities(Some(&c)), ["NET_BIND_SERVICE"]);
        assert!(effective_capabilities(Some(&caps(&[], &["ALL"]))).is_empty());
    }

    #[test]
    fn single_drops_win_over_adds_and_names_are_normalised() {
        let c = caps(
            &["sys_admin", "CAP_CHOWN"],
            &["CAP_CHOWN", "net_raw", "bogus"],
        );
        let effective = effective_capabilities(Some(&c));
        assert!(effective.contains(&"SYS_ADMIN"));
        assert!(!effective.contains(&"CHOWN"));
        assert!(!effective.contains(&"NET_RAW"));
        assert!(effective.contains(&"KILL"));
        let all_but_one = effective_capabilities(Some(&caps(&["ALL"], &["SYS_ADMIN"])));
        assert_eq!(all_but_one.len(), 40);
    }

    #[test]
    fn capability_names() {
        assert_eq!(capability_name("cap_net_admin"), Some("NET_ADMIN"));
        assert_eq!(capability_name("all"), Some("ALL"));
        assert_eq!(capability_name("CAP_ALL"), Some("ALL"));
        assert_eq!(capability_name("NET_FOO"), None);
        assert_eq!(capability_name(""), None);
    }

    #[test]
    fn the_container_wins_over_the_pod() {
        let pod = PodSpec {
            security_context: Some(PodSecurityContext {
                run_as_user: Some(1000),
                run_as_group: Some(3000),
                run_as_non_root: Some(true),
                fs_group: Some(2000),
                supplemental_groups: vec![4000],
                seccomp_profile: Some(SeccompProfile {
                    type_: SECCOMP_RUNTIME_DEFAULT.into(),
                    localhost_profile: None,
                }),
                app_armor_profile: Some(AppArmorProfile {
                    type_: "RuntimeDefault".into(),
                    localhost_profile: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let plain = Container::default();
        let effective = effective_security_context(&pod, &plain);
        assert_eq!(effective.run_as_user, Some(1000));
        assert_eq!(effective.run_as_group, Some(3000));
        assert_eq!(effective.run_as_non_root, Some(true));
        assert_eq!(
            effective.seccomp_profile.map(|p| p.type_).as_deref(),
            Some("RuntimeDefault")
        );
        assert_eq!(
            effective.app_armor_profile.map(|p| p.type_).as_deref(),
            Some("RuntimeDefault")
        );
        let own = Container {
            security_context: Some(SecurityContext {
                run_as_user: Some(1234),
                run_as_non_root: Some(false),
                read_only_root_filesystem: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let effective = effective_security_context(&pod, &own);
        assert_eq!(effective.run_as_user, Some(1234));
        assert_eq!(
            effective.run_as_group,
            Some(3000),
            "not set by the container"
        );
        assert_eq!(effective.run_as_non_root, Some(false));
        assert_eq!(effective.read_only_root_filesystem, Some(true));
        let no_pod_context = effective_security_context(&PodSpec::default(), &own);
        assert_eq!(no_pod_context.run_as_group, None);
    }
}
