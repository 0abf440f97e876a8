//! The ReplicaSet controller: keeps `spec.replicas` pods of the ReplicaSet's template.
//! Scaling down removes the pods that serve least first (not ready, then the newest),
//! as Kubernetes' ReplicaSet does; a Deployment rolls out by scaling its ReplicaSets.
//! It keeps ReplicationControllers' pods too, through the same [`Replicated`] view.

use super::{mark_pod, Change, Note, World};
use crate::model::{
    ObjectMeta, Pod, PodTemplateSpec, ReplicaSet, ReplicaSetStatus, ReplicationController,
};

/// What the controller needs to know of one owned pod.
#[derive(Clone, Debug, PartialEq)]
pub struct OwnedPod {
    pub name: String,
    pub creation_timestamp: String,
    pub ready: bool,
}

/// The pods to make and the ones to remove so that `pods` (none terminating) become
/// `wanted`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplicaPlan {
    pub create: usize,
    pub delete: Vec<String>,
}

pub fn plan_replicas(wanted: i32, pods: &[OwnedPod]) -> ReplicaPlan {
    let wanted = wanted.max(0) as usize;
    let mut plan = ReplicaPlan::default();
    if pods.len() < wanted {
        plan.create = wanted - pods.len();
    } else if pods.len() > wanted {
        let mut sorted: Vec<&OwnedPod> = pods.iter().collect();
        // Not-ready first, then the newest: the pods that serve least go first.
        crate::support::sort::sort_by(&mut sorted, |a, b| {
            a.ready
                .cmp(&b.ready)
                .then_with(|| b.creation_timestamp.cmp(&a.creation_timestamp))
                .then_with(|| b.name.cmp(&a.name))
        });
        plan.delete = sorted
            .iter()
            .take(pods.len() - wanted)
            .map(|p| p.name.clone())
            .collect();
    }
    plan
}

/// What this controller keeps, whichever kind asks: a ReplicaSet, or a
/// ReplicationController (its ancestor, the same controller in Kubernetes but for the
/// selector's shape, which pods owned by uid never consult).
#[derive(Clone, Copy, Debug)]
pub struct Replicated<'a> {
    /// The owner's kind, in the pods' controller reference and in events.
    pub kind: &'static str,
    pub metadata: &'a ObjectMeta,
    pub replicas: i32,
    pub min_ready_seconds: i32,
    pub template: &'a PodTemplateSpec,
}

impl<'a> From<&'a ReplicaSet> for Replicated<'a> {
    fn from(rs: &'a ReplicaSet) -> Self {
        Replicated {
            kind: "ReplicaSet",
            metadata: &rs.metadata,
            replicas: rs.spec.replicas,
            min_ready_seconds: rs.spec.min_ready_seconds,
            template: &rs.spec.template,
        }
    }
}

impl<'a> From<&'a ReplicationController> for Replicated<'a> {
    fn from(rc: &'a ReplicationController) -> Self {
        Replicated {
            kind: "ReplicationController",
            metadata: &rc.metadata,
            replicas: rc.spec.replicas,
            min_ready_seconds: rc.spec.min_ready_seconds,
            template: &rc.spec.template,
        }
    }
}

impl Replicated<'_> {
    /// The component Kubernetes names in this controller's events.
    fn component(&self) -> &'static str {
        component_of(self.kind)
    }
}

/// The event source of the controller that keeps `kind`'s pods, for the kinds this
/// module serves.
pub fn component_of(kind: &str) -> &'static str {
    match kind {
        "ReplicationController" => "replication-controller",
        _ => "replicaset-controller",
    }
}

/// The changes that bring `rs`'s pods to its `spec.replicas`.
pub fn reconcile(rs: &ReplicaSet, world: &World) -> Vec<Change> {
    reconcile_replicated(rs.into(), world)
}

/// The changes that bring `rc`'s pods to its `spec.replicas`.
pub fn reconcile_replication_controller(rc: &ReplicationController, world: &World) -> Vec<Change> {
    reconcile_replicated(rc.into(), world)
}

fn reconcile_replicated(owner: Replicated<'_>, world: &World) -> Vec<Change> {
    let meta = owner.metadata;
    let namespace = meta.namespace_or_empty();
    if world.namespace_dying(namespace) || meta.uid.is_empty() {
        return Vec::new();
    }
    let pods = world.controlled_pods(&meta.uid);
    let owned: Vec<OwnedPod> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| OwnedPod {
            name: p.metadata.name.clone(),
            creation_timestamp: p.metadata.creation_timestamp.clone().unwrap_or_default(),
            ready: world.is_ready(p),
        })
        .collect();
    let plan = plan_replicas(owner.replicas, &owned);
    if plan.create > 0 || !plan.delete.is_empty() {
        log::info!(
            "{} {namespace}/{}: creating {} pod(s), deleting {}",
            owner.kind,
            meta.name,
            plan.create,
            plan.delete.len()
        );
    }
    let mut changes = Vec::new();
    for pod in plan
        .delete
        .iter()
        .filter_map(|name| pods.iter().find(|p| &p.metadata.name == name))
    {
        if let Some(mark) = mark_pod(pod) {
            changes.push(mark);
            changes.push(Note::normal(
                owner.kind,
                meta,
                "SuccessfulDelete",
                format!("Deleted pod: {}", pod.metadata.name),
                owner.component(),
            ));
        }
    }
    let template_pod = new_pod(owner);
    let generate_name = format!("{}-", meta.name);
    changes.extend((0..plan.create).map(|_| Change::CreatePod {
        generate_name: generate_name.clone(),
        pod: Box::new(template_pod.clone()),
    }));
    changes
}

/// A new pod of `owner`, still unnamed: the driver names it `<owner>-<five random
/// characters>`.
pub fn new_pod<'a>(owner: impl Into<Replicated<'a>>) -> Pod {
    let owner = owner.into();
    super::pod_of_template(owner.template, owner.kind, owner.metadata)
}

/// `rs` as the API shows it: its status counted from the pods it controls, with
/// readiness and availability as this scope observes them.
pub fn with_status(mut rs: ReplicaSet, world: &World) -> ReplicaSet {
    rs.status = counted_status((&rs).into(), world);
    rs
}

/// `rc` as the API shows it, counted as a ReplicaSet is.
pub fn replication_controller_with_status(
    mut rc: ReplicationController,
    world: &World,
) -> ReplicationController {
    rc.status = counted_status((&rc).into(), world);
    rc
}

/// The status of `owner`, counted from the pods it controls that are not terminating:
/// fully labeled ones carry every label of the template.
fn counted_status(owner: Replicated<'_>, world: &World) -> ReplicaSetStatus {
    let pods: Vec<&Pod> = world
        .controlled_pods(&owner.metadata.uid)
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let count = |f: &dyn Fn(&Pod) -> bool| pods.iter().filter(|p| f(p)).count() as i32;
    let labels = &owner.template.metadata.labels;
    ReplicaSetStatus {
        replicas: pods.len() as i32,
        fully_labeled_replicas: count(&|p| {
            labels
                .iter()
                .all(|(key, value)| p.metadata.labels.get(key) == Some(value))
        }),
        ready_replicas: count(&|p| world.is_ready(p)),
        available_replicas: count(&|p| world.is_available(p, owner.min_ready_seconds)),
        observed_generation: owner.metadata.generation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(name: &str, created: &str, ready: bool) -> OwnedPod {
        OwnedPod {
            name: name.into(),
            creation_timestamp: created.into(),
            ready,
        }
    }

    #[test]
    fn creates_missing_replicas() {
        let plan = plan_replicas(3, &[owned("a", "1", true)]);
        assert_eq!(
            plan,
            ReplicaPlan {
                create: 2,
                delete: vec![]
            }
        );
        assert_eq!(plan_replicas(-1, &[]), ReplicaPlan::default());
    }

    #[test]
    fn scale_down_removes_not_ready_then_newest() {
        let pods = [
            owned("a", "2026-01-01T00:00:01Z", true),
            owned("b", "2026-01-01T00:00:03Z", true),
            owned("c", "2026-01-01T00:00:02Z", false),
            owned("d", "2026-01-01T00:00:04Z", true),
        ];
        let plan = plan_replicas(2, &pods);
        assert_eq!(plan.delete, vec!["c".to_owned(), "d".to_owned()]);
        assert_eq!(plan_replicas(0, &pods).delete.len(), 4);
    }

    #[test]
    fn new_pods_carry_the_template_and_their_owner() {
        let mut rs = ReplicaSet::default();
        rs.metadata.name = "web-abc".into();
        rs.metadata.uid = "uid-rs".into();
        rs.spec
            .template
            .metadata
            .labels
            .insert("app".into(), "web".into());
        let pod = new_pod(&rs);
        assert_eq!(
            pod.metadata.labels.get("app").map(String::as_str),
            Some("web")
        );
        let owner = pod.metadata.controller_ref().map(|o| (&o.kind, &o.uid));
        assert_eq!(
            owner,
            Some((&"ReplicaSet".to_owned(), &"uid-rs".to_owned()))
        );
    }
}
