use super::*;

fn cidr(text: &str) -> Ipv4Cidr {
    text.parse().unwrap()
}

fn endpoint(text: &str) -> SocketAddrV4 {
    text.parse().unwrap()
}

fn web() -> ServicePort {
    ServicePort {
        id: "default/web:http".into(),
        cluster_ip: Some(Ipv4Addr::new(10, 43, 0, 10)),
        port: 80,
        node_port: None,
        protocol: Protocol::Tcp,
        endpoints: vec![endpoint("10.42.0.5:8080"), endpoint("10.42.1.7:8080")],
    }
}

fn ruleset(services: Vec<ServicePort>, host_ports: Vec<HostPort>) -> Ruleset {
    Ruleset {
        pod_cidr: cidr("10.42.0.0/24"),
        cluster_cidr: cidr("10.42.0.0/16"),
        bridge: "berth0".into(),
        services,
        host_ports,
    }
}

/// The lines of the chain `name`, without its braces.
fn chain_lines(text: &str, name: &str) -> Vec<String> {
    let start = format!("\tchain {name} {{");
    let mut lines = text.lines().skip_while(|line| *line != start);
    assert!(lines.next().is_some(), "no chain {name} in\n{text}");
    lines
        .take_while(|line| *line != "\t}")
        .map(|line| line.trim().to_owned())
        .collect()
}

/// The elements of the map `name`.
fn map_elements(text: &str, name: &str) -> Vec<String> {
    let start = format!("\tmap {name} {{");
    let lines: Vec<&str> = text
        .lines()
        .skip_while(|line| *line != start)
        .take_while(|line| *line != "\t}")
        .collect();
    assert!(!lines.is_empty(), "no map {name} in\n{text}");
    lines
        .iter()
        .filter(|line| line.starts_with("\t\t\t"))
        .map(|line| line.trim().trim_end_matches(',').to_owned())
        .collect()
}

#[test]
fn a_service_with_two_endpoints_load_balances_between_them() {
    let text = render(&ruleset(vec![web()], vec![]));
    assert_eq!(
        map_elements(&text, "service-ips"),
        ["10.43.0.10 . tcp . 80 : goto svc-b9c26c04-default-web-http"]
    );
    assert_eq!(
        chain_lines(&text, "svc-b9c26c04-default-web-http"),
        [
            "numgen random mod 2 vmap { 0 : goto ep-d2bee279-10-42-0-5, \
             1 : goto ep-7d96a6db-10-42-1-7 } comment \"default/web:http\""
        ]
    );
    assert_eq!(
        chain_lines(&text, "ep-d2bee279-10-42-0-5"),
        ["meta l4proto tcp dnat to 10.42.0.5:8080 comment \"default/web:http\""]
    );
    assert_eq!(
        chain_lines(&text, "ep-7d96a6db-10-42-1-7"),
        ["meta l4proto tcp dnat to 10.42.1.7:8080 comment \"default/web:http\""]
    );
    assert!(map_elements(&text, "no-endpoint-services").is_empty());
    assert!(map_elements(&text, "service-nodeports").is_empty());
    // Both DNAT hooks look the Service up.
    for hook in ["nat-prerouting", "nat-output"] {
        assert!(chain_lines(&text, hook).contains(&"jump services".to_owned()));
    }
    assert_eq!(
        chain_lines(&text, "services")[0],
        "ip daddr . meta l4proto . th dport vmap @service-ips"
    );
}

#[test]
fn a_single_endpoint_needs_no_random_pick() {
    let mut service = web();
    service.endpoints.truncate(1);
    let text = render(&ruleset(vec![service], vec![]));
    assert_eq!(
        chain_lines(&text, "svc-b9c26c04-default-web-http"),
        ["goto ep-d2bee279-10-42-0-5 comment \"default/web:http\""]
    );
    assert!(!text.contains("numgen"));
}

#[test]
fn a_service_without_endpoints_is_rejected_not_dropped() {
    let mut service = web();
    service.endpoints.clear();
    service.node_port = Some(30080);
    let text = render(&ruleset(vec![service], vec![]));
    assert_eq!(
        map_elements(&text, "no-endpoint-services"),
        ["10.43.0.10 . tcp . 80 : goto reject-service"]
    );
    assert_eq!(
        map_elements(&text, "no-endpoint-nodeports"),
        ["tcp . 30080 : goto reject-service"]
    );
    assert!(map_elements(&text, "service-ips").is_empty());
    assert!(
        !text.contains("chain svc-"),
        "no load balancer without endpoints"
    );
    assert_eq!(
        chain_lines(&text, "reject-service"),
        [
            "meta l4proto tcp reject with tcp reset",
            "reject with icmp type host-unreachable"
        ]
    );
    // New connections only: to the ClusterIP when forwarded (from pods) or sent from
    // the board; to a NodePort on any of the board's addresses.
    let lookup = "ct state new ip daddr . meta l4proto . th dport vmap @no-endpoint-services";
    assert!(chain_lines(&text, "filter-forward").contains(&lookup.to_owned()));
    assert!(chain_lines(&text, "filter-output").contains(&lookup.to_owned()));
    assert!(chain_lines(&text, "filter-input")[1].ends_with("vmap @no-endpoint-nodeports"));
}

#[test]
fn a_node_port_marks_its_traffic_for_masquerade() {
    let mut service = web();
    service.node_port = Some(30080);
    let text = render(&ruleset(vec![service], vec![]));
    assert_eq!(
        map_elements(&text, "service-nodeports"),
        ["tcp . 30080 : goto ext-b9c26c04-default-web-http"]
    );
    assert_eq!(
        chain_lines(&text, "services")[1],
        "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport \
         vmap @service-nodeports"
    );
    assert_eq!(
        chain_lines(&text, "ext-b9c26c04-default-web-http"),
        [
            "jump mark-for-masquerade",
            "goto svc-b9c26c04-default-web-http comment \"default/web:http\""
        ]
    );
    assert_eq!(
        chain_lines(&text, "mark-for-masquerade"),
        ["meta mark set meta mark | 0x00004000"]
    );
    // The ClusterIP goes straight to the load balancer, unmarked.
    assert_eq!(
        map_elements(&text, "service-ips"),
        ["10.43.0.10 . tcp . 80 : goto svc-b9c26c04-default-web-http"]
    );
}

#[test]
fn host_ports_dnat_traffic_to_the_boards_addresses() {
    let ports = vec![
        HostPort {
            host_port: 8443,
            host_ip: None,
            protocol: Protocol::Tcp,
            pod_ip: Ipv4Addr::new(10, 42, 0, 9),
            container_port: 443,
        },
        HostPort {
            host_port: 5353,
            host_ip: Some(Ipv4Addr::new(192, 168, 1, 5)),
            protocol: Protocol::Udp,
            pod_ip: Ipv4Addr::new(10, 42, 0, 9),
            container_port: 53,
        },
    ];
    let text = render(&ruleset(vec![], ports));
    assert_eq!(
        chain_lines(&text, "host-ports"),
        [
            "fib daddr type local ip daddr != 127.0.0.0/8 tcp dport 8443 \
             dnat to 10.42.0.9:443 comment \"hostPort 8443/TCP\"",
            "ip daddr 192.168.1.5 udp dport 5353 dnat to 10.42.0.9:53 \
             comment \"hostPort 5353/UDP\"",
        ]
    );
    for hook in ["nat-prerouting", "nat-output"] {
        assert!(chain_lines(&text, hook).contains(&"jump host-ports".to_owned()));
    }
}

#[test]
fn egress_hairpin_and_marked_traffic_are_masqueraded() {
    let text = render(&ruleset(vec![], vec![]));
    assert_eq!(
        chain_lines(&text, "nat-postrouting"),
        [
            "type nat hook postrouting priority srcnat; policy accept;",
            "meta mark & 0x00004000 == 0x00004000 meta mark set meta mark ^ 0x00004000 \
             masquerade comment \"NodePort traffic: replies return through this board\"",
            "ct status dnat ip saddr 10.42.0.0/24 oifname \"berth0\" masquerade \
             comment \"pods reaching pods of this bridge through a Service\"",
            "ip saddr 10.42.0.0/24 ip daddr != 10.42.0.0/16 oifname != \"berth0\" \
             masquerade comment \"pods reaching beyond the cluster network\"",
        ]
    );
    assert!(chain_lines(&text, "filter-output")
        .contains(&"oifname \"berth0\" icmp type redirect drop comment \"pods must keep sending Service traffic through the gateway\"".to_owned()));
}

#[test]
fn the_first_of_two_claims_on_an_address_and_port_wins() {
    let mut second = web();
    second.id = "other/web:http".into();
    second.endpoints = vec![endpoint("10.42.0.99:80")];
    // And the same endpoint twice in one list counts once.
    let mut first = web();
    first.endpoints.push(endpoint("10.42.0.5:8080"));
    let text = render(&ruleset(vec![first, second], vec![]));
    assert_eq!(map_elements(&text, "service-ips").len(), 1);
    assert!(!text.contains("10.42.0.99"), "{text}");
    assert!(text.contains("numgen random mod 2 "));
    // A UDP port on the same address and number is another key.
    let mut udp = web();
    udp.protocol = Protocol::Udp;
    let text = render(&ruleset(vec![web(), udp], vec![]));
    assert_eq!(map_elements(&text, "service-ips").len(), 2);
}

#[test]
fn chain_names_stay_short_and_plain_whatever_the_service_is_called() {
    let mut service = web();
    service.id = "a-very-long-namespace-name/an.even.longer\"service\"name:Port_Name".into();
    let text = render(&ruleset(vec![service], vec![]));
    for line in text.lines().filter(|line| line.starts_with("\tchain ")) {
        let name = line.trim_start_matches("\tchain ").trim_end_matches(" {");
        assert!(name.len() <= MAX_CHAIN_NAME, "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{name}"
        );
    }
    // The comment keeps the id readable but cannot end the string early.
    assert!(text
        .contains("comment \"a-very-long-namespace-name/an.even.longer_service_name:Port_Name\""));
}

#[test]
fn headless_services_without_node_ports_program_nothing() {
    let mut service = web();
    service.cluster_ip = None;
    let text = render(&ruleset(vec![service], vec![]));
    assert!(!text.contains("chain svc-"));
    assert!(map_elements(&text, "service-ips").is_empty());
}

#[test]
fn a_missing_nft_says_which_package_to_install() {
    let error = run_program("berth-test-no-such-nft", "", "the berth ruleset").unwrap_err();
    assert!(
        error.to_string().starts_with(
            "the nft program (Debian package nftables) is needed for the pod network: "
        ),
        "{error}"
    );
    // A refusal carries nft's own words.
    let error = run_program("false", "", "the berth ruleset").unwrap_err();
    assert!(matches!(error, NetError::Nft { .. }), "{error}");
}

/// Every rendered table passes `nft -c` (the kernel checks it without applying it), in
/// a network namespace of its own. Skipped when nft is not installed.
#[test]
fn rendered_tables_pass_nft_check() {
    if Command::new("nft").arg("--version").output().is_err() {
        eprintln!("nft is not installed: skipping the check of rendered tables");
        return;
    }
    let mut node_port = web();
    node_port.node_port = Some(30080);
    let mut empty = web();
    empty.id = "default/empty:dns".into();
    empty.cluster_ip = Some(Ipv4Addr::new(10, 43, 0, 11));
    empty.protocol = Protocol::Udp;
    empty.node_port = Some(30053);
    empty.endpoints.clear();
    let mut single = web();
    single.id = "default/one:".into();
    single.cluster_ip = Some(Ipv4Addr::new(10, 43, 0, 12));
    single.endpoints.truncate(1);
    let host_port = HostPort {
        host_port: 8443,
        host_ip: Some(Ipv4Addr::new(192, 168, 1, 5)),
        protocol: Protocol::Tcp,
        pod_ip: Ipv4Addr::new(10, 42, 0, 9),
        container_port: 443,
    };
    for rules in [
        ruleset(vec![], vec![]),
        ruleset(vec![node_port, empty, single], vec![host_port]),
    ] {
        let script = format!(
            "add table ip {TABLE}\ndelete table ip {TABLE}\n{}",
            render(&rules)
        );
        let mut child = Command::new("unshare")
            .args(["--net", "nft", "-c", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run unshare --net nft");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "nft -c refused:\n{}\n{script}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
