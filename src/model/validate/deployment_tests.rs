//! ReplicationControllers: a ReplicaSet's checks with a plain label map for a selector,
//! which defaults to the template's labels.

use super::super::tests::{assert_problems, problems};
use crate::model::{parse_manifests, Object};

/// A ReplicationController with `spec` (indented two spaces) as its spec.
fn rc(spec: &str) -> String {
    format!("apiVersion: v1\nkind: ReplicationController\nmetadata: {{name: web}}\nspec:\n{spec}")
}

fn template(labels: &str, restart_policy: &str) -> String {
    format!(
        "  template:\n    metadata: {{labels: {labels}}}\n    \
         spec: {{restartPolicy: {restart_policy}, containers: [{{name: c, image: busybox}}]}}\n"
    )
}

#[test]
fn a_selector_that_the_template_matches_is_valid() {
    let with_selector = format!(
        "  replicas: 2\n  minReadySeconds: 5\n  selector: {{app: web}}\n{}",
        template("{app: web, tier: front}", "Always")
    );
    assert_problems(&rc(&with_selector), &[]);
}

#[test]
fn an_absent_or_empty_selector_defaults_to_the_template_labels() {
    let labels = "{app: web, tier: front}";
    assert_problems(&rc(&template(labels, "Always")), &[]);
    let empty = format!("  selector: {{}}\n{}", template(labels, "Always"));
    assert_problems(&rc(&empty), &[]);
    let objects = parse_manifests(&rc(&template(labels, "Always"))).unwrap();
    let Some(Object::ReplicationController(built)) = objects.first() else {
        panic!("not a ReplicationController: {objects:?}");
    };
    let wanted = &built.spec.template.metadata.labels;
    assert_eq!(wanted.len(), 2);
    assert_eq!(&built.spec.selector, wanted);
    assert_eq!(&built.metadata.labels, wanted, "labels default too");
    assert_eq!(built.spec.replicas, 1);
}

#[test]
fn a_selector_the_template_does_not_match_is_refused() {
    let other = format!(
        "  selector: {{app: db}}\n{}",
        template("{app: web}", "Always")
    );
    assert_problems(
        &rc(&other),
        &["spec.template.metadata.labels: selector does not match labels in template"],
    );
    let more = format!(
        "  selector: {{app: web, tier: back}}\n{}",
        template("{app: web}", "Always")
    );
    assert_eq!(problems(&rc(&more)).len(), 1, "every pair must match");
}

#[test]
fn nothing_to_select_by_is_refused() {
    assert_problems(
        &rc(&template("{}", "Always")),
        &["spec.selector: required value"],
    );
    assert_problems(
        &rc("  replicas: 1\n"),
        &[
            "spec.template: required value",
            "spec.selector: required value",
        ],
    );
}

#[test]
fn the_replica_set_rules_apply_to_the_rest() {
    let spec = format!(
        "  replicas: -1\n  strategy: {{}}\n  selector: {{app: web}}\n{}",
        template("{app: web}", "Never")
    );
    let found = problems(&rc(&spec));
    assert!(
        found.contains(&"spec.strategy: field not supported by berth".to_owned()),
        "{found:?}"
    );
    assert!(
        found.iter().any(|p| p.starts_with("spec.replicas: ")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("spec.template.spec.restartPolicy: ")),
        "{found:?}"
    );
    let apps =
        rc(&template("{app: web}", "Always")).replace("apiVersion: v1", "apiVersion: apps/v1");
    assert_problems(
        &apps,
        &["apiVersion: unsupported apiVersion \"apps/v1\" for ReplicationController"],
    );
}
