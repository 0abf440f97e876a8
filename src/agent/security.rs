//! A container's identity and privileges, from its pod's `securityContext` and its image:
//! the kubelet's part (`runAsNonRoot` is checked against the image's `User` before
//! anything starts) and containerd's part (the user resolved against the image's own
//! `/etc/passwd` and `/etc/group`, the capability set, a read-only root).

use std::path::Path;

use crate::model::{
    capability_name, effective_capabilities, effective_security_context, Container, Pod,
    SecurityContext, DEFAULT_CAPABILITIES, SECCOMP_RUNTIME_DEFAULT,
};
use crate::runtime::user::{parse_group, parse_passwd, resolve_user, UserOverrides};
use crate::runtime::{capabilities_from_names, Capability, ProcessUser};

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

/// The identity and privileges of `container`, whose image says `image_user` and is
/// unpacked at `rootfs`.
pub(super) fn container_security(
    pod: &Pod,
    container: &Container,
    image_user: &str,
    rootfs: &Path,
) -> Result<ContainerSecurity, Refusal> {
    let context = effective_security_context(&pod.spec, container);
    if let Some(message) = beyond_the_default_sandbox(&context) {
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
        crate::image::read_rootfs_file(rootfs, rel, MAX_ACCOUNT_FILE_BYTES)
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
    Ok(ContainerSecurity {
        user: resolved.user,
        home: resolved.home,
        capabilities: capabilities_from_names(&effective_capabilities(
            context.capabilities.as_ref(),
        )),
        readonly_rootfs: context.read_only_root_filesystem == Some(true),
    })
}

/// What validation refuses, checked again here: a pod that reached the store some other
/// way (a coordinator of another version) must not have it silently ignored.
fn beyond_the_default_sandbox(context: &SecurityContext) -> Option<String> {
    if context.privileged == Some(true) {
        return Some("privileged containers are not allowed on this node".to_owned());
    }
    if context.allow_privilege_escalation == Some(true) {
        return Some(
            "allowPrivilegeEscalation: true is not allowed on this node (no_new_privs is always set)"
                .to_owned(),
        );
    }
    let added = context.capabilities.iter().flat_map(|c| &c.add);
    for name in added {
        if !capability_name(name).is_some_and(|c| DEFAULT_CAPABILITIES.contains(&c)) {
            return Some(format!(
                "adding capability {name:?} is not allowed on this node"
            ));
        }
    }
    match &context.seccomp_profile {
        Some(profile) if profile.type_ != SECCOMP_RUNTIME_DEFAULT => Some(format!(
            "seccomp profile {:?} is not allowed on this node",
            profile.type_
        )),
        Some(_) | None => None,
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

/// `runAsUser`, `runAsGroup`, then `fsGroup` and `supplementalGroups` as extra groups.
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Capabilities, ObjectMeta, PodSecurityContext, PodSpec, SeccompProfile};

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
    fn more_than_the_default_sandbox_is_refused() {
        let refused = |context: SecurityContext| beyond_the_default_sandbox(&context);
        assert_eq!(refused(SecurityContext::default()), None);
        assert!(refused(SecurityContext {
            privileged: Some(true),
            ..Default::default()
        })
        .is_some());
        assert!(refused(SecurityContext {
            allow_privilege_escalation: Some(true),
            ..Default::default()
        })
        .is_some());
        let add = |name: &str| SecurityContext {
            capabilities: Some(Capabilities {
                add: vec![name.into()],
                drop: vec!["ALL".into()],
            }),
            ..Default::default()
        };
        assert_eq!(refused(add("NET_BIND_SERVICE")), None);
        assert!(refused(add("SYS_ADMIN")).is_some());
        assert!(refused(add("ALL")).is_some());
        let seccomp = |type_: &str| SecurityContext {
            seccomp_profile: Some(SeccompProfile {
                type_: type_.into(),
                localhost_profile: None,
            }),
            ..Default::default()
        };
        assert_eq!(refused(seccomp("RuntimeDefault")), None);
        assert!(refused(seccomp("Unconfined")).is_some());
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
        let security = container_security(&p, &p.spec.containers[0], "app", root.path()).unwrap();
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
        let security =
            container_security(&plain, &plain.spec.containers[0], "", root.path()).unwrap();
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

        let missing = container_security(&plain, &plain.spec.containers[0], "ghost", root.path());
        assert_eq!(
            missing.unwrap_err(),
            Refusal {
                reason: "CreateContainerError",
                message: "unable to find user ghost: no matching entries in passwd file".into(),
            }
        );
        let refused = container_security(
            &pod(non_root(), None),
            &plain.spec.containers[0],
            "",
            root.path(),
        );
        assert_eq!(refused.unwrap_err().reason, "CreateContainerConfigError");
    }
}
