//! The per-index bookkeeping of Indexed Jobs, as Kubernetes' job controller keeps it:
//! index lists in Kubernetes' text form (`0-2,4`), failures counted per index
//! (`backoffLimitPerIndex`, carried from pod to pod in an annotation) and the rules of
//! a `successPolicy`. Pure.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{JobSpec, SuccessPolicy};

/// On each pod of an index: how many of the index's earlier pods failed.
pub const INDEX_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-failure-count";

/// Failures seen per index of a Job with `backoffLimitPerIndex`.
#[derive(Default)]
pub struct IndexFailures {
    /// Counted failures of each index so far.
    pub counts: BTreeMap<i32, i32>,
    /// When each index last failed (Unix seconds).
    pub last: BTreeMap<i32, i64>,
    /// Indexes a `FailIndex` rule failed.
    pub failed_by_policy: BTreeSet<i32>,
}

impl IndexFailures {
    /// Notes a pod of `index` that carried `earlier` failures of its index and added
    /// `added` (0 or 1) of its own.
    pub fn note(&mut self, index: i32, earlier: i32, added: i32) {
        let total = earlier.saturating_add(added);
        let count = self.counts.entry(index).or_insert(0);
        *count = (*count).max(total);
    }

    pub fn note_time(&mut self, index: i32, at: i64) {
        let last = self.last.entry(index).or_insert(at);
        *last = (*last).max(at);
    }

    pub fn count(&self, index: i32) -> i32 {
        self.counts.get(&index).copied().unwrap_or(0)
    }

    /// The indexes that failed: by a `FailIndex` rule, or with more failures than the
    /// limit allows; `known` are those already in the status.
    pub fn failed(&self, spec: &JobSpec, known: &BTreeSet<i32>) -> BTreeSet<i32> {
        let Some(limit) = spec.backoff_limit_per_index else {
            return BTreeSet::new();
        };
        let over = self
            .counts
            .iter()
            .filter(|(_, count)| **count > limit)
            .map(|(index, _)| *index);
        known
            .iter()
            .copied()
            .chain(self.failed_by_policy.iter().copied())
            .chain(over)
            .collect()
    }
}

/// The index (in `spec.successPolicy.rules`) of the first rule `succeeded` meets.
pub fn met_success_rule(policy: &SuccessPolicy, succeeded: &BTreeSet<i32>) -> Option<usize> {
    policy.rules.iter().position(|rule| {
        let among: BTreeSet<i32> = match &rule.succeeded_indexes {
            Some(text) => parse_indexes(text),
            None => succeeded.clone(),
        };
        let done = among.intersection(succeeded).count();
        match rule.succeeded_count {
            Some(count) => usize::try_from(count).is_ok_and(|count| done >= count),
            None => done == among.len() && !among.is_empty(),
        }
    })
}

/// `0-2,4` → {0, 1, 2, 4}; what does not parse is left out.
pub fn parse_indexes(text: &str) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
                    out.extend(a..=b.min(a.saturating_add(100_000)));
                }
            }
            None => out.extend(part.parse::<i32>().ok()),
        }
    }
    out
}

/// {0, 1, 2, 4} → `0-2,4`, as Kubernetes writes `completedIndexes`.
pub fn format_indexes(indexes: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(i32, i32)> = None;
    for &i in indexes {
        run = match run {
            Some((start, end)) if i == end + 1 => Some((start, i)),
            Some(done) => {
                parts.push(range_text(done));
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    parts.extend(run.map(range_text));
    parts.join(",")
}

/// One run of indexes: two in a row are written apart (`0,1`), as Kubernetes does.
fn range_text((start, end): (i32, i32)) -> String {
    if start == end {
        start.to_string()
    } else if end == start + 1 {
        format!("{start},{end}")
    } else {
        format!("{start}-{end}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SuccessPolicyRule;

    fn rule(indexes: Option<&str>, count: Option<i32>) -> SuccessPolicyRule {
        SuccessPolicyRule {
            succeeded_indexes: indexes.map(str::to_owned),
            succeeded_count: count,
        }
    }

    #[test]
    fn index_lists_read_and_write_as_kubernetes_does() {
        let indexes = parse_indexes("0-2,4");
        assert_eq!(indexes, BTreeSet::from([0, 1, 2, 4]));
        assert_eq!(format_indexes(&indexes), "0-2,4");
        assert_eq!(format_indexes(&BTreeSet::new()), "");
        assert_eq!(format_indexes(&BTreeSet::from([0, 1, 3])), "0,1,3");
    }

    #[test]
    fn success_rules_count_among_their_indexes() {
        let policy = SuccessPolicy {
            rules: vec![rule(Some("0,2-3"), Some(1)), rule(Some("5-6"), None)],
        };
        assert_eq!(met_success_rule(&policy, &BTreeSet::from([1, 4])), None);
        assert_eq!(met_success_rule(&policy, &BTreeSet::from([2])), Some(0));
        assert_eq!(met_success_rule(&policy, &BTreeSet::from([5])), None);
        assert_eq!(met_success_rule(&policy, &BTreeSet::from([5, 6])), Some(1));
        let any_two = SuccessPolicy {
            rules: vec![rule(None, Some(2))],
        };
        assert_eq!(met_success_rule(&any_two, &BTreeSet::from([7])), None);
        assert_eq!(met_success_rule(&any_two, &BTreeSet::from([1, 7])), Some(0));
    }

    #[test]
    fn an_index_fails_past_its_limit_or_by_policy() {
        let spec = JobSpec {
            backoff_limit_per_index: Some(1),
            ..JobSpec::default()
        };
        let mut failures = IndexFailures::default();
        failures.note(0, 0, 1);
        failures.note(1, 1, 1);
        failures.failed_by_policy.insert(3);
        assert_eq!(
            failures.failed(&spec, &BTreeSet::from([7])),
            BTreeSet::from([1, 3, 7])
        );
        assert!(failures
            .failed(&JobSpec::default(), &BTreeSet::new())
            .is_empty());
    }
}
