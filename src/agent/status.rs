//! Pod status as Kubernetes reports it, computed (purely) from the pod spec and the
//! instances the runtime knows. Nothing here is stored: the status is derived again
//! whenever someone asks, so it can never drift from what runs.

use std::collections::HashMap;
use std::time::SystemTime;

use super::instance::{Instance, InstanceState};
use super::plan::{restart_at, Backoff, CrashLoopBackoff};
use super::probes::ProbeResults;
use crate::model::{
    Container, ContainerState, ContainerStatus, Pod, PodCondition, PodStatus, StateRunning,
    StateTerminated, StateWaiting,
};
use crate::runtime::ExitInfo;

/// Why a container could not be started, remembered by the agent until it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct StartFailure {
    pub reason: String,
    pub message: String,
    /// Failed starts in a row, and when to try again.
    pub failures: u32,
    pub retry_at: SystemTime,
}

pub struct StatusInputs<'a> {
    pub instances: &'a [Instance],
    /// Start failures by container name.
    pub failures: &'a HashMap<String, StartFailure>,
    /// Image digests by container name (`imageID`).
    pub image_ids: &'a HashMap<String, String>,
    pub backoff: &'a Backoff,
    /// Probe results by instance id (containers without probes have none).
    pub probes: &'a HashMap<String, ProbeResults>,
    pub now: SystemTime,
}

pub fn terminated_state(exit: &ExitInfo, id: &str) -> ContainerState {
    let reason = if exit.oom_killed {
        "OOMKilled"
    } else if exit.exit_code == 0 {
        "Completed"
    } else {
        "Error"
    };
    ContainerState {
        terminated: Some(StateTerminated {
            exit_code: exit.exit_code,
            signal: exit.signal,
            reason: Some(reason.to_owned()),
            message: exit.message.clone(),
            started_at: exit.started_at.clone(),
            finished_at: Some(exit.finished_at.clone()),
            container_id: Some(container_id(id)),
        }),
        ..Default::default()
    }
}

pub fn container_id(instance_id: &str) -> String {
    format!("berth://{instance_id}")
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(StateWaiting {
            reason: Some(reason.to_owned()),
            message,
        }),
        ..Default::default()
    }
}

/// One container's status under restart policy `policy`, and whether it is done for
/// good (exited, not restarting).
fn container_status(
    pod: &Pod,
    container: &Container,
    policy: &str,
    inputs: &StatusInputs,
) -> (ContainerStatus, Done) {
    let (name, image) = (container.name.as_str(), container.image.as_str());
    let mut mine: Vec<&Instance> = inputs
        .instances
        .iter()
        .filter(|i| i.container == name)
        .collect();
    crate::support::sort::sort_by_key(&mut mine, |i| i.attempt);
    let latest = mine.last().copied();
    let previous = latest
        .and_then(|l| mine.iter().find(|i| i.attempt + 1 == l.attempt))
        .copied();
    let mut status = ContainerStatus {
        name: name.to_owned(),
        image: image.to_owned(),
        image_id: inputs.image_ids.get(name).cloned().unwrap_or_default(),
        restart_count: latest.map_or(0, |l| l.attempt as i32),
        started: Some(false),
        ..Default::default()
    };
    if let Some(exit) = previous.and_then(Instance::exit) {
        status.last_state =
            terminated_state(exit, &previous.map(|p| p.id.clone()).unwrap_or_default());
    }
    let done = match latest {
        None => {
            status.state = not_started_state(name, inputs);
            Done::NeverStarted
        }
        Some(l) => {
            status.container_id = Some(container_id(&l.id));
            match &l.state {
                InstanceState::Starting => {
                    status.state = waiting("ContainerCreating", None);
                    if l.attempt == 0 {
                        Done::NeverStarted
                    } else {
                        Done::No
                    }
                }
                InstanceState::Running { started_at, .. } => {
                    running_state(&mut status, l, started_at, container, inputs);
                    Done::No
                }
                InstanceState::Exited(exit) => {
                    exited_state(&mut status, pod, l, exit, policy, inputs)
                }
            }
        }
    };
    (status, done)
}

/// A container with no instance yet: being created, or failing before it could start.
fn not_started_state(name: &str, inputs: &StatusInputs) -> ContainerState {
    match inputs.failures.get(name) {
        // The first failed pull shows as ErrImagePull until its retry; between the pulls
        // that fail after it the kubelet says it is backing off.
        Some(f) if f.reason == "ErrImagePull" && f.failures > 1 && f.retry_at > inputs.now => {
            waiting("ImagePullBackOff", Some(f.message.clone()))
        }
        Some(failure) => waiting(&failure.reason, Some(failure.message.clone())),
        None => waiting("ContainerCreating", None),
    }
}

fn running_state(
    status: &mut ContainerStatus,
    instance: &Instance,
    started_at: &str,
    container: &Container,
    inputs: &StatusInputs,
) {
    status.state = ContainerState {
        running: Some(StateRunning {
            started_at: Some(started_at.to_owned()),
        }),
        ..Default::default()
    };
    // Until its probe task has answered (it starts with the next pass, and its results
    // live in memory only, so also after an agent restart) a container stands as
    // Kubernetes starts it: not ready while a readiness probe has yet to pass, started
    // and ready when it has no probes.
    let probes = inputs
        .probes
        .get(&instance.id)
        .copied()
        .or_else(|| Some(ProbeResults::before_any_probe(container)));
    status.ready = probes.is_none_or(|p| p.ready);
    status.started = Some(probes.is_none_or(|p| p.started));
}

/// An exited container: waiting out its back-off, about to restart, or done.
fn exited_state(
    status: &mut ContainerStatus,
    pod: &Pod,
    instance: &Instance,
    exit: &ExitInfo,
    policy: &str,
    inputs: &StatusInputs,
) -> Done {
    let name = status.name.as_str();
    match restart_at(policy, inputs.backoff, instance.attempt, exit) {
        Some(at) if at > inputs.now => {
            status.last_state = terminated_state(exit, &instance.id);
            // The kubelet's words, with the delay this back-off waits.
            let delay = inputs.backoff.delay(instance.attempt, exit);
            let message = format!(
                "back-off {} restarting failed container={name} pod={}_{}({})",
                crate::model::format_duration(delay),
                pod.metadata.name,
                pod.metadata.namespace_or_empty(),
                pod.metadata.uid
            );
            status.state = match inputs.failures.get(name) {
                Some(f) => waiting(&f.reason, Some(f.message.clone())),
                None => waiting("CrashLoopBackOff", Some(message)),
            };
            Done::No
        }
        Some(_) => {
            status.last_state = terminated_state(exit, &instance.id);
            status.state = waiting("ContainerCreating", None);
            Done::No
        }
        None => {
            status.state = terminated_state(exit, &instance.id);
            if exit.exit_code == 0 {
                Done::Succeeded
            } else {
                Done::Failed
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Done {
    No,
    NeverStarted,
    Succeeded,
    Failed,
}

pub fn pod_status(pod: &Pod, inputs: &StatusInputs) -> PodStatus {
    let mut statuses = Vec::new();
    let mut dones = Vec::new();
    for container in &pod.spec.containers {
        let (status, done) = container_status(pod, container, &pod.spec.restart_policy, inputs);
        statuses.push(status);
        dones.push(done);
    }
    let apps_finished = dones
        .iter()
        .all(|d| matches!(d, Done::Succeeded | Done::Failed));
    let init = init_statuses(pod, inputs, apps_finished);
    for (status, done) in statuses.iter_mut().zip(&dones) {
        if !init.complete && *done == Done::NeverStarted {
            status.state = waiting("PodInitializing", None);
        }
    }
    let phase = if init.failed {
        "Failed"
    } else if !init.complete || dones.contains(&Done::NeverStarted) {
        "Pending"
    } else if dones
        .iter()
        .all(|d| matches!(d, Done::Succeeded | Done::Failed))
    {
        if dones.iter().all(|d| *d == Done::Succeeded) {
            "Succeeded"
        } else {
            "Failed"
        }
    } else {
        "Running"
    };
    // Sidecars count for readiness, as in Kubernetes.
    let sidecars = pod.spec.init_containers.iter().zip(&init.statuses);
    let mut readiness = statuses.iter().map(|s| s.ready);
    let sidecars_ready = sidecars
        .filter(|(c, _)| c.is_sidecar())
        .all(|(_, s)| s.ready);
    let all_ready = !statuses.is_empty() && readiness.all(|ready| ready) && sidecars_ready;
    let ready_reason = match (all_ready, phase) {
        (true, _) => None,
        (false, "Succeeded" | "Failed") => Some("PodCompleted".to_owned()),
        (false, _) => Some("ContainersNotReady".to_owned()),
    };
    let condition = |type_: &str, ok: bool, reason: Option<String>| PodCondition {
        type_: type_.to_owned(),
        status: if ok { "True" } else { "False" }.to_owned(),
        reason,
        ..Default::default()
    };
    let mut initialized = condition("Initialized", init.complete, None);
    if !init.complete {
        initialized.reason = Some("ContainersNotInitialized".to_owned());
        initialized.message = Some(format!(
            "containers with incomplete status: [{}]",
            init.incomplete.join(" ")
        ));
    }
    PodStatus {
        phase: phase.to_owned(),
        conditions: vec![
            condition("PodScheduled", true, None),
            initialized,
            condition("ContainersReady", all_ready, ready_reason.clone()),
            condition("Ready", all_ready, ready_reason),
        ],
        start_time: start_time(inputs.instances),
        init_container_statuses: init.statuses,
        container_statuses: statuses,
        ..Default::default()
    }
}

/// The earliest start of any of the pod's containers.
fn start_time(instances: &[Instance]) -> Option<String> {
    instances
        .iter()
        .filter_map(|i| match &i.state {
            InstanceState::Running { started_at, .. } => Some(started_at.clone()),
            InstanceState::Exited(exit) => exit.started_at.clone(),
            InstanceState::Starting => None,
        })
        .min()
}

/// The init containers' statuses and what they mean for the pod.
struct InitProgress {
    statuses: Vec<ContainerStatus>,
    /// Every init container has done its part (a sidecar: started), or an app
    /// container has run already.
    complete: bool,
    /// An init container failed and the pod never restarts: the pod has failed.
    failed: bool,
    /// The names of the init containers not done yet, for the `Initialized` condition.
    incomplete: Vec<String>,
}

/// Init containers as the kubelet shows them: the one running or failing, and those
/// after it waiting with `PodInitializing`. Sidecars restart until `apps_finished`.
fn init_statuses(pod: &Pod, inputs: &StatusInputs, apps_finished: bool) -> InitProgress {
    let spec = &pod.spec;
    let app_started = inputs
        .instances
        .iter()
        .any(|i| spec.containers.iter().any(|c| c.name == i.container));
    let init_policy = match spec.restart_policy.as_str() {
        "Never" => "Never",
        _ => "OnFailure",
    };
    let mut progress = InitProgress {
        statuses: Vec::with_capacity(spec.init_containers.len()),
        complete: true,
        failed: false,
        incomplete: Vec::new(),
    };
    for container in &spec.init_containers {
        let policy = match (container.is_sidecar(), apps_finished) {
            (true, false) => "Always",
            (true, true) => "Never",
            (false, _) => init_policy,
        };
        let (mut status, done) = container_status(pod, container, policy, inputs);
        let done_here = if container.is_sidecar() {
            status.started == Some(true)
        } else {
            done == Done::Succeeded
        };
        if !done_here && !app_started {
            // Not yet started, as the kubelet shows it (a failed pull keeps its reason).
            let creating = status
                .state
                .waiting
                .as_ref()
                .and_then(|w| w.reason.as_deref())
                == Some("ContainerCreating");
            if done == Done::NeverStarted && (creating || !progress.complete) {
                status.state = waiting("PodInitializing", None);
            }
            progress.failed |= done == Done::Failed;
            progress.complete = false;
            progress.incomplete.push(container.name.clone());
        }
        progress.statuses.push(status);
    }
    progress
}

/// Whether a pod counts as Ready (for Deployment status).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Container, PodSpec};
    use std::time::Duration;

    fn pod(policy: &str) -> Pod {
        Pod {
            spec: PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    image: "busybox:1.35".into(),
                    ..Default::default()
                }],
                restart_policy: policy.into(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn exited(attempt: u32, code: i32, oom: bool) -> Instance {
        Instance {
            id: format!("u_c_h_{attempt}"),
            pod_uid: "u".into(),
            container: "c".into(),
            hash: "h".into(),
            attempt,
            state: InstanceState::Exited(ExitInfo {
                exit_code: code,
                signal: None,
                oom_killed: oom,
                started_at: Some("2026-01-01T00:00:00Z".into()),
                finished_at: "2026-01-01T00:00:01Z".into(),
                message: None,
            }),
        }
    }

    fn status_of(p: &Pod, instances: &[Instance]) -> PodStatus {
        let failures = HashMap::new();
        let images = HashMap::new();
        let probes = HashMap::new();
        let backoff = Backoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(300),
        };
        let now =
            humantime::parse_rfc3339("2026-01-01T00:00:02Z").unwrap_or(SystemTime::UNIX_EPOCH);
        pod_status(
            p,
            &StatusInputs {
                instances,
                failures: &failures,
                image_ids: &images,
                backoff: &backoff,
                probes: &probes,
                now,
            },
        )
    }

    #[test]
    fn phases_follow_restart_policy() {
        assert_eq!(
            status_of(&pod("Never"), &[exited(0, 0, false)]).phase,
            "Succeeded"
        );
        assert_eq!(
            status_of(&pod("Never"), &[exited(0, 1, false)]).phase,
            "Failed"
        );
        assert_eq!(
            status_of(&pod("OnFailure"), &[exited(0, 0, false)]).phase,
            "Succeeded"
        );
        assert_eq!(
            status_of(&pod("OnFailure"), &[exited(0, 1, false)]).phase,
            "Running"
        );
        assert_eq!(
            status_of(&pod("Always"), &[exited(0, 0, false)]).phase,
            "Running"
        );
        assert_eq!(status_of(&pod("Always"), &[]).phase, "Pending");
    }

    #[test]
    fn oom_kill_is_reported_with_its_reason() {
        let status = status_of(&pod("Never"), &[exited(0, 137, true)]);
        let terminated = status.container_statuses[0].state.terminated.clone();
        assert_eq!(
            terminated.and_then(|t| t.reason),
            Some("OOMKilled".to_owned())
        );
    }

    #[test]
    fn probes_decide_ready_and_started() {
        let running = Instance {
            id: "u_c_h_0".into(),
            pod_uid: "u".into(),
            container: "c".into(),
            hash: "h".into(),
            attempt: 0,
            state: InstanceState::Running {
                pid: 1,
                started_at: "2026-01-01T00:00:00Z".into(),
            },
        };
        let p = pod("Always");
        let (failures, images) = (HashMap::new(), HashMap::new());
        let backoff = Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(1),
        };
        let probes = HashMap::from([(
            "u_c_h_0".to_owned(),
            ProbeResults {
                started: true,
                ready: false,
            },
        )]);
        let inputs = StatusInputs {
            instances: std::slice::from_ref(&running),
            failures: &failures,
            image_ids: &images,
            backoff: &backoff,
            probes: &probes,
            now: SystemTime::UNIX_EPOCH,
        };
        let status = pod_status(&p, &inputs);
        assert_eq!(status.phase, "Running");
        assert!(!status.container_statuses[0].ready);
        assert_eq!(status.container_statuses[0].started, Some(true));
        assert!(!status.is_ready());
    }

    #[test]
    fn crash_loop_shows_back_off_and_last_state() {
        let status = status_of(&pod("Always"), &[exited(0, 1, false), exited(1, 1, false)]);
        let c = &status.container_statuses[0];
        assert_eq!(c.restart_count, 1);
        assert_eq!(
            c.state.waiting.as_ref().and_then(|w| w.reason.clone()),
            Some("CrashLoopBackOff".into())
        );
        assert_eq!(
            c.last_state.terminated.as_ref().map(|t| t.exit_code),
            Some(1)
        );
        assert!(!status.is_ready());
        let message = c.state.waiting.as_ref().and_then(|w| w.message.clone());
        assert_eq!(
            message.as_deref(),
            Some("back-off 10s restarting failed container=c pod=_()")
        );
    }

    #[test]
    fn a_probed_container_is_not_ready_before_its_first_probe() {
        let running = Instance {
            id: "u_c_h_0".into(),
            pod_uid: "u".into(),
            container: "c".into(),
            hash: "h".into(),
            attempt: 0,
            state: InstanceState::Running {
                pid: 1,
                started_at: "2026-01-01T00:00:00Z".into(),
            },
        };
        let plain = pod("Always");
        let status = status_of(&plain, std::slice::from_ref(&running));
        assert!(status.container_statuses[0].ready, "no probes: ready");
        let mut probed = pod("Always");
        probed.spec.containers[0].readiness_probe = Some(Default::default());
        let status = status_of(&probed, std::slice::from_ref(&running));
        assert!(!status.container_statuses[0].ready, "{status:?}");
        assert_eq!(status.container_statuses[0].started, Some(true));
        probed.spec.containers[0].startup_probe = Some(Default::default());
        let status = status_of(&probed, std::slice::from_ref(&running));
        assert_eq!(status.container_statuses[0].started, Some(false));
        assert!(!status.is_ready());
    }

    #[test]
    fn first_failed_pull_is_err_image_pull_then_back_off() {
        let p = pod("Always");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let reason_after = |failures: u32, retry_in: i64| {
            let failure = StartFailure {
                reason: "ErrImagePull".into(),
                message: "registry says no".into(),
                failures,
                retry_at: if retry_in >= 0 {
                    now + Duration::from_secs(retry_in.unsigned_abs())
                } else {
                    now - Duration::from_secs(retry_in.unsigned_abs())
                },
            };
            let failures = HashMap::from([("c".to_owned(), failure)]);
            let (images, probes) = (HashMap::new(), HashMap::new());
            let backoff = Backoff {
                base: Duration::from_secs(10),
                max: Duration::from_secs(300),
            };
            let inputs = StatusInputs {
                instances: &[],
                failures: &failures,
                image_ids: &images,
                backoff: &backoff,
                probes: &probes,
                now,
            };
            let status = pod_status(&p, &inputs);
            let waiting = status.container_statuses[0].state.waiting.clone();
            waiting.and_then(|w| w.reason).unwrap_or_default()
        };
        assert_eq!(reason_after(1, 5), "ErrImagePull");
        assert_eq!(reason_after(2, 5), "ImagePullBackOff");
        assert_eq!(reason_after(3, -1), "ErrImagePull");
    }

    #[test]
    fn init_containers_hold_the_pod_pending_until_done() {
        let mut p = pod("Never");
        for name in ["a", "b"] {
            p.spec.init_containers.push(Container {
                name: name.into(),
                image: "busybox:1.35".into(),
                ..Default::default()
            });
        }
        let of = |container: &str, attempt: u32, code: i32| Instance {
            id: format!("u_{container}_h_{attempt}"),
            container: container.into(),
            ..exited(attempt, code, false)
        };
        let status = status_of(&p, &[of("a", 0, 0)]);
        assert_eq!(status.phase, "Pending");
        let reasons: Vec<_> = status
            .init_container_statuses
            .iter()
            .map(|s| {
                let waiting = s.state.waiting.as_ref().and_then(|w| w.reason.clone());
                let terminated = s.state.terminated.as_ref().and_then(|t| t.reason.clone());
                waiting.or(terminated).unwrap_or_default()
            })
            .collect();
        assert_eq!(reasons, ["Completed", "PodInitializing"]);
        let app = &status.container_statuses[0].state.waiting;
        assert_eq!(
            app.as_ref().and_then(|w| w.reason.as_deref()),
            Some("PodInitializing")
        );
        let initialized = &status.conditions[1];
        assert_eq!(
            (initialized.type_.as_str(), initialized.status.as_str()),
            ("Initialized", "False")
        );
        assert_eq!(
            initialized.message.as_deref(),
            Some("containers with incomplete status: [b]")
        );
        // An init container that fails in a pod that never restarts fails the pod.
        let failed = status_of(&p, &[of("a", 0, 0), of("b", 0, 2)]);
        assert_eq!(failed.phase, "Failed");
        // Both done: the app container runs, the pod is initialized.
        let done = status_of(&p, &[of("a", 0, 0), of("b", 0, 0), exited(0, 0, false)]);
        assert_eq!(done.phase, "Succeeded");
        assert_eq!(done.conditions[1].status, "True");
    }
}
