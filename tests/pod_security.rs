//! Pod Security levels (issue 11, part 4): the default namespace enforces `baseline`, a
//! namespace labelled `privileged` gets the host network, no seccomp filter and
//! privileged containers for real, a `restricted` namespace wants hardened pods, and
//! `hostPort` and probe hosts are refused rather than ignored. Real agent, real
//! containers, as root.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::{wait_for, TestAgent};
use serde_json::Value;

const INFRA: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: infra
  labels: {pod-security.kubernetes.io/enforce: privileged}
";

/// A pod `name` of one container `main` running `command`, with `pod_extra` under
/// `spec:` and `container_extra` under the container (both already indented).
fn pod(
    name: &str,
    namespace: &str,
    command: &str,
    pod_extra: &str,
    container_extra: &str,
) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {namespace}
spec:
  terminationGracePeriodSeconds: 1
{pod_extra}  containers:
    - name: main
      image: busybox:1.35
      command: ["sh", "-c", {command:?}]
{container_extra}"#
    )
}

const SLEEP: &str = "sleep 100000";

/// Applies `yaml`, which must be accepted.
fn apply(agent: &TestAgent, yaml: &str) {
    let out = agent.apply_yaml(yaml);
    assert!(
        out.status.success(),
        "apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Applies `yaml`, which must be refused; returns the refusal.
fn refused(agent: &TestAgent, yaml: &str) -> String {
    let out = agent.apply_yaml(yaml);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "accepted:\n{yaml}");
    stderr
}

fn wait_running(agent: &TestAgent, namespace: &str, name: &str) -> Value {
    wait_for(
        Duration::from_secs(20),
        &format!("pod {namespace}/{name} running"),
        || {
            let pod = agent.json(&["-n", namespace, "get", "pod", name]);
            let statuses = pod["status"]["containerStatuses"].as_array()?;
            statuses
                .iter()
                .all(|c| c["state"]["running"].is_object())
                .then_some(pod.clone())
        },
    )
}

/// `berth -n NS exec POD -- sh -c SCRIPT`: (exit code, stdout, stderr).
fn exec(agent: &TestAgent, namespace: &str, pod: &str, script: &str) -> (i32, String, String) {
    let out = agent.berth(&["-n", namespace, "exec", pod, "--", "sh", "-c", script]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The output of a script that must succeed.
fn exec_ok(agent: &TestAgent, namespace: &str, pod: &str, script: &str) -> String {
    let (code, out, err) = exec(agent, namespace, pod, script);
    assert_eq!(code, 0, "{script:?} in {namespace}/{pod} failed: {err}");
    out.trim().to_owned()
}

/// A field of the container's init process (`/proc/1/status`), e.g. `Seccomp`.
fn init_status(agent: &TestAgent, namespace: &str, pod: &str, field: &str) -> String {
    let line = exec_ok(
        agent,
        namespace,
        pod,
        &format!("grep '^{field}:' /proc/1/status"),
    );
    line.split_once(':').unwrap().1.trim().to_owned()
}

/// A TCP port nobody on the host listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn host_network_is_refused_by_baseline_and_real_in_a_privileged_namespace() {
    let agent = TestAgent::start();
    let port = free_port();
    let server = format!("echo up > /tmp/index.html; httpd -f -p {port} -h /tmp");
    let ports = format!("      ports: [{{containerPort: {port}, hostPort: {port}}}]\n");
    let host_pod = |ns| pod("hostnet", ns, &server, "  hostNetwork: true\n", &ports);

    let stderr = refused(&agent, &host_pod("default"));
    assert!(
        stderr.contains(
            "(403): pods \"hostnet\" is forbidden: violates PodSecurity \
             \"baseline:latest\": host namespaces (hostNetwork=true), hostPort (container \
             \"main\" uses hostPort "
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("\nspec.hostNetwork: forbidden: host namespaces"),
        "{stderr}"
    );
    assert!(
        stderr.contains("\nspec.containers[0].ports[0].hostPort: forbidden: hostPort"),
        "{stderr}"
    );
    assert!(agent.pods().is_empty(), "nothing applied");

    // The namespace and its pods in one request: the new label decides.
    let plain = pod("plain", "infra", SLEEP, "", "");
    apply(
        &agent,
        &format!("{INFRA}---\n{}---\n{plain}", host_pod("infra")),
    );
    wait_running(&agent, "infra", "hostnet");
    wait_running(&agent, "infra", "plain");

    // The host's UTS and network namespaces: its hostname, and a server the host reaches
    // on its own loopback.
    let host_name = nix::unistd::gethostname().unwrap().into_string().unwrap();
    assert_eq!(exec_ok(&agent, "infra", "hostnet", "hostname"), host_name);
    assert_eq!(exec_ok(&agent, "infra", "plain", "hostname"), "plain");
    let page = wait_for(Duration::from_secs(20), "the hostNetwork httpd", || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        stream.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        answer.contains("200").then_some(answer)
    });
    assert!(page.ends_with("up\n"), "{page}");
    // A listener of the host is on the pod's loopback too, and not on a normal pod's.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // busybox nc has no -z: `-e true` closes the connection as soon as it is made.
    let port = listener.local_addr().unwrap().port();
    let probe = format!("nc -w 2 127.0.0.1 {port} -e true");
    assert_eq!(exec(&agent, "infra", "hostnet", &probe).0, 0);
    assert_ne!(exec(&agent, "infra", "plain", &probe).0, 0);
}

#[test]
fn a_restricted_namespace_wants_run_as_non_root() {
    let agent = TestAgent::start();
    let hardened_container = "      securityContext:
        allowPrivilegeEscalation: false
        capabilities: {drop: [ALL]}
        seccompProfile: {type: RuntimeDefault}
";
    let locked = "apiVersion: v1
kind: Namespace
metadata:
  name: locked
  labels: {pod-security.kubernetes.io/enforce: restricted}
";
    apply(&agent, locked);
    let stderr = refused(
        &agent,
        &pod("rooted", "locked", SLEEP, "", hardened_container),
    );
    assert!(
        stderr.contains(
            "pods \"rooted\" is forbidden: violates PodSecurity \"restricted:latest\": \
             runAsNonRoot != true (pod or container \"main\" must set \
             securityContext.runAsNonRoot=true)\n\
             spec.containers[0].securityContext.runAsNonRoot: required value: runAsNonRoot != true"
        ),
        "{stderr}"
    );
    // The same pod runs in the default namespace (baseline), and as a non-root user in
    // the restricted one.
    apply(
        &agent,
        &pod("rooted", "default", SLEEP, "", hardened_container),
    );
    let non_root = "  securityContext: {runAsNonRoot: true, runAsUser: 1000}\n";
    apply(
        &agent,
        &pod("hardened", "locked", SLEEP, non_root, hardened_container),
    );
    wait_running(&agent, "default", "rooted");
    wait_running(&agent, "locked", "hardened");
    assert_eq!(exec_ok(&agent, "locked", "hardened", "id -u"), "1000");
    assert_eq!(
        init_status(&agent, "locked", "hardened", "CapBnd"),
        "0000000000000000"
    );
}

#[test]
fn unconfined_and_privileged_really_lift_the_sandbox() {
    let agent = TestAgent::start();
    let unconfined = "  securityContext: {seccompProfile: {type: Unconfined}}\n";
    let privileged = "      securityContext: {privileged: true}\n";

    // Baseline: refused with every control and path.
    let stderr = refused(
        &agent,
        &pod(
            "greedy",
            "default",
            SLEEP,
            unconfined,
            "      securityContext:\n        privileged: true\n        \
             capabilities: {add: [SYS_ADMIN]}\n",
        ),
    );
    assert!(
        stderr.contains(
            "pods \"greedy\" is forbidden: violates PodSecurity \"baseline:latest\": privileged \
             (container \"main\" must not set securityContext.privileged=true), non-default \
             capabilities (container \"main\" must not include \"SYS_ADMIN\" in \
             securityContext.capabilities.add), seccompProfile (pod must not set \
             securityContext.seccompProfile.type to \"Unconfined\")"
        ),
        "{stderr}"
    );
    for path in [
        "spec.containers[0].securityContext.privileged: forbidden: privileged",
        "spec.containers[0].securityContext.capabilities.add[0]: forbidden: non-default",
        "spec.securityContext.seccompProfile.type: forbidden: seccompProfile",
    ] {
        assert!(stderr.contains(path), "missing {path:?} in:\n{stderr}");
    }

    apply(&agent, INFRA);
    apply(&agent, &pod("filtered", "infra", SLEEP, "", ""));
    apply(&agent, &pod("unfiltered", "infra", SLEEP, unconfined, ""));
    apply(&agent, &pod("privileged", "infra", SLEEP, "", privileged));
    for name in ["filtered", "unfiltered", "privileged"] {
        wait_running(&agent, "infra", name);
    }
    // Seccomp mode 2 is a filter, 0 none; an exec'd process gets the container's.
    assert_eq!(init_status(&agent, "infra", "filtered", "Seccomp"), "2");
    assert_eq!(init_status(&agent, "infra", "unfiltered", "Seccomp"), "0");
    assert_eq!(init_status(&agent, "infra", "privileged", "Seccomp"), "0");
    assert_eq!(
        exec_ok(
            &agent,
            "infra",
            "unfiltered",
            "grep '^Seccomp:' /proc/self/status"
        ),
        "Seccomp:\t0"
    );
    // Unconfined alone keeps the default capabilities; privileged gets the agent's own
    // bounding set (the agent runs as this test's user, with its bounding set).
    let default_caps = init_status(&agent, "infra", "filtered", "CapBnd");
    assert_eq!(
        init_status(&agent, "infra", "unfiltered", "CapBnd"),
        default_caps
    );
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    let own_bounding = own
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(
        init_status(&agent, "infra", "privileged", "CapBnd"),
        own_bounding
    );
    assert_eq!(
        init_status(&agent, "infra", "privileged", "NoNewPrivs"),
        "1"
    );
    // Nothing masked or read-only in /proc for the privileged container (the masks are
    // mounts over paths that exist: /proc/keys is masked, /proc/sys read-only).
    let masks = "grep -cE ' /proc/(keys|sys) ' /proc/1/mountinfo || true";
    assert_eq!(exec_ok(&agent, "infra", "filtered", masks), "2");
    assert_eq!(exec_ok(&agent, "infra", "privileged", masks), "0");
    // With CAP_SYS_ADMIN and no filter, a mount works.
    let mount = "mkdir -p /mnt/t && mount -t tmpfs none /mnt/t && echo mounted";
    assert_eq!(exec_ok(&agent, "infra", "privileged", mount), "mounted");
    assert_ne!(exec(&agent, "infra", "filtered", mount).0, 0);
}

#[test]
fn host_ports_and_probe_hosts_are_refused_at_every_level() {
    let agent = TestAgent::start();
    apply(&agent, INFRA);
    let host_port = "      ports: [{containerPort: 80, hostPort: 8080}]\n";
    // Baseline forbids host ports, as in Kubernetes.
    let stderr = refused(&agent, &pod("ported", "default", SLEEP, "", host_port));
    assert!(
        stderr.contains("violates PodSecurity \"baseline:latest\": hostPort"),
        "{stderr}"
    );
    // A privileged namespace may ask for one; this agent has no pod network to forward
    // it with, so the container is refused at start, by name, never silently run.
    apply(&agent, &pod("ported", "infra", SLEEP, "", host_port));
    let waiting = wait_for(Duration::from_secs(20), "the hostPort pod refused", || {
        let pod = agent.json(&["-n", "infra", "get", "pod", "ported"]);
        let waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"].clone();
        (waiting["reason"] == "CreateContainerConfigError").then_some(waiting)
    });
    assert!(
        waiting["message"]
            .as_str()
            .unwrap_or("")
            .contains("hostPort 8080 needs the pod network"),
        "{waiting}"
    );
    agent.ok(&["-n", "infra", "delete", "pod", "ported"]);
    wait_for(Duration::from_secs(20), "the hostPort pod gone", || {
        agent.json(&["get", "pods", "-A"])["items"]
            .as_array()
            .is_some_and(Vec::is_empty)
            .then_some(())
    });
    // On the host network only the container's own port, as Kubernetes has it.
    let stderr = refused(
        &agent,
        &pod("ported", "infra", SLEEP, "  hostNetwork: true\n", host_port),
    );
    assert!(
        stderr.contains(
            "spec.containers[0].ports[0].hostPort: invalid value 8080: must match \
             `containerPort` when `hostNetwork` is true"
        ),
        "{stderr}"
    );
    let probed = "      readinessProbe: {tcpSocket: {port: 80, host: 10.0.0.1}}\n";
    let stderr = refused(&agent, &pod("probed", "infra", SLEEP, "", probed));
    assert!(
        stderr.contains(
            "Pod/probed: spec.containers[0].readinessProbe.tcpSocket.host: forbidden: berth \
             probes only the pod's own address"
        ),
        "{stderr}"
    );
    let all = agent.json(&["get", "pods", "-A"]);
    assert_eq!(all["items"].as_array().map(Vec::len), Some(0));
}
