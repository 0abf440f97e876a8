//! Routing of the agent's API through its one public entry point, [`super::handle`]:
//! paths, methods, selectors and the Kubernetes `Status` of every refusal. No socket is
//! opened; requests are built as the HTTP server would hand them over.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::agent::test_support::{apply, call, manifest, pod_yaml, test_agent, IMAGE};
use crate::agent::Agent;

/// Back-offs play no part here.
const BACKOFF: Duration = Duration::from_secs(10);

/// A refusal is a Kubernetes `Status` whose code is the HTTP status.
fn assert_status(response: (u16, Value), code: u16, reason: &str) -> String {
    let (status, body) = response;
    assert_eq!(status, code, "{body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["apiVersion"], "v1");
    assert_eq!(body["status"], "Failure");
    assert_eq!(body["code"], code);
    assert_eq!(body["reason"], reason, "{body}");
    body["message"].as_str().unwrap().to_owned()
}

fn names(list: &Value) -> Vec<&str> {
    assert_eq!(list["kind"], "List", "{list}");
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["metadata"]["name"].as_str().unwrap())
        .collect()
}

fn get(agent: &Arc<Agent>, target: &str) -> (u16, Value) {
    call(agent, "GET", target, None)
}

#[test]
fn version_and_healthz_answer() {
    let test = test_agent(BACKOFF);
    let (status, version) = get(&test.agent, "/version");
    assert_eq!(status, 200);
    assert_eq!(version["version"], crate::VERSION);
    assert_eq!(version["target"], crate::TARGET);
    assert_eq!(version["gitRevision"], crate::GIT_REVISION);
    assert_eq!(get(&test.agent, "/healthz"), (200, json!("ok")));
}

#[test]
fn pods_are_applied_got_listed_selected_and_deleted() {
    let test = test_agent(BACKOFF);
    let agent = &test.agent;
    let (status, result) = call(
        agent,
        "POST",
        "/apis/berth.dev/v1/apply",
        Some(&manifest(
            &(pod_yaml("web", &["app"], "Always") + "---\n" + &pod_yaml("db", &["app"], "Always")),
        )),
    );
    assert_eq!(status, 200, "{result}");
    let outcomes: Vec<_> = result["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["kind"].as_str().unwrap(), i["name"].as_str().unwrap()))
        .collect();
    assert_eq!(outcomes, [("Pod", "web"), ("Pod", "db")]);

    let (status, pod) = get(agent, "/api/v1/namespaces/default/pods/web");
    assert_eq!(status, 200);
    assert_eq!(
        (&pod["kind"], &pod["metadata"]["name"]),
        (&json!("Pod"), &json!("web"))
    );
    assert_eq!(pod["spec"]["containers"][0]["image"], IMAGE);
    // Nothing has run yet: the status is derived, not stored.
    assert_eq!(pod["status"]["phase"], "Pending");

    let (status, list) = get(agent, "/api/v1/namespaces/default/pods");
    assert_eq!(status, 200);
    let mut all = names(&list);
    all.sort_unstable();
    assert_eq!(all, ["db", "web"]);
    let (_, everywhere) = get(agent, "/api/v1/pods");
    assert_eq!(names(&everywhere).len(), 2);
    let (_, other) = get(agent, "/api/v1/namespaces/other/pods");
    assert!(names(&other).is_empty());
    let (_, selected) = get(
        agent,
        "/api/v1/namespaces/default/pods?labelSelector=app=web",
    );
    assert_eq!(names(&selected), ["web"]);
    let (_, none) = get(agent, "/api/v1/pods?labelSelector=app=web,tier=x");
    assert!(names(&none).is_empty());

    let (status, deleted) = call(agent, "DELETE", "/api/v1/namespaces/default/pods/web", None);
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(
        (&deleted["kind"], &deleted["status"]),
        (&json!("Status"), &json!("Success"))
    );
    assert_eq!(deleted["details"]["name"], "web");
    // A pod is marked and goes once its containers have stopped.
    let (_, pod) = get(agent, "/api/v1/namespaces/default/pods/web");
    assert!(pod["metadata"]["deletionTimestamp"].is_string(), "{pod}");
    let gone = call(
        agent,
        "DELETE",
        "/api/v1/namespaces/default/pods/nothing",
        None,
    );
    let message = assert_status(gone, 404, "NotFound");
    assert_eq!(message, r#"pods "nothing" not found"#);
}

#[test]
fn namespaces_config_maps_and_the_delete_verb_route_by_kind() {
    let test = test_agent(BACKOFF);
    let agent = &test.agent;
    apply(
        agent,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: shop}\n\
         data: {colour: blue}\n",
    );
    let (status, ns) = get(agent, "/api/v1/namespaces/shop");
    assert_eq!(status, 200);
    assert_eq!(ns["status"]["phase"], "Active");
    let (_, all) = get(agent, "/api/v1/namespaces");
    assert!(names(&all).contains(&"default") && names(&all).contains(&"shop"));
    let (status, cm) = get(agent, "/api/v1/namespaces/shop/configmaps/settings");
    assert_eq!(status, 200);
    assert_eq!(cm["data"]["colour"], "blue");
    // Another namespace holds no such object.
    assert_status(
        get(agent, "/api/v1/namespaces/default/configmaps/settings"),
        404,
        "NotFound",
    );

    let body =
        manifest("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: shop}\n");
    let (status, result) = call(agent, "POST", "/apis/berth.dev/v1/delete", Some(&body));
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["items"][0]["outcome"], "deleted");
    assert_status(
        get(agent, "/api/v1/namespaces/shop/configmaps/settings"),
        404,
        "NotFound",
    );
}

#[test]
fn services_endpoints_and_slices_route_by_api_group() {
    let test = test_agent(BACKOFF);
    let agent = &test.agent;
    apply(
        agent,
        "apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec: {ports: [{port: 5432}]}\n---\n\
         apiVersion: v1\nkind: Endpoints\nmetadata: {name: db}\n\
         subsets: [{addresses: [{ip: 192.168.1.50}], ports: [{port: 5432}]}]\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {name: db-1, labels: {kubernetes.io/service-name: db}}\n\
         addressType: IPv4\nendpoints: [{addresses: [192.168.1.50]}]\nports: [{port: 5432}]\n",
    );
    let (status, service) = get(agent, "/api/v1/namespaces/default/services/db");
    assert_eq!(status, 200, "{service}");
    let address: std::net::Ipv4Addr = service["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(agent.options.service_cidr.contains(address), "{service}");
    assert_eq!(service["status"], json!({"loadBalancer": {}}));
    let (_, endpoints) = get(agent, "/api/v1/namespaces/default/endpoints/db");
    assert_eq!(
        endpoints["subsets"][0]["addresses"][0]["ip"],
        "192.168.1.50"
    );
    let slices =
        "/apis/discovery.k8s.io/v1/endpointslices?labelSelector=kubernetes.io/service-name=db";
    let (status, list) = get(agent, slices);
    assert_eq!((status, names(&list)), (200, vec!["db-1"]));
    let (_, slice) = get(
        agent,
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/db-1",
    );
    assert_eq!(slice["apiVersion"], "discovery.k8s.io/v1");
    assert_status(
        get(agent, "/api/v1/namespaces/default/endpointslices/db-1"),
        404,
        "NotFound",
    );
    let (status, _) = call(
        agent,
        "DELETE",
        "/api/v1/namespaces/default/services/db",
        None,
    );
    assert_eq!(status, 200);
    assert_status(
        get(agent, "/api/v1/namespaces/default/services/db"),
        404,
        "NotFound",
    );
}

#[test]
fn an_invalid_manifest_is_refused_whole() {
    let test = test_agent(BACKOFF);
    let agent = &test.agent;
    let bad = pod_yaml("web", &["app"], "Always")
        + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  containers:\n  \
           - name: app\n    image: x\n    resources: {limits: {memory: 64Mb}}\n";
    let response = call(
        agent,
        "POST",
        "/apis/berth.dev/v1/apply",
        Some(&manifest(&bad)),
    );
    let message = assert_status(response, 422, "Invalid");
    assert!(message.contains("nothing applied"), "{message}");
    assert!(message.contains(r#"invalid quantity "64Mb""#), "{message}");
    let (_, pods) = get(agent, "/api/v1/pods");
    assert!(
        names(&pods).is_empty(),
        "part of a refused request was applied"
    );

    let response = call(agent, "POST", "/apis/berth.dev/v1/apply", Some(&json!("x")));
    let message = assert_status(response, 400, "BadRequest");
    assert!(message.starts_with("invalid request body"), "{message}");
}

#[test]
fn unknown_paths_and_resource_types_are_not_found() {
    let test = test_agent(BACKOFF);
    let agent = &test.agent;
    let message = assert_status(get(agent, "/nowhere"), 404, "NotFound");
    assert!(message.contains("GET /nowhere"), "{message}");
    assert_status(
        get(agent, "/apis/storage.k8s.io/v1/storageclasses"),
        404,
        "NotFound",
    );
    let message = assert_status(
        get(agent, "/api/v1/namespaces/default/widgets"),
        404,
        "NotFound",
    );
    assert!(
        message.contains(r#"resource type "widgets" in v1"#),
        "{message}"
    );
    // A kind served under its own API group only.
    let message = assert_status(
        get(agent, "/api/v1/namespaces/default/deployments"),
        404,
        "NotFound",
    );
    assert!(message.contains(r#""deployments" in v1"#), "{message}");
    assert_status(
        get(agent, "/api/v1/namespaces/default/pods/web/extra/parts"),
        404,
        "NotFound",
    );
    assert_status(
        get(agent, "/api/v1/namespaces/default/pods/absent"),
        404,
        "NotFound",
    );
}

#[test]
fn malformed_escapes_and_selectors_are_bad_requests() {
    let test = test_agent(BACKOFF);
    let agent = &test.agent;
    for path in [
        "/api/v1/namespaces/default/pods/%zz",
        "/api/v1/namespaces/default/pods/web%",
        "/api/v1/namespaces/%4/pods",
    ] {
        let message = assert_status(get(agent, path), 400, "BadRequest");
        assert!(message.contains("bad path"), "{path}: {message}");
    }
    // A well-formed escape is decoded before routing.
    apply(agent, &pod_yaml("web", &["app"], "Always"));
    let (status, _) = get(agent, "/api/v1/namespaces/default/pods/w%65b");
    assert_eq!(status, 200);

    for selector in ["app!=web", "app", "=web", "app=web=x", "bad key=x"] {
        let target = format!("/api/v1/pods?labelSelector={selector}");
        let message = assert_status(get(agent, &target), 400, "BadRequest");
        assert!(
            message.starts_with("invalid labelSelector"),
            "{selector}: {message}"
        );
    }
}

#[test]
fn unsupported_methods_are_not_allowed() {
    let test = test_agent(BACKOFF);
    let agent = &test.agent;
    apply(agent, &pod_yaml("web", &["app"], "Always"));
    for (method, target) in [
        ("PUT", "/api/v1/namespaces/default/pods/web"),
        ("POST", "/api/v1/namespaces/default/pods"),
        ("DELETE", "/api/v1/namespaces/default/pods"),
        ("PATCH", "/api/v1/namespaces/default/pods/web"),
    ] {
        let message = assert_status(call(agent, method, target, None), 405, "MethodNotAllowed");
        assert!(message.starts_with(method), "{message}");
    }
    // Verbs exist only as POST.
    assert_status(get(agent, "/apis/berth.dev/v1/apply"), 404, "NotFound");
}

#[test]
fn the_scale_subresource_reads_and_sets_replicas() {
    let test = test_agent(BACKOFF);
    let agent = &test.agent;
    apply(
        agent,
        &format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 2\n  \
             selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    \
             spec:\n      containers: [{{name: app, image: '{IMAGE}'}}]\n"
        ),
    );
    let target = "/apis/apps/v1/namespaces/default/deployments/web/scale";
    let (status, scale) = get(agent, target);
    assert_eq!(status, 200, "{scale}");
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 2);

    let (status, scale) = call(
        agent,
        "PUT",
        target,
        Some(&json!({"spec": {"replicas": 5}})),
    );
    assert_eq!((status, &scale["spec"]["replicas"]), (200, &json!(5)));
    let (_, deployment) = get(agent, "/apis/apps/v1/namespaces/default/deployments/web");
    assert_eq!(deployment["spec"]["replicas"], 5);
    let (status, _) = call(
        agent,
        "PATCH",
        target,
        Some(&json!({"spec": {"replicas": 0}})),
    );
    assert_eq!(status, 200);
    assert_eq!(get(agent, target).1["spec"]["replicas"], 0);

    for replicas in [json!(-1), json!("3"), json!(2_147_483_648_i64), json!(1.5)] {
        let body = json!({"spec": {"replicas": replicas}});
        let message = assert_status(call(agent, "PUT", target, Some(&body)), 422, "Invalid");
        assert!(message.starts_with("spec.replicas"), "{message}");
    }
    assert_status(call(agent, "PUT", target, Some(&json!({}))), 422, "Invalid");
    assert_eq!(
        get(agent, target).1["spec"]["replicas"],
        0,
        "a refused scale wrote"
    );
    assert_status(call(agent, "POST", target, None), 405, "MethodNotAllowed");
    let message = assert_status(
        get(
            agent,
            "/apis/apps/v1/namespaces/default/deployments/absent/scale",
        ),
        404,
        "NotFound",
    );
    assert_eq!(message, r#"deployments.apps "absent" not found"#);
}

#[test]
fn images_are_listed_and_removal_needs_a_reference() {
    let test = test_agent(BACKOFF);
    let agent = &test.agent;
    let (status, images) = get(agent, "/apis/berth.dev/v1/images");
    assert_eq!(status, 200);
    assert_eq!(images["items"][0]["reference"], IMAGE);
    let message = assert_status(
        call(agent, "DELETE", "/apis/berth.dev/v1/images", None),
        400,
        "BadRequest",
    );
    assert_eq!(message, "missing ref");
    assert_status(
        call(
            agent,
            "DELETE",
            "/apis/berth.dev/v1/images?ref=localhost/absent:1",
            None,
        ),
        404,
        "NotFound",
    );
    // An image a stored pod names stays.
    apply(agent, &pod_yaml("web", &["app"], "Always"));
    let target = format!("/apis/berth.dev/v1/images?ref={IMAGE}");
    assert_status(call(agent, "DELETE", &target, None), 409, "Conflict");
}
