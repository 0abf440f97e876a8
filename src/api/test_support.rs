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

/// A store in memory with the `default` namespace, as a daemon starts one.
pub fn store_with_default_namespace() -> crate::store::Store {
    let mut store = crate::store::Store::open_in_memory().expect("store in memory");
    let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}});
    store.put_all(vec![ns], None).expect("default namespace");
    store
}

/// Applies `yaml` as one file with default admission, as `berth apply -f` would.
pub fn apply_yaml(
    store: &mut crate::store::Store,
    yaml: &str,
) -> Result<super::ApplyResult, super::Refusal> {
    let request = super::ApplyRequest {
        files: vec![super::ManifestFile {
            name: "m.yaml".into(),
            content: yaml.into(),
        }],
        namespace: None,
    };
    super::apply::apply_to_store(store, &request, None, &Default::default())
}
