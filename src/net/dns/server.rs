//! The DNS server: UDP and TCP on one address (the bridge's, port 53), answering from
//! the zone and forwarding the rest ([`super::forward`]), ExternalName targets'
//! records included ([`super::chase`]).
//!
//! Two plain threads with blocking sockets, rather than tasks on the agent's executor: a
//! DNS server is a loop over one socket, and on its own threads a slow reconcile cannot
//! delay an answer. The UDP thread polls the server's socket and the upstream sockets;
//! the TCP thread accepts at most [`MAX_TCP_CONNECTIONS`] connections, each on a small
//! thread of its own that gives every message [`TCP_MESSAGE_TIMEOUT`] to arrive.
//!
//! The zone is swapped whole ([`ZoneCell::replace`]): a query holds the lock only to
//! clone an `Arc`, so replacing the zone never waits for queries nor they for it, and a
//! query is answered from one consistent zone. The UDP thread keeps the zone's recent
//! answers ([`super::reply_cache`]): a name asked again costs a copy, not a parse.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::forward::{forward_tcp, read_full, write_framed, Forwarder};
use super::reply_cache::ReplyCache;
use super::zone::{
    answer_over, server_failure, Outcome, Transport, Zone, MAX_QUERY_LEN, MAX_UDP_REPLY,
};

/// The most TCP connections served at once; more are closed as they arrive.
pub const MAX_TCP_CONNECTIONS: usize = 16;

/// How long a TCP client has for each message (its length and body), counted from the
/// previous reply: idle or trickling connections are closed after it.
pub const TCP_MESSAGE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the threads look at the stop flag when nothing wakes them.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// The stack of the server's threads: they parse and build small packets only.
const STACK_SIZE: usize = 256 * 1024;

/// The zone being served, replaced whole when Services change.
#[derive(Debug, Default)]
pub struct ZoneCell {
    current: RwLock<Arc<Zone>>,
}

impl ZoneCell {
    pub fn new(zone: Zone) -> ZoneCell {
        ZoneCell {
            current: RwLock::new(Arc::new(zone)),
        }
    }

    /// The zone now; later replacements do not change it.
    pub fn current(&self) -> Arc<Zone> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Serves `zone` from now on. The old zone is freed after the lock is released.
    pub fn replace(&self, zone: Zone) {
        let zone = Arc::new(zone);
        let old = {
            let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
            std::mem::replace(&mut *current, zone)
        };
        drop(old);
    }
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cannot serve DNS on {address}: the address is not assigned to this host (yet); retry once the bridge has it")]
    AddressNotAvailable { address: SocketAddrV4 },
    #[error("cannot serve DNS on {address} ({transport}): {source}")]
    Bind {
        address: SocketAddrV4,
        transport: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the DNS server: {0}")]
    Start(#[source] std::io::Error),
}

impl DnsError {
    /// Whether starting again later may succeed: the address is not (yet) on the host.
    pub fn is_address_not_available(&self) -> bool {
        matches!(self, DnsError::AddressNotAvailable { .. })
    }
}

fn bind_error(address: SocketAddrV4, transport: &'static str, source: std::io::Error) -> DnsError {
    if source.kind() == std::io::ErrorKind::AddrNotAvailable {
        DnsError::AddressNotAvailable { address }
    } else {
        DnsError::Bind {
            address,
            transport,
            source,
        }
    }
}

/// A running DNS server; stopped by [`DnsServer::stop`] or when dropped.
#[derive(Debug)]
pub struct DnsServer {
    address: SocketAddrV4,
    stopping: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl DnsServer {
    /// Binds UDP and TCP on `bind` (port 0: a free port, the same for both) and serves
    /// `zone`, forwarding other names to `upstreams`.
    pub fn start(
        bind: SocketAddrV4,
        zone: Arc<ZoneCell>,
        upstreams: Vec<SocketAddr>,
    ) -> Result<DnsServer, DnsError> {
        let udp = UdpSocket::bind(bind).map_err(|e| bind_error(bind, "udp", e))?;
        let address = match udp.local_addr() {
            Ok(SocketAddr::V4(address)) => address,
            _ => bind,
        };
        let tcp = TcpListener::bind(address).map_err(|e| bind_error(address, "tcp", e))?;
        udp.set_nonblocking(true).map_err(DnsError::Start)?;
        tcp.set_nonblocking(true).map_err(DnsError::Start)?;
        let forwarder = Forwarder::new(upstreams.clone()).map_err(DnsError::Start)?;
        let stopping = Arc::new(AtomicBool::new(false));
        let mut server = DnsServer {
            address,
            stopping: stopping.clone(),
            threads: Vec::new(),
        };
        let udp_loop = UdpLoop {
            socket: udp,
            forwarder,
            zone: zone.clone(),
            stopping: stopping.clone(),
        };
        server
            .threads
            .push(spawn("berth-dns-udp", move || udp_loop.run())?);
        let tcp_loop = TcpLoop {
            listener: tcp,
            zone,
            upstreams: Arc::new(upstreams),
            stopping,
            connections: Vec::new(),
        };
        // On failure `server` is dropped, which stops the UDP thread.
        server
            .threads
            .push(spawn("berth-dns-tcp", move || tcp_loop.run())?);
        Ok(server)
    }

    /// The address served (with the port chosen when bound to port 0).
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.address
    }

    /// Stops serving and waits for the threads to end (at most about a second, or an
    /// upstream's timeout for a TCP forward in progress).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        self.stopping.store(true, Ordering::Release);
        // Wake both threads now rather than at their next idle poll. If the address is
        // already gone (the bridge was removed), the idle poll ends them anyway.
        let wake = SocketAddrV4::new(
            if self.address.ip().is_unspecified() {
                Ipv4Addr::LOCALHOST
            } else {
                *self.address.ip()
            },
            self.address.port(),
        );
        if let Ok(socket) = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)) {
            let _ = socket.send_to(&[], wake);
        }
        let _ = TcpStream::connect_timeout(&wake.into(), Duration::from_millis(100));
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                log::warn!("DNS: a server thread panicked");
            }
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, DnsError> {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(STACK_SIZE)
        .spawn(body)
        .map_err(DnsError::Start)
}

/// The zone's answer to one query; a panic in parsing (none is known) costs that query
/// only, never the server.
fn answer_safely(zone: &Zone, query: &[u8], transport: Transport) -> Outcome {
    catch_unwind(AssertUnwindSafe(|| answer_over(zone, query, transport))).unwrap_or_else(|_| {
        log::warn!("DNS: answering a query panicked; dropped it");
        Outcome::Drop
    })
}

/// Waits until one of `sockets` is readable or `timeout` passes; which are readable.
/// Called for every batch of queries, so it allocates nothing.
fn wait_readable<const N: usize>(sockets: [&dyn AsFd; N], timeout: Duration) -> [bool; N] {
    let mut fds = sockets.map(|socket| PollFd::new(socket.as_fd(), PollFlags::POLLIN));
    let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    if poll(&mut fds, PollTimeout::from(millis)).is_err() {
        return [false; N];
    }
    fds.map(|fd| fd.any().unwrap_or(true))
}

struct UdpLoop {
    socket: UdpSocket,
    forwarder: Forwarder,
    zone: Arc<ZoneCell>,
    stopping: Arc<AtomicBool>,
}

impl UdpLoop {
    fn run(mut self) {
        // One byte more than a query may have, to tell an oversized datagram (which the
        // kernel cuts to the buffer) from one that fits.
        let mut buffer = vec![0u8; MAX_QUERY_LEN + 1];
        let mut cache = ReplyCache::default();
        let mut cached_reply = Vec::with_capacity(MAX_UDP_REPLY);
        while !self.stopping.load(Ordering::Acquire) {
            let timeout = self.forwarder.next_timeout(IDLE_POLL);
            // Without an IPv6 upstream socket the IPv4 one is polled twice (poll allows
            // it): a fixed array, no allocation.
            let v6 = self.forwarder.v6.as_ref().unwrap_or(&self.forwarder.v4);
            let [queries, replies_v4, replies_v6] =
                wait_readable([&self.socket, &self.forwarder.v4, v6], timeout);
            if replies_v4 || replies_v6 {
                self.forwarder.receive(&self.socket);
            }
            if queries {
                self.serve_batch(&mut buffer, &mut cache, &mut cached_reply);
            }
            self.forwarder.expire(&self.socket);
        }
    }

    /// Answers the queries waiting, a bounded batch so that upstream replies and
    /// timeouts get their turn under a flood. A name asked before of the same zone is
    /// answered from `cache` through `cached_reply`, without allocating.
    fn serve_batch(
        &mut self,
        buffer: &mut [u8],
        cache: &mut ReplyCache,
        cached_reply: &mut Vec<u8>,
    ) {
        let zone = self.zone.current();
        for _ in 0..64 {
            let (length, client) = match self.socket.recv_from(buffer) {
                Ok(received) => received,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let query = &buffer[..length];
            if let Some(reply) = cache.answer(&zone, query, cached_reply) {
                let _ = self.socket.send_to(reply, client);
                continue;
            }
            match answer_safely(&zone, query, Transport::Udp) {
                Outcome::Reply(reply) => {
                    cache.remember(&zone, query, &reply);
                    let _ = self.socket.send_to(&reply, client);
                }
                Outcome::Forward => self.forwarder.forward(query, client, &self.socket),
                Outcome::Chase(chase) => self.forwarder.chase(chase, client, &self.socket),
                Outcome::Drop => {}
            }
        }
    }
}

struct TcpLoop {
    listener: TcpListener,
    zone: Arc<ZoneCell>,
    upstreams: Arc<Vec<SocketAddr>>,
    stopping: Arc<AtomicBool>,
    /// Connections being served: their threads, and a handle to close them on stop.
    connections: Vec<(JoinHandle<()>, TcpStream)>,
}

impl TcpLoop {
    fn run(mut self) {
        while !self.stopping.load(Ordering::Acquire) {
            let [ready] = wait_readable([&self.listener], IDLE_POLL);
            if !ready {
                continue;
            }
            match self.listener.accept() {
                Ok((stream, _)) => self.serve(stream),
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(error) => log::debug!("DNS: accepting a TCP connection failed: {error}"),
            }
        }
        for (thread, stream) in self.connections.drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
            let _ = thread.join();
        }
    }

    fn serve(&mut self, stream: TcpStream) {
        if self.stopping.load(Ordering::Acquire) {
            return;
        }
        self.connections.retain(|(thread, _)| !thread.is_finished());
        if self.connections.len() >= MAX_TCP_CONNECTIONS {
            log::debug!("DNS: {MAX_TCP_CONNECTIONS} TCP connections open; closing a new one");
            return;
        }
        let (Ok(handle), Ok(())) = (stream.try_clone(), stream.set_nonblocking(false)) else {
            return;
        };
        let (zone, upstreams) = (self.zone.clone(), self.upstreams.clone());
        let thread = spawn("berth-dns-conn", move || {
            serve_connection(stream, &zone, &upstreams)
        });
        match thread {
            Ok(thread) => self.connections.push((thread, handle)),
            Err(error) => log::warn!("DNS: {error}"),
        }
    }
}

/// Answers the messages of one TCP connection (RFC 7766: several, in order) until the
/// client closes it, is too slow, or sends something that is not a query.
fn serve_connection(mut stream: TcpStream, zone: &ZoneCell, upstreams: &[SocketAddr]) {
    let _ = stream.set_write_timeout(Some(TCP_MESSAGE_TIMEOUT));
    loop {
        let deadline = Instant::now() + TCP_MESSAGE_TIMEOUT;
        let mut length = [0u8; 2];
        if read_full(&mut stream, &mut length, deadline).is_err() {
            return;
        }
        let length = usize::from(u16::from_be_bytes(length));
        if length > MAX_QUERY_LEN {
            return;
        }
        let mut query = vec![0u8; length];
        if read_full(&mut stream, &mut query, deadline).is_err() {
            return;
        }
        let reply = match answer_safely(&zone.current(), &query, Transport::Tcp) {
            Outcome::Reply(reply) => reply,
            Outcome::Forward => match forward_tcp(&query, upstreams) {
                Some(reply) => reply,
                None => match server_failure(&query) {
                    Some(reply) => reply,
                    None => return,
                },
            },
            Outcome::Chase(chase) => match forward_tcp(chase.upstream_query(), upstreams) {
                Some(upstream) => chase.finish(&upstream),
                None => chase.cname_only().to_vec(),
            },
            Outcome::Drop => return,
        };
        if write_framed(&mut stream, &reply).is_err() {
            return;
        }
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
