//! Finishing a chase: the client's reply from an upstream's, checked by parsing it back,
//! and the upstream's bytes fed broken and random.

use std::net::Ipv4Addr;

use simple_dns::rdata::{RData, A, CNAME, NULL};
use simple_dns::{Name, Packet, PacketFlag, Question, ResourceRecord, CLASS, RCODE, TYPE};

use super::super::zone::{
    answer_over, Outcome, ServiceEntry, ServiceKind, Transport, Zone, MIN_UDP_REPLY,
};
use super::*;

const CLIENT_ID: u16 = 0x4321;
/// Mixed case: the reply's question must come back byte for byte.
const EXT: &str = "Ext.Prod.svc.cluster.local";
const UNKNOWN_TYPE: u16 = 65400;

fn zone() -> Zone {
    Zone {
        domain: "cluster.local".into(),
        services: vec![ServiceEntry {
            name: "ext".into(),
            namespace: "prod".into(),
            kind: ServiceKind::ExternalName("db.example.com".into()),
            ports: Vec::new(),
        }],
        pods: Vec::new(),
    }
}

/// A client's query for `name` of type `qtype` (any number), with an EDNS OPT if `edns`.
fn client_query(qtype: u16, edns: bool) -> Vec<u8> {
    let mut packet = Packet::new_query(CLIENT_ID);
    packet.set_flags(PacketFlag::RECURSION_DESIRED);
    let name = Name::new_unchecked(EXT);
    packet
        .questions
        .push(Question::new(name, TYPE::A.into(), CLASS::IN.into(), false));
    if edns {
        *packet.opt_mut() = Some(OPT {
            opt_codes: Vec::new(),
            udp_packet_size: 1232,
            version: 0,
        });
    }
    let mut query = packet.build_bytes_vec().unwrap();
    let end = question_end(&query).unwrap();
    query[end - 4..end - 2].copy_from_slice(&qtype.to_be_bytes());
    query
}

fn chase(query: &[u8], transport: Transport) -> Box<Chase> {
    match answer_over(&zone(), query, transport) {
        Outcome::Chase(chase) => chase,
        other => panic!("expected a chase, got {other:?}"),
    }
}

fn a_chase() -> Box<Chase> {
    chase(&client_query(1, false), Transport::Udp)
}

fn address(name: &'static str, ttl: u32, ip: Ipv4Addr) -> ResourceRecord<'static> {
    let data = RData::A(A { address: ip.into() });
    ResourceRecord::new(Name::new_unchecked(name), CLASS::IN, ttl, data)
}

/// The upstream's reply to the chase's query (compressed, as resolvers send them).
fn upstream_reply(chase: &Chase, rcode: RCODE, answers: Vec<ResourceRecord<'static>>) -> Vec<u8> {
    let query = chase.upstream_query();
    let end = question_end(query).unwrap();
    let patched = patch_question(query, end, false);
    let mut reply = Packet::parse(&patched).unwrap().into_reply();
    *reply.rcode_mut() = rcode;
    reply.answers = answers;
    let mut bytes = reply.build_bytes_vec_compressed().unwrap();
    bytes[12..end].copy_from_slice(&query[12..end]);
    bytes
}

fn edge_answers() -> Vec<ResourceRecord<'static>> {
    let edge = Name::new_unchecked("edge.example.net");
    vec![
        ResourceRecord::new(
            Name::new_unchecked("db.example.com"),
            CLASS::IN,
            300,
            RData::CNAME(CNAME(edge)),
        ),
        address("edge.example.net", 300, Ipv4Addr::new(192, 0, 2, 7)),
        address("edge.example.net", 2, Ipv4Addr::new(192, 0, 2, 8)),
    ]
}

/// Each answer as (owner, TTL, data as text).
fn answers(packet: &Packet) -> Vec<(String, u32, String)> {
    packet
        .answers
        .iter()
        .map(|record| {
            let data = match &record.rdata {
                RData::A(a) => Ipv4Addr::from(a.address).to_string(),
                RData::CNAME(target) => target.0.to_string(),
                other => format!("{other:?}"),
            };
            (record.name.to_string(), record.ttl, data)
        })
        .collect()
}

#[test]
fn the_cname_comes_first_then_the_upstreams_answers_under_the_clients_id_and_question() {
    let query = client_query(1, false);
    let chase = chase(&query, Transport::Udp);
    let upstream = upstream_reply(&chase, RCODE::NoError, edge_answers());
    let reply = chase.finish(&upstream);
    let packet = Packet::parse(&reply).unwrap();
    assert_eq!((packet.id(), packet.rcode()), (CLIENT_ID, RCODE::NoError));
    assert_eq!(reply[12..query.len()], query[12..], "the question as sent");
    assert!(packet.has_flags(PacketFlag::RECURSION_DESIRED | PacketFlag::RESPONSE));
    // TTLs capped at the zone's: the CNAME may change before the target's records do.
    let expected = [
        (EXT, TTL, "db.example.com"),
        ("db.example.com", TTL, "edge.example.net"),
        ("edge.example.net", TTL, "192.0.2.7"),
        ("edge.example.net", 2, "192.0.2.8"),
    ]
    .map(|(owner, ttl, data)| (owner.to_string(), ttl, data.to_string()));
    assert_eq!(answers(&packet), expected);
}

#[test]
fn an_nxdomain_target_keeps_the_cname() {
    let chase = a_chase();
    let reply = chase.finish(&upstream_reply(&chase, RCODE::NameError, Vec::new()));
    let packet = Packet::parse(&reply).unwrap();
    assert_eq!(packet.rcode(), RCODE::NameError);
    let expected = (EXT.to_string(), TTL, "db.example.com".to_string());
    assert_eq!(answers(&packet), [expected]);
}

#[test]
fn anything_but_an_answer_to_the_question_asked_gets_the_cname_alone() {
    let chase = a_chase();
    let alone = Packet::parse(chase.cname_only()).unwrap();
    assert_eq!((alone.id(), alone.rcode()), (CLIENT_ID, RCODE::NoError));
    assert_eq!(alone.answers.len(), 1);

    let good = upstream_reply(&chase, RCODE::NoError, edge_answers());
    let mut not_a_response = good.clone();
    not_a_response[2] &= 0x7f;
    let mut other_name = good.clone();
    let at = other_name.windows(2).position(|w| w == b"db").unwrap();
    other_name[at] = b'x';
    let mut two_questions = good.clone();
    two_questions[5] = 2;
    let refused = upstream_reply(&chase, RCODE::Refused, Vec::new());
    let failed = upstream_reply(&chase, RCODE::ServerFailure, edge_answers());
    let broken = [
        not_a_response,
        other_name,
        two_questions,
        refused,
        failed,
        good[..good.len() - 3].to_vec(),
        good[..11].to_vec(),
        Vec::new(),
    ];
    for (i, upstream) in broken.iter().enumerate() {
        assert_eq!(chase.finish(upstream), chase.cname_only(), "case {i}");
    }
}

#[test]
fn what_does_not_fit_a_udp_reply_is_truncated_and_comes_whole_over_tcp() {
    let many: Vec<ResourceRecord<'static>> = (0..60)
        .map(|i| address("db.example.com", 60, Ipv4Addr::new(192, 0, 2, i)))
        .collect();
    let udp = a_chase();
    let reply = udp.finish(&upstream_reply(&udp, RCODE::NoError, many.clone()));
    assert!(reply.len() <= MIN_UDP_REPLY, "{}", reply.len());
    let packet = Packet::parse(&reply).unwrap();
    assert!(packet.has_flags(PacketFlag::TRUNCATION));
    assert!(packet.answers.is_empty());

    let tcp = chase(&client_query(1, false), Transport::Tcp);
    let reply = tcp.finish(&upstream_reply(&tcp, RCODE::NoError, many));
    let packet = Packet::parse(&reply).unwrap();
    assert!(!packet.has_flags(PacketFlag::TRUNCATION));
    assert_eq!(packet.answers.len(), 61);

    // The upstream cut its own reply: the client is told to ask over TCP.
    let mut cut = upstream_reply(&udp, RCODE::NoError, edge_answers());
    cut[2] |= 0x02;
    let reply = udp.finish(&cut);
    let packet = Packet::parse(&reply).unwrap();
    assert!(packet.has_flags(PacketFlag::TRUNCATION));
    assert!(packet.answers.is_empty());
}

#[test]
fn a_type_the_parser_does_not_know_is_asked_and_answered_as_it_came() {
    let query = client_query(UNKNOWN_TYPE, true);
    let chase = chase(&query, Transport::Udp);
    let record = ResourceRecord::new(
        Name::new_unchecked("db.example.com"),
        CLASS::IN,
        30,
        RData::NULL(UNKNOWN_TYPE, NULL::new(b"opaque").unwrap()),
    );
    let reply = chase.finish(&upstream_reply(&chase, RCODE::NoError, vec![record]));
    let end = question_end(&query).unwrap();
    assert_eq!(reply[12..end], query[12..end], "the question as sent");
    // Type A in the copy parsed back: the parser refuses questions of unknown types.
    let patched = patch_question(&reply, end, false);
    let packet = Packet::parse(&patched).unwrap();
    assert_eq!(packet.answers.len(), 2);
    match &packet.answers[1].rdata {
        RData::NULL(kind, data) => {
            assert_eq!(*kind, UNKNOWN_TYPE);
            assert_eq!(data.get_data(), b"opaque");
        }
        other => panic!("not the upstream's record: {other:?}"),
    }
    assert!(packet.opt().is_some(), "the client's EDNS is answered");
}

#[test]
fn random_and_broken_upstream_replies_never_panic_and_replies_are_well_formed() {
    let chases = [
        a_chase(),
        chase(&client_query(28, true), Transport::Udp),
        chase(&client_query(UNKNOWN_TYPE, false), Transport::Tcp),
    ];
    let seeds: Vec<Vec<u8>> = chases
        .iter()
        .flat_map(|chase| {
            [
                upstream_reply(chase, RCODE::NoError, edge_answers()),
                upstream_reply(chase, RCODE::NameError, Vec::new()),
            ]
        })
        .collect();
    let dict = [
        "\u{c0}\u{0c}",
        "\0\u{5}\0\u{1}",
        "\u{2}db\u{7}example\u{3}com\0",
    ];
    crate::fuzz::run("dns-chase", &seeds, &dict, 3000, |input| {
        for chase in &chases {
            let reply = chase.finish(input);
            assert_eq!(reply[..2], CLIENT_ID.to_be_bytes(), "the client's id");
            assert!(header_buffer::has_flags(&reply, PacketFlag::RESPONSE).unwrap());
            assert!(reply.len() <= MAX_UDP_REPLY || chase.context.limit > MAX_UDP_REPLY);
        }
    });
}
