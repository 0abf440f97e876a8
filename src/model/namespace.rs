//! The Namespace kind.

use serde::{Deserialize, Serialize};

use crate::model::ObjectMeta;

/// The namespaces every cluster has, as Kubernetes creates them: `default` for what
/// names none, and the three system ones that manifests refer to.
pub const SYSTEM_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Namespace {
    pub metadata: ObjectMeta,
    #[serde(skip_serializing_if = "crate::model::is_default")]
    pub status: NamespaceStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NamespaceStatus {
    /// `Active` or `Terminating`, set by the store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}
