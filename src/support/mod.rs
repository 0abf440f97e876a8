//! Small process-wide helpers every layer may use: the one source of random bytes, the
//! one retry back-off, the daemons' allocator tuning ([`memory`]) and the release of
//! clean file pages from RSS ([`file_pages`]). This module names nothing else in the
//! crate but `model`.

pub mod backoff;
pub mod file_pages;
pub mod memory;
pub mod random;
pub mod sort;
