//! Name rules from Kubernetes: DNS-1123 labels and subdomains for object names, qualified
//! names for label and annotation keys, and IANA service names for ports.

/// Explanation appended to errors about names that must be DNS-1123 labels.
pub(crate) const DNS1123_LABEL_RULE: &str = "must be a lowercase RFC 1123 label: at most 63 \
     lowercase letters, digits or '-', starting and ending with a letter or digit";

/// Explanation appended to errors about names that must be DNS-1035 labels (Services).
pub(crate) const DNS1035_LABEL_RULE: &str = "must be a lowercase RFC 1035 label: at most 63 \
     lowercase letters, digits or '-', starting with a letter and ending with a letter or digit";

/// Explanation appended to errors about names that must be DNS-1123 subdomains.
pub(crate) const DNS1123_SUBDOMAIN_RULE: &str = "must be a lowercase RFC 1123 subdomain: at most \
     253 characters of dot-separated labels made of lowercase letters, digits or '-', each \
     starting and ending with a letter or digit";

const LABEL_MAX: usize = 63;
const SUBDOMAIN_MAX: usize = 253;
const IANA_SVC_NAME_MAX: usize = 15;

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    let edge_ok = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !s.is_empty()
        && s.len() <= LABEL_MAX
        && bytes.iter().all(|b| edge_ok(b) || *b == b'-')
        && bytes.first().is_some_and(edge_ok)
        && bytes.last().is_some_and(edge_ok)
}

/// A DNS-1123 label that starts with a letter: what a Service name must be, since it
/// becomes a DNS name and an environment variable prefix.
pub fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
}

/// Dot-separated DNS-1123 labels, at most 253 characters in all.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= SUBDOMAIN_MAX && s.split('.').all(is_dns1123_label)
}

/// A port name: at most 15 lowercase letters, digits or '-', with at least one letter,
/// no leading, trailing or doubled '-'.
pub fn is_iana_svc_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= IANA_SVC_NAME_MAX
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// The name part of a qualified name, and label values: letters, digits, '-', '_' and
/// '.', starting and ending with a letter or digit, at most 63 characters.
fn is_label_segment(s: &str) -> bool {
    let bytes = s.as_bytes();
    let edge_ok = |b: &u8| b.is_ascii_alphanumeric();
    !s.is_empty()
        && s.len() <= LABEL_MAX
        && bytes
            .iter()
            .all(|b| edge_ok(b) || matches!(b, b'-' | b'_' | b'.'))
        && bytes.first().is_some_and(edge_ok)
        && bytes.last().is_some_and(edge_ok)
}

/// Checks a label or annotation key: `[prefix/]name` where the optional prefix is a
/// DNS-1123 subdomain. The error explains the rule.
pub fn validate_qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if !is_dns1123_subdomain(prefix) {
            return Err(format!(
                "invalid key {key:?}: the prefix before '/' {DNS1123_SUBDOMAIN_RULE}"
            ));
        }
    }
    if !is_label_segment(name) {
        return Err(format!(
            "invalid key {key:?}: the name part must be at most 63 letters, digits, '-', '_' \
             or '.', starting and ending with a letter or digit, with an optional DNS \
             subdomain prefix and '/'"
        ));
    }
    Ok(())
}

/// Label keys follow the qualified-name rules.
pub fn validate_label_key(key: &str) -> Result<(), String> {
    validate_qualified_name(key)
}

/// A label value may be empty; otherwise it follows the name-part rules.
pub fn validate_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_label_segment(value) {
        Ok(())
    } else {
        Err(format!(
            "invalid label value {value:?}: must be empty or at most 63 letters, digits, '-', \
             '_' or '.', starting and ending with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for good in ["a", "web", "web-1", "0abc", &"a".repeat(63)] {
            assert!(is_dns1123_label(good), "{good}");
        }
        for bad in ["", "Web", "web_1", "-web", "web-", "a.b", &"a".repeat(64)] {
            assert!(!is_dns1123_label(bad), "{bad}");
        }
    }

    #[test]
    fn service_names_start_with_a_letter() {
        assert!(is_dns1035_label("web-1"));
        for bad in ["1web", "-web", "Web", ""] {
            assert!(!is_dns1035_label(bad), "{bad}");
        }
    }

    #[test]
    fn dns_subdomains() {
        for good in ["hello", "hello.example.com", "a-1.b-2"] {
            assert!(is_dns1123_subdomain(good), "{good}");
        }
        let too_long = vec!["a".repeat(50); 6].join(".");
        for bad in ["", "Foo_1", ".a", "a.", "a..b", too_long.as_str()] {
            assert!(!is_dns1123_subdomain(bad), "{bad}");
        }
    }

    #[test]
    fn label_keys_and_values() {
        for good in [
            "app",
            "app.kubernetes.io/name",
            "kubernetes.io/arch",
            "A_b.c-D",
        ] {
            assert!(validate_label_key(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/app",
            "Example.com/app",
            "a/b/c",
            "-app",
            "app_",
            &"k".repeat(64),
        ] {
            assert!(validate_label_key(bad).is_err(), "{bad}");
        }
        for good in ["", "v1", "1.2.3", "Hello_World"] {
            assert!(validate_label_value(good).is_ok(), "{good}");
        }
        for bad in ["-v", "v!", "has space", &"v".repeat(64)] {
            assert!(validate_label_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn port_names() {
        for good in ["http", "web-8080", "a1"] {
            assert!(is_iana_svc_name(good), "{good}");
        }
        for bad in [
            "",
            "8080",
            "HTTP",
            "-http",
            "http-",
            "we--b",
            "abcdefghijklmnop",
        ] {
            assert!(!is_iana_svc_name(bad), "{bad}");
        }
    }
}
