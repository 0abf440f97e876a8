//! The default seccomp profile seen from inside a real container (issue 11): calls that
//! reach past the container fail with EPERM (ENOSYS for `clone3`), in the container's own
//! processes and in `berth exec`, while ordinary programs (busybox sh, httpd, wget) and
//! exec probes keep working. And a `Localhost` profile from the agent's seccomp root
//! (issue 17): what it refuses fails, the rest works, and a missing profile leaves the
//! container waiting with `CreateContainerError`. Real agent, real containers, as root.
//!
//! The syscall probe is tests/probes/seccomp_probe.c, built static by the test with the
//! host's C compiler (scripts/setup installs build-essential) and copied into the
//! container through `berth exec -i`.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{wait_for, TestAgent};

/// What the probe must report inside a container.
const CONFINED: &[(&str, &str)] = &[
    ("unshare_user", "EPERM"),
    ("clone_newuser", "EPERM"),
    ("clone3_newuser", "ENOSYS"),
    ("fsopen", "EPERM"),
    ("io_uring_setup", "EPERM"),
    ("keyctl", "EPERM"),
    ("bpf", "EPERM"),
    ("perf_event_open", "EPERM"),
    ("socket_alg", "EPERM"),
    ("personality_query", "OK"),
    ("fork", "OK"),
    ("socket_inet", "OK"),
    ("personality_read_implies_exec", "EPERM"),
];

/// Builds the probe into `dir`; returns its path.
fn build_probe(dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/probes/seccomp_probe.c");
    let binary = dir.join("seccomp-probe");
    let out = Command::new("cc")
        .args(["-static", "-Os", "-s", "-Wall", "-Werror", "-o"])
        .arg(&binary)
        .arg(&source)
        .output()
        .expect("run cc (scripts/setup installs build-essential)");
    assert!(
        out.status.success(),
        "cc {}: {}",
        source.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    binary
}

/// The probe's report: probe name to "OK" or an errno name.
fn parse(report: &str) -> BTreeMap<String, String> {
    report
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(probe, result)| (probe.to_string(), result.to_string()))
        .collect()
}

/// The probes whose result differs from [`CONFINED`], as "probe: got X, expected Y".
fn unexpected(report: &str) -> Vec<String> {
    let results = parse(report);
    CONFINED
        .iter()
        .filter_map(|(probe, expected)| {
            let got = results.get(*probe).map_or("nothing", String::as_str);
            (got != *expected).then(|| format!("{probe}: got {got}, expected {expected}"))
        })
        .collect()
}

fn pod_yaml() -> &'static str {
    // The main process serves HTTP, then waits for the test to copy the probe in and runs
    // it itself, so the probe also runs under the filter of the container's own init.
    r#"apiVersion: v1
kind: Pod
metadata:
  name: confined
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: busybox:1.35
      command:
        - sh
        - -c
        - >-
          httpd -p 8080 -h /var/www;
          until [ -e /tmp/go ]; do sleep 0.1; done;
          /tmp/seccomp-probe > /tmp/main.out 2>&1; echo done > /tmp/main.done;
          sleep 100000
      readinessProbe:
        exec:
          command: [cat, /var/www/index.html]
        periodSeconds: 1
"#
}

/// `berth exec confined -- args...`; returns (exit code, stdout, stderr).
fn exec(agent: &TestAgent, args: &[&str]) -> (Option<i32>, String, String) {
    let mut all = vec!["exec", "confined", "--"];
    all.extend_from_slice(args);
    let out = agent.berth(&all);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Copies `file` to `dest` in the container through `berth exec -i`.
fn copy_in(agent: &TestAgent, file: &Path, dest: &str) {
    let mut child = Command::new(common::BERTH)
        .arg("--server")
        .arg(format!("unix://{}", agent.socket().display()))
        .args(["exec", "-i", "confined", "--", "sh", "-c"])
        .arg(format!("cat > {dest} && chmod 755 {dest}"))
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("berth exec -i");
    let bytes = std::fs::read(file).unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "copy {} in: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn containers_cannot_reach_past_their_sandbox_but_ordinary_programs_work() {
    let build = tempfile::tempdir().unwrap();
    let probe = build_probe(build.path());
    // The probe can see a call succeed: unconfined, on the host, this one does.
    let host = Command::new(&probe).output().unwrap();
    let host_report = String::from_utf8_lossy(&host.stdout).into_owned();
    assert_eq!(
        parse(&host_report)
            .get("personality_read_implies_exec")
            .map(String::as_str),
        Some("OK"),
        "on the host:\n{host_report}"
    );

    let agent = TestAgent::start();
    let applied = agent.apply_yaml(pod_yaml());
    assert!(applied.status.success(), "{applied:?}");
    agent.wait_running("confined");
    // Exec probes work under the filter: the pod becomes ready.
    wait_for(Duration::from_secs(30), "the pod to be ready", || {
        let pod = agent.pod("confined");
        (common::condition(&pod, "Ready") == Some("True".into())).then_some(())
    });

    // berth exec: the probe runs under the filter the exec helper installs.
    copy_in(&agent, &probe, "/tmp/seccomp-probe");
    let (code, report, stderr) = exec(&agent, &["/tmp/seccomp-probe"]);
    assert_eq!(code, Some(0), "probe in exec: {stderr}");
    assert_eq!(unexpected(&report), Vec::<String>::new(), "exec:\n{report}");

    // The container's own processes: the main shell runs the probe once told to.
    let (code, _, stderr) = exec(&agent, &["touch", "/tmp/go"]);
    assert_eq!(code, Some(0), "{stderr}");
    wait_for(Duration::from_secs(30), "the main process's probe", || {
        (exec(&agent, &["cat", "/tmp/main.done"]).0 == Some(0)).then_some(())
    });
    let (_, report, _) = exec(&agent, &["cat", "/tmp/main.out"]);
    assert_eq!(unexpected(&report), Vec::<String>::new(), "main:\n{report}");

    // busybox's own unshare fails; sh, httpd (forked into the background by the main
    // shell) and wget work.
    let (code, _, stderr) = exec(&agent, &["unshare", "-U", "true"]);
    assert_ne!(code, Some(0), "unshare -U must fail");
    assert!(stderr.contains("Operation not permitted"), "{stderr}");
    let (code, page, stderr) = exec(
        &agent,
        &["wget", "-q", "-O", "-", "http://127.0.0.1:8080/index.html"],
    );
    assert_eq!(code, Some(0), "wget: {stderr}");
    assert_eq!(page, "hello from berth\n");
    let (code, out, _) = exec(&agent, &["sh", "-c", "echo $((6 * 7)) | cat"]);
    assert_eq!((code, out.as_str()), (Some(0), "42\n"));
}

/// A `Localhost` profile that allows everything but `mkdir`.
const NO_MKDIR: &str = r#"{
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
}"#;

fn localhost_pod(name: &str, profile: &str) -> String {
    // The main process tries mkdir itself, so the filter of the container's own init is
    // checked as well as the one `berth exec` installs.
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
  securityContext:
    seccompProfile:
      type: Localhost
      localhostProfile: {profile}
  containers:
    - name: main
      image: busybox:1.35
      command:
        - sh
        - -c
        - mkdir /tmp/by-main 2> /tmp/main.err; echo $? > /tmp/main.rc; exec sleep 100000
"#
    )
}

/// `berth exec <pod> -- args...`; returns (exit code, stdout, stderr).
fn exec_in(agent: &TestAgent, pod: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let mut all = vec!["exec", pod, "--"];
    all.extend_from_slice(args);
    let out = agent.berth(&all);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_localhost_profile_refuses_what_it_names_and_a_missing_one_is_a_create_error() {
    let agent = TestAgent::start();
    let profiles = agent.state.path().join("seccomp/profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::write(profiles.join("no-mkdir.json"), NO_MKDIR).unwrap();

    let applied = agent.apply_yaml(&localhost_pod("no-mkdir", "profiles/no-mkdir.json"));
    assert!(applied.status.success(), "{applied:?}");
    agent.wait_running("no-mkdir");
    // The main process's own mkdir failed with EPERM.
    let rc = wait_for(Duration::from_secs(30), "the main process's mkdir", || {
        let (code, out, _) = exec_in(&agent, "no-mkdir", &["cat", "/tmp/main.rc"]);
        (code == Some(0)).then_some(out)
    });
    assert_ne!(rc.trim(), "0", "mkdir must fail in the main process");
    let (_, main_err, _) = exec_in(&agent, "no-mkdir", &["cat", "/tmp/main.err"]);
    assert!(main_err.contains("Operation not permitted"), "{main_err}");
    // And in berth exec, while everything else works.
    let (code, _, stderr) = exec_in(&agent, "no-mkdir", &["mkdir", "/tmp/by-exec"]);
    assert_ne!(code, Some(0), "mkdir must fail in exec");
    assert!(stderr.contains("Operation not permitted"), "{stderr}");
    let (code, out, stderr) = exec_in(
        &agent,
        "no-mkdir",
        &[
            "sh",
            "-c",
            "echo hello > /tmp/f && cat /tmp/f && ls -d /tmp",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(out, "hello\n/tmp\n");

    // The file is only read when the container is created: apply accepts a pod naming a
    // missing profile, and its container waits with the kubelet's reason.
    let applied = agent.apply_yaml(&localhost_pod("no-profile", "profiles/missing.json"));
    assert!(applied.status.success(), "{applied:?}");
    let waiting = wait_for(Duration::from_secs(30), "CreateContainerError", || {
        let pod = agent.pod("no-profile");
        let waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"].clone();
        (waiting["reason"] == "CreateContainerError").then_some(waiting)
    });
    let message = waiting["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("cannot load seccomp profile")
            && message.contains("profiles/missing.json"),
        "{waiting}"
    );
    for pod in ["no-mkdir", "no-profile"] {
        agent.ok(&["delete", "pod", pod]);
    }
}
