//! Baseline's AppArmor control: no pod or container may ask for `Unconfined`.
//!
//! berth applies no AppArmor profile at all (apply warns about the field), but the
//! control still decides what a namespace accepts, so a manifest refused by a Kubernetes
//! namespace of the same level is refused here too. The old AppArmor annotations are not
//! checked: [`super::check_pod_spec`] sees the pod spec only.

use std::collections::BTreeSet;

use super::{containers_phrase, forbidden, quoted, violation, PodView, Violation};

const REASON_ONE: &str = "forbidden AppArmor profile";
const REASON_MANY: &str = "forbidden AppArmor profiles";

/// `RuntimeDefault` and `Localhost` are allowed; so is no profile.
fn allowed(type_: &str) -> bool {
    type_ == "RuntimeDefault" || type_ == "Localhost"
}

pub(super) fn app_armor_profile(pod: &PodView) -> Option<Violation> {
    let mut setters = Vec::new();
    let mut values = BTreeSet::new();
    let mut fields = Vec::new();
    let pod_type = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|c| c.app_armor_profile.as_ref())
        .map(|p| p.type_.as_str());
    if let Some(type_) = pod_type.filter(|t| !allowed(t)) {
        setters.push("pod".to_owned());
        values.insert(type_);
        fields.push(pod.field("securityContext.appArmorProfile.type"));
    }
    let mut names = Vec::new();
    for (i, container) in pod.containers() {
        let own = container
            .security_context
            .as_ref()
            .and_then(|c| c.app_armor_profile.as_ref())
            .map(|p| p.type_.as_str());
        if let Some(type_) = own.filter(|t| !allowed(t)) {
            names.push(container.name.as_str());
            values.insert(type_);
            fields.push(pod.context_field(i, "appArmorProfile.type"));
        }
    }
    if !names.is_empty() {
        setters.push(containers_phrase(&names));
    }
    let reason = if values.len() == 1 {
        REASON_ONE
    } else {
        REASON_MANY
    };
    let values: Vec<&str> = values.into_iter().collect();
    let detail = format!(
        "{} must not set AppArmor profile type to {}",
        setters.join(" and "),
        quoted(&values)
    );
    let fields = fields
        .into_iter()
        .map(|path| forbidden(path, reason))
        .collect();
    violation(reason, vec![detail], fields)
}

#[cfg(test)]
mod tests {
    use super::super::{check_pod_spec, PodSecurityLevel};
    use crate::model::PodSpec;

    fn found(level: PodSecurityLevel, yaml: &str) -> Vec<String> {
        let spec: PodSpec = serde_yaml_ng::from_str(yaml).expect("test YAML parses");
        check_pod_spec(level, &spec, "spec")
            .into_iter()
            .flat_map(|v| {
                let head = format!("{} ({})", v.reason, v.detail);
                std::iter::once(head).chain(
                    v.fields
                        .into_iter()
                        .map(|f| format!("{}: {}", f.path, f.message)),
                )
            })
            .collect()
    }

    #[test]
    fn unconfined_is_forbidden_from_baseline_on() {
        let yaml = "securityContext: {appArmorProfile: {type: Unconfined}}
initContainers:
- {name: i, image: busybox, securityContext: {appArmorProfile: {type: Unconfined}}}
containers:
- {name: a, image: busybox, securityContext: {appArmorProfile: {type: RuntimeDefault}}}
- {name: b, image: busybox, securityContext: {appArmorProfile: {type: Unconfined}}}
";
        let expected = [
            "forbidden AppArmor profile (pod and containers \"i\", \"b\" must not set AppArmor \
             profile type to \"Unconfined\")",
            "spec.securityContext.appArmorProfile.type: forbidden: forbidden AppArmor profile",
            "spec.initContainers[0].securityContext.appArmorProfile.type: forbidden: forbidden \
             AppArmor profile",
            "spec.containers[1].securityContext.appArmorProfile.type: forbidden: forbidden \
             AppArmor profile",
        ];
        assert_eq!(found(PodSecurityLevel::Baseline, yaml), expected);
        let restricted = found(PodSecurityLevel::Restricted, yaml);
        assert!(
            restricted.iter().any(|f| f == expected[0]),
            "{restricted:?}"
        );
        assert!(found(PodSecurityLevel::Privileged, yaml).is_empty());
    }

    #[test]
    fn runtime_default_and_localhost_are_allowed() {
        let yaml = "securityContext: {appArmorProfile: {type: Localhost, localhostProfile: p}}
containers:
- {name: a, image: busybox, securityContext: {appArmorProfile: {type: RuntimeDefault}}}
- {name: b, image: busybox}
";
        assert!(found(PodSecurityLevel::Baseline, yaml).is_empty());
    }

    #[test]
    fn one_container_reads_in_the_singular() {
        let yaml = "containers:
- {name: c, image: busybox, securityContext: {appArmorProfile: {type: Unconfined}}}
";
        assert_eq!(
            found(PodSecurityLevel::Baseline, yaml)[0],
            "forbidden AppArmor profile (container \"c\" must not set AppArmor profile type to \
             \"Unconfined\")"
        );
    }
}
