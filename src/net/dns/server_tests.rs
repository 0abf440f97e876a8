//! The server on the test process's loopback: answers over UDP and TCP, forwarding to a
//! fake upstream on loopback, and survival of broken and random datagrams.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use simple_dns::rdata::{RData, A};
use simple_dns::{Name, Packet, Question, ResourceRecord, CLASS, RCODE, TYPE};

use super::super::forward::UPSTREAM_TIMEOUT;
use super::*;
use crate::net::dns::zone::{ServiceEntry, ServiceKind};

/// Longer than any answer may take (two upstream timeouts and then some), so that a
/// broken server fails the test rather than hanging it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(8);

fn zone_with(ip: Ipv4Addr) -> Zone {
    let service = |name: &str, kind| ServiceEntry {
        name: name.into(),
        namespace: "default".into(),
        kind,
        ports: Vec::new(),
    };
    Zone {
        domain: "cluster.local".into(),
        services: vec![
            service("web", ServiceKind::ClusterIp(ip)),
            service("db", ServiceKind::ExternalName("outside.test".into())),
        ],
        pods: Vec::new(),
    }
}

/// The ExternalName Service of [`zone_with`], a CNAME to `outside.test`.
const DB: &str = "db.default.svc.cluster.local";

const WEB: Ipv4Addr = Ipv4Addr::new(10, 43, 0, 10);
const OUTSIDE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

fn start(zone: Arc<ZoneCell>, upstreams: Vec<SocketAddr>) -> DnsServer {
    // Port 0 picks a free UDP port; the same TCP port is taken on the rare occasion.
    let mut last = None;
    for _ in 0..10 {
        let bind = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0);
        match DnsServer::start(bind, zone.clone(), upstreams.clone()) {
            Ok(server) => return server,
            Err(error) => last = Some(error),
        }
    }
    panic!("cannot start the DNS server: {last:?}");
}

fn query(id: u16, name: &str, qtype: TYPE) -> Vec<u8> {
    let mut packet = Packet::new_query(id);
    packet.questions.push(Question::new(
        Name::new_unchecked(name),
        qtype.into(),
        CLASS::IN.into(),
        false,
    ));
    packet.build_bytes_vec().unwrap()
}

/// Sends `query` over UDP and waits for the reply with its id.
fn ask_udp(server: SocketAddrV4, query: &[u8]) -> Vec<u8> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    socket.send_to(query, server).unwrap();
    let mut buffer = vec![0u8; 65535];
    loop {
        let (length, _) = socket.recv_from(&mut buffer).expect("no reply in time");
        if buffer[..2] == query[..2] {
            return buffer[..length].to_vec();
        }
    }
}

/// Like [`ask_udp`], resending every half second as a resolver does: after a flood the
/// server's socket buffer may have had no room for the first copy.
fn ask_udp_retrying(server: SocketAddrV4, query: &[u8]) -> Vec<u8> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let mut buffer = vec![0u8; 65535];
    while Instant::now() < deadline {
        socket.send_to(query, server).unwrap();
        while let Ok((length, _)) = socket.recv_from(&mut buffer) {
            if buffer[..2] == query[..2] {
                return buffer[..length].to_vec();
            }
        }
    }
    panic!("no reply in time");
}

fn write_message(stream: &mut TcpStream, message: &[u8]) {
    let mut framed = (message.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(message);
    stream.write_all(&framed).unwrap();
}

fn read_message(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut length = [0u8; 2];
    stream.read_exact(&mut length)?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut message)?;
    Ok(message)
}

fn tcp_client(server: SocketAddrV4) -> TcpStream {
    let stream = TcpStream::connect(server).unwrap();
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    stream
}

/// The reply's CNAME records, as (owner, target).
fn cnames(reply: &[u8]) -> Vec<(String, String)> {
    Packet::parse(reply)
        .unwrap()
        .answers
        .iter()
        .filter_map(|record| match &record.rdata {
            RData::CNAME(target) => Some((record.name.to_string(), target.0.to_string())),
            _ => None,
        })
        .collect()
}

fn db_cname() -> Vec<(String, String)> {
    vec![(DB.to_string(), "outside.test".to_string())]
}

fn addresses(reply: &[u8]) -> Vec<Ipv4Addr> {
    Packet::parse(reply)
        .unwrap()
        .answers
        .iter()
        .filter_map(|record| match &record.rdata {
            RData::A(a) => Some(Ipv4Addr::from(a.address)),
            _ => None,
        })
        .collect()
}

/// An A reply to `query` with `address`, as an upstream would send it.
fn upstream_reply(query: &[u8], address: Ipv4Addr) -> Option<Vec<u8>> {
    let mut reply = Packet::parse(query).ok()?.into_reply();
    let name = reply.questions.first()?.qname.clone();
    reply.answers.push(ResourceRecord::new(
        name,
        CLASS::IN,
        60,
        RData::A(A {
            address: address.into(),
        }),
    ));
    reply.build_bytes_vec().ok()
}

#[derive(Clone, Copy)]
enum Behaviour {
    Answer,
    Silent,
    /// A reply with the wrong id, then one for another question, then the right one.
    ForgeFirst,
}

/// A resolver on loopback (UDP and TCP on one port) answering every name with
/// [`OUTSIDE`], counting what it receives.
struct FakeUpstream {
    address: SocketAddr,
    received: Arc<AtomicUsize>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeUpstream {
    fn start(behaviour: Behaviour) -> FakeUpstream {
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
            if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()) {
                break (udp, tcp);
            }
        };
        let address = udp.local_addr().unwrap();
        udp.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        tcp.set_nonblocking(true).unwrap();
        let received = Arc::new(AtomicUsize::new(0));
        let stopping = Arc::new(AtomicBool::new(false));
        let (count, stop) = (received.clone(), stopping.clone());
        let thread = std::thread::spawn(move || {
            let mut buffer = vec![0u8; 65535];
            while !stop.load(Ordering::Acquire) {
                if let Ok((length, from)) = udp.recv_from(&mut buffer) {
                    count.fetch_add(1, Ordering::AcqRel);
                    answer_udp(&udp, &buffer[..length], from, behaviour);
                }
                if let Ok((mut stream, _)) = tcp.accept() {
                    count.fetch_add(1, Ordering::AcqRel);
                    stream.set_nonblocking(false).unwrap();
                    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
                    if let Ok(message) = read_message(&mut stream) {
                        if let Some(reply) = upstream_reply(&message, OUTSIDE) {
                            write_message(&mut stream, &reply);
                        }
                    }
                }
            }
        });
        FakeUpstream {
            address,
            received,
            stopping,
            thread: Some(thread),
        }
    }

    fn received(&self) -> usize {
        self.received.load(Ordering::Acquire)
    }
}

fn answer_udp(socket: &UdpSocket, query: &[u8], from: SocketAddr, behaviour: Behaviour) {
    let Some(reply) = upstream_reply(query, OUTSIDE) else {
        return;
    };
    match behaviour {
        Behaviour::Silent => return,
        Behaviour::Answer => {}
        Behaviour::ForgeFirst => {
            let mut wrong_id = reply.clone();
            wrong_id[1] ^= 0x55;
            socket.send_to(&wrong_id, from).unwrap();
            let mut other = Packet::parse(query).unwrap();
            other.questions[0].qname = Name::new_unchecked("evil.example");
            let forged =
                upstream_reply(&other.build_bytes_vec().unwrap(), Ipv4Addr::new(6, 6, 6, 6));
            socket.send_to(&forged.unwrap(), from).unwrap();
        }
    }
    socket.send_to(&reply, from).unwrap();
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

#[test]
fn answers_from_the_zone_over_udp_and_tcp_and_serves_a_replaced_zone_at_once() {
    let zone = Arc::new(ZoneCell::new(zone_with(WEB)));
    let server = start(zone.clone(), Vec::new());
    let address = server.local_addr();
    let reply = ask_udp(address, &query(7, "web.default.svc.cluster.local", TYPE::A));
    assert_eq!(addresses(&reply), [WEB]);

    // Two queries on one TCP connection, the second after the zone changed.
    let mut stream = tcp_client(address);
    write_message(
        &mut stream,
        &query(8, "web.default.svc.cluster.local", TYPE::A),
    );
    assert_eq!(addresses(&read_message(&mut stream).unwrap()), [WEB]);
    let moved = Ipv4Addr::new(10, 43, 0, 99);
    zone.replace(zone_with(moved));
    write_message(
        &mut stream,
        &query(9, "web.default.svc.cluster.local", TYPE::A),
    );
    assert_eq!(addresses(&read_message(&mut stream).unwrap()), [moved]);
    let reply = ask_udp(
        address,
        &query(10, "web.default.svc.cluster.local", TYPE::A),
    );
    assert_eq!(addresses(&reply), [moved]);
    server.stop();
}

#[test]
fn other_names_go_to_the_first_upstream_that_answers_under_the_clients_id() {
    let silent = FakeUpstream::start(Behaviour::Silent);
    let answering = FakeUpstream::start(Behaviour::Answer);
    let zone = Arc::new(ZoneCell::new(zone_with(WEB)));
    let server = start(zone, vec![silent.address, answering.address]);
    let address = server.local_addr();

    let started = Instant::now();
    let reply = ask_udp(address, &query(0xbeef, "example.com", TYPE::A));
    assert!(started.elapsed() >= UPSTREAM_TIMEOUT);
    assert_eq!(Packet::parse(&reply).unwrap().id(), 0xbeef);
    assert_eq!(addresses(&reply), [OUTSIDE]);
    assert_eq!(silent.received(), 1);
    assert_eq!(answering.received(), 1);

    // The upstream that answered is asked first from now on.
    let started = Instant::now();
    let reply = ask_udp(address, &query(0xcafe, "example.org", TYPE::A));
    assert!(started.elapsed() < UPSTREAM_TIMEOUT);
    assert_eq!(addresses(&reply), [OUTSIDE]);
    assert_eq!(silent.received(), 1);

    // Over TCP, forwarded over TCP.
    let mut stream = tcp_client(address);
    write_message(&mut stream, &query(0xf00d, "example.net", TYPE::A));
    let reply = read_message(&mut stream).unwrap();
    assert_eq!(Packet::parse(&reply).unwrap().id(), 0xf00d);
    assert_eq!(addresses(&reply), [OUTSIDE]);
    server.stop();
}

#[test]
fn replies_with_the_wrong_id_or_question_are_not_passed_on() {
    let forging = FakeUpstream::start(Behaviour::ForgeFirst);
    let zone = Arc::new(ZoneCell::new(zone_with(WEB)));
    let server = start(zone, vec![forging.address]);
    for id in 1..=5 {
        let reply = ask_udp(server.local_addr(), &query(id, "example.com", TYPE::A));
        assert_eq!(addresses(&reply), [OUTSIDE]);
        let packet = Packet::parse(&reply).unwrap();
        assert_eq!(packet.questions[0].qname.to_string(), "example.com");
    }
}

#[test]
fn without_an_answering_upstream_the_client_gets_servfail() {
    let silent = FakeUpstream::start(Behaviour::Silent);
    let zone = Arc::new(ZoneCell::new(zone_with(WEB)));
    let server = start(zone.clone(), vec![silent.address]);
    let reply = ask_udp(server.local_addr(), &query(3, "example.com", TYPE::A));
    let packet = Packet::parse(&reply).unwrap();
    assert_eq!(packet.rcode(), RCODE::ServerFailure);
    assert_eq!(packet.questions[0].qname.to_string(), "example.com");
    drop(server);

    let alone = start(zone, Vec::new());
    let reply = ask_udp(alone.local_addr(), &query(4, "example.com", TYPE::A));
    assert_eq!(Packet::parse(&reply).unwrap().rcode(), RCODE::ServerFailure);
}

#[test]
fn an_external_name_gets_its_cname_and_the_targets_addresses_from_upstream() {
    let upstream = FakeUpstream::start(Behaviour::Answer);
    let zone = Arc::new(ZoneCell::new(zone_with(WEB)));
    let server = start(zone, vec![upstream.address]);
    let address = server.local_addr();
    let reply = ask_udp(address, &query(21, DB, TYPE::A));
    let packet = Packet::parse(&reply).unwrap();
    assert_eq!((packet.id(), packet.rcode()), (21, RCODE::NoError));
    assert_eq!(cnames(&reply), db_cname());
    assert_eq!(addresses(&reply), [OUTSIDE]);
    assert_eq!(packet.answers[1].name.to_string(), "outside.test");
    assert_eq!(upstream.received(), 1);

    // Over TCP, asked over TCP.
    let mut stream = tcp_client(address);
    write_message(&mut stream, &query(22, DB, TYPE::A));
    let reply = read_message(&mut stream).unwrap();
    assert_eq!(Packet::parse(&reply).unwrap().id(), 22);
    assert_eq!(cnames(&reply), db_cname());
    assert_eq!(addresses(&reply), [OUTSIDE]);
    assert_eq!(upstream.received(), 2);

    // A CNAME question is the zone's alone.
    let reply = ask_udp(address, &query(23, DB, TYPE::CNAME));
    assert_eq!(cnames(&reply), db_cname());
    assert_eq!(Packet::parse(&reply).unwrap().answers.len(), 1);
    assert_eq!(upstream.received(), 2);
    server.stop();
}

#[test]
fn a_chase_takes_only_the_upstreams_reply_to_its_question() {
    let forging = FakeUpstream::start(Behaviour::ForgeFirst);
    let zone = Arc::new(ZoneCell::new(zone_with(WEB)));
    let server = start(zone, vec![forging.address]);
    for id in 31..=35 {
        let reply = ask_udp(server.local_addr(), &query(id, DB, TYPE::A));
        assert_eq!(cnames(&reply), db_cname());
        assert_eq!(addresses(&reply), [OUTSIDE]);
    }
}

#[test]
fn without_an_answering_upstream_an_external_name_gets_its_cname_alone() {
    let silent = FakeUpstream::start(Behaviour::Silent);
    let zone = Arc::new(ZoneCell::new(zone_with(WEB)));
    let server = start(zone.clone(), vec![silent.address]);
    let started = Instant::now();
    let reply = ask_udp(server.local_addr(), &query(41, DB, TYPE::A));
    assert!(started.elapsed() >= UPSTREAM_TIMEOUT);
    let packet = Packet::parse(&reply).unwrap();
    assert_eq!((packet.id(), packet.rcode()), (41, RCODE::NoError));
    assert_eq!(cnames(&reply), db_cname());
    assert_eq!(packet.answers.len(), 1);
    drop(server);

    let alone = start(zone, Vec::new());
    let reply = ask_udp(alone.local_addr(), &query(42, DB, TYPE::A));
    assert_eq!(Packet::parse(&reply).unwrap().rcode(), RCODE::NoError);
    assert_eq!(cnames(&reply), db_cname());
    let mut stream = tcp_client(alone.local_addr());
    write_message(&mut stream, &query(43, DB, TYPE::AAAA));
    let reply = read_message(&mut stream).unwrap();
    assert_eq!(Packet::parse(&reply).unwrap().id(), 43);
    assert_eq!(cnames(&reply), db_cname());
    assert_eq!(Packet::parse(&reply).unwrap().answers.len(), 1);
}

#[test]
fn broken_oversized_and_random_datagrams_leave_the_server_answering() {
    let answering = FakeUpstream::start(Behaviour::Answer);
    let zone = Arc::new(ZoneCell::new(zone_with(WEB)));
    let server = start(zone, vec![answering.address]);
    let address = server.local_addr();
    let good = query(11, "web.default.svc.cluster.local", TYPE::A);
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    for length in 0..good.len() {
        sender.send_to(&good[..length], address).unwrap();
    }
    let mut oversized = good.clone();
    oversized.resize(9000, 0x3f);
    sender.send_to(&oversized, address).unwrap();
    let mut response = good.clone();
    response[2] |= 0x80;
    sender.send_to(&response, address).unwrap();
    let mut rng = crate::fuzz::Rng::new(0xd45);
    for _ in 0..2000 {
        let length = rng.below(600);
        let noise: Vec<u8> = (0..length).map(|_| rng.next() as u8).collect();
        sender.send_to(&noise, address).unwrap();
    }
    assert_eq!(addresses(&ask_udp_retrying(address, &good)), [WEB]);
    let outside = query(12, "example.com", TYPE::A);
    assert_eq!(addresses(&ask_udp_retrying(address, &outside)), [OUTSIDE]);

    // TCP: a length beyond any query closes that connection, not the server.
    let mut stream = tcp_client(address);
    stream.write_all(&[0xff, 0xff, 1, 2, 3]).unwrap();
    assert_eq!(stream.read(&mut [0u8; 16]).unwrap_or(0), 0);
    let mut stream = tcp_client(address);
    write_message(&mut stream, &good);
    assert_eq!(addresses(&read_message(&mut stream).unwrap()), [WEB]);
}

#[test]
fn tcp_connections_beyond_the_limit_are_closed_and_udp_keeps_answering() {
    let zone = Arc::new(ZoneCell::new(zone_with(WEB)));
    let server = start(zone, Vec::new());
    let address = server.local_addr();
    let idle: Vec<TcpStream> = (0..MAX_TCP_CONNECTIONS)
        .map(|_| tcp_client(address))
        .collect();
    // The accept loop has taken all of them once a message on the last one is answered.
    let mut last = idle.last().unwrap().try_clone().unwrap();
    write_message(
        &mut last,
        &query(13, "web.default.svc.cluster.local", TYPE::A),
    );
    assert_eq!(addresses(&read_message(&mut last).unwrap()), [WEB]);
    let mut extra = tcp_client(address);
    let _ = extra.write_all(&[0, 12]);
    assert_eq!(
        extra.read(&mut [0u8; 16]).unwrap_or(0),
        0,
        "the extra connection is closed"
    );
    let reply = ask_udp(
        address,
        &query(14, "web.default.svc.cluster.local", TYPE::A),
    );
    assert_eq!(addresses(&reply), [WEB]);
    drop(idle);
    server.stop();
}

#[test]
fn stopping_closes_the_sockets_and_an_unassigned_address_is_a_clear_error() {
    let zone = Arc::new(ZoneCell::new(zone_with(WEB)));
    let server = start(zone.clone(), Vec::new());
    let address = server.local_addr();
    let started = Instant::now();
    server.stop();
    assert!(started.elapsed() < Duration::from_secs(3));
    UdpSocket::bind(address).expect("the UDP port is free again");
    TcpListener::bind(address).expect("the TCP port is free again");

    // TEST-NET-1 is on no interface of a test machine: nothing is sent, bind fails.
    let error = DnsServer::start(
        SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 0),
        zone,
        Vec::new(),
    )
    .unwrap_err();
    assert!(error.is_address_not_available(), "{error}");
    assert!(error.to_string().contains("not assigned"), "{error}");
}
