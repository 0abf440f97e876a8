//! Users and privileges of containers (issue 11, part 3): the image's `User`, pod and
//! container `securityContext` with Kubernetes' precedence, `runAsNonRoot`,
//! `readOnlyRootFilesystem`, dropped capabilities, and what validation refuses. Real
//! agent, real containers, as root.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::time::Duration;

use common::{build_image, wait_for, TestAgent};
use serde_json::Value;

/// The demo image with `User: 1000:1000` in its config, imported into `agent`.
const USER_IMAGE: &str = "docker.io/library/busybox:user-1000";

fn import_user_image(agent: &TestAgent) {
    let layout = build_image(
        "demo-image-user-1000",
        &["--user", "1000:1000", "--tag", USER_IMAGE],
    );
    agent.ok(&["image", "import", layout.to_str().expect("utf-8 path")]);
}

/// A pod of one container `main` running `command`, with `pod_extra` under `spec:` and
/// `container_extra` under the container (both already indented).
fn pod(name: &str, image: &str, command: &str, pod_extra: &str, container_extra: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
{pod_extra}  containers:
    - name: main
      image: {image}
      command: ["sh", "-c", {command:?}]
{container_extra}"#
    )
}

fn apply(agent: &TestAgent, yaml: &str) {
    let out = agent.apply_yaml(yaml);
    assert!(
        out.status.success(),
        "apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `berth exec POD [-c C] -- sh -c SCRIPT`: (exit code, stdout, stderr).
fn exec(agent: &TestAgent, pod: &str, container: &str, script: &str) -> (i32, String, String) {
    let out = agent.berth(&["exec", pod, "-c", container, "--", "sh", "-c", script]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The output of `id -u; id -g; id -G` in the pod's `main` container, on one line.
fn ids(agent: &TestAgent, pod: &str) -> String {
    let (code, out, err) = exec(agent, pod, "main", "echo $(id -u) $(id -g) / $(id -G)");
    assert_eq!(code, 0, "id in {pod} failed: {err}");
    out.trim().to_owned()
}

const SLEEP: &str = "sleep 100000";

#[test]
fn image_user_and_run_as_user_with_pod_and_container_precedence() {
    let agent = TestAgent::start();
    import_user_image(&agent);
    // As the image says, and its output still reaches the log when it reopens stdout.
    apply(
        &agent,
        &pod(
            "imaged",
            USER_IMAGE,
            "echo hello from $(id -u) > /dev/stdout; touch /tmp/mine; sleep 100000",
            "",
            "",
        ),
    );
    // runAsUser replaces the image's user and group; no passwd entry: gid 0.
    apply(
        &agent,
        &pod(
            "overridden",
            USER_IMAGE,
            SLEEP,
            "",
            "      securityContext: {runAsUser: 1234}\n",
        ),
    );
    // The container's runAsUser wins over the pod's; the pod's group and groups stay.
    apply(
        &agent,
        &pod(
            "merged",
            "busybox:1.35",
            SLEEP,
            "  securityContext: {runAsUser: 2000, runAsGroup: 3000, fsGroup: 4000, \
             supplementalGroups: [5000]}\n",
            "      securityContext: {runAsUser: 1234}\n",
        ),
    );
    // A uid with a passwd entry in the image gets that entry's group and home.
    apply(
        &agent,
        &pod(
            "nobody",
            "busybox:1.35",
            SLEEP,
            "  securityContext: {runAsUser: 65534}\n",
            "",
        ),
    );
    for name in ["imaged", "overridden", "merged", "nobody"] {
        agent.wait_running(name);
    }
    assert_eq!(ids(&agent, "imaged"), "1000 1000 / 1000");
    assert_eq!(ids(&agent, "overridden"), "1234 0 / 0");
    assert_eq!(ids(&agent, "merged"), "1234 3000 / 3000 4000 5000");
    assert_eq!(ids(&agent, "nobody"), "65534 65534 / 65534");
    let (_, home, _) = exec(&agent, "nobody", "main", "echo $HOME");
    assert_eq!(home.trim(), "/nonexistent");

    wait_for(Duration::from_secs(20), "the log line of uid 1000", || {
        let logs = agent.try_ok(&["logs", "imaged"])?;
        logs.contains("hello from 1000").then_some(())
    });
    // The overlay's upper dir takes the new file; the user cannot write to the root.
    let (code, out, _) = exec(&agent, "imaged", "main", "stat -c %u /tmp/mine");
    assert_eq!((code, out.trim()), (0, "1000"));
    let (code, _, err) = exec(&agent, "imaged", "main", "touch /forbidden");
    assert_ne!(code, 0);
    assert!(err.contains("Permission denied"), "{err}");
    // An exec'd process of the user can reopen its output too.
    let (code, out, err) = exec(&agent, "imaged", "main", "echo reopened > /dev/stdout");
    assert_eq!((code, out.as_str()), (0, "reopened\n"), "{err}");
    // Non-root processes end up with no effective capabilities.
    let (_, caps, _) = exec(&agent, "imaged", "main", "grep CapEff /proc/self/status");
    assert_eq!(caps.trim(), "CapEff:\t0000000000000000");
}

#[test]
fn run_as_non_root_refuses_a_root_image_with_the_kubelet_message() {
    let agent = TestAgent::start();
    import_user_image(&agent);
    let non_root = "  securityContext: {runAsNonRoot: true}\n";
    apply(&agent, &pod("rooted", "busybox:1.35", SLEEP, non_root, ""));
    apply(&agent, &pod("fine", USER_IMAGE, SLEEP, non_root, ""));
    let pod = wait_for(Duration::from_secs(20), "the refusal in the status", || {
        let pod = agent.pod("rooted");
        let waiting = &pod["status"]["containerStatuses"][0]["state"]["waiting"];
        (waiting["reason"] == "CreateContainerConfigError").then_some(pod)
    });
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"],
        Value::from(format!(
            "container has runAsNonRoot and image will run as root \
             (pod: \"rooted_default({uid})\", container: main)"
        ))
    );
    assert_eq!(pod["status"]["phase"], "Pending");
    // Nothing ran: no container dir carries this pod's container.
    agent.wait_running("fine");
    assert_eq!(ids(&agent, "fine"), "1000 1000 / 1000");
    let pod = agent.pod("rooted");
    assert!(pod["status"]["containerStatuses"][0]["containerID"].is_null());
}

#[test]
fn read_only_root_and_dropped_capabilities() {
    let agent = TestAgent::start();
    let yaml = r#"apiVersion: v1
kind: Pod
metadata:
  name: locked
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: plain
      image: busybox:1.35
      command: ["sleep", "100000"]
    - name: readonly
      image: busybox:1.35
      command: ["sleep", "100000"]
      securityContext: {readOnlyRootFilesystem: true}
    - name: dropped
      image: busybox:1.35
      command: ["sleep", "100000"]
      securityContext:
        capabilities: {drop: [ALL]}
"#;
    apply(&agent, yaml);
    agent.wait_running("locked");

    let (code, _, err) = exec(&agent, "locked", "readonly", "touch /x");
    assert_ne!(code, 0);
    assert!(err.contains("Read-only file system"), "{err}");
    let (code, _, err) = exec(&agent, "locked", "readonly", "touch /tmp/x");
    assert_ne!(code, 0, "no writable /tmp either");
    assert!(err.contains("Read-only file system"), "{err}");
    let (code, _, err) = exec(&agent, "locked", "plain", "touch /x && chown 1:1 /x");
    assert_eq!(code, 0, "the default container may write and chown: {err}");

    let (code, _, err) = exec(&agent, "locked", "dropped", "touch /y && chown 1:1 /y");
    assert_ne!(code, 0);
    assert!(err.contains("Operation not permitted"), "{err}");
    let (_, caps, _) = exec(&agent, "locked", "dropped", "grep CapBnd /proc/self/status");
    assert_eq!(caps.trim(), "CapBnd:\t0000000000000000");
}

#[test]
fn escalation_is_refused_at_apply_with_paths() {
    let agent = TestAgent::start();
    let yaml = pod(
        "greedy",
        "busybox:1.35",
        SLEEP,
        "",
        "      securityContext:\n        allowPrivilegeEscalation: true\n        \
         seccompProfile: {type: Localhost, localhostProfile: ../x.json}\n",
    );
    let out = agent.apply_yaml(&yaml);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // What no Pod Security level allows, because berth cannot do it, and a Localhost
    // profile outside the seccomp root, which Kubernetes refuses too (the levels
    // themselves are tests/pod_security.rs).
    for path in [
        "Pod/greedy: spec.containers[0].securityContext.allowPrivilegeEscalation: forbidden",
        "Pod/greedy: spec.containers[0].securityContext.seccompProfile.localhostProfile: \
         invalid value \"../x.json\": must not contain '..'",
    ] {
        assert!(stderr.contains(path), "missing {path:?} in:\n{stderr}");
    }
    assert!(agent.pods().is_empty(), "nothing applied");
}
