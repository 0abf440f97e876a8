//! The DaemonSet kind (apps/v1): one pod of a template on every node that matches it.

use serde::{Deserialize, Serialize};

use crate::model::{IntOrString, LabelSelector, ObjectMeta, PodTemplateSpec};

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DaemonSet {
    pub metadata: ObjectMeta,
    pub spec: DaemonSetSpec,
    #[serde(skip_serializing_if = "crate::model::is_default")]
    pub status: DaemonSetStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DaemonSetSpec {
    pub selector: LabelSelector,
    pub template: PodTemplateSpec,
    pub update_strategy: DaemonSetUpdateStrategy,
    #[serde(skip_serializing_if = "crate::model::is_default")]
    pub min_ready_seconds: i32,
    /// Old revisions kept for `rollout undo`; 10 when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
}

impl DaemonSetSpec {
    /// Kubernetes' defaults: `RollingUpdate` with `maxUnavailable: 1`, `maxSurge: 0`.
    pub fn apply_defaults(&mut self) {
        self.template.spec.apply_defaults();
        self.revision_history_limit
            .get_or_insert(crate::model::DEFAULT_REVISION_HISTORY_LIMIT);
        let strategy = &mut self.update_strategy;
        if strategy.type_ == "RollingUpdate" {
            let rolling = strategy
                .rolling_update
                .get_or_insert_with(DaemonSetRollingUpdate::default);
            rolling.max_unavailable.get_or_insert(IntOrString::Int(1));
            rolling.max_surge.get_or_insert(IntOrString::Int(0));
        } else {
            strategy.rolling_update = None;
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DaemonSetUpdateStrategy {
    /// `RollingUpdate` or `OnDelete`.
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<DaemonSetRollingUpdate>,
}

impl Default for DaemonSetUpdateStrategy {
    fn default() -> Self {
        DaemonSetUpdateStrategy {
            type_: "RollingUpdate".into(),
            rolling_update: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DaemonSetRollingUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DaemonSetStatus {
    pub current_number_scheduled: i32,
    pub number_misscheduled: i32,
    pub desired_number_scheduled: i32,
    pub number_ready: i32,
    pub observed_generation: i64,
    pub updated_number_scheduled: i32,
    pub number_available: i32,
    pub number_unavailable: i32,
}
