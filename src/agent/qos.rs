//! Quality of service classes and the OOM score each gives a container, as the kubelet
//! sets them: when the board runs out of memory the kernel kills BestEffort pods first,
//! then Burstable ones by how far they are over their request, Guaranteed ones last —
//! and the agent (its unit sets -900) after Burstable and BestEffort pods.

use crate::model::{parse_cpu_millis, parse_memory_bytes, Container, PodSpec};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

pub fn qos_class(spec: &PodSpec) -> QosClass {
    if let Some(class) = pod_level_qos_class(spec) {
        return class;
    }
    // Only CPU and memory count, as in Kubernetes: a pod asking only for a dongle is
    // still BestEffort.
    let compute = |list: &std::collections::BTreeMap<String, String>| {
        list.contains_key("cpu") || list.contains_key("memory")
    };
    if spec
        .all_containers()
        .all(|c| !compute(&c.resources.requests) && !compute(&c.resources.limits))
    {
        return QosClass::BestEffort;
    }
    let guaranteed = spec.all_containers().all(|c| {
        ["cpu", "memory"].iter().all(|key| {
            let parse = if *key == "cpu" {
                parse_cpu_millis
            } else {
                parse_memory_bytes
            };
            let limit = c.resources.limits.get(*key).and_then(|q| parse(q).ok());
            let request = c
                .resources
                .requests
                .get(*key)
                .and_then(|q| parse(q).ok())
                .or(limit);
            limit.is_some() && limit == request
        })
    });
    if guaranteed {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}

/// With pod-level CPU or memory (Kubernetes' PodLevelResources) the class comes from
/// the pod's own requests and limits alone: Guaranteed when it limits both and requests
/// exactly its limits, BestEffort when it states nothing above zero. `None` without them
/// (a `pids` limit alone does not count).
fn pod_level_qos_class(spec: &PodSpec) -> Option<QosClass> {
    let pod = spec.resources.as_ref()?;
    let stated = |list: &std::collections::BTreeMap<String, String>| {
        crate::model::POD_LEVEL_RESOURCES
            .iter()
            .any(|name| list.contains_key(*name))
    };
    if !stated(&pod.requests) && !stated(&pod.limits) {
        return None;
    }
    let positive = |list: fn(&PodSpec, &str) -> Option<u64>| {
        crate::model::POD_LEVEL_RESOURCES
            .iter()
            .filter_map(|name| Some((*name, list(spec, name).filter(|a| *a > 0)?)))
            .collect::<Vec<_>>()
    };
    let requests = positive(PodSpec::pod_request);
    let limits = positive(PodSpec::pod_limit);
    Some(if requests.is_empty() && limits.is_empty() {
        QosClass::BestEffort
    } else if limits.len() == 2 && requests == limits {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    })
}

/// The kubelet's values: -997 Guaranteed, 1000 BestEffort, and for Burstable
/// `1000 - 1000 × memory request / machine memory`, kept within 2..=999. With a pod-level
/// memory request, each container's request counts with an equal share of what the pod
/// requests beyond its containers (KEP-2837's OOM score adjustment).
pub fn oom_score_adj(spec: &PodSpec, container: &Container, machine_memory: u64) -> i32 {
    match qos_class(spec) {
        QosClass::Guaranteed => -997,
        QosClass::BestEffort => 1000,
        QosClass::Burstable => {
            let request = container
                .resources
                .requests
                .get("memory")
                .and_then(|q| parse_memory_bytes(q).ok())
                .unwrap_or(0)
                .saturating_add(unclaimed_memory_share(spec));
            let score = if machine_memory == 0 {
                999
            } else {
                // At most 1000: a request above the machine's memory scores as 2.
                let share = (1000 * u128::from(request) / u128::from(machine_memory)).min(1000);
                1000 - share as i64
            };
            score.clamp(2, 999) as i32
        }
    }
}

/// The pod-level memory request beyond the containers' aggregate, split evenly over all
/// its containers (init containers too, as the kubelet counts them); 0 without one.
fn unclaimed_memory_share(spec: &PodSpec) -> u64 {
    let Some(pod_request) = spec.pod_request("memory") else {
        return 0;
    };
    let count = spec.all_containers().count() as u64;
    let claimed = spec.aggregate_request("memory").unwrap_or(0);
    pod_request
        .saturating_sub(claimed)
        .checked_div(count)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn container(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let mut c = Container {
            name: "c".into(),
            image: "i".into(),
            ..Default::default()
        };
        c.resources.requests = map(requests);
        c.resources.limits = map(limits);
        c
    }

    fn spec(c: &Container) -> PodSpec {
        PodSpec {
            containers: vec![c.clone()],
            ..Default::default()
        }
    }

    #[test]
    fn classes_and_scores_follow_the_kubelet() {
        const GIB: u64 = 1 << 30;
        let none = container(&[], &[]);
        assert_eq!(qos_class(&spec(&none)), QosClass::BestEffort);
        assert_eq!(oom_score_adj(&spec(&none), &none, GIB), 1000);

        let exact = container(
            &[("cpu", "100m"), ("memory", "64Mi")],
            &[("cpu", "100m"), ("memory", "64Mi")],
        );
        assert_eq!(qos_class(&spec(&exact)), QosClass::Guaranteed);
        assert_eq!(oom_score_adj(&spec(&exact), &exact, GIB), -997);

        let half = container(&[("memory", "512Mi")], &[("memory", "1Gi")]);
        assert_eq!(qos_class(&spec(&half)), QosClass::Burstable);
        assert_eq!(oom_score_adj(&spec(&half), &half, GIB), 500);
        let tiny = container(&[("cpu", "10m")], &[]);
        assert_eq!(oom_score_adj(&spec(&tiny), &tiny, GIB), 999);
        let huge = container(&[("memory", "2Gi")], &[]);
        assert_eq!(oom_score_adj(&spec(&huge), &huge, GIB), 2);
        // The largest request on the smallest machine: still 2, not a wrapped value.
        let largest = container(&[("memory", "7Ei")], &[]);
        assert_eq!(oom_score_adj(&spec(&largest), &largest, 1), 2);
    }

    /// A spec with pod-level requests and limits over the containers given.
    fn pod_level(requests: &[(&str, &str)], limits: &[(&str, &str)], c: &[Container]) -> PodSpec {
        let holder = container(requests, limits);
        let mut spec = PodSpec {
            containers: c.to_vec(),
            resources: Some(holder.resources),
            ..Default::default()
        };
        spec.apply_defaults();
        spec
    }

    #[test]
    fn pod_level_resources_decide_the_class() {
        const GIB: u64 = 1 << 30;
        let bare = container(&[], &[]);
        // Pod limits only: the requests default to them, so the pod is Guaranteed even
        // though its container states nothing.
        let whole = pod_level(
            &[],
            &[("cpu", "1"), ("memory", "1Gi")],
            std::slice::from_ref(&bare),
        );
        assert_eq!(qos_class(&whole), QosClass::Guaranteed);
        let cpu_only = pod_level(
            &[("cpu", "500m")],
            &[("cpu", "1")],
            std::slice::from_ref(&bare),
        );
        assert_eq!(qos_class(&cpu_only), QosClass::Burstable);
        // A container that is Guaranteed on its own does not make the pod so.
        let exact = container(
            &[("cpu", "1"), ("memory", "1Gi")],
            &[("cpu", "1"), ("memory", "1Gi")],
        );
        let wider = pod_level(&[], &[("cpu", "2")], &[exact]);
        assert_eq!(qos_class(&wider), QosClass::Burstable);
        // A pids limit alone is not a pod-level CPU or memory: the containers decide.
        let pids = pod_level(&[], &[("pids", "2048")], std::slice::from_ref(&bare));
        assert_eq!(qos_class(&pids), QosClass::BestEffort);

        // 512Mi requested by the pod, 256Mi by one of two containers: each container
        // counts 128Mi more than its own request.
        let asks = container(&[("memory", "256Mi")], &[]);
        let shared = pod_level(&[("memory", "512Mi")], &[], &[asks.clone(), bare.clone()]);
        assert_eq!(qos_class(&shared), QosClass::Burstable);
        assert_eq!(oom_score_adj(&shared, &asks, GIB), 625);
        assert_eq!(oom_score_adj(&shared, &bare, GIB), 875);
    }
}
