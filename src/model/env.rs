//! Where a container's environment variables come from besides literal values: keys of
//! ConfigMaps and Secrets, fields of the pod (the downward API) and resources of a
//! container, and whole ConfigMaps or Secrets through `envFrom`.

use serde::{Deserialize, Deserializer, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvVarSource {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeySelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeySelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<ObjectFieldSelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_field_ref: Option<ResourceFieldSelector>,
}

/// A key of a ConfigMap or Secret in the pod's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KeySelector {
    pub name: String,
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// The fields of the pod the downward API gives: `metadata.name`, `metadata.namespace`,
/// `metadata.uid`, `metadata.labels['k']`, `metadata.annotations['k']`, `spec.nodeName`,
/// `spec.serviceAccountName`, `status.podIP`, `status.podIPs`, `status.hostIP`,
/// `status.hostIPs` (the whole `metadata.labels`/`annotations` only in volumes).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectFieldSelector {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    pub field_path: String,
}

/// `limits.cpu`, `limits.memory`, `requests.cpu`, `requests.memory` of a container,
/// divided by `divisor` (1, or 1m for cpu) and rounded up, as in Kubernetes.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResourceFieldSelector {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub container_name: String,
    pub resource: String,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_quantity"
    )]
    pub divisor: Option<String>,
}

/// Every key of a ConfigMap or Secret as a variable, each name with `prefix` in front.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvFromSource {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<NameSelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<NameSelector>,
}

/// A whole ConfigMap or Secret by name.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NameSelector {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// The resources `resourceFieldRef` may name.
pub const RESOURCE_FIELDS: [&str; 4] = [
    "limits.cpu",
    "limits.memory",
    "requests.cpu",
    "requests.memory",
];

/// The pod fields `fieldRef` may name in env (labels and annotations by key as well).
pub const ENV_FIELD_PATHS: [&str; 9] = [
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// The pod fields `fieldRef` may name in a downwardAPI volume: no addresses (they may
/// change while the file exists), but the whole label and annotation maps.
pub const VOLUME_FIELD_PATHS: [&str; 5] = [
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.labels",
    "metadata.annotations",
];

/// Kubernetes' rule for the name of an environment variable (relaxed, the default since
/// 1.32): printable ASCII other than `=`, not empty. `envFrom` skips keys that break it.
pub fn is_env_var_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (32..=126).contains(&b) && b != b'=')
}

/// `metadata.labels['app']` → (`metadata.labels`, `app`).
pub fn subscripted_field(path: &str) -> Option<(&str, &str)> {
    let (map, rest) = path.split_once("['")?;
    let key = rest.strip_suffix("']")?;
    matches!(map, "metadata.labels" | "metadata.annotations").then_some((map, key))
}

/// A quantity that YAML users may write unquoted (`divisor: 1`), as Kubernetes accepts:
/// a number is kept as its decimal text.
pub(crate) fn optional_quantity<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum QuantityInput {
        Text(String),
        Number(serde_json::Number),
    }
    Ok(
        Option::<QuantityInput>::deserialize(deserializer)?.map(|value| match value {
            QuantityInput::Text(text) => text,
            QuantityInput::Number(number) => number.to_string(),
        }),
    )
}
