//! `describe resourcequota|limitrange`, laid out as kubectl does: one line per
//! resource, in aligned columns. Pure.

use serde_json::Value;

use crate::cli::output::{at, str_at};

/// Rows under a header and its underline, each column as wide as its widest cell.
fn aligned(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let underline: Vec<String> = header.iter().map(|h| "-".repeat(h.len())).collect();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in [&header, &underline].into_iter().chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
}

pub fn describe_resource_quota(out: &mut String, quota: &Value) {
    let used = at(quota, &["status", "used"]);
    let rows: Vec<Vec<String>> = at(quota, &["status", "hard"])
        .as_object()
        .into_iter()
        .flatten()
        .map(|(resource, hard)| {
            vec![
                resource.clone(),
                used.get(resource)
                    .and_then(Value::as_str)
                    .unwrap_or("0")
                    .to_owned(),
                hard.as_str().unwrap_or("").to_owned(),
            ]
        })
        .collect();
    aligned(out, &["Resource", "Used", "Hard"], &rows);
}

pub fn describe_limit_range(out: &mut String, range: &Value) {
    const FIELDS: [&str; 5] = [
        "min",
        "max",
        "defaultRequest",
        "default",
        "maxLimitRequestRatio",
    ];
    let mut rows = Vec::new();
    for item in at(range, &["spec", "limits"])
        .as_array()
        .into_iter()
        .flatten()
    {
        let mut resources: Vec<&String> = FIELDS
            .iter()
            .filter_map(|field| item.get(*field).and_then(Value::as_object))
            .flat_map(|map| map.keys())
            .collect();
        crate::support::sort::sort(&mut resources);
        resources.dedup();
        for resource in resources {
            let mut row = vec![str_at(item, &["type"]).to_owned(), resource.clone()];
            for field in FIELDS {
                let value = at(item, &[field, resource]).as_str().unwrap_or("-");
                row.push(value.to_owned());
            }
            rows.push(row);
        }
    }
    let header = [
        "Type",
        "Resource",
        "Min",
        "Max",
        "Default Request",
        "Default Limit",
        "Max Limit/Request Ratio",
    ];
    aligned(out, &header, &rows);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limit_range_has_a_line_per_resource() {
        let range = json!({"spec": {"limits": [{
            "type": "Container",
            "default": {"memory": "512Mi"},
            "defaultRequest": {"memory": "256Mi"},
            "max": {"cpu": "1"}
        }]}});
        let mut out = String::new();
        describe_limit_range(&mut out, &range);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(
            lines[2].starts_with("Container  cpu       -    1    -"),
            "{out}"
        );
        assert!(lines[3].contains("256Mi            512Mi"), "{out}");
    }
}
