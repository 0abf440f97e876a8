//! The life of a join token, after kubeadm's bootstrap tokens: it expires after a TTL
//! (24 h unless asked otherwise; a TTL of 0 never expires), it may allow a limited number
//! of joins, and it may be bound to one node name. The admin lists tokens by id (never
//! by secret) and deletes them.
//!
//! The coordinator keeps a [`TokenRecord`] per token in its store (kind
//! `BerthJoinToken`, name = token id) holding only the sha256 of the secret. Every rule
//! here is a pure function of the record, the request and the time passed in.
//!
//! A token bound to a node name (`berth token create --node-name pi-1`) joins only that
//! name. It is also the one way a board may join under the name of a node that exists
//! already (a re-flashed board taking its old place): an unbound token only ever makes
//! new nodes, so nobody holding one can take over another node's identity. A bound token
//! allows one join unless `--max-uses` says otherwise.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::api::tokens::{check_node_name, verify_secret};
use crate::model::{format_duration, parse_duration};
use crate::store::Record;

/// Store kind of a join token (name = token id).
pub const JOIN_TOKEN_KIND: &str = "BerthJoinToken";
/// kubeadm's default TTL of a bootstrap token.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Longest description kept with a token.
const MAX_DESCRIPTION: usize = 256;

/// What `berth token create` asks for: the body of `POST /apis/berth.dev/v1/tokens`.
/// Every field is optional; an empty body makes a 24 h token for any number of joins.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenSpec {
    /// A Kubernetes duration; `0` never expires. Default 24h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Joins allowed; `0` is unlimited. Default unlimited, or 1 with `nodeName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u64>,
    /// The only node name the token joins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A [`TokenSpec`] checked and with its defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRules {
    /// `None`: never expires.
    pub ttl: Option<Duration>,
    /// `None`: unlimited.
    pub max_uses: Option<u64>,
    pub node_name: Option<String>,
    pub description: String,
}

impl TokenSpec {
    /// Checks the spec; an error names the field, as Kubernetes' validation does.
    pub fn rules(&self) -> Result<TokenRules, String> {
        let ttl = match self.ttl.as_deref() {
            None => Some(DEFAULT_TTL),
            Some(text) => {
                let ttl = parse_duration(text).map_err(|e| format!("spec.ttl: {e}"))?;
                (!ttl.is_zero()).then_some(ttl)
            }
        };
        if let Some(name) = &self.node_name {
            check_node_name(name).map_err(|e| format!("spec.nodeName: {e}"))?;
        }
        let max_uses = match self.max_uses {
            Some(0) => None,
            Some(n) => Some(n),
            None if self.node_name.is_some() => Some(1),
            None => None,
        };
        let description = self.description.clone().unwrap_or_default();
        if description.chars().count() > MAX_DESCRIPTION {
            return Err(format!(
                "spec.description: must be at most {MAX_DESCRIPTION} characters"
            ));
        }
        if description.chars().any(char::is_control) {
            return Err("spec.description: must not contain control characters".to_string());
        }
        Ok(TokenRules {
            ttl,
            max_uses,
            node_name: self.node_name.clone(),
            description,
        })
    }
}

/// Why a join token does not let a node in. Messages name the token by id only.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoinDenied {
    #[error("invalid join token")]
    Invalid,
    #[error("join token {id:?} not found: it was deleted, or was made by another coordinator")]
    NotFound { id: String },
    #[error("join token {id:?} expired at {at}; make a new one with berth token create")]
    Expired { id: String, at: String },
    #[error(
        "join token {id:?} is used up: it allowed {max_uses} join(s); make a new one with berth token create"
    )]
    UsedUp { id: String, max_uses: u64 },
    #[error("join token {id:?} may only join node {allowed:?}, not {asked:?}")]
    WrongNode {
        id: String,
        allowed: String,
        asked: String,
    },
}

impl JoinDenied {
    /// The HTTP status and Kubernetes reason: a token that does not authenticate is 401,
    /// a good token asking for a name it does not allow is 403.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            JoinDenied::WrongNode { .. } => (403, "Forbidden"),
            JoinDenied::Invalid
            | JoinDenied::NotFound { .. }
            | JoinDenied::Expired { .. }
            | JoinDenied::UsedUp { .. } => (401, "Unauthorized"),
        }
    }
}

/// A join token as the coordinator keeps it: the secret's hash, never the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    hash: String,
    pub description: String,
    pub node_name: Option<String>,
    pub created: SystemTime,
    /// `None`: never expires.
    pub expiration: Option<SystemTime>,
    /// `None`: unlimited.
    pub max_uses: Option<u64>,
    /// Joins made with it so far.
    pub uses: u64,
}

impl TokenRecord {
    /// A new token's record; `hash` is the sha256 of its secret.
    pub fn new(
        id: &str,
        hash: &str,
        rules: &TokenRules,
        now: SystemTime,
    ) -> Result<TokenRecord, String> {
        let created = whole_second(now, false);
        let expiration = match rules.ttl {
            None => None,
            Some(ttl) => Some(
                now.checked_add(ttl)
                    .map(|t| whole_second(t, true))
                    .ok_or_else(|| format!("spec.ttl: {} is too long", format_duration(ttl)))?,
            ),
        };
        Ok(TokenRecord {
            id: id.to_string(),
            hash: hash.to_string(),
            description: rules.description.clone(),
            node_name: rules.node_name.clone(),
            created,
            expiration,
            max_uses: rules.max_uses,
            uses: 0,
        })
    }

    /// Whether `secret` is this token's and the token may still be used at `now`.
    pub fn check_secret(&self, secret: &str, now: SystemTime) -> Result<(), JoinDenied> {
        if !verify_secret(secret, &self.hash) {
            return Err(JoinDenied::Invalid);
        }
        if let Some(at) = self.expiration.filter(|at| now >= *at) {
            return Err(JoinDenied::Expired {
                id: self.id.clone(),
                at: rfc3339(at),
            });
        }
        if let Some(max_uses) = self.max_uses.filter(|max| self.uses >= *max) {
            return Err(JoinDenied::UsedUp {
                id: self.id.clone(),
                max_uses,
            });
        }
        Ok(())
    }

    /// Whether the token lets a node join under `name`.
    pub fn check_node(&self, name: &str) -> Result<(), JoinDenied> {
        match &self.node_name {
            Some(allowed) if allowed != name => Err(JoinDenied::WrongNode {
                id: self.id.clone(),
                allowed: allowed.clone(),
                asked: name.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Whether a join with this token may replace the existing node `name`.
    pub fn may_rejoin(&self, name: &str) -> bool {
        self.node_name.as_deref() == Some(name)
    }

    /// The record as stored.
    pub fn to_store(&self) -> Value {
        json!({
            "apiVersion": "berth.dev/v1",
            "kind": JOIN_TOKEN_KIND,
            "metadata": {"name": self.id},
            "hash": self.hash,
            "description": self.description,
            "nodeName": self.node_name,
            "created": rfc3339(self.created),
            "expiration": self.expiration.map(rfc3339),
            "maxUses": self.max_uses,
            "uses": self.uses,
        })
    }

    /// Reads a stored record. A token stored before tokens had a TTL has none: it never
    /// expires (the coordinator warns about it at start).
    pub fn from_store(record: &Record) -> Result<TokenRecord, String> {
        let object = &record.object;
        let hash = object
            .get("hash")
            .and_then(Value::as_str)
            .ok_or("no secret hash")?;
        let time = |field: &str| -> Result<Option<SystemTime>, String> {
            match object.get(field).and_then(Value::as_str) {
                None => Ok(None),
                Some(text) => humantime::parse_rfc3339(text)
                    .map(Some)
                    .map_err(|e| format!("{field}: {e}")),
            }
        };
        let created = match time("created")? {
            Some(created) => created,
            None => humantime::parse_rfc3339(&record.creation_timestamp)
                .map_err(|e| format!("creationTimestamp: {e}"))?,
        };
        Ok(TokenRecord {
            id: record.name.clone(),
            hash: hash.to_string(),
            description: object
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            node_name: object
                .get("nodeName")
                .and_then(Value::as_str)
                .map(str::to_string),
            created,
            expiration: time("expiration")?,
            max_uses: object.get("maxUses").and_then(Value::as_u64),
            uses: object.get("uses").and_then(Value::as_u64).unwrap_or(0),
        })
    }

    /// The token as `berth token list` shows it: no hash, no secret.
    pub fn view(&self, now: SystemTime) -> Value {
        let expired = self.expiration.is_some_and(|at| now >= at);
        let used_up = self.max_uses.is_some_and(|max| self.uses >= max);
        json!({
            "apiVersion": "berth.dev/v1",
            "kind": "JoinToken",
            "metadata": {"name": self.id, "creationTimestamp": rfc3339(self.created)},
            "spec": {
                "description": self.description,
                "nodeName": self.node_name,
                "expiration": self.expiration.map(rfc3339),
                "maxUses": self.max_uses,
            },
            "status": {"uses": self.uses, "expired": expired, "usedUp": used_up},
        })
    }
}

/// RFC 3339 UTC with seconds, as Kubernetes writes timestamps.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// `time` cut to a whole second, or rounded up to the next one: an expiration is written
/// in whole seconds and must never come earlier than the TTL asked for.
fn whole_second(time: SystemTime, round_up: bool) -> SystemTime {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let extra = u64::from(round_up && since.subsec_nanos() > 0);
    UNIX_EPOCH + Duration::from_secs(since.as_secs() + extra)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::tokens::hash_secret;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn record(spec: TokenSpec, now: SystemTime) -> TokenRecord {
        TokenRecord::new(
            "abc123",
            &hash_secret("s3cret"),
            &spec.rules().unwrap(),
            now,
        )
        .unwrap()
    }

    fn as_stored(record: &TokenRecord) -> Record {
        Record {
            kind: JOIN_TOKEN_KIND.into(),
            namespace: String::new(),
            name: record.id.clone(),
            uid: "u".into(),
            generation: 1,
            resource_version: 1,
            creation_timestamp: "2020-01-01T00:00:00Z".into(),
            source: None,
            object: record.to_store(),
            status: None,
        }
    }

    #[test]
    fn defaults_follow_kubeadm() {
        let rules = TokenSpec::default().rules().unwrap();
        assert_eq!(rules.ttl, Some(DEFAULT_TTL));
        assert_eq!(rules.max_uses, None);
        let never = TokenSpec {
            ttl: Some("0".into()),
            max_uses: Some(0),
            ..TokenSpec::default()
        };
        let rules = never.rules().unwrap();
        assert_eq!((rules.ttl, rules.max_uses), (None, None));
        // A token bound to a node joins once unless told otherwise.
        let bound = TokenSpec {
            node_name: Some("pi-1".into()),
            ..TokenSpec::default()
        };
        assert_eq!(bound.rules().unwrap().max_uses, Some(1));
        let bound_thrice = TokenSpec {
            max_uses: Some(3),
            ..bound
        };
        assert_eq!(bound_thrice.rules().unwrap().max_uses, Some(3));
    }

    #[test]
    fn bad_specs_name_the_field() {
        let bad = |spec: TokenSpec| spec.rules().unwrap_err();
        assert!(bad(TokenSpec {
            ttl: Some("1 hour".into()),
            ..TokenSpec::default()
        })
        .starts_with("spec.ttl: invalid duration"));
        assert!(bad(TokenSpec {
            node_name: Some("Pi_1".into()),
            ..TokenSpec::default()
        })
        .starts_with("spec.nodeName: invalid node name"));
        assert!(bad(TokenSpec {
            description: Some("a\nb".into()),
            ..TokenSpec::default()
        })
        .starts_with("spec.description"));
        assert!(bad(TokenSpec {
            description: Some("x".repeat(257)),
            ..TokenSpec::default()
        })
        .starts_with("spec.description"));
    }

    #[test]
    fn a_token_expires_at_its_ttl_never_earlier() {
        let now = UNIX_EPOCH + Duration::from_millis(10_300);
        let token = record(
            TokenSpec {
                ttl: Some("1s".into()),
                ..TokenSpec::default()
            },
            now,
        );
        // 10.3 s + 1 s is written as 12 s: rounded up, not down to 11 s.
        assert_eq!(token.expiration, Some(at(12)));
        assert_eq!(token.check_secret("s3cret", at(11)), Ok(()));
        assert_eq!(
            token.check_secret("s3cret", at(12)),
            Err(JoinDenied::Expired {
                id: "abc123".into(),
                at: "1970-01-01T00:00:12Z".into()
            })
        );
        // The wrong secret learns nothing about the token's state.
        assert_eq!(
            token.check_secret("guess", at(12)),
            Err(JoinDenied::Invalid)
        );
        let forever = record(
            TokenSpec {
                ttl: Some("0s".into()),
                ..TokenSpec::default()
            },
            now,
        );
        assert_eq!(
            forever.check_secret("s3cret", at(u64::from(u32::MAX))),
            Ok(())
        );
    }

    #[test]
    fn a_token_is_used_up_after_its_uses() {
        let mut token = record(
            TokenSpec {
                max_uses: Some(2),
                ..TokenSpec::default()
            },
            at(0),
        );
        for _ in 0..2 {
            assert_eq!(token.check_secret("s3cret", at(1)), Ok(()));
            token.uses += 1;
        }
        let denied = token.check_secret("s3cret", at(1)).unwrap_err();
        assert_eq!(
            denied,
            JoinDenied::UsedUp {
                id: "abc123".into(),
                max_uses: 2
            }
        );
        assert_eq!(denied.status(), (401, "Unauthorized"));
        assert!(denied.to_string().contains("used up"), "{denied}");
    }

    #[test]
    fn a_bound_token_joins_only_its_node_and_may_replace_it() {
        let token = record(
            TokenSpec {
                node_name: Some("pi-1".into()),
                ..TokenSpec::default()
            },
            at(0),
        );
        assert_eq!(token.check_node("pi-1"), Ok(()));
        assert!(token.may_rejoin("pi-1"));
        let denied = token.check_node("pi-2").unwrap_err();
        assert_eq!(denied.status(), (403, "Forbidden"));
        assert_eq!(
            denied.to_string(),
            "join token \"abc123\" may only join node \"pi-1\", not \"pi-2\""
        );
        let unbound = record(TokenSpec::default(), at(0));
        assert_eq!(unbound.check_node("anything"), Ok(()));
        assert!(!unbound.may_rejoin("anything"));
    }

    #[test]
    fn records_round_trip_through_the_store_without_the_secret() {
        let mut token = record(
            TokenSpec {
                ttl: Some("1h".into()),
                max_uses: Some(3),
                node_name: Some("pi-1".into()),
                description: Some("for the greenhouse".into()),
            },
            at(100),
        );
        token.uses = 2;
        let stored = token.to_store();
        assert!(!stored.to_string().contains("s3cret"));
        assert_eq!(TokenRecord::from_store(&as_stored(&token)).unwrap(), token);

        let view = token.view(at(200));
        assert!(view.get("hash").is_none() && !view.to_string().contains(&token.hash));
        assert_eq!(view["spec"]["expiration"], "1970-01-01T01:01:40Z");
        assert_eq!(
            view["status"],
            json!({"uses": 2, "expired": false, "usedUp": false})
        );
        assert_eq!(token.view(at(3700))["status"]["expired"], true);
    }

    #[test]
    fn a_token_from_before_ttls_never_expires() {
        let mut legacy = as_stored(&record(TokenSpec::default(), at(0)));
        legacy.object = json!({"kind": JOIN_TOKEN_KIND, "metadata": {"name": "abc123"},
                               "hash": hash_secret("s3cret")});
        let token = TokenRecord::from_store(&legacy).unwrap();
        assert_eq!(
            (token.expiration, token.max_uses, token.uses),
            (None, None, 0)
        );
        assert_eq!(
            token.created,
            humantime::parse_rfc3339("2020-01-01T00:00:00Z").unwrap()
        );
        assert_eq!(token.check_secret("s3cret", SystemTime::now()), Ok(()));
    }
}
