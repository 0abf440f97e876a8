//! Validation of what Indexed Jobs add: `backoffLimitPerIndex`, `maxFailedIndexes` and
//! `successPolicy`, with Kubernetes' rules and messages.

use serde_json::Value;

use super::super::checker::{get, index, join, Checker, JsonObject};

/// Kubernetes' limits: indexes tracked per index, and success rules.
const MAX_PER_INDEX_COMPLETIONS: i64 = 100_000;
const MAX_SUCCESS_RULES: usize = 20;

/// Checks the per-index fields of a Job spec at `path`; `indexed` when its completion
/// mode is `Indexed`.
pub(super) fn check_index_fields(c: &mut Checker, spec: &JsonObject, path: &str, indexed: bool) {
    let completions = get(spec, "completions").and_then(Value::as_i64);
    let per_index_path = join(path, "backoffLimitPerIndex");
    let per_index = get(spec, "backoffLimitPerIndex");
    if let Some(value) = per_index {
        c.integer_in(value, &per_index_path, 0, i64::from(i32::MAX));
        if !indexed {
            c.error(
                &per_index_path,
                "invalid value: requires indexed completion mode",
            );
        }
        if completions.is_some_and(|n| n > MAX_PER_INDEX_COMPLETIONS) {
            c.error(
                &join(path, "completions"),
                format!(
                    "must be less than or equal to {MAX_PER_INDEX_COMPLETIONS} when \
                     backoffLimitPerIndex is specified"
                ),
            );
        }
    }
    if let Some(value) = get(spec, "maxFailedIndexes") {
        let max_path = join(path, "maxFailedIndexes");
        let max = c.integer_in(value, &max_path, 0, MAX_PER_INDEX_COMPLETIONS);
        if per_index.is_none() {
            c.error(
                &max_path,
                "required value: when maxFailedIndexes is specified, backoffLimitPerIndex \
                 must also be specified",
            );
        }
        if let (Some(max), Some(completions)) = (max, completions) {
            if max > completions {
                c.error(&max_path, "must be less than or equal to completions");
            }
        }
    }
    if let Some(value) = get(spec, "successPolicy") {
        let policy_path = join(path, "successPolicy");
        if !indexed {
            c.error(
                &policy_path,
                "invalid value: requires indexed completion mode",
            );
        }
        check_success_policy(c, value, &policy_path, completions);
    }
}

fn check_success_policy(c: &mut Checker, value: &Value, path: &str, completions: Option<i64>) {
    let Some(policy) = c.object(value, path) else {
        return;
    };
    c.only_fields(policy, path, &["rules"]);
    let rules_path = join(path, "rules");
    let rules = get(policy, "rules").and_then(|v| c.list(v, &rules_path));
    let Some(rules) = rules.filter(|rules| !rules.is_empty()) else {
        c.error(
            &rules_path,
            "required value: at least one rules must be specified when the successPolicy is \
             specified",
        );
        return;
    };
    if rules.len() > MAX_SUCCESS_RULES {
        c.error(
            &rules_path,
            format!(
                "too many: {}: must have at most {MAX_SUCCESS_RULES} items",
                rules.len()
            ),
        );
    }
    for (i, rule) in rules.iter().enumerate() {
        check_success_rule(c, rule, &index(&rules_path, i), completions);
    }
}

fn check_success_rule(c: &mut Checker, value: &Value, path: &str, completions: Option<i64>) {
    let Some(rule) = c.object(value, path) else {
        return;
    };
    c.only_fields(rule, path, &["succeededIndexes", "succeededCount"]);
    let (indexes, count) = (get(rule, "succeededIndexes"), get(rule, "succeededCount"));
    if indexes.is_none() && count.is_none() {
        c.error(
            path,
            "required value: at least one of succeededCount or succeededIndexes must be \
             specified",
        );
    }
    let indexes_path = join(path, "succeededIndexes");
    let listed = indexes
        .and_then(|v| c.string(v, &indexes_path))
        .and_then(|text| match count_indexes(text, completions) {
            Ok(listed) => Some(listed),
            Err(why) => {
                c.error(
                    &indexes_path,
                    format!("invalid value {text:?}: error parsing succeededIndexes: {why}"),
                );
                None
            }
        });
    let count_path = join(path, "succeededCount");
    let Some(count) = count.and_then(|v| c.integer_in(v, &count_path, 1, i64::from(i32::MAX)))
    else {
        return;
    };
    if completions.is_some_and(|n| count > n) {
        c.error(
            &count_path,
            "must be less than or equal to .spec.completions",
        );
    }
    if listed.is_some_and(|n| count > n) {
        c.error(
            &count_path,
            "must be smaller or equal to the number of indexes in the specified \
             succeededIndexes field",
        );
    }
}

/// How many indexes `text` lists (`0,2-3` → 3): ordered, non-overlapping intervals,
/// each below `completions`.
fn count_indexes(text: &str, completions: Option<i64>) -> Result<i64, String> {
    let mut listed = 0;
    let mut last: Option<i64> = None;
    for part in text.split(',') {
        let (first, end) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let number = |s: &str| {
            s.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0 && s.chars().all(|ch| ch.is_ascii_digit()))
                .ok_or_else(|| format!("cannot convert {s:?} to a non-negative integer"))
        };
        let (first, end) = (number(first)?, number(end)?);
        if end < first {
            return Err(format!(
                "non-increasing order, previous: {first}, current: {end}"
            ));
        }
        if let Some(previous) = last.filter(|previous| first <= *previous) {
            return Err(format!(
                "overlapping intervals, previous: {previous}, current: {first}"
            ));
        }
        if completions.is_some_and(|n| end >= n) {
            return Err(format!("too large: {end}: must be less than completions"));
        }
        listed += end - first + 1;
        last = Some(end);
    }
    Ok(listed)
}

#[cfg(test)]
#[path = "job_indexes_tests.rs"]
mod tests;
