//! The single-board agent end to end: real agent process, real CLI, real containers
//! through libcontainer, real cgroups. Needs root (scripts/test runs it so).

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::time::{Duration, Instant};

use common::{container_id, wait_for, TestAgent};
use serde_json::Value;

fn pod_yaml(name: &str, command: &str, extra_container: &str, extra_spec: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels:
    test: "yes"
spec:
  terminationGracePeriodSeconds: 2
{extra_spec}  containers:
    - name: main
      image: busybox:1.35
      command: ["sh", "-c", {command:?}]
{extra_container}"#
    )
}

#[test]
fn memory_limit_kills_with_oom_and_reports_it() {
    let agent = TestAgent::start();
    let yaml = pod_yaml(
        "hog",
        "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ${#x}",
        "      resources:\n        limits:\n          memory: 16Mi\n",
        "  restartPolicy: Never\n",
    );
    let out = agent.apply_yaml(&yaml);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pod = agent.wait_phase("hog", "Failed", Duration::from_secs(30));
    let terminated = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(terminated["reason"], "OOMKilled", "pod: {pod:#}");
    assert_eq!(terminated["exitCode"], 137);
    assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 0);
}

#[test]
fn cpu_limit_caps_a_busy_loop() {
    let agent = TestAgent::start();
    let yaml = pod_yaml(
        "spin",
        "while :; do :; done",
        "      resources:\n        limits:\n          cpu: 200m\n",
        "",
    );
    assert!(agent.apply_yaml(&yaml).status.success());
    let pod = agent.wait_running("spin");
    let id = container_id(&pod, 0);
    let parent = &agent.cgroup_parent;
    // The container's cgroup file: in the controller's hierarchy (cgroup v1) or the
    // unified one (v2).
    let read = |controller: &str, file: &str| -> Option<String> {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{controller}/{parent}/{id}/{file}"))
            .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup/{parent}/{id}/{file}")))
            .ok()
    };
    let field = |text: &str, key: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
    };
    let usage_ns = || -> u64 {
        let v1 = read("cpuacct", "cpuacct.usage").and_then(|t| t.trim().parse().ok());
        let v2 = || field(&read("cpu", "cpu.stat")?, "usage_usec").map(|us| us * 1000);
        v1.or_else(v2).expect("the container's CPU usage")
    };
    // Periods in which the loop used up its quota and had to wait (v1 and v2 alike).
    let throttled = || -> u64 {
        read("cpu", "cpu.stat")
            .and_then(|stat| field(&stat, "nr_throttled"))
            .expect("nr_throttled in the container's cpu.stat")
    };
    // The clock starts before and stops after the usage readings, so a slow reading
    // makes the share look smaller, never larger.
    let start = Instant::now();
    let (start_usage, start_throttled) = (usage_ns(), throttled());
    // A measurement window of at least 3 s (the quota is enforced per 100 ms period)
    // that ends once the kernel has throttled the loop a few times: on a loaded machine
    // the loop may get less than its quota for a while.
    let (end_usage, elapsed) = wait_for(
        Duration::from_secs(60),
        "the loop to be throttled by its quota",
        || {
            (start.elapsed() >= Duration::from_secs(3) && throttled() >= start_throttled + 5)
                .then(|| (usage_ns(), start.elapsed()))
        },
    );
    let used = end_usage
        .checked_sub(start_usage)
        .unwrap_or_else(|| panic!("CPU usage went back: {start_usage} ns, then {end_usage}"));
    let share = used as f64 / elapsed.as_nanos() as f64;
    assert!(
        share <= 0.25,
        "200m limit not enforced: {share:.3} of a core"
    );
}

#[test]
fn pod_level_resources_limit_the_pods_own_cgroup() {
    let agent = TestAgent::start();
    let yaml = r#"apiVersion: v1
kind: Pod
metadata:
  name: pooled
spec:
  terminationGracePeriodSeconds: 2
  resources:
    limits:
      cpu: 500m
      memory: 64Mi
      pids: "256"
  containers:
    - name: main
      image: busybox:1.35
      command: ["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"]
    - name: helper
      image: busybox:1.35
      command: ["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"]
      resources:
        limits:
          memory: 32Mi
"#;
    let out = agent.apply_yaml(yaml);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pod = agent.wait_running("pooled");
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_owned();
    let pod_cgroup = format!("{}/pod_{uid}", agent.cgroup_parent);
    // A file of the pod's cgroup (v1: in the controller's hierarchy; v2: unified).
    let read = |controller: &str, file: &str| -> Option<String> {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{controller}/{pod_cgroup}/{file}"))
            .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup/{pod_cgroup}/{file}")))
            .ok()
            .map(|text| text.trim().to_owned())
    };
    let memory = read("memory", "memory.limit_in_bytes").or_else(|| read("memory", "memory.max"));
    assert_eq!(
        memory.as_deref(),
        Some("67108864"),
        "64Mi for the whole pod"
    );
    match read("cpu", "cpu.cfs_quota_us") {
        Some(quota) => {
            assert_eq!(quota, "50000");
            assert_eq!(read("cpu", "cpu.cfs_period_us").as_deref(), Some("100000"));
        }
        None => assert_eq!(read("cpu", "cpu.max").as_deref(), Some("50000 100000")),
    }
    assert_eq!(read("pids", "pids.max").as_deref(), Some("256"));
    // Both containers run inside it, the helper with its own tighter limit.
    for index in 0..2 {
        let id = container_id(&pod, index);
        let inside = ["memory/", ""].iter().any(|hierarchy| {
            std::path::Path::new(&format!("/sys/fs/cgroup/{hierarchy}{pod_cgroup}/{id}")).is_dir()
        });
        assert!(inside, "container {id} is in the pod's cgroup");
    }

    agent.ok(&["delete", "pod", "pooled", "--timeout", "30s"]);
    wait_for(Duration::from_secs(10), "the pod's cgroup removed", || {
        agent.cgroups().is_empty().then_some(())
    });
}

#[test]
fn apply_run_delete_leaves_nothing_behind() {
    let agent = TestAgent::start();
    let yaml = pod_yaml("tidy", "trap 'exit 0' TERM; sleep 1000 & wait", "", "");
    assert!(agent.apply_yaml(&yaml).status.success());
    let pod = agent.wait_running("tidy");
    let id = container_id(&pod, 0);
    assert!(!id.is_empty());
    assert!(!agent.container_dirs().is_empty());
    assert!(
        !agent.cgroups().is_empty(),
        "the container has a cgroup under {}",
        agent.cgroup_parent
    );
    assert!(
        !agent.mounts().is_empty(),
        "rootfs overlay and namespace files are mounted"
    );

    agent.ok(&["delete", "pod", "tidy", "--timeout", "30s"]);
    let out = agent.berth(&["get", "pod", "tidy"]);
    assert!(!out.status.success(), "pod still there after delete");
    wait_for(Duration::from_secs(10), "cleanup", || {
        (agent.container_dirs().is_empty()
            && agent.cgroups().is_empty()
            && agent.mounts().is_empty())
        .then_some(())
    });
    let sandboxes = std::fs::read_dir(agent.state.path().join("pods"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(sandboxes, 0, "pod sandbox dir left behind");
    let logs = std::fs::read_dir(agent.state.path().join("logs"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(logs, 0, "pod logs left behind");
}

#[test]
fn killed_agent_leaves_containers_running_and_adopts_them() {
    let mut agent = TestAgent::start();
    let deployment = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: steady
spec:
  replicas: 3
  selector:
    matchLabels: {app: steady}
  template:
    metadata:
      labels: {app: steady}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: main
          image: busybox:1.35
          command: ["sleep", "1000"]
"#;
    assert!(agent.apply_yaml(deployment).status.success());
    wait_for(Duration::from_secs(30), "3 running pods", || {
        let pods = agent.pods();
        let running = pods
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count();
        (running == 3).then_some(())
    });
    let before = agent.init_pids();
    assert!(before.iter().all(|(_, pid)| *pid > 0), "{before:?}");

    agent.kill9();
    for (_, pid) in &before {
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "container {pid} died with the agent"
        );
    }
    agent.spawn();
    let after = wait_for(
        Duration::from_secs(10),
        "the agent to report the pods",
        || {
            let pods = agent.pods();
            (pods.len() == 3 && pods.iter().all(|p| p["status"]["phase"] == "Running"))
                .then_some(agent.init_pids())
        },
    );
    assert_eq!(before, after, "the restarted agent must adopt, not restart");
    for pod in agent.pods() {
        assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 0);
    }
    let deploy = agent.json(&["get", "deployment", "steady"]);
    assert_eq!(deploy["status"]["readyReplicas"], 3, "{deploy:#}");
}

#[test]
fn invalid_manifest_is_rejected_whole_with_every_error() {
    let agent = TestAgent::start();
    let yaml = r#"apiVersion: v1
kind: Pod
metadata:
  name: fine
spec:
  containers:
    - name: main
      image: busybox:1.35
      command: ["sleep", "1000"]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: broken
spec:
  replicas: 2
  selector:
    matchLabels: {app: broken}
  template:
    metadata:
      labels: {app: broken}
    spec:
      restartPolicy: Sometimes
      containers:
        - name: main
          image: busybox:1.35
          securityContext: {allowPrivilegeEscalation: true}
          resources:
            limits:
              memory: 64Mb
"#;
    let out = agent.apply_yaml(yaml);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for path in [
        "spec.template.spec.containers[0].resources.limits.memory: invalid quantity \"64Mb\"",
        "spec.template.spec.containers[0].securityContext",
        "spec.template.spec.restartPolicy",
    ] {
        assert!(stderr.contains(path), "missing {path:?} in:\n{stderr}");
    }
    assert!(
        agent.pods().is_empty(),
        "nothing from a rejected file may be applied"
    );
    let deployments = agent.json(&["get", "deployments"]);
    assert_eq!(deployments["items"].as_array().map(Vec::len), Some(0));
}

#[test]
fn manifests_dir_applies_and_removed_file_deletes() {
    let agent = TestAgent::start();
    let file = agent.manifests.join("web.yaml");
    let yaml = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: dropped
spec:
  replicas: 2
  selector:
    matchLabels: {app: dropped}
  template:
    metadata:
      labels: {app: dropped}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: main
          image: busybox:1.35
          command: ["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"]
"#;
    std::fs::write(&file, yaml).expect("write manifest");
    wait_for(
        Duration::from_secs(30),
        "2 running pods from the manifests dir",
        || {
            let pods = agent.pods();
            (pods
                .iter()
                .filter(|p| p["status"]["phase"] == "Running")
                .count()
                == 2)
                .then_some(())
        },
    );
    std::fs::remove_file(&file).expect("remove manifest");
    wait_for(
        Duration::from_secs(30),
        "pods deleted after the file went",
        || (agent.pods().is_empty() && agent.container_dirs().is_empty()).then_some(()),
    );
    let deployments = agent.json(&["get", "deployments"]);
    assert_eq!(deployments["items"].as_array().map(Vec::len), Some(0));
}

#[test]
fn logs_show_output_and_tail() {
    let agent = TestAgent::start();
    let yaml = pod_yaml(
        "talker",
        "for i in 1 2 3 4 5; do echo line $i; done; echo oops >&2; sleep 1000",
        "",
        "",
    );
    assert!(agent.apply_yaml(&yaml).status.success());
    agent.wait_running("talker");
    let all = wait_for(Duration::from_secs(10), "log output", || {
        let out = agent.try_ok(&["logs", "talker"])?;
        out.contains("oops").then_some(out)
    });
    assert!(
        all.contains("line 1\n") && all.contains("line 5\n"),
        "{all}"
    );
    let tail = agent.ok(&["logs", "talker", "--tail", "2"]);
    assert_eq!(tail.lines().count(), 2, "{tail}");
    assert!(tail.contains("oops"));
    let missing = agent.berth(&["logs", "talker", "--previous"]);
    assert!(!missing.status.success());
}

#[test]
fn exit_codes_follow_the_restart_policy() {
    let agent = TestAgent::start();
    let never = pod_yaml("once", "exit 3", "", "  restartPolicy: Never\n");
    assert!(agent.apply_yaml(&never).status.success());
    let pod = agent.wait_phase("once", "Failed", Duration::from_secs(20));
    let status = &pod["status"]["containerStatuses"][0];
    assert_eq!(status["state"]["terminated"]["exitCode"], 3);
    assert_eq!(status["state"]["terminated"]["reason"], "Error");
    assert_eq!(status["restartCount"], 0);

    let always = pod_yaml("again", "exit 1", "", "");
    assert!(agent.apply_yaml(&always).status.success());
    let pod = wait_for(Duration::from_secs(20), "restarts", || {
        let pod = agent.pod("again");
        (pod["status"]["containerStatuses"][0]["restartCount"].as_i64() >= Some(2)).then_some(pod)
    });
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(
        pod["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
        1
    );
}

#[test]
fn image_in_use_cannot_be_removed() {
    let agent = TestAgent::start();
    let yaml = pod_yaml("user", "sleep 1000", "", "");
    assert!(agent.apply_yaml(&yaml).status.success());
    let out = agent.berth(&["image", "rm", "busybox:1.35"]);
    assert!(!out.status.success(), "removing an image in use must fail");
    let listed = agent.ok(&["image", "ls"]);
    assert!(
        listed.contains("docker.io/library/busybox:1.35"),
        "{listed}"
    );
}

#[test]
fn get_json_is_kubernetes_shaped() {
    let agent = TestAgent::start();
    let yaml = pod_yaml("shape", "sleep 1000", "", "");
    assert!(agent.apply_yaml(&yaml).status.success());
    agent.wait_running("shape");
    let list = agent.json(&["get", "pods", "-l", "test=yes"]);
    assert_eq!(list["kind"], "List");
    assert_eq!(list["apiVersion"], "v1");
    let pod: &Value = &list["items"][0];
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["metadata"]["namespace"], "default");
    assert!(pod["metadata"]["uid"]
        .as_str()
        .is_some_and(|u| !u.is_empty()));
    assert_eq!(common::condition(pod, "Ready"), Some(Value::from("True")));
    let status = &pod["status"]["containerStatuses"][0];
    assert_eq!(status["ready"], true);
    assert!(
        status["imageID"]
            .as_str()
            .is_some_and(|i| i.contains("@sha256:")),
        "{status:#}"
    );
    let none = agent.json(&["get", "pods", "-l", "test=no"]);
    assert_eq!(none["items"].as_array().map(Vec::len), Some(0));
}

#[test]
fn sigterm_stops_the_agent_cleanly_and_leaves_pods_running() {
    let mut agent = TestAgent::start();
    let yaml = pod_yaml("survivor", "sleep 1000", "", "");
    assert!(agent.apply_yaml(&yaml).status.success());
    let pod = agent.wait_running("survivor");
    let id = container_id(&pod, 0);
    let init = std::fs::read_to_string(
        agent
            .state
            .path()
            .join("containers")
            .join(&id)
            .join("init.pid"),
    )
    .expect("init.pid");

    // The container starts with no signal blocked or ignored, whatever the agent had
    // (it blocks SIGTERM itself), so a graceful stop can reach it.
    let proc_status =
        std::fs::read_to_string(format!("/proc/{}/status", init.trim())).expect("status");
    let field = |name: &str| {
        proc_status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(field("SigBlk:"), "0000000000000000");
    let ignored = u64::from_str_radix(&field("SigIgn:"), 16).expect("SigIgn");
    assert_eq!(
        ignored & ((1 << 14) | (1 << 1) | (1 << 12)),
        0,
        "TERM, INT or PIPE ignored: {ignored:x}"
    );

    // No requests or limits: BestEffort, first in line for the OOM killer.
    let score = std::fs::read_to_string(format!("/proc/{}/oom_score_adj", init.trim()))
        .expect("oom_score_adj");
    assert_eq!(score.trim(), "1000");

    let status = agent.terminate().expect("the agent exits on SIGTERM");
    assert!(status.success(), "agent exit status {status:?}");
    assert!(!agent.socket().exists(), "a clean stop removes the socket");
    assert!(
        std::path::Path::new(&format!("/proc/{}", init.trim())).exists(),
        "the container died with the agent"
    );

    agent.spawn();
    let pod = agent.wait_running("survivor");
    assert_eq!(container_id(&pod, 0), id, "adopted, not replaced");
    assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 0);
    let described = agent.ok(&["describe", "pod", "survivor"]);
    assert!(
        described.contains("Restart Count:") && described.contains("Running"),
        "{described}"
    );
}

#[test]
fn delete_by_file_removes_what_the_file_names() {
    let agent = TestAgent::start();
    let path = agent.state.path().join("two.yaml");
    let two = format!(
        "{}---\n{}",
        pod_yaml("one", "sleep 1000", "", ""),
        pod_yaml("two", "sleep 1000", "", "")
    );
    std::fs::write(&path, two).expect("write");
    let file = path.to_str().expect("utf-8");
    agent.ok(&["apply", "-f", file]);
    assert_eq!(agent.pods().len(), 2);
    let again = agent.ok(&["apply", "-f", file]);
    assert!(again.contains("pod/one unchanged"), "{again}");
    let out = agent.ok(&["delete", "-f", file, "--timeout", "30"]);
    assert!(
        out.contains("pod \"one\" deleted") && out.contains("pod \"two\" deleted"),
        "{out}"
    );
    assert!(agent.pods().is_empty());
    assert!(agent.container_dirs().is_empty());
}

#[test]
fn namespaces_scope_objects_and_take_them_along_when_deleted() {
    let agent = TestAgent::start();
    let yaml = r#"apiVersion: v1
kind: Namespace
metadata:
  name: greenhouse
---
apiVersion: v1
kind: Pod
metadata:
  name: sensor
  namespace: greenhouse
spec:
  terminationGracePeriodSeconds: 0
  containers:
    - name: main
      image: busybox:1.35
      command: ["sleep", "1000"]
"#;
    let out = agent.apply_yaml(yaml);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Not in the default namespace; found with -n and with -A.
    assert!(agent.pods().is_empty());
    let in_ns = agent.json(&["get", "pods", "-n", "greenhouse"]);
    assert_eq!(in_ns["items"].as_array().map(Vec::len), Some(1));
    let all = agent.ok(&["get", "pods", "-A"]);
    assert!(
        all.contains("greenhouse") && all.contains("sensor"),
        "{all}"
    );
    wait_for(Duration::from_secs(20), "the pod running", || {
        let pod = agent.json(&["get", "pod", "sensor", "-n", "greenhouse"]);
        (pod["status"]["phase"] == "Running").then_some(())
    });
    // A pod for a namespace that does not exist is refused.
    let orphan = agent.apply_yaml(
        &pod_yaml("lost", "sleep 1", "", "")
            .replace("  labels:", "  namespace: nowhere\n  labels:"),
    );
    assert!(!orphan.status.success());
    assert!(String::from_utf8_lossy(&orphan.stderr).contains("nowhere"));

    agent.ok(&["delete", "namespace", "greenhouse", "--timeout", "30"]);
    let namespaces = agent.ok(&["get", "namespaces"]);
    assert!(!namespaces.contains("greenhouse"), "{namespaces}");
    assert!(
        agent.container_dirs().is_empty(),
        "the namespace's pods are gone"
    );
}
