//! The reconciler on the fake runtime: what a pass starts, restarts, replaces, stops and
//! forgets, observed through the runtime's calls and the pod's API status. No root, no
//! containers: the fake runtime records what it is asked and exits only when told to.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use event_listener::Listener;
use serde_json::{json, Value};

use crate::agent::instance::{instance_id, Instance, InstanceState};
use crate::agent::test_support::{
    apply, call, instances, pod_uid, pod_yaml, reconcile_until, test_agent, TestAgent, IMAGE,
};
use crate::agent::Agent;
use crate::runtime::{fake, Runtime};

/// A back-off that no test outlives: what is held stays held.
const LONG: Duration = Duration::from_secs(3600);

fn running(agent: &Agent, uid: &str) -> Vec<Instance> {
    instances(agent, uid)
        .into_iter()
        .filter(Instance::is_running)
        .collect()
}

/// The pod as `GET` shows it.
fn get_pod(agent: &Arc<Agent>, name: &str) -> Value {
    let (status, pod) = call(
        agent,
        "GET",
        &format!("/api/v1/namespaces/default/pods/{name}"),
        None,
    );
    assert_eq!(status, 200, "{pod}");
    pod
}

/// Applies pod `name` and waits until its `containers` run; its UID.
fn start_pod(test: &TestAgent, name: &str, yaml: &str, containers: usize) -> String {
    apply(&test.agent, yaml);
    let uid = pod_uid(&test.agent, name);
    reconcile_until(&test.agent, "the pod runs", || {
        running(&test.agent, &uid).len() == containers
    });
    uid
}

/// Index of the first call equal to `call`.
fn position(calls: &[String], call: &str) -> usize {
    calls
        .iter()
        .position(|c| c == call)
        .unwrap_or_else(|| panic!("no call {call:?} in {calls:?}"))
}

#[test]
fn an_applied_pod_gets_a_sandbox_and_its_containers_configured_and_started() {
    let test = test_agent(LONG);
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: app
    image: {image}
    env: [{name: FROM_IMAGE, value: pod}]
    resources: {limits: {memory: 64Mi, cpu: 500m}}
  - name: side
    image: {image}
    command: [/bin/side]
    args: [-v]
"#
    .replace("{image}", IMAGE);
    let uid = start_pod(&test, "web", &yaml, 2);

    let calls = test.runtime.calls();
    let sandbox = position(&calls, &format!("create_sandbox {uid}"));
    let by_name = |name: &str| {
        let info = test.runtime.list_containers().unwrap();
        info.into_iter()
            .find(|i| i.config.container_name == name)
            .unwrap()
            .config
    };
    let (app, side) = (by_name("app"), by_name("side"));
    assert!(sandbox < position(&calls, &format!("start {}", app.id)));
    assert!(sandbox < position(&calls, &format!("start {}", side.id)));
    // The image's command, unless the container names its own.
    assert_eq!(app.args, ["/bin/app", "--serve"]);
    assert_eq!(side.args, ["/bin/side", "-v"]);
    // The container's env replaces the image's; HOSTNAME is the pod's name.
    for entry in ["PATH=/bin", "FROM_IMAGE=pod", "HOSTNAME=web"] {
        assert!(
            app.env.contains(&entry.to_owned()),
            "{entry} in {:?}",
            app.env
        );
    }
    assert_eq!(app.memory_limit_bytes, Some(64 * 1024 * 1024));
    assert_eq!(app.cpu_limit_millis, Some(500));
    assert_eq!(side.memory_limit_bytes, None);
    assert_eq!(app.pids_limit, Some(1024));
    assert!(
        !app.share_process_namespace,
        "each container its own PID namespace"
    );
    let logs = test
        .dir
        .path()
        .join(format!("logs/default_web_{uid}/app/0.log"));
    assert_eq!(app.log_path, logs);

    // Nothing left to do: another pass starts nothing.
    let before = test.runtime.calls().len();
    test.agent.reconcile_once().unwrap();
    assert_eq!(test.runtime.calls().len(), before);

    let pod = get_pod(&test.agent, "web");
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(pod["spec"]["nodeName"], "pi-1");
    for status in pod["status"]["containerStatuses"].as_array().unwrap() {
        assert_eq!(status["ready"], true, "{status}");
        assert_eq!(status["restartCount"], 0);
        assert!(status["state"]["running"]["startedAt"].is_string());
    }
}

#[test]
fn a_pod_sharing_its_process_namespace_asks_the_sandbox_and_its_containers_for_it() {
    let test = test_agent(LONG);
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: shared}
spec:
  shareProcessNamespace: true
  containers:
  - {name: app, image: {image}}
  - {name: shell, image: {image}}
"#
    .replace("{image}", IMAGE);
    let uid = start_pod(&test, "shared", &yaml, 2);
    let calls = test.runtime.calls();
    position(&calls, &format!("create_sandbox {uid} shared-pid"));
    let configs = test.runtime.list_containers().unwrap();
    assert_eq!(configs.len(), 2);
    assert!(
        configs.iter().all(|i| i.config.share_process_namespace),
        "every container joins the pod's PID namespace"
    );
}

#[test]
fn a_deleted_pod_is_stopped_removed_and_forgotten() {
    let test = test_agent(LONG);
    let uid = start_pod(&test, "web", &pod_yaml("web", &["app"], "Always"), 1);
    let id = running(&test.agent, &uid)[0].id.clone();

    let (status, _) = call(
        &test.agent,
        "DELETE",
        "/api/v1/namespaces/default/pods/web",
        None,
    );
    assert_eq!(status, 200);
    // Marked, not gone: the pod stays until its containers have stopped.
    let marked = get_pod(&test.agent, "web");
    assert!(marked["metadata"]["deletionTimestamp"].is_string());

    reconcile_until(&test.agent, "the pod is forgotten", || {
        test.agent
            .store()
            .get("Pod", "default", "web")
            .unwrap()
            .is_none()
    });
    let calls = test.runtime.calls();
    let stop = position(&calls, &format!("stop {id}"));
    let remove = position(&calls, &format!("remove {id}"));
    let sandbox = position(&calls, &format!("remove_sandbox {uid}"));
    assert!(stop < remove && remove < sandbox, "{calls:?}");
    assert!(test.runtime.list_containers().unwrap().is_empty());
    assert!(test.runtime.list_sandboxes().unwrap().is_empty());
    let (status, body) = call(
        &test.agent,
        "GET",
        "/api/v1/namespaces/default/pods/web",
        None,
    );
    assert_eq!((status, &body["reason"]), (404, &json!("NotFound")));
}

#[test]
fn a_crashed_container_restarts_at_once_then_only_after_its_back_off() {
    let base = Duration::from_secs(2);
    let test = test_agent(base);
    let uid = start_pod(&test, "web", &pod_yaml("web", &["app"], "Always"), 1);
    let first = running(&test.agent, &uid)[0].id.clone();

    // The first restart is immediate, as the kubelet does it.
    test.runtime.exit(&first, 1);
    reconcile_until(&test.agent, "the first restart", || {
        running(&test.agent, &uid).iter().any(|i| i.attempt == 1)
    });
    let status = &get_pod(&test.agent, "web")["status"]["containerStatuses"][0];
    assert_eq!(status["restartCount"], 1);
    assert_eq!(status["lastState"]["terminated"]["exitCode"], 1);
    assert_eq!(status["lastState"]["terminated"]["reason"], "Error");

    // The second waits out the back-off: the pass starts nothing and asks to be woken
    // when the back-off ends.
    let second = running(&test.agent, &uid)[0].id.clone();
    test.runtime.exit(&second, 1);
    let starts = |test: &TestAgent| {
        let calls = test.runtime.calls();
        calls.iter().filter(|c| c.starts_with("start ")).count()
    };
    let before = starts(&test);
    let wake_at = test.agent.reconcile_once().unwrap().unwrap();
    assert_eq!(starts(&test), before, "restarted before the back-off ended");
    let finished = match &instances(&test.agent, &uid)[1].state {
        InstanceState::Exited(exit) => humantime::parse_rfc3339(&exit.finished_at).unwrap(),
        other => panic!("attempt 1 is {other:?}"),
    };
    assert_eq!(wake_at, finished + base);
    let status = &get_pod(&test.agent, "web")["status"]["containerStatuses"][0];
    assert_eq!(status["state"]["waiting"]["reason"], "CrashLoopBackOff");
    assert_eq!(status["restartCount"], 1);

    reconcile_until(&test.agent, "the restart after the back-off", || {
        running(&test.agent, &uid).iter().any(|i| i.attempt == 2)
    });
    let third = running(&test.agent, &uid).remove(0);
    let InstanceState::Running { started_at, .. } = &third.state else {
        unreachable!()
    };
    assert!(humantime::parse_rfc3339(started_at).unwrap() >= wake_at);
    assert_eq!(
        get_pod(&test.agent, "web")["status"]["containerStatuses"][0]["restartCount"],
        2
    );
    // Only the latest instance and the one before it are kept, for `lastState` and
    // `logs --previous`: the first goes in the next pass.
    reconcile_until(&test.agent, "the oldest instance is removed", || {
        let attempts: Vec<u32> = instances(&test.agent, &uid)
            .iter()
            .map(|i| i.attempt)
            .collect();
        attempts == [1, 2]
    });
    assert!(test.runtime.calls().contains(&format!("remove {first}")));
}

#[test]
fn a_container_whose_supervisor_vanished_counts_as_failed_and_restarts() {
    let test = test_agent(LONG);
    let uid = start_pod(&test, "web", &pod_yaml("web", &["app"], "Always"), 1);
    test.runtime.lose(&running(&test.agent, &uid)[0].id);
    reconcile_until(&test.agent, "the restart", || {
        running(&test.agent, &uid).iter().any(|i| i.attempt == 1)
    });
    let status = &get_pod(&test.agent, "web")["status"]["containerStatuses"][0];
    assert_eq!(status["restartCount"], 1);
    assert_eq!(status["lastState"]["terminated"]["exitCode"], 255);
}

#[test]
fn containers_that_may_not_restart_stay_down_and_end_the_pod() {
    let test = test_agent(LONG);
    let done = start_pod(&test, "done", &pod_yaml("done", &["app"], "OnFailure"), 1);
    let failed = start_pod(&test, "failed", &pod_yaml("failed", &["app"], "Never"), 1);
    test.runtime.exit(&running(&test.agent, &done)[0].id, 0);
    test.runtime.exit(&running(&test.agent, &failed)[0].id, 3);
    let calls_before = test.runtime.calls().len();
    reconcile_until(&test.agent, "both pods ended", || {
        running(&test.agent, &done).is_empty() && running(&test.agent, &failed).is_empty()
    });
    test.agent.reconcile_once().unwrap();
    assert_eq!(
        test.runtime.calls().len(),
        calls_before,
        "something restarted"
    );

    let pod = get_pod(&test.agent, "done");
    assert_eq!(pod["status"]["phase"], "Succeeded");
    let state = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(state["reason"], "Completed");
    let pod = get_pod(&test.agent, "failed");
    assert_eq!(pod["status"]["phase"], "Failed");
    let state = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (&state["reason"], &state["exitCode"]),
        (&json!("Error"), &json!(3))
    );
}

#[test]
fn a_changed_spec_replaces_the_pod_s_containers() {
    let test = test_agent(LONG);
    let uid = start_pod(&test, "web", &pod_yaml("web", &["app"], "Always"), 1);
    let old = running(&test.agent, &uid).remove(0);

    let changed = pod_yaml("web", &["app"], "Always") + "    args: [--verbose]\n";
    apply(&test.agent, &changed);
    reconcile_until(&test.agent, "the new spec runs", || {
        let now = instances(&test.agent, &uid);
        now.len() == 1 && now[0].hash != old.hash && now[0].is_running()
    });
    let new = running(&test.agent, &uid).remove(0);
    assert_eq!(new.attempt, 0, "a replacement starts its count again");
    let calls = test.runtime.calls();
    let stop = position(&calls, &format!("stop {}", old.id));
    let remove = position(&calls, &format!("remove {}", old.id));
    let start = position(&calls, &format!("start {}", new.id));
    assert!(stop < remove && remove < start, "{calls:?}");
    let config = test.runtime.inspect(&new.id).unwrap().unwrap().config;
    // `args` replace the image's `Cmd` (it has no `Entrypoint`).
    assert_eq!(config.args, ["--verbose"]);
}

#[test]
fn a_step_that_ends_while_a_pass_observes_is_not_planned_again() {
    let test = test_agent(LONG);
    // The first pass plans the start; its step stays in flight at the held start.
    test.runtime.hold_starts();
    apply(&test.agent, &pod_yaml("web", &["app"], "Always"));
    let uid = pod_uid(&test.agent, "web");
    test.agent.reconcile_once().unwrap();
    assert!(test.agent.memory().busy.contains(&uid), "no step in flight");

    // The next pass observes the runtime (nothing running yet), then the step ends,
    // before the pass plans: what a pass that a wake-up (a controller's write, an API
    // call, a probe) starts while a step runs meets on a busy board.
    let (agent, runtime) = (Arc::downgrade(&test.agent), Arc::downgrade(&test.runtime));
    let step_uid = uid.clone();
    test.runtime.after_next_list(move || {
        let (Some(agent), Some(runtime)) = (agent.upgrade(), runtime.upgrade()) else {
            return;
        };
        runtime.release_starts();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // Listening before looking: the step's wake-up is never missed.
            let listener = agent.listen_changes();
            if !agent.memory().busy.contains(&step_uid) {
                return;
            }
            assert!(
                listener.wait_deadline(deadline).is_some(),
                "the step never ended"
            );
        }
    });
    test.agent.reconcile_once().unwrap();
    reconcile_until(&test.agent, "the pod runs", || {
        running(&test.agent, &uid).len() == 1
    });

    // Started once: a second start of the same instance would fail (it exists) and be
    // remembered as a start failure, holding the container's next restart for its
    // back-off.
    let calls = test.runtime.calls();
    let starts = calls.iter().filter(|c| c.starts_with("start ")).count();
    assert_eq!(starts, 1, "{calls:?}");
    assert_eq!(test.agent.start_failures(&uid), Default::default());
}

#[test]
fn a_failed_start_is_retried_only_after_its_back_off() {
    let test = test_agent(LONG);
    test.runtime.fail_starts_of("app", "exec format error");
    apply(&test.agent, &pod_yaml("web", &["app"], "Always"));
    let uid = pod_uid(&test.agent, "web");
    reconcile_until(&test.agent, "the start failed", || {
        test.agent.start_failures(&uid).contains_key("app")
    });
    let failure = test.agent.start_failures(&uid).remove("app").unwrap();
    assert_eq!(failure.reason, "RunContainerError");
    assert_eq!(failure.failures, 1);
    assert!(failure.retry_at > SystemTime::now() + LONG - Duration::from_secs(60));

    // The cause is gone, but the retry still waits for its time.
    test.runtime.clear_start_failures();
    let before = test.runtime.calls();
    let wake_at = test.agent.reconcile_once().unwrap();
    assert_eq!(test.runtime.calls(), before);
    assert_eq!(wake_at, Some(failure.retry_at));
    let status = &get_pod(&test.agent, "web")["status"]["containerStatuses"][0];
    assert_eq!(status["state"]["waiting"]["reason"], "RunContainerError");
    let message = status["state"]["waiting"]["message"].as_str().unwrap();
    assert!(message.contains("exec format error"), "{message}");
}

#[test]
fn a_missing_image_with_pull_policy_never_is_reported_not_pulled() {
    let test = test_agent(LONG);
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  \
                - {name: app, image: 'localhost/absent:1', imagePullPolicy: Never}\n";
    apply(&test.agent, yaml);
    let uid = pod_uid(&test.agent, "web");
    reconcile_until(&test.agent, "the start failed", || {
        test.agent.start_failures(&uid).contains_key("app")
    });
    assert!(!test.runtime.calls().iter().any(|c| c.starts_with("start ")));
    let pod = get_pod(&test.agent, "web");
    assert_eq!(pod["status"]["phase"], "Pending");
    let waiting = &pod["status"]["containerStatuses"][0]["state"]["waiting"];
    assert_eq!(waiting["reason"], "ErrImageNeverPull");
}

#[test]
fn containers_of_a_pod_the_store_does_not_know_are_stopped_and_removed() {
    let test = test_agent(LONG);
    // What a restarted agent finds from a pod deleted while it was down.
    let uid = "0f8e2a4c-1d2b-4e5f-8a9b-0c1d2e3f4a5b";
    let mut config = fake::test_config(&instance_id(uid, "app", "3f2a1b9c0d", 0));
    config.pod_uid = uid.to_owned();
    test.runtime
        .create_sandbox(uid, "gone", false, false)
        .unwrap();
    test.runtime.start_container(&config).unwrap();

    reconcile_until(&test.agent, "the orphan is gone", || {
        test.runtime.list_containers().unwrap().is_empty()
            && test.runtime.list_sandboxes().unwrap().is_empty()
    });
    let calls = test.runtime.calls();
    assert!(
        position(&calls, &format!("stop {}", config.id))
            < position(&calls, &format!("remove {}", config.id))
    );
}

#[test]
fn a_pre_stop_hook_runs_before_the_container_is_stopped() {
    let test = test_agent(LONG);
    test.runtime.set_exec_exit_code(Some(0));
    let yaml = pod_yaml("web", &["app"], "Always")
        + "    lifecycle: {preStop: {exec: {command: [/bin/drain, --now]}}}\n";
    let uid = start_pod(&test, "web", &yaml, 1);
    let id = running(&test.agent, &uid)[0].id.clone();
    call(
        &test.agent,
        "DELETE",
        "/api/v1/namespaces/default/pods/web",
        None,
    );
    reconcile_until(&test.agent, "the pod is stopped", || {
        running(&test.agent, &uid).is_empty()
    });
    let calls = test.runtime.calls();
    let hook = position(&calls, &format!("exec {id} /bin/drain --now"));
    assert!(hook < position(&calls, &format!("stop {id}")), "{calls:?}");
}

#[test]
fn a_deployment_s_pods_are_created_started_and_scaled_away() {
    let test = test_agent(LONG);
    let yaml = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 2\n  \
         selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    \
         spec:\n      containers: [{{name: app, image: '{IMAGE}'}}]\n"
    );
    apply(&test.agent, &yaml);
    let running_pods = || {
        test.agent
            .observe()
            .unwrap()
            .values()
            .filter(|instances| instances.iter().any(Instance::is_running))
            .count()
    };
    reconcile_until(&test.agent, "two replicas run", || running_pods() == 2);
    let (status, list) = call(
        &test.agent,
        "GET",
        "/api/v1/namespaces/default/pods?labelSelector=app=web",
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let (_, deployment) = call(
        &test.agent,
        "GET",
        "/apis/apps/v1/namespaces/default/deployments/web",
        None,
    );
    assert_eq!(deployment["status"]["readyReplicas"], 2, "{deployment}");

    let scale = json!({"spec": {"replicas": 0}});
    let target = "/apis/apps/v1/namespaces/default/deployments/web/scale";
    assert_eq!(call(&test.agent, "PUT", target, Some(&scale)).0, 200);
    reconcile_until(&test.agent, "no replica is left", || {
        running_pods() == 0 && test.agent.store().list("Pod", None).unwrap().is_empty()
    });
    assert!(test.runtime.list_containers().unwrap().is_empty());
}

#[test]
fn an_idle_pass_skips_the_controllers_until_something_they_read_changes() {
    let test = test_agent(LONG);
    let agent = &test.agent;
    let uid = start_pod(&test, "web", &pod_yaml("web", &["main"], "Always"), 1);
    agent.reconcile_once().unwrap();
    let now = SystemTime::now();
    let observed = agent.observe().unwrap();
    let inputs = agent.controller_inputs(&observed);
    assert!(
        agent.controllers_settled(inputs, now).is_some(),
        "nothing changed since the last pass"
    );
    // A stored change, or a container that exits, makes the next pass run them.
    apply(agent, &pod_yaml("other", &["main"], "Always"));
    let after_apply = agent.controller_inputs(&agent.observe().unwrap());
    assert_ne!(after_apply, inputs);
    assert!(agent.controllers_settled(after_apply, now).is_none());
    agent.reconcile_once().unwrap();
    let settled = agent.controller_inputs(&agent.observe().unwrap());
    let id = running(agent, &uid)[0].id.clone();
    test.runtime.exit(&id, 1);
    assert_ne!(agent.controller_inputs(&agent.observe().unwrap()), settled);
}
