//! A blocking client for one registry endpoint: authentication, manifests, and blob
//! downloads that resume with HTTP Range after a dropped connection.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use ureq::http::{Response, StatusCode};
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};
use ureq::Body;

use super::auth::{basic, direct_authorization, Challenge};
use super::config::{Credentials, Endpoint};
use crate::image::blobs::{start_writeback, MAX_JSON_BLOB, WRITEBACK_STEP};
use crate::image::oci::{self, Descriptor};
use crate::image::ImageError;
use crate::support::backoff::Backoff;

/// Every media type of manifest or index we can read, for the `Accept` header.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// Consecutive failed attempts (no byte received in between) before a download gives up.
const MAX_ATTEMPTS_WITHOUT_PROGRESS: u32 = 5;
const CHUNK: usize = 64 * 1024;

/// Where the system's CA bundle is on Debian/Raspberry Pi OS, Fedora and Alpine/others.
const CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// A manifest or index as fetched, not yet trusted.
pub(crate) struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
}

pub(crate) struct RegistryClient {
    endpoint: Endpoint,
    agent: ureq::Agent,
    /// Repository path inside the registry, e.g. `library/busybox`.
    repository: String,
    /// The reference being pulled, for error messages.
    reference: String,
    deadline: Instant,
    /// The `Authorization` value that last worked, shared by the download threads.
    authorization: Mutex<Option<String>>,
}

impl RegistryClient {
    pub fn new(
        endpoint: Endpoint,
        repository: &str,
        reference: &str,
        stall_timeout: Duration,
        deadline: Instant,
    ) -> Result<RegistryClient, ImageError> {
        let mut config = ureq::config::Config::builder()
            // 401 and 404 are answers we handle, not errors.
            .http_status_as_error(false)
            .timeout_connect(Some(stall_timeout))
            // A read that waits longer than this is a stalled link: give up and resume.
            .timeout_per_read(Some(stall_timeout))
            .user_agent(format!("berth/{}", crate::VERSION));
        if endpoint.base.starts_with("https://") {
            config = config.tls_config(tls_config(&endpoint)?);
        }
        Ok(RegistryClient {
            agent: config.build().new_agent(),
            endpoint,
            repository: repository.to_string(),
            reference: reference.to_string(),
            deadline,
            authorization: Mutex::new(None),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint.base
    }

    fn error(&self, reason: impl Into<String>) -> ImageError {
        ImageError::Registry {
            registry: self.endpoint.base.clone(),
            reason: reason.into(),
        }
    }

    fn remaining(&self) -> Result<Duration, ImageError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.error(format!(
                "pulling {} did not finish before its deadline",
                self.reference
            )));
        }
        Ok(left)
    }

    fn current_authorization(&self) -> Option<String> {
        self.authorization
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// GET with authentication: on a 401 answers the challenge once and retries.
    fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Response<Body>, ImageError> {
        let mut challenged = false;
        loop {
            let mut request = self.agent.get(url);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            if let Some(auth) = self.current_authorization() {
                request = request.header("Authorization", auth);
            }
            let response = request
                .config()
                .timeout_global(Some(self.remaining()?))
                .build()
                .call()
                .map_err(|e| self.error(format!("GET {url}: {e}")))?;
            if response.status() != StatusCode::UNAUTHORIZED || challenged {
                return Ok(response);
            }
            challenged = true;
            let challenge = response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .and_then(Challenge::parse)
                .ok_or_else(|| self.error(format!("GET {url}: 401 without a usable challenge")))?;
            let authorization = self.answer(&challenge)?;
            *self
                .authorization
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(authorization);
        }
    }

    /// The `Authorization` value answering a challenge: our credentials for Basic, a
    /// token from the realm for Bearer (anonymous when we have no credentials).
    fn answer(&self, challenge: &Challenge) -> Result<String, ImageError> {
        let credentials = self.endpoint.credentials.as_ref();
        match challenge.scheme.as_str() {
            "basic" => credentials.map(direct_authorization).ok_or_else(|| {
                self.error(format!(
                    "{} needs credentials (401 unauthorized); add them to the registries file",
                    self.reference
                ))
            }),
            "bearer" => {
                if let Some(Credentials::Token(token)) = credentials {
                    return Ok(format!("Bearer {token}"));
                }
                let url = challenge
                    .token_url(&self.repository)
                    .ok_or_else(|| self.error("bearer challenge without a realm"))?;
                let mut request = self.agent.get(&url);
                if let Some(Credentials::Basic { username, password }) = credentials {
                    request = request.header("Authorization", basic(username, password));
                }
                let mut response = request
                    .config()
                    .timeout_global(Some(self.remaining()?))
                    .build()
                    .call()
                    .map_err(|e| self.error(format!("token service {url}: {e}")))?;
                let status = response.status();
                if status == 401 || status == 403 {
                    let why = match credentials {
                        Some(_) => "rejected the credentials",
                        None => "needs credentials (none are configured for this registry)",
                    };
                    return Err(self.error(format!("token service {url} {why}: {status}")));
                }
                if !status.is_success() {
                    return Err(self.error(format!("token service {url} answered {status}")));
                }
                let body = response
                    .body_mut()
                    .with_config()
                    .limit(MAX_JSON_BLOB)
                    .read_to_vec()
                    .map_err(|e| self.error(format!("token service {url}: {e}")))?;
                #[derive(serde::Deserialize)]
                struct TokenAnswer {
                    token: Option<String>,
                    access_token: Option<String>,
                }
                let answer: TokenAnswer = serde_json::from_slice(&body)
                    .map_err(|e| self.error(format!("token service {url}: invalid answer: {e}")))?;
                let token = answer
                    .token
                    .or(answer.access_token)
                    .ok_or_else(|| self.error(format!("token service {url} gave no token")))?;
                Ok(format!("Bearer {token}"))
            }
            other => Err(self.error(format!("unsupported authentication scheme {other:?}"))),
        }
    }

    /// Fetches a manifest or index by tag or digest (size-limited, not yet verified).
    pub fn manifest(&self, tag_or_digest: &str) -> Result<FetchedManifest, ImageError> {
        let url = format!(
            "{}/v2/{}/manifests/{tag_or_digest}",
            self.endpoint.base, self.repository
        );
        let mut response = self.get(&url, &[("Accept", MANIFEST_ACCEPT)])?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Err(ImageError::NotFound {
                reference: self.reference.clone(),
            });
        }
        if !status.is_success() {
            return Err(self.error(format!("GET {url} answered {status}")));
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_string());
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_JSON_BLOB)
            .read_to_vec()
            .map_err(|e| self.error(format!("GET {url}: {e}")))?;
        Ok(FetchedManifest {
            bytes,
            content_type,
        })
    }

    /// Downloads a blob into `dest` (which must not exist), hashing while streaming and
    /// resuming with `Range` after a dropped or stalled connection. The file exists only
    /// if its size and digest match `desc`.
    ///
    /// While it runs the bytes go to `dest` with the extension `partial`, and `written` is
    /// called after every write with the length of that file so far (the bytes are then
    /// readable there), so a reader can follow the file as it grows. When the server
    /// ignores a `Range` and the download starts over, `written(0)` comes before the file
    /// is truncated.
    pub fn download_blob(
        &self,
        desc: &Descriptor,
        dest: &Path,
        written: &mut dyn FnMut(u64),
    ) -> Result<(), ImageError> {
        let partial = dest.with_extension("partial");
        let result = self
            .download_to(desc, &partial, written)
            .and_then(|()| fs::rename(&partial, dest).map_err(|e| ImageError::io(dest, e)));
        if result.is_err() {
            let _ = fs::remove_file(&partial);
        }
        result
    }

    fn download_to(
        &self,
        desc: &Descriptor,
        partial: &Path,
        written: &mut dyn FnMut(u64),
    ) -> Result<(), ImageError> {
        let url = format!(
            "{}/v2/{}/blobs/{}",
            self.endpoint.base, self.repository, desc.digest
        );
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(partial)
            .map_err(|e| self.write_error(partial, e))?;
        let mut hasher = Sha256::new();
        let mut done: u64 = 0;
        // Bytes already handed to the kernel's writeback, so the final fsync is short.
        let mut submitted: u64 = 0;
        let mut failures = 0;
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let range = format!("bytes={done}-");
            let headers: &[(&str, &str)] = if done > 0 { &[("Range", &range)] } else { &[] };
            let attempt = self.get(&url, headers);
            let mut response = match attempt {
                Ok(response) => response,
                Err(e) => {
                    failures += 1;
                    if failures >= MAX_ATTEMPTS_WITHOUT_PROGRESS || self.remaining().is_err() {
                        return Err(e);
                    }
                    log::debug!("blob {}: {e}; retrying", desc.digest);
                    std::thread::sleep(RETRY.jitter(failures - 1));
                    continue;
                }
            };
            let status = response.status();
            let resumed = status == StatusCode::PARTIAL_CONTENT
                && done > 0
                && content_range_start(&response) == Some(done);
            if !resumed {
                if status != StatusCode::OK {
                    let reason = format!("GET {url} answered {status}");
                    return Err(self.error(reason));
                }
                if done > 0 {
                    // The server ignored the Range: start over.
                    log::debug!("blob {}: no range support, restarting", desc.digest);
                    written(0);
                    file.set_len(0).map_err(|e| self.write_error(partial, e))?;
                    io::Seek::rewind(&mut file).map_err(|e| self.write_error(partial, e))?;
                    hasher = Sha256::new();
                    done = 0;
                    submitted = 0;
                }
            } else {
                log::info!("blob {}: resuming at byte {done}", desc.digest);
            }
            let mut reader = response.body_mut().as_reader();
            let ended_cleanly = loop {
                if done > desc.size {
                    break true;
                }
                match reader.read(&mut buffer) {
                    Ok(0) => break true,
                    Ok(n) => {
                        file.write_all(&buffer[..n])
                            .map_err(|e| self.write_error(partial, e))?;
                        hasher.update(&buffer[..n]);
                        done += n as u64;
                        if done - submitted >= WRITEBACK_STEP {
                            start_writeback(&file, submitted, done - submitted);
                            submitted = done;
                        }
                        failures = 0;
                        written(done);
                    }
                    Err(e) => {
                        log::debug!("blob {}: connection lost at byte {done}: {e}", desc.digest);
                        break false;
                    }
                }
            };
            if ended_cleanly && done >= desc.size || done > desc.size {
                break;
            }
            failures += 1;
            if failures >= MAX_ATTEMPTS_WITHOUT_PROGRESS {
                return Err(self.error(format!(
                    "blob {}: download kept failing at byte {done} of {}",
                    desc.digest, desc.size
                )));
            }
            self.remaining()?;
        }
        let digest = format!("sha256:{:x}", hasher.finalize());
        if done != desc.size || digest != desc.digest {
            return Err(ImageError::DigestMismatch {
                digest: desc.digest.clone(),
                actual: format!(
                    "received {done} bytes with digest {digest}, expected {} bytes",
                    desc.size
                ),
            });
        }
        file.sync_all().map_err(|e| self.write_error(partial, e))
    }

    /// A write error; a full disk gets its own clear error.
    fn write_error(&self, path: &Path, e: io::Error) -> ImageError {
        match e.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => ImageError::NoSpace {
                path: path.to_path_buf(),
                reference: self.reference.clone(),
            },
            _ => ImageError::io(path, e),
        }
    }
}

/// Whether an OCI or Docker manifest/index media type is one we read.
pub(crate) fn is_manifest_media_type(media_type: &str) -> bool {
    oci::kind_of(media_type) != oci::Kind::Unknown
}

/// Short, growing, jittered pauses between attempts, so a registry that is restarting
/// gets a moment and many boards pulling from it do not all come back at once: a random
/// time up to 200 ms after the first failure, then up to 400 ms, 800 ms, 1.6 s.
const RETRY: Backoff = Backoff {
    base: Duration::from_millis(200),
    max: Duration::from_secs(2),
};

/// The first byte of `Content-Range: bytes START-END/TOTAL`.
fn content_range_start(response: &Response<Body>) -> Option<u64> {
    let value = response.headers().get("content-range")?.to_str().ok()?;
    let range = value.trim().strip_prefix("bytes")?.trim();
    range.split('-').next()?.trim().parse().ok()
}

fn tls_config(endpoint: &Endpoint) -> Result<TlsConfig, ImageError> {
    let settings = endpoint.tls.clone().unwrap_or_default();
    let mut builder = TlsConfig::builder();
    if settings.insecure_skip_verify {
        log::warn!(
            "registry {}: TLS certificate verification is disabled",
            endpoint.host
        );
        builder = builder.disable_verification(true);
    } else {
        let mut roots = system_roots();
        if let Some(ca_file) = &settings.ca_file {
            let extra = read_certificates(ca_file)?;
            if extra.is_empty() {
                return Err(config_error(ca_file, "no certificate in ca_file"));
            }
            roots.extend(extra);
        }
        builder = builder.root_certs(RootCerts::from(roots));
    }
    match (&settings.cert_file, &settings.key_file) {
        (Some(cert_file), Some(key_file)) => {
            let chain = read_certificates(cert_file)?;
            let pem = fs::read(key_file).map_err(|e| ImageError::io(key_file, e))?;
            let key = PrivateKey::from_pem(&pem)
                .map_err(|e| config_error(key_file, &format!("invalid private key: {e}")))?;
            builder = builder.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
        }
        (None, None) => {}
        (Some(path), None) | (None, Some(path)) => {
            return Err(config_error(
                path,
                "tls.cert_file and tls.key_file go together",
            ))
        }
    }
    Ok(builder.build())
}

fn config_error(path: &Path, reason: &str) -> ImageError {
    ImageError::Config {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The system's trusted roots (`SSL_CERT_FILE` first, as OpenSSL does).
fn system_roots() -> Vec<Certificate<'static>> {
    let from_env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
    let candidates = from_env
        .into_iter()
        .chain(CA_BUNDLES.iter().map(std::path::PathBuf::from));
    for path in candidates {
        if let Ok(certs) = read_certificates(&path) {
            if !certs.is_empty() {
                return certs;
            }
        }
    }
    log::warn!("no system CA bundle found; only registries' configured ca_file are trusted");
    Vec::new()
}

fn read_certificates(path: &Path) -> Result<Vec<Certificate<'static>>, ImageError> {
    let mut pem = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut pem))
        .map_err(|e| ImageError::io(path, e))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(e) => return Err(config_error(path, &format!("invalid PEM: {e}"))),
        }
    }
    Ok(certs)
}
