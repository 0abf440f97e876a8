//! Kubernetes watches over any list: `GET <collection>?watch=true` answers with one JSON
//! event per line, `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":{...}}`,
//! until the client goes away, the server stops or `timeoutSeconds` has passed.
//!
//! An agent derives status on every read and never stores it, so there is no change log
//! to replay: the watch lists the collection again whenever the server says something
//! changed (a hint) or a short period passed, and sends the difference from what it sent
//! before. The first list is sent as ADDED events, as a Kubernetes watch without a
//! `resourceVersion` does; with `sendInitialEvents=true&allowWatchBookmarks=true` a
//! BOOKMARK annotated `k8s.io/initial-events-end` marks where the initial state ends, so
//! a client can print it as one table. With `allowWatchBookmarks=true` a quiet watch also
//! gets a BOOKMARK now and then, which keeps a client's read timeout from firing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use smol::future::FutureExt;

use super::http::{ByteStream, Request};

/// How often a watch lists again when nothing hinted at a change: status that depends
/// on the clock (a back-off ending) or on probes changes without a hint.
pub const POLL_PERIOD: Duration = Duration::from_secs(1);

/// A quiet watch with bookmarks allowed gets one this often.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// The annotation Kubernetes puts on the bookmark that ends the initial events.
pub const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// What a watch request asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchParams {
    /// `allowWatchBookmarks=true`.
    pub bookmarks: bool,
    /// `sendInitialEvents=true` with bookmarks: end the initial events with a bookmark.
    pub initial_events_end: bool,
    /// `timeoutSeconds=N`: end the watch after this long.
    pub timeout: Option<Duration>,
}

impl WatchParams {
    /// `None` when the request is not a watch; an error names a malformed parameter.
    pub fn from_request(request: &Request) -> Option<Result<WatchParams, String>> {
        let flag = |name: &str| matches!(request.query_param(name), Some("true" | "1"));
        if !flag("watch") {
            return None;
        }
        let timeout = match request.query_param("timeoutSeconds") {
            None | Some("") => None,
            Some(s) => match s.parse::<u64>() {
                Ok(n) => Some(Duration::from_secs(n)),
                Err(_) => return Some(Err(format!("invalid timeoutSeconds {s:?}"))),
            },
        };
        let bookmarks = flag("allowWatchBookmarks");
        Some(Ok(WatchParams {
            bookmarks,
            initial_events_end: bookmarks && flag("sendInitialEvents"),
            timeout,
        }))
    }
}

/// The type of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// Objects by `namespace/name`, as last sent.
pub type Known = BTreeMap<String, Value>;

fn key_of(object: &Value) -> String {
    let meta = |field: &str| {
        object
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    format!("{}/{}", meta("namespace"), meta("name"))
}

fn uid_of(object: &Value) -> Option<&str> {
    object.pointer("/metadata/uid").and_then(Value::as_str)
}

/// The events that turn `known` into `current`, in key order, and `known` updated. An
/// object replaced by another of the same name (another uid) is DELETED then ADDED, as
/// Kubernetes reports it.
pub fn diff(known: &mut Known, current: Vec<Value>) -> Vec<(EventType, Value)> {
    let mut now: Known = current.into_iter().map(|o| (key_of(&o), o)).collect();
    let mut events = Vec::new();
    let keys: std::collections::BTreeSet<String> =
        known.keys().chain(now.keys()).cloned().collect();
    for key in keys {
        match (known.remove(&key), now.remove(&key)) {
            (Some(old), Some(new)) if uid_of(&old) != uid_of(&new) => {
                events.push((EventType::Deleted, old));
                events.push((EventType::Added, new.clone()));
                known.insert(key, new);
            }
            (Some(old), Some(new)) => {
                if old != new {
                    events.push((EventType::Modified, new.clone()));
                }
                known.insert(key, new);
            }
            (None, Some(new)) => {
                events.push((EventType::Added, new.clone()));
                known.insert(key, new);
            }
            (Some(old), None) => events.push((EventType::Deleted, old)),
            (None, None) => {}
        }
    }
    events
}

/// One event as a line of the stream.
pub fn event_line(kind: &str, object: &Value) -> Vec<u8> {
    let mut line = json!({"type": kind, "object": object})
        .to_string()
        .into_bytes();
    line.push(b'\n');
    line
}

/// A BOOKMARK for `kind`: only a resourceVersion (the newest the watch has seen), and
/// the initial-events-end annotation when it ends the initial events.
fn bookmark(kind: &str, api_version: &str, known: &Known, initial_end: bool) -> Vec<u8> {
    let newest = known
        .values()
        .filter_map(|o| {
            o.pointer("/metadata/resourceVersion")?
                .as_str()?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    let mut metadata = json!({"resourceVersion": newest.to_string()});
    if initial_end {
        metadata["annotations"] = json!({INITIAL_EVENTS_END: "true"});
    }
    let object = json!({"kind": kind, "apiVersion": api_version, "metadata": metadata});
    event_line("BOOKMARK", &object)
}

/// What a watch needs from the server that serves it.
pub struct Source {
    /// Kind and apiVersion of the watched objects (for bookmarks).
    pub kind: &'static str,
    pub api_version: &'static str,
    /// The collection as a list would answer it; blocking (runs on smol's pool). An
    /// error ends the watch with an ERROR event carrying a `Status`.
    pub list: Box<dyn Fn() -> Result<Vec<Value>, String> + Send + Sync>,
    /// A listener that fires when something may have changed.
    pub changes: Box<dyn Fn() -> event_listener::EventListener + Send + Sync>,
}

struct State {
    source: Arc<Source>,
    params: WatchParams,
    known: Known,
    started: bool,
    /// Taken before the last list, so a change during it still wakes the next wait.
    listener: Option<event_listener::EventListener>,
    last_sent: Instant,
    deadline: Option<Instant>,
    done: bool,
}

enum Wake {
    Hint,
    Tick,
    Heartbeat,
    End,
}

/// The body of a watch response. Work happens only while the body is being sent: when
/// the client goes away the server drops the stream, and with it the watch.
pub fn stream(source: Source, params: WatchParams) -> ByteStream {
    let now = Instant::now();
    let state = State {
        source: Arc::new(source),
        deadline: params.timeout.map(|t| now + t),
        params,
        known: Known::new(),
        started: false,
        listener: None,
        last_sent: now,
        done: false,
    };
    Box::pin(smol::stream::unfold(state, |mut state| async move {
        let chunk = next_chunk(&mut state).await?;
        Some((Ok(chunk), state))
    }))
}

/// Waits for the next thing to send; `None` ends the watch.
async fn next_chunk(state: &mut State) -> Option<Vec<u8>> {
    if state.done {
        return None;
    }
    loop {
        if let Some(listener) = state.listener.take() {
            match wait(state, listener).await {
                Wake::End => return None,
                Wake::Heartbeat => {
                    state.last_sent = Instant::now();
                    let source = &state.source;
                    return Some(bookmark(
                        source.kind,
                        source.api_version,
                        &state.known,
                        false,
                    ));
                }
                // List at once: a short-lived state (a pod terminating) may be gone
                // soon. Hints during a list coalesce into one, which bounds the rate.
                Wake::Hint | Wake::Tick => {}
            }
        }
        state.listener = Some((state.source.changes)());
        let source = Arc::clone(&state.source);
        let listed = smol::unblock(move || (source.list)()).await;
        let items = match listed {
            Ok(items) => items,
            Err(message) => {
                state.done = true;
                let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Failure", "message": message, "reason": "InternalError", "code": 500});
                return Some(event_line("ERROR", &status));
            }
        };
        let mut chunk = Vec::new();
        for (kind, object) in diff(&mut state.known, items) {
            chunk.extend(event_line(kind.as_str(), &object));
        }
        if !state.started {
            state.started = true;
            if state.params.initial_events_end {
                let source = &state.source;
                chunk.extend(bookmark(
                    source.kind,
                    source.api_version,
                    &state.known,
                    true,
                ));
            }
        }
        if !chunk.is_empty() {
            state.last_sent = Instant::now();
            return Some(chunk);
        }
    }
}

async fn wait(state: &State, listener: event_listener::EventListener) -> Wake {
    let now = Instant::now();
    let hint = async {
        listener.await;
        Wake::Hint
    };
    let tick = async {
        smol::Timer::after(POLL_PERIOD).await;
        Wake::Tick
    };
    let heartbeat = async {
        if !state.params.bookmarks {
            return std::future::pending().await;
        }
        let due = state.last_sent + HEARTBEAT;
        smol::Timer::after(due.saturating_duration_since(now)).await;
        Wake::Heartbeat
    };
    let end = async {
        match state.deadline {
            Some(deadline) => {
                smol::Timer::after(deadline.saturating_duration_since(now)).await;
                Wake::End
            }
            None => std::future::pending().await,
        }
    };
    end.or(heartbeat).or(hint).or(tick).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, uid: &str, phase: &str) -> Value {
        json!({"metadata": {"namespace": "default", "name": name, "uid": uid},
               "status": {"phase": phase}})
    }

    #[test]
    fn first_list_is_all_added_then_only_changes() {
        let mut known = Known::new();
        let events = diff(
            &mut known,
            vec![pod("b", "2", "Pending"), pod("a", "1", "Pending")],
        );
        let names: Vec<(EventType, &str)> = events
            .iter()
            .map(|(t, o)| (*t, o["metadata"]["name"].as_str().unwrap_or("")))
            .collect();
        assert_eq!(names, [(EventType::Added, "a"), (EventType::Added, "b")]);
        assert!(diff(
            &mut known,
            vec![pod("a", "1", "Pending"), pod("b", "2", "Pending")]
        )
        .is_empty());
        let events = diff(&mut known, vec![pod("a", "1", "Running")]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].0, EventType::Modified);
        assert_eq!(events[0].1["status"]["phase"], "Running");
        // The deleted object is sent as it was last seen.
        assert_eq!(events[1].0, EventType::Deleted);
        assert_eq!(events[1].1["metadata"]["name"], "b");
        assert_eq!(known.len(), 1);
    }

    #[test]
    fn a_replaced_object_is_deleted_then_added() {
        let mut known = Known::new();
        diff(&mut known, vec![pod("a", "1", "Running")]);
        let events = diff(&mut known, vec![pod("a", "2", "Pending")]);
        let kinds: Vec<EventType> = events.iter().map(|(t, _)| *t).collect();
        assert_eq!(kinds, [EventType::Deleted, EventType::Added]);
        assert_eq!(events[1].1["metadata"]["uid"], "2");
    }

    #[test]
    fn lines_and_bookmarks_have_the_kubernetes_shape() {
        let line = event_line("ADDED", &pod("a", "1", "Running"));
        assert_eq!(line.last(), Some(&b'\n'));
        let event: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(event["type"], "ADDED");
        assert_eq!(event["object"]["metadata"]["name"], "a");

        let mut known = Known::new();
        let mut object = pod("a", "1", "Running");
        object["metadata"]["resourceVersion"] = json!("7");
        known.insert("default/a".into(), object);
        let mark: Value = serde_json::from_slice(&bookmark("Pod", "v1", &known, true)).unwrap();
        assert_eq!(mark["type"], "BOOKMARK");
        assert_eq!(mark["object"]["kind"], "Pod");
        assert_eq!(mark["object"]["metadata"]["resourceVersion"], "7");
        assert_eq!(
            mark["object"]["metadata"]["annotations"][INITIAL_EVENTS_END],
            "true"
        );
        let plain: Value = serde_json::from_slice(&bookmark("Pod", "v1", &known, false)).unwrap();
        assert!(plain["object"]["metadata"].get("annotations").is_none());
    }

    fn request(query: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            path: "/api/v1/pods".into(),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            headers: Vec::new(),
            body: Vec::new(),
            keep_alive: false,
        }
    }

    #[test]
    fn watch_parameters() {
        assert!(WatchParams::from_request(&request(&[])).is_none());
        assert!(WatchParams::from_request(&request(&[("watch", "false")])).is_none());
        let params = WatchParams::from_request(&request(&[
            ("watch", "1"),
            ("allowWatchBookmarks", "true"),
            ("sendInitialEvents", "true"),
            ("timeoutSeconds", "30"),
        ]));
        assert_eq!(
            params,
            Some(Ok(WatchParams {
                bookmarks: true,
                initial_events_end: true,
                timeout: Some(Duration::from_secs(30)),
            }))
        );
        // The initial-events bookmark needs bookmarks allowed, as in Kubernetes.
        let params = WatchParams::from_request(&request(&[
            ("watch", "true"),
            ("sendInitialEvents", "true"),
        ]));
        assert_eq!(params, Some(Ok(WatchParams::default())));
        let bad =
            WatchParams::from_request(&request(&[("watch", "true"), ("timeoutSeconds", "x")]));
        assert!(matches!(bad, Some(Err(message)) if message.contains("timeoutSeconds")));
    }

    #[test]
    fn the_stream_sends_the_state_then_changes_and_ends_at_its_timeout() {
        let items = Arc::new(std::sync::Mutex::new(vec![pod("a", "1", "Pending")]));
        let event = Arc::new(event_listener::Event::new());
        let (list_items, listen) = (Arc::clone(&items), Arc::clone(&event));
        let source = Source {
            kind: "Pod",
            api_version: "v1",
            list: Box::new(move || Ok(list_items.lock().map_err(|e| e.to_string())?.clone())),
            changes: Box::new(move || listen.listen()),
        };
        let params = WatchParams {
            bookmarks: true,
            initial_events_end: true,
            timeout: Some(Duration::from_secs(5)),
        };
        let mut body = stream(source, params);
        smol::block_on(async {
            use smol::stream::StreamExt;
            let first = body.next().await.unwrap().unwrap();
            let lines: Vec<Value> = first
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_slice(l).unwrap())
                .collect();
            assert_eq!(lines.len(), 2);
            assert_eq!(lines[0]["type"], "ADDED");
            assert_eq!(lines[1]["type"], "BOOKMARK");
            items.lock().unwrap()[0] = pod("a", "1", "Running");
            event.notify(usize::MAX);
            let next: Value = serde_json::from_slice(&body.next().await.unwrap().unwrap()).unwrap();
            assert_eq!(next["type"], "MODIFIED");
            assert_eq!(next["object"]["status"]["phase"], "Running");
            items.lock().unwrap().clear();
            let last: Value = serde_json::from_slice(&body.next().await.unwrap().unwrap()).unwrap();
            assert_eq!(last["type"], "DELETED");
        });
    }
}
