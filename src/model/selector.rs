//! Equality-based label selectors as typed after `-l` (`app=web,tier==front`).

use std::collections::BTreeMap;

use crate::model::{validate_label_key, validate_label_value};

/// Parses `k=v,k2==v2` into pairs. An empty string selects everything. Set-based and
/// inequality terms are not supported and are reported with the term that used them.
pub fn parse_selector(s: &str) -> Result<Vec<(String, String)>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut pairs = Vec::new();
    for raw in s.split(',') {
        let term = raw.trim();
        let unsupported = || {
            format!("unsupported selector term {term:?}: only equality terms like key=value are supported")
        };
        if term.contains("!=") {
            return Err(unsupported());
        }
        let (key, value) = term
            .split_once("==")
            .or_else(|| term.split_once('='))
            .ok_or_else(unsupported)?;
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() || value.contains('=') {
            return Err(unsupported());
        }
        validate_label_key(key).map_err(|e| format!("selector term {term:?}: {e}"))?;
        validate_label_value(value).map_err(|e| format!("selector term {term:?}: {e}"))?;
        pairs.push((key.to_string(), value.to_string()));
    }
    Ok(pairs)
}

/// True when every pair of the selector is present in `labels`.
pub fn selector_matches(sel: &[(String, String)], labels: &BTreeMap<String, String>) -> bool {
    sel.iter()
        .all(|(key, value)| labels.get(key) == Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_equality_terms() {
        assert_eq!(parse_selector(""), Ok(vec![]));
        assert_eq!(parse_selector("app=web"), Ok(pairs(&[("app", "web")])));
        assert_eq!(
            parse_selector("app=web, tier==front,empty="),
            Ok(pairs(&[("app", "web"), ("tier", "front"), ("empty", "")]))
        );
    }

    #[test]
    fn rejects_other_terms_naming_them() {
        for (input, term) in [
            ("app!=web", "app!=web"),
            ("app=web,tier in (a,b)", "tier in (a"),
            ("app", "app"),
            ("app=web,,", ""),
            ("=web", "=web"),
            ("a=b=c", "a=b=c"),
            ("Bad_/x=y", "Bad_/x=y"),
        ] {
            let err = parse_selector(input).unwrap_err();
            assert!(err.contains(&format!("{term:?}")), "{input}: {err}");
        }
    }

    #[test]
    fn matches_subsets() {
        let labels: BTreeMap<String, String> = [("app", "web"), ("tier", "front")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(selector_matches(&[], &labels));
        assert!(selector_matches(&pairs(&[("app", "web")]), &labels));
        assert!(!selector_matches(&pairs(&[("app", "db")]), &labels));
        assert!(!selector_matches(&pairs(&[("zone", "a")]), &labels));
    }
}
