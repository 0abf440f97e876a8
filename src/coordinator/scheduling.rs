//! Scheduling at the coordinator: pending pods are bound to nodes by the pure scheduler
//! ([`super::scheduler`]), highest priority first; those it cannot place get
//! `PodScheduled=False` with its message, written only when it changes. For one that
//! may preempt, the scheduler's [`preempt`] picks a node and pods of lower priority
//! there: they are deleted gracefully with a `Preempted` event, the pod carries
//! `status.nominatedNodeName`, and it is bound there once they are gone (pods being
//! deleted still hold their share of their node). The PersistentVolumeClaims a pod is the first
//! to use get the node it was bound to (`volume.kubernetes.io/selected-node`), their
//! volume name and the `Bound` status: that node makes their directories, and their
//! later pods go there too ([`crate::controllers::scheduler::volumes`]).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::Coordinator;
use crate::api::events::Involved;
use crate::controllers::scheduler::volumes::{claim_needs, select_node, ClaimInfo};
use crate::controllers::scheduler::{
    platforms_common_to, pod_request_from_spec, preempt, queue_key, schedule, Decision, NodeInfo,
    PlacedPod, PodRequest, Preemption, Taint,
};
use crate::model::{
    is_extended_resource, parse_count, parse_cpu_millis, parse_memory_bytes, volume_name_for,
    EventType, Object, PodSpec, ARCH_VARIANT_LABEL, LOCAL_PATH_CLASS, SCHEDULING_GATED_MESSAGE,
    SELECTED_NODE_ANNOTATION,
};
use crate::store::Record;

/// The uid of the Deployment controlling a pod.
fn controller_uid(pod: &Record) -> Option<String> {
    pod.object
        .pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|o| o.get("controller") == Some(&Value::Bool(true)))
        .and_then(|o| o.get("uid")?.as_str().map(str::to_string))
}

fn node_of(pod: &Record) -> Option<&str> {
    pod.object.pointer("/spec/nodeName").and_then(Value::as_str)
}

fn deleting(record: &Record) -> bool {
    record
        .object
        .pointer("/metadata/deletionTimestamp")
        .is_some()
}

/// What one scheduling pass decided, to be written once it is over.
#[derive(Default)]
struct Outcome<'a> {
    /// Pods with their `spec.nodeName` set.
    bound: Vec<Value>,
    assigned: Vec<(&'a Record, String)>,
    statuses: Vec<(&'a Record, Value)>,
    /// Claims first used by a pod just bound: `(namespace, name)`.
    placed_claims: Vec<(String, String)>,
    /// Pods preempted: the victim, the preemptor's uid and the node.
    preempted: Vec<(&'a Record, String, String)>,
}

/// Binds every pending pod the scheduler can place, highest priority first; the others
/// get `PodScheduled=False` with the scheduler's message (written only when it changes),
/// and those that may preempt have pods of lower priority deleted to make room
/// ([`preempt`]): they carry `status.nominatedNodeName` until the victims are gone.
pub(super) fn schedule_pending(
    c: &Coordinator,
    node_ready: &dyn Fn(&str) -> bool,
) -> anyhow::Result<bool> {
    let pods = c.store().list("Pod", None)?;
    let mut pending: Vec<&Record> = pods
        .iter()
        .filter(|p| node_of(p).is_none() && !deleting(p))
        .collect();
    if pending.is_empty() {
        return Ok(false);
    }
    crate::support::sort::sort_by(&mut pending, |a, b| queue_key_of(a).cmp(&queue_key_of(b)));
    let mut infos = node_infos(c, node_ready)?;
    // Pods being deleted still hold their share until their node reports them gone.
    for pod in &pods {
        let Some(node) = node_of(pod) else { continue };
        if let (Some(info), Some(placed)) = (infos.iter_mut().find(|i| i.name == node), placed(pod))
        {
            info.pods.push(placed);
        }
    }
    // Claims are read only when a pending pod names one.
    let claim_records = if pending.iter().any(|p| names_claims(p)) {
        c.store().list("PersistentVolumeClaim", None)?
    } else {
        Vec::new()
    };
    let mut claims: Vec<ClaimInfo> = claim_records.iter().map(claim_info).collect();
    let mut outcome = Outcome::default();
    for pod in pending {
        place(c, pod, &pods, &mut infos, &mut claims, &mut outcome);
    }
    write(c, outcome, &claim_records, &claims)
}

/// Every node as the scheduler sees it, without the pods bound to it.
pub(super) fn node_infos(
    c: &Coordinator,
    node_ready: &dyn Fn(&str) -> bool,
) -> anyhow::Result<Vec<NodeInfo>> {
    let nodes = c.store().list("Node", None)?;
    Ok(nodes
        .iter()
        .map(|n| node_info(n, node_ready(&n.name)))
        .collect())
}

/// Schedules one pending pod onto `infos`, or preempts for it.
fn place<'a>(
    c: &Coordinator,
    pod: &'a Record,
    pods: &'a [Record],
    infos: &mut [NodeInfo],
    claims: &mut [ClaimInfo],
    outcome: &mut Outcome<'a>,
) {
    let Ok(Object::Pod(spec_pod)) = Object::from_json(pod.object.clone()) else {
        return;
    };
    // A gated pod is not tried until its last gate is removed.
    if !spec_pod.spec.scheduling_gates.is_empty() {
        let status = pending_status("SchedulingGated", SCHEDULING_GATED_MESSAGE, None);
        outcome.statuses.push((pod, status));
        return;
    }
    let owner = controller_uid(pod);
    let needs = claim_needs(&pod.namespace, &spec_pod.spec, claims);
    let request =
        match pod_request_from_spec(&pod.namespace, &pod.name, owner.as_deref(), &spec_pod.spec) {
            Ok(mut request) => {
                request.labels = spec_pod.metadata.labels.clone();
                request.image_platforms = image_platforms(c, &spec_pod.spec);
                request.volume_nodes = needs.nodes.clone();
                request.volume_problem = needs.problem.clone();
                request
            }
            Err(err) => {
                outcome
                    .statuses
                    .push((pod, unschedulable(&err.to_string(), None)));
                return;
            }
        };
    match schedule(&request, infos) {
        Decision::Bind { node } => {
            log::info!("bound pod {}/{} to {node}", pod.namespace, pod.name);
            let mut object = pod.object.clone();
            object["spec"]["nodeName"] = Value::from(node.clone());
            outcome.bound.push(object);
            outcome.assigned.push((pod, node.clone()));
            for claim in select_node(claims, &pod.namespace, &needs.unplaced, &node) {
                outcome.placed_claims.push((pod.namespace.clone(), claim));
            }
            outcome.statuses.push((pod, json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]})));
            if let Some(info) = infos.iter_mut().find(|i| i.name == node) {
                info.pods.push(request.placed());
            }
        }
        Decision::Unschedulable { message } => {
            let nominated = preempt(&request, infos)
                .map(|preemption| nominate(pod, pods, request, preemption, infos, outcome));
            let status = unschedulable(&message, nominated.as_deref());
            outcome.statuses.push((pod, status));
        }
    }
}

/// Takes in a preemption for `pod`: its victims are to be deleted, and in what is left
/// of this pass they are terminating and the pod holds its share of the node, so that
/// no pod after it takes that room or preempts for the same victims. Returns the node.
fn nominate<'a>(
    pod: &'a Record,
    pods: &'a [Record],
    request: PodRequest,
    preemption: Preemption,
    infos: &mut [NodeInfo],
    outcome: &mut Outcome<'a>,
) -> String {
    let Preemption { node, victims } = preemption;
    let Some(info) = infos.iter_mut().find(|i| i.name == node) else {
        return node;
    };
    for (namespace, name) in &victims {
        let victim = pods
            .iter()
            .find(|p| p.namespace == *namespace && p.name == *name && !deleting(p));
        if let Some(victim) = victim {
            log::info!(
                "preempting pod {namespace}/{name} on {node} for {}/{}",
                pod.namespace,
                pod.name
            );
            outcome
                .preempted
                .push((victim, pod.uid.clone(), node.clone()));
        }
        let placed = info
            .pods
            .iter_mut()
            .find(|p| p.namespace == *namespace && p.name == *name);
        if let Some(placed) = placed {
            placed.terminating = true;
        }
    }
    info.pods.push(request.placed());
    node
}

/// Writes what a pass decided: bindings, claims placed, victims marked for graceful
/// deletion, then the events and pod statuses. Returns whether anything changed.
fn write(
    c: &Coordinator,
    outcome: Outcome<'_>,
    claim_records: &[Record],
    claims: &[ClaimInfo],
) -> anyhow::Result<bool> {
    let Outcome {
        bound,
        assigned,
        statuses,
        placed_claims,
        preempted,
    } = outcome;
    let mut store = c.store();
    let mut changed = !bound.is_empty() || !preempted.is_empty();
    if !bound.is_empty() {
        store.put_all(bound, None)?;
    }
    for (namespace, name) in placed_claims {
        let record = claim_records
            .iter()
            .find(|r| r.namespace == namespace && r.name == name);
        if let (Some(record), Some(node)) = (record, claims_node(claims, &namespace, &name)) {
            place_claim(&mut store, record, node)?;
        }
    }
    if !preempted.is_empty() {
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let marked = preempted.iter().map(|(victim, _, _)| {
            let mut object = victim.object.clone();
            object["metadata"]["deletionTimestamp"] = Value::from(now.as_str());
            object
        });
        store.put_all(marked.collect(), None)?;
    }
    for (victim, preemptor, node) in preempted {
        let message = format!("Preempted by pod {preemptor} on node {node}");
        tell(c, victim, EventType::Normal, "Preempted", &message);
    }
    for (pod, node) in assigned {
        let message = format!(
            "Successfully assigned {}/{} to {node}",
            pod.namespace, pod.name
        );
        tell(c, pod, EventType::Normal, "Scheduled", &message);
    }
    for (pod, status) in statuses {
        let written = store.set_status("Pod", &pod.namespace, &pod.name, &status)?;
        // Why a pod cannot go anywhere is told again only when the reason changes, not
        // at every pass that finds it still pending.
        // A gated pod was not tried, so nothing failed: Kubernetes tells no event.
        let unschedulable = status
            .pointer("/conditions/0")
            .filter(|c| c.get("status").and_then(Value::as_str) == Some("False"))
            .filter(|c| c.get("reason").and_then(Value::as_str) == Some("Unschedulable"))
            .and_then(|c| c.get("message").and_then(Value::as_str));
        if let (true, Some(message)) = (written, unschedulable) {
            tell(c, pod, EventType::Warning, "FailedScheduling", message);
        }
        changed |= written;
    }
    Ok(changed)
}

/// Where a pending pod stands in the scheduling queue ([`queue_key`]).
fn queue_key_of(pod: &Record) -> (std::cmp::Reverse<i32>, &str, &str, &str) {
    let priority = pod
        .object
        .pointer("/spec/priority")
        .and_then(Value::as_i64)
        .and_then(|p| i32::try_from(p).ok())
        .unwrap_or(0);
    queue_key(priority, &pod.creation_timestamp, &pod.namespace, &pod.name)
}

/// Whether a pod names a PersistentVolumeClaim in a volume.
fn names_claims(pod: &Record) -> bool {
    pod.object
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .is_some_and(|volumes| {
            volumes
                .iter()
                .any(|v| v.get("persistentVolumeClaim").is_some())
        })
}

fn claim_info(record: &Record) -> ClaimInfo {
    let selected = format!(
        "/metadata/annotations/{}",
        SELECTED_NODE_ANNOTATION.replace('/', "~1")
    );
    ClaimInfo {
        namespace: record.namespace.clone(),
        name: record.name.clone(),
        selected_node: record
            .object
            .pointer(&selected)
            .and_then(Value::as_str)
            .filter(|node| !node.is_empty())
            .map(str::to_owned),
        deleting: deleting(record),
        unprovisioned: record
            .object
            .pointer("/spec/storageClassName")
            .and_then(Value::as_str)
            .is_some_and(|class| class != LOCAL_PATH_CLASS),
    }
}

fn claims_node<'a>(claims: &'a [ClaimInfo], namespace: &str, name: &str) -> Option<&'a str> {
    claims
        .iter()
        .find(|c| c.namespace == namespace && c.name == name)
        .and_then(|c| c.selected_node.as_deref())
}

/// Writes that the claim of `record` keeps its data on `node` from now on: the annotation
/// and its volume name in the object (under its own source, so its manifest still owns
/// it), `Bound` in its status.
fn place_claim(store: &mut crate::store::Store, record: &Record, node: &str) -> anyhow::Result<()> {
    let Ok(Object::PersistentVolumeClaim(mut claim)) = Object::from_json(record.object.clone())
    else {
        return Ok(());
    };
    claim
        .metadata
        .annotations
        .insert(SELECTED_NODE_ANNOTATION.to_owned(), node.to_owned());
    claim.spec.volume_name = volume_name_for(&record.uid);
    let status = serde_json::to_value(claim.bound_status())?;
    store.put_all(
        vec![Object::PersistentVolumeClaim(claim).to_json()],
        record.source.as_deref(),
    )?;
    store.set_status(
        "PersistentVolumeClaim",
        &record.namespace,
        &record.name,
        &status,
    )?;
    log::info!(
        "persistentvolumeclaim {}/{} keeps its data on {node}",
        record.namespace,
        record.name
    );
    Ok(())
}

/// Records what the scheduler did with `pod`.
fn tell(c: &Coordinator, pod: &Record, type_: EventType, reason: &str, message: &str) {
    let involved = Involved::new("Pod", &pod.namespace, &pod.name, &pod.uid);
    c.events
        .record(involved, type_, reason, message, "default-scheduler");
}

/// The platforms every container's image offers, where known: a board must run all of
/// the pod's images.
pub(super) fn image_platforms(c: &Coordinator, spec: &PodSpec) -> Option<Vec<String>> {
    let known: Vec<Vec<String>> = spec
        .containers
        .iter()
        .filter_map(|container| c.image_platforms(&container.image))
        .collect();
    match known.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        _ => Some(platforms_common_to(&known)),
    }
}

/// The status of a pod no node can take now; with the node it preempted on, if any.
fn unschedulable(message: &str, nominated: Option<&str>) -> Value {
    pending_status("Unschedulable", message, nominated)
}

/// A pending pod's status: `PodScheduled=False` for `reason`.
fn pending_status(reason: &str, message: &str, nominated: Option<&str>) -> Value {
    let mut status = json!({"phase": "Pending", "conditions": [{
        "type": "PodScheduled", "status": "False", "reason": reason, "message": message,
    }]});
    if let Some(node) = nominated {
        status["nominatedNodeName"] = Value::from(node);
    }
    status
}

fn placed(pod: &Record) -> Option<PlacedPod> {
    let Ok(Object::Pod(spec_pod)) = Object::from_json(pod.object.clone()) else {
        return None;
    };
    let owner = controller_uid(pod);
    let mut request =
        pod_request_from_spec(&pod.namespace, &pod.name, owner.as_deref(), &spec_pod.spec).ok()?;
    request.labels = spec_pod.metadata.labels;
    let mut placed = request.placed();
    placed.terminating = deleting(pod);
    Some(placed)
}

/// The extended resources in a node's reported `allocatable`, as counts.
fn extended_allocatable(status: &Value) -> BTreeMap<String, u64> {
    let allocatable = status.get("allocatable").and_then(Value::as_object);
    allocatable
        .into_iter()
        .flatten()
        .filter(|(name, _)| is_extended_resource(name))
        .filter_map(|(name, count)| Some((name.clone(), parse_count(count.as_str()?).ok()?)))
        .collect()
}

/// The scheduler's view of a stored node.
fn node_info(node: &Record, ready: bool) -> NodeInfo {
    let text = |pointer: &str| {
        node.object
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let status = node.status.clone().unwrap_or(Value::Null);
    let allocatable = |resource: &str| -> Option<String> {
        status
            .pointer(&format!("/allocatable/{resource}"))
            .or_else(|| status.pointer(&format!("/capacity/{resource}")))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let labels: BTreeMap<String, String> = node
        .object
        .pointer("/metadata/labels")
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default();
    let taints = node
        .object
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .map(|taints| {
            taints
                .iter()
                .filter_map(|t| {
                    Some(Taint {
                        key: t.get("key")?.as_str()?.to_string(),
                        value: t.get("value").and_then(Value::as_str).map(str::to_string),
                        effect: t.get("effect")?.as_str()?.to_string(),
                        time_added: None,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let arch = labels
        .get("kubernetes.io/arch")
        .cloned()
        .or_else(|| {
            status
                .pointer("/nodeInfo/architecture")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default();
    // The variant tells ARMv6 boards from ARMv7 ones; without it `linux/arm` reads as v7.
    let platform = match labels.get(ARCH_VARIANT_LABEL) {
        Some(variant) => format!("linux/{arch}/{variant}"),
        None => format!("linux/{arch}"),
    };
    NodeInfo {
        name: node.name.clone(),
        taints,
        allocatable_cpu_millis: allocatable("cpu")
            .and_then(|q| parse_cpu_millis(&q).ok())
            .unwrap_or(0),
        allocatable_memory_bytes: allocatable("memory")
            .and_then(|q| parse_memory_bytes(&q).ok())
            .unwrap_or(0),
        allocatable_extended: extended_allocatable(&status),
        platforms: vec![platform],
        ready,
        unschedulable: node.object.pointer("/spec/unschedulable") == Some(&Value::Bool(true))
            || text("/spec/unschedulable").is_some_and(|s| s == "true"),
        pods: Vec::new(),
        labels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_record(labels: Value) -> Record {
        Record {
            kind: "Node".to_string(),
            namespace: String::new(),
            name: "pi".to_string(),
            uid: "u".to_string(),
            generation: 1,
            resource_version: 1,
            creation_timestamp: "2026-11-28T08:00:00Z".to_string(),
            source: None,
            object: json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": "pi", "labels": labels}}),
            status: Some(json!({"allocatable": {"cpu": "3750m", "memory": "3Gi"},
                "nodeInfo": {"architecture": "arm"}})),
        }
    }

    #[test]
    fn a_node_s_platform_carries_its_arm_variant() {
        let v6 = node_record(json!({"kubernetes.io/arch": "arm", ARCH_VARIANT_LABEL: "v6"}));
        let info = node_info(&v6, true);
        assert_eq!(info.platforms, ["linux/arm/v6"]);
        assert_eq!(info.allocatable_cpu_millis, 3750);
        let arm64 = node_record(json!({"kubernetes.io/arch": "arm64", ARCH_VARIANT_LABEL: "v8"}));
        assert_eq!(node_info(&arm64, true).platforms, ["linux/arm64/v8"]);
        // An agent that reports no variant (older berth) and only nodeInfo.
        assert_eq!(
            node_info(&node_record(json!({})), true).platforms,
            ["linux/arm"]
        );
    }
}
