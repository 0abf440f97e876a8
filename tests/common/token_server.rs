//! A registry token service for tests (the Docker "token authentication" flow): plain
//! HTTP on a free loopback port, checks HTTP basic credentials on `GET /token` and answers
//! with an RS256 JWT signed by `openssl dgst`, carrying its self-signed certificate in
//! `x5c`. The registry trusts that certificate through `rootcertbundle`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

pub const SERVICE: &str = "berth-test-registry";
pub const ISSUER: &str = "berth-test-token-issuer";

/// One request the token server answered: its target and whether the credentials were
/// accepted.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    pub target: String,
    pub granted: bool,
}

/// A running token server; stopped on drop, its key and certificate removed with `dir`.
pub struct TokenServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub requests: Arc<Mutex<Vec<TokenRequest>>>,
    stop: Arc<AtomicBool>,
}

impl TokenServer {
    /// Starts a token server that grants whatever scope is asked for to `user:password`.
    pub fn start(user: &str, password: &str) -> TokenServer {
        let dir = tempfile::Builder::new()
            .prefix("berth-token")
            .tempdir()
            .expect("tempdir");
        let output = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=berth test token issuer", "-keyout"])
            .arg(dir.path().join("key.pem"))
            .arg("-out")
            .arg(dir.path().join("cert.pem"))
            .output()
            .expect("run openssl");
        assert!(
            output.status.success(),
            "openssl req: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        let port = listener.local_addr().expect("token server addr").port();
        let signer = Arc::new(Signer {
            key: dir.path().join("key.pem"),
            x5c: certificate_der_base64(&dir.path().join("cert.pem")),
            expected_auth: format!(
                "Basic {}",
                base64(format!("{user}:{password}").as_bytes(), false)
            ),
            user: user.to_string(),
            counter: AtomicU64::new(0),
        });
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, stop_flag) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop_flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (signer, log) = (signer.clone(), log.clone());
                std::thread::spawn(move || serve(stream, &signer, &log));
            }
        });
        TokenServer {
            port,
            dir,
            requests,
            stop,
        }
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// The certificate the registry must trust (`rootcertbundle`).
    pub fn certificate(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().expect("requests lock").clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

struct Signer {
    key: PathBuf,
    x5c: String,
    expected_auth: String,
    user: String,
    counter: AtomicU64,
}

/// Answers one request on `stream` (one request per connection: `Connection: close`).
fn serve(mut stream: TcpStream, signer: &Signer, log: &Mutex<Vec<TokenRequest>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let target = request_line
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let authorization = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value.trim().to_string());
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let granted = authorization.as_deref() == Some(signer.expected_auth.as_str());
    log.lock().expect("log lock").push(TokenRequest {
        target: target.clone(),
        granted,
    });
    let response = if path != "/token" || !request_line.starts_with("GET ") {
        reply(404, "Not Found", "", "{}")
    } else if !granted {
        reply(
            401,
            "Unauthorized",
            "WWW-Authenticate: Basic realm=\"berth test tokens\"\r\n",
            r#"{"details":"invalid username or password"}"#,
        )
    } else {
        let token = signer.token(query);
        let body = json!({"token": token, "access_token": token, "expires_in": 300});
        reply(200, "OK", "", &body.to_string())
    };
    let _ = stream.write_all(response.as_bytes());
}

fn reply(code: u16, reason: &str, extra_headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n{body}",
        body.len()
    )
}

impl Signer {
    /// A JWT granting every scope in `query` (`scope=repository:NAME:pull,push`, repeatable).
    fn token(&self, query: &str) -> String {
        let mut service = String::new();
        let mut access = Vec::new();
        for (key, value) in query.split('&').filter_map(|p| p.split_once('=')) {
            let value = percent_decode(value);
            match key {
                "service" => service = value,
                "scope" => access.extend(value.split(' ').filter_map(scope_access)),
                _ => {}
            }
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]});
        let claims = json!({
            "iss": ISSUER,
            "sub": self.user,
            "aud": service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": format!("berth-test-{}", self.counter.fetch_add(1, Ordering::SeqCst)),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            base64(header.to_string().as_bytes(), true),
            base64(claims.to_string().as_bytes(), true)
        );
        let signature = sign(&self.key, signing_input.as_bytes());
        format!("{signing_input}.{}", base64(&signature, true))
    }
}

/// `repository:NAME:pull,push` → an `access` entry granting those actions.
fn scope_access(scope: &str) -> Option<Value> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let actions: Vec<&str> = actions.split(',').filter(|a| !a.is_empty()).collect();
    Some(json!({"type": kind, "name": name, "actions": actions}))
}

/// RSASSA-PKCS1-v1_5 with SHA-256 (JWS "RS256") by the openssl CLI.
fn sign(key: &Path, input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl dgst");
    child
        .stdin
        .take()
        .expect("openssl stdin")
        .write_all(input)
        .expect("write to openssl");
    let output = child.wait_with_output().expect("openssl dgst output");
    assert!(
        output.status.success() && !output.stdout.is_empty(),
        "openssl dgst: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The base64 DER inside a PEM certificate: its body lines joined.
fn certificate_der_base64(pem: &Path) -> String {
    let text = std::fs::read_to_string(pem).expect("read certificate");
    text.lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>()
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 with padding, or the URL-safe unpadded form JWS uses.
pub fn base64(bytes: &[u8], url_safe: bool) -> String {
    let alphabet: &[u8; 64] = if url_safe {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        if !url_safe {
            out.push_str(&"=".repeat(3 - chunk.len()));
        }
    }
    out
}
