//! Probes, as the kubelet runs them: startup, liveness and readiness, each `exec`,
//! `httpGet` or `tcpSocket`, with Kubernetes' timing and thresholds.
//!
//! One async task per running container that has probes. Probes run inside the pod:
//! `exec` is a process joined to the container (through the runtime's exec helper), and
//! `httpGet`/`tcpSocket` connect to 127.0.0.1 from a short-lived thread that has entered
//! the pod's network namespace (pods have no routable address yet). A startup probe holds
//! the others off until it succeeds; liveness (or startup) failures kill the container,
//! which the restart policy then restarts; readiness only sets `ready`. Each failure,
//! and each kill, is told as the kubelet's event (`Unhealthy`, `Killing`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Agent;
use crate::api::client::{read_response_head, HeadError};
use crate::model::{resolve_port, Container, EventType, ObjectMeta, Pod, Probe};
use crate::runtime::ExecSpec;

/// What the status needs to know of a container's probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeResults {
    /// The startup probe has succeeded (or there is none).
    pub started: bool,
    /// The readiness probe says ready (or there is none), and the container has started.
    pub ready: bool,
}

impl ProbeResults {
    /// Before any probe has answered, as in Kubernetes: a container with a startup
    /// probe has not started, one with a readiness probe (or not yet started) is not
    /// ready, and one without probes is both.
    pub fn before_any_probe(container: &Container) -> ProbeResults {
        let started = container.startup_probe.is_none();
        ProbeResults {
            started,
            ready: started && container.readiness_probe.is_none(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    /// How the kubelet names the probe in its events.
    fn title(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

/// The pod a probe task probes a container of: what its events name, its network and
/// how long its container has to stop.
struct ProbedPod {
    /// Name, namespace and uid only.
    meta: ObjectMeta,
    host_network: bool,
    grace: Duration,
}

/// Consecutive results of one probe against its thresholds.
struct Tracker {
    kind: Kind,
    probe: Probe,
    next_due: Instant,
    successes: i32,
    failures: i32,
}

impl Tracker {
    fn new(kind: Kind, probe: &Probe, started: Instant) -> Tracker {
        Tracker {
            kind,
            probe: probe.clone(),
            next_due: started + secs(probe.initial_delay_seconds),
            successes: 0,
            failures: 0,
        }
    }
}

fn secs(n: i32) -> Duration {
    Duration::from_secs(n.max(0) as u64)
}

pub fn has_probes(container: &Container) -> bool {
    container.liveness_probe.is_some()
        || container.readiness_probe.is_some()
        || container.startup_probe.is_some()
}

impl ProbedPod {
    /// The kubelet's events of a probe: every failure (`Err`, with why), as `Unhealthy`
    /// (the log counts the repeats), and the kill a failed liveness or startup probe
    /// ends in (`Ok`).
    fn tell(&self, agent: &Agent, container: &Container, kind: Kind, what: Result<(), &str>) {
        let name = Some(container.name.as_str());
        let (type_, reason, message) = match what {
            Err(why) => {
                let message = format!("{} probe failed: {why}", kind.title());
                (EventType::Warning, "Unhealthy", message)
            }
            Ok(()) => {
                let message = format!(
                    "Container {} failed {} probe, will be restarted",
                    container.name,
                    kind.title().to_ascii_lowercase()
                );
                (EventType::Normal, "Killing", message)
            }
        };
        agent.pod_event(&self.meta, name, type_, reason, &message);
    }
}

/// Starts the probe task of container instance `id` of `pod`; it ends when the instance
/// stops being watched (its shim exited).
pub fn start(agent: &Arc<Agent>, id: String, pod: &Pod, container: Container) {
    let agent = agent.clone();
    let pod = ProbedPod {
        meta: ObjectMeta {
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            ..ObjectMeta::default()
        },
        host_network: pod.spec.host_network,
        grace: Duration::from_secs(pod.spec.termination_grace_period_seconds.max(0) as u64),
    };
    smol::spawn(async move {
        run(agent, id, pod, container).await;
    })
    .detach();
}

async fn run(agent: Arc<Agent>, id: String, pod: ProbedPod, container: Container) {
    let started_at = Instant::now();
    let mut trackers: Vec<Tracker> = [
        container
            .startup_probe
            .as_ref()
            .map(|p| Tracker::new(Kind::Startup, p, started_at)),
        container
            .liveness_probe
            .as_ref()
            .map(|p| Tracker::new(Kind::Liveness, p, started_at)),
        container
            .readiness_probe
            .as_ref()
            .map(|p| Tracker::new(Kind::Readiness, p, started_at)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut results = ProbeResults::before_any_probe(&container);
    agent.set_probe_results(&id, Some(results));
    let netns = if pod.host_network {
        None
    } else {
        agent.runtime.sandbox_netns(&pod.meta.uid)
    };

    loop {
        if !agent.is_watched(&id) {
            break;
        }
        // Until the startup probe passes it runs alone; after that, the others.
        let started = results.started;
        let active = |t: &Tracker| (t.kind == Kind::Startup) != started;
        let now = Instant::now();
        let Some(next) = trackers
            .iter()
            .filter(|t| active(t))
            .map(|t| t.next_due)
            .min()
        else {
            break;
        };
        if next > now {
            // Wake at least once a second to notice that the container is gone.
            smol::Timer::after((next - now).min(Duration::from_secs(1))).await;
            continue;
        }
        for i in 0..trackers.len() {
            if !active(&trackers[i]) || trackers[i].next_due > now {
                continue;
            }
            let outcome =
                probe_once(&agent, &id, &container, &trackers[i].probe, netns.clone()).await;
            let tracker = &mut trackers[i];
            tracker.next_due =
                Instant::now() + secs(tracker.probe.period_seconds).max(Duration::from_secs(1));
            match outcome {
                Ok(()) => {
                    tracker.successes += 1;
                    tracker.failures = 0;
                }
                Err(reason) => {
                    tracker.failures += 1;
                    tracker.successes = 0;
                    log::debug!("{:?} probe of {id} failed: {reason}", tracker.kind);
                    pod.tell(&agent, &container, tracker.kind, Err(&reason));
                }
            }
            let passed = tracker.successes >= tracker.probe.success_threshold.max(1);
            let failed = tracker.failures >= tracker.probe.failure_threshold.max(1);
            let (kind, failures) = (tracker.kind, tracker.failures);
            match kind {
                Kind::Startup if passed => {
                    results.started = true;
                    results.ready = container.readiness_probe.is_none();
                    // The other probes start counting once the container has started.
                    let now = Instant::now();
                    for other in trackers.iter_mut().filter(|t| t.kind != Kind::Startup) {
                        other.next_due = now + secs(other.probe.initial_delay_seconds);
                    }
                }
                Kind::Startup | Kind::Liveness if failed => {
                    let which = if kind == Kind::Startup {
                        "startup"
                    } else {
                        "liveness"
                    };
                    log::info!(
                        "container {id}: {which} probe failed {failures} times, restarting it"
                    );
                    pod.tell(&agent, &container, kind, Ok(()));
                    results.ready = false;
                    agent.set_probe_results(&id, Some(results));
                    let stopper = agent.clone();
                    let stop_id = id.clone();
                    let grace = pod.grace;
                    let stopped =
                        smol::unblock(move || stopper.runtime.stop_container(&stop_id, grace))
                            .await;
                    if let Err(err) = stopped {
                        log::warn!("cannot stop container {id} after its probe failed: {err}");
                    }
                    agent.set_probe_results(&id, None);
                    return;
                }
                Kind::Readiness if passed => results.ready = true,
                Kind::Readiness if failed => results.ready = false,
                Kind::Startup | Kind::Liveness | Kind::Readiness => {}
            }
            agent.set_probe_results(&id, Some(results));
            if results.started != started {
                break;
            }
        }
    }
    agent.set_probe_results(&id, None);
}

/// Runs one probe with its timeout.
async fn probe_once(
    agent: &Arc<Agent>,
    id: &str,
    container: &Container,
    probe: &Probe,
    netns: Option<PathBuf>,
) -> Result<(), String> {
    let timeout = secs(probe.timeout_seconds).max(Duration::from_secs(1));
    if let Some(exec) = &probe.exec {
        let spec = ExecSpec {
            args: exec.command.clone(),
            env: Vec::new(),
            cwd: None,
            timeout: Some(timeout),
        };
        let mut command = agent
            .runtime
            .exec_command(id, &spec)
            .map_err(|e| e.to_string())?;
        command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let status = smol::unblock(move || command.status())
            .await
            .map_err(|e| format!("cannot run the probe: {e}"))?;
        return match status.code() {
            Some(0) => Ok(()),
            Some(code) => Err(format!("exit code {code}")),
            None => Err("killed".to_owned()),
        };
    }
    let (port, http) = if let Some(get) = &probe.http_get {
        let port = resolve_port(container, &get.port).ok_or("unknown port")?;
        let headers: Vec<(String, String)> = get
            .http_headers
            .iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        (port, Some((get.path.clone(), headers)))
    } else if let Some(tcp) = &probe.tcp_socket {
        (
            resolve_port(container, &tcp.port).ok_or("unknown port")?,
            None,
        )
    } else {
        return Err("no handler".to_owned());
    };
    smol::unblock(move || connect_probe(netns.as_deref(), port, http, timeout)).await
}

/// The network namespace the agent itself lives in, to come back to after making a
/// socket in a pod's.
fn own_netns() -> Result<&'static std::fs::File, String> {
    static OWN: std::sync::OnceLock<Result<std::fs::File, String>> = std::sync::OnceLock::new();
    OWN.get_or_init(|| {
        std::fs::File::open("/proc/self/ns/net")
            .map_err(|e| format!("cannot open the agent's network namespace: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// A TCP socket that lives in the pod's network namespace (or ours when `netns` is None).
///
/// A socket belongs to the namespace it was created in, whatever thread uses it later; so
/// this thread enters the pod's namespace only for the `socket(2)` call and comes straight
/// back — no thread per probe, and nothing else ever runs in the pod's network.
fn pod_socket(netns: Option<&std::path::Path>) -> Result<std::os::fd::OwnedFd, String> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let make = || {
        socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(|e| format!("cannot create a socket: {e}"))
    };
    let Some(path) = netns else {
        return make();
    };
    let own = own_netns()?;
    let pod =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    nix::sched::setns(pod.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("cannot enter the pod's network: {e}"))?;
    let socket = make();
    if let Err(err) = nix::sched::setns(own.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET) {
        // This blocking-pool thread would keep serving other work from inside a pod's
        // network; that must never happen, and cannot be undone any other way.
        log::error!("cannot return to the agent's network namespace: {err}; aborting");
        std::process::abort();
    }
    socket
}

/// Connects `socket` to 127.0.0.1:`port` within `timeout`; returns a blocking stream.
fn connect_with_timeout(
    socket: std::os::fd::OwnedFd,
    port: u16,
    timeout: Duration,
) -> Result<TcpStream, String> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::socket::{connect, getsockopt, sockopt, SockaddrIn};
    let addr = SockaddrIn::new(127, 0, 0, 1, port);
    match connect(std::os::fd::AsRawFd::as_raw_fd(&socket), &addr) {
        Ok(()) | Err(nix::errno::Errno::EINPROGRESS) => {}
        Err(e) => return Err(format!("connect 127.0.0.1:{port}: {e}")),
    }
    let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLOUT)];
    match poll(&mut fds, PollTimeout::from(millis)) {
        Ok(0) => return Err(format!("connect 127.0.0.1:{port}: timed out")),
        Ok(_) => {}
        Err(e) => return Err(format!("connect 127.0.0.1:{port}: {e}")),
    }
    match getsockopt(&socket, sockopt::SocketError) {
        Ok(0) => {}
        Ok(code) => {
            return Err(format!(
                "connect 127.0.0.1:{port}: {}",
                std::io::Error::from_raw_os_error(code)
            ))
        }
        Err(e) => return Err(format!("connect 127.0.0.1:{port}: {e}")),
    }
    let stream = TcpStream::from(socket);
    stream
        .set_nonblocking(false)
        .map_err(|e| format!("socket: {e}"))?;
    Ok(stream)
}

/// TCP connect, and for `httpGet` a GET whose status must be 200–399, as the kubelet
/// judges it. `timeout` bounds the whole probe (connect, request and response head), as
/// Kubernetes' `timeoutSeconds` does; the body is not read.
fn connect_probe(
    netns: Option<&std::path::Path>,
    port: u16,
    http: Option<(String, Vec<(String, String)>)>,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut stream = connect_with_timeout(pod_socket(netns)?, port, timeout)?;
    let Some((path, headers)) = http else {
        return Ok(());
    };
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: kube-probe/berth\r\nAccept: */*\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let timed_out = || format!("timed out after {timeout:?}");
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(timed_out());
    }
    stream
        .set_write_timeout(Some(left))
        .and_then(|()| stream.write_all(request.as_bytes()))
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = Deadline {
        stream: &stream,
        until: deadline,
    };
    let (head, _body) = read_response_head(&mut answer).map_err(|err| match err {
        HeadError::Io(e) if is_timeout(&e) => timed_out(),
        HeadError::Io(e) => format!("read: {e}"),
        HeadError::Protocol(reason) => format!("not an HTTP answer: {reason}"),
    })?;
    match head.status {
        200..=399 => Ok(()),
        code => Err(format!("HTTP probe failed with statuscode: {code}")),
    }
}

/// Reads that all end by one deadline: a socket's read timeout applies to each read
/// alone, and a server trickling its answer must not stretch a probe past its timeout.
struct Deadline<'a> {
    stream: &'a TcpStream,
    until: Instant,
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut stream = self.stream;
        stream.read(buf)
    }
}

/// A socket timeout shows as `WouldBlock` (or `TimedOut`, depending on the platform).
fn is_timeout(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

impl Agent {
    /// Records what the probes of `id` say; a change wakes a pass, so that the pod's
    /// Ready condition, the Endpoints that list it and the rules that send it traffic
    /// follow within the probe's period, not at the next resync.
    fn set_probe_results(&self, id: &str, results: Option<ProbeResults>) {
        let changed = {
            let mut memory = self.memory();
            let before = match results {
                Some(r) => memory.probes.insert(id.to_owned(), r),
                None => memory.probes.remove(id),
            };
            before != results
        };
        if changed {
            self.wake();
        }
    }

    pub fn probe_results(&self, id: &str) -> Option<ProbeResults> {
        self.memory().probes.get(id).copied()
    }

    fn is_watched(&self, id: &str) -> bool {
        self.memory().watched.contains(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_probe_succeeds_only_with_a_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert_eq!(
            connect_probe(None, port, None, Duration::from_secs(1)),
            Ok(())
        );
        drop(listener);
        let refused = connect_probe(None, port, None, Duration::from_secs(1));
        assert!(
            refused.is_err_and(|e| e.contains("refused")),
            "a closed port must fail"
        );
    }

    #[test]
    fn http_probe_judges_the_status_code() {
        for (answer, ok) in [
            ("HTTP/1.1 200 OK\r\n\r\n", true),
            ("HTTP/1.1 302 Found\r\n\r\n", true),
            ("HTTP/1.1 404 Not Found\r\n\r\n", false),
        ] {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let server = std::thread::spawn(move || {
                let (mut conn, _) = listener.accept().expect("accept");
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(answer.as_bytes());
            });
            let result = connect_probe(
                None,
                port,
                Some(("/".to_owned(), Vec::new())),
                Duration::from_secs(2),
            );
            assert_eq!(result.is_ok(), ok, "{answer:?}: {result:?}");
            let _ = server.join();
        }
    }

    /// A one-connection server that answers a probe with `pieces`, one write each, then
    /// holds the connection open until the probe has returned.
    fn answer_with(pieces: &'static [&'static str], timeout: Duration) -> Result<(), String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            for piece in pieces {
                let _ = conn.write_all(piece.as_bytes());
                let _ = conn.flush();
            }
            let _ = wait.recv();
        });
        let result = connect_probe(None, port, Some(("/".to_owned(), Vec::new())), timeout);
        let _ = done.send(());
        let _ = server.join();
        result
    }

    #[test]
    fn http_probe_reads_a_head_that_arrives_in_pieces() {
        let pieces = &["HTTP/1.1 2", "04 No Content\r\nX-A: ", "b\r\n", "\r\n"];
        assert_eq!(answer_with(pieces, Duration::from_secs(5)), Ok(()));
    }

    #[test]
    fn http_probe_fails_on_an_unfinished_head_within_its_timeout() {
        // A status line alone is not an answer: the kubelet waits for the headers too.
        let started = Instant::now();
        let result = answer_with(&["HTTP/1.1 200 OK\r\n"], Duration::from_millis(300));
        assert!(
            result.as_ref().is_err_and(|e| e.contains("timed out")),
            "{result:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn http_probe_fails_on_a_non_http_answer_and_names_the_status() {
        let garbage = answer_with(&["SSH-2.0-OpenSSH\r\n\r\n"], Duration::from_secs(5));
        assert!(
            garbage
                .as_ref()
                .is_err_and(|e| e.starts_with("not an HTTP answer")),
            "{garbage:?}"
        );
        let error = answer_with(
            &["HTTP/1.0 503 Unavailable\r\n\r\n"],
            Duration::from_secs(5),
        );
        assert_eq!(
            error,
            Err("HTTP probe failed with statuscode: 503".to_owned())
        );
    }
}
