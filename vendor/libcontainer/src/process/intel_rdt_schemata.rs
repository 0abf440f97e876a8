//! berth: the grammar of resctrl schemata lines, checked by hand.
//!
//! intel_rdt.rs checked these lines with regular expressions, which linked the regex crate
//! and its Unicode tables (berth's docs/footprint.md has the bytes) for lines that the
//! kernel writes in ASCII. After `NAME:`, the expressions were
//!
//! ```text
//! (?:\s|;)*(?:\w+\s*=\s*V)?(?:(?:\s*;+\s*)+\w+\s*=\s*V)*(?:\s|;)*$
//! ```
//!
//! with `V` = `\w+` (MB lines) or `[[:xdigit:]]+` (L3 and other resources): `key=value`
//! tokens, each separated from the next by at least one `;`, with whitespace and `;`
//! anywhere between them. That is the same as: split on `;`, and every piece, trimmed
//! of whitespace, is empty or one token. `\s` is Unicode White_Space, as `str::trim`.
//! `\w` is read as `char::is_alphanumeric` or `_`: the same for ASCII; beyond ASCII the
//! regex's `\w` also took combining marks and other connector punctuation and did not
//! take numerals such as '²' (neither occurs in a schemata line). The capture
//! expressions found the same tokens in the same order. See
//! vendor/libcontainer-0.7.0-no-regex.patch; berth's src/runtime/vendored_checks.rs
//! tests this file against the original expressions.

/// Whether `c` is a word character, `\w`.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The `key=value` tokens of the part of a schemata line after `NAME:`, in order, or
/// `None` if it does not follow the grammar above. `hex_values` asks for hex digit
/// values rather than word characters.
pub(crate) fn schemata_tokens(body: &str, hex_values: bool) -> Option<Vec<(&str, &str)>> {
    let mut tokens = Vec::new();
    for piece in body.split(';') {
        let piece = piece.trim();
        if piece.is_empty() {
            continue;
        }
        let (key, value) = piece.split_once('=')?;
        let (key, value) = (key.trim_end(), value.trim_start());
        let value_ok = if hex_values {
            value.chars().all(|c| c.is_ascii_hexdigit())
        } else {
            value.chars().all(is_word_char)
        };
        if key.is_empty() || value.is_empty() || !key.chars().all(is_word_char) || !value_ok {
            return None;
        }
        tokens.push((key, value));
    }
    Some(tokens)
}

/// The body of an L3, L3DATA or L3CODE line, what follows `NAME:`, or `None`.
pub(crate) fn l3_body(line: &str) -> Option<&str> {
    line.split_once(':')
        .filter(|(name, _)| matches!(*name, "L3" | "L3DATA" | "L3CODE"))
        .map(|(_, body)| body)
}

/// The body of a line for another resource (`[A-Za-z0-9]+:`), or `None`.
pub(crate) fn generic_body(line: &str) -> Option<&str> {
    line.split_once(':')
        .filter(|(name, _)| !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(|(_, body)| body)
}

/// A hex mask without its leading zeros ("00ff" is "ff", "000" is "0").
pub(crate) fn without_leading_zeros(value: &str) -> &str {
    let trimmed = value.trim_start_matches('0');
    if trimmed.is_empty() {
        "0"
    } else {
        trimmed
    }
}
