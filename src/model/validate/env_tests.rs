//! `env` and `envFrom`: every rule reported with its full field path.

use super::ENV_NAME_RULE;
use crate::model::names::DNS1123_SUBDOMAIN_RULE;
use crate::model::validate::tests::assert_problems;
use crate::model::{parse_manifests, Object};

/// A pod whose container `c` has `field` (`env` or `envFrom`) set to `list`; a second
/// container `d` is there to be named.
fn pod(field: &str, list: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - name: c\n    image: i\n    {field}: {list}\n  - {{name: d, image: i}}\n"
    )
}

fn env(list: &str) -> String {
    pod("env", list)
}

#[test]
fn every_source_passes_and_builds_the_typed_pod() {
    let yaml = env(
        "[{name: PLAIN, value: x}, {name: EMPTY}, {name: my.env-name, value: ''}, \
          {name: DB_HOST, valueFrom: {configMapKeyRef: {name: app-config, key: db.host}}}, \
          {name: DB_PASSWORD, valueFrom: {secretKeyRef: {name: db, key: password, optional: true}}}, \
          {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}, \
          {name: APP, valueFrom: {fieldRef: {apiVersion: v1, fieldPath: \"metadata.labels['app']\"}}}, \
          {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}, \
          {name: CPU, valueFrom: {resourceFieldRef: {containerName: d, resource: requests.cpu, divisor: 1}}}, \
          {name: MILLI, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1000m}}}, \
          {name: ZERO, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: '0'}}}]",
    );
    assert_problems(&yaml, &[]);
    let objects = parse_manifests(&yaml).expect("the pod is valid");
    let Some(Object::Pod(pod)) = objects.first() else {
        panic!("expected a pod, got {objects:?}");
    };
    let env = &pod.spec.containers[0].env;
    let from = |i: usize| env[i].value_from.as_ref().expect("valueFrom");
    let secret = from(4).secret_key_ref.as_ref().expect("secretKeyRef");
    assert_eq!(
        (secret.key.as_str(), secret.optional),
        ("password", Some(true))
    );
    let cpu = from(8)
        .resource_field_ref
        .as_ref()
        .expect("resourceFieldRef");
    assert_eq!(cpu.container_name, "d");
    assert_eq!(cpu.divisor.as_deref(), Some("1"), "an unquoted divisor");
}

#[test]
fn names_follow_kubernetes_env_rule() {
    let at = "spec.containers[0].env";
    assert_problems(
        &env(
            "[{name: 1ST}, {name: 'A B'}, {name: A=B}, {name: '.'}, {name: '..'}, {name: ..x}, \
               {name: ''}, {name: _ok}, {name: .ok}, {name: -ok.1}]",
        ),
        &[
            &format!("{at}[2].name: invalid name \"A=B\": {ENV_NAME_RULE}"),
            &format!("{at}[6].name: required value"),
        ],
    );
}

#[test]
fn value_from_has_exactly_one_source_and_no_value_beside_it() {
    let at = "spec.containers[0].env";
    assert_problems(
        &env("[{name: A, value: x, valueFrom: {fieldRef: {fieldPath: metadata.name}}}, \
               {name: B, valueFrom: {}}, \
               {name: C, valueFrom: {fieldRef: {fieldPath: metadata.name}, secretKeyRef: {name: s, key: k}}}, \
               {name: D, valueFrom: {serviceAccountRef: {}}}, \
               {name: E, valueFrom: []}]"),
        &[
            &format!("{at}[0].valueFrom: may not be specified when `value` is not empty"),
            &format!(
                "{at}[1].valueFrom: must specify one of: `fieldRef`, `resourceFieldRef`, \
                 `configMapKeyRef` or `secretKeyRef`"
            ),
            &format!(
                "{at}[2].valueFrom: may not have more than one field specified at a time: \
                 \"fieldRef\", \"secretKeyRef\""
            ),
            &format!("{at}[3].valueFrom.serviceAccountRef: field not supported by berth"),
            &format!(
                "{at}[3].valueFrom: must specify one of: `fieldRef`, `resourceFieldRef`, \
                 `configMapKeyRef` or `secretKeyRef`"
            ),
            &format!("{at}[4].valueFrom: expected object"),
        ],
    );
}

#[test]
fn key_refs_need_a_name_and_a_config_key() {
    let at = "spec.containers[0].env";
    assert_problems(
        &env("[{name: A, valueFrom: {configMapKeyRef: {}}}, \
               {name: B, valueFrom: {secretKeyRef: {name: Db_Secret, key: 'a/b', optional: 'yes'}}}, \
               {name: C, valueFrom: {configMapKeyRef: {name: c, key: k, namespace: other}}}]"),
        &[
            &format!("{at}[0].valueFrom.configMapKeyRef.name: required value"),
            &format!("{at}[0].valueFrom.configMapKeyRef.key: required value"),
            &format!(
                "{at}[1].valueFrom.secretKeyRef.name: invalid name \"Db_Secret\": {DNS1123_SUBDOMAIN_RULE}"
            ),
            &format!(
                "{at}[1].valueFrom.secretKeyRef.key: invalid key \"a/b\": a valid config key must \
                 consist of alphanumeric characters, '-', '_' or '.'"
            ),
            &format!("{at}[1].valueFrom.secretKeyRef.optional: expected boolean"),
            &format!("{at}[2].valueFrom.configMapKeyRef.namespace: field not supported by berth"),
        ],
    );
}

#[test]
fn field_refs_in_env_name_env_fields() {
    let at = "spec.containers[0].env";
    let supported = "supported values: \"metadata.name\", \"metadata.namespace\", \
                     \"metadata.uid\", \"spec.nodeName\", \"spec.serviceAccountName\", \
                     \"status.hostIP\", \"status.hostIPs\", \"status.podIP\", \"status.podIPs\"";
    assert_problems(
        &env("[{name: A, valueFrom: {fieldRef: {fieldPath: metadata.labels}}}, \
               {name: B, valueFrom: {fieldRef: {apiVersion: apps/v1, fieldPath: metadata.name}}}, \
               {name: C, valueFrom: {fieldRef: {apiVersion: v1}}}, \
               {name: D, valueFrom: {fieldRef: {fieldPath: \"metadata.annotations['-bad']\"}}}, \
               {name: E, valueFrom: {fieldRef: {fieldPath: \"metadata.annotations['a.io/Build']\"}}}]"),
        &[
            &format!(
                "{at}[0].valueFrom.fieldRef.fieldPath: unsupported value \"metadata.labels\": {supported}"
            ),
            &format!(
                "{at}[1].valueFrom.fieldRef.apiVersion: unsupported value \"apps/v1\": supported \
                 values: \"v1\""
            ),
            &format!("{at}[2].valueFrom.fieldRef.fieldPath: required value"),
            &format!(
                "{at}[3].valueFrom.fieldRef.fieldPath: invalid key \"-bad\": the name part must be \
                 at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or \
                 digit, with an optional DNS subdomain prefix and '/'"
            ),
        ],
    );
}

#[test]
fn resource_field_refs_in_env() {
    let at = "spec.containers[0].env";
    assert_problems(
        &env("[{name: A, valueFrom: {resourceFieldRef: {containerName: web, resource: limits.cpu}}}, \
               {name: B, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1Mi}}}, \
               {name: C, valueFrom: {resourceFieldRef: {resource: requests.memory, divisor: 1024}}}, \
               {name: D, valueFrom: {resourceFieldRef: {resource: requests.memory, divisor: 3Gi}}}, \
               {name: E, valueFrom: {resourceFieldRef: {}}}, \
               {name: F, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: -1}}}]"),
        &[
            &format!("{at}[0].valueFrom.resourceFieldRef.containerName: not found \"web\""),
            &format!(
                "{at}[1].valueFrom.resourceFieldRef.divisor: invalid value \"1Mi\": only divisor's \
                 values 1m and 1 are supported with the cpu resource"
            ),
            &format!(
                "{at}[3].valueFrom.resourceFieldRef.divisor: invalid value \"3Gi\": only divisor's \
                 values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with \
                 the memory resource"
            ),
            &format!("{at}[4].valueFrom.resourceFieldRef.resource: required value"),
            &format!("{at}[5].valueFrom.resourceFieldRef.divisor: invalid quantity \"-1\""),
        ],
    );
}

#[test]
fn env_from_has_one_named_source_and_a_usable_prefix() {
    let at = "spec.containers[0].envFrom";
    assert_problems(
        &pod(
            "envFrom",
            "[{configMapRef: {name: app-config}}, {prefix: DB_, secretRef: {name: db, optional: true}}, \
              {prefix: ''}, {configMapRef: {name: a}, secretRef: {name: b}}, \
              {prefix: 1_, configMapRef: {}}, {prefix: 'A=', secretRef: {name: Db, optional: 1}}, \
              {prefix: .., configMapRef: {name: c, key: k}}]",
        ),
        &[
            &format!("{at}[2]: must specify one of: `configMapRef` or `secretRef`"),
            &format!(
                "{at}[3]: may not have more than one field specified at a time: \"configMapRef\", \
                 \"secretRef\""
            ),
            &format!("{at}[4].configMapRef.name: required value"),
            &format!("{at}[5].prefix: invalid prefix \"A=\": {ENV_NAME_RULE}"),
            &format!("{at}[5].secretRef.name: invalid name \"Db\": {DNS1123_SUBDOMAIN_RULE}"),
            &format!("{at}[5].secretRef.optional: expected boolean"),
            &format!("{at}[6].configMapRef.key: field not supported by berth"),
        ],
    );
    assert_problems(
        &pod("envFrom", "{configMapRef: {name: a}}"),
        &["spec.containers[0].envFrom: expected list"],
    );
}
