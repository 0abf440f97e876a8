//! Who is asking: the admin, a node, or nobody. Credentials are bearer tokens; the store
//! keeps only their sha256 (internal kinds never served by the API), and this module
//! keeps those hashes in memory so a request costs no SQLite read.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use anyhow::Context;
use serde_json::{json, Value};

use super::join_tokens::{JoinDenied, TokenRecord, TokenRules, JOIN_TOKEN_KIND};
use super::pki::Pki;
use crate::api::config::{ClientConfig, CONFIG_API_VERSION, CONFIG_KIND};
use crate::api::http::Request;
use crate::api::tokens::{hash_secret, verify_secret, Credential, JoinToken};
use crate::store::{Key, Store};

/// Store kind of a credential hash (name `admin` or `node.<name>`).
const CREDENTIAL_KIND: &str = "BerthCredential";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    Admin,
    Node(String),
}

/// Why a request is not allowed in.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    /// No credential, or one that does not verify: 401.
    Unauthenticated(String),
}

pub struct Auth {
    /// Credential name → sha256 of its secret.
    credentials: Mutex<HashMap<String, String>>,
    /// Join token id → its record (the secret's hash, TTL, uses, node binding).
    join_tokens: Mutex<HashMap<String, TokenRecord>>,
}

fn credential_name(credential: &Credential) -> String {
    match credential.node_name() {
        Some(node) => format!("node.{node}"),
        None => "admin".to_string(),
    }
}

fn hash_record(kind: &str, name: &str, hash: &str) -> Value {
    json!({"apiVersion": "berth.dev/v1", "kind": kind, "metadata": {"name": name}, "hash": hash})
}

impl Auth {
    pub fn load(store: &mut Store) -> anyhow::Result<Auth> {
        let (credentials, join_tokens) = Auth::read(store)?;
        Ok(Auth {
            credentials: Mutex::new(credentials),
            join_tokens: Mutex::new(join_tokens),
        })
    }

    /// Reads the credentials and join tokens again, after another coordinator changed
    /// them in the shared store.
    pub fn reload(&self, store: &mut Store) -> anyhow::Result<()> {
        let (credentials, join_tokens) = Auth::read(store)?;
        *lock(&self.credentials) = credentials;
        *lock(&self.join_tokens) = join_tokens;
        Ok(())
    }

    #[allow(clippy::type_complexity)]
    fn read(
        store: &mut Store,
    ) -> anyhow::Result<(HashMap<String, String>, HashMap<String, TokenRecord>)> {
        let read = |kind: &str| -> anyhow::Result<HashMap<String, String>> {
            Ok(store
                .list(kind, None)?
                .into_iter()
                .filter_map(|r| {
                    let hash = r.object.get("hash")?.as_str()?.to_string();
                    Some((r.name, hash))
                })
                .collect())
        };
        let mut join_tokens = HashMap::new();
        for record in store.list(JOIN_TOKEN_KIND, None)? {
            match TokenRecord::from_store(&record) {
                Ok(token) => {
                    if token.expiration.is_none() && token.max_uses.is_none() {
                        log::warn!(
                            "join token {} never expires and allows any number of joins; \
                             delete it when no longer needed (berth token delete {})",
                            token.id,
                            token.id
                        );
                    }
                    join_tokens.insert(token.id.clone(), token);
                }
                // Unusable for joins either way; say so rather than fail the start.
                Err(err) => log::warn!("ignoring join token {}: {err}", record.name),
            }
        }
        Ok((read(CREDENTIAL_KIND)?, join_tokens))
    }

    /// The subject of the request's bearer credential.
    pub fn authenticate(&self, request: &Request) -> Result<Subject, Denied> {
        let header = request
            .header("authorization")
            .ok_or_else(|| Denied::Unauthenticated("no credentials".to_string()))?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| Denied::Unauthenticated("expected a bearer token".to_string()))?;
        let credential = Credential::parse(token.trim())
            .map_err(|e| Denied::Unauthenticated(format!("invalid credential: {e}")))?;
        let name = credential_name(&credential);
        let known = lock(&self.credentials).get(&name).cloned();
        match known {
            Some(hash) if verify_secret(credential.secret(), &hash) => {
                Ok(match credential.node_name() {
                    Some(node) => Subject::Node(node.to_string()),
                    None => Subject::Admin,
                })
            }
            _ => Err(Denied::Unauthenticated("invalid credential".to_string())),
        }
    }

    /// The token of a join request's bearer `<id>.<secret>`, if it may still be used
    /// at `now`. Only a caller that knows the secret learns why a token is refused.
    pub fn check_join_token(
        &self,
        bearer: &str,
        now: SystemTime,
    ) -> Result<TokenRecord, JoinDenied> {
        let (id, secret) = bearer.trim().split_once('.').ok_or(JoinDenied::Invalid)?;
        let tokens = lock(&self.join_tokens);
        let token = tokens
            .get(id)
            .ok_or_else(|| JoinDenied::NotFound { id: id.to_string() })?;
        token.check_secret(secret, now)?;
        Ok(token.clone())
    }

    /// Counts a join made with token `id`. The caller holds the store for the whole
    /// join, so two joins cannot both take a token's last use.
    pub fn count_join(&self, store: &mut Store, id: &str) -> anyhow::Result<()> {
        let mut tokens = lock(&self.join_tokens);
        let Some(token) = tokens.get_mut(id) else {
            return Ok(());
        };
        let mut counted = token.clone();
        counted.uses = counted.uses.saturating_add(1);
        store.put_all(vec![counted.to_store()], None)?;
        *token = counted;
        Ok(())
    }

    /// Makes a join token that pins the CA with `ca_hash`; only its hash is stored.
    pub fn create_join_token(
        &self,
        store: &mut Store,
        ca_hash: &str,
        rules: &TokenRules,
        now: SystemTime,
    ) -> anyhow::Result<(JoinToken, TokenRecord)> {
        let token = JoinToken::generate(ca_hash)?;
        let record = TokenRecord::new(&token.id, &hash_secret(&token.secret), rules, now)
            .map_err(|e| anyhow::anyhow!(e))?;
        store.put_all(vec![record.to_store()], None)?;
        lock(&self.join_tokens).insert(token.id.clone(), record.clone());
        Ok((token, record))
    }

    /// Every join token, oldest first.
    pub fn join_tokens(&self) -> Vec<TokenRecord> {
        let mut tokens: Vec<TokenRecord> = lock(&self.join_tokens).values().cloned().collect();
        crate::support::sort::sort_by(&mut tokens, |a, b| {
            a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id))
        });
        tokens
    }

    /// Deletes join token `id`; false when there is none.
    pub fn delete_join_token(&self, store: &mut Store, id: &str) -> anyhow::Result<bool> {
        let deleted = store.delete_all(&[Key::new(JOIN_TOKEN_KIND, "", id)])?;
        let known = lock(&self.join_tokens).remove(id).is_some();
        Ok(known || !deleted.is_empty())
    }

    /// Whether `node` has a credential: it joined and was not deleted since.
    pub fn has_node_credential(&self, node: &str) -> bool {
        lock(&self.credentials).contains_key(&format!("node.{node}"))
    }

    /// A new credential for `node`, stored hashed. It replaces any older one, which from
    /// then on no longer authenticates.
    pub fn create_node_credential(
        &self,
        store: &mut Store,
        node: &str,
    ) -> anyhow::Result<Credential> {
        let credential = Credential::generate_node(node)?;
        self.remember(store, &credential)?;
        Ok(credential)
    }

    /// Whether `credential` is the one stored for its subject, read from the store (another
    /// coordinator may have stored it a moment ago).
    pub fn is_stored_credential(
        &self,
        store: &Store,
        credential: &Credential,
    ) -> anyhow::Result<bool> {
        let name = credential_name(credential);
        let Some(record) = store.get(CREDENTIAL_KIND, "", &name)? else {
            return Ok(false);
        };
        let hash = record.object.get("hash").and_then(Value::as_str);
        Ok(hash.is_some_and(|hash| verify_secret(credential.secret(), hash)))
    }

    /// Revokes a node's credential (the node was deleted): every request is checked
    /// against the credentials held here, so the next one with it is 401.
    pub fn remove_node_credential(&self, store: &mut Store, node: &str) -> anyhow::Result<()> {
        let name = format!("node.{node}");
        store.delete_all(&[Key::new(CREDENTIAL_KIND, "", &name)])?;
        lock(&self.credentials).remove(&name);
        Ok(())
    }

    /// Stores the hash of `credential` and accepts it from now on.
    pub fn remember_credential(
        &self,
        store: &mut Store,
        credential: &Credential,
    ) -> anyhow::Result<()> {
        self.remember(store, credential)
    }

    fn remember(&self, store: &mut Store, credential: &Credential) -> anyhow::Result<()> {
        let name = credential_name(credential);
        let hash = hash_secret(credential.secret());
        store.put_all(vec![hash_record(CREDENTIAL_KIND, &name, &hash)], None)?;
        lock(&self.credentials).insert(name, hash);
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The URL clients use for a listen address: a wildcard listen is reached on loopback
/// from this machine (the admin config is written here).
pub fn server_url(listen: &SocketAddr) -> String {
    let ip = listen.ip();
    let host = if ip.is_unspecified() {
        "127.0.0.1".to_string()
    } else if ip.is_ipv6() {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    format!("https://{host}:{}", listen.port())
}

/// Writes `path` with a fresh admin credential when it does not exist (first start, or
/// the admin removed it to rotate the credential). An existing file is left alone.
pub fn ensure_admin_config(
    auth: &Auth,
    store: &mut Store,
    path: &Path,
    url: &str,
    pki: &Pki,
    shared: bool,
) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    // Coordinators sharing etcd hand out one admin credential; a lone one makes its own.
    let credential = if shared {
        super::shared::admin_credential(auth, store)?
    } else {
        let credential = Credential::generate_admin()?;
        auth.remember(store, &credential)?;
        credential
    };
    let config = ClientConfig {
        api_version: CONFIG_API_VERSION.to_string(),
        kind: CONFIG_KIND.to_string(),
        server: url.to_string(),
        certificate_authority: pki.ca_pem().to_string(),
        token: credential.to_string(),
        namespace: None,
    };
    super::pki::write_private_file(path, config.to_yaml().as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    log::info!("wrote the admin config {}", path.display());
    Ok(())
}

/// Adds the URLs of coordinators registered in etcd to the admin config at `path`, so
/// that the CLI can fail over to each of them. A coordinator once listed stays listed:
/// it matters most while it is down. Returns whether the file changed; no file, no
/// change (the admin removed it to rotate the credential, and the next start writes it).
pub fn list_coordinators_in_admin_config(
    path: &Path,
    own_url: &str,
    registered: &[String],
) -> anyhow::Result<bool> {
    if !path.exists() {
        return Ok(false);
    }
    let mut config = ClientConfig::load(path)?;
    let servers = merged_servers(&config.server, own_url, registered);
    if servers == config.server {
        return Ok(false);
    }
    config.server = servers;
    super::pki::write_private_file(path, config.to_yaml().as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    log::info!("{} now lists {}", path.display(), config.server);
    Ok(true)
}

/// `current` (comma-separated URLs) with `own` first if it was missing and every URL of
/// `registered` not yet in it appended, in order.
fn merged_servers(current: &str, own: &str, registered: &[String]) -> String {
    let mut servers: Vec<&str> = current
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .collect();
    if !servers.contains(&own) {
        servers.insert(0, own);
    }
    for url in registered {
        if !servers.contains(&url.as_str()) {
            servers.push(url);
        }
    }
    servers.join(",")
}

#[cfg(test)]
mod admin_config_tests {
    use super::merged_servers;

    #[test]
    fn servers_keep_their_order_and_only_grow() {
        let registered = ["https://b:6443".to_string(), "https://a:6443".to_string()];
        assert_eq!(
            merged_servers("https://a:6443", "https://a:6443", &registered),
            "https://a:6443,https://b:6443"
        );
        // One that stopped (no longer registered) stays; the own URL goes first if missing.
        assert_eq!(
            merged_servers(
                "https://c:6443, https://b:6443",
                "https://a:6443",
                &registered
            ),
            "https://a:6443,https://c:6443,https://b:6443"
        );
        assert_eq!(merged_servers("", "https://a:6443", &[]), "https://a:6443");
    }
}
