//! A container's identity and privileges, from its pod's `securityContext` and its image:
//! the kubelet's part (the namespace's Pod Security level and `runAsNonRoot` are checked
//! before anything starts) and containerd's part (the user resolved against the image's
//! own `/etc/passwd` and `/etc/group`, the capability set, seccomp (a `Localhost`
//! profile read from the agent's seccomp root), a read-only root).

use std::path::Path;

use crate::model::{
    capability_name, check_pod_spec, effective_capabilities, effective_security_context,
    violations_summary, Container, Pod, PodSecurityLevel, SecurityContext, ALL_CAPABILITIES,
    SECCOMP_LOCALHOST, SECCOMP_RUNTIME_DEFAULT, SUPPLEMENTAL_GROUPS_STRICT,
};
use crate::runtime::user::{parse_group, parse_passwd, resolve_user, UserOverrides};
use crate::runtime::{
    capabilities_from_names, load_localhost_profile, Capability, LinuxSeccomp, ProcessUser,
};

/// Cap on the image's passwd and group files (real ones are a few KiB): an image is
/// untrusted and the agent reads them into memory.
const MAX_ACCOUNT_FILE_BYTES: u64 = 1 << 20;

/// What the runtime needs to confine one container.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct ContainerSecurity {
    pub(super) user: ProcessUser,
    /// The user's home dir, for `HOME` when neither image nor pod sets it (as runc does).
    pub(super) home: String,
    pub(super) capabilities: Vec<Capability>,
    pub(super) readonly_rootfs: bool,
    /// No seccomp filter: `seccompProfile: Unconfined`, or privileged.
    pub(super) seccomp_unconfined: bool,
    /// The `Localhost` profile, translated; `None` for the default profile.
    pub(super) seccomp_profile: Option<LinuxSeccomp>,
    pub(super) privileged: bool,
}

/// Why a container cannot be created: the waiting reason and the message.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Refusal {
    pub(super) reason: &'static str,
    pub(super) message: String,
}

fn config_error(message: String) -> Refusal {
    Refusal {
        reason: "CreateContainerConfigError",
        message,
    }
}

/// Where the image and the node are: the image's unpacked rootfs (its `/etc/passwd` and
/// `/etc/group`) and the agent's seccomp root (`Localhost` profiles).
pub(super) struct Sources<'a> {
    pub(super) rootfs: &'a Path,
    pub(super) seccomp_root: &'a Path,
}

/// The identity and privileges of `container`, whose image says `image_user`, in a
/// namespace whose Pod Security level is `level`.
pub(super) fn container_security(
    pod: &Pod,
    container: &Container,
    image_user: &str,
    sources: &Sources,
    level: PodSecurityLevel,
) -> Result<ContainerSecurity, Refusal> {
    let context = effective_security_context(&pod.spec, container);
    if let Some(message) = refused_on_this_node(pod, container, &context, level) {
        return Err(config_error(message));
    }
    verify_run_as_non_root(pod, &container.name, &context, image_user).map_err(config_error)?;
    let overrides = user_overrides(pod, &context).map_err(config_error)?;
    // The runtime's part: Kubernetes reports its failures as CreateContainerError.
    let create_error = |message: String| Refusal {
        reason: "CreateContainerError",
        message,
    };
    let read = |rel| {
        crate::image::read_rootfs_file(sources.rootfs, rel, MAX_ACCOUNT_FILE_BYTES)
            .map(Option::unwrap_or_default)
            .map_err(create_error)
    };
    let (passwd, group) = (read("etc/passwd")?, read("etc/group")?);
    let resolved = resolve_user(
        image_user,
        &overrides,
        &parse_passwd(&passwd),
        &parse_group(&group),
    )
    .map_err(create_error)?;
    // Privileged as in Docker: every capability (the runtime keeps those the agent
    // has), no seccomp filter, nothing masked.
    let privileged = context.privileged == Some(true);
    let capabilities = if privileged {
        ALL_CAPABILITIES.to_vec()
    } else {
        effective_capabilities(context.capabilities.as_ref())
    };
    let capabilities = capabilities_from_names(&capabilities);
    // As containerd: a privileged container has no filter, so its profile is not read.
    let seccomp_profile = match &context.seccomp_profile {
        Some(profile) if profile.type_ == SECCOMP_LOCALHOST && !privileged => {
            let relative = profile.localhost_profile.as_deref().unwrap_or_default();
            Some(
                load_localhost_profile(sources.seccomp_root, relative, &capabilities)
                    .map_err(create_error)?,
            )
        }
        _ => None,
    };
    Ok(ContainerSecurity {
        user: resolved.user,
        home: resolved.home,
        capabilities,
        readonly_rootfs: context.read_only_root_filesystem == Some(true),
        seccomp_unconfined: privileged
            || context
                .seccomp_profile
                .as_ref()
                .is_some_and(|p| p.type_ == SECCOMP_UNCONFINED),
        seccomp_profile,
        privileged,
    })
}

const SECCOMP_UNCONFINED: &str = "Unconfined";

/// What apply refuses, checked again before every start: a pod that reached the store
/// some other way (a coordinator of another version or level, a namespace relabelled
/// since) must neither get more than its namespace's level allows nor have a field
/// silently ignored. The level check covers the whole pod, so every container of a pod
/// that fails it waits with the same message.
fn refused_on_this_node(
    pod: &Pod,
    container: &Container,
    context: &SecurityContext,
    level: PodSecurityLevel,
) -> Option<String> {
    let violations = check_pod_spec(level, &pod.spec, "spec");
    if !violations.is_empty() {
        return Some(format!(
            "pods {:?} is forbidden: {}",
            pod.metadata.name,
            violations_summary(level, &violations)
        ));
    }
    beyond_what_berth_can(context).or_else(|| unsupported_fields(pod, container))
}

/// What no level allows, because berth cannot do it.
fn beyond_what_berth_can(context: &SecurityContext) -> Option<String> {
    if context.allow_privilege_escalation == Some(true) {
        return Some(
            "allowPrivilegeEscalation: true is not allowed on this node (no_new_privs is always set)"
                .to_owned(),
        );
    }
    let added = context.capabilities.iter().flat_map(|c| &c.add);
    if let Some(name) = added
        .into_iter()
        .find(|name| capability_name(name).is_none())
    {
        return Some(format!("unknown capability {name:?}"));
    }
    let known = [
        SECCOMP_RUNTIME_DEFAULT,
        SECCOMP_UNCONFINED,
        SECCOMP_LOCALHOST,
    ];
    match &context.seccomp_profile {
        Some(profile) if !known.contains(&profile.type_.as_str()) => Some(format!(
            "seccomp profile {:?} is not supported on this node",
            profile.type_
        )),
        Some(_) | None => None,
    }
}

/// Fields validation refuses because berth would otherwise ignore them: a `hostPort` on
/// the host network other than the container's own port (off the host network the pod
/// network forwards it; the agent refuses it when it runs without one) and a probe's
/// `host`.
fn unsupported_fields(pod: &Pod, container: &Container) -> Option<String> {
    for port in &container.ports {
        let Some(host_port) = port.host_port.filter(|p| *p != 0) else {
            continue;
        };
        if pod.spec.host_network && host_port != port.container_port {
            return Some(format!(
                "hostPort {host_port} is not supported on this node (a hostNetwork pod's \
                 hostPort is its own port)"
            ));
        }
    }
    let probes = [
        &container.liveness_probe,
        &container.readiness_probe,
        &container.startup_probe,
    ];
    for probe in probes.into_iter().flatten() {
        let hosts = [
            probe.http_get.as_ref().and_then(|h| h.host.as_deref()),
            probe.tcp_socket.as_ref().and_then(|t| t.host.as_deref()),
        ];
        if let Some(host) = hosts.into_iter().flatten().find(|h| !h.is_empty()) {
            return Some(format!(
                "probe host {host:?} is not supported on this node (probes reach the pod itself)"
            ));
        }
    }
    None
}

impl super::Agent {
    /// The Pod Security level of `namespace` as stored on this board (namespaces pushed
    /// by a coordinator carry their labels), else the agent's `--pod-security-level`.
    pub(super) fn pod_security_level(&self, namespace: &str) -> Result<PodSecurityLevel, String> {
        let record = self
            .store()
            .get("Namespace", "", namespace)
            .map_err(|e| format!("store: {e}"))?;
        Ok(PodSecurityLevel::for_namespace_object(
            record.as_ref().map(|r| &r.object),
            self.options.pod_security_level,
        ))
    }
}

/// The kubelet's check: with `runAsNonRoot`, a container must not run as uid 0, and the
/// image's user must be numeric for the check to be possible. Messages are the kubelet's.
fn verify_run_as_non_root(
    pod: &Pod,
    container: &str,
    context: &SecurityContext,
    image_user: &str,
) -> Result<(), String> {
    if context.run_as_non_root != Some(true) {
        return Ok(());
    }
    let meta = &pod.metadata;
    let pod_name = format!("{}_{}({})", meta.name, meta.namespace_or_empty(), meta.uid);
    if let Some(uid) = context.run_as_user {
        if uid == 0 {
            return Err(format!(
                "container's runAsUser breaks non-root policy (pod: {pod_name:?}, container: {container})"
            ));
        }
        return Ok(());
    }
    // The user part of `user[:group]`; an image without a user runs as root.
    let user = image_user.split(':').next().unwrap_or_default();
    match user.parse::<i64>() {
        _ if user.is_empty() => Err(format!(
            "container has runAsNonRoot and image will run as root (pod: {pod_name:?}, container: {container})"
        )),
        Err(_) => Err(format!(
            "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root (pod: {pod_name:?}, container: {container})"
        )),
        Ok(0) => Err(format!(
            "container has runAsNonRoot and image will run as root (pod: {pod_name:?}, container: {container})"
        )),
        Ok(uid) if !(0..=i64::from(i32::MAX)).contains(&uid) => Err(format!(
            "container has runAsNonRoot and image has an invalid user id ({uid}). (Must be 1-({})): must be between 0 and {}, inclusive (pod: {pod_name:?}, container: {container})",
            i32::MAX,
            i32::MAX
        )),
        Ok(_) => Ok(()),
    }
}

/// `runAsUser`, `runAsGroup`, then `fsGroup` and `supplementalGroups` as extra groups, and
/// whether `supplementalGroupsPolicy: Strict` leaves out the image's groups of the user.
fn user_overrides(pod: &Pod, context: &SecurityContext) -> Result<UserOverrides, String> {
    let id = |field: &str, value: i64| {
        u32::try_from(value)
            .ok()
            .filter(|v| *v <= i32::MAX as u32)
            .ok_or_else(|| format!("invalid {field} {value}"))
    };
    let pod_context = pod.spec.security_context.clone().unwrap_or_default();
    let mut extra_gids = Vec::new();
    for group in pod_context.fs_group.iter() {
        extra_gids.push(id("fsGroup", *group)?);
    }
    for group in &pod_context.supplemental_groups {
        extra_gids.push(id("supplementalGroups", *group)?);
    }
    Ok(UserOverrides {
        run_as_user: context
            .run_as_user
            .map(|v| id("runAsUser", v))
            .transpose()?,
        run_as_group: context
            .run_as_group
            .map(|v| id("runAsGroup", v))
            .transpose()?,
        extra_gids,
        strict_groups: pod_context.supplemental_groups_policy.as_deref()
            == Some(SUPPLEMENTAL_GROUPS_STRICT),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Capabilities, ObjectMeta, PodSecurityContext, PodSpec, SeccompProfile};

    const BASELINE: PodSecurityLevel = PodSecurityLevel::Baseline;

    fn pod(pod_context: Option<PodSecurityContext>, context: Option<SecurityContext>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: "web".into(),
                namespace: Some("default".into()),
                uid: "1234-abcd".into(),
                ..Default::default()
            },
            spec: PodSpec {
                containers: vec![Container {
                    name: "main".into(),
                    image: "busybox".into(),
                    security_context: context,
                    ..Default::default()
                }],
                security_context: pod_context,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn non_root() -> Option<PodSecurityContext> {
        Some(PodSecurityContext {
            run_as_non_root: Some(true),
            ..Default::default()
        })
    }

    fn check(p: &Pod, image_user: &str) -> Result<(), String> {
        let context = effective_security_context(&p.spec, &p.spec.containers[0]);
        verify_run_as_non_root(p, "main", &context, image_user)
    }

    #[test]
    fn run_as_non_root_gives_the_kubelet_messages() {
        let p = pod(non_root(), None);
        let root = "container has runAsNonRoot and image will run as root \
                    (pod: \"web_default(1234-abcd)\", container: main)";
        assert_eq!(check(&p, "").unwrap_err(), root);
        assert_eq!(check(&p, "0:1000").unwrap_err(), root);
        assert_eq!(
            check(&p, "app").unwrap_err(),
            "container has runAsNonRoot and image has non-numeric user (app), cannot verify \
             user is non-root (pod: \"web_default(1234-abcd)\", container: main)"
        );
        assert!(check(&p, "4294967296")
            .unwrap_err()
            .contains("invalid user id"));
        assert_eq!(check(&p, "1000:1000"), Ok(()));
        assert_eq!(check(&pod(None, None), ""), Ok(()), "not asked");
    }

    #[test]
    fn run_as_user_decides_over_the_image() {
        let context = |uid| {
            Some(SecurityContext {
                run_as_user: Some(uid),
                ..Default::default()
            })
        };
        assert_eq!(check(&pod(non_root(), context(1234)), ""), Ok(()));
        assert_eq!(
            check(&pod(non_root(), context(0)), "1000").unwrap_err(),
            "container's runAsUser breaks non-root policy \
             (pod: \"web_default(1234-abcd)\", container: main)"
        );
        // The container's runAsNonRoot: false wins over the pod's true.
        let allowed = Some(SecurityContext {
            run_as_non_root: Some(false),
            ..Default::default()
        });
        assert_eq!(check(&pod(non_root(), allowed), ""), Ok(()));
    }

    #[test]
    fn the_namespace_level_decides_before_a_start() {
        use PodSecurityLevel::{Baseline, Privileged, Restricted};
        let refused =
            |p: &Pod, level| refused_on_this_node(p, &p.spec.containers[0], &context_of(p), level);
        let plain = pod(None, None);
        assert_eq!(refused(&plain, Baseline), None);
        assert_eq!(
            refused(&plain, Restricted).unwrap(),
            "pods \"web\" is forbidden: violates PodSecurity \"restricted:latest\": \
             allowPrivilegeEscalation != false (container \"main\" must set \
             securityContext.allowPrivilegeEscalation=false), unrestricted capabilities \
             (container \"main\" must set securityContext.capabilities.drop=[\"ALL\"]), \
             runAsNonRoot != true (pod or container \"main\" must set \
             securityContext.runAsNonRoot=true), seccompProfile (pod or container \"main\" \
             must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
        let mut host = pod(None, None);
        host.spec.host_network = true;
        assert_eq!(
            refused(&host, Baseline).unwrap(),
            "pods \"web\" is forbidden: violates PodSecurity \"baseline:latest\": host \
             namespaces (hostNetwork=true)"
        );
        assert_eq!(refused(&host, Privileged), None);
        let greedy = pod(
            Some(PodSecurityContext {
                seccomp_profile: Some(seccomp("Unconfined")),
                ..Default::default()
            }),
            Some(SecurityContext {
                privileged: Some(true),
                capabilities: Some(Capabilities {
                    add: vec!["SYS_ADMIN".into(), "ALL".into()],
                    drop: vec![],
                }),
                ..Default::default()
            }),
        );
        assert!(refused(&greedy, Baseline)
            .unwrap()
            .contains("privileged (container"));
        assert_eq!(refused(&greedy, Privileged), None);
    }

    /// The image rootfs and the seccomp root in one test directory.
    fn both(dir: &Path) -> Sources<'_> {
        Sources {
            rootfs: dir,
            seccomp_root: dir,
        }
    }

    fn context_of(p: &Pod) -> SecurityContext {
        effective_security_context(&p.spec, &p.spec.containers[0])
    }

    fn seccomp(type_: &str) -> SeccompProfile {
        SeccompProfile {
            type_: type_.into(),
            localhost_profile: None,
        }
    }

    #[test]
    fn what_berth_cannot_do_is_refused_at_every_level() {
        let refused = |context: SecurityContext| beyond_what_berth_can(&context);
        assert_eq!(refused(SecurityContext::default()), None);
        assert!(refused(SecurityContext {
            allow_privilege_escalation: Some(true),
            ..Default::default()
        })
        .is_some());
        let with_seccomp = |type_: &str| SecurityContext {
            seccomp_profile: Some(seccomp(type_)),
            ..Default::default()
        };
        assert_eq!(refused(with_seccomp("RuntimeDefault")), None);
        assert_eq!(refused(with_seccomp("Unconfined")), None);
        assert_eq!(refused(with_seccomp("Localhost")), None);
        assert!(refused(with_seccomp("Bogus")).is_some());
        let add = |name: &str| SecurityContext {
            capabilities: Some(Capabilities {
                add: vec![name.into()],
                drop: vec![],
            }),
            ..Default::default()
        };
        assert_eq!(refused(add("SYS_ADMIN")), None, "a level's decision");
        assert!(refused(add("NOPE")).is_some());

        let mut p = pod(None, None);
        p.spec.containers[0].ports = vec![crate::model::ContainerPort {
            container_port: 80,
            host_port: Some(80),
            ..Default::default()
        }];
        let unsupported = |p: &Pod| unsupported_fields(p, &p.spec.containers[0]);
        assert_eq!(unsupported(&p), None, "forwarded by the pod network");
        p.spec.host_network = true;
        assert_eq!(unsupported(&p), None, "the host network's own port");
        p.spec.containers[0].ports[0].host_port = Some(8080);
        assert!(unsupported(&p).is_some());
        p.spec.containers[0].ports[0].host_port = None;
        p.spec.containers[0].readiness_probe = Some(crate::model::Probe {
            tcp_socket: Some(crate::model::TcpSocketAction {
                host: Some("10.0.0.1".into()),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert!(unsupported(&p)
            .unwrap()
            .starts_with("probe host \"10.0.0.1\""));
    }

    #[test]
    fn security_from_pod_and_image_files() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(root.path().join("etc/group"), "video:x:44:app\n").unwrap();
        let p = pod(
            Some(PodSecurityContext {
                fs_group: Some(2000),
                supplemental_groups: vec![4000],
                ..Default::default()
            }),
            Some(SecurityContext {
                run_as_group: Some(3000),
                read_only_root_filesystem: Some(true),
                capabilities: Some(Capabilities {
                    add: vec!["NET_BIND_SERVICE".into()],
                    drop: vec!["ALL".into()],
                }),
                ..Default::default()
            }),
        );
        let security = container_security(
            &p,
            &p.spec.containers[0],
            "app",
            &both(root.path()),
            BASELINE,
        )
        .unwrap();
        assert_eq!(
            security.user,
            ProcessUser {
                uid: 1000,
                gid: 3000,
                additional_gids: vec![3000, 44, 2000, 4000],
            }
        );
        assert_eq!(security.home, "/home/app");
        assert_eq!(security.capabilities, [Capability::NetBindService]);
        assert!(security.readonly_rootfs);

        let plain = pod(None, None);
        let security = container_security(
            &plain,
            &plain.spec.containers[0],
            "",
            &both(root.path()),
            BASELINE,
        )
        .unwrap();
        assert_eq!(
            security.user,
            ProcessUser {
                uid: 0,
                gid: 0,
                additional_gids: vec![0]
            }
        );
        assert_eq!(
            security.capabilities,
            crate::runtime::default_capabilities()
        );
        assert!(!security.readonly_rootfs);

        let missing = container_security(
            &plain,
            &plain.spec.containers[0],
            "ghost",
            &both(root.path()),
            BASELINE,
        );
        assert_eq!(
            missing.unwrap_err(),
            Refusal {
                reason: "CreateContainerError",
                message: "unable to find user ghost: no matching entries in passwd file".into(),
            }
        );
        // Privileged: every capability and no filter; Unconfined: only no filter.
        let privileged = pod(
            None,
            Some(SecurityContext {
                privileged: Some(true),
                ..Default::default()
            }),
        );
        let container = &privileged.spec.containers[0];
        let everything = PodSecurityLevel::Privileged;
        let security =
            container_security(&privileged, container, "", &both(root.path()), everything);
        let security = security.unwrap();
        assert!(security.privileged && security.seccomp_unconfined);
        assert_eq!(security.capabilities.len(), ALL_CAPABILITIES.len());
        let refused = container_security(&privileged, container, "", &both(root.path()), BASELINE);
        assert!(refused
            .unwrap_err()
            .message
            .contains("violates PodSecurity"));
        let unconfined = pod(
            Some(PodSecurityContext {
                seccomp_profile: Some(seccomp("Unconfined")),
                ..Default::default()
            }),
            None,
        );
        let container = &unconfined.spec.containers[0];
        let security =
            container_security(&unconfined, container, "", &both(root.path()), everything);
        let security = security.unwrap();
        assert!(security.seccomp_unconfined && !security.privileged);
        assert_eq!(
            security.capabilities,
            crate::runtime::default_capabilities()
        );

        let refused = container_security(
            &pod(non_root(), None),
            &plain.spec.containers[0],
            "",
            &both(root.path()),
            BASELINE,
        );
        assert_eq!(refused.unwrap_err().reason, "CreateContainerConfigError");
    }

    #[test]
    fn localhost_seccomp_profiles_and_strict_groups() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("profiles")).unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(
            root.path().join("etc/passwd"),
            "app:x:1000:1000::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(root.path().join("etc/group"), "video:x:44:app\n").unwrap();
        std::fs::write(
            root.path().join("profiles/audit.json"),
            r#"{"defaultAction": "SCMP_ACT_LOG"}"#,
        )
        .unwrap();
        let localhost = |file: &str| {
            pod(
                Some(PodSecurityContext {
                    seccomp_profile: Some(SeccompProfile {
                        type_: "Localhost".into(),
                        localhost_profile: Some(file.into()),
                    }),
                    supplemental_groups: vec![4000],
                    supplemental_groups_policy: Some("Strict".into()),
                    ..Default::default()
                }),
                None,
            )
        };
        let p = localhost("profiles/audit.json");
        let security = container_security(
            &p,
            &p.spec.containers[0],
            "app",
            &both(root.path()),
            BASELINE,
        )
        .unwrap();
        let profile = security.seccomp_profile.unwrap();
        assert_eq!(
            profile.default_action(),
            oci_spec::runtime::LinuxSeccompAction::ScmpActLog
        );
        assert!(!security.seccomp_unconfined);
        assert_eq!(
            security.user.additional_gids,
            [1000, 4000],
            "no video: Strict"
        );

        // The file is read when the container is created: a missing one leaves it waiting
        // with the kubelet's reason and a message naming the file.
        let p = localhost("profiles/missing.json");
        let refusal = container_security(
            &p,
            &p.spec.containers[0],
            "app",
            &both(root.path()),
            BASELINE,
        )
        .unwrap_err();
        assert_eq!(refusal.reason, "CreateContainerError");
        let file = root.path().join("profiles/missing.json");
        assert!(
            refusal.message.starts_with(&format!(
                "cannot load seccomp profile {:?}: ",
                file.display()
            )),
            "{}",
            refusal.message
        );
    }
}
