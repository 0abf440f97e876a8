//! The scheduler's part in PersistentVolumeClaims, as Kubernetes' VolumeBinding plugin
//! plays it for a class that binds `WaitForFirstConsumer` (berth's `local-path`): a claim
//! belongs to no node until a pod that uses it is placed; then the scheduler writes that
//! node into the claim (`volume.kubernetes.io/selected-node`), the node makes the claim's
//! directory, and every later pod that uses the claim may go only there. Pure: the caller
//! reads the claims and writes what [`select_node`] returns.

use crate::model::{claims_of, PodSpec, UNBOUND_CLAIMS_MESSAGE};

/// What the scheduler knows of one claim.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaimInfo {
    pub namespace: String,
    pub name: String,
    /// The node its data is on, once picked.
    pub selected_node: Option<String>,
    /// Being deleted (`Terminating`): no new pod may have it.
    pub deleting: bool,
    /// Of a class berth does not provision: it stays unbound, and so does its pod.
    pub unprovisioned: bool,
}

/// What a pod's claims ask of the node it goes to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaimNeeds {
    /// The nodes its claims are on; the pod may go only to a node that is all of them.
    pub nodes: Vec<String>,
    /// Why the pod cannot have its claims at all, in Kubernetes' words.
    pub problem: Option<String>,
    /// The claims no node holds yet: they go with the node the pod is placed on.
    pub unplaced: Vec<String>,
}

/// The needs of a pod of `namespace` with `spec`, given every claim of the fleet.
pub fn claim_needs(namespace: &str, spec: &PodSpec, claims: &[ClaimInfo]) -> ClaimNeeds {
    let mut needs = ClaimNeeds::default();
    for name in claims_of(spec) {
        let found = claims
            .iter()
            .find(|c| c.namespace == namespace && c.name == name);
        let Some(claim) = found else {
            needs
                .problem
                .get_or_insert_with(|| format!("persistentvolumeclaim {name:?} not found"));
            continue;
        };
        if claim.unprovisioned {
            needs
                .problem
                .get_or_insert_with(|| UNBOUND_CLAIMS_MESSAGE.to_owned());
            continue;
        }
        if claim.deleting {
            needs
                .problem
                .get_or_insert_with(|| format!("persistentvolumeclaim {name:?} is being deleted"));
            continue;
        }
        match &claim.selected_node {
            Some(node) if !needs.nodes.contains(node) => needs.nodes.push(node.clone()),
            Some(_) => {}
            None => needs.unplaced.push(name.to_owned()),
        }
    }
    needs
}

/// Records in `claims` that the `unplaced` claims of `namespace` are now on `node`, and
/// returns their names: the claims to write the node into.
pub fn select_node(
    claims: &mut [ClaimInfo],
    namespace: &str,
    unplaced: &[String],
    node: &str,
) -> Vec<String> {
    let mut selected = Vec::new();
    for claim in claims.iter_mut() {
        if claim.namespace == namespace
            && unplaced.contains(&claim.name)
            && claim.selected_node.is_none()
        {
            claim.selected_node = Some(node.to_owned());
            selected.push(claim.name.clone());
        }
    }
    selected
}
