//! Controllers that change desired state: Deployments make and remove their pods,
//! garbage collection deletes pods whose owner is gone, and a namespace being deleted
//! takes its objects with it. Each writes to the store only when something must change.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;

use super::deployments::{name_suffix, new_pod, plan_deployment};
use super::instance::Instance;
use super::reconcile::stored_pods;
use super::Agent;
use crate::api::fleet::FLEET_UID_ANNOTATION;
use crate::model::{pod_template_hash, Deployment, Namespace, Object, Pod};
use crate::store::Key;

pub fn run(
    agent: &Arc<Agent>,
    observed: &BTreeMap<String, Vec<Instance>>,
    now: SystemTime,
) -> anyhow::Result<()> {
    let now_text = humantime::format_rfc3339_seconds(now).to_string();
    let namespaces: Vec<Namespace> = stored(agent, "Namespace", |o| match o {
        Object::Namespace(ns) => Some(ns),
        Object::Pod(_) | Object::Deployment(_) | Object::ConfigMap(_) | Object::Secret(_) => None,
    })?;
    let deployments: Vec<Deployment> = stored(agent, "Deployment", |o| match o {
        Object::Deployment(d) => Some(d),
        Object::Pod(_) | Object::Namespace(_) | Object::ConfigMap(_) | Object::Secret(_) => None,
    })?;
    let pods = stored_pods(agent)?;

    let mut marked: Vec<Value> = Vec::new();
    let mut created: Vec<Value> = Vec::new();
    let mut removed: Vec<Key> = Vec::new();
    let mark = |pod: &Pod, marked: &mut Vec<Value>| {
        if pod.metadata.deletion_timestamp.is_none() {
            let mut pod = pod.clone();
            pod.metadata.deletion_timestamp = Some(now_text.clone());
            marked.push(Object::Pod(pod).to_json());
        }
    };

    // A namespace being deleted: its deployments, config maps and secrets go at once,
    // its pods gracefully, and the namespace itself when no pod is left.
    let dying: HashSet<&str> = namespaces
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_some())
        .map(|n| n.metadata.name.as_str())
        .collect();
    for name in &dying {
        let in_ns = |ns: &Option<String>| ns.as_deref() == Some(*name);
        for deploy in deployments.iter().filter(|d| in_ns(&d.metadata.namespace)) {
            removed.push(key(
                "Deployment",
                deploy.metadata.namespace.as_deref(),
                &deploy.metadata.name,
            ));
        }
        for kind in ["ConfigMap", "Secret"] {
            for record in agent.store().list(kind, Some(name))? {
                removed.push(key(kind, Some(name), &record.name));
            }
        }
        let mut any_pod = false;
        for pod in pods.iter().filter(|p| in_ns(&p.metadata.namespace)) {
            any_pod = true;
            mark(pod, &mut marked);
        }
        if !any_pod {
            removed.push(key("Namespace", None, name));
        }
    }

    let live_owners: HashSet<&str> = deployments
        .iter()
        .filter(|d| !dying.contains(d.metadata.namespace.as_deref().unwrap_or("")))
        .map(|d| d.metadata.uid.as_str())
        .collect();
    for deploy in deployments
        .iter()
        .filter(|d| live_owners.contains(d.metadata.uid.as_str()))
    {
        let hash = pod_template_hash(&deploy.spec.template);
        let owned = agent.owned_pods(deploy, &pods, observed);
        let plan = plan_deployment(deploy, &hash, &owned);
        for name in &plan.delete {
            if let Some(pod) = pods.iter().find(|p| {
                &p.metadata.name == name && p.metadata.namespace == deploy.metadata.namespace
            }) {
                mark(pod, &mut marked);
            }
        }
        for _ in 0..plan.create {
            let pod = new_pod(
                deploy,
                &hash,
                &name_suffix(&crate::support::random::bytes()?),
            );
            created.push(Object::Pod(pod).to_json());
        }
        if plan.create > 0 || !plan.delete.is_empty() {
            log::info!(
                "deployment {}: creating {} pod(s), deleting {}",
                deploy.metadata.name,
                plan.create,
                plan.delete.len()
            );
        }
    }

    // Garbage collection: pods controlled by a Deployment that no longer exists. Pods
    // from a coordinator are owned by Deployments that live only there; the coordinator
    // removes them from this node's assignments when their owner goes.
    for pod in &pods {
        if pod.metadata.annotations.contains_key(FLEET_UID_ANNOTATION) {
            continue;
        }
        let orphaned = pod.metadata.owner_references.iter().any(|o| {
            o.controller == Some(true)
                && o.kind == "Deployment"
                && !live_owners.contains(o.uid.as_str())
        });
        if orphaned {
            mark(pod, &mut marked);
        }
    }

    let mut store = agent.store();
    if !removed.is_empty() {
        store.delete_all(&removed)?;
    }
    marked.extend(created);
    if !marked.is_empty() {
        store.put_all(marked, None)?;
        drop(store);
        agent.wake();
    }
    Ok(())
}

fn key(kind: &str, namespace: Option<&str>, name: &str) -> Key {
    Key {
        kind: kind.to_owned(),
        namespace: namespace.unwrap_or("").to_owned(),
        name: name.to_owned(),
    }
}

/// Objects of one kind from the store; rows that do not parse are logged and skipped.
fn stored<T>(agent: &Agent, kind: &str, pick: fn(Object) -> Option<T>) -> anyhow::Result<Vec<T>> {
    let records = agent.store().list(kind, None)?;
    Ok(records
        .into_iter()
        .filter_map(|record| {
            let name = format!("{kind} {}/{}", record.namespace, record.name);
            match Object::from_json(record.object).ok().and_then(pick) {
                Some(object) => Some(object),
                None => {
                    log::error!("skipping unreadable {name} in the store");
                    None
                }
            }
        })
        .collect())
}
