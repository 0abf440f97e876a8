//! One rtnetlink conversation with the kernel: a synchronous `NETLINK_ROUTE` socket in
//! the network namespace of the thread that opened it, requests that always ask for an
//! answer, and every answer read back and checked.
//!
//! A request that changes something carries `NLM_F_ACK`, so the kernel answers success
//! as well as failure and a refusal is never missed. A dump ends with `NLMSG_DONE` (the
//! kernel sends no ack for dumps) and is retried when the kernel marks it interrupted
//! (`NLM_F_DUMP_INTR`: the table changed while it was being read). Replies to another
//! sequence number are late answers to an earlier request and are skipped.

use std::io;

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NlasIterator, NLM_F_ACK,
    NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::NetError;

/// How often a dump the kernel marked interrupted is read again before giving up.
const DUMP_ATTEMPTS: usize = 5;

/// `NLMSGERR_ATTR_MSG`: the kernel's explanation in an extended ack.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// The length of a netlink message header.
const HEADER_LEN: usize = 16;

/// An open rtnetlink socket and the sequence number of the last request.
pub(crate) struct Netlink {
    socket: Socket,
    sequence: u32,
}

/// What one request brought back.
struct Answer {
    replies: Vec<RouteNetlinkMessage>,
    interrupted: bool,
}

impl Netlink {
    /// A socket in the calling thread's network namespace.
    pub(crate) fn open() -> Result<Netlink, NetError> {
        let fail = |source| NetError::kernel("open a netlink socket", source);
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(fail)?;
        socket.bind_auto().map_err(fail)?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(fail)?;
        // The kernel's reason for a refusal in words, and errors that echo only the
        // request's header rather than all of it. Both are optional (older kernels):
        // errors are still read without them.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        Ok(Netlink {
            socket,
            sequence: 0,
        })
    }

    /// Sends a request that changes something (`flags` such as `NLM_F_CREATE`) and waits
    /// for the kernel to accept or refuse it.
    pub(crate) fn change(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
        operation: &str,
    ) -> Result<(), NetError> {
        self.exchange(message, NLM_F_REQUEST | NLM_F_ACK | flags, operation)
            .map(|_| ())
    }

    /// Asks for one object (a link by name) and returns the kernel's answers.
    pub(crate) fn get(
        &mut self,
        message: RouteNetlinkMessage,
        operation: &str,
    ) -> Result<Vec<RouteNetlinkMessage>, NetError> {
        self.exchange(message, NLM_F_REQUEST | NLM_F_ACK, operation)
            .map(|answer| answer.replies)
    }

    /// Reads a whole table (links, addresses, routes), consistently.
    pub(crate) fn dump(
        &mut self,
        message: RouteNetlinkMessage,
        operation: &str,
    ) -> Result<Vec<RouteNetlinkMessage>, NetError> {
        let mut attempt = 1;
        loop {
            let answer = self.exchange(message.clone(), NLM_F_REQUEST | NLM_F_DUMP, operation)?;
            if !answer.interrupted || attempt == DUMP_ATTEMPTS {
                return Ok(answer.replies);
            }
            attempt += 1;
        }
    }

    fn exchange(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
        operation: &str,
    ) -> Result<Answer, NetError> {
        self.sequence = self.sequence.wrapping_add(1);
        let sequence = self.sequence;
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = sequence;
        let mut request = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        request.finalize();
        let mut buffer = vec![0; request.buffer_len()];
        request.serialize(&mut buffer);
        self.socket
            .send(&buffer, 0)
            .map_err(|source| NetError::kernel(operation, source))?;

        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut answer = Answer {
            replies: Vec::new(),
            interrupted: false,
        };
        loop {
            let (datagram, _) = self
                .socket
                .recv_from_full()
                .map_err(|source| NetError::kernel(operation, source))?;
            for message in split(&datagram, operation)? {
                if message.header.sequence_number != sequence {
                    continue;
                }
                answer.interrupted |= message.header.flags & NLM_F_DUMP_INTR != 0;
                let reply_flags = message.header.flags;
                match message.payload {
                    NetlinkPayload::InnerMessage(reply) => answer.replies.push(reply),
                    NetlinkPayload::Error(error) => match error.code {
                        None if dump => {}
                        None => return Ok(answer),
                        Some(code) => {
                            return Err(NetError::Kernel {
                                operation: operation.to_owned(),
                                source: io::Error::from_raw_os_error(code.get().abs()),
                                detail: extended_ack(reply_flags, &error.header),
                            })
                        }
                    },
                    NetlinkPayload::Done(done) if done.code < 0 => {
                        return Err(NetError::kernel(
                            operation,
                            io::Error::from_raw_os_error(-done.code),
                        ))
                    }
                    NetlinkPayload::Done(_) if dump => return Ok(answer),
                    NetlinkPayload::Overrun(_) => {
                        return Err(NetError::Reply {
                            operation: operation.to_owned(),
                            reason: "the kernel reported an overrun".to_owned(),
                        })
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The netlink messages of one datagram, decoded.
fn split(
    datagram: &[u8],
    operation: &str,
) -> Result<Vec<NetlinkMessage<RouteNetlinkMessage>>, NetError> {
    let unreadable = |reason: String| NetError::Reply {
        operation: operation.to_owned(),
        reason,
    };
    let mut messages = Vec::new();
    let mut offset = 0;
    while offset < datagram.len() {
        let bytes = &datagram[offset..];
        let length = NetlinkBuffer::new_checked(bytes)
            .map_err(|e| unreadable(e.to_string()))?
            .length() as usize;
        if length < HEADER_LEN || length > bytes.len() {
            return Err(unreadable(format!(
                "a message of {length} bytes in {} bytes",
                bytes.len()
            )));
        }
        let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes[..length])
            .map_err(|e| unreadable(e.to_string()))?;
        messages.push(message);
        // Messages start on 4-byte boundaries.
        offset += (length + 3) & !3;
    }
    Ok(messages)
}

/// The kernel's explanation in an error reply (`NLMSGERR_ATTR_MSG`), if it sent one.
/// `echoed` is the request's header (or the whole request when not capped), followed by
/// the extended ack attributes when `NLM_F_ACK_TLVS` is set.
fn extended_ack(flags: u16, echoed: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let request_len = if flags & NLM_F_CAPPED != 0 {
        HEADER_LEN
    } else {
        let length = echoed.get(..4)?;
        u32::from_ne_bytes(length.try_into().ok()?) as usize
    };
    let attributes = echoed.get((request_len + 3) & !3..)?;
    NlasIterator::new(attributes)
        .filter_map(Result::ok)
        .find(|nla| nla.kind() == NLMSGERR_ATTR_MSG)
        .map(|nla| {
            let text = nla.value();
            let end = text.iter().position(|b| *b == 0).unwrap_or(text.len());
            String::from_utf8_lossy(&text[..end]).into_owned()
        })
        .filter(|text| !text.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kernels_explanation_from_an_extended_ack() {
        // A capped echo (16 header bytes) then NLMSGERR_ATTR_MSG "Nexthop has invalid
        // gateway" and an offset attribute that is not a message.
        let mut echoed = vec![0u8; HEADER_LEN];
        let text = b"Nexthop has invalid gateway\0";
        let len = (4 + text.len()) as u16;
        echoed.extend_from_slice(&len.to_ne_bytes());
        echoed.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        echoed.extend_from_slice(text);
        while echoed.len() % 4 != 0 {
            echoed.push(0);
        }
        echoed.extend_from_slice(&8u16.to_ne_bytes());
        echoed.extend_from_slice(&2u16.to_ne_bytes());
        echoed.extend_from_slice(&40u32.to_ne_bytes());
        assert_eq!(
            extended_ack(NLM_F_CAPPED | NLM_F_ACK_TLVS, &echoed).as_deref(),
            Some("Nexthop has invalid gateway")
        );
        assert_eq!(extended_ack(NLM_F_CAPPED, &echoed), None, "no TLVs flagged");
        assert_eq!(extended_ack(NLM_F_ACK_TLVS, &[1, 2]), None, "truncated");
    }

    #[test]
    fn refuses_a_datagram_with_a_lying_length() {
        let mut datagram = vec![0u8; 20];
        datagram[..4].copy_from_slice(&64u32.to_ne_bytes());
        assert!(matches!(
            split(&datagram, "test"),
            Err(NetError::Reply { .. })
        ));
    }
}
