//! `PATCH` of a Deployment or a DaemonSet with a JSON merge patch (RFC 7386), as
//! `kubectl rollout` sends them: the stored object is read, patched and admitted exactly as an applied
//! manifest would be ([`super::apply::apply_to_store`]: validation, namespaces, Pod
//! Security), all under the store lock, so a refused patch changes nothing and two
//! patches never interleave.
//!
//! A strategic merge patch is taken as a merge patch: for the fields berth's clients
//! patch (`spec.paused`, `spec.template` annotations, a whole template) the two agree;
//! list merging by key is the part they differ in, and no client here relies on it.
//! [`diff`] is the other direction, a merge patch from one document to another, which
//! is what lets a client replace a whole template with a merge patch (`rollout undo`).

use serde_json::{Map, Value};

use super::apply::{apply_to_store, AdmissionOptions};
use super::http::{Request, Response};
use super::refusal::{bad_request, invalid, not_found, refusal, Refusal};
use super::resources::{Resources, Stored};
use super::types::{ApplyRequest, ManifestFile};
use crate::model::{parse_manifests, Kind};

/// The media types a PATCH body may have.
const MERGE_PATCH: &str = "application/merge-patch+json";
const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";

/// Applies merge patch `patch` to `target` (RFC 7386): an object patch merges key by
/// key, `null` removing a key; anything else replaces the target whole.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(changes) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(fields) = target {
        for (key, change) in changes {
            if change.is_null() {
                fields.remove(key);
            } else {
                merge_patch(fields.entry(key.clone()).or_insert(Value::Null), change);
            }
        }
    }
}

/// The merge patch that turns `from` into `to`: changed keys with their new values,
/// removed keys as `null`, and nothing for what is equal. Arrays are replaced whole, as
/// a merge patch can only do. A `null` inside `to` cannot be expressed (it would mean
/// "remove"); objects as the API shows them carry none.
pub fn diff(from: &Value, to: &Value) -> Value {
    let (Value::Object(old), Value::Object(new)) = (from, to) else {
        return to.clone();
    };
    let mut patch = Map::new();
    for key in old.keys().filter(|key| !new.contains_key(*key)) {
        patch.insert(key.clone(), Value::Null);
    }
    for (key, value) in new {
        match old.get(key) {
            Some(before) if before == value => {}
            Some(before) => {
                patch.insert(key.clone(), diff(before, value));
            }
            None => {
                patch.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(patch)
}

/// Whether objects of `kind` can be patched: the kinds `kubectl rollout` changes.
pub fn patchable(kind: Kind) -> bool {
    matches!(kind, Kind::Deployment | Kind::DaemonSet)
}

/// The resource as Kubernetes names it in messages: `deployments.apps`.
pub fn resource_name(kind: Kind) -> String {
    match kind.api_version().split_once('/') {
        Some((group, _)) => format!("{}.{group}", kind.plural()),
        None => kind.plural().to_owned(),
    }
}

/// `PATCH` of object `namespace/name` of a [`patchable`] kind: the body merged into
/// the stored object, which must then pass what an applied manifest passes. Answers 200
/// with the object as the daemon shows it; 404 when there is none, 415 for a patch type
/// other than a merge patch, 400 for a body that is not JSON or a patch that renames
/// the object, 422 or 403 when validation or admission refuse the result.
pub(super) fn patch_object<R: Resources + ?Sized>(
    resources: &R,
    request: &Request,
    kind: Kind,
    namespace: &str,
    name: &str,
) -> Result<Response, Refusal> {
    check_media_type(request)?;
    let patch: Value = serde_json::from_slice(&request.body)
        .map_err(|e| bad_request(format!("invalid JSON patch: {e}")))?;
    let resource = resource_name(kind);
    let admission = resources.admission();
    let mut store = resources.store();
    let record = store
        .get(kind.as_str(), namespace, name)?
        .ok_or_else(|| not_found(format!("{resource} \"{name}\" not found")))?;
    let mut object = record.object.clone();
    merge_patch(&mut object, &patch);
    check_identity(&object, kind, namespace, name)?;
    let applied = admit(
        &mut store,
        &object,
        kind,
        namespace,
        record.source.as_deref(),
        &admission,
    )?;
    let changed = applied.items.iter().any(|item| item.outcome != "unchanged");
    let stored = store
        .get(kind.as_str(), namespace, name)?
        .ok_or_else(|| not_found(format!("{resource} \"{name}\" not found")))?;
    let stored = Stored::read(&store, kind, Some(namespace), vec![stored])?;
    // Showing may lock the store again.
    drop(store);
    if changed {
        log::info!("{} {namespace}/{name} patched", kind.as_str());
        resources.changed();
    }
    let shown = resources.show(stored)?;
    let shown = shown
        .into_iter()
        .next()
        .ok_or_else(|| not_found(format!("{resource} \"{name}\" not found")))?;
    Ok(Response::json(200, &shown))
}

/// 415 unless the body is a merge patch (or a strategic one, taken as such).
fn check_media_type(request: &Request) -> Result<(), Refusal> {
    let media_type = request
        .header("Content-Type")
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if media_type == MERGE_PATCH || media_type == STRATEGIC_MERGE_PATCH {
        return Ok(());
    }
    Err(refusal(
        415,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format ({media_type:?}) - accepted \
             media types include: {MERGE_PATCH}, {STRATEGIC_MERGE_PATCH}"
        ),
    ))
}

/// A patch may not turn the object into another one: its kind, API version, name and
/// namespace stay those of the path.
fn check_identity(object: &Value, kind: Kind, namespace: &str, name: &str) -> Result<(), Refusal> {
    let field = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
    if field("/kind") != Some(kind.as_str()) || field("/apiVersion") != Some(kind.api_version()) {
        return Err(bad_request(format!(
            "a patch cannot change the kind or apiVersion of {} \"{name}\"",
            resource_name(kind)
        )));
    }
    if field("/metadata/name") != Some(name) {
        return Err(bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            field("/metadata/name").unwrap_or_default()
        )));
    }
    if field("/metadata/namespace").is_some_and(|ns| ns != namespace) {
        return Err(bad_request(format!(
            "the namespace of the object ({}) does not match the namespace on the URL \
             ({namespace})",
            field("/metadata/namespace").unwrap_or_default()
        )));
    }
    Ok(())
}

/// Validates the patched object as a manifest, then writes it through admission.
fn admit(
    store: &mut crate::store::Store,
    object: &Value,
    kind: Kind,
    namespace: &str,
    source: Option<&str>,
    admission: &AdmissionOptions,
) -> Result<super::types::ApplyResult, Refusal> {
    let content = object.to_string();
    if let Err(err) = parse_manifests(&content) {
        let problems: Vec<String> = err
            .documents
            .iter()
            .flat_map(|doc| &doc.errors)
            .map(|e| match e.path.as_str() {
                "" => e.message.clone(),
                path => format!("{path}: {}", e.message),
            })
            .collect();
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let listed = match problems.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        // Kubernetes names the kind and its group: `Deployment.apps "web" is invalid`.
        let group = kind
            .api_version()
            .split_once('/')
            .map_or("", |(group, _)| group);
        return Err(invalid(format!(
            "{}.{group} \"{name}\" is invalid: {listed}",
            kind.as_str()
        )));
    }
    let request = ApplyRequest {
        files: vec![ManifestFile {
            name: "patch".to_owned(),
            content,
        }],
        namespace: Some(namespace.to_owned()),
    };
    apply_to_store(store, &request, source, admission)
}

#[cfg(test)]
mod tests {
    use super::{diff, merge_patch};
    use serde_json::{json, Value};

    /// RFC 7386's appendix A, case by case.
    #[test]
    fn merge_patch_follows_rfc_7386() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (target, patch, expected) in cases {
            let mut patched = target.clone();
            merge_patch(&mut patched, &patch);
            assert_eq!(patched, expected, "{target} patched with {patch}");
        }
    }

    #[test]
    fn a_diff_patches_one_document_into_the_other() {
        let from = json!({
            "metadata": {"labels": {"app": "web"}, "annotations": {"restartedAt": "now"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.35"}], "keep": 1},
        });
        let to = json!({
            "metadata": {"labels": {"app": "web", "tier": "front"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}], "keep": 1},
        });
        let patch = diff(&from, &to);
        assert_eq!(
            patch,
            json!({
                "metadata": {"labels": {"tier": "front"}, "annotations": null},
                "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
            })
        );
        let mut patched = from.clone();
        merge_patch(&mut patched, &patch);
        assert_eq!(patched, to);
        assert_eq!(diff(&to, &to), json!({}));
        assert_eq!(diff(&Value::Null, &to), to);
    }
}
