//! The files of `configMap`, `secret`, `downwardAPI` and `projected` volumes: a pure
//! function from the volume, the pod and what the store holds to a set of relative paths
//! with their bytes and modes. The runtime's atomic writer puts them on disk.

use std::collections::BTreeMap;

use super::env::{
    config_map_entries, field_value, resource_value, secret_entries, PodConfig, PodFacts,
};
use crate::model::{DownwardApiVolumeFile, KeyToPath, Pod, Volume, DEFAULT_FILE_MODE};
use crate::runtime::PayloadFile;

/// Relative path → file.
pub type Payload = BTreeMap<String, PayloadFile>;

/// The files of a volume whose content the agent writes, or `None` for the other kinds
/// (emptyDir, hostPath, persistentVolumeClaim). The error is the kubelet's message.
pub fn volume_payload(
    volume: &Volume,
    pod: &Pod,
    config: &PodConfig,
    facts: &PodFacts,
) -> Option<Result<Payload, String>> {
    let mut payload = Payload::new();
    let config_map = |name: &str| config.config_map(name).map(config_map_entries);
    let secret = |name: &str| config.secret(name).map(secret_entries);
    let result = if let Some(source) = &volume.config_map {
        let mode = source.default_mode.unwrap_or(DEFAULT_FILE_MODE);
        let found = config_map(&source.name);
        let items = (&source.items[..], source.optional, mode);
        add_object(&mut payload, found, items, CONFIG_MAP_KEY_MISSING)
    } else if let Some(source) = &volume.secret {
        let mode = source.default_mode.unwrap_or(DEFAULT_FILE_MODE);
        let found = secret(&source.secret_name);
        let items = (&source.items[..], source.optional, mode);
        add_object(&mut payload, found, items, SECRET_KEY_MISSING)
    } else if let Some(source) = &volume.downward_api {
        let mode = source.default_mode.unwrap_or(DEFAULT_FILE_MODE);
        add_downward(&mut payload, pod, facts, &source.items, mode)
    } else if let Some(projected) = &volume.projected {
        let mode = projected.default_mode.unwrap_or(DEFAULT_FILE_MODE);
        projected.sources.iter().try_for_each(|source| {
            if let Some(s) = &source.config_map {
                let items = (&s.items[..], s.optional, mode);
                add_object(
                    &mut payload,
                    config_map(&s.name),
                    items,
                    CONFIG_MAP_KEY_MISSING,
                )
            } else if let Some(s) = &source.secret {
                let items = (&s.items[..], s.optional, mode);
                add_object(&mut payload, secret(&s.name), items, SECRET_KEY_MISSING)
            } else if let Some(s) = &source.downward_api {
                add_downward(&mut payload, pod, facts, &s.items, mode)
            } else {
                Ok(())
            }
        })
    } else {
        return None;
    };
    Some(result.map(|()| payload))
}

/// The kubelet's words for an item whose key the object lacks.
const CONFIG_MAP_KEY_MISSING: &str = "configmap references non-existent config key";
const SECRET_KEY_MISSING: &str = "secret references non-existent secret key";

/// The entries of a ConfigMap or Secret (or why it is missing), with the volume's
/// `items`, `optional` and default mode: a missing optional object is no files.
fn add_object(
    payload: &mut Payload,
    found: Result<BTreeMap<String, Vec<u8>>, String>,
    (items, optional, mode): (&[KeyToPath], Option<bool>, i32),
    key_missing: &str,
) -> Result<(), String> {
    match found {
        Ok(entries) => add_entries(payload, entries, (items, optional, mode), key_missing),
        Err(_) if optional == Some(true) => Ok(()),
        Err(message) => Err(message),
    }
}

/// Every key as a file of its name, or only the listed items at their paths (a key the
/// object lacks is skipped when it is optional, as the kubelet does).
fn add_entries(
    payload: &mut Payload,
    mut entries: BTreeMap<String, Vec<u8>>,
    (items, optional, mode): (&[KeyToPath], Option<bool>, i32),
    what: &str,
) -> Result<(), String> {
    if items.is_empty() {
        for (key, bytes) in entries {
            payload.insert(key, file(bytes, mode));
        }
        return Ok(());
    }
    for item in items {
        match entries.remove(&item.key) {
            Some(bytes) => {
                payload.insert(item.path.clone(), file(bytes, item.mode.unwrap_or(mode)));
            }
            None if optional == Some(true) => {}
            None => return Err(format!("{what}: {}", item.key)),
        }
    }
    Ok(())
}

fn add_downward(
    payload: &mut Payload,
    pod: &Pod,
    facts: &PodFacts,
    items: &[DownwardApiVolumeFile],
    mode: i32,
) -> Result<(), String> {
    for item in items {
        let value = if let Some(field) = &item.field_ref {
            field_value(pod, facts, field)?
        } else if let Some(resource) = &item.resource_field_ref {
            resource_value(pod, None, resource, facts)?
        } else {
            continue;
        };
        let mode = item.mode.unwrap_or(mode);
        payload.insert(item.path.clone(), file(value.into_bytes(), mode));
    }
    Ok(())
}

fn file(bytes: Vec<u8>, mode: i32) -> PayloadFile {
    PayloadFile {
        bytes,
        mode: u32::try_from(mode & 0o777).unwrap_or(0o644),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{base64, ConfigMap, Secret};

    fn pod_with(volume: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "dev", "labels": {"app": "web", "b": "x\"y"}},
            "spec": {"containers": [{"name": "app", "image": "i",
                "resources": {"limits": {"memory": "64Mi"}}}], "volumes": [volume]}
        }))
        .unwrap()
    }

    fn config() -> PodConfig {
        let mut map = ConfigMap::default();
        map.data.insert("a.conf".into(), "A".into());
        map.binary_data
            .insert("blob".into(), base64::encode(&[0, 1, 2]));
        let mut secret = Secret::default();
        secret.data.insert("token".into(), base64::encode(b"t0k"));
        let mut config = PodConfig::default();
        config.config_maps.insert("app".into(), Some(map));
        config.config_maps.insert("gone".into(), None);
        config.secrets.insert("creds".into(), Some(secret));
        config
    }

    fn payload_of(volume: serde_json::Value) -> Result<Vec<(String, String, u32)>, String> {
        let pod = pod_with(volume);
        let payload = volume_payload(&pod.spec.volumes[0], &pod, &config(), &PodFacts::default())
            .expect("a written volume")?;
        Ok(payload
            .into_iter()
            .map(|(path, f)| (path, String::from_utf8_lossy(&f.bytes).into_owned(), f.mode))
            .collect())
    }

    fn entry(path: &str, text: &str, mode: u32) -> (String, String, u32) {
        (path.to_owned(), text.to_owned(), mode)
    }

    #[test]
    fn config_maps_and_secrets_become_files() {
        let all = payload_of(serde_json::json!({"name": "v", "configMap": {"name": "app"}}));
        assert_eq!(
            all.unwrap(),
            [
                entry("a.conf", "A", 0o644),
                entry("blob", "\0\u{1}\u{2}", 0o644)
            ]
        );
        let some = payload_of(
            serde_json::json!({"name": "v", "secret": {"secretName": "creds",
            "defaultMode": 0o400, "items": [{"key": "token", "path": "dir/t", "mode": 0o440}]}}),
        );
        assert_eq!(some.unwrap(), [entry("dir/t", "t0k", 0o440)]);
    }

    #[test]
    fn missing_objects_and_keys_follow_optional() {
        let missing = payload_of(serde_json::json!({"name": "v", "configMap": {"name": "gone"}}));
        assert_eq!(missing.unwrap_err(), "configmap \"gone\" not found");
        let optional =
            serde_json::json!({"name": "v", "configMap": {"name": "gone", "optional": true}});
        assert_eq!(payload_of(optional).unwrap(), []);
        let key = serde_json::json!({"name": "v", "secret": {"secretName": "creds",
            "items": [{"key": "nope", "path": "p"}]}});
        assert_eq!(
            payload_of(key).unwrap_err(),
            "secret references non-existent secret key: nope"
        );
        let key = serde_json::json!({"name": "v", "configMap": {"name": "app", "optional": true,
            "items": [{"key": "nope", "path": "p"}, {"key": "a.conf", "path": "a"}]}});
        assert_eq!(payload_of(key).unwrap(), [entry("a", "A", 0o644)]);
    }

    #[test]
    fn projected_volumes_combine_their_sources() {
        let volume = serde_json::json!({"name": "v", "projected": {"defaultMode": 0o600, "sources": [
            {"configMap": {"name": "app", "items": [{"key": "a.conf", "path": "conf"}]}},
            {"secret": {"name": "creds"}},
            {"downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "mem", "resourceFieldRef": {"containerName": "app",
                    "resource": "limits.memory", "divisor": "1Mi"}, "mode": 0o444}]}}
        ]}});
        assert_eq!(
            payload_of(volume).unwrap(),
            [
                entry("conf", "A", 0o600),
                entry("labels", "app=\"web\"\nb=\"x\\\"y\"\n", 0o600),
                entry("mem", "64", 0o444),
                entry("token", "t0k", 0o600)
            ]
        );
    }

    #[test]
    fn other_kinds_write_nothing() {
        let pod = pod_with(serde_json::json!({"name": "v", "emptyDir": {}}));
        let found = volume_payload(&pod.spec.volumes[0], &pod, &config(), &PodFacts::default());
        assert!(found.is_none());
    }
}
