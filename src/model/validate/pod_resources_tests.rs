use crate::model::validate::tests::{assert_problems, problems};

/// A pod with pod-level `resources` (YAML flow map) and the containers given.
fn pod(resources: &str, containers: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  resources: {resources}\n  \
         containers: {containers}\n"
    )
}

const PLAIN: &str = "[{name: c, image: i}]";

#[test]
fn the_documentation_examples_are_valid() {
    assert_problems(
        &pod("{limits: {cpu: '1'}, requests: {cpu: '0.5'}}", PLAIN),
        &[],
    );
    assert_problems(
        &pod(
            "{requests: {memory: 100Mi}, limits: {memory: 200Mi}}",
            PLAIN,
        ),
        &[],
    );
    assert_problems(&pod("{limits: {pids: '2048'}}", PLAIN), &[]);
    assert_problems(
        &pod(
            "{limits: {cpu: '1', memory: 200Mi}, requests: {cpu: '1', memory: 100Mi}}",
            "[{name: a, image: i, resources: {limits: {cpu: '0.5', memory: 100Mi}, \
             requests: {cpu: '0.5', memory: 50Mi}}}, {name: b, image: i}]",
        ),
        &[],
    );
}

#[test]
fn only_cpu_memory_and_pid_limits_are_accepted() {
    assert_problems(
        &pod(
            "{requests: {pids: '200', ephemeral-storage: 1Gi}, limits: {hugepages-2Mi: 2Mi, \
             example.com/dongle: 1}, claims: []}",
            PLAIN,
        ),
        &[
            "spec.resources.claims: field not supported by berth",
            "spec.resources.requests.ephemeral-storage: unsupported resource name \
             \"ephemeral-storage\": supported values: \"cpu\", \"memory\", and \"pids\" in limits",
            "spec.resources.requests.pids: forbidden: pids may be set in limits only",
            "spec.resources.limits.example.com/dongle: unsupported resource name \
             \"example.com/dongle\": supported values: \"cpu\", \"memory\", and \"pids\" in limits",
            "spec.resources.limits.hugepages-2Mi: unsupported resource name \"hugepages-2Mi\": \
             berth has no huge pages",
        ],
    );
}

#[test]
fn pid_limits_are_whole_and_in_range() {
    assert_problems(
        &pod("{limits: {pids: '100'}}", PLAIN),
        &["spec.resources.limits.pids: must be between 128 and 16384, inclusive"],
    );
    assert_problems(
        &pod("{limits: {pids: 20000}}", PLAIN),
        &["spec.resources.limits.pids: must be between 128 and 16384, inclusive"],
    );
    assert_eq!(problems(&pod("{limits: {pids: 500m}}", PLAIN)).len(), 1);
    assert_problems(&pod("{limits: {pids: 128}}", PLAIN), &[]);
}

#[test]
fn requests_stay_within_limits() {
    assert_problems(
        &pod(
            "{requests: {cpu: '2', memory: 1Gi}, limits: {cpu: '1', memory: 1Gi}}",
            PLAIN,
        ),
        &["spec.resources.requests.cpu: must be less than or equal to cpu limit of 1"],
    );
    // The request Kubernetes would default from the containers' requests is held to the
    // limit as well.
    assert_problems(
        &pod(
            "{limits: {memory: 64Mi}}",
            "[{name: c, image: i, resources: {requests: {memory: 100Mi}}}]",
        ),
        &[
            "spec.resources.requests.memory: defaulted to the aggregate container requests of \
           100Mi, which must be less than or equal to memory limit of 64Mi",
        ],
    );
}

#[test]
fn pod_requests_cover_the_containers_aggregate() {
    // Two app containers and a sidecar run together: 1 + 1 + 0.5 CPU.
    let containers = "[{name: a, image: i, resources: {requests: {cpu: '1'}}}, \
                      {name: b, image: i, resources: {limits: {cpu: '1', memory: 2Gi}}}]";
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  resources: {{requests: \
         {{cpu: '2', memory: 1Gi}}}}\n  initContainers: [{{name: s, image: i, restartPolicy: \
         Always, resources: {{requests: {{cpu: 500m}}}}}}]\n  containers: {containers}\n"
    );
    assert_problems(
        &yaml,
        &[
            "spec.resources.requests.cpu: must be greater than or equal to aggregate container \
             requests of 2500m",
            "spec.resources.requests.memory: must be greater than or equal to aggregate \
             container requests of 2Gi",
        ],
    );
}

#[test]
fn no_container_is_limited_above_the_pod() {
    assert_problems(
        &pod(
            "{limits: {cpu: 500m}}",
            "[{name: a, image: i}, {name: b, image: i, resources: {limits: {cpu: '1'}, \
             requests: {cpu: 100m}}}]",
        ),
        &[
            "spec.containers[1].resources.limits.cpu: must be less than or equal to pod limits \
           of 500m",
        ],
    );
}

#[test]
fn templates_are_checked_with_their_paths() {
    let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: \
                {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: a}}\n    \
                spec:\n      resources: {limits: {cpu: 100m}}\n      containers: [{name: c, \
                image: i, resources: {limits: {cpu: 200m}}}]\n";
    assert_problems(
        yaml,
        &[
            "spec.template.spec.resources.requests.cpu: defaulted to the aggregate container \
             requests of 200m, which must be less than or equal to cpu limit of 100m",
            "spec.template.spec.containers[0].resources.limits.cpu: must be less than or equal \
             to pod limits of 100m",
        ],
    );
}

/// A pod whose one container has the `resizePolicy` given (YAML flow list).
fn resize(policy: &str, restart: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  restartPolicy: {restart}\n  \
         containers: [{{name: c, image: i, resizePolicy: {policy}}}]\n"
    )
}

#[test]
fn resize_policies_name_cpu_or_memory_once_with_a_known_policy() {
    assert_problems(
        &resize(
            "[{resourceName: cpu, restartPolicy: NotRequired}, {resourceName: memory, \
             restartPolicy: RestartContainer}]",
            "Always",
        ),
        &[],
    );
    assert_problems(
        &resize(
            "[{resourceName: cpu, restartPolicy: NotRequired}, {resourceName: cpu, \
             restartPolicy: Sometimes}, {resourceName: pids, restartPolicy: NotRequired}, {}]",
            "Always",
        ),
        &[
            "spec.containers[0].resizePolicy[1].resourceName: duplicate value \"cpu\"",
            "spec.containers[0].resizePolicy[1].restartPolicy: unsupported value \"Sometimes\": \
             supported values: \"NotRequired\", \"RestartContainer\"",
            "spec.containers[0].resizePolicy[2].resourceName: unsupported value \"pids\": \
             supported values: \"cpu\", \"memory\"",
            "spec.containers[0].resizePolicy[3].resourceName: required value",
            "spec.containers[0].resizePolicy[3].restartPolicy: required value",
        ],
    );
}

#[test]
fn a_pod_that_never_restarts_resizes_without_restarts_only() {
    assert_problems(
        &resize(
            "[{resourceName: memory, restartPolicy: RestartContainer}]",
            "Never",
        ),
        &[
            "spec.containers[0].resizePolicy[0].restartPolicy: must be 'NotRequired' when \
           `restartPolicy` is 'Never'",
        ],
    );
}

#[test]
fn init_containers_other_than_sidecars_have_no_resize_policy() {
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  initContainers:\n  - \
                {name: i, image: i, resizePolicy: [{resourceName: cpu, restartPolicy: \
                NotRequired}]}\n  - {name: s, image: i, restartPolicy: Always, resizePolicy: \
                [{resourceName: cpu, restartPolicy: NotRequired}]}\n  containers: [{name: c, \
                image: i}]\n";
    assert_problems(
        yaml,
        &[
            "spec.initContainers[0].resizePolicy: forbidden: may not be set for init containers \
           without restartPolicy=Always",
        ],
    );
}
