//! PersistentVolumeClaim (v1): a pod's request for storage that outlives it.
//!
//! Berth has one storage class, `local-path`, after k3s' local-path provisioner: a claim
//! becomes a directory on the board that runs its first pod (the class binds
//! `WaitForFirstConsumer`), so it can only be mounted on that board — `ReadWriteOnce` or
//! `ReadWriteOncePod`, never `ReadWriteMany`/`ReadOnlyMany`. There are no
//! PersistentVolume objects: the claim's `spec.volumeName` (`pvc-<claim uid>`) names the
//! directory's volume, and its `status` says it is `Bound` with the requested capacity.
//! The capacity is recorded, not enforced (a directory has no size), as local-path does.
//!
//! What is valid is `validate/claim.rs`; provisioning is the agent's (`agent::local_path`),
//! and which board holds a claim in a fleet is the coordinator scheduler's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::ObjectMeta;

/// The only storage class, and the default one (a claim without `storageClassName` gets
/// it, as Kubernetes' DefaultStorageClass admission gives the default class).
pub const LOCAL_PATH_CLASS: &str = "local-path";

/// Why a pod that uses a claim berth does not provision cannot be placed, in the words
/// of Kubernetes' scheduler (its VolumeBinding plugin).
pub const UNBOUND_CLAIMS_MESSAGE: &str = "pod has unbound immediate PersistentVolumeClaims";
/// The access modes local storage can give: mounts on one board only.
pub const ACCESS_MODES: [&str; 2] = ["ReadWriteOnce", "ReadWriteOncePod"];
/// The access modes Kubernetes knows that need storage shared between boards.
pub const SHARED_ACCESS_MODES: [&str; 2] = ["ReadWriteMany", "ReadOnlyMany"];
/// The only volume mode: a directory (`Block` would need a device).
pub const FILESYSTEM_VOLUME_MODE: &str = "Filesystem";
/// Kubernetes' annotation naming the node the scheduler picked for a claim's first pod;
/// the claim's data lives there from then on.
pub const SELECTED_NODE_ANNOTATION: &str = "volume.kubernetes.io/selected-node";
/// The key of the requested and recorded size in `resources.requests` and `capacity`.
pub const STORAGE: &str = "storage";

/// `status.phase` values.
pub const PHASE_PENDING: &str = "Pending";
pub const PHASE_BOUND: &str = "Bound";

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PersistentVolumeClaim {
    pub metadata: ObjectMeta,
    pub spec: PersistentVolumeClaimSpec,
    #[serde(skip_serializing_if = "crate::model::is_default")]
    pub status: PersistentVolumeClaimStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PersistentVolumeClaimSpec {
    pub access_modes: Vec<String>,
    pub resources: VolumeResourceRequirements,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_mode: Option<String>,
    /// Set by berth when the claim is provisioned: `pvc-<claim uid>`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub volume_name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VolumeResourceRequirements {
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "crate::model::pod::quantity_map"
    )]
    pub requests: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PersistentVolumeClaimStatus {
    /// `Pending`, `Bound` or `Lost`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub access_modes: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub capacity: BTreeMap<String, String>,
}

impl PersistentVolumeClaimSpec {
    /// What the API server fills in at creation: the default storage class and the
    /// `Filesystem` volume mode.
    pub fn apply_defaults(&mut self) {
        self.storage_class_name
            .get_or_insert_with(|| LOCAL_PATH_CLASS.to_owned());
        self.volume_mode
            .get_or_insert_with(|| FILESYSTEM_VOLUME_MODE.to_owned());
    }

    /// Whether berth provisions the claim: its class is local-path (the default). A claim
    /// of another class (or of none, `""`) waits for a provisioner or a pre-made volume
    /// that berth does not have, so it stays Pending, as in a cluster without them.
    pub fn provisioned_here(&self) -> bool {
        self.storage_class_name
            .as_deref()
            .is_none_or(|class| class == LOCAL_PATH_CLASS)
    }

    /// `resources.requests.storage`, as written (validation makes sure it is there).
    pub fn requested_storage(&self) -> &str {
        self.resources
            .requests
            .get(STORAGE)
            .map_or("", String::as_str)
    }
}

impl PersistentVolumeClaim {
    /// The claim's node, once the scheduler picked one for its first pod.
    pub fn selected_node(&self) -> Option<&str> {
        self.metadata
            .annotations
            .get(SELECTED_NODE_ANNOTATION)
            .map(String::as_str)
            .filter(|node| !node.is_empty())
    }

    /// Whether pods use `name` in `namespace` through a `persistentVolumeClaim` volume.
    pub fn is_named(&self, namespace: &str, name: &str) -> bool {
        self.metadata.namespace_or_empty() == namespace && self.metadata.name == name
    }

    /// The claim as the API shows it, with the status stored beside it (the store keeps
    /// status apart from the object): `Pending` until it is provisioned.
    pub fn with_stored_status(mut self, stored: Option<serde_json::Value>) -> Self {
        self.status = stored
            .and_then(|status| serde_json::from_value(status).ok())
            .unwrap_or_default();
        self.status
            .phase
            .get_or_insert_with(|| PHASE_PENDING.to_owned());
        self
    }

    /// The status of the claim once provisioned: bound, with its modes and the capacity it
    /// asked for.
    pub fn bound_status(&self) -> PersistentVolumeClaimStatus {
        let mut capacity = BTreeMap::new();
        let storage = self.spec.requested_storage();
        if !storage.is_empty() {
            capacity.insert(STORAGE.to_owned(), storage.to_owned());
        }
        PersistentVolumeClaimStatus {
            phase: Some(PHASE_BOUND.to_owned()),
            access_modes: self.spec.access_modes.clone(),
            capacity,
        }
    }
}

/// The name of the volume provisioned for the claim with uid `uid`, as Kubernetes' external
/// provisioners name theirs.
pub fn volume_name_for(uid: &str) -> String {
    format!("pvc-{uid}")
}

/// The claims a pod's volumes name, in volume order, without repeats.
pub fn claims_of(spec: &crate::model::PodSpec) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for volume in &spec.volumes {
        if let Some(source) = &volume.persistent_volume_claim {
            if !names.contains(&source.claim_name.as_str()) {
                names.push(&source.claim_name);
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PersistentVolumeClaimVolumeSource, PodSpec, Volume};

    #[test]
    fn defaults_are_the_local_path_class_and_a_filesystem() {
        let mut spec = PersistentVolumeClaimSpec::default();
        spec.apply_defaults();
        assert_eq!(spec.storage_class_name.as_deref(), Some("local-path"));
        assert_eq!(spec.volume_mode.as_deref(), Some("Filesystem"));
        let mut named = PersistentVolumeClaimSpec {
            storage_class_name: Some("other".into()),
            ..Default::default()
        };
        named.apply_defaults();
        assert_eq!(named.storage_class_name.as_deref(), Some("other"));
    }

    #[test]
    fn bound_status_records_modes_and_requested_capacity() {
        let mut claim = PersistentVolumeClaim::default();
        claim.spec.access_modes = vec!["ReadWriteOnce".into()];
        claim
            .spec
            .resources
            .requests
            .insert("storage".into(), "2Gi".into());
        let status = claim.bound_status();
        assert_eq!(status.phase.as_deref(), Some("Bound"));
        assert_eq!(status.access_modes, ["ReadWriteOnce"]);
        assert_eq!(status.capacity["storage"], "2Gi");
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"phase": "Bound", "accessModes": ["ReadWriteOnce"],
                "capacity": {"storage": "2Gi"}})
        );
        assert_eq!(volume_name_for("abc"), "pvc-abc");
    }

    #[test]
    fn claims_of_a_pod_are_listed_once() {
        let volume = |name: &str, claim: Option<&str>| Volume {
            name: name.into(),
            persistent_volume_claim: claim.map(|c| PersistentVolumeClaimVolumeSource {
                claim_name: c.into(),
                read_only: false,
            }),
            ..Default::default()
        };
        let spec = PodSpec {
            volumes: vec![
                volume("a", Some("data")),
                volume("b", None),
                volume("c", Some("logs")),
                volume("d", Some("data")),
            ],
            ..Default::default()
        };
        assert_eq!(claims_of(&spec), ["data", "logs"]);
        let mut claim = PersistentVolumeClaim::default();
        assert_eq!(claim.selected_node(), None);
        claim
            .metadata
            .annotations
            .insert(SELECTED_NODE_ANNOTATION.into(), "pi-2".into());
        assert_eq!(claim.selected_node(), Some("pi-2"));
    }
}
