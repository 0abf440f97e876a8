//! The coordinator's small PKI: one CA and one server certificate it signs.
//!
//! Files in the state directory (PEM):
//!
//! - `ca.crt`, `ca.key`: ECDSA P-256 CA, valid 10 years, created once and reused forever.
//!   Agents pin it (the join token carries its sha256) and trust only it from then on.
//! - `server.crt`, `server.key`: ECDSA P-256 server certificate signed by the CA, valid
//!   one year. It is re-issued (with a new key) on start when it lacks one of the wanted
//!   names, expires within 30 days, does not chain to `ca.crt`, or does not match its key.
//!   Clients only pin the CA, so re-issuing is invisible to them.
//!
//! Keys are written mode 0600 through a temporary file and a rename, so a crash never
//! leaves half a key. A key file accessible to group or others is refused rather than fixed
//! silently: it may already have leaked, and the admin should know.
//!
//! Wanted server names: `localhost`, `127.0.0.1`, `::1`, the machine's hostname, every
//! local IP address except IPv6 link-local ones (a URL or TLS server name cannot carry
//! their zone, so nobody can connect by them), and the names the admin passes.

use std::fmt;
use std::fs::DirBuilder;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::CryptoProvider;
use rustls::server::ParsedCertificate;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, DnsName, PrivateKeyDer, ServerName, UnixTime};

use crate::api::tls::certificate_pem;
use crate::api::tokens::sha256_hex;
use files::{exists, io_error, read_key_file, read_text, write_atomically};
pub use files::{install_ca, read_ca};

const CA_CERT_FILE: &str = "ca.crt";
const CA_KEY_FILE: &str = "ca.key";
const SERVER_CERT_FILE: &str = "server.crt";
const SERVER_KEY_FILE: &str = "server.key";

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
const SERVER_VALIDITY: Duration = Duration::from_secs(365 * 24 * 60 * 60);
const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Certificates start a day in the past: boards without a battery-backed clock may be a
/// little behind the coordinator.
const BACKDATE: Duration = DAY;

/// The CA's subject is rebuilt from this prefix and the CA key whenever a server
/// certificate is issued, so it must never change (an existing CA would no longer issue
/// certificates that chain to it).
const CA_COMMON_NAME_PREFIX: &str = "berth coordinator CA";
const ORGANIZATION: &str = "berth";
const SERVER_COMMON_NAME: &str = "berth coordinator";

/// Why the PKI could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "{path} is accessible to group or others (mode {mode:o}); \
         check it has not leaked, then run chmod 600 on it"
    )]
    KeyTooOpen { path: PathBuf, mode: u32 },
    #[error(
        "found {present} but not {missing}; restore the missing file, \
         or remove both to create a new CA (every agent must then join again)"
    )]
    IncompleteCa { present: PathBuf, missing: PathBuf },
    #[error("cannot read {path}: {reason}")]
    BadFile { path: PathBuf, reason: String },
    #[error("{key} does not belong to the certificate in {cert}")]
    CaKeyMismatch { key: PathBuf, cert: PathBuf },
    #[error("invalid server name {name:?}: use a DNS name or an IP address")]
    BadName { name: String },
    #[error("cannot generate the {what}: {source}")]
    Generate {
        what: &'static str,
        source: rcgen::Error,
    },
    #[error("the operating system's random number generator failed")]
    Random,
    #[error("the newly issued server certificate does not verify against {ca}: {reason}")]
    IssuedCertInvalid { ca: PathBuf, reason: String },
}

/// The loaded CA certificate and server certificate with its key. The CA key stays on
/// disk: it is only needed while issuing, inside [`Pki::load_or_create`].
pub struct Pki {
    ca_der: CertificateDer<'static>,
    ca_pem: String,
    ca_hash: String,
    server_cert_der: CertificateDer<'static>,
    server_key_der: PrivateKeyDer<'static>,
    server_names: Vec<String>,
}

impl Pki {
    /// Loads the CA and server certificate from `dir`, creating or re-issuing what is
    /// missing or stale. `extra_names` are DNS names or IP addresses the server
    /// certificate must also cover (for example the address agents dial).
    pub fn load_or_create(dir: &Path, extra_names: &[String]) -> Result<Pki, PkiError> {
        let names = wanted_names(extra_names)?;
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error("create directory", dir))?;
        let provider = rustls::crypto::ring::default_provider();

        let (ca_der, ca_key) = load_or_create_ca(dir, &provider)?;

        let renew_check_time = SystemTime::now() + RENEW_BEFORE_EXPIRY;
        let existing = load_server(dir, &provider)?;
        let (server_cert_der, server_key_der) = match existing {
            Some((cert, key)) => {
                match check_server_cert(&ca_der, &cert, &names, renew_check_time) {
                    Ok(()) => {
                        log::debug!("reusing the coordinator server certificate");
                        (cert, key)
                    }
                    Err(reason) => {
                        log::info!("re-issuing the coordinator server certificate: {reason}");
                        issue_server(dir, ca_key, &names, SERVER_VALIDITY)?
                    }
                }
            }
            None => {
                log::info!("issuing the coordinator server certificate");
                issue_server(dir, ca_key, &names, SERVER_VALIDITY)?
            }
        };

        // An expired CA, or a CA subject that no longer matches ca.crt, would produce a
        // server certificate nobody accepts: find out now, not at every agent's handshake.
        check_server_cert(&ca_der, &server_cert_der, &names, SystemTime::now()).map_err(
            |reason| PkiError::IssuedCertInvalid {
                ca: dir.join(CA_CERT_FILE),
                reason,
            },
        )?;

        Ok(Pki {
            ca_hash: sha256_hex(&ca_der),
            // Re-encoded rather than read back, so it holds exactly the one CA certificate.
            ca_pem: certificate_pem(&ca_der),
            ca_der,
            server_cert_der,
            server_key_der,
            server_names: names.iter().map(ToString::to_string).collect(),
        })
    }

    /// The CA certificate in PEM, as saved by agents and written into admin configs.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA certificate in DER.
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// Lowercase hex sha256 of the CA certificate's DER: what join tokens pin.
    pub fn ca_hash(&self) -> &str {
        &self.ca_hash
    }

    /// The server certificate in DER.
    pub fn server_cert_der(&self) -> &CertificateDer<'static> {
        &self.server_cert_der
    }

    /// A copy of the server's private key (PKCS#8 DER) for a TLS server configuration.
    pub fn server_key_der(&self) -> PrivateKeyDer<'static> {
        self.server_key_der.clone_key()
    }

    /// The names the server certificate was checked against, for logging.
    pub fn server_names(&self) -> &[String] {
        &self.server_names
    }
}

impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki")
            .field("ca_hash", &self.ca_hash)
            .field("server_names", &self.server_names)
            .field("server_key", &"<redacted>")
            .finish()
    }
}

/// A name the server certificate must cover.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SubjectName {
    Dns(String),
    Ip(IpAddr),
}

impl fmt::Display for SubjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubjectName::Dns(name) => f.write_str(name),
            SubjectName::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl SubjectName {
    fn parse(text: &str) -> Option<SubjectName> {
        let text = text.trim();
        let unbracketed = text
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .unwrap_or(text);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Some(SubjectName::Ip(ip));
        }
        let lower = text.to_ascii_lowercase();
        DnsName::try_from(lower.as_str()).ok()?;
        Some(SubjectName::Dns(lower))
    }

    fn server_name(&self) -> Option<ServerName<'static>> {
        match self {
            SubjectName::Dns(name) => ServerName::try_from(name.clone()).ok(),
            SubjectName::Ip(ip) => Some(ServerName::IpAddress((*ip).into())),
        }
    }

    fn san(&self) -> Result<SanType, PkiError> {
        match self {
            SubjectName::Dns(name) => name
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|_| PkiError::BadName { name: name.clone() }),
            SubjectName::Ip(ip) => Ok(SanType::IpAddress(*ip)),
        }
    }
}

fn wanted_names(extra_names: &[String]) -> Result<Vec<SubjectName>, PkiError> {
    let mut names = vec![
        SubjectName::Dns("localhost".to_string()),
        SubjectName::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SubjectName::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ];
    match nix::unistd::gethostname() {
        Ok(host) => match host.to_str().and_then(SubjectName::parse) {
            Some(name) => names.push(name),
            None => log::warn!("the hostname {host:?} is not a DNS name; the certificate omits it"),
        },
        Err(err) => log::warn!("cannot read the hostname: {err}"),
    }
    names.extend(local_addresses().into_iter().map(SubjectName::Ip));
    for extra in extra_names {
        let name = SubjectName::parse(extra).ok_or_else(|| PkiError::BadName {
            name: extra.clone(),
        })?;
        names.push(name);
    }
    let mut unique = Vec::with_capacity(names.len());
    for name in names {
        if !unique.contains(&name) {
            unique.push(name);
        }
    }
    Ok(unique)
}

fn local_addresses() -> Vec<IpAddr> {
    let interfaces = match nix::ifaddrs::getifaddrs() {
        Ok(interfaces) => interfaces,
        Err(err) => {
            log::warn!("cannot list local IP addresses: {err}");
            return Vec::new();
        }
    };
    let mut addresses = Vec::new();
    for interface in interfaces {
        let Some(address) = interface.address else {
            continue;
        };
        if let Some(v4) = address.as_sockaddr_in() {
            addresses.push(IpAddr::V4(v4.ip()));
        } else if let Some(v6) = address.as_sockaddr_in6() {
            let ip = v6.ip();
            let link_local = ip.segments()[0] & 0xffc0 == 0xfe80;
            if !link_local {
                addresses.push(IpAddr::V6(ip));
            }
        }
    }
    crate::support::sort::sort(&mut addresses);
    addresses
}

/// Loads the CA or creates it when neither of its files exists.
fn load_or_create_ca(
    dir: &Path,
    provider: &CryptoProvider,
) -> Result<(CertificateDer<'static>, KeyPair), PkiError> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    match (exists(&cert_path)?, exists(&key_path)?) {
        (true, true) => {
            let key_pem = read_key_file(&key_path)?;
            let key = KeyPair::from_pem(&key_pem).map_err(|err| PkiError::BadFile {
                path: key_path.clone(),
                reason: err.to_string(),
            })?;
            let cert = parse_cert_pem(&cert_path, &read_text(&cert_path)?)?;
            let key_der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
            CertifiedKey::from_der(vec![cert.clone()], key_der, provider).map_err(|_| {
                PkiError::CaKeyMismatch {
                    key: key_path.clone(),
                    cert: cert_path.clone(),
                }
            })?;
            log::debug!("loaded the coordinator CA from {}", cert_path.display());
            Ok((cert, key))
        }
        (false, false) => {
            let key = generate_key("CA key")?;
            let cert = ca_params(&key, SystemTime::now())?
                .self_signed(&key)
                .map_err(|source| PkiError::Generate {
                    what: "CA certificate",
                    source,
                })?;
            write_atomically(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
            write_atomically(&cert_path, cert.pem().as_bytes(), 0o644)?;
            log::info!("created the coordinator CA in {}", cert_path.display());
            Ok((cert.der().clone(), key))
        }
        (true, false) => Err(PkiError::IncompleteCa {
            present: cert_path,
            missing: key_path,
        }),
        (false, true) => Err(PkiError::IncompleteCa {
            present: key_path,
            missing: cert_path,
        }),
    }
}

/// The CA's parameters. A signed certificate's issuer fields are built from the subject
/// and key identifier method, so both must come out the same on every call for the same
/// key. The common name includes a digest of the public key so that two coordinators'
/// CAs have different subjects: a client trusting the wrong one then reports an unknown
/// issuer rather than a bad signature.
fn ca_params(key: &KeyPair, now: SystemTime) -> Result<CertificateParams, PkiError> {
    let key_digest = sha256_hex(key.public_key_raw());
    let common_name = format!("{CA_COMMON_NAME_PREFIX} {}", &key_digest[..16]);
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, ORGANIZATION);
    // Path length 0: the CA signs end-entity certificates only.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + CA_VALIDITY).into();
    params.serial_number = Some(random_serial()?);
    Ok(params)
}

/// Loads server.crt and server.key; `None` when either is missing or unreadable as PEM
/// (they are derived from the CA and are simply issued again).
fn load_server(
    dir: &Path,
    provider: &CryptoProvider,
) -> Result<Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>, PkiError> {
    let cert_path = dir.join(SERVER_CERT_FILE);
    let key_path = dir.join(SERVER_KEY_FILE);
    if !exists(&cert_path)? || !exists(&key_path)? {
        return Ok(None);
    }
    // Checked before parsing: a key that was exposed is refused even if we would replace it.
    let key_pem = read_key_file(&key_path)?;
    let cert_pem = read_text(&cert_path)?;
    let (Ok(cert), Ok(key)) = (
        CertificateDer::from_pem_slice(cert_pem.as_bytes()),
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()),
    ) else {
        log::info!("cannot parse the coordinator server certificate or key; issuing new ones");
        return Ok(None);
    };
    if CertifiedKey::from_der(vec![cert.clone()], key.clone_key(), provider).is_err() {
        log::info!("server.key does not match server.crt; issuing new ones");
        return Ok(None);
    }
    Ok(Some((cert, key)))
}

/// Issues a server certificate for `names` with a new key and writes both files.
fn issue_server(
    dir: &Path,
    ca_key: KeyPair,
    names: &[SubjectName],
    validity: Duration,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), PkiError> {
    let now = SystemTime::now();
    let issuer = Issuer::new(ca_params(&ca_key, now)?, ca_key);
    let key = generate_key("server key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, SERVER_COMMON_NAME);
    params
        .distinguished_name
        .push(DnType::OrganizationName, ORGANIZATION);
    params.subject_alt_names = names
        .iter()
        .map(SubjectName::san)
        .collect::<Result<_, _>>()?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + validity).into();
    params.serial_number = Some(random_serial()?);
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|source| PkiError::Generate {
            what: "server certificate",
            source,
        })?;
    write_atomically(
        &dir.join(SERVER_KEY_FILE),
        key.serialize_pem().as_bytes(),
        0o600,
    )?;
    write_atomically(&dir.join(SERVER_CERT_FILE), cert.pem().as_bytes(), 0o644)?;
    Ok((
        cert.der().clone(),
        PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    ))
}

/// Checks that `cert` chains to the CA, is valid at `at`, and covers every wanted name.
/// The error is a human-readable reason.
fn check_server_cert(
    ca: &CertificateDer<'static>,
    cert: &CertificateDer<'static>,
    names: &[SubjectName],
    at: SystemTime,
) -> Result<(), String> {
    let mut roots = RootCertStore::empty();
    roots
        .add(ca.clone())
        .map_err(|err| format!("unusable CA certificate: {err}"))?;
    let parsed = ParsedCertificate::try_from(cert).map_err(|err| err.to_string())?;
    let since_epoch = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| "the system clock is before 1970".to_string())?;
    let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
    verify_server_cert_signed_by_trust_anchor(
        &parsed,
        &roots,
        &[],
        UnixTime::since_unix_epoch(since_epoch),
        algorithms.all,
    )
    .map_err(|err| err.to_string())?;
    for name in names {
        let Some(server_name) = name.server_name() else {
            continue;
        };
        verify_server_name(&parsed, &server_name)
            .map_err(|_| format!("it does not cover {name}"))?;
    }
    Ok(())
}

fn generate_key(what: &'static str) -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|source| PkiError::Generate { what, source })
}

/// A random 16-byte positive serial number, so no two certificates from the CA share one.
fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = crate::support::random::bytes::<16>().map_err(|_| PkiError::Random)?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01; // keep the full length: a leading zero byte would be dropped
    Ok(SerialNumber::from_slice(&bytes))
}

fn parse_cert_pem(path: &Path, pem: &str) -> Result<CertificateDer<'static>, PkiError> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|err| PkiError::BadFile {
        path: path.to_path_buf(),
        reason: err.to_string(),
    })
}

/// Writes a secret-bearing file (mode 0600) atomically: a temp file renamed into place.
pub fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    files::write_atomically(path, contents, 0o600)
}

mod files;
#[cfg(test)]
mod tests;
