//! `berth rollout` end to end: status, history, undo, pause/resume and restart of
//! Deployments and DaemonSets against a real agent running real containers, and a
//! rollout that misses its progress deadline. Real agent, real CLI, as root.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::{wait_for, TestAgent};
use serde_json::Value;

/// Long enough for a rollout of a few sleeping pods on a slow board.
const ROLLOUT: &str = "120s";

/// Deployment `web` with template label `version` and change cause `cause`; its
/// containers sleep for `seconds`. `extra_spec` is added to the Deployment's spec.
fn web(version: &str, cause: &str, seconds: u32, extra_spec: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations: {{kubernetes.io/change-cause: {cause:?}}}
spec:
  replicas: 2
  {extra_spec}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web, version: {version}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: busybox:1.35
          command: [sleep, '{seconds}']
"#
    )
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn apply(agent: &TestAgent, yaml: &str) {
    let out = agent.apply_yaml(yaml);
    assert!(out.status.success(), "apply failed: {}", stderr(&out));
}

/// `berth rollout status deployment web` must end with success.
fn rolled_out(agent: &TestAgent) -> String {
    let out = agent.ok(&[
        "rollout",
        "status",
        "deployment",
        "web",
        "--timeout",
        ROLLOUT,
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.last(),
        Some(&"deployment \"web\" successfully rolled out"),
        "{out}"
    );
    let mut distinct = lines.clone();
    distinct.dedup();
    assert_eq!(distinct, lines, "each line once");
    out
}

/// A command that must fail with exactly `message` on stderr.
fn fails(agent: &TestAgent, args: &[&str], message: &str) {
    let out = agent.berth(args);
    assert!(
        !out.status.success(),
        "{args:?} succeeded: {}",
        stdout(&out)
    );
    assert_eq!(stderr(&out), format!("{message}\n"), "{args:?}");
}

fn template(agent: &TestAgent) -> Value {
    agent.json(&["get", "deployment", "web"])["spec"]["template"].clone()
}

/// Pods not being deleted (a rollout is done before replaced pods have stopped).
fn live_pods(agent: &TestAgent) -> Vec<Value> {
    let mut pods = agent.pods();
    pods.retain(|pod| pod["metadata"].get("deletionTimestamp").is_none());
    pods
}

fn replica_set_names(agent: &TestAgent) -> Vec<String> {
    let list = agent.json(&["get", "replicasets"]);
    let mut names: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rs| rs["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn status_history_and_undo() {
    let agent = TestAgent::start();
    apply(&agent, &web("v1", "first", 3600, ""));
    rolled_out(&agent);
    apply(&agent, &web("v2", "second", 3601, ""));
    rolled_out(&agent);
    assert_eq!(
        agent.ok(&["rollout", "history", "deployment", "web"]),
        "deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         first\n2         second\n\n"
    );
    let first = agent.ok(&["rollout", "history", "deploy/web", "--revision", "1"]);
    assert!(
        first.starts_with("deployment.apps/web with revision #1\nPod Template:\n"),
        "{first}"
    );
    assert!(first.contains("version=v1"), "{first}");
    assert!(first.contains("Image:      busybox:1.35"), "{first}");
    assert!(
        first.contains("Command:\n      sleep\n      3600\n"),
        "{first}"
    );

    let out = agent.ok(&["rollout", "undo", "deployment", "web", "--to-revision", "1"]);
    assert_eq!(out, "deployment.apps/web rolled back\n");
    let restored = template(&agent);
    assert_eq!(restored["metadata"]["labels"]["version"], "v1");
    assert_eq!(
        restored["spec"]["containers"][0]["command"],
        serde_json::json!(["sleep", "3600"])
    );
    assert_eq!(
        restored["metadata"]["labels"].get("pod-template-hash"),
        None
    );
    rolled_out(&agent);
    // Revision 1 came back as revision 3, with its change cause.
    assert_eq!(
        agent.ok(&["rollout", "history", "deployment", "web"]),
        "deployment.apps/web \nREVISION  CHANGE-CAUSE\n2         second\n3         first\n\n"
    );
    assert_eq!(
        replica_set_names(&agent).len(),
        2,
        "no ReplicaSet for an undo"
    );
    let pods = live_pods(&agent);
    assert_eq!(pods.len(), 2);
    for pod in &pods {
        assert_eq!(pod["metadata"]["labels"]["version"], "v1", "{pod:#}");
    }

    let out = agent.ok(&["rollout", "undo", "deployment", "web", "--to-revision", "3"]);
    assert_eq!(
        out,
        "deployment.apps/web skipped rollback (current template already matches revision 3)\n"
    );
    fails(
        &agent,
        &["rollout", "undo", "deployment", "web", "--to-revision", "7"],
        "error: unable to find specified revision 7 in history",
    );
    // Without a revision: the one before the newest.
    let out = agent.ok(&["rollout", "undo", "deployment.apps", "web"]);
    assert_eq!(out, "deployment.apps/web rolled back\n");
    assert_eq!(template(&agent)["metadata"]["labels"]["version"], "v2");
    rolled_out(&agent);

    fails(
        &agent,
        &["rollout", "status", "pods", "web"],
        "error: pods have no rollout: only deployments and daemonsets can be rolled out",
    );
    fails(
        &agent,
        &["rollout", "history", "deployment", "nothing"],
        "Error from server (NotFound): deployments \"nothing\" not found",
    );
}

#[test]
fn pause_holds_template_changes_until_resume_and_restart_rolls_out_again() {
    let agent = TestAgent::start();
    apply(&agent, &web("v1", "first", 3600, ""));
    rolled_out(&agent);
    let first = replica_set_names(&agent);
    assert_eq!(first.len(), 1);

    assert_eq!(
        agent.ok(&["rollout", "pause", "deployment", "web"]),
        "deployment.apps/web paused\n"
    );
    fails(
        &agent,
        &["rollout", "pause", "deployment", "web"],
        "error: deployments.apps \"web\" is already paused",
    );
    fails(
        &agent,
        &["rollout", "restart", "deployment", "web"],
        "error: deployments.apps \"web\" can't restart paused deployment (run rollout resume first)",
    );
    // A whole manifest replaces the object, so it says `paused` itself.
    apply(&agent, &web("v2", "second", 3601, "paused: true"));
    // Nothing is rolled out: checked over a few seconds of the agent's passes (it is
    // woken by the apply and answers every read in between).
    let window = Instant::now() + Duration::from_secs(3);
    let mut reads = 0;
    while Instant::now() < window || reads < 2 {
        assert_eq!(replica_set_names(&agent), first, "a paused rollout started");
        let once = agent.ok(&["rollout", "status", "deployment", "web", "--watch=false"]);
        assert_eq!(
            once,
            "Waiting for deployment \"web\" rollout to finish: 0 out of 2 new replicas have been updated...\n"
        );
        reads += 1;
    }

    assert_eq!(
        agent.ok(&["rollout", "resume", "deployment/web"]),
        "deployment.apps/web resumed\n"
    );
    fails(
        &agent,
        &["rollout", "resume", "deployment", "web"],
        "error: deployments.apps \"web\" is not paused",
    );
    rolled_out(&agent);
    assert_eq!(replica_set_names(&agent).len(), 2);
    assert_eq!(template(&agent)["metadata"]["labels"]["version"], "v2");

    let before: Vec<String> = live_pods(&agent)
        .iter()
        .map(|p| p["metadata"]["uid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        agent.ok(&["rollout", "restart", "deployment", "web"]),
        "deployment.apps/web restarted\n"
    );
    let stamped = template(&agent)["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
        .as_str()
        .map(str::to_owned);
    assert!(
        stamped.is_some_and(|at| at.ends_with('Z')),
        "{:#}",
        template(&agent)
    );
    rolled_out(&agent);
    assert_eq!(
        replica_set_names(&agent).len(),
        3,
        "a restart is a new revision"
    );
    let history = agent.ok(&["rollout", "history", "deployment", "web"]);
    assert!(history.ends_with("\n3         second\n\n"), "{history}");
    wait_for(Duration::from_secs(60), "every pod replaced", || {
        let pods = live_pods(&agent);
        let replaced = pods.len() == 2
            && pods.iter().all(|p| {
                !before
                    .iter()
                    .any(|uid| p["metadata"]["uid"] == uid.as_str())
            });
        replaced.then_some(())
    });
}

#[test]
fn status_fails_when_the_rollout_misses_its_progress_deadline() {
    let agent = TestAgent::start();
    let never_ready = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  progressDeadlineSeconds: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: busybox:1.35
          command: [sleep, '3600']
          readinessProbe:
            exec: {command: ['false']}
            periodSeconds: 1
"#;
    apply(&agent, never_ready);
    // The deadline counts whole seconds and the agent may take up to its resync to
    // notice: a generous timeout, far beyond both, that must not be what ends it.
    let out = agent.berth(&[
        "rollout",
        "status",
        "deployment",
        "web",
        "--timeout",
        "120s",
    ]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert_eq!(
        stderr(&out),
        "error: deployment \"web\" exceeded its progress deadline\n"
    );
    assert!(
        stdout(&out).starts_with("Waiting for deployment \"web\" rollout to finish: "),
        "{}",
        stdout(&out)
    );
    let shown = agent.json(&["get", "deployment", "web"]);
    let conditions = shown["status"]["conditions"].as_array().unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "Progressing" && c["status"] == "False"),
        "{shown:#}"
    );
}

/// DaemonSet `logger` on the board (its one node), template label `version`, pods
/// sleeping for `seconds` and ready once their probe has run.
fn logger(version: &str, seconds: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: logger}}
spec:
  selector:
    matchLabels: {{app: logger}}
  template:
    metadata:
      labels: {{app: logger, version: {version}}}
    spec:
      terminationGracePeriodSeconds: 1
      nodeSelector: {{kubernetes.io/os: linux}}
      containers:
        - name: main
          image: busybox:1.35
          command: [sleep, '{seconds}']
          readinessProbe:
            exec: {{command: ['true']}}
            periodSeconds: 1
"#
    )
}

/// `berth rollout status daemonset logger` must end with success, with the board's
/// pod updated and available.
fn logger_rolled_out(agent: &TestAgent) {
    let out = agent.ok(&["rollout", "status", "ds", "logger", "--timeout", ROLLOUT]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.last(),
        Some(&"daemon set \"logger\" successfully rolled out"),
        "{out}"
    );
    for line in &lines[..lines.len() - 1] {
        assert!(line.starts_with("Waiting for daemon set "), "{out}");
    }
    let status = agent.json(&["get", "daemonset", "logger"])["status"].clone();
    for field in [
        "desiredNumberScheduled",
        "updatedNumberScheduled",
        "numberAvailable",
    ] {
        assert_eq!(status[field], 1, "{field}: {status:#}");
    }
}

fn logger_template(agent: &TestAgent) -> Value {
    agent.json(&["get", "daemonset", "logger"])["spec"]["template"].clone()
}

/// `rollout history` of the DaemonSet once it lists exactly `revisions`, none with a
/// change cause (the controller renumbers a template that comes back as it goes).
fn logger_history(agent: &TestAgent, revisions: &[u32]) {
    let mut expected = "daemonset.apps/logger \nREVISION  CHANGE-CAUSE\n".to_owned();
    for revision in revisions {
        expected.push_str(&format!("{revision:<10}<none>\n"));
    }
    expected.push('\n');
    let mut last = String::new();
    wait_for(Duration::from_secs(30), "the daemon set's history", || {
        last = agent.ok(&["rollout", "history", "daemonset", "logger"]);
        (last == expected).then_some(())
    });
}

#[test]
fn a_daemon_set_rolls_out_back_and_again() {
    let agent = TestAgent::start();
    apply(&agent, &logger("v1", 3600));
    logger_rolled_out(&agent);
    let first = logger_template(&agent);
    apply(&agent, &logger("v2", 3601));
    logger_rolled_out(&agent);
    assert_eq!(
        logger_template(&agent)["metadata"]["labels"]["version"],
        "v2"
    );
    logger_history(&agent, &[1, 2]);
    let one = agent.ok(&["rollout", "history", "daemonset/logger", "--revision", "1"]);
    assert!(
        one.starts_with("daemonset.apps/logger with revision #1\nPod Template:\n"),
        "{one}"
    );
    assert!(one.contains("version=v1"), "{one}");
    assert!(one.contains("Command:\n      sleep\n      3600\n"), "{one}");

    let out = agent.ok(&[
        "rollout",
        "undo",
        "daemonset.apps",
        "logger",
        "--to-revision",
        "1",
    ]);
    assert_eq!(out, "daemonset.apps/logger rolled back\n");
    assert_eq!(logger_template(&agent), first, "the old template, exactly");
    logger_rolled_out(&agent);
    logger_history(&agent, &[2, 3]);
    let out = agent.ok(&["rollout", "undo", "ds", "logger", "--to-revision", "3"]);
    assert_eq!(
        out,
        "daemonset.apps/logger skipped rollback (current template already matches revision 3)\n"
    );
    fails(
        &agent,
        &["rollout", "undo", "ds", "logger", "--to-revision", "1"],
        "error: unable to find specified revision 1 in history",
    );

    assert_eq!(
        agent.ok(&["rollout", "restart", "daemonset", "logger"]),
        "daemonset.apps/logger restarted\n"
    );
    let stamped = logger_template(&agent)["metadata"]["annotations"]
        ["kubectl.kubernetes.io/restartedAt"]
        .as_str()
        .map(str::to_owned);
    assert!(
        stamped.as_deref().is_some_and(|at| at.ends_with('Z')),
        "{stamped:?}"
    );
    logger_rolled_out(&agent);
    logger_history(&agent, &[2, 3, 4]);
    // Without a revision: the one before the newest, the template before the restart.
    let out = agent.ok(&["rollout", "undo", "ds/logger"]);
    assert_eq!(out, "daemonset.apps/logger rolled back\n");
    assert_eq!(logger_template(&agent), first);
    logger_rolled_out(&agent);

    fails(
        &agent,
        &["rollout", "pause", "daemonset", "logger"],
        "error: daemonsets.apps \"logger\" pausing is not supported",
    );
    fails(
        &agent,
        &["rollout", "resume", "ds/logger"],
        "error: daemonsets.apps \"logger\" resuming is not supported",
    );
    fails(
        &agent,
        &["rollout", "history", "daemonset", "nothing"],
        "Error from server (NotFound): daemonsets \"nothing\" not found",
    );
}

#[test]
fn an_on_delete_daemon_set_has_no_rollout_status() {
    let agent = TestAgent::start();
    // A node selector the board does not match: no pod is needed to be refused.
    let on_delete = logger("v1", 3600)
        .replace("kubernetes.io/os: linux", "kubernetes.io/os: windows")
        .replace(
            "spec:\n  selector:",
            "spec:\n  updateStrategy: {type: OnDelete}\n  selector:",
        );
    assert!(on_delete.contains("OnDelete"), "{on_delete}");
    apply(&agent, &on_delete);
    fails(
        &agent,
        &["rollout", "status", "daemonset", "logger"],
        "error: rollout status is only available for RollingUpdate strategy type",
    );
}
