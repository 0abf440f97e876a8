//! berth: a small container orchestrator for fleets of ARM boards.
//!
//! One library, one binary: `main.rs` only calls [`cli::main`]. The modules follow the
//! data flow on a board: manifest → [`model`] (pure) → [`store`] (SQLite) → [`agent`]
//! (reconciler) → [`runtime`] (libcontainer through a shim) with images from [`image`];
//! [`api`] carries requests between the CLI and the agent.

// Tests may unwrap; everything else handles errors (Cargo.toml's [lints] denies unwrap).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod agent;
pub mod api;
pub mod cli;
pub mod controllers;
pub mod coordinator;
pub mod image;
pub mod model;
pub mod net;
pub mod runtime;
pub mod store;
pub mod support;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod layer_check;

/// The version of this build, its target triple and git revision (set by build.rs).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const TARGET: &str = env!("BERTH_TARGET");
pub const GIT_REVISION: &str = env!("BERTH_GIT_REVISION");
