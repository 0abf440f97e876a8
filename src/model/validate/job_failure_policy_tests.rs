//! `podFailurePolicy`: every rule reported with its field path.

use super::super::super::tests::{assert_problems, problems};

/// A Job with `policy` as its `podFailurePolicy` and `restart` as its pods' policy.
fn job(policy: &str, restart: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: j}}\nspec:\n  podFailurePolicy: \
         {policy}\n  template:\n    spec:\n      restartPolicy: {restart}\n      \
         initContainers: [{{name: setup, image: busybox}}]\n      \
         containers: [{{name: main, image: busybox}}]\n"
    )
}

#[test]
fn the_kubernetes_example_and_every_action_are_valid() {
    let policy = "{rules: [\
        {action: FailJob, onExitCodes: {containerName: main, operator: In, values: [42]}}, \
        {action: Ignore, onPodConditions: [{type: DisruptionTarget}]}, \
        {action: Count, onExitCodes: {operator: NotIn, values: [0, 1, 2]}}, \
        {action: FailJob, onExitCodes: {containerName: setup, operator: In, values: [1, 7]}}, \
        {action: Ignore, onPodConditions: [{type: example.com/Evicted, status: 'False'}]}]}";
    assert_problems(&job(policy, "Never"), &[]);
}

#[test]
fn the_policy_needs_pods_that_do_not_restart() {
    let policy = "{rules: [{action: Count, onExitCodes: {operator: In, values: [1]}}]}";
    assert_problems(
        &job(policy, "OnFailure"),
        &[
            "spec.template.spec.restartPolicy: invalid value \"OnFailure\": only \"Never\" is \
           supported when podFailurePolicy is specified",
        ],
    );
}

#[test]
fn actions_and_requirements() {
    let policy = "{rules: [\
        {action: FailIndex, onExitCodes: {operator: In, values: [1]}}, \
        {action: Restart, onPodConditions: [{type: Ready}]}, \
        {onExitCodes: {operator: In, values: [1]}, onPodConditions: [{type: Ready}]}, \
        {action: Count}, \
        {action: Count, onPodConditions: []}]}";
    assert_problems(
        &job(policy, "Never"),
        &[
            "spec.podFailurePolicy.rules[0].action: invalid value \"FailIndex\": requires the \
             backoffLimitPerIndex to be set",
            "spec.podFailurePolicy.rules[1].action: unsupported value \"Restart\": supported \
             values: \"FailJob\", \"FailIndex\", \"Ignore\", \"Count\"",
            "spec.podFailurePolicy.rules[2].action: required value",
            "spec.podFailurePolicy.rules[2]: invalid value: specifying both onExitCodes and \
             onPodConditions is not supported",
            "spec.podFailurePolicy.rules[3]: invalid value: specifying one of onExitCodes and \
             onPodConditions is required",
            "spec.podFailurePolicy.rules[4]: invalid value: specifying one of onExitCodes and \
             onPodConditions is required",
        ],
    );
}

#[test]
fn exit_code_rules() {
    let policy = "{rules: [\
        {action: FailJob, onExitCodes: {containerName: sidecar, operator: In, values: [0, 3, 2, 2]}}, \
        {action: FailJob, onExitCodes: {operator: Equals, values: []}}, \
        {action: FailJob, onExitCodes: {values: [1], exitCode: 1}}, \
        {action: Ignore, onExitCodes: {operator: NotIn, values: [0]}}]}";
    let rule = |i: usize| format!("spec.podFailurePolicy.rules[{i}].onExitCodes");
    assert_eq!(
        problems(&job(policy, "Never")),
        [
            format!(
                "{}.containerName: invalid value \"sidecar\": must be one of the container or \
                 initContainer names in the pod template",
                rule(0)
            ),
            format!(
                "{}.values[0]: invalid value 0: must not be 0 for the In operator",
                rule(0)
            ),
            format!("{}.values[2]: invalid value 2: must be ordered", rule(0)),
            format!("{}.values[3]: duplicate value 2", rule(0)),
            format!(
                "{}.operator: unsupported value \"Equals\": supported values: \"In\", \"NotIn\"",
                rule(1)
            ),
            format!(
                "{}.values: required value: at least one value is required",
                rule(1)
            ),
            format!("{}.exitCode: field not supported by berth", rule(2)),
            format!("{}.operator: required value", rule(2)),
        ]
    );
    let many: Vec<String> = (1..=256).map(|n| n.to_string()).collect();
    let policy = format!(
        "{{rules: [{{action: Count, onExitCodes: {{operator: In, values: [{}]}}}}]}}",
        many.join(", ")
    );
    assert_problems(
        &job(&policy, "Never"),
        &[
            "spec.podFailurePolicy.rules[0].onExitCodes.values: too many: 256: must have at most \
           255 items",
        ],
    );
}

#[test]
fn condition_patterns_and_the_number_of_rules() {
    let policy = "{rules: [{action: Ignore, onPodConditions: [\
        {status: 'True'}, {type: 'Not A Type'}, {type: Ready, status: Maybe}]}]}";
    let at = "spec.podFailurePolicy.rules[0].onPodConditions";
    assert_problems(
        &job(policy, "Never"),
        &[
            &format!("{at}[0].type: required value"),
            &format!(
                "{at}[1].type: invalid value \"Not A Type\": must be a qualified name: an \
                 optional DNS subdomain and '/', then at most 63 letters, digits, '-', '_' or \
                 '.', starting and ending with a letter or digit"
            ),
            &format!(
                "{at}[2].status: unsupported value \"Maybe\": supported values: \"True\", \
                 \"False\", \"Unknown\""
            ),
        ],
    );
    let rule = "{action: Ignore, onPodConditions: [{type: DisruptionTarget}]}";
    let policy = format!("{{rules: [{}]}}", vec![rule; 21].join(", "));
    assert_problems(
        &job(&policy, "Never"),
        &["spec.podFailurePolicy.rules: too many: 21: must have at most 20 items"],
    );
}

#[test]
fn a_condition_pattern_is_about_a_true_condition_unless_it_says_otherwise() {
    let policy = "{rules: [{action: Ignore, onPodConditions: [{type: DisruptionTarget}, \
                  {type: Ready, status: 'False'}]}]}";
    let objects = crate::model::parse_manifests(&job(policy, "Never")).expect("a valid Job");
    let Some(crate::model::Object::Job(parsed)) = objects.first() else {
        panic!("expected a Job, got {objects:?}");
    };
    let rules = &parsed
        .spec
        .pod_failure_policy
        .as_ref()
        .expect("a policy")
        .rules;
    let statuses: Vec<&str> = rules[0]
        .on_pod_conditions
        .iter()
        .map(|p| p.status.as_str())
        .collect();
    assert_eq!(statuses, ["True", "False"]);
    assert_eq!(
        rules[0].action,
        crate::model::PodFailurePolicyAction::Ignore
    );
}
