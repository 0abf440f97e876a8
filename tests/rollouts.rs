//! Rollouts on one board (issue 14), with real containers: a template change behind a
//! Service loses no request, rolling bounds hold at every sample, a version that never
//! gets ready stalls with the old pods serving, `Recreate` never runs old and new
//! together, and an agent killed twice mid-rollout finishes it.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;
#[allow(dead_code)]
#[path = "common/fleet.rs"]
mod fleet_support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{die_with_parent, wait_for, TestAgent};
use fleet_support::NetworkedBoard;
use serde_json::Value;

/// A Deployment `web` of `replicas` pods of `version`, with `strategy` (YAML, indented
/// for `spec:`) and a readiness probe `probe` (YAML, indented for the container).
fn deployment(replicas: u32, version: &str, strategy: &str, probe: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
{strategy}
  template:
    metadata: {{labels: {{app: web, version: '{version}'}}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: httpd
        image: busybox:1.35
        command: [sh, -c, 'mkdir -p /www && echo {version} > /www/index.html && exec httpd -f -p 80 -h /www']
        ports: [{{name: http, containerPort: 80}}]
{probe}
"
    )
}

const HTTP_READY: &str = "        readinessProbe:
          httpGet: {path: /, port: http}
          periodSeconds: 1";

const EXEC_READY: &str = "        readinessProbe:
          exec: {command: ['true']}
          periodSeconds: 1";

const NEVER_READY: &str = "        readinessProbe:
          exec: {command: ['false']}
          periodSeconds: 1";

fn rolling(surge: &str, unavailable: &str) -> String {
    format!(
        "  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxSurge: {surge}, maxUnavailable: {unavailable}}}"
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

/// The pods of `web` as the API shows them now: (version, terminating, ready) each.
/// `None` while the agent does not answer (it may be restarting).
fn sample(agent: &TestAgent) -> Option<Vec<(String, bool, bool)>> {
    let out = agent.berth(&["get", "pods", "-l", "app=web", "-o", "json"]);
    let list: Value = serde_json::from_slice(&out.stdout).ok()?;
    let pods = list["items"].as_array()?;
    Some(
        pods.iter()
            .map(|pod| {
                let version = pod["metadata"]["labels"]["version"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned();
                let terminating = !pod["metadata"]["deletionTimestamp"].is_null();
                let ready = common::condition(pod, "Ready").is_some_and(|s| s == "True");
                (version, terminating, ready)
            })
            .collect(),
    )
}

/// Whether `web`'s rollout to `version` is complete: every replica of it available and
/// no other pod left.
fn rolled_out(agent: &TestAgent, replicas: usize, version: &str) -> bool {
    let deploy = agent.json(&["get", "deployment", "web"]);
    let status = &deploy["status"];
    let progressing = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Progressing"))
        .cloned()
        .unwrap_or(Value::Null);
    let pods = sample(agent).unwrap_or_default();
    progressing["reason"] == "NewReplicaSetAvailable"
        && status["availableReplicas"] == replicas
        && pods.len() == replicas
        && pods.iter().all(|(v, _, ready)| v == version && *ready)
}

/// Samples `web` until its rollout to `version` completes, checking `bound` on each
/// sample; returns how many samples were taken.
fn watch_rollout(
    agent: &mut TestAgent,
    replicas: usize,
    version: &str,
    mut between: impl FnMut(&mut TestAgent, usize),
    bound: impl Fn(&[(String, bool, bool)]) -> Result<(), String>,
) -> usize {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut samples = 0;
    loop {
        if let Some(pods) = sample(agent) {
            samples += 1;
            if let Err(broken) = bound(&pods) {
                panic!("sample {samples}: {broken}: {pods:?}");
            }
        }
        between(agent, samples);
        if rolled_out(agent, replicas, version) {
            return samples;
        }
        assert!(
            Instant::now() < deadline,
            "rollout to {version} not done in 90 s:\n{}",
            agent.log_tail()
        );
    }
}

/// The rolling bounds: at most `replicas + surge` pods not terminating, at least
/// `replicas - unavailable` of them ready.
fn within(
    replicas: usize,
    surge: usize,
    unavailable: usize,
) -> impl Fn(&[(String, bool, bool)]) -> Result<(), String> {
    move |pods| {
        let live: Vec<_> = pods
            .iter()
            .filter(|(_, terminating, _)| !terminating)
            .collect();
        let ready = live.iter().filter(|(_, _, ready)| *ready).count();
        if live.len() > replicas + surge {
            return Err(format!("{} pods, more than {replicas}+{surge}", live.len()));
        }
        if ready + unavailable < replicas {
            return Err(format!(
                "{ready} ready, fewer than {replicas}-{unavailable}"
            ));
        }
        Ok(())
    }
}

#[test]
fn rolling_updates_keep_their_bounds() {
    for (surge, unavailable, surge_pods, unavailable_pods) in
        [("1", "0", 1, 0), ("0", "1", 0, 1), ("'50%'", "'25%'", 2, 1)]
    {
        let mut agent = TestAgent::start();
        let strategy = rolling(surge, unavailable);
        apply(&agent, &deployment(4, "v1", &strategy, EXEC_READY));
        wait_for(Duration::from_secs(60), "4 ready v1 pods", || {
            rolled_out(&agent, 4, "v1").then_some(())
        });
        apply(&agent, &deployment(4, "v2", &strategy, EXEC_READY));
        let bound = within(4, surge_pods, unavailable_pods);
        let samples = watch_rollout(&mut agent, 4, "v2", |_, _| {}, bound);
        eprintln!("maxSurge {surge}, maxUnavailable {unavailable}: {samples} samples in bounds");
        let sets = agent.json(&["get", "replicasets"]);
        let replicas: Vec<i64> = sets["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|rs| rs["spec"]["replicas"].as_i64().unwrap())
            .collect();
        assert_eq!(replicas.len(), 2, "{sets:#}");
        assert!(replicas.contains(&0) && replicas.contains(&4), "{sets:#}");
    }
}

#[test]
fn a_killed_agent_resumes_the_rollout_within_its_bounds() {
    let mut agent = TestAgent::start();
    let strategy = rolling("1", "0");
    apply(&agent, &deployment(4, "v1", &strategy, EXEC_READY));
    wait_for(Duration::from_secs(60), "4 ready v1 pods", || {
        rolled_out(&agent, 4, "v1").then_some(())
    });
    apply(&agent, &deployment(4, "v2", &strategy, EXEC_READY));
    let mut kills = 0;
    let ready = |pods: &[(String, bool, bool)]| pods.iter().filter(|p| !p.1 && p.2).count();
    let kill_twice = |agent: &mut TestAgent, _samples: usize| {
        let pods = sample(agent).unwrap_or_default();
        let new = pods.iter().filter(|(v, t, _)| v == "v2" && !t).count();
        // Once when the first new pod exists, once halfway.
        if (kills == 0 && new >= 1) || (kills == 1 && new >= 3) {
            agent.kill9();
            agent.spawn();
            kills += 1;
            // Probe results live in memory: until the first probes answer again the
            // pods show as not ready (the controllers wait for them meanwhile).
            let before = ready(&pods);
            // The agent waits up to 10 s for the first probes after a restart: leave room
            // beyond that for a loaded machine.
            wait_for(Duration::from_secs(30), "readiness known again", || {
                (ready(&sample(agent)?) >= before).then_some(())
            });
        }
    };
    watch_rollout(&mut agent, 4, "v2", kill_twice, within(4, 1, 0));
    assert_eq!(kills, 2, "the agent was killed twice mid-rollout");
}

#[test]
fn recreate_stops_every_old_pod_before_a_new_one_starts() {
    let mut agent = TestAgent::start();
    let strategy = "  strategy: {type: Recreate}";
    apply(&agent, &deployment(3, "v1", strategy, EXEC_READY));
    wait_for(Duration::from_secs(60), "3 ready v1 pods", || {
        rolled_out(&agent, 3, "v1").then_some(())
    });
    apply(&agent, &deployment(3, "v2", strategy, EXEC_READY));
    let apart = |pods: &[(String, bool, bool)]| {
        // Terminating pods count: their containers may still run.
        let old = pods.iter().any(|(v, _, _)| v == "v1");
        let new = pods.iter().any(|(v, _, _)| v == "v2");
        if old && new {
            return Err("old and new pods together".to_owned());
        }
        Ok(())
    };
    watch_rollout(&mut agent, 3, "v2", |_, _| {}, apart);
}

#[test]
fn a_version_that_never_gets_ready_stalls_with_the_old_pods_serving() {
    let agent = TestAgent::start();
    let strategy = format!("{}\n  progressDeadlineSeconds: 3", rolling("1", "0"));
    apply(&agent, &deployment(3, "v1", &strategy, EXEC_READY));
    wait_for(Duration::from_secs(60), "3 ready v1 pods", || {
        rolled_out(&agent, 3, "v1").then_some(())
    });
    apply(&agent, &deployment(3, "v2", &strategy, NEVER_READY));
    let deploy = wait_for(Duration::from_secs(30), "the progress deadline", || {
        let deploy = agent.json(&["get", "deployment", "web"]);
        let exceeded = deploy["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded");
        exceeded.then_some(deploy)
    });
    let progressing = deploy["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .unwrap();
    assert_eq!(progressing["status"], "False", "{deploy:#}");
    let pods = sample(&agent).unwrap();
    let old_ready = pods
        .iter()
        .filter(|(v, terminating, ready)| v == "v1" && !terminating && *ready)
        .count();
    let new = pods.iter().filter(|(v, _, _)| v == "v2").count();
    assert_eq!((old_ready, new), (3, 1), "{pods:?}");
    assert_eq!(deploy["status"]["availableReplicas"], 3, "{deploy:#}");
}

impl NetworkedBoard {
    /// A client in the board's namespace asking `url` over and over, one line per
    /// request (the body, or FAILED) into `out`, until `stop` exists.
    fn client(&self, url: &str, out: &std::path::Path, stop: &std::path::Path) -> Child {
        let script = format!(
            "while [ ! -e {stop} ]; do curl -sf --max-time 2 {url} || echo FAILED; done",
            stop = stop.display()
        );
        die_with_parent(
            Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", self.netns))
                .args(["--", "sh", "-c", &script]),
        )
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
    }
}

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
";

#[test]
fn a_rolling_update_behind_a_service_loses_no_request() {
    let board = NetworkedBoard::start();
    let strategy = rolling("1", "0");
    apply(&board.agent, SERVICE);
    apply(&board.agent, &deployment(3, "v1", &strategy, HTTP_READY));
    wait_for(Duration::from_secs(60), "3 ready v1 pods", || {
        rolled_out(&board.agent, 3, "v1").then_some(())
    });
    let service = board.agent.json(&["get", "service", "web"]);
    let url = format!("http://{}/", service["spec"]["clusterIP"].as_str().unwrap());
    let files = tempfile::tempdir().unwrap();
    let (out, stop) = (files.path().join("out"), files.path().join("stop"));
    let mut client = board.client(&url, &out, &stop);
    let answers = |out: &std::path::Path| std::fs::read_to_string(out).unwrap_or_default();
    wait_for(
        Duration::from_secs(10),
        "v1 answers through the Service",
        || answers(&out).lines().any(|l| l == "v1").then_some(()),
    );

    apply(&board.agent, &deployment(3, "v2", &strategy, HTTP_READY));
    wait_for(Duration::from_secs(90), "the rollout to v2", || {
        rolled_out(&board.agent, 3, "v2").then_some(())
    });
    // Requests after the rollout reach v2 only.
    let before = answers(&out).lines().count();
    wait_for(
        Duration::from_secs(10),
        "v2 answers after the rollout",
        || (answers(&out).lines().count() >= before + 20).then_some(()),
    );
    std::fs::write(&stop, "").unwrap();
    client.wait().unwrap();

    let all = answers(&out);
    let lines: Vec<&str> = all.lines().collect();
    let failed = lines.iter().filter(|l| **l == "FAILED").count();
    eprintln!(
        "zero downtime: {} requests through the Service during the rollout, {failed} failed",
        lines.len()
    );
    assert_eq!(failed, 0, "failed requests during the rollout");
    let first_v2 = lines.iter().position(|l| *l == "v2").expect("v2 answered");
    assert!(
        lines[..first_v2].iter().all(|l| *l == "v1"),
        "before v2, only v1"
    );
    assert!(
        lines[before..].iter().all(|l| *l == "v2"),
        "after the rollout, only v2: {:?}",
        &lines[before..]
    );
    assert!(lines.iter().all(|l| *l == "v1" || *l == "v2"), "{lines:?}");
}

#[test]
fn auto_rollback_undoes_a_crash_looping_version_by_itself() {
    let agent = TestAgent::start();
    let strategy = format!("{}\n  progressDeadlineSeconds: 600", rolling("1", "0"));
    let annotated = |yaml: String| {
        yaml.replace(
            "metadata: {name: web}",
            "metadata: {name: web, annotations: {berth.dev/auto-rollback: 'true'}}",
        )
    };
    apply(
        &agent,
        &annotated(deployment(2, "v1", &strategy, EXEC_READY)),
    );
    wait_for(Duration::from_secs(60), "2 ready v1 pods", || {
        rolled_out(&agent, 2, "v1").then_some(())
    });
    // v2 exits at once: its container crash-loops.
    let crashing = deployment(2, "v2", &strategy, EXEC_READY)
        .replace("&& exec httpd -f -p 80 -h /www", "&& exit 1");
    apply(&agent, &annotated(crashing));
    let deploy = wait_for(Duration::from_secs(60), "the automatic rollback", || {
        let deploy = agent.json(&["get", "deployment", "web"]);
        let rolled_back = deploy["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "RolledBack" && c["reason"] == "CrashLoopBackOff");
        rolled_back.then_some(deploy)
    });
    assert_eq!(
        deploy["spec"]["template"]["metadata"]["labels"]["version"], "v1",
        "{deploy:#}"
    );
    wait_for(Duration::from_secs(60), "v1 alone again", || {
        rolled_out(&agent, 2, "v1").then_some(())
    });
    let deploy = agent.json(&["get", "deployment", "web"]);
    assert_eq!(
        deploy["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "3",
        "the old template came back as revision 3: {deploy:#}"
    );
}

#[test]
fn a_daemon_set_on_a_lone_board_runs_one_pod_where_its_selector_matches() {
    let agent = TestAgent::start();
    let daemon = |selector: &str, version: &str| {
        format!(
            "apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: logger}}
spec:
  selector: {{matchLabels: {{app: logger}}}}
  template:
    metadata: {{labels: {{app: logger, version: '{version}'}}}}
    spec:
      terminationGracePeriodSeconds: 1
      nodeSelector: {{{selector}}}
      containers:
      - {{name: main, image: busybox:1.35, command: [sleep, '100000']}}
"
        )
    };
    let pods = |agent: &TestAgent| -> Vec<String> {
        let list = agent.json(&["get", "pods", "-l", "app=logger"]);
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .filter(|p| p["status"]["phase"] == "Running")
            .map(|p| {
                p["metadata"]["labels"]["version"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    apply(&agent, &daemon("kubernetes.io/os: linux", "v1"));
    wait_for(Duration::from_secs(30), "one logger pod", || {
        (pods(&agent) == ["v1"]).then_some(())
    });
    let ds = agent.json(&["get", "daemonset", "logger"]);
    assert_eq!(ds["status"]["desiredNumberScheduled"], 1, "{ds:#}");
    apply(&agent, &daemon("kubernetes.io/os: linux", "v2"));
    wait_for(Duration::from_secs(30), "the logger pod replaced", || {
        (pods(&agent) == ["v2"]).then_some(())
    });
    // A selector this board does not match: no pod, nothing desired.
    apply(&agent, &daemon("sensor: 'yes'", "v2"));
    wait_for(Duration::from_secs(30), "no logger pod", || {
        let ds = agent.json(&["get", "daemonset", "logger"]);
        (agent.json(&["get", "pods", "-l", "app=logger"])["items"] == serde_json::json!([])
            && ds["status"]["desiredNumberScheduled"] == 0)
            .then_some(())
    });
}
