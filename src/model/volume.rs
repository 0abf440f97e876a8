//! Pod volumes and where containers mount them, in Kubernetes' shapes: `configMap`,
//! `secret`, `downwardAPI`, `projected`, `emptyDir`, `hostPath` and
//! `persistentVolumeClaim`. Each volume has exactly one source (validation makes sure).

use serde::{Deserialize, Deserializer, Serialize};

use crate::model::env::{ObjectFieldSelector, ResourceFieldSelector};

/// The mode of projected files when a volume names none (0644, as in Kubernetes).
pub const DEFAULT_FILE_MODE: i32 = 0o644;

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Volume {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapVolumeSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretVolumeSource>,
    #[serde(rename = "downwardAPI", skip_serializing_if = "Option::is_none")]
    pub downward_api: Option<DownwardApiVolumeSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projected: Option<ProjectedVolumeSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<EmptyDirVolumeSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_path: Option<HostPathVolumeSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<PersistentVolumeClaimVolumeSource>,
}

/// One file of a configMap or secret volume: key `key` at `path`, with its own mode.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KeyToPath {
    pub key: String,
    pub path: String,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_mode"
    )]
    pub mode: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConfigMapVolumeSource {
    pub name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<KeyToPath>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_mode"
    )]
    pub default_mode: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SecretVolumeSource {
    pub secret_name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<KeyToPath>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_mode"
    )]
    pub default_mode: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// One file of a downwardAPI volume: a field of the pod, or a resource of a container.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DownwardApiVolumeFile {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<ObjectFieldSelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_field_ref: Option<ResourceFieldSelector>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_mode"
    )]
    pub mode: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DownwardApiVolumeSource {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<DownwardApiVolumeFile>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_mode"
    )]
    pub default_mode: Option<i32>,
}

/// The sources of a projected volume (the same shapes without their own default modes).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VolumeProjection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapProjection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<ConfigMapProjection>,
    #[serde(rename = "downwardAPI", skip_serializing_if = "Option::is_none")]
    pub downward_api: Option<DownwardApiProjection>,
}

/// A configMap or secret source of a projected volume: both name their object `name`.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConfigMapProjection {
    pub name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<KeyToPath>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DownwardApiProjection {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<DownwardApiVolumeFile>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProjectedVolumeSource {
    pub sources: Vec<VolumeProjection>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_mode"
    )]
    pub default_mode: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EmptyDirVolumeSource {
    /// `""` (the node's disk) or `Memory` (tmpfs).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub medium: String,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::model::env::optional_quantity"
    )]
    pub size_limit: Option<String>,
    /// The directory's permission bits (`01777` for a shared `/tmp`); 0777 when absent.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_mode"
    )]
    pub mode: Option<i32>,
}

/// The `hostPath` types of Kubernetes; `""` checks nothing.
pub const HOST_PATH_TYPES: [&str; 8] = [
    "",
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
    "BlockDevice",
];

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HostPathVolumeSource {
    pub path: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
}

impl HostPathVolumeSource {
    /// Whether the path is a device the container's device cgroup must allow.
    pub fn is_device(&self) -> bool {
        matches!(
            self.type_.as_deref(),
            Some("CharDevice") | Some("BlockDevice")
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PersistentVolumeClaimVolumeSource {
    pub claim_name: String,
    #[serde(skip_serializing_if = "crate::model::is_default")]
    pub read_only: bool,
}

/// The mount propagation modes berth supports (`Bidirectional` needs a privileged
/// container and is refused by validation).
pub const MOUNT_PROPAGATIONS: [&str; 2] = ["None", "HostToContainer"];

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
    #[serde(skip_serializing_if = "crate::model::is_default")]
    pub read_only: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sub_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount_propagation: Option<String>,
}

impl Volume {
    /// The kind of source, as Kubernetes names it in messages (`configMap`, `hostPath`).
    pub fn source_kind(&self) -> &'static str {
        if self.config_map.is_some() {
            "configMap"
        } else if self.secret.is_some() {
            "secret"
        } else if self.downward_api.is_some() {
            "downwardAPI"
        } else if self.projected.is_some() {
            "projected"
        } else if self.host_path.is_some() {
            "hostPath"
        } else if self.persistent_volume_claim.is_some() {
            "persistentVolumeClaim"
        } else {
            "emptyDir"
        }
    }
}

/// A file mode written with a leading zero (`0400`): octal to Kubernetes, whose YAML is
/// 1.1, but a string to berth's YAML 1.2 parser, so it arrives as text. `None` when the
/// text is not a zero followed by octal digits.
pub fn octal_mode(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('0')?;
    if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    i64::from_str_radix(digits, 8).ok()
}

/// A file mode as a number or as YAML 1.1's octal text ([`octal_mode`]); validation has
/// already checked the range.
fn optional_mode<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ModeInput {
        Number(i32),
        Text(String),
    }
    match Option::<ModeInput>::deserialize(deserializer)? {
        None => Ok(None),
        Some(ModeInput::Number(mode)) => Ok(Some(mode)),
        Some(ModeInput::Text(text)) => octal_mode(&text)
            .and_then(|mode| i32::try_from(mode).ok())
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid file mode {text:?}"))),
    }
}
