//! The client config a coordinator writes for its admin (`DIR/admin.config`), read by the
//! CLI with `--config FILE` or `BERTH_CONFIG` (else `~/.berth/config`) — the role
//! kubeconfig plays for kubectl. It holds one context: where to connect (a coordinator's
//! server, CA and token; none for a board's agent) and the current namespace that
//! `berth config set-context --current --namespace NS` sets.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::client::{ApiError, Client};

pub const CONFIG_API_VERSION: &str = "berth.dev/v1";
pub const CONFIG_KIND: &str = "Config";

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientConfig {
    pub api_version: String,
    pub kind: String,
    /// `https://host:port` of the coordinator; empty when the config only sets a
    /// namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server: String,
    /// PEM of the coordinator's CA: the only certificate authority trusted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub certificate_authority: String,
    /// Bearer credential (`berth-admin.<secret>`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
    /// The namespace of requests that name none (`-n` wins; `default` without either).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientConfig({})", self.server)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl ClientConfig {
    /// A config with nothing set yet.
    pub fn empty() -> ClientConfig {
        ClientConfig {
            api_version: CONFIG_API_VERSION.to_owned(),
            kind: CONFIG_KIND.to_owned(),
            server: String::new(),
            certificate_authority: String::new(),
            token: String::new(),
            namespace: None,
        }
    }

    pub fn load(path: &Path) -> Result<ClientConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let config: ClientConfig =
            serde_yaml_ng::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if config.api_version != CONFIG_API_VERSION || config.kind != CONFIG_KIND {
            return Err(invalid(format!(
                "expected apiVersion {CONFIG_API_VERSION} and kind {CONFIG_KIND}"
            )));
        }
        Ok(config)
    }

    pub fn to_yaml(&self) -> String {
        // Only strings inside: serializing cannot fail.
        serde_yaml_ng::to_string(self).unwrap_or_default()
    }

    /// A client for this coordinator; `server` overrides the URL (from `--server`).
    pub fn client(&self, server: Option<&str>, timeout: Duration) -> Result<Client, ApiError> {
        let url = server.unwrap_or(&self.server);
        let tls = super::tls::client_config_trusting(&self.certificate_authority).map_err(|e| {
            ApiError::Server {
                url: url.to_string(),
                reason: format!("certificateAuthority: {e}"),
            }
        })?;
        Client::https(url, Arc::clone(&tls), Some(self.token.clone()), timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_strangers() {
        let config = ClientConfig {
            api_version: CONFIG_API_VERSION.into(),
            kind: CONFIG_KIND.into(),
            server: "https://10.0.0.1:6443".into(),
            certificate_authority: "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"
                .into(),
            token: "berth-admin.abc".into(),
            namespace: Some("dev".into()),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.config");
        std::fs::write(&path, config.to_yaml()).unwrap();
        assert_eq!(ClientConfig::load(&path).unwrap(), config);
        assert!(!format!("{config:?}").contains("abc"));
        std::fs::write(&path, config.to_yaml().replace("kind: Config", "kind: Pod")).unwrap();
        let err = ClientConfig::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("admin.config") && err.contains("kind"),
            "{err}"
        );
        std::fs::write(&path, "server: [").unwrap();
        assert!(ClientConfig::load(&path).is_err());
        // A config may set only the namespace (a board's user has no coordinator).
        let mut only = ClientConfig::empty();
        only.namespace = Some("dev".into());
        assert_eq!(
            only.to_yaml(),
            "apiVersion: berth.dev/v1\nkind: Config\nnamespace: dev\n"
        );
        std::fs::write(&path, only.to_yaml()).unwrap();
        assert_eq!(ClientConfig::load(&path).unwrap(), only);
    }
}
