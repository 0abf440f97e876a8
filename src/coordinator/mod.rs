//! The fleet coordinator: owns fleet-wide objects, schedules pods onto boards and pushes
//! each agent only what is bound to it (see design.md and issue 6).
//!
//! It is being built piece by piece. So far it holds only the [`scheduler`]: a pure,
//! deterministic function from one pod and a snapshot of the nodes to a binding decision.
//! The API server, node leases and fleet controllers will join it here.

pub mod scheduler;

pub use scheduler::{
    pod_request_from_spec, schedule, Decision, NodeInfo, NodeSelectorOperator, NodeSelectorTerm,
    PlacedPod, PodRequest, Requirement, SchedulerError, Taint, Toleration, TolerationOperator,
};
