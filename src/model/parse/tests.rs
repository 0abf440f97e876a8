use super::*;
use crate::model::{
    spec_hash, ContainerState, ContainerStatus, IntOrString, PodCondition, PodStatus,
    StateTerminated,
};

const MULTI_DOC: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
  namespace: shop
  labels: {app: hello}
spec:
  replicas: 3
  selector:
    matchLabels: {app: hello}
  template:
    metadata:
      labels: {app: hello, tier: web}
    spec:
      containers:
        - name: web
          image: registry.local:5000/hello:1.0
          ports: [{containerPort: 8080}]
          resources:
            limits: {cpu: 500m, memory: 64Mi}
---
# an empty document between objects is fine
---
apiVersion: v1
kind: Pod
metadata:
  name: once
spec:
  restartPolicy: Never
  containers:
    - name: job
      image: busybox
      command: [sh, -c, "echo hi"]
      env: [{name: GREETING, value: hello}, {name: EMPTY}]
"#;

fn parse_ok(text: &str) -> Vec<Object> {
    match parse_manifests(text) {
        Ok(objects) => objects,
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

fn parse_err(text: &str) -> ManifestError {
    match parse_manifests(text) {
        Ok(objects) => panic!("expected errors, got {objects:?}"),
        Err(e) => e,
    }
}

#[test]
fn multi_document_yaml_with_defaults() {
    let objects = parse_ok(MULTI_DOC);
    let kinds: Vec<Kind> = objects.iter().map(Object::kind).collect();
    assert_eq!(kinds, [Kind::Namespace, Kind::Deployment, Kind::Pod]);
    assert_eq!(objects[0].meta().name, "shop");

    let Object::Deployment(deployment) = &objects[1] else {
        panic!("expected a deployment");
    };
    assert_eq!(deployment.metadata.namespace.as_deref(), Some("shop"));
    assert_eq!(deployment.spec.replicas, 3);
    let pod_spec = &deployment.spec.template.spec;
    assert_eq!(pod_spec.restart_policy, "Always");
    assert_eq!(pod_spec.termination_grace_period_seconds, 30);
    let web = &pod_spec.containers[0];
    assert_eq!(web.ports[0].protocol, "TCP");
    assert_eq!(web.ports[0].container_port, 8080);
    // Requests default to limits, as in Kubernetes.
    assert_eq!(
        web.resources.requests.get("memory").map(String::as_str),
        Some("64Mi")
    );
    assert_eq!(deployment.spec.strategy.type_, "RollingUpdate");
    let rolling = deployment
        .spec
        .strategy
        .rolling_update
        .as_ref()
        .expect("defaulted");
    assert_eq!(rolling.max_surge, Some(IntOrString::String("25%".into())));
    assert_eq!(
        rolling.max_unavailable,
        Some(IntOrString::String("25%".into()))
    );

    let Object::Pod(pod) = &objects[2] else {
        panic!("expected a pod");
    };
    assert_eq!(
        pod.metadata.namespace, None,
        "namespace defaulting is the caller's job"
    );
    assert_eq!(pod.spec.restart_policy, "Never");
    assert_eq!(pod.spec.containers[0].command, ["sh", "-c", "echo hi"]);
    assert_eq!(pod.spec.containers[0].env[1].value, "");
}

#[test]
fn deployment_defaults_when_fields_are_absent() {
    let objects = parse_ok(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: c, image: i}]}\n",
    );
    let Object::Deployment(d) = &objects[0] else {
        panic!("expected a deployment");
    };
    assert_eq!(d.spec.replicas, 1);
    assert_eq!(d.spec.strategy.type_, "RollingUpdate");
    assert!(d.spec.strategy.rolling_update.is_some());

    let recreate = parse_ok(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: 0\n  strategy: {type: Recreate}\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: c, image: i}]}\n",
    );
    let Object::Deployment(d) = &recreate[0] else {
        panic!("expected a deployment");
    };
    assert_eq!(d.spec.replicas, 0);
    assert_eq!(d.spec.strategy.rolling_update, None);
}

#[test]
fn json_manifest() {
    let json = r#"{
	"apiVersion": "v1",
	"kind": "Pod",
	"metadata": {"name": "p", "namespace": "dev", "labels": {"app": "p"}},
	"spec": {"containers": [{"name": "c", "image": "alpine:3", "args": ["sleep", "9"]}],
	         "hostNetwork": true, "terminationGracePeriodSeconds": 5}
}"#;
    let objects = parse_ok(json);
    let Object::Pod(pod) = &objects[0] else {
        panic!("expected a pod");
    };
    assert!(pod.spec.host_network);
    assert_eq!(pod.spec.termination_grace_period_seconds, 5);
    assert_eq!(
        pod.metadata.labels.get("app").map(String::as_str),
        Some("p")
    );
}

#[test]
fn list_expands_into_items() {
    let list = r#"{"apiVersion": "v1", "kind": "List", "metadata": {}, "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
         "spec": {"containers": [{"name": "c", "image": "i"}]}}
    ]}"#;
    let objects = parse_ok(list);
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[1].display_name(), "Pod/p");

    // An unnamed bad item is located by its position in the list.
    let err = parse_err(
        r#"{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "metadata": {"name": "x"}}]}"#,
    );
    assert_eq!(err.to_string(), "document 1: items[0].kind: required value");
}

#[test]
fn kubectl_generated_yaml_is_accepted() {
    let generated = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  creationTimestamp: null
  labels:
    app: web
  name: web
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  strategy: {}
  template:
    metadata:
      creationTimestamp: null
      labels:
        app: web
    spec:
      containers:
      - image: nginx
        name: nginx
        resources: {}
status: {}
"#;
    let objects = parse_ok(generated);
    assert_eq!(objects[0].meta().creation_timestamp, None);
}

#[test]
fn status_and_server_fields_in_input_are_dropped() {
    let objects = parse_ok(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, uid: abc, resourceVersion: '7', generation: 4}\nspec: {containers: [{name: c, image: i}]}\nstatus: {phase: Running, podIP: 10.0.0.1}\n",
    );
    let Object::Pod(pod) = &objects[0] else {
        panic!("expected a pod");
    };
    assert_eq!(pod.status, PodStatus::default());
    assert_eq!(pod.metadata.uid, "");
    assert_eq!(pod.metadata.generation, 0);
    // Kept: the store checks it as a precondition of an API request.
    assert_eq!(pod.metadata.resource_version, "7");
}

#[test]
fn unquoted_numeric_quantities_are_kept_as_text() {
    let objects = parse_ok(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: i\n    resources: {requests: {cpu: 0.5}, limits: {cpu: 1, memory: 1e9}}\n",
    );
    let Object::Pod(pod) = &objects[0] else {
        panic!("expected a pod");
    };
    let resources = &pod.spec.containers[0].resources;
    assert_eq!(resources.requests["cpu"], "0.5");
    assert_eq!(resources.limits["cpu"], "1");
    assert_eq!(
        crate::model::parse_memory_bytes(&resources.limits["memory"]),
        Ok(1_000_000_000)
    );
}

const THREE_ERRORS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
spec:
  selector:
    matchLabels: {app: hello}
  template:
    metadata:
      labels: {app: hello}
    spec:
      restartPolicy: Sometimes
      containers:
        - name: web
          image: hello:1
          securityContext: {seLinuxOptions: {level: s0}}
          resources:
            limits: {memory: 64Mb}
"#;

#[test]
fn every_error_is_reported_with_its_path() {
    let err = parse_err(THREE_ERRORS);
    assert_eq!(err.documents.len(), 1);
    let doc = &err.documents[0];
    assert_eq!(doc.document, 0);
    assert_eq!(doc.object.as_deref(), Some("Deployment/hello"));
    let paths: Vec<&str> = doc.errors.iter().map(|e| e.path.as_str()).collect();
    assert!(
        paths.contains(&"spec.template.spec.containers[0].resources.limits.memory"),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"spec.template.spec.containers[0].securityContext.seLinuxOptions"),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"spec.template.spec.restartPolicy"),
        "{paths:?}"
    );
    assert_eq!(doc.errors.len(), 3, "{err}");

    let text = err.to_string();
    assert!(text.contains(
        "spec.template.spec.containers[0].resources.limits.memory: invalid quantity \"64Mb\""
    ));
    assert!(text.contains(
        "Deployment/hello: spec.template.spec.containers[0].securityContext.seLinuxOptions: field not supported by berth"
    ));
    assert!(text.contains(
        "spec.template.spec.restartPolicy: unsupported value \"Sometimes\": supported values: \"Always\""
    ));
    assert_eq!(text.lines().count(), 3);
}

#[test]
fn errors_from_all_documents_reject_the_whole_file() {
    let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n---\nkind: Gateway\nmetadata: {name: s}\n---\napiVersion: apps/v2\nkind: Deployment\nmetadata: {name: Foo_1}\n---\nmetadata: {name: nokind}\n";
    let err = parse_err(text);
    let lines: Vec<String> = err.to_string().lines().map(String::from).collect();
    let expected_prefixes = [
        "Pod/p: spec.containers: required value",
        "Gateway/s: kind: unsupported kind \"Gateway\"",
        "Deployment/Foo_1: apiVersion: unsupported apiVersion \"apps/v2\" for Deployment",
        "Deployment/Foo_1: metadata.name: invalid name \"Foo_1\": must be a lowercase RFC 1123",
        "document 5: kind: required value",
        "document 5: apiVersion: required value",
    ];
    for prefix in expected_prefixes {
        assert!(
            lines.iter().any(|l| l.starts_with(prefix)),
            "missing {prefix:?} in {lines:#?}"
        );
    }
    assert_eq!(
        err.documents.iter().map(|d| d.document).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
}

#[test]
fn yaml_syntax_error_names_document_and_position() {
    let err =
        parse_err("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkind: [unclosed\n");
    assert_eq!(err.documents.len(), 1);
    assert_eq!(err.documents[0].document, 1);
    let text = err.to_string();
    assert!(text.starts_with("document 2: invalid YAML"), "{text}");
    assert!(text.contains("line"), "{text}");
}

#[test]
fn empty_input_and_non_objects() {
    assert_eq!(parse_manifests(""), Ok(vec![]));
    assert_eq!(parse_manifests("---\n---\n"), Ok(vec![]));
    let err = parse_err("just a string\n");
    assert_eq!(err.to_string(), "document 1: expected object");
}

#[test]
fn round_trip_through_json() {
    for object in parse_ok(MULTI_DOC) {
        let json = object.to_json();
        assert_eq!(json["kind"], object.kind().as_str());
        assert_eq!(json["apiVersion"], object.kind().api_version());
        assert!(json.get("status").is_none(), "default status is left out");
        assert_eq!(Object::from_json(json), Ok(object));
    }
}

#[test]
fn status_uses_kubernetes_field_names() {
    let mut objects = parse_ok(MULTI_DOC);
    let Object::Pod(pod) = &mut objects[2] else {
        panic!("expected a pod");
    };
    pod.status = PodStatus {
        phase: "Running".into(),
        pod_ip: Some("10.88.0.5".into()),
        host_ip: Some("192.168.1.20".into()),
        conditions: vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            ..Default::default()
        }],
        container_statuses: vec![ContainerStatus {
            name: "job".into(),
            restart_count: 2,
            image_id: "sha256:abc".into(),
            container_id: Some("berth://x".into()),
            last_state: ContainerState {
                terminated: Some(StateTerminated {
                    exit_code: 137,
                    reason: Some("OOMKilled".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        }],
        ..Default::default()
    };
    let object = objects.swap_remove(2);
    let json = object.to_json();
    let status = &json["status"];
    assert_eq!(status["podIP"], "10.88.0.5");
    assert_eq!(status["hostIP"], "192.168.1.20");
    assert_eq!(status["conditions"][0]["type"], "Ready");
    let container = &status["containerStatuses"][0];
    assert_eq!(container["restartCount"], 2);
    assert_eq!(container["imageID"], "sha256:abc");
    assert_eq!(container["containerID"], "berth://x");
    assert_eq!(container["ready"], false);
    assert_eq!(container["state"], serde_json::json!({}));
    assert_eq!(container["lastState"]["terminated"]["exitCode"], 137);
    assert_eq!(container["lastState"]["terminated"]["reason"], "OOMKilled");
    assert_eq!(Object::from_json(json), Ok(object));
}

#[test]
fn spec_hash_of_parsed_specs() {
    let objects = parse_ok(MULTI_DOC);
    let Object::Pod(pod) = &objects[2] else {
        panic!("expected a pod");
    };
    let again = parse_ok(MULTI_DOC);
    let Object::Pod(same) = &again[2] else {
        panic!("expected a pod");
    };
    assert_eq!(spec_hash(&pod.spec), spec_hash(&same.spec));
    let mut changed = pod.spec.clone();
    changed.containers[0].image = "busybox:1.36".into();
    assert_ne!(spec_hash(&pod.spec), spec_hash(&changed));
}

#[test]
fn secrets_fold_string_data_into_data() {
    let objects = parse_manifests(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {a: b2xk}\nstringData: {a: new, b: two}\n",
    )
    .unwrap();
    let json = objects[0].to_json();
    assert_eq!(json["type"], "Opaque");
    assert_eq!(json["data"]["a"], "bmV3");
    assert_eq!(json["data"]["b"], "dHdv");
    assert!(json.get("stringData").is_none(), "{json}");
    let round = Object::from_json(json).unwrap();
    assert_eq!(round, objects[0]);
}

/// The ConfigMap `c`'s data from a manifest whose `data:` block is `data`.
fn config_map_data(data: &str) -> std::collections::BTreeMap<String, String> {
    let text = format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata:\n{data}");
    match parse_ok(&text).pop() {
        Some(Object::ConfigMap(config_map)) => config_map.data,
        other => panic!("expected a ConfigMap, got {other:?}"),
    }
}

#[test]
fn a_quote_escaped_in_double_quotes_reads_as_kubectl_reads_it() {
    let objects = parse_ok(
        r#"apiVersion: v1
kind: Pod
metadata: {name: hello}
spec:
  containers:
  - name: main
    image: busybox
    command: ["/bin/sh", "-c", "echo \'hello\' && echo \'bye\'"]
    args: ["it\'s", "\"q\'\""]
"#,
    );
    let Some(Object::Pod(pod)) = objects.first() else {
        panic!("expected a Pod, got {objects:?}");
    };
    let container = &pod.spec.containers[0];
    assert_eq!(container.command[2], "echo 'hello' && echo 'bye'");
    assert_eq!(container.args, ["it's", "\"q'\""]);
}

#[test]
fn quote_escapes_in_several_scalars_and_documents() {
    let data = config_map_data("  a: \"\\'1\\'\"\n  b: \"é2\\'\"\n");
    assert_eq!(data["a"], "'1'");
    assert_eq!(data["b"], "é2'", "offsets count bytes");
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {x: \"y\"}}\ndata: {k: \"\\'\"}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata: {k: \"it\\'s\"}\n";
    let values: Vec<String> = parse_ok(text)
        .into_iter()
        .map(|object| object.to_json()["data"]["k"].to_string())
        .collect();
    assert_eq!(values, [r#""'""#, r#""it's""#]);
}

#[test]
fn backslashes_outside_double_quotes_and_escaped_backslashes_stay() {
    let data = config_map_data(concat!(
        "  escaped_backslash: \"a\\\\'b\"\n",
        "  single: 'it\\''s'\n",
        "  plain: it\\'s\n",
        "  plain_with_quotes: say \"it\\'s\"\n",
        "  block: |\n    echo \"it\\'s\"\n",
        "  # a comment: \"it\\'s\"\n",
        "  folded: >-\n    \"a\\'b\"\n",
    ));
    assert_eq!(data["escaped_backslash"], "a\\'b");
    assert_eq!(data["single"], "it\\'s");
    assert_eq!(data["plain"], "it\\'s");
    assert_eq!(data["plain_with_quotes"], "say \"it\\'s\"");
    assert_eq!(data["block"], "echo \"it\\'s\"\n");
    assert_eq!(data["folded"], "\"a\\'b\"");
    assert_eq!(data.len(), 6, "{data:?}");
}

#[test]
fn other_unknown_escapes_are_still_refused() {
    let err = parse_err(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: \"\\'\", b: \"\\q\"}\n",
    );
    let text = err.to_string();
    assert!(text.contains("found unknown escape character"), "{text}");
    assert!(text.contains("line 4"), "{text}");
}
