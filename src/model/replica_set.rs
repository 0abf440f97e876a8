//! The ReplicaSet kind (apps/v1): keeps a number of pods of one template running. A
//! Deployment owns one per revision of its template and rolls out by scaling them.

use serde::{Deserialize, Serialize};

use crate::model::{LabelSelector, ObjectMeta, PodTemplateSpec};

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReplicaSet {
    pub metadata: ObjectMeta,
    pub spec: ReplicaSetSpec,
    #[serde(skip_serializing_if = "crate::model::is_default")]
    pub status: ReplicaSetStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReplicaSetSpec {
    pub replicas: i32,
    #[serde(skip_serializing_if = "crate::model::is_default")]
    pub min_ready_seconds: i32,
    pub selector: LabelSelector,
    pub template: PodTemplateSpec,
}

impl Default for ReplicaSetSpec {
    fn default() -> Self {
        ReplicaSetSpec {
            replicas: 1,
            min_ready_seconds: 0,
            selector: LabelSelector::default(),
            template: PodTemplateSpec::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReplicaSetStatus {
    pub replicas: i32,
    pub fully_labeled_replicas: i32,
    pub ready_replicas: i32,
    pub available_replicas: i32,
    pub observed_generation: i64,
}
