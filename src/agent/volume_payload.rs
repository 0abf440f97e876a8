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
    let result = if let Some(source) = &volume.config_map {
        let mode = source.default_mode.unwrap_or(DEFAULT_FILE_MODE);
        add_config_map(
            &mut payload,
            config,
            &source.name,
            &source.items,
            source.optional,
            mode,
        )
    } else if let Some(source) = &volume.secret {
        let mode = source.default_mode.unwrap_or(DEFAULT_FILE_MODE);
        add_secret(
            &mut payload,
            config,
            &source.secret_name,
            &source.items,
            source.optional,
            mode,
        )
    } else if let Some(source) = &volume.downward_api {
        let mode = source.default_mode.unwrap_or(DEFAULT_FILE_MODE);
        add_downward(&mut payload, pod, facts, &source.items, mode)
    } else if let Some(projected) = &volume.projected {
        let mode = projected.default_mode.unwrap_or(DEFAULT_FILE_MODE);
        projected.sources.iter().try_for_each(|source| {
            if let Some(s) = &source.config_map {
                add_config_map(&mut payload, config, &s.name, &s.items, s.optional, mode)
            } else if let Some(s) = &source.secret {
                add_secret(&mut payload, config, &s.name, &s.items, s.optional, mode)
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

fn add_config_map(
    payload: &mut Payload,
    config: &PodConfig,
    name: &str,
    items: &[KeyToPath],
    optional: Option<bool>,
    mode: i32,
) -> Result<(), String> {
    match config.config_map(name) {
        Ok(map) => {
            let what = "configmap references non-existent config";
            add_entries(payload, config_map_entries(map), items, mode, what)
        }
        Err(_) if optional == Some(true) => Ok(()),
        Err(message) => Err(message),
    }
}

fn add_secret(
    payload: &mut Payload,
    config: &PodConfig,
    name: &str,
    items: &[KeyToPath],
    optional: Option<bool>,
    mode: i32,
) -> Result<(), String> {
    match config.secret(name) {
        Ok(secret) => {
            let what = "secret references non-existent secret";
            add_entries(payload, secret_entries(secret), items, mode, what)
        }
        Err(_) if optional == Some(true) => Ok(()),
        Err(message) => Err(message),
    }
}

/// Every key as a file of its name, or only the listed items at their paths.
fn add_entries(
    payload: &mut Payload,
    mut entries: BTreeMap<String, Vec<u8>>,
    items: &[KeyToPath],
    mode: i32,
    what: &str,
) -> Result<(), String> {
    if items.is_empty() {
        for (key, bytes) in entries {
            payload.insert(key, file(bytes, mode));
        }
        return Ok(());
    }
    for item in items {
        let bytes = entries
            .remove(&item.key)
            .ok_or_else(|| format!("{what} key: {}", item.key))?;
        payload.insert(item.path.clone(), file(bytes, item.mode.unwrap_or(mode)));
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
