//! Validation of PersistentVolumeClaims against what the `local-path` class can give: a
//! directory on one board, of the requested (recorded, not enforced) size.

use serde_json::Value;

use super::checker::{get, index, join, Checker, JsonObject};
use crate::model::claim::{
    ACCESS_MODES, FILESYSTEM_VOLUME_MODE, LOCAL_PATH_CLASS, SHARED_ACCESS_MODES, STORAGE,
};
use crate::model::names::DNS1123_SUBDOMAIN_RULE;
use crate::model::{is_dns1123_subdomain, parse_memory_bytes};

const SPEC_FIELDS: [&str; 5] = [
    "accessModes",
    "resources",
    "storageClassName",
    "volumeMode",
    "volumeName",
];

/// Checks a claim's spec at `path` (`spec`, or a StatefulSet's claim template's).
pub(super) fn check_claim_spec(c: &mut Checker, value: Option<&Value>, path: &str) {
    let empty = JsonObject::new();
    let spec = match value {
        None => &empty,
        Some(value) => match c.object(value, path) {
            Some(spec) => spec,
            None => return,
        },
    };
    c.only_fields(spec, path, &SPEC_FIELDS);
    // What a local-path directory cannot give is refused only for that class: another
    // class's claim waits for a provisioner that may give it.
    let local_path = get(spec, "storageClassName")
        .and_then(Value::as_str)
        .is_none_or(|class| class == LOCAL_PATH_CLASS);
    check_access_modes(
        c,
        get(spec, "accessModes"),
        &join(path, "accessModes"),
        local_path,
    );
    check_resources(c, get(spec, "resources"), &join(path, "resources"));
    if let Some(value) = get(spec, "storageClassName") {
        // Any class may be named, as in Kubernetes (`""` asks for a pre-made volume):
        // only local-path is provisioned here, and a claim of another stays Pending.
        let class_path = join(path, "storageClassName");
        match c.string(value, &class_path) {
            Some(class) if !class.is_empty() && !is_dns1123_subdomain(class) => c.error(
                &class_path,
                format!("Invalid value: {class:?}: {DNS1123_SUBDOMAIN_RULE}"),
            ),
            _ => {}
        }
    }
    if let Some(value) = get(spec, "volumeMode") {
        let mode_path = join(path, "volumeMode");
        if value.as_str() == Some("Block") && local_path {
            c.error(
                &mode_path,
                "unsupported value \"Block\": the local-path storage class provisions \
                 directories, so only \"Filesystem\" is supported",
            );
        } else {
            c.one_of(value, &mode_path, &[FILESYSTEM_VOLUME_MODE, "Block"]);
        }
    }
    if let Some(value) = get(spec, "volumeName") {
        // The one berth set (`get -o yaml` shows it); admission checks it is that one.
        let name_path = join(path, "volumeName");
        if let Some(name) = c.string(value, &name_path) {
            if !name.is_empty() && !is_dns1123_subdomain(name) {
                c.error(
                    &name_path,
                    format!("invalid name {name:?}: must be a DNS subdomain"),
                );
            }
        }
    }
}

fn check_access_modes(c: &mut Checker, value: Option<&Value>, path: &str, local_path: bool) {
    let Some(value) = value else {
        c.error(path, "required value: at least 1 access mode is required");
        return;
    };
    let Some(modes) = c.list(value, path) else {
        return;
    };
    if modes.is_empty() {
        c.error(path, "required value: at least 1 access mode is required");
    }
    let mut valid = Vec::new();
    for (i, mode) in modes.iter().enumerate() {
        let item_path = index(path, i);
        match mode.as_str() {
            Some(shared) if local_path && SHARED_ACCESS_MODES.contains(&shared) => c.error(
                &item_path,
                format!(
                    "unsupported value {shared:?}: the local-path storage class keeps a claim's \
                     data on one board, so it can give only \"ReadWriteOnce\" or \
                     \"ReadWriteOncePod\""
                ),
            ),
            Some(shared) if SHARED_ACCESS_MODES.contains(&shared) => valid.push(shared),
            _ => valid.extend(c.one_of(mode, &item_path, &ACCESS_MODES)),
        }
    }
    if valid.contains(&"ReadWriteOncePod") && modes.len() > 1 {
        c.error(
            path,
            "invalid value: may not use ReadWriteOncePod with other access modes",
        );
    }
}

fn check_resources(c: &mut Checker, value: Option<&Value>, path: &str) {
    let requests_path = join(path, "requests");
    let storage_path = join(&requests_path, STORAGE);
    let Some(value) = value else {
        c.required(&storage_path);
        return;
    };
    let Some(resources) = c.object(value, path) else {
        return;
    };
    // `limits` would promise a bound a directory cannot keep.
    c.only_fields(resources, path, &["requests"]);
    let Some(value) = get(resources, "requests") else {
        c.required(&storage_path);
        return;
    };
    let Some(requests) = c.object(value, &requests_path) else {
        return;
    };
    for name in requests.keys().filter(|name| *name != STORAGE) {
        c.error(
            &join(&requests_path, name),
            format!("unsupported resource name {name:?}: supported values: \"storage\""),
        );
    }
    let Some(storage) = get(requests, STORAGE) else {
        c.required(&storage_path);
        return;
    };
    // Unquoted YAML numbers (`storage: 1073741824`) are valid quantities.
    let text = match storage {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        _ => {
            c.error(&storage_path, "expected string");
            return;
        }
    };
    match parse_memory_bytes(&text) {
        Ok(0) => c.error(&storage_path, "must be greater than zero"),
        Ok(_) => {}
        Err(message) => c.error(&storage_path, message),
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{parse_manifests, Object};

    fn errors(spec: &str) -> Vec<String> {
        let yaml = format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: data}}\nspec: {spec}\n"
        );
        match parse_manifests(&yaml) {
            Ok(_) => Vec::new(),
            Err(err) => err
                .documents
                .into_iter()
                .flat_map(|d| d.errors)
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect(),
        }
    }

    #[test]
    fn a_plain_claim_gets_the_default_class() {
        let yaml = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\n\
                    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n";
        let objects = parse_manifests(yaml).unwrap();
        let Object::PersistentVolumeClaim(claim) = &objects[0] else {
            panic!("not a claim: {objects:?}");
        };
        assert_eq!(claim.spec.storage_class_name.as_deref(), Some("local-path"));
        assert_eq!(claim.spec.volume_mode.as_deref(), Some("Filesystem"));
        assert_eq!(claim.spec.requested_storage(), "1Gi");
        let numeric = errors("{accessModes: [ReadWriteOncePod], resources: {requests: {storage: 1048576}}, storageClassName: local-path, volumeMode: Filesystem}");
        assert!(numeric.is_empty(), "{numeric:?}");
    }

    #[test]
    fn shared_access_modes_are_refused_with_the_reason() {
        let found = errors("{accessModes: [ReadWriteMany], resources: {requests: {storage: 1Gi}}}");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("spec.accessModes[0]: unsupported value \"ReadWriteMany\": the local-path storage class keeps a claim's data on one board"),
            "{found:?}"
        );
        let found = errors(
            "{accessModes: [ReadOnlyMany, Sometimes], resources: {requests: {storage: 1Gi}}}",
        );
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(
            found[1],
            "spec.accessModes[1]: unsupported value \"Sometimes\": supported values: \"ReadWriteOnce\", \"ReadWriteOncePod\""
        );
        let found = errors(
            "{accessModes: [ReadWriteOncePod, ReadWriteOnce], resources: {requests: {storage: 1Gi}}}",
        );
        assert_eq!(
            found,
            ["spec.accessModes: invalid value: may not use ReadWriteOncePod with other access modes"]
        );
    }

    #[test]
    fn every_problem_is_named_by_its_path() {
        let found = errors(
            "{resources: {requests: {storage: 10Gb, cpu: 1}, limits: {storage: 1Gi}}, \
             storageClassName: Fast_1, volumeMode: Sometimes, selector: {}}",
        );
        assert_eq!(
            found,
            [
                "spec.selector: field not supported by berth",
                "spec.accessModes: required value: at least 1 access mode is required",
                "spec.resources.limits: field not supported by berth",
                "spec.resources.requests.cpu: unsupported resource name \"cpu\": supported values: \"storage\"",
                "spec.resources.requests.storage: invalid quantity \"10Gb\"",
                "spec.storageClassName: Invalid value: \"Fast_1\": must be a lowercase RFC 1123 subdomain: at most 253 characters of dot-separated labels made of lowercase letters, digits or '-', each starting and ending with a letter or digit",
                "spec.volumeMode: unsupported value \"Sometimes\": supported values: \"Filesystem\", \"Block\"",
            ]
        );
        // What a local-path directory cannot be is refused for that class only.
        assert_eq!(
            errors("{accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}, volumeMode: Block}"),
            ["spec.volumeMode: unsupported value \"Block\": the local-path storage class provisions directories, so only \"Filesystem\" is supported"]
        );
        let elsewhere = errors(
            "{accessModes: [ReadWriteMany], resources: {requests: {storage: 1Gi}}, \
             storageClassName: nfs, volumeMode: Block}",
        );
        assert!(elsewhere.is_empty(), "{elsewhere:?}");
        assert_eq!(
            errors("{accessModes: [ReadWriteOnce]}"),
            ["spec.resources.requests.storage: required value"]
        );
        assert_eq!(
            errors("{accessModes: [ReadWriteOnce], resources: {requests: {storage: '0'}}}"),
            ["spec.resources.requests.storage: must be greater than zero"]
        );
        // `""` asks for a pre-made volume: accepted, and left Pending.
        assert!(errors(
            "{accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}, storageClassName: ''}"
        )
        .is_empty());
    }
}
