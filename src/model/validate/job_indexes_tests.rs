//! `backoffLimitPerIndex`, `maxFailedIndexes` and `successPolicy`, with their paths.

use super::super::super::tests::assert_problems;

/// A Job with `fields` (indented two spaces) in its spec.
fn job(fields: &str, restart: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: j}}\nspec:\n{fields}  template:\n    \
         spec:\n      restartPolicy: {restart}\n      containers: [{{name: main, image: busybox}}]\n"
    )
}

const INDEXED: &str = "  completions: 10\n  parallelism: 3\n  completionMode: Indexed\n";

#[test]
fn the_kubernetes_examples_are_valid() {
    let per_index = format!(
        "{INDEXED}  backoffLimitPerIndex: 1\n  maxFailedIndexes: 5\n  podFailurePolicy:\n    \
         rules: [{{action: FailIndex, onExitCodes: {{containerName: main, operator: In, values: [42]}}}}]\n"
    );
    assert_problems(&job(&per_index, "Never"), &[]);
    let success = format!(
        "{INDEXED}  successPolicy:\n    rules: [{{succeededIndexes: '0,2-3', succeededCount: 1}}, {{succeededCount: 10}}]\n"
    );
    assert_problems(&job(&success, "OnFailure"), &[]);
}

#[test]
fn per_index_limits_need_indexed_never_restarting_pods() {
    assert_problems(
        &job(
            "  completions: 2\n  backoffLimitPerIndex: 1\n  maxFailedIndexes: 3\n",
            "OnFailure",
        ),
        &[
            "spec.backoffLimitPerIndex: invalid value: requires indexed completion mode",
            "spec.maxFailedIndexes: must be less than or equal to completions",
            "spec.template.spec.restartPolicy: invalid value \"OnFailure\": only \"Never\" is \
             supported when backoffLimitPerIndex is specified",
        ],
    );
    assert_problems(
        &job(&format!("{INDEXED}  maxFailedIndexes: 1\n"), "Never"),
        &[
            "spec.maxFailedIndexes: required value: when maxFailedIndexes is specified, \
           backoffLimitPerIndex must also be specified",
        ],
    );
}

#[test]
fn success_rules_name_what_is_wrong() {
    let rules = format!(
        "{INDEXED}  successPolicy:\n    rules: [{{}}, {{succeededIndexes: 3-1}}, \
         {{succeededIndexes: '0-4,4'}}, {{succeededIndexes: 9-10}}, \
         {{succeededIndexes: 1-2, succeededCount: 3}}, {{succeededCount: 11}}]\n"
    );
    assert_problems(
        &job(&rules, "Never"),
        &[
            "spec.successPolicy.rules[0]: required value: at least one of succeededCount or \
             succeededIndexes must be specified",
            "spec.successPolicy.rules[1].succeededIndexes: invalid value \"3-1\": error parsing \
             succeededIndexes: non-increasing order, previous: 3, current: 1",
            "spec.successPolicy.rules[2].succeededIndexes: invalid value \"0-4,4\": error \
             parsing succeededIndexes: overlapping intervals, previous: 4, current: 4",
            "spec.successPolicy.rules[3].succeededIndexes: invalid value \"9-10\": error \
             parsing succeededIndexes: too large: 10: must be less than completions",
            "spec.successPolicy.rules[4].succeededCount: must be smaller or equal to the \
             number of indexes in the specified succeededIndexes field",
            "spec.successPolicy.rules[5].succeededCount: must be less than or equal to \
             .spec.completions",
        ],
    );
    assert_problems(
        &job("  completions: 2\n  successPolicy: {rules: []}\n", "Never"),
        &[
            "spec.successPolicy: invalid value: requires indexed completion mode",
            "spec.successPolicy.rules: required value: at least one rules must be specified \
             when the successPolicy is specified",
        ],
    );
}
