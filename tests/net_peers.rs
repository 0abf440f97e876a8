//! Routes between boards (src/net/peers.rs) against real network namespaces and real
//! traffic: each "board" is a namespace with an uplink, the pod bridge and one pod in a
//! namespace of its own; boards share a subnet through a switch namespace (a bridge) or
//! sit on two subnets joined by a router namespace. berth's functions run on threads
//! inside the boards; `ip` and `bridge` run with `-n`. Every namespace is deleted on
//! drop, also when a test fails, and with it everything made inside.

#![allow(clippy::unwrap_used)] // tests may unwrap

#[allow(dead_code)] // not every test file uses all of it
#[path = "common/netns.rs"]
mod netns;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use berth::model::Ipv4Cidr;
use berth::net::link::{self, Bridge, PodLink};
use berth::net::peers::{self, Backend, Local, Peer, Route, VXLAN_DEVICE};
use netns::Netns;

/// How long a connection or a read on a healthy test network may take.
const DEADLINE: Duration = Duration::from_secs(5);

fn cidr(text: &str) -> Ipv4Cidr {
    text.parse().unwrap()
}

/// A veth pair `name_a` in `a` (with `address_a`, a CIDR text, when given) and `name_b`
/// in `b`, both up, with `mtu`.
fn wire(a: &Netns, name_a: &str, address_a: Option<&str>, b: &Netns, name_b: &str, mtu: u32) {
    let mtu = mtu.to_string();
    a.ip(&[
        "link", "add", name_a, "mtu", &mtu, "type", "veth", "peer", "name", name_b, "mtu", &mtu,
        "netns", &b.name,
    ]);
    if let Some(address) = address_a {
        a.ip(&["addr", "add", address, "dev", name_a]);
    }
    a.ip(&["link", "set", name_a, "up"]);
    b.ip(&["link", "set", name_b, "up"]);
}

/// A board: its namespace (uplink `up0` with `node_ip`), and a pod namespace whose pod
/// gets the first address of `pod_cidr` once [`Board::start`] made the bridge.
struct Board {
    name: String,
    host: Netns,
    pod: Netns,
    local: Local,
    pod_ip: Ipv4Addr,
}

impl Board {
    fn new(name: &str, node_ip: Ipv4Addr, pod_cidr: &str) -> Board {
        let pod_cidr = cidr(pod_cidr);
        Board {
            name: name.to_owned(),
            host: Netns::new(),
            pod: Netns::new(),
            local: Local { node_ip, pod_cidr },
            pod_ip: pod_cidr.nth(2).unwrap(),
        }
    }

    fn as_peer(&self) -> Peer {
        Peer {
            name: self.name.clone(),
            pod_cidr: self.local.pod_cidr,
            address: self.local.node_ip,
        }
    }

    /// Plans the routes to `peers` as the agent would, makes the bridge and the pod with
    /// the MTU that plan needs, and programs the routes. Returns the plan.
    fn start(&self, backend: Backend, peers: &[Peer]) -> Vec<Route> {
        let node_ip = self.local.node_ip;
        let (routes, mtu) = self
            .host
            .run(|| {
                let subnet = peers::local_subnet(node_ip)?;
                let routes = peers::plan(backend, &self.local, subnet, peers);
                let mtu = peers::pod_mtu(peers::uplink_mtu(node_ip)?, &routes, backend);
                Ok::<_, berth::net::NetError>((routes, mtu))
            })
            .unwrap();
        let gateway = self.local.pod_cidr.gateway().unwrap();
        let pod = PodLink {
            host_veth: link::host_veth_name(&format!("pod-{}", self.name)),
            netns: self.pod.path.clone(),
            address: self.pod_ip,
            prefix_len: self.local.pod_cidr.prefix(),
            gateway,
            mtu,
            bridge: "berth0".into(),
        };
        self.host
            .run(|| {
                link::ensure_bridge(&Bridge {
                    name: "berth0".into(),
                    gateway,
                    prefix_len: self.local.pod_cidr.prefix(),
                    mtu,
                })?;
                link::attach_pod(&pod)?;
                peers::program(&self.local, &routes)
            })
            .unwrap();
        routes
    }

    fn program(&self, routes: &[Route]) {
        self.host
            .run(|| peers::program(&self.local, routes))
            .unwrap();
    }
}

/// Pod `from` sends `bytes` bytes to a listener of pod `to`, which answers with how
/// many it read; the listener also checks the sender's address (no NAT between pods).
fn transfer(from: &Board, to: &Board, bytes: usize) {
    let listener = to.pod.run(|| TcpListener::bind((to.pod_ip, 0)).unwrap());
    let port = listener.local_addr().unwrap().port();
    let server: JoinHandle<SocketAddr> = std::thread::spawn(move || {
        let (mut stream, peer) = listener.accept().unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut received = Vec::new();
        stream.read_to_end(&mut received).unwrap();
        stream
            .write_all(&(received.len() as u64).to_be_bytes())
            .unwrap();
        peer
    });
    let target = SocketAddr::V4(SocketAddrV4::new(to.pod_ip, port));
    let mut stream = from
        .pod
        .run(|| TcpStream::connect_timeout(&target, DEADLINE))
        .unwrap_or_else(|e| panic!("pod of {} to {target}: {e}", from.name));
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.set_write_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(&vec![7u8; bytes]).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut count = [0u8; 8];
    stream.read_exact(&mut count).unwrap();
    assert_eq!(u64::from_be_bytes(count), bytes as u64, "all bytes arrived");
    assert_eq!(
        server.join().unwrap().ip(),
        from.pod_ip,
        "pod to pod without NAT"
    );
}

#[test]
fn boards_on_one_subnet_route_directly() {
    let switch = Netns::new();
    switch.ip(&["link", "add", "sw", "type", "bridge"]);
    switch.ip(&["link", "set", "sw", "up"]);
    let boards = [
        Board::new("a", Ipv4Addr::new(192, 168, 50, 1), "10.42.1.0/24"),
        Board::new("b", Ipv4Addr::new(192, 168, 50, 2), "10.42.2.0/24"),
    ];
    for (i, board) in boards.iter().enumerate() {
        let port = format!("port{i}");
        let address = format!("{}/24", board.local.node_ip);
        wire(&board.host, "up0", Some(&address), &switch, &port, 1480);
        switch.ip(&["link", "set", &port, "master", "sw"]);
    }
    let subnet = boards[0]
        .host
        .run(|| peers::local_subnet(Ipv4Addr::new(192, 168, 50, 1)))
        .unwrap();
    assert_eq!(subnet, Some(cidr("192.168.50.0/24")));
    assert_eq!(
        boards[0]
            .host
            .run(|| peers::uplink_mtu(Ipv4Addr::new(192, 168, 50, 1)))
            .unwrap(),
        1480
    );

    let routes_a = boards[0].start(Backend::Auto, &[boards[1].as_peer()]);
    let routes_b = boards[1].start(Backend::Auto, &[boards[0].as_peer()]);
    assert_eq!(
        routes_a,
        [Route::Direct {
            pod_cidr: cidr("10.42.2.0/24"),
            via: Ipv4Addr::new(192, 168, 50, 2)
        }]
    );
    assert!(
        matches!(routes_b[..], [Route::Direct { .. }]),
        "{routes_b:?}"
    );

    transfer(&boards[0], &boards[1], 1);
    transfer(&boards[1], &boards[0], 200_000);

    // The uplink's MTU, nothing taken off: no tunnel.
    assert!(boards[0]
        .pod
        .ip(&["link", "show", "eth0"])
        .contains("mtu 1480"));
    assert!(!boards[0]
        .host
        .run(|| link::link_exists(VXLAN_DEVICE))
        .unwrap());
    let expected = [(cidr("10.42.2.0/24"), Ipv4Addr::new(192, 168, 50, 2))];
    assert_eq!(boards[0].host.run(link::berth_routes).unwrap(), expected);

    // Programming again changes nothing.
    boards[0].program(&routes_a);
    assert_eq!(boards[0].host.run(link::berth_routes).unwrap(), expected);
    transfer(&boards[0], &boards[1], 1);
}

#[test]
fn boards_behind_a_router_reach_each_other_over_vxlan() {
    let router = Netns::new();
    router.enable_forwarding();
    let boards = [
        Board::new("a", Ipv4Addr::new(192, 168, 61, 2), "10.42.1.0/24"),
        Board::new("b", Ipv4Addr::new(192, 168, 62, 2), "10.42.2.0/24"),
    ];
    for (i, board) in boards.iter().enumerate() {
        let uplink = format!("{}/24", board.local.node_ip);
        let side = format!("r{i}");
        wire(&board.host, "up0", Some(&uplink), &router, &side, 1500);
        let gateway = format!("192.168.6{}.1", i + 1);
        router.ip(&["addr", "add", &format!("{gateway}/24"), "dev", &side]);
        board.host.ip(&["route", "add", "default", "via", &gateway]);
    }

    let routes_a = boards[0].start(Backend::Auto, &[boards[1].as_peer()]);
    let routes_b = boards[1].start(Backend::Auto, &[boards[0].as_peer()]);
    let b_cidr = cidr("10.42.2.0/24");
    assert_eq!(
        routes_a,
        [Route::Vxlan {
            pod_cidr: b_cidr,
            vtep_ip: Ipv4Addr::new(10, 42, 2, 0),
            vtep_mac: peers::vtep_mac(&b_cidr),
            underlay: Ipv4Addr::new(192, 168, 62, 2),
        }]
    );
    assert!(
        matches!(routes_b[..], [Route::Vxlan { .. }]),
        "{routes_b:?}"
    );

    // The device as flannel makes it, with the MAC its peers compute.
    for board in &boards {
        let details = board.host.ip(&["-d", "link", "show", VXLAN_DEVICE]);
        for expected in ["vxlan id 1 ", "dstport 8472", "nolearning", "mtu 1450"] {
            assert!(details.contains(expected), "{expected}: {details}");
        }
        let mac = board.host.run(|| link::link_mac(VXLAN_DEVICE)).unwrap();
        assert_eq!(mac, Some(peers::vtep_mac(&board.local.pod_cidr)));
        let vtep = format!("{}/32", board.local.pod_cidr.network());
        assert!(board
            .host
            .ip(&["-4", "addr", "show", "dev", VXLAN_DEVICE])
            .contains(&vtep));
        assert!(board.pod.ip(&["link", "show", "eth0"]).contains("mtu 1450"));
    }

    let (sent, received) = boards[0].host.packets(VXLAN_DEVICE);
    transfer(&boards[0], &boards[1], 1);
    // Full-sized segments fit the tunnel: the pod MTU left room for the overhead.
    transfer(&boards[1], &boards[0], 200_000);
    let (sent_after, received_after) = boards[0].host.packets(VXLAN_DEVICE);
    assert!(sent_after > sent, "tx {sent} → {sent_after}");
    assert!(
        received_after > received,
        "rx {received} → {received_after}"
    );

    // The board itself reaches the far pod too, from its VTEP address.
    let listener = boards[1]
        .pod
        .run(|| TcpListener::bind((boards[1].pod_ip, 0)).unwrap());
    let target = SocketAddr::V4(SocketAddrV4::new(
        boards[1].pod_ip,
        listener.local_addr().unwrap().port(),
    ));
    let stream = boards[0]
        .host
        .run(|| TcpStream::connect_timeout(&target, DEADLINE))
        .unwrap();
    let (_, from) = listener.accept().unwrap();
    assert_eq!(from.ip(), Ipv4Addr::new(10, 42, 1, 0));
    drop(stream);

    // Programming again keeps the device and its entries.
    let index = boards[0].host.ifindex(VXLAN_DEVICE);
    boards[0].program(&routes_a);
    assert_eq!(boards[0].host.ifindex(VXLAN_DEVICE), index);
    assert!(boards[0]
        .host
        .ip(&["neigh", "show", "dev", VXLAN_DEVICE])
        .contains("10.42.2.0 lladdr"));
    transfer(&boards[0], &boards[1], 1);

    // host-gw cannot reach a board behind a router: it plans nothing for it.
    let subnet = boards[0]
        .host
        .run(|| peers::local_subnet(boards[0].local.node_ip))
        .unwrap();
    assert_eq!(subnet, Some(cidr("192.168.61.0/24")));
    assert_eq!(
        peers::plan(
            Backend::HostGw,
            &boards[0].local,
            subnet,
            &[boards[1].as_peer()]
        ),
        []
    );
}

fn peer(name: &str, pod_cidr: &str, address: [u8; 4]) -> Peer {
    Peer {
        name: name.into(),
        pod_cidr: cidr(pod_cidr),
        address: Ipv4Addr::from(address),
    }
}

/// The neighbour and forwarding entries of the VXLAN device, as `ip` and `bridge` show
/// them.
fn tunnel_entries(host: &Netns) -> (String, String) {
    (
        host.ip(&["neigh", "show", "dev", VXLAN_DEVICE]),
        host.bridge(&["fdb", "show", "dev", VXLAN_DEVICE]),
    )
}

#[test]
fn programming_again_takes_away_what_left_and_the_device_with_the_last_tunnel() {
    let host = Netns::new();
    // An uplink to a LAN where no other board answers: only the tables matter here.
    let lan = Netns::new();
    wire(&host, "up0", Some("192.168.70.1/24"), &lan, "lan0", 1500);
    let local = Local {
        node_ip: Ipv4Addr::new(192, 168, 70, 1),
        pod_cidr: cidr("10.42.0.0/24"),
    };
    let subnet = Some(cidr("192.168.70.0/24"));
    let near = peer("near", "10.42.1.0/24", [192, 168, 70, 5]);
    let far1 = peer("far1", "10.42.2.0/24", [172, 20, 0, 5]);
    let far2 = peer("far2", "10.42.3.0/24", [172, 20, 0, 6]);
    let program = |peers: &[Peer]| {
        let routes = peers::plan(Backend::Auto, &local, subnet, peers);
        host.run(|| peers::program(&local, &routes)).unwrap();
        routes
    };
    let mac = |pod_cidr: &str| {
        let bytes = peers::vtep_mac(&cidr(pod_cidr));
        bytes.map(|byte| format!("{byte:02x}")).join(":")
    };

    let routes = program(&[near.clone(), far1.clone(), far2.clone()]);
    assert_eq!(routes.iter().filter(|route| route.is_vxlan()).count(), 2);
    let (neighbours, forwards) = tunnel_entries(&host);
    for (vtep, cidr_text, underlay) in [
        ("10.42.2.0", "10.42.2.0/24", "172.20.0.5"),
        ("10.42.3.0", "10.42.3.0/24", "172.20.0.6"),
    ] {
        assert!(
            neighbours.contains(&format!("{vtep} lladdr {}", mac(cidr_text))),
            "{neighbours}"
        );
        assert!(
            forwards.contains(&format!("{} dst {underlay}", mac(cidr_text))),
            "{forwards}"
        );
    }
    assert!(host
        .ip(&["route", "show", "10.42.3.0/24"])
        .contains("via 10.42.3.0 dev berth.1"));

    // Leftovers of an older plan, and a route that is not berth's.
    host.ip(&[
        "neigh",
        "add",
        "10.42.9.0",
        "lladdr",
        "02:00:00:00:00:09",
        "dev",
        VXLAN_DEVICE,
        "nud",
        "permanent",
    ]);
    host.bridge(&[
        "fdb",
        "append",
        "02:00:00:00:00:09",
        "dev",
        VXLAN_DEVICE,
        "dst",
        "172.20.0.9",
    ]);
    host.ip(&[
        "route",
        "add",
        "10.42.9.0/24",
        "via",
        "192.168.70.9",
        "proto",
        "190",
    ]);
    host.ip(&["route", "add", "10.42.8.0/24", "via", "192.168.70.8"]);

    // far2 left: its route and entries go, the leftovers too.
    let index = host.ifindex(VXLAN_DEVICE);
    program(&[near.clone(), far1.clone()]);
    assert_eq!(host.ifindex(VXLAN_DEVICE), index, "the device stays");
    let (neighbours, forwards) = tunnel_entries(&host);
    assert!(neighbours.contains("10.42.2.0 lladdr"), "{neighbours}");
    assert!(!neighbours.contains("10.42.3.0"), "{neighbours}");
    assert!(!neighbours.contains("10.42.9.0"), "{neighbours}");
    assert!(forwards.contains("dst 172.20.0.5"), "{forwards}");
    assert!(!forwards.contains("172.20.0.6"), "{forwards}");
    assert!(!forwards.contains("172.20.0.9"), "{forwards}");
    assert_eq!(
        host.run(link::berth_routes).unwrap(),
        [
            (cidr("10.42.1.0/24"), Ipv4Addr::new(192, 168, 70, 5)),
            (cidr("10.42.2.0/24"), Ipv4Addr::new(10, 42, 2, 0)),
        ]
    );

    // The last tunnelled peer left: the device goes.
    program(std::slice::from_ref(&near));
    assert!(!host.run(|| link::link_exists(VXLAN_DEVICE)).unwrap());
    assert_eq!(
        host.run(link::berth_routes).unwrap(),
        [(cidr("10.42.1.0/24"), Ipv4Addr::new(192, 168, 70, 5))]
    );

    // A tunnel again, then a new pod CIDR for this board: the device is made again
    // with the MAC its peers will compute from the new CIDR.
    program(&[near.clone(), far1.clone()]);
    let moved = Local {
        pod_cidr: cidr("10.42.5.0/24"),
        ..local
    };
    let routes = peers::plan(Backend::Auto, &moved, subnet, &[near, far1]);
    host.run(|| peers::program(&moved, &routes)).unwrap();
    assert_eq!(
        host.run(|| link::link_mac(VXLAN_DEVICE)).unwrap(),
        Some(peers::vtep_mac(&moved.pod_cidr))
    );
    let addresses = host.ip(&["-4", "addr", "show", "dev", VXLAN_DEVICE]);
    assert!(addresses.contains("10.42.5.0/32"), "{addresses}");
    assert!(!addresses.contains("10.42.0.0/32"), "{addresses}");
    assert!(tunnel_entries(&host).0.contains("10.42.2.0 lladdr"));

    // Cleaning up takes all of berth's and nothing else.
    host.run(peers::remove_all).unwrap();
    assert!(!host.run(|| link::link_exists(VXLAN_DEVICE)).unwrap());
    assert_eq!(host.run(link::berth_routes).unwrap(), []);
    assert!(host
        .ip(&["route", "show", "10.42.8.0/24"])
        .contains("192.168.70.8"));
    host.run(peers::remove_all).unwrap();
}
