use serde_json::Value;

use crate::model::validate::validate_document;

/// `path: message` lines for a Pod whose only container has a port named `web` and the
/// given extra fields (YAML flow style).
fn problems(fields: &str) -> Vec<String> {
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - {{name: c, image: i, ports: [{{name: web, containerPort: 8080}}], {fields}}}\n"
    );
    let doc: Value = serde_yaml_ng::from_str(&yaml).expect("test YAML parses");
    validate_document(&doc)
        .errors
        .into_iter()
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect()
}

fn assert_problems(fields: &str, expected: &[&str]) {
    assert_eq!(problems(fields), expected, "for: {fields}");
}

const C: &str = "spec.containers[0]";

#[test]
fn valid_probes_of_each_kind() {
    assert_problems(
        "livenessProbe: {exec: {command: [cat, /tmp/healthy]}, initialDelaySeconds: 5, periodSeconds: 5}",
        &[],
    );
    assert_problems(
        "readinessProbe: {httpGet: {path: /healthz, port: web, host: '', scheme: HTTP, httpHeaders: [{name: X-Custom, value: yes}]}, successThreshold: 3, failureThreshold: 1, timeoutSeconds: 2}",
        &[],
    );
    assert_problems("startupProbe: {tcpSocket: {port: 8080}}", &[]);
    assert_problems("startupProbe: {tcpSocket: {port: web, host: ''}}", &[]);
    // An empty path is defaulted to `/`, as in Kubernetes.
    assert_problems("livenessProbe: {httpGet: {path: '', port: 80}}", &[]);
    assert_problems(
        "lifecycle: {preStop: {exec: {command: [sh, -c, 'sleep 2']}}}",
        &[],
    );
}

#[test]
fn handler_count() {
    assert_problems(
        "livenessProbe: {periodSeconds: 3}",
        &[&format!(
            "{C}.livenessProbe: must specify exactly one of exec, httpGet, tcpSocket"
        )],
    );
    assert_problems(
        "readinessProbe: {exec: {command: ['true']}, tcpSocket: {port: 80}}",
        &[&format!(
            "{C}.readinessProbe: must specify exactly one of exec, httpGet, tcpSocket"
        )],
    );
    assert_problems(
        "startupProbe: {grpc: {port: 9000}, terminationGracePeriodSeconds: 5}",
        &[
            &format!("{C}.startupProbe.grpc: field not supported by berth"),
            &format!(
                "{C}.startupProbe.terminationGracePeriodSeconds: field not supported by berth"
            ),
            &format!("{C}.startupProbe: must specify exactly one of exec, httpGet, tcpSocket"),
        ],
    );
    assert_problems(
        "livenessProbe: true",
        &[&format!("{C}.livenessProbe: expected object")],
    );
}

#[test]
fn exec_rules() {
    assert_problems(
        "livenessProbe: {exec: {}}",
        &[&format!("{C}.livenessProbe.exec.command: required value")],
    );
    assert_problems(
        "livenessProbe: {exec: {command: []}}",
        &[&format!("{C}.livenessProbe.exec.command: required value")],
    );
    assert_problems(
        "livenessProbe: {exec: {command: 'cat /tmp/x'}}",
        &[&format!("{C}.livenessProbe.exec.command: expected list")],
    );
    assert_problems(
        "livenessProbe: {exec: {command: [cat, 1], user: root}}",
        &[
            &format!("{C}.livenessProbe.exec.user: field not supported by berth"),
            &format!("{C}.livenessProbe.exec.command[1]: expected string"),
        ],
    );
}

#[test]
fn port_rules() {
    assert_problems(
        "livenessProbe: {httpGet: {port: http}}",
        &[&format!(
            "{C}.livenessProbe.httpGet.port: no port named \"http\" in the container"
        )],
    );
    assert_problems(
        "livenessProbe: {tcpSocket: {port: 0}}",
        &[&format!(
            "{C}.livenessProbe.tcpSocket.port: must be between 1 and 65535, inclusive"
        )],
    );
    assert_problems(
        "livenessProbe: {tcpSocket: {port: '8080'}}",
        &[&format!(
            "{C}.livenessProbe.tcpSocket.port: invalid port name \"8080\": must be at most 15 lowercase letters, digits or '-', with at least one letter and no leading, trailing or doubled '-'"
        )],
    );
    assert_problems(
        "livenessProbe: {tcpSocket: {port: [80]}}",
        &[&format!(
            "{C}.livenessProbe.tcpSocket.port: expected integer or string"
        )],
    );
    assert_problems(
        "livenessProbe: {tcpSocket: {host: ''}}",
        &[&format!("{C}.livenessProbe.tcpSocket.port: required value")],
    );
}

#[test]
fn a_probe_host_is_refused_not_ignored() {
    let refused =
        "forbidden: berth probes only the pod's own address; a probe host is not supported";
    assert_problems(
        "livenessProbe: {tcpSocket: {port: 80, host: localhost}}",
        &[&format!("{C}.livenessProbe.tcpSocket.host: {refused}")],
    );
    assert_problems(
        "readinessProbe: {httpGet: {path: /, port: web, host: 10.0.0.1}}",
        &[&format!("{C}.readinessProbe.httpGet.host: {refused}")],
    );
}

#[test]
fn http_get_rules() {
    assert_problems(
        "readinessProbe: {httpGet: {path: healthz, port: 80, scheme: HTTPS, host: 1, httpHeaders: [{value: x}, {name: 'Bad Header', value: 2}, {name: X-Ok, value: ok, extra: 1}]}}",
        &[
            &format!("{C}.readinessProbe.httpGet.path: invalid path \"healthz\": must start with \"/\""),
            &format!("{C}.readinessProbe.httpGet.host: expected string"),
            &format!("{C}.readinessProbe.httpGet.scheme: unsupported value \"HTTPS\": supported values: \"HTTP\""),
            &format!("{C}.readinessProbe.httpGet.httpHeaders[0].name: required value"),
            &format!("{C}.readinessProbe.httpGet.httpHeaders[1].name: invalid header name \"Bad Header\": must consist of letters, digits or '-'"),
            &format!("{C}.readinessProbe.httpGet.httpHeaders[1].value: expected string"),
            &format!("{C}.readinessProbe.httpGet.httpHeaders[2].extra: field not supported by berth"),
        ],
    );
}

#[test]
fn timing_rules() {
    assert_problems(
        "readinessProbe: {exec: {command: ['true']}, initialDelaySeconds: -1, periodSeconds: 0, timeoutSeconds: 0, successThreshold: 0, failureThreshold: 0}",
        &[
            &format!("{C}.readinessProbe.initialDelaySeconds: must be greater than or equal to 0"),
            &format!("{C}.readinessProbe.periodSeconds: must be greater than or equal to 1"),
            &format!("{C}.readinessProbe.timeoutSeconds: must be greater than or equal to 1"),
            &format!("{C}.readinessProbe.failureThreshold: must be greater than or equal to 1"),
            &format!("{C}.readinessProbe.successThreshold: must be greater than or equal to 1"),
        ],
    );
    assert_problems(
        "readinessProbe: {exec: {command: ['true']}, periodSeconds: '10', timeoutSeconds: 1.5, initialDelaySeconds: 3000000000}",
        &[
            &format!("{C}.readinessProbe.initialDelaySeconds: must be less than or equal to 2147483647"),
            &format!("{C}.readinessProbe.periodSeconds: expected integer"),
            &format!("{C}.readinessProbe.timeoutSeconds: expected integer"),
        ],
    );
}

#[test]
fn success_threshold_must_be_one_for_liveness_and_startup() {
    assert_problems(
        "livenessProbe: {exec: {command: ['true']}, successThreshold: 2}, startupProbe: {exec: {command: ['true']}, successThreshold: 3}, readinessProbe: {exec: {command: ['true']}, successThreshold: 2}",
        &[
            &format!("{C}.livenessProbe.successThreshold: must be 1"),
            &format!("{C}.startupProbe.successThreshold: must be 1"),
        ],
    );
}

#[test]
fn several_probe_errors_are_all_reported() {
    assert_problems(
        "livenessProbe: {httpGet: {port: metrics, path: x}, successThreshold: 5}, readinessProbe: {tcpSocket: {port: 70000}, periodSeconds: 0}, startupProbe: {exec: {command: []}, grpc: {}}",
        &[
            &format!("{C}.livenessProbe.httpGet.path: invalid path \"x\": must start with \"/\""),
            &format!("{C}.livenessProbe.httpGet.port: no port named \"metrics\" in the container"),
            &format!("{C}.livenessProbe.successThreshold: must be 1"),
            &format!("{C}.readinessProbe.tcpSocket.port: must be between 1 and 65535, inclusive"),
            &format!("{C}.readinessProbe.periodSeconds: must be greater than or equal to 1"),
            &format!("{C}.startupProbe.grpc: field not supported by berth"),
            &format!("{C}.startupProbe.exec.command: required value"),
        ],
    );
}

#[test]
fn lifecycle_rules() {
    assert_problems(
        "lifecycle: {postStart: {exec: {command: ['true']}}, preStop: {exec: {command: ['true']}}}",
        &[],
    );
    assert_problems(
        "lifecycle: {postStart: {httpGet: {port: 80}}}",
        &[&format!(
            "{C}.lifecycle.postStart.httpGet: field not supported by berth"
        )],
    );
    assert_problems(
        "lifecycle: {preStop: {httpGet: {port: 80}}}",
        &[&format!(
            "{C}.lifecycle.preStop.httpGet: field not supported by berth"
        )],
    );
    assert_problems(
        "lifecycle: {preStop: {sleep: {seconds: 5}}}",
        &[&format!(
            "{C}.lifecycle.preStop.sleep: field not supported by berth"
        )],
    );
    assert_problems(
        "lifecycle: {preStop: {}}",
        &[&format!("{C}.lifecycle.preStop.exec: required value")],
    );
    assert_problems(
        "lifecycle: {preStop: {exec: {command: []}}}",
        &[&format!(
            "{C}.lifecycle.preStop.exec.command: required value"
        )],
    );
    assert_problems(
        "lifecycle: []",
        &[&format!("{C}.lifecycle: expected object")],
    );
}
