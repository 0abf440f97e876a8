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

/// The kubelet's values: -997 Guaranteed, 1000 BestEffort, and for Burstable
/// `1000 - 1000 × memory request / machine memory`, kept within 2..=999.
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
                .unwrap_or(0);
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
}
