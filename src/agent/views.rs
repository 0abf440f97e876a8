//! Objects as the API shows them: the stored object plus a status derived now.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use serde_json::Value;

use super::instance::Instance;
use super::status::{pod_status, StatusInputs};
use super::Agent;
use crate::controllers::deployment;
use crate::model::{Deployment, Object, Pod, PodStatus};

impl Agent {
    /// The pod's status; `with_image_ids` fills `imageID`, which costs a look into the
    /// image store per container and is not needed by the controllers.
    pub fn pod_status(&self, pod: &Pod, instances: &[Instance], with_image_ids: bool) -> PodStatus {
        let failures = self.start_failures(&pod.metadata.uid);
        let mut image_ids = HashMap::new();
        for container in pod.spec.containers.iter().filter(|_| with_image_ids) {
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
        status
    }

    /// A pod with its status, and `spec.nodeName` set to this board, as the API shows it.
    pub fn pod_view(&self, mut pod: Pod, instances: &[Instance]) -> Value {
        pod.status = self.pod_status(&pod, instances, true);
        pod.spec.node_name = Some(self.options.node_name.clone());
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

    pub fn deployment_view(
        &self,
        deploy: Deployment,
        pods: &[Pod],
        observed: &BTreeMap<String, Vec<Instance>>,
    ) -> Value {
        let ready = |pod: &Pod| self.pod_ready(pod, observed);
        Object::Deployment(deployment::with_status(deploy, pods, &ready)).to_json()
    }
}
