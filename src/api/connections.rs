//! How many connections the server holds at once, and which one gives way.
//!
//! Every accepted connection takes a [`Slot`]. A connection is *unauthenticated* until a
//! request on it shows valid credentials (on the agent's unix socket, where the socket's
//! permissions are the check, it is authenticated from the start). Until then it costs
//! the server memory (a TLS session, a head buffer) on behalf of someone unknown, so
//! those are capped more tightly than connections overall.
//!
//! At a cap, the *oldest* unauthenticated connection is closed to make room for the new
//! one. Refusing the newcomer instead would let a few dozen connections that never finish
//! their handshake lock the admin and every reconnecting agent out for as long as the
//! attacker likes; a client that authenticates in the milliseconds a handshake and a head
//! take is evicted only by a flood that fast. When every slot is held by authenticated
//! connections, the newcomer is closed at once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The connections of one listener.
pub(crate) struct Connections {
    max_total: usize,
    max_unauthenticated: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    total: usize,
    next_id: u64,
    /// Unauthenticated connections, oldest first (ids only grow). Dropping a sender is
    /// what evicts its connection: its [`Eviction`] resolves.
    unauthenticated: BTreeMap<u64, smol::channel::Sender<()>>,
}

/// A connection's place among the server's connections; dropping it frees the place.
pub(crate) struct Slot {
    connections: Arc<Connections>,
    id: u64,
    /// Once authenticated: the eviction sender, taken out of the queue and kept so that
    /// the connection is never evicted.
    kept: Option<smol::channel::Sender<()>>,
}

/// Resolves when the connection is evicted; never, once it is authenticated.
pub(crate) struct Eviction(smol::channel::Receiver<()>);

impl Eviction {
    pub async fn evicted(&self) {
        // Nothing is ever sent: the only way recv returns is the sender being dropped.
        let _ = self.0.recv().await;
    }
}

impl Connections {
    pub fn new(max_total: usize, max_unauthenticated: usize) -> Arc<Connections> {
        Arc::new(Connections {
            // A cap of zero would refuse everything; one is the least that serves.
            max_total: max_total.max(1),
            max_unauthenticated: max_unauthenticated.max(1),
            state: Mutex::new(State::default()),
        })
    }

    /// Takes a slot for a new connection, evicting the oldest unauthenticated one if a
    /// cap is reached; `None` when every slot is held by authenticated connections.
    pub fn admit(self: &Arc<Self>, authenticated: bool) -> Option<(Slot, Eviction)> {
        let mut state = self.lock();
        let unauthenticated_full =
            !authenticated && state.unauthenticated.len() >= self.max_unauthenticated;
        if unauthenticated_full || state.total >= self.max_total {
            // Dropping the sender evicts; the evicted connection's slot no longer counts.
            state.unauthenticated.pop_first()?;
            state.total -= 1;
        }
        let id = state.next_id;
        state.next_id += 1;
        state.total += 1;
        let (sender, receiver) = smol::channel::bounded(1);
        let kept = if authenticated {
            Some(sender)
        } else {
            state.unauthenticated.insert(id, sender);
            None
        };
        let slot = Slot {
            connections: Arc::clone(self),
            id,
            kept,
        };
        Some((slot, Eviction(receiver)))
    }

    /// Connections holding a slot: (all, unauthenticated).
    pub fn counts(&self) -> (usize, usize) {
        let state = self.lock();
        (state.total, state.unauthenticated.len())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a count and a map, updated in single steps: still consistent
        // after a panic elsewhere.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Slot {
    /// The connection showed valid credentials: it is no longer evicted for others.
    /// Returns `false` when it was evicted already: its request must not be served,
    /// since the connection is about to close and the client would retry a request
    /// that had been carried out (a join, for one, would then find its node taken).
    #[must_use]
    pub fn authenticated(&mut self) -> bool {
        if self.kept.is_none() {
            self.kept = self.connections.lock().unauthenticated.remove(&self.id);
        }
        self.kept.is_some()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.connections.lock();
        // An evicted connection was uncounted when it was evicted.
        let counted = self.kept.is_some() || state.unauthenticated.remove(&self.id).is_some();
        if counted {
            state.total -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_evicted(eviction: &Eviction) -> bool {
        smol::block_on(smol::future::or(
            async {
                eviction.evicted().await;
                true
            },
            async { false },
        ))
    }

    #[test]
    fn the_oldest_unauthenticated_connection_makes_room() {
        let connections = Connections::new(4, 2);
        let (mut a, a_evicted) = connections.admit(false).unwrap();
        let (mut b, b_evicted) = connections.admit(false).unwrap();
        assert!(b.authenticated());
        let (_c, c_evicted) = connections.admit(false).unwrap();
        assert_eq!(connections.counts(), (3, 2));
        // The unauthenticated cap is reached: a goes, b (authenticated) and c stay.
        let (_d, d_evicted) = connections.admit(false).unwrap();
        assert!(is_evicted(&a_evicted));
        // Its credentials arriving now are too late: its request must not be served.
        assert!(!a.authenticated());
        assert!(!is_evicted(&b_evicted) && !is_evicted(&c_evicted));
        assert_eq!(connections.counts(), (3, 2));
        // Authenticated newcomers fill the total, then c and d go for the next ones.
        let (_e, _) = connections.admit(true).unwrap();
        let (_f, _) = connections.admit(true).unwrap();
        assert!(is_evicted(&c_evicted) && !is_evicted(&d_evicted));
        assert_eq!(connections.counts(), (4, 1));
        let (_g, _) = connections.admit(true).unwrap();
        assert!(is_evicted(&d_evicted) && !is_evicted(&b_evicted));
        // All four slots authenticated: the next one is refused.
        assert!(connections.admit(false).is_none());
        assert!(connections.admit(true).is_none());
        assert_eq!(connections.counts(), (4, 0));
    }

    #[test]
    fn dropping_a_slot_frees_it_once() {
        let connections = Connections::new(2, 2);
        let (a, _) = connections.admit(false).unwrap();
        let (b, _) = connections.admit(true).unwrap();
        assert!(connections.admit(true).is_some_and(|(slot, _)| {
            // Made room by evicting a; dropping this one frees its own place.
            drop(slot);
            true
        }));
        // a was evicted: dropping it now must not free anyone else's place.
        drop(a);
        assert_eq!(connections.counts(), (1, 0));
        drop(b);
        assert_eq!(connections.counts(), (0, 0));
    }
}
