//! Wire types shared by the CLI and the agent (JSON, camelCase like Kubernetes).

use serde::{Deserialize, Serialize};

/// Body of `POST /apply`: manifest files as read by the CLI.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyRequest {
    pub files: Vec<ManifestFile>,
    /// The namespace for objects that do not name one (`-n`); the agent's default if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// One manifest file: its name (for messages) and its YAML or JSON text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestFile {
    pub name: String,
    pub content: String,
}

/// What an apply or delete did, one item per object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyResult {
    pub items: Vec<ApplyItem>,
    /// What the server warns about (kubectl prints each as `Warning: ...`): fields
    /// accepted that do nothing here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyItem {
    pub kind: String,
    /// Empty for cluster-scoped objects.
    #[serde(default)]
    pub namespace: String,
    pub name: String,
    /// `created`, `configured`, `unchanged` or `deleted`, as kubectl prints them.
    pub outcome: String,
}

/// Body of `GET /version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    pub version: String,
    pub git_revision: String,
    pub target: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_names_are_camel_case() {
        let version = Version {
            version: "0.1.0".into(),
            git_revision: "abc123".into(),
            target: "aarch64-unknown-linux-musl".into(),
        };
        let value = serde_json::to_value(&version).unwrap();
        assert_eq!(value["gitRevision"], json!("abc123"));
        assert_eq!(serde_json::from_value::<Version>(value).unwrap(), version);
    }

    #[test]
    fn apply_request_namespace_is_optional() {
        let parsed: ApplyRequest =
            serde_json::from_value(json!({"files": [{"name": "a.yaml", "content": "x"}]})).unwrap();
        assert_eq!(parsed.namespace, None);
        assert_eq!(parsed.files[0].name, "a.yaml");
        let value = serde_json::to_value(&parsed).unwrap();
        assert!(value.get("namespace").is_none());
    }
}
