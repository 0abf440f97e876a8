//! The server side: request and response types and the accept loop.
//!
//! The server reads a request, runs the handler and writes the response: sized, or
//! streamed until it closes the connection. A sized response to an HTTP/1.1 request
//! that did not ask for `Connection: close` keeps the connection for the next request
//! when the server allows it (the coordinator does: an agent's long poll then costs no
//! new TLS handshake); requests are not pipelined and bodies are never chunked.
//!
//! The same code serves an agent's unix socket and a coordinator's TLS port: everything
//! after accepting works on any async byte stream.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use smol::future::FutureExt;
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::net::unix::UnixListener;
use smol::net::TcpListener;
use smol::stream::{Stream, StreamExt};

use super::wire::{
    check_request_line, find_header, head_end, parse_head, reason_phrase, split_target,
    MAX_HEAD_BYTES,
};
pub use super::wire::{percent_decode, percent_encode, HttpError};

/// A parsed request.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// The path without the query, still percent-encoded; decode segments with
    /// `percent_decode` after splitting on `/`.
    pub path: String,
    /// Query parameters in order, percent-decoded.
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// HTTP/1.1 without `Connection: close`: the client will reuse the connection.
    pub keep_alive: bool,
}

impl Request {
    /// The first value of query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// A stream of body chunks; the response ends when it ends (or fails).
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Vec<u8>>> + Send>>;

pub enum Body {
    /// Sent with a Content-Length.
    Bytes(Vec<u8>),
    /// Sent as it comes, the end marked by closing the connection (e.g. `logs -f`).
    Stream(ByteStream),
}

pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: Body,
}

impl Response {
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response {
            status,
            content_type: "application/json".to_string(),
            body: Body::Bytes(value.to_string().into_bytes()),
        }
    }

    pub fn text(status: u16, s: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8".to_string(),
            body: Body::Bytes(s.as_bytes().to_vec()),
        }
    }

    /// A streamed response, e.g. followed logs.
    pub fn stream(status: u16, content_type: &str, stream: ByteStream) -> Response {
        Response {
            status,
            content_type: content_type.to_string(),
            body: Body::Stream(stream),
        }
    }

    /// A Kubernetes `Status` object describing a failure, e.g.
    /// `status_error(404, "NotFound", "pods \"web\" not found")`.
    pub fn status_error(code: u16, reason: &str, message: &str) -> Response {
        let status = serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        });
        Response::json(code, &status)
    }
}

/// Limits of the server.
#[derive(Clone, Copy, Debug)]
pub struct ServerConfig {
    /// Largest request body accepted; larger ones get 413.
    pub max_body: usize,
    /// How long a client may take to send its whole request.
    pub request_timeout: Duration,
    /// How long a kept connection may wait for its next request; `None`: one request
    /// per connection.
    pub keep_alive: Option<Duration>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            max_body: 16 * 1024 * 1024,
            request_timeout: Duration::from_secs(60),
            keep_alive: None,
        }
    }
}

/// Serves HTTPS on `listener` forever: each connection does its TLS handshake (bounded by
/// the request timeout) on its own task, then is served like a unix-socket connection.
pub async fn serve_tls<H, F>(
    listener: TcpListener,
    acceptor: futures_rustls::TlsAcceptor,
    config: ServerConfig,
    handler: H,
) -> io::Result<()>
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = Response> + Send + 'static,
{
    let handler = Arc::new(handler);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let handler = Arc::clone(&handler);
                let acceptor = acceptor.clone();
                smol::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    let handshake = async { acceptor.accept(stream).await.map(Some) };
                    let timeout = async {
                        smol::Timer::after(config.request_timeout).await;
                        Ok(None)
                    };
                    match smol::future::or(handshake, timeout).await {
                        Ok(Some(tls)) => handle_connection(tls, config, &*handler).await,
                        Ok(None) => log::debug!("api: TLS handshake from {peer} timed out"),
                        Err(err) => log::info!("api: TLS handshake from {peer} failed: {err}"),
                    }
                })
                .detach();
            }
            Err(err) => {
                log::warn!("api: accepting a connection failed: {err}");
                smol::Timer::after(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves requests on `listener` forever with the default limits.
pub async fn serve<H, F>(listener: UnixListener, handler: H) -> io::Result<()>
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = Response> + Send + 'static,
{
    serve_with(listener, ServerConfig::default(), handler).await
}

/// Serves requests on `listener` forever. Each connection runs on its own task, so a
/// slow or broken client never holds up the others, and its errors are only logged.
pub async fn serve_with<H, F>(
    listener: UnixListener,
    config: ServerConfig,
    handler: H,
) -> io::Result<()>
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = Response> + Send + 'static,
{
    let handler = Arc::new(handler);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let handler = Arc::clone(&handler);
                smol::spawn(async move { handle_connection(stream, config, &*handler).await })
                    .detach();
            }
            Err(err) => {
                // Typically EMFILE; back off instead of spinning until descriptors free up.
                log::warn!("api: accepting a connection failed: {err}");
                smol::Timer::after(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle_connection<S, H, F>(mut stream: S, config: ServerConfig, handler: &H)
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Fn(Request) -> F,
    F: std::future::Future<Output = Response>,
{
    let mut served = 0u64;
    loop {
        // A kept connection waits for its next request up to the idle limit; a client
        // that goes quiet there is simply dropped, with no error response.
        let (limit, idle) = match (served, config.keep_alive) {
            (0, _) | (_, None) => (config.request_timeout, false),
            (_, Some(idle)) => (idle, true),
        };
        let read = read_request(&mut stream, config.max_body);
        let timeout = async {
            smol::Timer::after(limit).await;
            Err(HttpError::Timeout)
        };
        let (response, rejected, keep) = match smol::future::or(read, timeout).await {
            Ok(request) => {
                log::debug!("api: {} {}", request.method, request.path);
                let keep = request.keep_alive && config.keep_alive.is_some();
                let response = handler(request).await;
                let keep = keep && matches!(response.body, Body::Bytes(_));
                (response, false, keep)
            }
            Err(HttpError::Timeout | HttpError::Closed) if idle => return,
            Err(err) => match err.response_status() {
                Some((code, reason)) => {
                    log::debug!("api: rejected request: {err}");
                    (
                        Response::status_error(code, reason, &err.to_string()),
                        true,
                        false,
                    )
                }
                None => {
                    log::debug!("api: {err}");
                    return;
                }
            },
        };
        if let Err(err) = write_response(&mut stream, response, keep).await {
            // Usually the client went away (e.g. Ctrl-C on `logs -f`).
            log::debug!("api: writing the response failed: {err}");
            return;
        }
        if rejected {
            linger(&mut stream).await;
        }
        if !keep {
            let _ = stream.close().await;
            return;
        }
        served += 1;
    }
}

/// After rejecting a request part-way, reads and discards what the client is still
/// sending until it closes (bounded in bytes and time). Closing a unix socket with
/// unread data makes the peer's reads fail with ECONNRESET, which would hide our error
/// response from a client that reads until end of file.
async fn linger<S: AsyncRead + Unpin>(stream: &mut S) {
    const MAX_DISCARD: usize = 1024 * 1024;
    const MAX_WAIT: Duration = Duration::from_secs(2);
    let discard = async {
        let mut chunk = [0u8; 4096];
        let mut total = 0;
        while total < MAX_DISCARD {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    smol::future::or(discard, async {
        smol::Timer::after(MAX_WAIT).await;
    })
    .await;
}

async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    max_body: usize,
) -> Result<Request, HttpError> {
    let io_error = |source| HttpError::Io {
        context: "reading the request".to_string(),
        source,
    };
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(end) = head_end(&buf) {
            break end;
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(HttpError::HeadersTooLarge {
                limit: MAX_HEAD_BYTES,
            });
        }
        let n = stream.read(&mut chunk).await.map_err(io_error)?;
        if n == 0 {
            return Err(if buf.is_empty() {
                HttpError::Closed
            } else {
                HttpError::Malformed {
                    reason: "connection closed in the middle of the headers".to_string(),
                }
            });
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if end > MAX_HEAD_BYTES {
        return Err(HttpError::HeadersTooLarge {
            limit: MAX_HEAD_BYTES,
        });
    }
    let head = parse_head(&buf[..end - 4])?;
    check_request_line(&head.start)?;
    if head.header("transfer-encoding").is_some() {
        return Err(HttpError::LengthRequired);
    }
    let length = head
        .content_length()
        .map_err(|reason| HttpError::Malformed { reason })?
        .unwrap_or(0);
    if length > max_body as u64 {
        return Err(HttpError::BodyTooLarge {
            length,
            limit: max_body,
        });
    }
    // Fits in usize: it is at most max_body.
    let length = length as usize;
    let mut body = buf.split_off(end);
    if body.len() < length {
        let already = body.len();
        body.resize(length, 0);
        stream
            .read_exact(&mut body[already..])
            .await
            .map_err(|source| match source.kind() {
                io::ErrorKind::UnexpectedEof => HttpError::Malformed {
                    reason: format!("body shorter than its Content-Length of {length}"),
                },
                _ => io_error(source),
            })?;
    }
    // Anything after the body would be a pipelined request, which we do not serve.
    body.truncate(length);
    let keep_alive = head.start[2] == "HTTP/1.1"
        && !head
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
    let [method, target, _version] = head.start;
    let (path, query) = split_target(&target)?;
    Ok(Request {
        method,
        path,
        query,
        headers: head.headers,
        body,
        keep_alive,
    })
}

async fn write_response<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    response: Response,
    keep: bool,
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nConnection: {}\r\n",
        response.status,
        reason_phrase(response.status),
        response.content_type,
        if keep { "keep-alive" } else { "close" },
    );
    match response.body {
        Body::Bytes(bytes) => {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", bytes.len()));
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&bytes).await?;
        }
        Body::Stream(chunks) => {
            head.push_str("\r\n");
            stream.write_all(head.as_bytes()).await?;
            stream.flush().await?;
            write_stream(stream, chunks).await?;
        }
    }
    stream.flush().await
}

/// Sends a streamed body chunk by chunk. While it waits for the next chunk it also
/// reads from the client, which sends nothing more after its request: end of file means
/// the client went away (Ctrl-C on `get -w` or `logs -f`), and the stream is dropped
/// then rather than at its next write, which for a quiet watch may never come.
async fn write_stream<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    mut chunks: ByteStream,
) -> io::Result<()> {
    enum Next {
        Chunk(Option<io::Result<Vec<u8>>>),
        Peer(io::Result<usize>),
    }
    let mut scratch = [0u8; 256];
    loop {
        let chunk = async { Next::Chunk(chunks.next().await) };
        let peer = async { Next::Peer(stream.read(&mut scratch).await) };
        match chunk.or(peer).await {
            Next::Chunk(Some(Ok(chunk))) => {
                stream.write_all(&chunk).await?;
                stream.flush().await?;
            }
            Next::Chunk(None) => return Ok(()),
            Next::Chunk(Some(Err(err))) => {
                // The status line is gone already; closing early is all we can do.
                log::debug!("api: response stream failed: {err}");
                return Ok(());
            }
            Next::Peer(Ok(0)) => {
                log::debug!("api: the client closed a streamed response");
                return Ok(());
            }
            // Bytes after the request belong to nothing we serve: ignored.
            Next::Peer(Ok(_)) => {}
            Next::Peer(Err(err)) => return Err(err),
        }
    }
}
