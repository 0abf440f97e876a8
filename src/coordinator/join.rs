//! Node identity: how a board joins, what it may say about itself, and the admin's
//! join-token routes.
//!
//! - `POST /apis/berth.dev/v1/join` (bearer `<id>.<secret>` of a join token): the token
//!   must be known, unexpired and not used up ([`super::join_tokens`]); a token bound to
//!   a node name joins only that name. A name that exists already is refused unless the
//!   token is bound to it, so no board takes over another's identity. The labels the
//!   board asks for are checked as Kubernetes' NodeRestriction admission does
//!   ([`crate::model::node_may_set_label`]).
//! - A new node is given its pod CIDR (`spec.podCIDR`, [`super::pod_cidrs`]) in the same
//!   write that stores it; a node joining again keeps its own. When none is free the join
//!   is refused with 503, which the board retries.
//! - `PUT /api/v1/nodes/{name}/status` (the node itself): only status is taken; a node
//!   that tries to set a label it may not set is refused rather than ignored.
//! - `/apis/berth.dev/v1/tokens[/{id}]` (admin): create (`POST`), list and read (`GET`),
//!   delete (`DELETE`). Lists show ids, never secrets.
//!
//! A node's credential is revoked when its Node is deleted (`super::server`), and
//! replaced when it joins again with a token bound to its name.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{json, Map, Value};

use super::join_tokens::{JoinDenied, TokenSpec};
use super::pod_cidrs::{self, PodCidrError};
use super::server::{get_node, to_json};
use super::Coordinator;
use crate::api::fleet::{JoinRequest, JoinResponse};
use crate::api::http::{Request, Response};
use crate::api::refusal::{self, internal, invalid, method_not_allowed, not_found, Refusal};
use crate::api::resources::{list_response, request_body, success_response};
use crate::api::tokens::{check_node_name, Credential};
use crate::model::{labels_forbidden_to_nodes, validate_label_key, validate_label_value};

pub(super) fn denied(denied: JoinDenied) -> Refusal {
    let (code, reason) = denied.status();
    refusal::refusal(code, reason, denied.to_string())
}

/// `metadata.labels` or `metadata.annotations` of a Node a board sent: a map of strings
/// with qualified-name keys; label values must also be valid label values.
fn string_map(node: &Value, field: &str) -> Result<BTreeMap<String, String>, Refusal> {
    let Some(value) = node.pointer(&format!("/metadata/{field}")) else {
        return Ok(BTreeMap::new());
    };
    let Some(map) = value.as_object() else {
        return Err(invalid(format!("metadata.{field}: expected a map")));
    };
    let mut out = BTreeMap::new();
    for (key, value) in map {
        let Some(text) = value.as_str() else {
            return Err(invalid(format!("metadata.{field}[{key}]: expected string")));
        };
        validate_label_key(key).map_err(|e| invalid(format!("metadata.{field}[{key}]: {e}")))?;
        if field == "labels" {
            validate_label_value(text)
                .map_err(|e| invalid(format!("metadata.{field}[{key}]: {e}")))?;
        }
        out.insert(key.clone(), text.to_string());
    }
    Ok(out)
}

/// Refuses labels a node may not set on itself, naming them (Kubernetes' wording).
fn check_labels<'a>(
    node: &str,
    keys: impl IntoIterator<Item = &'a str>,
    verb: &str,
) -> Result<(), Refusal> {
    let forbidden = labels_forbidden_to_nodes(keys);
    if forbidden.is_empty() {
        return Ok(());
    }
    Err(refusal::forbidden(format!(
        "node {node:?} is not allowed to {verb}: {}",
        forbidden.join(", ")
    )))
}

/// `POST /apis/berth.dev/v1/join`. The store stays locked from the token check to the
/// count of its use, so concurrent joins cannot share a token's last use or a name.
pub(super) fn join(coordinator: &Arc<Coordinator>, request: &Request) -> Result<Response, Refusal> {
    let bearer = request
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("");
    let mut store = coordinator.store();
    let join: JoinRequest = request_body(request)?;
    let asked = JoinAsked::read(&join)?;
    let name = asked.name.clone();
    let existing = store.get("Node", "", &name)?;
    // A board that proves it holds the node's stored credential is the board that made
    // the join whose answer it lost: answer it again, whatever its token has become.
    let same_board = match &asked.credential {
        Some(credential) => coordinator
            .auth
            .is_stored_credential(&store, credential)
            .map_err(internal)?,
        None => false,
    };
    if let (true, Some(_), Some(credential)) = (same_board, &existing, &asked.credential) {
        log::info!("node {name} asked to join again with the credential it was given");
        return Ok(joined_response(credential));
    }
    let token = coordinator
        .check_join_token(bearer, &mut store)
        .map_err(denied)?;
    token.check_node(&name).map_err(denied)?;
    let rejoin = existing.is_some() || coordinator.auth.has_node_credential(&name);
    if rejoin && !same_board && !token.may_rejoin(&name) {
        return Err(refusal::refusal(
            409,
            "AlreadyExists",
            format!(
                "node {name:?} already exists; a board joins under the name of an existing node \
                 only with a token bound to it (berth token create --node-name {name}), \
                 or after berth delete node {name}"
            ),
        ));
    }
    let mut node = node_to_store(existing, &asked);
    // Before anything is written or the token's use counted: a board that cannot get a
    // pod CIDR is told to come back later (it retries; a deleted node frees one).
    let pod_cidr = pod_cidrs::assign_at_join(&store, &coordinator.options.cluster_cidr, &mut node)
        .map_err(|err| match err {
            PodCidrError::Exhausted { .. } => refusal::refusal(
                503,
                "ServiceUnavailable",
                format!("no pod CIDR for node {name:?}: {err}"),
            ),
            PodCidrError::Store(err) => Refusal::from(err),
        })?;
    // The credential first: if the coordinator stops before the Node is written, the
    // board's retry with the same credential is still recognised.
    let credential = store_credential(coordinator, &mut store, &name, asked.credential)?;
    store.put_all(vec![node], None)?;
    if let Some(status) = join.node.get("status") {
        store.set_status("Node", "", &name, &reported_node_status(status))?;
    }
    coordinator
        .auth
        .count_join(&mut store, &token.id)
        .map_err(internal)?;
    drop(store);
    coordinator.renew_node(&name);
    coordinator.changed();
    if rejoin && !same_board {
        log::info!(
            "node {name} joined again with token {} bound to it; its previous credential is revoked",
            token.id
        );
    } else {
        log::info!("node {name} joined with token {}", token.id);
    }
    if let Some(cidr) = pod_cidr {
        log::info!("node {name} was given pod CIDR {cidr}");
    }
    Ok(joined_response(&credential))
}

/// Stores the credential the board proposed, or a new one drawn here for a board that
/// proposed none.
fn store_credential(
    coordinator: &Coordinator,
    store: &mut crate::store::Store,
    name: &str,
    proposed: Option<Credential>,
) -> Result<Credential, Refusal> {
    match proposed {
        Some(credential) => {
            coordinator
                .auth
                .remember_credential(store, &credential)
                .map_err(internal)?;
            Ok(credential)
        }
        None => coordinator
            .auth
            .create_node_credential(store, name)
            .map_err(internal),
    }
}

/// A proposed credential is only as good as its secret: 128 bits or more.
const MIN_PROPOSED_SECRET: usize = 32;

/// What a board asks for in its join request, checked.
struct JoinAsked {
    name: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    /// The node credential it proposes, for its own name.
    credential: Option<Credential>,
}

impl JoinAsked {
    fn read(join: &JoinRequest) -> Result<JoinAsked, Refusal> {
        let name = join
            .node
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        check_node_name(&name).map_err(|e| invalid(format!("metadata.name: {e}")))?;
        let labels = string_map(&join.node, "labels")?;
        let annotations = string_map(&join.node, "annotations")?;
        check_labels(
            &name,
            labels.keys().map(String::as_str),
            "set the following labels",
        )?;
        let credential = match &join.credential {
            None => None,
            Some(text) => match Credential::parse(text) {
                Ok(credential) if credential.secret().len() < MIN_PROPOSED_SECRET => {
                    return Err(invalid(format!(
                        "credential: a proposed secret needs at least {MIN_PROPOSED_SECRET} \
                         characters (agents draw 64 hex digits)"
                    )))
                }
                Ok(credential) if credential.node_name() == Some(name.as_str()) => Some(credential),
                Ok(_) => {
                    return Err(invalid(format!(
                        "credential: not a node credential for {name:?}"
                    )))
                }
                Err(err) => return Err(invalid(format!("credential: {err}"))),
            },
        };
        Ok(JoinAsked {
            name,
            labels,
            annotations,
            credential,
        })
    }
}

/// The Node to store for a join: the stored one with the board's labels and annotations
/// merged in (the admin's labels, taints and cordon stay), or a new one.
fn node_to_store(existing: Option<crate::store::Record>, asked: &JoinAsked) -> Value {
    match existing {
        Some(record) => {
            let mut object = record.object;
            merge_into(&mut object, "labels", asked.labels.clone());
            merge_into(&mut object, "annotations", asked.annotations.clone());
            object
        }
        None => json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {
                "name": asked.name, "labels": asked.labels, "annotations": asked.annotations,
            },
            "spec": {},
        }),
    }
}

fn joined_response(credential: &Credential) -> Response {
    let response = JoinResponse {
        credential: credential.to_string(),
    };
    Response::json(201, &to_json(&response))
}

fn merge_into(object: &mut Value, field: &str, entries: BTreeMap<String, String>) {
    let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let map = metadata
        .entry(field)
        .or_insert_with(|| Value::Object(Map::new()));
    if !map.is_object() {
        *map = Value::Object(Map::new());
    }
    if let Some(map) = map.as_object_mut() {
        for (key, value) in entries {
            map.insert(key, Value::from(value));
        }
    }
}

/// The parts of a node's status the node itself reports (conditions are ours).
pub(super) fn reported_node_status(status: &Value) -> Value {
    let mut kept = serde_json::Map::new();
    for field in ["capacity", "allocatable", "nodeInfo", "addresses"] {
        if let Some(value) = status.get(field) {
            kept.insert(field.to_string(), value.clone());
        }
    }
    Value::Object(kept)
}

/// `PUT /api/v1/nodes/{node}/status` by the node itself. Labels are the node's only at
/// its join; afterwards a node may not change them, and one that tries to set a label
/// it may never set (a tampered agent) is refused so it shows in the logs.
pub(super) fn node_status(
    coordinator: &Arc<Coordinator>,
    request: &Request,
    node: &str,
) -> Result<Response, Refusal> {
    let reported: Value = request_body(request)?;
    if let Some(sent) = reported
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
    {
        let stored = coordinator.store().get("Node", "", node)?;
        let stored_labels = stored
            .as_ref()
            .and_then(|r| r.object.pointer("/metadata/labels"))
            .and_then(Value::as_object);
        let changed = sent
            .iter()
            .filter(|(key, value)| stored_labels.and_then(|l| l.get(*key)) != Some(*value))
            .map(|(key, _)| key.as_str());
        check_labels(node, changed, "modify labels")?;
    }
    let status = reported_node_status(reported.get("status").unwrap_or(&Value::Null));
    let changed = coordinator.store().set_status("Node", "", node, &status)?;
    coordinator.renew_node(node);
    if changed {
        coordinator.changed();
    }
    get_node(coordinator, node)
}

/// `/apis/berth.dev/v1/tokens[/{id}]`, for the admin.
pub(super) fn tokens(
    coordinator: &Arc<Coordinator>,
    request: &Request,
    rest: &[&str],
) -> Result<Response, Refusal> {
    let now = SystemTime::now();
    match (request.method.as_str(), rest) {
        ("POST", []) => {
            let spec: TokenSpec = if request.body.iter().all(u8::is_ascii_whitespace) {
                TokenSpec::default()
            } else {
                request_body(request)?
            };
            let rules = spec.rules().map_err(invalid)?;
            let ca_hash = coordinator.ca_hash.clone();
            let (token, record) = coordinator
                .auth
                .create_join_token(&mut coordinator.store(), &ca_hash, &rules, now)
                .map_err(internal)?;
            log::info!("created join token {}", token.id);
            Ok(Response::json(
                201,
                &json!({"token": token.to_string(), "joinToken": record.view(now)}),
            ))
        }
        ("GET", []) => Ok(list_response(
            coordinator
                .auth
                .join_tokens()
                .iter()
                .map(|t| t.view(now))
                .collect(),
        )),
        ("GET", [id]) => coordinator
            .auth
            .join_tokens()
            .iter()
            .find(|t| t.id == *id)
            .map(|t| Response::json(200, &t.view(now)))
            .ok_or_else(|| not_found(format!("join token \"{id}\" not found"))),
        ("DELETE", [id]) => {
            let deleted = coordinator
                .auth
                .delete_join_token(&mut coordinator.store(), id)
                .map_err(internal)?;
            if !deleted {
                return Err(not_found(format!("join token \"{id}\" not found")));
            }
            log::info!("deleted join token {id}");
            Ok(success_response(id, "jointokens"))
        }
        (method, _) => Err(method_not_allowed(method, &request.path)),
    }
}
