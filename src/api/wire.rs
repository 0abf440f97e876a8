//! Pure pieces of HTTP/1.1 shared by the server and the client: parsing a message head,
//! query strings, percent-encoding, reason phrases. No I/O here.

/// Largest header section (request line or status line plus headers) we accept.
pub(crate) const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Why a request could not be read; most of these become a 4xx response.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("malformed request: {reason}")]
    Malformed { reason: String },
    #[error("request header section exceeds {limit} bytes")]
    HeadersTooLarge { limit: usize },
    #[error("request body of {length} bytes exceeds the limit of {limit} bytes")]
    BodyTooLarge { length: u64, limit: usize },
    #[error("chunked request bodies are not supported; send Content-Length")]
    LengthRequired,
    #[error("invalid percent-encoding in {input:?}")]
    BadPercentEncoding { input: String },
    #[error("timed out reading the request")]
    Timeout,
    #[error("connection closed before a request arrived")]
    Closed,
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl HttpError {
    /// The status code and Kubernetes reason to answer with, or None when there is no
    /// one left to answer (the client went away).
    pub fn response_status(&self) -> Option<(u16, &'static str)> {
        match self {
            HttpError::Malformed { .. } | HttpError::BadPercentEncoding { .. } => {
                Some((400, "BadRequest"))
            }
            HttpError::HeadersTooLarge { .. } => Some((431, "RequestHeaderFieldsTooLarge")),
            HttpError::BodyTooLarge { .. } => Some((413, "RequestEntityTooLarge")),
            HttpError::LengthRequired => Some((411, "LengthRequired")),
            HttpError::Timeout => Some((408, "Timeout")),
            HttpError::Closed | HttpError::Io { .. } => None,
        }
    }
}

fn malformed(reason: impl Into<String>) -> HttpError {
    HttpError::Malformed {
        reason: reason.into(),
    }
}

/// The first line and the headers of a message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Head {
    /// The three space-separated parts of the first line.
    pub start: [String; 3],
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The declared body length: None when absent, an error when it is not a number or
    /// declared twice with different values.
    pub fn content_length(&self) -> Result<Option<u64>, String> {
        let mut length = None;
        for (name, value) in &self.headers {
            if !name.eq_ignore_ascii_case("content-length") {
                continue;
            }
            let parsed: u64 = value
                .parse()
                .map_err(|_| format!("invalid Content-Length {value:?}"))?;
            if length.is_some_and(|previous| previous != parsed) {
                return Err("conflicting Content-Length headers".to_string());
            }
            length = Some(parsed);
        }
        Ok(length)
    }
}

pub(crate) fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// Position just past the blank line that ends the head, if `buf` holds it all.
pub(crate) fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|pos| pos + 4)
}

/// Parses a message head (without the final blank line).
pub(crate) fn parse_head(head: &[u8]) -> Result<Head, HttpError> {
    let text = std::str::from_utf8(head).map_err(|_| malformed("header section is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.splitn(3, ' ');
    let start = [
        parts.next().unwrap_or_default().to_string(),
        parts.next().unwrap_or_default().to_string(),
        parts.next().unwrap_or_default().to_string(),
    ];
    if start.iter().any(|part| part.is_empty()) {
        return Err(malformed(format!("invalid first line {first:?}")));
    }
    let mut headers = Vec::new();
    for line in lines.filter(|line| !line.is_empty()) {
        // Folded continuation lines are obsolete (RFC 9112) and a classic smuggling vector.
        if line.starts_with([' ', '\t']) {
            return Err(malformed("folded header lines are not supported"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(malformed(format!("invalid header line {line:?}")));
        };
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(malformed(format!("invalid header name {name:?}")));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    Ok(Head { start, headers })
}

/// Characters allowed in methods and header names (RFC 9110 `tchar`).
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Checks a request line's method, target and version.
pub(crate) fn check_request_line(start: &[String; 3]) -> Result<(), HttpError> {
    let [method, target, version] = start;
    if !method.bytes().all(is_token_byte) {
        return Err(malformed(format!("invalid method {method:?}")));
    }
    if !target.starts_with('/') || target.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(malformed(format!("invalid request target {target:?}")));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(malformed(format!(
            "unsupported protocol version {version:?}"
        )));
    }
    Ok(())
}

/// Splits a request target into its path and its percent-decoded query parameters.
/// The path stays encoded so an encoded `/` cannot change how it splits into segments.
pub(crate) fn split_target(target: &str) -> Result<(String, Vec<(String, String)>), HttpError> {
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, query),
        None => (target, ""),
    };
    let mut params = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        params.push((decode_query_part(name)?, decode_query_part(value)?));
    }
    Ok((path.to_string(), params))
}

/// Query strings use form encoding, where `+` is a space.
fn decode_query_part(part: &str) -> Result<String, HttpError> {
    percent_decode(&part.replace('+', " "))
}

/// Encodes everything except RFC 3986 unreserved characters, so the result is safe in a
/// path segment and in a query name or value.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; the result must be UTF-8. `+` is left alone (see `split_target`).
pub fn percent_decode(s: &str) -> Result<String, HttpError> {
    let bad = || HttpError::BadPercentEncoding {
        input: s.to_string(),
    };
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = bytes.get(index + 1..index + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_round_trip() {
        let original = "app=web,tier in (a b)/ü+%";
        let encoded = percent_encode(original);
        assert!(encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
        assert_eq!(percent_decode(&encoded).unwrap(), original);
    }

    #[test]
    fn percent_decode_rejects_bad_escapes() {
        for input in ["%", "%4", "%zz", "abc%G1", "%ff%fe"] {
            let err = percent_decode(input).unwrap_err();
            assert!(
                matches!(err, HttpError::BadPercentEncoding { .. }),
                "{input}: {err}"
            );
        }
    }

    #[test]
    fn query_is_split_and_decoded() {
        let (path, query) =
            split_target("/api/v1/pods?labelSelector=app%3Dweb%2Ctier%3Dfront&q=a+b&flag").unwrap();
        assert_eq!(path, "/api/v1/pods");
        let expected = [
            ("labelSelector", "app=web,tier=front"),
            ("q", "a b"),
            ("flag", ""),
        ];
        let query: Vec<(&str, &str)> = query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(query, expected);
        assert!(split_target("/x?a=%G0").is_err());
    }

    #[test]
    fn head_is_parsed() {
        let head = parse_head(b"GET /version HTTP/1.1\r\nHost: x\r\nContent-Length:  12 ").unwrap();
        assert_eq!(
            head.start,
            ["GET", "/version", "HTTP/1.1"].map(String::from)
        );
        assert_eq!(head.header("content-length"), Some("12"));
        assert_eq!(head.content_length(), Ok(Some(12)));
        check_request_line(&head.start).unwrap();
    }

    #[test]
    fn bad_heads_are_rejected() {
        let bad: &[&[u8]] = &[
            b"GET",
            b"GET /x HTTP/1.1\r\nno colon here",
            b"GET /x HTTP/1.1\r\nBad Name: x",
            b"GET /x HTTP/1.1\r\nA: b\r\n folded",
            b"GET /x HTTP/1.1\r\n\xff: x",
        ];
        for head in bad {
            assert!(
                parse_head(head).is_err(),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
        let lines = [
            ["GET", "x", "HTTP/1.1"],
            ["GET", "/x", "HTTP/2"],
            ["G(T", "/x", "HTTP/1.1"],
        ];
        for line in lines {
            assert!(
                check_request_line(&line.map(String::from)).is_err(),
                "{line:?}"
            );
        }
        let conflicting =
            parse_head(b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2").unwrap();
        assert!(conflicting.content_length().is_err());
        let invalid = parse_head(b"POST /x HTTP/1.1\r\nContent-Length: -1").unwrap();
        assert!(invalid.content_length().is_err());
    }

    #[test]
    fn head_end_finds_the_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
    }
}
