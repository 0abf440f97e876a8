//! The cluster DNS an agent serves on its bridge address: the zone of Services and pods
//! ([`zone`], pure), the UDP and TCP server that answers from it and forwards the rest
//! upstream ([`server`]), following ExternalName CNAMEs upstream ([`chase`]), and the
//! resolver files a pod gets ([`resolv`]).

mod chase;
mod forward;
mod reply;
mod reply_cache;
pub mod resolv;
pub mod server;
pub mod zone;

pub use chase::Chase;
pub use resolv::{DnsPolicy, PodDnsConfig};
pub use server::{DnsError, DnsServer, ZoneCell};
pub use zone::{HeadlessEndpoint, NamedPort, Outcome, ServiceEntry, ServiceKind, Zone};
