//! The endpoints controller on typed objects.

use std::collections::BTreeMap;

use super::endpoints::{orphaned, reconcile, MANAGED_BY, MANAGED_BY_LABEL};
use super::{Change, World};
use crate::model::{
    ContainerPort, EndpointPort, Endpoints, IntOrString, Object, Pod, Protocol, Service,
    ServicePort, ServiceType,
};

fn service(name: &str, selector: &[(&str, &str)], target: IntOrString) -> Service {
    let mut service = Service::default();
    service.metadata.name = name.into();
    service.metadata.namespace = Some("default".into());
    service.spec.selector = selector
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<BTreeMap<_, _>>();
    service.spec.ports = vec![ServicePort {
        name: "http".into(),
        port: 80,
        target_port: Some(target),
        ..ServicePort::default()
    }];
    service
}

fn pod(name: &str, app: &str, port_name: &str, port: i32) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = name.into();
    pod.metadata.namespace = Some("default".into());
    pod.metadata.uid = format!("uid-{name}");
    pod.metadata.labels.insert("app".into(), app.into());
    pod.spec.containers = vec![crate::model::Container {
        name: "c".into(),
        image: "i".into(),
        ports: vec![ContainerPort {
            name: Some(port_name.into()),
            container_port: port,
            ..ContainerPort::default()
        }],
        ..Default::default()
    }];
    pod
}

fn world(services: Vec<Service>, pods: Vec<Pod>, ready: &[&str]) -> World {
    let pod_ips = pods
        .iter()
        .enumerate()
        .map(|(i, p)| (p.metadata.uid.clone(), format!("10.42.0.{}", 10 - i)))
        .collect();
    World {
        services,
        pods,
        pod_ips,
        ready_pods: ready.iter().map(|n| format!("uid-{n}")).collect(),
        ..World::default()
    }
}

fn put_endpoints(changes: &[Change]) -> Endpoints {
    match changes {
        [Change::Put(object)] => match object.as_ref() {
            Object::Endpoints(endpoints) => endpoints.clone(),
            other => panic!("not Endpoints: {other:?}"),
        },
        other => panic!("expected one Put, got {other:?}"),
    }
}

#[test]
fn ready_pods_are_addresses_the_others_not_ready_and_named_ports_resolve_per_pod() {
    let web = service("web", &[("app", "web")], IntOrString::String("http".into()));
    let pods = vec![
        pod("a", "web", "http", 8080),
        pod("b", "web", "http", 8080),
        pod("c", "web", "http", 9090),
        pod("other", "db", "http", 8080),
        pod("no-port", "web", "metrics", 9100),
    ];
    let world = world(vec![web.clone()], pods, &["a", "c"]);
    let endpoints = put_endpoints(&reconcile(&web, &world));
    assert_eq!(endpoints.metadata.name, "web");
    assert_eq!(
        endpoints
            .metadata
            .labels
            .get(MANAGED_BY_LABEL)
            .map(String::as_str),
        Some(MANAGED_BY)
    );
    // Two subsets: the pods serving 8080 and the one serving 9090; the pod without an
    // `http` port is left out, as Kubernetes does.
    let summary: Vec<(i32, Vec<&str>, Vec<&str>)> = endpoints
        .subsets
        .iter()
        .map(|s| {
            (
                s.ports[0].port,
                s.addresses.iter().map(|a| a.ip.as_str()).collect(),
                s.not_ready_addresses
                    .iter()
                    .map(|a| a.ip.as_str())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (8080, vec!["10.42.0.10"], vec!["10.42.0.9"]),
            (9090, vec!["10.42.0.8"], vec![]),
        ]
    );
    assert_eq!(
        endpoints.subsets[0].ports[0],
        EndpointPort {
            name: "http".into(),
            port: 8080,
            protocol: Protocol::Tcp
        }
    );
    let target = endpoints.subsets[0].addresses[0]
        .target_ref
        .clone()
        .unwrap();
    assert_eq!((target.kind.as_str(), target.name.as_str()), ("Pod", "a"));
}

#[test]
fn unchanged_endpoints_are_not_written_and_terminating_or_unaddressed_pods_are_left_out() {
    let web = service("web", &[("app", "web")], IntOrString::Int(80));
    let mut dying = pod("dying", "web", "http", 80);
    dying.metadata.deletion_timestamp = Some("2026-12-02T10:00:00Z".into());
    let mut world = world(
        vec![web.clone()],
        vec![pod("a", "web", "http", 80), dying],
        &["a", "dying"],
    );
    world.pod_ips.insert("uid-late".into(), "10.42.0.99".into());
    let endpoints = put_endpoints(&reconcile(&web, &world));
    assert_eq!(endpoints.subsets.len(), 1);
    assert_eq!(endpoints.subsets[0].addresses.len(), 1);
    world.endpoints.push(endpoints);
    assert_eq!(reconcile(&web, &world), []);

    // Not ready any more: the address moves to notReadyAddresses, unless the Service
    // publishes not-ready addresses (then nothing changes).
    world.ready_pods.clear();
    let moved = put_endpoints(&reconcile(&web, &world));
    assert_eq!(moved.subsets[0].addresses.len(), 0);
    assert_eq!(moved.subsets[0].not_ready_addresses.len(), 1);
    let mut publish = web.clone();
    publish.spec.publish_not_ready_addresses = true;
    assert_eq!(reconcile(&publish, &world), [], "not ready but published");
}

#[test]
fn selectorless_and_external_services_are_the_users_and_orphans_go_only_if_ours() {
    let manual = service("db", &[], IntOrString::Int(5432));
    let mut external = service("ext", &[("app", "web")], IntOrString::Int(80));
    external.spec.type_ = ServiceType::ExternalName;
    let mut world = world(
        vec![manual.clone(), external.clone()],
        vec![pod("a", "web", "http", 80)],
        &["a"],
    );
    assert_eq!(reconcile(&manual, &world), []);
    assert_eq!(reconcile(&external, &world), []);

    let mut ours = Endpoints::default();
    ours.metadata.name = "gone".into();
    ours.metadata.namespace = Some("default".into());
    ours.metadata
        .labels
        .insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    let mut users = ours.clone();
    users.metadata.name = "db".into();
    users.metadata.labels.clear();
    world.endpoints = vec![ours, users];
    let deleted: Vec<String> = orphaned(&world)
        .into_iter()
        .map(|change| match change {
            Change::Delete(key) => key.name,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(deleted, ["gone"]);
}
