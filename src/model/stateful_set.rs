//! The StatefulSet kind (apps/v1): replicas with a stable identity. Pod `N` of `web` is
//! always named `web-N`, gets the DNS name `web-N.<serviceName>` through its governing
//! headless Service, and mounts the same claims (`<template>-web-N`, made from
//! `volumeClaimTemplates`) each time it is made again, so its data outlives it and, in a
//! fleet, it comes back on the board that holds that data.

use serde::{Deserialize, Serialize};

use crate::model::{
    LabelSelector, ObjectMeta, PersistentVolumeClaim, PodTemplateSpec,
    DEFAULT_REVISION_HISTORY_LIMIT,
};

/// `podManagementPolicy` values: one pod at a time in ordinal order (the default), or
/// all at once.
pub const ORDERED_READY: &str = "OrderedReady";
pub const PARALLEL: &str = "Parallel";
/// `updateStrategy.type` values.
pub const ROLLING_UPDATE: &str = "RollingUpdate";
pub const ON_DELETE: &str = "OnDelete";
/// The label with the pod's own name, which lets a Service select one replica.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label with the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// The label with the revision of the template a pod was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StatefulSet {
    pub metadata: ObjectMeta,
    pub spec: StatefulSetSpec,
    #[serde(skip_serializing_if = "crate::model::is_default")]
    pub status: StatefulSetStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StatefulSetSpec {
    pub replicas: i32,
    pub selector: LabelSelector,
    pub template: PodTemplateSpec,
    /// The headless Service that gives each pod its DNS name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub service_name: String,
    pub pod_management_policy: String,
    pub update_strategy: StatefulSetUpdateStrategy,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volume_claim_templates: Vec<PersistentVolumeClaim>,
    #[serde(skip_serializing_if = "crate::model::is_default")]
    pub min_ready_seconds: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim_retention_policy: Option<RetentionPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordinals: Option<Ordinals>,
}

impl Default for StatefulSetSpec {
    fn default() -> Self {
        StatefulSetSpec {
            replicas: 1,
            selector: LabelSelector::default(),
            template: PodTemplateSpec::default(),
            service_name: String::new(),
            pod_management_policy: ORDERED_READY.into(),
            update_strategy: StatefulSetUpdateStrategy::default(),
            volume_claim_templates: Vec::new(),
            min_ready_seconds: 0,
            revision_history_limit: None,
            persistent_volume_claim_retention_policy: None,
            ordinals: None,
        }
    }
}

impl StatefulSetSpec {
    /// Kubernetes' defaults: a `RollingUpdate` with `partition: 0`, claims kept
    /// (`Retain`) when the set is deleted or scaled down, claim templates defaulted as
    /// claims are.
    pub fn apply_defaults(&mut self) {
        self.template.spec.apply_defaults();
        self.revision_history_limit
            .get_or_insert(DEFAULT_REVISION_HISTORY_LIMIT);
        let strategy = &mut self.update_strategy;
        if strategy.type_ == ROLLING_UPDATE {
            strategy
                .rolling_update
                .get_or_insert_with(StatefulSetRollingUpdate::default);
        } else {
            strategy.rolling_update = None;
        }
        self.persistent_volume_claim_retention_policy
            .get_or_insert_with(RetentionPolicy::default);
        for claim in &mut self.volume_claim_templates {
            claim.spec.apply_defaults();
        }
    }

    /// The first ordinal (`ordinals.start`, 0 by default).
    pub fn start_ordinal(&self) -> i32 {
        self.ordinals.as_ref().map_or(0, |o| o.start)
    }

    /// Pods below this ordinal keep their revision in a rolling update.
    pub fn partition(&self) -> i32 {
        self.update_strategy
            .rolling_update
            .as_ref()
            .map_or(0, |r| r.partition)
    }

    pub fn parallel(&self) -> bool {
        self.pod_management_policy == PARALLEL
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StatefulSetUpdateStrategy {
    /// `RollingUpdate` or `OnDelete`.
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<StatefulSetRollingUpdate>,
}

impl Default for StatefulSetUpdateStrategy {
    fn default() -> Self {
        StatefulSetUpdateStrategy {
            type_: ROLLING_UPDATE.into(),
            rolling_update: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StatefulSetRollingUpdate {
    pub partition: i32,
}

/// What happens to the claims of pods that go away. Berth keeps them (`Retain`), as
/// Kubernetes does by default: the data of a deleted set waits for it to come back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RetentionPolicy {
    pub when_deleted: String,
    pub when_scaled: String,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            when_deleted: "Retain".into(),
            when_scaled: "Retain".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Ordinals {
    pub start: i32,
}

/// Counted from the pods when shown, as a ReplicaSet's is.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StatefulSetStatus {
    pub observed_generation: i64,
    pub replicas: i32,
    pub ready_replicas: i32,
    pub current_replicas: i32,
    pub updated_replicas: i32,
    pub available_replicas: i32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub current_revision: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub update_revision: String,
}

impl StatefulSet {
    /// The name of the pod with `ordinal`: `<set>-<ordinal>`.
    pub fn pod_name(&self, ordinal: i32) -> String {
        format!("{}-{ordinal}", self.metadata.name)
    }

    /// The name of the claim `template` makes for the pod with `ordinal`:
    /// `<template>-<set>-<ordinal>`, as Kubernetes names it.
    pub fn claim_name(&self, template: &str, ordinal: i32) -> String {
        format!("{template}-{}", self.pod_name(ordinal))
    }

    /// The ordinal of the pod named `name` if it is one of this set's names.
    pub fn ordinal_of(&self, name: &str) -> Option<i32> {
        let digits = name
            .strip_prefix(self.metadata.name.as_str())?
            .strip_prefix('-')?;
        // `web-01` is not a name the set gives.
        if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
            return None;
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    /// The current template's revision: `<set>-<hash of the template>`.
    pub fn update_revision(&self) -> String {
        format!(
            "{}-{}",
            self.metadata.name,
            crate::model::pod_template_hash(&self.spec.template)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str) -> StatefulSet {
        let mut set = StatefulSet::default();
        set.metadata.name = name.into();
        set
    }

    #[test]
    fn names_follow_ordinals() {
        let web = set("web");
        assert_eq!(web.pod_name(2), "web-2");
        assert_eq!(web.claim_name("www", 0), "www-web-0");
        assert_eq!(web.ordinal_of("web-12"), Some(12));
        assert_eq!(web.ordinal_of("web-0"), Some(0));
        for other in [
            "web", "web-", "web-01", "web-x", "web-1-2", "webs-1", "db-1",
        ] {
            assert_eq!(web.ordinal_of(other), None, "{other}");
        }
    }

    #[test]
    fn defaults_are_kubernetes_defaults() {
        let mut spec = StatefulSetSpec::default();
        spec.volume_claim_templates
            .push(PersistentVolumeClaim::default());
        spec.apply_defaults();
        assert_eq!(spec.pod_management_policy, ORDERED_READY);
        assert_eq!(spec.partition(), 0);
        assert_eq!(spec.start_ordinal(), 0);
        assert_eq!(spec.revision_history_limit, Some(10));
        assert_eq!(
            spec.volume_claim_templates[0]
                .spec
                .storage_class_name
                .as_deref(),
            Some(crate::model::LOCAL_PATH_CLASS)
        );
        let policy = spec.persistent_volume_claim_retention_policy.unwrap();
        assert_eq!(policy.when_deleted, "Retain");
    }
}
