//! Objects as the API shows them: the stored object plus a status derived now.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::instance::{Instance, InstanceState};
use super::status::{pod_status, StatusInputs};
use super::Agent;
use crate::controllers::daemon_set::{self, NodeView};
use crate::controllers::{deployment_status, replica_set, stateful_set, World};
use crate::model::{Object, Pod, PodStatus};

/// How long after its start an agent waits for the first readiness probes of the
/// containers it found running before its controllers act on readiness.
pub const READINESS_WARMUP: Duration = Duration::from_secs(10);

impl Agent {
    /// The pod's status; `with_image_ids` fills `imageID`, which costs a look into the
    /// image store per container and is not needed by the controllers.
    pub fn pod_status(&self, pod: &Pod, instances: &[Instance], with_image_ids: bool) -> PodStatus {
        if let Some(message) = self.unschedulable_reason(&pod.metadata.uid) {
            return PodStatus {
                phase: "Pending".to_owned(),
                conditions: vec![crate::model::PodCondition {
                    type_: "PodScheduled".to_owned(),
                    status: "False".to_owned(),
                    reason: Some(pod.spec.unscheduled_reason().to_owned()),
                    message: Some(message),
                    ..Default::default()
                }],
                ..Default::default()
            };
        }
        let failures = self.start_failures(&pod.metadata.uid);
        let mut image_ids = HashMap::new();
        for container in pod.spec.all_containers().filter(|_| with_image_ids) {
            if let Ok(Some(image)) = self.images.resolve(&container.image) {
                let repository = image.reference.split(['@']).next().unwrap_or("");
                let repository = match repository.rfind(':') {
                    Some(colon) if !repository[colon..].contains('/') => &repository[..colon],
                    _ => repository,
                };
                image_ids.insert(
                    container.name.clone(),
                    format!("{repository}@{}", image.digest),
                );
            }
        }
        let probes: HashMap<String, super::probes::ProbeResults> = instances
            .iter()
            .filter_map(|i| self.probe_results(&i.id).map(|r| (i.id.clone(), r)))
            .collect();
        let mut status = pod_status(
            pod,
            &StatusInputs {
                instances,
                failures: &failures,
                image_ids: &image_ids,
                backoff: &self.backoff,
                probes: &probes,
                now: SystemTime::now(),
            },
        );
        if let Some(network) = self.network() {
            status.host_ip = Some(network.node_ip.to_string());
            status.pod_ip = if pod.spec.host_network {
                status.host_ip.clone()
            } else {
                network.pod_ip(&pod.metadata.uid).map(|ip| ip.to_string())
            };
            let listed = |ip: &Option<String>| {
                ip.iter()
                    .map(|ip| crate::model::PodIp { ip: ip.clone() })
                    .collect()
            };
            status.pod_ips = listed(&status.pod_ip);
            status.host_ips = listed(&status.host_ip);
        } else {
            status.host_ip = None;
        }
        // The coordinator counts `minReadySeconds` from here.
        if let Some(since) = self.ready_since(&pod.metadata.uid) {
            let ready = status.conditions.iter_mut().find(|c| c.type_ == "Ready");
            if let Some(ready) = ready.filter(|c| c.status == "True") {
                ready.last_transition_time = deployment_status::rfc3339(since);
            }
        }
        status
    }

    /// A pod with its status, and `spec.nodeName` set to this board, as the API shows it.
    pub fn pod_view(&self, mut pod: Pod, instances: &[Instance]) -> Value {
        pod.status = self.pod_status(&pod, instances, true);
        if self.unschedulable_reason(&pod.metadata.uid).is_none() {
            pod.spec.node_name = Some(self.options.node_name.clone());
        }
        Object::Pod(pod).to_json()
    }

    /// Whether `pod` is ready, as its containers and probes show now.
    pub fn pod_ready(&self, pod: &Pod, observed: &BTreeMap<String, Vec<Instance>>) -> bool {
        let instances = observed
            .get(&pod.metadata.uid)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        self.pod_status(pod, instances, false).is_ready()
    }

    /// Deployments, ReplicaSets, ReplicationControllers, DaemonSets and StatefulSets with
    /// their status, as observed on this board.
    pub fn controller_view(&self, object: Object, world: &World) -> Value {
        match object {
            Object::DaemonSet(ds) => {
                Object::DaemonSet(daemon_set::with_status(ds, world)).to_json()
            }
            Object::Deployment(deploy) => {
                Object::Deployment(deployment_status::with_status(deploy, world)).to_json()
            }
            Object::ReplicaSet(rs) => {
                Object::ReplicaSet(replica_set::with_status(rs, world)).to_json()
            }
            Object::ReplicationController(rc) => Object::ReplicationController(
                replica_set::replication_controller_with_status(rc, world),
            )
            .to_json(),
            Object::StatefulSet(set) => {
                Object::StatefulSet(stateful_set::with_status(set, world)).to_json()
            }
            other => other.to_json(),
        }
    }

    /// Adds to `world` which pods are ready, as this board's containers and probes
    /// show, and since when: the first time readiness is seen, remembered in memory
    /// until the pod stops being ready (an agent restart starts the count again).
    pub fn observe_pods(&self, world: &mut World, observed: &BTreeMap<String, Vec<Instance>>) {
        world.observe_statuses(|pod| {
            let instances = observed.get(&pod.metadata.uid).map(Vec::as_slice);
            self.pod_status(pod, instances.unwrap_or_default(), false)
        });
        let mut memory = self.memory();
        memory
            .ready_since
            .retain(|uid, _| world.ready_pods.contains(uid));
        for uid in &world.ready_pods {
            memory
                .ready_since
                .entry(uid.clone())
                .or_insert(world.now_secs);
        }
        world.ready_since = memory.ready_since.clone();
    }

    /// Whether readiness is still unknown after a restart: within [`READINESS_WARMUP`]
    /// of this agent's start, a running container with a readiness probe has no probe
    /// result yet. Probe results live in memory, so a restarted agent would otherwise
    /// see every probed pod as not ready until its first probe, take its pods out of
    /// their Services and let a rollout replace them. Until the first probes answer
    /// (they run at once), the controllers wait and nothing is reported.
    pub fn readiness_unknown(
        &self,
        pods: &[Pod],
        observed: &BTreeMap<String, Vec<Instance>>,
    ) -> bool {
        if self.started.elapsed() > READINESS_WARMUP {
            return false;
        }
        pods.iter().any(|pod| {
            let instances = observed.get(&pod.metadata.uid).map(Vec::as_slice);
            instances.unwrap_or_default().iter().any(|instance| {
                let probed = pod
                    .spec
                    .long_running()
                    .any(|c| c.name == instance.container && c.readiness_probe.is_some());
                probed
                    && matches!(instance.state, InstanceState::Running { .. })
                    && self.probe_results(&instance.id).is_none()
            })
        })
    }

    /// Adds this board to `world` as its one node, for its DaemonSets.
    pub fn add_local_node(&self, world: &mut World) {
        let name = self.options.node_name.clone();
        world.local_node = Some(name.clone());
        if world.daemon_sets.is_empty() {
            return;
        }
        world.nodes = vec![NodeView {
            name,
            labels: self.node_labels.get().cloned().unwrap_or_default(),
            taints: Vec::new(),
            unreachable: false,
        }];
    }

    /// Since when (Unix seconds) `uid` has been seen ready, if it is.
    pub fn ready_since(&self, uid: &str) -> Option<i64> {
        self.memory().ready_since.get(uid).copied()
    }
}

impl Agent {
    /// A digest of everything the controllers read on this board: the store's change
    /// count, the containers and their states, probe results, start failures and pod
    /// addresses. Maps are folded order-free (a sum of per-entry hashes).
    pub fn controller_inputs(&self, observed: &BTreeMap<String, Vec<Instance>>) -> u64 {
        use std::hash::{Hash, Hasher};
        fn digest(item: impl Hash) -> u64 {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            item.hash(&mut hasher);
            hasher.finish()
        }
        let mut total = digest(self.store().change_count());
        for (uid, instances) in observed {
            for instance in instances {
                let state = match &instance.state {
                    InstanceState::Starting => (0, 0, ""),
                    InstanceState::Running { pid, .. } => (1, *pid, ""),
                    InstanceState::Exited(exit) => (2, exit.exit_code, exit.finished_at.as_str()),
                };
                total = total.wrapping_add(digest((uid, &instance.id, state)));
            }
        }
        {
            let memory = self.memory();
            for (id, results) in &memory.probes {
                total = total.wrapping_add(digest((id, results.started, results.ready)));
            }
            for (key, failure) in &memory.failures {
                total = total.wrapping_add(digest((key, &failure.reason)));
            }
        }
        if let Some(network) = self.network() {
            for (uid, ip) in network.pod_ips() {
                total = total.wrapping_add(digest((uid, ip)));
            }
        }
        total
    }

    /// When the last controller pass saw `inputs` and its due time has not come, that
    /// due time (there is nothing new to decide); otherwise `None`.
    pub fn controllers_settled(&self, inputs: u64, now: SystemTime) -> Option<Option<SystemTime>> {
        let (seen, due) = self.memory().controllers_seen?;
        (seen == inputs && due.is_none_or(|due| now < due)).then_some(due)
    }

    /// Records a complete controller pass over `inputs`.
    pub fn controllers_ran(&self, inputs: u64, due: Option<SystemTime>) {
        self.memory().controllers_seen = Some((inputs, due));
    }
}
