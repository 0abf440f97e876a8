//! Jobs on a real agent (issue 17): parallel pods until the completions succeed, a
//! failing Job stopped by its backoff limit or at once by its pod failure policy, and
//! what `get jobs` and `describe job` show.
//! Real agent, real containers, as root.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::time::Duration;

use common::{wait_for, TestAgent};
use serde_json::Value;

fn job(name: &str, spec: &str, restart_policy: &str, command: &str) -> String {
    format!(
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
{spec}
  template:
    spec:
      restartPolicy: {restart_policy}
      terminationGracePeriodSeconds: 1
      containers:
        - name: work
          image: busybox:1.35
          command: ["sh", "-c", {command:?}]
          volumeMounts:
            - name: scratch
              mountPath: /scratch
      volumes:
        - name: scratch
          emptyDir: {{}}
"#
    )
}

/// The Job once it has the condition `type_`.
fn wait_condition(agent: &TestAgent, name: &str, type_: &str) -> Value {
    wait_for(
        Duration::from_secs(60),
        &format!("job {name} {type_}"),
        || {
            let job = agent.json(&["get", "job", name]);
            let conditions = job["status"]["conditions"].as_array()?;
            conditions
                .iter()
                .any(|c| c["type"] == type_ && c["status"] == "True")
                .then_some(job)
        },
    )
}

/// The Job's condition of `type_`; it must be there.
fn condition_of(job: &Value, type_: &str) -> Value {
    job["status"]["conditions"]
        .as_array()
        .and_then(|conditions| conditions.iter().find(|c| c["type"] == type_))
        .cloned()
        .unwrap_or_else(|| panic!("no {type_} condition in {job}"))
}

/// Applies `yaml`, which must be accepted.
fn apply_ok(agent: &TestAgent, yaml: &str) -> std::process::Output {
    let applied = agent.apply_yaml(yaml);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    applied
}

fn pods_of(agent: &TestAgent, job: &str) -> Vec<Value> {
    agent
        .pods()
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["job-name"] == job)
        .collect()
}

/// Three completions, two at a time; each pod's container fails once (its emptyDir
/// remembers) and succeeds when restarted (`OnFailure`).
#[test]
fn a_job_runs_its_completions_in_parallel_and_completes() {
    let agent = TestAgent::start();
    let once = "echo ran; if [ -e /scratch/tried ]; then exit 0; fi; touch /scratch/tried; exit 1";
    let yaml = job(
        "three",
        "  completions: 3\n  parallelism: 2",
        "OnFailure",
        once,
    );
    let applied = apply_ok(&agent, &yaml);
    assert!(String::from_utf8_lossy(&applied.stdout).contains("job.batch/three created"));
    let done = wait_condition(&agent, "three", "Complete");
    assert_eq!(done["status"]["succeeded"], 3);
    assert!(done["status"]["failed"].is_null(), "{done}");
    assert!(done["status"]["completionTime"].is_string());
    let pods = pods_of(&agent, "three");
    assert_eq!(pods.len(), 3, "no pod beyond the completions");
    for pod in &pods {
        assert_eq!(pod["status"]["phase"], "Succeeded");
        assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 1);
    }
    // kubectl's columns.
    let table = agent.ok(&["get", "jobs"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]);
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["three", "Complete", "3/3"]);
    let described = agent.ok(&["describe", "job", "three"]);
    assert!(
        described.contains("0 Active / 3 Succeeded / 0 Failed"),
        "{described}"
    );

    // `logs job/NAME` shows one of its pods, and says which.
    let logs = agent.berth(&["logs", "job/three"]);
    assert!(logs.status.success(), "{logs:?}");
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "ran\n");
    let said = String::from_utf8_lossy(&logs.stderr);
    assert!(said.starts_with("Found 3 pods, using pod/three-"), "{said}");

    // Deleting the Job deletes its pods.
    agent.ok(&["delete", "job", "three"]);
    wait_for(Duration::from_secs(30), "the job's pods gone", || {
        pods_of(&agent, "three").is_empty().then_some(())
    });
}

/// A command that always fails, with `backoffLimit: 1`: two pods fail, then the Job
/// is `Failed` with Kubernetes' reason and starts nothing more.
#[test]
fn a_failing_job_stops_at_its_backoff_limit() {
    let agent = TestAgent::start();
    let yaml = job("doomed", "  backoffLimit: 1", "Never", "exit 3");
    assert!(agent.apply_yaml(&yaml).status.success());
    let failed = wait_condition(&agent, "doomed", "Failed");
    let condition = condition_of(&failed, "Failed");
    assert_eq!(condition["reason"], "BackoffLimitExceeded");
    assert_eq!(failed["status"]["failed"], 2);
    let pods = pods_of(&agent, "doomed");
    assert_eq!(pods.len(), 2);
    assert!(pods.iter().all(|p| p["status"]["phase"] == "Failed"));
    // The replacement waited out the pod-failure back-off (10 s; times have seconds).
    let times = |pod: &Value| {
        let state = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
        let at = |field: &str| humantime::parse_rfc3339(state[field].as_str().unwrap()).unwrap();
        (at("startedAt"), at("finishedAt"))
    };
    let mut runs: Vec<_> = pods.iter().map(times).collect();
    runs.sort();
    let waited = runs[1].0.duration_since(runs[0].1).unwrap_or_default();
    assert!(
        waited >= Duration::from_secs(9),
        "replaced after {waited:?}"
    );
    let row = agent.ok(&["get", "job", "doomed"]);
    assert!(row.lines().nth(1).unwrap().contains("Failed"), "{row}");

    // A Job whose template would restart for ever is refused, as Kubernetes does.
    let refused = agent.apply_yaml(&job("forever", "  completions: 1", "Always", "true"));
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("spec.template.spec.restartPolicy")
            && message.contains("supported values: \"OnFailure\", \"Never\""),
        "{message}"
    );
}

/// A pod that exits 42, with a `FailJob` rule on 42 for its container: the Job fails at
/// its first failure with the policy's reason, far short of its backoff limit (six
/// retries, minutes of back-off).
#[test]
fn a_pod_failure_policy_fails_the_job_at_the_first_matching_failure() {
    let agent = TestAgent::start();
    let policy = "  backoffLimit: 6
  podFailurePolicy:
    rules:
      - action: FailJob
        onExitCodes: {containerName: work, operator: In, values: [42]}
      - action: Ignore
        onPodConditions: [{type: DisruptionTarget}]";
    let yaml = job("policy", policy, "Never", "exit 42");
    apply_ok(&agent, &yaml);
    let failed = wait_condition(&agent, "policy", "Failed");
    let pods = pods_of(&agent, "policy");
    assert_eq!(pods.len(), 1, "no replacement after a FailJob match");
    let pod_name = pods[0]["metadata"]["name"].as_str().unwrap();
    assert_eq!(
        pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        42
    );
    let condition = condition_of(&failed, "Failed");
    assert_eq!(condition["reason"], "PodFailurePolicy");
    let message = format!(
        "Container work for pod default/{pod_name} failed with exit code 42 matching FailJob \
         rule at index 0"
    );
    assert_eq!(condition["message"], message.as_str());
    assert_eq!(failed["status"]["failed"], 1);
    let described = agent.ok(&["describe", "job", "policy"]);
    assert!(
        described.contains("0 Active / 0 Succeeded / 1 Failed")
            && described.contains("PodFailurePolicy"),
        "{described}"
    );

    // The policy judges failed pods, so pods that restart in place are refused.
    let refused = agent.apply_yaml(&job("restarts", policy, "OnFailure", "exit 42"));
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("only \"Never\" is supported when podFailurePolicy is specified"),
        "{message}"
    );
}

/// An Indexed Job with a success policy completes once its rule is met, and its other
/// pods stop; one with `backoffLimitPerIndex` and a `FailIndex` rule fails that index
/// without a retry and, once every index ended, the Job with `FailedIndexes`.
#[test]
fn indexed_jobs_follow_their_success_policy_and_per_index_limits() {
    let agent = TestAgent::start();
    let success = "  completions: 3
  parallelism: 3
  completionMode: Indexed
  successPolicy:
    rules: [{succeededIndexes: '1', succeededCount: 1}]";
    let command = "[ $JOB_COMPLETION_INDEX = 1 ] && exit 0; exec sleep 1000";
    apply_ok(&agent, &job("lead", success, "Never", command));
    let done = wait_condition(&agent, "lead", "Complete");
    let conditions = done["status"]["conditions"].as_array().unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "SuccessCriteriaMet" && c["reason"] == "SuccessPolicy"),
        "{done}"
    );
    assert_eq!(done["status"]["completedIndexes"], "1");
    wait_for(Duration::from_secs(30), "the other indexes stopped", || {
        let running = pods_of(&agent, "lead")
            .iter()
            .filter(|pod| pod["status"]["phase"] == "Running")
            .count();
        (running == 0).then_some(())
    });

    let per_index = "  completions: 2
  parallelism: 2
  completionMode: Indexed
  backoffLimitPerIndex: 1
  podFailurePolicy:
    rules:
      - action: FailIndex
        onExitCodes: {containerName: work, operator: In, values: [42]}";
    let command = "[ $JOB_COMPLETION_INDEX = 0 ] && exit 42; exit 0";
    apply_ok(&agent, &job("split", per_index, "Never", command));
    let failed = wait_condition(&agent, "split", "Failed");
    assert_eq!(failed["status"]["failedIndexes"], "0");
    assert_eq!(failed["status"]["completedIndexes"], "1");
    assert_eq!(
        pods_of(&agent, "split").len(),
        2,
        "no retry of a failed index"
    );
    let condition = condition_of(&failed, "Failed");
    assert_eq!(condition["reason"], "FailedIndexes");
}
