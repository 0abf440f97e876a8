//! Building a reply from its parts: the question echoed as it came, the records, and
//! the size limit of the transport (additional records dropped first, then TC).

use std::net::Ipv4Addr;

use simple_dns::rdata::{RData, A, CNAME, OPT, PTR, SOA, SRV, TXT};
use simple_dns::{Name, Packet, PacketFlag, Question, ResourceRecord, CLASS, RCODE, TYPE};

use super::zone::{MAX_UDP_REPLY, TTL};

/// Record data of an answer; its owner is the question's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Data {
    A(Ipv4Addr),
    Cname(String),
    Ptr(String),
    Srv {
        weight: u16,
        port: u16,
        target: String,
    },
    Soa,
    Txt(&'static str),
}

/// What a reply carries besides the question.
#[derive(Debug)]
pub(super) struct Parts {
    pub(super) rcode: RCODE,
    pub(super) answers: Vec<Data>,
    /// Answers after `answers`, owned by the CNAME's target: its records from the zone
    /// or from an upstream.
    pub(super) chained: Vec<ResourceRecord<'static>>,
    /// A records of SRV targets.
    pub(super) additional: Vec<(String, Ipv4Addr)>,
    /// The zone's SOA in the authority section (negative answers).
    pub(super) soa: bool,
    /// Sent with TC and without records whatever its size: the upstream's reply the
    /// answers came from was cut.
    pub(super) truncated: bool,
}

impl Default for Parts {
    fn default() -> Parts {
        Parts {
            rcode: RCODE::NoError,
            answers: Vec::new(),
            chained: Vec::new(),
            additional: Vec::new(),
            soa: false,
            truncated: false,
        }
    }
}

/// What a reply is built from, besides its records. Owned, so that a chased answer can
/// be finished when the upstream's reply arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Context {
    pub(super) id: u16,
    pub(super) recursion_desired: bool,
    /// The question's name as parsed; its type and class come from `original_question`.
    pub(super) qname: Name<'static>,
    /// The EDNS version of the query's OPT record, if it had one: the reply then has one.
    pub(super) opt: Option<u8>,
    /// The question's bytes as they came, echoed exactly (the parser saw a patched copy).
    pub(super) original_question: Vec<u8>,
    pub(super) limit: usize,
}

/// The zone's SOA record data, with its names' texts kept alive for the borrow.
pub(super) struct SoaNames {
    mname: String,
    rname: String,
}

impl SoaNames {
    pub(super) fn new(domain: &str) -> SoaNames {
        SoaNames {
            mname: format!("ns.dns.{domain}"),
            rname: format!("hostmaster.{domain}"),
        }
    }

    fn rdata(&self) -> Option<RData<'_>> {
        Some(RData::SOA(SOA {
            mname: Name::new(&self.mname).ok()?,
            rname: Name::new(&self.rname).ok()?,
            serial: 1,
            refresh: 7200,
            retry: 1800,
            expire: 86400,
            minimum: TTL,
        }))
    }
}

pub(super) fn rdata<'d>(data: &'d Data, soa: &'d SoaNames) -> Option<RData<'d>> {
    Some(match data {
        Data::A(ip) => RData::A(A {
            address: u32::from(*ip),
        }),
        Data::Cname(target) => RData::CNAME(CNAME(Name::new(target).ok()?)),
        Data::Ptr(target) => RData::PTR(PTR(Name::new(target).ok()?)),
        Data::Srv {
            weight,
            port,
            target,
        } => RData::SRV(SRV {
            priority: 0,
            weight: *weight,
            port: *port,
            target: Name::new(target).ok()?,
        }),
        Data::Soa => soa.rdata()?,
        Data::Txt(text) => RData::TXT(TXT::new().with_string(text).ok()?),
    })
}

/// `data` as a record of `owner` (not the question's name), owned.
pub(super) fn owned_record(
    owner: &str,
    data: &Data,
    domain: &str,
) -> Option<ResourceRecord<'static>> {
    let soa = SoaNames::new(domain.trim_matches('.'));
    let record = ResourceRecord::new(Name::new(owner).ok()?, CLASS::IN, TTL, rdata(data, &soa)?);
    Some(record.into_owned())
}

/// The reply's bytes, within `context.limit`: without additional records if they do
/// not fit, without any records and with TC set if the answers do not.
pub(super) fn render(
    context: &Context,
    domain: &str,
    parts: &Parts,
    authoritative: bool,
) -> Option<Vec<u8>> {
    let domain = domain.trim_matches('.');
    let soa = SoaNames::new(domain);
    let mut packet = Packet::new_reply(context.id);
    packet.set_flags(PacketFlag::RECURSION_AVAILABLE);
    if authoritative {
        packet.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
    }
    if context.recursion_desired {
        packet.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    *packet.rcode_mut() = parts.rcode;
    // Type A and class IN in the copy written, the original's put back by `echo_question`.
    let question = Question::new(
        context.qname.clone(),
        TYPE::A.into(),
        CLASS::IN.into(),
        false,
    );
    packet.questions.push(question);
    if context.opt.is_some() {
        *packet.opt_mut() = Some(OPT {
            opt_codes: Vec::new(),
            udp_packet_size: MAX_UDP_REPLY as u16,
            version: 0,
        });
    }
    for data in &parts.answers {
        let owner = context.qname.clone();
        let record = ResourceRecord::new(owner, CLASS::IN, TTL, rdata(data, &soa)?);
        packet.answers.push(record);
    }
    packet.answers.extend(parts.chained.iter().cloned());
    if parts.soa {
        let owner = Name::new(domain).ok()?;
        let record = ResourceRecord::new(owner, CLASS::IN, TTL, soa.rdata()?);
        packet.name_servers.push(record);
    }
    for (name, ip) in &parts.additional {
        let address = RData::A(A {
            address: u32::from(*ip),
        });
        let record = ResourceRecord::new(Name::new(name).ok()?, CLASS::IN, TTL, address);
        packet.additional_records.push(record);
    }
    let mut bytes = packet.build_bytes_vec_compressed().ok()?;
    if bytes.len() > context.limit {
        packet.additional_records.clear();
        bytes = packet.build_bytes_vec_compressed().ok()?;
    }
    if bytes.len() > context.limit || parts.truncated {
        packet.answers.clear();
        packet.name_servers.clear();
        packet.set_flags(PacketFlag::TRUNCATION);
        bytes = packet.build_bytes_vec_compressed().ok()?;
    }
    echo_question(&mut bytes, &context.original_question)?;
    Some(bytes)
}

/// Puts the question's original bytes (type, class and letter case as sent) over the
/// copy `simple-dns` wrote, which is the same name at the same place: the first name of
/// a packet is never compressed.
fn echo_question(reply: &mut [u8], original: &[u8]) -> Option<()> {
    let name_length = original.len().checked_sub(4)?;
    let written = reply.get_mut(12..12 + original.len())?;
    if !written[..name_length].eq_ignore_ascii_case(&original[..name_length]) {
        return None;
    }
    written.copy_from_slice(original);
    Some(())
}
