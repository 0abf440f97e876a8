//! The test network the fleet tests run on (tests/common/fleet.rs) holds still while
//! hosts join it: a connection from one board to the coordinator's address keeps
//! working when another board is added. It did not always: the bridge took the lowest
//! MAC among its ports, a board joining with a lower one moved the gateway's MAC, and a
//! board that had the old one in its ARP cache was cut off for tens of seconds — long
//! enough for a coordinator with a 3 s grace period to judge it lost
//! (`lost_board_is_replaced_and_stops_its_stale_pods` failed that way).

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;
// Only the network is used here, not the coordinator.
#[allow(dead_code)]
#[path = "common/fleet.rs"]
mod fleet_support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::process::Command;
use std::time::Duration;

use fleet_support::TestNetwork;

/// How long an exchange on a healthy link may take (the cut-off lasted 15 s and more).
const EXCHANGE_DEADLINE: Duration = Duration::from_secs(5);

fn set_address(link: &str, address: &str) {
    let status = Command::new("ip")
        .args(["link", "set", link, "address", address])
        .status()
        .expect("run ip");
    assert!(
        status.success(),
        "ip link set {link} address {address} failed"
    );
}

fn address_of(link: &str) -> String {
    std::fs::read_to_string(format!("/sys/class/net/{link}/address"))
        .expect("link address")
        .trim()
        .to_owned()
}

/// Connects to `gateway:port` from inside the network namespace `netns`, as the agent
/// there would: the socket belongs to that namespace for its whole life.
fn connect_from(netns: &str, gateway: String, port: u16) -> TcpStream {
    let path = format!("/run/netns/{netns}");
    std::thread::spawn(move || {
        let namespace = std::fs::File::open(&path).expect("netns file");
        // A fresh thread: its namespace ends with it.
        nix::sched::setns(namespace.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        TcpStream::connect((gateway.as_str(), port)).expect("connect to the gateway")
    })
    .join()
    .expect("connecting thread")
}

/// Sends one byte and waits for it to come back.
fn exchange(stream: &mut TcpStream, byte: u8) -> std::io::Result<u8> {
    stream.write_all(&[byte])?;
    let mut echoed = [0u8; 1];
    stream.read_exact(&mut echoed)?;
    Ok(echoed[0])
}

#[test]
fn a_board_keeps_reaching_the_gateway_when_another_board_joins() {
    let mut network = TestNetwork::new();
    network.add_host();
    let board = network.add_host();
    // Low port addresses, lowest first: a bridge without an address of its own takes
    // the first port's, and the board behind the second port caches it.
    set_address(&network.host_link(0), "02:00:00:00:00:02");
    set_address(&network.host_link(1), "02:00:00:00:00:03");
    let gateway_address = address_of(&network.bridge);

    let listener = TcpListener::bind((network.gateway().as_str(), 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let echo = std::thread::spawn(move || {
        let (mut peer, _) = listener.accept().unwrap();
        let mut byte = [0u8; 1];
        // Until the board closes its end.
        while peer.read(&mut byte).unwrap_or(0) == 1 {
            if peer.write_all(&byte).is_err() {
                break;
            }
        }
    });
    let mut stream = connect_from(&board, network.gateway(), port);
    stream.set_read_timeout(Some(EXCHANGE_DEADLINE)).unwrap();
    assert_eq!(exchange(&mut stream, 1).unwrap(), 1);

    // A third board joins on the lowest address of all.
    network.add_host();
    set_address(&network.host_link(2), "02:00:00:00:00:01");
    assert_eq!(
        address_of(&network.bridge),
        gateway_address,
        "the gateway's MAC moved when a board joined"
    );
    let echoed = exchange(&mut stream, 2);
    assert!(
        matches!(echoed, Ok(2)),
        "the board's kept connection to the gateway stalled after another board joined: {echoed:?}"
    );
    drop(stream);
    echo.join().unwrap();
}
