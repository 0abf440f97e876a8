//! Turning manifest text into typed objects: split YAML documents, expand `kind: List`,
//! validate every document, and only then build the typed structs.

use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use crate::model::validate::{
    check_list_wrapper, item_path, validate_document, SERVER_SET_METADATA,
};
use crate::model::{
    ConfigMap, ControllerRevision, CronJob, DaemonSet, Deployment, EndpointSlice, Endpoints, Job,
    Kind, LimitRange, Namespace, Object, PersistentVolumeClaim, Pod, PriorityClass, ReplicaSet,
    ReplicationController, ResourceQuota, Secret, Service, StatefulSet,
};

/// One problem at one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Kubernetes notation, e.g. `spec.template.spec.containers[0].image`; empty when the
    /// problem concerns the whole document.
    pub path: String,
    pub message: String,
}

/// Every problem of one document (or one item of a `List`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentErrors {
    /// 0-based position of the document in the YAML stream.
    pub document: usize,
    /// `Kind/name`, when the document names both.
    pub object: Option<String>,
    pub errors: Vec<FieldError>,
}

/// A rejected manifest file: all problems of all documents. Nothing of the file is to be
/// applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    pub documents: Vec<DocumentErrors>,
}

impl fmt::Display for ManifestError {
    /// One line per problem: `Deployment/hello: spec.replicas: expected integer`, or
    /// `document 2: kind: required value` when the object has no kind and name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for doc in &self.documents {
            let subject = match &doc.object {
                Some(object) => object.clone(),
                None => format!("document {}", doc.document + 1),
            };
            for error in &doc.errors {
                if !first {
                    f.write_str("\n")?;
                }
                first = false;
                if error.path.is_empty() {
                    write!(f, "{subject}: {}", error.message)?;
                } else {
                    write!(f, "{subject}: {}: {}", error.path, error.message)?;
                }
            }
        }
        Ok(())
    }
}

impl std::error::Error for ManifestError {}

/// Parses YAML (one or more `---`-separated documents) or JSON into objects, in file
/// order. Any problem anywhere rejects the whole text, listing every problem found.
pub fn parse_manifests(text: &str) -> Result<Vec<Object>, ManifestError> {
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for (document, parsed) in split_documents(text).into_iter().enumerate() {
        match parsed {
            Ok(Value::Null) => {}
            Ok(value) => collect(value, document, "", &mut objects, &mut errors),
            Err(message) => errors.push(DocumentErrors {
                document,
                object: None,
                errors: vec![FieldError {
                    path: String::new(),
                    message,
                }],
            }),
        }
    }
    if errors.is_empty() {
        Ok(objects)
    } else {
        Err(ManifestError { documents: errors })
    }
}

/// Each document of the stream, or the parser's message (with line and column) for a
/// document that is not valid YAML. Parsing stops at the first syntax error because the
/// parser cannot resynchronise after it. go-yaml's `\'` escape is read as kubectl reads it.
fn split_documents(text: &str) -> Vec<Result<Value, String>> {
    escapes::parse_with_quote_escapes(text, |text| {
        let mut documents = Vec::new();
        for document in serde_yaml_ng::Deserializer::from_str(text) {
            match Value::deserialize(document) {
                Ok(value) => documents.push(Ok(value)),
                Err(e) => {
                    documents.push(Err(format!("invalid YAML: {e}")));
                    return (documents, Some(e));
                }
            }
        }
        (documents, None)
    })
}

/// Validates one parsed document, expanding `List`s, and either builds its objects or
/// records its errors. `prefix` locates a list item inside its document.
fn collect(
    value: Value,
    document: usize,
    prefix: &str,
    objects: &mut Vec<Object>,
    errors: &mut Vec<DocumentErrors>,
) {
    if let Some(wrapper) = value
        .as_object()
        .filter(|m| m.get("kind") == Some(&Value::from("List")))
    {
        let (items, list_errors) = check_list_wrapper(wrapper);
        push_errors(errors, document, None, prefix, list_errors);
        for (i, item) in items.unwrap_or_default().iter().enumerate() {
            collect(
                item.clone(),
                document,
                &item_path(prefix, i),
                objects,
                errors,
            );
        }
        return;
    }

    let checked = validate_document(&value);
    let label = object_label(&value);
    match checked.kind {
        Some(kind) if checked.errors.is_empty() => match build(kind, value) {
            Ok(object) => objects.push(object),
            Err(message) => push_errors(
                errors,
                document,
                label,
                prefix,
                vec![FieldError {
                    path: String::new(),
                    message,
                }],
            ),
        },
        _ => push_errors(errors, document, label, prefix, checked.errors),
    }
}

/// Records errors; paths of unnamed list items get the item's position in front so the
/// user can find them.
fn push_errors(
    errors: &mut Vec<DocumentErrors>,
    document: usize,
    object: Option<String>,
    prefix: &str,
    mut list: Vec<FieldError>,
) {
    if list.is_empty() {
        return;
    }
    if object.is_none() && !prefix.is_empty() {
        for error in &mut list {
            error.path = if error.path.is_empty() {
                prefix.to_string()
            } else {
                format!("{prefix}.{}", error.path)
            };
        }
    }
    errors.push(DocumentErrors {
        document,
        object,
        errors: list,
    });
}

/// `Kind/name` from the raw document, when both are non-empty strings.
fn object_label(value: &Value) -> Option<String> {
    let kind = value.get("kind")?.as_str()?;
    let name = value.get("metadata")?.get("name")?.as_str()?;
    (!kind.is_empty() && !name.is_empty()).then(|| format!("{kind}/{name}"))
}

/// Builds the typed object from a document that passed validation. Input status and
/// server-set metadata are dropped, except `resourceVersion`: an API request's
/// precondition, which the store checks (or ignores) when it writes. Defaults are applied.
fn build(kind: Kind, mut value: Value) -> Result<Object, String> {
    strip_nulls(&mut value);
    if let Some(top) = value.as_object_mut() {
        top.remove("status");
        if let Some(Value::Object(meta)) = top.get_mut("metadata") {
            for field in SERVER_SET_METADATA {
                if field != "resourceVersion" {
                    meta.remove(field);
                }
            }
        }
    }
    if let Some(Value::Object(meta)) = value.pointer_mut("/spec/template/metadata") {
        meta.remove("creationTimestamp");
    }
    let invalid = |e: serde_json::Error| format!("invalid {kind} object: {e}");
    let object = match kind {
        Kind::Namespace => {
            let mut namespace: Namespace = serde_json::from_value(value).map_err(invalid)?;
            // Namespaces are cluster-scoped; kubectl ignores a namespace given for them.
            namespace.metadata.namespace = None;
            Object::Namespace(namespace)
        }
        Kind::Pod => {
            let mut pod: Pod = serde_json::from_value(value).map_err(invalid)?;
            pod.spec.apply_defaults();
            Object::Pod(pod)
        }
        Kind::Deployment => {
            let mut deployment: Deployment = serde_json::from_value(value).map_err(invalid)?;
            deployment.spec.apply_defaults();
            Object::Deployment(deployment)
        }
        Kind::ControllerRevision => Object::ControllerRevision(
            serde_json::from_value::<ControllerRevision>(value).map_err(invalid)?,
        ),
        Kind::DaemonSet => {
            let mut daemon_set: DaemonSet = serde_json::from_value(value).map_err(invalid)?;
            daemon_set.spec.apply_defaults();
            Object::DaemonSet(daemon_set)
        }
        Kind::StatefulSet => {
            let mut set: StatefulSet = serde_json::from_value(value).map_err(invalid)?;
            set.spec.apply_defaults();
            Object::StatefulSet(set)
        }
        Kind::ReplicaSet => {
            let mut replica_set: ReplicaSet = serde_json::from_value(value).map_err(invalid)?;
            replica_set.spec.template.spec.apply_defaults();
            Object::ReplicaSet(replica_set)
        }
        Kind::ReplicationController => {
            let mut rc: ReplicationController = serde_json::from_value(value).map_err(invalid)?;
            rc.apply_defaults();
            Object::ReplicationController(rc)
        }
        Kind::ConfigMap => {
            Object::ConfigMap(serde_json::from_value::<ConfigMap>(value).map_err(invalid)?)
        }
        Kind::Secret => {
            let mut secret: Secret = serde_json::from_value(value).map_err(invalid)?;
            secret.merge_string_data();
            Object::Secret(secret)
        }
        Kind::PersistentVolumeClaim => {
            let mut claim: PersistentVolumeClaim =
                serde_json::from_value(value).map_err(invalid)?;
            claim.spec.apply_defaults();
            Object::PersistentVolumeClaim(claim)
        }
        Kind::Service => {
            let mut service: Service = serde_json::from_value(value).map_err(invalid)?;
            service.spec.apply_defaults();
            Object::Service(service)
        }
        Kind::Endpoints => {
            Object::Endpoints(serde_json::from_value::<Endpoints>(value).map_err(invalid)?)
        }
        Kind::EndpointSlice => {
            Object::EndpointSlice(serde_json::from_value::<EndpointSlice>(value).map_err(invalid)?)
        }
        // The status of a quota is computed when it is shown, never taken from a manifest.
        Kind::ResourceQuota => {
            Object::ResourceQuota(serde_json::from_value::<ResourceQuota>(value).map_err(invalid)?)
        }
        Kind::Job => {
            let mut job: Job = serde_json::from_value(value).map_err(invalid)?;
            job.spec.apply_defaults();
            Object::Job(job)
        }
        Kind::CronJob => {
            let mut cron_job: CronJob = serde_json::from_value(value).map_err(invalid)?;
            cron_job.spec.job_template.spec.apply_defaults();
            Object::CronJob(Box::new(cron_job))
        }
        Kind::LimitRange => {
            let mut limit_range: LimitRange = serde_json::from_value(value).map_err(invalid)?;
            limit_range.apply_defaults();
            Object::LimitRange(limit_range)
        }
        Kind::PriorityClass => {
            let mut class: PriorityClass = serde_json::from_value(value).map_err(invalid)?;
            // Cluster-scoped, as a Namespace: a namespace given for it is ignored.
            class.metadata.namespace = None;
            Object::PriorityClass(class)
        }
        Kind::HorizontalPodAutoscaler => {
            let mut value = value;
            if value.get("apiVersion").and_then(Value::as_str) == Some("autoscaling/v1") {
                crate::model::passive::autoscaler_v1_to_v2(&mut value);
            }
            crate::model::passive::default_autoscaler(&mut value);
            let passive = crate::model::Passive::from_json(kind, value)
                .map_err(|e| format!("invalid {kind} object: {e}"))?;
            Object::Passive(Box::new(passive))
        }
        Kind::ServiceAccount
        | Kind::Ingress
        | Kind::IngressClass
        | Kind::NetworkPolicy
        | Kind::PodDisruptionBudget => {
            let passive = crate::model::Passive::from_json(kind, value)
                .map_err(|e| format!("invalid {kind} object: {e}"))?;
            Object::Passive(Box::new(passive))
        }
    };
    Ok(object)
}

/// Removes `null` object members everywhere: validation treats them as absent, and serde
/// would otherwise refuse `null` for a map or list field instead of using its default.
fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
    }
}

mod escapes;

#[cfg(test)]
mod tests;

#[cfg(test)]
#[path = "parse/fuzz.rs"]
mod fuzz;
