//! The agent's API over a unix socket: a deliberately small HTTP/1.1 server (async, on
//! smol), the blocking client the CLI uses, and the wire types they share.
//!
//! Why our own HTTP: the agent only ever talks to local clients over `berth.sock`, one
//! request per connection, so the subset we need (Content-Length bodies, responses that
//! are either sized or streamed until close) fits in a few hundred lines and keeps a
//! general-purpose HTTP stack out of a binary meant for a Pi Zero.

pub mod client;
pub mod config;
pub mod files;
pub mod fleet;
pub mod frames;
pub mod http;
pub mod types;
mod wire;

pub use client::{ApiError, Client};
pub use http::{
    percent_decode, percent_encode, serve, serve_with, Body, HttpError, Request, Response,
    ServerConfig,
};
pub use types::{ApplyItem, ApplyRequest, ApplyResult, ManifestFile, Version};

#[cfg(test)]
mod tests;
