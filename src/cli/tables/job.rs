//! The tables of Jobs (`NAME STATUS COMPLETIONS DURATION AGE`) and CronJobs, with
//! kubectl's columns.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::super::output::{age, at, human_duration, int_at, str_at};

pub fn job_columns(wide: bool) -> &'static [&'static str] {
    const NARROW: [&str; 5] = ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"];
    const WIDE: [&str; 8] = [
        "NAME",
        "STATUS",
        "COMPLETIONS",
        "DURATION",
        "AGE",
        "CONTAINERS",
        "IMAGES",
        "SELECTOR",
    ];
    if wide {
        &WIDE
    } else {
        &NARROW
    }
}

pub fn job_row(job: &Value, wide: bool, now: SystemTime) -> Vec<String> {
    let succeeded = int_at(job, &["status", "succeeded"]);
    let completions = match at(job, &["spec", "completions"]).as_i64() {
        Some(completions) => format!("{succeeded}/{completions}"),
        // A work queue: kubectl shows how many may run at once.
        None => {
            let parallelism = at(job, &["spec", "parallelism"]).as_i64().unwrap_or(1);
            format!("{succeeded}/1 of {parallelism}")
        }
    };
    let mut row = vec![
        str_at(job, &["metadata", "name"]).to_owned(),
        job_status(job).to_owned(),
        completions,
        duration(job, now),
        age(str_at(job, &["metadata", "creationTimestamp"])),
    ];
    if wide {
        let containers = at(job, &["spec", "template", "spec", "containers"])
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let names: Vec<&str> = containers.iter().map(|c| str_at(c, &["name"])).collect();
        let images: Vec<&str> = containers.iter().map(|c| str_at(c, &["image"])).collect();
        let uid = str_at(job, &["metadata", "uid"]);
        row.extend([
            names.join(","),
            images.join(","),
            format!("batch.kubernetes.io/controller-uid={uid}"),
        ]);
    }
    row
}

/// kubectl's STATUS of a Job: its final condition, `Suspended`, or `Running`.
fn job_status(job: &Value) -> &'static str {
    let conditions = at(job, &["status", "conditions"]).as_array();
    let holds = |type_: &str| {
        conditions
            .into_iter()
            .flatten()
            .any(|c| str_at(c, &["type"]) == type_ && str_at(c, &["status"]) == "True")
    };
    if holds("Complete") {
        "Complete"
    } else if holds("Failed") {
        "Failed"
    } else if at(job, &["spec", "suspend"]).as_bool() == Some(true) {
        "Suspended"
    } else {
        "Running"
    }
}

/// From the start to the completion (or to now while it runs); empty before it starts.
fn duration(job: &Value, now: SystemTime) -> String {
    let Ok(start) = humantime::parse_rfc3339(str_at(job, &["status", "startTime"])) else {
        return String::new();
    };
    let end = humantime::parse_rfc3339(str_at(job, &["status", "completionTime"])).unwrap_or(now);
    human_duration(end.duration_since(start).unwrap_or(Duration::ZERO))
}

pub fn cron_job_columns(wide: bool) -> &'static [&'static str] {
    const NARROW: [&str; 7] = [
        "NAME",
        "SCHEDULE",
        "TIMEZONE",
        "SUSPEND",
        "ACTIVE",
        "LAST SCHEDULE",
        "AGE",
    ];
    const WIDE: [&str; 10] = [
        "NAME",
        "SCHEDULE",
        "TIMEZONE",
        "SUSPEND",
        "ACTIVE",
        "LAST SCHEDULE",
        "AGE",
        "CONTAINERS",
        "IMAGES",
        "SELECTOR",
    ];
    if wide {
        &WIDE
    } else {
        &NARROW
    }
}

pub fn cron_job_row(cron_job: &Value, wide: bool) -> Vec<String> {
    let or_none = |text: &str| {
        if text.is_empty() {
            "<none>".to_owned()
        } else {
            text.to_owned()
        }
    };
    let last = str_at(cron_job, &["status", "lastScheduleTime"]);
    let mut row = vec![
        str_at(cron_job, &["metadata", "name"]).to_owned(),
        str_at(cron_job, &["spec", "schedule"]).to_owned(),
        or_none(str_at(cron_job, &["spec", "timeZone"])),
        if at(cron_job, &["spec", "suspend"]).as_bool() == Some(true) {
            "True".to_owned()
        } else {
            "False".to_owned()
        },
        at(cron_job, &["status", "active"])
            .as_array()
            .map_or(0, Vec::len)
            .to_string(),
        if last.is_empty() {
            "<none>".to_owned()
        } else {
            age(last)
        },
        age(str_at(cron_job, &["metadata", "creationTimestamp"])),
    ];
    if wide {
        let containers = at(
            cron_job,
            &[
                "spec",
                "jobTemplate",
                "spec",
                "template",
                "spec",
                "containers",
            ],
        )
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
        let names: Vec<&str> = containers.iter().map(|c| str_at(c, &["name"])).collect();
        let images: Vec<&str> = containers.iter().map(|c| str_at(c, &["image"])).collect();
        row.extend([names.join(","), images.join(","), "<none>".to_owned()]);
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_show_status_completions_and_duration() {
        let job = json!({
            "metadata": {"name": "pi", "uid": "u1"},
            "spec": {"completions": 3, "template": {"spec": {"containers": [
                {"name": "pi", "image": "busybox"}]}}},
            "status": {"succeeded": 3, "startTime": "2026-12-03T08:00:00Z",
                       "completionTime": "2026-12-03T08:00:42Z",
                       "conditions": [{"type": "Complete", "status": "True"}]}
        });
        let row = job_row(&job, true, SystemTime::now());
        assert_eq!(&row[..4], ["pi", "Complete", "3/3", "42s"]);
        assert_eq!(
            &row[5..],
            ["pi", "busybox", "batch.kubernetes.io/controller-uid=u1"]
        );
        let queue = json!({"metadata": {"name": "q"}, "spec": {"parallelism": 2},
                           "status": {"startTime": "2026-12-03T08:00:00Z"}});
        let now = humantime::parse_rfc3339("2026-12-03T08:00:05Z").unwrap();
        assert_eq!(
            &job_row(&queue, false, now)[1..4],
            ["Running", "0/1 of 2", "5s"]
        );
        assert_eq!(job_columns(true).len(), row.len());
    }

    #[test]
    fn cron_job_rows_show_schedule_and_last_run() {
        let cron_job = json!({
            "metadata": {"name": "upload"},
            "spec": {"schedule": "*/15 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "up", "image": "busybox"}]}}}}},
            "status": {"active": [{"name": "upload-1"}]}
        });
        let row = cron_job_row(&cron_job, true);
        assert_eq!(
            &row[..6],
            ["upload", "*/15 * * * *", "<none>", "False", "1", "<none>"]
        );
        assert_eq!(cron_job_columns(true).len(), row.len());
    }
}
