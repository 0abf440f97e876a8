//! Server limits against a real coordinator and a real agent (issue 11): connections that
//! declare large bodies and then send nothing cost next to no memory, and the admin
//! still gets an answer while they hang around.

mod common;
// Only the coordinator is used here, not the test networks.
#[allow(dead_code)]
#[path = "common/fleet.rs"]
mod fleet_support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use berth::api::config::ClientConfig;
use common::{wait_for, TestAgent};
use fleet_support::TestCoordinator;

const MIB: u64 = 1024 * 1024;

/// A field of /proc/PID/status in bytes (`VmRSS`, `VmHWM`).
fn memory(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    kib * 1024
}

fn head_declaring(length: u64) -> String {
    format!(
        "POST /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: berth\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
}

/// Runs a CLI command that must succeed and returns how long it took.
fn timed(run: impl FnOnce() -> String) -> Duration {
    let started = Instant::now();
    run();
    started.elapsed()
}

/// What became of an attacking connection after its head was sent.
#[derive(Debug, Default)]
struct Outcomes {
    refused: usize,
    answered_401: usize,
    closed: usize,
    unanswered: usize,
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Reads what the coordinator answered on each connection, all within one deadline.
fn outcomes(streams: &mut [TlsStream], deadline: Instant) -> Outcomes {
    let mut outcomes = Outcomes::default();
    for stream in streams.iter_mut() {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        stream
            .sock
            .set_read_timeout(Some(left))
            .expect("read timeout");
        let mut answer = [0u8; 12];
        match stream.read(&mut answer) {
            Ok(n) if answer[..n].starts_with(b"HTTP/1.1 401") => outcomes.answered_401 += 1,
            Ok(0) => outcomes.closed += 1,
            Ok(n) => panic!(
                "unexpected answer {:?}",
                String::from_utf8_lossy(&answer[..n])
            ),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                outcomes.unanswered += 1
            }
            Err(_) => outcomes.closed += 1,
        }
    }
    outcomes
}

/// Sends `request` on a new TLS connection and returns the status code answered.
fn status_of(port: u16, tls: &std::sync::Arc<rustls::ClientConfig>, request: &str) -> String {
    let mut stream =
        berth::api::tls::connect("127.0.0.1", port, tls.clone(), Duration::from_secs(5))
            .expect("TLS connection");
    stream.write_all(request.as_bytes()).expect("send");
    stream.flush().expect("send");
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer).expect("an answer");
    String::from_utf8_lossy(&answer[9..]).into_owned()
}

#[test]
fn the_coordinator_checks_credentials_from_the_head() {
    let coordinator = TestCoordinator::start("127.0.0.1", &[]);
    let port: u16 = coordinator
        .listen
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .expect("port");
    let config = ClientConfig::load(&coordinator.config()).expect("admin config");
    let tls =
        berth::api::tls::client_config_trusting(&config.certificate_authority).expect("TLS config");
    let token = coordinator.token();
    let (_, join_secret) = token.split_once("::").expect("id.secret after the CA hash");
    let join = "POST /apis/berth.dev/v1/join HTTP/1.1\r\nHost: berth\r\n";
    // Refused from their heads, although the declared bodies never come.
    let declared = "Content-Length: 4194304\r\n\r\n";
    let cases = [
        (
            format!("{join}Authorization: Bearer x.y\r\n{declared}"),
            "401",
        ),
        (head_declaring(4 * MIB), "401"),
        (
            format!("{join}Authorization: Bearer {}\r\n{declared}", config.token),
            "401",
        ),
        // Let in: the body is read, and judged by the route.
        (
            format!("{join}Authorization: Bearer {join_secret}\r\nContent-Length: 2\r\n\r\n{{}}"),
            "400",
        ),
        (
            "GET /version HTTP/1.1\r\nHost: berth\r\n\r\n".to_string(),
            "200",
        ),
        // Anonymous requests carry no body.
        (
            "GET /version HTTP/1.1\r\nHost: berth\r\nContent-Length: 3\r\n\r\nabc".to_string(),
            "413",
        ),
    ];
    for (request, expected) in cases {
        let status = status_of(port, &tls, &request);
        assert_eq!(status, expected, "{request}");
    }
}

#[test]
fn unauthenticated_connections_cannot_exhaust_the_coordinator() {
    let coordinator = TestCoordinator::start("127.0.0.1", &[]);
    let pid = coordinator.pid().expect("coordinator pid");
    let port: u16 = coordinator
        .listen
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .expect("port");
    let config = ClientConfig::load(&coordinator.config()).expect("admin config");
    let tls =
        berth::api::tls::client_config_trusting(&config.certificate_authority).expect("TLS config");
    let warm = timed(|| coordinator.ok(&["get", "nodes"]));
    let rss_before = memory(pid, "VmRSS");

    // Connections that never start their TLS handshake...
    let silent: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    // ...and connections that declare a 4 MiB body without credentials, then stop.
    let head = head_declaring(4 * MIB);
    let mut attackers = Vec::new();
    let mut refused = 0;
    for _ in 0..200 {
        let connected =
            berth::api::tls::connect("127.0.0.1", port, tls.clone(), Duration::from_secs(5));
        let sent = connected.and_then(|mut stream| {
            stream.write_all(head.as_bytes())?;
            stream.flush()?;
            Ok(stream)
        });
        match sent {
            Ok(stream) => attackers.push(stream),
            // Closed at once by the connection cap: allowed.
            Err(_) => refused += 1,
        }
    }
    let admin = timed(|| coordinator.ok(&["get", "nodes"]));

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut outcomes = outcomes(&mut attackers, deadline);
    outcomes.refused = refused;
    let rss_after = memory(pid, "VmRSS");
    let peak = memory(pid, "VmHWM");
    eprintln!(
        "coordinator: RSS {} KiB before, {} KiB after, peak {} KiB; {outcomes:?}; \
         `get nodes` took {warm:?} before, {admin:?} during",
        rss_before / 1024,
        rss_after / 1024,
        peak / 1024
    );
    assert!(rss_after < 64 * MIB, "RSS {rss_after} bytes");
    assert!(peak < 64 * MIB, "peak RSS {peak} bytes");
    assert!(admin < Duration::from_secs(1), "`get nodes` took {admin:?}");
    assert_eq!(outcomes.unanswered, 0, "{outcomes:?}");
    assert!(outcomes.answered_401 > 0, "{outcomes:?}");
    drop(attackers);
    drop(silent);
}

#[test]
fn declared_bodies_cost_the_agent_nothing_until_they_arrive() {
    let agent = TestAgent::start();
    let pid = agent.pid().expect("agent pid");
    agent.ok(&["get", "pods"]);
    let rss_before = memory(pid, "VmRSS");

    let head = head_declaring(16 * MIB);
    let mut clients = Vec::new();
    for _ in 0..40 {
        let mut stream = UnixStream::connect(agent.socket()).expect("connect");
        stream.write_all(head.as_bytes()).expect("send the head");
        clients.push(stream);
    }
    // The server logs each body it starts to wait for: once all 40 are logged, every head
    // has been read and a server that allocated up front would have done so.
    let waiting = format!("waiting for a body of {} bytes", 16 * MIB);
    wait_for(
        Duration::from_secs(10),
        "the agent to read every head",
        || (agent.log().matches(&waiting).count() >= clients.len()).then_some(()),
    );
    let admin = timed(|| agent.ok(&["get", "pods"]));
    let rss_after = memory(pid, "VmRSS");
    let peak = memory(pid, "VmHWM");
    eprintln!(
        "agent: RSS {} KiB before, {} KiB after, peak {} KiB; `get pods` took {admin:?}",
        rss_before / 1024,
        rss_after / 1024,
        peak / 1024
    );
    assert!(
        rss_after < rss_before + 16 * MIB,
        "RSS grew from {rss_before} to {rss_after} bytes"
    );
    assert!(peak < 64 * MIB, "peak RSS {peak} bytes");
    assert!(admin < Duration::from_secs(1), "`get pods` took {admin:?}");
    drop(clients);
}
