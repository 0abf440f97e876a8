//! The parts of `describe pod` about configuration: each container's environment
//! sources and mounts, and the pod's volumes, in kubectl's words. Secret values are never
//! printed, only where they come from.

use serde_json::Value;

use super::field;

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn optional(value: &Value) -> bool {
    value
        .get("optional")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn items(value: &Value, key: &str) -> Vec<Value> {
    value
        .get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// `Environment Variables from:`, `Environment:` and `Mounts:` of one container.
pub fn describe_container_config(out: &mut String, container: &Value) {
    let sources = items(container, "envFrom");
    if !sources.is_empty() {
        out.push_str("    Environment Variables from:\n");
        for source in &sources {
            let (kind, reference) = match source.get("configMapRef") {
                Some(r) => ("ConfigMap", r),
                None => ("Secret", source.get("secretRef").unwrap_or(&Value::Null)),
            };
            let prefix = match text(source, "prefix") {
                "" => String::new(),
                p => format!(" with prefix '{p}'"),
            };
            out.push_str(&format!(
                "      {}\t{kind}{prefix}\tOptional: {}\n",
                text(reference, "name"),
                optional(reference)
            ));
        }
    }
    let env = items(container, "env");
    if env.is_empty() {
        out.push_str("    Environment:\t<none>\n");
    } else {
        out.push_str("    Environment:\n");
        for var in &env {
            let shown = match var.get("valueFrom") {
                Some(from) => value_from_text(from),
                None => text(var, "value").to_owned(),
            };
            out.push_str(&format!("      {}:\t{shown}\n", text(var, "name")));
        }
    }
    let mounts = items(container, "volumeMounts");
    if mounts.is_empty() {
        out.push_str("    Mounts:\t<none>\n");
        return;
    }
    out.push_str("    Mounts:\n");
    for mount in &mounts {
        let read_only = mount.get("readOnly").and_then(Value::as_bool) == Some(true);
        let sub_path = match text(mount, "subPath") {
            "" => String::new(),
            s => format!(",path=\"{s}\""),
        };
        out.push_str(&format!(
            "      {} from {} ({}{sub_path})\n",
            text(mount, "mountPath"),
            text(mount, "name"),
            if read_only { "ro" } else { "rw" }
        ));
    }
}

fn value_from_text(from: &Value) -> String {
    if let Some(r) = from.get("configMapKeyRef") {
        return format!(
            "<set to the key '{}' of config map '{}'>\tOptional: {}",
            text(r, "key"),
            text(r, "name"),
            optional(r)
        );
    }
    if let Some(r) = from.get("secretKeyRef") {
        return format!(
            "<set to the key '{}' in secret '{}'>\tOptional: {}",
            text(r, "key"),
            text(r, "name"),
            optional(r)
        );
    }
    if let Some(r) = from.get("fieldRef") {
        let version = match text(r, "apiVersion") {
            "" => "v1",
            v => v,
        };
        return format!(" ({version}:{})", text(r, "fieldPath"));
    }
    if let Some(r) = from.get("resourceFieldRef") {
        let divisor = match r.get("divisor") {
            Some(Value::String(d)) => d.clone(),
            Some(other) => other.to_string(),
            None => "1".to_owned(),
        };
        let container = text(r, "containerName");
        return format!(
            "{} ({}) (divisor: {divisor})",
            text(r, "resource"),
            if container.is_empty() { "" } else { container }
        );
    }
    String::new()
}

/// The pod's `Volumes:` section.
pub fn describe_volumes(out: &mut String, pod: &Value) {
    let volumes = pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if volumes.is_empty() {
        out.push_str("Volumes:\t<none>\n");
        return;
    }
    out.push_str("Volumes:\n");
    for volume in &volumes {
        out.push_str(&format!("  {}:\n", text(volume, "name")));
        describe_source(out, volume);
    }
}

fn describe_source(out: &mut String, volume: &Value) {
    if let Some(s) = volume.get("configMap") {
        field(
            out,
            4,
            "Type",
            "ConfigMap (a volume populated by a ConfigMap)",
        );
        field(out, 4, "Name", text(s, "name"));
        field(out, 4, "Optional", optional(s));
    } else if let Some(s) = volume.get("secret") {
        field(out, 4, "Type", "Secret (a volume populated by a Secret)");
        field(out, 4, "SecretName", text(s, "secretName"));
        field(out, 4, "Optional", optional(s));
    } else if let Some(s) = volume.get("hostPath") {
        field(out, 4, "Type", "HostPath (bare host directory volume)");
        field(out, 4, "Path", text(s, "path"));
        field(out, 4, "HostPathType", text(s, "type"));
    } else if let Some(s) = volume.get("persistentVolumeClaim") {
        let read_only = s.get("readOnly").and_then(Value::as_bool) == Some(true);
        let kind = "PersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same \
                    namespace)";
        field(out, 4, "Type", kind);
        field(out, 4, "ClaimName", text(s, "claimName"));
        field(out, 4, "ReadOnly", read_only);
    } else if let Some(s) = volume.get("downwardAPI") {
        field(
            out,
            4,
            "Type",
            "DownwardAPI (a volume populated by information about the pod)",
        );
        describe_downward_items(out, s);
    } else if let Some(s) = volume.get("projected") {
        let kind = "Projected (a volume that contains injected data from multiple sources)";
        field(out, 4, "Type", kind);
        for source in items(s, "sources") {
            if let Some(c) = source.get("configMap") {
                field(out, 4, "ConfigMapName", text(c, "name"));
                field(out, 4, "Optional", optional(c));
            } else if let Some(c) = source.get("secret") {
                field(out, 4, "SecretName", text(c, "name"));
                field(out, 4, "Optional", optional(c));
            } else if let Some(d) = source.get("downwardAPI") {
                field(out, 4, "DownwardAPI", "true");
                describe_downward_items(out, d);
            }
        }
    } else {
        let empty = volume.get("emptyDir").unwrap_or(&Value::Null);
        let kind = "EmptyDir (a temporary directory that shares a pod's lifetime)";
        field(out, 4, "Type", kind);
        field(out, 4, "Medium", text(empty, "medium"));
        let limit = match empty.get("sizeLimit") {
            Some(Value::String(l)) => l.clone(),
            Some(other) => other.to_string(),
            None => "<unset>".to_owned(),
        };
        field(out, 4, "SizeLimit", limit);
    }
}

fn describe_downward_items(out: &mut String, source: &Value) {
    for item in items(source, "items") {
        let from = match (item.get("fieldRef"), item.get("resourceFieldRef")) {
            (Some(f), _) => text(f, "fieldPath").to_owned(),
            (None, Some(r)) => text(r, "resource").to_owned(),
            (None, None) => continue,
        };
        out.push_str(&format!("      {from} -> {}\n", text(&item, "path")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shows_sources_and_never_secret_values() {
        let container = json!({
            "envFrom": [{"configMapRef": {"name": "app"}, "prefix": "CFG_"}],
            "env": [
                {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "pw"}}},
                {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "PLAIN", "value": "x"}
            ],
            "volumeMounts": [{"name": "config", "mountPath": "/etc/app", "readOnly": true}]
        });
        let mut out = String::new();
        describe_container_config(&mut out, &container);
        assert!(out.contains("app\tConfigMap with prefix 'CFG_'\tOptional: false"));
        assert!(out.contains("PASSWORD:\t<set to the key 'pw' in secret 'creds'>"));
        assert!(out.contains("NS:\t (v1:metadata.namespace)"));
        assert!(out.contains("PLAIN:\tx"));
        assert!(out.contains("/etc/app from config (ro)"));

        let pod = json!({"spec": {"volumes": [
            {"name": "config", "configMap": {"name": "app"}},
            {"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
            {"name": "gpio", "hostPath": {"path": "/dev/gpiomem", "type": "CharDevice"}}
        ]}});
        let mut out = String::new();
        describe_volumes(&mut out, &pod);
        assert!(out.contains("  config:\n    Type:"), "{out}");
        let line = |label: &str, value: &str| {
            out.lines()
                .any(|l| l.trim_start().starts_with(label) && l.trim_end().ends_with(value))
        };
        assert!(line("Medium:", "Memory"), "{out}");
        assert!(line("SizeLimit:", "1Mi"), "{out}");
        assert!(line("HostPathType:", "CharDevice"), "{out}");
    }
}
