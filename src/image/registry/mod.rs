//! Pulling from OCI distribution (v2) registries: the k3s-style `registries.yaml`
//! settings (`config`), `WWW-Authenticate` challenges (`auth`), a blocking client that
//! downloads blobs with resume (`client`), and platform selection from an index
//! (`platform`). The store side of a pull (staging, verification, publishing) is in
//! `image::pull`.
//!
//! Transport: `ureq` with rustls, HTTPS with the system's CA bundle by default; plain HTTP
//! only for `http://` endpoints named in the settings and for loopback registries.

mod auth;
pub(crate) mod client;
mod config;
pub(crate) mod platform;

pub(crate) use config::Credentials;
pub use config::{AuthConfig, HostConfig, Mirror, RegistryConfig, TlsConfig};
