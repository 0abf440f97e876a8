//! Following an ExternalName Service's CNAME out of the cluster: the zone answers the
//! CNAME, the server asks the upstream resolvers for the target's records of the type
//! the client asked, and the client gets one reply with both, as CoreDNS answers. Stub
//! resolvers (musl's, glibc's) do not chase a CNAME left without its target's records,
//! so without this `nslookup` and `getaddrinfo` find no address for such a Service.
//!
//! A [`Chase`] holds what the client's reply needs until the upstream's arrives; the
//! forwarder sends [`Chase::upstream_query`] with its own id, timeouts and reply checks
//! ([`super::forward`]). The reply carries the upstream's answers with their TTLs capped
//! at the zone's (the CNAME may change sooner than the target's records) and the
//! upstream's NOERROR or NXDOMAIN; when no upstream gives a usable answer (silence,
//! SERVFAIL, REFUSED, a reply that cannot be read) it is the CNAME alone, NOERROR.

use std::panic::{catch_unwind, AssertUnwindSafe};

use simple_dns::rdata::{RData, OPT};
use simple_dns::{header_buffer, Name, Packet, PacketFlag, Question, CLASS, RCODE, TYPE};

use super::reply::{render, Context, Data, Parts};
use super::zone::{patch_question, question_end, MAX_UDP_REPLY, TTL};

/// A client's query whose answer waits for an upstream's records of the CNAME's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chase {
    /// The client's question, id and size limit.
    context: Context,
    /// The CNAME's target, outside the cluster domain.
    target: String,
    /// The question for the upstreams: the target, with the client's type and class.
    query: Vec<u8>,
    /// The client's reply should no upstream answer.
    cname_only: Vec<u8>,
}

impl Chase {
    /// `None` if `target` is not a name a query can carry.
    pub(super) fn new(context: Context, target: String, cname_only: Vec<u8>) -> Option<Chase> {
        let query = target_query(&context, &target)?;
        Some(Chase {
            context,
            target,
            query,
            cname_only,
        })
    }

    /// The name asked upstream.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The query to send upstream, under the client's id (the UDP forwarder replaces it
    /// with one of its own).
    pub(super) fn upstream_query(&self) -> &[u8] {
        &self.query
    }

    /// The reply with the CNAME alone, for when no upstream answers.
    pub fn cname_only(&self) -> &[u8] {
        &self.cname_only
    }

    /// The client's reply, given the upstream's reply to [`Chase::upstream_query`]: the
    /// CNAME and the upstream's answers, or the CNAME alone if that reply is not a
    /// NOERROR or NXDOMAIN answer to the question asked.
    pub fn finish(&self, upstream: &[u8]) -> Vec<u8> {
        // The upstream's bytes go through the parser: a panic there (none is known)
        // costs this reply the target's records, never the server.
        match catch_unwind(AssertUnwindSafe(|| self.combine(upstream))) {
            Ok(Some(reply)) => reply,
            _ => self.cname_only.clone(),
        }
    }

    fn combine(&self, upstream: &[u8]) -> Option<Vec<u8>> {
        let end = question_end(&self.query)?;
        let answers_ours = header_buffer::has_flags(upstream, PacketFlag::RESPONSE).ok()?
            && header_buffer::questions(upstream).ok()? == 1
            && upstream
                .get(12..end)
                .is_some_and(|question| question.eq_ignore_ascii_case(&self.query[12..end]));
        if !answers_ours {
            return None;
        }
        let rcode = header_buffer::rcode(upstream).ok()?;
        if rcode != RCODE::NoError && rcode != RCODE::NameError {
            return None;
        }
        // Type A in the parser's copy: the client's type may be one it does not know.
        let patched = patch_question(upstream, end, false);
        let packet = Packet::parse(&patched).ok()?;
        let truncated = packet.has_flags(PacketFlag::TRUNCATION);
        let chained = packet
            .answers
            .into_iter()
            .filter(|record| !matches!(record.rdata, RData::OPT(_)))
            .map(|mut record| {
                record.ttl = record.ttl.min(TTL);
                record.into_owned()
            })
            .collect();
        let parts = Parts {
            rcode,
            answers: vec![Data::Cname(self.target.clone())],
            chained,
            truncated,
            ..Parts::default()
        };
        render(&self.context, "", &parts, true)
    }
}

/// A recursive query for `target` with the type and class of the client's question, and
/// an EDNS OPT so that the upstream may answer up to [`MAX_UDP_REPLY`] bytes over UDP.
fn target_query(context: &Context, target: &str) -> Option<Vec<u8>> {
    let mut packet = Packet::new_query(context.id);
    packet.set_flags(PacketFlag::RECURSION_DESIRED);
    let question = Question::new(
        Name::new(target).ok()?,
        TYPE::A.into(),
        CLASS::IN.into(),
        false,
    );
    packet.questions.push(question);
    *packet.opt_mut() = Some(OPT {
        opt_codes: Vec::new(),
        udp_packet_size: MAX_UDP_REPLY as u16,
        version: 0,
    });
    let mut query = packet.build_bytes_vec().ok()?;
    let end = question_end(&query)?;
    let original = &context.original_question;
    let type_and_class = original.get(original.len().checked_sub(4)?..)?;
    query.get_mut(end - 4..end)?.copy_from_slice(type_and_class);
    Some(query)
}

#[cfg(test)]
#[path = "chase_tests.rs"]
mod tests;
