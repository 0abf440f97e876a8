//! Status reports to the coordinator: the derived status of fleet pods whenever it
//! changes, `gone` for fleet pods that left the board, and the Node object whenever the
//! machine's facts change.
//!
//! Only deltas travel: the reporter remembers (in memory) what the coordinator last
//! acknowledged and sends nothing while nothing changes. After an agent restart it knows
//! nothing, so the first report carries every fleet pod, which is also what a coordinator
//! that lost track needs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::node::{node_object, read_facts};
use super::reconnect_retries;
use crate::agent::reconcile::stored_pods;
use crate::agent::Agent;
use crate::api::fleet::{PodStatusAck, PodStatusReport, ReportedPod, FLEET_UID_ANNOTATION};
use crate::api::{percent_encode, ApiError, Client};
use crate::model::{BoardProfile, Pod};

/// How often the derived statuses are compared with what was reported.
const REPORT_PERIOD: Duration = Duration::from_secs(1);
/// How often the machine's facts are read again for the Node object.
const NODE_CHECK_PERIOD: Duration = Duration::from_secs(60);

/// A fleet pod as it is on the board now.
#[derive(Clone, Debug, PartialEq)]
pub struct CurrentPod {
    pub namespace: String,
    pub name: String,
    /// The derived status, as compared between rounds.
    pub status: Value,
}

/// What the coordinator last acknowledged about one pod (by its fleet uid).
#[derive(Clone, Debug, PartialEq)]
struct Sent {
    namespace: String,
    name: String,
    status: Value,
    /// The coordinator no longer binds this pod here: say nothing more about it.
    stale: bool,
}

/// Which pods to report this round, by fleet uid.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Delta {
    pub changed: Vec<String>,
    pub gone: Vec<String>,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.gone.is_empty()
    }
}

/// The reporter's memory of what the coordinator knows.
#[derive(Debug, Default)]
pub struct Tracker {
    sent: HashMap<String, Sent>,
}

impl Tracker {
    /// Pods whose status differs from the last acknowledged one, and pods acknowledged
    /// before that are no longer on the board. Stale pods that left are forgotten here.
    pub fn delta(&mut self, current: &BTreeMap<String, CurrentPod>) -> Delta {
        self.sent
            .retain(|uid, sent| !sent.stale || current.contains_key(uid));
        let changed = current
            .iter()
            .filter(|(uid, pod)| match self.sent.get(*uid) {
                None => true,
                Some(sent) => !sent.stale && sent.status != pod.status,
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        let mut gone: Vec<String> = self
            .sent
            .keys()
            .filter(|uid| !current.contains_key(*uid))
            .cloned()
            .collect();
        crate::support::sort::sort(&mut gone);
        Delta { changed, gone }
    }

    /// Remembers a report the coordinator accepted, and which of its pods it called stale.
    pub fn record(
        &mut self,
        current: &BTreeMap<String, CurrentPod>,
        delta: &Delta,
        ack: &PodStatusAck,
    ) {
        let stale: HashSet<&str> = ack.stale.iter().map(String::as_str).collect();
        for uid in &delta.gone {
            self.sent.remove(uid);
        }
        for uid in &delta.changed {
            if let Some(pod) = current.get(uid) {
                let key = format!("{}/{}", pod.namespace, pod.name);
                self.sent.insert(
                    uid.clone(),
                    Sent {
                        namespace: pod.namespace.clone(),
                        name: pod.name.clone(),
                        status: pod.status.clone(),
                        stale: stale.contains(key.as_str()),
                    },
                );
            }
        }
    }

    /// The report for a delta; `full_status` gives the status to send for a changed pod
    /// (the compared one leaves out what is costly to compute every second).
    pub fn report(
        &self,
        current: &BTreeMap<String, CurrentPod>,
        delta: &Delta,
        mut full_status: impl FnMut(&str) -> Value,
    ) -> PodStatusReport {
        let mut pods = Vec::new();
        for uid in &delta.changed {
            if let Some(pod) = current.get(uid) {
                pods.push(ReportedPod {
                    namespace: pod.namespace.clone(),
                    name: pod.name.clone(),
                    fleet_uid: uid.clone(),
                    status: full_status(uid),
                    gone: false,
                });
            }
        }
        for uid in &delta.gone {
            if let Some(sent) = self.sent.get(uid) {
                pods.push(ReportedPod {
                    namespace: sent.namespace.clone(),
                    name: sent.name.clone(),
                    fleet_uid: uid.clone(),
                    status: Value::Null,
                    gone: true,
                });
            }
        }
        PodStatusReport {
            pods,
            cron_jobs: Vec::new(),
        }
    }
}

/// The fleet pods of the store with their instances, by fleet uid.
struct Snapshot {
    current: BTreeMap<String, CurrentPod>,
    pods: HashMap<String, (Pod, Vec<crate::agent::instance::Instance>)>,
}

fn snapshot(agent: &Agent, tracker_empty: bool) -> anyhow::Result<Snapshot> {
    let fleet_pods: Vec<(String, Pod)> = stored_pods(agent)?
        .into_iter()
        .filter_map(|pod| {
            let uid = pod.metadata.annotations.get(FLEET_UID_ANNOTATION)?.clone();
            Some((uid, pod))
        })
        .collect();
    let mut snapshot = Snapshot {
        current: BTreeMap::new(),
        pods: HashMap::new(),
    };
    if fleet_pods.is_empty() && tracker_empty {
        // Nothing to report and nothing to call gone: skip asking the runtime.
        return Ok(snapshot);
    }
    let observed = agent.observe()?;
    let pods: Vec<Pod> = fleet_pods.iter().map(|(_, pod)| pod.clone()).collect();
    if agent.readiness_unknown(&pods, &observed) {
        anyhow::bail!("readiness is not known yet after the agent's start");
    }
    for (uid, pod) in fleet_pods {
        let instances = observed.get(&pod.metadata.uid).cloned().unwrap_or_default();
        let status = serde_json::to_value(agent.pod_status(&pod, &instances, false))?;
        snapshot.current.insert(
            uid.clone(),
            CurrentPod {
                namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                name: pod.metadata.name.clone(),
                status,
            },
        );
        snapshot.pods.insert(uid, (pod, instances));
    }
    Ok(snapshot)
}

/// Sends this round's pod delta, if any.
fn report_pods(
    agent: &Agent,
    client: &Client,
    node: &str,
    tracker: &mut Tracker,
) -> Result<(), ApiError> {
    let snapshot = match snapshot(agent, tracker.sent.is_empty()) {
        Ok(snapshot) => snapshot,
        Err(err) => {
            // A local problem, not the coordinator's: try again next round.
            log::debug!("cannot read pod statuses: {err:#}");
            return Ok(());
        }
    };
    let delta = tracker.delta(&snapshot.current);
    if delta.is_empty() {
        return Ok(());
    }
    let report = tracker.report(&snapshot.current, &delta, |uid| {
        snapshot
            .pods
            .get(uid)
            .and_then(|(pod, instances)| {
                agent
                    .pod_view(pod.clone(), instances)
                    .get("status")
                    .cloned()
            })
            .unwrap_or_else(|| Value::Object(Default::default()))
    });
    let body = serde_json::to_value(&report).map_err(|err| ApiError::Protocol {
        reason: format!("cannot encode the pod status report: {err}"),
    })?;
    let path = format!(
        "/apis/berth.dev/v1/nodes/{}/podstatuses",
        percent_encode(node)
    );
    let (_, answer) = client.request("PUT", &path, Some(&body))?;
    // An empty or unexpected answer still means the report arrived.
    let ack: PodStatusAck = serde_json::from_value(answer).unwrap_or_default();
    if !ack.stale.is_empty() {
        log::debug!("coordinator calls stale: {:?}", ack.stale);
    }
    log::debug!(
        "reported {} pod status(es), {} gone",
        delta.changed.len(),
        delta.gone.len()
    );
    tracker.record(&snapshot.current, &delta, &ack);
    Ok(())
}

/// Reports pod statuses and the Node object for ever.
pub fn run(agent: &Arc<Agent>, client: &Client, node: &str, profile: Option<&BoardProfile>) {
    let mut tracker = Tracker::default();
    let mut sent_node: Option<Value> = None;
    let mut node_checked: Option<Instant> = None;
    let mut delay = reconnect_retries();
    let node_path = format!("/api/v1/nodes/{}/status", percent_encode(node));
    loop {
        let mut result = Ok(());
        if node_checked.is_none_or(|at| at.elapsed() >= NODE_CHECK_PERIOD) {
            let node_ip = agent.node_address();
            let mut facts = read_facts(node, node_ip);
            facts.extended_resources = agent.options.extended_resources.clone();
            let object = node_object(&facts, profile);
            if sent_node.as_ref() != Some(&object) {
                result = client.request("PUT", &node_path, Some(&object)).map(|_| {
                    log::info!("node status of {node} sent to the coordinator");
                    sent_node = Some(object);
                });
            }
            if result.is_ok() {
                node_checked = Some(Instant::now());
            }
        }
        if result.is_ok() {
            result = report_pods(agent, client, node, &mut tracker);
        }
        let wait = match result {
            Ok(()) => {
                delay.reset();
                REPORT_PERIOD
            }
            Err(err) => {
                // Reachability is the long poll's to log; a refusal of the report itself
                // is logged here, once per run of failures.
                if delay.is_fresh() && matches!(err, ApiError::Status { .. }) {
                    log::warn!("cannot report to the coordinator, will retry: {err}");
                } else {
                    log::debug!("cannot report to the coordinator: {err}");
                }
                delay.after_failure()
            }
        };
        std::thread::sleep(wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, phase: &str) -> CurrentPod {
        CurrentPod {
            namespace: "web".into(),
            name: name.into(),
            status: json!({"phase": phase}),
        }
    }

    fn ack(stale: &[&str]) -> PodStatusAck {
        PodStatusAck {
            accepted: 0,
            stale: stale.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn only_changes_are_reported() {
        let mut tracker = Tracker::default();
        let mut current: BTreeMap<String, CurrentPod> = [
            ("u1".into(), pod("a", "Pending")),
            ("u2".into(), pod("b", "Running")),
        ]
        .into();
        let delta = tracker.delta(&current);
        assert_eq!(delta.changed, ["u1", "u2"]);
        assert!(delta.gone.is_empty());
        tracker.record(&current, &delta, &ack(&[]));
        assert!(tracker.delta(&current).is_empty(), "nothing changed");

        current.insert("u1".into(), pod("a", "Running"));
        let delta = tracker.delta(&current);
        assert_eq!(delta.changed, ["u1"]);
        // Not recorded (the report failed): the same delta comes again.
        assert_eq!(tracker.delta(&current), delta);
        tracker.record(&current, &delta, &ack(&[]));
        assert!(tracker.delta(&current).is_empty());
    }

    #[test]
    fn pods_that_leave_are_reported_gone_once() {
        let mut tracker = Tracker::default();
        let mut current: BTreeMap<String, CurrentPod> = [("u1".into(), pod("a", "Running"))].into();
        let delta = tracker.delta(&current);
        tracker.record(&current, &delta, &ack(&[]));
        current.clear();
        let delta = tracker.delta(&current);
        assert_eq!(delta.gone, ["u1"]);
        let report = tracker.report(&current, &delta, |_| Value::Null);
        assert_eq!(report.pods.len(), 1);
        assert!(report.pods[0].gone);
        assert_eq!(
            (
                report.pods[0].namespace.as_str(),
                report.pods[0].name.as_str()
            ),
            ("web", "a")
        );
        tracker.record(&current, &delta, &ack(&[]));
        assert!(tracker.delta(&current).is_empty());
    }

    #[test]
    fn a_pod_never_reported_is_not_reported_gone() {
        let mut tracker = Tracker::default();
        assert!(tracker.delta(&BTreeMap::new()).is_empty());
    }

    #[test]
    fn stale_pods_are_not_reported_again() {
        let mut tracker = Tracker::default();
        let mut current: BTreeMap<String, CurrentPod> = [("u1".into(), pod("a", "Running"))].into();
        let delta = tracker.delta(&current);
        tracker.record(&current, &delta, &ack(&["web/a"]));
        current.insert("u1".into(), pod("a", "Failed"));
        assert!(tracker.delta(&current).is_empty(), "stale: no more status");
        current.clear();
        assert!(tracker.delta(&current).is_empty(), "stale: no gone either");
        assert!(tracker.sent.is_empty(), "forgotten once it left");
    }

    #[test]
    fn reports_carry_the_full_status_of_changed_pods() {
        let tracker = Tracker::default();
        let current: BTreeMap<String, CurrentPod> = [("u1".into(), pod("a", "Running"))].into();
        let delta = Delta {
            changed: vec!["u1".into()],
            gone: vec![],
        };
        let report = tracker.report(&current, &delta, |uid| json!({"full": uid}));
        assert_eq!(report.pods[0].fleet_uid, "u1");
        assert_eq!(report.pods[0].status, json!({"full": "u1"}));
        assert!(!report.pods[0].gone);
    }
}
