//! Registry test parts: Debian's `docker-registry` (the CNCF distribution server) on a free
//! loopback port, `skopeo` pushes, a test CA, multi-platform layouts, and a TCP proxy that
//! cuts or stalls a blob download once.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::common::{build_image, die_with_parent, listens_on, wait_for};

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

fn run(command: &mut Command) {
    let output = command.output().expect("run command");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[derive(Default)]
pub struct RegistryOptions {
    pub basic_auth: Option<(String, String)>,
    /// (certificate, key) PEM files.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Bearer tokens from a token service instead of basic auth.
    pub token_auth: Option<TokenAuth>,
}

/// The registry's `auth: token:` settings: where clients get tokens, and what a token must
/// say (audience, issuer) and be signed by (a certificate in `rootcertbundle`).
pub struct TokenAuth {
    pub realm: String,
    pub service: String,
    pub issuer: String,
    pub rootcertbundle: PathBuf,
}

/// A running registry; killed and its storage removed on drop.
pub struct TestRegistry {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl TestRegistry {
    pub fn start(options: RegistryOptions) -> TestRegistry {
        let dir = tempfile::Builder::new()
            .prefix("berth-registry")
            .tempdir()
            .expect("tempdir");
        let mut settings = String::new();
        if let Some((cert, key)) = &options.tls {
            settings.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
        }
        if let Some((user, password)) = &options.basic_auth {
            let htpasswd = dir.path().join("htpasswd");
            let output = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("run htpasswd");
            assert!(output.status.success());
            std::fs::write(&htpasswd, &output.stdout).expect("write htpasswd");
            settings.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        if let Some(token) = &options.token_auth {
            settings.push_str(&format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                token.realm,
                token.service,
                token.issuer,
                token.rootcertbundle.display()
            ));
        }
        // The free port may be taken by someone else before the registry binds it; the
        // registry then exits, and another port is tried.
        for _ in 0..5 {
            let port = free_port();
            let config = format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n{settings}",
                dir.path().join("storage").display()
            );
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).expect("write registry config");
            let log = std::fs::File::create(dir.path().join("registry.log")).expect("registry log");
            let mut child = die_with_parent(&mut Command::new("/usr/bin/docker-registry"))
                .arg("serve")
                .arg(&config_path)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start docker-registry (apt install docker-registry)");
            let serving = wait_for(Duration::from_secs(20), "the registry port", || {
                if child.try_wait().ok().flatten().is_some() {
                    return Some(false);
                }
                listens_on(child.id(), port).then_some(true)
            });
            if serving {
                return TestRegistry { port, dir, child };
            }
        }
        panic!(
            "the registry exited at start five times; its last log:\n{}",
            std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default()
        );
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Pushes an OCI layout (all its platforms) as `repo:tag`.
    pub fn push(&self, layout: &Path, repo_tag: &str, extra: &[&str]) {
        let mut command = Command::new("skopeo");
        command
            .args(["--insecure-policy", "copy", "--all", "--quiet"])
            .args(extra)
            .arg(format!("oci:{}", layout.display()))
            .arg(format!("docker://{}/{repo_tag}", self.host()));
        run(&mut command);
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The arm64 busybox layout, built once per test binary by scripts/build-demo-image.
pub fn demo_image_arm64() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| build_image("demo-image-arm64", &["--arch", "arm64"]))
}

/// The busybox layout plus 8 MiB of random filler in its layer: a download long enough
/// to interrupt. Built once per test binary.
pub fn demo_image_big() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| build_image("demo-image-filler8", &["--filler", "8"]))
}

/// Writes into `out` a layout whose index.json points at one image index listing the
/// single manifests of `layouts` with their platforms.
pub fn multi_platform_layout(layouts: &[&Path], out: &Path) {
    let blobs = out.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("create blobs");
    let mut manifests = Vec::new();
    for layout in layouts {
        for entry in std::fs::read_dir(layout.join("blobs/sha256")).expect("read blobs") {
            let entry = entry.expect("blob entry");
            let dest = blobs.join(entry.file_name());
            if !dest.exists() {
                std::fs::copy(entry.path(), dest).expect("copy blob");
            }
        }
        let index: Value = serde_json::from_slice(
            &std::fs::read(layout.join("index.json")).expect("read index.json"),
        )
        .expect("parse index.json");
        let mut desc = index["manifests"][0].clone();
        desc.as_object_mut()
            .expect("descriptor")
            .remove("annotations");
        manifests.push(desc);
    }
    let image_index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .expect("encode index");
    let digest = format!("{:x}", Sha256::digest(&image_index));
    std::fs::write(blobs.join(&digest), &image_index).expect("write index blob");
    let top = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": format!("sha256:{digest}"),
            "size": image_index.len(),
        }],
    });
    std::fs::write(out.join("index.json"), top.to_string()).expect("write index.json");
    std::fs::write(out.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("write oci-layout");
}

/// Writes into `out` a two-layer image: the demo image's layer, then a layer that adds
/// `srv/hello.txt` and whites out `etc/group`. Tagged `localhost/layered:1`.
pub fn two_layer_layout(demo: &Path, out: &Path) {
    let blobs = out.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("create blobs");
    let read_json = |path: PathBuf| -> Value {
        serde_json::from_slice(&std::fs::read(path).expect("read json")).expect("parse json")
    };
    let demo_blob = |digest: &str| demo.join("blobs/sha256").join(&digest["sha256:".len()..]);
    let index = read_json(demo.join("index.json"));
    let manifest_digest = index["manifests"][0]["digest"].as_str().expect("digest");
    let mut manifest = read_json(demo_blob(manifest_digest));
    let lower = manifest["layers"][0].clone();
    let lower_digest = lower["digest"].as_str().expect("layer digest");
    std::fs::copy(
        demo_blob(lower_digest),
        blobs.join(&lower_digest["sha256:".len()..]),
    )
    .expect("copy layer");

    let mut upper = tar::Builder::new(Vec::new());
    for (path, content) in [
        ("srv/hello.txt", &b"hello"[..]),
        ("etc/.wh.group", &b""[..]),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(content.len() as u64);
        header.set_mtime(1);
        header.set_uid(0);
        header.set_gid(0);
        upper
            .append_data(&mut header, path, content)
            .expect("tar entry");
    }
    let upper_tar = upper.into_inner().expect("tar");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&upper_tar).expect("gzip");
    let upper_gz = gz.finish().expect("gzip");
    let put = |bytes: &[u8]| -> String {
        let hex = format!("{:x}", Sha256::digest(bytes));
        std::fs::write(blobs.join(&hex), bytes).expect("write blob");
        format!("sha256:{hex}")
    };
    let upper_digest = put(&upper_gz);

    let config_digest = manifest["config"]["digest"]
        .as_str()
        .expect("config digest");
    let mut config = read_json(demo_blob(config_digest));
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .expect("diff ids")
        .push(json!(format!("sha256:{:x}", Sha256::digest(&upper_tar))));
    let config_bytes = config.to_string().into_bytes();
    manifest["config"]["digest"] = json!(put(&config_bytes));
    manifest["config"]["size"] = json!(config_bytes.len());
    manifest["layers"] = json!([
        lower,
        {
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": upper_digest,
            "size": upper_gz.len(),
        }
    ]);
    let manifest_bytes = manifest.to_string().into_bytes();
    let top = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": put(&manifest_bytes),
            "size": manifest_bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": "localhost/layered:1"},
        }],
    });
    std::fs::write(out.join("index.json"), top.to_string()).expect("write index.json");
    std::fs::write(out.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("write oci-layout");
}

/// A test CA and a server certificate for 127.0.0.1 signed by it, in `dir`.
/// Returns (ca.pem, server.pem, server.key).
pub fn make_test_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |name: &str| dir.join(name);
    run(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=berth test CA", "-keyout"])
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.pem")));
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(p("server.key"))
        .arg("-out")
        .arg(p("server.csr")));
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write ext");
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
        .arg("-in")
        .arg(p("server.csr"))
        .arg("-CA")
        .arg(p("ca.pem"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-extfile")
        .arg(p("ext.cnf"))
        .arg("-out")
        .arg(p("server.pem")));
    (p("ca.pem"), p("server.pem"), p("server.key"))
}

/// What the proxy does to the first response to a request containing `pattern`.
#[derive(Clone, Copy, PartialEq)]
pub enum Fault {
    /// Close the connection after this many response bytes.
    Cut(u64),
    /// Stop forwarding after this many response bytes, keeping the connection open.
    Stall(u64),
    /// Like `Cut`, and from then on drop `Range` headers, like a server without range
    /// support: the download has to start over.
    CutAndIgnoreRange(u64),
}

/// A TCP proxy to a registry that applies one fault to one matching request, and records
/// every request head it forwarded.
pub struct FaultProxy {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    fired: Arc<AtomicBool>,
}

impl FaultProxy {
    pub fn start(upstream: u16, pattern: &str, fault: Fault) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let pending = Arc::new(Mutex::new(Some((pattern.to_string(), fault))));
        let ignore_range = Arc::new(AtomicBool::new(false));
        let fired = Arc::new(AtomicBool::new(false));
        let (log, stop_flag, fired_flag) = (requests.clone(), stop.clone(), fired.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop_flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (log, pending, stop) = (log.clone(), pending.clone(), stop_flag.clone());
                let (ignore_range, fired) = (ignore_range.clone(), fired_flag.clone());
                let flags = Flags {
                    stop,
                    ignore_range,
                    fired,
                };
                std::thread::spawn(move || relay(client, server, log, pending, flags));
            }
        });
        FaultProxy {
            port,
            requests,
            stop,
            fired,
        }
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("requests lock").clone()
    }

    /// Whether the fault was applied (the response was cut or stalled).
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

/// The flags a relay shares with the proxy.
struct Flags {
    stop: Arc<AtomicBool>,
    /// Drop `Range` headers from now on.
    ignore_range: Arc<AtomicBool>,
    /// The fault was applied.
    fired: Arc<AtomicBool>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn relay(
    client: TcpStream,
    server: TcpStream,
    log: Arc<Mutex<Vec<String>>>,
    pending: Arc<Mutex<Option<(String, Fault)>>>,
    flags: Flags,
) {
    let Flags {
        stop,
        ignore_range,
        fired,
    } = flags;
    // The fault armed on this connection by a matching request, if any.
    let armed: Arc<Mutex<Option<Fault>>> = Arc::new(Mutex::new(None));
    let (mut client_in, mut server_out) = (
        client.try_clone().expect("clone client"),
        server.try_clone().expect("clone server"),
    );
    let armed_by_request = armed.clone();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            let n = match client_in.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut text = String::from_utf8_lossy(&buffer[..n]).to_string();
            if ignore_range.load(Ordering::SeqCst) {
                // Request heads arrive in one piece here; drop the Range line.
                text = text
                    .split_inclusive("\r\n")
                    .filter(|line| !line.to_ascii_lowercase().starts_with("range:"))
                    .collect();
            }
            {
                let mut pending = pending.lock().expect("pending lock");
                if let Some((pattern, fault)) = pending.as_ref() {
                    if text.contains(pattern.as_str()) {
                        *armed_by_request.lock().expect("armed lock") = Some(*fault);
                        if let Fault::CutAndIgnoreRange(_) = fault {
                            ignore_range.store(true, Ordering::SeqCst);
                        }
                        *pending = None;
                    }
                }
            }
            log.lock().expect("log lock").push(text.clone());
            if server_out.write_all(text.as_bytes()).is_err() {
                break;
            }
        }
        let _ = server_out.shutdown(Shutdown::Write);
    });
    let (mut server_in, mut client_out) = (server, client);
    let mut buffer = [0u8; 16 * 1024];
    let mut sent_since_armed: u64 = 0;
    loop {
        let n = match server_in.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let fault = *armed.lock().expect("armed lock");
        let limit = match fault {
            Some(Fault::Cut(limit))
            | Some(Fault::Stall(limit))
            | Some(Fault::CutAndIgnoreRange(limit)) => Some(limit),
            None => None,
        };
        if let Some(limit) = limit {
            if sent_since_armed + n as u64 >= limit {
                let keep = (limit - sent_since_armed) as usize;
                let _ = client_out.write_all(&buffer[..keep]);
                fired.store(true, Ordering::SeqCst);
                if fault == Some(Fault::Stall(limit)) {
                    // Hold the connection open, silent, until the client gives up.
                    let mut sink = [0u8; 1024];
                    while !stop.load(Ordering::SeqCst) {
                        match client_out.read(&mut sink) {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                    }
                }
                let _ = client_out.shutdown(Shutdown::Both);
                let _ = server_in.shutdown(Shutdown::Both);
                return;
            }
            sent_since_armed += n as u64;
        }
        if client_out.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = client_out.shutdown(Shutdown::Write);
}
