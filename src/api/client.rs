//! The blocking client the CLI (and an agent, towards its coordinator) uses: HTTP/1.1
//! over an agent's unix socket, or over TLS to a coordinator with a bearer token.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::wire::{parse_response_head, ResponseHead, MAX_HEAD_BYTES};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot reach the agent at {}: {source} (is `berth agent` running?)", socket.display())]
    Connect { socket: PathBuf, source: io::Error },
    #[error("cannot reach the coordinator at {url}: {source}")]
    ConnectTls { url: String, source: io::Error },
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

/// A client for one agent socket or one coordinator. Each request to an agent opens a
/// new connection; GETs and PUTs to a coordinator reuse the connection it kept open
/// after the last answer (clones share it).
#[derive(Clone, Debug)]
pub struct Client {
    target: Target,
}

#[derive(Clone)]
enum Target {
    Unix(PathBuf),
    Tls {
        /// Every coordinator that serves the fleet, in the order given.
        endpoints: Arc<Vec<Endpoint>>,
        /// The one requests go to until it stops answering (clones share it).
        current: Arc<AtomicUsize>,
        config: Arc<rustls::ClientConfig>,
        token: Option<String>,
        timeout: Duration,
        /// A connection the coordinator kept open after the last answer, reused by the
        /// next GET or PUT (an agent's next long poll) to spare a TLS handshake.
        /// With the index of the coordinator it leads to.
        idle: Arc<Mutex<Option<KeptConnection>>>,
    },
}

/// A connection the server kept open, and the index of the coordinator it leads to.
type KeptConnection = (Box<dyn Connection>, usize);

/// One coordinator: its `https://host:port`, host and port.
#[derive(Clone, Debug)]
struct Endpoint {
    url: String,
    host: String,
    port: u16,
}

impl std::fmt::Debug for Target {
    /// Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Unix(path) => write!(f, "Unix({})", path.display()),
            Target::Tls { endpoints, .. } => {
                let urls: Vec<&str> = endpoints.iter().map(|e| e.url.as_str()).collect();
                write!(f, "Tls({})", urls.join(","))
            }
        }
    }
}

/// What a request travels over.
trait Connection: Read + Write + Send {
    /// Bounds each read and write from now on. A kept connection carries the requests
    /// of clones with different timeouts (an agent's long poll and its status reports
    /// share one), so every exchange on it sets its own: a poll must not inherit the
    /// short timeout of the report that opened the connection, nor a report the long one
    /// of a poll.
    fn set_timeout(&self, timeout: Duration) -> io::Result<()>;
}

impl Connection for UnixStream {
    /// An agent's socket has no timeout: followed logs and watches wait for as long as
    /// they like.
    fn set_timeout(&self, _timeout: Duration) -> io::Result<()> {
        Ok(())
    }
}

impl Connection for rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    fn set_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.sock.set_read_timeout(Some(timeout))?;
        self.sock.set_write_timeout(Some(timeout))
    }
}

/// A response whose head has been read and whose body is still on the wire.
struct PendingBody {
    /// Which coordinator answered (0 for an agent's socket).
    endpoint: usize,
    /// The connection may serve another request once the body is read.
    reusable: bool,
    stream: Box<dyn Connection>,
    status: u16,
    content_length: Option<u64>,
    /// Body bytes that arrived together with the head.
    already: Vec<u8>,
}

impl Client {
    pub fn new(socket: impl Into<PathBuf>) -> Client {
        Client {
            target: Target::Unix(socket.into()),
        }
    }

    /// A client for a coordinator at `https://host:port`, trusting only `config`'s roots
    /// and sending `token` as a bearer credential. `timeout` bounds connecting and each
    /// read (a long poll needs a longer one than a plain request). `urls` may list
    /// several coordinators of one fleet, comma-separated: requests go to one of them
    /// and move to the next when it cannot be reached.
    pub fn https(
        urls: &str,
        config: Arc<rustls::ClientConfig>,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<Client, ApiError> {
        let mut endpoints = Vec::new();
        for url in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            let (host, port) = split_https_url(url).map_err(|reason| ApiError::Server {
                url: url.to_string(),
                reason,
            })?;
            endpoints.push(Endpoint {
                url: url.trim_end_matches('/').to_string(),
                host,
                port,
            });
        }
        if endpoints.is_empty() {
            return Err(ApiError::Server {
                url: urls.to_string(),
                reason: "no coordinator address".to_string(),
            });
        }
        Ok(Client {
            target: Target::Tls {
                endpoints: Arc::new(endpoints),
                current: Arc::new(AtomicUsize::new(0)),
                config,
                token,
                timeout,
                idle: Arc::new(Mutex::new(None)),
            },
        })
    }

    /// The same client with another per-read timeout (unix sockets have none).
    pub fn with_timeout(mut self, new: Duration) -> Client {
        if let Target::Tls { timeout, .. } = &mut self.target {
            *timeout = new;
        }
        self
    }

    /// Accepts `unix:///path/berth.sock` or a bare absolute socket path.
    pub fn from_server_url(url: &str) -> Result<Client, ApiError> {
        let unsupported = |reason: &str| ApiError::Server {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        if url.starts_with("https://") {
            return Err(unsupported(
                "a coordinator needs its CA and a token: pass --config FILE (or set BERTH_CONFIG) with the admin.config the coordinator wrote",
            ));
        }
        if url.starts_with("http://") {
            return Err(unsupported(
                "plain HTTP is not served; coordinators use https:// and agents unix://",
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

    /// The agent socket, for a unix-socket client.
    pub fn socket(&self) -> Option<&Path> {
        match &self.target {
            Target::Unix(path) => Some(path),
            Target::Tls { .. } => None,
        }
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
        let (status, endpoint) = (pending.status, pending.endpoint);
        let mut bytes = Vec::new();
        self.read_body(pending, &mut bytes)?;
        if status == 503 {
            // This coordinator cannot serve now (it lost its datastore): try another next.
            self.move_on_from(endpoint);
        }
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

    /// An I/O error while talking to the agent, or to coordinator number `endpoint`.
    fn io_error(&self, endpoint: usize, source: io::Error) -> ApiError {
        let context = match &self.target {
            Target::Unix(path) => format!("talking to the agent at {}", path.display()),
            Target::Tls { endpoints, .. } => {
                let url = &endpoints[endpoint % endpoints.len()].url;
                format!("talking to the coordinator at {url}")
            }
        };
        ApiError::Io { context, source }
    }

    /// A new connection, and the index of the coordinator it leads to.
    fn connect(&self) -> Result<(Box<dyn Connection>, usize), ApiError> {
        match &self.target {
            Target::Unix(path) => match UnixStream::connect(path) {
                Ok(stream) => Ok((Box::new(stream), 0)),
                Err(source) => Err(ApiError::Connect {
                    socket: path.clone(),
                    source,
                }),
            },
            Target::Tls {
                endpoints,
                current,
                config,
                timeout,
                ..
            } => {
                // From the coordinator that answered last, on to each of the others.
                let start = current.load(Ordering::Relaxed);
                let mut last_error = None;
                for step in 0..endpoints.len() {
                    let index = (start + step) % endpoints.len();
                    let endpoint = &endpoints[index];
                    match super::tls::connect(
                        &endpoint.host,
                        endpoint.port,
                        Arc::clone(config),
                        *timeout,
                    ) {
                        Ok(stream) => {
                            if step > 0 {
                                log::info!("api client: now talking to {}", endpoint.url);
                            }
                            current.store(index, Ordering::Relaxed);
                            return Ok((Box::new(stream), index));
                        }
                        Err(source) => {
                            log::debug!("api client: cannot reach {}: {source}", endpoint.url);
                            last_error = Some(ApiError::ConnectTls {
                                url: endpoint.url.clone(),
                                source,
                            });
                        }
                    }
                }
                Err(last_error.unwrap_or_else(|| ApiError::Server {
                    url: String::new(),
                    reason: "no coordinator address".to_string(),
                }))
            }
        }
    }

    /// After coordinator number `failed` failed a request, the next one goes to the next
    /// coordinator, unless another request moved on already.
    fn move_on_from(&self, failed: usize) {
        if let Target::Tls {
            endpoints,
            current,
            idle,
            ..
        } = &self.target
        {
            if endpoints.len() < 2 {
                return;
            }
            let next = (failed + 1) % endpoints.len();
            if current
                .compare_exchange(failed, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                log::debug!(
                    "api client: leaving {} for {}",
                    endpoints[failed].url,
                    endpoints[next].url
                );
            }
            // A kept connection to the one being left goes too.
            let mut idle = idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.as_ref().is_some_and(|(_, at)| *at == failed) {
                idle.take();
            }
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
        // Idempotent requests to a coordinator may go over a kept connection; if that
        // turns out closed, they are simply sent again on a new one.
        let keep = matches!(self.target, Target::Tls { .. }) && matches!(method, "GET" | "PUT");
        if let Some((stream, endpoint, timeout)) = self.take_idle().filter(|_| keep) {
            let sent = match stream.set_timeout(timeout) {
                Ok(()) => self.exchange(stream, endpoint, method, target, body, true),
                Err(err) => Err(self.io_error(endpoint, err)),
            };
            match sent {
                Ok(pending) => return Ok(pending),
                // It did not answer in time: hung, not merely closed. Do not wait for it
                // a second time.
                Err(ApiError::Io { source, .. }) if timed_out(&source) => {
                    self.move_on_from(endpoint);
                    return Err(self.io_error(endpoint, source));
                }
                Err(err) => log::debug!("api client: kept connection failed ({err}); reconnecting"),
            }
        }
        let (stream, endpoint) = self.connect()?;
        let sent = self.exchange(stream, endpoint, method, target, body, keep);
        if let Err(ApiError::Io { .. }) = &sent {
            self.move_on_from(endpoint);
        }
        sent
    }

    /// The kept connection, if any, with this client's timeout for its next exchange.
    fn take_idle(&self) -> Option<(Box<dyn Connection>, usize, Duration)> {
        match &self.target {
            Target::Tls { idle, timeout, .. } => idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .map(|(stream, endpoint)| (stream, endpoint, *timeout)),
            Target::Unix(_) => None,
        }
    }

    fn put_idle(&self, stream: Box<dyn Connection>, endpoint: usize) {
        if let Target::Tls { idle, .. } = &self.target {
            *idle.lock().unwrap_or_else(|p| p.into_inner()) = Some((stream, endpoint));
        }
    }

    /// Writes one request on `stream` and reads the response head.
    fn exchange(
        &self,
        mut stream: Box<dyn Connection>,
        endpoint: usize,
        method: &str,
        target: &str,
        body: Option<&[u8]>,
        keep: bool,
    ) -> Result<PendingBody, ApiError> {
        let connection = if keep { "keep-alive" } else { "close" };
        let mut request = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: berth\r\nConnection: {connection}\r\n");
        if let Target::Tls {
            token: Some(token), ..
        } = &self.target
        {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if let Some(body) = body {
            // A PATCH body is a JSON merge patch, the one patch type the API takes.
            let media_type = match method {
                "PATCH" => "application/merge-patch+json",
                _ => "application/json",
            };
            request.push_str(&format!(
                "Content-Type: {media_type}\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        request.push_str("\r\n");
        let written = stream
            .write_all(request.as_bytes())
            .and_then(|()| stream.write_all(body.unwrap_or_default()))
            .and_then(|()| stream.flush());
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
            Err(err) => return Err(self.io_error(endpoint, err)),
        }
        let mut pending = self.read_head(stream, endpoint)?;
        pending.reusable &= keep;
        Ok(pending)
    }

    fn read_head(
        &self,
        mut stream: Box<dyn Connection>,
        endpoint: usize,
    ) -> Result<PendingBody, ApiError> {
        let protocol = |reason: String| ApiError::Protocol { reason };
        let (head, already) = read_response_head(&mut stream).map_err(|err| match err {
            HeadError::Io(err) => self.io_error(endpoint, err),
            HeadError::Protocol(reason) => protocol(reason),
        })?;
        let status = head.status;
        let content_length = head.content_length().map_err(protocol)?;
        let reusable = content_length.is_some()
            && head
                .header("connection")
                .is_some_and(|c| c.eq_ignore_ascii_case("keep-alive"));
        Ok(PendingBody {
            endpoint,
            reusable,
            stream,
            status,
            content_length,
            already,
        })
    }

    /// Copies the body to `out`: exactly Content-Length bytes, or everything until the
    /// server closes the connection.
    fn read_body(&self, pending: PendingBody, out: &mut dyn Write) -> Result<(), ApiError> {
        let PendingBody {
            endpoint,
            reusable,
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
        // Bytes beyond the body would belong to nothing we asked for: do not reuse then.
        let reusable = reusable && (already.len() as u64) <= remaining;
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
                // A body that lasts until the server closes (a watch, `logs -f`) ends
                // when the server goes away, even if it did not close its TLS cleanly.
                Err(err)
                    if content_length.is_none() && err.kind() == io::ErrorKind::UnexpectedEof =>
                {
                    0
                }
                Err(err) => return Err(self.io_error(endpoint, err)),
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
        if reusable && remaining == 0 {
            self.put_idle(stream, endpoint);
        }
        Ok(())
    }
}

/// Whether an I/O error is a read or write timeout (the peer hung).
fn timed_out(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Why a response head could not be read.
#[derive(Debug)]
pub(crate) enum HeadError {
    /// Reading failed, a read timeout included.
    Io(io::Error),
    /// What arrived is not a complete HTTP/1.x response head (the reason says why).
    Protocol(String),
}

/// Reads from `stream` until a whole response head (status line and headers) has
/// arrived, and returns it with the bytes that came after it: the start of the body.
/// The one reader of HTTP/1.1 response heads, for this client and for `httpGet` probes;
/// the parsing itself is `httparse`'s, as for request heads on the server side.
pub(crate) fn read_response_head<R: Read + ?Sized>(
    stream: &mut R,
) -> Result<(ResponseHead, Vec<u8>), HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).map_err(HeadError::Io)?;
        if n == 0 {
            let reason = "connection closed before a response".to_string();
            return Err(HeadError::Protocol(reason));
        }
        buf.extend_from_slice(&chunk[..n]);
        // Only a new line can complete the head.
        if chunk[..n].contains(&b'\n') {
            if let Some((head, end)) = parse_response_head(&buf).map_err(HeadError::Protocol)? {
                return Ok((head, buf.split_off(end)));
            }
        }
        if buf.len() > MAX_HEAD_BYTES {
            let reason = format!("response headers exceed {MAX_HEAD_BYTES} bytes");
            return Err(HeadError::Protocol(reason));
        }
    }
}

/// `https://host[:port][/]` → (host, port); the port defaults to 6443 like k3s.
fn split_https_url(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or("a coordinator URL starts with https://")?;
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') || authority.contains('@') {
        return Err("expected https://host:port".to_string());
    }
    // `[::1]:6443` or `host:6443` or `host`.
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => {
            let port = port
                .parse::<u16>()
                .map_err(|_| format!("invalid port {port:?}"))?;
            (host, port)
        }
        _ => (authority, 6443),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("expected https://host:port".to_string());
    }
    Ok((host.to_string(), port))
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
        assert_eq!(
            client.socket(),
            Some(Path::new("/var/lib/berth/berth.sock"))
        );
        let client = Client::from_server_url("/tmp/x.sock").unwrap();
        assert_eq!(client.socket(), Some(Path::new("/tmp/x.sock")));
        let err = Client::from_server_url("https://coord:6443").unwrap_err();
        assert!(err.to_string().contains("--config"), "{err}");
        assert!(Client::from_server_url("unix://relative.sock").is_err());
        assert!(Client::from_server_url("berth.sock").is_err());
    }

    #[test]
    fn https_urls() {
        let ok = |url: &str| split_https_url(url).unwrap();
        assert_eq!(ok("https://coord:7443"), ("coord".to_string(), 7443));
        assert_eq!(ok("https://10.0.0.1/"), ("10.0.0.1".to_string(), 6443));
        assert_eq!(ok("https://[::1]:6443"), ("::1".to_string(), 6443));
        assert_eq!(ok("https://[fe80::1]"), ("fe80::1".to_string(), 6443));
        for bad in [
            "http://x",
            "https://",
            "https://x:99999",
            "https://x/api",
            "https://u@x",
        ] {
            assert!(split_https_url(bad).is_err(), "{bad}");
        }
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
