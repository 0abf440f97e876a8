//! The plan of one pod, on a fake clock.

use super::*;
use crate::model::{Container, PodSpec};

fn spec(names: &[&str], policy: &str) -> PodSpec {
    PodSpec {
        containers: names
            .iter()
            .map(|n| Container {
                name: n.to_string(),
                image: "busybox:1.35".into(),
                ..Default::default()
            })
            .collect(),
        restart_policy: policy.to_owned(),
        termination_grace_period_seconds: 5,
        ..Default::default()
    }
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn stamp(secs: u64) -> String {
    humantime::format_rfc3339_seconds(at(secs)).to_string()
}

fn running(container: &str, hash: &str, attempt: u32) -> Instance {
    Instance {
        id: format!("u_{container}_{hash}_{attempt}"),
        pod_uid: "u".into(),
        container: container.into(),
        hash: hash.into(),
        attempt,
        state: InstanceState::Running {
            pid: 42,
            started_at: stamp(0),
        },
    }
}

fn exited(
    container: &str,
    hash: &str,
    attempt: u32,
    code: i32,
    started: u64,
    finished: u64,
) -> Instance {
    Instance {
        state: InstanceState::Exited(ExitInfo {
            exit_code: code,
            signal: None,
            oom_killed: false,
            started_at: Some(stamp(started)),
            finished_at: stamp(finished),
            message: None,
        }),
        ..running(container, hash, attempt)
    }
}

fn backoff() -> Backoff {
    Backoff {
        base: Duration::from_secs(10),
        max: Duration::from_secs(300),
    }
}

fn desired<'a>(spec: &'a PodSpec, terminating: bool) -> DesiredPod<'a> {
    DesiredPod {
        spec,
        hash: "h1",
        terminating,
    }
}

fn start(container: &str, attempt: u32) -> Step {
    Step::Start {
        pod_uid: "u".into(),
        container: container.into(),
        hash: "h1".into(),
        attempt,
    }
}

#[test]
fn new_pod_gets_a_sandbox_then_every_container() {
    let s = spec(&["web", "side"], "Always");
    let plan = plan_at(&s, &[], 0);
    assert_eq!(
        plan.steps,
        vec![
            Step::EnsureSandbox {
                pod_uid: "u".into()
            },
            start("web", 0),
            start("side", 0)
        ]
    );
}

#[test]
fn running_pod_needs_nothing() {
    let s = spec(&["web"], "Always");
    let plan = plan_at(&s, &[running("web", "h1", 0)], 0);
    assert_eq!(plan, PodPlan::default());
}

#[test]
fn first_restart_is_immediate_then_backs_off() {
    let s = spec(&["web"], "Always");
    let first = plan_at(&s, &[exited("web", "h1", 0, 1, 0, 1)], 1);
    assert!(first.steps.contains(&start("web", 1)));
    assert!(
        first.backing_off.is_empty(),
        "the first restart does not wait"
    );

    let second = [
        exited("web", "h1", 0, 1, 0, 1),
        exited("web", "h1", 1, 1, 1, 2),
    ];
    let plan = plan_at(&s, &second, 3);
    assert!(plan.steps.is_empty());
    assert_eq!(plan.wake_at, Some(at(12)));
    assert_eq!(plan.backing_off, ["u_web_h1_1"]);
    let later = plan_at(&s, &second, 12);
    assert!(later.steps.contains(&start("web", 2)));
    assert!(later.backing_off.is_empty(), "the back-off is over");
}

#[test]
fn backoff_doubles_up_to_the_cap_and_resets_after_a_long_run() {
    let b = backoff();
    let short = ExitInfo {
        exit_code: 1,
        signal: None,
        oom_killed: false,
        started_at: Some(stamp(0)),
        finished_at: stamp(1),
        message: None,
    };
    assert_eq!(b.delay(0, &short), Duration::ZERO);
    assert_eq!(b.delay(1, &short), Duration::from_secs(10));
    assert_eq!(b.delay(3, &short), Duration::from_secs(40));
    assert_eq!(b.delay(30, &short), Duration::from_secs(300));
    let long = ExitInfo {
        finished_at: stamp(601),
        ..short
    };
    assert_eq!(b.delay(5, &long), Duration::ZERO);
}

#[test]
fn restart_policies_follow_kubernetes() {
    let b = backoff();
    let ok = ExitInfo {
        exit_code: 0,
        signal: None,
        oom_killed: false,
        started_at: None,
        finished_at: stamp(1),
        message: None,
    };
    let failed = ExitInfo {
        exit_code: 1,
        ..ok.clone()
    };
    assert!(restart_at("Always", &b, 0, &ok).is_some());
    assert!(restart_at("Always", &b, 0, &failed).is_some());
    assert!(restart_at("OnFailure", &b, 0, &ok).is_none());
    assert!(restart_at("OnFailure", &b, 0, &failed).is_some());
    assert!(restart_at("Never", &b, 0, &ok).is_none());
    assert!(restart_at("Never", &b, 0, &failed).is_none());
}

#[test]
fn changed_spec_stops_old_instances_before_starting_new_ones() {
    let s = spec(&["web"], "Always");
    let old = [running("web", "h0", 0), exited("web", "h0", 1, 0, 0, 1)];
    let plan = plan_at(&s, &old, 5);
    assert_eq!(
        plan.steps,
        vec![
            Step::Stop {
                id: "u_web_h0_0".into(),
                grace: Duration::from_secs(5)
            },
            Step::Remove {
                id: "u_web_h0_1".into()
            }
        ]
    );
}

#[test]
fn old_attempts_are_removed_but_the_previous_one_is_kept() {
    let s = spec(&["web"], "Always");
    let all = [
        exited("web", "h1", 0, 1, 0, 1),
        exited("web", "h1", 1, 1, 1, 2),
        running("web", "h1", 2),
    ];
    let plan = plan_at(&s, &all, 30);
    assert_eq!(
        plan.steps,
        vec![Step::Remove {
            id: "u_web_h1_0".into()
        }]
    );
}

#[test]
fn terminating_pod_is_stopped_then_forgotten() {
    let s = spec(&["web"], "Always");
    let plan = plan_pod(
        "u",
        Some(&desired(&s, true)),
        &[running("web", "h1", 0)],
        &backoff(),
        at(0),
        &HashMap::new(),
    );
    assert_eq!(
        plan.steps,
        vec![Step::Stop {
            id: "u_web_h1_0".into(),
            grace: Duration::from_secs(5)
        }]
    );
    let plan = plan_pod(
        "u",
        Some(&desired(&s, true)),
        &[],
        &backoff(),
        at(0),
        &HashMap::new(),
    );
    assert_eq!(
        plan.steps,
        vec![
            Step::RemoveSandbox {
                pod_uid: "u".into()
            },
            Step::Forget {
                pod_uid: "u".into()
            }
        ]
    );
}

#[test]
fn unknown_pods_are_removed_with_the_default_grace() {
    let plan = plan_pod(
        "u",
        None,
        &[running("web", "h1", 0)],
        &backoff(),
        at(0),
        &HashMap::new(),
    );
    assert_eq!(
        plan.steps,
        vec![Step::Stop {
            id: "u_web_h1_0".into(),
            grace: ORPHAN_GRACE
        }]
    );
}

#[test]
fn failed_starts_are_held_back_until_their_retry_time() {
    let s = spec(&["web", "side"], "Always");
    let holds = HashMap::from([("web".to_owned(), at(10))]);
    let plan = plan_pod(
        "u",
        Some(&desired(&s, false)),
        &[],
        &backoff(),
        at(0),
        &holds,
    );
    assert_eq!(
        plan.steps,
        vec![
            Step::EnsureSandbox {
                pod_uid: "u".into()
            },
            start("side", 0)
        ]
    );
    assert_eq!(plan.wake_at, Some(at(10)));
    let later = plan_pod(
        "u",
        Some(&desired(&s, false)),
        &[],
        &backoff(),
        at(10),
        &holds,
    );
    assert!(later.steps.contains(&start("web", 0)));
    assert_eq!(backoff().after_failures(1), Duration::from_secs(10));
    assert_eq!(backoff().after_failures(3), Duration::from_secs(40));
}

#[test]
fn never_policy_leaves_an_exited_container_down() {
    let s = spec(&["job"], "Never");
    let plan = plan_at(&s, &[exited("job", "h1", 0, 1, 0, 1)], 100);
    assert_eq!(plan, PodPlan::default());
}

fn with_init(init: &[(&str, bool)], apps: &[&str], policy: &str) -> PodSpec {
    let mut s = spec(apps, policy);
    s.init_containers = init
        .iter()
        .map(|(name, sidecar)| Container {
            name: name.to_string(),
            image: "busybox:1.35".into(),
            restart_policy: sidecar.then(|| "Always".to_owned()),
            ..Default::default()
        })
        .collect();
    s
}

fn plan_at(s: &PodSpec, instances: &[Instance], secs: u64) -> PodPlan {
    plan_pod(
        "u",
        Some(&desired(s, false)),
        instances,
        &backoff(),
        at(secs),
        &HashMap::new(),
    )
}

fn sandbox_and(steps: &[Step]) -> Vec<Step> {
    let mut all = vec![Step::EnsureSandbox {
        pod_uid: "u".into(),
    }];
    all.extend_from_slice(steps);
    all
}

#[test]
fn init_containers_run_one_at_a_time_before_the_app() {
    let s = with_init(&[("first", false), ("second", false)], &["web"], "Always");
    assert_eq!(plan_at(&s, &[], 0).steps, sandbox_and(&[start("first", 0)]));
    let first_running = [running("first", "h1", 0)];
    assert_eq!(plan_at(&s, &first_running, 1), PodPlan::default());
    let first_done = [exited("first", "h1", 0, 0, 0, 1)];
    assert_eq!(
        plan_at(&s, &first_done, 2).steps,
        sandbox_and(&[start("second", 0)])
    );
    let both_done = [
        exited("first", "h1", 0, 0, 0, 1),
        exited("second", "h1", 0, 0, 1, 2),
    ];
    assert_eq!(
        plan_at(&s, &both_done, 3).steps,
        sandbox_and(&[start("web", 0)])
    );
    // Once the app has run, init containers are not run again.
    let app_ran = [running("web", "h1", 0)];
    assert_eq!(plan_at(&s, &app_ran, 4), PodPlan::default());
}

#[test]
fn a_failing_init_container_backs_off_and_the_app_waits() {
    let s = with_init(&[("wait", false)], &["web"], "Always");
    let failed_twice = [
        exited("wait", "h1", 0, 1, 0, 1),
        exited("wait", "h1", 1, 1, 1, 2),
    ];
    let plan = plan_at(&s, &failed_twice, 3);
    assert!(plan.steps.is_empty(), "{plan:?}");
    assert_eq!(plan.backing_off, ["u_wait_h1_1"]);
    assert_eq!(plan.wake_at, Some(at(12)));
    assert_eq!(
        plan_at(&s, &failed_twice, 12).steps,
        sandbox_and(&[start("wait", 2)])
    );
    // A pod that never restarts has failed: nothing more runs.
    let never = with_init(&[("wait", false)], &["web"], "Never");
    let failed = [exited("wait", "h1", 0, 1, 0, 1)];
    assert_eq!(plan_at(&never, &failed, 5), PodPlan::default());
}

#[test]
fn a_sidecar_starts_in_its_turn_and_stops_after_the_app_finishes() {
    let s = with_init(&[("proxy", true), ("setup", false)], &["job"], "Never");
    assert_eq!(plan_at(&s, &[], 0).steps, sandbox_and(&[start("proxy", 0)]));
    let proxy_up = [running("proxy", "h1", 0)];
    assert_eq!(
        plan_at(&s, &proxy_up, 1).steps,
        sandbox_and(&[start("setup", 0)])
    );
    let set_up = [running("proxy", "h1", 0), exited("setup", "h1", 0, 0, 1, 2)];
    assert_eq!(
        plan_at(&s, &set_up, 3).steps,
        sandbox_and(&[start("job", 0)])
    );
    // The sidecar restarts while the app runs, whatever the pod's policy.
    let proxy_died = [
        exited("proxy", "h1", 0, 1, 0, 4),
        exited("setup", "h1", 0, 0, 1, 2),
        running("job", "h1", 0),
    ];
    assert_eq!(
        plan_at(&s, &proxy_died, 5).steps,
        sandbox_and(&[start("proxy", 1)])
    );
    // Once the app has finished for good, the sidecar is stopped and stays down.
    let finished = [
        running("proxy", "h1", 0),
        exited("setup", "h1", 0, 0, 1, 2),
        exited("job", "h1", 0, 0, 3, 6),
    ];
    assert_eq!(
        plan_at(&s, &finished, 7).steps,
        vec![Step::Stop {
            id: "u_proxy_h1_0".into(),
            grace: Duration::from_secs(5)
        }]
    );
    let stopped = [
        exited("proxy", "h1", 0, 143, 0, 8),
        exited("setup", "h1", 0, 0, 1, 2),
        exited("job", "h1", 0, 0, 3, 6),
    ];
    assert_eq!(plan_at(&s, &stopped, 9), PodPlan::default());
}
