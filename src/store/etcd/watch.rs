//! [`Watch`]: the streaming answer of `POST /v3/watch` as a blocking iterator.
//!
//! The gateway sends one JSON message per line (`{"result":{...}}`) for as long as the
//! watch lives. Each line is read up to the configured size cap before it is parsed.
//! A watch runs on an HTTP agent of its own, so [`WatchCloser::close`] can shut its
//! socket from another thread and wake a reader blocked on it.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::error::excerpt;
use super::transport::Stream;
use super::types::{ResponseHeader, WatchEvent, WatchRequest};
use super::wire::{GatewayError, StreamLine, WatchMessage};
use super::EtcdError;

/// One answer of a watch: a batch of events, or none for a progress notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchResponse {
    pub header: ResponseHeader,
    pub events: Vec<WatchEvent>,
}

/// Ends a [`Watch`] from any thread: its reader then gets [`EtcdError::WatchClosed`].
#[derive(Clone)]
pub struct WatchCloser {
    agent: ureq::Agent,
    closed: Arc<AtomicBool>,
}

impl WatchCloser {
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.agent.clone().shutdown();
    }
}

/// A running watch. Iterating yields its events in revision order; an error ends it
/// (the iterator then returns `None`). To carry on after an error, start a new watch at
/// [`Watch::next_revision`].
pub struct Watch {
    reader: BufReader<ureq::BodyReader<'static>>,
    closer: WatchCloser,
    endpoint: String,
    max_message: usize,
    next_revision: i64,
    /// Events of the last batch not yet returned by the iterator.
    pending: VecDeque<WatchEvent>,
    pending_header: ResponseHeader,
    finished: bool,
}

impl Watch {
    /// Wraps an opened stream and waits for etcd to confirm the watch.
    pub(super) fn start(
        stream: Stream,
        request: &WatchRequest,
        max_message: usize,
    ) -> Result<Watch, EtcdError> {
        let body = stream.body.into_with_config().limit(u64::MAX).reader();
        let mut watch = Watch {
            reader: BufReader::with_capacity(8 * 1024, body),
            closer: WatchCloser {
                agent: stream.agent,
                closed: Arc::new(AtomicBool::new(false)),
            },
            endpoint: stream.endpoint,
            max_message,
            next_revision: request.start_revision,
            pending: VecDeque::new(),
            pending_header: ResponseHeader::default(),
            finished: false,
        };
        let created = watch.read_message()?;
        if !created.created {
            return Err(watch.decode_error("the first message did not confirm the watch".into()));
        }
        watch.check_canceled(&created)?;
        if request.start_revision == 0 {
            // "From now": the first change it can report comes after this revision.
            watch.next_revision = created.header.revision + 1;
        }
        Ok(watch)
    }

    /// A handle that ends this watch from another thread.
    pub fn closer(&self) -> WatchCloser {
        self.closer.clone()
    }

    /// The member this watch streams from.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Where a new watch has to start to continue this one with no change missed or
    /// repeated: after the last revision whose events were all returned (or that a
    /// progress notification vouched for).
    pub fn next_revision(&self) -> i64 {
        self.next_revision
    }

    /// The next answer: a batch of events, or an empty one for a progress notification.
    pub fn next_response(&mut self) -> Result<WatchResponse, EtcdError> {
        if !self.pending.is_empty() {
            let events: Vec<WatchEvent> = self.pending.drain(..).collect();
            self.advance_past(&events);
            return Ok(WatchResponse {
                header: self.pending_header.clone(),
                events,
            });
        }
        let response = self.read_batch()?;
        self.advance_past(&response.events);
        Ok(response)
    }

    fn advance_past(&mut self, events: &[WatchEvent]) {
        if let Some(last) = events.last() {
            self.next_revision = self.next_revision.max(last.kv.mod_revision + 1);
        }
    }

    /// Reads messages until one carries events or progress; ends the watch on error.
    fn read_batch(&mut self) -> Result<WatchResponse, EtcdError> {
        if self.finished {
            return Err(EtcdError::WatchEnded {
                endpoint: self.endpoint.clone(),
                reason: "the watch already ended".into(),
            });
        }
        let result = self.read_batch_inner();
        if result.is_err() {
            self.finished = true;
            self.closer.agent.clone().shutdown();
        }
        result
    }

    fn read_batch_inner(&mut self) -> Result<WatchResponse, EtcdError> {
        loop {
            let message = self.read_message()?;
            self.check_canceled(&message)?;
            if message.created {
                continue;
            }
            if message.events.is_empty() {
                // A progress notification: every change up to its revision was sent.
                self.next_revision = self.next_revision.max(message.header.revision + 1);
            }
            return Ok(WatchResponse {
                header: message.header,
                events: message.events,
            });
        }
    }

    fn check_canceled(&self, message: &WatchMessage) -> Result<(), EtcdError> {
        if !message.canceled {
            return Ok(());
        }
        if message.compact_revision > 0 {
            return Err(EtcdError::Compacted {
                start_revision: self.next_revision,
                compact_revision: message.compact_revision,
            });
        }
        let reason = match message.cancel_reason.as_str() {
            "" => "no reason given".to_string(),
            reason => excerpt(reason.as_bytes()),
        };
        Err(EtcdError::WatchCanceled { reason })
    }

    /// The next message of the stream, skipping blank lines.
    fn read_message(&mut self) -> Result<WatchMessage, EtcdError> {
        loop {
            let line = self.read_line()?;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let parsed: StreamLine<WatchMessage> =
                serde_json::from_slice(&line).map_err(|e| self.decode_error(e.to_string()))?;
            if let Some(error) = parsed.error {
                let refusal = GatewayError::from_value(&error);
                return Err(EtcdError::Server {
                    endpoint: self.endpoint.clone(),
                    operation: "watch",
                    status: 200,
                    code: refusal.code,
                    message: refusal.message,
                });
            }
            return parsed
                .result
                .ok_or_else(|| self.decode_error("a line with neither result nor error".into()));
        }
    }

    /// One line, at most `max_message` bytes before its newline; the buffer grows only
    /// with bytes that actually arrived.
    fn read_line(&mut self) -> Result<Vec<u8>, EtcdError> {
        let mut line = Vec::new();
        let limit = self.max_message as u64 + 1;
        let read = (&mut self.reader).take(limit).read_until(b'\n', &mut line);
        match read {
            Ok(_) if line.last() == Some(&b'\n') => Ok(line),
            Ok(_) if line.len() > self.max_message => Err(EtcdError::TooLarge {
                endpoint: self.endpoint.clone(),
                operation: "watch",
                limit: self.max_message,
            }),
            Ok(0) => Err(self.ended("the stream ended")),
            Ok(_) => Err(self.ended("the stream ended in the middle of a message")),
            Err(e) => Err(self.ended(&describe_io(&e))),
        }
    }

    /// The error for a stream that stopped: [`EtcdError::WatchClosed`] if we closed it.
    fn ended(&self, reason: &str) -> EtcdError {
        if self.closer.closed.load(Ordering::SeqCst) {
            return EtcdError::WatchClosed;
        }
        EtcdError::WatchEnded {
            endpoint: self.endpoint.clone(),
            reason: reason.to_string(),
        }
    }

    fn decode_error(&self, reason: String) -> EtcdError {
        EtcdError::Decode {
            endpoint: self.endpoint.clone(),
            operation: "watch",
            reason,
        }
    }
}

fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            format!("nothing received within the watch idle timeout ({e})")
        }
        _ => e.to_string(),
    }
}

impl Iterator for Watch {
    type Item = Result<WatchEvent, EtcdError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                // A revision is done once its last event is out (a transaction's
                // events share one revision).
                let revision = event.kv.mod_revision;
                if self
                    .pending
                    .front()
                    .is_none_or(|next| next.kv.mod_revision != revision)
                {
                    self.next_revision = self.next_revision.max(revision + 1);
                }
                return Some(Ok(event));
            }
            if self.finished {
                return None;
            }
            match self.read_batch() {
                Ok(batch) => {
                    self.pending_header = batch.header;
                    self.pending = batch.events.into();
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // Closes the connection now rather than when the member notices.
        self.closer.agent.clone().shutdown();
    }
}
