//! HTTP to the members: endpoint checks, TLS, size-capped answers, and moving on to the
//! next member when one cannot serve.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

use super::error::excerpt;
use super::wire::GatewayError;
use super::{EtcdConfig, EtcdError, EtcdTls};
use crate::support::backoff::Backoff;

/// Where the system's CA bundle is on Debian/Raspberry Pi OS, Fedora and Alpine/others;
/// used only when no CA file is configured.
const CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// Pause between two rounds over every endpoint: a leader election takes about a
/// second, so the second round may well succeed.
const ROUNDS: Backoff = Backoff {
    base: Duration::from_millis(50),
    max: Duration::from_secs(1),
};

/// Answers of a member that mean it did not apply the request: a write may then go to
/// another member safely. (etcd's "request timed out" is not one: the proposal may
/// still commit.)
const NOT_APPLIED: &[&str] = &[
    "etcdserver: no leader",
    "etcdserver: not capable",
    "etcdserver: server stopped",
    "etcdserver: unhealthy cluster",
    "etcdserver: too many requests",
];

/// Whether a call may be sent again to another member after it may have reached one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Replay {
    /// Reads, keep-alives, revokes: repeating them changes nothing.
    Safe,
    /// Writes: repeated only when the first member surely did not apply them.
    OnlyIfNotApplied,
}

/// A 2xx answer and who gave it.
pub(super) struct Answer {
    pub endpoint: String,
    pub body: Vec<u8>,
}

/// An open streaming answer (a watch) on its own agent, so that closing it closes this
/// stream only.
pub(super) struct Stream {
    pub endpoint: String,
    pub agent: ureq::Agent,
    pub body: ureq::Body,
}

/// What one attempt at one endpoint gave.
enum Outcome {
    Answer(Vec<u8>),
    /// Not applied (or not sent): try the next endpoint.
    NotApplied(String),
    /// It may have been applied: only a [`Replay::Safe`] call tries the next endpoint.
    Maybe(EtcdError),
    /// A definite answer (4xx, too large): no other member would say otherwise.
    Final(EtcdError),
}

pub(super) struct Transport {
    endpoints: Vec<String>,
    /// The endpoint that answered last, where the next call starts.
    preferred: AtomicUsize,
    agent: ureq::Agent,
    tls: Option<TlsConfig>,
    connect_timeout: Duration,
    request_timeout: Duration,
    watch_idle_timeout: Option<Duration>,
    max_response_bytes: usize,
}

impl Transport {
    pub fn new(config: &EtcdConfig) -> Result<Transport, EtcdError> {
        if config.endpoints.is_empty() {
            return Err(config_error("no endpoint given".into()));
        }
        let endpoints = config
            .endpoints
            .iter()
            .map(|e| parse_endpoint(e))
            .collect::<Result<Vec<_>, _>>()?;
        if config.max_response_bytes == 0 {
            return Err(config_error("max_response_bytes is 0".into()));
        }
        let any_https = endpoints.iter().any(|e| e.starts_with("https://"));
        let has_files = config.tls != EtcdTls::default();
        let tls = match (any_https, has_files) {
            (true, _) => Some(tls_config(&config.tls)?),
            (false, true) => {
                return Err(config_error(
                    "TLS files are set but no endpoint uses https".into(),
                ))
            }
            (false, false) => None,
        };
        let mut transport = Transport {
            endpoints,
            preferred: AtomicUsize::new(0),
            agent: ureq::Agent::new_with_defaults(),
            tls,
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
            watch_idle_timeout: config.watch_idle_timeout,
            max_response_bytes: config.max_response_bytes,
        };
        transport.agent = transport.new_agent(None);
        Ok(transport)
    }

    /// A fresh agent with our settings; `per_read` bounds each read of a stream.
    fn new_agent(&self, per_read: Option<Duration>) -> ureq::Agent {
        let mut config = ureq::config::Config::builder()
            // Error statuses carry etcd's error message: we read them ourselves.
            .http_status_as_error(false)
            // etcd never redirects; a member that does is not followed elsewhere.
            .max_redirects(0)
            // The datastore is reached directly, whatever HTTP_PROXY says.
            .proxy(None)
            .timeout_connect(Some(self.connect_timeout))
            .timeout_per_read(per_read)
            .user_agent(format!("berth/{}", crate::VERSION));
        if let Some(tls) = &self.tls {
            config = config.tls_config(tls.clone());
        }
        config.build().new_agent()
    }

    pub fn max_response_bytes(&self) -> usize {
        self.max_response_bytes
    }

    /// The endpoint the next call tries first.
    pub fn preferred_endpoint(&self) -> &str {
        let index = self.preferred.load(Ordering::Relaxed) % self.endpoints.len();
        &self.endpoints[index]
    }

    /// Moves the preferred endpoint past `index` if it still is `index`.
    fn move_on_from(&self, index: usize) {
        let next = (index + 1) % self.endpoints.len();
        let _ = self
            .preferred
            .compare_exchange(index, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// POSTs `request` to `path` and returns a 2xx answer's body, trying the endpoints in
    /// turn (from the last one that answered) until one answers or the request timeout
    /// runs out.
    pub fn call(
        &self,
        operation: &'static str,
        path: &str,
        request: &Value,
        replay: Replay,
    ) -> Result<Answer, EtcdError> {
        let body = request.to_string().into_bytes();
        let deadline = Instant::now() + self.request_timeout;
        let mut attempts = Attempts::default();
        let mut round = 0;
        loop {
            let start = self.preferred.load(Ordering::Relaxed);
            for step in 0..self.endpoints.len() {
                let index = (start + step) % self.endpoints.len();
                let endpoint = &self.endpoints[index];
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    return Err(attempts.timed_out(operation, self.request_timeout));
                }
                match self.attempt(endpoint, operation, path, &body, remaining) {
                    Outcome::Answer(body) => {
                        self.preferred.store(index, Ordering::Relaxed);
                        return Ok(Answer {
                            endpoint: endpoint.clone(),
                            body,
                        });
                    }
                    Outcome::NotApplied(reason) => {
                        self.move_on_from(index);
                        attempts.push(endpoint, &reason);
                    }
                    Outcome::Maybe(error) => {
                        self.move_on_from(index);
                        if replay == Replay::OnlyIfNotApplied {
                            return Err(error);
                        }
                        attempts.push(endpoint, &error.to_string());
                    }
                    Outcome::Final(error) => return Err(error),
                }
            }
            let pause = ROUNDS.jitter(round);
            round += 1;
            if Instant::now() + pause >= deadline {
                return Err(attempts.timed_out(operation, self.request_timeout));
            }
            std::thread::sleep(pause);
        }
    }

    fn attempt(
        &self,
        endpoint: &str,
        operation: &'static str,
        path: &str,
        body: &[u8],
        remaining: Duration,
    ) -> Outcome {
        let url = format!("{endpoint}{path}");
        let sent = self
            .agent
            .post(&url)
            .header("content-type", "application/json")
            .config()
            .timeout_global(Some(remaining))
            .build()
            .send(body);
        let mut response = match sent {
            Ok(response) => response,
            Err(e) if never_sent(&e) => return Outcome::NotApplied(e.to_string()),
            Err(e) => return Outcome::Maybe(transport_error(endpoint, operation, &e)),
        };
        let status = response.status().as_u16();
        let read = response
            .body_mut()
            .with_config()
            .limit(self.max_response_bytes as u64)
            .read_to_vec();
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(ureq::Error::BodyExceedsLimit(_)) => {
                return Outcome::Final(EtcdError::TooLarge {
                    endpoint: endpoint.to_string(),
                    operation,
                    limit: self.max_response_bytes,
                })
            }
            Err(e) => return Outcome::Maybe(transport_error(endpoint, operation, &e)),
        };
        if (200..300).contains(&status) {
            return Outcome::Answer(bytes);
        }
        classify_refusal(endpoint, operation, status, &bytes)
    }

    /// Opens a streaming POST (a watch) on an agent of its own, trying each endpoint once.
    pub fn open_stream(
        &self,
        operation: &'static str,
        path: &str,
        request: &Value,
    ) -> Result<Stream, EtcdError> {
        let body = request.to_string().into_bytes();
        let mut attempts = Attempts::default();
        let start = self.preferred.load(Ordering::Relaxed);
        for step in 0..self.endpoints.len() {
            let index = (start + step) % self.endpoints.len();
            let endpoint = &self.endpoints[index];
            let agent = self.new_agent(self.watch_idle_timeout);
            let sent = agent
                .post(&format!("{endpoint}{path}"))
                .header("content-type", "application/json")
                .config()
                .timeout_recv_response(Some(self.request_timeout))
                .build()
                .send(&body[..]);
            let reason = match sent {
                Ok(response) if response.status().is_success() => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(Stream {
                        endpoint: endpoint.clone(),
                        agent,
                        body: response.into_body(),
                    });
                }
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    let bytes = response
                        .body_mut()
                        .with_config()
                        .limit(self.max_response_bytes as u64)
                        .read_to_vec()
                        .unwrap_or_default();
                    match classify_refusal(endpoint, operation, status, &bytes) {
                        Outcome::Final(error) => return Err(error),
                        Outcome::NotApplied(reason) => reason,
                        Outcome::Maybe(error) => error.to_string(),
                        Outcome::Answer(_) => String::new(),
                    }
                }
                Err(e) => e.to_string(),
            };
            self.move_on_from(index);
            attempts.push(endpoint, &reason);
        }
        Err(EtcdError::Unavailable {
            operation,
            attempts: attempts.list,
        })
    }
}

/// A non-2xx answer: a 5xx or 429 means this member cannot serve now (another may), the
/// rest (bad request, not found, compacted) is etcd's final word.
fn classify_refusal(endpoint: &str, operation: &'static str, status: u16, body: &[u8]) -> Outcome {
    let refusal = GatewayError::parse(body);
    let not_applied = status == 429 || NOT_APPLIED.contains(&refusal.message.as_str());
    let error = EtcdError::Server {
        endpoint: endpoint.to_string(),
        operation,
        status,
        code: refusal.code,
        message: refusal.message,
    };
    match status {
        429 | 500..=599 if not_applied => Outcome::NotApplied(error.to_string()),
        500..=599 => Outcome::Maybe(error),
        _ => Outcome::Final(error),
    }
}

/// What each failed attempt said, for the error when none succeeds; the latest few only,
/// so that a long outage does not build a long message.
#[derive(Default)]
struct Attempts {
    list: Vec<String>,
}

impl Attempts {
    const KEEP: usize = 8;

    fn push(&mut self, endpoint: &str, reason: &str) {
        if self.list.len() == Self::KEEP {
            self.list.remove(0);
        }
        self.list.push(format!("{endpoint}: {reason}"));
    }

    fn timed_out(mut self, operation: &'static str, timeout: Duration) -> EtcdError {
        self.list.push(format!(
            "gave up after the {} request timeout",
            humantime::format_duration(timeout)
        ));
        EtcdError::Unavailable {
            operation,
            attempts: self.list,
        }
    }
}

/// Whether a ureq error happened before the request could reach the member: no
/// connection (refused, unreachable, no such host, connect timeout) or no TLS session.
fn never_sent(e: &ureq::Error) -> bool {
    use ureq::Timeout;
    match e {
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => true,
        ureq::Error::Timeout(Timeout::Connect | Timeout::Resolve) => true,
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => true,
        ureq::Error::Io(io) => matches!(
            io.kind(),
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::HostUnreachable
                | io::ErrorKind::NetworkUnreachable
                | io::ErrorKind::NetworkDown
                | io::ErrorKind::AddrNotAvailable
        ),
        _ => false,
    }
}

fn transport_error(endpoint: &str, operation: &'static str, e: &ureq::Error) -> EtcdError {
    EtcdError::Transport {
        endpoint: endpoint.to_string(),
        operation,
        reason: e.to_string(),
    }
}

fn config_error(reason: String) -> EtcdError {
    EtcdError::Config { reason }
}

/// Checks one endpoint URL and returns it as `scheme://host:port`. Plain HTTP would
/// carry the whole cluster state (Secrets included) in clear, so it is for loopback
/// members only, as it is for registries.
fn parse_endpoint(text: &str) -> Result<String, EtcdError> {
    let bad = |why: &str| config_error(format!("endpoint {text:?}: {why}"));
    let uri: ureq::http::Uri = text.parse().map_err(|e| bad(&format!("not a URL ({e})")))?;
    let scheme = uri.scheme_str().unwrap_or_default();
    if scheme != "https" && scheme != "http" {
        return Err(bad("expected https://host:port"));
    }
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("credentials in the URL are not supported"));
    }
    if authority.port_u16().is_none() {
        return Err(bad("no port (etcd's client port is usually 2379)"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad("expected no path after host:port"));
    }
    if scheme == "http" && !is_loopback(authority.host()) {
        return Err(bad(
            "plain http is allowed for loopback addresses only; use https",
        ));
    }
    Ok(format!("{scheme}://{authority}"))
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn tls_config(tls: &EtcdTls) -> Result<TlsConfig, EtcdError> {
    let roots = match &tls.ca_file {
        Some(path) => {
            let certs = read_certificates(path)?;
            if certs.is_empty() {
                return Err(tls_error(path, "no certificate in it".into()));
            }
            certs
        }
        None => system_roots()
            .ok_or_else(|| config_error("no CA file given and no system CA bundle found".into()))?,
    };
    let mut builder = TlsConfig::builder().root_certs(RootCerts::from(roots));
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert_file), Some(key_file)) => {
            let chain = read_certificates(cert_file)?;
            if chain.is_empty() {
                return Err(tls_error(cert_file, "no certificate in it".into()));
            }
            let pem = fs::read(key_file).map_err(|e| tls_error(key_file, e.to_string()))?;
            let key = PrivateKey::from_pem(&pem)
                .map_err(|e| tls_error(key_file, format!("no usable private key: {e}")))?;
            builder = builder.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
        }
        (None, None) => {}
        (Some(_), None) | (None, Some(_)) => {
            return Err(config_error(
                "a client certificate file and its key file go together".into(),
            ))
        }
    }
    Ok(builder.build())
}

/// The system's trusted roots (`SSL_CERT_FILE` first, as OpenSSL does).
fn system_roots() -> Option<Vec<Certificate<'static>>> {
    let from_env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
    from_env
        .into_iter()
        .chain(CA_BUNDLES.iter().map(std::path::PathBuf::from))
        .filter_map(|path| read_certificates(&path).ok())
        .find(|certs| !certs.is_empty())
}

fn read_certificates(path: &Path) -> Result<Vec<Certificate<'static>>, EtcdError> {
    let pem = fs::read(path).map_err(|e| tls_error(path, e.to_string()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(e) => return Err(tls_error(path, format!("invalid PEM: {e}"))),
        }
    }
    Ok(certs)
}

fn tls_error(path: &Path, reason: String) -> EtcdError {
    EtcdError::TlsFile {
        path: path.to_path_buf(),
        reason: excerpt(reason.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked_and_normalised() {
        assert_eq!(
            parse_endpoint("https://10.0.0.5:2379/").unwrap(),
            "https://10.0.0.5:2379"
        );
        assert_eq!(
            parse_endpoint("http://127.0.0.1:2379").unwrap(),
            "http://127.0.0.1:2379"
        );
        assert_eq!(
            parse_endpoint("http://[::1]:2379").unwrap(),
            "http://[::1]:2379"
        );
        assert!(parse_endpoint("http://localhost:2379").is_ok());
        for (bad, why) in [
            ("http://10.0.0.5:2379", "loopback"),
            ("https://10.0.0.5", "no port"),
            ("ftp://10.0.0.5:2379", "expected https"),
            ("10.0.0.5:2379", "expected https"),
            ("https://user:pw@10.0.0.5:2379", "credentials"),
            ("https://10.0.0.5:2379/v3", "no path"),
            ("", "not a URL"),
        ] {
            let error = parse_endpoint(bad).unwrap_err().to_string();
            assert!(error.contains(why), "{bad}: {error}");
        }
    }

    #[test]
    fn a_config_without_endpoints_or_with_stray_tls_files_is_refused() {
        let none = Transport::new(&EtcdConfig::new(Vec::<String>::new()));
        assert!(none.is_err_and(|e| e.to_string().contains("no endpoint")));
        let mut config = EtcdConfig::new(["http://127.0.0.1:2379"]);
        config.tls.ca_file = Some("/nonexistent/ca.pem".into());
        let stray = Transport::new(&config);
        assert!(stray.is_err_and(|e| e.to_string().contains("no endpoint uses https")));
    }

    #[test]
    fn tls_files_are_checked_up_front() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = EtcdConfig::new(["https://127.0.0.1:2379"]);
        config.tls.ca_file = Some(dir.path().join("missing.pem"));
        let missing = Transport::new(&config).err().unwrap().to_string();
        assert!(missing.contains("missing.pem"), "{missing}");
        let empty = dir.path().join("empty.pem");
        fs::write(&empty, "").unwrap();
        config.tls.ca_file = Some(empty);
        let error = Transport::new(&config).err().unwrap().to_string();
        assert!(error.contains("no certificate"), "{error}");
        config.tls.ca_file = None;
        config.tls.cert_file = Some(dir.path().join("client.pem"));
        if system_roots().is_some() {
            let half = Transport::new(&config).err().unwrap().to_string();
            assert!(half.contains("go together"), "{half}");
        }
    }

    #[test]
    fn refusals_are_sorted_by_what_another_member_could_do() {
        let no_leader =
            br#"{"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14}"#;
        assert!(matches!(
            classify_refusal("e", "put", 503, no_leader),
            Outcome::NotApplied(_)
        ));
        let timeout = br#"{"message":"etcdserver: request timed out","code":14}"#;
        assert!(matches!(
            classify_refusal("e", "put", 503, timeout),
            Outcome::Maybe(_)
        ));
        let compacted =
            br#"{"message":"etcdserver: mvcc: required revision has been compacted","code":11}"#;
        match classify_refusal("e", "range", 400, compacted) {
            Outcome::Final(e) => assert_eq!(e.grpc_code(), Some(11)),
            _ => panic!("a 400 is final"),
        }
        assert!(matches!(
            classify_refusal("e", "put", 502, b"<html>bad gateway</html>"),
            Outcome::Maybe(_)
        ));
    }
}
