//! The rows of `get persistentvolumeclaims`, with kubectl's cells: the phase (or
//! `Terminating`), the volume, the recorded capacity and the access modes abbreviated
//! (`RWO`, `RWOP`). Pure.

use serde_json::Value;

use crate::cli::output::{age, at, str_at};

pub(super) const CLAIM_COLUMNS: [&str; 7] = [
    "NAME",
    "STATUS",
    "VOLUME",
    "CAPACITY",
    "ACCESS MODES",
    "STORAGECLASS",
    "AGE",
];

/// kubectl's short forms of access modes, joined by `,`.
pub(crate) fn access_modes_text(modes: &Value) -> String {
    modes
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|mode| match mode {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `Terminating` while a claim waits for its pods to let go, else its phase.
pub(crate) fn claim_status(claim: &Value) -> String {
    if !at(claim, &["metadata", "deletionTimestamp"]).is_null() {
        return "Terminating".to_owned();
    }
    match str_at(claim, &["status", "phase"]) {
        "" => "Pending".to_owned(),
        phase => phase.to_owned(),
    }
}

pub(super) fn claim_row(claim: &Value) -> Vec<String> {
    vec![
        str_at(claim, &["metadata", "name"]).to_owned(),
        claim_status(claim),
        str_at(claim, &["spec", "volumeName"]).to_owned(),
        str_at(claim, &["status", "capacity", "storage"]).to_owned(),
        access_modes_text(at(claim, &["status", "accessModes"])),
        str_at(claim, &["spec", "storageClassName"]).to_owned(),
        age(str_at(claim, &["metadata", "creationTimestamp"])),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bound_and_pending_claims_read_as_in_kubectl() {
        let bound = json!({"metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                     "volumeName": "pvc-1234"},
            "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce", "ReadWriteOncePod"],
                       "capacity": {"storage": "1Gi"}}});
        assert_eq!(
            claim_row(&bound)[..6],
            ["data", "Bound", "pvc-1234", "1Gi", "RWO,RWOP", "local-path"]
        );
        let pending = json!({"metadata": {"name": "new"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path"}});
        assert_eq!(
            claim_row(&pending)[..6],
            ["new", "Pending", "", "", "", "local-path"]
        );
        let going = json!({"metadata": {"name": "old", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"phase": "Bound"}});
        assert_eq!(claim_status(&going), "Terminating");
    }
}
