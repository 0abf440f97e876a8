//! One connection's life on the server: read a head, let the authorizer decide, read the
//! body, run the handler, answer; again while the connection is kept.
//!
//! Memory follows what the client actually sent, never what it declared: the body
//! grows chunk by chunk as it arrives, and a request the authorizer refuses is answered
//! from its head alone, its body never read. Every wait has a limit: the head must
//! arrive within the header timeout, a body may not pause longer than the body idle
//! timeout, the whole request must arrive within the request timeout, and a kept
//! connection waits for its next request only as long as the keep-alive allows.

use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::connections::Slot;
use super::http::{write_response, Admission, Authorizer, Body, Request, Response, ServerConfig};
use super::wire::{parse_request_head, split_target, HttpError, MAX_HEAD_BYTES};

/// A body grows by at most this much per read, so a declared length is never allocated
/// ahead of the bytes that fill it.
pub(crate) const BODY_CHUNK: usize = 64 * 1024;

/// Most a request may carry without credentials (`Admission::Anonymous`): nothing.
const ANONYMOUS_MAX_BODY: usize = 0;

/// What one connection is served with.
pub(crate) struct Service<'a, H> {
    pub config: ServerConfig,
    pub handler: &'a H,
    /// `None`: every request is let in (the agent's unix socket).
    pub authorizer: Option<&'a Authorizer>,
}

/// What became of the wait for the next request.
enum Next {
    Request(Request),
    /// Rejected before the handler: answer, then close.
    Rejected(Response),
    /// Nothing to answer: the client went away or a kept connection went idle.
    Done,
}

pub(crate) async fn handle_connection<S, H, F>(
    mut stream: S,
    service: &Service<'_, H>,
    slot: &mut Slot,
) where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Fn(Request) -> F,
    F: Future<Output = Response>,
{
    let config = &service.config;
    let mut kept = false;
    loop {
        let (response, rejected, keep) = match next_request(&mut stream, service, slot, kept).await
        {
            Next::Request(request) => {
                log::debug!("api: {} {}", request.method, request.path);
                let keep = request.keep_alive && config.keep_alive.is_some();
                let response = (service.handler)(request).await;
                let keep = keep && matches!(response.body, Body::Bytes(_));
                (response, false, keep)
            }
            Next::Rejected(response) => (response, true, false),
            Next::Done => return,
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
        kept = true;
    }
}

async fn next_request<S, H>(
    stream: &mut S,
    service: &Service<'_, H>,
    slot: &mut Slot,
    kept: bool,
) -> Next
where
    S: AsyncRead + Unpin,
{
    let config = &service.config;
    let head = match read_head(stream, config, kept).await {
        Ok(Some(head)) => head,
        Ok(None) => return Next::Done,
        Err(err) => return reject(err),
    };
    let Head {
        mut request,
        length,
        rest,
        deadline,
    } = head;
    let admission = match service.authorizer {
        Some(authorize) => authorize(&request),
        None => Admission::Authenticated,
    };
    let limit = match admission {
        Admission::Authenticated => {
            if !slot.authenticated() {
                return Next::Done; // evicted while its head arrived: closing
            }
            config.max_body
        }
        Admission::Anonymous => ANONYMOUS_MAX_BODY,
        Admission::Denied(response) => {
            log::debug!("api: refused {} {}", request.method, request.path);
            return Next::Rejected(response);
        }
    };
    if length > limit as u64 {
        return reject(HttpError::BodyTooLarge { length, limit });
    }
    // Fits in usize: it is at most the limit.
    let length = length as usize;
    match read_body(stream, rest, length, &request, config, deadline).await {
        Ok(body) => {
            request.body = body;
            Next::Request(request)
        }
        Err(err) => reject(err),
    }
}

fn reject(err: HttpError) -> Next {
    match err.response_status() {
        Some((code, reason)) => {
            log::debug!("api: rejected request: {err}");
            Next::Rejected(Response::status_error(code, reason, &err.to_string()))
        }
        None => {
            log::debug!("api: {err}");
            Next::Done
        }
    }
}

/// A request whose head has been read.
pub(crate) struct Head {
    /// Everything but the body, which is still empty.
    pub request: Request,
    /// The declared body length.
    pub length: u64,
    /// Bytes read past the head: the start of the body.
    pub rest: Vec<u8>,
    /// When the whole request must have arrived.
    pub deadline: Instant,
}

/// Races `future` against `deadline`.
async fn within<T>(
    deadline: Instant,
    future: impl Future<Output = Result<T, HttpError>>,
) -> Result<T, HttpError> {
    smol::future::or(future, async {
        smol::Timer::at(deadline).await;
        Err(HttpError::Timeout)
    })
    .await
}

fn read_error(source: io::Error) -> HttpError {
    HttpError::Io {
        context: "reading the request".to_string(),
        source,
    }
}

/// Reads a request head. The first request of a connection must arrive whole within the
/// header timeout; on a kept connection (`kept`) the next request may take the
/// keep-alive to start, and then the header timeout from its first byte. `Ok(None)`:
/// a kept connection closed or went idle between requests, which needs no answer.
pub(crate) async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    config: &ServerConfig,
    kept: bool,
) -> Result<Option<Head>, HttpError> {
    let head_time = config.header_timeout.min(config.request_timeout);
    let now = Instant::now();
    let (mut head_deadline, mut deadline) = (now + head_time, now + config.request_timeout);
    if kept {
        head_deadline = now + config.keep_alive.unwrap_or(head_time);
    }
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let (head, end) = loop {
        let read = async { stream.read(&mut chunk).await.map_err(read_error) };
        let n = match within(head_deadline, read).await {
            Err(HttpError::Timeout) if kept && buf.is_empty() => return Ok(None),
            result => result?,
        };
        if n == 0 {
            return match (buf.is_empty(), kept) {
                (true, true) => Ok(None),
                (true, false) => Err(HttpError::Closed),
                (false, _) => Err(HttpError::Malformed {
                    reason: "connection closed in the middle of the headers".to_string(),
                }),
            };
        }
        if kept && buf.is_empty() {
            // The next request has started: from now on it is timed like a first one.
            let now = Instant::now();
            (head_deadline, deadline) = (now + head_time, now + config.request_timeout);
        }
        buf.extend_from_slice(&chunk[..n]);
        // Only a new line can complete a head: do not parse again for every byte of a
        // client that sends them one at a time.
        if chunk[..n].contains(&b'\n') {
            if let Some(parsed) = parse_request_head(&buf)? {
                break parsed;
            }
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(HttpError::HeadersTooLarge {
                limit: MAX_HEAD_BYTES,
            });
        }
    };
    if end > MAX_HEAD_BYTES {
        return Err(HttpError::HeadersTooLarge {
            limit: MAX_HEAD_BYTES,
        });
    }
    if head.header("transfer-encoding").is_some() {
        return Err(HttpError::LengthRequired);
    }
    let length = head
        .content_length()
        .map_err(|reason| HttpError::Malformed { reason })?
        .unwrap_or(0);
    let keep_alive = head.http11
        && !head
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
    let (path, query) = split_target(&head.target)?;
    let request = Request {
        method: head.method,
        path,
        query,
        headers: head.headers,
        body: Vec::new(),
        keep_alive,
    };
    Ok(Some(Head {
        request,
        length,
        rest: buf.split_off(end),
        deadline,
    }))
}

/// Reads a body of `length` bytes (`rest` is its start, read with the head), growing
/// the buffer only as bytes arrive.
pub(crate) async fn read_body<S: AsyncRead + Unpin>(
    stream: &mut S,
    mut body: Vec<u8>,
    length: usize,
    request: &Request,
    config: &ServerConfig,
    deadline: Instant,
) -> Result<Vec<u8>, HttpError> {
    // Anything after the body would be a pipelined request, which we do not serve.
    body.truncate(length);
    if body.len() < length {
        log::debug!(
            "api: waiting for a body of {length} bytes for {} {}",
            request.method,
            request.path
        );
    }
    while body.len() < length {
        let start = body.len();
        body.resize(start + (length - start).min(BODY_CHUNK), 0);
        let pause_limit = deadline.min(Instant::now() + config.body_idle_timeout);
        let read = async { stream.read(&mut body[start..]).await.map_err(read_error) };
        let n = within(pause_limit, read).await?;
        body.truncate(start + n);
        if n == 0 {
            return Err(HttpError::Malformed {
                reason: format!("body shorter than its Content-Length of {length}"),
            });
        }
    }
    Ok(body)
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
