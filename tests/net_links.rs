//! The kernel-facing half of the pod network (src/net/link.rs, src/net/nft.rs) against
//! real network namespaces and real traffic. Each test makes its own namespaces — a
//! "board" (the host side, with the bridge) and a namespace per pod — runs berth's
//! functions on a thread inside the board, and removes every namespace on drop, also
//! when it fails (tests/common/netns.rs). Nothing here touches the machine's own network namespace: `ip` and
//! `nft` run with `-n`/inside a test namespace, and deleting a namespace takes its
//! bridge, veths, routes and nftables table with it.

#![allow(clippy::unwrap_used)] // tests may unwrap

#[allow(dead_code)] // not every test file uses all of it
#[path = "common/netns.rs"]
mod netns;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::thread::JoinHandle;
use std::time::Duration;

use berth::model::Ipv4Cidr;
use berth::net::link::{self, Bridge, PodLink, Vxlan};
use berth::net::nft::{self, HostPort, Protocol, Ruleset, ServicePort};
use netns::Netns;

/// How long a connection on a healthy test network may take.
const CONNECT_DEADLINE: Duration = Duration::from_secs(5);

fn cidr(text: &str) -> Ipv4Cidr {
    text.parse().unwrap()
}

const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 42, 0, 1);

fn bridge() -> Bridge {
    Bridge {
        name: "berth0".into(),
        gateway: GATEWAY,
        prefix_len: 24,
        mtu: 1500,
    }
}

fn pod_link(uid: &str, pod: &Netns, address: Ipv4Addr) -> PodLink {
    PodLink {
        host_veth: link::host_veth_name(uid),
        netns: pod.path.clone(),
        address,
        prefix_len: 24,
        gateway: GATEWAY,
        mtu: 1400,
        bridge: "berth0".into(),
    }
}

/// A board with the bridge and two pods on it, `10.42.0.2` and `10.42.0.3`.
struct Board {
    host: Netns,
    a: Netns,
    b: Netns,
    link_a: PodLink,
    link_b: PodLink,
}

impl Board {
    fn new() -> Board {
        let (host, a, b) = (Netns::new(), Netns::new(), Netns::new());
        let link_a = pod_link("pod-a", &a, Ipv4Addr::new(10, 42, 0, 2));
        let link_b = pod_link("pod-b", &b, Ipv4Addr::new(10, 42, 0, 3));
        host.run(|| {
            link::ensure_bridge(&bridge())?;
            link::attach_pod(&link_a)?;
            link::attach_pod(&link_b)
        })
        .unwrap();
        Board {
            host,
            a,
            b,
            link_a,
            link_b,
        }
    }
}

/// A listener inside `netns` on `address` (port 0: any) that answers one connection:
/// reads a byte and writes it back plus one. Its handle gives the peer's address.
fn echo_once(netns: &Netns, address: Ipv4Addr, port: u16) -> (u16, JoinHandle<SocketAddr>) {
    // The previous listener's accepted connection on this port may still be closing
    // (FIN_WAIT): wait for the port to be free rather than fail.
    let deadline = std::time::Instant::now() + CONNECT_DEADLINE;
    let listener = netns.run(|| loop {
        match TcpListener::bind((address, port)) {
            Err(err)
                if err.kind() == ErrorKind::AddrInUse && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            result => break result.unwrap(),
        }
    });
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (mut stream, peer) = listener.accept().unwrap();
        stream.set_read_timeout(Some(CONNECT_DEADLINE)).unwrap();
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).unwrap();
        stream.write_all(&[byte[0].wrapping_add(1)]).unwrap();
        peer
    });
    (port, handle)
}

/// Connects from inside `netns` to `to`, sends 41 and expects 42 back.
fn exchange_from(netns: &Netns, to: SocketAddrV4) -> std::io::Result<()> {
    let mut stream =
        netns.run(|| TcpStream::connect_timeout(&SocketAddr::V4(to), CONNECT_DEADLINE))?;
    stream.set_read_timeout(Some(CONNECT_DEADLINE))?;
    stream.write_all(&[41])?;
    let mut answer = [0u8; 1];
    stream.read_exact(&mut answer)?;
    assert_eq!(answer[0], 42, "echo from {to}");
    Ok(())
}

/// Pod A reaches pod B's listener by pod IP.
fn a_reaches_b(board: &Board) {
    let (port, echo) = echo_once(&board.b, board.link_b.address, 0);
    exchange_from(&board.a, SocketAddrV4::new(board.link_b.address, port)).unwrap();
    assert_eq!(
        echo.join().unwrap().ip(),
        board.link_a.address,
        "pod to pod without NAT"
    );
}

#[test]
fn two_pods_on_the_bridge_reach_each_other_and_the_gateway() {
    let board = Board::new();
    a_reaches_b(&board);

    // The pod's side: eth0 with its address, MTU and default route.
    assert!(board.a.addresses("eth0").contains("10.42.0.2/24"));
    assert!(board.a.ip(&["link", "show", "eth0"]).contains("mtu 1400"));
    assert!(board
        .a
        .ip(&["route", "show", "default"])
        .contains("via 10.42.0.1 dev eth0"));

    // The gateway answers from the board's side.
    let (port, echo) = echo_once(&board.host, GATEWAY, 0);
    exchange_from(&board.a, SocketAddrV4::new(GATEWAY, port)).unwrap();
    assert_eq!(echo.join().unwrap().ip(), board.link_a.address);

    // The bridge keeps the MAC derived from its name whatever ports come and go.
    let mac = board
        .host
        .run(|| link::link_mac("berth0"))
        .unwrap()
        .unwrap();
    assert_eq!(mac[0] & 0x03, 0x02, "locally administered unicast");
    board
        .host
        .run(|| link::delete_link(&board.link_b.host_veth))
        .unwrap();
    board.host.run(|| link::ensure_bridge(&bridge())).unwrap();
    assert_eq!(
        board.host.run(|| link::link_mac("berth0")).unwrap(),
        Some(mac)
    );
    assert_eq!(
        board.host.run(|| link::link_mac("nosuchlink")).unwrap(),
        None
    );

    // Forwarding on, redirects off: per namespace, so read inside the board.
    let sysctl = |key: &str| {
        board
            .host
            .run(|| std::fs::read_to_string(format!("/proc/sys/net/ipv4/{key}")).unwrap())
    };
    assert_eq!(sysctl("ip_forward").trim(), "1");
    assert_eq!(sysctl("conf/berth0/send_redirects").trim(), "0");
}

#[test]
fn ensure_bridge_is_idempotent_and_keeps_other_addresses() {
    let host = Netns::new();
    host.run(|| link::ensure_bridge(&bridge())).unwrap();
    host.ip(&["addr", "add", "192.168.9.1/24", "dev", "berth0"]);
    let index = host.ifindex("berth0");
    let mut wider = bridge();
    wider.mtu = 1450;
    host.run(|| link::ensure_bridge(&wider)).unwrap();
    assert_eq!(host.ifindex("berth0"), index, "the bridge was kept");
    let addresses = host.addresses("berth0");
    assert!(addresses.contains("10.42.0.1/24"), "{addresses}");
    assert!(addresses.contains("192.168.9.1/24"), "{addresses}");
    assert_eq!(addresses.matches("10.42.0.1/24").count(), 1, "{addresses}");
    assert!(host.ip(&["link", "show", "berth0"]).contains("mtu 1450"));

    // A link of the name that is no bridge is refused, not taken over.
    host.ip(&[
        "link",
        "add",
        "notabridge",
        "type",
        "veth",
        "peer",
        "name",
        "notabridge1",
    ]);
    let mut other = bridge();
    other.name = "notabridge".into();
    let error = host.run(|| link::ensure_bridge(&other)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "link notabridge exists but is a veth, not a bridge"
    );
}

#[test]
fn attach_is_idempotent_and_repairs_a_half_made_pair() {
    let board = Board::new();
    let veth = board.link_a.host_veth.clone();
    let index = board.host.ifindex(&veth);

    // All there: nothing is redone.
    board.host.run(|| link::attach_pod(&board.link_a)).unwrap();
    assert_eq!(board.host.ifindex(&veth), index);
    a_reaches_b(&board);

    // Killed before eth0 got its address: the pair is made again.
    board.a.ip(&["addr", "flush", "dev", "eth0"]);
    board.host.run(|| link::attach_pod(&board.link_a)).unwrap();
    let repaired = board.host.ifindex(&veth);
    assert_ne!(repaired, index, "the half-made pair was replaced");
    assert!(board.a.addresses("eth0").contains("10.42.0.2/24"));
    a_reaches_b(&board);

    // Killed before the route: the same.
    board.a.ip(&["route", "del", "default"]);
    board.host.run(|| link::attach_pod(&board.link_a)).unwrap();
    assert_ne!(board.host.ifindex(&veth), repaired);
    a_reaches_b(&board);

    // The host end fell off the bridge (the bridge was made again): put back on it.
    let index = board.host.ifindex(&veth);
    board.host.ip(&["link", "set", &veth, "nomaster"]);
    board.host.run(|| link::attach_pod(&board.link_a)).unwrap();
    assert_eq!(board.host.ifindex(&veth), index, "kept, only re-attached");
    assert!(board
        .host
        .ip(&["link", "show", &veth])
        .contains("master berth0"));
    a_reaches_b(&board);

    // A namespace that is gone is a clear error.
    let mut lost = board.link_a.clone();
    lost.netns = PathBuf::from("/run/netns/berth-t-no-such-namespace");
    let error = board.host.run(|| link::attach_pod(&lost)).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("open network namespace /run/netns/berth-t-no-such-namespace: "),
        "{error}"
    );
}

#[test]
fn detach_removes_the_veth_and_both_its_ends() {
    let board = Board::new();
    let (veth_a, veth_b) = (&board.link_a.host_veth, &board.link_b.host_veth);
    let mut expected = vec![veth_a.clone(), veth_b.clone()];
    expected.sort();
    assert_eq!(
        board
            .host
            .run(|| link::links_with_prefix(link::POD_VETH_PREFIX))
            .unwrap(),
        expected
    );
    assert!(board.host.run(|| link::link_exists(veth_a)).unwrap());

    board.host.run(|| link::delete_link(veth_a)).unwrap();
    assert!(!board.host.run(|| link::link_exists(veth_a)).unwrap());
    assert!(!board.a.run(|| link::link_exists("eth0")).unwrap());
    assert_eq!(
        board
            .host
            .run(|| link::links_with_prefix(link::POD_VETH_PREFIX))
            .unwrap(),
        std::slice::from_ref(veth_b)
    );
    // Deleting what is gone is done already.
    board.host.run(|| link::delete_link(veth_a)).unwrap();
    // And the pod can be attached again.
    board.host.run(|| link::attach_pod(&board.link_a)).unwrap();
    a_reaches_b(&board);
}

#[test]
fn routes_are_berths_own_and_replaced_in_place() {
    let host = Netns::new();
    host.run(|| link::ensure_bridge(&bridge())).unwrap();
    let peer = cidr("10.42.1.0/24");
    host.run(|| link::replace_route(peer, Ipv4Addr::new(10, 42, 0, 200), None, false))
        .unwrap();
    host.run(|| link::replace_route(peer, Ipv4Addr::new(10, 42, 0, 201), Some("berth0"), false))
        .unwrap();
    // An on-link gateway on no subnet of the board, as a VXLAN peer's is.
    let far = cidr("10.42.2.0/24");
    host.run(|| link::replace_route(far, Ipv4Addr::new(10, 42, 2, 0), Some("berth0"), true))
        .unwrap();
    assert_eq!(
        host.run(link::berth_routes).unwrap(),
        [
            (peer, Ipv4Addr::new(10, 42, 0, 201)),
            (far, Ipv4Addr::new(10, 42, 2, 0))
        ],
        "the kernel's own route to the bridge subnet is not berth's"
    );
    let shown = host.ip(&["route", "show", "10.42.2.0/24"]);
    assert!(
        shown.contains("proto 190") && shown.contains("onlink"),
        "{shown}"
    );

    // A route to the same network that berth did not make is not berth's to delete.
    host.ip(&["route", "add", "10.42.3.0/24", "via", "10.42.0.202"]);
    host.run(|| link::delete_route(cidr("10.42.3.0/24")))
        .unwrap();
    assert!(host
        .ip(&["route", "show", "10.42.3.0/24"])
        .contains("10.42.0.202"));

    host.run(|| link::delete_route(peer)).unwrap();
    host.run(|| link::delete_route(peer)).unwrap();
    assert_eq!(
        host.run(link::berth_routes).unwrap(),
        [(far, Ipv4Addr::new(10, 42, 2, 0))]
    );
    let error = host
        .run(|| link::replace_route(peer, Ipv4Addr::new(10, 42, 0, 9), Some("nosuch0"), false))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "replace route 10.42.1.0/24 via 10.42.0.9 dev nosuch0: no link named nosuch0"
    );
    // The kernel's refusal is read and named.
    let error = host
        .run(|| link::replace_route(peer, Ipv4Addr::new(172, 31, 0, 1), None, false))
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("replace route 10.42.1.0/24 via 172.31.0.1: "),
        "{error}"
    );
    assert_eq!(error.errno(), Some(libc::ENETUNREACH), "{error:?}");
}

fn service_ruleset(services: Vec<ServicePort>) -> Ruleset {
    Ruleset {
        pod_cidr: cidr("10.42.0.0/24"),
        cluster_cidr: cidr("10.42.0.0/16"),
        bridge: "berth0".into(),
        services,
        host_ports: vec![],
    }
}

#[test]
fn services_node_ports_and_host_ports_reach_a_pod_and_an_empty_service_is_refused() {
    let board = Board::new();
    let (port, echo) = echo_once(&board.b, board.link_b.address, 0);
    let cluster_ip = Ipv4Addr::new(10, 43, 0, 10);
    let empty_ip = Ipv4Addr::new(10, 43, 0, 11);
    let mut rules = service_ruleset(vec![
        ServicePort {
            id: "default/web:http".into(),
            cluster_ip: Some(cluster_ip),
            port: 80,
            node_port: Some(30080),
            protocol: Protocol::Tcp,
            endpoints: vec![SocketAddrV4::new(board.link_b.address, port)],
        },
        ServicePort {
            id: "default/empty:http".into(),
            cluster_ip: Some(empty_ip),
            port: 80,
            node_port: None,
            protocol: Protocol::Tcp,
            endpoints: vec![],
        },
    ]);
    rules.host_ports.push(HostPort {
        host_port: 8080,
        host_ip: None,
        protocol: Protocol::Tcp,
        pod_ip: board.link_b.address,
        container_port: port,
    });
    board.host.run(|| nft::apply(&rules)).unwrap();
    // Applying again replaces the table as a whole.
    board.host.run(|| nft::apply(&rules)).unwrap();

    exchange_from(&board.a, SocketAddrV4::new(cluster_ip, 80)).unwrap();
    // Pod to pod through a Service on the same bridge: masqueraded to the gateway, so
    // the reply comes back through the board to be un-NATed.
    assert_eq!(echo.join().unwrap().ip(), GATEWAY);

    // The service network needs a route on a real board (its default route); here one
    // into the bridge, so the packet reaches the forward hook.
    board
        .host
        .run(|| {
            link::replace_route(
                cidr("10.43.0.0/16"),
                Ipv4Addr::new(10, 42, 0, 250),
                None,
                false,
            )
        })
        .unwrap();
    let refused = exchange_from(&board.a, SocketAddrV4::new(empty_ip, 80)).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused, "{refused}");

    // The board itself reaches the Service too (the output hook), from its own address.
    let (port, echo) = echo_once(&board.b, board.link_b.address, port);
    assert_eq!(port, rules.services[0].endpoints[0].port());
    exchange_from(&board.host, SocketAddrV4::new(cluster_ip, 80)).unwrap();
    assert_eq!(echo.join().unwrap().ip(), GATEWAY);

    // The NodePort and the hostPort on the board's address, from a pod.
    for published in [30080, 8080] {
        let (_, echo) = echo_once(&board.b, board.link_b.address, port);
        exchange_from(&board.a, SocketAddrV4::new(GATEWAY, published)).unwrap();
        assert_eq!(echo.join().unwrap().ip(), GATEWAY, "port {published}");
    }
}

#[test]
fn delete_table_leaves_nothing() {
    let host = Netns::new();
    let nft_list = || {
        host.run(|| {
            let output = Command::new("nft")
                .args(["list", "ruleset"])
                .output()
                .unwrap();
            assert!(output.status.success());
            String::from_utf8(output.stdout).unwrap()
        })
    };
    host.run(nft::delete_table).unwrap();
    assert_eq!(nft_list(), "", "deleting an absent table is done already");
    host.run(|| nft::apply(&service_ruleset(vec![]))).unwrap();
    assert!(nft_list().contains("table ip berth"));
    host.run(nft::delete_table).unwrap();
    assert_eq!(nft_list(), "");
}

/// Two boards whose pod networks are joined by VXLAN over an underlay link, as
/// flannel does: route via the peer's VTEP address on-link, a permanent neighbour entry
/// for it, and a forwarding entry to the peer's underlay address.
#[test]
fn pods_on_two_boards_reach_each_other_over_vxlan() {
    let boards = [Netns::new(), Netns::new()];
    let pods = [Netns::new(), Netns::new()];
    boards[0].ip(&[
        "link",
        "add",
        "under0",
        "type",
        "veth",
        "peer",
        "name",
        "under0",
        "netns",
        &boards[1].name,
    ]);
    let underlay = [
        Ipv4Addr::new(192, 168, 77, 1),
        Ipv4Addr::new(192, 168, 77, 2),
    ];
    let pod_cidrs = [cidr("10.42.1.0/24"), cidr("10.42.2.0/24")];
    let pod_ips = [Ipv4Addr::new(10, 42, 1, 2), Ipv4Addr::new(10, 42, 2, 2)];
    let macs = [[0x02, 0, 0, 0, 0x77, 1], [0x02, 0, 0, 0, 0x77, 2]];
    let vxlan = |i: usize, underlay_index: Option<u32>| Vxlan {
        name: "berth.1",
        vni: 1,
        local: underlay[i],
        port: 8472,
        underlay: underlay_index,
        mac: macs[i],
        mtu: 1450,
    };
    for i in 0..2 {
        boards[i].ip(&[
            "addr",
            "add",
            &format!("{}/24", underlay[i]),
            "dev",
            "under0",
        ]);
        boards[i].ip(&["link", "set", "under0", "up"]);
        let under0 = boards[i].ifindex("under0");
        let gateway = pod_cidrs[i].gateway().unwrap();
        let pod = PodLink {
            host_veth: link::host_veth_name(&format!("pod-{i}")),
            netns: pods[i].path.clone(),
            address: pod_ips[i],
            prefix_len: 24,
            gateway,
            mtu: 1450,
            bridge: "berth0".into(),
        };
        boards[i]
            .run(|| {
                link::ensure_bridge(&Bridge {
                    name: "berth0".into(),
                    gateway,
                    prefix_len: 24,
                    mtu: 1450,
                })?;
                link::attach_pod(&pod)?;
                link::ensure_vxlan(&vxlan(i, Some(under0)))
            })
            .unwrap();
        assert_eq!(
            boards[i].run(|| link::link_mac("berth.1")).unwrap(),
            Some(macs[i]),
            "the VTEP has the MAC its peers are told"
        );
    }

    for (i, j) in [(0, 1), (1, 0)] {
        let vtep = pod_cidrs[j].network();
        boards[i]
            .run(|| {
                link::replace_neighbour("berth.1", vtep, macs[j])?;
                link::replace_fdb("berth.1", macs[j], underlay[j])?;
                link::replace_route(pod_cidrs[j], vtep, Some("berth.1"), true)
            })
            .unwrap();
    }

    // Idempotent: the same device is kept with the same MAC, only the MTU is set.
    let index = boards[0].ifindex("berth.1");
    let under0 = boards[0].ifindex("under0");
    let mut narrower = vxlan(0, Some(under0));
    narrower.mtu = 1400;
    assert_eq!(
        boards[0].run(|| link::ensure_vxlan(&narrower)).unwrap(),
        index
    );
    assert_eq!(boards[0].ifindex("berth.1"), index);
    assert!(boards[0]
        .ip(&["link", "show", "berth.1"])
        .contains("mtu 1400"));
    assert!(
        boards[0]
            .ip(&["neigh", "show", "dev", "berth.1"])
            .contains("10.42.2.0 lladdr"),
        "the peer's neighbour entry survives (re-setting the same MAC would flush it)"
    );
    let details = boards[0].ip(&["-d", "link", "show", "berth.1"]);
    for expected in [
        "vxlan id 1 ",
        "local 192.168.77.1 ",
        "dev under0 ",
        "dstport 8472",
        "nolearning",
    ] {
        assert!(details.contains(expected), "{expected}: {details}");
    }

    let (port, echo) = echo_once(&pods[1], pod_ips[1], 0);
    exchange_from(&pods[0], SocketAddrV4::new(pod_ips[1], port)).unwrap();
    assert_eq!(echo.join().unwrap().ip(), pod_ips[0], "no NAT between pods");
    // And it went through the tunnel.
    let (sent, _) = boards[0].packets("berth.1");
    assert!(sent > 0, "tx {sent}");

    // Entries can be taken back; taking back what is gone is done already.
    boards[0]
        .run(|| {
            link::delete_neighbour("berth.1", pod_cidrs[1].network())?;
            link::delete_neighbour("berth.1", pod_cidrs[1].network())?;
            link::delete_fdb("berth.1", macs[1], underlay[1])?;
            link::delete_fdb("berth.1", macs[1], underlay[1])
        })
        .unwrap();
    assert!(!boards[0]
        .ip(&["neigh", "show", "dev", "berth.1"])
        .contains("10.42.2.0"));

    // Another MAC (the one peers compute changed): the device is made again, not
    // given the MAC, so what was made for the old one goes with it.
    boards[0].ip(&["addr", "add", "10.42.1.0/32", "dev", "berth.1"]);
    let mut moved = vxlan(0, Some(under0));
    moved.mac = [0x02, 0, 0, 0, 0x77, 3];
    let remade = boards[0].run(|| link::ensure_vxlan(&moved)).unwrap();
    assert_ne!(remade, index);
    assert_eq!(boards[0].ifindex("berth.1"), remade);
    assert_eq!(
        boards[0].run(|| link::link_mac("berth.1")).unwrap(),
        Some(moved.mac)
    );
    assert!(!boards[0].addresses("berth.1").contains("10.42.1.0/32"));

    // Other settings: the device is made again.
    let mut other = vxlan(0, None);
    other.vni = 2;
    boards[0].run(|| link::ensure_vxlan(&other)).unwrap();
    assert_ne!(boards[0].ifindex("berth.1"), remade);
    assert!(boards[0]
        .ip(&["-d", "link", "show", "berth.1"])
        .contains("vxlan id 2"));
}
