//! Keeping the daemons' resident memory to what they use (issue 10: agent RSS ≤ 8 MiB
//! with 10 pods on a Pi Zero 2).
//!
//! Measured with 10 pods running (docs/benchmarks.md): about three quarters of the
//! agent's RSS were clean pages of files, the berth binary's code and constants and
//! libc's, and most of those were mapped during start-up (argument parsing, the store's
//! schema, adoption, image import) by the kernel's fault-around, which maps 64 KiB
//! around each page touched. They are page cache, shared with every shim, and cost
//! nothing to map again; but RSS counts them for as long as the mapping lasts. So after
//! a burst of work the agent drops its mappings of such pages, and RSS comes back to the
//! code it keeps running. Heap, stacks and every written page are never touched.
//!
//! The malloc arena limit, which the coordinator sets too, is
//! [`crate::support::memory::limit_malloc_arenas`].

use std::time::Duration;

/// The release itself, shared with the PID namespace holder.
pub use crate::support::file_pages::release_file_pages;

/// How long the agent waits after start-up, and then between two releases.
pub const RELEASE_PERIOD: Duration = Duration::from_secs(30);
