//! The k3s `registries.yaml` file: mirrors and per-registry auth and TLS, and the list of
//! endpoints to try for a registry.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::image::ImageError;
use crate::model::base64;

/// Docker Hub's registry name in references, and where its API really lives.
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_ENDPOINT: &str = "https://registry-1.docker.io";

/// Registry settings in the k3s `registries.yaml` format.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Registry name (or `*`) → endpoints tried in order before the registry itself.
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
    /// Endpoint host (`host[:port]`) or registry name → auth and TLS settings.
    #[serde(default)]
    pub configs: BTreeMap<String, HostConfig>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    #[serde(default)]
    pub endpoint: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// A registry bearer token, sent as is.
    #[serde(default)]
    pub token: Option<String>,
    /// base64 of `username:password`, as in Docker's config.json.
    #[serde(default)]
    pub auth: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// How to authenticate to one endpoint.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Credentials {
    Basic { username: String, password: String },
    Token(String),
}

/// One place to send registry API requests to.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Endpoint {
    /// `scheme://host[:port]`, without a trailing `/v2`.
    pub base: String,
    /// `host[:port]`, the key of its settings in `configs`.
    pub host: String,
    pub tls: Option<TlsConfig>,
    pub credentials: Option<Credentials>,
}

impl RegistryConfig {
    /// No mirrors, no credentials: HTTPS to every registry, plain HTTP to loopback ones.
    pub fn empty() -> Self {
        RegistryConfig::default()
    }

    /// Reads a `registries.yaml`. A file holding credentials must not be readable by
    /// group or others.
    pub fn load(path: &Path) -> Result<RegistryConfig, ImageError> {
        let error = |reason: String| ImageError::Config {
            path: path.to_path_buf(),
            reason,
        };
        let text = fs::read_to_string(path).map_err(|e| ImageError::io(path, e))?;
        let mode = fs::metadata(path)
            .map_err(|e| ImageError::io(path, e))?
            .permissions()
            .mode();
        // An empty file is a valid "no settings" file.
        let config: RegistryConfig = if text.trim().is_empty() {
            RegistryConfig::empty()
        } else {
            serde_yaml_ng::from_str(&text).map_err(|e| error(e.to_string()))?
        };
        if config.has_secrets() && mode & 0o077 != 0 {
            return Err(error(format!(
                "holds registry credentials but has mode {:04o}; make it readable by its owner only (chmod 600)",
                mode & 0o7777
            )));
        }
        for (name, mirror) in &config.mirrors {
            for endpoint in &mirror.endpoint {
                parse_endpoint(endpoint)
                    .map_err(|reason| error(format!("mirrors.{name}: {reason}")))?;
            }
        }
        Ok(config)
    }

    fn has_secrets(&self) -> bool {
        self.configs.values().any(|c| {
            c.auth
                .as_ref()
                .is_some_and(|a| a.password.is_some() || a.token.is_some() || a.auth.is_some())
        })
    }

    /// Endpoints to try for `registry`, in order: its mirrors (or the `*` mirrors), then
    /// the registry itself. `override_credentials` (from a pull secret) wins over the file.
    pub(crate) fn endpoints(
        &self,
        registry: &str,
        override_credentials: Option<&Credentials>,
    ) -> Result<Vec<Endpoint>, ImageError> {
        let mirrors = self
            .mirrors
            .get(registry)
            .or_else(|| self.mirrors.get("*"))
            .map(|m| m.endpoint.as_slice())
            .unwrap_or_default();
        let own = if registry == DOCKER_HUB {
            DOCKER_HUB_ENDPOINT.to_string()
        } else if is_loopback(registry) && self.settings(registry, registry).tls.is_none() {
            // Docker's rule: local registries may speak plain HTTP without configuration.
            format!("http://{registry}")
        } else {
            format!("https://{registry}")
        };
        let own_host = own.split_once("://").map_or("", |(_, h)| h).to_string();
        let mut bases = Vec::new();
        for url in mirrors {
            let (base, host) = parse_endpoint(url).map_err(|reason| ImageError::Registry {
                registry: registry.to_string(),
                reason,
            })?;
            let is_own = base == own;
            bases.push((base, host, is_own));
        }
        if !bases.iter().any(|(base, _, _)| *base == own) {
            bases.push((own, own_host, true));
        }
        let mut endpoints = Vec::new();
        for (base, host, is_own) in bases {
            // Settings for the registry name apply to its own endpoint too (docker.io).
            let fallback = if is_own { registry } else { &host };
            let settings = self.settings(&host, fallback);
            let credentials = match override_credentials {
                Some(c) => Some(c.clone()),
                None => settings
                    .auth
                    .as_ref()
                    .map(credentials_of)
                    .transpose()
                    .map_err(|reason| ImageError::Registry {
                        registry: host.clone(),
                        reason,
                    })?
                    .flatten(),
            };
            endpoints.push(Endpoint {
                base,
                host,
                tls: settings.tls.clone(),
                credentials,
            });
        }
        Ok(endpoints)
    }

    fn settings(&self, host: &str, fallback: &str) -> HostConfig {
        self.configs
            .get(host)
            .or_else(|| self.configs.get(fallback))
            .cloned()
            .unwrap_or_default()
    }
}

fn credentials_of(auth: &AuthConfig) -> Result<Option<Credentials>, String> {
    if let Some(token) = &auth.token {
        return Ok(Some(Credentials::Token(token.clone())));
    }
    if let (Some(username), Some(password)) = (&auth.username, &auth.password) {
        return Ok(Some(Credentials::Basic {
            username: username.clone(),
            password: password.clone(),
        }));
    }
    if let Some(encoded) = &auth.auth {
        let decoded = base64::decode(encoded.trim())
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or("auth.auth is not base64 of username:password")?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or("auth.auth is not base64 of username:password")?;
        return Ok(Some(Credentials::Basic {
            username: username.to_string(),
            password: password.to_string(),
        }));
    }
    Ok(None)
}

/// `http(s)://host[:port][/v2][/]` → (`scheme://host[:port]`, `host[:port]`).
fn parse_endpoint(url: &str) -> Result<(String, String), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "endpoint {url:?} must start with http:// or https://"
        ));
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "endpoint {url:?} must start with http:// or https://"
        ));
    }
    let rest = rest.trim_end_matches('/');
    let rest = rest.strip_suffix("/v2").unwrap_or(rest);
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return Err(format!(
            "endpoint {url:?} must be scheme://host[:port] (paths are not supported)"
        ));
    }
    Ok((format!("{scheme}://{rest}"), rest.to_string()))
}

/// `localhost`, 127.0.0.0/8 and `[::1]`, with or without a port.
pub(crate) fn is_loopback(registry: &str) -> bool {
    let host = if registry.starts_with('[') {
        registry.split(']').next().map_or("", |h| &h[1..])
    } else {
        registry.split(':').next().unwrap_or_default()
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> RegistryConfig {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn loopback_registries_use_plain_http_others_https() {
        let empty = RegistryConfig::empty();
        let base = |r: &str| empty.endpoints(r, None).unwrap()[0].base.clone();
        assert_eq!(base("127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(base("127.9.0.1"), "http://127.9.0.1");
        assert_eq!(base("localhost:5000"), "http://localhost:5000");
        assert_eq!(base("[::1]:5000"), "http://[::1]:5000");
        assert_eq!(base("ghcr.io"), "https://ghcr.io");
        assert_eq!(base("128.0.0.1:5000"), "https://128.0.0.1:5000");
        assert_eq!(base("docker.io"), "https://registry-1.docker.io");
    }

    #[test]
    fn mirrors_come_first_and_settings_follow_the_endpoint() {
        let c = config(
            r#"
mirrors:
  docker.io:
    endpoint: ["http://mirror.lan:5000/v2/", "https://registry-1.docker.io"]
configs:
  mirror.lan:5000:
    auth: {username: u, password: p}
  docker.io:
    auth: {token: t}
  127.0.0.1:5443:
    tls: {ca_file: /ca.pem}
"#,
        );
        let endpoints = c.endpoints("docker.io", None).unwrap();
        let bases: Vec<&str> = endpoints.iter().map(|e| e.base.as_str()).collect();
        assert_eq!(
            bases,
            ["http://mirror.lan:5000", "https://registry-1.docker.io"]
        );
        assert_eq!(
            endpoints[0].credentials,
            Some(Credentials::Basic {
                username: "u".into(),
                password: "p".into()
            })
        );
        assert_eq!(
            endpoints[1].credentials,
            Some(Credentials::Token("t".into()))
        );
        // A TLS setting for a loopback registry means it speaks HTTPS.
        let tls = c.endpoints("127.0.0.1:5443", None).unwrap();
        assert_eq!(tls[0].base, "https://127.0.0.1:5443");
        assert_eq!(tls[0].tls.as_ref().unwrap().ca_file, Some("/ca.pem".into()));
        // Pull-secret credentials win.
        let secret = Credentials::Token("s".into());
        let over = c.endpoints("docker.io", Some(&secret)).unwrap();
        assert!(over.iter().all(|e| e.credentials == Some(secret.clone())));
    }

    #[test]
    fn docker_auth_field_is_decoded() {
        let c = config("configs:\n  r.io:\n    auth: {auth: dXNlcjpwYTpzcw==}\n");
        let endpoints = c.endpoints("r.io", None).unwrap();
        assert_eq!(
            endpoints[0].credentials,
            Some(Credentials::Basic {
                username: "user".into(),
                password: "pa:ss".into()
            })
        );
    }

    #[test]
    fn load_refuses_readable_credentials_and_bad_endpoints() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registries.yaml");
        fs::write(
            &path,
            "configs:\n  r.io:\n    auth: {username: u, password: p}\n",
        )
        .unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = RegistryConfig::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("registries.yaml") && err.contains("0644"),
            "{err}"
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(RegistryConfig::load(&path).is_ok());

        fs::write(&path, "mirrors:\n  r.io:\n    endpoint: [\"ftp://x\"]\n").unwrap();
        let err = RegistryConfig::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("mirrors.r.io") && err.contains("http://"),
            "{err}"
        );
        fs::write(&path, "mirrors:\n  r.io:\n    rewrite: {}\n").unwrap();
        assert!(RegistryConfig::load(&path).is_err());
        fs::write(&path, "").unwrap();
        assert_eq!(
            RegistryConfig::load(&path).unwrap(),
            RegistryConfig::empty()
        );
    }
}
