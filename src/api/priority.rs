//! Kubernetes' Priority admission on a store, for apply on an agent and on a
//! coordinator: a PriorityClass may not become a second global default, and every pod
//! gets the priority of its class ([`crate::model::priority_class::admit_priority`]).
//! The classes are the stored ones and those of the same request, so a class and the
//! pods that name it can be applied together.

use super::refusal::{forbidden, internal, Refusal};
use crate::model::admission;
use crate::model::priority_class::{admit_priority, second_default};
use crate::model::{Kind, Object, PriorityClass};
use crate::store::Store;

/// The stored PriorityClasses (the built-in ones among them).
pub fn stored_classes(store: &Store) -> Result<Vec<PriorityClass>, Refusal> {
    let mut classes = Vec::new();
    for record in store.list(Kind::PriorityClass.as_str(), None)? {
        match Object::from_json(record.object).map_err(internal)? {
            Object::PriorityClass(class) => classes.push(class),
            other => return Err(internal(format!("not a PriorityClass: {other:?}"))),
        }
    }
    Ok(classes)
}

/// Admits the request's PriorityClasses, then gives its pods their priority; every
/// refusal is listed in one 403 Forbidden with Kubernetes' message. Nothing is stored.
pub fn admit_priorities(store: &Store, objects: &mut [Object]) -> Result<(), Refusal> {
    let wants_classes = objects
        .iter()
        .any(|o| matches!(o, Object::Pod(_) | Object::PriorityClass(_)));
    if !wants_classes {
        return Ok(());
    }
    let mut classes = stored_classes(store)?;
    let mut refusals = Vec::new();
    for object in objects.iter() {
        let Object::PriorityClass(class) = object else {
            continue;
        };
        if let Some(reason) = second_default(class, &classes) {
            let name = &class.metadata.name;
            refusals.push(admission::forbidden(Kind::PriorityClass, name, &reason));
        }
        classes.retain(|c| c.metadata.name != class.metadata.name);
        classes.push(class.clone());
    }
    for object in objects.iter_mut() {
        let Object::Pod(pod) = object else {
            continue;
        };
        let meta = &pod.metadata;
        let previous = store.get("Pod", meta.namespace_or_empty(), &meta.name)?;
        let previous = match previous.map(|r| Object::from_json(r.object)) {
            Some(Ok(Object::Pod(before))) => Some(before),
            _ => None,
        };
        let before = previous.as_ref().map(|p| &p.spec);
        if let Err(reason) = admit_priority(&mut pod.spec, &classes, before) {
            refusals.push(admission::forbidden(Kind::Pod, &pod.metadata.name, &reason));
        }
    }
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(forbidden(refusals.join("\n")))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::api::apply::delete_keys_in_store;
    use crate::api::refusal::Refusal;
    use crate::model::Object;
    use crate::store::{Key, Store};

    fn apply(store: &mut Store, yaml: &str) -> Result<(), Refusal> {
        crate::api::test_support::apply_yaml(store, yaml).map(|_| ())
    }

    fn store() -> Store {
        crate::api::test_support::store_with_default_namespace()
    }

    fn class(name: &str, value: i32, default: bool) -> String {
        format!(
            "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {{name: {name}}}\n\
             value: {value}\nglobalDefault: {default}\n"
        )
    }

    fn pod(name: &str, extra: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers: \
             [{{name: app, image: busybox}}]\n{extra}"
        )
    }

    fn stored_spec(store: &Store, name: &str) -> serde_json::Value {
        store.get("Pod", "default", name).unwrap().unwrap().object["spec"].clone()
    }

    #[test]
    fn pods_get_their_class_priority_at_apply() {
        let mut store = store();
        // The class governs a pod in the same request.
        let yaml = format!(
            "{}---\n{}",
            class("high", 1000, false),
            pod("web", "  priorityClassName: high\n")
        );
        apply(&mut store, &yaml).unwrap();
        let spec = stored_spec(&store, "web");
        assert_eq!(spec["priority"], 1000);
        assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority");
        apply(&mut store, &pod("plain", "")).unwrap();
        assert_eq!(stored_spec(&store, "plain")["priority"], 0);

        let refusal = apply(&mut store, &pod("x", "  priorityClassName: foo\n")).unwrap_err();
        assert_eq!((refusal.code, refusal.reason), (403, "Forbidden"));
        assert_eq!(
            refusal.message,
            "pods \"x\" is forbidden: no PriorityClass with name foo was found"
        );
        let refusal = apply(&mut store, &pod("y", "  priority: 7\n")).unwrap_err();
        assert!(
            refusal.message.starts_with(
                "pods \"y\" is forbidden: the integer value of priority (7) must not be provided"
            ),
            "{}",
            refusal.message
        );
    }

    #[test]
    fn one_global_default_and_it_is_given_to_pods() {
        let mut store = store();
        apply(&mut store, &class("a", 100, true)).unwrap();
        let refusal = apply(&mut store, &class("b", 200, true)).unwrap_err();
        assert_eq!(
            refusal.message,
            "priorityclasses.scheduling.k8s.io \"b\" is forbidden: PriorityClass a is already \
             marked as default. Only one default can exist"
        );
        // The default applied again is no second one.
        apply(&mut store, &class("a", 100, true)).unwrap();
        apply(&mut store, &pod("web", "")).unwrap();
        let spec = stored_spec(&store, "web");
        assert_eq!(
            (spec["priority"].clone(), spec["priorityClassName"].clone()),
            (json!(100), json!("a"))
        );
    }

    #[test]
    fn a_quota_scoped_by_class_counts_only_its_pods() {
        let mut store = store();
        let quota = "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: few-high}\nspec:\n  \
                     hard: {pods: '1'}\n  scopeSelector:\n    matchExpressions:\n    - \
                     {scopeName: PriorityClass, operator: In, values: [high]}\n";
        let yaml = format!(
            "{}---\n{}---\n{quota}",
            class("high", 1000, false),
            class("low", 1, false)
        );
        apply(&mut store, &yaml).unwrap();
        apply(&mut store, &pod("a", "  priorityClassName: high\n")).unwrap();
        let refusal = apply(&mut store, &pod("b", "  priorityClassName: high\n")).unwrap_err();
        assert_eq!(
            refusal.message,
            "pods \"b\" is forbidden: exceeded quota: few-high, requested: pods=1, used: \
             pods=1, limited: pods=1"
        );
        apply(&mut store, &pod("c", "  priorityClassName: low\n")).unwrap();
        apply(&mut store, &pod("d", "")).unwrap();
        let stored = store
            .get("ResourceQuota", "default", "few-high")
            .unwrap()
            .unwrap();
        let ended = crate::api::quota::ended_by_stored_status;
        let shown = crate::api::quota::quotas_with_usage(&store, vec![stored.object], &ended);
        assert_eq!(shown.unwrap()[0]["status"]["used"], json!({"pods": "1"}));
    }

    #[test]
    fn built_in_classes_are_there_and_stay() {
        let mut store = store();
        let built_in = crate::model::priority_class::system_priority_classes();
        let values = built_in
            .into_iter()
            .map(|c| Object::PriorityClass(c).to_json());
        store.put_all(values.collect(), None).unwrap();
        apply(
            &mut store,
            &pod("dns", "  priorityClassName: system-cluster-critical\n"),
        )
        .unwrap();
        assert_eq!(stored_spec(&store, "dns")["priority"], 2_000_000_000);
        let key = Key::new("PriorityClass", "", "system-node-critical");
        let refusal = delete_keys_in_store(&mut store, &[key]).unwrap_err();
        assert_eq!(
            refusal.message,
            "priorityclasses.scheduling.k8s.io \"system-node-critical\" is forbidden: this is \
             a system priority class and cannot be deleted"
        );
    }
}
