//! Validation of pod and container `securityContext`.
//!
//! What a Pod Security level may forbid (privileged, added capabilities, no seccomp
//! filter) is valid here: the level of the object's namespace decides it at apply time
//! (`model::pod_security`). Refused here, everywhere, is only what berth cannot do at
//! all: privilege escalation (every process runs with no_new_privs) and localhost seccomp
//! profiles.

use serde_json::Value;

use super::checker::{get, index, join, Checker};
use crate::model::capability_name;

/// Kubernetes' range for user and group ids (`IsValidUserID`, `IsValidGroupID`).
const MAX_ID: i64 = i32::MAX as i64;

const SECCOMP_TYPES: [&str; 3] = ["RuntimeDefault", "Unconfined", "Localhost"];

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
            "seccompProfile",
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
    if let Some(value) = get(context, "seccompProfile") {
        check_seccomp_profile(c, value, &join(path, "seccompProfile"));
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
    if let Some(value) = get(context, "seccompProfile") {
        check_seccomp_profile(c, value, &join(path, "seccompProfile"));
    }
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

fn check_seccomp_profile(c: &mut Checker, value: &Value, path: &str) {
    let Some(profile) = c.object(value, path) else {
        return;
    };
    c.only_fields(profile, path, &["type", "localhostProfile"]);
    let type_path = join(path, "type");
    match get(profile, "type").map(|v| c.one_of(v, &type_path, &SECCOMP_TYPES)) {
        None => c.required(&type_path),
        Some(Some("Localhost")) => c.error(
            &type_path,
            "forbidden: berth has no localhost seccomp profiles; use \"RuntimeDefault\"",
        ),
        Some(_) => {}
    }
    if let Some(value) = get(profile, "localhostProfile") {
        c.string(value, &join(path, "localhostProfile"));
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
                   supplementalGroups: [4000, 5000], seccompProfile: {type: RuntimeDefault}}";
        let container = "{runAsUser: 0, runAsGroup: 0, runAsNonRoot: false, \
                         readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, \
                         privileged: false, capabilities: {drop: [ALL], add: [NET_BIND_SERVICE, \
                         cap_chown]}, seccompProfile: {type: RuntimeDefault}}";
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
                format!(
                    "{C}.seccompProfile.type: forbidden: berth has no localhost seccomp profiles; \
                     use \"RuntimeDefault\""
                ),
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
}
