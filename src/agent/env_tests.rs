use super::*;
use crate::model::{EnvFromSource, EnvVar, EnvVarSource, KeySelector, NameSelector};

fn pod() -> Pod {
    let mut pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "dev", "uid": "u-1",
                     "labels": {"app": "web", "tier": "front"},
                     "annotations": {"note": "say \"hi\""}},
        "spec": {"containers": [{"name": "app", "image": "i",
                 "resources": {"limits": {"cpu": "250m", "memory": "64Mi"},
                               "requests": {"cpu": "100m"}}}]}
    }))
    .unwrap();
    pod.metadata.namespace = Some("dev".into());
    pod
}

fn config() -> PodConfig {
    let mut map = ConfigMap::default();
    map.data.insert("PORT".into(), "8080".into());
    map.data.insert("HOST".into(), "db.dev".into());
    map.data.insert("bad=".into(), "x".into());
    let mut secret = Secret::default();
    secret
        .data
        .insert("PASSWORD".into(), base64::encode(b"s3cret"));
    let mut config = PodConfig::default();
    config.config_maps.insert("app".into(), Some(map));
    config.config_maps.insert("gone".into(), None);
    config.secrets.insert("creds".into(), Some(secret));
    config
}

fn facts() -> PodFacts {
    PodFacts {
        pod_ip: Some("10.42.0.7".into()),
        host_ip: Some("192.0.2.1".into()),
        node_name: "pi-1".into(),
        node_cpu_millis: 4000,
        node_memory_bytes: 1 << 30,
    }
}

fn literal(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: value.into(),
        value_from: None,
    }
}

fn from(name: &str, source: EnvVarSource) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: String::new(),
        value_from: Some(source),
    }
}

fn key(name: &str, key: &str, optional: Option<bool>) -> KeySelector {
    KeySelector {
        name: name.into(),
        key: key.into(),
        optional,
    }
}

fn resolve(container: &Container) -> Result<ResolvedEnv, String> {
    container_env_vars(&pod(), container, &config(), &facts())
}

fn container() -> Container {
    pod().spec.containers[0].clone()
}

#[test]
fn env_from_then_env_in_order_with_expansion() {
    let mut c = container();
    let app = |prefix: &str| EnvFromSource {
        prefix: prefix.into(),
        config_map_ref: Some(NameSelector {
            name: "app".into(),
            optional: None,
        }),
        secret_ref: None,
    };
    // A key that is no variable name is skipped.
    c.env_from = vec![app("APP_"), app("")];
    c.env = vec![
        from(
            "DB_PASSWORD",
            EnvVarSource {
                secret_key_ref: Some(key("creds", "PASSWORD", None)),
                ..Default::default()
            },
        ),
        literal("URL", "http://$(APP_HOST):$(APP_PORT)/$(LATER)$$x"),
        literal("LATER", "late"),
        literal("APP_PORT", "9090"),
    ];
    let (vars, skipped) = resolve(&c).unwrap();
    let get = |n: &str| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    assert_eq!(get("APP_HOST"), Some("db.dev"));
    assert_eq!(get("DB_PASSWORD"), Some("s3cret"));
    // Only what was defined before it expands; `$$` is a dollar.
    assert_eq!(get("URL"), Some("http://db.dev:8080/$(LATER)$x"));
    // A later entry replaces the envFrom value in place.
    assert_eq!(get("APP_PORT"), Some("9090"));
    assert_eq!(get("PORT"), Some("8080"));
    assert_eq!(skipped, ["APP_bad=", "bad="]);
}

#[test]
fn missing_sources_give_the_kubelet_messages_unless_optional() {
    let mut c = container();
    let by_key = |k: KeySelector| EnvVarSource {
        config_map_key_ref: Some(k),
        ..Default::default()
    };
    c.env = vec![from("A", by_key(key("gone", "x", None)))];
    assert_eq!(resolve(&c).unwrap_err(), "configmap \"gone\" not found");
    c.env = vec![from("A", by_key(key("app", "nope", None)))];
    assert_eq!(
        resolve(&c).unwrap_err(),
        "couldn't find key nope in ConfigMap dev/app"
    );
    c.env = vec![from(
        "A",
        EnvVarSource {
            secret_key_ref: Some(key("none", "x", None)),
            ..Default::default()
        },
    )];
    assert_eq!(resolve(&c).unwrap_err(), "secret \"none\" not found");
    c.env = vec![
        from("A", by_key(key("gone", "x", Some(true)))),
        from("B", by_key(key("app", "nope", Some(true)))),
    ];
    assert_eq!(resolve(&c).unwrap().0, Vec::<(String, String)>::new());
    c.env.clear();
    c.env_from = vec![EnvFromSource {
        secret_ref: Some(NameSelector {
            name: "absent".into(),
            optional: None,
        }),
        ..Default::default()
    }];
    assert_eq!(resolve(&c).unwrap_err(), "secret \"absent\" not found");
}

#[test]
fn downward_api_fields_and_resources() {
    let mut c = container();
    let field = |path: &str| EnvVarSource {
        field_ref: Some(ObjectFieldSelector {
            api_version: None,
            field_path: path.into(),
        }),
        ..Default::default()
    };
    let resource = |resource: &str, divisor: Option<&str>| EnvVarSource {
        resource_field_ref: Some(ResourceFieldSelector {
            container_name: String::new(),
            resource: resource.into(),
            divisor: divisor.map(str::to_owned),
        }),
        ..Default::default()
    };
    c.env = vec![
        from("NAME", field("metadata.name")),
        from("NS", field("metadata.namespace")),
        from("APP", field("metadata.labels['app']")),
        from("NONE", field("metadata.labels['absent']")),
        from("IP", field("status.podIP")),
        from("NODE", field("spec.nodeName")),
        from("HOST", field("status.hostIP")),
        from("CPU", resource("limits.cpu", None)),
        from("CPU_M", resource("limits.cpu", Some("1m"))),
        from("MEM_MI", resource("limits.memory", Some("1Mi"))),
        from("REQ_MEM", resource("requests.memory", None)),
        from("NODE_MEM", resource("limits.memory", Some("1Gi"))),
    ];
    let mut c2 = c.clone();
    c2.resources.limits.remove("memory");
    let (vars, _) = resolve(&c).unwrap();
    let values: Vec<&str> = vars.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(
        values,
        [
            "web",
            "dev",
            "web",
            "",
            "10.42.0.7",
            "pi-1",
            "192.0.2.1",
            "1",
            "250",
            "64",
            "0",
            "1"
        ]
    );
    // Without a memory limit the node's memory is the limit.
    let mut pod = pod();
    pod.spec.containers[0] = c2.clone();
    let (vars, _) = container_env_vars(&pod, &c2, &config(), &facts()).unwrap();
    assert_eq!(vars.last().unwrap().1, "1");
    assert_eq!(vars[9].1, "1024");
}

#[test]
fn expansion_follows_kubernetes() {
    let vars = vec![("A".to_owned(), "1".to_owned()), ("B".into(), "two".into())];
    assert_eq!(expand("$(A)-$(B)", &vars), "1-two");
    assert_eq!(expand("$(C)", &vars), "$(C)");
    assert_eq!(expand("$$(A)", &vars), "$(A)");
    assert_eq!(expand("$A $", &vars), "$A $");
    assert_eq!(expand("x$(A", &vars), "x$(A");
    assert_eq!(expand("", &vars), "");
}

#[test]
fn referenced_names_cover_env_and_volumes() {
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p"},
        "spec": {
            "containers": [{"name": "a", "image": "i",
                "envFrom": [{"configMapRef": {"name": "cm1"}}, {"secretRef": {"name": "s1"}}],
                "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm2", "key": "k"}}}]}],
            "volumes": [
                {"name": "v1", "configMap": {"name": "cm1"}},
                {"name": "v2", "secret": {"secretName": "s2"}},
                {"name": "v3", "projected": {"sources": [
                    {"configMap": {"name": "cm3"}}, {"secret": {"name": "s1"}}]}}
            ]
        }
    }))
    .unwrap();
    let (maps, secrets) = pod.spec.config_references();
    assert_eq!(Vec::from_iter(maps), ["cm1", "cm2", "cm3"]);
    assert_eq!(Vec::from_iter(secrets), ["s1", "s2"]);
}
