//! `GET /apis/berth.dev/v1/coordinators` (`berth get coordinators`): every running
//! coordinator of the fleet, which one leads and since when, and the datastore's health
//! as the answering coordinator sees it.

use serde_json::{json, Value};

use super::Coordinator;
use crate::api::http::Response;
use crate::api::refusal::{refusal, Refusal};

/// The list, as a Kubernetes-style `List` of `Coordinator` items.
pub fn list(c: &Coordinator) -> Result<Response, Refusal> {
    let items = match &c.peers {
        None => vec![item(
            &c.name,
            &c.url,
            &c.started,
            Some(&c.started),
            json!({"backend": "sqlite", "healthy": 1, "members": 1}),
        )],
        Some(peers) => {
            let unavailable = |e: crate::store::etcd::EtcdError| {
                refusal(503, "ServiceUnavailable", format!("datastore: {e}"))
            };
            let registered = peers.registered().map_err(unavailable)?;
            let leader = peers.current_leader().map_err(unavailable)?;
            let health = peers.store_health();
            let healthy = health.iter().filter(|(_, h)| h.is_ok()).count();
            let members: Vec<Value> = health
                .iter()
                .map(|(endpoint, h)| match h {
                    Ok(version) => {
                        json!({"endpoint": endpoint, "healthy": true, "version": version})
                    }
                    Err(reason) => json!({"endpoint": endpoint, "healthy": false, "error": reason}),
                })
                .collect();
            let store = json!({
                "backend": "etcd", "healthy": healthy, "members": health.len(),
                "endpoints": members,
            });
            registered
                .iter()
                .map(|r| {
                    let since = leader
                        .as_ref()
                        .filter(|l| l.name == r.name)
                        .map(|l| l.since.as_str());
                    item(&r.name, &r.url, &r.started, since, store.clone())
                })
                .collect()
        }
    };
    Ok(Response::json(
        200,
        &json!({"apiVersion": "berth.dev/v1", "kind": "CoordinatorList", "items": items}),
    ))
}

fn item(name: &str, url: &str, started: &str, leader_since: Option<&str>, store: Value) -> Value {
    json!({
        "apiVersion": "berth.dev/v1",
        "kind": "Coordinator",
        "metadata": {"name": name, "creationTimestamp": started},
        "spec": {"url": url},
        "status": {
            "leader": leader_since.is_some(),
            "leaderSince": leader_since,
            "store": store,
        },
    })
}
