//! The controllers, shared by a lone board's agent and the fleet's coordinator.
//!
//! Each controller is pure, in the shape of kube-runtime's reconcilers: given one object
//! and the [`World`] it lives in, `reconcile` returns the [`Change`]s to make, and
//! nothing else. Both scopes run the same controllers on the same typed objects; only
//! the store behind the world and what is observed of pods differ:
//!
//! - the agent reads readiness from its own containers and probes;
//! - the coordinator reads the `Ready` condition its agents report, and also runs
//!   [`node_lifecycle`], which needs leases only it keeps.
//!
//! [`driver`] reads a world from a store and writes changes back; each scope's loop is a
//! few lines around it (`agent::controllers`, `coordinator::controllers`). A new
//! controller comes in this shape: one module, one `reconcile`, a line in
//! [`reconcile_all`].

use std::collections::{HashMap, HashSet};

use crate::model::{
    ControllerRevision, CronJob, DaemonSet, Deployment, Endpoints, Job, LimitRange, Namespace,
    Object, PersistentVolumeClaim, Pod, PriorityClass, ReplicaSet, ReplicationController,
    ResourceQuota, Service, StatefulSet, Zone,
};
use crate::store::Key;

pub mod admission;
pub mod auto_rollback;
pub mod claim;
pub mod cron_job;
pub mod daemon_set;
pub mod deployment;
pub mod deployment_status;
pub mod driver;
pub mod endpoints;
pub mod garbage;
pub mod job;
mod job_indexes;
pub mod namespace;
pub mod node_lifecycle;
pub mod pod_failure;
pub mod replica_set;
pub mod revision_history;
pub mod rollout;
pub mod scheduler;
pub mod service_account;
pub mod stateful_set;

#[cfg(test)]
mod cron_job_tests;
#[cfg(test)]
mod daemon_set_tests;
#[cfg(test)]
mod deployment_tests;
#[cfg(test)]
mod endpoints_tests;
#[cfg(test)]
mod job_tests;
#[cfg(test)]
mod replication_controller_tests;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod stateful_set_tests;
#[cfg(test)]
mod tests;

/// What one controller wants changed.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// Remove the object from the store at once.
    Delete(Key),
    /// Graceful deletion: set `metadata.deletionTimestamp`; whoever runs the pod stops it
    /// and then removes it.
    MarkDeleted(Key),
    /// Create a pod named `generate_name` followed by five random characters, as the
    /// Kubernetes API server does with `metadata.generateName`; with an empty
    /// `generate_name`, the pod's own name (a StatefulSet's `web-0`).
    CreatePod {
        generate_name: String,
        pod: Box<Pod>,
    },
    /// Create or replace an object (the Endpoints of a Service).
    Put(Box<Object>),
    /// Tell the users (`berth get events`, `describe`) what a controller did; kept in
    /// memory, never stored.
    Event(Box<Note>),
    /// Store the status of an object whose status is its controller's record (a Job's
    /// counts and conditions), not something derived when shown.
    Status { key: Key, status: serde_json::Value },
}

/// An event a controller reports, about one of its objects.
#[derive(Clone, Debug, PartialEq)]
pub struct Note {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub warning: bool,
    /// Kubernetes' reason, e.g. `ScalingReplicaSet`.
    pub reason: &'static str,
    pub message: String,
    /// The reporting controller, e.g. `deployment-controller`.
    pub component: &'static str,
}

impl Note {
    /// A normal event about `meta` (of `kind`) from `component`.
    pub fn normal(
        kind: &str,
        meta: &crate::model::ObjectMeta,
        reason: &'static str,
        message: String,
        component: &'static str,
    ) -> Change {
        Change::Event(Box::new(Note {
            kind: kind.to_owned(),
            namespace: meta.namespace_or_empty().to_owned(),
            name: meta.name.clone(),
            uid: meta.uid.clone(),
            warning: false,
            reason,
            message,
            component,
        }))
    }

    /// A warning about `meta` (of `kind`) from `component`.
    pub fn warning(
        kind: &str,
        meta: &crate::model::ObjectMeta,
        reason: &'static str,
        message: String,
        component: &'static str,
    ) -> Change {
        let mut change = Note::normal(kind, meta, reason, message, component);
        if let Change::Event(note) = &mut change {
            note.warning = true;
        }
        change
    }

    /// `SuccessfulCreate` on the controller of a pod just named, as Kubernetes'
    /// controllers report it.
    pub fn created(pod: &Pod) -> Option<Note> {
        let owner = pod.metadata.controller_ref()?;
        let name = &pod.metadata.name;
        let (component, message) = match owner.kind.as_str() {
            "ReplicaSet" | "ReplicationController" => (
                replica_set::component_of(&owner.kind),
                format!("Created pod: {name}"),
            ),
            "DaemonSet" => ("daemonset-controller", format!("Created pod: {name}")),
            "Job" => ("job-controller", format!("Created pod: {name}")),
            "StatefulSet" => (
                "statefulset-controller",
                format!("create Pod {name} in StatefulSet {} successful", owner.name),
            ),
            _ => return None,
        };
        Some(Note {
            kind: owner.kind.clone(),
            namespace: pod.metadata.namespace_or_empty().to_owned(),
            name: owner.name.clone(),
            uid: owner.uid.clone(),
            warning: false,
            reason: "SuccessfulCreate",
            message,
            component,
        })
    }
}

/// What the controllers see: the stored objects they act on and what this scope
/// observes of them.
#[derive(Clone, Debug, Default)]
pub struct World {
    pub namespaces: Vec<Namespace>,
    pub deployments: Vec<Deployment>,
    pub replica_sets: Vec<ReplicaSet>,
    pub replication_controllers: Vec<ReplicationController>,
    pub daemon_sets: Vec<DaemonSet>,
    pub stateful_sets: Vec<StatefulSet>,
    /// With their stored status.
    pub jobs: Vec<Job>,
    /// With their stored status.
    pub cron_jobs: Vec<CronJob>,
    /// For a CronJob this scope stands in for (a board whose coordinator is out of
    /// reach), by uid: the Unix time up to which the scope that normally runs it has
    /// already run or decided its scheduled times. Only later times may fire here.
    pub cron_covered_until: HashMap<String, i64>,
    /// The time zones CronJobs name in `spec.timeZone`, as the scope loaded them from its
    /// zoneinfo directory, or why it could not ([`driver::add_time_zones`]).
    pub time_zones: HashMap<String, Result<Zone, String>>,
    pub controller_revisions: Vec<ControllerRevision>,
    pub pods: Vec<Pod>,
    /// The nodes DaemonSets place pods on (filled only when there are DaemonSets).
    pub nodes: Vec<daemon_set::NodeView>,
    /// On a lone board, the board's own node: pods without `spec.nodeName` run there.
    pub local_node: Option<String>,
    pub services: Vec<Service>,
    pub endpoints: Vec<Endpoints>,
    /// What admits the pods the controllers make ([`admission`]).
    pub limit_ranges: Vec<LimitRange>,
    pub resource_quotas: Vec<ResourceQuota>,
    /// What gives the pods the controllers make their priority ([`admission`]).
    pub priority_classes: Vec<PriorityClass>,
    /// PersistentVolumeClaims being deleted: what pvc-protection ([`claim`]) acts on.
    pub dying_claims: Vec<PersistentVolumeClaim>,
    /// The keys of every stored claim: a StatefulSet makes the ones its pods lack.
    pub claims: HashSet<Key>,
    /// The keys of every stored ServiceAccount: each namespace gets a `default` one.
    pub service_accounts: HashSet<Key>,
    /// ConfigMaps, Secrets, claims, Services, Endpoints, EndpointSlices and the kinds
    /// berth only stores (ServiceAccounts, Ingresses, NetworkPolicies), by key only. The
    /// driver lists them only in namespaces being deleted: the namespace cascade is
    /// their one reader, and reading every Secret each pass would unseal them all.
    pub config_keys: Vec<Key>,
    /// The uids of the pods this scope observes as ready (filled for controlled pods
    /// and for pods a Service selects).
    pub ready_pods: HashSet<String>,
    /// Pod addresses by pod uid, as this scope observes them (`status.podIP`).
    pub pod_ips: HashMap<String, String>,
    /// The uids of the pods with a container in `CrashLoopBackOff`, as this scope
    /// observes them (filled for controlled pods).
    pub crash_looping: HashSet<String>,
    /// The uids of the pods that have ended (`Succeeded` or `Failed`), as this scope
    /// observes them: quotas do not count them.
    pub ended_pods: HashSet<String>,
    /// Those of `ended_pods` that `Failed`, with when and how (what a Job's pod failure
    /// policy looks at).
    pub failed_pods: HashMap<String, pod_failure::PodFailure>,
    /// Since when (Unix seconds) each ready pod has been ready, where this scope knows:
    /// a pod counts as available once it has been ready for `minReadySeconds`.
    pub ready_since: HashMap<String, i64>,
    /// Now, as RFC 3339 text with seconds, for `deletionTimestamp`.
    pub now: String,
    /// Now, in Unix seconds.
    pub now_secs: i64,
}

impl World {
    /// Records readiness, as `is_ready` observes it, for every pod a controller owns or
    /// a Service selects: the only pods whose readiness a controller asks about.
    pub fn observe_readiness(&mut self, is_ready: impl Fn(&Pod) -> bool) {
        self.ready_pods = self
            .pods
            .iter()
            .filter(|pod| pod.metadata.controller_ref().is_some() || self.selected(pod))
            .filter(|pod| is_ready(pod))
            .map(|pod| pod.metadata.uid.clone())
            .collect();
    }

    /// Records what `status_of` says of every pod a controller owns or a Service
    /// selects: readiness, and crash loops; and which pods that may end (those that
    /// do not always restart) have ended.
    pub fn observe_statuses(&mut self, status_of: impl Fn(&Pod) -> crate::model::PodStatus) {
        let mut ready = HashSet::new();
        let mut crash_looping = HashSet::new();
        let mut ended = HashSet::new();
        let mut failed = HashMap::new();
        for pod in &self.pods {
            let controlled = pod.metadata.controller_ref().is_some();
            let watched = controlled || self.selected(pod);
            let may_end = pod.spec.restart_policy != "Always";
            if !watched && !may_end {
                continue;
            }
            let status = status_of(pod);
            if crate::model::resource_quota::phase_ended(&status.phase) {
                ended.insert(pod.metadata.uid.clone());
                if status.phase == "Failed" {
                    let failure = pod_failure::PodFailure::of(&status, self.now_secs);
                    failed.insert(pod.metadata.uid.clone(), failure);
                }
            }
            if !watched {
                continue;
            }
            if status.is_ready() {
                ready.insert(pod.metadata.uid.clone());
            }
            if controlled && status.is_crash_looping() {
                crash_looping.insert(pod.metadata.uid.clone());
            }
        }
        self.ready_pods = ready;
        self.crash_looping = crash_looping;
        self.ended_pods = ended;
        self.failed_pods = failed;
    }

    /// Whether this scope observes `pod` as ready.
    pub fn is_ready(&self, pod: &Pod) -> bool {
        self.ready_pods.contains(&pod.metadata.uid)
    }

    /// Whether `pod` is available: ready for at least `min_ready_seconds`. A ready pod
    /// whose start of readiness this scope does not know counts from now.
    pub fn is_available(&self, pod: &Pod, min_ready_seconds: i32) -> bool {
        if !self.is_ready(pod) {
            return false;
        }
        if min_ready_seconds <= 0 {
            return true;
        }
        let since = self.ready_since.get(&pod.metadata.uid).copied();
        since.is_some_and(|since| since + i64::from(min_ready_seconds) <= self.now_secs)
    }

    /// The pods whose controlling owner has uid `uid`, terminating ones included.
    pub fn controlled_pods(&self, uid: &str) -> Vec<&Pod> {
        self.pods
            .iter()
            .filter(|pod| deployment::controlled_by(&pod.metadata, uid))
            .collect()
    }

    /// What the rollout arithmetic needs of `rs`: its pods not terminating, and those
    /// available after `min_ready_seconds`.
    pub fn rs_state(&self, rs: &ReplicaSet, min_ready_seconds: i32) -> rollout::RsState {
        let pods: Vec<&Pod> = self
            .controlled_pods(&rs.metadata.uid)
            .into_iter()
            .filter(|pod| pod.metadata.deletion_timestamp.is_none())
            .collect();
        rollout::RsState {
            name: rs.metadata.name.clone(),
            created: rs.metadata.creation_timestamp.clone().unwrap_or_default(),
            replicas: rs.spec.replicas,
            pods: pods.len() as i32,
            available: pods
                .iter()
                .filter(|pod| self.is_available(pod, min_ready_seconds))
                .count() as i32,
        }
    }

    /// Whether a Service with a selector selects `pod`.
    fn selected(&self, pod: &Pod) -> bool {
        self.services.iter().any(|service| {
            !service.spec.selector.is_empty()
                && service.metadata.namespace_or_empty() == pod.metadata.namespace_or_empty()
                && service
                    .spec
                    .selector
                    .iter()
                    .all(|(key, value)| pod.metadata.labels.get(key) == Some(value))
        })
    }

    /// Whether the namespace `name` is being deleted.
    pub fn namespace_dying(&self, name: &str) -> bool {
        self.namespaces
            .iter()
            .any(|ns| ns.metadata.name == name && ns.metadata.deletion_timestamp.is_some())
    }

    /// Applies `changes` to this snapshot, so the controllers that run after see them:
    /// deleted objects are gone and marked pods are terminating. Created pods are not
    /// added: no later controller acts on a pod just made.
    pub fn apply(&mut self, changes: &[Change]) {
        for change in changes {
            match change {
                Change::Delete(key) => {
                    let matches = |kind: &str, meta: &crate::model::ObjectMeta| {
                        key.kind == kind
                            && key.name == meta.name
                            && key.namespace == meta.namespace_or_empty()
                    };
                    self.namespaces
                        .retain(|o| !matches("Namespace", &o.metadata));
                    self.deployments
                        .retain(|o| !matches("Deployment", &o.metadata));
                    self.replica_sets
                        .retain(|o| !matches("ReplicaSet", &o.metadata));
                    self.replication_controllers
                        .retain(|o| !matches("ReplicationController", &o.metadata));
                    self.daemon_sets
                        .retain(|o| !matches("DaemonSet", &o.metadata));
                    self.stateful_sets
                        .retain(|o| !matches("StatefulSet", &o.metadata));
                    self.jobs.retain(|o| !matches("Job", &o.metadata));
                    self.cron_jobs.retain(|o| !matches("CronJob", &o.metadata));
                    self.controller_revisions
                        .retain(|o| !matches("ControllerRevision", &o.metadata));
                    self.pods.retain(|o| !matches("Pod", &o.metadata));
                    self.services.retain(|o| !matches("Service", &o.metadata));
                    self.endpoints
                        .retain(|o| !matches("Endpoints", &o.metadata));
                    self.limit_ranges
                        .retain(|o| !matches("LimitRange", &o.metadata));
                    self.resource_quotas
                        .retain(|o| !matches("ResourceQuota", &o.metadata));
                    self.config_keys.retain(|k| k != key);
                    self.dying_claims
                        .retain(|o| !matches("PersistentVolumeClaim", &o.metadata));
                }
                Change::MarkDeleted(key) => {
                    let now = &self.now;
                    for pod in self.pods.iter_mut().filter(|p| {
                        key.kind == "Pod"
                            && key.name == p.metadata.name
                            && key.namespace == p.metadata.namespace_or_empty()
                    }) {
                        pod.metadata
                            .deletion_timestamp
                            .get_or_insert_with(|| now.clone());
                    }
                }
                Change::Put(object) => self.replace(object),
                Change::CreatePod { .. } | Change::Event(_) | Change::Status { .. } => {}
            }
        }
    }
}

impl World {
    /// Puts a changed ReplicaSet or Pod in place of the one it updates, so that the
    /// controllers after see it (a ReplicaSet scaled up makes its pods in the same
    /// pass). New objects are not added: they have no uid until stored.
    fn replace(&mut self, object: &Object) {
        let same = |a: &crate::model::ObjectMeta, b: &crate::model::ObjectMeta| {
            a.name == b.name && a.namespace == b.namespace
        };
        match object {
            Object::ReplicaSet(changed) => {
                if let Some(rs) = self
                    .replica_sets
                    .iter_mut()
                    .find(|rs| same(&rs.metadata, &changed.metadata))
                {
                    *rs = changed.clone();
                }
            }
            Object::Pod(changed) => {
                if let Some(pod) = self
                    .pods
                    .iter_mut()
                    .find(|pod| same(&pod.metadata, &changed.metadata))
                {
                    *pod = changed.clone();
                }
            }
            _ => {}
        }
    }
}

/// The key of a namespaced or cluster object from its kind and metadata.
pub fn key_of(kind: &str, meta: &crate::model::ObjectMeta) -> Key {
    Key::new(kind, meta.namespace_or_empty(), &meta.name)
}

/// The owner reference that makes an object of `kind` (apps/v1, a batch/v1 Job or
/// CronJob, or a v1 ReplicationController) the controller of what it made.
pub(crate) fn controlled_by_owner(
    kind: &str,
    owner: &crate::model::ObjectMeta,
) -> crate::model::OwnerReference {
    crate::model::OwnerReference {
        api_version: match kind {
            "Job" | "CronJob" => "batch/v1",
            "ReplicationController" => "v1",
            _ => "apps/v1",
        }
        .to_owned(),
        kind: kind.to_owned(),
        name: owner.name.clone(),
        uid: owner.uid.clone(),
        controller: Some(true),
    }
}

/// A new pod of `template`, still unnamed, in `owner`'s namespace and controlled by it
/// (of `kind`).
fn pod_of_template(
    template: &crate::model::PodTemplateSpec,
    kind: &str,
    owner: &crate::model::ObjectMeta,
) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.namespace = owner.namespace.clone();
    pod.metadata.labels = template.metadata.labels.clone();
    pod.metadata.annotations = template.metadata.annotations.clone();
    pod.metadata.owner_references = vec![controlled_by_owner(kind, owner)];
    pod.spec = template.spec.clone();
    pod
}

/// Graceful deletion of `pod`, unless it is already terminating.
fn mark_pod(pod: &Pod) -> Option<Change> {
    pod.metadata
        .deletion_timestamp
        .is_none()
        .then(|| Change::MarkDeleted(key_of("Pod", &pod.metadata)))
}

/// Runs every controller both scopes share, in order, each on the world as the ones
/// before it left it: the namespace cascade, then Deployments, DaemonSets, ReplicaSets, then
/// garbage collection, then the Endpoints of Services. The pods they make are admitted
/// last: given their priority, then held to their namespaces' LimitRanges and
/// ResourceQuotas.
pub fn reconcile_all(world: &mut World) -> Vec<Change> {
    let mut all = Vec::new();
    run(world, &mut all, |w| {
        w.namespaces
            .iter()
            .flat_map(|ns| namespace::reconcile(ns, w))
            .chain(
                w.namespaces
                    .iter()
                    .filter_map(|ns| service_account::reconcile(ns, w)),
            )
            .collect()
    });
    run(world, &mut all, |w| {
        w.deployments
            .iter()
            .flat_map(|d| match auto_rollback::reconcile(d, w) {
                Some(rollback) => rollback,
                None => deployment::reconcile(d, w),
            })
            .collect()
    });
    run(world, &mut all, |w| {
        w.daemon_sets
            .iter()
            .flat_map(|ds| daemon_set::reconcile(ds, w))
            .collect()
    });
    run(world, &mut all, |w| {
        w.stateful_sets
            .iter()
            .flat_map(|set| stateful_set::reconcile(set, w))
            .collect()
    });
    run(world, &mut all, |w| {
        w.cron_jobs
            .iter()
            .flat_map(|cj| cron_job::reconcile(cj, w))
            .chain(
                w.jobs
                    .iter()
                    .filter_map(|job| garbage::reconcile_job(job, w)),
            )
            .collect()
    });
    run(world, &mut all, |w| {
        w.jobs
            .iter()
            .flat_map(|job| job::reconcile(job, w))
            .collect()
    });
    // ReplicaSets whose Deployment is gone first, so none of them makes a pod.
    run(world, &mut all, |w| {
        w.replica_sets
            .iter()
            .filter_map(|rs| garbage::reconcile_replica_set(rs, w))
            .chain(
                w.controller_revisions
                    .iter()
                    .filter_map(|cr| garbage::reconcile_revision(cr, w)),
            )
            .collect()
    });
    run(world, &mut all, |w| {
        w.replica_sets
            .iter()
            .flat_map(|rs| replica_set::reconcile(rs, w))
            .chain(
                w.replication_controllers
                    .iter()
                    .flat_map(|rc| replica_set::reconcile_replication_controller(rc, w)),
            )
            .collect()
    });
    run(world, &mut all, |w| {
        w.pods
            .iter()
            .filter_map(|pod| garbage::reconcile(pod, w))
            .collect()
    });
    run(world, &mut all, |w| {
        w.dying_claims
            .iter()
            .filter_map(|c| claim::reconcile(c, w))
            .collect()
    });
    run(world, &mut all, |w| {
        let mut changes: Vec<Change> = w
            .services
            .iter()
            .flat_map(|service| endpoints::reconcile(service, w))
            .collect();
        changes.extend(endpoints::orphaned(w));
        changes
    });
    admission::admit_created(world, all)
}

/// One controller over its objects: its changes are applied to the world and kept.
fn run(world: &mut World, all: &mut Vec<Change>, controller: impl Fn(&World) -> Vec<Change>) {
    let changes = controller(world);
    world.apply(&changes);
    all.extend(changes);
}
