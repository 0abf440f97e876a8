//! `spec.shareProcessNamespace`: the containers of a pod in one PID namespace whose PID 1
//! is the sandbox's holder process, as Kubernetes' pause container is. Real agent, real
//! containers, as root.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{helper_pids, wait_for, TestAgent};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// A pod of two containers: `app` leaves a marker in its /tmp and sleeps an hour,
/// `shell` sleeps longer; `share` is the pod's `shareProcessNamespace`.
fn pod(name: &str, share: bool) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  shareProcessNamespace: {share}
  terminationGracePeriodSeconds: 1
  containers:
    - name: app
      image: busybox:1.35
      command: ["sh", "-c", "echo from-app > /tmp/marker; exec sleep 3600"]
    - name: shell
      image: busybox:1.35
      command: ["sleep", "100000"]
"#
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

/// `berth exec POD -c shell -- sh -c SCRIPT`: (exit code, stdout, stderr).
fn in_shell(agent: &TestAgent, pod: &str, script: &str) -> (i32, String, String) {
    let out = agent.berth(&["exec", pod, "-c", "shell", "--", "sh", "-c", script]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// (pid, command line) of every process `ps` shows in the pod's `shell` container;
/// `None` while the container does not run.
fn processes(agent: &TestAgent, pod: &str) -> Option<Vec<(i32, String)>> {
    let (code, out, _) = in_shell(agent, pod, "ps");
    if code != 0 {
        return None;
    }
    // `PID USER [TIME] COMMAND`: whether busybox shows TIME depends on how it was built.
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next()?.split_whitespace().collect();
    let command_at = header.iter().position(|h| *h == "COMMAND")?;
    let found = lines
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let pid = fields.first()?.parse().ok()?;
            Some((pid, fields.get(command_at..)?.join(" ")))
        })
        .collect();
    Some(found)
}

fn pid_of(processes: &[(i32, String)], command: &str) -> Option<i32> {
    processes
        .iter()
        .find(|(_, c)| c == command)
        .map(|(pid, _)| *pid)
}

fn restart_count(pod: &Value, container: &str) -> i64 {
    pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["name"] == container))
        .and_then(|s| s["restartCount"].as_i64())
        .unwrap_or(-1)
}

fn holder_file(agent: &TestAgent, pod: &Value) -> PathBuf {
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    agent
        .state
        .path()
        .join("pods")
        .join(uid)
        .join("ns/pid-holder.pid")
}

/// The holder's pid as the agent recorded it.
fn holder_pid(agent: &TestAgent, pod: &Value) -> Option<i32> {
    let text = std::fs::read_to_string(holder_file(agent, pod)).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Is `pid` a process that has not ended (a zombie has)?
fn is_live(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, s)| !s.trim_start().starts_with('Z'))
    })
}

/// Waits until both containers run with the shell seeing the holder as PID 1 and the
/// app's sleep; returns the processes it sees.
fn wait_shared(agent: &TestAgent, name: &str) -> Vec<(i32, String)> {
    wait_for(WAIT, "both containers in the holder's namespace", || {
        let seen = processes(agent, name)?;
        let holder = seen
            .iter()
            .any(|(pid, c)| *pid == 1 && c.contains("pid-holder"));
        (holder && pid_of(&seen, "sleep 3600").is_some()).then_some(seen)
    })
}

#[test]
fn containers_of_a_sharing_pod_see_reach_and_signal_each_other() {
    let mut agent = TestAgent::start();
    apply(&agent, &pod("shared", true));
    let seen = wait_shared(&agent, "shared");
    let pod = agent.pod("shared");

    // The holder is PID 1; neither container's process is.
    let app = pid_of(&seen, "sleep 3600").unwrap();
    let shell = pid_of(&seen, "sleep 100000").unwrap();
    assert!(app > 1 && shell > 1, "{seen:?}");

    // The holder runs as nobody, with nothing of the host in its root.
    let holder = holder_pid(&agent, &pod).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{holder}/status")).unwrap();
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap_or("");
        line.split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(field("NSpid:").ends_with(" 1"), "{status}");
    assert_eq!(field("Uid:"), "65534 65534 65534 65534");
    assert_eq!(field("CapEff:"), "0000000000000000");
    let root: Vec<_> = std::fs::read_dir(format!("/proc/{holder}/root"))
        .unwrap()
        .collect();
    assert!(root.is_empty(), "the holder's root is empty: {root:?}");
    eprintln!(
        "holder {holder}: {}, {}",
        field("VmRSS:"),
        field("RssAnon:")
    );

    // The shell reaches the app's files through /proc, but not the holder's.
    let (code, out, err) = in_shell(
        &agent,
        "shared",
        &format!("cat /proc/{app}/root/tmp/marker"),
    );
    assert_eq!((code, out.trim()), (0, "from-app"), "{err}");
    let (code, _, err) = in_shell(&agent, "shared", "cat /tmp/marker");
    assert_ne!(code, 0, "the marker is in the app's /tmp only: {err}");
    let (code, out, _) = in_shell(&agent, "shared", "ls -a /proc/1/root/");
    assert!(
        code != 0 || out.trim().is_empty(),
        "the holder's root: {out}"
    );
    for probe in [
        "readlink /proc/1/ns/net",
        "cat /proc/1/environ",
        "readlink /proc/1/fd/0",
    ] {
        let (code, out, _) = in_shell(&agent, "shared", probe);
        assert_ne!(code, 0, "{probe} reached into the holder: {out}");
    }

    // A signal from the shell ends the app's sleep, and the app restarts beside it.
    let (code, _, err) = in_shell(&agent, "shared", &format!("kill {app}"));
    assert_eq!(code, 0, "{err}");
    wait_for(WAIT, "the app to restart", || {
        let pod = agent.pod("shared");
        (restart_count(&pod, "app") == 1 && restart_count(&pod, "shell") == 0).then_some(())
    });
    wait_shared(&agent, "shared");
    assert_eq!(holder_pid(&agent, &pod), Some(holder), "the same holder");

    // The holder outlives the agent, which finds it again.
    agent.kill9();
    agent.spawn();
    assert!(is_live(holder), "the holder died with the agent");
    wait_shared(&agent, "shared");
    assert_eq!(holder_pid(&agent, &pod), Some(holder));

    // Without its holder the namespace and all in it are gone: the sandbox gets a new one
    // and the containers restart in it.
    // SAFETY: kill(2) of the holder this test's agent recorded, checked live above.
    unsafe { libc::kill(holder, libc::SIGKILL) };
    wait_for(WAIT, "both containers to restart", || {
        let pod = agent.pod("shared");
        (restart_count(&pod, "app") >= 2 && restart_count(&pod, "shell") >= 1).then_some(())
    });
    wait_shared(&agent, "shared");
    let second = holder_pid(&agent, &pod).unwrap();
    assert_ne!(second, holder);
    assert!(is_live(second));

    // A holder no sandbox records (its state was lost while the agent was down) is
    // stopped when the agent starts, and the pod gets a new one.
    agent.kill9();
    std::fs::remove_file(holder_file(&agent, &pod)).unwrap();
    agent.spawn();
    wait_for(WAIT, "the unrecorded holder to be stopped", || {
        (!is_live(second)).then_some(())
    });
    let seen = wait_shared(&agent, "shared");
    let second = holder_pid(&agent, &pod).unwrap();
    assert!(is_live(second), "a new holder: {seen:?}");

    // Deleting the pod ends its holder and unmounts its namespaces.
    agent.ok(&["delete", "pod", "shared"]);
    wait_for(WAIT, "the holder to end", || {
        let state = agent.state.path().to_string_lossy().into_owned();
        (!is_live(second) && helper_pids(&state, &["pid-holder"]).is_empty()).then_some(())
    });
    assert!(!holder_file(&agent, &pod).exists());
    let pods_dir = agent.state.path().join("pods");
    let left = common::mounts_under(&pods_dir);
    assert!(left.is_empty(), "mounts left: {left:?}");
}

#[test]
fn containers_of_other_pods_keep_their_own_process_namespaces() {
    let agent = TestAgent::start();
    apply(&agent, &pod("apart", false));
    let pod = agent.wait_running("apart");
    let seen = wait_for(WAIT, "both containers running", || {
        let pod = agent.wait_running("apart");
        let both = pod["status"]["containerStatuses"].as_array().map(Vec::len) == Some(2);
        if both {
            processes(&agent, "apart")
        } else {
            None
        }
    });
    assert_eq!(pid_of(&seen, "sleep 100000"), Some(1), "{seen:?}");
    assert_eq!(pid_of(&seen, "sleep 3600"), None, "{seen:?}");
    assert!(
        !seen.iter().any(|(_, c)| c.contains("pid-holder")),
        "{seen:?}"
    );
    assert_eq!(holder_pid(&agent, &pod), None, "no holder without the flag");
}
