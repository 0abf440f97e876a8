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
    super::hex::encode(&digest[..HASH_BYTES])
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

    /// A pod using most of what berth supports, as `berth apply` stores it.
    const SAMPLE: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web, tier: front}
      annotations: {note: pinned}
    spec:
      restartPolicy: Always
      terminationGracePeriodSeconds: 10
      nodeSelector: {kubernetes.io/arch: arm64}
      imagePullSecrets: [{name: registry}]
      containers:
      - name: web
        image: registry.local/web:1.2
        imagePullPolicy: IfNotPresent
        command: [/bin/web]
        args: [--port, "8080"]
        env: [{name: MODE, value: prod}]
        workingDir: /srv
        ports: [{name: http, containerPort: 8080}]
        resources:
          requests: {cpu: 100m}
          limits: {cpu: 500m, memory: 64Mi}
        livenessProbe:
          httpGet: {port: http}
          periodSeconds: 5
        readinessProbe:
          tcpSocket: {port: 8080}
        lifecycle:
          preStop: {exec: {command: [sleep, "1"]}}
      - name: sidecar
        image: busybox
"#;

    /// Golden values. Running containers are named after `spec_hash`, and a Deployment's
    /// pods are labelled with `pod_template_hash`: if either changes for the same
    /// manifest, upgrading berth restarts every container on every board. A failure here
    /// means a change altered what is hashed (a new field serialized without
    /// `skip_serializing_if` for its default, a renamed field, another default, another
    /// digest). Make the change hash-neutral instead. Only if that is impossible, update
    /// these values and say in the release notes that the upgrade restarts all pods.
    #[test]
    fn hashes_of_a_sample_pod_never_change() {
        let objects = crate::model::parse_manifests(SAMPLE).expect("the sample is valid");
        let [crate::model::Object::Deployment(deploy)] = objects.as_slice() else {
            panic!("expected one Deployment, got {objects:?}");
        };
        assert_eq!(pod_template_hash(&deploy.spec.template), "a0aae9c101");
        assert_eq!(spec_hash(&deploy.spec.template.spec), "2d20fccf08");

        let minimal = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: busybox}]\n";
        let objects = crate::model::parse_manifests(minimal).expect("the pod is valid");
        let [crate::model::Object::Pod(pod)] = objects.as_slice() else {
            panic!("expected one Pod, got {objects:?}");
        };
        assert_eq!(spec_hash(&pod.spec), "4a737f6153");
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
