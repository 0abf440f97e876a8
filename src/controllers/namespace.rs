//! The Namespace controller: a namespace being deleted takes its objects with it.
//! Deployments, ConfigMaps and Secrets go at once, pods gracefully (their board stops
//! them first), and the namespace itself when no pod is left in it.

use super::{key_of, mark_pod, Change, World};
use crate::model::Namespace;

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
