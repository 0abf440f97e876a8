//! kubectl habits end to end (issue 10): delete by names, selectors and `--all`, `get`
//! of several types and `all`, `get -w`, `logs -l`, and an agent that finds containers
//! it has no state for. Real agent, real CLI, real containers, as root.

mod common;
// Only the coordinator is used here, not the test networks.
#[allow(dead_code)]
#[path = "common/fleet.rs"]
mod fleet_support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{wait_for, TestAgent, BERTH};
use fleet_support::TestCoordinator;
use serde_json::Value;

/// A pod that stops at once on SIGTERM, with labels.
fn pod(name: &str, labels: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{{labels}}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
    - name: main
      image: busybox:1.35
      command: ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
---
"#
    )
}

fn deployment(name: &str, replicas: u32, command: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
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
          command: ["sh", "-c", {command:?}]
---
"#
    )
}

const QUIET: &str = "trap 'exit 0' TERM; sleep 100000 & wait";

fn names(agent: &TestAgent) -> Vec<String> {
    let mut names: Vec<String> = agent
        .pods()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap_or("").to_owned())
        .collect();
    names.sort();
    names
}

fn wait_all_running(agent: &TestAgent, n: usize) -> Vec<Value> {
    wait_for(
        Duration::from_secs(60),
        &format!("{n} running pods"),
        || {
            let pods = agent.pods();
            let running = pods.iter().all(|p| p["status"]["phase"] == "Running");
            (pods.len() == n && running).then_some(pods)
        },
    )
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn delete_takes_names_selectors_and_all_like_kubectl() {
    let agent = TestAgent::start();
    let yaml = [
        pod("a", "app: x"),
        pod("b", "app: x"),
        pod("c", "app: y"),
        pod("d", "app: z"),
        pod("e", "app: z"),
    ]
    .concat();
    assert!(agent.apply_yaml(&yaml).status.success());
    wait_all_running(&agent, 5);

    // Several names: the missing one is reported kubectl's way, the others still go.
    let out = agent.berth(&["delete", "pod", "a", "nope", "b", "--timeout", "30"]);
    assert!(
        !out.status.success(),
        "a missing pod makes the exit code non-zero"
    );
    assert_eq!(stdout(&out), "pod \"a\" deleted\npod \"b\" deleted\n");
    assert_eq!(
        stderr(&out),
        "Error from server (NotFound): pods \"nope\" not found\n"
    );
    assert_eq!(names(&agent), ["c", "d", "e"]);

    let out = agent.ok(&["delete", "pods", "-l", "app=y", "--timeout", "30"]);
    assert_eq!(out, "pod \"c\" deleted\n");
    let out = agent.berth(&["delete", "pods", "-l", "app=none"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("No resources found"),
        "{}",
        stderr(&out)
    );

    let out = agent.berth(&["delete", "pods"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no name was specified"),
        "{}",
        stderr(&out)
    );

    let out = agent.ok(&["delete", "pods", "--all", "--timeout", "30s"]);
    assert_eq!(out, "pod \"d\" deleted\npod \"e\" deleted\n");
    let out = agent.berth(&["get", "pods"]);
    assert!(out.status.success() && stdout(&out).is_empty());
    assert_eq!(stderr(&out), "No resources found in default namespace.\n");
    wait_for(Duration::from_secs(10), "the containers to be gone", || {
        (agent.container_dirs().is_empty() && agent.cgroups().is_empty()).then_some(())
    });
}

#[test]
fn get_several_types_and_all_then_delete_them_by_selector() {
    let agent = TestAgent::start();
    let extras = r#"apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: fast}
---
apiVersion: v1
kind: Secret
metadata: {name: token}
stringData: {key: value}
"#;
    let yaml = [
        deployment("web", 2, QUIET),
        pod("loner", "app: web"),
        extras.to_owned(),
    ]
    .concat();
    assert!(agent.apply_yaml(&yaml).status.success());
    let pods = wait_all_running(&agent, 3);
    let replica = pods
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .find(|n| n.starts_with("web-"))
        .expect("a replica")
        .to_owned();

    // One table per type, a blank line apart, names with their type.
    let out = agent.ok(&["get", "pods,deployments,replicasets"]);
    let blocks: Vec<&str> = out.split("\n\n").collect();
    assert_eq!(blocks.len(), 3, "{out}");
    let pod_lines: Vec<&str> = blocks[0].lines().collect();
    assert!(
        pod_lines[0].starts_with("NAME") && pod_lines[0].contains("RESTARTS"),
        "{out}"
    );
    assert_eq!(pod_lines.len(), 4, "{out}");
    assert!(
        pod_lines[1..].iter().all(|l| l.starts_with("pod/")),
        "{out}"
    );
    assert!(out.contains(&format!("pod/{replica} ")), "{out}");
    let deploy_lines: Vec<&str> = blocks[1].lines().collect();
    assert!(deploy_lines[0].contains("UP-TO-DATE"), "{out}");
    assert!(deploy_lines[1].starts_with("deployment.apps/web "), "{out}");
    let rs_lines: Vec<&str> = blocks[2].lines().collect();
    assert!(rs_lines[0].contains("DESIRED   CURRENT   READY"), "{out}");
    assert!(rs_lines[1].starts_with("replicaset.apps/web-"), "{out}");
    let fields: Vec<&str> = rs_lines[1].split_whitespace().collect();
    assert_eq!(fields[1..4], ["2", "2", "2"], "{out}");
    // AGE may tick between the two calls: compare the names.
    let first_words = |out: &str| -> Vec<String> {
        out.lines()
            .map(|l| l.split_whitespace().next().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(
        first_words(&agent.ok(&["get", "all"])),
        first_words(&out),
        "all is pods, deployments and replicasets here"
    );

    let out = agent.ok(&["get", "cm,secrets"]);
    assert!(
        out.contains("configmap/settings ") && out.contains("secret/token "),
        "{out}"
    );
    let out = agent.ok(&["get", "deploy/web", &format!("pod/{replica}")]);
    assert!(out.contains("deployment.apps/web ") && out.contains(&format!("pod/{replica} ")));
    let out = agent.ok(&["get", "namespaces"]);
    assert!(out.lines().any(|l| l.starts_with("default ")), "{out}");

    // Names that exist are printed; a missing one is an error line and exit 1.
    let out = agent.berth(&["get", "pods", "loner", "nope"]);
    assert!(!out.status.success());
    assert!(stdout(&out)
        .lines()
        .nth(1)
        .is_some_and(|l| l.starts_with("loner ")));
    assert_eq!(
        stderr(&out),
        "Error from server (NotFound): pods \"nope\" not found\n"
    );

    let list = agent.json(&["get", "all"]);
    assert_eq!(list["kind"], "List");
    let kinds: Vec<&str> = list["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|i| i["kind"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        kinds,
        ["Pod", "Pod", "Pod", "Deployment", "ReplicaSet"],
        "{list:#}"
    );

    // The Deployment goes first; the pods it takes along are not "not found" errors.
    let out = agent.ok(&[
        "delete",
        "deployment,pod",
        "-l",
        "app=web",
        "--timeout",
        "60",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "deployment.apps \"web\" deleted", "{out}");
    assert!(lines.contains(&"pod \"loner\" deleted"), "{out}");
    let out = agent.berth(&["get", "all"]);
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    assert_eq!(stderr(&out), "No resources found in default namespace.\n");
    assert!(agent.ok(&["get", "configmaps"]).contains("settings"));
}

/// A `berth` process whose stdout lines arrive on a channel; killed when dropped.
struct Streaming {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Streaming {
    fn start(agent: &TestAgent, args: &[&str]) -> Streaming {
        let server = format!("unix://{}", agent.socket().display());
        Streaming::start_with(&["--server", &server], args)
    }

    /// `server` selects the agent or coordinator (`--server URL`, `--config FILE`).
    fn start_with(server: &[&str], args: &[&str]) -> Streaming {
        let mut child = Command::new(BERTH)
            .args(server)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start berth");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Streaming {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line that `matches`; returns it.
    fn expect(&mut self, what: &str, mut matches: impl FnMut(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {what}; saw:\n{}", self.seen.join("\n")),
            }
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn get_watch_prints_the_table_then_every_change_until_the_agent_stops() {
    let mut agent = TestAgent::start();
    // Terminating until the test lets it go (/tmp/go), so that state lasts until it is
    // seen; bounded by the grace period in case the test never does.
    let held = pod("first", "app: w")
        .replace(
            "trap 'exit 0' TERM",
            "trap 'i=0; while [ ! -e /tmp/go ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; exit 0' TERM",
        )
        .replace(
            "terminationGracePeriodSeconds: 2",
            "terminationGracePeriodSeconds: 30",
        );
    assert!(agent.apply_yaml(&held).status.success());
    agent.wait_running("first");

    let mut watch = Streaming::start(&agent, &["get", "pods", "-w"]);
    let header = watch.expect("the header", |l| l.starts_with("NAME"));
    assert!(header.contains("STATUS"), "{header}");
    watch.expect("first, running", |l| {
        l.starts_with("first ") && l.contains("Running")
    });

    assert!(agent.apply_yaml(&pod("second", "app: w")).status.success());
    // Pending first unless it started at once; Running in any case.
    watch.expect("second, running", |l| {
        l.starts_with("second ") && l.contains("Running") && l.contains("1/1")
    });
    agent.ok(&["delete", "pod", "first", "--wait=false"]);
    watch.expect("first, terminating", |l| {
        l.starts_with("first ") && l.contains("Terminating")
    });
    let terminating = watch.seen.len();
    agent.ok(&["exec", "first", "--", "touch", "/tmp/go"]);
    wait_for(Duration::from_secs(30), "first to be gone", || {
        let out = agent.berth(&["get", "pod", "first"]);
        (!out.status.success() && stderr(&out).contains("NotFound")).then_some(())
    });
    // A change after the deletion: the watch has printed every row about first before
    // this one.
    assert!(agent.apply_yaml(&pod("third", "app: w")).status.success());
    watch.expect("third", |l| l.starts_with("third "));
    // The deletion is the last row about first, as kubectl prints the DELETED event: the
    // pod as last seen, terminating (its container stopped or not yet).
    let after: Vec<&String> = watch.seen[terminating..]
        .iter()
        .filter(|l| l.starts_with("first "))
        .collect();
    assert!(
        after.last().is_some_and(|l| l.contains("Terminating")),
        "no deletion row for first; saw:\n{}",
        watch.seen.join("\n")
    );

    // When the agent goes away, so does the watch.
    agent.terminate().expect("the agent stops");
    let status = wait_for(Duration::from_secs(10), "the watch to end", || {
        watch.child.try_wait().ok().flatten()
    });
    assert!(status.success(), "{status:?}");
}

#[test]
fn get_and_watch_work_against_a_coordinator_too() {
    let mut coordinator = TestCoordinator::start("127.0.0.1", &[]);
    let yaml = [deployment("web", 1, QUIET), pod("first", "app: w")].concat();
    let path = coordinator.state.path().join("app.yaml");
    std::fs::write(&path, yaml).expect("write manifest");
    coordinator.ok(&["apply", "-f", path.to_str().expect("utf-8")]);

    // No boards: the pods stay Pending, which is all this test needs.
    let out = coordinator.ok(&["get", "all"]);
    assert!(
        out.contains("pod/first ") && out.contains("deployment.apps/web "),
        "{out}"
    );

    let config = coordinator.config();
    let config = config.to_str().expect("utf-8");
    let mut watch = Streaming::start_with(&["--config", config], &["get", "pods", "-w"]);
    watch.expect("the header", |l| l.starts_with("NAME"));
    watch.expect("first, pending", |l| {
        l.starts_with("first ") && l.contains("Pending")
    });
    let second = pod("second", "app: w");
    std::fs::write(&path, second).expect("write manifest");
    coordinator.ok(&["apply", "-f", path.to_str().expect("utf-8")]);
    watch.expect("second", |l| l.starts_with("second "));
    coordinator.ok(&["delete", "pod", "first", "--wait=false"]);
    watch.expect("first, deleted", |l| l.starts_with("first "));

    coordinator.stop();
    let status = wait_for(Duration::from_secs(10), "the watch to end", || {
        watch.child.try_wait().ok().flatten()
    });
    assert!(status.success(), "{status:?}");
}

#[test]
fn logs_of_every_pod_a_selector_picks() {
    let agent = TestAgent::start();
    let talk = "for i in $(seq 1 15); do echo \"$HOSTNAME line $i\"; done; trap 'exit 0' TERM; sleep 100000 & wait";
    let yaml = [deployment("talk", 2, talk), pod("other", "app: other")].concat();
    assert!(agent.apply_yaml(&yaml).status.success());
    let pods = wait_all_running(&agent, 3);
    let talkers: Vec<String> = pods
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .filter(|n| n.starts_with("talk-"))
        .map(str::to_owned)
        .collect();
    assert_eq!(talkers.len(), 2);

    // kubectl's default with a selector: the last 10 lines of each pod, no prefix.
    // Done talking once each pod's line 15 is there (20 lines come sooner, from lines
    // still being written).
    let out = wait_for(Duration::from_secs(10), "both logs complete", || {
        let out = agent.ok(&["logs", "-l", "app=talk"]);
        let complete = talkers
            .iter()
            .all(|name| out.contains(&format!("{name} line 15\n")));
        (complete && out.lines().count() == 20).then_some(out)
    });
    for name in &talkers {
        assert!(out.contains(&format!("{name} line 15\n")), "{out}");
        assert!(!out.contains(&format!("{name} line 5\n")), "{out}");
    }
    let all = agent.ok(&["logs", "-l", "app=talk", "--tail=-1"]);
    assert_eq!(all.lines().count(), 30, "{all}");

    let prefixed = agent.ok(&["logs", "-l", "app=talk", "--prefix", "--tail", "1"]);
    let mut lines: Vec<&str> = prefixed.lines().collect();
    lines.sort();
    let mut expected: Vec<String> = talkers
        .iter()
        .map(|n| format!("[pod/{n}/main] {n} line 15"))
        .collect();
    expected.sort();
    assert_eq!(lines, expected);

    let mut follow = Streaming::start(&agent, &["logs", "-l", "app=talk", "-f", "--prefix"]);
    let mut missing = expected.clone();
    follow.expect("line 15 of each pod", |line| {
        missing.retain(|m| m != line);
        missing.is_empty()
    });
    assert!(
        !follow.seen.iter().any(|l| l.ends_with(" line 5")),
        "followed from the last 10 lines: {:?}",
        follow.seen
    );
    let none = agent.berth(&["logs", "-l", "app=nobody"]);
    assert!(none.status.success());
    assert!(
        stderr(&none).contains("No resources found"),
        "{}",
        stderr(&none)
    );
}

fn pid_alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    })
}

#[test]
fn an_agent_whose_store_was_lost_stops_the_containers_no_pod_owns() {
    let mut agent = TestAgent::start();
    assert!(agent.apply_yaml(&pod("lost", "app: l")).status.success());
    agent.wait_running("lost");
    let [(_, pid)] = agent.init_pids()[..] else {
        panic!("one pod expected");
    };
    agent.kill9();
    for file in ["berth.db", "berth.db-wal", "berth.db-shm"] {
        let _ = std::fs::remove_file(agent.state.path().join(file));
    }
    agent.spawn();
    wait_for(
        Duration::from_secs(40),
        "the orphaned container to stop",
        || {
            (!pid_alive(pid) && agent.container_dirs().is_empty() && agent.cgroups().is_empty())
                .then_some(())
        },
    );
    assert!(agent.pods().is_empty());
}

#[test]
fn an_agent_on_a_wiped_state_dir_kills_what_runs_under_its_cgroup_parent() {
    let mut agent = TestAgent::start();
    // PID 1 of the container ignores SIGTERM: only SIGKILL ends it.
    let yaml = pod("stray", "app: s").replace(QUIET, "sleep 100000");
    assert!(agent.apply_yaml(&yaml).status.success());
    agent.wait_running("stray");
    let [(_, pid)] = agent.init_pids()[..] else {
        panic!("one pod expected");
    };

    // Another agent that shares the cgroup parent (a mistake) leaves containers alone
    // while their own agent's state still names them.
    let mut other = TestAgent::start();
    other.kill9();
    let own_parent = std::mem::replace(&mut other.cgroup_parent, agent.cgroup_parent.clone());
    other.spawn();
    assert!(pid_alive(pid), "another agent's container was killed");
    other.kill9();
    other.cgroup_parent = own_parent;

    // Wipe the state dir under the running container, as a re-provisioned board would.
    agent.kill9();
    let mut mounts = agent.mounts();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for mount in mounts {
        nix::mount::umount2(mount.as_str(), nix::mount::MntFlags::MNT_DETACH).expect("umount");
    }
    for entry in std::fs::read_dir(agent.state.path())
        .expect("state dir")
        .flatten()
    {
        if entry.file_name() == "agent.log" {
            continue;
        }
        let path = entry.path();
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.expect("wipe the state dir");
    }
    assert!(pid_alive(pid) && !agent.cgroups().is_empty());

    agent.spawn();
    // The sweep runs before the agent serves, so it is done once the socket answers.
    assert!(!pid_alive(pid), "the orphaned container still runs");
    assert!(agent.cgroups().is_empty(), "{:?}", agent.cgroups());
    assert!(agent.log().contains("stopping orphaned container"));
}

/// Manifests written for a Kubernetes cluster: the system namespaces exist, and an
/// annotation asking for what berth lacks (AppArmor) is applied with a kubectl-style
/// `Warning:` rather than ignored silently.
#[test]
fn system_namespaces_exist_and_unsupported_annotations_are_warned_about() {
    let agent = TestAgent::start();
    let namespaces = agent.json(&["get", "namespaces"]);
    let mut names: Vec<&str> = namespaces["items"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|ns| ns["metadata"]["name"].as_str().expect("a name"))
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    // kube-system is exempt from Pod Security, as clusters keep it for node agents.
    let system = agent.json(&["get", "namespace", "kube-system"]);
    assert_eq!(
        system["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );
    let yaml = r#"apiVersion: v1
kind: Pod
metadata:
  name: guarded
  namespace: kube-system
  annotations:
    container.apparmor.security.beta.kubernetes.io/main: runtime/default
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: busybox:1.35
      command: [sleep, "3600"]
"#;
    let out = agent.apply_yaml(yaml);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("pod/guarded created"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains(
            "Warning: metadata.annotations[container.apparmor.security.beta.kubernetes.io/main]: AppArmor is not supported by berth"
        ),
        "{}",
        stderr(&out)
    );
    agent.ok(&["delete", "pod", "guarded", "-n", "kube-system"]);
    // Other kube- names stay reserved.
    let refused =
        agent.apply_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: kube-mine}\n");
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("reserved"),
        "{}",
        stderr(&refused)
    );
}

/// Ingresses, NetworkPolicies, IngressClasses, ServiceAccounts, HorizontalPodAutoscalers
/// and PodDisruptionBudgets are stored and shown
/// as a cluster without their controllers shows them, with a warning that says so.
#[test]
fn kinds_without_a_controller_are_stored_shown_and_warned_about() {
    let agent = TestAgent::start();
    let yaml = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  ingressClassName: nginx
  rules:
  - host: shop.example
    http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: robot}
---
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 5
  targetCPUUtilizationPercentage: 60
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec: {maxUnavailable: 1, selector: {matchLabels: {app: web}}}
";
    let out = agent.apply_yaml(yaml);
    assert!(out.status.success(), "{}", stderr(&out));
    let warnings = stderr(&out);
    assert!(
        warnings.contains("Warning: berth has no ingress controller"),
        "{warnings}"
    );
    assert!(
        warnings.contains("Warning: berth does not enforce NetworkPolicy"),
        "{warnings}"
    );
    assert_eq!(
        stdout(&out),
        "ingress.networking.k8s.io/web created\nnetworkpolicy.networking.k8s.io/deny-all created\nserviceaccount/robot created\nhorizontalpodautoscaler.autoscaling/web created\npoddisruptionbudget.policy/web created\n"
    );
    assert!(
        warnings.contains("Warning: berth has no metrics pipeline")
            && warnings.contains("Warning: berth has no eviction API"),
        "{warnings}"
    );
    // A v1 autoscaler is served as v2, its CPU target a metric, as the API server does.
    let hpa = agent.ok(&["get", "hpa"]);
    assert!(
        hpa.contains("Deployment/web") && hpa.contains("cpu: <unknown>/60%"),
        "{hpa}"
    );
    assert_eq!(
        agent.json(&["get", "hpa", "web"])["apiVersion"],
        "autoscaling/v2"
    );
    let budgets = agent.ok(&["get", "pdb"]);
    assert_eq!(
        common::table_header(&budgets),
        [
            "NAME",
            "MIN AVAILABLE",
            "MAX UNAVAILABLE",
            "ALLOWED DISRUPTIONS",
            "AGE"
        ]
    );
    let ingresses = agent.ok(&["get", "ingress"]);
    assert_eq!(
        common::table_header(&ingresses),
        ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    );
    assert!(ingresses.contains("shop.example"), "{ingresses}");
    let policies = agent.ok(&["get", "netpol"]);
    assert!(
        policies.contains("deny-all") && policies.contains("<none>"),
        "{policies}"
    );
    let described = agent.ok(&["describe", "ingress", "web"]);
    assert!(described.contains("web:80"), "{described}");
    assert_eq!(
        agent.json(&["get", "sa", "robot"])["kind"],
        "ServiceAccount"
    );
    // Every namespace has its `default` account, as Kubernetes makes it.
    wait_for(
        Duration::from_secs(10),
        "the default ServiceAccount",
        || {
            let accounts = agent.ok(&["get", "serviceaccounts"]);
            accounts.contains("default").then_some(())
        },
    );
    agent.ok(&["delete", "ingress", "web"]);
    agent.ok(&["delete", "networkpolicy", "deny-all"]);
    let gone = agent.berth(&["get", "ingress", "web"]);
    assert!(!gone.status.success());
}

/// A pod with scheduling gates waits as `SchedulingGated`; applied again without them,
/// it starts.
#[test]
fn a_gated_pod_waits_until_its_gates_are_removed() {
    let agent = TestAgent::start();
    let pod = |gates: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: gated}}\nspec:\n{gates}  \
             terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    \
             image: busybox:1.35\n    command: [sleep, '3600']\n"
        )
    };
    let out = agent.apply_yaml(&pod("  schedulingGates: [{name: example.com/approval}]\n"));
    assert!(out.status.success(), "{}", stderr(&out));
    let table = wait_for(Duration::from_secs(20), "SchedulingGated", || {
        let table = agent.try_ok(&["get", "pods", "gated"])?;
        table.contains("SchedulingGated").then_some(table)
    });
    assert!(table.contains("0/1"), "{table}");
    let shown = agent.json(&["get", "pod", "gated"]);
    assert_eq!(
        common::condition(&shown, "PodScheduled"),
        Some("False".into())
    );
    assert!(shown["spec"]["nodeName"].is_null(), "{shown}");
    let events = agent.ok(&["get", "events"]);
    assert!(!events.contains("FailedScheduling"), "{events}");
    // Gates may only be removed.
    let more = "  schedulingGates: [{name: example.com/approval}, {name: example.com/second}]\n";
    let refused = agent.apply_yaml(&pod(more));
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains(
            "only deletion is allowed, but found new scheduling gate 'example.com/second'"
        ),
        "{}",
        stderr(&refused)
    );

    let out = agent.apply_yaml(&pod(""));
    assert!(out.status.success(), "{}", stderr(&out));
    agent.wait_running("gated");
}
