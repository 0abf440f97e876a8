//! Small process-wide helpers every layer may use: the one source of random bytes and
//! the one retry back-off. This module names nothing else in the crate but `model`.

pub mod backoff;
pub mod random;
