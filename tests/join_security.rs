//! Join tokens and node identity (issue 11, part 6) against a real coordinator: tokens
//! expire, get used up and can be deleted; a board cannot take another node's name or
//! claim a label the NodeRestriction rules keep for the admin; a deleted node's
//! credential stops working at once. Joins are made the way an agent makes them (the CA
//! pinned by the token's hash, then `POST .../join`), with hand-made Node objects, since
//! a tampered board is exactly what is tested. No root, no containers.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;
// Only the coordinator is used here, not the test networks.
#[allow(dead_code)]
#[path = "common/fleet.rs"]
mod fleet_support;

use std::time::{Duration, SystemTime};

use berth::api::config::ClientConfig;
use berth::api::tls::{client_config_pinned, client_config_trusting};
use berth::api::tokens::{Credential, JoinToken};
use berth::api::{ApiError, Client};
use common::wait_for;
use fleet_support::TestCoordinator;
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(15);

/// What the coordinator answered: the credential, or the status code and message.
type Answer = Result<String, (u16, String)>;

fn node_object(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "status": {"capacity": {"cpu": "4", "memory": "4Gi", "pods": 110},
                   "allocatable": {"cpu": "4", "memory": "4Gi", "pods": 110}},
    })
}

fn status_error<T>(result: Result<T, ApiError>) -> Result<T, (u16, String)> {
    result.map_err(|err| match err {
        ApiError::Status { code, message } => (code, message),
        other => panic!("expected an answer from the coordinator, got: {other}"),
    })
}

/// Joins as an agent does: pins the CA by the token's hash, then presents `<id>.<secret>`.
fn join(coordinator: &TestCoordinator, token: &str, name: &str, labels: Value) -> Answer {
    join_asking(coordinator, token, name, labels, None)
}

/// [`join`], asking for `credential` as the agent does.
fn join_asking(
    coordinator: &TestCoordinator,
    token: &str,
    name: &str,
    labels: Value,
    credential: Option<&str>,
) -> Answer {
    let token = JoinToken::parse(token).unwrap();
    let (config, _pinned) = client_config_pinned(&token.ca_hash).unwrap();
    let bearer = format!("{}.{}", token.id, token.secret);
    let client = Client::https(&coordinator.url, config, Some(bearer), TIMEOUT).unwrap();
    let mut body = json!({"node": node_object(name, labels)});
    if let Some(credential) = credential {
        body["credential"] = json!(credential);
    }
    let (_, answer) = status_error(client.request("POST", "/apis/berth.dev/v1/join", Some(&body)))?;
    Ok(answer["credential"].as_str().unwrap().to_owned())
}

/// A client of the coordinator with `credential` (a node's, or the admin's).
fn client_with(coordinator: &TestCoordinator, credential: &str) -> Client {
    let admin = ClientConfig::load(&coordinator.config()).unwrap();
    let config = client_config_trusting(&admin.certificate_authority).unwrap();
    Client::https(
        &coordinator.url,
        config,
        Some(credential.to_owned()),
        TIMEOUT,
    )
    .unwrap()
}

fn admin(coordinator: &TestCoordinator) -> Client {
    let token = ClientConfig::load(&coordinator.config()).unwrap().token;
    client_with(coordinator, &token)
}

fn get_own_node(coordinator: &TestCoordinator, credential: &str, name: &str) -> Answer {
    let client = client_with(coordinator, credential);
    let path = format!("/api/v1/nodes/{name}");
    status_error(client.request("GET", &path, None)).map(|(_, node)| node.to_string())
}

fn create_token(coordinator: &TestCoordinator, args: &[&str]) -> (String, String) {
    let mut all = vec!["token", "create"];
    all.extend_from_slice(args);
    let token = coordinator.ok(&all).trim().to_owned();
    let id = JoinToken::parse(&token).unwrap().id;
    (token, id)
}

fn listed_token(coordinator: &TestCoordinator, id: &str) -> Option<Value> {
    let list = coordinator.json(&["token", "list"]);
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["metadata"]["name"] == id)
        .cloned()
}

fn node_names(coordinator: &TestCoordinator) -> Vec<String> {
    coordinator.json(&["get", "nodes"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

fn refused(answer: Answer, code: u16, words: &str) -> String {
    match answer {
        Ok(_) => panic!("the join was accepted; expected {code} with {words:?}"),
        Err((got, message)) => {
            assert!(got == code && message.contains(words), "{got}: {message}");
            message
        }
    }
}

#[test]
fn expired_used_up_and_deleted_tokens_are_refused() {
    let coordinator = TestCoordinator::start("127.0.0.1", &[]);

    // Expired: a 1 s token, once its expiration (as listed) has passed.
    let (short, short_id) = create_token(&coordinator, &["--ttl", "1s"]);
    let listed = listed_token(&coordinator, &short_id).unwrap();
    let expiration = listed["spec"]["expiration"].as_str().unwrap().to_owned();
    let expires_at = humantime::parse_rfc3339(&expiration).unwrap();
    wait_for(TIMEOUT, "the 1s token's expiration", || {
        (SystemTime::now() >= expires_at).then_some(())
    });
    let message = refused(
        join(&coordinator, &short, "late", json!({})),
        401,
        "expired",
    );
    assert!(message.contains(&expiration), "{message}");
    assert_eq!(
        listed_token(&coordinator, &short_id).unwrap()["status"]["expired"],
        true
    );

    // Used up: one join allowed, the second refused; the list counts the use.
    let (once, once_id) = create_token(&coordinator, &["--max-uses", "1"]);
    join(&coordinator, &once, "board-1", json!({})).unwrap();
    refused(
        join(&coordinator, &once, "board-2", json!({})),
        401,
        "used up",
    );
    let listed = listed_token(&coordinator, &once_id).unwrap();
    assert_eq!(listed["status"]["uses"], 1);
    assert_eq!(listed["status"]["usedUp"], true);

    // Deleted: refused, and gone from the list.
    let (deleted, deleted_id) = create_token(&coordinator, &["--description", "spare"]);
    let out = coordinator.ok(&["token", "delete", &deleted_id]);
    assert!(
        out.contains(&format!("join token \"{deleted_id}\" deleted")),
        "{out}"
    );
    refused(
        join(&coordinator, &deleted, "board-3", json!({})),
        401,
        "not found",
    );
    assert!(listed_token(&coordinator, &deleted_id).is_none());
    let again = coordinator.berth(&["token", "delete", &deleted_id]);
    assert!(!again.status.success());

    // A token with a wrong secret says nothing about the token.
    let (good, _) = create_token(&coordinator, &["--ttl", "0"]);
    let (head, _) = good.rsplit_once('.').unwrap();
    let forged = format!("{head}.{}", "0".repeat(64));
    let message = refused(
        join(&coordinator, &forged, "board-4", json!({})),
        401,
        "invalid join token",
    );
    assert!(
        !message.contains("expire") && !message.contains("used"),
        "{message}"
    );

    // The table shows ids and rules, never a secret.
    let table = coordinator.ok(&["token", "list"]);
    assert!(table.starts_with("TOKEN "), "{table}");
    assert!(
        table.contains("<forever>") && table.contains("<expired>"),
        "{table}"
    );
    assert!(table.contains("1/1") && !table.contains("spare"), "{table}");
    for token in [&short, &once, &good] {
        let secret = token.rsplit_once('.').unwrap().1;
        assert!(!table.contains(secret), "{table}");
    }
    assert_eq!(node_names(&coordinator), ["board-1"]);
}

#[test]
fn a_node_cannot_take_another_nodes_name_or_claim_restricted_labels() {
    let coordinator = TestCoordinator::start("127.0.0.1", &[]);
    let (token, _) = create_token(&coordinator, &["--max-uses", "0"]);
    let node_a = join(&coordinator, &token, "node-a", json!({"tier": "edge"})).unwrap();

    // A second board with a good token cannot become node-a, and node-a keeps working.
    refused(
        join(&coordinator, &token, "node-a", json!({})),
        409,
        "already exists",
    );
    get_own_node(&coordinator, &node_a, "node-a").unwrap();

    // A token bound to node-b joins node-b only.
    let (bound, _) = create_token(&coordinator, &["--node-name", "node-b"]);
    refused(
        join(&coordinator, &bound, "node-c", json!({})),
        403,
        "may only join node \"node-b\"",
    );
    join(&coordinator, &bound, "node-b", json!({})).unwrap();

    // Labels the admin keeps for itself are refused by name, and the refusal costs no use.
    let (single, _) = create_token(&coordinator, &["--max-uses", "1"]);
    let message = refused(
        join(
            &coordinator,
            &single,
            "node-d",
            json!({"node-restriction.kubernetes.io/tier": "secure", "kubernetes.io/role": "x"}),
        ),
        403,
        "is not allowed to set the following labels",
    );
    assert!(
        message.contains("kubernetes.io/role, node-restriction.kubernetes.io/tier"),
        "{message}"
    );
    // What a kubelet may say about itself is accepted.
    let facts = json!({"kubernetes.io/arch": "arm64", "topology.kubernetes.io/zone": "greenhouse",
                       "berth.dev/arch-variant": "v8", "tier": "edge"});
    join(&coordinator, &single, "node-d", facts).unwrap();
    let names = node_names(&coordinator);
    assert_eq!(names, ["node-a", "node-b", "node-d"]);

    // Later, a node may not set such a label on itself either.
    let as_a = client_with(&coordinator, &node_a);
    let sneaky = node_object(
        "node-a",
        json!({"tier": "edge", "node-restriction.kubernetes.io/tier": "secure"}),
    );
    let (code, message) =
        status_error(as_a.request("PUT", "/api/v1/nodes/node-a/status", Some(&sneaky)))
            .unwrap_err();
    assert!(
        code == 403
            && message
                .contains("not allowed to modify labels: node-restriction.kubernetes.io/tier"),
        "{message}"
    );
    let honest = node_object("node-a", json!({"tier": "edge"}));
    status_error(as_a.request("PUT", "/api/v1/nodes/node-a/status", Some(&honest))).unwrap();

    // The admin may set it; a board re-joining node-a with a token bound to it keeps the
    // admin's label and revokes node-a's old credential.
    let patch = json!({"metadata": {"labels": {"node-restriction.kubernetes.io/tier": "secure"}}});
    status_error(admin(&coordinator).request("PATCH", "/api/v1/nodes/node-a", Some(&patch)))
        .unwrap();
    let (rebind, _) = create_token(&coordinator, &["--node-name", "node-a"]);
    let node_a_again = join(&coordinator, &rebind, "node-a", json!({"tier": "edge"})).unwrap();
    assert_ne!(node_a_again, node_a);
    refused(
        get_own_node(&coordinator, &node_a, "node-a"),
        401,
        "invalid credential",
    );
    let node = get_own_node(&coordinator, &node_a_again, "node-a").unwrap();
    let node: Value = serde_json::from_str(&node).unwrap();
    assert_eq!(
        node["metadata"]["labels"]["node-restriction.kubernetes.io/tier"],
        "secure"
    );
    // The bound token allowed that one join only.
    refused(
        join(&coordinator, &rebind, "node-a", json!({})),
        401,
        "used up",
    );
}

/// A board whose join answer was lost (its coordinator died after storing it) asks
/// again with the credential it proposed: it is answered as the first time, even with
/// its single-use token spent; nobody without that credential can do the same.
#[test]
fn a_board_whose_join_answer_was_lost_asks_again_and_is_answered() {
    let coordinator = TestCoordinator::start("127.0.0.1", &[]);
    let (single, _) = create_token(&coordinator, &["--max-uses", "1"]);
    let (many, _) = create_token(&coordinator, &["--max-uses", "0"]);
    let mine = Credential::generate_node("node-e").unwrap().to_string();
    let first = join_asking(&coordinator, &single, "node-e", json!({}), Some(&mine)).unwrap();
    assert_eq!(first, mine);
    let again = join_asking(&coordinator, &single, "node-e", json!({}), Some(&mine)).unwrap();
    assert_eq!(again, mine);
    get_own_node(&coordinator, &mine, "node-e").unwrap();

    // Another credential for the same name is another board: refused, as before.
    let other = Credential::generate_node("node-e").unwrap().to_string();
    refused(
        join_asking(&coordinator, &many, "node-e", json!({}), Some(&other)),
        409,
        "already exists",
    );
    refused(
        join_asking(&coordinator, &single, "node-e", json!({}), Some(&other)),
        401,
        "used up",
    );
    // A credential must be a node credential for the name that joins.
    let foreign = Credential::generate_node("node-f").unwrap().to_string();
    refused(
        join_asking(&coordinator, &many, "node-e", json!({}), Some(&foreign)),
        422,
        "not a node credential for \"node-e\"",
    );
    refused(
        join_asking(
            &coordinator,
            &many,
            "node-g",
            json!({}),
            Some("berth-node.node-g.short"),
        ),
        422,
        "a proposed secret needs at least 32 characters",
    );
    assert_eq!(node_names(&coordinator), ["node-e"]);
    get_own_node(&coordinator, &mine, "node-e").unwrap();
}

#[test]
fn a_deleted_nodes_credential_no_longer_works() {
    let coordinator = TestCoordinator::start("127.0.0.1", &[]);
    let (token, _) = create_token(&coordinator, &["--max-uses", "2"]);
    let stolen = join(&coordinator, &token, "pi-7", json!({})).unwrap();
    get_own_node(&coordinator, &stolen, "pi-7").unwrap();

    // A long poll in flight when the node is deleted ends with 401, not at its timeout.
    let as_node = client_with(&coordinator, &stolen).with_timeout(Duration::from_secs(70));
    let poll = "/apis/berth.dev/v1/nodes/pi-7/assignments";
    let (_, first) =
        status_error(as_node.request("GET", &format!("{poll}?version="), None)).unwrap();
    let version = first["version"].as_str().unwrap().to_owned();
    let waiting = std::thread::spawn(move || {
        let path = format!("{poll}?version={version}&timeoutSeconds=60");
        status_error(as_node.request("GET", &path, None))
    });
    coordinator.ok(&["delete", "node", "pi-7"]);
    let (code, message) = waiting.join().unwrap().unwrap_err();
    assert!(
        code == 401 && message.contains("invalid credential"),
        "{code}: {message}"
    );

    // Nothing the stolen board holds works any more.
    refused(
        get_own_node(&coordinator, &stolen, "pi-7"),
        401,
        "invalid credential",
    );
    let client = client_with(&coordinator, &stolen);
    let status = node_object("pi-7", json!({}));
    let (code, _) = status_error(client.request("PUT", "/api/v1/nodes/pi-7/status", Some(&status)))
        .unwrap_err();
    assert_eq!(code, 401);
    assert!(node_names(&coordinator).is_empty());

    // The name is free again for a new board, whose credential is a new one.
    let replacement = join(&coordinator, &token, "pi-7", json!({})).unwrap();
    get_own_node(&coordinator, &replacement, "pi-7").unwrap();
    refused(
        get_own_node(&coordinator, &stolen, "pi-7"),
        401,
        "invalid credential",
    );
}

#[test]
fn malformed_path_escapes_are_bad_requests() {
    // The agent refuses a malformed `%` escape; the coordinator does the same, from the
    // head (before any credential is looked at) and on every route, rather than routing
    // the raw text.
    let coordinator = TestCoordinator::start("127.0.0.1", &[]);
    let admin = admin(&coordinator);
    for path in ["/api/v1/namespaces/%zz/pods", "/api/v1/nodes/pi%2"] {
        let (code, message) = status_error(admin.request("GET", path, None)).unwrap_err();
        assert!(
            code == 400 && message.contains("bad path"),
            "{path}: {code}: {message}"
        );
    }
    let (token, _) = create_token(&coordinator, &[]);
    let credential = join(&coordinator, &token, "pi-8", json!({})).unwrap();
    let as_node = client_with(&coordinator, &credential);
    let poll = "/apis/berth.dev/v1/nodes/pi-%8/assignments?version=";
    let (code, message) = status_error(as_node.request("GET", poll, None)).unwrap_err();
    assert!(
        code == 400 && message.contains("bad path"),
        "{code}: {message}"
    );
    let stranger = client_with(&coordinator, "not-a-credential");
    let (code, _) = status_error(stranger.request("GET", "/api/v1/pods%", None)).unwrap_err();
    assert_eq!(code, 400);
    // A well-formed escape still names what it decodes to.
    let (_, node) = status_error(admin.request("GET", "/api/v1/nodes/pi%2D8", None)).unwrap();
    assert_eq!(node["metadata"]["name"], "pi-8");
}
