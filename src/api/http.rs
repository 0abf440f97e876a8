//! The server side: request and response types and the accept loop.
//!
//! The server reads a request, runs the handler and writes the response: sized, or
//! streamed until it closes the connection. A sized response to an HTTP/1.1 request
//! that did not ask for `Connection: close` keeps the connection for the next request
//! when the server allows it (the coordinator does: an agent's long poll then costs no
//! new TLS handshake); requests are not pipelined and bodies are never chunked.
//!
//! The same code serves an agent's unix socket and a coordinator's TLS port: everything
//! after accepting works on any async byte stream ([`super::serve`]). What a client can
//! make the server hold is bounded: connections by [`super::connections`], each one's
//! memory and time by [`super::serve`]; a coordinator passes an [`Authorizer`] so that a
//! request without credentials is refused from its head, before any body.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use smol::future::FutureExt;
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::net::unix::UnixListener;
use smol::net::TcpListener;
use smol::stream::{Stream, StreamExt};

use super::connections::Connections;
use super::serve::{handle_connection, Service};
use super::wire::{find_header, reason_phrase};
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
    /// Empty while an [`Authorizer`] looks at the request: it is read only after.
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
    /// How long a client may take to send a whole request, from its start.
    pub request_timeout: Duration,
    /// How long a new connection may take for its TLS handshake, and a request for its
    /// head (request line and headers).
    pub header_timeout: Duration,
    /// Longest pause while a body arrives.
    pub body_idle_timeout: Duration,
    /// How long a kept connection may wait for its next request; `None`: one request
    /// per connection.
    pub keep_alive: Option<Duration>,
    /// Connections served at once. Past it the oldest unauthenticated connection is
    /// closed to make room, or the new one if all are authenticated.
    pub max_connections: usize,
    /// Connections that have not shown credentials yet (handshaking, or sending their
    /// first head); past it the oldest of them is closed to make room.
    pub max_unauthenticated: usize,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            max_body: 16 * 1024 * 1024,
            request_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(10),
            keep_alive: None,
            max_connections: 256,
            max_unauthenticated: 64,
        }
    }
}

/// What to do with a request whose head has arrived, before any of its body is read.
pub enum Admission {
    /// Valid credentials: the body is read (up to `max_body`), and the connection is no
    /// longer counted as unauthenticated.
    Authenticated,
    /// Served without credentials (e.g. `GET /version`): no body is accepted, and the
    /// connection stays unauthenticated.
    Anonymous,
    /// Answered at once with this response (e.g. 401); the body is never read.
    Denied(Response),
}

/// Decides on a request from its head; its `body` is still empty. A server without one
/// lets every request in and counts every connection as authenticated (the agent's unix
/// socket, whose file permissions are the check).
pub type Authorizer = Arc<dyn Fn(&Request) -> Admission + Send + Sync>;

/// Serves HTTPS on `listener` forever: each connection does its TLS handshake (bounded by
/// the header timeout) on its own task, then is served like a unix-socket connection,
/// each request let in or refused by `authorizer` from its head.
pub async fn serve_tls<H, F>(
    listener: TcpListener,
    acceptor: futures_rustls::TlsAcceptor,
    config: ServerConfig,
    authorizer: Authorizer,
    handler: H,
) -> io::Result<()>
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = Response> + Send + 'static,
{
    let handler = Arc::new(handler);
    let connections = Connections::new(config.max_connections, config.max_unauthenticated);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                accept_failed(err).await;
                continue;
            }
        };
        // Refused before the handshake, which is what costs.
        let Some((mut slot, eviction)) = connections.admit(false) else {
            let (total, _) = connections.counts();
            log::debug!("api: refused a connection from {peer}: all {total} slots are taken");
            continue;
        };
        let (handler, acceptor, authorizer) = (
            Arc::clone(&handler),
            acceptor.clone(),
            Arc::clone(&authorizer),
        );
        smol::spawn(async move {
            let serve = async {
                let _ = stream.set_nodelay(true);
                let handshake = async { acceptor.accept(stream).await.map(Some) };
                let timeout = async {
                    smol::Timer::after(config.header_timeout).await;
                    Ok(None)
                };
                let service = Service {
                    config,
                    handler: &*handler,
                    authorizer: Some(&authorizer),
                };
                match handshake.or(timeout).await {
                    Ok(Some(tls)) => handle_connection(tls, &service, &mut slot).await,
                    Ok(None) => log::debug!("api: TLS handshake from {peer} timed out"),
                    Err(err) => log::info!("api: TLS handshake from {peer} failed: {err}"),
                }
            };
            let evicted = async {
                eviction.evicted().await;
                log::debug!(
                    "api: closed an unauthenticated connection from {peer} for a newer one"
                );
            };
            serve.or(evicted).await;
        })
        .detach();
    }
}

/// Typically EMFILE; back off instead of spinning until descriptors free up.
async fn accept_failed(err: io::Error) {
    log::warn!("api: accepting a connection failed: {err}");
    smol::Timer::after(Duration::from_millis(100)).await;
}

/// Serves requests on `listener` forever with the default limits.
pub async fn serve<H, F>(listener: UnixListener, handler: H) -> io::Result<()>
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = Response> + Send + 'static,
{
    serve_with(listener, ServerConfig::default(), handler).await
}

/// Serves requests on `listener` forever, letting every request in.
pub async fn serve_with<H, F>(
    listener: UnixListener,
    config: ServerConfig,
    handler: H,
) -> io::Result<()>
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = Response> + Send + 'static,
{
    serve_unix(listener, config, None, handler).await
}

/// Serves requests on `listener` forever. Each connection runs on its own task, so a
/// slow or broken client never holds up the others, and its errors are only logged.
/// With an `authorizer`, connections start unauthenticated, as on a TLS port.
pub async fn serve_unix<H, F>(
    listener: UnixListener,
    config: ServerConfig,
    authorizer: Option<Authorizer>,
    handler: H,
) -> io::Result<()>
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = Response> + Send + 'static,
{
    let handler = Arc::new(handler);
    let connections = Connections::new(config.max_connections, config.max_unauthenticated);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                accept_failed(err).await;
                continue;
            }
        };
        let Some((mut slot, eviction)) = connections.admit(authorizer.is_none()) else {
            let (total, _) = connections.counts();
            log::debug!("api: refused a connection: all {total} slots are taken");
            continue;
        };
        let (handler, authorizer) = (Arc::clone(&handler), authorizer.clone());
        smol::spawn(async move {
            let service = Service {
                config,
                handler: &*handler,
                authorizer: authorizer.as_ref(),
            };
            let serve = handle_connection(stream, &service, &mut slot);
            serve.or(eviction.evicted()).await;
        })
        .detach();
    }
}

pub(crate) async fn write_response<S: AsyncRead + AsyncWrite + Unpin>(
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
