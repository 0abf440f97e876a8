use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use super::*;
use crate::api::apply::{apply_to_store, AdmissionOptions};
use crate::api::types::{ApplyRequest, ManifestFile};
use crate::model::{default_service_cidr, parse_manifests, DEFAULT_NODE_PORT_RANGE};

fn cidr(text: &str) -> Ipv4Cidr {
    text.parse().unwrap()
}

/// A parsed Service (defaults applied), in namespace `default`.
fn service(spec: &str) -> Service {
    service_named("web", spec)
}

fn service_named(name: &str, spec: &str) -> Service {
    let yaml = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec: {spec}\n"
    );
    match parse_manifests(&yaml).unwrap().pop() {
        Some(Object::Service(service)) => service,
        other => panic!("not a Service: {other:?}"),
    }
}

/// Allocates for `new` against `stored` in the default ranges.
fn admit(new: &mut [Service], stored: &[Service], seed: u64) -> Result<(), Refusal> {
    let mut refs: Vec<&mut Service> = new.iter_mut().collect();
    allocate(
        &mut refs,
        stored,
        &default_service_cidr(),
        DEFAULT_NODE_PORT_RANGE,
        seed,
    )
}

fn admitted(spec: &str, stored: &[Service], seed: u64) -> Service {
    let mut new = [service(spec)];
    admit(&mut new, stored, seed).unwrap_or_else(|r| panic!("{}", r.message));
    let [service] = new;
    service
}

fn refused_with(new: Service, stored: &[Service]) -> Refusal {
    let mut new = [new];
    match admit(&mut new, stored, 7) {
        Ok(()) => panic!("admitted: {:?}", new[0].spec),
        Err(refusal) => refusal,
    }
}

#[test]
fn free_addresses_skip_the_network_the_kubernetes_and_dns_addresses_and_broadcast() {
    let small = cidr("10.43.0.0/28");
    let mut taken = BTreeSet::new();
    let mut handed = Vec::new();
    for start in 0..20u64 {
        let Some(address) = free_cluster_ip(&small, &taken, start * 7919) else {
            break;
        };
        taken.insert(address);
        handed.push(address.octets()[3]);
    }
    handed.sort_unstable();
    assert_eq!(handed, [2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14]);
    assert_eq!(free_cluster_ip(&small, &taken, 3), None, "range is full");
    assert_eq!(
        free_cluster_ip(&cidr("10.43.0.0/31"), &BTreeSet::new(), 0),
        None
    );
    // The search starts where asked and wraps.
    let none = BTreeSet::new();
    assert_eq!(
        free_cluster_ip(&small, &none, 0),
        Some(Ipv4Addr::new(10, 43, 0, 2))
    );
    assert_eq!(
        free_cluster_ip(&small, &none, 12),
        Some(Ipv4Addr::new(10, 43, 0, 14))
    );
    assert_eq!(
        free_cluster_ip(&small, &none, 13),
        Some(Ipv4Addr::new(10, 43, 0, 2))
    );
}

#[test]
fn free_node_ports_stay_in_the_range_and_wrap() {
    let taken: BTreeSet<u16> = [30000, 30002].into();
    assert_eq!(free_node_port((30000, 30002), &taken, 0), Some(30001));
    assert_eq!(free_node_port((30000, 30002), &taken, 2), Some(30001));
    let full: BTreeSet<u16> = [30000, 30001, 30002].into();
    assert_eq!(free_node_port((30000, 30002), &full, 5), None);
    assert_eq!(
        free_node_port((30005, 30005), &BTreeSet::new(), 9),
        Some(30005)
    );
}

#[test]
fn a_new_service_gets_an_address_and_node_ports() {
    for seed in [0, 1, 9, u64::MAX, 123_456_789] {
        let web = admitted(
            "{type: NodePort, ports: [{name: a, port: 80}, {name: b, port: 81, nodePort: 30081}]}",
            &[],
            seed,
        );
        let address = web.spec.cluster_ipv4().expect("a cluster IP");
        let index = default_service_cidr().index_of(address).unwrap();
        assert!(index > 1 && index != 10 && index < 65535, "{address}");
        assert_eq!(
            web.spec.cluster_ips,
            std::slice::from_ref(&web.spec.cluster_ip)
        );
        let drawn = web.spec.ports[0].node_port;
        assert!(
            (30000..=32767).contains(&drawn) && drawn != 30081,
            "{drawn}"
        );
        assert_eq!(web.spec.ports[1].node_port, 30081);
    }
    let headless = admitted("{clusterIP: None, selector: {app: db}}", &[], 1);
    assert_eq!(headless.spec.cluster_ip, "None");
    let external = admitted("{type: ExternalName, externalName: db.example.com}", &[], 1);
    assert!(external.spec.cluster_ip.is_empty() && external.spec.cluster_ips.is_empty());
}

#[test]
fn applying_again_keeps_what_the_service_holds() {
    let spec =
        "{type: NodePort, ports: [{name: web, port: 80}, {name: dns, port: 53, protocol: UDP}]}";
    let first = admitted(spec, &[], 3);
    let again = admitted(spec, std::slice::from_ref(&first), 99);
    assert_eq!(again, first, "same address and node ports");
    // A port added later gets a new node port; the kept ones stay.
    let grown = admitted(
        "{type: NodePort, ports: [{name: web, port: 80}, {name: dns, port: 53, protocol: UDP}, \
         {name: extra, port: 8080}]}",
        std::slice::from_ref(&first),
        5,
    );
    assert_eq!(grown.spec.cluster_ip, first.spec.cluster_ip);
    assert_eq!(grown.spec.ports[..2], first.spec.ports[..]);
    let extra = grown.spec.ports[2].node_port;
    assert!(extra != 0 && !first.spec.ports.iter().any(|p| p.node_port == extra));
    // Asking for its own address and ports explicitly is no conflict with itself.
    let explicit = format!(
        "{{type: NodePort, clusterIP: {}, ports: [{{name: web, port: 80, nodePort: {}}}, \
         {{name: dns, port: 53, protocol: UDP, nodePort: {}}}]}}",
        first.spec.cluster_ip, first.spec.ports[0].node_port, first.spec.ports[1].node_port
    );
    assert_eq!(admitted(&explicit, std::slice::from_ref(&first), 1), first);
}

#[test]
fn a_load_balancer_service_gets_node_ports_unless_it_asks_for_none() {
    let edge = admitted(
        "{type: LoadBalancer, ports: [{name: a, port: 80}, {name: b, port: 81, nodePort: 30081}]}",
        &[],
        4,
    );
    assert!(edge.spec.cluster_ipv4().is_some());
    let drawn = edge.spec.ports[0].node_port;
    assert!(
        (30000..=32767).contains(&drawn) && drawn != 30081,
        "{drawn}"
    );
    assert_eq!(edge.spec.ports[1].node_port, 30081);

    // Without allocation only the node ports named, or already held, are kept.
    let spec = "{type: LoadBalancer, allocateLoadBalancerNodePorts: false, \
                ports: [{name: a, port: 80}, {name: b, port: 81, nodePort: 30081}]}";
    let direct = admitted(spec, &[], 4);
    assert_eq!(direct.spec.ports[0].node_port, 0);
    assert_eq!(direct.spec.ports[1].node_port, 30081);
    let kept = admitted(spec, std::slice::from_ref(&edge), 4);
    assert_eq!(kept.spec.ports[0].node_port, drawn);
    // A node port a LoadBalancer Service holds is as taken as a NodePort Service's.
    let refusal = refused_with(
        service_named(
            "other",
            "{type: NodePort, ports: [{port: 80, nodePort: 30081}]}",
        ),
        std::slice::from_ref(&direct),
    );
    assert!(
        refusal
            .message
            .ends_with("provided port is already allocated"),
        "{}",
        refusal.message
    );
}

#[test]
fn a_load_balancer_class_cannot_change() {
    let first = admitted(
        "{type: LoadBalancer, loadBalancerClass: example.com/a, ports: [{port: 80}]}",
        &[],
        3,
    );
    let refusal = refused_with(
        service("{type: LoadBalancer, loadBalancerClass: example.com/b, ports: [{port: 80}]}"),
        std::slice::from_ref(&first),
    );
    assert_eq!(
        refusal.message,
        "Service \"web\" is invalid: spec.loadBalancerClass: Invalid value: \
         \"example.com/b\": may not change once set"
    );
    let refusal = refused_with(
        service("{type: LoadBalancer, ports: [{port: 80}]}"),
        std::slice::from_ref(&first),
    );
    assert!(refusal
        .message
        .ends_with("Invalid value: null: may not change once set"));
    // Leaving the LoadBalancer type gives the class up.
    admitted(
        "{type: NodePort, ports: [{port: 80}]}",
        std::slice::from_ref(&first),
        3,
    );
}

#[test]
fn a_cluster_ip_cannot_change() {
    let first = admitted("{ports: [{port: 80}]}", &[], 3);
    let other = if first.spec.cluster_ip == "10.43.0.77" {
        "10.43.0.78"
    } else {
        "10.43.0.77"
    };
    let refusal = refused_with(
        service(&format!("{{clusterIP: {other}, ports: [{{port: 80}}]}}")),
        std::slice::from_ref(&first),
    );
    assert_eq!((refusal.code, refusal.reason), (422, "Invalid"));
    assert_eq!(
        refusal.message,
        format!("Service \"web\" is invalid: spec.clusterIP: Invalid value: \"{other}\": field is immutable")
    );
    let refusal = refused_with(
        service("{clusterIP: None, ports: [{port: 80}]}"),
        std::slice::from_ref(&first),
    );
    assert!(
        refusal.message.ends_with("field is immutable"),
        "{}",
        refusal.message
    );
    // Through ExternalName and back, a Service gives its address up and gets a new one.
    let external = admitted(
        "{type: ExternalName, externalName: db.example.com}",
        std::slice::from_ref(&first),
        3,
    );
    assert!(external.spec.cluster_ip.is_empty());
    let back = admitted(
        &format!("{{clusterIP: {other}, ports: [{{port: 80}}]}}"),
        &[external],
        3,
    );
    assert_eq!(back.spec.cluster_ip, other);
}

#[test]
fn explicit_addresses_and_ports_must_be_free_and_in_range() {
    let mut stored = [service_named(
        "db",
        "{type: NodePort, clusterIP: 10.43.0.10, ports: [{port: 5432, nodePort: 30432}]}",
    )];
    admit(&mut stored, &[], 1).unwrap();
    assert_eq!(
        stored[0].spec.cluster_ip, "10.43.0.10",
        "the DNS address when asked for"
    );
    let cases = [
        (
            "{clusterIP: 10.43.0.10, ports: [{port: 80}]}",
            "Service \"web\" is invalid: spec.clusterIP: Invalid value: \"10.43.0.10\": \
             provided IP is already allocated",
        ),
        (
            "{clusterIP: 10.44.0.5, ports: [{port: 80}]}",
            "Service \"web\" is invalid: spec.clusterIP: Invalid value: \"10.44.0.5\": \
             provided IP is not in the valid range. The range of valid IPs is 10.43.0.0/16",
        ),
        (
            "{clusterIP: 10.43.255.255, ports: [{port: 80}]}",
            "Service \"web\" is invalid: spec.clusterIP: Invalid value: \"10.43.255.255\": \
             provided IP is not in the valid range. The range of valid IPs is 10.43.0.0/16",
        ),
        (
            "{type: NodePort, ports: [{port: 80, nodePort: 30432}]}",
            "Service \"web\" is invalid: spec.ports[0].nodePort: Invalid value: 30432: \
             provided port is already allocated",
        ),
        (
            "{type: NodePort, ports: [{port: 80, nodePort: 8080}]}",
            "Service \"web\" is invalid: spec.ports[0].nodePort: Invalid value: 8080: \
             provided port is not in the valid range. The range of valid ports is 30000-32767",
        ),
    ];
    for (spec, message) in cases {
        assert_eq!(
            refused_with(service(spec), &stored).message,
            message,
            "{spec}"
        );
    }
}

#[test]
fn in_one_request_explicit_values_are_reserved_before_any_is_drawn() {
    // The second asks for an address and port the first would otherwise draw first:
    // every start point must still work.
    let small = cidr("10.43.0.0/29"); // automatic: .2 to .6
    for seed in 0..20u64 {
        let mut new = [
            service_named("auto", "{type: NodePort, ports: [{port: 80}]}"),
            service_named(
                "fixed",
                "{type: NodePort, clusterIP: 10.43.0.2, ports: [{port: 80, nodePort: 30000}]}",
            ),
        ];
        let mut refs: Vec<&mut Service> = new.iter_mut().collect();
        allocate(&mut refs, &[], &small, (30000, 30001), seed).unwrap();
        assert_ne!(new[0].spec.cluster_ip, "10.43.0.2");
        assert_eq!(new[0].spec.ports[0].node_port, 30001);
    }
    let mut clash = [
        service_named("a", "{clusterIP: 10.43.0.9, ports: [{port: 80}]}"),
        service_named("b", "{clusterIP: 10.43.0.9, ports: [{port: 80}]}"),
    ];
    let refusal = admit(&mut clash, &[], 0).unwrap_err();
    assert_eq!(
        refusal.message,
        "Service \"b\" is invalid: spec.clusterIP: Invalid value: \"10.43.0.9\": provided IP \
         is already allocated"
    );
}

#[test]
fn a_full_range_is_an_internal_error() {
    let tiny = cidr("10.43.0.0/30"); // only .2 may be handed out
    let mut new = [
        service_named("a", "{ports: [{port: 80}]}"),
        service_named("b", "{ports: [{port: 80}]}"),
    ];
    let mut refs: Vec<&mut Service> = new.iter_mut().collect();
    let refusal = allocate(&mut refs, &[], &tiny, DEFAULT_NODE_PORT_RANGE, 4).unwrap_err();
    assert_eq!((refusal.code, refusal.reason), (500, "InternalError"));
    assert_eq!(
        refusal.message,
        "Internal error occurred: failed to allocate a serviceIP for Service \"b\": range is full"
    );
}

fn request(yaml: &str) -> ApplyRequest {
    ApplyRequest {
        files: vec![ManifestFile {
            name: "svc.yaml".into(),
            content: yaml.into(),
        }],
        namespace: None,
    }
}

fn store_with_default_namespace() -> Store {
    let mut store = Store::open_in_memory().unwrap();
    let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}});
    store.put_all(vec![ns], None).unwrap();
    store
}

const WEB: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {selector: {app: web}, ports: [{port: 80}]}\n";

#[test]
fn apply_stores_the_address_and_applying_again_changes_nothing() {
    let mut store = store_with_default_namespace();
    let options = AdmissionOptions::default();
    let result = apply_to_store(&mut store, &request(WEB), None, &options).unwrap();
    assert_eq!(result.items[0].outcome, "created");
    let stored = store.get("Service", "default", "web").unwrap().unwrap();
    let address = stored.object["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(default_service_cidr().contains(address.parse().unwrap()));
    // The store keeps no status; the object shows Kubernetes' empty one.
    let shown = Object::from_json(stored.object.clone()).unwrap().to_json();
    assert_eq!(shown["status"], serde_json::json!({"loadBalancer": {}}));
    let result = apply_to_store(&mut store, &request(WEB), None, &options).unwrap();
    assert_eq!(result.items[0].outcome, "unchanged");

    // Another Service asking for that address is refused, and nothing of its request is
    // written.
    let thief = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\n---\napiVersion: v1\nkind: \
         Service\nmetadata: {{name: thief}}\nspec: {{clusterIP: {address}, ports: [{{port: 80}}]}}\n"
    );
    let refusal = apply_to_store(&mut store, &request(&thief), None, &options).unwrap_err();
    assert_eq!(refusal.code, 422);
    assert!(
        refusal
            .message
            .ends_with("provided IP is already allocated"),
        "{}",
        refusal.message
    );
    assert!(store.get("ConfigMap", "default", "c").unwrap().is_none());
}

#[test]
fn applying_a_load_balancer_service_warns_that_it_stays_pending() {
    let mut store = store_with_default_namespace();
    let edge = "apiVersion: v1\nkind: Service\nmetadata: {name: edge}\nspec: {type: LoadBalancer, \
                selector: {app: web}, ports: [{port: 80}]}\n";
    let options = AdmissionOptions::default();
    let result = apply_to_store(&mut store, &request(edge), None, &options).unwrap();
    assert_eq!(
        result.warnings,
        [
            "spec.type: berth has no load-balancer controller, so EXTERNAL-IP stays <pending>; \
          the Service is reachable on its node ports on every board"
        ]
    );
    let stored = store.get("Service", "default", "edge").unwrap().unwrap();
    let node_port = stored.object["spec"]["ports"][0]["nodePort"]
        .as_i64()
        .unwrap();
    assert!((30000..=32767).contains(&node_port), "{node_port}");
}

#[test]
fn concurrent_applies_never_share_an_address() {
    // 12 addresses may be handed out in a /28; 12 threads take them all, each once.
    let options = AdmissionOptions {
        service_cidr: cidr("10.43.0.0/28"),
        ..AdmissionOptions::default()
    };
    let store = Arc::new(Mutex::new(store_with_default_namespace()));
    let threads: Vec<_> = (0..12)
        .map(|i| {
            let store = Arc::clone(&store);
            let options = options.clone();
            std::thread::spawn(move || {
                let yaml = WEB.replace("name: web", &format!("name: web{i}"));
                let mut store = store.lock().unwrap();
                apply_to_store(&mut store, &request(&yaml), None, &options).map(|_| ())
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap().unwrap();
    }
    let mut store = store.lock().unwrap();
    let addresses: BTreeSet<String> = store
        .list("Service", None)
        .unwrap()
        .iter()
        .map(|r| r.object["spec"]["clusterIP"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(addresses.len(), 12, "{addresses:?}");
    assert!(!addresses.contains("10.43.0.1") && !addresses.contains("10.43.0.10"));
    let refusal = apply_to_store(&mut store, &request(WEB), None, &options).unwrap_err();
    assert_eq!(refusal.code, 500, "{}", refusal.message);
}
