//! Pure pieces of HTTP/1.1 shared by the server and the client: parsing a message head,
//! query strings, percent-encoding, reason phrases. No I/O here.
//!
//! Heads are parsed by `httparse` (already linked through the registry client, and
//! fuzzed upstream): request heads, which come from anyone who can reach the port, for
//! the server; response heads for the API client and the agent's `httpGet` probes (both
//! read them with `client::read_response_head`).

/// Largest header section (request line or status line plus headers) we accept.
pub(crate) const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Most header fields a request may carry; ours send a handful.
pub(crate) const MAX_HEADERS: usize = 64;

/// Why a request could not be read; most of these become a 4xx response.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("malformed request: {reason}")]
    Malformed { reason: String },
    #[error("request header section exceeds {limit} bytes")]
    HeadersTooLarge { limit: usize },
    #[error("request has more than {limit} header fields")]
    TooManyHeaders { limit: usize },
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
            HttpError::HeadersTooLarge { .. } | HttpError::TooManyHeaders { .. } => {
                Some((431, "RequestHeaderFieldsTooLarge"))
            }
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

/// A response's status code and headers.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ResponseHead {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The declared body length (see [`content_length`]).
    pub fn content_length(&self) -> Result<Option<u64>, String> {
        content_length(&self.headers)
    }
}

/// The declared body length: None when absent, an error when it is not a number or
/// declared twice with different values.
fn content_length(headers: &[(String, String)]) -> Result<Option<u64>, String> {
    let mut length = None;
    for (name, value) in headers {
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

pub(crate) fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// Copies header fields out of `httparse`'s borrowed slices; values must be UTF-8.
fn owned_headers(fields: &[httparse::Header<'_>]) -> Result<Vec<(String, String)>, HttpError> {
    let mut headers = Vec::with_capacity(fields.len());
    for field in fields {
        let value = std::str::from_utf8(field.value)
            .map_err(|_| malformed(format!("header {:?} is not UTF-8", field.name)))?;
        headers.push((field.name.to_string(), value.trim().to_string()));
    }
    Ok(headers)
}

/// A request line and headers.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RequestHead {
    pub method: String,
    /// Starts with `/`: the origin form, the only one a server that is no proxy gets.
    pub target: String,
    /// HTTP/1.1 (otherwise HTTP/1.0).
    pub http11: bool,
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The declared body length (see [`content_length`]).
    pub fn content_length(&self) -> Result<Option<u64>, String> {
        content_length(&self.headers)
    }
}

/// Parses the request head at the start of `buf`: `None` while it is incomplete, else
/// the head and its length in bytes (the body starts there).
pub(crate) fn parse_request_head(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, HttpError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut fields);
    let length = match request.parse(buf) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError::TooManyHeaders { limit: MAX_HEADERS })
        }
        Err(err) => return Err(malformed(format!("{err} in the request head"))),
    };
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return Err(malformed("incomplete request line"));
    };
    if !target.starts_with('/') {
        return Err(malformed(format!("invalid request target {target:?}")));
    }
    let head = RequestHead {
        method: method.to_string(),
        target: target.to_string(),
        http11: version == 1,
        headers: owned_headers(request.headers)?,
    };
    Ok(Some((head, length)))
}

/// Parses the response head at the start of `buf`, like [`parse_request_head`]; the
/// error says what is wrong with it.
pub(crate) fn parse_response_head(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, String> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut fields);
    let length = match response.parse(buf) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(err) => return Err(format!("{err} in the response head")),
    };
    let Some(status) = response.code else {
        return Err("incomplete status line".to_string());
    };
    let headers = owned_headers(response.headers).map_err(|err| match err {
        HttpError::Malformed { reason } => reason,
        other => other.to_string(),
    })?;
    Ok(Some((ResponseHead { status, headers }, length)))
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
    fn request_head_is_parsed() {
        let buf = b"GET /version?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length:  12 \r\n\r\nbody";
        let (head, length) = parse_request_head(buf).unwrap().unwrap();
        assert_eq!(length, buf.len() - 4);
        assert_eq!(
            (head.method.as_str(), head.target.as_str()),
            ("GET", "/version?x=1")
        );
        assert!(head.http11);
        assert_eq!(head.header("content-length"), Some("12"));
        assert_eq!(head.content_length(), Ok(Some(12)));
        let (old, _) = parse_request_head(b"GET / HTTP/1.0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!old.http11);
        // Incomplete: more bytes are needed, which is no error.
        for partial in [
            &b""[..],
            b"GET / HTTP/1.1\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n",
        ] {
            assert_eq!(parse_request_head(partial).unwrap(), None);
        }
    }

    #[test]
    fn bad_request_heads_are_rejected() {
        let bad: &[&[u8]] = &[
            b"NOT HTTP\r\n\r\n",
            b"GET x HTTP/1.1\r\n\r\n",
            b"GET /x HTTP/2\r\n\r\n",
            b"G(T /x HTTP/1.1\r\n\r\n",
            b"GET /x HTTP/1.1\r\nno colon here\r\n\r\n",
            b"GET /x HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"GET /x HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
            b"GET /x HTTP/1.1\r\nA: \xff\r\n\r\n",
            b"GET /x HTTP/1.1\r\n\xff: x\r\n\r\n",
        ];
        for head in bad {
            let err = parse_request_head(head).unwrap_err();
            assert!(
                matches!(err, HttpError::Malformed { .. }),
                "{:?}: {err}",
                String::from_utf8_lossy(head)
            );
        }
        let mut many = b"GET /x HTTP/1.1\r\n".to_vec();
        for n in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{n}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        let err = parse_request_head(&many).unwrap_err();
        assert_eq!(
            err.response_status(),
            Some((431, "RequestHeaderFieldsTooLarge"))
        );
        let (conflicting, _) = parse_request_head(
            b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert!(conflicting.content_length().is_err());
        let (invalid, _) = parse_request_head(b"POST /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(invalid.content_length().is_err());
    }

    #[test]
    fn response_head_is_parsed() {
        let buf =
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabc";
        let (head, length) = parse_response_head(buf).unwrap().unwrap();
        assert_eq!((head.status, length), (404, buf.len() - 3));
        assert_eq!(head.content_length(), Ok(Some(3)));
        assert_eq!(head.header("CONNECTION"), Some("keep-alive"));
        assert_eq!(parse_response_head(b"HTTP/1.1 200 OK\r\n").unwrap(), None);
        assert!(parse_response_head(b"HTTP/1.1 abc OK\r\n\r\n").is_err());
        assert!(parse_response_head(b"SPDY/3 200 OK\r\n\r\n").is_err());
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use crate::fuzz;

    const SEEDS: &[&str] = &[
        "GET /api/v1/namespaces/default/pods?labelSelector=app%3Dweb&watch=true HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abc.def\r\n\r\n",
        "POST /apis/berth.dev/v1/join HTTP/1.1\r\nContent-Length: 12\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"node\":{}}",
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    ];

    const DICT: &[&str] = &[
        "\r\n",
        "\r\n\r\n",
        "Content-Length: ",
        "Content-Length: 18446744073709551616\r\n",
        "Transfer-Encoding: chunked\r\n",
        "%",
        "%zz",
        "%ff",
        "?",
        "&",
        "=",
        " HTTP/1.0",
        "\u{0}",
        "\t",
        ":",
        "\u{e9}",
    ];

    #[test]
    fn fuzz_http_heads_never_panic() {
        let seeds: Vec<Vec<u8>> = SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect();
        fuzz::run("http-heads", &seeds, DICT, 3000, |input| {
            if let Ok(Some((head, length))) = parse_request_head(input) {
                assert!(length <= input.len());
                let _ = head.content_length();
                if let Ok((path, _query)) = split_target(&head.target) {
                    for segment in path.split('/') {
                        let _ = percent_decode(segment);
                    }
                }
            }
            if let Ok(Some((head, length))) = parse_response_head(input) {
                assert!(length <= input.len());
                let _ = head.content_length();
            }
        });
    }
}
