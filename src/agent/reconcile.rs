//! The reconcile loop: observe, plan, act — one pod at a time, never twice at once.
//!
//! A pass is cheap and only reads (SQLite and the runtime's small state files); it
//! writes only when a controller changes desired state. Steps run on blocking threads
//! so a pod stopping with a 30 s grace period never holds up the others.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;

use super::container_config::MOUNT_FAILURE;
use super::instance::{Instance, InstanceState};
use super::plan::{plan_pod, DesiredPod, Step};

/// The longest a `postStart` hook may run before it counts as failed (the kubelet waits
/// without bound; a board should not have a pod stuck forever on a hung hook).
const POST_START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
use super::status::StartFailure;
use super::{Agent, RESYNC_PERIOD};
use crate::model::EventType::{Normal, Warning};
use crate::model::{spec_hash, Object, Pod};

pub async fn run_loop(
    agent: Arc<Agent>,
    wake: smol::channel::Receiver<()>,
    stop: smol::channel::Receiver<()>,
) {
    use smol::future::FutureExt;
    let mut next_wake: Option<SystemTime> = None;
    loop {
        let pass_agent = agent.clone();
        match smol::unblock(move || pass_agent.reconcile_once()).await {
            Ok(wake_at) => next_wake = wake_at,
            Err(err) => log::error!("reconcile pass failed: {err:#}"),
        }
        let timeout = next_wake
            .and_then(|at| at.duration_since(SystemTime::now()).ok())
            .unwrap_or(RESYNC_PERIOD)
            .min(RESYNC_PERIOD);
        enum Event {
            Pass,
            Stop,
        }
        let woken = async {
            let _ = wake.recv().await;
            Event::Pass
        };
        let timer = async {
            smol::Timer::after(timeout).await;
            Event::Pass
        };
        let stopped = async {
            let _ = stop.recv().await;
            Event::Stop
        };
        match stopped.or(woken).or(timer).await {
            Event::Stop => return,
            Event::Pass => {}
        }
    }
}

/// Pods of the store, parsed; rows that do not parse are logged and skipped.
pub fn stored_pods(agent: &Agent) -> anyhow::Result<Vec<Pod>> {
    let records = agent.store().list("Pod", None)?;
    Ok(records
        .into_iter()
        .filter_map(|record| match Object::from_json(record.object) {
            Ok(Object::Pod(pod)) => Some(pod),
            Ok(_) | Err(_) => {
                log::error!(
                    "skipping unreadable pod {}/{} in the store",
                    record.namespace,
                    record.name
                );
                None
            }
        })
        .collect())
}

impl Agent {
    /// Instances the runtime knows, grouped by pod UID.
    pub fn observe(&self) -> anyhow::Result<BTreeMap<String, Vec<Instance>>> {
        let mut by_pod: BTreeMap<String, Vec<Instance>> = BTreeMap::new();
        for info in self.runtime.list_containers()? {
            if let Some(instance) = Instance::from_runtime(&info) {
                by_pod
                    .entry(instance.pod_uid.clone())
                    .or_default()
                    .push(instance);
            }
        }
        Ok(by_pod)
    }

    /// One pass; returns when the next back-off ends or a controller has something to
    /// do with time alone (a pod becoming available, a progress deadline), if ever.
    pub fn reconcile_once(self: &Arc<Self>) -> anyhow::Result<Option<SystemTime>> {
        let now = SystemTime::now();
        // Pods with steps in flight as the pass begins, read before anything else: their
        // steps change the runtime while this pass reads it, and one that ends after
        // `observe` would leave this pass planning from what was there before the step
        // (starting again the instance the step has just started: "already exists",
        // remembered as a start failure that holds the container's next restart for its
        // back-off). They are left to the next pass, which each step's end wakes. Passes
        // never overlap (`run_loop`), so no other step starts until this pass plans.
        let busy_before = self.memory().busy.clone();
        let observed = self.observe()?;
        self.watch_exits(&observed);
        let controllers_due = super::controllers::run(self, &observed, now)?;

        let pods = stored_pods(self)?;
        let unschedulable = self.unschedulable_pods(&pods, &observed);
        self.remember_unschedulable(&pods, unschedulable.clone());
        let mut uids: Vec<String> = observed.keys().cloned().collect();
        uids.extend(pods.iter().map(|p| p.metadata.uid.clone()));
        crate::support::sort::sort(&mut uids);
        uids.dedup();
        for sandbox in self.runtime.list_sandboxes()? {
            if !uids.contains(&sandbox) {
                uids.push(sandbox);
            }
        }
        let by_uid: HashMap<&str, &Pod> =
            pods.iter().map(|p| (p.metadata.uid.as_str(), p)).collect();
        self.start_probes(&observed, &by_uid);
        let mut wake_at: Option<SystemTime> = controllers_due;
        let no_instances = Vec::new();
        for uid in uids {
            if busy_before.contains(&uid)
                || self.memory().busy.contains(&uid)
                || unschedulable.contains_key(&uid)
            {
                continue;
            }
            let pod = by_uid.get(uid.as_str()).copied();
            let hash = pod.map(|p| spec_hash(&p.spec)).unwrap_or_default();
            let desired = pod.map(|p| DesiredPod {
                spec: &p.spec,
                hash: &hash,
                terminating: p.metadata.deletion_timestamp.is_some(),
            });
            let instances = observed.get(&uid).unwrap_or(&no_instances);
            let holds: HashMap<String, SystemTime> = self
                .start_failures(&uid)
                .into_iter()
                .map(|(name, f)| (name, f.retry_at))
                .collect();
            let plan = plan_pod(
                &uid,
                desired.as_ref(),
                instances,
                &self.backoff,
                now,
                &holds,
            );
            if let Some(at) = plan.wake_at {
                wake_at = Some(wake_at.map_or(at, |w| w.min(at)));
            }
            if let (Some(pod), false) = (pod, plan.backing_off.is_empty()) {
                self.tell_back_offs(pod, &plan.backing_off, &observed);
            }
            if let Some(pod) = pod.filter(|p| p.metadata.deletion_timestamp.is_none()) {
                if instances.iter().any(Instance::is_running) {
                    self.refresh_volumes(pod);
                }
            }
            if plan.steps.is_empty() {
                continue;
            }
            self.memory().busy.insert(uid.clone());
            let agent = self.clone();
            let pod = pod.cloned();
            smol::spawn(smol::unblock(move || {
                agent.execute(&uid, pod.as_ref(), plan.steps);
                agent.memory().busy.remove(&uid);
                agent.wake();
            }))
            .detach();
        }
        Ok(wake_at)
    }

    /// Tells each crash of `pod` whose restart waits out the back-off once, as the
    /// kubelet's `BackOff` event, however many passes see it waiting.
    fn tell_back_offs(
        &self,
        pod: &Pod,
        waiting: &[String],
        observed: &BTreeMap<String, Vec<Instance>>,
    ) {
        for id in waiting {
            {
                let mut memory = self.memory();
                if memory.backed_off.contains(id) {
                    continue;
                }
                // Crashes told before whose instances are gone need no remembering.
                memory
                    .backed_off
                    .retain(|told| observed.values().flatten().any(|i| i.id == *told));
                memory.backed_off.insert(id.clone());
            }
            let Some(container) = super::instance::container_of(id) else {
                continue;
            };
            let message = format!(
                "Back-off restarting failed container {container} in pod {}_{}({})",
                pod.metadata.name,
                pod.metadata.namespace_or_empty(),
                pod.metadata.uid
            );
            self.pod_event(&pod.metadata, Some(container), Warning, "BackOff", &message);
        }
    }

    /// Registers an exit notifier (the shim's pidfd) for every running instance not yet
    /// watched, so exits are seen as they happen rather than at the next resync.
    fn watch_exits(self: &Arc<Self>, observed: &BTreeMap<String, Vec<Instance>>) {
        for instance in observed.values().flatten().filter(|i| i.is_running()) {
            if !self.memory().watched.insert(instance.id.clone()) {
                continue;
            }
            let fd = match self.runtime.exit_notifier(&instance.id) {
                Ok(Some(fd)) => fd,
                Ok(None) => {
                    self.memory().watched.remove(&instance.id);
                    continue;
                }
                Err(err) => {
                    log::warn!("cannot watch container {}: {err}", instance.id);
                    self.memory().watched.remove(&instance.id);
                    continue;
                }
            };
            let agent = self.clone();
            let id = instance.id.clone();
            smol::spawn(async move {
                match smol::Async::new(fd) {
                    Ok(fd) => {
                        let _ = fd.readable().await;
                    }
                    Err(err) => log::warn!("cannot poll the exit of {id}: {err}"),
                }
                agent.runtime.reap(&id);
                {
                    let mut memory = agent.memory();
                    memory.watched.remove(&id);
                    memory.probed.remove(&id);
                }
                log::debug!("container {id} exited");
                agent.wake();
            })
            .detach();
        }
    }

    /// Starts a probe task for every running instance with probes that has none yet.
    fn start_probes(
        self: &Arc<Self>,
        observed: &BTreeMap<String, Vec<Instance>>,
        pods: &HashMap<&str, &Pod>,
    ) {
        for instance in observed.values().flatten() {
            if !matches!(instance.state, InstanceState::Running { .. }) {
                continue;
            }
            let Some(pod) = pods.get(instance.pod_uid.as_str()) else {
                continue;
            };
            if pod.metadata.deletion_timestamp.is_some() || spec_hash(&pod.spec) != instance.hash {
                continue;
            }
            let Some(container) = pod.spec.container(&instance.container) else {
                continue;
            };
            if !super::probes::has_probes(container)
                || !self.memory().probed.insert(instance.id.clone())
            {
                continue;
            }
            super::probes::start(self, instance.id.clone(), pod, container.clone());
        }
    }

    /// Carries out one pod's steps in order; stops at the first failure (the next pass
    /// plans again from what then is).
    fn execute(self: &Arc<Self>, uid: &str, pod: Option<&Pod>, steps: Vec<Step>) {
        for step in steps {
            let result = match &step {
                Step::EnsureSandbox { pod_uid } => match pod {
                    Some(pod) => self.ensure_sandbox(pod_uid, pod),
                    None => Ok(()),
                },
                Step::RemoveSandbox { pod_uid } => self.remove_sandbox(pod_uid),
                Step::Start {
                    container,
                    hash,
                    attempt,
                    ..
                } => match pod {
                    Some(pod) => self.start(pod, container, hash, *attempt),
                    None => Ok(()),
                },
                Step::Stop { id, grace } => {
                    log::info!("stopping container {id} (grace {}s)", grace.as_secs());
                    let name = super::instance::container_of(id);
                    if let (Some(pod), Some(name)) = (pod, name) {
                        let message = format!("Stopping container {name}");
                        self.pod_event(&pod.metadata, Some(name), Normal, "Killing", &message);
                    }
                    let grace = self.run_pre_stop(pod, id, *grace);
                    self.runtime.stop_container(id, grace).map_err(Into::into)
                }
                Step::Remove { id } => self.runtime.remove_container(id).map_err(Into::into),
                Step::Forget { pod_uid } => self.forget(pod_uid, pod),
            };
            if let Err(err) = result {
                log::warn!("pod {uid}: {step:?} failed: {err:#}");
                return;
            }
        }
    }

    /// The pod's namespaces, and its place on the pod network unless it uses the host's.
    fn ensure_sandbox(&self, pod_uid: &str, pod: &Pod) -> anyhow::Result<()> {
        let hostname = pod.spec.hostname.as_deref().unwrap_or(&pod.metadata.name);
        let share_pid = pod.spec.share_process_namespace == Some(true);
        self.runtime
            .create_sandbox(pod_uid, hostname, pod.spec.host_network, share_pid)?;
        if !pod.spec.host_network && self.options.network.enabled() && self.network().is_none() {
            anyhow::bail!("the pod network has not started yet (waiting for the coordinator to name this board's pod CIDR)");
        }
        if let (Some(network), false) = (self.network(), pod.spec.host_network) {
            let netns = self
                .runtime
                .sandbox_netns(pod_uid)
                .ok_or_else(|| anyhow::anyhow!("pod {pod_uid} has no network namespace"))?;
            network.attach(&self.store, pod_uid, &netns)?;
        }
        Ok(())
    }

    /// Off the pod network (its address freed), then the namespaces gone.
    fn remove_sandbox(&self, pod_uid: &str) -> anyhow::Result<()> {
        if let Some(network) = self.network() {
            network.detach(&self.store, pod_uid)?;
        }
        self.runtime.remove_sandbox(pod_uid).map_err(Into::into)
    }

    fn start(
        self: &Arc<Self>,
        pod: &Pod,
        container: &str,
        hash: &str,
        attempt: u32,
    ) -> anyhow::Result<()> {
        let key = (pod.metadata.uid.clone(), container.to_owned());
        let started = self
            .container_config(pod, container, hash, attempt)
            .and_then(|config| {
                log::info!(
                    "starting {}/{} container {container} (attempt {attempt})",
                    pod.metadata.namespace.as_deref().unwrap_or(""),
                    pod.metadata.name
                );
                self.runtime
                    .start_container(&config)
                    .map_err(|err| StartFailure {
                        reason: "RunContainerError".to_owned(),
                        message: err.to_string(),
                        failures: 0,
                        retry_at: SystemTime::UNIX_EPOCH,
                    })
            });
        match started {
            Ok(info) => {
                self.memory().failures.remove(&key);
                for (reason, verb) in [("Created", "Created"), ("Started", "Started")] {
                    let message = format!("{verb} container {container}");
                    self.pod_event(&pod.metadata, Some(container), Normal, reason, &message);
                }
                self.run_post_start(pod, container, &info.config.id);
                Ok(())
            }
            Err(mut failure) => {
                self.tell_start_failure(pod, container, &failure);
                // Failed starts back off like crash loops, so a pod whose image or
                // command is wrong does not spin.
                let mut memory = self.memory();
                failure.failures = memory.failures.get(&key).map_or(0, |f| f.failures) + 1;
                // What the pod waits for (a ConfigMap, a Secret, a host path) may appear
                // at any time: those starts are tried again on the next pass.
                let waits_for_config = matches!(
                    failure.reason.as_str(),
                    "CreateContainerConfigError" | MOUNT_FAILURE
                );
                failure.retry_at = if waits_for_config {
                    SystemTime::now()
                } else {
                    SystemTime::now() + self.backoff.after_failures(failure.failures)
                };
                log::warn!(
                    "pod {} container {container}: {}",
                    pod.metadata.name,
                    failure.message
                );
                let message = failure.message.clone();
                memory.failures.insert(key, failure);
                anyhow::bail!(message)
            }
        }
    }

    /// The kubelet's `Failed` events for a container that could not start: a failed
    /// pull in its own words, then the error's reason; any other error as `Error: ...`.
    fn tell_start_failure(&self, pod: &Pod, container: &str, failure: &StartFailure) {
        let tell = |message: &str| {
            self.pod_event(&pod.metadata, Some(container), Warning, "Failed", message);
        };
        if failure.reason == "ErrImagePull" {
            let mut first = failure.message.clone();
            if let Some(head) = first.get_mut(..1) {
                head.make_ascii_uppercase();
            }
            tell(&first);
            tell("Error: ErrImagePull");
        } else if failure.reason == MOUNT_FAILURE {
            let meta = &pod.metadata;
            self.pod_event(meta, None, Warning, "FailedMount", &failure.message);
        } else {
            tell(&format!("Error: {}", failure.message));
        }
    }

    /// Runs the container's `lifecycle.postStart.exec` hook, if any, as the kubelet does
    /// right after the start; a hook that fails (or runs past `POST_START_TIMEOUT`) gets
    /// the kubelet's `FailedPostStartHook` event and the container is killed, to be
    /// restarted as its pod's policy says.
    fn run_post_start(&self, pod: &Pod, container: &str, id: &str) {
        let hook = pod.spec.container(container).and_then(|c| {
            let lifecycle = c.lifecycle.as_ref()?;
            lifecycle.post_start.as_ref()?.exec.clone()
        });
        let Some(hook) = hook else {
            return;
        };
        let spec = crate::runtime::ExecSpec {
            args: hook.command,
            env: Vec::new(),
            cwd: None,
            timeout: Some(POST_START_TIMEOUT),
        };
        let outcome = self
            .runtime
            .exec_command(id, &spec)
            .map_err(|e| e.to_string())
            .and_then(|mut command| {
                command
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
                match command.status() {
                    Ok(status) if status.success() => Ok(()),
                    Ok(status) => Err(format!("command exited with {status}")),
                    Err(err) => Err(err.to_string()),
                }
            });
        let Err(why) = outcome else {
            log::info!("container {id}: postStart hook done");
            return;
        };
        log::warn!("container {id}: postStart hook failed ({why}); killing it");
        let message = format!("PostStartHook failed: {why}");
        self.pod_event(
            &pod.metadata,
            Some(container),
            Warning,
            "FailedPostStartHook",
            &message,
        );
        let grace =
            std::time::Duration::from_secs(pod.spec.termination_grace_period_seconds.max(0) as u64);
        if let Err(err) = self.runtime.stop_container(id, grace) {
            log::warn!("container {id}: cannot stop it after its failed postStart hook: {err}");
        }
    }

    /// Runs the container's `lifecycle.preStop.exec` hook, if any, before SIGTERM, within
    /// the grace period as Kubernetes does; returns what is left of the grace period.
    fn run_pre_stop(
        &self,
        pod: Option<&Pod>,
        id: &str,
        grace: std::time::Duration,
    ) -> std::time::Duration {
        let hook = pod.and_then(|pod| {
            let name = super::instance::container_of(id)?;
            let container = pod.spec.container(name)?;
            container
                .lifecycle
                .as_ref()?
                .pre_stop
                .as_ref()?
                .exec
                .clone()
        });
        let Some(hook) = hook else {
            return grace;
        };
        let started = std::time::Instant::now();
        let spec = crate::runtime::ExecSpec {
            args: hook.command,
            env: Vec::new(),
            cwd: None,
            timeout: Some(grace),
        };
        match self.runtime.exec_command(id, &spec) {
            Ok(mut command) => {
                command
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
                match command.status() {
                    Ok(status) if status.success() => {
                        log::info!("container {id}: preStop hook done")
                    }
                    Ok(status) => log::warn!("container {id}: preStop hook failed ({status})"),
                    Err(err) => log::warn!("container {id}: cannot run the preStop hook: {err}"),
                }
            }
            Err(err) => log::warn!("container {id}: cannot run the preStop hook: {err}"),
        }
        grace.saturating_sub(started.elapsed())
    }

    /// The last step of a pod's deletion: its logs and its object go.
    fn forget(&self, uid: &str, pod: Option<&Pod>) -> anyhow::Result<()> {
        self.memory()
            .failures
            .retain(|(pod_uid, _), _| pod_uid != uid);
        let Some(pod) = pod else {
            return Ok(());
        };
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let logs = self.logs_dir(&namespace, &pod.metadata.name, uid);
        if logs.exists() {
            std::fs::remove_dir_all(&logs)
                .with_context(|| format!("cannot remove {}", logs.display()))?;
        }
        let key = crate::store::Key {
            kind: "Pod".to_owned(),
            namespace,
            name: pod.metadata.name.clone(),
        };
        self.store().delete_all(&[key])?;
        log::info!("pod {} deleted", pod.metadata.name);
        Ok(())
    }

    pub fn start_failures(&self, pod_uid: &str) -> HashMap<String, StartFailure> {
        self.memory()
            .failures
            .iter()
            .filter(|((uid, _), _)| uid == pod_uid)
            .map(|((_, name), f)| (name.clone(), f.clone()))
            .collect()
    }
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod reconcile_tests;
