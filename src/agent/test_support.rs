//! What the agent's unit tests share: an agent on the fake runtime with an in-memory
//! store, an image that needs no registry, requests through the public API entry point,
//! and waiting for the reconciler with a deadline. Nothing here needs root.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use event_listener::Listener;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::instance::Instance;
use super::{Agent, AgentOptions};
use crate::api::http::Body;
use crate::api::test_support::request;
use crate::runtime::fake::FakeRuntime;
use crate::store::Store;

/// The image every test pod uses: a local one, so no pull is attempted.
pub const IMAGE: &str = "localhost/berth-test/app:1";

/// How long a test waits for the reconciler before it fails.
const DEADLINE: Duration = Duration::from_secs(10);

/// An agent for one test. Fields drop in order: the agent before its state directory.
pub struct TestAgent {
    pub agent: Arc<Agent>,
    pub runtime: Arc<FakeRuntime>,
    pub dir: tempfile::TempDir,
}

/// An agent named `pi-1` whose crash-loop back-off starts at `backoff_base`, with the
/// `default` namespace and [`IMAGE`] in place.
pub fn test_agent(backoff_base: Duration) -> TestAgent {
    test_agent_with(backoff_base, |_| {})
}

/// [`test_agent`] with `adjust` applied to its options first (its devices, say).
pub fn test_agent_with(
    backoff_base: Duration,
    adjust: impl FnOnce(&mut AgentOptions),
) -> TestAgent {
    let dir = tempfile::tempdir().unwrap();
    let mut options = AgentOptions {
        state_dir: dir.path().to_path_buf(),
        manifests_dir: None,
        node_name: "pi-1".into(),
        cgroup_parent: "berth-test".into(),
        backoff_base,
        backoff_max: Duration::from_secs(300).max(backoff_base),
        board: None,
        registries: None,
        join: None,
        node_labels: Default::default(),
        extended_resources: Default::default(),
        unpack_limits: Default::default(),
        encryption_key_file: None,
        local_path: None,
        network: crate::agent::NetworkOptions {
            backend: crate::agent::NetworkBackend::None,
            ..Default::default()
        },
        pod_security_level: crate::model::PodSecurityLevel::Baseline,
        service_cidr: crate::model::default_service_cidr(),
        node_port_range: crate::model::DEFAULT_NODE_PORT_RANGE,
    };
    adjust(&mut options);
    let runtime = Arc::new(FakeRuntime::new());
    let (agent, _wake) = Agent::new(options, runtime.clone()).unwrap();
    // The store the agent opened on disk is swapped for one in memory: nothing here is
    // about persistence, and the tests then write nothing but the image to disk.
    *agent.store() = Store::open_in_memory().unwrap();
    let default = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}});
    agent.store().put_all(vec![default], None).unwrap();
    import_image(&agent, dir.path());
    TestAgent {
        agent,
        runtime,
        dir,
    }
}

/// Imports [`IMAGE`] from a hand-written OCI layout: no layers, a `Cmd`, the host's
/// platform.
fn import_image(agent: &Agent, dir: &Path) {
    let layout = dir.join("layout");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |media_type: &str, value: Value| {
        let bytes = value.to_string().into_bytes();
        let hex = crate::model::hex::encode(&Sha256::digest(&bytes));
        std::fs::write(blobs.join(&hex), &bytes).unwrap();
        json!({"mediaType": media_type, "digest": format!("sha256:{hex}"), "size": bytes.len()})
    };
    let platform = crate::image::host_platform();
    let mut parts = platform.split('/').skip(1);
    let mut config = json!({"architecture": parts.next().unwrap_or_default(), "os": "linux",
        "config": {"Cmd": ["/bin/app", "--serve"], "Env": ["PATH=/bin", "FROM_IMAGE=1"]},
        "rootfs": {"type": "layers", "diff_ids": []}});
    if let Some(variant) = parts.next() {
        config["variant"] = json!(variant);
    }
    let config = put("application/vnd.oci.image.config.v1+json", config);
    let manifest = json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config, "layers": []});
    let mut manifest = put("application/vnd.oci.image.manifest.v1+json", manifest);
    manifest["annotations"] = json!({"org.opencontainers.image.ref.name": IMAGE});
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let index = json!({"schemaVersion": 2, "manifests": [manifest]});
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    agent.images.import(&layout, None).unwrap();
}

/// Sends a request through [`super::server::handle`]; the status and the body (JSON, or
/// a JSON string for a text body).
pub fn call(agent: &Arc<Agent>, method: &str, target: &str, body: Option<&Value>) -> (u16, Value) {
    let response = smol::block_on(super::server::handle(
        agent.clone(),
        request(method, target, body),
    ));
    let Body::Bytes(bytes) = response.body else {
        panic!("{method} {target}: a streamed response");
    };
    let value = if response.content_type.starts_with("application/json") {
        serde_json::from_slice(&bytes).unwrap()
    } else {
        Value::String(String::from_utf8(bytes).unwrap())
    };
    (response.status, value)
}

/// The body of `POST /apis/berth.dev/v1/apply` for one YAML file.
pub fn manifest(yaml: &str) -> Value {
    json!({"files": [{"name": "test.yaml", "content": yaml}]})
}

/// Applies `yaml` through the API and checks that it was accepted.
pub fn apply(agent: &Arc<Agent>, yaml: &str) {
    let (status, body) = call(
        agent,
        "POST",
        "/apis/berth.dev/v1/apply",
        Some(&manifest(yaml)),
    );
    assert_eq!(status, 200, "apply refused: {body}");
}

/// A pod in `default` running [`IMAGE`] with one container per name.
pub fn pod_yaml(name: &str, containers: &[&str], restart_policy: &str) -> String {
    let mut yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: {name}}}\n\
         spec:\n  restartPolicy: {restart_policy}\n  containers:\n"
    );
    for container in containers {
        yaml.push_str(&format!("  - name: {container}\n    image: {IMAGE}\n"));
    }
    yaml
}

/// The instances the runtime holds for pod `uid`, by attempt.
pub fn instances(agent: &Agent, uid: &str) -> Vec<Instance> {
    let mut instances = agent.observe().unwrap().remove(uid).unwrap_or_default();
    instances.sort_by(|a, b| (&a.container, a.attempt).cmp(&(&b.container, b.attempt)));
    instances
}

/// The UID of a stored pod in `default`.
pub fn pod_uid(agent: &Agent, name: &str) -> String {
    agent
        .store()
        .get("Pod", "default", name)
        .unwrap()
        .unwrap_or_else(|| panic!("no pod {name}"))
        .uid
}

/// Runs reconcile passes until `done` holds and no pod has steps in flight, waiting
/// between passes for the steps they started (each ends with a wake-up); fails the test
/// after [`DEADLINE`].
pub fn reconcile_until(agent: &Arc<Agent>, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        // Listening before the pass: a wake-up from its steps is never missed.
        let listener = agent.listen_changes();
        agent.reconcile_once().unwrap();
        if done() && agent.memory().busy.is_empty() {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out waiting until {what}");
        // Steps may have been started by an earlier pass: look again at least every
        // 50 ms rather than only on the wake-up.
        listener.wait_timeout(left.min(Duration::from_millis(50)));
    }
}
