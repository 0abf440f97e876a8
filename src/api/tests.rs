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
        request_timeout: Duration::from_millis(300),
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
    let read_one = |stream: &mut StdUnixStream| {
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
        head
    };
    for _ in 0..3 {
        stream
            .write_all(b"GET /query HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let head = read_one(&mut stream);
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        assert!(head.contains("Connection: keep-alive"), "{head}");
    }
    // Asking to close is honoured: the answer says so and the server closes.
    stream
        .write_all(b"GET /query HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let head = read_one(&mut stream);
    assert!(head.contains("Connection: close"), "{head}");
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    // Without keep-alive in the config, every answer closes (the agent's socket).
    let plain = start_default();
    let response = plain.raw_exchange(b"GET /query HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(response.contains("Connection: close"), "{response}");
}
