//! Routing and authorization of the coordinator's API through its public entry points,
//! [`super::handle`] and [`super::admit`]: who may do what, and the Kubernetes `Status`
//! of every refusal. A coordinator is built on an in-memory store with its certificates
//! in a temporary directory; no port is opened and no controller runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::api::config::ClientConfig;
use crate::api::http::{Admission, Body, Request};
use crate::api::tokens::Credential;
use crate::coordinator::auth::{ensure_admin_config, Auth};
use crate::coordinator::fleet::Fleet;
use crate::coordinator::pki::Pki;
use crate::coordinator::server::{admit, handle};
use crate::coordinator::{Coordinator, CoordinatorOptions};
use crate::store::Store;

struct TestCoordinator {
    coordinator: Arc<Coordinator>,
    /// The admin's bearer credential, as written into its config file.
    admin: String,
    _dir: tempfile::TempDir,
}

/// A coordinator as `coordinator::run` sets it up, with nodes `pi-1` and `pi-2` stored.
fn test_coordinator() -> TestCoordinator {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open_in_memory().unwrap();
    crate::controllers::namespace::ensure_default(&mut store).unwrap();
    let auth = Auth::load(&mut store).unwrap();
    let pki = Pki::load_or_create(&dir.path().join("tls"), &[]).unwrap();
    let config = dir.path().join("admin.config");
    ensure_admin_config(
        &auth,
        &mut store,
        &config,
        "https://127.0.0.1:6443",
        &pki,
        false,
    )
    .unwrap();
    let admin = ClientConfig::load(&config).unwrap().token;
    for node in ["pi-1", "pi-2"] {
        let object = json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node, "labels": {"kubernetes.io/arch": "arm64"}}});
        store.put_all(vec![object], None).unwrap();
    }
    let fleet = Fleet::new(&store).unwrap();
    // Nobody receives the controllers' wake-ups: they do not run here.
    let (wake_tx, _) = smol::channel::bounded(1);
    let coordinator = Coordinator {
        options: CoordinatorOptions {
            listen: "127.0.0.1:6443".parse().unwrap(),
            state_dir: dir.path().to_path_buf(),
            tls_sans: Vec::new(),
            node_monitor_grace: Duration::from_secs(40),
            pod_eviction_timeout: Duration::from_secs(300),
            registries: None,
            encryption_key_file: None,
            pod_security_level: crate::model::PodSecurityLevel::Baseline,
            service_cidr: crate::model::default_service_cidr(),
            node_port_range: crate::model::DEFAULT_NODE_PORT_RANGE,
            cluster_cidr: "10.42.0.0/16".parse().unwrap(),
            datastore: None,
            leader_lease: Duration::from_secs(2),
        },
        store: Mutex::new(store),
        auth,
        fleet,
        ca_hash: pki.ca_hash().to_string(),
        registries: crate::image::RegistryConfig::empty(),
        image_platforms: Mutex::new(HashMap::new()),
        wake_tx,
        events: crate::api::events::EventLog::new(),
        peers: None,
        name: "test-6443".to_string(),
        url: "https://127.0.0.1:6443".to_string(),
        started: "2026-12-03T00:00:00Z".to_string(),
        auth_reloaded: Mutex::new(None),
        zones: crate::api::zoneinfo::ZoneInfo::system(),
    };
    TestCoordinator {
        coordinator: Arc::new(coordinator),
        admin,
        _dir: dir,
    }
}

impl TestCoordinator {
    /// A credential for node `name`, as a join would issue it.
    fn node(&self, name: &str) -> String {
        let mut store = self.coordinator.store();
        let credential = self
            .coordinator
            .auth
            .create_node_credential(&mut store, name)
            .unwrap();
        credential.to_string()
    }

    /// `token` as a bearer, `""` for none.
    fn call(&self, token: &str, method: &str, target: &str, body: Option<&Value>) -> (u16, Value) {
        let response = smol::block_on(handle(
            self.coordinator.clone(),
            request(token, method, target, body),
        ));
        let Body::Bytes(bytes) = response.body else {
            panic!("{method} {target}: a streamed response");
        };
        (response.status, serde_json::from_slice(&bytes).unwrap())
    }

    fn admin(&self, method: &str, target: &str, body: Option<&Value>) -> (u16, Value) {
        self.call(&self.admin, method, target, body)
    }
}

/// A request as the HTTPS server hands it over, with `token` as its bearer (if any).
fn request(token: &str, method: &str, target: &str, body: Option<&Value>) -> Request {
    let mut request = crate::api::test_support::request(method, target, body);
    if !token.is_empty() {
        let bearer = ("Authorization".to_owned(), format!("Bearer {token}"));
        request.headers.push(bearer);
    }
    request.keep_alive = true;
    request
}

/// A refusal is a Kubernetes `Status` whose code is the HTTP status; its message.
fn refused(response: (u16, Value), code: u16, reason: &str) -> String {
    let (status, body) = response;
    assert_eq!(status, code, "{body}");
    assert_eq!(
        (&body["kind"], &body["status"]),
        (&json!("Status"), &json!("Failure"))
    );
    assert_eq!(body["code"], code);
    assert_eq!(body["reason"], reason, "{body}");
    body["message"].as_str().unwrap().to_owned()
}

fn names(list: &Value) -> Vec<&str> {
    assert_eq!(list["kind"], "List", "{list}");
    let mut names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["metadata"]["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    names
}

fn manifest(yaml: &str) -> Value {
    json!({"files": [{"name": "test.yaml", "content": yaml}]})
}

const PODS: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, labels: {app: web}}\n\
    spec:\n  nodeName: pi-1\n  containers: [{name: app, image: 'localhost/app:1'}]\n---\n\
    apiVersion: v1\nkind: Pod\nmetadata: {name: db, labels: {app: db}}\n\
    spec:\n  nodeName: pi-2\n  containers: [{name: app, image: 'localhost/app:1'}]\n";

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  \
    replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    \
    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: app, image: 'localhost/app:1'}]\n";

#[test]
fn the_version_is_public_and_everything_else_needs_a_valid_credential() {
    let test = test_coordinator();
    let (status, version) = test.call("", "GET", "/version", None);
    assert_eq!(status, 200);
    assert_eq!(version["version"], crate::VERSION);
    assert_eq!(version["gitRevision"], crate::GIT_REVISION);
    assert!(matches!(
        admit(&test.coordinator, &request("", "GET", "/version", None)),
        Admission::Anonymous
    ));

    let stranger = Credential::generate_admin().unwrap().to_string();
    for (token, why) in [
        ("", "no credentials"),
        ("berth-admin.not-a-secret", "invalid credential"),
        ("garbage", "invalid credential"),
        (stranger.as_str(), "invalid credential"),
    ] {
        for (method, target) in [
            ("GET", "/api/v1/namespaces/default/pods"),
            ("POST", "/apis/berth.dev/v1/apply"),
            ("GET", "/api/v1/nodes/pi-1"),
            ("GET", "/apis/berth.dev/v1/nodes/pi-1/assignments"),
        ] {
            let message = refused(test.call(token, method, target, None), 401, "Unauthorized");
            assert!(message.starts_with(why), "{token} {target}: {message}");
            // The same answer from the head alone, before any body is read.
            let head = request(token, method, target, None);
            let Admission::Denied(response) = admit(&test.coordinator, &head) else {
                panic!("{token:?} was let in to {target}");
            };
            assert_eq!(response.status, 401);
        }
    }
    // Not a bearer credential at all.
    let mut basic = request("", "GET", "/api/v1/pods", None);
    basic
        .headers
        .push(("Authorization".into(), "Basic YWRtaW46YWRtaW4=".into()));
    let Admission::Denied(response) = admit(&test.coordinator, &basic) else {
        panic!("basic auth was let in");
    };
    assert_eq!(response.status, 401);
    let head = request(&test.admin, "POST", "/apis/berth.dev/v1/apply", None);
    assert!(matches!(
        admit(&test.coordinator, &head),
        Admission::Authenticated
    ));
}

#[test]
fn the_admin_applies_lists_gets_and_deletes() {
    let test = test_coordinator();
    let (status, result) = test.admin("POST", "/apis/berth.dev/v1/apply", Some(&manifest(PODS)));
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["items"].as_array().unwrap().len(), 2);

    let (status, pod) = test.admin("GET", "/api/v1/namespaces/default/pods/web", None);
    assert_eq!(status, 200);
    assert_eq!(pod["spec"]["nodeName"], "pi-1");
    // No agent has reported yet.
    assert_eq!(pod["status"]["phase"], "Pending");
    let (_, all) = test.admin("GET", "/api/v1/pods", None);
    assert_eq!(names(&all), ["db", "web"]);
    let (_, web) = test.admin("GET", "/api/v1/pods?labelSelector=app=web", None);
    assert_eq!(names(&web), ["web"]);
    let (_, on_pi2) = test.admin("GET", "/api/v1/pods?fieldSelector=spec.nodeName=pi-2", None);
    assert_eq!(names(&on_pi2), ["db"]);
    let message = refused(
        test.admin(
            "GET",
            "/api/v1/pods?fieldSelector=status.phase=Running",
            None,
        ),
        400,
        "BadRequest",
    );
    assert!(
        message.starts_with("unsupported fieldSelector"),
        "{message}"
    );
    let message = refused(
        test.admin("GET", "/api/v1/pods?labelSelector=app!=web", None),
        400,
        "BadRequest",
    );
    assert!(message.starts_with("invalid labelSelector"), "{message}");
    let (_, nodes) = test.admin("GET", "/api/v1/nodes", None);
    assert_eq!(names(&nodes), ["pi-1", "pi-2"]);

    let (status, deleted) = test.admin("DELETE", "/api/v1/namespaces/default/pods/web", None);
    assert_eq!((status, &deleted["status"]), (200, &json!("Success")));
    // Marked: the pod goes once its node reports it gone.
    let (_, pod) = test.admin("GET", "/api/v1/namespaces/default/pods/web", None);
    assert!(pod["metadata"]["deletionTimestamp"].is_string(), "{pod}");
    // The delete verb takes the manifests that were applied.
    let (status, result) = test.admin("POST", "/apis/berth.dev/v1/delete", Some(&manifest(PODS)));
    assert_eq!(status, 200, "{result}");
    let (_, pod) = test.admin("GET", "/api/v1/namespaces/default/pods/db", None);
    assert!(pod["metadata"]["deletionTimestamp"].is_string(), "{pod}");
    let message = refused(
        test.admin("DELETE", "/api/v1/namespaces/default/pods/absent", None),
        404,
        "NotFound",
    );
    assert_eq!(message, r#"pods "absent" not found"#);
}

#[test]
fn the_admin_gets_kubernetes_refusals_for_bad_requests() {
    let test = test_coordinator();
    let invalid = "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  \
                   containers: [{name: app, image: x, resources: {limits: {memory: 64Mb}}}]\n";
    let message = refused(
        test.admin("POST", "/apis/berth.dev/v1/apply", Some(&manifest(invalid))),
        422,
        "Invalid",
    );
    assert!(message.contains(r#"invalid quantity "64Mb""#), "{message}");
    refused(
        test.admin("POST", "/apis/berth.dev/v1/apply", Some(&json!([]))),
        400,
        "BadRequest",
    );
    refused(test.admin("GET", "/nowhere", None), 404, "NotFound");
    let message = refused(
        test.admin("GET", "/api/v1/namespaces/default/widgets", None),
        404,
        "NotFound",
    );
    assert!(message.contains(r#""widgets""#), "{message}");
    refused(
        test.admin("GET", "/api/v1/namespaces/default/pods/absent", None),
        404,
        "NotFound",
    );
    refused(
        test.admin("PUT", "/api/v1/namespaces/default/pods/web", None),
        405,
        "MethodNotAllowed",
    );
    refused(
        test.admin("PUT", "/api/v1/nodes", None),
        405,
        "MethodNotAllowed",
    );
}

#[test]
fn the_scale_subresource_reads_and_sets_replicas() {
    let test = test_coordinator();
    let (status, _) = test.admin(
        "POST",
        "/apis/berth.dev/v1/apply",
        Some(&manifest(DEPLOYMENT)),
    );
    assert_eq!(status, 200);
    let target = "/apis/apps/v1/namespaces/default/deployments/web/scale";
    let (status, scale) = test.admin("GET", target, None);
    assert_eq!((status, &scale["spec"]["replicas"]), (200, &json!(2)));
    let (status, scale) = test.admin("PUT", target, Some(&json!({"spec": {"replicas": 4}})));
    assert_eq!((status, &scale["spec"]["replicas"]), (200, &json!(4)));
    let (_, deployment) = test.admin(
        "GET",
        "/apis/apps/v1/namespaces/default/deployments/web",
        None,
    );
    assert_eq!(deployment["spec"]["replicas"], 4);
    for replicas in [json!(-1), json!("4"), json!(null)] {
        let body = json!({"spec": {"replicas": replicas}});
        refused(test.admin("PUT", target, Some(&body)), 422, "Invalid");
    }
    assert_eq!(test.admin("GET", target, None).1["spec"]["replicas"], 4);
    refused(
        test.admin(
            "GET",
            "/apis/apps/v1/namespaces/default/deployments/absent/scale",
            None,
        ),
        404,
        "NotFound",
    );
}

#[test]
fn a_node_may_use_only_its_own_routes() {
    let test = test_coordinator();
    let node = test.node("pi-1");
    let (status, own) = test.call(&node, "GET", "/api/v1/nodes/pi-1", None);
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["metadata"]["name"], "pi-1");
    assert_eq!(own["status"]["conditions"][0]["type"], "Ready");
    let head = request(&node, "GET", "/api/v1/nodes/pi-1", None);
    assert!(matches!(
        admit(&test.coordinator, &head),
        Admission::Authenticated
    ));

    let (status, assignments) = test.call(
        &node,
        "GET",
        "/apis/berth.dev/v1/nodes/pi-1/assignments?timeoutSeconds=0",
        None,
    );
    assert_eq!(status, 200, "{assignments}");
    assert!(assignments["version"].is_string(), "{assignments}");
    let (status, ack) = test.call(
        &node,
        "PUT",
        "/apis/berth.dev/v1/nodes/pi-1/podstatuses",
        Some(&json!({"pods": []})),
    );
    assert_eq!((status, &ack["accepted"]), (200, &json!(0)));

    for (method, target, body) in [
        ("GET", "/api/v1/nodes/pi-2", None),
        ("GET", "/api/v1/nodes", None),
        ("GET", "/apis/berth.dev/v1/nodes/pi-2/assignments", None),
        (
            "PUT",
            "/apis/berth.dev/v1/nodes/pi-2/podstatuses",
            Some(json!({"pods": []})),
        ),
        ("PUT", "/api/v1/nodes/pi-2/status", Some(json!({}))),
        ("DELETE", "/api/v1/nodes/pi-1", None),
        ("GET", "/api/v1/namespaces/default/pods", None),
        ("POST", "/apis/berth.dev/v1/apply", Some(manifest(PODS))),
        ("GET", "/apis/berth.dev/v1/tokens", None),
    ] {
        let response = test.call(&node, method, target, body.as_ref());
        let message = refused(response, 403, "Forbidden");
        assert!(message.starts_with(r#"node "pi-1" may not"#), "{message}");
    }
    // Nothing a node was refused changed anything.
    let (_, pods) = test.admin("GET", "/api/v1/pods", None);
    assert!(names(&pods).is_empty());
}

#[test]
fn a_deleted_node_s_credential_no_longer_works() {
    let test = test_coordinator();
    let node = test.node("pi-1");
    assert_eq!(test.call(&node, "GET", "/api/v1/nodes/pi-1", None).0, 200);
    let (status, _) = test.admin("DELETE", "/api/v1/nodes/pi-1", None);
    assert_eq!(status, 200);
    refused(
        test.call(&node, "GET", "/api/v1/nodes/pi-1", None),
        401,
        "Unauthorized",
    );
    refused(
        test.admin("GET", "/api/v1/nodes/pi-1", None),
        404,
        "NotFound",
    );
}

/// A malformed escape is a 400, as at the agent (both decode with
/// `api::resources::path_segments`), not routed as the raw text.
#[test]
fn a_malformed_escape_in_the_path_is_a_bad_request() {
    let test = test_coordinator();
    for path in [
        "/api/v1/namespaces/default/pods/%zz",
        "/api/v1/namespaces/%4/pods",
        "/api/v1/nodes/pi-1%",
    ] {
        refused(test.admin("GET", path, None), 400, "BadRequest");
    }
}

/// What a node's poll answers, with `version` as the one it has.
fn poll(test: &TestCoordinator, credential: &str, node: &str, version: &str) -> Value {
    let target =
        format!("/apis/berth.dev/v1/nodes/{node}/assignments?version={version}&timeoutSeconds=0");
    let (status, set) = test.call(credential, "GET", &target, None);
    assert_eq!(status, 200, "{set}");
    set
}

fn pod_cidr_of(test: &TestCoordinator, node: &str) -> Value {
    let (status, object) = test.admin("GET", &format!("/api/v1/nodes/{node}"), None);
    assert_eq!(status, 200, "{object}");
    object["spec"]["podCIDR"].clone()
}

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  \
    selector: {app: web}\n  ports: [{port: 80}]\n";

#[test]
fn nodes_get_pod_cidrs_peers_and_every_service() {
    let test = test_coordinator();
    // pi-1 and pi-2 joined before pod CIDRs were handed out: they get one at their poll.
    let (pi1, pi2) = (test.node("pi-1"), test.node("pi-2"));
    assert_eq!(pod_cidr_of(&test, "pi-1"), Value::Null);
    let set = poll(&test, &pi1, "pi-1", "");
    assert_eq!(
        set["network"],
        json!({"clusterCidr": "10.42.0.0/16", "podCidr": "10.42.0.0/24", "peers": []})
    );
    assert_eq!(pod_cidr_of(&test, "pi-1"), "10.42.0.0/24");
    let (_, node) = test.admin("GET", "/api/v1/nodes/pi-1", None);
    assert_eq!(node["spec"]["podCIDRs"], json!(["10.42.0.0/24"]));

    // pi-2 reports its address (kept as sent) and gets the next /24.
    let status = json!({"status": {"addresses": [
        {"type": "InternalIP", "address": "192.168.1.12"}, {"type": "Hostname", "address": "pi-2"}]}});
    let (code, shown) = test.call(&pi2, "PUT", "/api/v1/nodes/pi-2/status", Some(&status));
    assert_eq!(code, 200, "{shown}");
    assert_eq!(shown["status"]["addresses"], status["status"]["addresses"]);
    let set2 = poll(&test, &pi2, "pi-2", "");
    assert_eq!(set2["network"]["podCidr"], "10.42.1.0/24");
    assert_eq!(set2["network"]["peers"], json!([]));

    // pi-1 learns of its peer; then nothing is new until something changes.
    let version = set["version"].as_str().unwrap();
    let set = poll(&test, &pi1, "pi-1", version);
    assert_eq!(
        set["network"]["peers"],
        json!([{"name": "pi-2", "podCidr": "10.42.1.0/24", "address": "192.168.1.12"}])
    );
    let version = set["version"].as_str().unwrap();
    assert_eq!(poll(&test, &pi1, "pi-1", version)["unchanged"], true);

    // A Service goes to every node, with its namespace first.
    let (code, _) = test.admin("POST", "/apis/berth.dev/v1/apply", Some(&manifest(SERVICE)));
    assert_eq!(code, 200);
    for (credential, node, known) in [(&pi1, "pi-1", version), (&pi2, "pi-2", "")] {
        let set = poll(&test, credential, node, known);
        let objects = set["objects"].as_array().unwrap();
        let kinds: Vec<&str> = objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["Namespace", "Service"], "{node}: {set}");
        assert_eq!(objects[1]["metadata"]["name"], "web");
    }

    // A deleted node's /24 is free again, and the next board to join gets it.
    assert_eq!(test.admin("DELETE", "/api/v1/nodes/pi-1", None).0, 200);
    let (code, created) = test.admin("POST", "/apis/berth.dev/v1/tokens", None);
    assert_eq!(code, 201, "{created}");
    let token = created["token"].as_str().unwrap();
    let bearer = token.split_once("::").unwrap().1;
    let join = json!({"node": {"metadata": {"name": "pi-3"}}});
    let (code, joined) = test.call(bearer, "POST", "/apis/berth.dev/v1/join", Some(&join));
    assert_eq!(code, 201, "{joined}");
    assert_eq!(pod_cidr_of(&test, "pi-3"), "10.42.0.0/24");
    assert_eq!(pod_cidr_of(&test, "pi-2"), "10.42.1.0/24");
}

#[test]
fn scheduling_is_told_as_events_served_to_the_admin() {
    let test = test_coordinator();
    let pods = "apiVersion: v1\nkind: Pod\nmetadata: {name: nowhere}\nspec:\n  \
        nodeSelector: {disk: ssd}\n  containers: [{name: app, image: 'localhost/app:1'}]\n---\n\
        apiVersion: v1\nkind: Pod\nmetadata: {name: placed}\n\
        spec:\n  nodeSelector: {kubernetes.io/arch: arm64}\n  \
        containers: [{name: app, image: 'localhost/app:1'}]\n";
    let (status, result) = test.admin("POST", "/apis/berth.dev/v1/apply", Some(&manifest(pods)));
    assert_eq!(status, 200, "{result}");
    let ready = |_: &str| true;
    // Passes that find the same pod still unplaceable tell it once.
    for _ in 0..3 {
        crate::coordinator::scheduling::schedule_pending(&test.coordinator, &ready).unwrap();
    }
    let (status, events) = test.admin("GET", "/api/v1/namespaces/default/events", None);
    assert_eq!(status, 200, "{events}");
    let items = events["items"].as_array().unwrap();
    let told: Vec<(&str, &str, &str, i64)> = items
        .iter()
        .map(|e| {
            (
                e["involvedObject"]["name"].as_str().unwrap(),
                e["type"].as_str().unwrap(),
                e["reason"].as_str().unwrap(),
                e["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(told.len(), 2, "{events:#}");
    assert!(
        told.contains(&("placed", "Normal", "Scheduled", 1)),
        "{told:?}"
    );
    assert!(
        told.contains(&("nowhere", "Warning", "FailedScheduling", 1)),
        "{told:?}"
    );
    let scheduled = items.iter().find(|e| e["reason"] == "Scheduled").unwrap();
    let node = scheduled["message"]
        .as_str()
        .unwrap()
        .strip_prefix("Successfully assigned default/placed to ")
        .unwrap();
    assert!(["pi-1", "pi-2"].contains(&node), "{scheduled}");
    assert_eq!(scheduled["source"]["component"], "default-scheduler");
    let (_, pod) = test.admin("GET", "/api/v1/namespaces/default/pods/nowhere", None);
    let path = format!(
        "/api/v1/events?fieldSelector=involvedObject.name=nowhere,involvedObject.uid={}",
        pod["metadata"]["uid"].as_str().unwrap()
    );
    let (_, nowhere) = test.admin("GET", &path, None);
    assert_eq!(nowhere["items"].as_array().unwrap().len(), 1, "{nowhere}");
    // Nodes may not read them.
    let node = test.node("pi-1");
    refused(
        test.call(&node, "GET", "/api/v1/events", None),
        403,
        "Forbidden",
    );
}

#[test]
fn a_claim_goes_with_its_first_pod_and_holds_the_later_ones() {
    let test = test_coordinator();
    let claim = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\n\
        spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 2Gi}}}\n";
    let pod = |name: &str, claim: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  \
             containers: [{{name: app, image: 'localhost/app:1'}}]\n  \
             volumes: [{{name: v, persistentVolumeClaim: {{claimName: {claim}}}}}]\n"
        )
    };
    let apply = |yaml: &str| {
        let (status, result) =
            test.admin("POST", "/apis/berth.dev/v1/apply", Some(&manifest(yaml)));
        assert_eq!(status, 200, "{result}");
    };
    apply(&format!(
        "{claim}---\n{}---\n{}",
        pod("first", "data"),
        pod("lost", "nope")
    ));
    let ready = |_: &str| true;
    crate::coordinator::scheduling::schedule_pending(&test.coordinator, &ready).unwrap();
    let get = |path: &str| test.admin("GET", path, None).1;
    let first = get("/api/v1/namespaces/default/pods/first");
    let node = first["spec"]["nodeName"].as_str().unwrap().to_owned();
    let placed = get("/api/v1/namespaces/default/persistentvolumeclaims/data");
    let uid = placed["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        placed["metadata"]["annotations"]["volume.kubernetes.io/selected-node"],
        node.as_str()
    );
    assert_eq!(placed["spec"]["volumeName"], format!("pvc-{uid}"));
    assert_eq!(placed["status"]["phase"], "Bound");
    assert_eq!(placed["status"]["capacity"]["storage"], "2Gi");
    let lost = get("/api/v1/namespaces/default/pods/lost");
    assert_eq!(lost["spec"]["nodeName"], Value::Null);
    assert_eq!(
        lost["status"]["conditions"][0]["message"],
        "0/2 nodes are available: persistentvolumeclaim \"nope\" not found."
    );

    // Later pods follow the claim, whichever node is free; applying the claim again
    // keeps its node.
    apply(claim);
    for name in ["second", "third"] {
        apply(&pod(name, "data"));
        crate::coordinator::scheduling::schedule_pending(&test.coordinator, &ready).unwrap();
        let later = get(&format!("/api/v1/namespaces/default/pods/{name}"));
        assert_eq!(later["spec"]["nodeName"], node.as_str(), "{later}");
    }

    // The claim is the holder's even with no pod: the other node gets nothing of it.
    for name in ["first", "second", "third"] {
        let path = format!("/api/v1/namespaces/default/pods/{name}");
        assert_eq!(test.admin("DELETE", &path, None).0, 200);
    }
    let other = if node == "pi-1" { "pi-2" } else { "pi-1" };
    let kinds = |node: &str| -> Vec<String> {
        let credential = test.node(node);
        let set = poll(&test, &credential, node, "");
        set["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert!(kinds(&node).contains(&"PersistentVolumeClaim/data".to_owned()));
    assert!(!kinds(other)
        .iter()
        .any(|k| k.starts_with("PersistentVolumeClaim")));
}

#[test]
fn a_higher_priority_pod_preempts_and_goes_once_its_victim_is_gone() {
    let test = test_coordinator();
    let dongle = json!({"allocatable": {"example.com/dongle": "1"}});
    test.coordinator
        .store()
        .set_status("Node", "", "pi-1", &dongle)
        .unwrap();
    let pod = |name: &str, class: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  \
             priorityClassName: {class}\n  containers: [{{name: app, image: 'localhost/app:1', \
             resources: {{limits: {{example.com/dongle: 1}}}}}}]\n"
        )
    };
    let classes = "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: low}\n\
        value: 10\n---\napiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: \
        {name: high}\nvalue: 1000\n---\napiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\n\
        metadata: {name: polite}\nvalue: 500\npreemptionPolicy: Never\n";
    let apply = |yaml: &str| {
        let (status, result) =
            test.admin("POST", "/apis/berth.dev/v1/apply", Some(&manifest(yaml)));
        assert_eq!(status, 200, "{result}");
    };
    apply(&format!("{classes}---\n{}", pod("low", "low")));
    let schedule = || {
        let ready = |_: &str| true;
        crate::coordinator::scheduling::schedule_pending(&test.coordinator, &ready).unwrap();
    };
    let get = |name: &str| {
        test.admin(
            "GET",
            &format!("/api/v1/namespaces/default/pods/{name}"),
            None,
        )
        .1
    };
    schedule();
    assert_eq!(get("low")["spec"]["nodeName"], "pi-1");

    // A pod that may not preempt waits, though it outranks `low`.
    apply(&format!(
        "{}---\n{}",
        pod("polite", "polite"),
        pod("high", "high")
    ));
    schedule();
    let polite = get("polite");
    assert_eq!(polite["spec"]["nodeName"], Value::Null);
    assert_eq!(polite["status"].get("nominatedNodeName"), None, "{polite}");
    let high = get("high");
    assert_eq!(high["spec"]["nodeName"], Value::Null);
    assert_eq!(high["status"]["nominatedNodeName"], "pi-1", "{high}");
    let low = get("low");
    assert!(low["metadata"]["deletionTimestamp"].is_string(), "{low}");
    let (_, events) = test.admin("GET", "/api/v1/namespaces/default/events", None);
    let preempted: Vec<&Value> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == "Preempted")
        .collect();
    assert_eq!(preempted.len(), 1, "{events:#}");
    assert_eq!(preempted[0]["involvedObject"]["name"], "low");
    assert_eq!(
        preempted[0]["message"],
        format!(
            "Preempted by pod {} on node pi-1",
            high["metadata"]["uid"].as_str().unwrap()
        )
    );

    // While the victim terminates it holds the dongle: the pod waits, nothing more is told.
    schedule();
    assert_eq!(get("high")["spec"]["nodeName"], Value::Null);
    let (_, again) = test.admin("GET", "/api/v1/namespaces/default/events", None);
    let count = |events: &Value| events["items"].as_array().unwrap().len();
    assert_eq!(count(&again), count(&events), "{again:#}");

    // Its board reports it gone: the pod takes its place; the polite one still waits.
    let low_key = crate::store::Key::new("Pod", "default", "low");
    test.coordinator.store().delete_all(&[low_key]).unwrap();
    schedule();
    let high = get("high");
    assert_eq!(high["spec"]["nodeName"], "pi-1");
    assert_eq!(high["status"].get("nominatedNodeName"), None, "{high}");
    assert_eq!(get("polite")["spec"]["nodeName"], Value::Null);
}
