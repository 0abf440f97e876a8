//! Choosing the manifest for a board's platform from an image index.

use crate::image::oci::{Descriptor, Index, Platform};

/// Parses `os/architecture[/variant]`, e.g. `linux/arm/v7`.
pub(crate) fn parse_platform(text: &str) -> Option<Platform> {
    let mut parts = text.split('/');
    let os = parts.next().filter(|s| !s.is_empty())?;
    let architecture = parts.next().filter(|s| !s.is_empty())?;
    let variant = parts.next().filter(|s| !s.is_empty()).map(str::to_string);
    if parts.next().is_some() {
        return None;
    }
    Some(Platform {
        os: os.to_string(),
        architecture: architecture.to_string(),
        variant,
    })
}

/// The index entry that best suits `wanted`, or the list of platforms the index offers
/// (`os/arch[/variant]`, comma-separated) when none does. Entries without a platform
/// (attestations and the like) are never chosen.
pub(crate) fn choose(index: &Index, wanted: &Platform) -> Result<Descriptor, String> {
    let best = index
        .manifests
        .iter()
        .filter(|d| super::client::is_manifest_media_type(&d.media_type) || d.media_type.is_empty())
        .filter_map(|d| Some((d.platform.as_ref()?.score_for(wanted)?, d)))
        // The first of equally good entries wins, as in Docker.
        .fold(None::<(u32, &Descriptor)>, |best, (score, d)| match best {
            Some((top, _)) if top >= score => best,
            _ => Some((score, d)),
        });
    match best {
        Some((_, desc)) => Ok(desc.clone()),
        None => {
            let mut available: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .filter(|p| !p.os.is_empty() && p.os != "unknown")
                .map(Platform::display)
                .collect();
            available.dedup();
            Err(if available.is_empty() {
                "none".to_string()
            } else {
                available.join(", ")
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(platforms: &[(&str, &str, Option<&str>)]) -> Index {
        let manifests = platforms
            .iter()
            .enumerate()
            .map(|(i, (os, arch, variant))| {
                serde_json::from_value(serde_json::json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": format!("sha256:{i:064}"),
                    "size": 10,
                    "platform": {"os": os, "architecture": arch, "variant": variant},
                }))
                .unwrap()
            })
            .collect();
        Index { manifests }
    }

    #[test]
    fn picks_exact_then_compatible_variant() {
        let idx = index(&[
            ("linux", "amd64", None),
            ("linux", "arm", Some("v6")),
            ("linux", "arm", Some("v7")),
            ("linux", "arm64", Some("v8")),
            ("unknown", "unknown", None),
        ]);
        let pick = |p: &str| choose(&idx, &parse_platform(p).unwrap()).map(|d| d.digest);
        assert_eq!(pick("linux/arm/v7").unwrap(), format!("sha256:{:064}", 2));
        assert_eq!(pick("linux/arm64").unwrap(), format!("sha256:{:064}", 3));
        assert_eq!(pick("linux/amd64").unwrap(), format!("sha256:{:064}", 0));
        let v6_only = index(&[("linux", "arm", Some("v6")), ("linux", "amd64", None)]);
        let v7 = parse_platform("linux/arm/v7").unwrap();
        assert_eq!(
            choose(&v6_only, &v7).unwrap().digest,
            format!("sha256:{:064}", 0)
        );
        let err = choose(&v6_only, &parse_platform("linux/riscv64").unwrap()).unwrap_err();
        assert_eq!(err, "linux/arm/v6, linux/amd64");
    }

    #[test]
    fn parses_platform_strings() {
        assert_eq!(
            parse_platform("linux/arm64/v8").unwrap().display(),
            "linux/arm64/v8"
        );
        assert_eq!(parse_platform("linux/amd64").unwrap().variant, None);
        assert!(parse_platform("linux").is_none());
        assert!(parse_platform("linux/arm/v7/x").is_none());
    }
}
