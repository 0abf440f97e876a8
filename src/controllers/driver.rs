//! The controllers' I/O, shared by both scopes: a [`World`] read from a store, and
//! [`Change`]s written back to it. Each scope's loop reads, adds what it observes,
//! runs the controllers and writes.

use std::collections::BTreeSet;
use std::time::SystemTime;

use serde_json::Value;

use super::{Change, Note, World};
use crate::api::events::{EventLog, Involved};
use crate::api::zoneinfo::ZoneInfo;
use crate::model::EventType;
use crate::model::{Object, Pod, PodStatus};
use crate::store::{Key, Record, Store};
use crate::support::random;

/// Reads the objects the controllers act on (rows that do not parse are left out).
pub fn load(store: &Store, now: SystemTime) -> anyhow::Result<World> {
    let mut world = World {
        now: humantime::format_rfc3339_seconds(now).to_string(),
        now_secs: unix_seconds(now),
        ..World::default()
    };
    for kind in [
        "Namespace",
        "Deployment",
        "ReplicaSet",
        "ReplicationController",
        "DaemonSet",
        "StatefulSet",
        "ControllerRevision",
        "Service",
        "Endpoints",
        "LimitRange",
        "ResourceQuota",
        "PersistentVolumeClaim",
        "PriorityClass",
    ] {
        for object in store.list(kind, None)?.into_iter().filter_map(readable) {
            match object {
                Object::Namespace(ns) => world.namespaces.push(ns),
                Object::Deployment(deploy) => world.deployments.push(deploy),
                Object::ReplicaSet(rs) => world.replica_sets.push(rs),
                Object::ReplicationController(rc) => world.replication_controllers.push(rc),
                Object::DaemonSet(ds) => world.daemon_sets.push(ds),
                Object::StatefulSet(set) => world.stateful_sets.push(set),
                Object::ControllerRevision(cr) => world.controller_revisions.push(cr),
                Object::Service(service) => world.services.push(service),
                Object::Endpoints(endpoints) => world.endpoints.push(endpoints),
                Object::LimitRange(range) => world.limit_ranges.push(range),
                Object::ResourceQuota(quota) => world.resource_quotas.push(quota),
                Object::PriorityClass(class) => world.priority_classes.push(class),
                Object::PersistentVolumeClaim(claim) => {
                    world
                        .claims
                        .insert(super::key_of("PersistentVolumeClaim", &claim.metadata));
                    if claim.metadata.deletion_timestamp.is_some() {
                        world.dying_claims.push(claim);
                    }
                }
                _ => {}
            }
        }
    }
    world.service_accounts = store
        .list("ServiceAccount", None)?
        .iter()
        .map(Record::key)
        .collect();
    world.jobs = jobs(store.list("Job", None)?);
    world.cron_jobs = cron_jobs(store.list("CronJob", None)?);
    world.pods = pods(store.list("Pod", None)?);
    let dying: Vec<String> = world
        .namespaces
        .iter()
        .filter(|ns| ns.metadata.deletion_timestamp.is_some())
        .map(|ns| ns.metadata.name.clone())
        .collect();
    for namespace in &dying {
        for kind in [
            "ConfigMap",
            "Secret",
            "PersistentVolumeClaim",
            "Service",
            "Endpoints",
            "EndpointSlice",
            "ServiceAccount",
            "Ingress",
            "NetworkPolicy",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
        ] {
            for record in store.list(kind, Some(namespace))? {
                world.config_keys.push(record.key());
            }
        }
    }
    Ok(world)
}

/// Adds the time zones the world's CronJobs name, loaded from `zones` (the scope's
/// zoneinfo directory): the controllers are pure and read no files.
pub fn add_time_zones(world: &mut World, zones: &ZoneInfo) {
    let names = world
        .cron_jobs
        .iter()
        .filter_map(|cron_job| cron_job.spec.time_zone.as_deref());
    world.time_zones = zones.load_all(names);
}

/// A world for showing Deployments and ReplicaSets with their status: their
/// ReplicaSets and pods from stored records; the scope adds what it observes.
pub fn view_world(replica_sets: Vec<Record>, pods: Vec<Record>, now: SystemTime) -> World {
    World {
        replica_sets: replica_sets
            .into_iter()
            .filter_map(readable)
            .filter_map(|object| match object {
                Object::ReplicaSet(rs) => Some(rs),
                _ => None,
            })
            .collect(),
        pods: self::pods(pods),
        now: humantime::format_rfc3339_seconds(now).to_string(),
        now_secs: unix_seconds(now),
        ..World::default()
    }
}

/// Whole seconds since the Unix epoch (0 for a clock set before it).
pub fn unix_seconds(time: SystemTime) -> i64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Pods from stored records, each with the status stored beside it (the coordinator
/// keeps what agents report; the agent stores none). Unreadable rows are logged and
/// left out.
pub fn pods(records: Vec<Record>) -> Vec<Pod> {
    with_stored_status(records, |object, status| match object {
        Object::Pod(mut pod) => {
            if let Some(status) = status {
                pod.status = serde_json::from_value::<PodStatus>(status).unwrap_or_default();
            }
            Some(pod)
        }
        _ => None,
    })
}

/// Jobs from stored records, each with its stored status (the Job controller's record).
pub fn jobs(records: Vec<Record>) -> Vec<crate::model::Job> {
    with_stored_status(records, |object, status| match object {
        Object::Job(mut job) => {
            if let Some(status) = status {
                job.status = serde_json::from_value(status).unwrap_or_default();
            }
            Some(job)
        }
        _ => None,
    })
}

/// CronJobs from stored records, each with its stored status (last schedule time).
pub fn cron_jobs(records: Vec<Record>) -> Vec<crate::model::CronJob> {
    with_stored_status(records, |object, status| match object {
        Object::CronJob(mut cron_job) => {
            if let Some(status) = status {
                cron_job.status = serde_json::from_value(status).unwrap_or_default();
            }
            Some(*cron_job)
        }
        _ => None,
    })
}

/// The readable objects of `records`, each given to `build` with the status stored
/// beside it.
fn with_stored_status<T>(
    records: Vec<Record>,
    build: impl Fn(Object, Option<Value>) -> Option<T>,
) -> Vec<T> {
    records
        .into_iter()
        .filter_map(|mut record| {
            let status = record.status.take();
            build(readable(record)?, status)
        })
        .collect()
}

/// The object of `record`, if it parses as what its kind says; otherwise it is logged
/// and left out: one bad row must not stop every controller.
fn readable(record: Record) -> Option<Object> {
    let what = format!("{} {}/{}", record.kind, record.namespace, record.name);
    let kind = record.kind;
    match Object::from_json(record.object) {
        Ok(object) if object.kind().as_str() == kind => Some(object),
        Ok(_) | Err(_) => {
            log::error!("skipping unreadable {what} in the store");
            None
        }
    }
}

/// Writes `changes`: deletions first, then marks and new pods in one transaction; then
/// records the controllers' events in `events` (memory only), with `SuccessfulCreate`
/// for each pod made (its name is chosen here). Returns whether anything was written.
pub fn write(
    store: &mut Store,
    changes: Vec<Change>,
    now: &str,
    events: &EventLog,
) -> anyhow::Result<bool> {
    let mut deleted: Vec<Key> = Vec::new();
    let mut marked: BTreeSet<Key> = BTreeSet::new();
    let mut puts: Vec<Value> = Vec::new();
    let mut notes: Vec<Note> = Vec::new();
    let mut statuses: Vec<(Key, Value)> = Vec::new();
    for change in changes {
        match change {
            Change::Event(note) => notes.push(*note),
            Change::Delete(key) => deleted.push(key),
            Change::MarkDeleted(key) => {
                marked.insert(key);
            }
            Change::CreatePod {
                generate_name,
                mut pod,
            } => {
                if !generate_name.is_empty() {
                    pod.metadata.name =
                        format!("{generate_name}{}", name_suffix(&random::bytes()?));
                }
                notes.extend(Note::created(&pod));
                puts.push(Object::Pod(*pod).to_json());
            }
            Change::Put(object) => puts.push(object.to_json()),
            Change::Status { key, status } => statuses.push((key, status)),
        }
    }
    for key in marked.iter().filter(|key| !deleted.contains(key)) {
        let Some(record) = store.get(&key.kind, &key.namespace, &key.name)? else {
            continue;
        };
        let mut object = record.object;
        if object.pointer("/metadata/deletionTimestamp").is_none() {
            object["metadata"]["deletionTimestamp"] = Value::from(now);
            puts.push(object);
        }
    }
    let wrote = !deleted.is_empty() || !puts.is_empty();
    if !deleted.is_empty() {
        store.delete_all(&deleted)?;
    }
    if !puts.is_empty() {
        store.put_all(puts, None)?;
    }
    let mut wrote = wrote;
    for (key, status) in statuses {
        wrote |= store.set_status(&key.kind, &key.namespace, &key.name, &status)?;
    }
    for note in notes {
        let involved = Involved::new(&note.kind, &note.namespace, &note.name, &note.uid);
        let type_ = if note.warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        events.record(involved, type_, note.reason, &note.message, note.component);
    }
    Ok(wrote)
}

/// Five characters from Kubernetes' alphabet for generated names (no vowels, so no words).
pub fn name_suffix(random: &[u8; 5]) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    random
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}
