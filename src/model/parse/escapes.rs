//! go-yaml's `\'` escape. YAML has no such escape in a double-quoted scalar and libyaml
//! refuses it, but go-yaml (and so kubectl) reads it as `'`, and manifests written for
//! kubectl use it, e.g. `command: ["sh", "-c", "echo \'hi\'"]`.
//!
//! Rather than a second YAML scanner deciding where double-quoted scalars are (plain,
//! single-quoted and block scalars, comments and flow collections all make that subtle),
//! libyaml itself finds them: its "unknown escape character" error points at the
//! backslash, and only there is the text rewritten before parsing again. (A later
//! error's column on the same line then counts the rewritten text, one less per `\'`.)

use std::borrow::Cow;

/// libyaml's message for an escape it does not know, as serde_yaml_ng passes it on.
const UNKNOWN_ESCAPE: &str = "found unknown escape character";

/// Parses `text` with `parse`; each time it fails on a `\'` inside a double-quoted
/// scalar, that scalar's `\'`s become `'` and the text is parsed again. Any other
/// outcome is returned as is. Every retry removes at least one `\'`, so this ends.
pub(super) fn parse_with_quote_escapes<T>(
    text: &str,
    parse: impl Fn(&str) -> (T, Option<serde_yaml_ng::Error>),
) -> T {
    let mut text = Cow::Borrowed(text);
    loop {
        let (parsed, error) = parse(&text);
        let fixed = error
            .as_ref()
            .and_then(|e| quote_escape_at(&text, e))
            .and_then(|at| unescape_quotes_from(&text, at));
        match fixed {
            Some(rewritten) => text = Cow::Owned(rewritten),
            None => return parsed,
        }
    }
}

/// The byte offset of the `\'` a parse error is about, if it is about one.
fn quote_escape_at(text: &str, error: &serde_yaml_ng::Error) -> Option<usize> {
    if !error.to_string().contains(UNKNOWN_ESCAPE) {
        return None;
    }
    let at = error.location()?.index();
    (text.as_bytes().get(at..at + 2) == Some(b"\\'")).then_some(at)
}

/// `text` with every `\'` of the double-quoted scalar that has one at `at` turned into
/// `'`, from `at` to the scalar's closing quote. Other escapes (`\\`, `\"`, ...) are
/// stepped over whole, so `\\'` (an escaped backslash, then a quote) stays as it is.
fn unescape_quotes_from(text: &str, at: usize) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    out.push_str(text.get(..at)?);
    let mut copied = at;
    let mut i = at;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => break,
            b'\\' if bytes.get(i + 1) == Some(&b'\'') => {
                out.push_str(text.get(copied..i)?);
                out.push('\'');
                i += 2;
                copied = i;
            }
            // Stepping into a multi-byte character is harmless: UTF-8 continuation
            // bytes are never `\` or `"`, and slices are only taken at those.
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    out.push_str(text.get(copied..)?);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::unescape_quotes_from;

    #[test]
    fn rewrites_only_up_to_the_closing_quote() {
        let text = r#"a: "x\'y\\'z\"\'" b: "\'""#;
        let fixed = unescape_quotes_from(text, 5).expect("offset on a char boundary");
        assert_eq!(fixed, r#"a: "x'y\\'z\"'" b: "\'""#);
    }

    #[test]
    fn an_unterminated_scalar_is_rewritten_to_the_end() {
        let fixed = unescape_quotes_from(r#""\'é\'"#, 1).expect("offset on a char boundary");
        assert_eq!(fixed, r#""'é'"#);
    }
}
