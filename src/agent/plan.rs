//! The reconcile plan: a pure function from desired pod and observed instances to the
//! steps that bring one pod closer to what is wanted.
//!
//! It never does I/O and never looks at a clock of its own: `now` comes in, so every
//! decision (start, restart after back-off, replace, stop, forget) is testable with a
//! fake runtime. Steps are idempotent; the reconciler runs one pod's steps at a time.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use super::instance::{Instance, InstanceState};
use crate::model::PodSpec;
use crate::runtime::ExitInfo;

/// The one back-off; crash loops use its exact doubling through [`CrashLoopBackoff`].
pub use crate::support::backoff::Backoff;

/// Grace period for containers whose pod is no longer known at all (its spec, and so
/// its own grace period, are gone): Kubernetes' default.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Create the pod's shared namespaces (idempotent).
    EnsureSandbox { pod_uid: String },
    /// Tear the pod's namespaces down (idempotent).
    RemoveSandbox { pod_uid: String },
    /// Start container `container` of the pod as attempt `attempt`.
    Start {
        pod_uid: String,
        container: String,
        hash: String,
        attempt: u32,
    },
    /// Stop a running instance: SIGTERM, grace, SIGKILL.
    Stop { id: String, grace: Duration },
    /// Forget an exited instance (its files and cgroup).
    Remove { id: String },
    /// Everything of a terminating pod is gone: drop its logs and its object.
    Forget { pod_uid: String },
}

/// The pod as the store wants it.
#[derive(Clone, Debug)]
pub struct DesiredPod<'a> {
    pub spec: &'a PodSpec,
    pub hash: &'a str,
    pub terminating: bool,
}

/// Kubernetes' crash-loop back-off, on the one back-off: the exact doubling (no jitter,
/// users read the delay in the status message), reset by a long enough run.
pub trait CrashLoopBackoff {
    /// Delay before restart number `attempt + 1`: the first restart is immediate, then
    /// base, 2×base, … up to max; a container that ran long enough starts over.
    fn delay(&self, attempt: u32, exit: &ExitInfo) -> Duration;
}

impl CrashLoopBackoff for Backoff {
    fn delay(&self, attempt: u32, exit: &ExitInfo) -> Duration {
        self.restart_delay(attempt, ran_for(exit))
    }
}

fn ran_for(exit: &ExitInfo) -> Duration {
    let parse = |s: &str| humantime::parse_rfc3339(s).ok();
    match (
        exit.started_at.as_deref().and_then(parse),
        parse(&exit.finished_at),
    ) {
        (Some(start), Some(end)) => end.duration_since(start).unwrap_or(Duration::ZERO),
        _ => Duration::ZERO,
    }
}

/// When an exited container may be started again, or None if its restart policy says
/// it stays down.
pub fn restart_at(
    policy: &str,
    backoff: &Backoff,
    attempt: u32,
    exit: &ExitInfo,
) -> Option<SystemTime> {
    let restart = match policy {
        "Never" => false,
        "OnFailure" => exit.exit_code != 0,
        _ => true,
    };
    if !restart {
        return None;
    }
    let finished = humantime::parse_rfc3339(&exit.finished_at).unwrap_or(SystemTime::UNIX_EPOCH);
    Some(finished + backoff.delay(attempt, exit))
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodPlan {
    pub steps: Vec<Step>,
    /// The earliest moment a back-off ends and the pod wants another look.
    pub wake_at: Option<SystemTime>,
    /// Exited instances whose restart waits out the crash-loop back-off (the kubelet's
    /// `BackOff` event): empty, and unallocated, for a pod that is not crash-looping.
    pub backing_off: Vec<String>,
}

/// Plans one pod. `instances` are all instances whose pod UID is this pod's (or, for a
/// pod the store no longer has, `desired` is None). `holds` keeps containers whose last
/// start failed back until their retry time, by container name.
pub fn plan_pod(
    pod_uid: &str,
    desired: Option<&DesiredPod>,
    instances: &[Instance],
    backoff: &Backoff,
    now: SystemTime,
    holds: &HashMap<String, SystemTime>,
) -> PodPlan {
    let mut plan = PodPlan::default();
    let Some(pod) = desired.filter(|d| !d.terminating) else {
        let grace = desired.map_or(ORPHAN_GRACE, |d| grace_of(d.spec));
        tear_down(pod_uid, instances, grace, &mut plan);
        return plan;
    };
    let grace = grace_of(pod.spec);

    // A changed spec replaces the whole pod: first every old instance goes.
    let stale: Vec<&Instance> = instances.iter().filter(|i| i.hash != pod.hash).collect();
    let unknown: Vec<&Instance> = instances
        .iter()
        .filter(|i| {
            i.hash == pod.hash && !pod.spec.containers.iter().any(|c| c.name == i.container)
        })
        .collect();
    if !stale.is_empty() || !unknown.is_empty() {
        for instance in stale.into_iter().chain(unknown) {
            plan.steps.push(stop_or_remove(instance, grace));
        }
        return plan;
    }

    let mut starts = Vec::new();
    for container in &pod.spec.containers {
        let mine: Vec<&Instance> = instances
            .iter()
            .filter(|i| i.container == container.name)
            .collect();
        if let Some(until) = holds.get(&container.name).filter(|until| **until > now) {
            plan.wake_at = Some(plan.wake_at.map_or(*until, |w: SystemTime| w.min(*until)));
            continue;
        }
        let Some(latest) = mine.iter().max_by_key(|i| i.attempt) else {
            starts.push(Step::Start {
                pod_uid: pod_uid.to_owned(),
                container: container.name.clone(),
                hash: pod.hash.to_owned(),
                attempt: 0,
            });
            continue;
        };
        // Keep the latest instance and the one before it (for `lastState` and
        // `logs --previous`); older exited ones go.
        for old in mine.iter().filter(|i| i.attempt + 1 < latest.attempt) {
            plan.steps.push(stop_or_remove(old, grace));
        }
        let InstanceState::Exited(exit) = &latest.state else {
            continue;
        };
        if let Some(at) = restart_at(&pod.spec.restart_policy, backoff, latest.attempt, exit) {
            if at <= now {
                starts.push(Step::Start {
                    pod_uid: pod_uid.to_owned(),
                    container: container.name.clone(),
                    hash: pod.hash.to_owned(),
                    attempt: latest.attempt + 1,
                });
            } else {
                plan.wake_at = Some(plan.wake_at.map_or(at, |w: SystemTime| w.min(at)));
                plan.backing_off.push(latest.id.clone());
            }
        }
    }
    if !starts.is_empty() {
        plan.steps.push(Step::EnsureSandbox {
            pod_uid: pod_uid.to_owned(),
        });
        plan.steps.extend(starts);
    }
    plan
}

fn grace_of(spec: &PodSpec) -> Duration {
    Duration::from_secs(spec.termination_grace_period_seconds.max(0) as u64)
}

fn stop_or_remove(instance: &Instance, grace: Duration) -> Step {
    if instance.is_running() {
        Step::Stop {
            id: instance.id.clone(),
            grace,
        }
    } else {
        Step::Remove {
            id: instance.id.clone(),
        }
    }
}

fn tear_down(pod_uid: &str, instances: &[Instance], grace: Duration, plan: &mut PodPlan) {
    // Stop everything first, remove after: the executor runs steps in order, so the
    // removes of instances stopped here happen on the next pass, once their exit is seen.
    for instance in instances {
        plan.steps.push(stop_or_remove(instance, grace));
    }
    if instances.is_empty() {
        plan.steps.push(Step::RemoveSandbox {
            pod_uid: pod_uid.to_owned(),
        });
        plan.steps.push(Step::Forget {
            pod_uid: pod_uid.to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
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
        let plan = plan_pod(
            "u",
            Some(&desired(&s, false)),
            &[],
            &backoff(),
            at(0),
            &HashMap::new(),
        );
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
        let plan = plan_pod(
            "u",
            Some(&desired(&s, false)),
            &[running("web", "h1", 0)],
            &backoff(),
            at(0),
            &HashMap::new(),
        );
        assert_eq!(plan, PodPlan::default());
    }

    #[test]
    fn first_restart_is_immediate_then_backs_off() {
        let s = spec(&["web"], "Always");
        let first = plan_pod(
            "u",
            Some(&desired(&s, false)),
            &[exited("web", "h1", 0, 1, 0, 1)],
            &backoff(),
            at(1),
            &HashMap::new(),
        );
        assert!(first.steps.contains(&start("web", 1)));
        assert!(
            first.backing_off.is_empty(),
            "the first restart does not wait"
        );

        let second = [
            exited("web", "h1", 0, 1, 0, 1),
            exited("web", "h1", 1, 1, 1, 2),
        ];
        let plan = plan_pod(
            "u",
            Some(&desired(&s, false)),
            &second,
            &backoff(),
            at(3),
            &HashMap::new(),
        );
        assert!(plan.steps.is_empty());
        assert_eq!(plan.wake_at, Some(at(12)));
        assert_eq!(plan.backing_off, ["u_web_h1_1"]);
        let later = plan_pod(
            "u",
            Some(&desired(&s, false)),
            &second,
            &backoff(),
            at(12),
            &HashMap::new(),
        );
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
        let plan = plan_pod(
            "u",
            Some(&desired(&s, false)),
            &old,
            &backoff(),
            at(5),
            &HashMap::new(),
        );
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
        let plan = plan_pod(
            "u",
            Some(&desired(&s, false)),
            &all,
            &backoff(),
            at(30),
            &HashMap::new(),
        );
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
        let plan = plan_pod(
            "u",
            Some(&desired(&s, false)),
            &[exited("job", "h1", 0, 1, 0, 1)],
            &backoff(),
            at(100),
            &HashMap::new(),
        );
        assert_eq!(plan, PodPlan::default());
    }
}
