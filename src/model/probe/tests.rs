use super::*;
use crate::model::{parse_manifests, spec_hash, ContainerPort, Object, Pod};

const PROBED_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  containers:
    - name: web
      image: nginx
      ports: [{name: web, containerPort: 8080}]
      livenessProbe:
        httpGet:
          path: /healthz
          port: web
          httpHeaders: [{name: X-Probe, value: liveness}]
        initialDelaySeconds: 3
      readinessProbe:
        tcpSocket: {port: 8080}
        periodSeconds: 2
        successThreshold: 2
      startupProbe:
        exec: {command: [cat, /tmp/started]}
        failureThreshold: 30
      lifecycle:
        preStop:
          exec: {command: [nginx, -s, quit]}
"#;

fn parse_pod(text: &str) -> Pod {
    match parse_manifests(text) {
        Ok(mut objects) => match objects.pop() {
            Some(Object::Pod(pod)) => pod,
            other => panic!("expected a pod, got {other:?}"),
        },
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

#[test]
fn probes_parse_with_kubernetes_defaults() {
    let pod = parse_pod(PROBED_POD);
    let web = &pod.spec.containers[0];

    let liveness = web.liveness_probe.as_ref().expect("liveness probe");
    let http_get = liveness.http_get.as_ref().expect("httpGet");
    assert_eq!(http_get.path, "/healthz");
    assert_eq!(http_get.port, IntOrString::String("web".into()));
    assert_eq!(http_get.scheme, "HTTP");
    assert_eq!(http_get.host, None);
    assert_eq!(
        http_get.http_headers,
        [HttpHeader {
            name: "X-Probe".into(),
            value: "liveness".into()
        }]
    );
    assert_eq!(liveness.initial_delay_seconds, 3);
    assert_eq!(liveness.period_seconds, 10);
    assert_eq!(liveness.timeout_seconds, 1);
    assert_eq!(liveness.success_threshold, 1);
    assert_eq!(liveness.failure_threshold, 3);
    assert!(liveness.exec.is_none() && liveness.tcp_socket.is_none());

    let readiness = web.readiness_probe.as_ref().expect("readiness probe");
    let tcp = readiness.tcp_socket.as_ref().expect("tcpSocket");
    assert_eq!(tcp.port, IntOrString::Int(8080));
    assert_eq!(readiness.period_seconds, 2);
    assert_eq!(readiness.success_threshold, 2);
    assert_eq!(readiness.initial_delay_seconds, 0);

    let startup = web.startup_probe.as_ref().expect("startup probe");
    let exec = startup.exec.as_ref().expect("exec");
    assert_eq!(exec.command, ["cat", "/tmp/started"]);
    assert_eq!(startup.failure_threshold, 30);
    assert_eq!(startup.period_seconds, 10);

    let pre_stop = web
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        .and_then(|h| h.exec.as_ref())
        .expect("preStop exec");
    assert_eq!(pre_stop.command, ["nginx", "-s", "quit"]);
}

#[test]
fn http_get_path_and_scheme_default() {
    for path in ["", "path: ''"] {
        let pod = parse_pod(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - name: c\n    image: i\n    readinessProbe: {{httpGet: {{port: 80, {path}}}}}\n"
        ));
        let probe = pod.spec.containers[0].readiness_probe.as_ref();
        let http_get = probe.and_then(|p| p.http_get.as_ref()).expect("httpGet");
        assert_eq!(http_get.path, "/", "for {path:?}");
        assert_eq!(http_get.scheme, "HTTP");
        assert_eq!(http_get.port, IntOrString::Int(80));
    }
}

#[test]
fn json_round_trip_keeps_probes_and_defaults() {
    let object = Object::Pod(parse_pod(PROBED_POD));
    let json = object.to_json();
    let probe = &json["spec"]["containers"][0]["livenessProbe"];
    assert_eq!(probe["httpGet"]["port"], "web");
    assert_eq!(probe["httpGet"]["scheme"], "HTTP");
    assert_eq!(probe["httpGet"]["httpHeaders"][0]["name"], "X-Probe");
    assert_eq!(probe["periodSeconds"], 10);
    assert_eq!(probe["failureThreshold"], 3);
    assert_eq!(
        json["spec"]["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][0],
        "nginx"
    );
    assert_eq!(Object::from_json(json), Ok(object));

    // A container without probes serializes without the fields.
    let plain = Object::Pod(parse_pod(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: i}]}\n",
    ));
    let container = &plain.to_json()["spec"]["containers"][0];
    for field in [
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
        "lifecycle",
    ] {
        assert!(container.get(field).is_none(), "{field} in {container}");
    }
}

#[test]
fn spec_hash_sees_probe_changes() {
    let pod = parse_pod(PROBED_POD);
    let before = spec_hash(&pod.spec);
    let mut changed = pod.spec.clone();
    if let Some(probe) = changed.containers[0].liveness_probe.as_mut() {
        probe.period_seconds = 11;
    }
    assert_ne!(before, spec_hash(&changed));

    let mut no_pre_stop = pod.spec.clone();
    no_pre_stop.containers[0].lifecycle = None;
    assert_ne!(before, spec_hash(&no_pre_stop));
    assert_eq!(before, spec_hash(&pod.spec.clone()));
}

#[test]
fn ports_resolve_by_number_or_name() {
    let container = Container {
        name: "c".into(),
        ports: vec![
            ContainerPort {
                name: Some("web".into()),
                container_port: 8080,
                ..Default::default()
            },
            ContainerPort {
                container_port: 9090,
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    assert_eq!(resolve_port(&container, &IntOrString::Int(80)), Some(80));
    assert_eq!(
        resolve_port(&container, &IntOrString::String("web".into())),
        Some(8080)
    );
    assert_eq!(
        resolve_port(&container, &IntOrString::String("metrics".into())),
        None
    );
    assert_eq!(resolve_port(&container, &IntOrString::Int(0)), None);
    assert_eq!(resolve_port(&container, &IntOrString::Int(70000)), None);
    assert_eq!(resolve_port(&container, &IntOrString::Int(-1)), None);
}
