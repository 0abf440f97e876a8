//! LimitRanges and ResourceQuotas on a store: what apply admits
//! ([`admit_limits_and_quotas`]) and what a quota shows ([`quotas_with_usage`]). The
//! rules themselves are [`crate::model::admission`]'s; here the namespace's policies and
//! what its objects use are read from the store.
//!
//! Whether a pod has ended is not always stored: an agent derives it from its
//! containers. So the callers say how to tell ([`EndedPods`]); by default the stored
//! status decides (a coordinator stores what its agents report).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::Value;

use super::refusal::{forbidden, internal, Refusal};
use crate::model::admission::{admit_object, admit_pod, Policy};
use crate::model::resource_quota::{
    object_usage, object_usage_of, phase_ended, pod_usage, quota_unit, Usage, COMPUTE_RESOURCES,
    COUNTED_KINDS, SERVICE_COUNTS,
};
use crate::model::{admission, Kind, LimitRange, Object, Pod, PodStatus, ResourceQuota};
use crate::store::{Record, Store};

/// Which of the pods given have ended (`Succeeded` or `Failed`), by uid.
pub type EndedPods<'a> = &'a dyn Fn(&[Pod]) -> HashSet<String>;

/// [`EndedPods`] as the pods' stored status says.
pub fn ended_by_stored_status(pods: &[Pod]) -> HashSet<String> {
    pods.iter()
        .filter(|pod| phase_ended(&pod.status.phase))
        .map(|pod| pod.metadata.uid.clone())
        .collect()
}

/// A stored pod with the status stored beside it, if any.
fn pod_of(record: Record) -> Option<Pod> {
    let status = record.status;
    let Ok(Object::Pod(mut pod)) = Object::from_json(record.object) else {
        return None;
    };
    if let Some(status) = status {
        pod.status = serde_json::from_value::<PodStatus>(status).unwrap_or_default();
    }
    Some(pod)
}

/// The kinds whose objects count toward `resource`: pods for the compute resources and
/// `pods`, the counted kind for an object count.
fn counted_kind(resource: &str) -> Option<Kind> {
    if resource == "pods" || COMPUTE_RESOURCES.iter().any(|(name, _)| *name == resource) {
        return Some(Kind::Pod);
    }
    if SERVICE_COUNTS.contains(&resource) {
        return Some(Kind::Service);
    }
    COUNTED_KINDS
        .into_iter()
        .find(|kind| object_usage(*kind).0.contains_key(resource))
}

/// What the stored objects of `kind` in `namespace` use.
fn stored_usage(
    store: &Store,
    namespace: &str,
    kind: Kind,
    ended: EndedPods,
) -> Result<Usage, Refusal> {
    let records = store.list(kind.as_str(), Some(namespace))?;
    let mut usage = Usage::default();
    if kind == Kind::Pod {
        let pods: Vec<Pod> = records.into_iter().filter_map(pod_of).collect();
        let over = ended(&pods);
        for pod in &pods {
            usage.add(&pod_usage(pod, over.contains(&pod.metadata.uid)));
        }
    } else {
        for record in records {
            let object = Object::from_json(record.object).map_err(internal)?;
            usage.add(&object_usage_of(&object));
        }
    }
    Ok(usage)
}

/// Shown ResourceQuotas (`items`) with their status: what their namespaces use.
pub fn quotas_with_usage(
    store: &Store,
    items: Vec<Value>,
    ended: EndedPods,
) -> Result<Vec<Value>, Refusal> {
    items
        .into_iter()
        .map(|item| {
            let quota: ResourceQuota = serde_json::from_value(item)
                .map_err(|e| internal(format!("unreadable ResourceQuota: {e}")))?;
            let namespace = quota.metadata.namespace_or_empty().to_owned();
            let kinds: BTreeSet<Kind> = quota
                .spec
                .hard
                .keys()
                .filter_map(|name| counted_kind(name))
                .collect();
            let mut usage = Usage::default();
            for kind in kinds {
                usage.add(&stored_usage(store, &namespace, kind, ended)?);
            }
            Ok(Object::ResourceQuota(quota.with_usage(&usage)).to_json())
        })
        .collect()
}

/// One namespace as admission sees it while it goes through a request.
#[derive(Default)]
struct Namespace {
    limit_ranges: BTreeMap<String, LimitRange>,
    quotas: BTreeMap<String, ResourceQuota>,
    /// What the namespace uses, for the kinds read so far ([`Self::count`]).
    used: Usage,
    counted: BTreeSet<Kind>,
}

impl Namespace {
    fn load(store: &Store, name: &str) -> Result<Namespace, Refusal> {
        let mut namespace = Namespace::default();
        for kind in [Kind::LimitRange, Kind::ResourceQuota] {
            for record in store.list(kind.as_str(), Some(name))? {
                namespace.remember(Object::from_json(record.object).map_err(internal)?);
            }
        }
        Ok(namespace)
    }

    /// Takes a LimitRange or ResourceQuota into account for what follows it.
    fn remember(&mut self, object: Object) {
        match object {
            Object::LimitRange(range) => {
                self.limit_ranges.insert(range.metadata.name.clone(), range);
            }
            Object::ResourceQuota(quota) => {
                self.quotas.insert(quota.metadata.name.clone(), quota);
            }
            _ => {}
        }
    }

    fn policy(&self) -> Policy<'_> {
        Policy {
            limit_ranges: self.limit_ranges.values().collect(),
            quotas: self.quotas.values().collect(),
        }
    }

    /// Makes `used` cover every kind the quotas count, and pods when `admitting` one
    /// (a pod that replaces a stored one takes that one's usage out): the stored objects
    /// of a kind not read yet are added to what this request has added already.
    fn count(
        &mut self,
        store: &Store,
        namespace: &str,
        admitting: Kind,
        ended: EndedPods,
    ) -> Result<(), Refusal> {
        let mut kinds: BTreeSet<Kind> = self
            .quotas
            .values()
            .flat_map(|quota| quota.spec.hard.keys())
            .filter(|name| quota_unit(name).is_some())
            .filter_map(|name| counted_kind(name))
            .collect();
        if admitting == Kind::Pod {
            kinds.insert(Kind::Pod);
        }
        for kind in kinds {
            if self.counted.insert(kind) {
                let stored = stored_usage(store, namespace, kind, ended)?;
                self.used.add(&stored);
            }
        }
        Ok(())
    }
}

/// The LimitRanger and ResourceQuota admissions of a request's objects, in request
/// order (a quota applied ahead of a pod in the same request already governs it): pods
/// get their LimitRange defaults, and every refusal is listed in one 403 Forbidden with
/// Kubernetes' message. Nothing is stored here.
pub fn admit_limits_and_quotas(
    store: &Store,
    objects: &mut [Object],
    ended: EndedPods,
) -> Result<(), Refusal> {
    let mut namespaces: BTreeMap<String, Namespace> = BTreeMap::new();
    let mut refusals = Vec::new();
    for object in objects.iter_mut() {
        let kind = object.kind();
        if !kind.namespaced() {
            continue;
        }
        let name = object.meta().namespace_or_empty().to_owned();
        let namespace = match namespaces.entry(name.clone()) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(entry) => {
                entry.insert(Namespace::load(store, &name)?)
            }
        };
        let governed = match kind {
            Kind::Pod => !namespace.policy().is_empty(),
            _ => COUNTED_KINDS.contains(&kind) && !namespace.quotas.is_empty(),
        };
        if governed {
            namespace.count(store, &name, kind, ended)?;
            if let Err(reason) = admit_one(store, namespace, object, ended) {
                refusals.push(admission::forbidden(kind, &object.meta().name, &reason));
                continue;
            }
        }
        if matches!(kind, Kind::LimitRange | Kind::ResourceQuota) {
            namespace.remember(object.clone());
        }
    }
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(forbidden(refusals.join("\n")))
    }
}

/// Admits one object of a governed namespace, against its stored version if any.
fn admit_one(
    store: &Store,
    namespace: &mut Namespace,
    object: &mut Object,
    ended: EndedPods,
) -> Result<(), String> {
    let kind = object.kind();
    let meta = object.meta();
    let stored = store
        .get(kind.as_str(), meta.namespace_or_empty(), &meta.name)
        .map_err(|e| format!("store: {e}"))?;
    let policy = Policy {
        limit_ranges: namespace.limit_ranges.values().collect(),
        quotas: namespace.quotas.values().collect(),
    };
    let used = &mut namespace.used;
    match object {
        Object::Pod(pod) => {
            let previous = stored.and_then(pod_of).map(|before| {
                let over = ended(std::slice::from_ref(&before));
                let usage = pod_usage(&before, over.contains(&before.metadata.uid));
                (before, usage)
            });
            let previous = previous.as_ref().map(|(pod, usage)| (pod, usage));
            admit_pod(&policy, used, pod, previous)
        }
        _ => {
            let previous = stored.map(|r| Object::from_json(r.object)).transpose()?;
            admit_object(&policy, used, object, previous.as_ref())
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn apply(store: &mut Store, yaml: &str) -> Result<(), Refusal> {
        crate::api::test_support::apply_yaml(store, yaml).map(|_| ())
    }

    fn store() -> Store {
        crate::api::test_support::store_with_default_namespace()
    }

    fn pod(name: &str, memory: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec: {{containers: \
             [{{name: app, image: busybox, resources: {{requests: {{memory: {memory}}}}}}}]}}\n"
        )
    }

    const QUOTA: &str = "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: mem}\n\
                         spec: {hard: {requests.memory: 1Gi, pods: '5'}}\n";

    #[test]
    fn apply_refuses_a_pod_past_the_quota() {
        let mut store = store();
        apply(&mut store, QUOTA).unwrap();
        apply(&mut store, &pod("a", "768Mi")).unwrap();
        let refusal = apply(&mut store, &pod("b", "512Mi")).unwrap_err();
        assert_eq!((refusal.code, refusal.reason), (403, "Forbidden"));
        assert_eq!(
            refusal.message,
            "pods \"b\" is forbidden: exceeded quota: mem, requested: requests.memory=512Mi, \
             used: requests.memory=768Mi, limited: requests.memory=1Gi"
        );
        assert!(store.get("Pod", "default", "b").unwrap().is_none());
        // Applying the first pod again adds nothing and is not refused.
        apply(&mut store, &pod("a", "768Mi")).unwrap();
        // A pod that has ended frees what it used.
        store
            .set_status("Pod", "default", "a", &json!({"phase": "Succeeded"}))
            .unwrap();
        apply(&mut store, &pod("b", "512Mi")).unwrap();

        let quota = store
            .get("ResourceQuota", "default", "mem")
            .unwrap()
            .unwrap();
        let shown = quotas_with_usage(&store, vec![quota.object], &ended_by_stored_status)
            .unwrap()
            .remove(0);
        assert_eq!(
            shown["status"]["used"],
            json!({"pods": "1", "requests.memory": "512Mi"})
        );
        assert_eq!(
            shown["status"]["hard"],
            json!({"pods": "5", "requests.memory": "1Gi"})
        );
    }

    #[test]
    fn limit_range_defaults_are_stored_with_the_pod() {
        let mut store = store();
        let range = "apiVersion: v1\nkind: LimitRange\nmetadata: {name: defaults}\nspec:\n  \
                     limits: [{type: Container, default: {memory: 256Mi}, max: {memory: 1Gi}}]\n";
        // The range governs the pod that follows it in the same request.
        let yaml = format!("{range}---\n{}", pod("web", "64Mi"));
        apply(&mut store, &yaml).unwrap();
        let stored = store.get("Pod", "default", "web").unwrap().unwrap().object;
        let resources = &stored["spec"]["containers"][0]["resources"];
        assert_eq!(resources["limits"]["memory"], "256Mi");
        assert_eq!(resources["requests"]["memory"], "64Mi");
        let refusal = apply(&mut store, &pod("huge", "2Gi")).unwrap_err();
        assert_eq!(
            refusal.message,
            "pods \"huge\" is forbidden: maximum memory usage per Container is 1Gi, but \
             request is 2Gi"
        );
    }

    #[test]
    fn object_counts_are_kept_at_apply() {
        let mut store = store();
        let quota = "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: objects}\n\
                     spec: {hard: {count/configmaps: '1'}}\n";
        let config = |name: &str| {
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{a: b}}\n")
        };
        apply(&mut store, &format!("{quota}---\n{}", config("one"))).unwrap();
        apply(&mut store, &config("one").replace("a: b", "a: c")).unwrap();
        let refusal = apply(&mut store, &config("two")).unwrap_err();
        assert_eq!(
            refusal.message,
            "configmaps \"two\" is forbidden: exceeded quota: objects, requested: \
             count/configmaps=1, used: count/configmaps=1, limited: count/configmaps=1"
        );
    }
}
