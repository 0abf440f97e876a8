//! Reading the host's resolv.conf and writing a pod's, as the kubelet does.

use std::net::{Ipv4Addr, SocketAddr};

use super::*;

const HOST: &str = "# written by DHCP\n\
domain lan\n\
search lan corp.example.\n\
nameserver 192.168.1.1\n\
nameserver 2001:db8::53\n\
options edns0 timeout:2\n";

const STUB: &str =
    "# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).\n\
nameserver 127.0.0.53\n\
options edns0 trust-ad\n\
search lan\n";

fn addresses(list: &[&str]) -> Vec<SocketAddr> {
    list.iter().map(|a| a.parse().unwrap()).collect()
}

#[test]
fn upstreams_are_the_nameserver_lines_on_port_53_at_most_three() {
    assert_eq!(
        upstreams_from(HOST),
        addresses(&["192.168.1.1:53", "[2001:db8::53]:53"])
    );
    let many = "nameserver 10.0.0.1\n; nameserver 10.0.0.9\n#nameserver 10.0.0.8\n\
        nameserver not-an-address\nnameserver 10.0.0.2\n  nameserver 10.0.0.3\nnameserver 10.0.0.4\n";
    assert_eq!(
        upstreams_from(many),
        addresses(&["10.0.0.1:53", "10.0.0.2:53", "10.0.0.3:53"])
    );
    assert_eq!(
        upstreams_from("nameserver fe80::1%2\nnameserver fe80::2%eth0\n"),
        addresses(&["[fe80::1%2]:53"])
    );
    assert!(upstreams_from("").is_empty());
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn systemd_resolveds_stub_is_replaced_by_its_real_servers() {
    let dir = tempfile::tempdir().unwrap();
    let stub = write(&dir, "stub-resolv.conf", STUB);
    let real = write(&dir, "resolv.conf", "nameserver 192.168.1.1\nsearch lan\n");
    assert_eq!(
        host_resolv_conf_with(&stub, &real),
        "nameserver 192.168.1.1\nsearch lan\n"
    );
    assert_eq!(
        upstreams_from(&host_resolv_conf_with(&stub, &real)),
        addresses(&["192.168.1.1:53"])
    );
    // Resolved not running (no real file) or listing nothing: the stub it is.
    let missing = dir.path().join("missing");
    assert_eq!(host_resolv_conf_with(&stub, &missing), STUB);
    let empty = write(&dir, "empty.conf", "# no servers\n");
    assert_eq!(host_resolv_conf_with(&stub, &empty), STUB);
    // A file that names another server besides the stub is the host's choice.
    let mixed = write(
        &dir,
        "mixed.conf",
        "nameserver 127.0.0.53\nnameserver 10.0.0.1\n",
    );
    assert_eq!(
        upstreams_from(&host_resolv_conf_with(&mixed, &real)),
        addresses(&["127.0.0.53:53", "10.0.0.1:53"])
    );
    // Other loopback servers (a local dnsmasq) stay: the agent can reach them.
    let local = write(&dir, "local.conf", "nameserver 127.0.0.1\n");
    assert_eq!(host_upstreams(&local), addresses(&["127.0.0.1:53"]));
    assert!(host_upstreams(&missing).is_empty());
}

#[test]
fn cluster_first_gives_cluster_dns_the_kubernetes_search_list_and_ndots_5() {
    let conf = pod_resolv_conf(
        DnsPolicy::ClusterFirst,
        "shop",
        "cluster.local",
        Ipv4Addr::new(10, 42, 0, 1),
        HOST,
        None,
    );
    assert_eq!(
        conf,
        "search shop.svc.cluster.local svc.cluster.local cluster.local lan corp.example\n\
         nameserver 10.42.0.1\n\
         options ndots:5\n"
    );
    let with_host_net = pod_resolv_conf(
        DnsPolicy::ClusterFirstWithHostNet,
        "shop",
        "cluster.local.",
        Ipv4Addr::new(10, 42, 0, 1),
        "",
        None,
    );
    assert_eq!(
        with_host_net,
        "search shop.svc.cluster.local svc.cluster.local cluster.local\n\
         nameserver 10.42.0.1\n\
         options ndots:5\n"
    );
}

#[test]
fn the_search_line_is_the_last_search_or_domain_line_as_in_glibc() {
    let conf = pod_resolv_conf(
        DnsPolicy::Default,
        "default",
        "cluster.local",
        Ipv4Addr::new(10, 42, 0, 1),
        "search a b\nnameserver 10.0.0.1\ndomain c.\nsearch .\n",
        None,
    );
    assert_eq!(conf, "nameserver 10.0.0.1\n");
}

#[test]
fn default_is_the_hosts_configuration_and_none_only_dns_config() {
    let host = pod_resolv_conf(
        DnsPolicy::Default,
        "shop",
        "cluster.local",
        Ipv4Addr::new(10, 42, 0, 1),
        HOST,
        None,
    );
    assert_eq!(
        host,
        "search lan corp.example\n\
         nameserver 192.168.1.1\n\
         nameserver 2001:db8::53\n\
         options edns0 timeout:2\n"
    );
    let config = PodDnsConfig {
        nameservers: vec!["1.1.1.1".into()],
        searches: vec!["example.org".into()],
        options: vec![("ndots".into(), Some("2".into())), ("edns0".into(), None)],
    };
    let none = pod_resolv_conf(
        DnsPolicy::None,
        "shop",
        "cluster.local",
        Ipv4Addr::new(10, 42, 0, 1),
        HOST,
        Some(&config),
    );
    assert_eq!(
        none,
        "search example.org\nnameserver 1.1.1.1\noptions ndots:2 edns0\n"
    );
    assert_eq!(
        pod_resolv_conf(DnsPolicy::None, "a", "b", Ipv4Addr::LOCALHOST, HOST, None),
        ""
    );
}

#[test]
fn dns_config_is_merged_as_the_kubelet_merges_it() {
    let config = PodDnsConfig {
        nameservers: vec![
            "10.42.0.1".into(),
            "1.1.1.1".into(),
            "8.8.8.8".into(),
            "9.9.9.9".into(),
        ],
        searches: vec!["svc.cluster.local".into(), "extra.example".into()],
        options: vec![
            ("ndots".into(), Some("2".into())),
            ("single-request-reopen".into(), None),
            ("timeout".into(), Some(String::new())),
        ],
    };
    let conf = pod_resolv_conf(
        DnsPolicy::ClusterFirst,
        "shop",
        "cluster.local",
        Ipv4Addr::new(10, 42, 0, 1),
        "",
        Some(&config),
    );
    assert_eq!(
        conf,
        "search shop.svc.cluster.local svc.cluster.local cluster.local extra.example\n\
         nameserver 10.42.0.1\n\
         nameserver 1.1.1.1\n\
         nameserver 8.8.8.8\n\
         options ndots:2 single-request-reopen timeout\n"
    );
}

#[test]
fn search_domains_are_limited_in_number_length_and_characters() {
    let searches: Vec<String> = (0..40).map(|i| format!("d{i}.example")).collect();
    let config = PodDnsConfig {
        nameservers: vec!["1.1.1.1".into()],
        searches,
        options: Vec::new(),
    };
    let conf = pod_resolv_conf(
        DnsPolicy::None,
        "a",
        "cluster.local",
        Ipv4Addr::LOCALHOST,
        "",
        Some(&config),
    );
    let line = conf.lines().next().unwrap();
    assert_eq!(line.split(' ').count() - 1, MAX_SEARCHES);
    assert!(line.ends_with(" d31.example"));

    let long: Vec<String> = (0..30)
        .map(|i| format!("{i:02}{}", ".abcdefghi".repeat(9)))
        .chain(["x".repeat(254)])
        .collect();
    let config = PodDnsConfig {
        searches: long,
        ..config
    };
    let conf = pod_resolv_conf(
        DnsPolicy::None,
        "a",
        "b",
        Ipv4Addr::LOCALHOST,
        "",
        Some(&config),
    );
    let line = conf.lines().next().unwrap();
    let kept = line.trim_start_matches("search ");
    assert!(kept.len() <= MAX_SEARCH_CHARS, "{}", kept.len());
    assert!(kept.len() > MAX_SEARCH_CHARS - 100, "{}", kept.len());
    assert!(!kept.contains("xxx"));
    assert!(kept.starts_with("00."));
}

#[test]
fn cluster_first_on_the_host_network_means_default() {
    assert_eq!(DnsPolicy::ClusterFirst.effective(true), DnsPolicy::Default);
    assert_eq!(
        DnsPolicy::ClusterFirst.effective(false),
        DnsPolicy::ClusterFirst
    );
    assert_eq!(
        DnsPolicy::ClusterFirstWithHostNet.effective(true),
        DnsPolicy::ClusterFirstWithHostNet
    );
    assert_eq!(DnsPolicy::None.effective(true), DnsPolicy::None);
}

const HOSTS_HEAD: &str = "# Kubernetes-managed hosts file.\n\
127.0.0.1\tlocalhost\n\
::1\tlocalhost ip6-localhost ip6-loopback\n\
fe00::0\tip6-localnet\n\
fe00::0\tip6-mcastprefix\n\
fe00::1\tip6-allnodes\n\
fe00::2\tip6-allrouters\n";

#[test]
fn the_hosts_file_names_the_pod_and_its_aliases_as_the_kubelet_writes_it() {
    assert_eq!(
        pod_hosts_file(Some(Ipv4Addr::new(10, 42, 0, 5)), "web-7d9f", &[]),
        format!("{HOSTS_HEAD}10.42.0.5\tweb-7d9f\n")
    );
    assert_eq!(
        pod_hosts_file(
            Some(Ipv4Addr::new(10, 42, 0, 6)),
            "web-0.nginx.default.svc.cluster.local",
            &[
                (
                    Ipv4Addr::new(192, 168, 1, 10),
                    vec!["plc".into(), "plc.factory".into()]
                ),
                (Ipv4Addr::new(192, 168, 1, 11), vec!["db".into()]),
            ],
        ),
        format!(
            "{HOSTS_HEAD}10.42.0.6\tweb-0.nginx.default.svc.cluster.local\tweb-0\n\
             \n# Entries added by HostAliases.\n\
             192.168.1.10\tplc\tplc.factory\n\
             192.168.1.11\tdb\n"
        )
    );
    assert_eq!(pod_hosts_file(None, "web", &[]), HOSTS_HEAD);
}
