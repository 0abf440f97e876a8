//! The UDP server's memory of its recent answers from the zone, so that a name asked
//! again (pods ask the same few names over and over) is answered by copying bytes:
//! no parsing, no lookup, no allocation.
//!
//! An answer depends only on the zone and on the query's bytes after its id (the
//! question is echoed byte for byte, flags and EDNS included), so the key is those bytes
//! exactly and a hit needs only the id written in. The cache belongs to one zone: it is
//! emptied when the zone is replaced. It is bounded, and emptied whole when full; a flood
//! of distinct names costs only the answers' usual path.

use std::collections::HashMap;
use std::sync::Arc;

use super::zone::Zone;

/// The most answers kept: a board's pods ask for a few dozen names; 256 small replies
/// are about 50 KiB.
pub const CAPACITY: usize = 256;

/// Recent UDP replies from one zone, keyed by the query without its id.
#[derive(Debug, Default)]
pub struct ReplyCache {
    zone: Option<Arc<Zone>>,
    replies: HashMap<Box<[u8]>, Box<[u8]>>,
}

impl ReplyCache {
    /// The reply to `query` if it was answered from `zone` before, with `query`'s id,
    /// written into `out`.
    pub fn answer<'o>(
        &mut self,
        zone: &Arc<Zone>,
        query: &[u8],
        out: &'o mut Vec<u8>,
    ) -> Option<&'o [u8]> {
        self.follow(zone);
        let reply = self.replies.get(query.get(2..)?)?;
        out.clear();
        out.extend_from_slice(reply);
        out[..2].copy_from_slice(&query[..2]);
        Some(out)
    }

    /// Remembers `reply`, the zone's answer to `query`, if it is a plain answer (NOERROR
    /// or NXDOMAIN): errors are for broken or odd queries not worth keeping.
    pub fn remember(&mut self, zone: &Arc<Zone>, query: &[u8], reply: &[u8]) {
        const NO_ERROR: u8 = 0;
        const NAME_ERROR: u8 = 3;
        self.follow(zone);
        let (Some(key), Some(flags)) = (query.get(2..), reply.get(3)) else {
            return;
        };
        if reply.len() < 12 || !matches!(flags & 0x0f, NO_ERROR | NAME_ERROR) {
            return;
        }
        if self.replies.len() >= CAPACITY {
            self.replies = HashMap::new();
        }
        self.replies.insert(key.into(), reply.into());
    }

    /// Forgets every reply if `zone` is not the one they came from.
    fn follow(&mut self, zone: &Arc<Zone>) {
        if !self.zone.as_ref().is_some_and(|own| Arc::ptr_eq(own, zone)) {
            self.replies = HashMap::new();
            self.zone = Some(zone.clone());
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.replies.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::dns::zone::{answer_over, Outcome, ServiceEntry, ServiceKind, Transport};
    use simple_dns::{Name, Packet, Question, CLASS, TYPE};
    use std::net::Ipv4Addr;

    fn zone(ip: [u8; 4]) -> Arc<Zone> {
        Arc::new(Zone {
            domain: "cluster.local".into(),
            services: vec![ServiceEntry {
                name: "web".into(),
                namespace: "default".into(),
                kind: ServiceKind::ClusterIp(Ipv4Addr::from(ip)),
                ports: Vec::new(),
            }],
            pods: Vec::new(),
        })
    }

    fn query(id: u16, name: &str) -> Vec<u8> {
        let mut packet = Packet::new_query(id);
        packet.questions.push(Question::new(
            Name::new_unchecked(name),
            TYPE::A.into(),
            CLASS::IN.into(),
            false,
        ));
        packet.build_bytes_vec().expect("a query")
    }

    fn zone_reply(zone: &Zone, query: &[u8]) -> Vec<u8> {
        match answer_over(zone, query, Transport::Udp) {
            Outcome::Reply(reply) => reply,
            other => panic!("not a reply: {other:?}"),
        }
    }

    #[test]
    fn a_hit_is_the_zone_answer_with_the_new_id() {
        let (zone, mut cache, mut out) = (zone([10, 43, 0, 5]), ReplyCache::default(), Vec::new());
        let first = query(7, "web.default.svc.cluster.local");
        assert!(cache.answer(&zone, &first, &mut out).is_none());
        cache.remember(&zone, &first, &zone_reply(&zone, &first));
        let again = query(4242, "web.default.svc.cluster.local");
        let hit = cache.answer(&zone, &again, &mut out).map(<[u8]>::to_vec);
        assert_eq!(hit, Some(zone_reply(&zone, &again)));
    }

    #[test]
    fn other_bytes_miss_and_a_new_zone_forgets() {
        let (zone, mut cache, mut out) = (zone([10, 43, 0, 5]), ReplyCache::default(), Vec::new());
        let lower = query(1, "web.default.svc.cluster.local");
        cache.remember(&zone, &lower, &zone_reply(&zone, &lower));
        // The question is echoed as asked: another case is another key.
        let upper = query(1, "WEB.default.svc.cluster.local");
        assert!(cache.answer(&zone, &upper, &mut out).is_none());
        let changed = super::super::zone::Zone::clone(&zone);
        assert!(cache.answer(&Arc::new(changed), &lower, &mut out).is_none());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn errors_and_short_packets_are_not_kept_and_the_cache_stays_bounded() {
        let (zone, mut cache) = (zone([10, 43, 0, 5]), ReplyCache::default());
        let mut failure = query(1, "web.default.svc.cluster.local");
        failure[3] |= 2; // SERVFAIL
        cache.remember(&zone, &query(1, "x.cluster.local"), &failure);
        cache.remember(&zone, &[0], &[0, 0, 0, 0]);
        cache.remember(&zone, &query(1, "x.cluster.local"), &[0, 0, 0]);
        assert_eq!(cache.len(), 0);
        for i in 0..CAPACITY * 2 {
            let name = format!("n{i}.default.svc.cluster.local");
            let asked = query(1, &name);
            cache.remember(&zone, &asked, &zone_reply(&zone, &asked));
            assert!(cache.len() <= CAPACITY);
        }
    }
}
