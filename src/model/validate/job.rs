//! Validation of a Job spec and a CronJob spec (batch/v1).

use serde_json::Value;

use super::checker::{get, Checker};
use super::deployment::check_template;
use crate::model::{zone, Schedule};
use failure_policy::check_pod_failure_policy;

const JOB_FIELDS: [&str; 14] = [
    "parallelism",
    "completions",
    "completionMode",
    "backoffLimit",
    "activeDeadlineSeconds",
    "ttlSecondsAfterFinished",
    "suspend",
    "selector",
    "manualSelector",
    "podFailurePolicy",
    "backoffLimitPerIndex",
    "maxFailedIndexes",
    "successPolicy",
    "template",
];

const CRON_JOB_FIELDS: [&str; 8] = [
    "schedule",
    "timeZone",
    "startingDeadlineSeconds",
    "concurrencyPolicy",
    "suspend",
    "jobTemplate",
    "successfulJobsHistoryLimit",
    "failedJobsHistoryLimit",
];

pub(super) fn check_job_spec(c: &mut Checker, value: Option<&Value>, path: &str) {
    let Some(value) = value else {
        c.required(path);
        return;
    };
    let Some(spec) = c.object(value, path) else {
        return;
    };
    c.only_fields(spec, path, &JOB_FIELDS);
    for field in [
        "parallelism",
        "completions",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        if let Some(value) = get(spec, field) {
            c.integer_in(value, &format!("{path}.{field}"), 0, i64::from(i32::MAX));
        }
    }
    if let Some(value) = get(spec, "activeDeadlineSeconds") {
        c.integer_in(value, &format!("{path}.activeDeadlineSeconds"), 1, i64::MAX);
    }
    let mut indexed = false;
    if let Some(value) = get(spec, "completionMode") {
        let mode = c.one_of(
            value,
            &format!("{path}.completionMode"),
            &["NonIndexed", "Indexed"],
        );
        indexed = mode == Some("Indexed");
        if indexed && get(spec, "completions").is_none() {
            c.error(
                &format!("{path}.completions"),
                "when completion mode is Indexed: Required value",
            );
        }
    }
    for field in ["suspend", "manualSelector"] {
        if let Some(value) = get(spec, field) {
            c.boolean(value, &format!("{path}.{field}"));
        }
    }
    if let Some(value) = get(spec, "selector") {
        // Accepted as kubectl would send it; pods are found by their owner reference.
        c.object(value, &format!("{path}.selector"));
    }
    let template = format!("{path}.template");
    check_template(c, get(spec, "template"), &template, false);
    let restart_policy = get(spec, "template")
        .and_then(|t| t.pointer("/spec/restartPolicy"))
        .and_then(Value::as_str);
    indexes::check_index_fields(c, spec, path, indexed);
    let per_index = get(spec, "backoffLimitPerIndex").is_some();
    let policy = get(spec, "podFailurePolicy");
    if let Some(value) = policy {
        let policy_path = format!("{path}.podFailurePolicy");
        check_pod_failure_policy(c, value, &policy_path, get(spec, "template"), per_index);
    }
    match restart_policy {
        Some("OnFailure") if per_index => c.error(
            &format!("{template}.spec.restartPolicy"),
            "invalid value \"OnFailure\": only \"Never\" is supported when \
             backoffLimitPerIndex is specified",
        ),
        // The policy judges failed pods; a pod whose containers restart does not fail.
        Some("OnFailure") if policy.is_some() => c.error(
            &format!("{template}.spec.restartPolicy"),
            "invalid value \"OnFailure\": only \"Never\" is supported when podFailurePolicy \
             is specified",
        ),
        Some("OnFailure" | "Never") => {}
        Some("Always") | None => c.error(
            &format!("{template}.spec.restartPolicy"),
            "unsupported value \"Always\": supported values: \"OnFailure\", \"Never\"",
        ),
        // Any other value was reported by the template's check.
        Some(_) => {}
    }
}

pub(super) fn check_cron_job_spec(c: &mut Checker, value: Option<&Value>) {
    let Some(value) = value else {
        c.required("spec");
        return;
    };
    let Some(spec) = c.object(value, "spec") else {
        return;
    };
    c.only_fields(spec, "spec", &CRON_JOB_FIELDS);
    match get(spec, "schedule") {
        None => c.required("spec.schedule"),
        Some(value) => {
            if let Some(text) = c.string(value, "spec.schedule") {
                check_schedule(c, text);
            }
        }
    }
    // What the name alone tells; whether its zone file exists is for admission to say
    // (the API's `zoneinfo`), as only an edge reads files.
    if let Some(value) = get(spec, "timeZone") {
        if let Some(zone) = c.string(value, "spec.timeZone") {
            if let Some(problem) = zone::name_problem(zone) {
                c.error(
                    "spec.timeZone",
                    format!("invalid value {zone:?}: {problem}"),
                );
            }
        }
    }
    for field in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        if let Some(value) = get(spec, field) {
            c.integer_in(value, &format!("spec.{field}"), 0, i64::from(i32::MAX));
        }
    }
    if let Some(value) = get(spec, "concurrencyPolicy") {
        c.one_of(
            value,
            "spec.concurrencyPolicy",
            &["Allow", "Forbid", "Replace"],
        );
    }
    if let Some(value) = get(spec, "suspend") {
        c.boolean(value, "spec.suspend");
    }
    let Some(value) = get(spec, "jobTemplate") else {
        c.required("spec.jobTemplate");
        return;
    };
    let Some(template) = c.object(value, "spec.jobTemplate") else {
        return;
    };
    c.only_fields(template, "spec.jobTemplate", &["metadata", "spec"]);
    if let Some(value) = get(template, "metadata") {
        if let Some(meta) = c.object(value, "spec.jobTemplate.metadata") {
            c.only_fields(
                meta,
                "spec.jobTemplate.metadata",
                &["labels", "annotations", "creationTimestamp"],
            );
            if let Some(value) = get(meta, "labels") {
                c.labels(value, "spec.jobTemplate.metadata.labels");
            }
        }
    }
    check_job_spec(c, get(template, "spec"), "spec.jobTemplate.spec");
}

/// A schedule parses, and names no time zone of its own: Kubernetes refuses `TZ=` and
/// `CRON_TZ=` prefixes in new schedules since `spec.timeZone` (and berth never took them).
fn check_schedule(c: &mut Checker, text: &str) {
    let mut fields = text;
    if text.contains("TZ") {
        c.error(
            "spec.schedule",
            format!(
                "invalid value {text:?}: cannot use TZ or CRON_TZ in schedule, use timeZone \
                 field instead"
            ),
        );
        // The fields after a `TZ=<zone>` prefix are still checked, as Kubernetes' parser
        // reads past it.
        let trimmed = text.trim_start();
        if trimmed.starts_with("TZ=") || trimmed.starts_with("CRON_TZ=") {
            fields = trimmed
                .split_once(char::is_whitespace)
                .map_or("", |(_, rest)| rest);
        }
    }
    if let Err(err) = Schedule::parse(fields) {
        c.error("spec.schedule", format!("invalid value {text:?}: {err}"));
    }
}

#[cfg(test)]
#[path = "cron_job_tests.rs"]
mod cron_job_tests;
#[path = "job_failure_policy.rs"]
mod failure_policy;
#[path = "job_indexes.rs"]
mod indexes;
