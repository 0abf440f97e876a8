//! `WWW-Authenticate` challenges of registries (Basic, and Bearer with a token service).

use std::collections::BTreeMap;

use super::config::Credentials;
use crate::model::base64;

/// A parsed challenge: the scheme (lowercase) and its parameters (lowercase keys).
#[derive(Debug, PartialEq)]
pub(crate) struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// Parses `Bearer realm="https://auth/token",service="reg",scope="repository:a:pull"`.
    /// Quoted values may contain commas; `None` if there is no scheme.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.is_empty() {
            return None;
        }
        let mut params = BTreeMap::new();
        let mut chars = rest.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
                chars.next();
            }
            let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
            if key.is_empty() {
                break;
            }
            let mut value = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        other => value.push(other),
                    }
                }
            } else {
                value = chars.by_ref().take_while(|c| *c != ',').collect();
            }
            params.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
        }
        Some(Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params,
        })
    }

    /// The token service URL for a Bearer challenge, with its service and scope; the
    /// scope defaults to pulling `repository`.
    pub fn token_url(&self, repository: &str) -> Option<String> {
        let realm = self.params.get("realm")?;
        let mut url = realm.clone();
        let mut separator = if realm.contains('?') { '&' } else { '?' };
        if let Some(service) = self.params.get("service") {
            url.push_str(&format!("{separator}service={}", query_encode(service)));
            separator = '&';
        }
        let default_scope = format!("repository:{repository}:pull");
        let scope = self.params.get("scope").unwrap_or(&default_scope);
        url.push_str(&format!("{separator}scope={}", query_encode(scope)));
        Some(url)
    }
}

/// The `Authorization` value for credentials sent directly (not through a token service).
pub(crate) fn direct_authorization(credentials: &Credentials) -> String {
    match credentials {
        Credentials::Basic { username, password } => basic(username, password),
        Credentials::Token(token) => format!("Bearer {token}"),
    }
}

pub(crate) fn basic(username: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::encode(format!("{username}:{password}").as_bytes())
    )
}

fn query_encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenge_with_commas_in_quotes() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.docker.io/token");
        assert_eq!(c.params["scope"], "repository:library/busybox:pull,push");
        assert_eq!(
            c.token_url("library/busybox").unwrap(),
            "https://auth.docker.io/token?service=registry.docker.io&scope=repository%3Alibrary%2Fbusybox%3Apull%2Cpush"
        );
    }

    #[test]
    fn parses_basic_and_defaults_scope() {
        let c = Challenge::parse(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "Registry Realm");
        let c = Challenge::parse("Bearer realm=https://t.example/token?x=1").unwrap();
        assert_eq!(
            c.token_url("a/b").unwrap(),
            "https://t.example/token?x=1&scope=repository%3Aa%2Fb%3Apull"
        );
        assert!(Challenge::parse("").is_none());
        assert_eq!(
            basic("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }
}
