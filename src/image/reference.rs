//! Image reference parsing with Docker's normalization rules.

use super::ImageError;

const DEFAULT_DOMAIN: &str = "docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A reference split into its parts, after normalization.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Reference {
    /// `domain/path`, e.g. `docker.io/library/busybox`.
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<hex>`.
    pub digest: Option<String>,
}

impl Reference {
    /// (`registry`, `path`) of the repository; `input` names the reference in errors.
    pub fn registry_and_path(&self, input: &str) -> Result<(&str, &str), ImageError> {
        self.repository
            .split_once('/')
            .ok_or_else(|| ImageError::InvalidReference {
                reference: input.to_string(),
                reason: "no repository path".to_string(),
            })
    }

    /// What to ask the registry for: the digest, else the tag, else `latest`.
    pub fn tag_or_digest(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    pub fn to_canonical(&self) -> String {
        let mut out = self.repository.clone();
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest);
        }
        out
    }
}

/// Normalizes a reference the way Docker does: `busybox` becomes
/// `docker.io/library/busybox:latest`, `user/x:1` becomes `docker.io/user/x:1`,
/// `localhost:5000/x` becomes `localhost:5000/x:latest`; `@sha256:` digests are kept.
pub fn normalize_reference(r: &str) -> Result<String, ImageError> {
    parse_reference(r).map(|parsed| parsed.to_canonical())
}

pub(crate) fn parse_reference(input: &str) -> Result<Reference, ImageError> {
    let invalid = |reason: &str| ImageError::InvalidReference {
        reference: input.to_string(),
        reason: reason.to_string(),
    };
    if input.is_empty() {
        return Err(invalid("reference is empty"));
    }
    if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("reference contains whitespace"));
    }

    let (name_and_tag, digest) = match input.split_once('@') {
        Some((name, digest)) => {
            validate_digest(digest).map_err(|reason| invalid(&reason))?;
            (name, Some(digest.to_string()))
        }
        None => (input, None),
    };

    // A ':' after the last '/' starts the tag; an earlier one belongs to a registry port.
    let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
        Some(i) => {
            let split = last_slash + i;
            (&name_and_tag[..split], Some(&name_and_tag[split + 1..]))
        }
        None => (name_and_tag, None),
    };
    if let Some(tag) = tag {
        validate_tag(tag).map_err(|reason| invalid(&reason))?;
    }

    let (domain, path) = split_domain(name);
    validate_domain(&domain).map_err(|reason| invalid(&reason))?;
    if path.is_empty() {
        return Err(invalid("repository name is empty"));
    }
    for component in path.split('/') {
        validate_path_component(component).map_err(|reason| invalid(&reason))?;
    }
    let repository = format!("{domain}/{path}");
    if repository.len() > MAX_NAME_LEN {
        return Err(invalid("repository name is longer than 255 characters"));
    }

    // Docker only adds ":latest" when neither a tag nor a digest pins the image.
    let tag = match (tag, &digest) {
        (Some(tag), _) => Some(tag.to_string()),
        (None, Some(_)) => None,
        (None, None) => Some("latest".to_string()),
    };
    Ok(Reference {
        repository,
        tag,
        digest,
    })
}

/// Splits `name` into registry domain and repository path, applying Docker's defaults.
fn split_domain(name: &str) -> (String, String) {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    let domain = if domain == "index.docker.io" {
        DEFAULT_DOMAIN.to_string()
    } else {
        domain
    };
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') && !path.is_empty() {
        format!("{OFFICIAL_PREFIX}{path}")
    } else {
        path
    };
    (domain, path)
}

pub(crate) fn validate_digest(digest: &str) -> Result<(), String> {
    let Some(hex) = digest.strip_prefix("sha256:") else {
        return Err(format!("digest {digest:?} is not a sha256 digest"));
    };
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!(
            "digest {digest:?} must be sha256: followed by 64 lowercase hex digits"
        ));
    }
    Ok(())
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let valid_chars = tag
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    let valid_start = tag
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    if tag.is_empty() || tag.len() > MAX_TAG_LEN || !valid_chars || !valid_start {
        return Err(format!(
            "tag {tag:?} must be 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
        ));
    }
    Ok(())
}

fn validate_domain(domain: &str) -> Result<(), String> {
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || domain.starts_with('[') => (host, Some(port)),
        _ => (domain, None),
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("registry port {port:?} is not a number"));
        }
    }
    let valid_host = if let Some(inner) = host.strip_prefix('[') {
        // IPv6 literal.
        inner.strip_suffix(']').is_some_and(|ip| {
            !ip.is_empty() && ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
        })
    } else {
        !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    };
    if !valid_host {
        return Err(format!("registry host {host:?} is not a valid host name"));
    }
    Ok(())
}

/// A path component is lowercase alphanumerics joined by single separators
/// (`.`, `_`, `__` or one or more `-`).
fn validate_path_component(component: &str) -> Result<(), String> {
    let bytes = component.as_bytes();
    let is_alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let fail = || {
        if component.bytes().any(|b| b.is_ascii_uppercase()) {
            format!("repository name component {component:?} must be lowercase")
        } else {
            format!(
                "repository name component {component:?} must be lowercase letters and digits \
                 separated by '.', '_', '__' or '-'"
            )
        }
    };
    if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return Err(fail());
    }
    let mut i = 0;
    while i < bytes.len() {
        if is_alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let valid = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !valid {
            return Err(fail());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalizes_like_docker() {
        let digest = format!("sha256:{HEX}");
        let cases = [
            ("busybox", "docker.io/library/busybox:latest".to_string()),
            ("busybox:1.35", "docker.io/library/busybox:1.35".to_string()),
            ("user/x:1", "docker.io/user/x:1".to_string()),
            (
                "docker.io/busybox",
                "docker.io/library/busybox:latest".to_string(),
            ),
            (
                "index.docker.io/library/busybox:1",
                "docker.io/library/busybox:1".to_string(),
            ),
            ("localhost:5000/x", "localhost:5000/x:latest".to_string()),
            ("localhost/x:2", "localhost/x:2".to_string()),
            (
                "ghcr.io/org/sub/app:v1.2.3",
                "ghcr.io/org/sub/app:v1.2.3".to_string(),
            ),
            (
                "127.0.0.1:5000/a_b__c-d--e.f:t",
                "127.0.0.1:5000/a_b__c-d--e.f:t".to_string(),
            ),
            (
                &*format!("busybox@{digest}"),
                format!("docker.io/library/busybox@{digest}"),
            ),
            (
                &*format!("busybox:1.35@{digest}"),
                format!("docker.io/library/busybox:1.35@{digest}"),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_reference(input).unwrap(), want, "input {input}");
        }
    }

    #[test]
    fn rejects_invalid_references() {
        let cases = [
            ("", "empty"),
            ("Busybox", "lowercase"),
            ("busybox:", "tag"),
            ("busybox:-x", "tag"),
            ("busybox@sha256:abc", "64"),
            ("busybox@md5:0123", "sha256"),
            ("a//b", "component"),
            ("bad_/x", "component"),
            ("localhost:port/x", "port"),
            ("with space", "whitespace"),
            ("docker.io/", "empty"),
            ("x/a..b", "component"),
        ];
        for (input, reason) in cases {
            let err = normalize_reference(input).unwrap_err().to_string();
            assert!(err.contains(reason), "input {input:?}: {err}");
            assert!(err.contains("invalid image reference"), "{err}");
        }
    }

    #[test]
    fn parse_splits_parts() {
        let parsed = parse_reference("localhost:5000/app").unwrap();
        assert_eq!(parsed.repository, "localhost:5000/app");
        assert_eq!(parsed.tag.as_deref(), Some("latest"));
        assert_eq!(parsed.digest, None);
        let parsed = parse_reference(&format!("app@sha256:{HEX}")).unwrap();
        assert_eq!(parsed.tag, None);
        assert_eq!(parsed.digest, Some(format!("sha256:{HEX}")));
    }
}
