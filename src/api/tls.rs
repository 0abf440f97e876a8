//! The client side of TLS to the coordinator API (rustls with the ring provider). The
//! server side (its certificates and [`ServerConfig`](rustls::ServerConfig)) lives in
//! `coordinator::tls` and `coordinator::pki`.
//!
//! - The server presents `[server certificate, CA certificate]`, so a joining agent can
//!   find the CA in the handshake and compare it with the hash in its join token.
//! - Clients that already have the CA (the CLI through its config, an agent after joining)
//!   trust exactly that CA and not the system roots: [`client_config_trusting`].
//! - At join time the agent has only the CA hash: [`client_config_pinned`] accepts the
//!   handshake only if one presented certificate hashes to the pinned value and the
//!   server certificate verifies against it as usual (signature, validity, server name).
//!   The pinned CA is then available from the returned [`PinnedCa`] so the agent can save
//!   it and switch to [`client_config_trusting`].
//!
//! Everything is verified during the handshake, before any request byte is sent.

use std::fmt;
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, OtherError,
    RootCertStore, SignatureScheme, StreamOwned,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::tokens::sha256_hex;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the CA bundle contains no certificate")]
    NoCaCertificate,
    #[error("cannot read the CA bundle: {reason}")]
    BadCaPem { reason: String },
    #[error("cannot use the CA certificate: {source}")]
    BadCaCertificate { source: rustls::Error },
    #[error("cannot build the {side} TLS configuration: {source}")]
    Config {
        side: &'static str,
        source: rustls::Error,
    },
}

/// The handshake error when no presented certificate matches the join token's CA hash.
#[derive(Debug)]
pub struct CaMismatch;

impl fmt::Display for CaMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the coordinator's CA does not match the join token")
    }
}

impl std::error::Error for CaMismatch {}

/// The crypto provider of every TLS configuration, client and server.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration that trusts only the CA certificate(s) in `ca_pem`.
pub fn client_config_trusting(ca_pem: &str) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|err| TlsError::BadCaPem {
            reason: err.to_string(),
        })?;
        roots
            .add(cert)
            .map_err(|source| TlsError::BadCaCertificate { source })?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoCaCertificate);
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Config {
            side: "client",
            source,
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The CA certificate a pinned handshake verified the server against. Clones share the
/// slot. Read it only after [`connect`] succeeded: the slot is filled once the
/// certificate chain checks out, a moment before the handshake itself completes.
#[derive(Debug, Clone, Default)]
pub struct PinnedCa {
    slot: Arc<Mutex<Option<CertificateDer<'static>>>>,
}

impl PinnedCa {
    /// The pinned CA in DER, once a handshake has verified against it.
    pub fn der(&self) -> Option<CertificateDer<'static>> {
        // A poisoned lock only means another thread panicked while storing; the value
        // is a complete certificate or None either way.
        let guard = self
            .slot
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        guard.clone()
    }

    /// The pinned CA in PEM, ready to be saved and passed to [`client_config_trusting`].
    pub fn pem(&self) -> Option<String> {
        self.der().map(|der| certificate_pem(&der))
    }

    fn store(&self, cert: CertificateDer<'static>) {
        let mut guard = self
            .slot
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        *guard = Some(cert);
    }
}

/// A client configuration for the first contact at join: the server must present a
/// certificate whose sha256 is `ca_hash` (hex, as in the join token), and its own
/// certificate must verify against that CA. Returns the configuration and the slot
/// where the pinned CA appears after a successful handshake.
pub fn client_config_pinned(ca_hash: &str) -> Result<(Arc<ClientConfig>, PinnedCa), TlsError> {
    let pinned = PinnedCa::default();
    let provider = provider();
    let verifier = PinnedCaVerifier {
        ca_hash: ca_hash.trim().to_ascii_lowercase(),
        provider: provider.clone(),
        pinned: pinned.clone(),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Config {
            side: "client",
            source,
        })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok((Arc::new(config), pinned))
}

/// Verifies a server by a CA found in its own chain and pinned by hash.
#[derive(Debug)]
struct PinnedCaVerifier {
    ca_hash: String,
    provider: Arc<CryptoProvider>,
    pinned: PinnedCa,
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|cert| sha256_hex(cert) == self.ca_hash)
            .ok_or_else(|| {
                log::debug!("no certificate in the coordinator's chain matches the pinned CA hash");
                rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
                    CaMismatch,
                ))))
            })?
            .clone()
            .into_owned();
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone())?;
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|err| {
                    rustls::Error::General(format!("cannot verify against the pinned CA: {err}"))
                })?;
        let verified = webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        self.pinned.store(ca);
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Opens a TCP connection to `host:port` and completes the TLS handshake, so a bad
/// certificate fails here and not at the first read. `host` is a DNS name or an IP
/// address (IPv6 with or without brackets) and is also the name the certificate must
/// cover. `timeout` bounds each connection attempt and stays set as the read and write
/// timeout of the returned stream.
pub fn connect(
    host: &str,
    port: u16,
    config: Arc<ClientConfig>,
    timeout: Duration,
) -> io::Result<StreamOwned<ClientConnection, TcpStream>> {
    let host = host
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(host);
    let server_name = ServerName::try_from(host.to_string()).map_err(|err| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid server name {host:?}: {err}"),
        )
    })?;
    let mut last_error = None;
    for address in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(socket) => {
                socket.set_read_timeout(Some(timeout))?;
                socket.set_write_timeout(Some(timeout))?;
                socket.set_nodelay(true)?;
                return handshake(socket, server_name, config);
            }
            Err(err) => {
                log::debug!("cannot connect to {address}: {err}");
                last_error = Some(err);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} resolves to no address"),
        )
    }))
}

/// Runs the client handshake over an already connected socket.
pub(crate) fn handshake(
    mut socket: TcpStream,
    server_name: ServerName<'static>,
    config: Arc<ClientConfig>,
) -> io::Result<StreamOwned<ClientConnection, TcpStream>> {
    let mut connection = ClientConnection::new(config, server_name)
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
    while connection.is_handshaking() {
        // complete_io sends the alert before returning a verification error.
        connection
            .complete_io(&mut socket)
            .map_err(explain_handshake_error)?;
    }
    Ok(StreamOwned::new(connection, socket))
}

/// A failed TLS handshake, with a message meant for the person running the command.
/// It is the inner error of the `io::Error` that [`connect`] returns.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct HandshakeError {
    pub message: String,
    #[source]
    pub source: rustls::Error,
}

/// Rewrites rustls verification errors into plain words; other I/O errors pass through.
fn explain_handshake_error(err: io::Error) -> io::Error {
    let kind = err.kind();
    let Some(tls) = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return err;
    };
    let message = match tls {
        // Our own verifier's error (the CA pin): its text is already the explanation.
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => other.to_string(),
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => {
            format!("the server's certificate is not signed by the trusted coordinator CA ({tls})")
        }
        other => format!("TLS handshake failed: {other}"),
    };
    io::Error::new(
        kind,
        HandshakeError {
            message,
            source: tls.clone(),
        },
    )
}

/// PEM text of one certificate (base64 in lines of 64 characters).
pub fn certificate_pem(der: &[u8]) -> String {
    let encoded = crate::model::base64::encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_pem_wraps_standard_base64_at_64_columns() {
        let der: Vec<u8> = (0..=255u8).collect();
        let pem = certificate_pem(&der);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines.first(), Some(&"-----BEGIN CERTIFICATE-----"));
        assert_eq!(lines.last(), Some(&"-----END CERTIFICATE-----"));
        let body = &lines[1..lines.len() - 1];
        assert!(body[..body.len() - 1].iter().all(|l| l.len() == 64));
        assert_eq!(
            body.concat().len(),
            344,
            "256 bytes are 344 padded characters"
        );
        assert_eq!(
            crate::model::base64::decode_strict(&body.concat()),
            Some(der)
        );
    }
}
