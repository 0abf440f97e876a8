//! Validation of pod and container `securityContext`.
//!
//! What a Pod Security level may forbid (privileged, added capabilities, no seccomp
//! filter, an unconfined AppArmor profile) is valid here: the level of the object's
//! namespace decides it at apply time (`model::pod_security`). Refused here, everywhere,
//! is only what berth cannot do at all: privilege escalation (every process runs with
//! no_new_privs). Seccomp and AppArmor profiles are checked as Kubernetes checks them; a
//! `Localhost` seccomp profile's file is only read when a container is created, as the
//! kubelet does, so a missing file is not an apply error.

use serde_json::Value;

use super::checker::{get, index, join, Checker};
use crate::model::capability_name;

/// Kubernetes' range for user and group ids (`IsValidUserID`, `IsValidGroupID`).
const MAX_ID: i64 = i32::MAX as i64;

const SECCOMP_TYPES: [&str; 3] = ["RuntimeDefault", "Unconfined", "Localhost"];
/// Kubernetes lists the AppArmor types in this order in its messages.
const APPARMOR_TYPES: [&str; 3] = ["Localhost", "RuntimeDefault", "Unconfined"];
const SUPPLEMENTAL_GROUPS_POLICIES: [&str; 2] = ["Merge", "Strict"];
/// `PATH_MAX - 1`, Kubernetes' bound on an AppArmor `localhostProfile`.
const MAX_APPARMOR_PROFILE_BYTES: usize = 4095;

/// `spec.securityContext`.
pub(super) fn check_pod_security_context(c: &mut Checker, value: &Value, path: &str) {
    let Some(context) = c.object(value, path) else {
        return;
    };
    c.only_fields(
        context,
        path,
        &[
            "runAsUser",
            "runAsGroup",
            "runAsNonRoot",
            "fsGroup",
            "supplementalGroups",
            "supplementalGroupsPolicy",
            "seccompProfile",
            "appArmorProfile",
        ],
    );
    for field in ["runAsUser", "runAsGroup", "fsGroup"] {
        if let Some(value) = get(context, field) {
            c.integer_in(value, &join(path, field), 0, MAX_ID);
        }
    }
    if let Some(value) = get(context, "runAsNonRoot") {
        c.boolean(value, &join(path, "runAsNonRoot"));
    }
    if let Some(value) = get(context, "supplementalGroups") {
        let groups_path = join(path, "supplementalGroups");
        if let Some(groups) = c.list(value, &groups_path) {
            for (i, group) in groups.iter().enumerate() {
                c.integer_in(group, &index(&groups_path, i), 0, MAX_ID);
            }
        }
    }
    if let Some(value) = get(context, "supplementalGroupsPolicy") {
        c.one_of(
            value,
            &join(path, "supplementalGroupsPolicy"),
            &SUPPLEMENTAL_GROUPS_POLICIES,
        );
    }
    check_profiles(c, context, path);
}

/// `seccompProfile` and `appArmorProfile`, which pod and container both have.
fn check_profiles(c: &mut Checker, context: &serde_json::Map<String, Value>, path: &str) {
    if let Some(value) = get(context, "seccompProfile") {
        check_seccomp_profile(c, value, &join(path, "seccompProfile"));
    }
    if let Some(value) = get(context, "appArmorProfile") {
        check_apparmor_profile(c, value, &join(path, "appArmorProfile"));
    }
}

/// `spec.containers[i].securityContext`.
pub(super) fn check_container_security_context(c: &mut Checker, value: &Value, path: &str) {
    let Some(context) = c.object(value, path) else {
        return;
    };
    c.only_fields(
        context,
        path,
        &[
            "runAsUser",
            "runAsGroup",
            "runAsNonRoot",
            "readOnlyRootFilesystem",
            "allowPrivilegeEscalation",
            "capabilities",
            "privileged",
            "seccompProfile",
            "appArmorProfile",
        ],
    );
    for field in ["runAsUser", "runAsGroup"] {
        if let Some(value) = get(context, field) {
            c.integer_in(value, &join(path, field), 0, MAX_ID);
        }
    }
    for field in ["runAsNonRoot", "readOnlyRootFilesystem"] {
        if let Some(value) = get(context, field) {
            c.boolean(value, &join(path, field));
        }
    }
    if let Some(value) = get(context, "privileged") {
        c.boolean(value, &join(path, "privileged"));
    }
    if let Some(value) = get(context, "allowPrivilegeEscalation") {
        let field_path = join(path, "allowPrivilegeEscalation");
        if c.boolean(value, &field_path) == Some(true) {
            c.error(
                &field_path,
                "forbidden: berth containers always run with no_new_privs; only false is allowed",
            );
        }
    }
    if let Some(value) = get(context, "capabilities") {
        check_capabilities(c, value, &join(path, "capabilities"));
    }
    check_profiles(c, context, path);
}

fn check_capabilities(c: &mut Checker, value: &Value, path: &str) {
    let Some(capabilities) = c.object(value, path) else {
        return;
    };
    c.only_fields(capabilities, path, &["add", "drop"]);
    for field in ["add", "drop"] {
        let Some(value) = get(capabilities, field) else {
            continue;
        };
        let list_path = join(path, field);
        let Some(items) = c.list(value, &list_path) else {
            continue;
        };
        for (i, item) in items.iter().enumerate() {
            let item_path = index(&list_path, i);
            let Some(name) = c.string(item, &item_path) else {
                continue;
            };
            if capability_name(name).is_none() {
                c.error(&item_path, format!("unknown capability {name:?}"));
            }
        }
    }
}

/// As Kubernetes' `validateSeccompProfileField`: `localhostProfile` is required with
/// `Localhost`, only allowed with it, and must be a relative path without `..` (it names
/// a file below the node's seccomp root).
fn check_seccomp_profile(c: &mut Checker, value: &Value, path: &str) {
    let Some(profile) = c.object(value, path) else {
        return;
    };
    c.only_fields(profile, path, &["type", "localhostProfile"]);
    let type_path = join(path, "type");
    let type_ = match get(profile, "type") {
        None => {
            c.required(&type_path);
            None
        }
        Some(v) => c.one_of(v, &type_path, &SECCOMP_TYPES),
    };
    let local_path = join(path, "localhostProfile");
    let local = get(profile, "localhostProfile").and_then(|v| c.string(v, &local_path));
    match (type_, local) {
        (Some("Localhost"), None) => c.error(
            &local_path,
            "required value: must be set when seccomp type is Localhost",
        ),
        (Some("Localhost"), Some(file)) => {
            if file.starts_with('/') {
                c.error(
                    &local_path,
                    format!("invalid value {file:?}: must be a relative path"),
                );
            }
            if file.split('/').any(|part| part == "..") {
                c.error(
                    &local_path,
                    format!("invalid value {file:?}: must not contain '..'"),
                );
            }
        }
        (Some(_), Some(file)) => c.error(
            &local_path,
            format!("invalid value {file:?}: can only be set when seccomp type is Localhost"),
        ),
        (_, _) => {}
    }
}

/// As Kubernetes' `validateAppArmorProfileField`. The profile is not applied (apply
/// warns), but a manifest Kubernetes refuses is refused here too.
fn check_apparmor_profile(c: &mut Checker, value: &Value, path: &str) {
    let Some(profile) = c.object(value, path) else {
        return;
    };
    c.only_fields(profile, path, &["type", "localhostProfile"]);
    let type_path = join(path, "type");
    let type_ = match get(profile, "type").map(|v| c.string(v, &type_path)) {
        None | Some(Some("")) => {
            c.error(
                &type_path,
                "required value: type is required when appArmorProfile is set",
            );
            return;
        }
        Some(None) => return,
        Some(Some(t)) if !APPARMOR_TYPES.contains(&t) => {
            c.one_of(&Value::String(t.to_owned()), &type_path, &APPARMOR_TYPES);
            return;
        }
        Some(Some(t)) => t,
    };
    let local_path = join(path, "localhostProfile");
    let local = get(profile, "localhostProfile").and_then(|v| c.string(v, &local_path));
    let required = "required value: must be set when AppArmor type is Localhost";
    match (type_, local) {
        ("Localhost", None | Some("")) => c.error(&local_path, required),
        ("Localhost", Some(name)) => {
            if name.trim() != name {
                c.error(
                    &local_path,
                    format!("invalid value {name:?}: must not be padded with whitespace"),
                );
            }
            if name.len() > MAX_APPARMOR_PROFILE_BYTES {
                c.error(
                    &local_path,
                    format!("too long: must have at most {MAX_APPARMOR_PROFILE_BYTES} bytes"),
                );
            }
        }
        (_, Some(name)) => c.error(
            &local_path,
            format!("invalid value {name:?}: can only be set when AppArmor type is Localhost"),
        ),
        (_, None) => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::super::validate_document;

    fn problems(pod_context: &str, container_context: &str) -> Vec<String> {
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  securityContext: \
             {pod_context}\n  containers:\n  - name: c\n    image: i\n    securityContext: \
             {container_context}\n"
        );
        let doc: Value = serde_yaml_ng::from_str(&yaml).expect("test YAML parses");
        validate_document(&doc)
            .errors
            .into_iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect()
    }

    const C: &str = "spec.containers[0].securityContext";

    #[test]
    fn supported_fields_pass() {
        let pod = "{runAsUser: 1000, runAsGroup: 3000, runAsNonRoot: true, fsGroup: 2000, \
                   supplementalGroups: [4000, 5000], supplementalGroupsPolicy: Strict, \
                   seccompProfile: {type: RuntimeDefault}, appArmorProfile: {type: Unconfined}}";
        let container = "{runAsUser: 0, runAsGroup: 0, runAsNonRoot: false, \
                         readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, \
                         privileged: false, capabilities: {drop: [ALL], add: [NET_BIND_SERVICE, \
                         cap_chown]}, seccompProfile: {type: Localhost, localhostProfile: \
                         profiles/audit.json}, appArmorProfile: {type: Localhost, \
                         localhostProfile: k8s-apparmor-example-deny-write}}";
        assert_eq!(problems(pod, container), Vec::<String>::new());
        assert_eq!(problems("{}", "{}"), Vec::<String>::new());
    }

    #[test]
    fn ids_and_types_are_checked() {
        assert_eq!(
            problems(
                "{runAsUser: -1, fsGroup: 2147483648, supplementalGroups: [1, x]}",
                "{runAsGroup: '5', runAsNonRoot: yes please}"
            ),
            [
                "spec.securityContext.runAsUser: must be greater than or equal to 0",
                "spec.securityContext.fsGroup: must be less than or equal to 2147483647",
                "spec.securityContext.supplementalGroups[1]: expected integer",
                &format!("{C}.runAsGroup: expected integer"),
                &format!("{C}.runAsNonRoot: expected boolean"),
            ]
        );
    }

    #[test]
    fn unsupported_fields_are_named() {
        assert_eq!(
            problems(
                "{sysctls: [], seLinuxOptions: {}}",
                "{procMount: Unmasked, capabilities: {keep: []}}"
            ),
            [
                "spec.securityContext.seLinuxOptions: field not supported by berth",
                "spec.securityContext.sysctls: field not supported by berth",
                &format!("{C}.procMount: field not supported by berth"),
                &format!("{C}.capabilities.keep: field not supported by berth"),
            ]
        );
    }

    #[test]
    fn what_a_level_decides_is_valid_and_what_berth_cannot_do_is_not() {
        // Privileged, any known capability and no filter are for the namespace's Pod
        // Security level to allow or refuse, not for validation.
        assert_eq!(
            problems(
                "{seccompProfile: {type: Unconfined}}",
                "{privileged: true, capabilities: {add: [SYS_ADMIN, ALL, CHOWN]}, \
                 seccompProfile: {type: Unconfined}}",
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            problems(
                "{}",
                "{privileged: yes, allowPrivilegeEscalation: true, capabilities: {add: [NOPE]}, \
                 seccompProfile: {type: Localhost, localhostProfile: x}}",
            ),
            [
                format!("{C}.privileged: expected boolean"),
                format!(
                    "{C}.allowPrivilegeEscalation: forbidden: berth containers always run with \
                     no_new_privs; only false is allowed"
                ),
                format!("{C}.capabilities.add[0]: unknown capability \"NOPE\""),
            ]
        );
    }

    #[test]
    fn seccomp_type_is_required_and_known() {
        assert_eq!(
            problems("{seccompProfile: {}}", "{seccompProfile: {type: Other}}"),
            [
                "spec.securityContext.seccompProfile.type: required value",
                &format!(
                    "{C}.seccompProfile.type: unsupported value \"Other\": supported values: \
                     \"RuntimeDefault\", \"Unconfined\", \"Localhost\""
                ),
            ]
        );
    }

    #[test]
    fn localhost_seccomp_profiles_are_checked_as_kubernetes_does() {
        assert_eq!(
            problems(
                "{seccompProfile: {type: Localhost}}",
                "{seccompProfile: {type: RuntimeDefault, localhostProfile: a.json}}"
            ),
            [
                "spec.securityContext.seccompProfile.localhostProfile: required value: must be \
                 set when seccomp type is Localhost",
                &format!(
                    "{C}.seccompProfile.localhostProfile: invalid value \"a.json\": can only be \
                     set when seccomp type is Localhost"
                ),
            ]
        );
        assert_eq!(
            problems(
                "{seccompProfile: {type: Localhost, localhostProfile: /etc/x.json}}",
                "{seccompProfile: {type: Localhost, localhostProfile: a/../../x.json}}"
            ),
            [
                "spec.securityContext.seccompProfile.localhostProfile: invalid value \
                 \"/etc/x.json\": must be a relative path",
                &format!(
                    "{C}.seccompProfile.localhostProfile: invalid value \"a/../../x.json\": must \
                     not contain '..'"
                ),
            ]
        );
        // `..` inside a name is not a step up.
        assert_eq!(
            problems(
                "{seccompProfile: {type: Localhost, localhostProfile: my..profile.json}}",
                "{}"
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn apparmor_profiles_are_checked_as_kubernetes_does() {
        let long = "x".repeat(4096);
        assert_eq!(
            problems(
                "{appArmorProfile: {localhostProfile: x}}",
                &format!("{{appArmorProfile: {{type: Localhost, localhostProfile: {long}}}}}")
            ),
            [
                "spec.securityContext.appArmorProfile.type: required value: type is required \
                 when appArmorProfile is set",
                &format!(
                    "{C}.appArmorProfile.localhostProfile: too long: must have at most 4095 bytes"
                ),
            ]
        );
        assert_eq!(
            problems(
                "{appArmorProfile: {type: Localhost, localhostProfile: ' p '}}",
                "{appArmorProfile: {type: unconfined}}"
            ),
            [
                "spec.securityContext.appArmorProfile.localhostProfile: invalid value \" p \": \
                 must not be padded with whitespace",
                &format!(
                    "{C}.appArmorProfile.type: unsupported value \"unconfined\": supported values: \
                     \"Localhost\", \"RuntimeDefault\", \"Unconfined\""
                ),
            ]
        );
        assert_eq!(
            problems(
                "{appArmorProfile: {type: Localhost, localhostProfile: ''}}",
                "{appArmorProfile: {type: RuntimeDefault, localhostProfile: p, extra: 1}}"
            ),
            [
                "spec.securityContext.appArmorProfile.localhostProfile: required value: must be \
                 set when AppArmor type is Localhost",
                &format!("{C}.appArmorProfile.extra: field not supported by berth"),
                &format!(
                    "{C}.appArmorProfile.localhostProfile: invalid value \"p\": can only be set \
                     when AppArmor type is Localhost"
                ),
            ]
        );
    }

    #[test]
    fn supplemental_groups_policy_is_merge_or_strict() {
        assert_eq!(
            problems("{supplementalGroupsPolicy: Merge}", "{}"),
            Vec::<String>::new()
        );
        assert_eq!(
            problems("{supplementalGroupsPolicy: strict}", "{}"),
            [
                "spec.securityContext.supplementalGroupsPolicy: unsupported value \"strict\": \
              supported values: \"Merge\", \"Strict\""
            ]
        );
        assert_eq!(
            problems("{}", "{supplementalGroupsPolicy: Strict}"),
            [format!(
                "{C}.supplementalGroupsPolicy: field not supported by berth"
            )]
        );
    }
}
