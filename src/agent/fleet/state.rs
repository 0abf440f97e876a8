//! `fleet.json`: what an agent keeps once it has joined (the coordinator's address, its
//! CA, this node's credential and name), and the join that produces it.
//!
//! The file holds a secret, so it is created with mode 0600 and replaced atomically
//! (write a temporary file, fsync, rename): a power cut leaves the old file or the new
//! one, never half of one, and a board never loses its membership to a torn write.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::FleetError;
use crate::api::fleet::{JoinRequest, JoinResponse};
use crate::api::tls::{client_config_pinned, client_config_trusting, HandshakeError};
use crate::api::tokens::{Credential, JoinToken};
use crate::api::{ApiError, Client};

/// The file under the state dir.
pub const FLEET_FILE: &str = "fleet.json";

const JOIN_PATH: &str = "/apis/berth.dev/v1/join";

/// The membership of this agent in a fleet.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetState {
    /// `https://host:port` of the coordinator.
    pub server: String,
    /// The coordinator's CA certificate, pinned at join time and trusted from then on.
    pub ca_pem: String,
    /// `berth-node.<name>.<secret>`: the bearer token of every request after the join.
    pub credential: String,
    pub node_name: String,
}

impl std::fmt::Debug for FleetState {
    /// Never prints the credential.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetState")
            .field("server", &self.server)
            .field("node_name", &self.node_name)
            .field("credential", &"<redacted>")
            .finish()
    }
}

impl FleetState {
    /// A client for the coordinator that trusts only the saved CA and authenticates as
    /// this node.
    pub fn client(&self, timeout: Duration) -> Result<Client, FleetError> {
        let config = client_config_trusting(&self.ca_pem).map_err(|source| FleetError::Ca {
            reason: source.to_string(),
        })?;
        Client::https(&self.server, config, Some(self.credential.clone()), timeout).map_err(
            |source| FleetError::Server {
                server: self.server.clone(),
                reason: source.to_string(),
            },
        )
    }

    /// Checks what a hand-edited or damaged file could get wrong.
    fn check(&self) -> Result<(), String> {
        match Credential::parse(&self.credential) {
            Ok(Credential::Node { name, .. }) if name == self.node_name => {}
            Ok(Credential::Node { name, .. }) => {
                return Err(format!(
                    "the credential is for node {name:?}, not {:?}",
                    self.node_name
                ))
            }
            Ok(Credential::Admin { .. }) => {
                return Err("the credential is not a node credential".to_string())
            }
            Err(err) => return Err(format!("invalid credential: {err}")),
        }
        client_config_trusting(&self.ca_pem).map_err(|err| err.to_string())?;
        Ok(())
    }
}

/// Reads `fleet.json`; `None` when the agent has never joined.
pub fn load(path: &Path) -> Result<Option<FleetState>, FleetError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(FleetError::ReadState {
                path: path.to_path_buf(),
                reason: source.to_string(),
            })
        }
    };
    let invalid = |reason: String| FleetError::ReadState {
        path: path.to_path_buf(),
        reason,
    };
    let state: FleetState =
        serde_json::from_str(&text).map_err(|err| invalid(format!("invalid JSON: {err}")))?;
    state.check().map_err(invalid)?;
    Ok(Some(state))
}

/// Writes `fleet.json` atomically with mode 0600.
pub fn save(path: &Path, state: &FleetState) -> Result<(), FleetError> {
    let failed = |reason: String| FleetError::WriteState {
        path: path.to_path_buf(),
        reason,
    };
    let text = serde_json::to_vec_pretty(state).map_err(|err| failed(err.to_string()))?;
    let temporary = temporary_path(path);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .and_then(|mut file| {
            file.write_all(&text)?;
            file.write_all(b"\n")?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(err) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(failed(err.to_string()));
    }
    // The rename is durable only once the directory is synced.
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|err| failed(format!("cannot sync {}: {err}", dir.display())))?;
    }
    Ok(())
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Why a join attempt did not produce a membership.
#[derive(Debug)]
pub enum JoinFailure {
    /// The coordinator (or the network path to it) said no for good: a wrong token, a CA
    /// that does not match, a bad URL. Retrying cannot help.
    Refused(String),
    /// Worth another try later: unreachable, timed out, a server error.
    Unavailable(ApiError),
}

/// What a board presents when it joins.
pub struct Joining<'a> {
    pub node_name: &'a str,
    /// Its Node object (name, labels, status).
    pub node: Value,
    /// The credential it asks for, the same on every attempt.
    pub credential: &'a Credential,
}

/// Joins the coordinator at `server` with `token`, presenting `asked`. The coordinator's
/// CA is checked against the token's hash during the TLS handshake, before the token's
/// secret is sent.
pub fn join(
    server: &str,
    token: &JoinToken,
    asked: Joining<'_>,
    timeout: Duration,
) -> Result<FleetState, JoinFailure> {
    let node_name = asked.node_name;
    let (config, pinned) = client_config_pinned(&token.ca_hash)
        .map_err(|err| JoinFailure::Refused(format!("cannot set up TLS: {err}")))?;
    let bearer = format!("{}.{}", token.id, token.secret);
    let client = Client::https(server, Arc::clone(&config), Some(bearer), timeout)
        .map_err(|err| JoinFailure::Refused(err.to_string()))?;
    let request = JoinRequest {
        node: asked.node,
        credential: Some(asked.credential.to_string()),
    };
    let request = serde_json::to_value(request)
        .map_err(|err| JoinFailure::Refused(format!("cannot encode the join request: {err}")))?;
    let (_, body) = client
        .request("POST", JOIN_PATH, Some(&request))
        .map_err(classify)?;
    let response: JoinResponse = serde_json::from_value(body).map_err(|err| {
        JoinFailure::Unavailable(ApiError::Protocol {
            reason: format!("invalid join response: {err}"),
        })
    })?;
    match Credential::parse(&response.credential) {
        Ok(Credential::Node { name, .. }) if name == node_name => {}
        Ok(Credential::Node { name, .. }) => {
            return Err(JoinFailure::Refused(format!(
            "the coordinator registered this board as node {name:?}, but it is named {node_name:?}"
        )))
        }
        Ok(Credential::Admin { .. }) | Err(_) => {
            return Err(JoinFailure::Refused(
                "the coordinator answered the join without a node credential".to_string(),
            ))
        }
    }
    let ca_pem = pinned.pem().ok_or_else(|| {
        JoinFailure::Unavailable(ApiError::Protocol {
            reason: "the handshake left no pinned CA".to_string(),
        })
    })?;
    Ok(FleetState {
        server: server.trim_end_matches('/').to_string(),
        ca_pem,
        credential: response.credential,
        node_name: node_name.to_string(),
    })
}

/// Sorts a failed join request into "give up" and "try again".
fn classify(err: ApiError) -> JoinFailure {
    if let ApiError::ConnectTls { source, .. } = &err {
        // "cannot reach" would mislead: the coordinator was reached and failed the check.
        if let Some(handshake) = source
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<HandshakeError>())
        {
            return JoinFailure::Refused(handshake.message.clone());
        }
    }
    if is_refusal(&err) {
        JoinFailure::Refused(err.to_string())
    } else {
        JoinFailure::Unavailable(err)
    }
}

/// Errors that the same request can never get past: the server said the request or its
/// token is wrong (4xx other than timeouts and throttling), the server's certificate
/// failed verification (a CA that does not match the token, a name it does not cover),
/// or the URL itself is unusable.
pub fn is_refusal(err: &ApiError) -> bool {
    match err {
        ApiError::Status { code, .. } => (400..500).contains(code) && *code != 408 && *code != 429,
        ApiError::ConnectTls { source, .. } => source
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<HandshakeError>().is_some()),
        ApiError::Server { .. } => true,
        ApiError::Connect { .. } | ApiError::Io { .. } | ApiError::Protocol { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A real CA in PEM, made with rcgen, so `check` accepts it.
    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    fn state() -> FleetState {
        FleetState {
            server: "https://coord:6443".into(),
            ca_pem: ca_pem(),
            credential: format!("berth-node.pi-1.{}", "a".repeat(64)),
            node_name: "pi-1".into(),
        }
    }

    #[test]
    fn fleet_json_round_trips_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FLEET_FILE);
        assert!(load(&path).unwrap().is_none());
        let saved = state();
        save(&path, &saved).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load(&path).unwrap(), Some(saved.clone()));
        let text = std::fs::read_to_string(&path).unwrap();
        for field in ["\"server\"", "\"caPem\"", "\"credential\"", "\"nodeName\""] {
            assert!(text.contains(field), "{field} missing in {text}");
        }
        // Saving again replaces the file and leaves no temporary behind.
        let moved = FleetState {
            server: "https://other:7443".into(),
            ..saved
        };
        save(&path, &moved).unwrap();
        assert_eq!(load(&path).unwrap(), Some(moved));
        assert!(!temporary_path(&path).exists());
    }

    #[test]
    fn a_damaged_fleet_json_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FLEET_FILE);
        std::fs::write(&path, "{not json").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("invalid JSON"), "{err}");
        let wrong_name = FleetState {
            node_name: "pi-2".into(),
            ..state()
        };
        std::fs::write(&path, serde_json::to_string(&wrong_name).unwrap()).unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("credential is for node \"pi-1\""), "{err}");
        let no_ca = FleetState {
            ca_pem: "nothing".into(),
            ..state()
        };
        std::fs::write(&path, serde_json::to_string(&no_ca).unwrap()).unwrap();
        assert!(load(&path).is_err());
    }

    #[test]
    fn debug_hides_the_credential() {
        let text = format!("{:?}", state());
        assert!(!text.contains(&"a".repeat(64)), "{text}");
        assert!(text.contains("pi-1"));
    }

    #[test]
    fn refusals_are_told_from_outages() {
        let status = |code| ApiError::Status {
            code,
            message: String::new(),
        };
        assert!(is_refusal(&status(401)));
        assert!(is_refusal(&status(403)));
        assert!(is_refusal(&status(409)));
        assert!(!is_refusal(&status(429)));
        assert!(!is_refusal(&status(503)));
        let refused_connection = ApiError::ConnectTls {
            url: "https://x".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        assert!(!is_refusal(&refused_connection));
        let bad_certificate = ApiError::ConnectTls {
            url: "https://x".into(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                HandshakeError {
                    message: "the coordinator's CA does not match the join token".into(),
                    source: rustls::Error::General("x".into()),
                },
            ),
        };
        assert!(is_refusal(&bad_certificate));
    }
}
