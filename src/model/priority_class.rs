//! The PriorityClass kind (scheduling.k8s.io/v1) and the pod priority admission that
//! reads it, as pure functions.
//!
//! A class maps a name to an integer priority; a pod names one in
//! `spec.priorityClassName` and is given its value in `spec.priority` (and its
//! `spec.preemptionPolicy`) when it is created, as Kubernetes' Priority admission plugin
//! does. A pod naming no class gets the one marked `globalDefault`, or priority 0. The
//! scheduler then places higher priorities first and may preempt lower ones for them
//! (`controllers::scheduler::preemption`).
//!
//! Two classes exist in every cluster without being applied: `system-cluster-critical`
//! and `system-node-critical`. Both daemons store them at start-up, as Kubernetes' API
//! server creates them, and names starting with `system-` are kept for them.

use serde::{Deserialize, Serialize};

use crate::model::{ObjectMeta, PodSpec};

/// The highest value a class applied by a user may have; above it are the system
/// classes, so nothing a user makes outranks the pods that keep a node running.
pub const HIGHEST_USER_PRIORITY: i32 = 1_000_000_000;
/// The prefix of the built-in classes' names, refused for any other class.
pub const SYSTEM_PREFIX: &str = "system-";
/// The built-in classes, with their values.
pub const SYSTEM_CLUSTER_CRITICAL: (&str, i32) = ("system-cluster-critical", 2_000_000_000);
pub const SYSTEM_NODE_CRITICAL: (&str, i32) = ("system-node-critical", 2_000_001_000);
/// `preemptionPolicy` values; the first is the default.
pub const PREEMPT_LOWER_PRIORITY: &str = "PreemptLowerPriority";
pub const PREEMPT_NEVER: &str = "Never";
pub const PREEMPTION_POLICIES: [&str; 2] = [PREEMPT_LOWER_PRIORITY, PREEMPT_NEVER];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PriorityClass {
    pub metadata: ObjectMeta,
    pub value: i32,
    /// Given to pods that name no class; at most one class has it.
    #[serde(skip_serializing_if = "crate::model::is_default")]
    pub global_default: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Whether pods of the class may preempt lower-priority pods.
    pub preemption_policy: String,
}

impl Default for PriorityClass {
    fn default() -> Self {
        PriorityClass {
            metadata: ObjectMeta::default(),
            value: 0,
            global_default: false,
            description: String::new(),
            preemption_policy: PREEMPT_LOWER_PRIORITY.to_owned(),
        }
    }
}

/// The built-in classes, as the daemons store them at start-up.
pub fn system_priority_classes() -> Vec<PriorityClass> {
    let class = |(name, value): (&str, i32), description: &str| PriorityClass {
        metadata: ObjectMeta {
            name: name.to_owned(),
            ..ObjectMeta::default()
        },
        value,
        description: description.to_owned(),
        ..PriorityClass::default()
    };
    vec![
        class(
            SYSTEM_CLUSTER_CRITICAL,
            "For the pods a cluster cannot work without; they may move to another node.",
        ),
        class(
            SYSTEM_NODE_CRITICAL,
            "For the pods a node cannot work without; they stay on their node.",
        ),
    ]
}

/// Whether `name` with `value` is one of the built-in classes, which alone may carry
/// the `system-` prefix.
pub fn is_system_class(name: &str, value: i64) -> bool {
    [SYSTEM_CLUSTER_CRITICAL, SYSTEM_NODE_CRITICAL]
        .iter()
        .any(|(known, known_value)| *known == name && i64::from(*known_value) == value)
}

/// Whether `name` names a built-in class (which cannot be deleted).
pub fn is_system_class_name(name: &str) -> bool {
    [SYSTEM_CLUSTER_CRITICAL, SYSTEM_NODE_CRITICAL]
        .iter()
        .any(|(known, _)| *known == name)
}

/// Why `class` may not be made the global default next to the classes `existing`, if
/// it may not: another one is the default already. The reason reads as Kubernetes'.
pub fn second_default<'a>(
    class: &PriorityClass,
    existing: impl IntoIterator<Item = &'a PriorityClass>,
) -> Option<String> {
    if !class.global_default {
        return None;
    }
    let other = existing
        .into_iter()
        .find(|c| c.global_default && c.metadata.name != class.metadata.name)?;
    Some(format!(
        "PriorityClass {} is already marked as default. Only one default can exist",
        other.metadata.name
    ))
}

/// The class pods naming none get: the global default, the lowest if there are several
/// (two made at once on different coordinators), as Kubernetes picks.
pub fn global_default(classes: &[PriorityClass]) -> Option<&PriorityClass> {
    classes
        .iter()
        .filter(|c| c.global_default)
        .min_by_key(|c| (c.value, c.metadata.name.as_str()))
}

/// The class called `name`: a stored one, or a built-in one (stored at start-up, but a
/// pod must not be refused for a store that was made before they existed).
fn find_class(classes: &[PriorityClass], name: &str) -> Option<PriorityClass> {
    classes
        .iter()
        .find(|c| c.metadata.name == name)
        .cloned()
        .or_else(|| {
            system_priority_classes()
                .into_iter()
                .find(|c| c.metadata.name == name)
        })
}

/// The Priority admission of a pod `spec` among the `classes` that exist: the pod gets
/// its class's value and preemption policy (the global default's, or 0 and
/// `PreemptLowerPriority`, when it names none). A pod that replaces a stored one
/// (`previous`) with the same class keeps what that one was given, as Kubernetes keeps
/// a pod's priority across updates. `Err` is the reason, for
/// [`crate::model::admission::forbidden`].
pub fn admit_priority(
    spec: &mut PodSpec,
    classes: &[PriorityClass],
    previous: Option<&PodSpec>,
) -> Result<(), String> {
    let named = spec.priority_class_name.clone().filter(|n| !n.is_empty());
    // A pod naming no class again keeps the default it was given then.
    let same_class = |before: &&PodSpec| named.is_none() || before.priority_class_name == named;
    if let Some(before) = previous.filter(same_class) {
        if let (Some(given), Some(kept)) = (spec.priority, before.priority) {
            if given != kept {
                return Err(priority_mismatch(given, kept));
            }
        }
        spec.priority_class_name = before.priority_class_name.clone();
        spec.priority = spec.priority.or(before.priority);
        if spec.preemption_policy.is_none() {
            spec.preemption_policy = before.preemption_policy.clone();
        }
        return Ok(());
    }
    let (name, value, policy) = match &named {
        Some(name) => {
            let class = find_class(classes, name)
                .ok_or_else(|| format!("no PriorityClass with name {name} was found"))?;
            (Some(name.clone()), class.value, class.preemption_policy)
        }
        None => match global_default(classes) {
            Some(class) => (
                Some(class.metadata.name.clone()),
                class.value,
                class.preemption_policy.clone(),
            ),
            None => (None, 0, PREEMPT_LOWER_PRIORITY.to_owned()),
        },
    };
    if let Some(given) = spec.priority.filter(|given| *given != value) {
        return Err(priority_mismatch(given, value));
    }
    if let Some(given) = spec.preemption_policy.as_ref().filter(|p| **p != policy) {
        return Err(format!(
            "the string value of PreemptionPolicy ({given}) must not be provided in pod \
             spec; priority admission controller computed {policy} from the given \
             PriorityClass name"
        ));
    }
    spec.priority_class_name = name;
    spec.priority = Some(value);
    spec.preemption_policy = Some(policy);
    Ok(())
}

fn priority_mismatch(given: i32, computed: i32) -> String {
    format!(
        "the integer value of priority ({given}) must not be provided in pod spec; priority \
         admission controller computed {computed} from the given PriorityClass name"
    )
}

/// A pod's priority as the scheduler orders and preempts by: 0 when it has none (a pod
/// stored before priorities were admitted).
pub fn pod_priority(spec: &PodSpec) -> i32 {
    spec.priority.unwrap_or(0)
}

/// Whether a pod may preempt others: any policy but `Never`.
pub fn may_preempt(spec: &PodSpec) -> bool {
    spec.preemption_policy.as_deref() != Some(PREEMPT_NEVER)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, value: i32, default: bool, policy: &str) -> PriorityClass {
        PriorityClass {
            metadata: ObjectMeta {
                name: name.to_owned(),
                ..ObjectMeta::default()
            },
            value,
            global_default: default,
            preemption_policy: policy.to_owned(),
            ..PriorityClass::default()
        }
    }

    fn spec_naming(class: Option<&str>) -> PodSpec {
        PodSpec {
            priority_class_name: class.map(str::to_owned),
            ..PodSpec::default()
        }
    }

    #[test]
    fn a_pod_gets_its_class_value_and_policy() {
        let classes = [class("high", 1000, false, PREEMPT_NEVER)];
        let mut spec = spec_naming(Some("high"));
        admit_priority(&mut spec, &classes, None).unwrap();
        assert_eq!(spec.priority, Some(1000));
        assert_eq!(spec.preemption_policy.as_deref(), Some(PREEMPT_NEVER));
        assert!(!may_preempt(&spec));
        // The built-in classes need not be stored.
        let mut critical = spec_naming(Some("system-node-critical"));
        admit_priority(&mut critical, &[], None).unwrap();
        assert_eq!(critical.priority, Some(2_000_001_000));
    }

    #[test]
    fn a_pod_without_a_class_gets_the_global_default_or_zero() {
        let mut spec = spec_naming(None);
        admit_priority(&mut spec, &[class("low", 5, false, PREEMPT_NEVER)], None).unwrap();
        assert_eq!(
            (spec.priority, spec.priority_class_name.as_deref()),
            (Some(0), None)
        );
        assert_eq!(
            spec.preemption_policy.as_deref(),
            Some(PREEMPT_LOWER_PRIORITY)
        );
        let classes = [
            class("a", 100, true, PREEMPT_LOWER_PRIORITY),
            class("b", 50, true, PREEMPT_NEVER),
        ];
        let mut spec = spec_naming(None);
        admit_priority(&mut spec, &classes, None).unwrap();
        assert_eq!(spec.priority, Some(50), "the lowest of two defaults");
        assert_eq!(spec.priority_class_name.as_deref(), Some("b"));
    }

    #[test]
    fn unknown_classes_and_disagreeing_values_are_refused() {
        let classes = [class("high", 1000, false, PREEMPT_LOWER_PRIORITY)];
        let mut spec = spec_naming(Some("foo"));
        assert_eq!(
            admit_priority(&mut spec, &classes, None).unwrap_err(),
            "no PriorityClass with name foo was found"
        );
        let mut spec = spec_naming(Some("high"));
        spec.priority = Some(5);
        assert_eq!(
            admit_priority(&mut spec, &classes, None).unwrap_err(),
            "the integer value of priority (5) must not be provided in pod spec; priority \
             admission controller computed 1000 from the given PriorityClass name"
        );
        let mut spec = spec_naming(Some("high"));
        spec.priority = Some(1000);
        spec.preemption_policy = Some(PREEMPT_NEVER.to_owned());
        let refused = admit_priority(&mut spec, &classes, None).unwrap_err();
        assert!(refused.starts_with("the string value of PreemptionPolicy (Never)"));
        // What the admission gave is accepted when given again.
        let mut spec = spec_naming(Some("high"));
        spec.priority = Some(1000);
        admit_priority(&mut spec, &classes, None).unwrap();
    }

    #[test]
    fn a_replaced_pod_keeps_its_priority() {
        let mut before = spec_naming(Some("high"));
        before.priority = Some(1000);
        // The class has changed value since: the pod keeps what it was given.
        let classes = [class("high", 2000, false, PREEMPT_LOWER_PRIORITY)];
        let mut again = spec_naming(Some("high"));
        admit_priority(&mut again, &classes, Some(&before)).unwrap();
        assert_eq!(again.priority, Some(1000));
        // One stored before priorities were admitted stays without one.
        let mut spec = spec_naming(None);
        admit_priority(&mut spec, &classes, Some(&spec_naming(None))).unwrap();
        assert_eq!(spec.priority, None);
        // Another class is admitted anew.
        let mut moved = spec_naming(Some("high"));
        admit_priority(&mut moved, &classes, Some(&spec_naming(None))).unwrap();
        assert_eq!(moved.priority, Some(2000));
    }

    #[test]
    fn only_one_class_is_the_default() {
        let existing = [
            class("a", 1, true, PREEMPT_LOWER_PRIORITY),
            class("c", 1, false, PREEMPT_LOWER_PRIORITY),
        ];
        let second = class("b", 2, true, PREEMPT_LOWER_PRIORITY);
        assert_eq!(
            second_default(&second, &existing).as_deref(),
            Some("PriorityClass a is already marked as default. Only one default can exist")
        );
        // The default itself may be applied again, and a class that is not one freely.
        assert_eq!(second_default(&existing[0], &existing), None);
        let plain = class("b", 2, false, PREEMPT_LOWER_PRIORITY);
        assert_eq!(second_default(&plain, &existing), None);
    }

    #[test]
    fn system_classes_are_known_by_name_and_value() {
        assert!(is_system_class("system-node-critical", 2_000_001_000));
        assert!(!is_system_class("system-node-critical", 5));
        assert!(!is_system_class("system-mine", 5));
        assert!(is_system_class_name("system-cluster-critical"));
        let values: Vec<i32> = system_priority_classes().iter().map(|c| c.value).collect();
        assert_eq!(values, [2_000_000_000, 2_000_001_000]);
    }
}
