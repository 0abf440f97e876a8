//! Namespaces as environments on a real agent: a ResourceQuota refuses the pod that
//! would take its namespace past `requests.memory`, with Kubernetes' message, at apply
//! and when a ReplicaSet makes the pod; a LimitRange's defaults are in the stored pod,
//! which runs with them; and `berth config set-context --current --namespace` sets the
//! namespace the CLI uses.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{wait_for, TestAgent, BERTH};
use serde_json::Value;

fn pod(name: &str, resources: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: app
      image: busybox:1.35
      command: ["sleep", "1000"]
      resources: {resources}
"#
    )
}

const QUOTA: &str = r#"apiVersion: v1
kind: ResourceQuota
metadata:
  name: mem
spec:
  hard:
    requests.memory: 64Mi
    pods: "10"
"#;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_pod_past_the_memory_quota_is_refused_with_the_kubernetes_message() {
    let agent = TestAgent::start();
    let applied = agent.apply_yaml(QUOTA);
    assert!(applied.status.success(), "{}", stderr(&applied));
    let first = agent.apply_yaml(&pod("first", "{requests: {memory: 48Mi}}"));
    assert!(first.status.success(), "{}", stderr(&first));
    agent.wait_running("first");

    let refused = agent.apply_yaml(&pod("second", "{requests: {memory: 32Mi}}"));
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains(
            "(403): pods \"second\" is forbidden: exceeded quota: mem, requested: \
             requests.memory=32Mi, used: requests.memory=48Mi, limited: requests.memory=64Mi"
        ),
        "{}",
        stderr(&refused)
    );
    assert!(!agent.berth(&["get", "pod", "second"]).status.success());

    let quota = agent.json(&["get", "resourcequota", "mem"]);
    assert_eq!(
        quota["status"]["used"]["requests.memory"], "48Mi",
        "{quota}"
    );
    assert_eq!(quota["status"]["used"]["pods"], "1", "{quota}");
    assert_eq!(
        quota["status"]["hard"]["requests.memory"], "64Mi",
        "{quota}"
    );
    let table = agent.ok(&["get", "quota"]);
    assert!(
        table.contains("pods: 1/10, requests.memory: 48Mi/64Mi"),
        "{table}"
    );

    // A ReplicaSet's pods are admitted too: two of 8Mi fit, the third does not, and the
    // ReplicaSet says why, as Kubernetes' replicaset-controller does.
    let deployment = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: busybox:1.35
          command: ["sleep", "1000"]
          resources: {requests: {memory: 8Mi}}
"#;
    let applied = agent.apply_yaml(deployment);
    assert!(applied.status.success(), "{}", stderr(&applied));
    let event = wait_for(Duration::from_secs(30), "a FailedCreate event", || {
        let events = agent.json(&["get", "events"]);
        events["items"]
            .as_array()?
            .iter()
            .find(|e| e["reason"] == "FailedCreate")
            .cloned()
    });
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["involvedObject"]["kind"], "ReplicaSet");
    let message = event["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("Error creating: pods \"web-")
            && message.ends_with(
                "\" is forbidden: exceeded quota: mem, requested: requests.memory=8Mi, used: \
                 requests.memory=64Mi, limited: requests.memory=64Mi"
            ),
        "{message}"
    );
    let web: Vec<Value> = agent
        .pods()
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "web")
        .collect();
    assert_eq!(web.len(), 2, "{web:?}");
}

/// The CLI with its config file at `config`, talking to `agent`.
fn berth_with_config(agent: &TestAgent, config: &Path, args: &[&str]) -> Output {
    Command::new(BERTH)
        .env("BERTH_CONFIG", config)
        .arg("--server")
        .arg(format!("unix://{}", agent.socket().display()))
        .args(args)
        .output()
        .expect("run berth")
}

fn ok_with_config(agent: &TestAgent, config: &Path, args: &[&str]) -> String {
    let out = berth_with_config(agent, config, args);
    assert!(
        out.status.success(),
        "berth {args:?} failed: {}\n--- agent log tail:\n{}",
        stderr(&out),
        agent.log_tail()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn limit_range_defaults_are_in_the_stored_pod_of_the_current_namespace() {
    let agent = TestAgent::start();
    let config = agent.state.path().join("cli").join("config");
    let config = config.as_path();
    let namespace = "apiVersion: v1\nkind: Namespace\nmetadata: {name: dev}\n";
    let applied = agent.apply_yaml(namespace);
    assert!(applied.status.success(), "{}", stderr(&applied));

    let set = ok_with_config(
        &agent,
        config,
        &["config", "set-context", "--current", "--namespace", "dev"],
    );
    assert_eq!(set, "Context modified.\n");
    let view = ok_with_config(&agent, config, &["config", "view"]);
    assert!(view.contains("namespace: dev"), "{view}");

    let manifests = agent.state.path().join("dev.yaml");
    let limits = r#"apiVersion: v1
kind: LimitRange
metadata:
  name: defaults
spec:
  limits:
    - type: Container
      default: {memory: 128Mi, cpu: 200m}
      defaultRequest: {memory: 64Mi}
      max: {memory: 256Mi}
"#;
    std::fs::write(&manifests, format!("{limits}---\n{}", pod("plain", "{}"))).expect("write");
    let manifests = manifests.to_str().expect("utf-8");
    let applied = ok_with_config(&agent, config, &["apply", "-f", manifests]);
    assert!(applied.contains("pod/plain created"), "{applied}");

    // The context's namespace is where the objects went.
    let stored = ok_with_config(&agent, config, &["get", "pod", "plain", "-o", "json"]);
    let stored: Value = serde_json::from_str(&stored).expect("json");
    assert_eq!(stored["metadata"]["namespace"], "dev");
    let resources = &stored["spec"]["containers"][0]["resources"];
    assert_eq!(resources["limits"]["memory"], "128Mi", "{stored}");
    assert_eq!(resources["limits"]["cpu"], "200m", "{stored}");
    assert_eq!(resources["requests"]["memory"], "64Mi", "{stored}");
    // defaultRequest falls back to default for cpu.
    assert_eq!(resources["requests"]["cpu"], "200m", "{stored}");
    assert_eq!(
        stored["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container app; cpu, memory limit \
         for container app"
    );
    wait_for(Duration::from_secs(20), "pod plain to run in dev", || {
        let out = berth_with_config(&agent, config, &["get", "pod", "plain", "-o", "json"]);
        let pod: Value = serde_json::from_slice(&out.stdout).ok()?;
        (pod["status"]["phase"] == "Running").then_some(())
    });
    assert!(
        !agent.berth(&["get", "pod", "plain"]).status.success(),
        "not in default"
    );

    std::fs::write(
        agent.state.path().join("big.yaml"),
        pod("big", "{limits: {memory: 512Mi}}"),
    )
    .expect("write");
    let big = agent.state.path().join("big.yaml");
    let refused = berth_with_config(
        &agent,
        config,
        &["apply", "-f", big.to_str().expect("utf-8")],
    );
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains(
            "pods \"big\" is forbidden: maximum memory usage per Container is 256Mi, but limit \
             is 512Mi"
        ),
        "{}",
        stderr(&refused)
    );

    // `-n` wins over the context.
    let other = ok_with_config(
        &agent,
        config,
        &["get", "pods", "-n", "default", "-o", "json"],
    );
    let other: Value = serde_json::from_str(&other).expect("json");
    assert_eq!(other["items"], Value::Array(Vec::new()));
}
