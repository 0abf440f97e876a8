//! Helpers for unit tests of the servers' routing, shared by `api`, the agent and the
//! coordinator.

use serde_json::Value;

use super::http::Request;

/// A request as the HTTP server hands it over: `target` is a path with an optional
/// query whose values need no decoding; no headers, and a JSON body if given.
pub fn request(method: &str, target: &str, body: Option<&Value>) -> Request {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (name.to_owned(), value.to_owned())
        })
        .collect();
    Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query,
        headers: Vec::new(),
        body: body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
        keep_alive: false,
    }
}
