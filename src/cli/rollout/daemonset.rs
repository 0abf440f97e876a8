//! What the rollout verbs need to know about DaemonSets: where a rollout stands (from
//! the status the DaemonSet controller keeps), and the revisions, which are the
//! ControllerRevisions the DaemonSet controls. Each holds the pod template exactly as
//! the DaemonSet had it (`.data.spec.template`) and its number (`.revision`); the
//! controller renumbers an older template that comes back to the newest number, so the
//! newest revision is always the running one.

use serde_json::Value;

use super::controlled;
use crate::api::client::Client;
use crate::cli::output::{at, int_at, str_at};
use crate::model::Kind;

/// kubectl's lines for a DaemonSet rollout: the line and whether it is done, or why
/// there is no rollout to follow. Only a `RollingUpdate` DaemonSet rolls out by itself;
/// under `OnDelete` pods change only when deleted, so there is nothing to wait for.
pub fn status_line(ds: &Value) -> Result<(String, bool), String> {
    let strategy = str_at(ds, &["spec", "updateStrategy", "type"]);
    // Kubernetes defaults an absent strategy to RollingUpdate.
    if !strategy.is_empty() && strategy != "RollingUpdate" {
        return Err("rollout status is only available for RollingUpdate strategy type".into());
    }
    let generation = int_at(ds, &["metadata", "generation"]);
    if generation > int_at(ds, &["status", "observedGeneration"]) {
        return Ok((
            "Waiting for daemon set spec update to be observed...".into(),
            false,
        ));
    }
    let name = str_at(ds, &["metadata", "name"]);
    let count = |field: &str| int_at(ds, &["status", field]);
    let desired = count("desiredNumberScheduled");
    let (updated, available) = (count("updatedNumberScheduled"), count("numberAvailable"));
    let waiting =
        |what: String| format!("Waiting for daemon set \"{name}\" rollout to finish: {what}");
    let line = if updated < desired {
        waiting(format!(
            "{updated} out of {desired} new pods have been updated..."
        ))
    } else if available < desired {
        waiting(format!(
            "{available} of {desired} updated pods are available..."
        ))
    } else {
        return Ok((
            format!("daemon set \"{name}\" successfully rolled out"),
            true,
        ));
    };
    Ok((line, false))
}

/// The ControllerRevisions `ds` controls, oldest revision first.
pub fn revisions_of(client: &Client, ds: &Value) -> anyhow::Result<Vec<Value>> {
    controlled(client, ds, Kind::ControllerRevision, revision)
}

/// A ControllerRevision's number.
pub fn revision(cr: &Value) -> i64 {
    int_at(cr, &["revision"])
}

/// The pod template a ControllerRevision holds.
pub fn template(cr: &Value) -> &Value {
    at(cr, &["data", "spec", "template"])
}

/// The ControllerRevision to roll back to, as kubectl picks it: revision `to_revision`,
/// or with 0 the newest but one (the newest is the running template).
pub fn pick_revision(revisions: &[Value], to_revision: i64) -> Result<&Value, String> {
    let not_found = || format!("unable to find specified revision {to_revision} in history");
    if to_revision > 0 {
        return revisions
            .iter()
            .find(|cr| revision(cr) == to_revision)
            .ok_or_else(not_found);
    }
    let mut newest_first: Vec<&Value> = revisions.iter().collect();
    crate::support::sort::sort_by_key(&mut newest_first, |cr| std::cmp::Reverse(revision(cr)));
    newest_first
        .get(1)
        .copied()
        .ok_or_else(|| "no last revision to roll back to".to_owned())
}

#[cfg(test)]
mod tests {
    use super::{pick_revision, status_line, template};
    use serde_json::{json, Value};

    fn ds(strategy: Option<&str>, status: Value) -> Value {
        let mut ds = json!({"metadata": {"name": "log", "generation": 2}, "spec": {},
                            "status": status});
        if let Some(strategy) = strategy {
            ds["spec"]["updateStrategy"] = json!({"type": strategy});
        }
        ds
    }

    #[test]
    fn lines_follow_the_rollout_as_kubectl_prints_them() {
        let line = |status: Value| status_line(&ds(Some("RollingUpdate"), status)).unwrap();
        let waiting = |what: &str| {
            (
                format!("Waiting for daemon set \"log\" rollout to finish: {what}"),
                false,
            )
        };
        assert_eq!(
            line(json!({"observedGeneration": 1, "desiredNumberScheduled": 3})),
            (
                "Waiting for daemon set spec update to be observed...".to_owned(),
                false
            )
        );
        let counts = |updated: i64, available: i64| {
            json!({"observedGeneration": 2, "desiredNumberScheduled": 3,
                   "updatedNumberScheduled": updated, "numberAvailable": available})
        };
        assert_eq!(
            line(counts(1, 3)),
            waiting("1 out of 3 new pods have been updated...")
        );
        assert_eq!(
            line(counts(3, 2)),
            waiting("2 of 3 updated pods are available...")
        );
        let done = (
            "daemon set \"log\" successfully rolled out".to_owned(),
            true,
        );
        assert_eq!(line(counts(3, 3)), done);
        // Nothing scheduled is nothing to wait for; an absent strategy is RollingUpdate.
        assert_eq!(
            status_line(&ds(None, json!({"observedGeneration": 2}))).unwrap(),
            done
        );
    }

    #[test]
    fn on_delete_has_no_rollout_status() {
        assert_eq!(
            status_line(&ds(Some("OnDelete"), json!({}))).unwrap_err(),
            "rollout status is only available for RollingUpdate strategy type"
        );
    }

    #[test]
    fn the_revision_to_roll_back_to_is_picked_as_kubectl_does() {
        let cr = |revision: i64, image: &str| {
            json!({"metadata": {"name": format!("log-{revision}")}, "revision": revision,
                   "data": {"spec": {"template": {"spec": {"containers":
                       [{"name": "c", "image": image}]}}}}})
        };
        let all = [cr(4, "d"), cr(1, "a"), cr(3, "c")];
        let name = |found: Result<&Value, String>| found.unwrap()["metadata"]["name"].clone();
        assert_eq!(name(pick_revision(&all, 0)), "log-3", "the newest but one");
        assert_eq!(name(pick_revision(&all, 1)), "log-1");
        assert_eq!(
            template(pick_revision(&all, 4).unwrap())["spec"]["containers"][0]["image"],
            "d"
        );
        assert_eq!(
            pick_revision(&all, 2).unwrap_err(),
            "unable to find specified revision 2 in history"
        );
        assert_eq!(
            pick_revision(&all[..1], 0).unwrap_err(),
            "no last revision to roll back to"
        );
        assert_eq!(
            pick_revision(&[], 0).unwrap_err(),
            "no last revision to roll back to"
        );
    }
}
