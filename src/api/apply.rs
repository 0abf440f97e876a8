//! Admission and the writes it lets through, on any store: a request's manifests are
//! parsed, their namespaces filled in and checked to exist, Pods and Deployment
//! templates held to their namespace's Pod Security level, pods given their namespace's
//! LimitRange defaults and every creation held to its LimitRanges and ResourceQuotas
//! ([`super::quota`]), CronJobs' time zones checked to load ([`super::zoneinfo`]),
//! immutable ConfigMaps and Secrets kept as they are, Services given cluster IPs and node ports
//! ([`super::services`]), and then every object is written in one transaction — all
//! of a request or none of it. Deletes follow Kubernetes: some objects go at once, some
//! are marked and go when their containers have stopped.
//!
//! The agent (its API and its manifests directory) and the coordinator both apply
//! through here, so a manifest is judged the same wherever it is sent.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use serde_json::Value;

use super::quota::{admit_limits_and_quotas, ended_by_stored_status, EndedPods};
use super::refusal::{forbidden, invalid, not_found, Refusal};
use super::services::admit_services;
use super::types::{ApplyItem, ApplyRequest, ApplyResult, ManifestFile};
use crate::model::admission;
use crate::model::priority_class::is_system_class_name;
use crate::model::{
    check_pod_spec, default_service_cidr, forbidden_message, parse_manifests, Ipv4Cidr, Kind,
    Object, PodSecurityLevel, DEFAULT_NODE_PORT_RANGE,
};
use crate::store::{Key, PutOutcome, Store, VersionCheck};

/// The daemon's settings admission judges by; the same flags on the agent and the
/// coordinator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdmissionOptions {
    /// `--pod-security-level`: the level of a namespace without the
    /// `pod-security.kubernetes.io/enforce` label.
    pub pod_security_level: PodSecurityLevel,
    /// `--service-cidr`: where Services' cluster IPs come from.
    pub service_cidr: Ipv4Cidr,
    /// `--service-node-port-range`: NodePort Services' ports, inclusive.
    pub node_port_range: (u16, u16),
    /// Where CronJobs' time zones are looked up ([`super::zoneinfo`]).
    pub zoneinfo: PathBuf,
}

impl Default for AdmissionOptions {
    /// Baseline Pod Security, k3s' service network and Kubernetes' node port range.
    fn default() -> Self {
        AdmissionOptions {
            pod_security_level: PodSecurityLevel::Baseline,
            service_cidr: default_service_cidr(),
            node_port_range: DEFAULT_NODE_PORT_RANGE,
            zoneinfo: super::zoneinfo::system_root(),
        }
    }
}

/// Parses every file and fills in namespaces; any error in any file refuses the whole
/// request, listing every problem with its file and field path.
pub fn parse_request(request: &ApplyRequest) -> Result<Vec<Object>, Refusal> {
    let mut objects = Vec::new();
    let mut problems = Vec::new();
    for ManifestFile { name, content } in &request.files {
        match parse_manifests(content) {
            Ok(parsed) => objects.extend(parsed),
            Err(err) => {
                for line in err.to_string().lines() {
                    problems.push(format!("{name}: {line}"));
                }
            }
        }
    }
    for object in &mut objects {
        let kind = object.kind();
        let meta = object.meta_mut();
        if !kind.namespaced() {
            meta.namespace = None;
            continue;
        }
        match (&meta.namespace, &request.namespace) {
            (Some(own), Some(asked)) if own != asked => problems.push(format!(
                "{}/{}: the namespace from the provided object {own:?} does not match the namespace {asked:?}",
                kind.as_str(),
                meta.name
            )),
            (Some(_), _) => {}
            (None, asked) => meta.namespace = Some(asked.clone().unwrap_or_else(|| "default".to_owned())),
        }
    }
    if !problems.is_empty() {
        return Err(invalid(format!(
            "manifest rejected, nothing applied:\n{}",
            problems.join("\n")
        )));
    }
    if objects.is_empty() {
        return Err(invalid("no objects found in the manifests".to_owned()));
    }
    Ok(objects)
}

/// The first payload field a new version of an immutable ConfigMap or Secret would
/// change, if any. Metadata (labels, annotations) stays editable, as in Kubernetes.
fn immutable_change(stored: &Value, new: &Value) -> Option<&'static str> {
    if stored.get("immutable") != Some(&Value::Bool(true)) {
        return None;
    }
    ["data", "binaryData", "type", "immutable"]
        .into_iter()
        .find(|field| stored.get(*field) != new.get(*field))
}

/// A scheduling gate the new version of a pod adds: gates may only be removed, as in
/// Kubernetes, since a pod may have been scheduled once its last one went.
fn added_scheduling_gate(stored: &Value, new: &Value) -> Option<String> {
    let names = |pod: &Value| -> Vec<String> {
        let gates = pod
            .pointer("/spec/schedulingGates")
            .and_then(Value::as_array);
        gates
            .into_iter()
            .flatten()
            .filter_map(|gate| Some(gate.get("name")?.as_str()?.to_owned()))
            .collect()
    };
    let before = names(stored);
    let added = names(new).into_iter().find(|name| !before.contains(name))?;
    Some(format!(
        "spec.schedulingGates: Forbidden: only deletion is allowed, but found new scheduling \
         gate '{added}'"
    ))
}

/// Applies a request to `store`: validates, checks namespaces exist (or come in the same
/// request), then writes every object in one transaction. Pods and Deployments must meet
/// the Pod Security level of their namespace (`options.pod_security_level` for a
/// namespace without the label); Services get their cluster IPs and node ports from
/// `options`' ranges. `store` is held from the reads admission makes to the write, which
/// is what keeps two requests from being handed the same address.
pub fn apply_to_store(
    store: &mut Store,
    request: &ApplyRequest,
    source: Option<&str>,
    options: &AdmissionOptions,
) -> Result<ApplyResult, Refusal> {
    apply_observed(store, request, source, options, &ended_by_stored_status)
}

/// [`apply_to_store`], where `ended` tells which pods have ended (quotas do not count
/// them): an agent knows from its containers, which the store does not record.
pub fn apply_observed(
    store: &mut Store,
    request: &ApplyRequest,
    source: Option<&str>,
    options: &AdmissionOptions,
    ended: EndedPods,
) -> Result<ApplyResult, Refusal> {
    let default_level = options.pod_security_level;
    let mut objects = parse_request(request)?;
    let mut known: HashSet<String> = HashSet::new();
    let mut levels: HashMap<String, PodSecurityLevel> = HashMap::new();
    for record in store.list("Namespace", None)? {
        let terminating = record
            .object
            .pointer("/metadata/deletionTimestamp")
            .is_some();
        let level = PodSecurityLevel::for_namespace_object(Some(&record.object), default_level);
        levels.insert(record.name.clone(), level);
        if !terminating {
            known.insert(record.name);
        }
    }
    // A Namespace in the request decides with the labels it is about to get.
    for object in &objects {
        if let Object::Namespace(namespace) = object {
            let labels = &namespace.metadata.labels;
            let level = PodSecurityLevel::for_namespace(Some(labels), default_level);
            levels.insert(namespace.metadata.name.clone(), level);
        }
    }
    let mut missing = Vec::new();
    for object in &objects {
        if object.kind() == Kind::Namespace {
            known.insert(object.meta().name.clone());
        } else if object.kind().namespaced() {
            let ns = object.meta().namespace.clone().unwrap_or_default();
            if !known.contains(&ns) {
                missing.push(format!("namespaces {ns:?} not found (or being deleted)"));
            }
        }
    }
    if !missing.is_empty() {
        missing.dedup();
        return Err(not_found(missing.join("\n")));
    }
    super::zoneinfo::admit_time_zones(&objects, &options.zoneinfo)?;
    admit_pod_security(&objects, &levels, default_level)?;
    // Before the quotas, as in Kubernetes: a quota scoped by priority class counts the
    // class a pod was given.
    super::priority::admit_priorities(store, &mut objects)?;
    admit_limits_and_quotas(store, &mut objects, ended)?;
    super::claims::admit_claims(store, &mut objects)?;
    super::claims::keep_standby_nodes(store, &mut objects)?;
    admit_services(
        store,
        &mut objects,
        &options.service_cidr,
        options.node_port_range,
    )?;
    let warnings: Vec<String> = objects.iter().flat_map(crate::model::warnings).collect();
    let values: Vec<Value> = objects.iter().map(Object::to_json).collect();
    let mut frozen = Vec::new();
    for (object, value) in objects.iter().zip(&values) {
        let (kind, meta) = (object.kind(), object.meta());
        if !matches!(kind, Kind::ConfigMap | Kind::Secret | Kind::Pod) {
            continue;
        }
        let stored = store.get(kind.as_str(), meta.namespace_or_empty(), &meta.name)?;
        let Some(stored) = stored else {
            continue;
        };
        let problem = match kind {
            Kind::Pod => added_scheduling_gate(&stored.object, value),
            _ => immutable_change(&stored.object, value).map(|field| {
                format!("{field}: Forbidden: field is immutable when `immutable` is set")
            }),
        };
        if let Some(problem) = problem {
            frozen.push(format!("{kind} {:?} is invalid: {problem}", meta.name));
        }
    }
    if !frozen.is_empty() {
        return Err(invalid(frozen.join("\n")));
    }
    // A resourceVersion in a request is a precondition, as for kubectl; not in a file of
    // the manifests dir, which is applied again as it is after every change.
    let check = match source {
        None => VersionCheck::Enforce,
        Some(_) => VersionCheck::Ignore,
    };
    let outcomes = store.put_all_checked(values, source, check)?;
    let items = outcomes
        .into_iter()
        .map(|(record, outcome)| ApplyItem {
            kind: record.kind,
            namespace: record.namespace,
            name: record.name,
            outcome: match outcome {
                PutOutcome::Created => "created",
                PutOutcome::Configured => "configured",
                PutOutcome::Unchanged => "unchanged",
            }
            .to_owned(),
        })
        .collect();
    Ok(ApplyResult { items, warnings })
}

/// The PodSecurity admission: every Pod and workload template meets its namespace's
/// level, or the request is refused (403 Forbidden) with Kubernetes' message for each
/// object that does not, and the fields to change.
fn admit_pod_security(
    objects: &[Object],
    levels: &HashMap<String, PodSecurityLevel>,
    default_level: PodSecurityLevel,
) -> Result<(), Refusal> {
    let mut refusals = Vec::new();
    for object in objects {
        let Some(pod) = object.pod_template() else {
            continue;
        };
        let meta = object.meta();
        let level = levels
            .get(meta.namespace_or_empty())
            .copied()
            .unwrap_or(default_level);
        let violations = check_pod_spec(level, pod.spec, pod.spec_path);
        if !violations.is_empty() {
            let resource = admission::resource(object.kind());
            refusals.push(forbidden_message(&resource, &meta.name, level, &violations));
        }
    }
    if refusals.is_empty() {
        return Ok(());
    }
    Err(forbidden(refusals.join("\n")))
}

/// Deletes the objects named in the manifests of a request.
pub fn delete_manifests_in_store(
    store: &mut Store,
    request: &ApplyRequest,
) -> Result<ApplyResult, Refusal> {
    let keys: Vec<Key> = parse_request(request)?
        .iter()
        .map(|o| {
            Key::new(
                o.kind().as_str(),
                o.meta().namespace_or_empty(),
                &o.meta().name,
            )
        })
        .collect();
    delete_keys_in_store(store, &keys)
}

/// Deletes objects the Kubernetes way: Deployments go at once (their pods follow through
/// garbage collection); pods and namespaces are marked and go once their containers have
/// stopped. Keys that do not exist are skipped.
pub fn delete_keys_in_store(store: &mut Store, keys: &[Key]) -> Result<ApplyResult, Refusal> {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let mut immediate = Vec::new();
    let mut marked = Vec::new();
    let mut items = Vec::new();
    // The built-in PriorityClasses stay, as Kubernetes keeps them.
    if let Some(key) = keys
        .iter()
        .find(|k| k.kind == "PriorityClass" && is_system_class_name(&k.name))
    {
        let reason = "this is a system priority class and cannot be deleted";
        let name = &key.name;
        return Err(forbidden(admission::forbidden(
            Kind::PriorityClass,
            name,
            reason,
        )));
    }
    for key in keys {
        let Some(record) = store.get(&key.kind, &key.namespace, &key.name)? else {
            continue;
        };
        items.push(ApplyItem {
            kind: key.kind.clone(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            outcome: "deleted".to_owned(),
        });
        match key.kind.as_str() {
            // A claim in use stays, Terminating, until its pods are gone (Kubernetes'
            // pvc-protection finalizer; `controllers::claim` removes it then).
            "Pod" | "Namespace" | "PersistentVolumeClaim" => {
                let mut object = record.object;
                if object.pointer("/metadata/deletionTimestamp").is_none() {
                    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                        meta.insert("deletionTimestamp".to_owned(), Value::String(now.clone()));
                    }
                    marked.push(object);
                }
            }
            _ => immediate.push(key.clone()),
        }
    }
    store.delete_all(&immediate)?;
    if !marked.is_empty() {
        store.put_all(marked, None)?;
    }
    Ok(ApplyResult {
        items,
        warnings: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::{added_scheduling_gate, apply_to_store, immutable_change, AdmissionOptions};
    use crate::api::types::{ApplyRequest, ManifestFile};
    use crate::model::PodSecurityLevel;
    use crate::store::Store;
    use serde_json::json;

    fn request(yaml: &str) -> ApplyRequest {
        ApplyRequest {
            files: vec![ManifestFile {
                name: "m.yaml".into(),
                content: yaml.into(),
            }],
            namespace: None,
        }
    }

    /// Admission at a default Pod Security level, with the default service ranges.
    fn at(level: PodSecurityLevel) -> AdmissionOptions {
        AdmissionOptions {
            pod_security_level: level,
            ..AdmissionOptions::default()
        }
    }

    fn store_with_default_namespace() -> Store {
        let mut store = Store::open_in_memory().unwrap();
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}});
        store.put_all(vec![ns], None).unwrap();
        store
    }

    const HOST_POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: net, namespace: NS}\n\
        spec: {hostNetwork: true, containers: [{name: c, image: busybox}]}\n";

    #[test]
    fn pod_security_refuses_by_the_namespace_level() {
        let mut store = store_with_default_namespace();
        let baseline = &at(PodSecurityLevel::Baseline);
        let pod = HOST_POD.replace("NS", "default");
        let refusal = apply_to_store(&mut store, &request(&pod), None, baseline).unwrap_err();
        assert_eq!((refusal.code, refusal.reason), (403, "Forbidden"));
        assert_eq!(
            refusal.message,
            "pods \"net\" is forbidden: violates PodSecurity \"baseline:latest\": host \
             namespaces (hostNetwork=true)\nspec.hostNetwork: forbidden: host namespaces"
        );
        assert!(
            store.list("Pod", None).unwrap().is_empty(),
            "nothing applied"
        );
        // The daemon's default decides for an unlabelled namespace.
        let privileged = &at(PodSecurityLevel::Privileged);
        apply_to_store(&mut store, &request(&pod), None, privileged).unwrap();

        // A namespace labelled in the same request decides with its new label, and a
        // stored one with its stored label.
        let labelled = "apiVersion: v1\nkind: Namespace\nmetadata: {name: infra, labels: \
                        {pod-security.kubernetes.io/enforce: privileged}}\n---\n"
            .to_owned()
            + &HOST_POD.replace("NS", "infra");
        apply_to_store(&mut store, &request(&labelled), None, baseline).unwrap();
        let restricted = &at(PodSecurityLevel::Restricted);
        let again = HOST_POD.replace("NS", "infra").replace("net", "net2");
        apply_to_store(&mut store, &request(&again), None, restricted).unwrap();
    }

    #[test]
    fn deployment_templates_are_checked_with_their_paths() {
        let mut store = store_with_default_namespace();
        let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  \
            selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    \
            spec: {containers: [{name: c, image: busybox, securityContext: {privileged: true}}]}\n";
        let baseline = &at(PodSecurityLevel::Baseline);
        let refusal = apply_to_store(&mut store, &request(deployment), None, baseline).unwrap_err();
        assert_eq!(
            refusal.message,
            "deployments.apps \"web\" is forbidden: violates PodSecurity \"baseline:latest\": \
             privileged (container \"c\" must not set securityContext.privileged=true)\n\
             spec.template.spec.containers[0].securityContext.privileged: forbidden: privileged"
        );
        let rc = "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: old}\nspec:\n  \
            template:\n    metadata: {labels: {app: old}}\n    \
            spec: {hostNetwork: true, containers: [{name: c, image: busybox}]}\n";
        let refusal = apply_to_store(&mut store, &request(rc), None, baseline).unwrap_err();
        assert!(
            refusal.message.starts_with(
                "replicationcontrollers \"old\" is forbidden: violates PodSecurity \"baseline:latest\""
            ) && refusal.message.contains("\nspec.template.spec.hostNetwork: forbidden"),
            "{}",
            refusal.message
        );
        let restricted_ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: locked, labels: \
            {pod-security.kubernetes.io/enforce: restricted}}\n---\napiVersion: v1\nkind: Pod\n\
            metadata: {name: p, namespace: locked}\nspec: {containers: [{name: c, image: busybox}]}\n";
        let refusal =
            apply_to_store(&mut store, &request(restricted_ns), None, baseline).unwrap_err();
        assert!(refusal.message.starts_with(
            "pods \"p\" is forbidden: violates PodSecurity \"restricted:latest\": \
             allowPrivilegeEscalation != false"
        ));
        assert!(
            store.list("Namespace", None).unwrap().len() == 1,
            "all or nothing"
        );
    }

    #[test]
    fn scheduling_gates_may_only_be_removed() {
        let gated = |names: &[&str]| {
            let gates: Vec<_> = names.iter().map(|n| json!({"name": n})).collect();
            json!({"spec": {"schedulingGates": gates}})
        };
        assert_eq!(
            added_scheduling_gate(&gated(&["a", "b"]), &gated(&["b"])),
            None
        );
        assert_eq!(
            added_scheduling_gate(&gated(&["a"]), &gated(&["a", "c"])).as_deref(),
            Some(
                "spec.schedulingGates: Forbidden: only deletion is allowed, but found new \
                 scheduling gate 'c'"
            )
        );
    }

    #[test]
    fn immutable_objects_keep_their_payload() {
        let stored = json!({"immutable": true, "data": {"a": "x"}, "metadata": {"labels": {}}});
        let relabelled =
            json!({"immutable": true, "data": {"a": "x"}, "metadata": {"labels": {"k": "v"}}});
        assert_eq!(immutable_change(&stored, &relabelled), None);
        let changed = json!({"immutable": true, "data": {"a": "y"}});
        assert_eq!(immutable_change(&stored, &changed), Some("data"));
        let thawed = json!({"data": {"a": "x"}});
        assert_eq!(immutable_change(&stored, &thawed), Some("immutable"));
        let mutable = json!({"data": {"a": "x"}});
        assert_eq!(immutable_change(&mutable, &changed), None);
    }
}
