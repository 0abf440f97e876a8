//! What platforms an image offers, asked of its registry without pulling anything: the
//! coordinator's scheduler uses it to keep a pod off boards its image cannot run on.

use std::time::{Duration, Instant};

use super::oci::{self, Index};
use super::reference::parse_reference;
use super::registry::client::RegistryClient;
use super::registry::RegistryConfig;
use super::staging::parse_json;
use super::ImageError;

/// The `os/architecture[/variant]` entries of the reference's image index. `Ok(None)`
/// when the reference names a single-platform manifest: its platform is only in its
/// config blob, and "unknown" lets every board pass rather than fetch more.
pub fn image_platforms(
    reference: &str,
    config: &RegistryConfig,
    timeout: Duration,
) -> Result<Option<Vec<String>>, ImageError> {
    let parsed = parse_reference(reference)?;
    let canonical = parsed.to_canonical();
    let (registry, repository) = parsed.registry_and_path(reference)?;
    let tag_or_digest = parsed.tag_or_digest();
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    for endpoint in config.endpoints(registry, None)? {
        let client = RegistryClient::new(endpoint, repository, &canonical, timeout, deadline)?;
        let fetched = match client.manifest(tag_or_digest) {
            Ok(fetched) => fetched,
            Err(err) => {
                last_error = Some(err);
                continue;
            }
        };
        let document: serde_json::Value =
            serde_json::from_slice(&fetched.bytes).unwrap_or_default();
        let media_type = fetched
            .content_type
            .filter(|ct| oci::kind_of(ct) != oci::Kind::Unknown)
            .or_else(|| document.get("mediaType")?.as_str().map(str::to_string))
            .unwrap_or_default();
        let is_index = oci::kind_of(&media_type) == oci::Kind::Index
            || (media_type.is_empty() && document.get("manifests").is_some());
        if !is_index {
            return Ok(None);
        }
        let index: Index = parse_json(std::path::Path::new(&canonical), &fetched.bytes)?;
        let platforms = index
            .manifests
            .iter()
            .filter_map(|m| m.platform.as_ref())
            // Attestation manifests of buildkit carry `unknown/unknown`.
            .filter(|p| !p.os.is_empty() && p.os != "unknown" && p.architecture != "unknown")
            .map(|p| p.display())
            .collect();
        return Ok(Some(platforms));
    }
    Err(last_error.unwrap_or_else(|| ImageError::Registry {
        registry: registry.to_string(),
        reason: "no endpoint to ask".to_string(),
    }))
}
