//! The LimitRanger and ResourceQuota admissions on parsed manifests.

use super::*;
use crate::model::resource_quota::{object_usage, pod_usage, Usage};
use crate::model::{parse_manifests, Object};

fn one(yaml: &str) -> Object {
    let mut objects = parse_manifests(yaml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(objects.len(), 1);
    objects.remove(0)
}

fn pod(name: &str, resources: &str) -> Pod {
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\n\
         spec: {{containers: [{{name: app, image: busybox, resources: {resources}}}]}}\n"
    );
    match one(&yaml) {
        Object::Pod(pod) => pod,
        other => panic!("{other:?}"),
    }
}

fn quota(name: &str, hard: &str) -> ResourceQuota {
    let yaml = format!(
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {{name: {name}}}\nspec: {{hard: {hard}}}\n"
    );
    match one(&yaml) {
        Object::ResourceQuota(quota) => quota,
        other => panic!("{other:?}"),
    }
}

fn limit_range(limits: &str) -> LimitRange {
    let yaml = format!(
        "apiVersion: v1\nkind: LimitRange\nmetadata: {{name: limits}}\nspec: {{limits: {limits}}}\n"
    );
    match one(&yaml) {
        Object::LimitRange(range) => range,
        other => panic!("{other:?}"),
    }
}

fn with_ranges(ranges: &[LimitRange]) -> Policy<'_> {
    Policy {
        limit_ranges: ranges.iter().collect(),
        quotas: Vec::new(),
    }
}

fn with_quotas(quotas: &[ResourceQuota]) -> Policy<'_> {
    Policy {
        limit_ranges: Vec::new(),
        quotas: quotas.iter().collect(),
    }
}

/// What `pods` (none ended) use together.
fn used_by(pods: &[&Pod]) -> Usage {
    let mut used = Usage::default();
    for pod in pods {
        used.add(&pod_usage(pod, false));
    }
    used
}

#[test]
fn limit_range_defaults_fill_what_containers_leave_out() {
    let ranges = [limit_range(
        "[{type: Container, default: {memory: 512Mi, cpu: 500m}, defaultRequest: {memory: 256Mi}}]",
    )];
    let mut new = pod("web", "{requests: {cpu: 100m}}");
    admit_pod(&with_ranges(&ranges), &mut Usage::default(), &mut new, None).unwrap();
    let resources = &new.spec.containers[0].resources;
    assert_eq!(resources.limits["memory"], "512Mi");
    assert_eq!(resources.limits["cpu"], "500m");
    assert_eq!(resources.requests["memory"], "256Mi");
    // The container's own request stays; the default request of cpu is the default
    // limit (Kubernetes' LimitRange defaulting), but it was not needed.
    assert_eq!(resources.requests["cpu"], "100m");
    assert_eq!(
        new.metadata.annotations["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: memory request for container app; cpu, memory limit for \
         container app"
    );
}

#[test]
fn limit_range_bounds_refuse_with_kubernetes_messages() {
    let ranges = [limit_range(
        "[{type: Container, min: {memory: 64Mi}, max: {cpu: '1'}}]",
    )];
    let policy = with_ranges(&ranges);
    let mut small = pod("x", "{requests: {memory: 32Mi}, limits: {cpu: 500m}}");
    assert_eq!(
        admit_pod(&policy, &mut Usage::default(), &mut small, None),
        Err("minimum memory usage per Container is 64Mi, but request is 32Mi".to_owned())
    );
    let mut big = pod("x", "{requests: {memory: 64Mi}, limits: {cpu: '2'}}");
    let reason = admit_pod(&policy, &mut Usage::default(), &mut big, None).unwrap_err();
    assert_eq!(
        reason,
        "maximum cpu usage per Container is 1, but limit is 2"
    );
    assert_eq!(
        forbidden(Kind::Pod, "x", &reason),
        "pods \"x\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
    );
    // Both at once are listed together, as Kubernetes aggregates them.
    let mut both = pod(
        "x",
        "{requests: {memory: 32Mi, cpu: '2'}, limits: {cpu: '2'}}",
    );
    assert_eq!(
        admit_pod(&policy, &mut Usage::default(), &mut both, None),
        Err(
            "[minimum memory usage per Container is 64Mi, but request is 32Mi, maximum cpu \
             usage per Container is 1, but limit is 2]"
                .to_owned()
        )
    );
    // The max gives the default limit, and min the default request: a bare pod fits.
    let mut bare = pod("x", "{}");
    admit_pod(&policy, &mut Usage::default(), &mut bare, None).unwrap();
    assert_eq!(bare.spec.containers[0].resources.limits["cpu"], "1");
    assert_eq!(bare.spec.containers[0].resources.requests["memory"], "64Mi");
}

#[test]
fn pod_limits_bound_the_sum_of_containers() {
    let ranges = [limit_range("[{type: Pod, max: {memory: 1Gi}}]")];
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: two}\nspec:\n  containers:\n  \
        - {name: a, image: busybox, resources: {limits: {memory: 768Mi}}}\n  \
        - {name: b, image: busybox, resources: {limits: {memory: 512Mi}}}\n";
    let Object::Pod(mut two) = one(yaml) else {
        panic!("a pod");
    };
    assert_eq!(
        admit_pod(&with_ranges(&ranges), &mut Usage::default(), &mut two, None),
        Err("maximum memory usage per Pod is 1Gi, but limit is 1280Mi".to_owned())
    );
}

#[test]
fn quota_refuses_what_would_exceed_it() {
    let quotas = [quota("q", "{requests.memory: 1Gi, pods: '10'}")];
    let policy = with_quotas(&quotas);
    let running = pod("a", "{requests: {memory: 1Gi}}");
    let mut used = used_by(&[&running]);
    let mut more = pod("x", "{requests: {memory: 512Mi}}");
    let reason = admit_pod(&policy, &mut used, &mut more, None).unwrap_err();
    assert_eq!(
        forbidden(Kind::Pod, "x", &reason),
        "pods \"x\" is forbidden: exceeded quota: q, requested: requests.memory=512Mi, used: \
         requests.memory=1Gi, limited: requests.memory=1Gi"
    );
    assert_eq!(used.get("pods"), 1, "a refused pod adds nothing");
    // What fits is admitted and counted, so the next one is judged with it.
    let mut used = Usage::default();
    let mut first = pod("b", "{requests: {memory: 768Mi}}");
    admit_pod(&policy, &mut used, &mut first, None).unwrap();
    assert_eq!(used.get("requests.memory"), 768 << 20);
    let mut second = pod("c", "{requests: {memory: 512Mi}}");
    assert!(admit_pod(&policy, &mut used, &mut second, None).is_err());
}

#[test]
fn quota_on_compute_makes_containers_state_it() {
    let quotas = [quota(
        "q",
        "{limits.cpu: '2', requests.memory: 1Gi, pods: '5'}",
    )];
    let mut bare = pod("x", "{}");
    assert_eq!(
        admit_pod(
            &with_quotas(&quotas),
            &mut Usage::default(),
            &mut bare,
            None
        ),
        Err(
            "failed quota: q: must specify limits.cpu for: app; requests.memory for: app"
                .to_owned()
        )
    );
    // A LimitRange's defaults come first and satisfy it.
    let ranges = [limit_range(
        "[{type: Container, default: {cpu: 500m, memory: 128Mi}}]",
    )];
    let both = Policy {
        limit_ranges: ranges.iter().collect(),
        quotas: quotas.iter().collect(),
    };
    let mut bare = pod("x", "{}");
    admit_pod(&both, &mut Usage::default(), &mut bare, None).unwrap();
}

#[test]
fn ended_pods_count_only_as_objects() {
    let quotas = [quota("q", "{pods: '1', count/pods: '2'}")];
    let policy = with_quotas(&quotas);
    let done = pod("done", "{}");
    let ended = pod_usage(&done, true);
    assert_eq!(ended.get("pods"), 0);
    assert_eq!(ended.get("count/pods"), 1);
    let mut used = ended;
    let mut next = pod("next", "{}");
    admit_pod(&policy, &mut used, &mut next, None).unwrap();
    // Now `pods` is full (1) and `count/pods` too (2).
    let mut third = pod("third", "{}");
    assert_eq!(
        admit_pod(&policy, &mut used, &mut third, None),
        Err(
            "exceeded quota: q, requested: count/pods=1,pods=1, used: count/pods=2,pods=1, \
             limited: count/pods=2,pods=1"
                .to_owned()
        )
    );
}

#[test]
fn object_counts_refuse_creations_not_updates() {
    let quotas = [quota("objects", "{count/configmaps: '1', services: '5'}")];
    let policy = with_quotas(&quotas);
    let mut used = object_usage(Kind::ConfigMap);
    let config_map = one("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n");
    let service = one(SERVICE);
    assert_eq!(
        admit_object(&policy, &mut used, &config_map, None),
        Err(
            "exceeded quota: objects, requested: count/configmaps=1, used: \
             count/configmaps=1, limited: count/configmaps=1"
                .to_owned()
        )
    );
    admit_object(&policy, &mut used, &config_map, Some(&config_map)).unwrap();
    admit_object(&policy, &mut used, &service, None).unwrap();
    assert_eq!(used.get("services"), 1);
    assert_eq!(
        forbidden(Kind::Deployment, "web", "x"),
        "deployments.apps \"web\" is forbidden: x"
    );
}

#[test]
fn a_pod_applied_again_unchanged_is_not_refused() {
    let quotas = [quota("q", "{requests.memory: 1Gi}")];
    let ranges = [limit_range("[{type: Container, max: {memory: 256Mi}}]")];
    let policy = Policy {
        limit_ranges: ranges.iter().collect(),
        quotas: quotas.iter().collect(),
    };
    // Stored before the quota and the range: already over both.
    let stored = pod("big", "{requests: {memory: 2Gi}, limits: {memory: 2Gi}}");
    let before = pod_usage(&stored, false);
    let mut used = before.clone();
    let mut again = stored.clone();
    admit_pod(&policy, &mut used, &mut again, Some((&stored, &before))).unwrap();
    assert_eq!(used, before);
    // Growing it is refused.
    let mut grown = pod("big", "{requests: {memory: 3Gi}, limits: {memory: 3Gi}}");
    assert!(admit_pod(&policy, &mut used, &mut grown, Some((&stored, &before))).is_err());
}

#[test]
fn claims_are_counted_by_both_names() {
    let quotas = [quota(
        "storage",
        "{count/persistentvolumeclaims: '1', persistentvolumeclaims: '1'}",
    )];
    let policy = with_quotas(&quotas);
    let mut used = Usage::default();
    let claim = one(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\nspec: \
         {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n",
    );
    admit_object(&policy, &mut used, &claim, None).unwrap();
    let refused = admit_object(&policy, &mut used, &claim, None);
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("count/persistentvolumeclaims=1")),
        "{refused:?}"
    );
}

#[test]
fn a_scoped_quota_judges_only_the_pods_of_its_classes() {
    let mut quota = quota("high-cpu", "{requests.cpu: '1'}");
    quota.spec.scope_selector = Some(crate::model::quota_scope::ScopeSelector {
        match_expressions: vec![crate::model::quota_scope::ScopeRequirement {
            scope_name: "PriorityClass".into(),
            operator: "In".into(),
            values: vec!["high".into()],
        }],
    });
    let quotas = [quota];
    let policy = with_quotas(&quotas);
    let of_class = |name: &str, class: &str, resources: &str| {
        let mut made = pod(name, resources);
        made.spec.priority_class_name = Some(class.to_owned());
        made
    };
    // Out of scope: neither the CPU request rule nor the limit applies.
    let mut used = Usage::default();
    let mut low = of_class("low", "low", "{requests: {cpu: '4'}}");
    admit_pod(&policy, &mut used, &mut low, None).unwrap();
    let mut bare = of_class("bare", "low", "{}");
    admit_pod(&policy, &mut used, &mut bare, None).unwrap();
    // In scope: counted from the pods of the class alone.
    let mut first = of_class("first", "high", "{requests: {cpu: 600m}}");
    admit_pod(&policy, &mut used, &mut first, None).unwrap();
    let mut second = of_class("second", "high", "{requests: {cpu: 600m}}");
    assert_eq!(
        admit_pod(&policy, &mut used, &mut second, None),
        Err(
            "exceeded quota: high-cpu, requested: requests.cpu=600m, used: requests.cpu=600m, \
             limited: requests.cpu=1"
                .to_owned()
        )
    );
    let mut unstated = of_class("unstated", "high", "{}");
    assert_eq!(
        admit_pod(&policy, &mut used, &mut unstated, None),
        Err("failed quota: high-cpu: must specify requests.cpu for: app".to_owned())
    );
}

/// A pod with pod-level `resources` over one container with `container` resources.
fn pod_level(name: &str, resources: &str, container: &str) -> Pod {
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\n\
         spec: {{resources: {resources}, containers: [{{name: app, image: busybox, \
         resources: {container}}}]}}\n"
    );
    match one(&yaml) {
        Object::Pod(pod) => pod,
        other => panic!("{other:?}"),
    }
}

#[test]
fn quotas_count_pod_level_amounts_instead_of_the_containers() {
    let pod = pod_level(
        "pooled",
        "{requests: {cpu: 500m}, limits: {cpu: '1', memory: 256Mi}}",
        "{requests: {cpu: 100m, memory: 64Mi}}",
    );
    let usage = pod_usage(&pod, false);
    assert_eq!(
        usage.get("requests.cpu"),
        500,
        "the pod's request, not the 100m"
    );
    assert_eq!(usage.get("cpu"), 500);
    assert_eq!(usage.get("limits.cpu"), 1000);
    assert_eq!(usage.get("limits.memory"), 256 << 20);
    // No pod-level memory request given: defaulted from the container's 64Mi.
    assert_eq!(usage.get("requests.memory"), 64 << 20);
}

#[test]
fn pod_level_amounts_state_what_a_quota_requires() {
    let quotas = [quota("compute", "{limits.cpu: '2', limits.memory: 1Gi}")];
    let mut bare = pod("bare", "{}");
    let refused = admit_pod(
        &with_quotas(&quotas),
        &mut Usage::default(),
        &mut bare,
        None,
    );
    assert_eq!(
        refused.unwrap_err(),
        "failed quota: compute: must specify limits.cpu for: app; limits.memory for: app"
    );
    let mut pooled = pod_level("pooled", "{limits: {cpu: '1', memory: 512Mi}}", "{}");
    let mut used = Usage::default();
    admit_pod(&with_quotas(&quotas), &mut used, &mut pooled, None).unwrap();
    assert_eq!(used.get("limits.memory"), 512 << 20);
}

#[test]
fn pod_limit_ranges_judge_pod_level_amounts() {
    let ranges = [limit_range("[{type: Pod, max: {memory: 256Mi}}]")];
    let mut small_containers = pod_level(
        "big",
        "{limits: {memory: 512Mi}}",
        "{limits: {memory: 64Mi}}",
    );
    let refused = admit_pod(
        &with_ranges(&ranges),
        &mut Usage::default(),
        &mut small_containers,
        None,
    );
    assert!(
        refused
            .unwrap_err()
            .contains("maximum memory usage per Pod is 256Mi"),
        "the pod's own 512Mi is what counts"
    );
}

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n\
                       spec: {ports: [{name: http, port: 80}, {name: https, port: 443}]}\n";

#[test]
fn services_count_their_load_balancers_and_node_ports() {
    let quotas = [quota(
        "services",
        "{services.loadbalancers: '1', services.nodeports: '2'}",
    )];
    let policy = with_quotas(&quotas);
    let mut used = Usage::default();
    let plain = one(SERVICE);
    admit_object(&policy, &mut used, &plain, None).unwrap();
    assert_eq!(used.get("services.nodeports"), 0);
    // Turned NodePort on update, its two ports take both node ports.
    let node_ports = one(&SERVICE.replace("spec: {", "spec: {type: NodePort, "));
    admit_object(&policy, &mut used, &node_ports, Some(&plain)).unwrap();
    assert_eq!(used.get("services.nodeports"), 2);
    let balancer = one(&SERVICE
        .replace("name: web", "name: lb")
        .replace("spec: {", "spec: {type: LoadBalancer, "));
    let refused = admit_object(&policy, &mut used, &balancer, None);
    assert_eq!(
        refused,
        Err(
            "exceeded quota: services, requested: services.nodeports=2, used: \
             services.nodeports=2, limited: services.nodeports=2"
                .to_owned()
        )
    );
    let without_ports = one(&SERVICE.replace("name: web", "name: lb").replace(
        "spec: {",
        "spec: {type: LoadBalancer, allocateLoadBalancerNodePorts: false, ",
    ));
    admit_object(&policy, &mut used, &without_ports, None).unwrap();
    assert_eq!(used.get("services.loadbalancers"), 1);
}
