//! Stable short hashes of specs. The agent puts `spec_hash` into container instance
//! names, so after a restart it can tell from names alone whether a running container
//! matches the wanted spec (adopt), is outdated (replace) or is unwanted (delete).

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::model::{PodSpec, PodTemplateSpec};

/// Hex characters kept from the digest: 40 bits is plenty to tell a handful of spec
/// versions apart and keeps names short.
const HASH_BYTES: usize = 5;

/// 10 lowercase hex characters identifying the spec. Struct fields serialize in
/// declaration order and maps are `BTreeMap`s, so the same spec always hashes the same.
pub fn spec_hash(spec: &PodSpec) -> String {
    hash_of(spec)
}

/// The `pod-template-hash` label value of a deployment template: 10 lowercase hex
/// characters, which is always a valid label value.
pub fn pod_template_hash(t: &PodTemplateSpec) -> String {
    #[derive(Serialize)]
    struct HashedTemplate<'a> {
        labels: &'a BTreeMap<String, String>,
        annotations: &'a BTreeMap<String, String>,
        spec: &'a PodSpec,
    }
    hash_of(&HashedTemplate {
        labels: &t.metadata.labels,
        annotations: &t.metadata.annotations,
        spec: &t.spec,
    })
}

fn hash_of<T: Serialize>(item: &T) -> String {
    // Serializing our own plain data types cannot fail.
    let bytes = serde_json::to_vec(item).expect("model types always serialize to JSON");
    let digest = Sha256::digest(&bytes);
    digest[..HASH_BYTES]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{validate_label_value, Container};

    fn spec(image: &str) -> PodSpec {
        PodSpec {
            containers: vec![Container {
                name: "web".into(),
                image: image.into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn spec_hash_is_stable_and_sensitive() {
        let a = spec_hash(&spec("nginx:1.25"));
        assert_eq!(a.len(), 10);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(a, spec_hash(&spec("nginx:1.25")));
        assert_ne!(a, spec_hash(&spec("nginx:1.26")));

        let mut with_selector = spec("nginx:1.25");
        with_selector.node_selector.insert("b".into(), "2".into());
        with_selector.node_selector.insert("a".into(), "1".into());
        let mut reordered = spec("nginx:1.25");
        reordered.node_selector.insert("a".into(), "1".into());
        reordered.node_selector.insert("b".into(), "2".into());
        assert_eq!(spec_hash(&with_selector), spec_hash(&reordered));
    }

    #[test]
    fn template_hash_is_a_label_value_and_sees_labels() {
        let mut template = PodTemplateSpec {
            spec: spec("nginx:1.25"),
            ..Default::default()
        };
        let before = pod_template_hash(&template);
        assert!(validate_label_value(&before).is_ok());
        template.metadata.labels.insert("app".into(), "web".into());
        assert_ne!(before, pod_template_hash(&template));
    }
}
