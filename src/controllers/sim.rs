//! A store and a kubelet in memory for the controller tests: changes are stored as the
//! real store stores them, and pods are run, so whole rollouts can be stepped through.

use super::deployment_status::rfc3339;
use super::*;

pub const START: i64 = 1_764_669_600;

/// A store and a kubelet in memory: stores what the controllers write as the real store
/// does (uids, creation times, generated names) and runs pods.
pub struct Sim {
    pub world: World,
    /// The controllers' events, in order.
    pub events: Vec<Note>,
    next_uid: u32,
}

impl Sim {
    pub fn new(deploy: Deployment) -> Sim {
        let mut sim = Sim::empty();
        sim.world.deployments.push(deploy);
        sim
    }

    pub fn empty() -> Sim {
        let mut sim = Sim {
            world: World::default(),
            events: Vec::new(),
            next_uid: 0,
        };
        sim.tick(0);
        sim
    }

    pub fn deploy(&mut self) -> &mut Deployment {
        &mut self.world.deployments[0]
    }

    pub fn tick(&mut self, seconds: i64) {
        let now = if self.world.now_secs == 0 {
            START
        } else {
            self.world.now_secs
        } + seconds;
        self.world.now_secs = now;
        self.world.now = rfc3339(now).unwrap();
    }

    fn uid(&mut self) -> String {
        self.next_uid += 1;
        format!("uid-{}", self.next_uid)
    }

    /// One controller pass, stored.
    pub fn pass(&mut self) -> Vec<Change> {
        let mut scratch = self.world.clone();
        let changes = reconcile_all(&mut scratch);
        for change in changes.clone() {
            self.store(change);
        }
        changes
    }

    fn store(&mut self, change: Change) {
        let now = self.world.now.clone();
        let same = |key: &Key, meta: &crate::model::ObjectMeta| {
            key.name == meta.name && key.namespace == meta.namespace_or_empty()
        };
        match change {
            Change::Event(note) => self.events.push(*note),
            Change::Status { key, status } => {
                for job in self
                    .world
                    .jobs
                    .iter_mut()
                    .filter(|j| same(&key, &j.metadata))
                {
                    job.status = serde_json::from_value(status.clone()).unwrap_or_default();
                }
                for cj in self
                    .world
                    .cron_jobs
                    .iter_mut()
                    .filter(|j| same(&key, &j.metadata))
                {
                    cj.status = serde_json::from_value(status.clone()).unwrap_or_default();
                }
            }
            Change::Delete(key) => {
                self.world
                    .pods
                    .retain(|p| !(key.kind == "Pod" && same(&key, &p.metadata)));
                self.world
                    .replica_sets
                    .retain(|rs| !(key.kind == "ReplicaSet" && same(&key, &rs.metadata)));
                self.world.replication_controllers.retain(|rc| {
                    !(key.kind == "ReplicationController" && same(&key, &rc.metadata))
                });
                self.world
                    .controller_revisions
                    .retain(|cr| !(key.kind == "ControllerRevision" && same(&key, &cr.metadata)));
            }
            Change::MarkDeleted(key) => {
                for pod in self
                    .world
                    .pods
                    .iter_mut()
                    .filter(|p| same(&key, &p.metadata))
                {
                    pod.metadata.deletion_timestamp.get_or_insert(now.clone());
                }
            }
            Change::CreatePod { generate_name, pod } => {
                let mut pod = *pod;
                pod.metadata.uid = self.uid();
                if !generate_name.is_empty() {
                    pod.metadata.name = format!("{generate_name}{}", pod.metadata.uid);
                }
                pod.metadata.creation_timestamp = Some(now);
                self.world.pods.push(pod);
            }
            Change::Put(object) => match *object {
                Object::ReplicaSet(mut rs) => {
                    let existing = self
                        .world
                        .replica_sets
                        .iter_mut()
                        .find(|old| old.metadata.name == rs.metadata.name);
                    match existing {
                        Some(old) => {
                            rs.metadata.uid = old.metadata.uid.clone();
                            rs.metadata.creation_timestamp =
                                old.metadata.creation_timestamp.clone();
                            *old = rs;
                        }
                        None => {
                            rs.metadata.uid = self.uid();
                            rs.metadata.creation_timestamp = Some(now);
                            self.world.replica_sets.push(rs);
                        }
                    }
                }
                Object::Deployment(deploy) => self.world.deployments[0] = deploy,
                Object::ControllerRevision(mut cr) => {
                    let revisions = &mut self.world.controller_revisions;
                    match revisions
                        .iter_mut()
                        .find(|old| old.metadata.name == cr.metadata.name)
                    {
                        Some(old) => {
                            cr.metadata.uid = old.metadata.uid.clone();
                            *old = cr;
                        }
                        None => {
                            cr.metadata.uid = format!("uid-cr-{}", revisions.len());
                            revisions.push(cr);
                        }
                    }
                }
                Object::PersistentVolumeClaim(claim) => {
                    let key = key_of("PersistentVolumeClaim", &claim.metadata);
                    assert!(self.world.claims.insert(key), "claim made twice");
                }
                other => panic!("unexpected put of {other:?}"),
            },
        }
    }

    /// The kubelet: terminating pods go, and pods `healthy` says so about are ready.
    pub fn kubelet(&mut self, healthy: impl Fn(&Pod) -> bool) {
        self.world
            .pods
            .retain(|p| p.metadata.deletion_timestamp.is_none());
        self.world.observe_readiness(&healthy);
        let now = self.world.now_secs;
        let ready = self.world.ready_pods.clone();
        self.world.ready_since.retain(|uid, _| ready.contains(uid));
        for uid in ready {
            self.world.ready_since.entry(uid).or_insert(now);
        }
    }

    pub fn pods(&self) -> impl Iterator<Item = &Pod> {
        self.world
            .pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
    }

    pub fn serving(&self) -> usize {
        self.pods().filter(|p| self.world.is_ready(p)).count()
    }

    pub fn pods_of_template(&self, version: &str) -> usize {
        self.pods()
            .filter(|p| p.metadata.labels.get("version").map(String::as_str) == Some(version))
            .count()
    }
}
