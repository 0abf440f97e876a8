//! The blocking client the CLI uses to talk to an agent over its unix socket.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::wire::{head_end, parse_head, MAX_HEAD_BYTES};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot reach the agent at {}: {source} (is `berth agent` running?)", socket.display())]
    Connect { socket: PathBuf, source: io::Error },
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error("invalid response from the agent: {reason}")]
    Protocol { reason: String },
    /// The server answered with an error status; `message` comes from its Status object.
    #[error("error from server ({code}): {message}")]
    Status { code: u16, message: String },
    #[error("unsupported server {url:?}: {reason}")]
    Server { url: String, reason: String },
}

/// A client for one agent socket. Each request opens a new connection.
#[derive(Clone, Debug)]
pub struct Client {
    socket: PathBuf,
}

/// A response whose head has been read and whose body is still on the wire.
struct PendingBody {
    stream: UnixStream,
    status: u16,
    content_length: Option<u64>,
    /// Body bytes that arrived together with the head.
    already: Vec<u8>,
}

impl Client {
    pub fn new(socket: impl Into<PathBuf>) -> Client {
        Client {
            socket: socket.into(),
        }
    }

    /// Accepts `unix:///path/berth.sock` or a bare absolute socket path.
    pub fn from_server_url(url: &str) -> Result<Client, ApiError> {
        let unsupported = |reason: &str| ApiError::Server {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        if url.starts_with("https://") || url.starts_with("http://") {
            return Err(unsupported(
                "coordinators are not supported yet; use unix:///path/to/berth.sock to talk to an agent",
            ));
        }
        let path = url.strip_prefix("unix://").unwrap_or(url);
        if !path.starts_with('/') {
            return Err(unsupported(
                "expected unix:///path/to/berth.sock or an absolute socket path",
            ));
        }
        Ok(Client::new(path))
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends a request with an optional JSON body and returns the status and JSON body
    /// (Null when empty). An error status (>= 400) is returned as `ApiError::Status`.
    pub fn request(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, serde_json::Value), ApiError> {
        let body = body.map(|value| value.to_string().into_bytes());
        let pending = self.send(method, path_and_query, body.as_deref())?;
        let status = pending.status;
        let mut bytes = Vec::new();
        self.read_body(pending, &mut bytes)?;
        if status >= 400 {
            return Err(status_error(status, &bytes));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok((status, serde_json::Value::Null));
        }
        let value = serde_json::from_slice(&bytes).map_err(|err| ApiError::Protocol {
            reason: format!("response body is not JSON: {err}"),
        })?;
        Ok((status, value))
    }

    /// Sends a request and copies the response body to `out` as it arrives, flushing
    /// after each piece (for `logs -f`). An error status (>= 400) is returned as
    /// `ApiError::Status` and nothing is written to `out`.
    pub fn request_raw(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<&[u8]>,
        out: &mut dyn Write,
    ) -> Result<u16, ApiError> {
        let pending = self.send(method, path_and_query, body)?;
        let status = pending.status;
        if status >= 400 {
            let mut bytes = Vec::new();
            self.read_body(pending, &mut bytes)?;
            return Err(status_error(status, &bytes));
        }
        self.read_body(pending, out)?;
        Ok(status)
    }

    fn io_error(&self, source: io::Error) -> ApiError {
        ApiError::Io {
            context: format!("talking to the agent at {}", self.socket.display()),
            source,
        }
    }

    /// Connects, writes the request and reads the response head.
    fn send(
        &self,
        method: &str,
        target: &str,
        body: Option<&[u8]>,
    ) -> Result<PendingBody, ApiError> {
        if !target.starts_with('/') || target.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(ApiError::Protocol {
                reason: format!("invalid request path {target:?}"),
            });
        }
        let mut stream = UnixStream::connect(&self.socket).map_err(|source| ApiError::Connect {
            socket: self.socket.clone(),
            source,
        })?;
        let mut request = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: berth\r\nConnection: close\r\n");
        if let Some(body) = body {
            request.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        request.push_str("\r\n");
        let written = stream
            .write_all(request.as_bytes())
            .and_then(|()| stream.write_all(body.unwrap_or_default()));
        match written {
            Ok(()) => {}
            // The server may answer (e.g. 413) and close before reading everything;
            // its answer is still waiting for us, so read it rather than fail here.
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) =>
            {
                log::debug!("api client: server closed early while sending: {err}");
            }
            Err(err) => return Err(self.io_error(err)),
        }
        self.read_head(stream)
    }

    fn read_head(&self, mut stream: UnixStream) -> Result<PendingBody, ApiError> {
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 4096];
        let end = loop {
            if let Some(end) = head_end(&buf) {
                break end;
            }
            if buf.len() > MAX_HEAD_BYTES {
                return Err(ApiError::Protocol {
                    reason: format!("response headers exceed {MAX_HEAD_BYTES} bytes"),
                });
            }
            let n = stream.read(&mut chunk).map_err(|err| self.io_error(err))?;
            if n == 0 {
                return Err(ApiError::Protocol {
                    reason: "connection closed before a response".to_string(),
                });
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = parse_head(&buf[..end - 4]).map_err(|err| ApiError::Protocol {
            reason: err.to_string(),
        })?;
        let [version, code, _reason] = &head.start;
        if !version.starts_with("HTTP/1.") {
            return Err(ApiError::Protocol {
                reason: format!("unexpected protocol {version:?}"),
            });
        }
        let status: u16 = code.parse().map_err(|_| ApiError::Protocol {
            reason: format!("invalid status code {code:?}"),
        })?;
        let content_length = head
            .content_length()
            .map_err(|reason| ApiError::Protocol { reason })?;
        Ok(PendingBody {
            stream,
            status,
            content_length,
            already: buf.split_off(end),
        })
    }

    /// Copies the body to `out`: exactly Content-Length bytes, or everything until the
    /// server closes the connection.
    fn read_body(&self, pending: PendingBody, out: &mut dyn Write) -> Result<(), ApiError> {
        let PendingBody {
            mut stream,
            content_length,
            mut already,
            ..
        } = pending;
        let out_error = |source| ApiError::Io {
            context: "writing the response".to_string(),
            source,
        };
        let mut remaining = content_length.unwrap_or(u64::MAX);
        already.truncate(usize::try_from(remaining).unwrap_or(usize::MAX));
        remaining -= already.len() as u64;
        out.write_all(&already).map_err(out_error)?;
        out.flush().map_err(out_error)?;
        let mut chunk = vec![0u8; 16 * 1024];
        while remaining > 0 {
            let want = usize::try_from(remaining)
                .unwrap_or(usize::MAX)
                .min(chunk.len());
            let n = match stream.read(&mut chunk[..want]) {
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(self.io_error(err)),
            };
            if n == 0 {
                if content_length.is_some() {
                    return Err(ApiError::Protocol {
                        reason: "response body ended before its Content-Length".to_string(),
                    });
                }
                break;
            }
            remaining -= n as u64;
            out.write_all(&chunk[..n]).map_err(out_error)?;
            out.flush().map_err(out_error)?;
        }
        Ok(())
    }
}

/// Turns an error response into `ApiError::Status`, taking the message from a
/// Kubernetes Status body when there is one.
fn status_error(code: u16, body: &[u8]) -> ApiError {
    let from_status = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value.get("message")?.as_str().map(str::to_string));
    let message = from_status.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body).trim().to_string();
        if text.is_empty() {
            format!("request failed with status {code}")
        } else {
            text
        }
    });
    ApiError::Status { code, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        let client = Client::from_server_url("unix:///var/lib/berth/berth.sock").unwrap();
        assert_eq!(client.socket(), Path::new("/var/lib/berth/berth.sock"));
        let client = Client::from_server_url("/tmp/x.sock").unwrap();
        assert_eq!(client.socket(), Path::new("/tmp/x.sock"));
        let err = Client::from_server_url("https://coord:6443").unwrap_err();
        assert!(
            err.to_string()
                .contains("coordinators are not supported yet"),
            "{err}"
        );
        assert!(Client::from_server_url("unix://relative.sock").is_err());
        assert!(Client::from_server_url("berth.sock").is_err());
    }

    #[test]
    fn status_messages() {
        let body = br#"{"kind":"Status","message":"pods \"x\" not found","code":404}"#;
        let err = status_error(404, body);
        assert!(
            matches!(&err, ApiError::Status { code: 404, message } if message == "pods \"x\" not found")
        );
        assert_eq!(
            err.to_string(),
            "error from server (404): pods \"x\" not found"
        );
        let err = status_error(500, b"");
        assert!(err.to_string().contains("request failed with status 500"));
        let err = status_error(502, b"bad gateway\n");
        assert!(matches!(&err, ApiError::Status { message, .. } if message == "bad gateway"));
    }

    #[test]
    fn missing_socket_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("berth.sock");
        let err = Client::new(&socket)
            .request("GET", "/version", None)
            .unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, ApiError::Connect { .. }));
        assert!(message.contains(&socket.display().to_string()), "{message}");
        assert!(message.contains("is `berth agent` running?"), "{message}");
    }
}
