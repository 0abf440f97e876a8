//! Small process-wide helpers every layer may use: the one source of random bytes, the
//! one retry back-off and the daemons' allocator tuning ([`memory`]). This module names
//! nothing else in the crate but `model`.

pub mod backoff;
pub mod memory;
pub mod random;
pub mod sort;
