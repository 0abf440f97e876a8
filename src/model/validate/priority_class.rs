//! Validation of a PriorityClass (scheduling.k8s.io/v1), field by field as Kubernetes
//! validates one: its fields sit at the top level, beside `metadata`, not in a spec.

use super::checker::{get, Checker, JsonObject};
use crate::model::priority_class::{
    is_system_class, HIGHEST_USER_PRIORITY, PREEMPTION_POLICIES, SYSTEM_PREFIX,
};

pub(super) const PRIORITY_CLASS_FIELDS: [&str; 7] = [
    "apiVersion",
    "kind",
    "metadata",
    "value",
    "globalDefault",
    "description",
    "preemptionPolicy",
];

pub(super) fn check_priority_class(c: &mut Checker, top: &JsonObject) {
    let value = c
        .required_field(top, "", "value")
        .and_then(|v| c.integer_in(v, "value", i64::from(i32::MIN), i64::from(i32::MAX)));
    let global_default = get(top, "globalDefault").and_then(|v| c.boolean(v, "globalDefault"));
    if let Some(value) = get(top, "description") {
        c.string(value, "description");
    }
    if let Some(value) = get(top, "preemptionPolicy") {
        c.one_of(value, "preemptionPolicy", &PREEMPTION_POLICIES);
    }
    let name = get(top, "metadata")
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or_default();
    let Some(value) = value else {
        return;
    };
    if name.starts_with(SYSTEM_PREFIX) {
        // Only the built-in classes as they are may be applied under such a name.
        if !is_system_class(name, value) || global_default == Some(true) {
            c.error(
                "metadata.name",
                format!(
                    "forbidden: priority class names with '{SYSTEM_PREFIX}' prefix are \
                     reserved for system use only"
                ),
            );
        }
    } else if value > i64::from(HIGHEST_USER_PRIORITY) {
        c.error(
            "value",
            format!(
                "forbidden: maximum allowed value of a user defined priority is \
                 {HIGHEST_USER_PRIORITY}"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{parse_manifests, Object};

    fn errors(yaml: &str) -> Vec<String> {
        match parse_manifests(yaml) {
            Ok(_) => Vec::new(),
            Err(err) => err.to_string().lines().map(str::to_owned).collect(),
        }
    }

    const CLASS: &str = "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\n";

    #[test]
    fn a_class_is_built_with_kubernetes_defaults() {
        let yaml = format!(
            "{CLASS}metadata: {{name: high, namespace: ignored}}\nvalue: 1000\n\
             description: for the important ones\n"
        );
        let Ok(mut objects) = parse_manifests(&yaml) else {
            panic!("valid");
        };
        let Some(Object::PriorityClass(class)) = objects.pop() else {
            panic!("a class");
        };
        assert_eq!(class.value, 1000);
        assert!(!class.global_default);
        assert_eq!(class.preemption_policy, "PreemptLowerPriority");
        assert_eq!(class.description, "for the important ones");
    }

    #[test]
    fn bad_classes_are_refused_by_field() {
        let missing = errors(&format!("{CLASS}metadata: {{name: x}}\n"));
        assert!(
            missing.iter().any(|e| e.contains("value: required value")),
            "{missing:?}"
        );
        let bad = errors(&format!(
            "{CLASS}metadata: {{name: x}}\nvalue: 1000000001\nglobalDefault: yes-please\n\
             preemptionPolicy: Sometimes\nspec: {{}}\n"
        ));
        let expected = [
            "value: forbidden: maximum allowed value of a user defined priority is 1000000000",
            "globalDefault: expected boolean",
            "preemptionPolicy: unsupported value \"Sometimes\"",
            "spec: field not supported by berth",
        ];
        for wanted in expected {
            assert!(bad.iter().any(|e| e.contains(wanted)), "{wanted}: {bad:?}");
        }
        let too_big = errors(&format!(
            "{CLASS}metadata: {{name: x}}\nvalue: 4000000000\n"
        ));
        assert!(too_big
            .iter()
            .any(|e| e.contains("value: must be less than")));
    }

    #[test]
    fn system_names_are_reserved() {
        let mine = errors(&format!(
            "{CLASS}metadata: {{name: system-mine}}\nvalue: 5\n"
        ));
        assert!(
            mine.iter().any(|e| e.contains(
                "metadata.name: forbidden: priority class names with 'system-' prefix are \
                 reserved for system use only"
            )),
            "{mine:?}"
        );
        // The built-in classes as they are may be applied (a cluster dump re-applied).
        let builtin =
            format!("{CLASS}metadata: {{name: system-node-critical}}\nvalue: 2000001000\n");
        assert_eq!(errors(&builtin), Vec::<String>::new());
    }

    #[test]
    fn pods_may_name_a_priority() {
        let pod = |fields: &str| {
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers: \
                 [{{name: c, image: i}}]\n{fields}"
            )
        };
        let fine = "  priorityClassName: high\n  priority: 1000\n  preemptionPolicy: Never\n";
        let Ok(mut objects) = parse_manifests(&pod(fine)) else {
            panic!("valid");
        };
        let Some(Object::Pod(parsed)) = objects.pop() else {
            panic!("a pod");
        };
        assert_eq!(parsed.spec.priority_class_name.as_deref(), Some("high"));
        assert_eq!(parsed.spec.priority, Some(1000));
        assert_eq!(parsed.spec.preemption_policy.as_deref(), Some("Never"));
        let bad = "  priorityClassName: Not_A_Name\n  priority: high\n  preemptionPolicy: Maybe\n";
        let found = errors(&pod(bad));
        let expected = [
            "spec.priorityClassName: invalid name \"Not_A_Name\"",
            "spec.priority: expected integer",
            "spec.preemptionPolicy: unsupported value \"Maybe\"",
        ];
        for wanted in expected {
            assert!(
                found.iter().any(|e| e.contains(wanted)),
                "{wanted}: {found:?}"
            );
        }
    }
}
