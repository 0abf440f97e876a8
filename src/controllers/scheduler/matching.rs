//! The yes/no questions the filters ask, with Kubernetes' semantics: does a toleration
//! tolerate a taint and does a node's label set satisfy a node selector term (both in
//! [`crate::model::node_affinity`]), does an image platform run on a node platform.

// The node questions are the model's, shared with the DaemonSet controller.
#[cfg(test)]
pub(super) use crate::model::tolerates;
pub(super) use crate::model::{affinity_matches, tolerated_by_any};
#[cfg(test)]
use crate::model::{NodeSelectorOperator, NodeSelectorTerm, Requirement, TolerationOperator};

/// An OCI platform split into its parts and normalised the way containerd does, so that
/// `linux/arm64` from an image index equals `linux/arm64/v8` reported by a board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct NormalPlatform<'a> {
    os: &'a str,
    architecture: &'a str,
    variant: &'a str,
}

impl NormalPlatform<'_> {
    /// The `os/arch[/variant]` text of the normalised platform, e.g. `linux/arm64/v8`.
    pub(super) fn to_canonical_string(self) -> String {
        if self.variant.is_empty() {
            format!("{}/{}", self.os, self.architecture)
        } else {
            format!("{}/{}/{}", self.os, self.architecture, self.variant)
        }
    }

    /// Whether an image built for this platform runs on a node of platform `node`: the
    /// same OS and architecture and, for 32-bit ARM, a variant no newer than the node's
    /// (an ARMv7 core runs v6 and v5 code, an ARMv6 core no v7 code, as containerd's
    /// platform matcher decides). Other architectures need the same variant.
    pub(super) fn runs_on(&self, node: &NormalPlatform<'_>) -> bool {
        if self.os != node.os || self.architecture != node.architecture {
            return false;
        }
        if self.variant == node.variant {
            return true;
        }
        self.architecture == "arm"
            && matches!(
                (arm_level(self.variant), arm_level(node.variant)),
                (Some(image), Some(node)) if image <= node
            )
    }
}

/// `v5` → 5 … `v8` → 8: the ARM architecture versions 32-bit images are built for.
fn arm_level(variant: &str) -> Option<u8> {
    match variant {
        "v5" => Some(5),
        "v6" => Some(6),
        "v7" => Some(7),
        "v8" => Some(8),
        _ => None,
    }
}

/// Normalises `os/arch[/variant]`: `aarch64` is `arm64` whose default variant is `v8`,
/// `arm` defaults to `v7`, `x86_64` is `amd64` (whose `v1` is the default), and a bare
/// digit variant gets its `v`. Case is not folded: OCI platform strings are lowercase.
pub(super) fn normalize_platform(platform: &str) -> NormalPlatform<'_> {
    let mut parts = platform.splitn(3, '/');
    let os = parts.next().unwrap_or("");
    let raw_architecture = parts.next().unwrap_or("");
    let raw_variant = parts.next().unwrap_or("");
    let (architecture, variant) = match raw_architecture {
        "aarch64" | "arm64" => (
            "arm64",
            match raw_variant {
                "" | "8" | "v8" | "v8.0" => "v8",
                other => other,
            },
        ),
        "armhf" => ("arm", "v7"),
        "armel" => ("arm", "v6"),
        "arm" => (
            "arm",
            match raw_variant {
                "" | "7" => "v7",
                "5" => "v5",
                "6" => "v6",
                "8" => "v8",
                other => other,
            },
        ),
        "x86_64" | "x86-64" | "amd64" => (
            "amd64",
            match raw_variant {
                "v1" => "",
                other => other,
            },
        ),
        "i386" | "386" => ("386", raw_variant),
        other => (other, raw_variant),
    };
    NormalPlatform {
        os,
        architecture,
        variant,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::scheduler::EFFECT_NO_EXECUTE;
    use crate::controllers::scheduler::EFFECT_NO_SCHEDULE;

    use crate::controllers::scheduler::tests::{taint, toleration};

    fn requirement(key: &str, operator: NodeSelectorOperator, values: &[&str]) -> Requirement {
        Requirement {
            key: key.to_string(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    use crate::model::test_labels as labels;

    #[test]
    fn numeric_tolerations_compare_the_taint_value() {
        use TolerationOperator::{Gt, Lt};
        let sla = |value| taint("sla", Some(value), EFFECT_NO_SCHEDULE);
        let above_900 = toleration(Some("sla"), Gt, Some("900"), None);
        assert!(tolerates(&above_900, &sla("950")));
        assert!(!tolerates(&above_900, &sla("900")));
        assert!(
            !tolerates(&above_900, &sla("high")),
            "not a number: no match"
        );
        let below_5 = toleration(Some("sla"), Lt, Some("5"), None);
        assert!(tolerates(&below_5, &sla("-3")));
        assert!(!tolerates(&below_5, &sla("7")));
    }

    #[test]
    fn toleration_semantics() {
        use TolerationOperator::{Equal, Exists};
        let gpu = taint("dedicated", Some("gpu"), EFFECT_NO_SCHEDULE);
        let bare = taint("dedicated", None, EFFECT_NO_EXECUTE);

        // Exists with an empty key and no effect tolerates everything.
        let everything = toleration(None, Exists, None, None);
        assert!(tolerates(&everything, &gpu));
        assert!(tolerates(&everything, &bare));
        let empty_key = toleration(Some(""), Exists, None, Some(""));
        assert!(tolerates(&empty_key, &gpu));

        // Exists ignores the value but not the key.
        assert!(tolerates(
            &toleration(Some("dedicated"), Exists, None, None),
            &gpu
        ));
        assert!(!tolerates(
            &toleration(Some("other"), Exists, None, None),
            &gpu
        ));

        // Equal needs the value to match; a missing value equals "".
        assert!(tolerates(
            &toleration(Some("dedicated"), Equal, Some("gpu"), None),
            &gpu
        ));
        assert!(!tolerates(
            &toleration(Some("dedicated"), Equal, Some("cpu"), None),
            &gpu
        ));
        assert!(!tolerates(
            &toleration(Some("dedicated"), Equal, None, None),
            &gpu
        ));
        assert!(tolerates(
            &toleration(Some("dedicated"), Equal, None, None),
            &bare
        ));
        assert!(tolerates(
            &toleration(Some("dedicated"), Equal, Some(""), None),
            &bare
        ));

        // An empty effect matches every effect; a set one only its own.
        let no_schedule_only =
            toleration(Some("dedicated"), Exists, None, Some(EFFECT_NO_SCHEDULE));
        assert!(tolerates(&no_schedule_only, &gpu));
        assert!(!tolerates(&no_schedule_only, &bare));
    }

    #[test]
    fn affinity_operators() {
        use NodeSelectorOperator::{DoesNotExist, Exists, In, NotIn};
        let node_labels = labels(&[("kubernetes.io/arch", "arm64"), ("disk", "ssd")]);
        let term = |reqs: Vec<Requirement>| NodeSelectorTerm {
            match_expressions: reqs,
        };
        let matches = |terms: Vec<NodeSelectorTerm>| affinity_matches(&terms, &node_labels);

        assert!(matches(vec![term(vec![requirement(
            "disk",
            In,
            &["hdd", "ssd"]
        )])]));
        assert!(!matches(vec![term(vec![requirement(
            "disk",
            In,
            &["hdd"]
        )])]));
        assert!(!matches(vec![term(vec![requirement("gpu", In, &["yes"])])]));
        assert!(matches(vec![term(vec![requirement(
            "disk",
            NotIn,
            &["hdd"]
        )])]));
        assert!(!matches(vec![term(vec![requirement(
            "disk",
            NotIn,
            &["ssd"]
        )])]));
        // NotIn and DoesNotExist match a node without the label.
        assert!(matches(vec![term(vec![requirement(
            "gpu",
            NotIn,
            &["yes"]
        )])]));
        assert!(matches(vec![term(vec![requirement(
            "gpu",
            DoesNotExist,
            &[]
        )])]));
        assert!(!matches(vec![term(vec![requirement(
            "disk",
            DoesNotExist,
            &[]
        )])]));
        assert!(matches(vec![term(vec![requirement("disk", Exists, &[])])]));
        assert!(!matches(vec![term(vec![requirement("gpu", Exists, &[])])]));

        // AND within a term, OR across terms.
        let arm = requirement("kubernetes.io/arch", In, &["arm64"]);
        let gpu = requirement("gpu", Exists, &[]);
        assert!(!matches(vec![term(vec![arm.clone(), gpu.clone()])]));
        assert!(matches(vec![term(vec![gpu]), term(vec![arm])]));

        // No terms asks for nothing; an empty term matches nothing.
        assert!(matches(Vec::new()));
        assert!(!matches(vec![term(Vec::new())]));
    }

    #[test]
    fn canonical_platform_text() {
        let canonical = |p: &str| normalize_platform(p).to_canonical_string();
        assert_eq!(canonical("linux/aarch64"), "linux/arm64/v8");
        assert_eq!(canonical("linux/arm"), "linux/arm/v7");
        assert_eq!(canonical("linux/amd64/v1"), "linux/amd64");
    }

    #[test]
    fn platforms_normalise_like_containerd() {
        assert_eq!(
            normalize_platform("linux/arm64"),
            normalize_platform("linux/arm64/v8")
        );
        assert_eq!(
            normalize_platform("linux/aarch64"),
            normalize_platform("linux/arm64/v8")
        );
        assert_eq!(
            normalize_platform("linux/arm"),
            normalize_platform("linux/arm/v7")
        );
        assert_eq!(
            normalize_platform("linux/armhf"),
            normalize_platform("linux/arm/7")
        );
        assert_eq!(
            normalize_platform("linux/x86_64"),
            normalize_platform("linux/amd64")
        );
        assert_ne!(
            normalize_platform("linux/arm/v6"),
            normalize_platform("linux/arm/v7")
        );
        assert_ne!(
            normalize_platform("linux/arm64"),
            normalize_platform("linux/amd64")
        );
        assert_ne!(
            normalize_platform("windows/amd64"),
            normalize_platform("linux/amd64")
        );
    }

    #[test]
    fn older_arm_variants_run_on_newer_boards_only() {
        let runs =
            |image: &str, node: &str| normalize_platform(image).runs_on(&normalize_platform(node));
        assert!(runs("linux/arm/v6", "linux/arm/v7"));
        assert!(runs("linux/arm/v5", "linux/arm/v6"));
        assert!(runs("linux/arm/v7", "linux/arm/v7"));
        assert!(runs("linux/arm", "linux/arm/v7"));
        assert!(runs("linux/armel", "linux/arm/v7"));
        assert!(!runs("linux/arm/v7", "linux/arm/v6"));
        assert!(!runs("linux/arm", "linux/arm/v6"));
        assert!(!runs("linux/arm/v8", "linux/arm/v7"));
        // 32-bit images are not given to 64-bit boards, nor the reverse.
        assert!(!runs("linux/arm/v7", "linux/arm64/v8"));
        assert!(!runs("linux/arm/v6", "linux/arm64"));
        assert!(!runs("linux/arm64", "linux/arm/v7"));
        assert!(runs("linux/arm64", "linux/arm64/v8"));
        assert!(!runs("linux/arm/v6", "windows/arm/v7"));
        // Unknown variants only match themselves.
        assert!(!runs("linux/arm/v6l", "linux/arm/v7"));
        assert!(runs("linux/riscv64/rva23", "linux/riscv64/rva23"));
    }
}
