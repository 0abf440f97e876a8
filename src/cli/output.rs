//! Rendering objects for people: kubectl-style tables, JSON and YAML.
//!
//! Tables are built on the client from the Kubernetes-shaped JSON the server returns,
//! so the server has one representation and the CLI decides how it looks.

use std::time::{Duration, SystemTime};

use anyhow::bail;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Wide,
    Json,
    Yaml,
}

impl Format {
    pub fn parse(s: &str) -> anyhow::Result<Format> {
        Ok(match s {
            "table" | "" => Format::Table,
            "wide" => Format::Wide,
            "json" => Format::Json,
            "yaml" => Format::Yaml,
            other => bail!("unknown output format {other:?}: use table, wide, json or yaml"),
        })
    }
}

/// Prints a JSON or YAML document.
pub fn print_document(format: Format, value: &Value) -> anyhow::Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Format::Yaml => print!("{}", serde_yaml_ng::to_string(value)?),
        Format::Table | Format::Wide => bail!("internal: tables are printed by print_table"),
    }
    Ok(())
}

/// Prints rows as left-aligned columns separated by three spaces, like kubectl.
pub fn print_columns(header: &[&str], rows: &[Vec<String>]) {
    let mut columns = Columns::fit(header, rows);
    println!("{}", columns.line(header));
    for row in rows {
        println!("{}", columns.line(row));
    }
}

/// Column widths of a table; rows printed later (a watch's) keep them, widening a
/// column only when a cell does not fit.
pub struct Columns {
    widths: Vec<usize>,
}

impl Columns {
    pub fn fit(header: &[&str], rows: &[Vec<String>]) -> Columns {
        let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
        for row in rows {
            for (i, cell) in row.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(cell.len());
                }
            }
        }
        Columns { widths }
    }

    /// One line: cells padded to their column, three spaces apart, no trailing blanks.
    pub fn line<S: AsRef<str>>(&mut self, cells: &[S]) -> String {
        let mut out = String::new();
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.iter().enumerate() {
            let cell = cell.as_ref();
            if i == last {
                out.push_str(cell);
                break;
            }
            if i >= self.widths.len() {
                self.widths.push(0);
            }
            self.widths[i] = self.widths[i].max(cell.len());
            out.push_str(&format!("{:width$}   ", cell, width = self.widths[i]));
        }
        out.trim_end().to_owned()
    }
}

/// Looks up a dotted path of object keys, e.g. `str_at(v, &["metadata", "name"])`.
pub fn at<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    let mut current = value;
    for key in path {
        current = current.get(key).unwrap_or(&Value::Null);
    }
    current
}

pub fn str_at<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    at(value, path).as_str().unwrap_or("")
}

pub fn int_at(value: &Value, path: &[&str]) -> i64 {
    at(value, path).as_i64().unwrap_or(0)
}

/// kubectl's AGE column: `45s`, `3m12s`, `5h`, `2d`.
pub fn age(timestamp: &str) -> String {
    let Ok(then) = humantime::parse_rfc3339(timestamp) else {
        return "<unknown>".to_owned();
    };
    let elapsed = SystemTime::now()
        .duration_since(then)
        .unwrap_or(Duration::ZERO);
    human_duration(elapsed)
}

pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=599 => format!("{}m{}s", s / 60, s % 60),
        600..=10799 => format!("{}m", s / 60),
        10800..=172799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// The STATUS column of `get pods`, computed the way kubectl does: a terminating pod
/// says so, otherwise the most telling container reason, otherwise the phase.
pub fn pod_status_column(pod: &Value) -> String {
    if !at(pod, &["metadata", "deletionTimestamp"]).is_null() {
        return "Terminating".to_owned();
    }
    if let Some(reason) = init_reason(pod) {
        return reason;
    }
    let gated = at(pod, &["status", "conditions"])
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| {
            str_at(c, &["type"]) == "PodScheduled" && str_at(c, &["reason"]) == "SchedulingGated"
        });
    if gated {
        return "SchedulingGated".to_owned();
    }
    let statuses = at(pod, &["status", "containerStatuses"]).as_array();
    let mut reason = String::new();
    for status in statuses.into_iter().flatten() {
        let waiting = str_at(status, &["state", "waiting", "reason"]);
        let terminated = str_at(status, &["state", "terminated", "reason"]);
        if !waiting.is_empty() {
            reason = waiting.to_owned();
        } else if !terminated.is_empty() && reason.is_empty() {
            reason = terminated.to_owned();
        }
    }
    let phase = str_at(pod, &["status", "phase"]);
    if !reason.is_empty() && phase != "Running" || reason == "CrashLoopBackOff" {
        return reason;
    }
    if phase.is_empty() {
        "Pending".to_owned()
    } else {
        phase.to_owned()
    }
}

/// While init containers have work left, what kubectl shows for them: `Init:1/2` (one
/// of two done), `Init:Error`, `Init:CrashLoopBackOff`, `Init:ExitCode:3`, ...
fn init_reason(pod: &Value) -> Option<String> {
    let total = at(pod, &["spec", "initContainers"])
        .as_array()
        .map_or(0, Vec::len);
    let statuses = at(pod, &["status", "initContainerStatuses"]).as_array()?;
    let specs = at(pod, &["spec", "initContainers"]).as_array();
    for (i, status) in statuses.iter().enumerate() {
        let sidecar = specs
            .and_then(|s| s.get(i))
            .is_some_and(|s| str_at(s, &["restartPolicy"]) == "Always");
        let terminated = at(status, &["state", "terminated"]);
        let waiting = str_at(status, &["state", "waiting", "reason"]);
        if !terminated.is_null() && int_at(terminated, &["exitCode"]) == 0 {
            continue;
        }
        if sidecar && status.get("started") == Some(&Value::Bool(true)) {
            continue;
        }
        if !terminated.is_null() {
            let reason = str_at(terminated, &["reason"]);
            let signal = int_at(terminated, &["signal"]);
            return Some(match reason {
                "" if signal != 0 => format!("Init:Signal:{signal}"),
                "" => format!("Init:ExitCode:{}", int_at(terminated, &["exitCode"])),
                _ => format!("Init:{reason}"),
            });
        }
        if !waiting.is_empty() && waiting != "PodInitializing" {
            return Some(format!("Init:{waiting}"));
        }
        return Some(format!("Init:{i}/{total}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_read_like_kubectl() {
        assert_eq!(human_duration(Duration::from_secs(45)), "45s");
        assert_eq!(human_duration(Duration::from_secs(192)), "3m12s");
        assert_eq!(human_duration(Duration::from_secs(3 * 3600)), "3h");
        assert_eq!(human_duration(Duration::from_secs(3 * 86400)), "3d");
    }

    #[test]
    fn a_gated_pod_shows_scheduling_gated() {
        let gated = json!({"status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}});
        assert_eq!(pod_status_column(&gated), "SchedulingGated");
        let unschedulable = json!({"status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}});
        assert_eq!(pod_status_column(&unschedulable), "Pending");
    }

    #[test]
    fn status_column_prefers_reasons() {
        let running = json!({"status": {"phase": "Running", "containerStatuses": [
            {"state": {"running": {}}}]}});
        assert_eq!(pod_status_column(&running), "Running");
        let oom = json!({"status": {"phase": "Failed", "containerStatuses": [
            {"state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}});
        assert_eq!(pod_status_column(&oom), "OOMKilled");
        let looping = json!({"status": {"phase": "Running", "containerStatuses": [
            {"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        assert_eq!(pod_status_column(&looping), "CrashLoopBackOff");
        let gone = json!({"metadata": {"deletionTimestamp": "x"}, "status": {"phase": "Running"}});
        assert_eq!(pod_status_column(&gone), "Terminating");
    }

    #[test]
    fn status_column_shows_init_containers_as_kubectl() {
        let pod = |first: Value, second: Value| {
            json!({"spec": {"initContainers": [{"name": "a"}, {"name": "b"}]},
                   "status": {"phase": "Pending",
                              "initContainerStatuses": [{"state": first}, {"state": second}],
                              "containerStatuses": [
                                  {"state": {"waiting": {"reason": "PodInitializing"}}}]}})
        };
        let done = json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
        let running = json!({"running": {}});
        let waiting = |reason: &str| json!({"waiting": {"reason": reason}});
        let initializing = waiting("PodInitializing");
        assert_eq!(
            pod_status_column(&pod(running.clone(), initializing.clone())),
            "Init:0/2"
        );
        assert_eq!(
            pod_status_column(&pod(done.clone(), running.clone())),
            "Init:1/2"
        );
        let failed = json!({"terminated": {"exitCode": 1, "reason": "Error"}});
        assert_eq!(pod_status_column(&pod(done.clone(), failed)), "Init:Error");
        assert_eq!(
            pod_status_column(&pod(waiting("CrashLoopBackOff"), initializing)),
            "Init:CrashLoopBackOff"
        );
        assert_eq!(
            pod_status_column(&pod(done.clone(), done)),
            "PodInitializing"
        );
    }

    #[test]
    fn columns_keep_their_widths_for_later_rows() {
        let rows = vec![vec![
            "web-1".to_owned(),
            "Running".to_owned(),
            "5s".to_owned(),
        ]];
        let mut columns = Columns::fit(&["NAME", "STATUS", "AGE"], &rows);
        assert_eq!(
            columns.line(&["NAME", "STATUS", "AGE"]),
            "NAME    STATUS    AGE"
        );
        assert_eq!(columns.line(&rows[0]), "web-1   Running   5s");
        assert_eq!(
            columns.line(&["w", "Pending", "1s"]),
            "w       Pending   1s"
        );
        // A longer cell widens its column from then on.
        assert_eq!(
            columns.line(&["web-1", "Terminating", "9s"]),
            "web-1   Terminating   9s"
        );
        assert_eq!(columns.line(&["a", "", ""]), "a");
    }

    #[test]
    fn unknown_format_is_an_error() {
        assert!(Format::parse("xml").is_err());
        assert_eq!(Format::parse("wide").ok(), Some(Format::Wide));
    }
}
