//! The ControllerRevision kind (apps/v1): one revision of a DaemonSet's or a
//! StatefulSet's template, kept for `rollout history`, `rollout undo` and a StatefulSet's
//! partitioned updates. Made by those two controllers only.

use serde::{Deserialize, Serialize};

use crate::model::{ObjectMeta, PodTemplateSpec};

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ControllerRevision {
    pub metadata: ObjectMeta,
    /// What Kubernetes' DaemonSet controller keeps: a patch holding the template.
    pub data: RevisionData,
    pub revision: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RevisionData {
    pub spec: RevisionSpec,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RevisionSpec {
    pub template: PodTemplateSpec,
}
