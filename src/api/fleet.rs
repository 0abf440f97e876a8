//! The protocol between an agent and its coordinator. Agents always dial out (boards sit
//! behind NAT and carrier-grade NAT); the coordinator never connects to an agent.
//!
//! All over HTTPS, bodies JSON:
//!
//! - `POST /apis/berth.dev/v1/join` with `Authorization: Bearer <id>.<secret>` (the part
//!   of the join token after `::`) and a [`JoinRequest`] → 201 [`JoinResponse`] holding
//!   the node credential (`berth-node.<name>.<secret>`), used as the bearer token from
//!   then on. The agent has verified the coordinator's CA against the token's hash during
//!   the TLS handshake before it sends anything. An expired, used-up or unknown token is
//!   401; a name the token does not allow, or a label a node may not set on itself, 403;
//!   the name of an existing node, 409 (see `coordinator::join`).
//! - `GET /apis/berth.dev/v1/nodes/{name}/assignments?version=V&timeoutSeconds=T` → 200
//!   [`Assignments`]. A long poll: answered at once when the node's set differs from
//!   version `V` (empty `V`: always), otherwise when it changes or after `T` seconds with
//!   `unchanged: true`. Every poll also renews the node's lease (the heartbeat).
//! - `PUT /api/v1/nodes/{name}/status` with the Node object (only `status` is used) →
//!   200, sent when capacity or node info change.
//! - `PUT /apis/berth.dev/v1/nodes/{name}/podstatuses` with a [`PodStatusReport`] of the
//!   pods whose status changed, and of the times the node fired CronJobs it keeps as
//!   their standby while the coordinator was out of reach → 200 [`PodStatusAck`].
//!
//! A node credential may use only the routes of its own node, and read only what is
//! bound to it (through its assignments).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Store `source` of the objects an agent got from its coordinator: they are replaced as
/// a set whenever the assignments change, and left alone by local manifests.
pub const FLEET_SOURCE: &str = "coordinator";

/// Annotation on a pushed object holding its uid at the coordinator, so status reports
/// name the exact pod the coordinator bound (a pod replaced under the same name has a
/// new uid, and a stale node's report for the old one is ignored).
pub const FLEET_UID_ANNOTATION: &str = "berth.dev/fleet-uid";

/// Annotation on a CronJob at the coordinator: the node that keeps it as its standby
/// and fires it while cut off from every coordinator, chosen once like a pod's node.
pub const STANDBY_NODE_ANNOTATION: &str = "berth.dev/standby-node";

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest {
    /// A Node object: `metadata.name` and `labels`, `status.capacity`,
    /// `status.allocatable` and `status.nodeInfo`.
    pub node: Value,
    /// The node credential the board asks for (`berth-node.<name>.<secret>`, a secret
    /// it drew itself). A board whose answer was lost sends the same one again and is
    /// answered as the first time, rather than refused as an existing node; nobody
    /// else can, not knowing the secret. Without it, the coordinator draws one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl std::fmt::Debug for JoinRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinRequest")
            .field("node", &self.node)
            .field("credential", &self.credential.as_ref().map(|_| "<secret>"))
            .finish()
    }
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinResponse {
    pub credential: String,
}

impl std::fmt::Debug for JoinResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JoinResponse { credential: <secret> }")
    }
}

/// Everything bound to one node: its pods and what they need (their namespaces, the
/// secrets and config maps they reference), and every Service, Endpoints and
/// EndpointSlice of the fleet with their namespaces (every node programs every Service),
/// in apply order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assignments {
    /// Opaque; changes whenever `objects` would.
    pub version: String,
    /// True when the long poll timed out with nothing new; `objects` is then empty.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unchanged: bool,
    #[serde(default)]
    pub objects: Vec<Value>,
    /// The pod network of the fleet as this node needs it: its own pod CIDR and every
    /// other node's, with their addresses. Part of the version. Absent from coordinators
    /// without a pod network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<FleetNetwork>,
}

/// The fleet's pod network, from one node's point of view.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetNetwork {
    /// Every pod address of the fleet (`--cluster-cidr` of the coordinator).
    pub cluster_cidr: String,
    /// This node's share of it (`spec.podCIDR` of its Node), a /24.
    pub pod_cidr: String,
    /// Every other node with a pod CIDR and an address, sorted by name.
    #[serde(default)]
    pub peers: Vec<PeerNode>,
}

/// Another node of the fleet: where its pods are and how to reach it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerNode {
    pub name: String,
    /// Its `spec.podCIDR`.
    pub pod_cidr: String,
    /// Its `InternalIP` (`status.addresses`), which pod traffic is routed or tunnelled to.
    pub address: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatusReport {
    pub pods: Vec<ReportedPod>,
    /// CronJobs this node fired as their standby, with the latest time it fired.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cron_jobs: Vec<ReportedCronJob>,
}

/// The last scheduled time a standby node ran for a CronJob, while cut off.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportedCronJob {
    pub namespace: String,
    pub name: String,
    /// The CronJob's [`FLEET_UID_ANNOTATION`].
    pub fleet_uid: String,
    /// RFC 3339, as `status.lastScheduleTime`.
    pub last_schedule_time: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportedPod {
    pub namespace: String,
    pub name: String,
    /// The pod's [`FLEET_UID_ANNOTATION`].
    pub fleet_uid: String,
    /// The pod's status as the agent derives it (phase, conditions, containerStatuses).
    #[serde(default)]
    pub status: Value,
    /// The pod is gone from the board (stopped and removed after its deletion).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gone: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatusAck {
    pub accepted: usize,
    /// `namespace/name` of reports about pods no longer bound to this node (or with
    /// another uid): the agent should drop them; its next assignments say so too.
    #[serde(default)]
    pub stale: Vec<String>,
}
