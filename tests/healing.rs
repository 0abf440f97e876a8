//! Self-healing and scaling with Kubernetes semantics (issue 3): restart policies,
//! probes, exec, scale, agent crashes. Real agent, real containers, as root.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::time::Duration;

use common::{wait_for, TestAgent};
use serde_json::Value;

fn deployment(name: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: main
          image: busybox:1.35
          command: ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
"#
    )
}

/// Waits until the deployment reports `n` ready replicas and exactly `n` pods exist,
/// all Running; returns the deployment.
fn wait_scaled(agent: &TestAgent, name: &str, n: i64) -> Value {
    wait_for(
        Duration::from_secs(60),
        &format!("{name} at {n} replicas"),
        || {
            let deploy = agent.json(&["get", "deployment", name]);
            let pods = agent.pods();
            let running = pods
                .iter()
                .filter(|p| p["status"]["phase"] == "Running")
                .count() as i64;
            let status = &deploy["status"];
            let settled = pods.len() as i64 == n
                && running == n
                && status["replicas"] == n
                && status["readyReplicas"] == n
                && status["availableReplicas"] == n
                && status["updatedReplicas"] == n;
            settled.then_some(deploy)
        },
    )
}

#[test]
fn scale_three_zero_five_two_converges_with_true_status() {
    let agent = TestAgent::start();
    let path = agent.state.path().join("scaled.yaml");
    std::fs::write(&path, deployment("scaled", 3)).expect("write");
    agent.ok(&["apply", "-f", path.to_str().expect("utf-8")]);
    wait_scaled(&agent, "scaled", 3);
    for n in [0, 5, 2] {
        let out = agent.ok(&[
            "scale",
            "deployment",
            "scaled",
            "--replicas",
            &n.to_string(),
        ]);
        assert!(out.contains("scaled"), "{out}");
        let deploy = wait_scaled(&agent, "scaled", n);
        assert_eq!(deploy["spec"]["replicas"], n);
        assert_eq!(
            deploy["status"]["observedGeneration"],
            deploy["metadata"]["generation"]
        );
    }
    // Re-applying a changed replicas count scales too.
    std::fs::write(&path, deployment("scaled", 4)).expect("write");
    agent.ok(&["apply", "-f", path.to_str().expect("utf-8")]);
    wait_scaled(&agent, "scaled", 4);
    let bad = agent.berth(&["scale", "deployment", "scaled", "--replicas", "-1"]);
    assert!(!bad.status.success());
    let missing = agent.berth(&["scale", "deployment", "nope", "--replicas", "1"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
}

fn pod(name: &str, policy: &str, command: &str, container_extra: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  restartPolicy: {policy}
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: busybox:1.35
      command: ["sh", "-c", {command:?}]
{container_extra}"#
    )
}

fn restart_count(pod: &Value) -> i64 {
    pod["status"]["containerStatuses"][0]["restartCount"]
        .as_i64()
        .unwrap_or(-1)
}

#[test]
fn restart_policies_give_kubernetes_phases_and_counts() {
    let agent = TestAgent::start();
    // (policy, exit code, final phase or None when it keeps restarting)
    let cases = [
        ("Always", 0, None),
        ("Always", 1, None),
        ("OnFailure", 0, Some("Succeeded")),
        ("OnFailure", 1, None),
        ("Never", 0, Some("Succeeded")),
        ("Never", 1, Some("Failed")),
    ];
    for (i, (policy, code, _)) in cases.iter().enumerate() {
        let yaml = pod(&format!("p{i}"), policy, &format!("exit {code}"), "");
        assert!(agent.apply_yaml(&yaml).status.success());
    }
    for (i, (policy, code, phase)) in cases.iter().enumerate() {
        let name = format!("p{i}");
        match phase {
            Some(phase) => {
                let pod = agent.wait_phase(&name, phase, Duration::from_secs(20));
                assert_eq!(restart_count(&pod), 0, "{policy} exit {code}");
                let terminated = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
                assert_eq!(terminated["exitCode"], *code);
                assert_eq!(
                    terminated["reason"],
                    if *code == 0 { "Completed" } else { "Error" }
                );
            }
            None => {
                let pod = wait_for(
                    Duration::from_secs(20),
                    &format!("{name} restarting"),
                    || {
                        let pod = agent.pod(&name);
                        (restart_count(&pod) >= 2).then_some(pod)
                    },
                );
                assert_eq!(pod["status"]["phase"], "Running", "{policy} exit {code}");
                assert_eq!(
                    pod["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
                    *code
                );
            }
        }
    }
}

#[test]
fn liveness_exec_probe_restarts_when_the_file_goes() {
    let agent = TestAgent::start();
    let probe = "      livenessProbe:\n        exec:\n          command: [cat, /tmp/healthy]\n        periodSeconds: 1\n        failureThreshold: 1\n";
    let yaml = pod(
        "lively",
        "Always",
        "touch /tmp/healthy; sleep 2; rm /tmp/healthy; sleep 1000",
        probe,
    );
    assert!(agent.apply_yaml(&yaml).status.success());
    let pod = wait_for(Duration::from_secs(30), "a liveness restart", || {
        let pod = agent.pod("lively");
        (restart_count(&pod) >= 1).then_some(pod)
    });
    let last = &pod["status"]["containerStatuses"][0]["lastState"]["terminated"];
    assert!(last.is_object(), "lastState.terminated recorded: {pod:#}");
}

#[test]
fn failing_http_liveness_restarts_keep_growing() {
    let agent = TestAgent::start();
    let probe = "      ports:\n        - {name: web, containerPort: 8080}\n      livenessProbe:\n        httpGet:\n          path: /missing\n          port: web\n        periodSeconds: 1\n        failureThreshold: 1\n";
    let yaml = pod("sick", "Always", "httpd -f -p 8080 -h /var/www", probe);
    assert!(agent.apply_yaml(&yaml).status.success());
    let mut last = 0;
    wait_for(Duration::from_secs(60), "5 restarts", || {
        let count = restart_count(&agent.pod("sick"));
        assert!(
            count >= last,
            "restartCount went down from {last} to {count}"
        );
        last = count;
        (count >= 5).then_some(())
    });
}

#[test]
fn http_liveness_that_passes_never_restarts_and_readiness_failure_only_unreadies() {
    let agent = TestAgent::start();
    let probes = "      ports:\n        - {containerPort: 8080}\n      livenessProbe:\n        httpGet: {path: /index.html, port: 8080}\n        periodSeconds: 1\n        timeoutSeconds: 5\n        failureThreshold: 5\n      readinessProbe:\n        exec:\n          command: [\"false\"]\n        periodSeconds: 1\n        failureThreshold: 1\n";
    let yaml = pod("shy", "Always", "httpd -f -p 8080 -h /var/www", probes);
    assert!(agent.apply_yaml(&yaml).status.success());
    agent.wait_running("shy");
    // Watch it over several probe periods: never ready, never restarted.
    let until = std::time::Instant::now() + Duration::from_secs(4);
    while std::time::Instant::now() < until {
        let pod = agent.pod("shy");
        assert_eq!(restart_count(&pod), 0, "{pod:#}");
        assert_eq!(pod["status"]["containerStatuses"][0]["ready"], false);
        assert_eq!(common::condition(&pod, "Ready"), Some(Value::from("False")));
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn exec_passes_output_and_exit_code_through() {
    let agent = TestAgent::start();
    let yaml = pod(
        "target",
        "Always",
        "echo inside > /tmp/mark; sleep 1000",
        "",
    );
    assert!(agent.apply_yaml(&yaml).status.success());
    agent.wait_running("target");
    // Running means started, not that the command has written its mark yet.
    wait_for(Duration::from_secs(20), "the mark written", || {
        let out = agent.berth(&["exec", "target", "--", "cat", "/tmp/mark"]);
        (out.status.success() && out.stdout == b"inside\n").then_some(())
    });
    let out = agent.berth(&[
        "exec",
        "target",
        "--",
        "sh",
        "-c",
        "cat /tmp/mark; hostname; echo oops >&2; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "inside\ntarget\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    let mut child = std::process::Command::new(common::BERTH)
        .arg("--server")
        .arg(format!("unix://{}", agent.socket().display()))
        .args(["exec", "-i", "target", "--", "tr", "a-z", "A-Z"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("exec -i");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"shout\n").expect("write stdin");
    }
    let out = child.wait_with_output().expect("exec -i output");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "SHOUT\n");
    let bad = agent.berth(&["exec", "nope", "--", "true"]);
    assert!(!bad.status.success());
}

#[test]
fn post_start_hook_runs_after_the_start_and_a_failing_one_kills_the_container() {
    let agent = TestAgent::start();
    let greeting = "      lifecycle:\n        postStart:\n          exec:\n            command: [sh, -c, \"echo hello > /tmp/greeting\"]\n";
    let waits =
        "until [ -e /tmp/greeting ]; do sleep 0.1; done; cat /tmp/greeting; exec sleep 1000";
    assert!(agent
        .apply_yaml(&pod("greeted", "Always", waits, greeting))
        .status
        .success());
    wait_for(Duration::from_secs(30), "the hook's greeting", || {
        (agent.try_ok(&["logs", "greeted"])? == "hello\n").then_some(())
    });

    let failing = "      lifecycle:\n        postStart:\n          exec:\n            command: [sh, -c, \"exit 7\"]\n";
    assert!(agent
        .apply_yaml(&pod("refused", "Never", "exec sleep 1000", failing))
        .status
        .success());
    let pod = agent.wait_phase("refused", "Failed", Duration::from_secs(30));
    let terminated = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_ne!(terminated["exitCode"], 0, "{pod}");
    let events = agent.ok(&["get", "events"]);
    assert!(events.contains("FailedPostStartHook"), "{events}");
}

#[test]
fn pre_stop_hook_runs_before_sigterm() {
    let agent = TestAgent::start();
    let hook = "      lifecycle:\n        preStop:\n          exec:\n            command: [sh, -c, \"echo goodbye > /proc/1/fd/1\"]\n";
    // The hook runs with the grace period as its timeout: a long one, so a slow exec on
    // a loaded machine is still in time (the container exits on SIGTERM at once).
    let yaml = pod(
        "polite",
        "Always",
        "echo started; trap 'echo terminated; exit 0' TERM; sleep 1000 & wait",
        hook,
    )
    .replace(
        "terminationGracePeriodSeconds: 1",
        "terminationGracePeriodSeconds: 30",
    );
    assert!(agent.apply_yaml(&yaml).status.success());
    agent.wait_running("polite");
    let mut follower = std::process::Command::new(common::BERTH)
        .arg("--server")
        .arg(format!("unix://{}", agent.socket().display()))
        .args(["logs", "-f", "polite"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("logs -f");
    let stdout = follower.stdout.take().expect("stdout");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Delete only once the follower is attached: a follow that starts after the pod is
    // gone would find nothing to follow.
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !seen.iter().any(|l: &String| l == "started") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = follower.kill();
                let _ = follower.wait();
                panic!("logs -f printed no \"started\": {seen:?}");
            }
        }
    }
    agent.ok(&["delete", "pod", "polite", "--timeout", "60s"]);
    // The reader thread ends, and drops its sender, when the follow ends with the
    // container.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let _ = follower.kill();
                let _ = follower.wait();
                panic!("logs -f did not end with the container: {seen:?}");
            }
        }
    }
    assert!(follower.wait().expect("logs -f").success());
    let bye = seen
        .iter()
        .position(|l| l == "goodbye")
        .unwrap_or_else(|| panic!("preStop output missing: {seen:?}"));
    let term = seen
        .iter()
        .position(|l| l == "terminated")
        .unwrap_or_else(|| panic!("SIGTERM not seen: {seen:?}"));
    assert!(bye < term, "preStop must run before SIGTERM: {seen:?}");
}

#[test]
fn killing_the_agent_ten_times_restarts_no_container() {
    let mut agent = TestAgent::start();
    assert!(agent.apply_yaml(&deployment("five", 5)).status.success());
    wait_scaled(&agent, "five", 5);
    let before = agent.init_pids();
    assert!(before.iter().all(|(_, pid)| *pid > 0), "{before:?}");
    for _ in 0..10 {
        agent.kill9();
        agent.spawn();
        // The restarted agent answers with the same pods, all running.
        let now = wait_for(Duration::from_secs(20), "the pods after a restart", || {
            let pods = agent.pods();
            (pods.len() == 5 && pods.iter().all(|p| p["status"]["phase"] == "Running"))
                .then_some(agent.init_pids())
        });
        assert_eq!(before, now, "same containers, same PIDs");
    }
    for pod in agent.pods() {
        assert_eq!(restart_count(&pod), 0, "{pod:#}");
    }
}

#[test]
fn killing_the_agent_during_a_crash_loop_keeps_count_and_back_off() {
    // A slower back-off than the other tests, so that "still backing off" is visible.
    let mut agent =
        TestAgent::start_with(&["--restart-backoff-base", "1", "--restart-backoff-max", "4"]);
    let yaml = pod("looper", "Always", "sleep 0.2; exit 1", "");
    assert!(agent.apply_yaml(&yaml).status.success());
    let mut highest = 0;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..6 {
        // kill -9 at a pseudo-random moment of the loop
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let pause = Duration::from_millis(100 + seed % 900);
        let until = std::time::Instant::now() + pause;
        while std::time::Instant::now() < until {
            let count = restart_count(&agent.pod("looper"));
            assert!(
                count >= highest,
                "round {round}: restartCount fell from {highest} to {count}"
            );
            highest = highest.max(count);
        }
        agent.kill9();
        agent.spawn();
        let count = restart_count(&agent.pod("looper"));
        assert!(
            count >= highest,
            "after restart {round}: restartCount fell from {highest} to {count}"
        );
        highest = count;
    }
    // Deep into the loop the back-off is seconds long (4 s: the 1 s base doubled up to
    // the 4 s maximum), and an agent restart keeps it. Whether the restarted agent still
    // finds the container waiting depends on how long the restart took, so the test
    // checks what must hold either way: the container is not started before its
    // back-off ends (finishedAt + 4 s, both in whole seconds as the agent computes it),
    // and the count goes on from where it was.
    let pod = wait_for(Duration::from_secs(60), "a long back-off", || {
        let pod = agent.pod("looper");
        let waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
            == "CrashLoopBackOff";
        (restart_count(&pod) >= 4 && waiting).then_some(pod)
    });
    let status = &pod["status"]["containerStatuses"][0];
    let message = status["state"]["waiting"]["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("back-off 4s restarting failed container=main pod=looper_default("),
        "{message}"
    );
    let finished = rfc3339(&status["lastState"]["terminated"]["finishedAt"]);
    let back_off_ends = finished + Duration::from_secs(4);
    let count = restart_count(&pod);
    agent.kill9();
    agent.spawn();
    let after = agent.pod("looper");
    let state = &after["status"]["containerStatuses"][0]["state"];
    if state["waiting"]["reason"] == "CrashLoopBackOff" {
        assert_eq!(restart_count(&after), count, "{after:#}");
    } else {
        // The back-off ended while the agent was down or starting: the one restart that
        // follows must not come early, and must be counted on top.
        let started = wait_for(Duration::from_secs(20), "the next attempt", || {
            let pod = agent.pod("looper");
            let status = &pod["status"]["containerStatuses"][0];
            (restart_count(&pod) == count + 1).then(|| {
                let at = &status["state"]["running"]["startedAt"];
                let at = if at.is_string() {
                    at
                } else {
                    &status["lastState"]["terminated"]["startedAt"]
                };
                rfc3339(at)
            })
        });
        assert!(
            started >= back_off_ends,
            "restarted at {started:?}, before its back-off ended at {back_off_ends:?}"
        );
    }
}

fn rfc3339(value: &Value) -> std::time::SystemTime {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {value}"));
    humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}
