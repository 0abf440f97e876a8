//! Services, Endpoints and EndpointSlices through a real agent and the real CLI (issue
//! 13, part 2): cluster IPs and node ports from the agent's `--service-cidr` and
//! `--service-node-port-range`, refusals with Kubernetes' messages, and `get` and
//! `describe` as kubectl shows them. No traffic yet: that needs the endpoints
//! controller and the service rules.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::net::Ipv4Addr;
use std::process::Command;

use common::{TestAgent, BERTH};

const SERVICES: &str = r#"apiVersion: v1
kind: Service
metadata: {name: web, labels: {app: web}}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec: {clusterIP: None, selector: {app: db}}
---
apiVersion: v1
kind: Service
metadata: {name: cloud}
spec: {type: ExternalName, externalName: db.example.com}
---
apiVersion: v1
kind: Service
metadata: {name: legacy}
spec: {ports: [{port: 5432}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: legacy}
subsets: [{addresses: [{ip: 192.168.1.50}], ports: [{port: 5432}]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: legacy-1, labels: {kubernetes.io/service-name: legacy}}
addressType: IPv4
endpoints: [{addresses: [192.168.1.50], conditions: {ready: true}}]
ports: [{port: 5432}]
"#;

/// The whitespace-separated cells of the line of `out` that starts with `name `.
fn cells<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    out.lines()
        .find(|line| line.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no line for {name} in\n{out}"))
        .split_whitespace()
        .collect()
}

#[test]
fn services_get_addresses_from_the_agents_ranges_and_show_like_kubectl() {
    let agent = TestAgent::start_with(&[
        "--service-cidr",
        "10.96.0.0/24",
        "--service-node-port-range",
        "31000-31009",
    ]);
    let out = agent.apply_yaml(SERVICES);
    assert!(out.status.success(), "{out:?}");
    let applied = String::from_utf8_lossy(&out.stdout);
    for line in [
        "service/web created",
        "endpoints/legacy created",
        "endpointslice.discovery.k8s.io/legacy-1 created",
    ] {
        assert!(applied.lines().any(|l| l == line), "{line} in\n{applied}");
    }

    let table = agent.ok(&["get", "svc"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    let web = cells(&table, "web");
    assert_eq!(web[1], "NodePort", "{table}");
    let address: Ipv4Addr = web[2].parse().unwrap();
    assert_eq!(address.octets()[..3], [10, 96, 0], "{table}");
    assert!(![0, 1, 10, 255].contains(&address.octets()[3]), "{table}");
    let (port, node_port) = web[4]
        .strip_suffix("/TCP")
        .unwrap()
        .split_once(':')
        .unwrap();
    assert_eq!(port, "80");
    assert!(
        (31000..=31009).contains(&node_port.parse::<u16>().unwrap()),
        "{table}"
    );
    assert_eq!(
        cells(&table, "db")[1..5],
        ["ClusterIP", "None", "<none>", "<none>"]
    );
    assert_eq!(
        cells(&table, "cloud")[1..5],
        ["ExternalName", "<none>", "db.example.com", "<none>"]
    );
    let wide = agent.ok(&["get", "services", "-o", "wide"]);
    assert_eq!(cells(&wide, "web").last(), Some(&"app=web"), "{wide}");
    assert_eq!(cells(&wide, "legacy").last(), Some(&"<none>"), "{wide}");

    let endpoints = agent.ok(&["get", "ep"]);
    assert_eq!(
        cells(&endpoints, "legacy")[1],
        "192.168.1.50:5432",
        "{endpoints}"
    );
    let slices = agent.ok(&["get", "endpointslices"]);
    assert_eq!(
        cells(&slices, "legacy-1")[1..4],
        ["IPv4", "5432", "192.168.1.50"],
        "{slices}"
    );
    let described = agent.ok(&["describe", "svc", "legacy"]);
    assert!(
        described.contains("\nEndpoints:              192.168.1.50:5432\n"),
        "{described}"
    );
    let all = agent.ok(&["get", "all"]);
    assert!(all.lines().any(|l| l.starts_with("service/web ")), "{all}");

    // Applying the same manifests again keeps every address and port.
    let again = agent.apply_yaml(SERVICES);
    assert!(String::from_utf8_lossy(&again.stdout).contains("service/web unchanged"));
    let after = agent.ok(&["get", "svc", "web"]);
    assert_eq!(
        cells(&after, "web")[..5],
        web[..5],
        "AGE aside, the same row"
    );

    // Another Service may not take that address or node port.
    let thief = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: thief}}\nspec: {{type: NodePort, \
         clusterIP: {address}, ports: [{{port: 80, nodePort: {node_port}}}]}}\n"
    );
    let out = agent.apply_yaml(&thief);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "Service \"thief\" is invalid: spec.clusterIP: Invalid value: \"{address}\": \
             provided IP is already allocated"
        )) && stderr.contains(&format!(
            "spec.ports[0].nodePort: Invalid value: {node_port}: provided port is already allocated"
        )),
        "{stderr}"
    );
    // What berth does not do is refused by name.
    let out = agent.apply_yaml(
        "apiVersion: v1\nkind: Service\nmetadata: {name: lb}\nspec: {type: LoadBalancer, \
         externalTrafficPolicy: Local, ports: [{port: 80}]}\n",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("Service/lb: spec.externalTrafficPolicy: unsupported value \"Local\""));

    agent.ok(&["delete", "svc", "web"]);
    let out = agent.berth(&["get", "svc", "web"]);
    assert!(!out.status.success());
}

#[test]
fn the_service_flags_refuse_what_kubernetes_would() {
    for (flag, value) in [
        ("--service-cidr", "10.0.0.0/8"),
        ("--service-node-port-range", "32767-30000"),
    ] {
        let out = Command::new(BERTH)
            .args([
                "agent",
                "--state-dir",
                "/nonexistent/berth-flag-test",
                flag,
                value,
            ])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(flag) && stderr.contains(value), "{stderr}");
    }
}
