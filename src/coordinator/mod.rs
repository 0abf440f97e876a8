//! The fleet coordinator: owns fleet-wide objects, schedules pods onto boards and pushes
//! each agent only what is bound to it (see design.md and issue 6).
//!
//! It is being built piece by piece. So far it holds the [`scheduler`]: a pure,
//! deterministic function from one pod and a snapshot of the nodes to a binding decision;
//! and the security building blocks of the API: [`pki`] (CA and server certificate),
//! [`tokens`] (join tokens and bearer credentials) and [`tls`] (rustls configurations,
//! including the CA-pinning verifier agents use to join).
//! The API server, node leases and fleet controllers will join it here.

pub mod pki;
pub mod scheduler;
pub mod tls;
pub mod tokens;

pub use scheduler::{
    pod_request_from_spec, schedule, Decision, NodeInfo, NodeSelectorOperator, NodeSelectorTerm,
    PlacedPod, PodRequest, Requirement, SchedulerError, Taint, Toleration, TolerationOperator,
};
