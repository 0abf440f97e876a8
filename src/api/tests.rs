//! Server and client together over a real unix socket.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};
use smol::stream::StreamExt;

use super::*;

/// A server on a socket in its own temp dir; dropping it stops the server.
struct TestServer {
    socket: PathBuf,
    _task: smol::Task<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    fn client(&self) -> Client {
        Client::new(&self.socket)
    }

    /// Sends raw bytes and returns everything the server answered.
    fn raw_exchange(&self, request: &[u8]) -> String {
        let mut stream = StdUnixStream::connect(&self.socket).unwrap();
        stream.write_all(request).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }
}

fn start(config: ServerConfig, follow: smol::channel::Receiver<Vec<u8>>) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("berth.sock");
    let listener = smol::net::unix::UnixListener::bind(&socket).unwrap();
    let handler = move |request: Request| {
        let follow = follow.clone();
        async move { route(request, follow) }
    };
    let task = smol::spawn(serve_with(listener, config, handler));
    TestServer {
        socket,
        _task: task,
        _dir: dir,
    }
}

fn start_default() -> TestServer {
    start(ServerConfig::default(), smol::channel::unbounded().1)
}

fn route(request: Request, follow: smol::channel::Receiver<Vec<u8>>) -> Response {
    match (request.method.as_str(), request.path.as_str()) {
        ("POST", "/echo") => {
            let body: Value = match serde_json::from_slice(&request.body) {
                Ok(body) => body,
                Err(err) => return Response::status_error(400, "BadRequest", &err.to_string()),
            };
            let query: Vec<Value> = request.query.iter().map(|(k, v)| json!([k, v])).collect();
            Response::json(
                200,
                &json!({"body": body, "query": query, "contentType": request.header("CONTENT-TYPE")}),
            )
        }
        ("GET", "/query") => {
            let query: Vec<Value> = request.query.iter().map(|(k, v)| json!([k, v])).collect();
            Response::json(
                200,
                &json!({"query": query, "selector": request.query_param("labelSelector")}),
            )
        }
        ("GET", "/text") => Response::text(200, "plain words\n"),
        ("GET", "/follow") => {
            let first = smol::stream::once(Ok(b"first\n".to_vec()));
            Response::stream(200, "text/plain", Box::pin(first.chain(follow.map(Ok))))
        }
        _ => Response::status_error(404, "NotFound", &format!("no route for {}", request.path)),
    }
}

#[test]
fn json_round_trip() {
    let server = start_default();
    let body = json!({"files": [{"name": "a.yaml", "content": "kind: Pod\n"}], "ü": "ñ"});
    let (status, reply) = server
        .client()
        .request("POST", "/echo?dryRun=All", Some(&body))
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(reply["body"], body);
    assert_eq!(reply["query"], json!([["dryRun", "All"]]));
    assert_eq!(reply["contentType"], json!("application/json"));
}

#[test]
fn text_body_arrives_through_request_raw() {
    let server = start_default();
    let mut out = Vec::new();
    let status = server
        .client()
        .request_raw("GET", "/text", None, &mut out)
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(out, b"plain words\n");
}

#[test]
fn not_found_is_a_kubernetes_status() {
    let server = start_default();
    let err = server.client().request("GET", "/nope", None).unwrap_err();
    assert!(
        matches!(&err, ApiError::Status { code: 404, message } if message == "no route for /nope"),
        "{err}"
    );
    let response = server.raw_exchange(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        response.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{response}"
    );
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    let status: Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        status,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "no route for /nope", "reason": "NotFound", "code": 404})
    );
}

#[test]
fn malformed_requests_get_400_and_the_server_keeps_going() {
    let server = start_default();
    let cases: &[(&[u8], &str)] = &[
        (b"NOT HTTP\r\n\r\n", "HTTP/1.1 400 "),
        (b"GET /x HTTP/1.1\r\nno colon\r\n\r\n", "HTTP/1.1 400 "),
        (b"GET /x?a=%zz HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "),
        (
            b"POST /echo HTTP/1.1\r\nContent-Length: ten\r\n\r\n",
            "HTTP/1.1 400 ",
        ),
        (
            b"POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc",
            "HTTP/1.1 400 ",
        ),
        (
            b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            "HTTP/1.1 411 ",
        ),
    ];
    for (request, expected) in cases {
        let response = server.raw_exchange(request);
        assert!(
            response.starts_with(expected),
            "{:?} -> {response}",
            String::from_utf8_lossy(request)
        );
        assert!(response.contains("\"kind\":\"Status\""), "{response}");
    }
    let mut huge = b"GET /x HTTP/1.1\r\nX-Filler: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 20 * 1024));
    huge.extend_from_slice(b"\r\n\r\n");
    let response = server.raw_exchange(&huge);
    assert!(response.starts_with("HTTP/1.1 431 "), "{response}");
    // A connection closed without a request gets no answer, and breaks nothing.
    let response = server.raw_exchange(b"");
    assert_eq!(response, "");
    let (status, _) = server.client().request("GET", "/query", None).unwrap();
    assert_eq!(status, 200);
}

#[test]
fn oversized_body_is_rejected() {
    let config = ServerConfig {
        max_body: 1024,
        ..ServerConfig::default()
    };
    let server = start(config, smol::channel::unbounded().1);
    let small = json!({"data": "x".repeat(100)});
    assert!(server
        .client()
        .request("POST", "/echo", Some(&small))
        .is_ok());
    let big = json!({"data": "x".repeat(4096)});
    let err = server
        .client()
        .request("POST", "/echo", Some(&big))
        .unwrap_err();
    assert!(matches!(&err, ApiError::Status { code: 413, .. }), "{err}");
    assert!(
        err.to_string().contains("exceeds the limit of 1024 bytes"),
        "{err}"
    );
    // Larger than the socket buffer: the server answers before the client is done
    // sending, and the client still reports the answer rather than a broken pipe.
    let huge = json!({"data": "x".repeat(4 * 1024 * 1024)});
    let err = server
        .client()
        .request("POST", "/echo", Some(&huge))
        .unwrap_err();
    assert!(matches!(&err, ApiError::Status { code: 413, .. }), "{err}");
}

#[test]
fn query_strings_are_percent_decoded() {
    let server = start_default();
    let selector = "app=web,tier in (front, back)";
    let path = format!(
        "/query?labelSelector={}&name=a+b%2Fc&flag",
        percent_encode(selector)
    );
    let (_, reply) = server.client().request("GET", &path, None).unwrap();
    assert_eq!(reply["selector"], json!(selector));
    assert_eq!(
        reply["query"],
        json!([["labelSelector", selector], ["name", "a b/c"], ["flag", ""]])
    );
}

/// A writer that hands every piece it gets to a channel, so the test can see when data
/// arrives.
struct ChannelWriter(mpsc::Sender<Vec<u8>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !buf.is_empty() {
            let _ = self.0.send(buf.to_vec());
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn streamed_response_is_delivered_as_it_comes() {
    let (more, follow) = smol::channel::unbounded::<Vec<u8>>();
    let server = start(ServerConfig::default(), follow);
    let client = server.client();
    let (seen_tx, seen) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        client.request_raw("GET", "/follow", None, &mut ChannelWriter(seen_tx))
    });
    // The stream cannot end before `more` is closed, so receiving the first chunk here
    // proves it travelled while the server was still producing.
    let first = seen.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(first, b"first\n");
    assert!(!reader.is_finished());
    more.send_blocking(b"second\n".to_vec()).unwrap();
    let second = seen.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(second, b"second\n");
    drop(more);
    let status = reader.join().unwrap().unwrap();
    assert_eq!(status, 200);
    assert!(seen.try_iter().all(|rest| rest.is_empty()));
}

#[test]
fn idle_connection_times_out_without_blocking_others() {
    let config = ServerConfig {
        header_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let server = start(config, smol::channel::unbounded().1);
    let mut idle = StdUnixStream::connect(&server.socket).unwrap();
    idle.write_all(b"GET /query HTTP/1.1\r\n").unwrap();
    // While the idle client dawdles, others are served.
    let (status, _) = server.client().request("GET", "/query", None).unwrap();
    assert_eq!(status, 200);
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut response = String::new();
    idle.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 408 "), "{response}");
}

#[test]
fn kept_connections_serve_several_requests() {
    let config = ServerConfig {
        keep_alive: Some(Duration::from_secs(5)),
        ..ServerConfig::default()
    };
    let server = start(config, smol::channel::unbounded().1);
    let mut stream = StdUnixStream::connect(&server.socket).unwrap();
    for _ in 0..3 {
        stream
            .write_all(b"GET /query HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let head = read_response(&mut stream);
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        assert!(head.contains("Connection: keep-alive"), "{head}");
    }
    // Asking to close is honoured: the answer says so and the server closes.
    stream
        .write_all(b"GET /query HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let head = read_response(&mut stream);
    assert!(head.contains("Connection: close"), "{head}");
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    // Without keep-alive in the config, every answer closes (the agent's socket).
    let plain = start_default();
    let response = plain.raw_exchange(b"GET /query HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(response.contains("Connection: close"), "{response}");
}

// --- Limits: memory follows the bytes sent, connections are capped, waits time out. ---

/// A stream that hands out `pieces` one read at a time, then ends (`then_eof`) or
/// stalls forever; it remembers the largest buffer a read offered it.
struct Trickle {
    pieces: std::collections::VecDeque<Vec<u8>>,
    then_eof: bool,
    largest_read: usize,
}

impl Trickle {
    fn new(total: usize, piece: usize, then_eof: bool) -> Trickle {
        let bytes: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        Trickle {
            pieces: bytes.chunks(piece).map(<[u8]>::to_vec).collect(),
            then_eof,
            largest_read: 0,
        }
    }
}

impl smol::io::AsyncRead for Trickle {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.largest_read = self.largest_read.max(buf.len());
        match self.pieces.pop_front() {
            Some(mut piece) => {
                let n = piece.len().min(buf.len());
                buf[..n].copy_from_slice(&piece[..n]);
                if n < piece.len() {
                    self.pieces.push_front(piece.split_off(n));
                }
                std::task::Poll::Ready(Ok(n))
            }
            None if self.then_eof => std::task::Poll::Ready(Ok(0)),
            None => std::task::Poll::Pending,
        }
    }
}

fn post_request() -> Request {
    Request {
        method: "POST".into(),
        path: "/echo".into(),
        query: Vec::new(),
        headers: Vec::new(),
        body: Vec::new(),
        keep_alive: false,
    }
}

fn read_body_from(
    stream: &mut Trickle,
    length: usize,
    config: &ServerConfig,
) -> Result<Vec<u8>, HttpError> {
    let deadline = std::time::Instant::now() + config.request_timeout;
    smol::block_on(super::serve::read_body(
        stream,
        Vec::new(),
        length,
        &post_request(),
        config,
        deadline,
    ))
}

#[test]
fn a_body_grows_only_as_it_arrives() {
    use super::serve::BODY_CHUNK;
    let config = ServerConfig::default();
    // Declared 16 MiB, sent 100 KB, then the client hangs up: never more than a chunk
    // was set aside beyond what arrived.
    let mut short = Trickle::new(100_000, 1000, true);
    let err = read_body_from(&mut short, 16 << 20, &config).unwrap_err();
    assert!(
        err.to_string()
            .contains("body shorter than its Content-Length of 16777216"),
        "{err}"
    );
    assert!(short.largest_read <= BODY_CHUNK, "{}", short.largest_read);
    // A whole body in uneven pieces arrives intact, in a buffer of about its size.
    let mut whole = Trickle::new(1 << 20, 3001, true);
    let expected: Vec<u8> = whole.pieces.iter().flatten().copied().collect();
    let body = read_body_from(&mut whole, 1 << 20, &config).unwrap();
    assert_eq!(body, expected);
    assert!(body.capacity() <= 2 << 20, "{}", body.capacity());
    assert!(whole.largest_read <= BODY_CHUNK);
}

#[test]
fn a_body_that_stops_arriving_times_out() {
    let config = ServerConfig {
        body_idle_timeout: Duration::from_millis(200),
        ..ServerConfig::default()
    };
    let mut stalled = Trickle::new(10, 10, false);
    let started = std::time::Instant::now();
    let err = read_body_from(&mut stalled, 16 << 20, &config).unwrap_err();
    assert!(matches!(err, HttpError::Timeout), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// Like `start`, with an authorizer: `Authorization: Bearer good` is authenticated,
/// `/anon` anonymous, anything else refused with 401.
fn start_authorized(config: ServerConfig) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("berth.sock");
    let listener = smol::net::unix::UnixListener::bind(&socket).unwrap();
    let authorizer: Authorizer = std::sync::Arc::new(|request: &Request| {
        if request.header("authorization") == Some("Bearer good") {
            Admission::Authenticated
        } else if request.path == "/anon" {
            Admission::Anonymous
        } else {
            Admission::Denied(Response::status_error(
                401,
                "Unauthorized",
                "no credentials",
            ))
        }
    });
    let handler = |request: Request| async move { route(request, smol::channel::unbounded().1) };
    let task = smol::spawn(http::serve_unix(
        listener,
        config,
        Some(authorizer),
        handler,
    ));
    TestServer {
        socket,
        _task: task,
        _dir: dir,
    }
}

/// Reads a response's first bytes (up to 64), or what ended the connection.
fn first_bytes(stream: &mut StdUnixStream) -> std::io::Result<String> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Reads one sized response whole, leaving the connection ready for the next.
fn read_response(stream: &mut StdUnixStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    head + &String::from_utf8(body).unwrap()
}

const GOOD: &str = "Authorization: Bearer good\r\n";

#[test]
fn credentials_are_checked_before_the_body() {
    let server = start_authorized(ServerConfig::default());
    // Declares 16 MiB and sends none of it: the 401 comes from the head alone.
    let mut stranger = StdUnixStream::connect(&server.socket).unwrap();
    stranger
        .write_all(b"POST /echo HTTP/1.1\r\nContent-Length: 16777216\r\n\r\n")
        .unwrap();
    let answer = first_bytes(&mut stranger).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401 "), "{answer}");
    // Credentials let the body in.
    let request = format!("POST /echo HTTP/1.1\r\n{GOOD}Content-Length: 7\r\n\r\n{{\"a\":1}}");
    let response = server.raw_exchange(request.as_bytes());
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    assert!(response.contains(r#""body":{"a":1}"#), "{response}");
    // Anonymous requests are served, but carry no body.
    let response = server.raw_exchange(b"GET /anon HTTP/1.1\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 404 "), "{response}");
    let response = server.raw_exchange(b"POST /anon HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
    assert!(response.starts_with("HTTP/1.1 413 "), "{response}");
}

#[test]
fn the_oldest_unauthenticated_connection_gives_way() {
    let config = ServerConfig {
        max_unauthenticated: 2,
        keep_alive: Some(Duration::from_secs(30)),
        ..ServerConfig::default()
    };
    let server = start_authorized(config);
    let query = format!("GET /query HTTP/1.1\r\n{GOOD}\r\n");
    // An authenticated kept connection...
    let mut kept = StdUnixStream::connect(&server.socket).unwrap();
    kept.write_all(query.as_bytes()).unwrap();
    let answer = read_response(&mut kept);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    // ...then three strangers that send nothing: the first is closed for the third.
    let mut strangers: Vec<StdUnixStream> = (0..3)
        .map(|_| StdUnixStream::connect(&server.socket).unwrap())
        .collect();
    match first_bytes(&mut strangers[0]) {
        Ok(answer) => assert_eq!(answer, ""),
        Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}"),
    }
    // The authenticated connection and the younger strangers are still served.
    let [_, younger, youngest] = &mut strangers[..] else {
        unreachable!()
    };
    for stream in [&mut kept, younger, youngest] {
        stream.write_all(query.as_bytes()).unwrap();
        let answer = read_response(stream);
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    }
}

#[test]
fn connections_beyond_the_cap_are_closed_at_once() {
    let config = ServerConfig {
        max_connections: 2,
        ..ServerConfig::default()
    };
    let server = start(config, smol::channel::unbounded().1);
    let mut holders: Vec<StdUnixStream> = (0..2)
        .map(|_| {
            let mut stream = StdUnixStream::connect(&server.socket).unwrap();
            stream.write_all(b"GET /query HTTP/1.1\r\n").unwrap();
            stream
        })
        .collect();
    let mut third = StdUnixStream::connect(&server.socket).unwrap();
    match first_bytes(&mut third) {
        Ok(answer) => assert_eq!(answer, ""),
        Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}"),
    }
    // A holder finishing its request frees its slot once the server is done with it.
    let holder = &mut holders[0];
    holder.write_all(b"\r\n").unwrap();
    let mut response = String::new();
    holder.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.client().request("GET", "/query", None).is_err() {
        assert!(std::time::Instant::now() < deadline, "no slot came free");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_body_that_pauses_too_long_gets_408() {
    let config = ServerConfig {
        body_idle_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let server = start(config, smol::channel::unbounded().1);
    let mut stream = StdUnixStream::connect(&server.socket).unwrap();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\n{\"a\"")
        .unwrap();
    let started = std::time::Instant::now();
    let answer = first_bytes(&mut stream).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    // The pause limit, not the 60 s request timeout.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_idle_kept_connection_is_closed_quietly() {
    let config = ServerConfig {
        keep_alive: Some(Duration::from_millis(300)),
        ..ServerConfig::default()
    };
    let server = start(config, smol::channel::unbounded().1);
    let mut stream = StdUnixStream::connect(&server.socket).unwrap();
    stream
        .write_all(b"GET /text HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The answer, then nothing more: the server closes after the idle limit without
    // an error response.
    let mut all = String::new();
    stream.read_to_string(&mut all).unwrap();
    assert!(all.starts_with("HTTP/1.1 200 "), "{all}");
    assert!(all.ends_with("plain words\n"), "{all}");
}
