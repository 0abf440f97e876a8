//! The zone's answers, checked by parsing them back with `simple-dns`, and its parser
//! fed random and broken packets.

use std::net::Ipv4Addr;

use simple_dns::rdata::{RData, OPT};
use simple_dns::{Name, Packet, PacketFlag, Question, CLASS, QTYPE, RCODE, TYPE};

use super::super::chase::Chase;
use super::*;

fn named(name: &str, protocol: &'static str, port: u16) -> NamedPort {
    NamedPort {
        name: name.into(),
        protocol,
        port,
    }
}

fn service(name: &str, namespace: &str, kind: ServiceKind, ports: Vec<NamedPort>) -> ServiceEntry {
    ServiceEntry {
        name: name.into(),
        namespace: namespace.into(),
        kind,
        ports,
    }
}

fn endpoints(count: u8) -> Vec<HeadlessEndpoint> {
    (0..count)
        .map(|i| HeadlessEndpoint {
            ip: Ipv4Addr::new(10, 42, 1, i),
            hostname: Some(format!("member-{i}")),
        })
        .collect()
}

fn zone() -> Zone {
    Zone {
        domain: "cluster.local".into(),
        services: vec![
            service(
                "web",
                "default",
                ServiceKind::ClusterIp(Ipv4Addr::new(10, 43, 0, 10)),
                vec![named("http", "tcp", 80), named("dns", "udp", 53)],
            ),
            service(
                "db",
                "default",
                ServiceKind::Headless(vec![
                    HeadlessEndpoint {
                        ip: Ipv4Addr::new(10, 42, 0, 5),
                        hostname: Some("db-0".into()),
                    },
                    HeadlessEndpoint {
                        ip: Ipv4Addr::new(10, 42, 0, 6),
                        hostname: None,
                    },
                ]),
                vec![named("pg", "tcp", 5432)],
            ),
            service("idle", "default", ServiceKind::Headless(Vec::new()), vec![]),
            service(
                "ext",
                "prod",
                ServiceKind::ExternalName("db.example.com".into()),
                vec![],
            ),
            service(
                "big",
                "default",
                ServiceKind::Headless(endpoints(60)),
                vec![named("peer", "tcp", 7000)],
            ),
        ],
        pods: vec![Ipv4Addr::new(10, 42, 0, 7)],
    }
}

fn query_with(name: &str, qtype: QTYPE, opt: Option<OPT<'static>>) -> Vec<u8> {
    let mut packet = Packet::new_query(0x1234);
    packet.set_flags(PacketFlag::RECURSION_DESIRED);
    packet.questions.push(Question::new(
        Name::new_unchecked(name),
        qtype,
        CLASS::IN.into(),
        false,
    ));
    *packet.opt_mut() = opt;
    packet.build_bytes_vec().unwrap()
}

fn query(name: &str, qtype: TYPE) -> Vec<u8> {
    query_with(name, qtype.into(), None)
}

fn edns(size: u16, version: u8) -> Option<OPT<'static>> {
    Some(OPT {
        opt_codes: Vec::new(),
        udp_packet_size: size,
        version,
    })
}

fn reply_to(zone: &Zone, query: &[u8], transport: Transport) -> Vec<u8> {
    match answer_over(zone, query, transport) {
        Outcome::Reply(reply) => reply,
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn ask(name: &str, qtype: TYPE) -> (Vec<u8>, Vec<u8>) {
    let query = query(name, qtype);
    let reply = reply_to(&zone(), &query, Transport::Tcp);
    (query, reply)
}

fn addresses(records: &[ResourceRecord]) -> Vec<Ipv4Addr> {
    records
        .iter()
        .filter_map(|record| match &record.rdata {
            RData::A(a) => Some(Ipv4Addr::from(a.address)),
            _ => None,
        })
        .collect()
}

fn srv_targets(packet: &Packet) -> Vec<(u16, u16, u16, String)> {
    packet
        .answers
        .iter()
        .filter_map(|record| match &record.rdata {
            RData::SRV(srv) => Some((srv.priority, srv.weight, srv.port, srv.target.to_string())),
            _ => None,
        })
        .collect()
}

/// The reply's authority is the zone's SOA, TTL 5, negative TTL 5.
fn assert_soa_authority(packet: &Packet) {
    assert_eq!(packet.name_servers.len(), 1, "{packet:?}");
    let record = &packet.name_servers[0];
    assert_eq!(record.name.to_string(), "cluster.local");
    assert_eq!(record.ttl, TTL);
    match &record.rdata {
        RData::SOA(soa) => {
            assert_eq!(soa.minimum, TTL);
            assert_eq!(soa.mname.to_string(), "ns.dns.cluster.local");
        }
        other => panic!("authority is not an SOA: {other:?}"),
    }
}

#[test]
fn a_cluster_ip_service_resolves_to_its_cluster_ip() {
    let (_, reply) = ask("web.default.svc.cluster.local", TYPE::A);
    let packet = Packet::parse(&reply).unwrap();
    assert_eq!(packet.id(), 0x1234);
    assert_eq!(packet.rcode(), RCODE::NoError);
    assert!(packet.has_flags(
        PacketFlag::RESPONSE | PacketFlag::AUTHORITATIVE_ANSWER | PacketFlag::RECURSION_DESIRED
    ));
    assert_eq!(addresses(&packet.answers), [Ipv4Addr::new(10, 43, 0, 10)]);
    assert_eq!(packet.answers[0].ttl, 5);
    assert_eq!(
        packet.answers[0].name.to_string(),
        "web.default.svc.cluster.local"
    );
    assert!(packet.name_servers.is_empty());
}

#[test]
fn names_match_without_case_and_the_question_comes_back_byte_for_byte() {
    let (query, reply) = ask("WeB.DeFault.SVC.Cluster.LOCAL", TYPE::A);
    let packet = Packet::parse(&reply).unwrap();
    assert_eq!(addresses(&packet.answers), [Ipv4Addr::new(10, 43, 0, 10)]);
    assert_eq!(reply[12..query.len()], query[12..]);
    assert_eq!(
        packet.questions[0].qname.to_string(),
        "WeB.DeFault.SVC.Cluster.LOCAL"
    );
}

#[test]
fn a_headless_service_resolves_to_its_ready_endpoints_and_each_by_name() {
    let (_, reply) = ask("db.default.svc.cluster.local", TYPE::A);
    let packet = Packet::parse(&reply).unwrap();
    assert_eq!(
        addresses(&packet.answers),
        [Ipv4Addr::new(10, 42, 0, 5), Ipv4Addr::new(10, 42, 0, 6)]
    );
    for (name, ip) in [
        (
            "db-0.db.default.svc.cluster.local",
            Ipv4Addr::new(10, 42, 0, 5),
        ),
        (
            "10-42-0-6.db.default.svc.cluster.local",
            Ipv4Addr::new(10, 42, 0, 6),
        ),
    ] {
        let (_, reply) = ask(name, TYPE::A);
        assert_eq!(
            addresses(&Packet::parse(&reply).unwrap().answers),
            [ip],
            "{name}"
        );
    }
    // An endpoint with a hostname is not also named by its address.
    let (_, reply) = ask("10-42-0-5.db.default.svc.cluster.local", TYPE::A);
    assert_eq!(Packet::parse(&reply).unwrap().rcode(), RCODE::NameError);
}

#[test]
fn a_headless_service_without_ready_endpoints_does_not_exist() {
    let (_, reply) = ask("idle.default.svc.cluster.local", TYPE::A);
    let packet = Packet::parse(&reply).unwrap();
    assert_eq!(packet.rcode(), RCODE::NameError);
    assert_soa_authority(&packet);
}

fn chase_of(zone: &Zone, query: &[u8], transport: Transport) -> Box<Chase> {
    match answer_over(zone, query, transport) {
        Outcome::Chase(chase) => chase,
        other => panic!("expected a chase, got {other:?}"),
    }
}

fn cname_targets(packet: &Packet) -> Vec<(String, String)> {
    packet
        .answers
        .iter()
        .filter_map(|record| match &record.rdata {
            RData::CNAME(target) => Some((record.name.to_string(), target.0.to_string())),
            _ => None,
        })
        .collect()
}

#[test]
fn an_external_name_outside_the_zone_is_chased_for_any_type_but_cname_and_any() {
    let ext = (
        "ext.prod.svc.cluster.local".to_string(),
        "db.example.com".to_string(),
    );
    for qtype in [TYPE::A, TYPE::AAAA, TYPE::MX] {
        let chase = chase_of(&zone(), &query(&ext.0, qtype), Transport::Udp);
        assert_eq!(chase.target(), "db.example.com");
        // Should no upstream answer: the CNAME alone, NOERROR.
        let packet = Packet::parse(chase.cname_only()).unwrap();
        assert_eq!((packet.id(), packet.rcode()), (0x1234, RCODE::NoError));
        assert_eq!(cname_targets(&packet), std::slice::from_ref(&ext));
        assert_eq!(packet.answers.len(), 1);
        // The upstream is asked for the target, with the client's type, recursively.
        let upstream = Packet::parse(chase.upstream_query()).unwrap();
        assert!(!upstream.has_flags(PacketFlag::RESPONSE));
        assert!(upstream.has_flags(PacketFlag::RECURSION_DESIRED));
        let question = &upstream.questions[0];
        assert_eq!(question.qname.to_string(), "db.example.com");
        assert_eq!(question.qtype, qtype.into());
        assert_eq!(upstream.opt().map(|opt| opt.udp_packet_size), Some(1232));
    }
    // A type the parser does not know is asked as it came.
    let mut unknown = query(&ext.0, TYPE::A);
    let end = unknown.len();
    unknown[end - 4..end - 2].copy_from_slice(&65400u16.to_be_bytes());
    let chase = chase_of(&zone(), &unknown, Transport::Tcp);
    let asked = chase.upstream_query();
    let asked_end = question_end(asked).unwrap();
    assert_eq!(asked[asked_end - 4..asked_end], unknown[end - 4..]);
    assert_eq!(chase.cname_only()[12..end], unknown[12..]);

    for qtype in [QTYPE::TYPE(TYPE::CNAME), QTYPE::ANY] {
        let reply = reply_to(&zone(), &query_with(&ext.0, qtype, None), Transport::Udp);
        let packet = Packet::parse(&reply).unwrap();
        assert_eq!(packet.rcode(), RCODE::NoError);
        assert_eq!(cname_targets(&packet), std::slice::from_ref(&ext));
        assert_eq!(packet.answers.len(), 1, "{qtype:?}");
    }
}

#[test]
fn an_external_name_inside_the_zone_is_answered_from_it_one_level_deep() {
    let mut zone = zone();
    for (name, target) in [
        ("alias", "web.default.svc.cluster.local"),
        ("gone", "nothing.default.svc.cluster.local"),
        ("hop", "ext.prod.svc.cluster.local"),
    ] {
        let kind = ServiceKind::ExternalName(target.into());
        zone.services.push(service(name, "default", kind, vec![]));
    }
    let ask_zone = |name: &str, qtype| reply_to(&zone, &query(name, qtype), Transport::Udp);
    let alias = "alias.default.svc.cluster.local";
    let web = "web.default.svc.cluster.local";
    let reply = ask_zone(alias, TYPE::A);
    let packet = Packet::parse(&reply).unwrap();
    assert_eq!(packet.rcode(), RCODE::NoError);
    assert_eq!(
        cname_targets(&packet),
        [(alias.to_string(), web.to_string())]
    );
    assert_eq!(addresses(&packet.answers), [Ipv4Addr::new(10, 43, 0, 10)]);
    assert_eq!(packet.answers[1].name.to_string(), web);
    assert!(packet.answers.iter().all(|record| record.ttl == TTL));
    assert!(packet.name_servers.is_empty());

    // The target has no AAAA: NODATA, with the CNAME.
    let reply = ask_zone(alias, TYPE::AAAA);
    let packet = Packet::parse(&reply).unwrap();
    assert_eq!(packet.rcode(), RCODE::NoError);
    assert_eq!(packet.answers.len(), 1);
    assert_soa_authority(&packet);

    // A target that does not exist: NXDOMAIN, with the CNAME.
    let reply = ask_zone("gone.default.svc.cluster.local", TYPE::A);
    let packet = Packet::parse(&reply).unwrap();
    assert_eq!(packet.rcode(), RCODE::NameError);
    assert_eq!(cname_targets(&packet).len(), 1);
    assert_soa_authority(&packet);

    // A CNAME at the target is answered, not followed (nor chased upstream).
    let reply = ask_zone("hop.default.svc.cluster.local", TYPE::A);
    let packet = Packet::parse(&reply).unwrap();
    let hops: Vec<String> = cname_targets(&packet)
        .into_iter()
        .map(|(_, to)| to)
        .collect();
    assert_eq!(hops, ["ext.prod.svc.cluster.local", "db.example.com"]);
}

#[test]
fn named_ports_have_srv_records_pointing_at_the_service_or_its_endpoints() {
    let (_, reply) = ask("_http._tcp.web.default.svc.cluster.local", TYPE::SRV);
    let packet = Packet::parse(&reply).unwrap();
    assert_eq!(
        srv_targets(&packet),
        [(0, 100, 80, "web.default.svc.cluster.local".to_string())]
    );
    assert_eq!(
        addresses(&packet.additional_records),
        [Ipv4Addr::new(10, 43, 0, 10)]
    );
    assert_eq!(
        packet.additional_records[0].name.to_string(),
        "web.default.svc.cluster.local"
    );

    let (_, reply) = ask("_PG._TCP.db.default.svc.cluster.local", TYPE::SRV);
    let packet = Packet::parse(&reply).unwrap();
    assert_eq!(
        srv_targets(&packet),
        [
            (0, 50, 5432, "db-0.db.default.svc.cluster.local".to_string()),
            (
                0,
                50,
                5432,
                "10-42-0-6.db.default.svc.cluster.local".to_string()
            ),
        ]
    );
    assert_eq!(
        addresses(&packet.additional_records),
        [Ipv4Addr::new(10, 42, 0, 5), Ipv4Addr::new(10, 42, 0, 6)]
    );

    // SRV at the Service's own name: every named port.
    let (_, reply) = ask("web.default.svc.cluster.local", TYPE::SRV);
    let ports: Vec<u16> = srv_targets(&Packet::parse(&reply).unwrap())
        .iter()
        .map(|srv| srv.2)
        .collect();
    assert_eq!(ports, [80, 53]);
}

#[test]
fn srv_names_that_do_not_match_a_port_do_not_exist_and_their_parents_are_empty() {
    let (_, reply) = ask("_http._udp.web.default.svc.cluster.local", TYPE::SRV);
    assert_eq!(Packet::parse(&reply).unwrap().rcode(), RCODE::NameError);
    for (name, qtype) in [
        ("_http._tcp.web.default.svc.cluster.local", TYPE::A),
        ("_tcp.web.default.svc.cluster.local", TYPE::SRV),
        ("_udp.web.default.svc.cluster.local", TYPE::A),
    ] {
        let (_, reply) = ask(name, qtype);
        let packet = Packet::parse(&reply).unwrap();
        assert_eq!(packet.rcode(), RCODE::NoError, "{name}");
        assert!(packet.answers.is_empty(), "{name}");
        assert_soa_authority(&packet);
    }
}

#[test]
fn known_pods_resolve_by_dashed_address_in_any_namespace() {
    let (_, reply) = ask("10-42-0-7.default.pod.cluster.local", TYPE::A);
    assert_eq!(
        addresses(&Packet::parse(&reply).unwrap().answers),
        [Ipv4Addr::new(10, 42, 0, 7)]
    );
    for name in [
        "10-42-0-99.default.pod.cluster.local",
        "10-42-0.default.pod.cluster.local",
        "10-42-0-7-1.default.pod.cluster.local",
        "a-b-c-d.default.pod.cluster.local",
    ] {
        let (_, reply) = ask(name, TYPE::A);
        assert_eq!(
            Packet::parse(&reply).unwrap().rcode(),
            RCODE::NameError,
            "{name}"
        );
    }
}

#[test]
fn aaaa_and_other_types_of_existing_names_are_nodata() {
    for (name, qtype) in [
        ("web.default.svc.cluster.local", TYPE::AAAA),
        ("db.default.svc.cluster.local", TYPE::MX),
        ("10-42-0-7.default.pod.cluster.local", TYPE::AAAA),
        ("default.svc.cluster.local", TYPE::A),
        ("svc.cluster.local", TYPE::A),
        ("cluster.local", TYPE::A),
        ("cluster.local", TYPE::NS),
    ] {
        let (_, reply) = ask(name, qtype);
        let packet = Packet::parse(&reply).unwrap();
        assert_eq!(packet.rcode(), RCODE::NoError, "{name}");
        assert!(packet.answers.is_empty(), "{name}");
        assert_soa_authority(&packet);
    }
}

#[test]
fn missing_names_under_the_domain_are_nxdomain_with_the_soa() {
    for name in [
        "nothing.default.svc.cluster.local",
        "web.other.svc.cluster.local",
        "nosuchnamespace.svc.cluster.local",
        "google.com.default.svc.cluster.local",
        "x.cluster.local",
        "a.b.c.d.e.f.svc.cluster.local",
    ] {
        let (_, reply) = ask(name, TYPE::A);
        let packet = Packet::parse(&reply).unwrap();
        assert_eq!(packet.rcode(), RCODE::NameError, "{name}");
        assert!(packet.answers.is_empty());
        assert_soa_authority(&packet);
    }
}

#[test]
fn the_apex_has_an_soa_and_the_schema_version() {
    let (_, reply) = ask("cluster.local", TYPE::SOA);
    let packet = Packet::parse(&reply).unwrap();
    assert!(matches!(packet.answers[0].rdata, RData::SOA(_)));
    let (_, reply) = ask("dns-version.cluster.local", TYPE::TXT);
    let packet = Packet::parse(&reply).unwrap();
    match &packet.answers[0].rdata {
        RData::TXT(txt) => assert!(txt.attributes().contains_key(SCHEMA_VERSION)),
        other => panic!("not a TXT: {other:?}"),
    }
}

#[test]
fn other_names_and_unknown_reverse_names_are_forwarded() {
    let zone = zone();
    for (name, qtype) in [
        ("example.com", TYPE::A),
        ("local", TYPE::A),
        ("cluster.local.example.com", TYPE::A),
        ("8.8.8.8.in-addr.arpa", TYPE::PTR),
        ("10.0.43.10.in-addr.arpa", TYPE::A),
        ("0.43.10.in-addr.arpa", TYPE::PTR),
    ] {
        assert_eq!(
            answer(&zone, &query(name, qtype)),
            Outcome::Forward,
            "{name}"
        );
    }
    // With an empty domain nothing is the zone's, not even the root.
    let empty = Zone::default();
    assert_eq!(
        answer(&empty, &query("web.default.svc", TYPE::A)),
        Outcome::Forward
    );
}

#[test]
fn cluster_ips_and_headless_endpoints_have_ptr_records() {
    for (name, target) in [
        ("10.0.43.10.in-addr.arpa", "web.default.svc.cluster.local"),
        (
            "5.0.42.10.IN-ADDR.ARPA",
            "db-0.db.default.svc.cluster.local",
        ),
        (
            "6.0.42.10.in-addr.arpa",
            "10-42-0-6.db.default.svc.cluster.local",
        ),
    ] {
        let (_, reply) = ask(name, TYPE::PTR);
        let packet = Packet::parse(&reply).unwrap();
        match &packet.answers[..] {
            [record] => match &record.rdata {
                RData::PTR(ptr) => assert_eq!(ptr.0.to_string(), target),
                other => panic!("not a PTR: {other:?}"),
            },
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn a_type_simple_dns_does_not_know_is_answered_or_forwarded_and_echoed() {
    let zone = zone();
    let mut inside = query("web.default.svc.cluster.local", TYPE::A);
    let at = inside.len() - 4;
    inside[at..at + 2].copy_from_slice(&0xff00u16.to_be_bytes());
    let reply = reply_to(&zone, &inside, Transport::Udp);
    assert_eq!(reply[12..inside.len()], inside[12..]);
    assert_eq!(header_buffer::answers(&reply).unwrap(), 0);
    assert_eq!(header_buffer::name_servers(&reply).unwrap(), 1);
    assert_eq!(header_buffer::rcode(&reply).unwrap(), RCODE::NoError);

    let mut outside = query("example.com", TYPE::A);
    let at = outside.len() - 4;
    outside[at..at + 2].copy_from_slice(&0xff00u16.to_be_bytes());
    assert_eq!(answer(&zone, &outside), Outcome::Forward);
}

#[test]
fn zone_transfers_and_other_classes_are_refused() {
    let zone = zone();
    let transfer = query_with("cluster.local", QTYPE::AXFR, None);
    let reply = reply_to(&zone, &transfer, Transport::Tcp);
    assert_eq!(Packet::parse(&reply).unwrap().rcode(), RCODE::Refused);
    let mut chaos = query("web.default.svc.cluster.local", TYPE::A);
    let at = chaos.len() - 2;
    chaos[at..].copy_from_slice(&3u16.to_be_bytes());
    let reply = reply_to(&zone, &chaos, Transport::Udp);
    assert_eq!(header_buffer::rcode(&reply).unwrap(), RCODE::Refused);
}

#[test]
fn what_is_not_a_query_is_dropped_and_malformed_queries_get_formerr() {
    let zone = zone();
    let good = query("web.default.svc.cluster.local", TYPE::A);
    // Not a query at all, or cut before the end of the header: silence.
    let mut response = good.clone();
    response[2] |= 0x80;
    assert_eq!(answer(&zone, &response), Outcome::Drop);
    assert_eq!(answer(&zone, &good[..11]), Outcome::Drop);
    assert_eq!(answer(&zone, &[]), Outcome::Drop);
    let mut oversized = good.clone();
    oversized.resize(MAX_QUERY_LEN + 1, 0);
    assert_eq!(answer(&zone, &oversized), Outcome::Drop);

    let rcode_of = |packet: &[u8]| match answer(&zone, packet) {
        Outcome::Reply(reply) => {
            assert_eq!(header_buffer::id(&reply).unwrap(), 0x1234);
            header_buffer::rcode(&reply).unwrap()
        }
        other => panic!("expected a reply, got {other:?}"),
    };
    // A readable header with a broken body: FORMERR.
    assert_eq!(rcode_of(&good[..good.len() - 1]), RCODE::FormatError);
    assert_eq!(rcode_of(&good[..14]), RCODE::FormatError);
    let mut two_questions = good.clone();
    two_questions[5] = 2;
    assert_eq!(rcode_of(&two_questions), RCODE::FormatError);
    let mut zero_questions = good.clone();
    zero_questions[5] = 0;
    assert_eq!(rcode_of(&zero_questions), RCODE::FormatError);
    let mut pointer = good[..12].to_vec();
    pointer.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    assert_eq!(rcode_of(&pointer), RCODE::FormatError);
    let mut many_additional = good.clone();
    many_additional[10..12].copy_from_slice(&u16::MAX.to_be_bytes());
    assert_eq!(rcode_of(&many_additional), RCODE::FormatError);
    // Another opcode (here a status request): not implemented.
    let mut status = good.clone();
    status[2] = (status[2] & 0x87) | (2 << 3);
    assert_eq!(rcode_of(&status), RCODE::NotImplemented);
}

#[test]
fn udp_replies_fit_512_bytes_or_what_edns_allows_and_are_truncated_otherwise() {
    let zone = zone();
    let name = "big.default.svc.cluster.local";
    // 60 endpoints: about 1 KB of A records.
    let plain = reply_to(&zone, &query(name, TYPE::A), Transport::Udp);
    assert!(plain.len() <= 512, "{}", plain.len());
    let packet = Packet::parse(&plain).unwrap();
    assert!(packet.has_flags(PacketFlag::TRUNCATION));
    assert!(packet.answers.is_empty());
    assert!(packet.opt().is_none());

    let large = reply_to(
        &zone,
        &query_with(name, TYPE::A.into(), edns(4096, 0)),
        Transport::Udp,
    );
    assert!(large.len() <= MAX_UDP_REPLY, "{}", large.len());
    let packet = Packet::parse(&large).unwrap();
    assert!(!packet.has_flags(PacketFlag::TRUNCATION));
    assert_eq!(packet.answers.len(), 60);
    assert_eq!(packet.opt().map(|opt| opt.udp_packet_size), Some(1232));

    let tcp = reply_to(&zone, &query(name, TYPE::SRV), Transport::Tcp);
    let packet = Packet::parse(&tcp).unwrap();
    assert_eq!(packet.answers.len(), 60);
    assert_eq!(packet.additional_records.len(), 60);
}

#[test]
fn additional_records_go_first_when_a_reply_does_not_fit() {
    for count in [1u8, 5, 10, 15, 20, 30, 60] {
        let mut zone = zone();
        zone.services.push(service(
            "many",
            "default",
            ServiceKind::Headless(endpoints(count)),
            vec![named("peer", "tcp", 7000)],
        ));
        for (opt, limit) in [(None, 512), (edns(1232, 0), 1232)] {
            let query = query_with(
                "_peer._tcp.many.default.svc.cluster.local",
                TYPE::SRV.into(),
                opt,
            );
            let reply = reply_to(&zone, &query, Transport::Udp);
            assert!(reply.len() <= limit, "{count}: {} > {limit}", reply.len());
            let packet = Packet::parse(&reply).unwrap();
            let answers = packet.answers.len();
            if packet.has_flags(PacketFlag::TRUNCATION) {
                assert_eq!(answers, 0, "{count}");
            } else {
                assert_eq!(answers, usize::from(count), "{count}");
                let additional = packet.additional_records.len();
                assert!(
                    additional == 0 || additional == usize::from(count),
                    "{count}"
                );
            }
        }
    }
}

#[test]
fn edns_versions_above_zero_get_badvers() {
    let query = query_with(
        "web.default.svc.cluster.local",
        TYPE::A.into(),
        edns(1232, 1),
    );
    let reply = reply_to(&zone(), &query, Transport::Udp);
    let packet = Packet::parse(&reply).unwrap();
    assert_eq!(packet.rcode(), RCODE::BADVERS);
    assert!(packet.answers.is_empty());
}

#[test]
fn a_failed_forward_gets_servfail_with_the_question() {
    let query = query("example.com", TYPE::AAAA);
    let reply = server_failure(&query).unwrap();
    let packet = Packet::parse(&reply).unwrap();
    assert_eq!(packet.rcode(), RCODE::ServerFailure);
    assert_eq!(packet.id(), 0x1234);
    assert_eq!(reply[12..query.len()], query[12..]);
    assert!(server_failure(&query[..5]).is_none());

    let with_edns = query_with("example.com", TYPE::A.into(), edns(1232, 0));
    let reply = server_failure(&with_edns).unwrap();
    assert!(Packet::parse(&reply).unwrap().opt().is_some());
}

#[test]
fn a_second_opt_record_is_a_format_error() {
    let first = query_with(
        "web.default.svc.cluster.local",
        TYPE::A.into(),
        edns(1232, 0),
    );
    let mut packet = Packet::parse(&first).unwrap();
    packet.additional_records.push(ResourceRecord::new(
        Name::new_unchecked(""),
        CLASS::IN,
        0,
        RData::OPT(edns(512, 0).unwrap()),
    ));
    let query = packet.build_bytes_vec().unwrap();
    assert_eq!(header_buffer::additional_records(&query).unwrap(), 2);
    let reply = reply_to(&zone(), &query, Transport::Udp);
    assert_eq!(header_buffer::rcode(&reply).unwrap(), RCODE::FormatError);
}

#[test]
fn random_and_broken_packets_never_panic_and_replies_are_well_formed() {
    let zone = zone();
    let seeds: Vec<Vec<u8>> = vec![
        query("web.default.svc.cluster.local", TYPE::A),
        query("_pg._tcp.db.default.svc.cluster.local", TYPE::SRV),
        query("10-42-0-7.default.pod.cluster.local", TYPE::AAAA),
        query("example.com", TYPE::A),
        query("10.0.43.10.in-addr.arpa", TYPE::PTR),
        query_with(
            "big.default.svc.cluster.local",
            TYPE::A.into(),
            edns(4096, 0),
        ),
        query_with("ext.prod.svc.cluster.local", QTYPE::ANY, edns(512, 1)),
        query_with("ext.prod.svc.cluster.local", TYPE::A.into(), edns(1232, 0)),
    ];
    let dict = [
        "\0\0\u{29}",
        "\u{3f}",
        "\0\u{1}\0\u{1}",
        "\0\u{21}\0\u{1}",
        "\u{7}cluster\u{5}local\0",
        "\u{3}svc",
    ];
    crate::fuzz::run("dns-answer", &seeds, &dict, 4000, |input| {
        for transport in [Transport::Udp, Transport::Tcp] {
            let replies = match answer_over(&zone, input, transport) {
                Outcome::Reply(reply) => vec![reply],
                // The input as the upstream's reply as well: it is someone else's bytes.
                Outcome::Chase(chase) => vec![chase.cname_only().to_vec(), chase.finish(input)],
                _ => Vec::new(),
            };
            for reply in replies {
                assert!(reply.len() >= 12);
                assert_eq!(reply[..2], input[..2], "the id is echoed");
                assert!(header_buffer::has_flags(&reply, PacketFlag::RESPONSE).unwrap());
                if transport == Transport::Udp {
                    assert!(reply.len() <= MAX_UDP_REPLY);
                }
            }
        }
        let _ = server_failure(input);
    });
    // Pure noise as well, of every length around the header's.
    let mut rng = crate::fuzz::Rng::new(7);
    for length in 0..200 {
        let noise: Vec<u8> = (0..length).map(|_| rng.next() as u8).collect();
        let _ = answer_over(&zone, &noise, Transport::Udp);
    }
}
