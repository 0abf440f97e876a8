//! HorizontalPodAutoscalers in both API versions, and PodDisruptionBudgets.

use super::super::tests::assert_problems;
use crate::model::{parse_manifests, Object};

fn autoscaler(version: &str, spec: &str) -> String {
    format!("apiVersion: autoscaling/{version}\nkind: HorizontalPodAutoscaler\nmetadata: {{name: web}}\nspec:\n{spec}")
}

const TARGET: &str = "  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n";

fn stored_spec(yaml: &str) -> serde_json::Value {
    let objects = parse_manifests(yaml).unwrap();
    let Some(object @ Object::Passive(_)) = objects.first() else {
        panic!("not stored as passive: {objects:?}");
    };
    let json = object.to_json();
    assert_eq!(json["apiVersion"], "autoscaling/v2");
    json["spec"].clone()
}

#[test]
fn a_v2_autoscaler_with_metrics_and_behavior_is_valid() {
    let spec = format!(
        "{TARGET}  minReplicas: 1\n  maxReplicas: 10\n  metrics:\n  \
         - type: Resource\n    resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 50}}}}\n  \
         - type: Pods\n    pods: {{metric: {{name: packets}}, target: {{type: AverageValue, averageValue: 1k}}}}\n  \
         behavior:\n    scaleDown:\n      stabilizationWindowSeconds: 300\n      \
         policies: [{{type: Percent, value: 100, periodSeconds: 15}}]\n"
    );
    assert_problems(&autoscaler("v2", &spec), &[]);
}

#[test]
fn a_v1_autoscaler_is_stored_as_v2_with_its_cpu_target() {
    let spec = format!("{TARGET}  maxReplicas: 10\n  targetCPUUtilizationPercentage: 50\n");
    assert_problems(&autoscaler("v1", &spec), &[]);
    let stored = stored_spec(&autoscaler("v1", &spec));
    assert_eq!(stored["minReplicas"], 1);
    assert_eq!(stored["metrics"][0]["resource"]["name"], "cpu");
    assert_eq!(
        stored["metrics"][0]["resource"]["target"]["averageUtilization"],
        50
    );
    assert!(stored.get("targetCPUUtilizationPercentage").is_none());
    // Without a target, both versions default to 80% CPU.
    let bare = stored_spec(&autoscaler("v2", &format!("{TARGET}  maxReplicas: 3\n")));
    assert_eq!(
        bare["metrics"][0]["resource"]["target"]["averageUtilization"],
        80
    );
}

#[test]
fn autoscaler_mistakes_name_their_field() {
    assert_problems(
        &autoscaler("v2", "  minReplicas: 4\n  maxReplicas: 2\n"),
        &[
            "spec.scaleTargetRef: required value",
            "spec.maxReplicas: must be greater than or equal to `minReplicas`",
        ],
    );
    let wrong_member = format!(
        "{TARGET}  maxReplicas: 2\n  metrics:\n  - type: Pods\n    \
         resource: {{name: cpu, target: {{type: Utilization}}}}\n"
    );
    assert_problems(
        &autoscaler("v2", &wrong_member),
        &[
            "spec.metrics[0].pods: required value",
            "spec.metrics[0].resource: must be omitted when `type` is \"Pods\"",
        ],
    );
    let bad_target = format!(
        "{TARGET}  maxReplicas: 2\n  metrics:\n  - type: Resource\n    \
         resource: {{name: memory, target: {{type: AverageValue, averageValue: lots}}}}\n"
    );
    let problems = super::super::tests::problems(&autoscaler("v2", &bad_target));
    assert!(
        problems[0]
            .starts_with("spec.metrics[0].resource.target.averageValue: invalid quantity \"lots\""),
        "{problems:?}"
    );
    assert_problems(
        &autoscaler("v1", &format!("{TARGET}  maxReplicas: 2\n  metrics: []\n")),
        &["spec.metrics: field not supported by berth"],
    );
}

fn budget(spec: &str) -> String {
    format!(
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {{name: zk}}\nspec:\n{spec}"
    )
}

#[test]
fn disruption_budgets_are_checked_as_kubernetes_does() {
    assert_problems(
        &budget("  selector: {matchLabels: {app: zk}}\n  maxUnavailable: 1\n"),
        &[],
    );
    assert_problems(
        &budget("  minAvailable: \"50%\"\n  unhealthyPodEvictionPolicy: AlwaysAllow\n"),
        &[],
    );
    assert_problems(
        &budget("  minAvailable: 1\n  maxUnavailable: \"150%\"\n"),
        &[
            "spec: minAvailable and maxUnavailable cannot be both set",
            "spec.maxUnavailable: must not be greater than 100%",
        ],
    );
}
