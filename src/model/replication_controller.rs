//! The ReplicationController kind (v1): the ReplicaSet's ancestor, still served by
//! Kubernetes. It keeps a number of pods of one template running, selected by a plain
//! label map (equality only) rather than a `LabelSelector`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{ObjectMeta, PodTemplateSpec, ReplicaSetStatus};

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReplicationController {
    pub metadata: ObjectMeta,
    pub spec: ReplicationControllerSpec,
    /// The same counts as a ReplicaSet's, counted from the pods when shown.
    #[serde(skip_serializing_if = "crate::model::is_default")]
    pub status: ReplicaSetStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReplicationControllerSpec {
    pub replicas: i32,
    #[serde(skip_serializing_if = "crate::model::is_default")]
    pub min_ready_seconds: i32,
    pub selector: BTreeMap<String, String>,
    pub template: PodTemplateSpec,
}

impl Default for ReplicationControllerSpec {
    fn default() -> Self {
        ReplicationControllerSpec {
            replicas: 1,
            min_ready_seconds: 0,
            selector: BTreeMap::new(),
            template: PodTemplateSpec::default(),
        }
    }
}

impl ReplicationController {
    /// Kubernetes' defaults: an empty selector becomes the template's labels, and so do
    /// the controller's own labels when it has none, so that a manifest may name its
    /// labels once, in the template.
    pub fn apply_defaults(&mut self) {
        let template_labels = &self.spec.template.metadata.labels;
        if self.spec.selector.is_empty() {
            self.spec.selector = template_labels.clone();
        }
        if self.metadata.labels.is_empty() {
            self.metadata.labels = template_labels.clone();
        }
        self.spec.template.spec.apply_defaults();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::test_labels as labels;

    #[test]
    fn the_selector_and_labels_default_to_the_templates() {
        let mut rc = ReplicationController::default();
        rc.spec.template.metadata.labels = labels(&[("app", "web"), ("tier", "front")]);
        rc.apply_defaults();
        assert_eq!(rc.spec.replicas, 1);
        assert_eq!(rc.spec.selector, rc.spec.template.metadata.labels);
        assert_eq!(rc.metadata.labels, rc.spec.template.metadata.labels);
    }

    #[test]
    fn a_given_selector_and_labels_are_kept() {
        let mut rc = ReplicationController::default();
        rc.spec.template.metadata.labels = labels(&[("app", "web"), ("tier", "front")]);
        rc.spec.selector = labels(&[("app", "web")]);
        rc.metadata.labels = labels(&[("team", "a")]);
        rc.apply_defaults();
        assert_eq!(rc.spec.selector, labels(&[("app", "web")]));
        assert_eq!(rc.metadata.labels, labels(&[("team", "a")]));
    }
}
