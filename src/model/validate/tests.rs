use serde_json::Value;

use super::*;

/// `path: message` lines for one YAML document.
pub(super) fn problems(yaml: &str) -> Vec<String> {
    let doc: Value = serde_yaml_ng::from_str(yaml).expect("test YAML parses");
    validate_document(&doc)
        .errors
        .into_iter()
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect()
}

fn pod_with_container(container: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - {container}\n"
    )
}

fn deployment(spec: &str) -> String {
    format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\nspec:\n{spec}")
}

const TEMPLATE: &str = "  template:\n    metadata: {labels: {app: a}}\n    spec: {containers: [{name: c, image: i}]}\n";

pub(super) fn assert_problems(yaml: &str, expected: &[&str]) {
    assert_eq!(problems(yaml), expected, "for:\n{yaml}");
}

#[test]
fn valid_documents_have_no_problems() {
    assert_problems(&pod_with_container("{name: c, image: i}"), &[]);
    assert_problems(
        &deployment(&format!(
            "  selector: {{matchLabels: {{app: a}}}}\n{TEMPLATE}"
        )),
        &[],
    );
    assert_problems(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: n}\nspec: {}\n",
        &[],
    );
}

#[test]
fn type_errors() {
    assert_problems(
        &deployment(&format!(
            "  replicas: \"3\"\n  selector: {{matchLabels: {{app: a}}}}\n{TEMPLATE}"
        )),
        &["spec.replicas: expected integer"],
    );
    assert_problems(
        &deployment(&format!(
            "  replicas: 1.5\n  selector: {{matchLabels: {{app: a}}}}\n{TEMPLATE}"
        )),
        &["spec.replicas: expected integer"],
    );
    assert_problems(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {version: 2}}\nspec:\n  hostNetwork: \"yes\"\n  containers: {name: c}\n",
        &[
            "metadata.labels.version: expected string",
            "spec.containers: expected list",
            "spec.hostNetwork: expected boolean",
        ],
    );
    assert_problems(
        &pod_with_container("{name: c, image: i, command: sh, args: [1], env: [x], resources: []}"),
        &[
            "spec.containers[0].command: expected list",
            "spec.containers[0].args[0]: expected string",
            "spec.containers[0].env[0]: expected object",
            "spec.containers[0].resources: expected object",
        ],
    );
    assert_problems(
        "apiVersion: v1\nkind: Pod\nmetadata: []\nspec: 3\n",
        &["metadata: expected object", "spec: expected object"],
    );
}

#[test]
fn container_rules() {
    assert_problems(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: web, image: a}\n  - {name: web, image: 'a b'}\n  - {name: Web_1}\n  - {image: x, imagePullPolicy: Sometimes, workingDir: tmp}\n",
        &[
            "spec.containers[1].name: duplicate value \"web\"",
            "spec.containers[1].image: invalid image \"a b\": must not contain whitespace",
            &format!("spec.containers[2].name: invalid name \"Web_1\": {}", crate::model::names::DNS1123_LABEL_RULE),
            "spec.containers[2].image: required value",
            "spec.containers[3].name: required value",
            "spec.containers[3].imagePullPolicy: unsupported value \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
            "spec.containers[3].workingDir: invalid path \"tmp\": must be an absolute path",
        ],
    );
}

#[test]
fn env_rules() {
    assert_problems(
        &pod_with_container(
            "{name: c, image: i, env: [{name: A=B, value: x}, {value: y}, {name: C, valueFrom: {}}, {name: D, value: 1}]}",
        ),
        &[
            &format!("spec.containers[0].env[0].name: invalid name \"A=B\": {}", super::env::ENV_NAME_RULE),
            "spec.containers[0].env[1].name: required value",
            "spec.containers[0].env[2].valueFrom: must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            "spec.containers[0].env[3].value: expected string",
        ],
    );
}

#[test]
fn port_rules() {
    assert_problems(
        &pod_with_container(
            "{name: c, image: i, ports: [{containerPort: 0}, {containerPort: 70000, hostPort: 80, protocol: HTTP}, {name: http, containerPort: 80}, {name: http, containerPort: 81}, {name: '8080'}]}",
        ),
        &[
            "spec.containers[0].ports[0].containerPort: must be between 1 and 65535, inclusive",
            "spec.containers[0].ports[1].containerPort: must be between 1 and 65535, inclusive",
            "spec.containers[0].ports[1].protocol: unsupported value \"HTTP\": supported values: \"TCP\", \"UDP\", \"SCTP\"",
            "spec.containers[0].ports[3].name: duplicate value \"http\"",
            "spec.containers[0].ports[4].name: invalid port name \"8080\": must be at most 15 lowercase letters, digits or '-', with at least one letter and no leading, trailing or doubled '-'",
            "spec.containers[0].ports[4].containerPort: required value",
        ],
    );
}

#[test]
fn host_ports_only_on_the_host_network_and_equal_to_the_container_port() {
    let pod = |host_network: bool| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  hostNetwork: \
             {host_network}\n  containers:\n  - {{name: c, image: i, ports: [{{containerPort: \
             80}}, {{containerPort: 8080, hostPort: 9090}}, {{containerPort: 81, hostPort: 81}}]}}\n"
        )
    };
    assert_problems(
        &pod(true),
        &[
            "spec.containers[0].ports[1].hostPort: invalid value 9090: must match `containerPort` \
           when `hostNetwork` is true",
        ],
    );
    // Off the host network the agent forwards the host port to the pod.
    assert_problems(&pod(false), &[]);
}

#[test]
fn host_ports_are_forwarded_for_tcp_and_udp_only() {
    assert_problems(
        &pod_with_container(
            "{name: c, image: i, ports: [{containerPort: 53, hostPort: 53, protocol: UDP, hostIP: 10.0.0.1}, {containerPort: 9, hostPort: 9, protocol: SCTP}, {containerPort: 8, hostIP: 'x'}]}",
        ),
        &[
            "spec.containers[0].ports[1].hostPort: forbidden: berth forwards host ports for TCP and UDP only",
            "spec.containers[0].ports[2].hostIP: invalid value \"x\": must be a valid IPv4 address",
        ],
    );
}

#[test]
fn dns_policy_config_hostname_and_aliases() {
    assert_problems(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  dnsPolicy: None\n  \
         hostname: Web_1\n  subdomain: web\n  dnsConfig: {nameservers: [1.1.1.1, 8.8.8.8, \
         9.9.9.9, 10.0.0.1, x], searches: [a.example., -bad], options: [{name: ndots, value: \
         '2'}, {value: x}]}\n  hostAliases: [{ip: 10.1.2.3, hostnames: [db.local, DB]}, \
         {hostnames: [x]}]\n  containers: [{name: c, image: i}]\n",
        &[
            "spec.dnsConfig.nameservers: must not have more than 3 nameservers",
            "spec.dnsConfig.nameservers[4]: invalid value \"x\": must be a valid IP address",
            "spec.dnsConfig.searches[1]: invalid value \"-bad\": must be a lowercase RFC 1123 subdomain: at most 253 characters of dot-separated labels made of lowercase letters, digits or '-', each starting and ending with a letter or digit",
            "spec.dnsConfig.options[1].name: required value",
            "spec.hostname: invalid value \"Web_1\": must be a lowercase RFC 1123 label: at most 63 lowercase letters, digits or '-', starting and ending with a letter or digit",
            "spec.hostAliases[0].hostnames[1]: invalid value \"DB\": must be a lowercase RFC 1123 subdomain: at most 253 characters of dot-separated labels made of lowercase letters, digits or '-', each starting and ending with a letter or digit",
            "spec.hostAliases[1].ip: required value",
        ],
    );
    assert_problems(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  dnsPolicy: None\n  \
         containers: [{name: c, image: i}]\n",
        &["spec.dnsConfig: required value: must provide `dnsConfig` when `dnsPolicy` is None"],
    );
    assert_problems(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  dnsPolicy: Cluster\n  \
         containers: [{name: c, image: i}]\n",
        &["spec.dnsPolicy: unsupported value \"Cluster\": supported values: \"ClusterFirst\", \"ClusterFirstWithHostNet\", \"Default\", \"None\""],
    );
}

#[test]
fn namespace_pod_security_labels_name_levels() {
    let namespace = |labels: &str| {
        format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: n, labels: {{{labels}}}}}\n")
    };
    assert_problems(
        &namespace(
            "pod-security.kubernetes.io/enforce: privileged, \
             pod-security.kubernetes.io/enforce-version: latest, \
             pod-security.kubernetes.io/warn: restricted",
        ),
        &[],
    );
    assert_problems(
        &namespace("pod-security.kubernetes.io/enforce: lax, pod-security.kubernetes.io/audit: ''"),
        &[
            "metadata.labels.pod-security.kubernetes.io/enforce: unsupported value \"lax\": \
             supported values: \"privileged\", \"baseline\", \"restricted\"",
            "metadata.labels.pod-security.kubernetes.io/audit: unsupported value \"\": \
             supported values: \"privileged\", \"baseline\", \"restricted\"",
        ],
    );
    // Only a Namespace's labels choose a level.
    assert_problems(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: \
         {pod-security.kubernetes.io/enforce: lax}}\nspec: {containers: [{name: c, image: i}]}\n",
        &[],
    );
}

#[test]
fn resource_rules() {
    assert_problems(
        &pod_with_container(
            "{name: c, image: i, resources: {requests: {cpu: '2', memory: 1Gi, nvidia.com/gpu: 1}, limits: {cpu: 500m, memory: 1Gi, ephemeral-storage: 1Gi}, claims: []}}",
        ),
        &[
            "spec.containers[0].resources.claims: field not supported by berth",
            "spec.containers[0].resources.limits.ephemeral-storage: unsupported resource name \"ephemeral-storage\": supported values: \"cpu\", \"memory\" and extended resources (\"example.com/dongle\")",
            "spec.containers[0].resources.requests.cpu: must be less than or equal to cpu limit",
            "spec.containers[0].resources.limits: required value: Limit must be set for non overcommitable resources",
        ],
    );
    // Extended resources: whole counts, requests equal to limits.
    assert_problems(
        &pod_with_container(
            "{name: c, image: i, resources: {requests: {example.com/dongle: 2}, limits: {example.com/dongle: 1, berth.dev/camera: 500m}}}",
        ),
        &[
            "spec.containers[0].resources.limits.berth.dev/camera: invalid value \"500m\": must be an integer",
            "spec.containers[0].resources.requests.example.com/dongle: must be equal to example.com/dongle limit of 1",
        ],
    );
    assert_problems(
        &pod_with_container("{name: c, image: i, resources: {limits: {example.com/dongle: 1}}}"),
        &[],
    );
    assert_problems(
        &pod_with_container("{name: c, image: i, resources: {limits: {cpu: -1, memory: true}}}"),
        &[
            "spec.containers[0].resources.limits.cpu: invalid quantity \"-1\"",
            "spec.containers[0].resources.limits.memory: expected string",
        ],
    );
}

#[test]
fn numbers_out_of_range_are_rejected_with_their_field() {
    // Each of these once passed validation and then wrapped or panicked in the agent.
    assert_problems(
        &pod_with_container(
            "{name: c, image: i, resources: {requests: {cpu: '1e15', memory: 8Ei}, limits: {cpu: '1e15', memory: '99999999999999999999'}}}",
        ),
        &[
            "spec.containers[0].resources.requests.cpu: quantity \"1e15\" is too large: must be less than or equal to 100000000 cores",
            "spec.containers[0].resources.requests.memory: quantity \"8Ei\" is too large: must be less than or equal to 9223372036854775807 bytes",
            "spec.containers[0].resources.limits.cpu: quantity \"1e15\" is too large: must be less than or equal to 100000000 cores",
            "spec.containers[0].resources.limits.memory: quantity \"99999999999999999999\" is too large: must be less than or equal to 9223372036854775807 bytes",
        ],
    );
    // The largest values are accepted (the agent saturates its deadlines).
    assert_problems(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  terminationGracePeriodSeconds: 9223372036854775807\n  containers: [{name: c, image: i, resources: {limits: {cpu: 100M, memory: 7Ei}}, livenessProbe: {exec: {command: [x]}, periodSeconds: 2147483647}}]\n",
        &[],
    );
    assert_problems(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  terminationGracePeriodSeconds: 9223372036854775808\n  containers: [{name: c, image: i, livenessProbe: {exec: {command: [x]}, periodSeconds: 2147483648}}]\n",
        &[
            "spec.containers[0].livenessProbe.periodSeconds: must be less than or equal to 2147483647",
            "spec.terminationGracePeriodSeconds: must be less than or equal to 9223372036854775807",
        ],
    );
}

#[test]
fn pod_spec_rules() {
    assert_problems(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  restartPolicy: Sometimes\n  terminationGracePeriodSeconds: -1\n  nodeName: Node_1\n  nodeSelector: {kubernetes.io/arch: arm64, bad key: x}\n  hostPID: true\n",
        &[
            "spec.hostPID: field not supported by berth",
            "spec.containers: required value",
            "spec.restartPolicy: unsupported value \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            "spec.nodeSelector: invalid key \"bad key\": the name part must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit, with an optional DNS subdomain prefix and '/'",
            "spec.terminationGracePeriodSeconds: must be greater than or equal to 0",
            &format!("spec.nodeName: invalid name \"Node_1\": {}", crate::model::names::DNS1123_SUBDOMAIN_RULE),
        ],
    );
    assert_problems(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n",
        &["spec.containers: required value"],
    );
}

#[test]
fn share_process_namespace_is_a_boolean_of_pods_and_templates() {
    let pod = |value: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  shareProcessNamespace: {value}\n  containers: [{{name: c, image: i}}]\n"
        )
    };
    assert_problems(&pod("true"), &[]);
    assert_problems(&pod("false"), &[]);
    assert_problems(
        &pod("\"yes\""),
        &["spec.shareProcessNamespace: expected boolean"],
    );
    let template = "  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: a}}\n    spec: {shareProcessNamespace: true, containers: [{name: c, image: i}]}\n";
    assert_problems(&deployment(template), &[]);
    // Kubernetes refuses it together with hostPID; berth refuses hostPID on its own.
    assert_problems(
        &pod("true\n  hostPID: true"),
        &["spec.hostPID: field not supported by berth"],
    );
}

#[test]
fn metadata_rules() {
    assert_problems(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  namespace: My_NS\n  generateName: x-\n  labels: {-bad: ok, good: -bad}\n  annotations: {example.com/note: any text at all, 'no spaces': x}\nspec: {containers: [{name: c, image: i}]}\n",
        &[
            "metadata.generateName: field not supported by berth",
            "metadata.name: required value",
            &format!("metadata.namespace: invalid name \"My_NS\": {}", crate::model::names::DNS1123_LABEL_RULE),
            "metadata.labels: invalid key \"-bad\": the name part must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit, with an optional DNS subdomain prefix and '/'",
            "metadata.labels.good: invalid label value \"-bad\": must be empty or at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
            "metadata.annotations: invalid key \"no spaces\": the name part must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit, with an optional DNS subdomain prefix and '/'",
        ],
    );
    // Namespace names are labels (no dots); other names may be subdomains.
    let ns = problems(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: a.b}\nspec: {finalizers: []}\n",
    );
    assert_eq!(ns.len(), 2, "{ns:?}");
    assert!(ns[0].starts_with("metadata.name: invalid name \"a.b\""));
    assert_eq!(ns[1], "spec.finalizers: field not supported by berth");
    assert_problems(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a.b, uid: x, resourceVersion: '1', generation: 2, creationTimestamp: null}\nspec: {containers: [{name: c, image: i}]}\n",
        &[],
    );
}

#[test]
fn kind_and_api_version_rules() {
    assert_problems(
        "apiVersion: v1\nkind: Gateway\nspec: {}\n",
        &["kind: unsupported kind \"Gateway\""],
    );
    assert_problems(
        "apiVersion: v1\nkind: Deployment\nmetadata: {name: d}\n",
        &[
            "apiVersion: unsupported apiVersion \"v1\" for Deployment",
            "spec.selector: required value",
            "spec.template: required value",
        ],
    );
    assert_problems(
        "kind: 7\napiVersion: v1\nextra: 1\n",
        &["kind: expected string"],
    );
}

#[test]
fn selector_rules() {
    assert_problems(
        &deployment(&format!(
            "  selector: {{matchLabels: {{app: b}}}}\n{TEMPLATE}"
        )),
        &["spec.selector.matchLabels: does not match template labels"],
    );
    assert_problems(
        &deployment(&format!(
            "  selector: {{matchLabels: {{}}, matchExpressions: []}}\n{TEMPLATE}"
        )),
        &[
            "spec.selector.matchExpressions: field not supported by berth",
            "spec.selector.matchLabels: required value",
        ],
    );
    assert_problems(&deployment(TEMPLATE), &["spec.selector: required value"]);
}

#[test]
fn template_rules() {
    assert_problems(
        &deployment(
            "  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {name: x, labels: {app: a}}\n    spec: {restartPolicy: Never, containers: [{name: c, image: i}]}\n",
        ),
        // The template's name is accepted and ignored, as Kubernetes does.
        &["spec.template.spec.restartPolicy: unsupported value \"Never\": supported values: \"Always\""],
    );
    assert_problems(
        &deployment(
            "  selector: {matchLabels: {app: a}}\n  template: {metadata: {labels: {app: a}}}\n",
        ),
        &["spec.template.spec.containers: required value"],
    );
}

#[test]
fn strategy_rules() {
    let with_strategy = |strategy: &str| {
        deployment(&format!(
            "  selector: {{matchLabels: {{app: a}}}}\n  strategy: {strategy}\n{TEMPLATE}"
        ))
    };
    assert_problems(
        &with_strategy("{type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 50%}}"),
        &[],
    );
    assert_problems(
        &with_strategy("{type: Recreate, rollingUpdate: {maxSurge: 1}}"),
        &["spec.strategy.rollingUpdate: may not be specified when strategy type is \"Recreate\""],
    );
    assert_problems(
        &with_strategy("{type: BlueGreen}"),
        &["spec.strategy.type: unsupported value \"BlueGreen\": supported values: \"RollingUpdate\", \"Recreate\""],
    );
    assert_problems(
        &with_strategy("{rollingUpdate: {maxSurge: 0, maxUnavailable: 0%}}"),
        &["spec.strategy.rollingUpdate.maxUnavailable: may not be 0 when maxSurge is 0"],
    );
    assert_problems(
        &with_strategy("{rollingUpdate: {maxSurge: -1, maxUnavailable: 150%, minReadySeconds: 1}}"),
        &[
            "spec.strategy.rollingUpdate.minReadySeconds: field not supported by berth",
            "spec.strategy.rollingUpdate.maxSurge: must be greater than or equal to 0",
            "spec.strategy.rollingUpdate.maxUnavailable: must not be greater than 100%",
        ],
    );
    assert_problems(
        &with_strategy("{rollingUpdate: {maxSurge: 'lots', maxUnavailable: true}}"),
        &[
            "spec.strategy.rollingUpdate.maxSurge: invalid value \"lots\": must be a non-negative integer or a percentage like \"25%\"",
            "spec.strategy.rollingUpdate.maxUnavailable: expected integer or string",
        ],
    );
}

#[test]
fn replicas_range() {
    let with_replicas = |n: &str| {
        deployment(&format!(
            "  replicas: {n}\n  selector: {{matchLabels: {{app: a}}}}\n{TEMPLATE}"
        ))
    };
    assert_problems(
        &with_replicas("-1"),
        &["spec.replicas: must be greater than or equal to 0"],
    );
    assert_problems(
        &with_replicas("3000000000"),
        &["spec.replicas: must be less than or equal to 2147483647"],
    );
    assert_problems(&with_replicas("0"), &[]);
}

#[test]
fn config_maps_and_secrets_check_keys_and_payloads() {
    assert_problems(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {app.conf: x}\nbinaryData: {logo.png: iVBORw==}\nimmutable: true\n",
        &[],
    );
    assert_problems(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a/b: x, k: 1}\nbinaryData: {k: 'not base64'}\nspec: {}\n",
        &[
            "spec: field not supported by berth",
            "data.k: expected string",
            "data[a/b]: invalid key \"a/b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            "binaryData[k]: invalid base64 value",
        ],
    );
    assert_problems(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {password: czNjcmV0}\nstringData: {user: admin}\n",
        &[],
    );
    assert_problems(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {password: s3cret}\n",
        &["data[password]: invalid base64 value"],
    );
    assert_problems(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/dockerconfigjson\nstringData: {other: x}\n",
        &["data[.dockerconfigjson]: required value for a Secret of type kubernetes.io/dockerconfigjson"],
    );
    assert_problems(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/dockerconfigjson\nstringData: {.dockerconfigjson: '{\"registries\": {}}'}\n",
        &["data[.dockerconfigjson]: must hold an \"auths\" object of registry credentials"],
    );
    let big = "x".repeat(1024 * 1024 + 1);
    let problems = problems(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata: {{big: {big}}}\n"
    ));
    assert_eq!(problems.len(), 1);
    assert!(problems[0].starts_with("data: too long"), "{problems:?}");
}

#[test]
fn pull_secret_references_need_names() {
    assert_problems(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  imagePullSecrets: [{name: regcred}, {}, {name: Bad_Name, key: x}]\n  containers: [{name: c, image: i}]\n",
        &[
            "spec.imagePullSecrets[1].name: required value",
            "spec.imagePullSecrets[2].key: field not supported by berth",
            "spec.imagePullSecrets[2].name: invalid name \"Bad_Name\": must be a lowercase RFC 1123 subdomain: at most 253 characters of dot-separated labels made of lowercase letters, digits or '-', each starting and ending with a letter or digit",
        ],
    );
}

#[test]
fn node_affinity_and_tolerations_are_checked_field_by_field() {
    let pod = |extra: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers: [{{name: c, image: i}}]\n{extra}"
        )
    };
    let affinity = |expression: &str| {
        pod(&format!(
            "  affinity: {{nodeAffinity: {{requiredDuringSchedulingIgnoredDuringExecution: {{nodeSelectorTerms: [{{matchExpressions: [{expression}]}}]}}}}}}\n"
        ))
    };
    assert_problems(&affinity("{key: disk, operator: In, values: [ssd]}"), &[]);
    assert_problems(&affinity("{key: gpu, operator: Exists}"), &[]);
    let at = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0]";
    assert_problems(
        &affinity("{key: disk, operator: Gt, values: ['3']}"),
        &[&format!("{at}.operator: unsupported value \"Gt\": supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\"")],
    );
    assert_problems(
        &affinity("{key: disk, operator: In}"),
        &[&format!(
            "{at}.values: must be specified when `operator` is 'In' or 'NotIn'"
        )],
    );
    let preferred = |term: &str| {
        pod(&format!(
            "  affinity: {{nodeAffinity: {{preferredDuringSchedulingIgnoredDuringExecution: [{term}]}}}}\n"
        ))
    };
    assert_problems(
        &preferred(
            "{weight: 10, preference: {matchExpressions: [{key: camera, operator: Exists}]}}",
        ),
        &[],
    );
    let at = "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]";
    assert_problems(
        &preferred("{weight: 0, preference: {matchExpressions: [{key: camera, operator: On}]}}"),
        &[
            &format!("{at}.weight: must be between 1 and 100, inclusive"),
            &format!("{at}.preference.matchExpressions[0].operator: unsupported value \"On\": supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\""),
        ],
    );
    assert_problems(&pod("  affinity: {podAntiAffinity: {}}\n"), &[]);
    assert_problems(
        &pod(
            "  affinity:\n    podAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      \
             - labelSelector: {matchExpressions: [{key: app, operator: In}]}\n        \
             namespaceSelector: {}\n",
        ),
        &[
            "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].namespaceSelector: \
             field not supported by berth",
            "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: \
             required value",
            "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector\
             .matchExpressions[0].values: must be specified when `operator` is 'In' or 'NotIn'",
        ],
    );
    assert_problems(
        &pod(
            "  topologySpreadConstraints:\n  - {maxSkew: 0, topologyKey: zone, whenUnsatisfiable: DoNotSchedule}\n  \
             - {maxSkew: 1, topologyKey: zone, whenUnsatisfiable: DoNotSchedule}\n  \
             - {maxSkew: 1, topologyKey: zone, whenUnsatisfiable: ScheduleAnyway, minDomains: 2}\n",
        ),
        &[
            "spec.topologySpreadConstraints[0].maxSkew: must be greater than or equal to 1",
            "spec.topologySpreadConstraints[1]: duplicate value {\"zone\", \"DoNotSchedule\"}: \
             topologyKey and whenUnsatisfiable",
            "spec.topologySpreadConstraints[2].minDomains: forbidden: can only use minDomains if \
             whenUnsatisfiable=DoNotSchedule",
        ],
    );
    assert_problems(
        &pod("  tolerations: [{key: dedicated, operator: Equal, value: db, effect: NoSchedule}, {operator: Exists}]\n"),
        &[],
    );
    assert_problems(
        &pod("  tolerations: [{key: dedicated, effect: Sometimes}]\n"),
        &["spec.tolerations[0].effect: unsupported value \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""],
    );
    assert_problems(
        &pod("  tolerations: [{key: dedicated, operator: Exists, value: db, tolerationSeconds: 5}]\n"),
        &[
            "spec.tolerations[0].operator: value must be empty when `operator` is 'Exists'",
            "spec.tolerations[0].effect: effect must be 'NoExecute' when `tolerationSeconds` is set",
        ],
    );
    assert_problems(
        &pod("  tolerations: [{key: sla, operator: Gt, value: '900'}, {key: sla, operator: Lt, value: high}]\n"),
        &["spec.tolerations[1].value: invalid value \"high\": must be an integer when `operator` is 'Gt' or 'Lt'"],
    );
    assert_problems(
        &pod("  schedulingGates: [{name: example.com/foo}, {name: example.com/bar}]\n"),
        &[],
    );
    assert_problems(
        &pod("  nodeName: board-1\n  schedulingGates: [{name: a}, {name: a}, {name: 'bad name'}, {}]\n"),
        &[
            "spec.schedulingGates[1].name: duplicate value \"a\"",
            "spec.schedulingGates[2].name: invalid key \"bad name\": the name part must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit, with an optional DNS subdomain prefix and '/'",
            "spec.schedulingGates[3].name: required value",
            "spec.nodeName: forbidden: cannot be set until all schedulingGates have been cleared",
        ],
    );
}

#[test]
fn kube_prefixed_namespaces_are_reserved() {
    let reserved =
        "forbidden: names beginning with \"kube-\" are reserved for Kubernetes system namespaces";
    assert_problems(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: kube-berth}\n",
        &[&format!("metadata.name: {reserved}")],
    );
    assert_problems(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: kube-private}\n",
        &[&format!("metadata.namespace: {reserved}")],
    );
    // The three namespaces every cluster has are there to use.
    for namespace in ["kube-system", "kube-public", "kube-node-lease"] {
        assert_problems(
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c, namespace: {namespace}}}\n"
            ),
            &[],
        );
    }
    assert_problems(
        &format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d, namespace: kube-x}}\nspec:\n  selector: {{matchLabels: {{app: a}}}}\n{TEMPLATE}"
        ),
        &[&format!("metadata.namespace: {reserved}")],
    );
    // Only the namespace prefix is reserved: `kubelet`, `my-kube-ns` and objects named
    // `kube-*` are ordinary.
    for namespace in ["kubelet", "my-kube-ns", "kube"] {
        assert_problems(
            &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {namespace}}}\n"),
            &[],
        );
    }
    assert_problems(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kube-proxy, namespace: edge}\n",
        &[],
    );
}

#[test]
fn secrets_and_config_maps_over_one_mebibyte_are_refused() {
    const MIB: usize = 1024 * 1024;
    let too_long = |size: usize| format!("data: too long: {size} bytes, the limit is {MIB} bytes");
    let config_map =
        |data: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\n{data}\n");
    let secret =
        |data: &str| format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\n{data}\n");
    // Exactly the limit is allowed.
    assert_problems(
        &config_map(&format!("data: {{a: {}}}", "x".repeat(MIB))),
        &[],
    );
    // binaryData counts decoded, together with data.
    let half = crate::model::base64::encode(&vec![7u8; MIB / 2]);
    assert_problems(
        &config_map(&format!(
            "data: {{a: {}}}\nbinaryData: {{b: {half}}}",
            "x".repeat(MIB / 2 + 1)
        )),
        &[&too_long(MIB + 1)],
    );
    // A Secret's data counts decoded, and stringData counts too.
    let encoded = crate::model::base64::encode(&vec![1u8; MIB]);
    assert_problems(&secret(&format!("data: {{a: {encoded}}}")), &[]);
    assert_problems(
        &secret(&format!("data: {{a: {encoded}}}\nstringData: {{b: x}}")),
        &[&too_long(MIB + 1)],
    );
    assert_problems(
        &secret(&format!("stringData: {{b: {}}}", "y".repeat(MIB + 2))),
        &[&too_long(MIB + 2)],
    );
    // Bad base64 names its key, in brackets since keys may hold dots.
    assert_problems(
        &secret("data: {tls.key: 'not base64!', ok: b2s=}"),
        &["data[tls.key]: invalid base64 value"],
    );
}

#[test]
fn init_containers_are_checked_like_containers_with_their_own_rules() {
    let pod = |init: &str, app: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  initContainers:\n  - {init}\n  containers:\n  - {app}\n"
        )
    };
    assert_problems(&pod("{name: wait, image: i}", "{name: c, image: i}"), &[]);
    assert_problems(
        &pod(
            "{name: proxy, image: i, restartPolicy: Always, readinessProbe: {exec: {command: [sh]}}}",
            "{name: c, image: i}",
        ),
        &[],
    );
    assert_problems(
        &pod(
            "{name: c, image: i, livenessProbe: {exec: {command: [sh]}}}",
            "{name: c, image: i, restartPolicy: Always}",
        ),
        &[
            "spec.initContainers[0].livenessProbe: forbidden: may not be set for init containers \
             without restartPolicy=Always",
            "spec.containers[0].name: duplicate value \"c\"",
            "spec.containers[0].restartPolicy: forbidden: may not be set for non-init containers",
        ],
    );
    assert_problems(
        &pod("{name: w, image: i, restartPolicy: OnFailure}", "{name: c, image: i}"),
        &["spec.initContainers[0].restartPolicy: unsupported value \"OnFailure\": supported values: \"Always\""],
    );
}
