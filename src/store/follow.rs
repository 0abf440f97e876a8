//! [`Follower`]: keeps an etcd store's [`ObjectCache`] current for as long as the
//! coordinator runs, and tells it what changed.
//!
//! It reads every object and status at one revision, then watches the prefix from the
//! next one. A watch that breaks is started again where it stopped, so no change is
//! missed or applied twice; if etcd compacted that revision away meanwhile, the copy is
//! read again whole.

use std::sync::Arc;
use std::time::Duration;

use super::cache::ObjectCache;
use super::etcd::{EtcdClient, EtcdError, KeyRange, RangeOptions, Txn, TxnOp, TxnOpResponse};
use super::etcd::{WatchRequest, WatchResponse};
use super::StoreError;

/// How long to wait before trying etcd again after it failed.
const RETRY: Duration = Duration::from_millis(500);

/// What a batch of changes touched, for [`Follower::run`]'s callback.
pub enum Change<'a> {
    /// The copy was read again whole: anything may have changed.
    Everything,
    /// The etcd keys of one batch of the watch (any key under the prefix).
    Keys(&'a [Vec<u8>]),
}

/// Follows one etcd store (see [`super::Store::follower`]).
pub struct Follower {
    client: EtcdClient,
    prefix: String,
    cache: Arc<ObjectCache>,
}

impl Follower {
    pub(super) fn new(client: EtcdClient, prefix: String, cache: Arc<ObjectCache>) -> Follower {
        Follower {
            client,
            prefix,
            cache,
        }
    }

    /// Every key the store writes starts with this.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Follows etcd for ever, calling `on_change` after each change is in the copy, so
    /// that whoever it wakes reads the change.
    pub fn run(&self, mut on_change: impl FnMut(Change<'_>)) -> ! {
        let mut resume_at: Option<i64> = None;
        loop {
            let start = match resume_at {
                Some(next) => next,
                None => match self.load() {
                    Ok(revision) => {
                        on_change(Change::Everything);
                        revision + 1
                    }
                    Err(err) => {
                        log::warn!("cannot read the objects from etcd: {err}");
                        std::thread::sleep(RETRY);
                        continue;
                    }
                },
            };
            let request = WatchRequest {
                progress_notify: true,
                ..WatchRequest::new(KeyRange::prefix(self.prefix.as_bytes()), start)
            };
            let mut watch = match self.client.watch(&request) {
                Ok(watch) => watch,
                Err(EtcdError::Compacted { .. }) => {
                    resume_at = None;
                    continue;
                }
                Err(err) => {
                    log::warn!("watch: {err}");
                    resume_at = Some(start);
                    std::thread::sleep(RETRY);
                    continue;
                }
            };
            self.cache.resume();
            loop {
                match watch.next_response() {
                    Ok(WatchResponse { events, .. }) => {
                        let keys: Vec<Vec<u8>> = events.iter().map(|e| e.kv.key.clone()).collect();
                        self.cache.apply(events, watch.next_revision() - 1);
                        on_change(Change::Keys(&keys));
                    }
                    Err(err) => {
                        log::debug!("watch ended: {err}");
                        self.cache.lost();
                        resume_at = Some(watch.next_revision());
                        break;
                    }
                }
            }
        }
    }

    /// Reads every object and status in one transaction into the copy; returns the
    /// revision read.
    fn load(&self) -> Result<i64, StoreError> {
        self.cache.lost();
        let range = |part: &str| TxnOp::Range {
            range: KeyRange::prefix(format!("{}{part}", self.prefix).as_bytes()),
            options: RangeOptions::default(),
        };
        let answer = self.client.txn(&Txn {
            compare: Vec::new(),
            success: vec![range("objects/"), range("status/")],
            failure: Vec::new(),
        })?;
        let kvs = answer
            .responses
            .into_iter()
            .flat_map(|response| match response {
                TxnOpResponse::Range(range) => range.kvs,
                _ => Vec::new(),
            })
            .collect();
        self.cache.fill(kvs, answer.header.revision);
        Ok(answer.header.revision)
    }
}
