//! Admission of PersistentVolumeClaims. What berth set on a stored claim stays when its
//! manifest is applied again: the volume it provisioned (`spec.volumeName`) and, in a
//! fleet, the node that holds its data (`volume.kubernetes.io/selected-node`) — the
//! manifest the user applies again has neither. Beyond that a claim's spec is immutable,
//! as in Kubernetes, and the `local-path` class cannot resize.

use super::fleet::STANDBY_NODE_ANNOTATION;
use super::refusal::{forbidden, invalid, Refusal};
use crate::model::{Object, PersistentVolumeClaim, SELECTED_NODE_ANNOTATION};
use crate::store::Store;

/// Carries a CronJob's standby node (chosen by the coordinator, kept in an annotation)
/// over into a new version applied without it, as the claims' node is carried: an apply
/// of the user's manifest must not move the CronJob to another board.
pub(super) fn keep_standby_nodes(store: &Store, objects: &mut [Object]) -> Result<(), Refusal> {
    for object in objects.iter_mut() {
        let Object::CronJob(cron_job) = object else {
            continue;
        };
        if cron_job
            .metadata
            .annotations
            .contains_key(STANDBY_NODE_ANNOTATION)
        {
            continue;
        }
        let namespace = cron_job.metadata.namespace_or_empty().to_owned();
        let Some(stored) = store.get("CronJob", &namespace, &cron_job.metadata.name)? else {
            continue;
        };
        let node = stored
            .object
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(STANDBY_NODE_ANNOTATION))
            .and_then(serde_json::Value::as_str);
        if let Some(node) = node {
            cron_job
                .metadata
                .annotations
                .insert(STANDBY_NODE_ANNOTATION.to_owned(), node.to_owned());
        }
    }
    Ok(())
}

/// Carries berth's fields over from the stored claims into the `objects` about to replace
/// them, and refuses changes a claim cannot take.
pub(super) fn admit_claims(store: &Store, objects: &mut [Object]) -> Result<(), Refusal> {
    let mut problems = Vec::new();
    for object in objects.iter_mut() {
        let Object::PersistentVolumeClaim(claim) = object else {
            continue;
        };
        let (namespace, name) = (claim.metadata.namespace_or_empty(), &claim.metadata.name);
        let stored = match store.get("PersistentVolumeClaim", namespace, name)? {
            Some(record) => match Object::from_json(record.object) {
                Ok(Object::PersistentVolumeClaim(stored)) => Some(stored),
                _ => None,
            },
            None => None,
        };
        if let Err(refusal) = carry_over(claim, stored.as_ref()) {
            if refusal.code == 403 {
                return Err(refusal);
            }
            problems.push(refusal.message);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(invalid(problems.join("\n")))
    }
}

/// `claim` as it will be stored over `stored` (if any), or why it cannot be.
fn carry_over(
    claim: &mut PersistentVolumeClaim,
    stored: Option<&PersistentVolumeClaim>,
) -> Result<(), Refusal> {
    let name = claim.metadata.name.clone();
    let invalid_field = |path: &str, message: &str| {
        invalid(format!(
            "PersistentVolumeClaim {name:?} is invalid: {path}: {message}"
        ))
    };
    let Some(stored) = stored else {
        if !claim.spec.volume_name.is_empty() {
            return Err(invalid_field(
                "spec.volumeName",
                "Forbidden: berth names the volume when it provisions the claim; there are \
                 no PersistentVolumes to bind to",
            ));
        }
        return Ok(());
    };
    if claim.spec.volume_name.is_empty() {
        claim.spec.volume_name = stored.spec.volume_name.clone();
    }
    let annotations = &mut claim.metadata.annotations;
    match (
        stored.selected_node(),
        annotations.get(SELECTED_NODE_ANNOTATION),
    ) {
        (Some(node), None) => {
            annotations.insert(SELECTED_NODE_ANNOTATION.to_owned(), node.to_owned());
        }
        (Some(node), Some(asked)) if asked != node => {
            return Err(invalid_field(
                &format!("metadata.annotations[{SELECTED_NODE_ANNOTATION}]"),
                &format!("Forbidden: the claim's data is on node {node:?} and cannot move"),
            ));
        }
        _ => {}
    }
    if claim.spec == stored.spec {
        return Ok(());
    }
    let mut resized = stored.spec.clone();
    resized.resources = claim.spec.resources.clone();
    if resized == claim.spec {
        return Err(forbidden(format!(
            "persistentvolumeclaims {name:?} is forbidden: only dynamically provisioned pvc can \
             be resized and the storageclass that provisions the pvc must support resize"
        )));
    }
    Err(invalid_field(
        "spec",
        "Forbidden: spec is immutable after creation except resources.requests and \
         volumeAttributesClassName for bound claims",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CLAIM: &str = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\n\
        spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: SIZE}}}\n";

    fn apply(store: &mut Store, yaml: &str) -> Result<String, Refusal> {
        let result = crate::api::test_support::apply_yaml(store, yaml)?;
        Ok(result.items[0].outcome.clone())
    }

    #[test]
    fn an_apply_keeps_a_cron_jobs_standby_node() {
        let mut store = Store::open_in_memory().unwrap();
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}});
        store.put_all(vec![ns], None).unwrap();
        let cron_job = "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: up, namespace: default}\n\
            spec: {schedule: '* * * * *', jobTemplate: {spec: {template: {spec: {restartPolicy: Never, \
            containers: [{name: c, image: busybox}]}}}}}\n";
        apply(&mut store, cron_job).unwrap();
        let mut stored = store
            .get("CronJob", "default", "up")
            .unwrap()
            .unwrap()
            .object;
        stored["metadata"]["annotations"] = json!({STANDBY_NODE_ANNOTATION: "pi-2"});
        store.put_all(vec![stored], None).unwrap();
        // The user's manifest again, without the annotation: nothing changes.
        assert_eq!(apply(&mut store, cron_job).unwrap(), "unchanged");
        let kept = store
            .get("CronJob", "default", "up")
            .unwrap()
            .unwrap()
            .object;
        assert_eq!(
            kept["metadata"]["annotations"][STANDBY_NODE_ANNOTATION],
            "pi-2"
        );
    }

    #[test]
    fn applying_again_keeps_what_berth_set() {
        let mut store = Store::open_in_memory().unwrap();
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}});
        store.put_all(vec![ns], None).unwrap();
        let claim = CLAIM.replace("SIZE", "1Gi");
        assert_eq!(apply(&mut store, &claim).unwrap(), "created");
        // What the provisioner and the scheduler write.
        let mut stored = store
            .get("PersistentVolumeClaim", "default", "data")
            .unwrap()
            .unwrap()
            .object;
        stored["spec"]["volumeName"] = json!("pvc-1");
        stored["metadata"]["annotations"] = json!({SELECTED_NODE_ANNOTATION: "pi-1"});
        store.put_all(vec![stored], None).unwrap();

        assert_eq!(apply(&mut store, &claim).unwrap(), "unchanged");
        let resized = apply(&mut store, &CLAIM.replace("SIZE", "2Gi")).unwrap_err();
        assert_eq!(resized.code, 403);
        assert!(
            resized.message.contains("must support resize"),
            "{resized:?}"
        );
        let changed = claim.replace("ReadWriteOnce", "ReadWriteOncePod");
        let refused = apply(&mut store, &changed).unwrap_err();
        assert_eq!(
            refused.message,
            "PersistentVolumeClaim \"data\" is invalid: spec: Forbidden: spec is immutable \
             after creation except resources.requests and volumeAttributesClassName for bound claims"
        );
        let moved = claim.replace(
            "metadata: {name: data}",
            "metadata: {name: data, annotations: {volume.kubernetes.io/selected-node: pi-2}}",
        );
        let refused = apply(&mut store, &moved).unwrap_err();
        assert!(refused.message.contains("cannot move"), "{refused:?}");
        let stored = store
            .get("PersistentVolumeClaim", "default", "data")
            .unwrap()
            .unwrap()
            .object;
        assert_eq!(stored["spec"]["volumeName"], "pvc-1");

        let named = CLAIM
            .replace("SIZE", "1Gi")
            .replace("name: data", "name: other")
            .replace("accessModes", "volumeName: pv-9, accessModes");
        let refused = apply(&mut store, &named).unwrap_err();
        assert!(
            refused.message.contains("spec.volumeName: Forbidden"),
            "{refused:?}"
        );
    }
}
