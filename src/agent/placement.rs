//! Which pods a lone board starts: the shared scheduler ([`crate::controllers::scheduler`])
//! with this board as its one node, as the kubelet's admission and a one-node cluster's
//! scheduler would decide together. A pod that asks for a node label the board lacks, a
//! device it does not have (`example.com/dongle` beyond its `--extended-resources`), or a
//! place its pod anti-affinity or topology spread forbids, stays Pending with
//! `PodScheduled=False`, reason `Unschedulable` and the scheduler's message, and starts
//! once that changes (the pod in the way is deleted, say).
//!
//! Only pods without `spec.nodeName` are decided here: a fleet's pods were placed by the
//! coordinator. Pods that run already keep running. CPU and memory are not counted: a
//! lone board's containers share them within their cgroup limits, as before.
//!
//! Waiting pods are decided highest priority first (`spec.priority`, which admission
//! gives them from their PriorityClass), so the more important of two pods wanting the
//! one dongle gets it. A lone board does not preempt: a pod that started keeps running
//! whatever the priority of one waiting for its place.

use std::collections::{BTreeMap, HashMap};

use super::instance::Instance;
use super::Agent;
use crate::controllers::scheduler::{pod_request_from_spec, schedule, Decision, NodeInfo};
use crate::model::{claims_of, Object, Pod, UNBOUND_CLAIMS_MESSAGE};

impl Agent {
    /// The pods among `pods` this board does not start, by UID, with why. Costs nothing
    /// when every pod has started already.
    pub(super) fn unschedulable_pods(
        &self,
        pods: &[Pod],
        observed: &BTreeMap<String, Vec<Instance>>,
    ) -> HashMap<String, String> {
        let started = |pod: &Pod| observed.contains_key(&pod.metadata.uid);
        let mut waiting: Vec<&Pod> = pods
            .iter()
            .filter(|p| p.spec.node_name.is_none() && p.metadata.deletion_timestamp.is_none())
            .filter(|p| !started(p))
            .collect();
        let mut refused = HashMap::new();
        if waiting.is_empty() {
            return refused;
        }
        crate::support::sort::sort_by_key(&mut waiting, |p| {
            (
                std::cmp::Reverse(crate::model::priority_class::pod_priority(&p.spec)),
                p.metadata.creation_timestamp.clone(),
                p.metadata.name.clone(),
            )
        });
        let mut node = NodeInfo {
            name: self.options.node_name.clone(),
            labels: self.node_labels.get().cloned().unwrap_or_default(),
            allocatable_cpu_millis: u64::MAX,
            allocatable_memory_bytes: u64::MAX,
            allocatable_extended: self.options.extended_resources.clone(),
            ready: true,
            ..NodeInfo::default()
        };
        for pod in pods.iter().filter(|p| started(p)) {
            if let Some(request) = request_of(pod) {
                node.pods.push(request.placed());
            }
        }
        for pod in waiting {
            if !pod.spec.scheduling_gates.is_empty() {
                let message = crate::model::SCHEDULING_GATED_MESSAGE.to_owned();
                refused.insert(pod.metadata.uid.clone(), message);
                continue;
            }
            let Some(mut request) = request_of(pod) else {
                continue;
            };
            request.volume_problem = self.unprovisioned_claim(pod);
            match schedule(&request, std::slice::from_ref(&node)) {
                Decision::Bind { .. } => node.pods.push(request.placed()),
                Decision::Unschedulable { message } => {
                    refused.insert(pod.metadata.uid.clone(), message);
                }
            }
        }
        refused
    }
}

impl Agent {
    /// Keeps what `unschedulable_pods` decided for the pods' status, and tells each new
    /// decision once as the scheduler's `FailedScheduling` event.
    pub(super) fn remember_unschedulable(&self, pods: &[Pod], now: HashMap<String, String>) {
        let before = std::mem::replace(&mut self.memory().unschedulable, now.clone());
        for pod in pods {
            let Some(message) = now.get(&pod.metadata.uid) else {
                continue;
            };
            // A gated pod is not tried, so nothing failed: Kubernetes tells no event.
            if !pod.spec.scheduling_gates.is_empty() {
                continue;
            }
            if before.get(&pod.metadata.uid) != Some(message) {
                log::info!(
                    "pod {}/{} is unschedulable: {message}",
                    pod.metadata.namespace_or_empty(),
                    pod.metadata.name
                );
                self.scheduler_event(&pod.metadata, message);
            }
        }
    }

    /// Kubernetes' reason when the pod uses a claim of a class berth does not provision:
    /// that claim stays unbound, so the pod is never placed. (Missing claims are waited
    /// for where the volumes are set up.)
    fn unprovisioned_claim(&self, pod: &Pod) -> Option<String> {
        let namespace = pod.metadata.namespace_or_empty();
        let store = self.store();
        claims_of(&pod.spec)
            .into_iter()
            .filter_map(|name| store.get("PersistentVolumeClaim", namespace, name).ok()?)
            .filter_map(|record| match Object::from_json(record.object) {
                Ok(Object::PersistentVolumeClaim(claim)) => Some(claim),
                _ => None,
            })
            .any(|claim| !claim.spec.provisioned_here())
            .then(|| UNBOUND_CLAIMS_MESSAGE.to_owned())
    }

    /// Why a pod does not start, when the board cannot run it.
    pub(super) fn unschedulable_reason(&self, uid: &str) -> Option<String> {
        self.memory().unschedulable.get(uid).cloned()
    }
}

/// The scheduler's view of a pod; `None` for a spec whose quantities do not read, which
/// validation has kept out.
fn request_of(pod: &Pod) -> Option<crate::controllers::scheduler::PodRequest> {
    let namespace = pod.metadata.namespace_or_empty();
    let mut request = pod_request_from_spec(namespace, &pod.metadata.name, None, &pod.spec).ok()?;
    request.labels = pod.metadata.labels.clone();
    Some(request)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use crate::agent::test_support::{test_agent_with, IMAGE};
    use crate::model::{parse_manifests, Object, Pod};

    /// A waiting pod wanting the dongle, made at second `made` with `priority`.
    fn dongle_pod(name: &str, made: u32, priority: i32) -> Pod {
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers: \
             [{{name: app, image: '{IMAGE}', resources: {{limits: {{example.com/dongle: 1}}}}}}]\n"
        );
        let Some(Object::Pod(mut pod)) = parse_manifests(&yaml).unwrap().pop() else {
            panic!("a pod");
        };
        pod.metadata.uid = format!("uid-{name}");
        pod.metadata.creation_timestamp = Some(format!("2026-12-01T10:00:{made:02}Z"));
        pod.spec.priority = Some(priority);
        pod
    }

    #[test]
    fn the_higher_priority_of_two_waiting_pods_gets_the_one_dongle() {
        let test = test_agent_with(Duration::from_secs(1), |options| {
            options.extended_resources = BTreeMap::from([("example.com/dongle".into(), 1)]);
        });
        // The older pod would win by age; the newer one outranks it.
        let pods = [dongle_pod("older", 1, 0), dongle_pod("urgent", 2, 1000)];
        let refused = test.agent.unschedulable_pods(&pods, &BTreeMap::new());
        let names: Vec<&String> = refused.keys().collect();
        assert_eq!(names, ["uid-older"]);
        assert_eq!(
            refused["uid-older"],
            "0/1 nodes are available: 1 Insufficient example.com/dongle."
        );
        // Of equal priorities the older goes first, as before.
        let pods = [dongle_pod("older", 1, 5), dongle_pod("newer", 2, 5)];
        let refused = test.agent.unschedulable_pods(&pods, &BTreeMap::new());
        assert!(refused.contains_key("uid-newer"), "{refused:?}");
    }

    #[test]
    fn a_gated_pod_waits_and_takes_no_device_until_its_gates_are_gone() {
        let test = test_agent_with(Duration::from_secs(1), |options| {
            options.extended_resources = BTreeMap::from([("example.com/dongle".into(), 1)]);
        });
        let mut gated = dongle_pod("gated", 1, 0);
        gated.spec.scheduling_gates = vec![crate::model::PodSchedulingGate {
            name: "example.com/quota".into(),
        }];
        let pods = [gated.clone(), dongle_pod("later", 2, 0)];
        let refused = test.agent.unschedulable_pods(&pods, &BTreeMap::new());
        assert_eq!(
            refused.len(),
            1,
            "the later pod gets the dongle: {refused:?}"
        );
        assert_eq!(refused["uid-gated"], crate::model::SCHEDULING_GATED_MESSAGE);
        test.agent.remember_unschedulable(&pods, refused);
        let status = test.agent.pod_status(&gated, &[], false);
        assert_eq!(
            status.conditions[0].reason.as_deref(),
            Some("SchedulingGated")
        );
        gated.spec.scheduling_gates.clear();
        let refused = test.agent.unschedulable_pods(&[gated], &BTreeMap::new());
        assert!(refused.is_empty(), "{refused:?}");
    }
}
