//! The coordinator's TLS server configuration (rustls with the ring provider). It presents
//! `[server certificate, CA certificate]`, so a joining agent can find the CA in the
//! handshake and compare it with the hash in its join token. The client side (trusting
//! or pinning that CA, connecting) is [`crate::api::tls`].

use std::sync::Arc;

use rustls::ServerConfig;

use super::pki::Pki;
use crate::api::tls::{provider, TlsError};

/// The coordinator's server configuration: presents the server certificate and the CA.
pub fn server_config(pki: &Pki) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = vec![pki.server_cert_der().clone(), pki.ca_der().clone()];
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .and_then(|builder| {
            builder
                .with_no_client_auth()
                .with_single_cert(chain, pki.server_key_der())
        })
        .map_err(|source| TlsError::Config {
            side: "server",
            source,
        })?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests;
