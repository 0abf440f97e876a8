//! ConfigMap and Secret: named bags of configuration for the pods of a namespace.
//!
//! Secret values are kept as Kubernetes keeps them, base64 in `data`; `stringData` from a
//! manifest is folded into `data` when the object is built, as the API server does, so
//! stored objects and `get -o yaml` have a single form.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{base64, ObjectMeta};

/// The Secret type that carries registry credentials for `imagePullSecrets`.
pub const DOCKER_CONFIG_JSON_TYPE: &str = "kubernetes.io/dockerconfigjson";
/// The key of that type's payload.
pub const DOCKER_CONFIG_JSON_KEY: &str = ".dockerconfigjson";
/// The legacy form: a `~/.dockercfg` file (the `auths` map without its wrapper).
pub const DOCKER_CFG_TYPE: &str = "kubernetes.io/dockercfg";
pub const DOCKER_CFG_KEY: &str = ".dockercfg";

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConfigMap {
    pub metadata: ObjectMeta,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    /// Values in base64.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub binary_data: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Secret {
    pub metadata: ObjectMeta,
    #[serde(rename = "type")]
    pub type_: String,
    /// Values in base64.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    /// Write-only convenience from manifests; empty once the object is built.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub string_data: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}

impl Default for Secret {
    fn default() -> Self {
        Secret {
            metadata: ObjectMeta::default(),
            type_: "Opaque".to_string(),
            data: BTreeMap::new(),
            string_data: BTreeMap::new(),
            immutable: None,
        }
    }
}

impl Secret {
    /// Folds `stringData` into `data`; a key in both takes the `stringData` value, as in
    /// Kubernetes.
    pub fn merge_string_data(&mut self) {
        for (key, value) in std::mem::take(&mut self.string_data) {
            self.data.insert(key, base64::encode(value.as_bytes()));
        }
    }

    /// The decoded value of `key`, if present and valid base64.
    pub fn value(&self, key: &str) -> Option<Vec<u8>> {
        self.data.get(key).and_then(|v| base64::decode(v))
    }
}

/// A key of `data`, `binaryData` or `stringData`: what Kubernetes allows as a file name in
/// a volume (`[-._a-zA-Z0-9]+`, at most 253 characters, not `.` and not starting with
/// `..`, which the volume writer keeps for itself).
pub fn is_config_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key != "."
        && !key.starts_with("..")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Registry credentials found in a docker config Secret, for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryLogin {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RegistryLogin({:?}, <password>)", self.username)
    }
}

/// The `auths` map of a `kubernetes.io/dockerconfigjson` or `kubernetes.io/dockercfg`
/// Secret, or why it cannot be read.
pub fn docker_auths(secret: &Secret) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let (key, wrapped) = match secret.type_.as_str() {
        DOCKER_CONFIG_JSON_TYPE => (DOCKER_CONFIG_JSON_KEY, true),
        DOCKER_CFG_TYPE => (DOCKER_CFG_KEY, false),
        other => return Err(format!("type {other:?} holds no registry credentials")),
    };
    let bytes = secret
        .value(key)
        .ok_or_else(|| format!("data[{key}] is missing or not base64"))?;
    let mut document: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("data[{key}] is not JSON: {e}"))?;
    let auths = if wrapped {
        document.get_mut("auths").map(serde_json::Value::take)
    } else {
        Some(document)
    };
    match auths {
        Some(serde_json::Value::Object(map)) => Ok(map),
        _ => Err(format!("data[{key}] has no \"auths\" object")),
    }
}

/// The login for `registry` (`host[:port]`) in a docker config Secret. Keys of `auths` may
/// be written as URLs (`https://host/v1/`), as `docker login` does.
pub fn docker_login(secret: &Secret, registry: &str) -> Option<RegistryLogin> {
    let auths = docker_auths(secret).ok()?;
    let entry = auths
        .iter()
        .find(|(key, _)| registry_host(key) == registry)
        .map(|(_, entry)| entry)?;
    let text = |name: &str| entry.get(name).and_then(|v| v.as_str()).map(str::to_string);
    if let (Some(username), Some(password)) = (text("username"), text("password")) {
        return Some(RegistryLogin { username, password });
    }
    let decoded = base64::decode(text("auth")?.trim())?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (username, password) = decoded.split_once(':')?;
    Some(RegistryLogin {
        username: username.to_string(),
        password: password.to_string(),
    })
}

/// `https://host:port/v1/` → `host:port`; Docker Hub's names map to `docker.io`.
fn registry_host(key: &str) -> &str {
    let without_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = without_scheme.split('/').next().unwrap_or(without_scheme);
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docker_secret(auths: serde_json::Value) -> Secret {
        let mut secret = Secret {
            type_: DOCKER_CONFIG_JSON_TYPE.to_string(),
            ..Secret::default()
        };
        secret.string_data.insert(
            DOCKER_CONFIG_JSON_KEY.to_string(),
            serde_json::json!({ "auths": auths }).to_string(),
        );
        secret.merge_string_data();
        secret
    }

    #[test]
    fn string_data_wins_over_data() {
        let mut secret = Secret::default();
        secret.data.insert("a".into(), base64::encode(b"old"));
        secret.string_data.insert("a".into(), "new".into());
        secret.string_data.insert("b".into(), "two".into());
        secret.merge_string_data();
        assert!(secret.string_data.is_empty());
        assert_eq!(secret.value("a").unwrap(), b"new");
        assert_eq!(secret.value("b").unwrap(), b"two");
    }

    #[test]
    fn finds_logins_by_registry_host() {
        let secret = docker_secret(serde_json::json!({
            "https://regs.example:5000/v1/": {"username": "u1", "password": "p1"},
            "other.example": {"auth": base64::encode(b"u2:p:2")},
            "https://index.docker.io/v1/": {"username": "hub", "password": "h"},
        }));
        let login = docker_login(&secret, "regs.example:5000").unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("u1", "p1")
        );
        let login = docker_login(&secret, "other.example").unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("u2", "p:2")
        );
        assert_eq!(docker_login(&secret, "docker.io").unwrap().username, "hub");
        assert!(docker_login(&secret, "regs.example").is_none());
        assert!(!format!("{login:?}").contains("p:2"));
    }

    #[test]
    fn legacy_dockercfg_is_the_bare_auths_map() {
        let mut secret = Secret {
            type_: DOCKER_CFG_TYPE.to_string(),
            ..Secret::default()
        };
        secret.data.insert(
            DOCKER_CFG_KEY.into(),
            base64::encode(br#"{"r.example":{"username":"u","password":"p"}}"#),
        );
        assert_eq!(docker_login(&secret, "r.example").unwrap().username, "u");
        let opaque = Secret::default();
        assert!(docker_auths(&opaque).unwrap_err().contains("Opaque"));
    }

    #[test]
    fn config_keys_follow_kubernetes() {
        for good in ["a", ".dockerconfigjson", "app.conf", "A-b_c.1"] {
            assert!(is_config_key(good), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(254)] {
            assert!(!is_config_key(bad), "{bad}");
        }
    }
}
