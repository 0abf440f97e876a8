//! Secrets, join tokens and bearer credentials of the coordinator, with stable text forms.
//! They live in the api layer because both sides read them: the coordinator makes and
//! checks them, agents and the CLI parse and present them.
//!
//! All secrets are 32 random bytes from the operating system ([`crate::support::random`]),
//! written as 64 lowercase hex digits. Parsers accept any secret made of `[A-Za-z0-9_-]`
//! (hex and base64url both fit), so a secret never contains a `.` or a `:` and the
//! separators below are unambiguous. Parsers trim surrounding whitespace (a token pasted
//! from a file often ends in a newline). Error messages never repeat a secret.
//!
//! # Join token
//!
//! ```text
//! K10<ca_hash>::<id>.<secret>
//! ```
//!
//! - `ca_hash`: 64 hex digits, the sha256 of the coordinator's CA certificate (DER). The
//!   agent pins it during its first TLS handshake, so it verifies the coordinator before
//!   it sends anything.
//! - `id`: 1 to 32 characters of `[a-z0-9]`; names the token so the admin can list and
//!   delete it without seeing the secret.
//! - `secret`: proves the agent was given the token. The coordinator stores only
//!   `(id, hash_secret(secret))`.
//!
//! # Bearer credentials
//!
//! ```text
//! berth-admin.<secret>
//! berth-node.<node name>.<secret>
//! ```
//!
//! A node name is a DNS-1123 subdomain, so it may contain dots itself; the secret is what
//! follows the *last* dot. The coordinator stores `hash_secret(secret)` per credential and
//! checks a presented one with [`verify_secret`].

use std::fmt;

use sha2::{Digest, Sha256};

use crate::model::hex;

/// Prefix of a join token; "K10" keeps the shape familiar to k3s users.
const JOIN_TOKEN_PREFIX: &str = "K10";
const ADMIN_PREFIX: &str = "berth-admin.";
const NODE_PREFIX: &str = "berth-node.";
const SECRET_BYTES: usize = 32;
const TOKEN_ID_BYTES: usize = 6;
const MAX_TOKEN_ID_LEN: usize = 32;
const MAX_SECRET_LEN: usize = 256;

/// Why a secret could not be made or a token or credential could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the operating system's random number generator failed")]
    Random,
    #[error("a join token starts with \"{JOIN_TOKEN_PREFIX}\"")]
    WrongPrefix,
    #[error("a join token has the form K10<ca hash>::<id>.<secret>; the \"::\" is missing")]
    MissingSeparator,
    #[error("the join token's CA hash must be 64 hex digits (sha256), found {found} characters")]
    BadHashLength { found: usize },
    #[error("the join token's CA hash contains a character that is not a hex digit")]
    BadHashDigit,
    #[error("the join token has no secret; expected <id>.<secret> after \"::\"")]
    MissingSecret,
    #[error("invalid token id {id:?}: use 1 to {MAX_TOKEN_ID_LEN} characters of a-z and 0-9")]
    BadTokenId { id: String },
    #[error("the {what} secret is empty")]
    EmptySecret { what: &'static str },
    #[error(
        "the {what} secret must be at most {MAX_SECRET_LEN} characters of A-Z, a-z, 0-9, '-' and '_'"
    )]
    BadSecret { what: &'static str },
    #[error("a credential starts with \"{ADMIN_PREFIX}\" or \"{NODE_PREFIX}\"")]
    UnknownCredentialKind,
    #[error("a node credential has the form berth-node.<node name>.<secret>; a part is missing")]
    MissingCredentialPart,
    #[error("invalid node name {name:?}: {reason}")]
    BadNodeName { name: String, reason: &'static str },
}

/// Returns a fresh secret: 32 random bytes as 64 lowercase hex digits.
pub fn random_secret() -> Result<String, TokenError> {
    random_hex(SECRET_BYTES)
}

/// Returns the lowercase hex sha256 of `secret`: what the coordinator stores instead of it.
pub fn hash_secret(secret: &str) -> String {
    sha256_hex(secret.as_bytes())
}

/// Checks `secret` against a hash made by [`hash_secret`]. The comparison takes the same
/// time wherever the first difference is, so response times do not leak the stored hash.
pub fn verify_secret(secret: &str, stored_hash: &str) -> bool {
    constant_time_eq(hash_secret(secret).as_bytes(), stored_hash.as_bytes())
}

/// Lowercase hex sha256 of `bytes`; also the CA hash of a certificate's DER.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes))
}

/// A join token as printed by `berth token create`: see the module docs for the format.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// Lowercase hex sha256 of the coordinator's CA certificate (DER).
    pub ca_hash: String,
    pub id: String,
    pub secret: String,
}

impl JoinToken {
    /// Makes a new token with a random id and secret that pins the CA with `ca_hash`.
    pub fn generate(ca_hash: &str) -> Result<JoinToken, TokenError> {
        Ok(JoinToken {
            ca_hash: parse_ca_hash(ca_hash)?,
            id: random_hex(TOKEN_ID_BYTES)?,
            secret: random_secret()?,
        })
    }

    /// Reads a token in the `K10<ca_hash>::<id>.<secret>` form. The hash is lowercased.
    pub fn parse(text: &str) -> Result<JoinToken, TokenError> {
        let rest = text
            .trim()
            .strip_prefix(JOIN_TOKEN_PREFIX)
            .ok_or(TokenError::WrongPrefix)?;
        let (hash, id_and_secret) = rest.split_once("::").ok_or(TokenError::MissingSeparator)?;
        let ca_hash = parse_ca_hash(hash)?;
        let (id, secret) = id_and_secret
            .split_once('.')
            .ok_or(TokenError::MissingSecret)?;
        check_token_id(id)?;
        check_secret(secret, "join token")?;
        Ok(JoinToken {
            ca_hash,
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{JOIN_TOKEN_PREFIX}{}::{}.{}",
            self.ca_hash, self.id, self.secret
        )
    }
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("ca_hash", &self.ca_hash)
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A bearer credential sent by the CLI (admin) or an agent (node) on every request.
/// `Display` gives the full text form (it contains the secret); `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    Admin { secret: String },
    Node { name: String, secret: String },
}

impl Credential {
    /// Makes a new admin credential with a random secret.
    pub fn generate_admin() -> Result<Credential, TokenError> {
        Ok(Credential::Admin {
            secret: random_secret()?,
        })
    }

    /// Makes a new credential for the node `name` with a random secret.
    pub fn generate_node(name: &str) -> Result<Credential, TokenError> {
        check_node_name(name)?;
        Ok(Credential::Node {
            name: name.to_string(),
            secret: random_secret()?,
        })
    }

    /// Reads `berth-admin.<secret>` or `berth-node.<name>.<secret>`.
    pub fn parse(text: &str) -> Result<Credential, TokenError> {
        let text = text.trim();
        if let Some(secret) = text.strip_prefix(ADMIN_PREFIX) {
            check_secret(secret, "admin credential")?;
            return Ok(Credential::Admin {
                secret: secret.to_string(),
            });
        }
        if let Some(rest) = text.strip_prefix(NODE_PREFIX) {
            // Node names contain dots, secrets never do: split at the last dot.
            let (name, secret) = rest
                .rsplit_once('.')
                .ok_or(TokenError::MissingCredentialPart)?;
            if name.is_empty() {
                return Err(TokenError::MissingCredentialPart);
            }
            check_node_name(name)?;
            check_secret(secret, "node credential")?;
            return Ok(Credential::Node {
                name: name.to_string(),
                secret: secret.to_string(),
            });
        }
        Err(TokenError::UnknownCredentialKind)
    }

    /// The secret part, to check with [`verify_secret`].
    pub fn secret(&self) -> &str {
        match self {
            Credential::Admin { secret } => secret,
            Credential::Node { secret, .. } => secret,
        }
    }

    /// The node name of a node credential; `None` for the admin.
    pub fn node_name(&self) -> Option<&str> {
        match self {
            Credential::Admin { .. } => None,
            Credential::Node { name, .. } => Some(name),
        }
    }
}

impl fmt::Display for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Admin { secret } => write!(f, "{ADMIN_PREFIX}{secret}"),
            Credential::Node { name, secret } => write!(f, "{NODE_PREFIX}{name}.{secret}"),
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Admin { .. } => f
                .debug_struct("Admin")
                .field("secret", &"<redacted>")
                .finish(),
            Credential::Node { name, .. } => f
                .debug_struct("Node")
                .field("name", name)
                .field("secret", &"<redacted>")
                .finish(),
        }
    }
}

/// Checks that `name` is a DNS-1123 subdomain: at most 253 characters, dot-separated
/// labels of 1 to 63 characters of `[a-z0-9-]` that start and end alphanumeric.
pub fn check_node_name(name: &str) -> Result<(), TokenError> {
    let bad = |reason| TokenError::BadNodeName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("it is empty"));
    }
    if name.len() > 253 {
        return Err(bad("it is longer than 253 characters"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(bad(
                "it has an empty label (two dots in a row, or a dot at an end)",
            ));
        }
        if label.len() > 63 {
            return Err(bad("a label is longer than 63 characters"));
        }
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        if !label.chars().all(allowed) {
            return Err(bad("use only lowercase letters, digits, '-' and '.'"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label starts or ends with '-'"));
        }
    }
    Ok(())
}

fn parse_ca_hash(hash: &str) -> Result<String, TokenError> {
    if hash.len() != 64 {
        return Err(TokenError::BadHashLength { found: hash.len() });
    }
    if !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(TokenError::BadHashDigit);
    }
    Ok(hash.to_ascii_lowercase())
}

fn check_token_id(id: &str) -> Result<(), TokenError> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if id.is_empty() || id.len() > MAX_TOKEN_ID_LEN || !id.chars().all(allowed) {
        return Err(TokenError::BadTokenId { id: id.to_string() });
    }
    Ok(())
}

fn check_secret(secret: &str, what: &'static str) -> Result<(), TokenError> {
    if secret.is_empty() {
        return Err(TokenError::EmptySecret { what });
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if secret.len() > MAX_SECRET_LEN || !secret.chars().all(allowed) {
        return Err(TokenError::BadSecret { what });
    }
    Ok(())
}

fn random_hex(len: usize) -> Result<String, TokenError> {
    let mut bytes = vec![0u8; len];
    crate::support::random::fill(&mut bytes).map_err(|_| TokenError::Random)?;
    Ok(hex::encode(&bytes))
}

/// Compares two byte strings without stopping at the first difference. The lengths are
/// not secret (both sides are hex sha256), so a length mismatch may return early.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut difference = 0u8;
    for (x, y) in a.iter().zip(b) {
        difference |= x ^ y;
    }
    // black_box keeps the optimiser from turning the loop into an early-exit compare.
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn random_secrets_are_64_hex_digits_and_differ() {
        let a = random_secret().unwrap();
        let b = random_secret().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn hex_encoding_matches_known_sha256() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn verify_secret_accepts_only_the_hashed_secret() {
        let stored = hash_secret("s3cret");
        assert!(verify_secret("s3cret", &stored));
        assert!(!verify_secret("s3cres", &stored));
        assert!(!verify_secret("", &stored));
        assert!(!verify_secret("s3cret", &stored[..63]));
        assert!(!verify_secret("s3cret", ""));
    }

    #[test]
    fn constant_time_eq_compares_every_byte() {
        assert!(constant_time_eq(b"abcd", b"abcd"));
        assert!(!constant_time_eq(b"abcd", b"abce"));
        assert!(!constant_time_eq(b"xbcd", b"abcd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn join_token_round_trips() {
        let token = JoinToken::generate(HASH).unwrap();
        let text = token.to_string();
        assert!(text.starts_with(&format!("K10{HASH}::{}.", token.id)));
        assert_eq!(JoinToken::parse(&text).unwrap(), token);
        assert_eq!(JoinToken::parse(&format!(" {text}\n")).unwrap(), token);
    }

    #[test]
    fn join_token_parse_lowercases_the_hash() {
        let text = format!("K10{}::abc123.secret", HASH.to_uppercase());
        let token = JoinToken::parse(&text).unwrap();
        assert_eq!(token.ca_hash, HASH);
        assert_eq!(token.id, "abc123");
        assert_eq!(token.secret, "secret");
    }

    #[test]
    fn join_token_parse_errors_are_specific() {
        let parse = |text: &str| JoinToken::parse(text).unwrap_err();
        assert!(matches!(parse("K11abc::a.b"), TokenError::WrongPrefix));
        assert!(matches!(parse("K10abc"), TokenError::MissingSeparator));
        assert!(matches!(
            parse("K10abc::a.b"),
            TokenError::BadHashLength { found: 3 }
        ));
        let bad_digit = format!("K10{}g::a.b", &HASH[..63]);
        assert!(matches!(parse(&bad_digit), TokenError::BadHashDigit));
        assert!(matches!(
            parse(&format!("K10{HASH}::abc")),
            TokenError::MissingSecret
        ));
        assert!(matches!(
            parse(&format!("K10{HASH}::.secret")),
            TokenError::BadTokenId { .. }
        ));
        assert!(matches!(
            parse(&format!("K10{HASH}::ABC.secret")),
            TokenError::BadTokenId { .. }
        ));
        assert!(matches!(
            parse(&format!("K10{HASH}::abc.")),
            TokenError::EmptySecret { .. }
        ));
        assert!(matches!(
            parse(&format!("K10{HASH}::abc.se.cret")),
            TokenError::BadSecret { .. }
        ));
    }

    #[test]
    fn errors_and_debug_never_show_the_secret() {
        let token = JoinToken {
            ca_hash: HASH.into(),
            id: "abc".into(),
            secret: "topsecretvalue".into(),
        };
        assert!(!format!("{token:?}").contains("topsecretvalue"));
        let err = JoinToken::parse(&format!("K10{HASH}::abc.topsecret!value")).unwrap_err();
        assert!(!err.to_string().contains("topsecret"));
        let node = Credential::Node {
            name: "pi-1".into(),
            secret: "topsecretvalue".into(),
        };
        let debug = format!("{node:?}");
        assert!(debug.contains("pi-1") && !debug.contains("topsecretvalue"));
        let admin = Credential::Admin {
            secret: "topsecretvalue".into(),
        };
        assert!(!format!("{admin:?}").contains("topsecretvalue"));
    }

    #[test]
    fn admin_credential_round_trips() {
        let admin = Credential::generate_admin().unwrap();
        let text = admin.to_string();
        assert!(text.starts_with("berth-admin."));
        assert_eq!(Credential::parse(&text).unwrap(), admin);
        assert_eq!(admin.node_name(), None);
    }

    #[test]
    fn node_credential_splits_at_the_last_dot() {
        let parsed = Credential::parse("berth-node.pi-1.rack-2.example.abc_DEF-123").unwrap();
        assert_eq!(
            parsed,
            Credential::Node {
                name: "pi-1.rack-2.example".into(),
                secret: "abc_DEF-123".into()
            }
        );
        assert_eq!(parsed.node_name(), Some("pi-1.rack-2.example"));
        assert_eq!(parsed.secret(), "abc_DEF-123");
        let generated = Credential::generate_node("pi-1.lan").unwrap();
        assert_eq!(
            Credential::parse(&generated.to_string()).unwrap(),
            generated
        );
    }

    #[test]
    fn credential_parse_rejects_malformed_text() {
        let parse = |text: &str| Credential::parse(text).unwrap_err();
        assert!(matches!(
            parse("bearer abc"),
            TokenError::UnknownCredentialKind
        ));
        assert!(matches!(
            parse("berth-admin."),
            TokenError::EmptySecret { .. }
        ));
        assert!(matches!(
            parse("berth-node.abc"),
            TokenError::MissingCredentialPart
        ));
        assert!(matches!(
            parse("berth-node..abc"),
            TokenError::MissingCredentialPart
        ));
        assert!(matches!(
            parse("berth-node.pi-1."),
            TokenError::EmptySecret { .. }
        ));
        assert!(matches!(
            parse("berth-node.Pi_1.abc"),
            TokenError::BadNodeName { .. }
        ));
        assert!(matches!(
            parse("berth-node.pi..1.abc"),
            TokenError::BadNodeName { .. }
        ));
        assert!(matches!(
            parse("berth-admin.a b"),
            TokenError::BadSecret { .. }
        ));
    }

    #[test]
    fn node_names_follow_dns_1123_subdomain_rules() {
        assert!(check_node_name("pi-zero-2.local").is_ok());
        assert!(check_node_name("a").is_ok());
        assert!(check_node_name("").is_err());
        assert!(check_node_name("-pi").is_err());
        assert!(check_node_name("pi-").is_err());
        assert!(check_node_name("pi.").is_err());
        assert!(check_node_name(&"a".repeat(64)).is_err());
        assert!(check_node_name(&["a"; 128].join(".")).is_err());
        assert!(check_node_name(&["a"; 127].join(".")).is_ok());
        assert!(matches!(
            Credential::generate_node("Bad"),
            Err(TokenError::BadNodeName { .. })
        ));
    }
}
