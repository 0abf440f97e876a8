//! Validation of a Job spec (batch/v1).

use serde_json::Value;

use super::checker::{get, Checker};
use super::deployment::check_template;

const JOB_FIELDS: [&str; 10] = [
    "parallelism",
    "completions",
    "completionMode",
    "backoffLimit",
    "activeDeadlineSeconds",
    "ttlSecondsAfterFinished",
    "suspend",
    "selector",
    "manualSelector",
    "template",
];

pub(super) fn check_job_spec(c: &mut Checker, value: Option<&Value>) {
    let Some(value) = value else {
        c.required("spec");
        return;
    };
    let Some(spec) = c.object(value, "spec") else {
        return;
    };
    c.only_fields(spec, "spec", &JOB_FIELDS);
    for field in [
        "parallelism",
        "completions",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        if let Some(value) = get(spec, field) {
            c.integer_in(value, &format!("spec.{field}"), 0, i64::from(i32::MAX));
        }
    }
    if let Some(value) = get(spec, "activeDeadlineSeconds") {
        c.integer_in(value, "spec.activeDeadlineSeconds", 1, i64::MAX);
    }
    if let Some(value) = get(spec, "completionMode") {
        let mode = c.one_of(value, "spec.completionMode", &["NonIndexed", "Indexed"]);
        if mode == Some("Indexed") && get(spec, "completions").is_none() {
            c.error(
                "spec.completions",
                "when completion mode is Indexed: Required value",
            );
        }
    }
    for field in ["suspend", "manualSelector"] {
        if let Some(value) = get(spec, field) {
            c.boolean(value, &format!("spec.{field}"));
        }
    }
    if let Some(value) = get(spec, "selector") {
        // Accepted as kubectl would send it; pods are found by their owner reference.
        c.object(value, "spec.selector");
    }
    check_template(c, get(spec, "template"), false);
    let restart_policy = get(spec, "template")
        .and_then(|t| t.pointer("/spec/restartPolicy"))
        .and_then(Value::as_str);
    match restart_policy {
        Some("OnFailure" | "Never") => {}
        // A wrong value was already reported by the template's check.
        Some("Always") | None => c.error(
            "spec.template.spec.restartPolicy",
            "unsupported value \"Always\": supported values: \"OnFailure\", \"Never\"",
        ),
        Some(_) => {}
    }
}
