//! What a container is given from outside its image, as the kubelet gives it: the
//! ConfigMaps and Secrets its pod names (read from the store once per start), the pod's
//! own fields and its containers' resources (the downward API), and the `$(VAR)`
//! expansion of `env`, `command` and `args`.
//!
//! Everything here is pure given a [`PodConfig`] and [`PodFacts`]; errors carry the
//! kubelet's messages (`configmap "app" not found`, `couldn't find key port in ConfigMap
//! dev/app`), shown as the container's `CreateContainerConfigError`.

use std::collections::BTreeMap;

use crate::model::{
    base64, parse_cpu_millis, parse_memory_bytes, subscripted_field, ConfigMap, Container,
    ObjectFieldSelector, Pod, ResourceFieldSelector, Secret,
};
use crate::store::Store;

/// The ConfigMaps and Secrets a pod names, as found in the store when it was read;
/// `None` where the object does not exist.
#[derive(Debug, Default)]
pub struct PodConfig {
    pub config_maps: BTreeMap<String, Option<ConfigMap>>,
    pub secrets: BTreeMap<String, Option<Secret>>,
}

/// What the downward API reports that is not in the pod object itself.
#[derive(Debug, Default, Clone)]
pub struct PodFacts {
    pub pod_ip: Option<String>,
    pub host_ip: Option<String>,
    pub node_name: String,
    /// What a container without a limit may use: the node's allocatable resources.
    pub node_cpu_millis: u64,
    pub node_memory_bytes: u64,
}

impl PodConfig {
    /// Reads every ConfigMap and Secret the pod's env, envFrom and volumes name.
    pub fn load(store: &Store, pod: &Pod) -> anyhow::Result<PodConfig> {
        let namespace = pod.metadata.namespace_or_empty();
        let (config_maps, secrets) = pod.spec.config_references();
        let mut config = PodConfig::default();
        for name in config_maps {
            let found = match store.get("ConfigMap", namespace, &name)? {
                Some(record) => match crate::model::Object::from_json(record.object) {
                    Ok(crate::model::Object::ConfigMap(map)) => Some(map),
                    _ => None,
                },
                None => None,
            };
            config.config_maps.insert(name, found);
        }
        for name in secrets {
            let found = match store.get("Secret", namespace, &name)? {
                Some(record) => match crate::model::Object::from_json(record.object) {
                    Ok(crate::model::Object::Secret(secret)) => Some(secret),
                    _ => None,
                },
                None => None,
            };
            config.secrets.insert(name, found);
        }
        Ok(config)
    }

    pub(super) fn config_map(&self, name: &str) -> Result<&ConfigMap, String> {
        self.config_maps
            .get(name)
            .and_then(Option::as_ref)
            .ok_or_else(|| format!("configmap {name:?} not found"))
    }

    pub(super) fn secret(&self, name: &str) -> Result<&Secret, String> {
        self.secrets
            .get(name)
            .and_then(Option::as_ref)
            .ok_or_else(|| format!("secret {name:?} not found"))
    }
}

/// A ConfigMap's text values and its binary ones, as bytes.
pub(super) fn config_map_entries(map: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut entries: BTreeMap<String, Vec<u8>> = map
        .data
        .iter()
        .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
        .collect();
    for (key, value) in &map.binary_data {
        if let Some(bytes) = base64::decode(value) {
            entries.insert(key.clone(), bytes);
        }
    }
    entries
}

/// A Secret's decoded values (values that are not base64 were refused when applied).
pub(super) fn secret_entries(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    secret
        .data
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), base64::decode(v)?)))
        .collect()
}

/// A container's variables in order, and the `envFrom` keys skipped as invalid names.
pub type ResolvedEnv = (Vec<(String, String)>, Vec<String>);

/// The environment a container's spec asks for, in the kubelet's order: `envFrom`
/// sources first, then `env` entries, each expanded with what came before it. Also the
/// keys `envFrom` skipped because they are not valid variable names (the kubelet tells
/// them in an `InvalidEnvironmentVariableNames` event).
pub fn container_env_vars(
    pod: &Pod,
    container: &Container,
    config: &PodConfig,
    facts: &PodFacts,
) -> Result<ResolvedEnv, String> {
    let namespace = pod.metadata.namespace_or_empty();
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut skipped = Vec::new();
    let set = |vars: &mut Vec<(String, String)>, name: String, value: String| match vars
        .iter_mut()
        .find(|(n, _)| *n == name)
    {
        Some(slot) => slot.1 = value,
        None => vars.push((name, value)),
    };
    for from in &container.env_from {
        let entries = if let Some(r) = &from.config_map_ref {
            match config.config_map(&r.name) {
                Ok(map) => config_map_entries(map),
                Err(_) if r.optional == Some(true) => continue,
                Err(message) => return Err(message),
            }
        } else if let Some(r) = &from.secret_ref {
            match config.secret(&r.name) {
                Ok(secret) => secret_entries(secret),
                Err(_) if r.optional == Some(true) => continue,
                Err(message) => return Err(message),
            }
        } else {
            continue;
        };
        for (key, value) in entries {
            let name = format!("{}{key}", from.prefix);
            if crate::model::is_env_var_name(&name) {
                set(
                    &mut vars,
                    name,
                    String::from_utf8_lossy(&value).into_owned(),
                );
            } else {
                skipped.push(name);
            }
        }
    }
    for var in &container.env {
        let value = match &var.value_from {
            None => expand(&var.value, &vars),
            Some(source) => {
                match env_source_value(pod, container, source, config, facts, namespace)? {
                    Some(value) => value,
                    None => continue,
                }
            }
        };
        set(&mut vars, var.name.clone(), value);
    }
    Ok((vars, skipped))
}

/// The value of one `valueFrom`, or `None` where an optional source is missing.
fn env_source_value(
    pod: &Pod,
    container: &Container,
    source: &crate::model::EnvVarSource,
    config: &PodConfig,
    facts: &PodFacts,
    namespace: &str,
) -> Result<Option<String>, String> {
    let optional = |r: &crate::model::KeySelector| r.optional == Some(true);
    if let Some(r) = &source.config_map_key_ref {
        let map = match config.config_map(&r.name) {
            Ok(map) => map,
            Err(_) if optional(r) => return Ok(None),
            Err(message) => return Err(message),
        };
        return match map.data.get(&r.key) {
            Some(value) => Ok(Some(value.clone())),
            None if optional(r) => Ok(None),
            None => Err(format!(
                "couldn't find key {} in ConfigMap {namespace}/{}",
                r.key, r.name
            )),
        };
    }
    if let Some(r) = &source.secret_key_ref {
        let secret = match config.secret(&r.name) {
            Ok(secret) => secret,
            Err(_) if optional(r) => return Ok(None),
            Err(message) => return Err(message),
        };
        return match secret.value(&r.key) {
            Some(value) => Ok(Some(String::from_utf8_lossy(&value).into_owned())),
            None if optional(r) => Ok(None),
            None => Err(format!(
                "couldn't find key {} in Secret {namespace}/{}",
                r.key, r.name
            )),
        };
    }
    if let Some(field) = &source.field_ref {
        return field_value(pod, facts, field).map(Some);
    }
    if let Some(resource) = &source.resource_field_ref {
        return resource_value(pod, Some(&container.name), resource, facts).map(Some);
    }
    Ok(None)
}

/// A field of the pod for `fieldRef`, in env or in a downwardAPI file.
pub(super) fn field_value(
    pod: &Pod,
    facts: &PodFacts,
    field: &ObjectFieldSelector,
) -> Result<String, String> {
    let meta = &pod.metadata;
    let path = field.field_path.as_str();
    if let Some((map, key)) = subscripted_field(path) {
        let map = if map == "metadata.labels" {
            &meta.labels
        } else {
            &meta.annotations
        };
        return Ok(map.get(key).cloned().unwrap_or_default());
    }
    Ok(match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace_or_empty().to_owned(),
        "metadata.uid" => meta.uid.clone(),
        "metadata.labels" => format_map(&meta.labels),
        "metadata.annotations" => format_map(&meta.annotations),
        "spec.nodeName" => facts.node_name.clone(),
        "spec.serviceAccountName" => "default".to_owned(),
        "status.podIP" | "status.podIPs" => facts.pod_ip.clone().unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.clone().unwrap_or_default(),
        other => return Err(format!("unsupported fieldPath: {other}")),
    })
}

/// A map as the downward API writes it to a file: `key="value"` lines, sorted by key,
/// values quoted and escaped.
fn format_map(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={}\n", serde_json::Value::String(v.clone())))
        .collect()
}

/// A container resource for `resourceFieldRef`, divided by the divisor and rounded up;
/// an unset limit is the node's allocatable amount, as in Kubernetes.
pub(super) fn resource_value(
    pod: &Pod,
    default_container: Option<&str>,
    selector: &ResourceFieldSelector,
    facts: &PodFacts,
) -> Result<String, String> {
    let name = if selector.container_name.is_empty() {
        default_container.unwrap_or_default()
    } else {
        selector.container_name.as_str()
    };
    let container = pod
        .spec
        .container(name)
        .ok_or_else(|| format!("no container {name:?} in the pod"))?;
    let (kind, resource) = selector
        .resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported container resource: {}", selector.resource))?;
    let resources = &container.resources;
    let set = match kind {
        "limits" => &resources.limits,
        _ => &resources.requests,
    };
    let divisor = selector.divisor.as_deref().unwrap_or("1");
    let (amount, divisor) = match resource {
        "cpu" => {
            let amount = match set.get("cpu") {
                Some(q) => parse_cpu_millis(q)?,
                None if kind == "limits" => facts.node_cpu_millis,
                None => 0,
            };
            (amount, parse_cpu_millis(divisor)?)
        }
        "memory" => {
            let amount = match set.get("memory") {
                Some(q) => parse_memory_bytes(q)?,
                None if kind == "limits" => facts.node_memory_bytes,
                None => 0,
            };
            (amount, parse_memory_bytes(divisor)?)
        }
        _ => {
            return Err(format!(
                "unsupported container resource: {}",
                selector.resource
            ))
        }
    };
    // A zero divisor means 1, as in Kubernetes.
    Ok(amount.div_ceil(divisor.max(1)).to_string())
}

/// Kubernetes' `$(VAR)` expansion: a defined variable is replaced by its value, `$$`
/// is a literal `$`, and anything else (an undefined name, an unclosed `$(`) stays as
/// written.
pub fn expand(input: &str, vars: &[(String, String)]) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(reference) = after.strip_prefix('(') {
            match reference.find(')') {
                Some(end) => {
                    let name = &reference[..end];
                    match vars.iter().rev().find(|(n, _)| n == name) {
                        Some((_, value)) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &reference[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = reference;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
#[path = "env_tests.rs"]
mod tests;
