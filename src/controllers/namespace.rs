//! The Namespace controller: a namespace being deleted takes its objects with it.
//! Deployments, ReplicaSets, ReplicationControllers, DaemonSets, StatefulSets,
//! ConfigMaps, Secrets, Services with their endpoints, LimitRanges and ResourceQuotas go
//! at once, pods gracefully (their board stops them first), and the namespace itself
//! when no pod is left in it.

use super::{key_of, mark_pod, Change, World};
use crate::model::Namespace;
use crate::store::{Store, StoreError};

pub fn reconcile(namespace: &Namespace, world: &World) -> Vec<Change> {
    if namespace.metadata.deletion_timestamp.is_none() {
        return Vec::new();
    }
    let name = namespace.metadata.name.as_str();
    let inside = |meta: &crate::model::ObjectMeta| meta.namespace.as_deref() == Some(name);
    let mut changes: Vec<Change> = world
        .deployments
        .iter()
        .filter(|d| inside(&d.metadata))
        .map(|d| Change::Delete(key_of("Deployment", &d.metadata)))
        .collect();
    changes.extend(
        world
            .replica_sets
            .iter()
            .filter(|rs| inside(&rs.metadata))
            .map(|rs| Change::Delete(key_of("ReplicaSet", &rs.metadata))),
    );
    changes.extend(
        world
            .replication_controllers
            .iter()
            .filter(|rc| inside(&rc.metadata))
            .map(|rc| Change::Delete(key_of("ReplicationController", &rc.metadata))),
    );
    changes.extend(
        world
            .daemon_sets
            .iter()
            .filter(|ds| inside(&ds.metadata))
            .map(|ds| Change::Delete(key_of("DaemonSet", &ds.metadata))),
    );
    changes.extend(
        world
            .stateful_sets
            .iter()
            .filter(|set| inside(&set.metadata))
            .map(|set| Change::Delete(key_of("StatefulSet", &set.metadata))),
    );
    changes.extend(
        world
            .jobs
            .iter()
            .filter(|job| inside(&job.metadata))
            .map(|job| Change::Delete(key_of("Job", &job.metadata))),
    );
    changes.extend(
        world
            .cron_jobs
            .iter()
            .filter(|cj| inside(&cj.metadata))
            .map(|cj| Change::Delete(key_of("CronJob", &cj.metadata))),
    );
    changes.extend(
        world
            .limit_ranges
            .iter()
            .filter(|r| inside(&r.metadata))
            .map(|r| Change::Delete(key_of("LimitRange", &r.metadata))),
    );
    changes.extend(
        world
            .resource_quotas
            .iter()
            .filter(|q| inside(&q.metadata))
            .map(|q| Change::Delete(key_of("ResourceQuota", &q.metadata))),
    );
    changes.extend(
        world
            .config_keys
            .iter()
            .filter(|key| key.namespace == name)
            .map(|key| Change::Delete(key.clone())),
    );
    let pods: Vec<_> = world.pods.iter().filter(|p| inside(&p.metadata)).collect();
    if pods.is_empty() {
        changes.push(Change::Delete(key_of("Namespace", &namespace.metadata)));
    }
    changes.extend(pods.into_iter().filter_map(mark_pod));
    changes
}

/// `namespace` as the API shows it: `Terminating` while it is being deleted, else `Active`.
pub fn with_status(mut namespace: Namespace) -> Namespace {
    let phase = if namespace.metadata.deletion_timestamp.is_some() {
        "Terminating"
    } else {
        "Active"
    };
    namespace.status.phase = Some(phase.to_owned());
    namespace
}

/// Makes the `default` namespace and the system ones if they are missing, and the
/// built-in PriorityClasses (`system-cluster-critical`, `system-node-critical`), as the
/// Kubernetes API server does at start-up; both daemons call this before serving. With
/// all of them there it writes nothing. `kube-system` is made `privileged` for Pod
/// Security, as clusters exempt it (k3s' and RKE2's admission configurations do): it is
/// where node agents such as log shippers with hostPath volumes run.
pub fn ensure_default(store: &mut Store) -> Result<(), StoreError> {
    let mut missing = Vec::new();
    for name in std::iter::once("default").chain(crate::model::SYSTEM_NAMESPACES) {
        if store.get("Namespace", "", name)?.is_none() {
            let mut namespace = serde_json::json!({
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
            });
            if name == "kube-system" {
                namespace["metadata"]["labels"] =
                    serde_json::json!({crate::model::pod_security::ENFORCE_LABEL: "privileged"});
            }
            missing.push(namespace);
        }
    }
    for class in crate::model::priority_class::system_priority_classes() {
        if store
            .get("PriorityClass", "", &class.metadata.name)?
            .is_none()
        {
            missing.push(crate::model::Object::PriorityClass(class).to_json());
        }
    }
    if !missing.is_empty() {
        store.put_all(missing, None)?;
    }
    Ok(())
}
