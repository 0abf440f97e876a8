//! [`ObjectCache`]: a coordinator's copy of the objects and statuses it keeps in etcd,
//! filled from one read and then kept current by a watch ([`super::Follower`]).
//!
//! Why: with a thousand boards, every change made the coordinator read whole kinds from
//! etcd again (the Nodes with their statuses) to recompute every board's assignments;
//! those large answers, base64 inside JSON, cost it time and memory. Reading its own copy
//! costs no round trip, and the copy is kept as the raw bytes etcd holds, not parsed.
//!
//! Reads stay consistent for a coordinator's own writes: a read waits until the copy has
//! reached the revision of the last write this coordinator made (the watch delivers it
//! within milliseconds), as Kubernetes' consistent reads from its watch cache do. Writes
//! by other coordinators appear as soon as the watch brings them. When the watch is
//! broken the copy is not used at all: reads go to etcd, as they did without it.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::etcd::{EventKind, KeyValue, WatchEvent};

/// How long a read waits for the watch to bring the coordinator's own last write before
/// it reads etcd instead.
const CATCH_UP: Duration = Duration::from_secs(1);

/// An object's key-value and its status's, as stored in etcd.
pub(super) type Stored = (KeyValue, Option<KeyValue>);

pub struct ObjectCache {
    objects_prefix: Vec<u8>,
    status_prefix: Vec<u8>,
    state: Mutex<CacheState>,
    advanced: Condvar,
}

#[derive(Default)]
struct CacheState {
    /// Filled, and followed by a watch that has not broken since.
    live: bool,
    /// Every change up to this revision is in the copy.
    revision: i64,
    /// Object keys and status keys, by their etcd key.
    objects: BTreeMap<Vec<u8>, KeyValue>,
    statuses: BTreeMap<Vec<u8>, KeyValue>,
}

impl ObjectCache {
    /// An empty copy, not live, of the keys under `prefix` + `objects/` and `status/`.
    pub(super) fn new(prefix: &str) -> ObjectCache {
        ObjectCache {
            objects_prefix: format!("{prefix}objects/").into_bytes(),
            status_prefix: format!("{prefix}status/").into_bytes(),
            state: Mutex::new(CacheState::default()),
            advanced: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the copy with what one read at `revision` returned; the copy is live
    /// from now on, until [`ObjectCache::lost`].
    pub(super) fn fill(&self, kvs: Vec<KeyValue>, revision: i64) {
        let mut state = self.lock();
        state.objects.clear();
        state.statuses.clear();
        for kv in kvs {
            self.put(&mut state, kv);
        }
        state.revision = revision;
        state.live = true;
        self.advanced.notify_all();
    }

    /// Applies a watch's batch of events; `revision` is the one up to which the watch
    /// has now sent every change.
    pub(super) fn apply(&self, events: Vec<WatchEvent>, revision: i64) {
        let mut state = self.lock();
        for event in events {
            match event.kind {
                EventKind::Put => self.put(&mut state, event.kv),
                EventKind::Delete => {
                    state.objects.remove(&event.kv.key);
                    state.statuses.remove(&event.kv.key);
                }
            }
        }
        state.revision = state.revision.max(revision);
        self.advanced.notify_all();
    }

    /// The watch that kept the copy current broke: reads go to etcd until it follows
    /// again ([`ObjectCache::resume`]).
    pub(super) fn lost(&self) {
        self.lock().live = false;
    }

    /// A watch continues the broken one from where it stopped: the copy is current
    /// again as soon as that watch has caught up.
    pub(super) fn resume(&self) {
        let mut state = self.lock();
        state.live = state.revision > 0;
    }

    fn put(&self, state: &mut CacheState, kv: KeyValue) {
        if kv.key.starts_with(&self.objects_prefix) {
            state.objects.insert(kv.key.clone(), kv);
        } else if kv.key.starts_with(&self.status_prefix) {
            state.statuses.insert(kv.key.clone(), kv);
        }
    }

    /// Every object whose etcd key starts with `objects_prefix` + `path`, with its
    /// status, once the copy holds `revision`; `None` when the copy cannot serve.
    pub(super) fn scan(&self, path: &str, revision: i64) -> Option<Vec<Stored>> {
        let state = self.caught_up(revision)?;
        let mut start = self.objects_prefix.clone();
        start.extend_from_slice(path.as_bytes());
        let found = state
            .objects
            .range(start.clone()..)
            .take_while(|(key, _)| key.starts_with(&start))
            .map(|(key, kv)| (kv.clone(), self.status_of(&state, key)))
            .collect();
        Some(found)
    }

    /// The object at `path` (`kind/namespace/name`) with its status, once the copy holds
    /// `revision`: `Some(None)` when it is not stored, `None` when the copy cannot serve.
    pub(super) fn get(&self, path: &str, revision: i64) -> Option<Option<Stored>> {
        let state = self.caught_up(revision)?;
        let mut key = self.objects_prefix.clone();
        key.extend_from_slice(path.as_bytes());
        let found = state
            .objects
            .get(&key)
            .map(|kv| (kv.clone(), self.status_of(&state, &key)));
        Some(found)
    }

    fn status_of(&self, state: &CacheState, object_key: &[u8]) -> Option<KeyValue> {
        let path = object_key.get(self.objects_prefix.len()..)?;
        let mut key = self.status_prefix.clone();
        key.extend_from_slice(path);
        state.statuses.get(&key).cloned()
    }

    /// The state, once it is live and holds `revision`; `None` if it is not live or
    /// does not catch up within [`CATCH_UP`].
    fn caught_up(&self, revision: i64) -> Option<MutexGuard<'_, CacheState>> {
        let deadline = Instant::now() + CATCH_UP;
        let mut state = self.lock();
        loop {
            if !state.live {
                return None;
            }
            if state.revision >= revision {
                return Some(state);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            state = self
                .advanced
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, revision: i64) -> KeyValue {
        KeyValue {
            key: key.as_bytes().to_vec(),
            create_revision: revision,
            mod_revision: revision,
            version: 1,
            value: value.as_bytes().to_vec(),
            lease: 0,
        }
    }

    fn event(kind: EventKind, kv: KeyValue) -> WatchEvent {
        WatchEvent {
            kind,
            kv,
            prev_kv: None,
        }
    }

    fn values(found: Option<Vec<Stored>>) -> Vec<(String, Option<String>)> {
        let text = |kv: &KeyValue| String::from_utf8_lossy(&kv.value).into_owned();
        found
            .expect("served")
            .iter()
            .map(|(object, status)| (text(object), status.as_ref().map(text)))
            .collect()
    }

    #[test]
    fn serves_nothing_until_filled_and_nothing_once_lost() {
        let cache = ObjectCache::new("/b/");
        assert!(cache.scan("", 0).is_none());
        cache.fill(vec![kv("/b/objects/Pod/ns/a", "a", 5)], 5);
        assert_eq!(values(cache.scan("", 5)), [("a".into(), None)]);
        cache.lost();
        assert!(cache.get("Pod/ns/a", 0).is_none());
        cache.resume();
        assert!(cache.get("Pod/ns/a", 5).expect("served").is_some());
    }

    #[test]
    fn keeps_objects_with_their_statuses_and_ignores_other_keys() {
        let cache = ObjectCache::new("/b/");
        cache.fill(
            vec![
                kv("/b/objects/Pod/ns/a", "a", 2),
                kv("/b/objects/Pod/ns/b", "b", 3),
                kv("/b/objects/Node//n", "n", 4),
                kv("/b/status/Pod/ns/b", "running", 5),
                kv("/b/leases/n", "x", 6),
            ],
            6,
        );
        assert_eq!(
            values(cache.scan("Pod/", 6)),
            [("a".into(), None), ("b".into(), Some("running".into()))]
        );
        assert_eq!(values(cache.scan("", 6)).len(), 3);
        cache.apply(
            vec![
                event(EventKind::Delete, kv("/b/status/Pod/ns/b", "", 7)),
                event(EventKind::Delete, kv("/b/objects/Pod/ns/a", "", 7)),
                event(EventKind::Put, kv("/b/objects/Pod/ns/c", "c", 7)),
            ],
            7,
        );
        assert_eq!(
            values(cache.scan("Pod/ns/", 7)),
            [("b".into(), None), ("c".into(), None)]
        );
        assert_eq!(cache.get("Pod/ns/a", 7), Some(None));
    }

    #[test]
    fn a_read_waits_for_the_revision_it_needs() {
        let cache = std::sync::Arc::new(ObjectCache::new("/b/"));
        cache.fill(Vec::new(), 3);
        let feeder = std::sync::Arc::clone(&cache);
        let writer = std::thread::spawn(move || {
            feeder.apply(
                vec![event(EventKind::Put, kv("/b/objects/Pod/ns/a", "a", 9))],
                9,
            );
        });
        // Served only once the write at revision 9 is in: never an answer without it.
        let found = cache.get("Pod/ns/a", 9).expect("caught up within a second");
        assert!(found.is_some());
        writer.join().expect("writer");
    }

    #[test]
    fn a_read_that_cannot_catch_up_gives_up() {
        let cache = ObjectCache::new("/b/");
        cache.fill(Vec::new(), 3);
        let start = Instant::now();
        assert!(cache.scan("", 4).is_none());
        assert!(start.elapsed() >= CATCH_UP);
    }
}
