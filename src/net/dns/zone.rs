//! The cluster zone and its answers: what `<svc>.<ns>.svc.<domain>`,
//! `<a-b-c-d>.<ns>.pod.<domain>` and their SRV and PTR names resolve to, as the
//! Kubernetes DNS specification (schema 1.1.0) and CoreDNS' `kubernetes` plugin answer
//! them. Pure: bytes in, bytes out, no sockets.
//!
//! [`answer`] reads one query and says whether to reply (with the reply's bytes), to
//! forward it unchanged to the upstream resolvers (names outside the zone, reverse names
//! of addresses the zone does not know), or to drop it (not a readable query header). A
//! query whose header is readable but whose body is not gets FORMERR; other opcodes
//! NOTIMP. Nothing in a packet can make it panic or allocate more than a few times the
//! packet's size: counts are checked before the `simple-dns` parser sizes its vectors.
//!
//! Choices where Kubernetes leaves room, or where berth differs from CoreDNS:
//! - `<a-b-c-d>.<ns>.pod.<domain>` answers only for known pod addresses
//!   ([`Zone::pods`]; CoreDNS' `pods verified` rather than the default `pods insecure`),
//!   in any namespace (the zone does not record pods' namespaces). Others get NXDOMAIN.
//! - A headless Service without ready endpoints is NXDOMAIN, as kube-dns and CoreDNS
//!   answer (the specification was changed to match them).
//! - An ExternalName Service is answered with its CNAME followed by the target's records
//!   of the type asked, as CoreDNS does (stub resolvers such as musl's and glibc's do not
//!   follow a CNAME themselves): a target in the zone is looked up in it, one level deep;
//!   one outside comes back as [`Outcome::Chase`], for the server to ask the upstreams
//!   ([`super::chase`]). CNAME and ANY questions get the CNAME alone.
//! - PTR records for ClusterIPs and headless endpoints; reverse names of other
//!   addresses (pod IPs included, whose namespace the zone does not know) are forwarded.
//! - AAAA (and any other type) of an existing name: NOERROR without answers, the SOA in
//!   authority; the fleet is IPv4-only.
//! - The SOA's serial is constant: nothing transfers this zone, so nothing reads it.

use std::net::Ipv4Addr;

use simple_dns::rdata::RData;
use simple_dns::{header_buffer, Name, Packet, PacketFlag, ResourceRecord, OPCODE, RCODE};

use super::chase::Chase;
use super::reply::{owned_record, render, Context, Data, Parts};

/// The records' time to live, in seconds: CoreDNS' default for the `kubernetes` plugin,
/// short because pods come and go.
pub const TTL: u32 = 5;

/// The largest query accepted: more than any real question with EDNS options needs,
/// and the UDP payload size berth advertises (the DNS flag day 2020 value).
pub const MAX_QUERY_LEN: usize = 1232;

/// The largest reply sent over UDP whatever the client advertises: beyond this,
/// datagrams fragment on common paths; clients retry over TCP when TC is set.
pub const MAX_UDP_REPLY: usize = 1232;

/// The UDP reply size every client accepts (RFC 1035), when it sends no EDNS OPT.
pub const MIN_UDP_REPLY: usize = 512;

/// The version of the Kubernetes DNS schema served, at `dns-version.<domain>` (TXT).
pub const SCHEMA_VERSION: &str = "1.1.0";

/// Everything the cluster DNS knows: plain names and addresses from the agent's view of
/// Services, Endpoints and Pods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Zone {
    /// The cluster domain, e.g. `cluster.local`.
    pub domain: String,
    pub services: Vec<ServiceEntry>,
    /// Known pod addresses, answered at `<a-b-c-d>.<ns>.pod.<domain>`.
    pub pods: Vec<Ipv4Addr>,
}

/// One Service's DNS view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    pub name: String,
    pub namespace: String,
    pub kind: ServiceKind,
    /// Named ports (unnamed ones get no SRV records).
    pub ports: Vec<NamedPort>,
}

/// What a Service's name resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceKind {
    ClusterIp(Ipv4Addr),
    /// `clusterIP: None`: the ready endpoints themselves.
    Headless(Vec<HeadlessEndpoint>),
    /// `spec.externalName`, answered as a CNAME.
    ExternalName(String),
}

/// A ready endpoint of a headless Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadlessEndpoint {
    pub ip: Ipv4Addr,
    /// The endpoint's `hostname` (a StatefulSet pod's name); without one the endpoint
    /// is named by its dashed address, `10-42-0-7`, as CoreDNS does.
    pub hostname: Option<String>,
}

/// A named Service port, for `_<name>._<protocol>.<svc>.<ns>.svc.<domain>` SRV records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPort {
    pub name: String,
    /// `"tcp"` or `"udp"`.
    pub protocol: &'static str,
    pub port: u16,
}

/// What to do with a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// The answer is a CNAME to a name outside the zone: ask the upstream resolvers for
    /// the target's records and send the client [`Chase::finish`] of their reply, or
    /// [`Chase::cname_only`] if none answers.
    Chase(Box<Chase>),
    /// Not the zone's: send the query as it is to the upstream resolvers.
    Forward,
    /// Not a query: say nothing.
    Drop,
}

/// How the reply travels, which bounds its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// 512 bytes, or what the client's EDNS OPT allows up to [`MAX_UDP_REPLY`]; a reply
    /// that does not fit is sent without its records and with TC set.
    Udp,
    /// Up to 65535 bytes (the 2-byte length prefix).
    Tcp,
}

// Record types and classes as numbers: the question's type may be one `simple-dns` does
// not know, so routing reads the raw values.
const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_SOA: u16 = 6;
const TYPE_PTR: u16 = 12;
const TYPE_TXT: u16 = 16;
const TYPE_SRV: u16 = 33;
const TYPE_IXFR: u16 = 251;
const TYPE_AXFR: u16 = 252;
const TYPE_ANY: u16 = 255;
const CLASS_IN: u16 = 1;
const CLASS_ANY: u16 = 255;

/// [`answer_over`] TCP: no size limit below 64 KiB.
pub fn answer(zone: &Zone, query: &[u8]) -> Outcome {
    answer_over(zone, query, Transport::Tcp)
}

/// Reads `query` and answers it from `zone`, or says to forward or drop it.
pub fn answer_over(zone: &Zone, query: &[u8], transport: Transport) -> Outcome {
    let question_end = match check_header(query) {
        Check::Drop => return Outcome::Drop,
        Check::Error(rcode) => return header_reply(query, rcode),
        Check::Question { end } => end,
    };
    let raw_type = u16::from_be_bytes([query[question_end - 4], query[question_end - 3]]);
    let raw_class = u16::from_be_bytes([query[question_end - 2], query[question_end - 1]]);
    let patched = patch_question(query, question_end, false);
    let packet = match Packet::parse(&patched) {
        Ok(packet) => packet,
        // The additional section (EDNS, signatures) did not parse: the question alone
        // says whether the query is the zone's; an upstream may still understand it.
        Err(_) => {
            let head = patch_question(query, question_end, true);
            return match Packet::parse(&head) {
                Ok(packet) if route(zone, &packet, raw_type) == Route::Forward => Outcome::Forward,
                _ => header_reply(query, RCODE::FormatError),
            };
        }
    };
    let Some(question) = packet.questions.first() else {
        return header_reply(query, RCODE::FormatError);
    };
    let context = Context {
        id: packet.id(),
        recursion_desired: packet.has_flags(PacketFlag::RECURSION_DESIRED),
        qname: question.qname.clone().into_owned(),
        opt: packet.opt().map(|opt| opt.version),
        original_question: query[12..question_end].to_vec(),
        limit: reply_limit(&packet, transport),
    };
    let rcode_only = |rcode| Parts {
        rcode,
        ..Parts::default()
    };
    let mut parts = match route(zone, &packet, raw_type) {
        Route::Forward => return Outcome::Forward,
        Route::Reverse(name) => Parts {
            answers: vec![Data::Ptr(name)],
            ..Parts::default()
        },
        // RFC 6891: one OPT record at most.
        Route::Zone(_) if packet.additional_records.iter().any(is_opt) => {
            rcode_only(RCODE::FormatError)
        }
        Route::Zone(_) if packet.opt().is_some_and(|opt| opt.version > 0) => {
            rcode_only(RCODE::BADVERS)
        }
        Route::Zone(_) if raw_class != CLASS_IN && raw_class != CLASS_ANY => {
            rcode_only(RCODE::Refused)
        }
        Route::Zone(_) if raw_type == TYPE_AXFR || raw_type == TYPE_IXFR => {
            rcode_only(RCODE::Refused)
        }
        Route::Zone(relative) => match lookup(zone, &relative, raw_type) {
            Some(found) => found,
            None => Parts {
                rcode: RCODE::NameError,
                soa: true,
                ..Parts::default()
            },
        },
    };
    let outside = follow_cname(zone, &mut parts, raw_type);
    let Some(reply) = render(&context, &zone.domain, &parts, true) else {
        let failure = render(
            &context,
            &zone.domain,
            &rcode_only(RCODE::ServerFailure),
            false,
        );
        return failure.map_or(Outcome::Drop, Outcome::Reply);
    };
    match outside {
        Some(target) => chase_or_reply(context, target, reply),
        None => Outcome::Reply(reply),
    }
}

/// A chase of `target`, or `reply` (the CNAME alone) when it is already cut and so has
/// no room for the target's records, or the target cannot be asked for.
fn chase_or_reply(context: Context, target: String, reply: Vec<u8>) -> Outcome {
    if header_buffer::has_flags(&reply, PacketFlag::TRUNCATION).unwrap_or(true) {
        return Outcome::Reply(reply);
    }
    match Chase::new(context, target, reply.clone()) {
        Some(chase) => Outcome::Chase(Box::new(chase)),
        None => Outcome::Reply(reply),
    }
}

/// Follows the CNAME that is the whole answer (an ExternalName Service's) for any type
/// but CNAME and ANY: a target in the zone has its records added to `parts` (its
/// NXDOMAIN or NODATA becomes the reply's); a target outside is returned, to be asked
/// upstream.
fn follow_cname(zone: &Zone, parts: &mut Parts, qtype: u16) -> Option<String> {
    let [Data::Cname(target)] = parts.answers.as_slice() else {
        return None;
    };
    if qtype == TYPE_CNAME || qtype == TYPE_ANY || parts.rcode != RCODE::NoError {
        return None;
    }
    let name = Name::new(target).ok()?;
    let labels: Vec<&[u8]> = name.get_labels().iter().map(|l| l.as_ref()).collect();
    let Some(relative) = strip_suffix(&labels, &zone.domain) else {
        return Some(target.clone());
    };
    // One level: a CNAME found at the target is answered, not followed.
    match lookup(zone, relative, qtype) {
        Some(found) => {
            let chained = found
                .answers
                .iter()
                .map(|data| owned_record(target, data, &zone.domain))
                .collect::<Option<Vec<_>>>();
            parts.chained = chained.unwrap_or_default();
            parts.additional = found.additional;
            parts.soa = found.soa;
        }
        None => {
            parts.rcode = RCODE::NameError;
            parts.soa = true;
        }
    }
    None
}

/// A SERVFAIL reply to `query` (its question echoed), for when no upstream answered a
/// forwarded query; `None` if `query` is not a readable query.
pub fn server_failure(query: &[u8]) -> Option<Vec<u8>> {
    let Check::Question { end } = check_header(query) else {
        return None;
    };
    let head = patch_question(query, end, true);
    let packet = Packet::parse(&head).ok()?;
    // The reply has an OPT record if the query had a readable one.
    let whole = patch_question(query, end, false);
    let opt = Packet::parse(&whole)
        .ok()
        .and_then(|whole| whole.opt().map(|opt| opt.version));
    let context = Context {
        id: packet.id(),
        recursion_desired: packet.has_flags(PacketFlag::RECURSION_DESIRED),
        qname: packet.questions.first()?.qname.clone().into_owned(),
        opt,
        original_question: query[12..end].to_vec(),
        limit: MIN_UDP_REPLY,
    };
    let parts = Parts {
        rcode: RCODE::ServerFailure,
        ..Parts::default()
    };
    render(&context, "", &parts, false)
}

fn is_opt(record: &ResourceRecord) -> bool {
    matches!(record.rdata, RData::OPT(_))
}

enum Check {
    Drop,
    Error(RCODE),
    /// One question, ending (after its type and class) at `end`.
    Question {
        end: usize,
    },
}

/// The header's verdict, before anything allocates: only a standard query with one
/// question, no answer or authority records and at most two additional ones (an OPT and
/// a signature) goes on to the parser.
fn check_header(query: &[u8]) -> Check {
    if query.len() < 12 || query.len() > MAX_QUERY_LEN {
        return Check::Drop;
    }
    let count = |read: fn(&[u8]) -> simple_dns::Result<u16>| read(query).unwrap_or(u16::MAX);
    if header_buffer::has_flags(query, PacketFlag::RESPONSE).unwrap_or(true) {
        return Check::Drop;
    }
    if header_buffer::opcode(query).ok() != Some(OPCODE::StandardQuery) {
        return Check::Error(RCODE::NotImplemented);
    }
    if count(header_buffer::questions) != 1
        || count(header_buffer::answers) != 0
        || count(header_buffer::name_servers) != 0
        || count(header_buffer::additional_records) > 2
    {
        return Check::Error(RCODE::FormatError);
    }
    match question_end(query) {
        Some(end) => Check::Question { end },
        None => Check::Error(RCODE::FormatError),
    }
}

/// Where the question (name, type, class) ends. `simple-dns` cannot tell: it refuses
/// questions of types it does not know, and berth echoes the question byte for byte. A
/// question's name is the first in the packet, so a compression pointer in it is an
/// error.
pub(super) fn question_end(packet: &[u8]) -> Option<usize> {
    let mut at = 12;
    loop {
        let length = usize::from(*packet.get(at)?);
        at += 1;
        if length == 0 {
            break;
        }
        if length > 63 {
            return None;
        }
        at += length;
        if at - 12 > 255 {
            return None;
        }
    }
    (at + 4 <= packet.len()).then_some(at + 4)
}

/// A copy of `query` whose question has type A and class IN, so that `simple-dns` parses
/// it whatever the original type; with `question_only`, cut after the question and with
/// the other counts zeroed.
pub(super) fn patch_question(query: &[u8], end: usize, question_only: bool) -> Vec<u8> {
    let mut copy = if question_only {
        query[..end].to_vec()
    } else {
        query.to_vec()
    };
    copy[end - 4..end].copy_from_slice(&[0, 1, 0, 1]);
    if question_only {
        copy[6..12].fill(0);
    }
    copy
}

/// The largest reply that may be sent.
fn reply_limit(packet: &Packet, transport: Transport) -> usize {
    match (transport, packet.opt()) {
        (Transport::Tcp, _) => usize::from(u16::MAX),
        (Transport::Udp, None) => MIN_UDP_REPLY,
        (Transport::Udp, Some(opt)) => {
            usize::from(opt.udp_packet_size).clamp(MIN_UDP_REPLY, MAX_UDP_REPLY)
        }
    }
}

/// A reply of only a header (no question): for queries whose question cannot be read.
fn header_reply(query: &[u8], rcode: RCODE) -> Outcome {
    let (Ok(id), Ok(opcode)) = (header_buffer::id(query), header_buffer::opcode(query)) else {
        return Outcome::Drop;
    };
    let mut reply = Packet::new_reply(id);
    *reply.opcode_mut() = opcode;
    *reply.rcode_mut() = rcode;
    if header_buffer::has_flags(query, PacketFlag::RECURSION_DESIRED).unwrap_or(false) {
        reply.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    match reply.build_bytes_vec() {
        Ok(bytes) => Outcome::Reply(bytes),
        Err(_) => Outcome::Drop,
    }
}

/// Whose a question is.
#[derive(Debug, PartialEq, Eq)]
enum Route<'p> {
    Forward,
    /// Under the cluster domain: the labels before it, lowercased comparisons pending.
    Zone(Vec<&'p [u8]>),
    /// A PTR question for an address the zone knows, with its name.
    Reverse(String),
}

fn route<'p>(zone: &Zone, packet: &'p Packet, raw_type: u16) -> Route<'p> {
    let Some(question) = packet.questions.first() else {
        return Route::Forward;
    };
    let labels: Vec<&[u8]> = question
        .qname
        .get_labels()
        .iter()
        .map(|l| l.as_ref())
        .collect();
    if let Some(relative) = strip_suffix(&labels, &zone.domain) {
        return Route::Zone(relative.to_vec());
    }
    if raw_type != TYPE_PTR && raw_type != TYPE_ANY {
        return Route::Forward;
    }
    let address = strip_suffix(&labels, "in-addr.arpa").and_then(reverse_address);
    match address.and_then(|address| name_of_address(zone, address)) {
        Some(name) => Route::Reverse(name),
        None => Route::Forward,
    }
}

/// The labels of `labels` before the suffix `domain` (dot-separated), compared without
/// regard to ASCII case; `None` if `labels` does not end with it. An empty domain
/// matches nothing: the zone never claims the root.
fn strip_suffix<'l, 'p>(labels: &'l [&'p [u8]], domain: &str) -> Option<&'l [&'p [u8]]> {
    let suffix: Vec<&str> = domain.split('.').filter(|l| !l.is_empty()).collect();
    if suffix.is_empty() || labels.len() < suffix.len() {
        return None;
    }
    let (before, tail) = labels.split_at(labels.len() - suffix.len());
    let matches = tail
        .iter()
        .zip(&suffix)
        .all(|(label, want)| label.eq_ignore_ascii_case(want.as_bytes()));
    matches.then_some(before)
}

/// `d.c.b.a` (the labels before `in-addr.arpa`) as the address a.b.c.d.
fn reverse_address(labels: &[&[u8]]) -> Option<Ipv4Addr> {
    let [d, c, b, a] = labels else {
        return None;
    };
    let octet = |label: &[u8]| std::str::from_utf8(label).ok()?.parse::<u8>().ok();
    Some(Ipv4Addr::new(octet(a)?, octet(b)?, octet(c)?, octet(d)?))
}

/// The name a ClusterIP or headless endpoint address has, for its PTR record.
fn name_of_address(zone: &Zone, address: Ipv4Addr) -> Option<String> {
    zone.services.iter().find_map(|service| {
        let base = service_name(service, &zone.domain);
        match &service.kind {
            ServiceKind::ClusterIp(ip) if *ip == address => Some(base),
            ServiceKind::Headless(endpoints) => endpoints
                .iter()
                .find(|endpoint| endpoint.ip == address)
                .map(|endpoint| format!("{}.{base}", endpoint_name(endpoint))),
            _ => None,
        }
    })
}

fn service_name(service: &ServiceEntry, domain: &str) -> String {
    format!(
        "{}.{}.svc.{}",
        service.name,
        service.namespace,
        domain.trim_matches('.')
    )
}

/// An endpoint's label under its Service: its hostname, or its dashed address.
fn endpoint_name(endpoint: &HeadlessEndpoint) -> String {
    match &endpoint.hostname {
        Some(hostname) => hostname.clone(),
        None => endpoint.ip.to_string().replace('.', "-"),
    }
}

fn wanted(qtype: u16, record_type: u16) -> bool {
    qtype == record_type || qtype == TYPE_ANY
}

fn is(label: &[u8], word: &str) -> bool {
    label.eq_ignore_ascii_case(word.as_bytes())
}

/// The records at `relative` (the labels before the cluster domain) of type `qtype`;
/// `None` if the name does not exist (NXDOMAIN). A name that exists without records of
/// that type gets the SOA in authority (NODATA).
fn lookup(zone: &Zone, relative: &[&[u8]], qtype: u16) -> Option<Parts> {
    let mut parts = match relative {
        [] => Parts {
            answers: wanted(qtype, TYPE_SOA)
                .then_some(Data::Soa)
                .into_iter()
                .collect(),
            ..Parts::default()
        },
        [version] if is(version, "dns-version") => Parts {
            answers: wanted(qtype, TYPE_TXT)
                .then_some(Data::Txt(SCHEMA_VERSION))
                .into_iter()
                .collect(),
            ..Parts::default()
        },
        // Empty non-terminals: they exist, with nothing of their own.
        [top] if is(top, "svc") || is(top, "pod") => Parts::default(),
        [_namespace, pod] if is(pod, "pod") => Parts::default(),
        [namespace, svc] if is(svc, "svc") => {
            zone.services.iter().find(|s| is(namespace, &s.namespace))?;
            Parts::default()
        }
        [address, _namespace, pod] if is(pod, "pod") => pod_records(zone, address, qtype)?,
        [name, namespace, svc] if is(svc, "svc") => {
            service_records(zone, find_service(zone, name, namespace)?, qtype)?
        }
        [label, name, namespace, svc] if is(svc, "svc") => {
            below_service(find_service(zone, name, namespace)?, label, qtype)?
        }
        [port, protocol, name, namespace, svc] if is(svc, "svc") => {
            let service = find_service(zone, name, namespace)?;
            port_records(zone, service, port, protocol, qtype)?
        }
        _ => return None,
    };
    if parts.answers.is_empty() {
        parts.soa = true;
    }
    Some(parts)
}

fn find_service<'z>(zone: &'z Zone, name: &[u8], namespace: &[u8]) -> Option<&'z ServiceEntry> {
    zone.services
        .iter()
        .find(|s| is(name, &s.name) && is(namespace, &s.namespace))
}

/// `<a-b-c-d>.<ns>.pod`: the address, if it is a known pod's.
fn pod_records(zone: &Zone, label: &[u8], qtype: u16) -> Option<Parts> {
    let text = std::str::from_utf8(label).ok()?;
    let mut octets = [0u8; 4];
    let mut pieces = text.split('-');
    for octet in &mut octets {
        *octet = pieces.next()?.parse().ok()?;
    }
    if pieces.next().is_some() {
        return None;
    }
    let address = Ipv4Addr::from(octets);
    zone.pods.contains(&address).then(|| Parts {
        answers: wanted(qtype, TYPE_A)
            .then_some(Data::A(address))
            .into_iter()
            .collect(),
        ..Parts::default()
    })
}

/// `<svc>.<ns>.svc`: the ClusterIP, the ready endpoints or the CNAME, and SRV records
/// for every named port.
fn service_records(zone: &Zone, service: &ServiceEntry, qtype: u16) -> Option<Parts> {
    let mut parts = Parts::default();
    match &service.kind {
        ServiceKind::ExternalName(target) => {
            parts.answers.push(Data::Cname(target.clone()));
            return Some(parts);
        }
        ServiceKind::Headless(endpoints) if endpoints.is_empty() => return None,
        ServiceKind::Headless(endpoints) if wanted(qtype, TYPE_A) => {
            parts
                .answers
                .extend(endpoints.iter().map(|endpoint| Data::A(endpoint.ip)));
        }
        ServiceKind::ClusterIp(ip) if wanted(qtype, TYPE_A) => parts.answers.push(Data::A(*ip)),
        _ => {}
    }
    if wanted(qtype, TYPE_SRV) {
        let ports: Vec<&NamedPort> = service.ports.iter().collect();
        add_srv(&mut parts, zone, service, &ports);
    }
    Some(parts)
}

/// `<label>.<svc>.<ns>.svc`: a headless endpoint by hostname (or dashed address), or
/// `_<protocol>`, the empty non-terminal above a port's SRV name.
fn below_service(service: &ServiceEntry, label: &[u8], qtype: u16) -> Option<Parts> {
    let protocol_node = label
        .strip_prefix(b"_")
        .is_some_and(|protocol| service.ports.iter().any(|port| is(protocol, port.protocol)));
    if protocol_node && !matches!(service.kind, ServiceKind::ExternalName(_)) {
        return Some(Parts::default());
    }
    let ServiceKind::Headless(endpoints) = &service.kind else {
        return None;
    };
    let matching: Vec<&HeadlessEndpoint> = endpoints
        .iter()
        .filter(|endpoint| is(label, &endpoint_name(endpoint)))
        .collect();
    if matching.is_empty() {
        return None;
    }
    let mut parts = Parts::default();
    if wanted(qtype, TYPE_A) {
        parts
            .answers
            .extend(matching.iter().map(|endpoint| Data::A(endpoint.ip)));
    }
    Some(parts)
}

/// `_<port>._<protocol>.<svc>.<ns>.svc`: SRV records for a named port.
fn port_records(
    zone: &Zone,
    service: &ServiceEntry,
    port: &[u8],
    protocol: &[u8],
    qtype: u16,
) -> Option<Parts> {
    let (port, protocol) = (port.strip_prefix(b"_")?, protocol.strip_prefix(b"_")?);
    let ports: Vec<&NamedPort> = service
        .ports
        .iter()
        .filter(|p| is(port, &p.name) && is(protocol, p.protocol))
        .collect();
    match &service.kind {
        _ if ports.is_empty() => return None,
        ServiceKind::ExternalName(_) => return None,
        ServiceKind::Headless(endpoints) if endpoints.is_empty() => return None,
        _ => {}
    }
    let mut parts = Parts::default();
    if wanted(qtype, TYPE_SRV) {
        add_srv(&mut parts, zone, service, &ports);
    }
    Some(parts)
}

/// SRV records for `ports` of `service`, with the targets' addresses as additional
/// records: the Service's name for a ClusterIP, each endpoint's name for a headless one.
/// Weights share 100 between the records, as CoreDNS does.
fn add_srv(parts: &mut Parts, zone: &Zone, service: &ServiceEntry, ports: &[&NamedPort]) {
    let base = service_name(service, &zone.domain);
    let targets: Vec<(String, Ipv4Addr)> = match &service.kind {
        ServiceKind::ClusterIp(ip) => vec![(base, *ip)],
        ServiceKind::Headless(endpoints) => endpoints
            .iter()
            .map(|endpoint| (format!("{}.{base}", endpoint_name(endpoint)), endpoint.ip))
            .collect(),
        ServiceKind::ExternalName(_) => return,
    };
    let count = ports.len() * targets.len();
    if count == 0 {
        return;
    }
    let weight = u16::try_from(100 / count).unwrap_or(1).max(1);
    for port in ports {
        for (target, _) in &targets {
            parts.answers.push(Data::Srv {
                weight,
                port: port.port,
                target: target.clone(),
            });
        }
    }
    parts.additional.extend(targets);
}

#[cfg(test)]
#[path = "zone_tests.rs"]
mod tests;
