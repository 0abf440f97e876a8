//! ConfigMaps and Secrets through a running agent, and `imagePullSecrets`: a pod pulls
//! from a registry with basic auth (Debian's docker-registry, htpasswd) using the
//! credentials of a `kubernetes.io/dockerconfigjson` Secret in its namespace.
//! Needs root, docker-registry, skopeo and apache2-utils (scripts/setup).

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;
#[path = "common/registry.rs"]
mod registry_support;

use std::time::Duration;

use common::{demo_image, TestAgent};
use registry_support::{RegistryOptions, TestRegistry};

fn docker_secret(name: &str, registry: &str, password: &str) -> String {
    let config = serde_json::json!({
        "auths": { format!("https://{registry}/v1/"): {"username": "berth", "password": password} }
    });
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{config}'\n"
    )
}

fn pod(name: &str, image: &str, secrets: &[&str]) -> String {
    let refs: Vec<String> = secrets.iter().map(|s| format!("{{name: {s}}}")).collect();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 0\n  imagePullSecrets: [{}]\n  containers:\n    - name: main\n      image: {image}\n      imagePullPolicy: Always\n      command: [sleep, \"1000\"]\n",
        refs.join(", ")
    )
}

/// Waits until the pod's container waits because its pull failed (ErrImagePull, or
/// ImagePullBackOff once it failed again) and returns the message.
fn wait_pull_failed(agent: &TestAgent, name: &str) -> String {
    common::wait_for(Duration::from_secs(30), "a failed pull", || {
        let pod = agent.pod(name);
        let waiting = &pod["status"]["containerStatuses"][0]["state"]["waiting"];
        (waiting["reason"] == "ErrImagePull" || waiting["reason"] == "ImagePullBackOff")
            .then(|| waiting["message"].as_str().unwrap_or("").to_owned())
    })
}

#[test]
fn pods_pull_with_their_image_pull_secrets() {
    let registry = TestRegistry::start(RegistryOptions {
        basic_auth: Some(("berth".into(), "s3cret".into())),
        ..Default::default()
    });
    registry.push(
        demo_image(),
        "private:1",
        &["--dest-tls-verify=false", "--dest-creds", "berth:s3cret"],
    );
    let image = format!("{}/private:1", registry.host());
    let agent = TestAgent::start();

    // Without a secret the registry refuses the anonymous pull.
    assert!(agent
        .apply_yaml(&pod("anonymous", &image, &[]))
        .status
        .success());
    let message = wait_pull_failed(&agent, "anonymous");
    assert!(message.contains("credentials"), "{message}");

    // A secret with the wrong password does not help; neither does a missing secret.
    let wrong = docker_secret("wrong", &registry.host(), "nope");
    assert!(agent.apply_yaml(&wrong).status.success());
    assert!(agent
        .apply_yaml(&pod("wrong", &image, &["absent", "wrong"]))
        .status
        .success());
    let message = wait_pull_failed(&agent, "wrong");
    assert!(
        message.contains("credentials") || message.contains("401"),
        "{message}"
    );

    // The right secret, listed after the wrong one: each login is tried in turn.
    let right = docker_secret("regcred", &registry.host(), "s3cret");
    assert!(agent.apply_yaml(&right).status.success());
    assert!(agent
        .apply_yaml(&pod("private", &image, &["wrong", "regcred"]))
        .status
        .success());
    let running = agent.wait_running("private");
    let image_id = running["status"]["containerStatuses"][0]["imageID"]
        .as_str()
        .unwrap_or_default();
    assert!(image_id.contains("@sha256:"), "{running:#}");

    // Secrets are listed by type and key count; their values stay base64 in JSON.
    let table = agent.ok(&["get", "secrets"]);
    assert!(
        table.lines().any(|l| l.starts_with("regcred")
            && l.contains("kubernetes.io/dockerconfigjson")
            && l.split_whitespace().nth(2) == Some("1")),
        "{table}"
    );
    let stored = agent.json(&["get", "secret", "regcred"]);
    assert!(stored.get("stringData").is_none(), "{stored:#}");
    let described = agent.ok(&["describe", "secret", "regcred"]);
    assert!(
        !described.contains("s3cret"),
        "describe prints no values: {described}"
    );
}

#[test]
fn config_objects_validate_and_stay_immutable() {
    let agent = TestAgent::start();
    let config = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: fast\nimmutable: true\n";
    assert!(agent.apply_yaml(config).status.success());
    let table = agent.ok(&["get", "cm"]);
    assert!(table.contains("settings"), "{table}");

    // Changing an immutable payload is refused and the stored value is kept.
    let changed = agent.apply_yaml(&config.replace("fast", "slow"));
    assert!(!changed.status.success());
    let stderr = String::from_utf8_lossy(&changed.stderr);
    assert!(stderr.contains("immutable"), "{stderr}");
    let stored = agent.json(&["get", "configmap", "settings"]);
    assert_eq!(stored["data"]["mode"], "fast");

    // A bad secret is rejected as a whole with its field path, and nothing is stored.
    let bad = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: bad\ndata:\n  token: not-base64!\n";
    let refused = agent.apply_yaml(bad);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("data[token]: invalid base64 value"),
        "{stderr}"
    );
    assert!(!agent.berth(&["get", "secret", "bad"]).status.success());

    // Deleting the namespace takes its config maps and secrets with it.
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: team\nstringData:\n  k: v\n";
    assert!(agent.apply_yaml(ns).status.success());
    assert!(agent
        .ok(&["get", "secrets", "-n", "team"])
        .contains("Opaque"));
    agent.ok(&["delete", "namespace", "team"]);
    common::wait_for(Duration::from_secs(20), "namespace team gone", || {
        (!agent.berth(&["get", "namespace", "team"]).status.success()).then_some(())
    });
    assert!(!agent
        .berth(&["get", "secret", "s", "-n", "team"])
        .status
        .success());
}
