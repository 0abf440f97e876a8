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
        .filter(|i| i.hash == pod.hash && pod.spec.container(&i.container).is_none())
        .collect();
    if !stale.is_empty() || !unknown.is_empty() {
        for instance in stale.into_iter().chain(unknown) {
            plan.steps.push(stop_or_remove(instance, grace));
        }
        return plan;
    }

    let mut turn = Turn {
        pod_uid,
        pod,
        instances,
        backoff,
        now,
        holds,
        grace,
        plan: &mut plan,
        starts: Vec::new(),
    };
    if turn.initialized() {
        turn.run_app_containers();
    }
    let starts = std::mem::take(&mut turn.starts);
    if !starts.is_empty() {
        plan.steps.push(Step::EnsureSandbox {
            pod_uid: pod_uid.to_owned(),
        });
        plan.steps.extend(starts);
    }
    plan
}

/// Where one container stands after its planning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Progress {
    /// Starting or running.
    Running,
    /// Not running now: about to start, waiting out a back-off or a failed start.
    Waiting,
    /// Exited and staying down, with exit code 0.
    Succeeded,
    /// Exited and staying down, with another exit code.
    Failed,
}

impl Progress {
    fn finished(self) -> bool {
        matches!(self, Progress::Succeeded | Progress::Failed)
    }
}

/// One pod's planning: its inputs and the steps found so far.
struct Turn<'p, 'a> {
    pod_uid: &'a str,
    pod: &'a DesiredPod<'a>,
    instances: &'a [Instance],
    backoff: &'a Backoff,
    now: SystemTime,
    holds: &'a HashMap<String, SystemTime>,
    grace: Duration,
    plan: &'p mut PodPlan,
    starts: Vec<Step>,
}

impl Turn<'_, '_> {
    /// Runs the init containers in order, each to completion (a sidecar: until it
    /// runs), and says whether all have. Once an app container has run, the pod is
    /// initialized for good, as the kubelet keeps it: init containers do not run again.
    fn initialized(&mut self) -> bool {
        let spec = self.pod.spec;
        let app_started = self
            .instances
            .iter()
            .any(|i| spec.containers.iter().any(|c| c.name == i.container));
        if app_started {
            return true;
        }
        // An init container that fails is restarted unless the pod never restarts.
        let init_policy = match spec.restart_policy.as_str() {
            "Never" => "Never",
            _ => "OnFailure",
        };
        for container in &spec.init_containers {
            let (policy, done) = if container.is_sidecar() {
                ("Always", Progress::Running)
            } else {
                (init_policy, Progress::Succeeded)
            };
            if self.container(&container.name, policy) != done {
                return false;
            }
        }
        true
    }

    /// The app containers by the pod's policy, and the sidecars beside them until every
    /// app container has finished for good (as Kubernetes stops a Job pod's sidecars).
    fn run_app_containers(&mut self) {
        let spec = self.pod.spec;
        let mut all_finished = true;
        for container in &spec.containers {
            let progress = self.container(&container.name, &spec.restart_policy);
            all_finished &= progress.finished();
        }
        for sidecar in spec.init_containers.iter().filter(|c| c.is_sidecar()) {
            if !all_finished {
                self.container(&sidecar.name, "Always");
                continue;
            }
            let running = self
                .instances
                .iter()
                .filter(|i| i.container == sidecar.name);
            for instance in running.filter(|i| i.is_running()) {
                self.plan.steps.push(Step::Stop {
                    id: instance.id.clone(),
                    grace: self.grace,
                });
            }
        }
    }

    /// Plans one container under restart policy `policy`: starts it, restarts it when
    /// its back-off is over, and removes attempts older than the previous one (kept for
    /// `lastState` and `logs --previous`).
    fn container(&mut self, name: &str, policy: &str) -> Progress {
        let plan = &mut *self.plan;
        if let Some(until) = self.holds.get(name).filter(|until| **until > self.now) {
            plan.wake_at = Some(plan.wake_at.map_or(*until, |w: SystemTime| w.min(*until)));
            return Progress::Waiting;
        }
        let mine: Vec<&Instance> = self
            .instances
            .iter()
            .filter(|i| i.container == name)
            .collect();
        let Some(latest) = mine.iter().max_by_key(|i| i.attempt) else {
            self.starts.push(self.start(name, 0));
            return Progress::Waiting;
        };
        for old in mine.iter().filter(|i| i.attempt + 1 < latest.attempt) {
            plan.steps.push(stop_or_remove(old, self.grace));
        }
        let InstanceState::Exited(exit) = &latest.state else {
            return Progress::Running;
        };
        match restart_at(policy, self.backoff, latest.attempt, exit) {
            None if exit.exit_code == 0 => Progress::Succeeded,
            None => Progress::Failed,
            Some(at) if at <= self.now => {
                self.starts.push(self.start(name, latest.attempt + 1));
                Progress::Waiting
            }
            Some(at) => {
                plan.wake_at = Some(plan.wake_at.map_or(at, |w: SystemTime| w.min(at)));
                plan.backing_off.push(latest.id.clone());
                Progress::Waiting
            }
        }
    }

    fn start(&self, container: &str, attempt: u32) -> Step {
        Step::Start {
            pod_uid: self.pod_uid.to_owned(),
            container: container.to_owned(),
            hash: self.pod.hash.to_owned(),
            attempt,
        }
    }
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
#[path = "plan_tests.rs"]
mod plan_tests;
