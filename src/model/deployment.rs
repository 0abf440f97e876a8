//! The Deployment kind (apps/v1): replicas of a pod template, rolled out by strategy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{ObjectMeta, PodSpec};

/// The Kubernetes default for both `maxSurge` and `maxUnavailable`.
const DEFAULT_ROLLING_PERCENT: &str = "25%";

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Deployment {
    pub metadata: ObjectMeta,
    pub spec: DeploymentSpec,
    #[serde(skip_serializing_if = "crate::model::is_default")]
    pub status: DeploymentStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeploymentSpec {
    pub replicas: i32,
    pub selector: LabelSelector,
    pub template: PodTemplateSpec,
    pub strategy: DeploymentStrategy,
    /// Seconds a new pod must be ready, without any container crashing, before it
    /// counts as available.
    #[serde(skip_serializing_if = "crate::model::is_default")]
    pub min_ready_seconds: i32,
    /// Old ReplicaSets kept (at 0 replicas) for `rollout undo`; 10 when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
    /// Seconds a rollout may go without progress before it is reported as failed
    /// (`Progressing=False`, `ProgressDeadlineExceeded`); 600 when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i32>,
    /// A paused Deployment starts no rollout: template changes wait for `resume`.
    #[serde(skip_serializing_if = "crate::model::is_default")]
    pub paused: bool,
}

/// Kubernetes' default `revisionHistoryLimit`.
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;
/// Kubernetes' default `progressDeadlineSeconds`.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;

impl Default for DeploymentSpec {
    fn default() -> Self {
        DeploymentSpec {
            replicas: 1,
            selector: LabelSelector::default(),
            template: PodTemplateSpec::default(),
            strategy: DeploymentStrategy::default(),
            min_ready_seconds: 0,
            revision_history_limit: None,
            progress_deadline_seconds: None,
            paused: false,
        }
    }
}

impl DeploymentSpec {
    /// Defaults that depend on other fields: the rolling-update parameters exist only for
    /// the `RollingUpdate` strategy, and each missing one becomes 25% as in Kubernetes.
    pub fn apply_defaults(&mut self) {
        self.template.spec.apply_defaults();
        self.revision_history_limit
            .get_or_insert(DEFAULT_REVISION_HISTORY_LIMIT);
        self.progress_deadline_seconds
            .get_or_insert(DEFAULT_PROGRESS_DEADLINE_SECONDS);
        let strategy = &mut self.strategy;
        if strategy.type_ == "RollingUpdate" {
            let rolling = strategy
                .rolling_update
                .get_or_insert_with(RollingUpdate::default);
            rolling
                .max_surge
                .get_or_insert_with(|| IntOrString::String(DEFAULT_ROLLING_PERCENT.into()));
            rolling
                .max_unavailable
                .get_or_insert_with(|| IntOrString::String(DEFAULT_ROLLING_PERCENT.into()));
        } else {
            strategy.rolling_update = None;
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
}

/// The pod a deployment stamps out. Its metadata carries only labels and annotations.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodTemplateSpec {
    pub metadata: ObjectMeta,
    pub spec: PodSpec,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeploymentStrategy {
    /// `RollingUpdate` or `Recreate`.
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdate>,
}

impl Default for DeploymentStrategy {
    fn default() -> Self {
        DeploymentStrategy {
            type_: "RollingUpdate".into(),
            rolling_update: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RollingUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

/// A count or a percentage string such as `"25%"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i32),
    String(String),
}

impl IntOrString {
    /// Resolves the value against `total` replicas. Percentages round up for `maxSurge`
    /// and down for `maxUnavailable` in Kubernetes, hence `round_up`.
    pub fn scaled_value(&self, total: i32, round_up: bool) -> Result<i32, String> {
        match self {
            IntOrString::Int(n) => Ok(*n),
            IntOrString::String(s) => {
                let percent: i64 = s
                    .strip_suffix('%')
                    .and_then(|digits| digits.parse().ok())
                    .ok_or_else(|| {
                        format!("invalid value {s:?}: must be an integer or a percentage")
                    })?;
                let out_of_range = || format!("value {s:?} is out of range");
                let product = percent
                    .checked_mul(i64::from(total))
                    .ok_or_else(out_of_range)?;
                let value = if round_up {
                    product.saturating_add(99).div_euclid(100)
                } else {
                    product.div_euclid(100)
                };
                i32::try_from(value).map_err(|_| out_of_range())
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeploymentStatus {
    pub observed_generation: i64,
    pub replicas: i32,
    pub updated_replicas: i32,
    pub ready_replicas: i32,
    pub available_replicas: i32,
    pub unavailable_replicas: i32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<DeploymentCondition>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeploymentCondition {
    /// `Available` or `Progressing`.
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_scale_with_rounding() {
        let quarter = IntOrString::String("25%".into());
        assert_eq!(quarter.scaled_value(3, true), Ok(1));
        assert_eq!(quarter.scaled_value(3, false), Ok(0));
        assert_eq!(quarter.scaled_value(8, false), Ok(2));
        assert_eq!(IntOrString::Int(2).scaled_value(10, true), Ok(2));
        assert!(IntOrString::String("x".into())
            .scaled_value(3, true)
            .is_err());
        // Validation lets any percentage through for maxSurge: no overflow, an error.
        let huge = IntOrString::String(format!("{}%", i64::MAX));
        assert_eq!(
            huge.scaled_value(2, true),
            Err(format!("value \"{}%\" is out of range", i64::MAX))
        );
        let big = IntOrString::String("1000%".into());
        assert!(big.scaled_value(i32::MAX, true).is_err());
        assert_eq!(big.scaled_value(3, true), Ok(30));
    }

    #[test]
    fn recreate_drops_rolling_update() {
        let mut spec = DeploymentSpec::default();
        spec.strategy.type_ = "Recreate".into();
        spec.strategy.rolling_update = Some(RollingUpdate::default());
        spec.apply_defaults();
        assert_eq!(spec.strategy.rolling_update, None);
    }
}
