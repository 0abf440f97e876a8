//! The resource API on the wire: a deliberately small HTTP/1.1 server (async, on smol)
//! serving an agent's unix socket and a coordinator's TLS port, the blocking client the
//! CLI and agents use, the wire types they share, the agent↔coordinator protocol
//! ([`fleet`]), the admin's client config ([`config`]), the client side of TLS to the
//! coordinator ([`tls`]) and the text forms of join tokens and credentials ([`tokens`]).
//!
//! What both daemons' servers share lives here too, so they answer alike: the
//! `Status` error ([`refusal`]), resource paths, selectors and response bodies
//! ([`resources`]), merge patches ([`patch`]), and admission with the store writes it
//! allows ([`apply`]), Services' cluster IPs and node ports among it ([`services`]),
//! LimitRanges and ResourceQuotas ([`quota`]), PriorityClasses and pod priorities
//! ([`priority`]), CronJobs' time zones ([`zoneinfo`]),
//! and the recent Events each daemon keeps in memory ([`events`]).
//!
//! Why our own HTTP: the subset we need (Content-Length bodies, responses that are
//! either sized or streamed until close, keep-alive for sized ones) fits in a few
//! hundred lines and keeps a general-purpose HTTP stack out of a binary meant for a
//! Pi Zero.

pub mod apply;
mod claims;
pub mod client;
pub mod config;
mod connections;
pub mod events;
pub mod files;
pub mod fleet;
pub mod frames;
pub mod http;
pub mod patch;
mod priority;
pub mod quota;
pub mod refusal;
pub mod resources;
mod serve;
pub mod services;
pub mod tls;
pub mod tokens;
pub mod types;
pub mod watch;
mod wire;
pub mod zoneinfo;

pub use client::{ApiError, Client};
pub use http::{
    percent_decode, percent_encode, serve, serve_with, Admission, Authorizer, Body, HttpError,
    Request, Response, ServerConfig,
};
pub use refusal::Refusal;
pub use types::{ApplyItem, ApplyRequest, ApplyResult, ManifestFile, Version};

#[cfg(test)]
pub mod test_support;
#[cfg(test)]
mod tests;
