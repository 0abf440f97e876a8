//! `describe persistentvolumeclaim`, laid out as kubectl does: class, status, volume,
//! capacity, access modes, and the pods that use the claim (`Used By`). Pure.

use serde_json::Value;

use super::field;
use crate::cli::output::str_at;
use crate::cli::tables::{access_modes_text, claim_status};

fn or_none(text: &str) -> &str {
    if text.is_empty() {
        "<none>"
    } else {
        text
    }
}

/// The claim's own lines, after the common header; `pods` are the pods of its namespace,
/// of which those naming the claim in a volume are listed as its users.
pub fn describe_claim(out: &mut String, claim: &Value, pods: &[Value]) {
    field(
        out,
        0,
        "StorageClass",
        str_at(claim, &["spec", "storageClassName"]),
    );
    field(out, 0, "Status", claim_status(claim));
    field(out, 0, "Volume", str_at(claim, &["spec", "volumeName"]));
    field(
        out,
        0,
        "Capacity",
        str_at(claim, &["status", "capacity", "storage"]),
    );
    field(
        out,
        0,
        "Access Modes",
        access_modes_text(&claim["status"]["accessModes"]),
    );
    field(out, 0, "VolumeMode", str_at(claim, &["spec", "volumeMode"]));
    let name = str_at(claim, &["metadata", "name"]);
    let users: Vec<&str> = pods
        .iter()
        .filter(|pod| {
            pod["spec"]["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|v| str_at(v, &["persistentVolumeClaim", "claimName"]) == name)
        })
        .map(|pod| str_at(pod, &["metadata", "name"]))
        .collect();
    field(
        out,
        0,
        "Used By",
        or_none(&users.join("\n                        ")),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_bound_claim_lists_its_users() {
        let claim = json!({"metadata": {"name": "data"},
            "spec": {"storageClassName": "local-path", "volumeName": "pvc-1", "volumeMode": "Filesystem"},
            "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}});
        let user = json!({"metadata": {"name": "db-0"},
            "spec": {"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "data"}}]}});
        let other = json!({"metadata": {"name": "web"}, "spec": {"volumes": [{"name": "v", "emptyDir": {}}]}});
        let mut out = String::new();
        describe_claim(&mut out, &claim, &[user, other]);
        assert!(out.contains("Status:                 Bound\n"), "{out}");
        assert!(out.contains("Volume:                 pvc-1\n"), "{out}");
        assert!(out.contains("Capacity:               1Gi\n"), "{out}");
        assert!(out.contains("Access Modes:           RWO\n"), "{out}");
        assert!(out.contains("Used By:                db-0\n"), "{out}");
        let mut out = String::new();
        describe_claim(&mut out, &json!({"metadata": {"name": "x"}}), &[]);
        assert!(out.contains("Status:                 Pending\n"), "{out}");
        assert!(out.contains("Used By:                <none>\n"), "{out}");
    }
}
