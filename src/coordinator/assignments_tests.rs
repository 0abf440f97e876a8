//! Every node's assignments from store records: what each gets, in which order, the
//! network from its point of view, and when its version moves.

use super::*;
use crate::api::fleet::{FLEET_UID_ANNOTATION, STANDBY_NODE_ANNOTATION};

fn record(kind: &str, namespace: &str, name: &str, object: Value) -> Record {
    Record {
        kind: kind.into(),
        namespace: namespace.into(),
        name: name.into(),
        uid: format!("uid-{kind}-{name}"),
        generation: 1,
        resource_version: 1,
        creation_timestamp: String::new(),
        source: None,
        object,
        status: None,
    }
}

fn namespace(name: &str) -> Record {
    record(
        "Namespace",
        "",
        name,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    )
}

fn pod(name: &str, node: Option<&str>, secret: Option<&str>) -> Record {
    let mut spec = json!({"containers": [{"name": "c", "image": "i"}]});
    if let Some(node) = node {
        spec["nodeName"] = json!(node);
    }
    if let Some(secret) = secret {
        spec["imagePullSecrets"] = json!([{"name": secret}]);
    }
    record(
        "Pod",
        "team",
        name,
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "team", "uid": format!("uid-Pod-{name}"),
                            "resourceVersion": "7"},
               "spec": spec}),
    )
}

fn secret(name: &str) -> Record {
    record(
        "Secret",
        "team",
        name,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "team"}}),
    )
}

fn namespaced(kind: &str, namespace: &str, name: &str) -> Record {
    let api_version = if kind == "EndpointSlice" {
        "discovery.k8s.io/v1"
    } else {
        "v1"
    };
    record(
        kind,
        namespace,
        name,
        json!({"apiVersion": api_version, "kind": kind,
               "metadata": {"name": name, "namespace": namespace, "resourceVersion": "3"}}),
    )
}

/// A Node with a pod CIDR and an address as its agent reports them, if given.
fn node(name: &str, pod_cidr: Option<&str>, address: Option<&str>) -> Record {
    let mut node = record(
        "Node",
        "",
        name,
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": {}}),
    );
    if let Some(cidr) = pod_cidr {
        pod_cidrs::set_on_node(&mut node.object, cidr.parse().unwrap());
    }
    node.status = address.map(|address| {
        json!({"addresses": [{"type": "InternalIP", "address": address},
                             {"type": "Hostname", "address": name}],
               "capacity": {"cpu": "4"}})
    });
    node
}

fn cluster() -> Ipv4Cidr {
    "10.42.0.0/16".parse().unwrap()
}

fn kinds_and_names(set: &Assignments) -> Vec<(&str, &str)> {
    set.objects
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_node_gets_its_pods_and_what_they_need() {
    let objects = FleetObjects {
        namespaces: vec![namespace("other"), namespace("team")],
        secrets: vec![secret("regcred"), secret("unrelated")],
        pods: vec![
            pod("a", Some("pi-1"), Some("regcred")),
            pod("b", Some("pi-2"), None),
            pod("c", None, None),
        ],
        ..FleetObjects::default()
    };
    let all = AllAssignments::compute(&objects, &cluster());
    let set = all.get("pi-1");
    assert_eq!(
        kinds_and_names(&set),
        [("Namespace", "team"), ("Secret", "regcred"), ("Pod", "a")]
    );
    let pod = &set.objects[2];
    assert_eq!(
        pod["metadata"]["annotations"][FLEET_UID_ANNOTATION],
        "uid-Pod-a"
    );
    assert!(pod["metadata"].get("resourceVersion").is_none());
    assert!(pod["metadata"].get("uid").is_none());
    assert_eq!(kinds_and_names(&all.get("pi-2")).len(), 2);
    // A node with no Node object and no pods gets nothing (and no network).
    let stranger = all.get("pi-3");
    assert!(stranger.objects.is_empty());
    assert_eq!(stranger.network, None);
    assert_eq!(stranger.version, all.version("pi-3"));

    // The version follows the content: same set, same version; a change moves it.
    let again = AllAssignments::compute(&objects, &cluster());
    assert_eq!(again.version("pi-1"), set.version);
    let mut moved = objects.clone();
    moved.pods[1].object["spec"]["nodeName"] = json!("pi-1");
    let moved = AllAssignments::compute(&moved, &cluster());
    assert_ne!(moved.version("pi-1"), set.version);
    assert_eq!(kinds_and_names(&moved.get("pi-1")).len(), 4);
}

#[test]
fn every_node_gets_every_service_and_the_network() {
    let objects = FleetObjects {
        nodes: vec![
            node("pi-1", Some("10.42.0.0/24"), Some("192.168.1.11")),
            node("pi-2", Some("10.42.1.0/24"), Some("192.168.1.12")),
            // No address reported yet: not a peer, but it has its own network.
            node("pi-3", Some("10.42.2.0/24"), None),
            // Joined before pod CIDRs: no network until it gets one.
            node("pi-4", None, Some("192.168.1.14")),
        ],
        namespaces: vec![namespace("db"), namespace("default"), namespace("team")],
        pods: vec![pod("a", Some("pi-1"), None)],
        services: vec![
            namespaced("Service", "db", "postgres"),
            namespaced("Service", "default", "web"),
            namespaced("Endpoints", "db", "postgres"),
            namespaced("Endpoints", "default", "web"),
            namespaced("EndpointSlice", "db", "postgres-abcde"),
        ],
        ..FleetObjects::default()
    };
    let all = AllAssignments::compute(&objects, &cluster());
    let services = [
        ("Service", "postgres"),
        ("Service", "web"),
        ("Endpoints", "postgres"),
        ("Endpoints", "web"),
        ("EndpointSlice", "postgres-abcde"),
    ];
    // Namespaces first, then the Services and their endpoints, then the node's pods.
    let pi1 = all.get("pi-1");
    let mut expected = vec![
        ("Namespace", "db"),
        ("Namespace", "default"),
        ("Namespace", "team"),
    ];
    expected.extend(services);
    expected.push(("Pod", "a"));
    assert_eq!(kinds_and_names(&pi1), expected);
    for name in ["pi-2", "pi-3", "pi-4"] {
        let set = all.get(name);
        let mut expected = vec![("Namespace", "db"), ("Namespace", "default")];
        expected.extend(services);
        assert_eq!(kinds_and_names(&set), expected, "{name}");
        // Marked like every pushed object, and without server-set fields.
        let endpoints = &set.objects[4];
        assert_eq!(
            endpoints["metadata"]["annotations"][FLEET_UID_ANNOTATION],
            "uid-Endpoints-postgres"
        );
        assert!(endpoints["metadata"].get("resourceVersion").is_none());
    }

    let peer = |name: &str, cidr: &str, address: &str| PeerNode {
        name: name.into(),
        pod_cidr: cidr.into(),
        address: address.into(),
    };
    assert_eq!(
        pi1.network,
        Some(FleetNetwork {
            cluster_cidr: "10.42.0.0/16".into(),
            pod_cidr: "10.42.0.0/24".into(),
            peers: vec![peer("pi-2", "10.42.1.0/24", "192.168.1.12")],
        })
    );
    let pi3 = all.get("pi-3").network.unwrap();
    assert_eq!(pi3.pod_cidr, "10.42.2.0/24");
    assert_eq!(
        pi3.peers,
        [
            peer("pi-1", "10.42.0.0/24", "192.168.1.11"),
            peer("pi-2", "10.42.1.0/24", "192.168.1.12")
        ]
    );
    assert_eq!(all.get("pi-4").network, None);
    assert!(all.lacks_pod_cidr("pi-4"));
    assert!(!all.lacks_pod_cidr("pi-1"));
    assert!(!all.lacks_pod_cidr("pi-9"));
}

#[test]
fn versions_move_with_peers_and_services_and_nothing_else() {
    let objects = FleetObjects {
        nodes: vec![
            node("pi-1", Some("10.42.0.0/24"), Some("192.168.1.11")),
            node("pi-2", Some("10.42.1.0/24"), Some("192.168.1.12")),
            node("pi-3", Some("10.42.2.0/24"), Some("192.168.1.13")),
        ],
        namespaces: vec![namespace("default")],
        services: vec![namespaced("Service", "default", "web")],
        ..FleetObjects::default()
    };
    let versions = |objects: &FleetObjects| -> Vec<String> {
        let all = AllAssignments::compute(objects, &cluster());
        ["pi-1", "pi-2", "pi-3"]
            .iter()
            .map(|n| all.version(n).to_owned())
            .collect()
    };
    let before = versions(&objects);
    // Each node's set differs (its own pod CIDR, its peers).
    assert_ne!(before[0], before[1]);
    assert_eq!(versions(&objects), before);

    // What a node reports besides its address is not part of anyone's set.
    let mut capacity = objects.clone();
    capacity.nodes[1].status.as_mut().unwrap()["capacity"]["cpu"] = json!("2");
    assert_eq!(versions(&capacity), before);

    // pi-2 moves: its peers learn of it; its own set (no peer of its own changed) stays.
    let mut moved = objects.clone();
    moved.nodes[1] = node("pi-2", Some("10.42.1.0/24"), Some("192.168.1.22"));
    let after = versions(&moved);
    assert_ne!(after[0], before[0]);
    assert_eq!(after[1], before[1]);
    assert_ne!(after[2], before[2]);

    // A node joining changes every node's version; so does a new Endpoints object.
    let mut joined = objects.clone();
    joined
        .nodes
        .push(node("pi-4", Some("10.42.3.0/24"), Some("192.168.1.14")));
    let after = versions(&joined);
    assert!(after.iter().zip(&before).all(|(a, b)| a != b), "{after:?}");
    let mut endpoints = objects.clone();
    endpoints
        .services
        .push(namespaced("Endpoints", "default", "web"));
    let after = versions(&endpoints);
    assert!(after.iter().zip(&before).all(|(a, b)| a != b), "{after:?}");

    // The pushed JSON is the same every time it is computed.
    let json = |objects: &FleetObjects| {
        serde_json::to_string(&AllAssignments::compute(objects, &cluster()).get("pi-1")).unwrap()
    };
    assert_eq!(json(&objects), json(&objects));
}

#[test]
fn only_ipv4_internal_addresses_make_peers() {
    let mut odd = node("pi-2", Some("10.42.1.0/24"), None);
    odd.status = Some(json!({"addresses": [
        {"type": "Hostname", "address": "pi-2"},
        {"type": "InternalIP", "address": "not-an-address"},
        {"type": "ExternalIP", "address": "203.0.113.9"}]}));
    let objects = FleetObjects {
        nodes: vec![
            node("pi-1", Some("10.42.0.0/24"), Some("192.168.1.11")),
            odd,
        ],
        ..FleetObjects::default()
    };
    let all = AllAssignments::compute(&objects, &cluster());
    assert!(all.get("pi-1").network.unwrap().peers.is_empty());
    assert_eq!(all.get("pi-2").network.unwrap().peers.len(), 1);
    assert_eq!(
        internal_ip(&json!({"addresses": [{"type": "InternalIP", "address": "10.0.0.7"}]})),
        Some(Ipv4Addr::new(10, 0, 0, 7))
    );
}

#[test]
fn a_node_gets_the_config_its_pods_read() {
    let mut reader = pod("r", Some("pi-1"), None);
    reader.object["spec"]["containers"][0]["envFrom"] = json!([{"configMapRef": {"name": "app"}}]);
    reader.object["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "s", "mountPath": "/s"}]);
    reader.object["spec"]["volumes"] = json!([{"name": "s", "secret": {"secretName": "tls"}}]);
    let objects = FleetObjects {
        namespaces: vec![namespace("team")],
        config_maps: vec![
            namespaced("ConfigMap", "team", "app"),
            namespaced("ConfigMap", "team", "unrelated"),
            namespaced("ConfigMap", "other", "app"),
        ],
        secrets: vec![secret("tls"), secret("unrelated")],
        pods: vec![reader, pod("b", Some("pi-2"), None)],
        ..FleetObjects::default()
    };
    let all = AllAssignments::compute(&objects, &cluster());
    assert_eq!(
        kinds_and_names(&all.get("pi-1")),
        [
            ("Namespace", "team"),
            ("ConfigMap", "app"),
            ("Secret", "tls"),
            ("Pod", "r")
        ]
    );
    assert_eq!(
        kinds_and_names(&all.get("pi-2")),
        [("Namespace", "team"), ("Pod", "b")]
    );
    // A change to the ConfigMap is a new version for pi-1 only.
    let mut changed = objects.clone();
    changed.config_maps[0].object["data"] = json!({"k": "v2"});
    let after = AllAssignments::compute(&changed, &cluster());
    assert_ne!(after.get("pi-1").version, all.get("pi-1").version);
    assert_eq!(after.get("pi-2").version, all.get("pi-2").version);
}

fn claim(name: &str, node: Option<&str>, deleting: bool) -> Record {
    let mut object = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    if let Some(node) = node {
        object["metadata"]["annotations"] = json!({SELECTED_NODE_ANNOTATION: node});
    }
    if deleting {
        object["metadata"]["deletionTimestamp"] = json!("2026-12-02T10:00:00Z");
    }
    record("PersistentVolumeClaim", "data", name, object)
}

#[test]
fn a_node_keeps_the_claims_placed_on_it_without_pods() {
    let claims = placed_claims(vec![
        claim("db", Some("pi-1"), false),
        claim("logs", Some("pi-2"), false),
        claim("new", None, false),
        claim("going", Some("pi-1"), true),
    ]);
    let names: Vec<&str> = claims.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["db", "logs"]);
    let objects = FleetObjects {
        nodes: vec![node("pi-1", None, None), node("pi-2", None, None)],
        namespaces: vec![namespace("data"), namespace("team")],
        claims,
        pods: vec![pod("a", Some("pi-2"), None)],
        ..FleetObjects::default()
    };
    let all = AllAssignments::compute(&objects, &cluster());
    assert_eq!(
        kinds_and_names(&all.get("pi-1")),
        [("Namespace", "data"), ("PersistentVolumeClaim", "db")]
    );
    let set = all.get("pi-2");
    assert_eq!(
        kinds_and_names(&set),
        [
            ("Namespace", "data"),
            ("Namespace", "team"),
            ("PersistentVolumeClaim", "logs"),
            ("Pod", "a")
        ]
    );
    let pushed = &set.objects[2];
    assert_eq!(
        pushed["metadata"]["annotations"][FLEET_UID_ANNOTATION],
        "uid-PersistentVolumeClaim-logs"
    );
    assert!(all.get("pi-3").objects.is_empty());
    // The claim leaving (deleted) moves the node's version.
    let mut gone = objects.clone();
    gone.claims.remove(0);
    let gone = AllAssignments::compute(&gone, &cluster());
    assert_ne!(gone.version("pi-1"), all.version("pi-1"));
    assert_eq!(gone.version("pi-2"), all.version("pi-2"));
}

#[test]
fn a_standby_node_gets_its_cron_jobs_and_what_their_pods_read() {
    let mut cron_job = record(
        "CronJob",
        "team",
        "upload",
        json!({"apiVersion": "batch/v1", "kind": "CronJob",
               "metadata": {"name": "upload", "namespace": "team",
                            "annotations": {STANDBY_NODE_ANNOTATION: "pi-2"}},
               "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                   "restartPolicy": "Never",
                   "imagePullSecrets": [{"name": "pull"}],
                   "containers": [{"name": "c", "image": "i"}]}}}}}}),
    );
    cron_job.status = Some(json!({"lastScheduleTime": "2026-12-03T10:00:00Z"}));
    let objects = FleetObjects {
        nodes: vec![node("pi-1", None, None), node("pi-2", None, None)],
        namespaces: vec![namespace("team")],
        secrets: vec![secret("pull")],
        cron_jobs: vec![cron_job.clone()],
        ..FleetObjects::default()
    };
    let all = AllAssignments::compute(&objects, &cluster());
    let standby = all.get("pi-2");
    assert_eq!(
        kinds_and_names(&standby),
        vec![
            ("Namespace", "team"),
            ("Secret", "pull"),
            ("CronJob", "upload")
        ]
    );
    let pushed = &standby.objects[2]["metadata"]["annotations"];
    assert_eq!(pushed[FLEET_UID_ANNOTATION], "uid-CronJob-upload");
    assert!(kinds_and_names(&all.get("pi-1")).is_empty());

    // A run at the coordinator changes nothing a board must do: no new version, so
    // the board writes nothing.
    let before = (
        all.version("pi-1").to_owned(),
        all.version("pi-2").to_owned(),
    );
    cron_job.status = Some(json!({"lastScheduleTime": "2026-12-03T10:01:00Z"}));
    let objects = FleetObjects {
        cron_jobs: vec![cron_job],
        ..objects
    };
    let all = AllAssignments::compute(&objects, &cluster());
    assert_eq!(all.version("pi-1"), before.0);
    assert_eq!(all.version("pi-2"), before.1);
}
