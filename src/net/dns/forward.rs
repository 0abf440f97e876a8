//! Forwarding what the zone does not answer to the host's upstream resolvers.
//!
//! Over UDP, queries from every client share one socket per address family: each goes
//! out under a fresh random id, and a reply is accepted only from the upstream it was
//! sent to, with that id, the response flag and the same question; its id is then put
//! back and it goes to the client. An upstream gets [`UPSTREAM_TIMEOUT`] to answer, then
//! the next one is tried; when all have failed the client gets SERVFAIL (as CoreDNS'
//! `forward` answers), and a late reply finds nothing waiting and is dropped. The one
//! that answered last is asked first next time, so a dead first server costs its
//! timeout once, not on every query. At most [`MAX_IN_FLIGHT`] queries wait at a time:
//! beyond that new ones are dropped (the client retries), so a flood cannot grow memory.
//!
//! A chase (an ExternalName's target, [`Chase`]) goes the same way under its own
//! question; the reply that passes the checks is given to [`Chase::finish`] for the
//! client's, and where a forwarded query would get SERVFAIL the client gets the CNAME
//! alone.
//!
//! Over TCP the connection's thread asks the upstreams in turn over TCP and waits.
//!
//! The shared socket's port stays the same for the server's life, so ids are the only
//! defence against forged replies from off the path: the upstreams are expected to be
//! the board's own network's resolvers, as in the host's resolv.conf.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use simple_dns::{header_buffer, PacketFlag};

use super::chase::Chase;
use super::zone::{question_end, server_failure};
use crate::support::random;

/// How long an upstream has to answer before the next one is asked.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// The most forwarded UDP queries waiting for an answer at once.
pub const MAX_IN_FLIGHT: usize = 128;

/// The largest reply an upstream may send over UDP (what a client's EDNS may ask for).
const MAX_REPLY: usize = 65535;

/// A forwarded query waiting for its answer.
struct Pending {
    client: SocketAddr,
    reply: ReplyWith,
    /// The query as sent upstream (with our id), to send again to the next upstream.
    query: Vec<u8>,
    /// Where the question ends in `query`, to check the reply's.
    question_end: usize,
    upstream: usize,
    tries: usize,
    deadline: Instant,
}

/// What the client is sent once an upstream answers.
enum ReplyWith {
    /// The upstream's reply under the client's id.
    Upstream { client_id: u16 },
    /// The chase's reply built from the upstream's.
    Chase(Box<Chase>),
}

/// The UDP side of forwarding, driven by the server's UDP thread.
pub(super) struct Forwarder {
    upstreams: Vec<SocketAddr>,
    pub(super) v4: UdpSocket,
    pub(super) v6: Option<UdpSocket>,
    pending: HashMap<u16, Pending>,
    preferred: usize,
    buffer: Vec<u8>,
    next_id: u16,
}

impl Forwarder {
    /// Opens the sockets the upstreams need: IPv4 always, IPv6 if an upstream is IPv6
    /// (and dropped, with a warning, if the host has no IPv6).
    pub(super) fn new(mut upstreams: Vec<SocketAddr>) -> std::io::Result<Forwarder> {
        let v4 = UdpSocket::bind("0.0.0.0:0")?;
        v4.set_nonblocking(true)?;
        let v6 = if upstreams.iter().any(SocketAddr::is_ipv6) {
            match UdpSocket::bind("[::]:0").and_then(|s| s.set_nonblocking(true).map(|()| s)) {
                Ok(socket) => Some(socket),
                Err(error) => {
                    log::warn!("DNS: no IPv6 socket for the IPv6 upstreams ({error}); using the IPv4 ones only");
                    upstreams.retain(SocketAddr::is_ipv4);
                    None
                }
            }
        } else {
            None
        };
        Ok(Forwarder {
            upstreams,
            v4,
            v6,
            pending: HashMap::new(),
            preferred: 0,
            buffer: Vec::new(),
            next_id: 0,
        })
    }

    /// Sends `query` from `client` upstream, or answers SERVFAIL at once when there is
    /// no upstream; drops it when too many are waiting.
    pub(super) fn forward(&mut self, query: &[u8], client: SocketAddr, server: &UdpSocket) {
        if self.upstreams.is_empty() {
            if let Some(reply) = server_failure(query) {
                let _ = server.send_to(&reply, client);
            }
            return;
        }
        if let Ok(client_id) = header_buffer::id(query) {
            self.start(query, client, ReplyWith::Upstream { client_id });
        }
    }

    /// Asks upstream for the records of `chase`'s target, or answers the CNAME alone at
    /// once when there is no upstream; drops it when too many are waiting.
    pub(super) fn chase(&mut self, chase: Box<Chase>, client: SocketAddr, server: &UdpSocket) {
        if self.upstreams.is_empty() {
            let _ = server.send_to(chase.cname_only(), client);
            return;
        }
        let query = chase.upstream_query().to_vec();
        self.start(&query, client, ReplyWith::Chase(chase));
    }

    fn start(&mut self, query: &[u8], client: SocketAddr, reply: ReplyWith) {
        if self.pending.len() >= MAX_IN_FLIGHT {
            log::debug!(
                "DNS: {MAX_IN_FLIGHT} forwarded queries in flight; dropping one from {client}"
            );
            return;
        }
        let Some(question_end) = question_end(query) else {
            return;
        };
        let id = self.fresh_id();
        let mut sent = query.to_vec();
        sent[..2].copy_from_slice(&id.to_be_bytes());
        let upstream = self.preferred % self.upstreams.len();
        let mut pending = Pending {
            client,
            reply,
            query: sent,
            question_end,
            upstream,
            tries: 0,
            deadline: Instant::now() + UPSTREAM_TIMEOUT,
        };
        if !self.send(&pending.query, upstream) {
            // Unreachable from here: let the next expiry move on to the next upstream.
            pending.deadline = Instant::now();
        }
        self.pending.insert(id, pending);
    }

    /// An id no waiting query has: random, so that replies cannot be guessed.
    fn fresh_id(&mut self) -> u16 {
        for _ in 0..8 {
            let id = random::bytes::<2>()
                .map(u16::from_be_bytes)
                .unwrap_or_else(|_| {
                    self.next_id = self.next_id.wrapping_add(1);
                    self.next_id
                });
            if !self.pending.contains_key(&id) {
                return id;
            }
        }
        // Nearly impossible with at most MAX_IN_FLIGHT ids taken: count up to a free one.
        while self.pending.contains_key(&self.next_id) {
            self.next_id = self.next_id.wrapping_add(1);
        }
        self.next_id
    }

    fn send(&self, query: &[u8], upstream: usize) -> bool {
        let Some(address) = self.upstreams.get(upstream) else {
            return false;
        };
        let socket = if address.is_ipv4() {
            Some(&self.v4)
        } else {
            self.v6.as_ref()
        };
        match socket.map(|s| s.send_to(query, address)) {
            Some(Ok(_)) => true,
            Some(Err(error)) => {
                log::debug!("DNS: cannot forward to {address}: {error}");
                false
            }
            None => false,
        }
    }

    /// Reads the replies waiting on the upstream sockets and passes the expected ones on.
    pub(super) fn receive(&mut self, server: &UdpSocket) {
        if self.buffer.len() < MAX_REPLY {
            self.buffer.resize(MAX_REPLY, 0);
        }
        for v6 in [false, true] {
            // A bounded batch per wake-up, so that clients' queries get their turn.
            for _ in 0..64 {
                let socket = if v6 { self.v6.as_ref() } else { Some(&self.v4) };
                let Some(socket) = socket else {
                    break;
                };
                let (length, from) = match socket.recv_from(&mut self.buffer) {
                    Ok(received) => received,
                    Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                let mut reply = std::mem::take(&mut self.buffer);
                self.deliver(&mut reply[..length], from, server);
                self.buffer = reply;
            }
        }
    }

    fn deliver(&mut self, reply: &mut [u8], from: SocketAddr, server: &UdpSocket) {
        let Ok(id) = header_buffer::id(reply) else {
            return;
        };
        let Some(pending) = self.pending.get(&id) else {
            return;
        };
        let expected = self.upstreams.get(pending.upstream) == Some(&from)
            && header_buffer::has_flags(reply, PacketFlag::RESPONSE).unwrap_or(false)
            && reply.get(12..pending.question_end).is_some_and(|question| {
                question.eq_ignore_ascii_case(&pending.query[12..pending.question_end])
            });
        if !expected {
            return;
        }
        match &pending.reply {
            ReplyWith::Upstream { client_id } => {
                reply[..2].copy_from_slice(&client_id.to_be_bytes());
                let _ = server.send_to(reply, pending.client);
            }
            ReplyWith::Chase(chase) => {
                let _ = server.send_to(&chase.finish(reply), pending.client);
            }
        }
        self.preferred = pending.upstream;
        self.pending.remove(&id);
    }

    /// How long until the next waiting query times out, at most `idle`.
    pub(super) fn next_timeout(&self, idle: Duration) -> Duration {
        let now = Instant::now();
        self.pending
            .values()
            .map(|p| p.deadline.saturating_duration_since(now))
            .min()
            .unwrap_or(idle)
            .min(idle)
    }

    /// Moves timed-out queries to the next upstream, or answers SERVFAIL (a chase: the
    /// CNAME alone) when every upstream has had its turn.
    pub(super) fn expire(&mut self, server: &UdpSocket) {
        let now = Instant::now();
        let expired: Vec<u16> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let Some(mut pending) = self.pending.remove(&id) else {
                continue;
            };
            pending.tries += 1;
            if pending.tries < self.upstreams.len() {
                pending.upstream = (pending.upstream + 1) % self.upstreams.len();
                pending.deadline = if self.send(&pending.query, pending.upstream) {
                    now + UPSTREAM_TIMEOUT
                } else {
                    now
                };
                self.pending.insert(id, pending);
                continue;
            }
            match pending.reply {
                ReplyWith::Upstream { client_id } => {
                    pending.query[..2].copy_from_slice(&client_id.to_be_bytes());
                    if let Some(reply) = server_failure(&pending.query) {
                        let _ = server.send_to(&reply, pending.client);
                    }
                }
                ReplyWith::Chase(chase) => {
                    let _ = server.send_to(chase.cname_only(), pending.client);
                }
            }
        }
    }
}

/// Asks the upstreams in turn over TCP; the first reply with the query's id, or `None`.
pub(super) fn forward_tcp(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    let id = header_buffer::id(query).ok()?;
    upstreams.iter().find_map(|upstream| {
        let reply = ask_tcp(query, *upstream);
        if let Err(error) = &reply {
            log::debug!("DNS: forwarding over TCP to {upstream} failed: {error}");
        }
        reply
            .ok()
            .filter(|reply| header_buffer::id(reply).ok() == Some(id))
    })
}

fn ask_tcp(query: &[u8], upstream: SocketAddr) -> std::io::Result<Vec<u8>> {
    let deadline = Instant::now() + UPSTREAM_TIMEOUT;
    let mut stream = TcpStream::connect_timeout(&upstream, UPSTREAM_TIMEOUT)?;
    stream.set_write_timeout(Some(UPSTREAM_TIMEOUT))?;
    write_framed(&mut stream, query)?;
    let mut length = [0u8; 2];
    read_full(&mut stream, &mut length, deadline)?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(length))];
    read_full(&mut stream, &mut reply, deadline)?;
    Ok(reply)
}

/// Writes one DNS message with its 2-byte length (RFC 1035 4.2.2) in one write.
pub(super) fn write_framed(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<()> {
    let length = u16::try_from(message.len())
        .map_err(|_| std::io::Error::new(ErrorKind::InvalidData, "DNS message over 64 KiB"))?;
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(message);
    stream.write_all(&framed)
}

/// Fills `buffer` before `deadline`, however slowly the peer sends: a trickle of bytes
/// cannot hold a connection open past it.
pub(super) fn read_full(
    stream: &mut TcpStream,
    buffer: &mut [u8],
    deadline: Instant,
) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buffer.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buffer[filled..]) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(read) => filled += read,
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
