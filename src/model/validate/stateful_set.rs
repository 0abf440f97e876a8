//! Validation of a StatefulSet spec: what it shares with a Deployment (selector,
//! template, replicas), its identity (`serviceName`, `ordinals`), how it manages and
//! updates its pods, and its claim templates, each checked as a claim is.

use serde_json::{json, Value};

use super::checker::{get, index, join, Checker, JsonObject};
use super::deployment::{check_replicated_spec, SelectorShape};
use crate::model::{is_dns1123_label, is_dns1123_subdomain};

const SPEC_FIELDS: [&str; 11] = [
    "replicas",
    "selector",
    "template",
    "serviceName",
    "podManagementPolicy",
    "updateStrategy",
    "volumeClaimTemplates",
    "minReadySeconds",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "ordinals",
];

pub(super) fn check_stateful_set_spec(c: &mut Checker, value: Option<&Value>) {
    let claims = value
        .and_then(|spec| spec.get("volumeClaimTemplates"))
        .map(|templates| check_claim_templates(c, templates))
        .unwrap_or_default();
    // The template is checked as the pods will be made: with a volume for each claim
    // template, which its containers' volumeMounts name.
    let with_claims = value.map(|spec| with_claim_volumes(spec, &claims));
    let Some(spec) = check_replicated_spec(
        c,
        with_claims.as_ref(),
        &SPEC_FIELDS,
        SelectorShape::MatchLabels,
    ) else {
        return;
    };
    if let Some(value) = get(spec, "serviceName") {
        if let Some(name) = c.string(value, "spec.serviceName") {
            if !name.is_empty() && !is_dns1123_label(name) {
                c.error(
                    "spec.serviceName",
                    format!("invalid name {name:?}: must be a lowercase RFC 1123 label"),
                );
            }
        }
    }
    if let Some(value) = get(spec, "podManagementPolicy") {
        c.one_of(
            value,
            "spec.podManagementPolicy",
            &["OrderedReady", "Parallel"],
        );
    }
    if let Some(value) = get(spec, "revisionHistoryLimit") {
        c.integer_in(value, "spec.revisionHistoryLimit", 0, i64::from(i32::MAX));
    }
    if let Some(value) = get(spec, "updateStrategy") {
        check_update_strategy(c, value);
    }
    if let Some(value) = get(spec, "persistentVolumeClaimRetentionPolicy") {
        check_retention_policy(c, value);
    }
    if let Some(value) = get(spec, "ordinals") {
        let path = "spec.ordinals";
        if let Some(ordinals) = c.object(value, path) {
            c.only_fields(ordinals, path, &["start"]);
            if let Some(start) = get(ordinals, "start") {
                c.integer_in(start, &join(path, "start"), 0, i64::from(i32::MAX));
            }
        }
    }
}

/// Checks each claim template as a claim; returns the names of the well-formed ones.
fn check_claim_templates(c: &mut Checker, value: &Value) -> Vec<String> {
    let path = "spec.volumeClaimTemplates";
    let Some(templates) = c.list(value, path) else {
        return Vec::new();
    };
    let mut names: Vec<String> = Vec::new();
    for (i, template) in templates.iter().enumerate() {
        let item_path = index(path, i);
        let Some(template) = c.object(template, &item_path) else {
            continue;
        };
        // `apiVersion`, `kind` and `status` appear in templates written out by tools.
        c.only_fields(
            template,
            &item_path,
            &["apiVersion", "kind", "metadata", "spec", "status"],
        );
        super::claim::check_claim_spec(c, get(template, "spec"), &join(&item_path, "spec"));
        if let Some(name) = claim_template_name(c, template, &item_path) {
            if names.contains(&name) {
                c.error(
                    &join(&item_path, "metadata.name"),
                    format!("duplicate value {name:?}"),
                );
            } else {
                names.push(name);
            }
        }
    }
    names
}

fn claim_template_name(c: &mut Checker, template: &JsonObject, path: &str) -> Option<String> {
    let meta_path = join(path, "metadata");
    let Some(meta) = get(template, "metadata").and_then(|m| c.object(m, &meta_path)) else {
        c.required(&join(&meta_path, "name"));
        return None;
    };
    c.only_fields(meta, &meta_path, &["name", "labels", "annotations"]);
    if let Some(value) = get(meta, "labels") {
        c.labels(value, &join(&meta_path, "labels"));
    }
    if let Some(value) = get(meta, "annotations") {
        c.annotations(value, &join(&meta_path, "annotations"));
    }
    let name_path = join(&meta_path, "name");
    let name = match get(meta, "name").map(|v| c.string(v, &name_path)) {
        None | Some(Some("")) => {
            c.required(&name_path);
            return None;
        }
        Some(None) => return None,
        Some(Some(name)) => name,
    };
    if !is_dns1123_subdomain(name) {
        c.error(
            &name_path,
            format!("invalid name {name:?}: must be a lowercase RFC 1123 subdomain"),
        );
        return None;
    }
    Some(name.to_owned())
}

/// `spec` with a `persistentVolumeClaim` volume in its template for each of `claims`
/// that the template does not already name.
fn with_claim_volumes(spec: &Value, claims: &[String]) -> Value {
    let mut spec = spec.clone();
    if claims.is_empty() {
        return spec;
    }
    let Some(pod) = spec
        .get_mut("template")
        .and_then(|t| t.get_mut("spec"))
        .and_then(Value::as_object_mut)
    else {
        return spec;
    };
    let volumes = pod.entry("volumes").or_insert_with(|| json!([]));
    if volumes.is_null() {
        *volumes = json!([]);
    }
    let Some(volumes) = volumes.as_array_mut() else {
        return spec;
    };
    for name in claims {
        if !volumes.iter().any(|v| v.get("name") == Some(&json!(name))) {
            volumes.push(json!({"name": name, "persistentVolumeClaim": {"claimName": name}}));
        }
    }
    spec
}

fn check_update_strategy(c: &mut Checker, value: &Value) {
    let path = "spec.updateStrategy";
    let Some(strategy) = c.object(value, path) else {
        return;
    };
    c.only_fields(strategy, path, &["type", "rollingUpdate"]);
    let strategy_type = match get(strategy, "type") {
        None => Some("RollingUpdate"),
        Some(value) => c.one_of(value, &join(path, "type"), &["RollingUpdate", "OnDelete"]),
    };
    let Some(value) = get(strategy, "rollingUpdate") else {
        return;
    };
    let rolling_path = join(path, "rollingUpdate");
    if strategy_type == Some("OnDelete") {
        c.error(
            &rolling_path,
            "only allowed for updateStrategy 'RollingUpdate'",
        );
        return;
    }
    let Some(rolling) = c.object(value, &rolling_path) else {
        return;
    };
    c.only_fields(rolling, &rolling_path, &["partition"]);
    if let Some(value) = get(rolling, "partition") {
        c.integer_in(
            value,
            &join(&rolling_path, "partition"),
            0,
            i64::from(i32::MAX),
        );
    }
}

fn check_retention_policy(c: &mut Checker, value: &Value) {
    let path = "spec.persistentVolumeClaimRetentionPolicy";
    let Some(policy) = c.object(value, path) else {
        return;
    };
    c.only_fields(policy, path, &["whenDeleted", "whenScaled"]);
    for field in ["whenDeleted", "whenScaled"] {
        let Some(value) = get(policy, field) else {
            continue;
        };
        let field_path = join(path, field);
        if value.as_str() == Some("Delete") {
            c.error(
                &field_path,
                "unsupported value \"Delete\": berth keeps a StatefulSet's claims, and their \
                 data, until they are deleted by name (\"Retain\")",
            );
        } else {
            c.one_of(value, &field_path, &["Retain"]);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{parse_manifests, Object};

    fn errors(spec: &str) -> Vec<String> {
        let yaml = format!(
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: db}}\nspec:\n{spec}"
        );
        match parse_manifests(&yaml) {
            Ok(_) => Vec::new(),
            Err(e) => e.to_string().lines().map(str::to_owned).collect(),
        }
    }

    const TEMPLATE: &str = "  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: db
        image: busybox
        volumeMounts: [{name: data, mountPath: /data}]
";

    #[test]
    fn a_documentation_style_set_is_accepted_with_defaults() {
        let yaml = format!(
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: db}}\nspec:\n  serviceName: db\n  replicas: 3\n{TEMPLATE}  volumeClaimTemplates:\n  - metadata: {{name: data}}\n    spec:\n      accessModes: [ReadWriteOnce]\n      resources: {{requests: {{storage: 1Gi}}}}\n"
        );
        let objects = parse_manifests(&yaml).expect("valid");
        let Object::StatefulSet(set) = &objects[0] else {
            panic!("not a StatefulSet");
        };
        assert_eq!(set.spec.replicas, 3);
        assert_eq!(set.spec.pod_management_policy, "OrderedReady");
        assert_eq!(set.spec.update_strategy.type_, "RollingUpdate");
        assert_eq!(set.spec.volume_claim_templates[0].metadata.name, "data");
    }

    #[test]
    fn a_mount_needs_a_volume_or_a_claim_template() {
        let found = errors(TEMPLATE);
        assert!(
            found
                .iter()
                .any(|e| e.contains("volumeMounts[0].name: not found \"data\"")),
            "{found:?}"
        );
    }

    #[test]
    fn wrong_fields_are_named() {
        let spec = format!(
            "{TEMPLATE}  podManagementPolicy: Sometimes\n  serviceName: Db_1\n  updateStrategy: {{type: OnDelete, rollingUpdate: {{partition: 1}}}}\n  persistentVolumeClaimRetentionPolicy: {{whenDeleted: Delete}}\n  ordinals: {{start: -1}}\n  volumeClaimTemplates:\n  - metadata: {{name: data}}\n    spec: {{accessModes: [ReadWriteMany], resources: {{requests: {{storage: 1Gi}}}}}}\n  - metadata: {{name: data}}\n    spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}\n"
        );
        let found = errors(&spec).join("\n");
        for expected in [
            "spec.podManagementPolicy: unsupported value \"Sometimes\"",
            "spec.serviceName: invalid name \"Db_1\"",
            "spec.updateStrategy.rollingUpdate: only allowed for updateStrategy 'RollingUpdate'",
            "spec.persistentVolumeClaimRetentionPolicy.whenDeleted: unsupported value \"Delete\"",
            "spec.ordinals.start: must be greater than or equal to 0",
            "spec.volumeClaimTemplates[0].spec.accessModes[0]: unsupported value \"ReadWriteMany\"",
            "spec.volumeClaimTemplates[1].metadata.name: duplicate value \"data\"",
        ] {
            assert!(found.contains(expected), "{expected} not in\n{found}");
        }
    }

    #[test]
    fn a_set_name_must_leave_room_for_ordinals() {
        let yaml = format!(
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: {}}}\nspec:\n{TEMPLATE}  volumeClaimTemplates:\n  - metadata: {{name: data}}\n    spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}\n",
            "a".repeat(53)
        );
        let err = parse_manifests(&yaml).expect_err("too long").to_string();
        assert!(err.contains("metadata.name: invalid name"), "{err}");
    }
}
